"""Overhead of the ``daskcluster`` command: ``daskcluster run`` of the MNIST workflow, whole
command vs the fit inside it, on the local default cluster and on an existing scheduler, beside
a bare script doing the same fit (the peer: what a user writes without the command).

Run from the project root::

    python benchmarks/bench_jobs.py                 # 3 rounds, writes benchmarks/RESULTS-jobs.md
    python benchmarks/bench_jobs.py --repeats 5
    python benchmarks/bench_jobs.py --max-rows 10000   # the first 10,000 rows: a short fit, same overhead
    python benchmarks/bench_jobs.py --quick         # 1 round on 10,000 rows, writes nothing

Each run is a fresh process, exactly what a user types::

    python -m daskcluster run workflows/mnist_kmeans.yaml --out <tmp> --no-progress [--scheduler ADDRESS]

timed from before the process starts to after it exits (``time.perf_counter`` around
``subprocess.run``). The fit time and the job's own phases come from the ``metrics.json``
the run writes (``seconds``: load, fit, evaluate, outputs, total). The rest splits into

* startup: process start, imports, validation and the cluster's start (wall clock from the
  launch to the first line of ``job.log``);
* after the job: the summary, shutting the cluster down and the interpreter's exit (wall clock
  from ``metrics.json`` being written to the process's end).

Overhead = whole command - fit. Targets: < 3 s with a local cluster started, < 2 s on an
existing scheduler (``dask scheduler`` and two ``dask worker --nthreads 1`` processes started
by this script before the rounds). The settings run round-robin (local, scheduler, bare
local, bare scheduler, then again), the least and the median are reported, and the machine's
load average is recorded with each run, since other processes on a shared machine inflate
every phase.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from machine import cpu_model

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUTPUT = HERE / "RESULTS-jobs.md"
WORKFLOW = "workflows/mnist_kmeans.yaml"
TARGETS = {"local": 3.0, "scheduler": 2.0}
SETTINGS = {"local": "the local default cluster (started by the command)",
            "scheduler": "an existing scheduler (`--scheduler`)"}


def _log_start(log: Path) -> float:
    """Epoch seconds of the first timed line of job.log ("2026-11-23 22:21:06,239 ...")."""
    for line in log.read_text().splitlines():
        if line[:4].isdigit():
            return _dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    raise ValueError(f"{log}: no timed line")


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes and their waited-for children:
    a figure a crowded machine inflates far less than wall time."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_command(extra: list[str]) -> dict[str, float]:
    """One ``daskcluster run`` in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "daskcluster", "run", WORKFLOW, "--out", str(out), "--no-progress", *extra]
        load = os.getloadavg()[0]
        t_launch = time.time()
        cpu0 = _children_cpu()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        cpu = _children_cpu() - cpu0
        t_exit = time.time()
        if proc.returncode != 0:
            raise SystemExit(f"run failed ({proc.returncode}):\n{proc.stderr}")
        doc = json.loads((out / "metrics.json").read_text())
        s = doc["seconds"]
        return {
            "wall": wall, "fit": s["fit"], "overhead": wall - s["fit"], "startup": _log_start(out / "job.log") - t_launch,
            "load": s["load"], "evaluate": s["evaluate"], "outputs": s["outputs"],
            "after": t_exit - (out / "metrics.json").stat().st_mtime, "n_iter": doc["model"]["n_iter_"],
            "n_samples": doc["data"]["n_samples"], "loadavg": load, "workers": doc["cluster"].get("n_workers", 0),
            "cpu": cpu,
        }


#: The peer: the same fit as a bare script (no job file, no outputs but the fit), on a
#: LocalCluster it starts or on the scheduler it is given.
_BARE_SCRIPT = """
import json, sys, time
import numpy as np
from distributed import Client, LocalCluster
from daskcluster import KMeans
max_rows = int(sys.argv[2]) if len(sys.argv) > 2 else None
with np.load("/work/shared/data/mnist.npz") as f:
    X = np.concatenate([f["x_train"], f["x_test"]]).reshape(-1, 784)[:max_rows] / 255.0
if sys.argv[1] == "local":
    cluster = LocalCluster(dashboard_address="127.0.0.1:0")
    client = Client(cluster)
else:
    cluster, client = None, Client(sys.argv[1])
t0 = time.perf_counter()
km = KMeans(n_clusters=10, random_state=0).fit(X)
fit = time.perf_counter() - t0
client.close()
if cluster is not None:
    cluster.close()
print(json.dumps({"fit": fit, "n_iter": int(km.n_iter_)}))
"""


def run_bare(target: str, max_rows: int | None) -> dict[str, float]:
    """The peer, in a fresh process: whole process vs its fit."""
    load = os.getloadavg()[0]
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _BARE_SCRIPT, target, *([str(max_rows)] if max_rows else [])],
                          cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"bare script failed ({proc.returncode}):\n{proc.stderr}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall": wall, "fit": r["fit"], "overhead": wall - r["fit"], "n_iter": r["n_iter"], "loadavg": load,
            "cpu": cpu}


@contextlib.contextmanager
def existing_scheduler() -> Iterator[str]:
    """``dask scheduler`` and two ``dask worker --nthreads 1`` processes on 127.0.0.1."""
    dask = shutil.which("dask") or os.path.join(os.path.dirname(sys.executable), "dask")
    with tempfile.TemporaryDirectory(prefix="bench-jobs-scheduler-") as tmp:
        file = Path(tmp) / "scheduler.json"
        procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file",
                                   str(file), "--dashboard-address", "127.0.0.1:0"], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        try:
            deadline = time.monotonic() + 60
            while not file.exists():
                if time.monotonic() > deadline:
                    raise SystemExit("the scheduler did not start")
                time.sleep(0.1)
            for _ in range(2):
                procs.append(subprocess.Popen([dask, "worker", "--scheduler-file", str(file), "--nthreads", "1",
                                               "--no-dashboard"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
            address = json.loads(file.read_text())["address"]
            from distributed import Client

            with Client(address, timeout=30) as client:
                client.wait_for_workers(2, timeout=120)
            yield address
        finally:
            for p in reversed(procs):
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()


_PARTS_SCRIPT = """
import json, sys, time
if __name__ == "__main__":
    wall, cpu = [time.perf_counter()], [time.process_time()]

    def mark():
        wall.append(time.perf_counter())
        cpu.append(time.process_time())

    import daskcluster.cli; mark()
    from daskcluster.deploy.backends import local_cluster_options
    from daskcluster.deploy.deployment import default_config
    from daskcluster.deploy.local_process import LocalProcess
    host = LocalProcess(local_cluster_options(default_config())).start(); mark()
    from daskcluster.cli.jobs import import_for_jobs
    import_for_jobs(); mark()
    from daskcluster.jobs import check_job, load_job; mark()
    job = load_job("workflows/mnist_kmeans.yaml", overrides=sys.argv[1:]); mark()
    check_job(job); mark()
    from daskcluster.jobs.sources import load
    load(job.resolved().data); mark()
    import distributed; mark()
    address = host.wait(timeout=600); mark()
    client = distributed.Client(address); client.wait_for_workers(1); mark()
    import psutil
    child = psutil.Process(host.pid)
    tree = [child, *child.children(recursive=True)]
    child_cpu = sum(sum(p.cpu_times()[:2]) for p in tree)
    import matplotlib.figure, matplotlib.backends.backend_agg; mark()
    client.close(); host.close(); mark()
    print(json.dumps({"wall": [b - a for a, b in zip(wall, wall[1:])], "cpu": [b - a for a, b in zip(cpu, cpu[1:])],
                      "child_cpu": child_cpu}))
"""
_PARTS = (
    "import the command (daskcluster.cli)",
    "start the local cluster's process (returns at once; it starts meanwhile)",
    "import Dask's arrays (without xarray and pydata sparse) and scikit-learn's base (without pandas)",
    "import the job package (pydantic, PyYAML)",
    "read and validate the job file (imports the estimator: the rest of scikit-learn, Numba kernels, Zarr)",
    "the estimator's checks against the data's metadata",
    "read MNIST (the rows the job asks for)",
    "import distributed (the client)",
    "wait for the local cluster's scheduler (what is left of its start)",
    "connect, and wait for a worker",
    "import matplotlib (the command does it while the fit runs)",
    "stop the cluster",
)


def parts(overrides: list[str]) -> dict[str, tuple[float, float]]:
    """The pieces of the command's work one after the other in one fresh process (median of 3
    processes), on the job with ``overrides`` (``--set``) as the rounds run it: wall and CPU seconds
    of this process, and the interpreter's start (``python -c pass``).
    The local cluster's process starts in the second piece and runs beside the next ones; its CPU
    seconds (and its workers') until a worker joined are the last row."""
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        start = time.perf_counter() - t0
        out = subprocess.run([sys.executable, "-c", _PARTS_SCRIPT, *overrides], cwd=ROOT, check=True, capture_output=True,
                             text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        runs.append([(start, start)] + list(zip(r["wall"], r["cpu"])) + [(float("nan"), r["child_cpu"])])
    names = ("start the Python interpreter", *_PARTS,
             "the local cluster's process and its workers, until a worker joined (CPU)")
    return {name: (statistics.median(r[i][0] for r in runs), statistics.median(r[i][1] for r in runs))
            for i, name in enumerate(names)}


def machine() -> str:
    """CPU model, BLAS kernel (threadpoolctl) and the Python/platform, for the record."""
    import numpy as np  # noqa: F401  (loads the BLAS threadpoolctl reports)
    from threadpoolctl import threadpool_info

    cpu = cpu_model()
    blas = "; ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture', '?')}, "
                     f"{i.get('num_threads')} threads)" for i in threadpool_info() if i.get("user_api") == "blas")
    return (f"{cpu}, {os.cpu_count()} CPUs; BLAS: {blas or 'none found'}; Python {platform.python_version()}, "
            f"{platform.platform()}")


def _stats(rows: list[dict[str, float]], key: str) -> tuple[float, float]:
    values = [r[key] for r in rows]
    return min(values), statistics.median(values)


def markdown(runs: dict[str, list[dict[str, float]]], command: str, pieces: dict[str, tuple[float, float]],
             max_rows: int | None) -> str:
    first = runs["local"][0]
    rows_set = f" --set data.max_rows={max_rows}" if max_rows else ""
    rows_arg = f" {max_rows}" if max_rows else ""
    lines = []
    for setting, label in SETTINGS.items():
        rows = runs[setting]
        lines.append(f"### On {label}\n")
        lines.append("| round | whole command (s) | fit (s) | overhead (s) | startup (s) | load data (s) | "
                     "evaluate (s) | outputs (s) | after the job (s) | n_iter | load avg |")
        lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for i, r in enumerate(rows):
            lines.append(f"| {i + 1} | {r['wall']:.2f} | {r['fit']:.2f} | {r['overhead']:.2f} | {r['startup']:.2f} | "
                         f"{r['load']:.2f} | {r['evaluate']:.2f} | {r['outputs']:.2f} | {r['after']:.2f} | "
                         f"{int(r['n_iter'])} | {r['loadavg']:.1f} |")
        lines.append("")
    summary = ["| setting | overhead, least (s) | overhead, median (s) | target | bare script overhead, least / "
               "median (s) | command / bare (median) | CPU s of the process tree, command / bare (median) |",
               "| --- | --- | --- | --- | --- | --- | --- |"]
    for setting, label in SETTINGS.items():
        least, median = _stats(runs[setting], "overhead")
        b_least, b_median = _stats(runs[f"bare-{setting}"], "overhead")
        verdict = "met" if median < TARGETS[setting] else "missed"
        summary.append(f"| {label} | {least:.2f} | **{median:.2f}** | < {TARGETS[setting]:.0f} s: {verdict} | "
                       f"{b_least:.2f} / {b_median:.2f} | {median / b_median:.2f} | "
                       f"{_stats(runs[setting], 'cpu')[1]:.1f} / {_stats(runs[f'bare-{setting}'], 'cpu')[1]:.1f} |")
    table = "\n".join(f"| {k} | {'' if w != w else f'{w:.2f}'} | {c:.2f} |" for k, (w, c) in pieces.items())
    loads = [r["loadavg"] for rows in runs.values() for r in rows]
    crowded = max(loads) > 2 * (os.cpu_count() or 1)
    warning = (f"\n**The machine was crowded** (load average up to {max(loads):.0f} on {os.cpu_count()} CPUs): "
               "every phase is inflated many times and the figures are no verdict on the targets; compare the "
               "command with the bare script of the same round instead, and rerun on a quiet machine.\n"
               if crowded else "")
    return f"""# `daskcluster run`: whole command vs fit (issue 17)

Measured {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} on {machine()}.
{len(runs['local'])} round(s); each round runs the four settings one after the other (round-robin),
each a fresh process. Load average (1 min) during the runs: {min(loads):.1f} to {max(loads):.1f}.
{warning}
Command (from the project root):

```bash
{command}
```

which runs, in every round:

```bash
python -m daskcluster run {WORKFLOW} --out <temporary folder> --no-progress{rows_set}                       # local
python -m daskcluster run {WORKFLOW} --out <temporary folder> --no-progress{rows_set} --scheduler ADDRESS   # scheduler
python -c <bare script> local{rows_arg}        # the peer: LocalCluster + Client + KMeans(10).fit, nothing else
python -c <bare script> ADDRESS{rows_arg}      # the peer on the existing scheduler
```

MNIST ({int(first['n_samples']):,} x 784 uint8{" (the first rows)" if max_rows else ""}, read as x/255), `KMeans(n_clusters=10, random_state=0)`; the
local default cluster is a `LocalCluster` of {int(first['workers'])} worker processes; the existing scheduler is
`dask scheduler` with two `dask worker --nthreads 1` processes on 127.0.0.1, started before the rounds.

## Overhead (whole command - fit)

{chr(10).join(summary)}

The bare script is the floor: a process that imports Dask and daskcluster, reads MNIST, starts
(or connects to) the cluster and fits. CPU seconds count the command's process and the local
cluster's worker processes it started (not the existing scheduler's workers), including the fit. What the command adds to it is validating the job, the
outputs (labels, model file, three plots, `metrics.json`, `job.log`) and the summary.

{chr(10).join(lines)}
- *startup*: process start, imports, validation of the job (no data read), the cluster's start (or the
  connection), until the first line of `job.log`. The local default cluster starts in a process of its
  own (the existing scheduler is connected to) while a thread of the command validates the job and
  reads MNIST, so all of these are part of it;
- *load data*, *evaluate*, *outputs*: the job's phases from `metrics.json` (*load data* is ~0 when the
  command read the data during the start; outputs: `labels.zarr`, `model.zip`, three PNG plots,
  `metrics.json`, written while a local cluster shuts down in the background);
- *after the job*: the summary, the rest of the cluster's shutdown and the end of the process.

Before the changes of this round (2026-12-05 15:24, load 1.8-2.3, the same command with
`--max-rows 10000`): overhead 3.32 s (median; least 3.06) on the local default cluster and 2.52 s
(least 2.29) on an existing scheduler, against the bare script's 4.08 / 2.46 s; at 12:43, before the
round before (quiet, load 0.5-2.2): 5.31 s and 3.76 s.

## What the command does to stay short

- `import daskcluster.cli` imports no library (argparse only); each command imports what it needs
  when it runs (`daskcluster/cli/*.py`, `daskcluster/jobs/*.py`: imports inside the functions), and
  `daskcluster.deploy` loads its names on first use;
- the local default cluster (a config of kind `local` too) is hosted by a child process
  (`daskcluster/deploy/local_process.py`): its scheduler, dashboard (bokeh, pandas) and nannies
  import and start on the other core while the command validates the job and reads MNIST, where
  they used to take turns with them under the command's interpreter lock. The child holds the
  cluster until the command closes its standard input (or dies), and ignores Ctrl-C, which the
  command handles. An existing scheduler is connected to while the job is validated
  (`daskcluster.deploy.lifetime.starts_before_validation`: only for clusters made of the command's
  own processes; batch, gateway and Kubernetes clusters start only once the job is valid);
- Dask's arrays are imported without xarray and pydata sparse, and scikit-learn without pandas and
  pyarrow (`daskcluster.cli.jobs.import_for_jobs`, by `daskcluster._lazy.import_without`): Dask loads
  them only to recognise their types, which no job has, and scikit-learn's `sklearn.utils.fixes`
  imports pandas without using it;
- MNIST with `data.max_rows` is decompressed only as far as those rows (`load_mnist_npz(max_rows=)`);
- matplotlib is imported while the fit's passes run on the workers
  (`daskcluster._lazy.import_in_background`), not while the cluster starts;
- the outputs that need no cluster (model file, plots, `metrics.json`) are written while the local
  cluster shuts down in the background (`ClusterLifetime.release`);
- the process ends without the interpreter's module teardown (`daskcluster.cli._end_process`).

## Where the overhead goes

The command's pieces one after the other in one fresh process (median of 3 processes), wall and
CPU seconds of that process. The local cluster's process starts in the second piece and starts
the scheduler, the dashboard and the workers beside the next pieces (on the other core: its CPU
seconds are the last row), so the wait for it is what is left of its start. The plots
themselves, the labels and the model file are *outputs* above.

| piece | wall (s) | CPU (s) |
| --- | --- | --- |
{table}
"""


#: Everything from this line on in RESULTS-jobs.md (dated notes on earlier rounds) is kept by a rerun.
NOTES_MARK = "<!-- notes below are kept when bench_jobs.py rewrites this file -->"


def kept_notes() -> str:
    """The dated notes at the end of the current report, to be kept by a rerun."""
    try:
        text = OUTPUT.read_text()
    except OSError:
        return ""
    i = text.find(NOTES_MARK)
    return "" if i < 0 else "\n" + text[i:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds (default: 3)")
    parser.add_argument("--max-rows", type=int, default=None,
                        help="fit the first N rows of MNIST only (the overhead is what is measured; a loaded "
                             "machine makes the full fit slow)")
    parser.add_argument("--quick", action="store_true", help="1 round on 10,000 rows; writes nothing")
    args = parser.parse_args()
    max_rows = 10_000 if args.quick else args.max_rows
    extra = ["--set", f"data.max_rows={max_rows}"] if max_rows else []
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in ("local", "scheduler", "bare-local", "bare-scheduler")}
    with existing_scheduler() as address:
        for i in range(1 if args.quick else args.repeats):
            for setting, run in (("local", lambda: run_command(extra)),
                                 ("scheduler", lambda: run_command([*extra, "--scheduler", address])),
                                 ("bare-local", lambda: run_bare("local", max_rows)),
                                 ("bare-scheduler", lambda: run_bare(address, max_rows))):
                r = run()
                runs[setting].append(r)
                print(f"round {i + 1} {setting:<14}: whole {r['wall']:.2f}s fit {r['fit']:.2f}s overhead "
                      f"{r['overhead']:.2f}s (load avg {r['loadavg']:.1f})", flush=True)
    if args.quick:
        return
    command = "python benchmarks/bench_jobs.py" + (f" --repeats {args.repeats}" if args.repeats != 3 else "") + (
        f" --max-rows {max_rows}" if max_rows else "")
    pieces = parts([a for a in extra if a != "--set"])
    for k, (w, c) in pieces.items():
        print(f"  {k}: {w:.2f}s wall, {c:.2f}s CPU")
    OUTPUT.write_text(markdown(runs, command, pieces, max_rows) + kept_notes())
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
