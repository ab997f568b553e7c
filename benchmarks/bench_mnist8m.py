"""Clustering MNIST8M out of core: read floor, streamed passes, fits to convergence, dask-ml alongside.

Run from the project root::

    python benchmarks/bench_mnist8m.py --dir /tmp/m8                      # everything, 8.1 M rows
    python benchmarks/bench_mnist8m.py --dir /tmp/m8 --generate-only      # the store only (~10+ min)
    python benchmarks/bench_mnist8m.py --dir /tmp/m8 --n 300000 --sections floor,passes,dask-ml   # a smoke run

The store ``DIR/mnist8100000.zarr`` holds 8.1 M deformed digits (``make_infinite_mnist``, real MNIST
base, ``random_state=0``, the default layout of :mod:`daskcluster.storage`); it is generated when
absent (on a 2-worker LocalCluster; its time is printed). ``--n`` below 8.1 M takes the first
``--n`` rows of it (every smaller size made by the generator is a prefix of a larger one).

Every section runs on ``LocalCluster(n_workers=2, threads_per_worker=1, memory_limit="2GiB")``
(``--memory-limit``), streamed (``cache=False``, uint8 rows through ``scaled(X, 1/255)``), and
records wall seconds and the workers' CPU seconds (``psutil``, user + system), so that a run on
a shared machine can still be read. ``--sections`` picks (comma-separated, default all):

``floor``
    The read floor: one pass that reads, decodes and touches every byte (a column-wise max,
    1-4 ms per 25 MB chunk), least of ``--rounds`` passes; and the earlier floor definition
    (a column sum in uint64, ~9 ms per chunk, as large as the decoding itself) for comparison
    with older results.
``passes``
    Seconds per streamed iteration of ``KMeans(10, algorithm="lloyd")`` and ``"elkan"`` from
    given centers (every 800th row; ``max_iter=--iters``, ``tol=0``): the median iteration and
    its ratio to the floor (Elkan's iterations skip distance work once bounds exist; its first
    pass computes them all).
``fit``
    A default ``KMeans(10, random_state=0)`` fitted to convergence end to end (k-means|| seeding
    included), its iterations, inertia, the peak RSS of each worker (sampled from this process
    every 10 ms) and the majority-label accuracy against the digits' labels.
``fit-elkan``
    The same fit with ``algorithm="elkan"`` (distance bounds kept beside the chunks in the
    workers' memory): the same iterations and inertia as ``fit`` up to rounding ties, the median
    iteration's ratio to the floor, the share of the iterations at or under 1.2x the floor, and
    the peak RSS (the bounds add ``16 + 4 k`` bytes a row).
``warm``
    ``KMeans(10, init="mini-batch", random_state=0)`` end to end: time, iterations, inertia and
    its relative difference to the default fit's (when ``fit`` ran).
``gmm``
    ``GaussianMixture(10, covariance_type="diag", init_params="random_from_data",
    reg_covar=1e-3, tol=0, max_iter=--iters)``: the median EM iteration and its ratio to the floor.
``dask-ml``
    ``dask_ml.cluster.KMeans(10, init=given centers)`` on the first ``--dask-ml-rows`` rows,
    persisted in the workers' memory as float32 ``X / 255`` (dask-ml converts its input to
    float and holds it), against ours on the same persisted prefix (``cache=True``): seconds
    per iteration as ``(fit(max_iter=6) - fit(max_iter=1)) / 5`` for both, so that setup work
    cancels, each fit's time the least of :data:`DASK_ML_REPEATS` runs (a busy machine only
    adds time). Not more iterations: from fit(max_iter=11) dask-ml's iteration came out at 3.5-3.8 s
    against 1.36 s from fit(max_iter=6), while its fit(max_iter=1) was only 1.2-1.4x slower
    than in a quiet run: its later iterations seem slower (its workers near their pause
    threshold), which would flatter the ratio. ``--dask-ml-rows`` (default 500,000: 1.57 GB of float32, 0.78 GB a worker, under
    the 1.6 GiB at which a 2 GiB worker pauses) is meant to be the largest prefix dask-ml holds;
    raise it while dask-ml still completes. Then ours once more on the same rows persisted as the
    store holds them (uint8, a quarter of the memory, the model of ``X / 255`` through ``scaled``):
    what a user of daskcluster holds in memory, timed the same way.

Prints Markdown (paste into ``benchmarks/RESULTS-mnist8m.md``), with the command, the machine,
the BLAS and the load average at the start and end of each section.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model  # noqa: E402
from peak_rss import PeakRSS, worker_pids  # noqa: E402

SECTIONS = ("floor", "passes", "fit", "fit-elkan", "warm", "gmm", "dask-ml")
FULL_ROWS = 8_100_000


def _sum_block(block, weights, chunk, params):  # type: ignore[no-untyped-def]
    """The earlier floor's work on a chunk: a column sum in uint64 (~9 ms per 25 MB chunk)."""
    return block.sum(axis=0, dtype=np.uint64)


def _add(parts):  # type: ignore[no-untyped-def]
    return np.sum(parts, axis=0)


def _touch_block(block, weights, chunk, params):  # type: ignore[no-untyped-def]
    """The read floor's work on a chunk: a column-wise max, which reads every byte once (1-4 ms
    per 25 MB chunk of uint8, against ~9 ms for a sum in uint64)."""
    return block.max(axis=0)


def _max(parts):  # type: ignore[no-untyped-def]
    return np.max(parts, axis=0)


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class WorkerCPU:
    """CPU seconds (user + system) that the given processes spend inside a block."""

    def __init__(self, pids: list[int]) -> None:
        import psutil

        self.procs = [psutil.Process(pid) for pid in pids]
        self.seconds = 0.0

    def _total(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self.procs)

    def __enter__(self) -> WorkerCPU:
        self._start = self._total()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = self._total() - self._start


class Iterations:
    """Seconds of each ``fit`` iteration of one estimator, from the progress hook."""

    def __init__(self, estimator: str, echo: bool = False) -> None:
        self.estimator = estimator
        self.seconds: list[float] = []
        self.echo = echo

    def __call__(self, rep: Any) -> None:
        if rep.estimator == self.estimator and rep.stage == "fit":
            self.seconds.append(rep.seconds)
        if self.echo:
            print("   ", rep.format(), flush=True)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


def open_store(root: Path, n: int) -> tuple[Any, Any, Path]:
    """The first ``n`` rows of ``root/mnist8100000.zarr`` (generated when absent) and their labels."""
    from daskcluster.datasets import make_infinite_mnist, open_labeled_zarr

    path = root / f"mnist{FULL_ROWS}.zarr"
    if not path.exists():
        from distributed import Client, LocalCluster

        root.mkdir(parents=True, exist_ok=True)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, Client(cl):
            t0 = time.perf_counter()
            make_infinite_mnist(path, FULL_ROWS, random_state=0)
            seconds = time.perf_counter() - t0
        print(f"generation: {seconds:.1f} s ({FULL_ROWS / seconds:,.0f} images/s), load average {load_avg()}")
    X, y, _ = open_labeled_zarr(path)
    if n < X.shape[0]:
        X, y = X[:n], y[:n]
    return X, y, path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default="/tmp/m8")
    parser.add_argument("--n", type=int, default=FULL_ROWS, help="rows: a prefix of the 8.1 M-row store")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    parser.add_argument("--rounds", type=int, default=2, help="read-floor passes (the least is kept)")
    parser.add_argument("--iters", type=int, default=5, help="iterations of the per-iteration sections")
    parser.add_argument("--memory-limit", default="2GiB")
    parser.add_argument("--dask-ml-rows", type=int, default=500_000)
    parser.add_argument("--generate-only", action="store_true", help="write the store (if absent), then stop")
    parser.add_argument("--verbose", action="store_true", help="print every progress report")
    args = parser.parse_args()
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")

    import threadpoolctl
    import zarr
    from distributed import Client, LocalCluster

    from daskcluster import GaussianMixture, KMeans, scaled
    from daskcluster.data import as_row_data
    from daskcluster.engine import tree_reduce
    from daskcluster.metrics import majority_label_accuracy
    from daskcluster.progress import progress_hook
    from daskcluster.storage import describe_compressors

    root = Path(args.dir)
    X, y, path = open_store(root, args.n)
    if args.generate_only:
        return
    z = zarr.open_group(path, mode="r")["X"]
    disk = sum(f.stat().st_size for f in (path / "X").rglob("*") if f.is_file())
    blas = ", ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, {p.get('num_threads')} "
                     "threads)" for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas")
    lines = [
        f"Command: `python benchmarks/bench_mnist8m.py {' '.join(sys.argv[1:])}`  ",
        f"Run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; CPU {cpu_model()}, {os.cpu_count()} cores; "
        f"BLAS {blas}.  ",
        f"Data: {X.shape[0]:,} x {X.shape[1]} {X.dtype} ({X.shape[0] * X.shape[1] / 1e9:.2f} GB raw) of "
        f"{path} ({z.shape[0]:,} rows, {disk / 1e9:.2f} GB on disk, {describe_compressors(z.compressors)}, "
        f"chunks of {z.chunks[0]:,} rows), {X.numblocks[0]} tasks per pass; "
        f"LocalCluster(2 workers x 1 thread, {args.memory_limit}), streamed.",
        "",
        "| section | what | wall | workers' CPU | vs read floor | notes | load average (start; end) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    print("\n".join(lines[:3]), flush=True)

    def row(section: str, what: str, wall: str, cpu: str, ratio: str, notes: str, load0: str) -> None:
        text = f"| {section} | {what} | {wall} | {cpu} | {ratio} | {notes} | {load0}; {load_avg()} |"
        lines.append(text)
        print(text, flush=True)

    Xs = scaled(X, 1 / 255)
    init = np.asarray(X[:: 800][:10], dtype=np.float32) / np.float32(255)
    floor = float("nan")
    default_inertia = None
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=args.memory_limit,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        pids = worker_pids(client)
        data = as_row_data(X, owner="bench")
        tree_reduce(data, _touch_block, "warm-up", _max)  # imports and compiled loops on the workers, page cache

        def ratio(seconds: float) -> str:
            return f"{seconds / floor:.2f}x" if floor == floor else ""

        if "floor" in sections or "passes" in sections or "gmm" in sections:
            load0 = load_avg()
            walls, cpus = [], []
            for r in range(max(args.rounds, 1)):
                with WorkerCPU(pids) as cpu:
                    t0 = time.perf_counter()
                    tree_reduce(data, _touch_block, ("floor", r), _max)  # other params: other keys, no reuse
                    walls.append(time.perf_counter() - t0)
                cpus.append(cpu.seconds)
            floor = min(walls)
            row("floor", "read floor: read + decode + touch (column max)", f"{floor:.2f} s",
                f"{min(cpus):.2f} CPU-s", "1.00x", f"passes {', '.join(f'{w:.2f}' for w in walls)} s", load0)
            load0 = load_avg()
            with WorkerCPU(pids) as cpu:
                t0 = time.perf_counter()
                tree_reduce(data, _sum_block, "floor-sum", _add)
                wall = time.perf_counter() - t0
            row("floor", "earlier floor: read + decode + column sum in uint64", f"{wall:.2f} s",
                f"{cpu.seconds:.2f} CPU-s", ratio(wall), "the definition of the older results", load0)

        if "passes" in sections:
            for algorithm in ("lloyd", "elkan"):
                load0 = load_avg()
                its = Iterations("KMeans", args.verbose)
                with WorkerCPU(pids) as cpu, progress_hook(its):
                    t0 = time.perf_counter()
                    KMeans(10, init=init, n_init=1, algorithm=algorithm, max_iter=args.iters, tol=0,
                           cache=False).fit(Xs)
                    wall = time.perf_counter() - t0
                row("passes", f"KMeans(10, algorithm={algorithm!r}), one streamed iteration (median)",
                    f"{its.median:.2f} s", f"{cpu.seconds / max(len(its.seconds), 1):.2f} CPU-s (fit's / iterations)",
                    ratio(its.median), "iterations " + ", ".join(f"{s:.2f}" for s in its.seconds)
                    + f" s; whole fit {wall:.1f} s", load0)

        if "fit" in sections:
            load0 = load_avg()
            its = Iterations("KMeans", args.verbose)
            with PeakRSS(pids) as rss, WorkerCPU(pids) as cpu, progress_hook(its):
                t0 = time.perf_counter()
                km = KMeans(10, random_state=0, cache=False).fit(Xs)
                wall = time.perf_counter() - t0
            default_inertia = km.inertia_
            acc = majority_label_accuracy(y, km.labels_)
            row("fit", "default KMeans(10) to convergence, end to end", f"{wall:.0f} s ({wall / 60:.1f} min)",
                f"{cpu.seconds:.0f} CPU-s", "", f"{km.n_iter_} iterations (median {its.median:.2f} s = "
                f"{ratio(its.median)} floor); inertia {km.inertia_:.6g}; accuracy {acc:.3f}; "
                f"peak worker RSS {rss.largest_mib / 1024:.2f} GiB", load0)

        if "fit-elkan" in sections:
            load0 = load_avg()
            its = Iterations("KMeans", args.verbose)
            with PeakRSS(pids) as rss, WorkerCPU(pids) as cpu, progress_hook(its):
                t0 = time.perf_counter()
                km = KMeans(10, algorithm="elkan", random_state=0, cache=False).fit(Xs)
                wall = time.perf_counter() - t0
            vs = "" if default_inertia is None else f" ({km.inertia_ / default_inertia - 1:+.4%} vs the default fit)"
            under = sum(s <= 1.2 * floor for s in its.seconds) if floor == floor else 0
            row("fit-elkan", 'KMeans(10, algorithm="elkan") to convergence, end to end',
                f"{wall:.0f} s ({wall / 60:.1f} min)", f"{cpu.seconds:.0f} CPU-s", "",
                f"{km.n_iter_} iterations (median {its.median:.2f} s = {ratio(its.median)} floor; "
                f"{under} of {len(its.seconds)} at or under 1.2x); inertia {km.inertia_:.6g}{vs}; "
                f"peak worker RSS {rss.largest_mib / 1024:.2f} GiB", load0)

        if "warm" in sections:
            load0 = load_avg()
            with PeakRSS(pids) as rss, WorkerCPU(pids) as cpu, progress_hook(Iterations("KMeans", args.verbose)):
                t0 = time.perf_counter()
                km = KMeans(10, init="mini-batch", random_state=0, cache=False).fit(Xs)
                wall = time.perf_counter() - t0
            vs = "" if default_inertia is None else f" ({km.inertia_ / default_inertia - 1:+.3%} vs the default fit)"
            row("warm", 'KMeans(10, init="mini-batch"), end to end', f"{wall:.0f} s ({wall / 60:.1f} min)",
                f"{cpu.seconds:.0f} CPU-s", "", f"{km.n_iter_} iterations; inertia {km.inertia_:.6g}{vs}; "
                f"peak worker RSS {rss.largest_mib / 1024:.2f} GiB", load0)

        if "gmm" in sections:
            load0 = load_avg()
            its = Iterations("GaussianMixture", args.verbose)
            with PeakRSS(pids) as rss, WorkerCPU(pids) as cpu, progress_hook(its):
                GaussianMixture(10, covariance_type="diag", init_params="random_from_data", reg_covar=1e-3,
                                max_iter=args.iters, tol=0, random_state=0, cache=False).fit(Xs)
            row("gmm", 'GaussianMixture(10, "diag"), one streamed EM iteration (median)', f"{its.median:.2f} s",
                f"{cpu.seconds / max(len(its.seconds), 1):.2f} CPU-s (fit's / iterations)", ratio(its.median),
                "iterations " + ", ".join(f"{s:.2f}" for s in its.seconds)
                + f" s; peak worker RSS {rss.largest_mib / 1024:.2f} GiB", load0)

        if "dask-ml" in sections:
            dask_ml_section(client, X, init, args, row, KMeans)

    print("\n" + "\n".join(lines))


#: Iterations of the two fits of the dask-ml section, whose difference is timed per iteration.
DASK_ML_ITERS = (1, 6)
#: Runs of each fit of the dask-ml section, the least time kept.
DASK_ML_REPEATS = 2


def dask_ml_section(client: Any, X: Any, init: np.ndarray, args: argparse.Namespace, row: Any,
                    KMeans: Any) -> None:
    """dask-ml's KMeans and ours per iteration on the same persisted prefix (rows printed by ``row``)."""
    import gc
    import warnings

    from dask_ml.cluster import KMeans as DaskMLKMeans
    from distributed import wait

    from daskcluster import scaled

    n = min(args.dask_ml_rows, X.shape[0])
    load0 = load_avg()
    sub = (X[:n] / np.float32(255)).astype(np.float32).persist()
    wait(sub)
    few, many = DASK_ML_ITERS
    timings: dict[str, dict[int, float]] = {"daskcluster": {}, "dask-ml": {}}
    peaks: dict[str, float] = {"daskcluster": 0.0, "dask-ml": 0.0}
    pids = worker_pids(client)
    for _ in range(DASK_ML_REPEATS):
        for max_iter in DASK_ML_ITERS:
            with PeakRSS(pids) as rss:
                t0 = time.perf_counter()
                KMeans(10, init=init, n_init=1, max_iter=max_iter, tol=0, cache=True).fit(sub)
                seconds = time.perf_counter() - t0
            timings["daskcluster"][max_iter] = min(seconds, timings["daskcluster"].get(max_iter, np.inf))
            peaks["daskcluster"] = max(peaks["daskcluster"], rss.largest_mib)
            with warnings.catch_warnings(), PeakRSS(pids) as rss:
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                DaskMLKMeans(n_clusters=10, init=init, max_iter=max_iter, tol=0, random_state=0).fit(sub)
                seconds = time.perf_counter() - t0
            timings["dask-ml"][max_iter] = min(seconds, timings["dask-ml"].get(max_iter, np.inf))
            peaks["dask-ml"] = max(peaks["dask-ml"], rss.largest_mib)
            client.run(gc.collect)  # what a fit left behind, before the next one
    per = {name: (t[many] - t[few]) / (many - few) for name, t in timings.items()}
    for name, t in timings.items():
        row("dask-ml", f"{name} KMeans(10), {n:,} rows persisted as float32, one iteration", f"{per[name]:.3f} s", "",
            "", f"fit(max_iter={few}) {t[few]:.2f} s, fit(max_iter={many}) {t[many]:.2f} s (least of "
            f"{DASK_ML_REPEATS}); peak worker RSS {peaks[name] / 1024:.2f} GiB", load0)
    row("dask-ml", f"dask-ml / daskcluster per iteration at {n:,} rows", f"{per['dask-ml'] / per['daskcluster']:.1f}x",
        "", "", "", load0)
    del sub
    client.run(gc.collect)
    # the same rows as the store holds them: uint8 in memory (a quarter of the float32 copy dask-ml
    # needs), the model of X / 255 through ``scaled``; the same fits, ours only
    load0 = load_avg()
    raw = X[:n].persist()
    wait(raw)
    own: dict[int, float] = {}
    peak = 0.0
    for _ in range(DASK_ML_REPEATS):
        for max_iter in DASK_ML_ITERS:
            with PeakRSS(pids) as rss:
                t0 = time.perf_counter()
                KMeans(10, init=init, n_init=1, max_iter=max_iter, tol=0, cache=True).fit(scaled(raw, 1 / 255))
                own[max_iter] = min(time.perf_counter() - t0, own.get(max_iter, np.inf))
            peak = max(peak, rss.largest_mib)
    per_raw = (own[many] - own[few]) / (many - few)
    row("dask-ml", f"daskcluster KMeans(10), the same {n:,} rows persisted as stored (uint8, scaled by 1/255), "
        "one iteration", f"{per_raw:.3f} s", "", "", f"fit(max_iter={few}) {own[few]:.2f} s, fit(max_iter={many}) "
        f"{own[many]:.2f} s (least of {DASK_ML_REPEATS}); peak worker RSS {peak / 1024:.2f} GiB", load0)
    row("dask-ml", f"dask-ml (float32) / daskcluster (rows as stored) per iteration at {n:,} rows",
        f"{per['dask-ml'] / per_raw:.1f}x", "", "", "", load0)
    del raw


if __name__ == "__main__":
    main()
