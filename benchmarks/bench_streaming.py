"""A streamed pass with and without read-ahead, against the read floor and the compute floor.

    python benchmarks/bench_streaming.py [--store PATH | --dir DIR --n 1000000] [--rounds 3]

Data: the uint8 digits of a labelled Zarr store (``--store``, e.g. the MNIST8M-size one), or
``n`` deformed digits generated into ``DIR/mnist{n}.zarr`` with the infinite-MNIST generator
when it does not exist yet. Cluster: ``LocalCluster(n_workers=2, threads_per_worker=1,
memory_limit="2GiB")``, the out-of-core configuration. Each round measures, in this order
(round-robin, so the machine's load falls on every line alike):

- **read floor**: one pass that reads, decompresses and sums each chunk (read-ahead off);
- **compute floor**: one Lloyd pass (``K.assign_stats_kernel``, 10 centers, on
  ``scaled(X, 1/255)``) over a persisted prefix of ``--prefix`` rows, scaled to all rows: the
  same pass with nothing read;
- **Lloyd pass, read-ahead off** and **on** (``daskcluster.read-ahead`` = 0 and the default):
  the same pass, streamed from the store;
- the read floor with read-ahead on (reads overlapped with the sums).

Each worker's CPU seconds over each pass (``psutil``) say whether the cores were busy or
waiting. ``--profile`` then times, in this process on one thread, where a chunk's seconds go
(file read, decompression, cast to float32, the GEMM, the whole Lloyd kernel) and whether a
read in one thread and a kernel in another run at the same time (the GIL released). Prints a Markdown table (least and median of the rounds, ratios to the least read
floor) with the command, CPU model, BLAS kernel and load average: paste it into
``benchmarks/RESULTS-streaming.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from machine import cpu_model


def _sum_block(block, weights, chunk, params):  # type: ignore[no-untyped-def]
    return block.sum(axis=0, dtype=np.uint64)


def _add(parts):  # type: ignore[no-untyped-def]
    return np.sum(parts, axis=0)


def _blas() -> str:
    from threadpoolctl import threadpool_info

    return ", ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})" for i in threadpool_info()
                     if i.get("user_api") == "blas") or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default=None, help="an existing labelled Zarr store of digits")
    parser.add_argument("--dir", default="/tmp/daskcluster-streaming")
    parser.add_argument("--n", type=int, default=1_000_000, help="rows generated when --store is not given")
    parser.add_argument("--prefix", type=int, default=200_000, help="rows persisted for the compute floor")
    parser.add_argument("--rows", type=int, default=None, help="only the first rows of the store")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also time a chunk's parts in this process")
    args = parser.parse_args()

    import dask
    import psutil
    from distributed import Client, LocalCluster

    from daskcluster import scaled
    from daskcluster.data import as_row_data
    from daskcluster.datasets import make_infinite_mnist, open_labeled_zarr
    from daskcluster.engine import readahead, tree_reduce
    from daskcluster.kernels import kmeans as K

    path = Path(args.store) if args.store else Path(args.dir) / f"mnist{args.n}.zarr"
    if not path.exists():
        if args.store:
            sys.exit(f"no store at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, Client(cl):
            t0 = time.perf_counter()
            make_infinite_mnist(path, args.n, random_state=0)
            print(f"generated {args.n:,} digits in {time.perf_counter() - t0:.0f} s")
    X, _, _ = open_labeled_zarr(path)
    if args.rows:
        X = X[: args.rows]
    n, d = X.shape
    disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    print(f"data: {path}: {n:,} x {d} {X.dtype}, {n * d / 1e9:.2f} GB raw, {disk / 1e9:.2f} GB on disk, "
          f"{X.numblocks[0]} chunks of {X.chunks[0][0]:,} rows")

    rng = np.random.default_rng(0)
    centers = rng.random((10, d)).astype(np.float32)
    times: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    load = [os.getloadavg()[0]]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        procs = [psutil.Process(p) for p in client.run(os.getpid).values()]
        data = as_row_data(scaled(X, 1 / 255), owner="bench")
        m = min(args.prefix, n)
        prefix = as_row_data(scaled(X[:m].persist(), 1 / 255), owner="bench")
        params = K.AssignParams(centers, data.affine)

        def lloyd(rows: Any) -> None:
            tree_reduce(rows, K.assign_stats_kernel, params, K.combine_assign, label="lloyd")

        def floor(rows: Any) -> None:
            tree_reduce(rows, _sum_block, None, _add, label="read-floor")

        cases = [
            ("read floor (read + decompress + sum), read-ahead off", 0, lambda: floor(data), 1.0),
            (f"compute floor (Lloyd pass on a persisted {m:,}-row prefix, x {n / m:.2f})", 0,
             lambda: lloyd(prefix), n / m),
            ("Lloyd pass, streamed, read-ahead off", 0, lambda: lloyd(data), 1.0),
            ("Lloyd pass, streamed, read-ahead on (1 chunk)", 1, lambda: lloyd(data), 1.0),
            ("read floor, read-ahead on (1 chunk)", 1, lambda: floor(data), 1.0),
        ]
        lloyd(prefix)  # compiled kernels loaded on every worker before the first timing
        for _ in range(args.rounds):
            for label, depth, run, scale in cases:
                before = sum(p.cpu_times().user + p.cpu_times().system for p in procs)
                with dask.config.set({readahead.READ_AHEAD_CONFIG: depth}):
                    t0 = time.perf_counter()
                    run()
                    seconds = time.perf_counter() - t0
                used = sum(p.cpu_times().user + p.cpu_times().system for p in procs) - before
                times.setdefault(label, []).append(seconds * scale)
                cpu.setdefault(label, []).append(used / seconds / len(procs))
            load.append(os.getloadavg()[0])
        took = client.run(readahead.counts)
    base = min(times[cases[0][0]])
    print()
    print("Command: `python " + " ".join(sys.argv) + "`  ")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; BLAS: {_blas()}  ")
    print(f"Load average (1 min) before and after each round: {', '.join(f'{v:.2f}' for v in load)}  ")
    print(f"Chunks taken from a read-ahead / read by their own task, per worker: {took}")
    print()
    print("| pass | least (s) | median (s) | least / read floor | worker CPU busy (median) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, *_ in cases:
        t = times[label]
        print(f"| {label} | {min(t):.2f} | {statistics.median(t):.2f} | **{min(t) / base:.2f}×** | "
              f"{statistics.median(cpu[label]):.0%} |")
    if args.profile:
        _profile(path, centers, args.rounds)


def _profile(path: Path, centers: np.ndarray, rounds: int) -> None:
    """Where one chunk's seconds go, on one thread of this process (least of ``rounds``)."""
    import zarr

    from daskcluster.kernels import kmeans as K
    from daskcluster.kernels.blocks import Affine, ChunkInfo

    z = zarr.open_group(str(path), mode="r")["X"]
    rows = z.chunks[0]
    files = sorted(f for f in (path / "X").rglob("*") if f.is_file() and f.name != "zarr.json")
    params = K.AssignParams(centers, Affine(scale=1 / 255))
    block = np.asarray(z[:rows])

    def read_files() -> None:
        for f in files[:4]:
            f.read_bytes()

    def decode() -> None:
        for i in range(4):
            np.asarray(z[i * rows : (i + 1) * rows])

    def kernel() -> None:
        for i in range(4):
            K.assign_stats_kernel(block, None, ChunkInfo(i, 0), params)

    def both() -> None:
        t = threading.Thread(target=decode)
        t.start()
        kernel()
        t.join()

    parts = {
        "file read (4 chunks, page cache)": read_files,
        "read + decompress (4 chunks)": decode,
        "cast to float32 and scale (4 chunks)": lambda: [block.astype(np.float32) * np.float32(1 / 255)
                                                         for _ in range(4)],
        "GEMM x @ centers.T (4 chunks)": lambda: [block.astype(np.float32) @ centers.T for _ in range(4)],
        "whole Lloyd kernel (4 chunks)": kernel,
        "read + decompress in one thread while the kernel runs in another (4 + 4 chunks)": both,
    }
    least = {}
    for _ in range(rounds):
        for label, run in parts.items():
            t0 = time.perf_counter()
            run()
            least[label] = min(least.get(label, np.inf), time.perf_counter() - t0)
    print()
    print(f"One thread of this process, chunks of {rows:,} rows ({rows * z.shape[1] / 2**20:.1f} MiB raw), "
          f"least of {rounds}; load {os.getloadavg()[0]:.2f}:")
    print()
    print("| part | seconds for 4 chunks | per chunk (ms) |")
    print("| --- | ---: | ---: |")
    for label, t in least.items():
        print(f"| {label} | {t:.3f} | {t / 4 * 1e3:.0f} |")


if __name__ == "__main__":
    main()
