"""Overhead of the ``daskcluster`` command: ``daskcluster run`` of the MNIST workflow on the
local default cluster, whole command vs the fit inside it.

Run from the project root::

    python benchmarks/bench_jobs.py                 # 3 runs, writes benchmarks/RESULTS-jobs.md
    python benchmarks/bench_jobs.py --repeats 5
    python benchmarks/bench_jobs.py --quick         # 1 run on 10,000 rows, writes nothing

Each run is a fresh process, exactly what a user types::

    python -m daskcluster run workflows/mnist_kmeans.yaml --out <tmp> --no-progress

and is timed from before the process starts to after it exits (``time.perf_counter`` around
``subprocess.run``). The fit time and the job's own phases come from the ``metrics.json``
the run writes (``seconds``: load, fit, evaluate, outputs, total). The rest splits into

* startup: process start, imports, validation and the cluster's start (wall clock from the
  launch to the first line of ``job.log``);
* after the job: the summary, shutting the cluster down and the interpreter's exit (wall clock
  from ``metrics.json`` being written to the process's end).

Overhead = whole command - fit. Target: < 3 s. The machine's load average is recorded with
each run, since other processes on a shared machine inflate every phase.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUTPUT = HERE / "RESULTS-jobs.md"
WORKFLOW = "workflows/mnist_kmeans.yaml"
TARGET_OVERHEAD = 3.0


def _log_start(log: Path) -> float:
    """Epoch seconds of the first line of job.log ("2026-11-23 22:21:06,239 ...")."""
    first = log.read_text().splitlines()[0]
    stamp = _dt.datetime.strptime(first[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp()


def one_run(extra: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "daskcluster", "run", WORKFLOW, "--out", str(out), "--no-progress", *extra]
        load = os.getloadavg()[0]
        t_launch = time.time()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        t_exit = time.time()
        if proc.returncode != 0:
            raise SystemExit(f"run failed ({proc.returncode}):\n{proc.stderr}")
        doc = json.loads((out / "metrics.json").read_text())
        s = doc["seconds"]
        startup = _log_start(out / "job.log") - t_launch
        after = t_exit - (out / "metrics.json").stat().st_mtime
        return {
            "wall": wall, "fit": s["fit"], "overhead": wall - s["fit"], "startup": startup, "load": s["load"],
            "evaluate": s["evaluate"], "outputs": s["outputs"], "after": after, "n_iter": doc["model"]["n_iter_"],
            "n_samples": doc["data"]["n_samples"], "loadavg": load, "workers": doc["cluster"].get("n_workers", 0),
        }


_PARTS_SCRIPT = """
import json, sys, time
t = [time.perf_counter()]
from daskcluster.jobs import check_job, load_job
job = load_job("workflows/mnist_kmeans.yaml"); check_job(job); t.append(time.perf_counter())
from daskcluster.jobs.sources import load
load(job.resolved().data); t.append(time.perf_counter())
import matplotlib.figure, matplotlib.backends.backend_agg; t.append(time.perf_counter())
from daskcluster.deploy import deploy
if __name__ == "__main__":
    with deploy() as d:
        t.append(time.perf_counter())
    t.append(time.perf_counter())
    print(json.dumps([b - a for a, b in zip(t, t[1:])]))
"""
_PARTS = (
    "validate the job (imports of pydantic, scikit-learn, Dask; schema; KMeans' checks)",
    "read MNIST",
    "import matplotlib (for the plots)",
    "start the local default cluster",
    "stop it",
)


def parts() -> dict[str, float]:
    """The pieces of the overhead one after the other in one fresh process (median of 3 processes)."""
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", _PARTS_SCRIPT], cwd=ROOT, check=True, capture_output=True,
                             text=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {name: statistics.median(r[i] for r in runs) for i, name in enumerate(_PARTS)}


def markdown(runs: list[dict[str, float]], command: str, pieces: dict[str, float]) -> str:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    rows = "\n".join(
        f"| {i + 1} | {r['wall']:.2f} | {r['fit']:.2f} | {r['overhead']:.2f} | {r['startup']:.2f} | {r['load']:.2f} | "
        f"{r['evaluate']:.2f} | {r['outputs']:.2f} | {r['after']:.2f} | {int(r['n_iter'])} | {r['loadavg']:.1f} |"
        for i, r in enumerate(runs)
    )
    verdict = "meets" if med("overhead") < TARGET_OVERHEAD else "misses"
    table = "\n".join(f"| {k} | {v:.2f} |" for k, v in pieces.items())
    return f"""# `daskcluster run`: whole command vs fit (issue: jobs)

Measured {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} on {platform.node()} ({os.cpu_count()} CPUs,
Python {platform.python_version()}, {platform.platform()}), {len(runs)} run(s), each a fresh process.

Command (from the project root):

```bash
{command}
```

which runs, for every repeat:

```bash
python -m daskcluster run {WORKFLOW} --out <temporary folder> --no-progress
```

MNIST ({int(runs[0]['n_samples']):,} x 784 uint8, read as x/255), `KMeans(n_clusters=10, random_state=0)`,
on the local default cluster (a `LocalCluster` of {int(runs[0]['workers'])} worker processes).

| run | whole command (s) | fit (s) | overhead (s) | startup (s) | load data (s) | evaluate (s) | outputs (s) | after the job (s) | n_iter | load avg |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{rows}

**Median overhead (whole command - fit): {med('overhead'):.2f} s** — {verdict} the target of < {TARGET_OVERHEAD:.0f} s
(least: {min(r['overhead'] for r in runs):.2f} s). Median whole command {med('wall'):.2f} s, fit {med('fit'):.2f} s.

- *startup*: process start, imports, validation of the job (no data read), the cluster's start, until the
  first line of `job.log`. While the cluster starts, a thread of the command reads MNIST and imports
  matplotlib, so reading the data is part of it;
- *load data*, *evaluate*, *outputs*: the job's phases from `metrics.json` (*load data* is ~0 when the
  command read the data during the start; outputs: `labels.zarr`, `model.zip`, three PNG plots,
  `metrics.json`, written while the cluster shuts down in the background);
- *after the job*: the summary, the rest of the cluster's shutdown and the end of the process (which
  skips the interpreter's teardown of the scientific stack once everything is closed).

"load avg" is the 1-minute load average when the run started; on a shared machine other processes
inflate every phase (fit included).

Where the overhead goes: the pieces one after the other in one fresh process (median of 3
processes). The command does them in this order, except that it starts the cluster while a thread
reads MNIST and imports matplotlib; the plots themselves, the labels and the model file are
*outputs* above.

| piece | seconds |
| --- | --- |
{table}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 run on 10,000 rows; writes nothing")
    args = parser.parse_args()
    extra = ["--set", "data.max_rows=10000"] if args.quick else []
    runs = []
    for i in range(1 if args.quick else args.repeats):
        r = one_run(extra)
        print(f"run {i + 1}: whole {r['wall']:.2f}s fit {r['fit']:.2f}s overhead {r['overhead']:.2f}s "
              f"(startup {r['startup']:.2f}, load {r['load']:.2f}, evaluate {r['evaluate']:.2f}, "
              f"outputs {r['outputs']:.2f}, after {r['after']:.2f}; load avg {r['loadavg']:.1f})", flush=True)
        runs.append(r)
    if args.quick:
        return
    command = "python benchmarks/bench_jobs.py" + (f" --repeats {args.repeats}" if args.repeats != 3 else "")
    pieces = parts()
    for k, v in pieces.items():
        print(f"  {k}: {v:.2f}s")
    OUTPUT.write_text(markdown(runs, command, pieces))
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
