"""KMeans out of core at MNIST8M size: generation, read floor, streamed fit, dask-ml alongside.

    python benchmarks/bench_mnist8m.py --dir /tmp/mnist8m [--n 8100000] [--subset 2000000]
    python benchmarks/bench_mnist8m.py --dir /tmp/m8 --generate-only   (the store only)

1. Generates ``n`` deformed digits into ``DIR/mnist{n}.zarr`` (``/tmp/m8/mnist8100000.zarr``) with
   the infinite-MNIST generator (real MNIST base, ``random_state=0``, the default codec of
   :mod:`daskcluster.storage`) on a 2-worker LocalCluster (skipped when the store exists; its time
   is then not measured again).
2. On a ``LocalCluster(n_workers=2, threads_per_worker=1, memory_limit="2GiB")``:
   - the read floor: one pass that only reads, decompresses and sums the array;
   - with ``--codec-floors ROWS``, the read floor of each codec of ``CODECS`` on the first ROWS rows
     (copied once into ``DIR/floors/``, chunks of the store's rows), projected to all rows;
   - ``KMeans(n_clusters=10, cache=False)`` on ``scaled(X, 1/255)``: per-iteration time (median of
     the fit's iterations), the whole fit (seeding included), iterations, peak RSS of each worker
     (sampled every 50 ms from this process), majority-label accuracy;
   - on the first ``subset`` rows, ours and dask-ml's ``KMeans`` (``max_iter=10``, its default
     k-means|| init), whole fit times.
Results go to stdout as Markdown (paste into RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np


def _sum_block(block, weights, chunk, params):  # type: ignore[no-untyped-def]
    return block.sum(axis=0, dtype=np.uint64)


def _add(parts):  # type: ignore[no-untyped-def]
    return np.sum(parts, axis=0)


class PeakRSS:
    """Samples the RSS of the workers' processes from the client side."""

    def __init__(self, client) -> None:  # type: ignore[no-untyped-def]
        import psutil

        self.procs = [psutil.Process(p) for p in client.run(os.getpid).values()]
        self.peak = {p.pid: 0 for p in self.procs}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for p in self.procs:
                try:
                    self.peak[p.pid] = max(self.peak[p.pid], p.memory_info().rss)
                except Exception:  # noqa: BLE001 - a worker restarted
                    pass
            time.sleep(0.05)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


CODECS = ("lz4hc:5", "lz4:5", "zstd:1", "zstd:3", "none")
"""Codecs whose read floors ``--codec-floors`` compares (see ``daskcluster.storage``)."""


def codec_floors(X, root: Path, n_rows: int, n_total: int, rounds: int = 2) -> list[str]:  # type: ignore[no-untyped-def]
    """Read floor of each codec of :data:`CODECS` on the first ``n_rows`` rows of ``X``, on the
    current cluster: the prefix is written once per codec, then each store is read round-robin."""
    from daskcluster.data import as_row_data
    from daskcluster.engine import tree_reduce
    from daskcluster.io import open_array, write_zarr

    rows_per_chunk = X.chunks[0][0]
    stores = {}
    for codec in CODECS:
        path = root / f"{codec.replace(':', '-')}-{n_rows}.zarr"
        if not path.exists():
            write_zarr(X[:n_rows], path, chunk_bytes=rows_per_chunk * X.shape[1], min_chunks=1,
                       compressors=None if codec == "none" else codec)
        stores[codec] = path
    times: dict[str, list[float]] = {codec: [] for codec in CODECS}
    for attempt in range(rounds):
        for codec, path in stores.items():
            data = as_row_data(open_array(path, chunk_bytes=rows_per_chunk * X.shape[1], min_chunks=1), owner="bench")
            t0 = time.perf_counter()
            tree_reduce(data, _sum_block, 100 + attempt, _add)
            times[codec].append(time.perf_counter() - t0)
    out = []
    for codec, path in stores.items():
        disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        least = min(times[codec])
        out.append(f"| read floor, {codec}, first {n_rows:,} rows (ratio {X[:n_rows].nbytes / disk:.2f}) | "
                   f"{least:.2f} s; {least * n_total / n_rows:.1f} s projected to {n_total:,} rows | | | | |")
        print(f"read floor {codec}: {times[codec]}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default="/tmp/daskcluster-mnist8m")
    parser.add_argument("--n", type=int, default=8_100_000)
    parser.add_argument("--subset", type=int, default=2_000_000)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--skip-dask-ml", action="store_true")
    parser.add_argument("--generate-only", action="store_true", help="write the store (if absent), then stop")
    parser.add_argument("--codec-floors", type=int, default=0, metavar="ROWS",
                        help="also the read floor of each codec on the first ROWS rows (e.g. 1000000)")
    parser.add_argument("--minibatch", action="store_true",
                        help="only MiniBatchKMeans(10) on the store: time, inertia on all rows, accuracy")
    args = parser.parse_args()

    import dask.array as da
    import zarr
    from distributed import Client, LocalCluster

    from daskcluster import KMeans, scaled
    from daskcluster.data import as_row_data
    from daskcluster.datasets import make_infinite_mnist, open_labeled_zarr
    from daskcluster.engine import tree_reduce
    from daskcluster.metrics import majority_label_accuracy
    from daskcluster.progress import progress_hook
    from daskcluster.storage import describe_compressors

    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"mnist{args.n}.zarr"
    rows: list[str] = []
    gen_seconds = None
    if not path.exists():
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, Client(cl):
            t0 = time.perf_counter()
            make_infinite_mnist(path, args.n, random_state=0)
            gen_seconds = time.perf_counter() - t0
    X, y, attrs = open_labeled_zarr(path)
    disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    codecs = describe_compressors(zarr.open_group(path, mode="r")["X"].compressors)
    print(f"data: {X.shape} {X.dtype}, {X.nbytes / 1e9:.2f} GB raw, {disk / 1e9:.2f} GB on disk "
          f"({codecs}), {X.numblocks[0]} chunks")
    if gen_seconds is not None:
        print(f"generation: {gen_seconds:.1f} s ({args.n / gen_seconds:,.0f} images/s), load average "
              f"{os.getloadavg()[0]:.1f}")
    if args.generate_only:
        return

    if args.minibatch:
        from daskcluster import MiniBatchKMeans
        from daskcluster.metrics import inertia

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            with PeakRSS(client) as rss:
                t0 = time.perf_counter()
                mb = MiniBatchKMeans(10, random_state=0, cache=False, compute_labels=False).fit(scaled(X, 1 / 255))
                seconds = time.perf_counter() - t0
            total = inertia(scaled(X, 1 / 255), mb.cluster_centers_)
            acc = majority_label_accuracy(y, mb.predict(scaled(X, 1 / 255)))
        print(f"| daskcluster MiniBatchKMeans(10), {args.n:,} rows, streamed | {seconds:.0f} s "
              f"({mb.n_iter_} epochs, {mb.n_steps_} steps) | inertia {total:.6g} | "
              f"{max(rss.peak.values()) / 2**30:.2f} GiB | {acc:.3f} |")
        return

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        data = as_row_data(X, owner="bench")
        floors = []
        for attempt in range(2):
            t0 = time.perf_counter()
            tree_reduce(data, _sum_block, attempt, _add)  # other params each time: other keys, no reuse
            floors.append(time.perf_counter() - t0)
        floor = min(floors)
        print(f"read floor (read + decompress + sum): {floors} -> {floor:.2f} s")
        if args.codec_floors:
            rows += codec_floors(X, out / "floors", args.codec_floors, args.n)

        iters: list[float] = []

        def hook(rep):  # type: ignore[no-untyped-def]
            if rep.stage == "fit":
                iters.append(rep.seconds)
            print("  ", rep.format(), flush=True)

        with PeakRSS(client) as rss, progress_hook(hook):
            t0 = time.perf_counter()
            km = KMeans(10, cache=False, random_state=0, max_iter=args.max_iter).fit(scaled(X, 1 / 255))
            fit_seconds = time.perf_counter() - t0
        acc = majority_label_accuracy(y, km.labels_)
        per_iter = statistics.median(iters)
        peak = max(rss.peak.values())
        rows.append(f"| daskcluster KMeans(10), {args.n:,} rows, streamed | {per_iter:.2f} s | "
                    f"{per_iter / floor:.2f}x floor | {fit_seconds:.0f} s ({km.n_iter_} it) | "
                    f"{peak / 2**30:.2f} GiB | {acc:.3f} |")

        sub = X[: args.subset]
        ys = y[: args.subset]
        t0 = time.perf_counter()
        ours = KMeans(10, cache=False, random_state=0, max_iter=10, tol=0).fit(scaled(sub, 1 / 255))
        ours_sub = time.perf_counter() - t0
        rows.append(f"| daskcluster, {args.subset:,} rows, 10 iterations | {ours_sub / 10:.2f} s | | {ours_sub:.0f} s | | "
                    f"{majority_label_accuracy(ys, ours.labels_):.3f} |")
    if not args.skip_dask_ml:
        # dask-ml holds its float input in memory: its own cluster, without the 2 GiB limit
        from dask_ml.cluster import KMeans as DaskMLKMeans

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl2, \
                Client(cl2):
            subf = (X[: args.subset] / 255).astype(np.float32)
            t0 = time.perf_counter()
            ref = DaskMLKMeans(n_clusters=10, random_state=0, max_iter=10, tol=0).fit(subf)
            dml = time.perf_counter() - t0
            acc_dml = majority_label_accuracy(y[: args.subset], da.asarray(ref.labels_))
        rows.append(f"| dask-ml, {args.subset:,} rows, 10 iterations | {dml / 10:.2f} s | | {dml:.0f} s | | "
                    f"{acc_dml:.3f} |")
        rows.append(f"| ratio dask-ml / daskcluster at {args.subset:,} rows | | | {dml / ours_sub:.1f}x | | |")

    print("\n| what | per iteration | vs read floor | whole fit | peak worker RSS | accuracy |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| read floor, {args.n:,} rows | {floor:.2f} s | 1.00x | | | |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
