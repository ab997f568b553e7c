"""The engine's per-pass costs that do not depend on cores: the scheduler's, the client's, the tree's.

    python benchmarks/bench_scaling.py [--chunks 100,1000,10000] [--workers 2,8,32] [--ks 10,100,1000]
        [--passes 3] [--rounds 2] [--modes persisted,streamed]
        [--passes-only] [--output benchmarks/RESULTS-scaling.md]

A Lloyd pass of k-means (``tree_reduce`` of the sweep kernel, k centers, d = 784, uint8 rows) over
tiny chunks (8 rows each), so that the kernel's compute is negligible and what is left is the
cost of the pass itself. The cluster is a ``dask scheduler`` process and ``W`` ``dask worker``
processes of one thread each (no nanny, 2 GiB limit), all started by this script, so that each
process's CPU time is read on its own (``psutil``):

* **scheduler** — the scheduler process's CPU seconds per pass, less its idle rate (heartbeats of
  ``W`` workers) measured over 2 s before the cases of that ``W``;
* **client** — this process's CPU seconds per pass (graph building, submission, gathering,
  combining the root; every thread of the process);
* **workers** — the worker processes' CPU seconds per pass, summed, and the tasks' own run time
  from the scheduler's task stream (``Client.get_task_stream``), whose difference is the
  workers' per-task overhead;
* **wall** — seconds per pass.

Data: ``C`` chunks of 8 × 784 ``uint8`` rows (a) **persisted** in the workers' memory (the pass
is one task per worker) and (b) **streamed** from a Zarr store on local disk: one graph of a
task per worker thread over a run of consecutive chunks, their reads inside (and the combine
tasks above the runs when they would give the client more than 8 parts). (Streamed passes ran
as one ``Client.submit`` per chunk before they ran as runs: RESULTS-scaling.md keeps that
path's figures, measured beside the runs in one run.) Cases of one ``W`` alternate round by
round; tables give the least and the median over every timed pass (after one untimed pass per
case).

**Read-ahead share**: at the first ``W``, a streamed ``KMeans(8, max_iter=5, tol=0,
cache=False)`` fit of a store of 48 chunks of 2,000 rows, with runs and per chunk: the chunks
the workers' tasks took from a read-ahead against those they read themselves.

Then, at the middle ``W``:

* **k**: the bytes of one chunk's Lloyd statistics for each k (counted: the arrays' ``nbytes``),
  the tree's depth and node count, and how many parts and bytes the client received and
  combined per pass (counted by a ``combine`` that records what it is given in this process);
* **rows**: the same pass with 8 and 2,000 rows per chunk (100 chunks): the client's CPU per
  pass and the bytes it received, which must not grow with the rows;
* **client per iteration**: a ``KMeans(k, init=centers, max_iter=5, tol=0)`` fit on the
  persisted chunks under ``cProfile`` (this process's main thread): time in graph building,
  waiting for the scheduler, combining the root and the centers' update.

A least-squares fit of ``a + b·chunks + c·W`` to the scheduler's and the client's CPU per pass
and to the wall time is printed with the tables (for ``docs/scaling.md``). Prints Markdown; with
``--output`` the file is written atomically.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))  # the project's own daskcluster, as for the workers
from bench_kmeans import cpu_model, git_commit, load_avg, versions

N_FEATURES = 784
ROWS_PER_CHUNK = 8
WORKER_MEMORY = "2GiB"
#: Memory a worker takes once the kernels are loaded (numba's compiled code included), measured
#: ~450 MB; a worker count that would leave less than 4 GB of the machine's memory free is skipped.
WORKER_RSS = 500e6

#: What ``counting_combine`` saw in this process (the client); workers import this module with
#: ``_IS_CLIENT`` False and record nothing.
_IS_CLIENT = False
_client_log: list[tuple[int, int]] = []


def stats_nbytes(obj: Any) -> int:
    """Bytes of the NumPy arrays (and 8 per scalar) inside nested statistics dataclasses and lists."""
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if is_dataclass(obj):
        return sum(stats_nbytes(getattr(obj, f.name)) for f in fields(obj))
    if isinstance(obj, (list, tuple)):
        return sum(stats_nbytes(o) for o in obj)
    if isinstance(obj, (int, float)):
        return 8
    return 0


def counting_combine(parts: list[Any], members: tuple[tuple[str, float, int], ...]) -> Any:
    """The sweep's combine, recording in the client process how many parts it combines and their bytes."""
    from daskcluster.kernels.sweep import combine_sweep

    if _IS_CLIENT:
        _client_log.append((len(parts), sum(stats_nbytes(p) for p in parts)))
    return combine_sweep(parts, members)


# --------------------------------------------------------------------------- the cluster


class Cluster:
    """A ``dask scheduler`` and ``dask worker`` processes started here, stopped by their ids."""

    def __init__(self, folder: str) -> None:
        self.file = os.path.join(folder, "scheduler.json")
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
                        OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.scheduler = subprocess.Popen(
            ["dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
             self.file], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.workers: list[subprocess.Popen[bytes]] = []
        for _ in range(600):
            if os.path.exists(self.file):
                break
            time.sleep(0.1)
        from distributed import Client

        self.client = Client(scheduler_file=self.file)

    def scale(self, n: int) -> None:
        while len(self.workers) < n:
            self.workers.append(subprocess.Popen(
                ["dask", "worker", "--scheduler-file", self.file, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                 "--death-timeout", "60",
                 "--memory-limit", WORKER_MEMORY], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.client.wait_for_workers(n, timeout=600)
        self.client.run(warm_up)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        for p in [*self.workers, self.scheduler]:
            p.terminate()
        for p in [*self.workers, self.scheduler]:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def warm_up() -> None:
    """Import the kernels in a worker (and load their compiled code) before anything is timed."""
    import daskcluster.kernels.sweep  # noqa: F401


def cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


# --------------------------------------------------------------------------- the pass


def make_store(folder: str, n_chunks: int, rows: int) -> str:
    """A Zarr store of ``n_chunks`` chunks of ``rows`` × 784 uint8 (digit-like random bytes)."""
    import zarr

    path = os.path.join(folder, f"x-{n_chunks}-{rows}.zarr")
    if not os.path.exists(path):
        z = zarr.create_array(path, shape=(n_chunks * rows, N_FEATURES), chunks=(rows, N_FEATURES), dtype="uint8")
        z[:] = np.random.default_rng(0).integers(0, 256, size=z.shape, dtype=np.uint8)
    return path


def open_data(path: str, persisted: bool, client: Any) -> Any:
    import dask.array as da

    from daskcluster.data import as_row_data

    X = da.from_zarr(path)
    if persisted:
        X = client.persist(X)
        from distributed import wait

        wait(X)
    return as_row_data(X, owner="bench")


def lloyd_pass(data: Any, centers: np.ndarray) -> Any:
    """One Lloyd pass of the k-means driver (counts, sums, inertia, the k farthest rows)."""
    from daskcluster.engine import tree_reduce
    from daskcluster.kernels import sweep as S

    k = len(centers)
    members = (S.Member(S.LLOYD, centers, n_far=k),)
    combine = partial(counting_combine, members=((S.LLOYD, 0.0, k),))
    return tree_reduce(data, S.sweep_kernel, S.SweepParams(members, data.affine), combine, label="lloyd")


def read_ahead_share(cluster: Cluster, folder: str) -> dict[str, tuple[int, int, int]]:
    """Chunks taken from a read-ahead and read by their own task in a streamed KMeans fit:
    ``{"streamed": (ahead, own, passes)}``."""
    import dask.array as da

    from daskcluster import KMeans
    from daskcluster.engine import count_passes, readahead

    path = make_store(folder, 48, 2000)
    X = da.from_zarr(path)
    init = np.asarray(X[:8]).astype(np.float64)
    out = {}
    for mode in ("streamed",):
        before = cluster.client.run(readahead.counts)
        with count_passes() as counter:
            KMeans(8, init=init, n_init=1, max_iter=5, tol=0.0, cache=False).fit(X)
        after = cluster.client.run(readahead.counts)
        out[mode] = (sum(after[w]["ahead"] - before[w]["ahead"] for w in after),
                     sum(after[w]["own"] - before[w]["own"] for w in after), counter.passes)
    return out


def chunk_stats_nbytes(k: int, rows: int) -> int:
    """Bytes of one chunk's Lloyd statistics (k centers, d = 784), computed here on ``rows`` rows."""
    from daskcluster.data import as_row_data
    from daskcluster.kernels import sweep as S
    from daskcluster.kernels.blocks import ChunkInfo

    block = np.random.default_rng(2).integers(0, 256, size=(rows, N_FEATURES), dtype=np.uint8)
    members = (S.Member(S.LLOYD, centers_of(k), n_far=k),)
    params = S.SweepParams(members, as_row_data(block, owner="bench").affine)
    return stats_nbytes(S.sweep_kernel(block, None, ChunkInfo(0, 0), params))


def centers_of(k: int) -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 255, size=(k, N_FEATURES))


@dataclass
class Samples:
    """Per-pass samples of one case."""

    wall: list[float] = field(default_factory=list)
    scheduler: list[float] = field(default_factory=list)
    client: list[float] = field(default_factory=list)
    workers: list[float] = field(default_factory=list)
    tasks: int = 0
    task_seconds: float = 0.0
    client_parts: int = 0
    client_bytes: int = 0


def timed_passes(cluster: Cluster, run: Callable[[], Any], passes: int, idle: float, out: Samples) -> None:
    sched = [cluster.scheduler.pid]
    workers = [p.pid for p in cluster.workers]
    for _ in range(passes):
        _client_log.clear()
        s0, w0, c0, t0 = cpu_seconds(sched), cpu_seconds(workers), time.process_time(), time.perf_counter()
        run()
        wall = time.perf_counter() - t0
        out.wall.append(wall)
        out.client.append(time.process_time() - c0)
        out.scheduler.append(max(cpu_seconds(sched) - s0 - idle * wall, 0.0))
        out.workers.append(cpu_seconds(workers) - w0)
        out.client_parts = sum(n for n, _ in _client_log)
        out.client_bytes = sum(b for _, b in _client_log)


def count_tasks(cluster: Cluster, run: Callable[[], Any], out: Samples) -> None:
    """Tasks per pass and their run time on the workers, from the scheduler's task stream."""
    from distributed import get_task_stream

    with get_task_stream(client=cluster.client) as ts:
        run()
    out.tasks = len(ts.data)
    out.task_seconds = sum(s["stop"] - s["start"] for t in ts.data for s in t["startstops"] if s["action"] == "compute")


def idle_rate(cluster: Cluster, seconds: float = 2.0) -> float:
    s0, t0 = cpu_seconds([cluster.scheduler.pid]), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds([cluster.scheduler.pid]) - s0) / (time.perf_counter() - t0)


def lstsq(columns: list[list[float]], y: list[float]) -> np.ndarray:
    A = np.column_stack([np.ones(len(y)), *columns])
    return np.linalg.lstsq(A, np.asarray(y), rcond=None)[0]


# --------------------------------------------------------------------------- the client per iteration


def profile_fit(data: Any, k: int, iterations: int) -> dict[str, float]:
    """Seconds per iteration of the client's main thread in a KMeans fit, by what it does."""
    from daskcluster import KMeans

    km = KMeans(k, init=centers_of(k), n_init=1, max_iter=iterations, tol=0.0)
    from daskcluster.engine import count_passes

    prof = cProfile.Profile()
    t0 = time.perf_counter()
    with count_passes() as counter:
        prof.enable()
        km.fit(data.array)
        prof.disable()
    wall = time.perf_counter() - t0
    st = pstats.Stats(prof)

    def cum(path: str, function: str) -> float:
        return sum(v[3] for key, v in st.stats.items()  # type: ignore[attr-defined]
                   if key[0].endswith(path) and key[2] == function)

    passes = counter.passes
    wait = cum("distributed/client.py", "get")
    combine = cum("engine/passes.py", "_combine_top") + cum("engine/tree.py", "evaluate")
    placement = cum("engine/schedule.py", "placement")
    passes_total = cum("engine/passes.py", "tree_reduce")
    update = cum("cluster/_lloyd.py", "lloyd_update")
    return {
        "wall": wall / passes,
        "pass (tree_reduce)": passes_total / passes,
        "waiting for the cluster (Client.get)": wait / passes,
        "placement (who_has, cached 2 s)": placement / passes,
        "combining on the client": combine / passes,
        "graph building and the rest of the pass": (passes_total - wait - combine - placement) / passes,
        "centers update (lloyd_update)": update / passes,
        "outside the passes (driver, checks)": (wall - passes_total - update) / passes,
        "_passes": float(passes),
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    import bench_scaling  # this module under its own name: its functions pickle by reference for the workers

    bench_scaling._IS_CLIENT = True
    return bench_scaling.run(argv)


def run(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chunks", default="100,1000,10000")
    p.add_argument("--streamed-chunks", default=None,
                   help="chunk counts of the streamed cases (default: those of --chunks)")
    p.add_argument("--workers", default="2,8,32")
    p.add_argument("--ks", default="10,100,1000")
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--modes", default="persisted,streamed")
    p.add_argument("--passes-only", action="store_true",
                   help="only the per-pass table and the read-ahead share (no k, rows or client sections)")
    p.add_argument("--output", default=None)
    args = p.parse_args(argv)
    modes = args.modes.split(",")
    chunk_counts = [int(c) for c in args.chunks.split(",")]
    streamed_counts = chunk_counts if args.streamed_chunks is None else [int(c) for c in args.streamed_chunks.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]
    ks = [int(k) for k in args.ks.split(",")]
    t_start, load_start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), load_avg()
    folder = tempfile.mkdtemp(prefix="bench-scaling-")
    results: dict[tuple[int, int, str], Samples] = {}
    ktable: list[tuple[int, str, Samples, int, int]] = []
    rtable: list[tuple[int, str, Samples]] = []
    profiles: dict[int, dict[str, float]] = {}
    shares: dict[str, tuple[int, int, int]] = {}
    loads = [load_start]
    text = ""
    cluster = Cluster(folder)
    try:
        paths = {c: make_store(folder, c, ROWS_PER_CHUNK) for c in chunk_counts}
        centers = centers_of(10)
        import psutil

        for W in worker_counts:
            if psutil.virtual_memory().available - (W - len(cluster.workers)) * WORKER_RSS < 4e9:
                print(f"{W} workers skipped: not enough free memory", file=sys.stderr, flush=True)
                continue
            cluster.scale(W)
            idle = idle_rate(cluster)
            print(f"{W} workers: scheduler idle {idle * 1e3:.1f} ms CPU/s, load {load_avg()}", file=sys.stderr,
                  flush=True)
            cases = {}
            if not shares:
                shares.update(read_ahead_share(cluster, folder))
                print(f"read-ahead share: {shares}", file=sys.stderr, flush=True)
            for c in chunk_counts:
                for mode in modes:
                    if mode == "streamed" and c not in streamed_counts:
                        continue
                    data = open_data(paths[c], mode == "persisted", cluster.client)
                    cases[(W, c, mode)] = (data, partial(lloyd_pass, data, centers))
                    results[(W, c, mode)] = Samples()
                    cases[(W, c, mode)][1]()  # untimed
                    count_tasks(cluster, cases[(W, c, mode)][1], results[(W, c, mode)])
            for r in range(args.rounds):
                for key, (_, fn) in cases.items():
                    timed_passes(cluster, fn, args.passes, idle, results[key])
                    s = results[key]
                    print(f"round {r}: W={W} chunks={key[1]} {key[2]}: wall {s.wall[-1]:.3f} s, scheduler "
                          f"{s.scheduler[-1]:.3f} s, client {s.client[-1]:.3f} s, load {load_avg()}",
                          file=sys.stderr, flush=True)
            loads.append(load_avg())
            # the k, rows and client sections compare persisted and streamed passes at the middle
            # chunk count: they need both modes among the cases
            extras = {(W, chunk_counts[len(chunk_counts) // 2], m) for m in ("persisted", "streamed")} <= set(cases)
            if W == worker_counts[len(worker_counts) // 2] and not args.passes_only and extras:
                mid = chunk_counts[len(chunk_counts) // 2]
                for k in ks:
                    for mode in ("persisted", "streamed"):
                        data = cases[(W, mid, mode)][0]
                        fn = partial(lloyd_pass, data, centers_of(k))
                        fn()
                        s = Samples()
                        timed_passes(cluster, fn, args.passes, idle, s)
                        ktable.append((k, mode, s, chunk_stats_nbytes(k, ROWS_PER_CHUNK), chunk_stats_nbytes(k, k)))
                        print(f"k={k} {mode}: client received {s.client_parts} parts", file=sys.stderr, flush=True)
                for rows in (ROWS_PER_CHUNK, 2000):
                    path = make_store(folder, 100, rows)
                    for mode in ("persisted", "streamed"):
                        data = open_data(path, mode == "persisted", cluster.client)
                        fn = partial(lloyd_pass, data, centers)
                        fn()
                        s = Samples()
                        for _ in range(args.rounds):
                            timed_passes(cluster, fn, args.passes, idle, s)
                        rtable.append((rows, mode, s))
                        del data
                data = cases[(W, mid, "persisted")][0]
                for k in (k for k in (10, 1000) if k <= data.n_samples):  # a fit needs n_samples >= k
                    profile_fit(data, k, 1)  # untimed: first-call costs
                    profiles[k] = profile_fit(data, k, 5)
            del cases
            # the report so far, after each worker count (a long run stopped early keeps its tables)
            text = report(args, argv, t_start, loads, results, ktable, rtable, profiles, chunk_counts, worker_counts,
                          shares)
            if args.output:
                from daskcluster.atomic import write_bytes

                write_bytes(args.output, (text + "\n").encode())
    finally:
        cluster.close()
        shutil.rmtree(folder, ignore_errors=True)
    print(text, flush=True)
    return 0


def ms(values: list[float], scale: float = 1.0) -> str:
    return f"{min(values) * 1e3 / scale:.2f} / {statistics.median(values) * 1e3 / scale:.2f}"


def report(args: Any, argv: list[str] | None, t_start: str, loads: list[str], results: dict[tuple[int, int, str], Samples],
           ktable: list[tuple[int, str, Samples, int, int]], rtable: list[tuple[int, str, Samples]],
           profiles: dict[int, dict[str, float]], chunk_counts: list[int], worker_counts: list[int],
           shares: dict[str, tuple[int, int, int]]) -> str:
    from threadpoolctl import threadpool_info

    from daskcluster.engine.tree import tree_widths

    blas = "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} ({i.get('num_threads')} "
                     "threads)" for i in threadpool_info())
    out = [
        "# Per-pass costs of the engine: scheduler, client, tree",
        "",
        "Command (from the project root):",
        "",
        "    python " + " ".join(["benchmarks/bench_scaling.py", *(argv if argv is not None else sys.argv[1:])]),
        "",
        (f"Run {t_start}; machine: {cpu_model()}, {os.cpu_count()} CPUs; BLAS: {blas}; {versions()}; commit "
         f"{git_commit()}. Load average at the start and after each worker count: {' → '.join(loads)} (end "
         f"{load_avg()}). A `dask scheduler` process and W `dask worker` processes (1 thread, no nanny, "
         f"{WORKER_MEMORY}) on this 2-core machine; a Lloyd pass (k = 10, d = 784) over chunks of "
         f"{ROWS_PER_CHUNK} uint8 rows; {args.rounds} rounds × {args.passes} passes per case, cases alternated; "
         "least / median. CPU times per process (psutil), the scheduler's less its idle rate."),
        "",
        "## Per pass, by chunks and workers",
        "",
        ("| W | chunks | data | tasks / pass | wall ms | scheduler CPU ms | scheduler µs / chunk | client CPU ms "
         "| workers CPU ms | tasks' run ms (task stream) |"),
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (W, c, mode), s in results.items():
        out.append(f"| {W} | {c:,} | {mode} | {s.tasks:,} | {ms(s.wall)} | {ms(s.scheduler)} | "
                   f"{min(s.scheduler) * 1e6 / c:.0f} / {statistics.median(s.scheduler) * 1e6 / c:.0f} | {ms(s.client)} | "
                   f"{ms(s.workers)} | {s.task_seconds * 1e3:.1f} |")
    out += ["", "Least-squares fits on the medians (seconds per pass):", ""]
    for mode in ("persisted", "streamed"):
        keys = [key for key in results if key[2] == mode]
        med = {key: {f: statistics.median(getattr(results[key], f)) for f in ("wall", "scheduler", "client")}
               for key in keys}
        if len({key[1] for key in keys}) < 2 or len({key[0] for key in keys}) < 2:
            continue  # one chunk count or one worker count: nothing to fit
        for what in ("scheduler", "client", "wall"):
            a, b, c = lstsq([[float(key[1]) for key in keys], [float(key[0]) for key in keys]],
                            [med[key][what] for key in keys])
            out.append(f"- {mode}: {what} = {a * 1e3:.2f} ms + {b * 1e6:.0f} µs × chunks + {c * 1e3:.2f} ms × W")
    if shares:
        out += ["", f"Read-ahead share (streamed KMeans fit, 48 chunks of 2,000 rows, {worker_counts[0]} workers):", ""]
        for mode, (ahead, own, passes) in shares.items():
            out.append(f"- {mode}: {ahead} chunks from a read-ahead, {own} read by their own task, {passes} passes "
                       f"({ahead / max(ahead + own, 1):.1%} read ahead)")
    if args.passes_only:
        return "\n".join(out)
    out += [
        "",
        "## The tree and what reaches the client, by k (d = 784)",
        "",
        "Depth and nodes of the tree for the chunk counts above (fan-in 8): "
        + "; ".join(f"{c:,} chunks: depth {len(tree_widths(c, 8)) - 1}, {sum(tree_widths(c, 8)[1:]):,} combine nodes"
                    for c in chunk_counts) + ".",
        "",
        (f"| k | data | one chunk's statistics ({ROWS_PER_CHUNK} rows) | (≥ k rows) | parts the client combined / "
         "pass | bytes the client combined / pass | wall ms | client CPU ms |"),
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for k, mode, s, nbytes, full in ktable:
        out.append(f"| {k:,} | {mode} | {nbytes / 1e6:.3f} MB | {full / 1e6:.3f} MB | {s.client_parts} | "
                   f"{s.client_bytes / 1e6:.2f} MB | "
                   f"{ms(s.wall)} | {ms(s.client)} |")
    out += [
        "",
        "## Does the client's work grow with the rows? (100 chunks, k = 10)",
        "",
        "| rows / chunk | data | client CPU ms | bytes the client combined / pass | wall ms |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for rows, mode, s in rtable:
        out.append(f"| {rows:,} | {mode} | {ms(s.client)} | {s.client_bytes / 1e6:.3f} MB | {ms(s.wall)} |")
    if profiles:
        out += ["", "## The client's main thread per iteration of a KMeans fit (persisted chunks, cProfile)", "",
                "| ms per pass | " + " | ".join(f"k = {k:,}" for k in profiles) + " |",
                "| --- | " + " | ".join("---:" for _ in profiles) + " |"]
        for what in next(iter(profiles.values())):
            if not what.startswith("_"):
                out.append(f"| {what} | " + " | ".join(f"{p[what] * 1e3:.2f}" for p in profiles.values()) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
