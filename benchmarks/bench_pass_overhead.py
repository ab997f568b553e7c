"""What an in-memory KMeans iteration costs beyond its kernel, on a LocalCluster, with dask-ml alongside.

    python benchmarks/bench_pass_overhead.py                       # 262,144 x 784 float32, 4/16/64 chunks
    python benchmarks/bench_pass_overhead.py --chunks 16 --no-dask-ml --repeats 5

Data: ``--rows`` rows of 784 uniform float32 values in [0, 1) (the scale of MNIST / 255), persisted
on ``LocalCluster(2 workers x 1 thread, 2 GiB)`` in 4, 16 and 64 chunks, in two layouts:
``persist`` (where ``persist`` puts the chunks of a generated array) and ``alternating`` (chunk
``i`` scattered to worker ``i % 2``: no worker holds a whole subtree of the reduction, the case
where the nodes of both workers must meet somewhere).

For each case, per iteration of ``KMeans(10, init=given rows, n_init=1, tol=0)``:

``ours``
    (fit(max_iter=N) - fit(max_iter=1)) / (N - 1), the least of ``--repeats`` (``--iters`` N);
    the client's CPU (``time.process_time``: the client and the in-process scheduler) and the
    workers' CPU (``psutil``) over the same difference; the tasks a pass submits (counted from
    the graph handed to ``Client.get``, futures excluded).
``ours, combine tasks``
    The same, with ``daskcluster.engine.passes.CLIENT_BYTES = 0``: the client combines at most
    ``split_every`` parts and the nodes above the workers' subtrees are combine tasks on the
    workers, as every pass did before the bound (alternated with ``ours`` in one process).
``kernel``
    The sweep kernel of the same Lloyd step on each worker's chunks, both workers at once
    (``client.run``), as a pass runs it: the CPU (``time.thread_time``, least of ``--repeats``)
    of the slower worker (the pass's critical path, robust to the load where its wall time is
    not) and of both. ``beyond kernel`` is ``ours`` minus the slower worker's kernel CPU:
    scheduling, the reduction, the client's work, the gaps, and what the load adds to the wall.
``dask-ml``
    ``dask_ml.cluster.KMeans(10, init=the same rows, tol=0)`` on the same persisted array,
    (fit(max_iter=6) - fit(max_iter=1)) / 5, least of ``--repeats`` (as ``bench_mnist8m.py``).

The machine (CPU, BLAS, load average before and after each row) is printed with the table; on a
shared machine the wall times are noisy: compare rows measured together, and the CPU columns.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from machine import cpu_model

N_FEATURES = 784
K = 10
#: Iterations of the two dask-ml fits whose difference is timed (as ``bench_mnist8m.py``).
DASK_ML_ITERS = (1, 6)


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def blas() -> str:
    import threadpoolctl

    return ", ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, "
                     f"{p.get('num_threads')} threads)" for p in threadpoolctl.threadpool_info()
                     if p.get("user_api") == "blas")


def _time_kernel(keys: list[Any], params: Any, repeats: int, dask_worker: Any = None) -> tuple[float, float]:
    """On a worker: the sweep kernel over the chunks of ``keys`` this worker holds, in order;
    (wall, thread CPU) seconds of the least of ``repeats`` runs."""
    from daskcluster.kernels import sweep as S
    from daskcluster.kernels.blocks import ChunkInfo

    held = [(i, dask_worker.data[k]) for i, k in enumerate(keys) if k in dask_worker.data]
    best = (np.inf, np.inf)
    for _ in range(repeats + 1):  # the first run warms the compiled loops
        t0, c0 = time.perf_counter(), time.thread_time()
        for i, block in held:
            S.sweep_kernel(block, None, ChunkInfo(i, 0), params)
        best = min(best, (time.perf_counter() - t0, time.thread_time() - c0))
    return best


class WorkerCPU:
    """CPU seconds of the worker processes (user + system) between two reads."""

    def __init__(self, client: Any) -> None:
        import psutil

        pids = client.run(os.getpid)
        self.procs = [psutil.Process(p) for p in pids.values()]

    def read(self) -> float:
        return sum(p.cpu_times().user + p.cpu_times().system for p in self.procs)


class PassGraphs:
    """Counts the tasks of each graph handed to ``Client.get`` (futures excluded) while active."""

    def __init__(self) -> None:
        self.tasks: list[int] = []

    def __enter__(self) -> PassGraphs:  # noqa: PYI034 - a plain class, never subclassed
        from distributed import Client, Future

        self._real = real = Client.get

        def get(client: Any, dsk: Any, keys: Any, **kwargs: Any) -> Any:
            if isinstance(dsk, dict):
                self.tasks.append(sum(not isinstance(v, Future) for v in dsk.values()))
            return real(client, dsk, keys, **kwargs)

        Client.get = get  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        from distributed import Client

        Client.get = self._real  # type: ignore[method-assign]


def per_iteration(fits: dict[str, tuple[Callable[[int], Any], tuple[int, int]]], repeats: int,
                  cpu: WorkerCPU) -> dict[str, tuple[float, float, float]]:
    """For each named ``fit`` with its iteration counts ``(few, many)``: (wall, client CPU, workers'
    CPU) seconds per iteration, the difference of ``fit(many)`` and ``fit(few)`` over the
    difference of the iterations they made (``n_iter_``: a fit may converge before ``many``),
    each the least of ``repeats`` runs; the fits alternate, so that they share the load."""
    best: dict[tuple[str, int], tuple[float, ...]] = {}
    made: dict[tuple[str, int], int] = {}
    for _ in range(repeats):
        for name, (fit, iters) in fits.items():
            for it in iters:
                gc.collect()
                w0 = cpu.read()
                t0, c0 = time.perf_counter(), time.process_time()
                model = fit(it)
                got = (time.perf_counter() - t0, time.process_time() - c0, cpu.read() - w0)
                best[name, it] = tuple(min(a, b) for a, b in zip(best.get((name, it), got), got))
                made[name, it] = int(np.max(model.n_iter_))
    out = {}
    for name, (_, (few, many)) in fits.items():
        n = made[name, many] - made[name, few]
        if n <= 0:
            raise RuntimeError(f"{name}: fit(max_iter={many}) made no more iterations than fit(max_iter={few})")
        out[name] = tuple((best[name, many][j] - best[name, few][j]) / n for j in range(3))
    return out  # type: ignore[return-value]


def make_data(client: Any, n_rows: int, n_chunks: int, layout: str) -> Any:
    """The persisted array of one case."""
    import dask.array as da
    from distributed import wait

    from daskcluster.engine import held_rows
    from daskcluster.engine.schedule import unique_name

    rows = n_rows // n_chunks
    if layout == "persist":
        X = da.random.default_rng(0).random((rows * n_chunks, N_FEATURES), chunks=(rows, N_FEATURES),
                                            dtype=np.float32).persist()
    else:
        workers = sorted(client.scheduler_info()["workers"])
        rng = np.random.default_rng(0)
        futures = [client.scatter(rng.random((rows, N_FEATURES), dtype=np.float32),
                                  workers=[workers[i % len(workers)]]) for i in range(n_chunks)]
        X = held_rows(futures, [rows] * n_chunks, N_FEATURES, np.dtype(np.float32), unique_name("alternating"))
    wait(X)
    return X


def run_case(client: Any, cpu: WorkerCPU, args: argparse.Namespace, n_chunks: int, layout: str) -> None:
    """Measure one case (chunks, layout) and print its rows."""
    from daskcluster import KMeans
    from daskcluster.data import as_row_data
    from daskcluster.engine import passes
    from daskcluster.engine.schedule import chunk_futures, chunks_by_worker
    from daskcluster.kernels import sweep as S

    default_bytes = passes.CLIENT_BYTES
    X = make_data(client, args.rows, n_chunks, layout)
    futures = chunk_futures(X, client)
    groups = chunks_by_worker(client, futures) if futures is not None else None
    runs = "runs" if groups and all(g == list(range(g[0], g[-1] + 1)) for g in groups) else "scattered"
    where = f"{'/'.join(str(len(g)) for g in groups or [])}, {runs}"
    init = np.asarray(X[:K].compute(), dtype=np.float32)
    data = as_row_data(X, owner="bench")
    params = S.SweepParams((S.Member(S.LLOYD, init, n_far=K),), data.affine, moments=False)
    keys = [f.key for f in futures] if futures is not None else []

    def ours(max_iter: int) -> Any:
        return KMeans(K, init=init, n_init=1, max_iter=max_iter, tol=0).fit(X)

    ours(2)  # compiled loops and imports on the workers
    load0 = load_avg()
    kernel = client.run(_time_kernel, keys, params, args.repeats)
    k_crit = max(c for _, c in kernel.values())  # the slower worker's kernel CPU: the pass's critical path
    k_cpu = sum(c for _, c in kernel.values())
    tasks = {}
    for variant, client_bytes in (("ours", default_bytes), ("ours, combine tasks", 0)):
        passes.CLIENT_BYTES = client_bytes
        with PassGraphs() as graphs:
            ours(1)
        passes.CLIENT_BYTES = default_bytes
        tasks[variant] = graphs.tasks[-1] if graphs.tasks else 0

    def ours_combine_tasks(max_iter: int) -> Any:
        passes.CLIENT_BYTES = 0
        try:
            return ours(max_iter)
        finally:
            passes.CLIENT_BYTES = default_bytes

    fits: dict[str, tuple[Callable[[int], Any], tuple[int, int]]] = {
        "ours": (ours, (1, args.iters)), "ours, combine tasks": (ours_combine_tasks, (1, args.iters))}
    if not args.no_dask_ml:
        from dask_ml.cluster import KMeans as DaskMLKMeans

        def theirs(max_iter: int) -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return DaskMLKMeans(n_clusters=K, init=init, max_iter=max_iter, tol=0,
                                    random_state=0).fit(X)

        theirs(1)
        fits["dask-ml"] = (theirs, DASK_ML_ITERS)
    results = per_iteration(fits, args.repeats, cpu)
    for variant, (wall, ccpu, wcpu) in results.items():
        if variant == "dask-ml":
            what, ntasks, beyond = f"dask-ml ({wall / results['ours'][0]:.1f}x ours)", "", ""
        else:
            what, ntasks, beyond = variant, str(tasks[variant]), f"{(wall - k_crit) * 1e3:.1f} ms"
        print(f"| {n_chunks} | {layout} | {where} | {what} | {ntasks} | {wall * 1e3:.1f} ms | "
              f"{ccpu * 1e3:.1f} ms | {wcpu * 1e3:.1f} ms | {k_crit * 1e3:.1f} ms "
              f"({k_cpu * 1e3:.0f} CPU-ms both) | {beyond} | {load0}; {load_avg()} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=262_144)
    parser.add_argument("--chunks", default="4,16,64")
    parser.add_argument("--layouts", default="persist,alternating")
    parser.add_argument("--iters", type=int, default=11, help="iterations of the longer fit of ours")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-dask-ml", action="store_true")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    print(f"Command: `python benchmarks/bench_pass_overhead.py {' '.join(sys.argv[1:])}`  ")
    print(f"Run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; CPU {cpu_model()}, {os.cpu_count()} cores; "
          f"BLAS {blas()}; LocalCluster(2 workers x 1 thread, 2 GiB); {args.rows:,} x {N_FEATURES} float32 "
          f"persisted; KMeans({K}), tol=0.\n")
    print("| chunks | layout | placement (chunks a worker) | what | tasks / pass | wall / iteration | "
          "client CPU / it. | workers' CPU / it. | kernel CPU (slower worker) | beyond kernel | load (start; end) |")
    print("| ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        cpu = WorkerCPU(client)
        for layout in [s.strip() for s in args.layouts.split(",") if s.strip()]:
            for n_chunks in [int(c) for c in args.chunks.split(",")]:
                run_case(client, cpu, args, n_chunks, layout)
                client.run(gc.collect)


if __name__ == "__main__":
    main()
