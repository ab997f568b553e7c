"""What a streamed pass may cost a chunk against its read floor, and what its arithmetic costs.

Run from the project root::

    python benchmarks/pass_budget.py --store /tmp/m8/mnist8100000.zarr --chunks 8

A streamed pass of a chunk costs about its read ``R`` (file read and Blosc decode, as a pass's
reading task does it, :func:`daskcluster.io_chunks.read_rows`) plus its kernel ``K`` on the
same core; the read floor costs ``R`` plus the floor's touch ``T`` (a column-wise max that reads
every byte, as ``bench_mnist8m.py`` takes it). A pass at ``r`` times the floor therefore needs
``K <= (r - 1) R + r T`` (per-task costs outside both, ``O`` a chunk, add ``(r - 1) O``). This
script measures, one thread, least CPU time a chunk over ``--repeats`` rounds, on the first
``--chunks`` chunks of the store's array ``X`` (uint8 rows, read as ``X / 255``):

* ``R`` and ``T``;
* the Lloyd pass's kernel as a pass runs it (``sweep_kernel`` of one Lloyd member, ``KMeans(10)``
  centers) and, on CPUs with AVX-512 VNNI, its 8-bit integer products alone (every row's
  non-zero 8-feature groups against the centers' slots, nothing else:
  :mod:`daskcluster.kernels.byteproducts`), a floor of that kernel's arithmetic;
* the diagonal EM pass's kernel as a pass runs it (``em_kernel``, ``GaussianMixture(10,
  "diag")`` as ``bench_mnist8m.py`` fits it: ``reg_covar=1e-3``, ``init_params=
  "random_from_data"``) and its float32 walk alone (every component over every row's non-zero
  groups, :func:`daskcluster.kernels.mixture.nonzero_groups.tile_distances` with the float32
  parameters), the first stage of its E-step.

The centers and the mixture are fitted on the chunks read (``--iterations`` iterations, Dask's
synchronous scheduler). Prints one Markdown table with each kernel against the budgets of the
issue's targets, 1.2x (k-means) and 1.5x (EM).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model  # noqa: E402

from daskcluster.kernels.byteproducts import _row_bytes  # noqa: E402
from daskcluster.kernels.mixture.nonzero_groups import GROUP, TILE_ROWS, tile_distances  # noqa: E402


def least_ms(runs: list[Callable[[], Any]], repeats: int) -> float:
    """The mean over ``runs`` (one per chunk) of each one's least CPU time of the thread, ms (each
    run once before: compilation, first touches)."""
    for run in runs:
        run()
    best = [np.inf] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            t0 = time.thread_time()
            run()
            best[i] = min(best[i], time.thread_time() - t0)
    return float(np.mean(best)) * 1e3


@numba.njit(nogil=True)
def _byte_products(x: np.ndarray, table: np.ndarray, acc: np.ndarray) -> int:  # pragma: no cover - compiled
    total = 0
    for i in range(x.shape[0]):
        total += _row_bytes(x, i, table, acc)
    return total


@numba.njit(nogil=True)
def _float32_walk(x: np.ndarray, scale: float, p32: np.ndarray, a32: np.ndarray, dist: np.ndarray,
                  acc32: np.ndarray) -> None:  # pragma: no cover - compiled
    for t0 in range(0, x.shape[0], TILE_ROWS):
        tile_distances(x, t0, min(TILE_ROWS, x.shape[0] - t0), np.float32(scale), p32, a32, dist, acc32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="/tmp/m8/mnist8100000.zarr")
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args()

    import dask
    import dask.array as da
    import zarr

    from daskcluster import KMeans, scaled
    from daskcluster.io_chunks import read_rows
    from daskcluster.kernels import assign as A
    from daskcluster.kernels import byteproducts
    from daskcluster.kernels import sweep as S
    from daskcluster.kernels.blocks import Affine, ChunkInfo
    from daskcluster.kernels.mixture.nonzero_groups import GroupParams
    from daskcluster.kernels.mixture.params import gaussian_params
    from daskcluster.kernels.mixture.passes import EMParams, em_kernel
    from daskcluster.kernels.mixture.diag_rows import DiagRows
    from daskcluster.kernels.mixture.estep import reference
    from daskcluster.mixture import GaussianMixture

    z = zarr.open_group(args.store, mode="r")["X"]
    rows = int(z.chunks[0])
    keys = [(slice(c * rows, (c + 1) * rows), slice(None)) for c in range(args.chunks)]
    chunks = [read_rows(z, key) for key in keys]
    if any(c is None for c in chunks):
        raise SystemExit(f"{args.store}: not a local Blosc store of whole-row chunks (daskcluster's default layout)")
    affine = Affine(scale=1 / 255)
    blas = "; ".join(f"{i['internal_api']} {i['version']} ({i.get('architecture')})" for i in threadpool_info())
    print(f"CPU {cpu_model()}; BLAS {blas}; load average {os.getloadavg()}; {args.chunks} chunks of {rows} x "
          f"{z.shape[1]} {z.dtype}; one thread, least CPU time of {args.repeats}, ms a chunk (mean over the chunks)")

    X = scaled(da.concatenate([da.from_array(c, chunks=c.shape) for c in chunks]), 1 / 255)
    with dask.config.set(scheduler="sync"):
        km = KMeans(10, random_state=0, max_iter=args.iterations, tol=0).fit(X)
        gm = GaussianMixture(10, covariance_type="diag", init_params="random_from_data", reg_covar=1e-3,
                             max_iter=args.iterations, tol=0, random_state=0).fit(X)
    centers = np.asarray(km.cluster_centers_, dtype=np.float32)
    gp = gaussian_params(gm.weights_, gm.means_, gm.precisions_cholesky_, "diag", n_samples=len(chunks) * rows)

    with threadpool_limits(1):
        read = least_ms([lambda key=key: read_rows(z, key) for key in keys], args.repeats)
        touch = least_ms([lambda c=c: c.max(axis=0) for c in chunks], args.repeats)
        lloyd = S.SweepParams((S.Member(S.LLOYD, centers, n_far=len(centers)),), affine)
        lloyd_pass = least_ms([lambda c=c, i=i: S.sweep_kernel(c, None, ChunkInfo(i, 0), lloyd)
                               for i, c in enumerate(chunks)], args.repeats)
        products = np.nan
        if byteproducts.available():
            table = A.CenterTable.of(affine.to_storage_space(centers).astype(np.float32))
            bc = byteproducts.ByteCenters(np.ascontiguousarray(table.minus2_t.T), table.sq_norms)
            acc = np.zeros(GROUP * bc.table.shape[1], dtype=np.int32)
            products = least_ms([lambda c=c: _byte_products(c, bc.table, acc) for c in chunks], args.repeats)
        em = EMParams((gp,), affine)
        em_pass = least_ms([lambda c=c, i=i: em_kernel(c, None, ChunkInfo(i, 0), em) for i, c in enumerate(chunks)],
                           args.repeats)
        dr = DiagRows(gp, reference(chunks[0], affine), affine)
        gpar = GroupParams(dr.means, dr.prec)
        k = gpar.p.shape[0]
        dist, acc32 = np.empty((TILE_ROWS, k)), np.empty((TILE_ROWS, k, GROUP), dtype=np.float32)
        walk = least_ms([lambda c=c: _float32_walk(c, dr.scale, gpar.p32, gpar.a32, dist, acc32) for c in chunks],
                        args.repeats)

    def budget(r: float) -> float:
        return (r - 1.0) * read + r * touch

    print(f"\nread R = {read:.2f} ms, touch T = {touch:.2f} ms, floor R + T = {read + touch:.2f} ms a chunk\n")
    print("| kernel | ms a chunk | pass / floor | budget at the target | its arithmetic alone |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| Lloyd pass (`sweep_kernel`, k = 10) | {lloyd_pass:.2f} | {(read + lloyd_pass) / (read + touch):.2f}x "
          f"| {budget(1.2):.2f} (1.2x) | {products:.2f} (8-bit products of the non-zero groups) |")
    print(f"| diagonal EM pass (`em_kernel`, K = 10) | {em_pass:.2f} | {(read + em_pass) / (read + touch):.2f}x | "
          f"{budget(1.5):.2f} (1.5x) | {walk:.2f} (float32 walk, every component) |")
    print(f"\nload average {os.getloadavg()}")


if __name__ == "__main__":
    main()
