"""Throughput of the infinite-MNIST generator (``make_infinite_mnist``): images per second.

Run from the project root::

    python benchmarks/bench_generate.py --out /tmp/dc-bench                  # 1,000,000 images
    python benchmarks/bench_generate.py --out /scratch/dc --n 8100000        # MNIST8M size
    python benchmarks/bench_generate.py --out /tmp/dc-bench --n 100000 --results benchmarks/RESULTS-datasets.md

What is measured, in one process:

1. The NumPy kernel alone on one core (one BLAS thread, no Dask, no I/O): draws, affine +
   elastic maps and bilinear warping of ``--kernel-n`` images, in images per second of wall
   time and of process CPU time (the machine may be shared; CPU time is what one core
   gives). Then the same plus Blosc zstd encoding of the result (what each task also does).
2. ``make_infinite_mnist(out/threads.zarr, n)`` on the threaded scheduler (one thread per core).
3. ``make_infinite_mnist(out/cluster.zarr, n)`` on a ``LocalCluster(n_workers=2,
   threads_per_worker=1, processes=True)``; cluster start-up is timed apart.

Each generation is timed end to end (base digits loaded and sent, every chunk generated,
compressed and written, the sequential SHA-256 read-back, the rename). The read-back alone is
timed afterwards with ``verify_labeled_zarr`` (the same reads and hashing). Both stores must
have the same checksum. The store's size on disk is printed, and the time for 8.1 million
images projected linearly from the measured rate. The stores are deleted unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

MNIST8M = 8_100_000


def disk_usage(path: Path) -> int:
    """Bytes allocated on disk under ``path`` (like ``du -s``)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            total += os.stat(os.path.join(folder, name)).st_blocks * 512
    return total


def kernel_rate(n: int, chunk_rows: int) -> dict[str, float]:
    """Images/s of generate_block on one core (wall and CPU), without and with compression."""
    import numpy as np
    from numcodecs import Blosc
    from threadpoolctl import threadpool_limits

    from daskcluster.datasets import Deformation, load_base_digits
    from daskcluster.datasets.infinite import generate_block

    images, labels, _ = load_base_digits(None)
    deformation = Deformation()
    codec = Blosc(cname="zstd", clevel=3, shuffle=Blosc.NOSHUFFLE)
    Blosc.use_threads = False
    rates: dict[str, float] = {}
    with threadpool_limits(limits=1, user_api="blas"):
        generate_block(images, labels, 0, 1000, 0, deformation)  # warm-up
        for label, compress in (("kernel", False), ("kernel+zstd", True)):
            wall, cpu = time.perf_counter(), time.process_time()
            done = 0
            for i, start in enumerate(range(0, n, chunk_rows)):
                rows = min(chunk_rows, n - start)
                X, y, _ = generate_block(images, labels, i, rows, 0, deformation)
                if compress:
                    codec.encode(np.ascontiguousarray(X))
                done += rows
            rates[f"{label} wall"] = done / (time.perf_counter() - wall)
            rates[f"{label} cpu"] = done / (time.process_time() - cpu)
    return rates


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of this process (all its threads) and of ``pids``."""
    import psutil

    total = time.process_time()
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def generate(path: Path, n: int, chunk_rows: int, worker_pids: list[int]) -> dict[str, Any]:
    from daskcluster.datasets import make_infinite_mnist, verify_labeled_zarr

    load = os.getloadavg()[0]
    cpu0, t0 = cpu_seconds(worker_pids), time.perf_counter()
    _, _, attrs = make_infinite_mnist(path, n, chunk_rows=chunk_rows, random_state=0, overwrite=True)
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds(worker_pids) - cpu0
    t1 = time.perf_counter()
    verify_labeled_zarr(path)
    readback = time.perf_counter() - t1
    return {
        "seconds": seconds,
        "readback": readback,
        "rate": n / seconds,
        "cpu": cpu,
        "load": load,
        "bytes": disk_usage(path),
        "checksum": attrs["checksum"]["X"],
        "base": attrs["base"]["source"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory for the generated stores (created if needed)")
    parser.add_argument("--n", type=int, default=1_000_000, help="images to generate (default 1,000,000; 8100000 = MNIST8M)")
    parser.add_argument("--chunk-rows", type=int, default=None, help="rows per chunk (default: the generator's, 32768)")
    parser.add_argument("--kernel-n", type=int, default=200_000, help="images for the single-core kernel measure")
    parser.add_argument("--skip", choices=["threads", "cluster"], action="append", default=[], help="skip a scheduler")
    parser.add_argument("--keep", action="store_true", help="keep the generated stores")
    parser.add_argument("--results", default=None, help="also write the Markdown summary to this file")
    args = parser.parse_args(argv)

    import dask
    import numpy as np

    from daskcluster.datasets import DEFAULT_CHUNK_ROWS

    chunk_rows = args.chunk_rows or DEFAULT_CHUNK_ROWS
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    lines = [
        f"Command: `python benchmarks/bench_generate.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {cores} cores, Python {platform.python_version()}, "
        f"NumPy {np.__version__}, Dask {dask.__version__}; {_dt.date.today().isoformat()}. "
        f"n = {args.n:,} images, chunk_rows = {chunk_rows:,}.",
        "",
    ]

    rates = kernel_rate(args.kernel_n, chunk_rows)
    print(f"kernel, 1 core: {rates}", file=sys.stderr)
    lines += [
        "| single core (no Dask, no I/O) | images/s (wall) | images/s per CPU-second |",
        "| --- | ---: | ---: |",
        f"| deform kernel | {rates['kernel wall']:,.0f} | {rates['kernel cpu']:,.0f} |",
        f"| deform kernel + Blosc zstd encode | {rates['kernel+zstd wall']:,.0f} | {rates['kernel+zstd cpu']:,.0f} |",
        "",
        "| scheduler | time (s) | images/s | CPU (s) | images per CPU-second | SHA-256 read-back (s) | load avg. | store on disk | projected 8.1M |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    results: dict[str, dict[str, Any]] = {}
    try:
        if "threads" not in args.skip:
            with dask.config.set(scheduler="threads", num_workers=cores):
                results["threads"] = generate(out / "threads.zarr", args.n, chunk_rows, [])
            print(f"threads: {results['threads']}", file=sys.stderr)
        if "cluster" not in args.skip:
            from distributed import Client, LocalCluster

            t0 = time.perf_counter()
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                    Client(cluster) as client:
                startup = time.perf_counter() - t0
                pids = list(client.run(os.getpid).values())
                results["LocalCluster(2 workers x 1 thread)"] = generate(out / "cluster.zarr", args.n, chunk_rows, pids)
            print(f"cluster (start-up {startup:.1f} s): {results['LocalCluster(2 workers x 1 thread)']}", file=sys.stderr)
    finally:
        if not args.keep:
            for name in ("threads.zarr", "cluster.zarr"):
                shutil.rmtree(out / name, ignore_errors=True)

    for name, r in results.items():
        projected = MNIST8M / args.n * r["seconds"]
        lines.append(
            f"| {name} | {r['seconds']:.1f} | {r['rate']:,.0f} | {r['cpu']:.1f} | {args.n / r['cpu']:,.0f} | "
            f"{r['readback']:.1f} | {r['load']:.1f} | "
            f"{r['bytes'] / 2**20:,.0f} MiB ({args.n * 784 / r['bytes']:.2f}x) | {projected / 60:.1f} min |"
        )
    checksums = {r["checksum"] for r in results.values()}
    lines += [
        "",
        f"Base digits: {next(iter(results.values()))['base'] if results else '-'}. "
        + ("Same SHA-256 of X on every scheduler." if len(checksums) == 1 else "CHECKSUMS DIFFER between schedulers!"),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.results:
        Path(args.results).write_text(text)
    return 0 if len(checksums) <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
