"""OPNMF over the features of MNIST: daskcluster (one pass + client iterations) against the
``opnmf`` package, and daskcluster alone on the 8.1M-row generated store against its read floor.

    python benchmarks/bench_opnmf.py [--store /tmp/m8/mnist8100000.zarr] [--rounds 3]
        [--components 16] [--max-iter 1000] [--package-rows N] [--skip-8m] [--skip-package]

1. **Real MNIST** (70,000 x 784, when found) and **the largest subset of the store the package
   can hold** (the first ``--package-rows`` rows; by default as many as keep the package's peak
   memory -- its float64 ``X.T`` and the two temporaries of its error check, about 3x the input
   -- within 40% of the memory available, since the machine is shared). The package
   factorizes ``X.T`` (pixels x images): ``opnmf.opnmf.opnmf(X.T, k, init='custom', ...)``.
   Both start from the same ``W`` (daskcluster's NNDSVD), run ``--max-iter`` iterations
   (``tol=0``) and return ``W`` and the images' weights (the package's ``H``, daskcluster's
   ``fit_transform``). Pixels never inked in the rows used are dropped for both (the package
   fails on them: "SVD did not converge"; daskcluster does not). The package gets its float64
   ``X.T`` ready-made (not timed); daskcluster reads the ``uint8`` rows through
   ``scaled(X, 1/255)`` on the threaded scheduler. Rounds alternate the two; least and median.
2. **The 8.1M-row store**, streamed (``cache=False``) on ``LocalCluster(2 workers x 1 thread,
   2 GiB)``, default parameters (NNDSVD, ``tol=1e-5``, ``max_iter=50000``): the whole
   ``fit_transform`` (one pass; the weights are a lazy array), its Gram pass alone (from the
   progress report), the client iterations (the rest), against the read floor (a pass that
   reads, decompresses and sums the store), alternated round by round.

Prints the tables as Markdown (for ``benchmarks/RESULTS-opnmf.md``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from peak_rss import MIB, PeakRSS
from threadpoolctl import threadpool_limits


def _sum_block(block, weights, chunk, params):  # type: ignore[no-untyped-def]
    return block.sum(axis=0, dtype=np.uint64)


def _add(parts):  # type: ignore[no-untyped-def]
    return np.sum(parts, axis=0)


def lsm(values: list[float]) -> str:
    """``least / median``."""
    return f"{min(values):.2f} / {statistics.median(values):.2f}"


def our_nndsvd(X8: np.ndarray, k: int) -> np.ndarray:
    """daskcluster's NNDSVD start over the features of ``X8 / 255``, (n_features, k)."""
    from daskcluster import scaled
    from daskcluster.data import as_row_data
    from daskcluster.decomposition._opnmf_fit import prepare
    from daskcluster.decomposition._opnmf_init import nndsvd_features

    prep = prepare(as_row_data(scaled(X8, 1 / 255), owner="bench"), "features", "nndsvd", k, 0, "bench")
    assert prep.spectrum is not None
    return nndsvd_features(prep.spectrum, k, "nndsvd", prep.mean, 0)


def compare(name: str, X8: np.ndarray, k: int, max_iter: int, rounds: int) -> list[str]:
    """The package against daskcluster on the rows ``X8`` (uint8, blank pixels dropped)."""
    from opnmf.opnmf import opnmf

    from daskcluster import OPNMF, scaled
    from daskcluster.engine import count_passes

    inked = X8.any(axis=0)
    X8 = np.ascontiguousarray(X8[:, inked])
    n, d = X8.shape
    W0 = our_nndsvd(X8, k)
    Xt = np.ascontiguousarray((X8 / 255.0).T)  # the package's input: pixels x images, float64
    print(f"{name}: {n:,} rows x {d} inked pixels; package input {Xt.nbytes / 1e9:.2f} GB float64", flush=True)
    times: dict[str, list[float]] = {"package": [], "package_1t": [], "ours": [], "ours_nndsvd": []}
    peaks: list[float] = []
    result: dict[str, Any] = {}
    passes = 0
    for r in range(rounds):
        order = ["package", "ours", "package_1t", "ours_nndsvd"]
        for who in order if r % 2 == 0 else order[::-1]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if who.startswith("package"):
                    limit = threadpool_limits(1) if who == "package_1t" else nullcontext()
                    with PeakRSS() as rss, limit:
                        t0 = time.perf_counter()
                        Wp, Hp, err_p = opnmf(Xt, k, max_iter=max_iter, tol=0, init="custom", init_W=W0.copy())
                        times[who].append(time.perf_counter() - t0)
                    peaks.append(rss.growth_mib * MIB / 1e9)
                    result["package"] = (Wp, Hp, err_p)
                elif who == "ours":
                    model = OPNMF(k, orientation="features", init="custom", max_iter=max_iter, tol=0)
                    with count_passes() as counter:
                        t0 = time.perf_counter()
                        weights = model.fit_transform(scaled(X8, 1 / 255), init_W=W0)
                        times[who].append(time.perf_counter() - t0)
                    passes = counter.passes
                    result["ours"] = (model.coef_, weights, model.reconstruction_err_)
                else:
                    model = OPNMF(k, orientation="features", max_iter=max_iter, tol=0)
                    t0 = time.perf_counter()
                    model.fit_transform(scaled(X8, 1 / 255))
                    times[who].append(time.perf_counter() - t0)
            print(f"  round {r + 1} {who}: {times[who][-1]:.2f} s", flush=True)
    Wp, Hp, err_p = result["package"]
    Wo, To, err_o = result["ours"]
    dW = float(np.abs(Wo - Wp).max() / np.abs(Wp).max())
    dH = float(np.abs(To - Hp.T).max() / np.abs(Hp).max())
    # the package at its faster BLAS setting of each round
    best = [min(a, b) for a, b in zip(times["package"], times["package_1t"])]
    speed = [p / o for p, o in zip(best, times["ours"])]
    return [
        (f"| {name} | {n:,} x {d} | {lsm(times['package'])} | {lsm(times['package_1t'])} | {max(peaks):.2f} | "
        f"{lsm(times['ours'])} | {lsm(times['ours_nndsvd'])} | {passes} | {min(best) / min(times['ours']):.1f}x / "
        f"{statistics.median(speed):.1f}x | {dW:.1e} / {dH:.1e} | {err_p:.6g} / {err_o:.6g} |")
    ]


def largest_subset(d: int, available: int, cap: int) -> int:
    """Rows whose float64 ``X.T`` and two temporaries of its size take at most 40% of ``available``
    bytes, in whole 50,000s."""
    rows = int(0.4 * available // (3 * 8 * d))
    return max(50_000, min(cap, rows // 50_000 * 50_000))


def gram_compute_floor(X: Any, workers: int) -> float:
    """Seconds the float32 ``XᵀX`` of every row takes on ``workers`` cores, without reading:
    one chunk in memory, cast and multiplied slice by slice (one BLAS thread), best of 3,
    scaled to all rows and divided among the workers."""
    from daskcluster.kernels.blocks import slice_rows

    block = np.asarray(X.blocks[0].compute())
    rows = slice_rows(block.shape[1])
    buf = np.empty((rows, block.shape[1]), dtype=np.float32)
    best = np.inf
    with threadpool_limits(1):
        for _ in range(3):
            t0 = time.perf_counter()
            for start in range(0, len(block), rows):
                x = buf[: min(rows, len(block) - start)]
                np.copyto(x, block[start:start + rows], casting="unsafe")
                x.T @ x
            best = min(best, time.perf_counter() - t0)
    return best * X.shape[0] / len(block) / workers


RECORDED_FLOOR = 18.03  # benchmarks/RESULTS.md, out of core at MNIST8M size


def mnist8m(store: str, k: int, rounds: int) -> list[str]:
    """daskcluster over the features of the whole store, streamed, against the read floor."""
    from distributed import Client, LocalCluster

    from daskcluster import OPNMF, scaled
    from daskcluster.data import as_row_data
    from daskcluster.datasets import open_labeled_zarr
    from daskcluster.engine import count_passes, tree_reduce
    from daskcluster.progress import progress_hook

    X, _, _ = open_labeled_zarr(store)
    print(f"store: {X.shape} {X.dtype}, {X.numblocks[0]} chunks", flush=True)
    compute = gram_compute_floor(X, 2)
    print(f"Gram compute floor (float32 SYRK of every row, 2 cores, no reading): {compute:.2f} s", flush=True)
    floors: list[float] = []
    totals: list[float] = []
    grams: list[float] = []
    clients: list[float] = []
    info: dict[str, Any] = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB",
                      dashboard_address=None) as cluster, Client(cluster):
        data = as_row_data(X, owner="bench")
        for r in range(rounds):
            t0 = time.perf_counter()
            tree_reduce(data, _sum_block, ("floor", r), _add)  # other params each round: nothing reused
            floors.append(time.perf_counter() - t0)
            print(f"  round {r + 1} read floor: {floors[-1]:.2f} s", flush=True)
            gram: list[float] = []
            model = OPNMF(k, orientation="features", cache=False)
            with count_passes() as counter, warnings.catch_warnings(), \
                    progress_hook(lambda rep, seen=gram: seen.append(rep.seconds) if rep.stage == "init" else None):
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                weights = model.fit_transform(scaled(X, 1 / 255))
                totals.append(time.perf_counter() - t0)
            grams.append(sum(gram))
            clients.append(totals[-1] - grams[-1])
            info = {"passes": counter.passes, "n_iter": model.n_iter_, "error": model.reconstruction_err_,
                    "lazy": type(weights).__name__}
            print(f"  round {r + 1} OPNMF: {totals[-1]:.2f} s (Gram pass {grams[-1]:.2f} s, client "
                  f"{clients[-1]:.2f} s, {model.n_iter_} iterations, {counter.passes} pass)", flush=True)
    budget = [2 * f + c for f, c in zip(floors, clients)]
    ratio = [t / b for t, b in zip(totals, budget)]
    recorded = [2 * RECORDED_FLOOR + c for c in clients]
    ratio_rec = [t / b for t, b in zip(totals, recorded)]

    def verdict(values: list[float]) -> str:
        return f"{min(values):.2f} / {statistics.median(values):.2f}: **{'met' if statistics.median(values) < 1 else 'NOT met'}**"

    return [
        f"| read floor (read + decompress + sum), this session | {lsm(floors)} | | |",
        f"| Gram compute floor (float32 SYRK of every row on 2 cores, no reading) | {compute:.2f} | | |",
        (f"| OPNMF({k}) over the features, whole fit_transform | {lsm(totals)} | {info['passes']} | "
        f"{info['n_iter']} iterations, error {info['error']:.6g}, weights: lazy {info['lazy']} |"),
        (f"| — its Gram pass (with checks, NNDSVD sample, eigenvectors) | {lsm(grams)} | | "
        f"{min(grams) / min(floors):.2f}x / {statistics.median([g / f for g, f in zip(grams, floors)]):.2f}x "
        f"the read floor; {min(grams) / compute:.2f}x the compute floor |"),
        f"| — its client iterations | {lsm(clients)} | | |",
        (f"| target vs the recorded floor: fit < 2 x {RECORDED_FLOOR} s + client iterations | {lsm(recorded)} | | "
        f"fit / target {verdict(ratio_rec)} |"),
        (f"| the same vs this session's floor: fit < 2 x floor + client iterations | {lsm(budget)} | | "
        f"fit / target {verdict(ratio)} |"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="/tmp/m8/mnist8100000.zarr")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--components", type=int, default=16)
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--package-rows", type=int, default=None)
    parser.add_argument("--skip-8m", action="store_true")
    parser.add_argument("--skip-package", action="store_true")
    args = parser.parse_args()

    import dask
    import psutil
    import sklearn

    from daskcluster.datasets import find_mnist, load_mnist_npz, open_labeled_zarr

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"NumPy {np.__version__}, scikit-learn {sklearn.__version__}, dask {dask.__version__}; "
          f"load average at start {os.getloadavg()}", flush=True)
    lines: list[str] = []
    if not args.skip_package:
        head = [("| data | rows x pixels | package s | package s, 1 BLAS thread | package peak GB | ours s (same W0) | "
                "ours s (own NNDSVD) | our passes | speed-up (least / median) | max ΔW / ΔH (relative) | "
                "error package / ours |"),
                "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        mnist = find_mnist(Path(__file__).resolve().parents[1])
        if mnist is not None:
            X, _ = load_mnist_npz(mnist)
            lines += compare("real MNIST", X.reshape(len(X), -1), args.components, args.max_iter, args.rounds)
        X, _, _ = open_labeled_zarr(args.store)
        rows = args.package_rows or largest_subset(784, psutil.virtual_memory().available, X.shape[0])
        print(f"largest subset for the package: {rows:,} rows "
              f"({psutil.virtual_memory().available / 1e9:.1f} GB available)", flush=True)
        X8 = np.asarray(X[:rows].compute())
        lines += compare(f"store, first {rows:,} rows", X8, args.components, args.max_iter, args.rounds)
        del X8
        print(f"\nOPNMF({args.components}) over the features, {args.max_iter} iterations (tol=0), "
              f"least / median of {args.rounds} rounds\n")
        print("\n".join(head + lines), flush=True)
    if not args.skip_8m:
        rows8 = mnist8m(args.store, args.components, args.rounds)
        print(f"\n8.1M rows, streamed, least / median of {args.rounds} rounds\n")
        print("| what | seconds | passes | notes |\n| --- | ---: | ---: | --- |")
        print("\n".join(rows8))
    print(f"\nload average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
