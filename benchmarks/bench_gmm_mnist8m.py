"""Diagonal GaussianMixture streamed from an MNIST8M-like Zarr store, against the read floor, one run.

Run from the project root::

    python benchmarks/bench_gmm_mnist8m.py --n 1000000            # ~2 minutes: 1 M rows
    python benchmarks/bench_gmm_mnist8m.py                        # the 8.1 M-row store

What is measured (one process, one run, so that ratios compare like with like):

1. **Streamed, on** ``LocalCluster(n_workers=2, threads_per_worker=1, memory_limit="2GiB")``,
   ``--rounds`` rounds, round-robin: the **read floor** (one pass that only reads, decompresses
   and sums the ``uint8`` rows: ``tree_reduce`` of a column sum) and
   ``GaussianMixture(10, covariance_type="diag", init_params="random_from_data", reg_covar=1e-3,
   max_iter=--iters, tol=0, cache=False)`` on ``scaled(X, 1/255)``, its seconds per EM
   iteration from the progress hook (the pass of each iteration, client work included).
   Reported: least and median of each, and their ratio (target: EM iteration ≤ 1.5× the floor).
   One untimed floor pass and a one-iteration fit on one chunk warm the workers up first.
2. **Per row and core, in this process on one thread**: the EM kernel of the fitted model over
   the first ``--kernel-rows`` rows held in memory as ``uint8`` (CPU time of the thread), and
   the read floor of the same rows from the store (decompression and sum, CPU time of the
   process, so that codec threads are counted).

The store (``--store``, default ``/tmp/m8/mnist8100000.zarr``, made by ``bench_mnist8m.py``)
is generated with ``make_infinite_mnist`` when it does not exist (``--n`` rows); ``--n`` below
its length takes the first ``--n`` rows. Prints a Markdown section for ``RESULTS-gmm.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_gmm import blas_info
from bench_kmeans import cpu_model, git_commit, versions


def _sum_block(block: np.ndarray, weights: np.ndarray | None, chunk: object, params: object) -> np.ndarray:
    return block.sum(axis=0, dtype=np.uint64)


def _add(parts: list[np.ndarray]) -> np.ndarray:
    return np.sum(parts, axis=0)


def open_store(path: str, n: int | None) -> object:
    """The store's ``X`` (generated with ``n`` rows when absent), its first ``n`` rows."""
    from daskcluster.datasets import make_infinite_mnist, open_labeled_zarr

    if not os.path.exists(path):
        rows = n or 8_100_000
        print(f"generating {rows} rows into {path}...", flush=True)
        t0 = time.perf_counter()
        make_infinite_mnist(path, rows)
        print(f"  {time.perf_counter() - t0:.1f}s", flush=True)
    X, _, _ = open_labeled_zarr(path)
    return X[:n] if n is not None and n < X.shape[0] else X


def streamed(X: object, rounds: int, iters: int) -> tuple[list[float], list[float], object]:
    """Read floors and EM seconds per iteration, round-robin on a 2 x 1 LocalCluster."""
    from distributed import Client, LocalCluster

    from daskcluster import GaussianMixture, scaled
    from daskcluster.data import as_row_data
    from daskcluster.engine import tree_reduce
    from daskcluster.progress import progress_hook

    floors: list[float] = []
    per_iter: list[float] = []
    gm = None
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB",
                      dashboard_address=":0") as cluster, Client(cluster):
        data = as_row_data(X, owner="bench")
        # warm-up, untimed: the workers import the kernels and load them compiled from disk
        tree_reduce(data, _sum_block, None, _add)
        GaussianMixture(10, covariance_type="diag", init_params="random_from_data", max_iter=1, random_state=0,
                        reg_covar=1e-3, cache=False).fit(scaled(X[: X.chunks[0][0]], 1 / 255))
        for r in range(rounds):
            t0 = time.perf_counter()
            tree_reduce(data, _sum_block, None, _add)
            floors.append(time.perf_counter() - t0)
            its: list[float] = []
            with progress_hook(lambda rep, its=its: its.append(rep.seconds)
                               if rep.estimator == "GaussianMixture" and rep.stage == "fit" else None):
                gm = GaussianMixture(10, covariance_type="diag", init_params="random_from_data", max_iter=iters,
                                     tol=0, random_state=0, reg_covar=1e-3, cache=False).fit(scaled(X, 1 / 255))
            per_iter += its
            print(f"  round {r + 1}: read floor {floors[-1]:.2f}s, EM iterations "
                  + ", ".join(f"{s:.2f}s" for s in its), flush=True)
    return floors, per_iter, gm


def per_row(X: object, gm: object, rows: int) -> tuple[float, float]:
    """Microseconds per row on one core: the EM kernel on in-memory uint8 rows, and reading them."""
    from threadpoolctl import threadpool_limits

    from daskcluster.kernels import mixture as K
    from daskcluster.kernels.blocks import Affine, ChunkInfo

    head = X[:rows]
    chunk_rows = head.chunks[0][0]
    block = head.compute()
    n = block.shape[0]
    gp = K.gaussian_params(gm.weights_, gm.means_, gm.precisions_cholesky_, "diag", n)  # type: ignore[attr-defined]
    params = K.EMParams((gp,), Affine(scale=1 / 255))
    kernel, read = [], []
    with threadpool_limits(1, "blas"):
        for _ in range(3):
            t0 = time.thread_time()
            for start in range(0, n, chunk_rows):
                K.em_kernel(block[start : start + chunk_rows], None, ChunkInfo(0, start), params)
            kernel.append(time.thread_time() - t0)
            t0 = time.process_time()
            for part in head.to_delayed().ravel():
                part.compute(scheduler="sync").sum(axis=0, dtype=np.uint64)
            read.append(time.process_time() - t0)
    return min(kernel) / n * 1e6, min(read) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default="/tmp/m8/mnist8100000.zarr")
    parser.add_argument("--n", type=int, default=None, help="rows (a prefix of the store, or the rows to generate)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iters", type=int, default=3, help="EM iterations per fit")
    parser.add_argument("--kernel-rows", type=int, default=200_000)
    args = parser.parse_args()
    load_start = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    X = open_store(args.store, args.n)
    print(f"X {X.shape} {X.dtype}, chunks {X.chunks[0][0]} rows", flush=True)  # type: ignore[attr-defined]
    floors, per_iter, gm = streamed(X, args.rounds, args.iters)
    kernel_us, read_us = per_row(X, gm, args.kernel_rows)
    load_end = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    f_min, f_med = min(floors), statistics.median(floors)
    e_min, e_med = min(per_iter), statistics.median(per_iter)
    print(f"""
### Diagonal GaussianMixture streamed from Zarr, against the read floor

Command: `python benchmarks/bench_gmm_mnist8m.py {" ".join(sys.argv[1:])}` — {time.strftime("%Y-%m-%d %H:%M")}

Machine: {cpu_model()}, {os.cpu_count()} CPUs; BLAS {blas_info()}; {versions()}; commit {git_commit()}.
Load average at start {load_start}, at end {load_end}.

Data: {X.shape[0]:,} rows × {X.shape[1]} uint8 from `{args.store}` (chunks of {X.chunks[0][0]:,} rows), `scaled(X, 1/255)`.
`LocalCluster(2 workers × 1 thread, 2 GiB)`, {args.rounds} rounds round-robin, {args.iters} EM iterations per fit.

| | least (s) | median (s) |
| --- | ---: | ---: |
| read floor (read, decompress, sum) | {f_min:.2f} | {f_med:.2f} |
| EM iteration, diag, 10 components | {e_min:.2f} | {e_med:.2f} |
| ratio EM / floor (target ≤ 1.5) | {e_min / f_min:.2f} | {e_med / f_med:.2f} |

Per row and core, one thread, the first {min(args.kernel_rows, X.shape[0]):,} rows: EM kernel on the rows in memory
{kernel_us:.2f} µs; reading and summing them from the store {read_us:.2f} µs (CPU time of the process).
""", flush=True)


if __name__ == "__main__":
    main()
