"""The uint8 Lloyd step and product of few centers (``kernels/rowproducts.py``) at a past commit
against now, on MNIST8M chunks and real centers, one thread, CPU time, alternated.

Run from the project root::

    python benchmarks/kmeans_chunk_ab.py --before 2ce1824 --x X.npy --centers CENTERS.npz

``--x``: ``uint8`` rows (n, 784) cut into chunks of ``--chunk`` rows (32,768: the benchmark's
chunks); ``--centers``: a ``.npz`` of ``KMeans(10)`` centers after Lloyd iterations
``--iterations`` (arrays ``centers{i}``, in the space of ``X * --scale``, as
``bench_mnist8m.py`` fits them through ``scaled(X, 1/255)``). The module of ``--before`` is read
from git and imported beside the current one; both get the centers as a pass gives them
(:class:`~daskcluster.kernels.assign.CenterTable` of the centers mapped to the storage space).
Per set of centers, the least and median CPU time of a chunk over ``--repeats`` alternated rounds
are printed for ``lloyd_step`` (labels, distances, sums) and ``products`` (products and norms),
with whether the labels, counts and sums are equal and the largest relative difference of the
distances.

``--integer`` times, in the same alternated rounds, the float32 walk (``rowproducts.lloyd_step``)
against the 8-bit integer products (``kernels/byteproducts.py``, where the CPU has AVX-512 VNNI),
with whether their labels, counts and sums are equal, the largest relative difference of their
distances, and each one's inertia's relative difference from the exact one (``math.fsum``).

``--passes`` then times the whole chunk kernels of a pass of the tree that is imported (no
A/B): the Lloyd pass (``sweep_kernel`` of one Lloyd member), the first Elkan pass (every distance,
the bounds made) and the next Elkan passes from the centers of iterations ``a`` to ``b``
(``--elkan-steps a:b,...``, each from the state its first pass left), least CPU time a chunk over
``--repeats``. To time a past tree's kernels, export it and put it first on the path::

    git archive 2ce1824 | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old python benchmarks/kmeans_chunk_ab.py --passes --x X.npy --centers CENTERS.npz
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model  # noqa: E402
from past_module import module_at  # noqa: E402

from daskcluster.kernels import assign as A  # noqa: E402
from daskcluster.kernels import rowproducts  # noqa: E402
from daskcluster.kernels.blocks import Affine  # noqa: E402

PATH = "daskcluster/kernels/rowproducts.py"


def lloyd_runner(mod: Any, x: np.ndarray, minus2: np.ndarray, c_sq: np.ndarray) -> Callable[[], tuple[Any, ...]]:
    k, d = minus2.shape

    def run() -> tuple[Any, ...]:
        labels, min_sq, sums, wic = np.empty(len(x), dtype=np.int64), np.empty(len(x)), np.zeros((k, d)), np.zeros(k)
        mod.lloyd_step(x, minus2, c_sq, labels, min_sq, np.zeros(0), False, sums, wic)
        return labels, min_sq, sums, wic

    return run


def products_runner(mod: Any, x: np.ndarray, minus2: np.ndarray) -> Callable[[], tuple[Any, ...]]:
    def run() -> tuple[Any, ...]:
        g, x_sq = np.empty((len(x), minus2.shape[0]), dtype=np.float32), np.empty(len(x))
        mod.products(x, minus2, g, x_sq)
        return g, x_sq

    return run


def integer_ab(chunks: list[np.ndarray], centers: Any, affine: Affine, iterations: str, repeats: int) -> None:
    """The float32 walk against the 8-bit integer products, per set of centers, alternated."""
    import math

    from daskcluster.kernels import byteproducts

    if not byteproducts.available():
        print("this CPU has no AVX-512 VNNI: no 8-bit integer products to time")
        return
    print("| iteration | float32 walk | 8-bit products | labels, counts, sums equal | largest relative difference "
          "of the distances | inertia - exact, relative: walk / 8-bit |")
    print("| --- | ---: | ---: | --- | ---: | --- |")
    for it in (int(i) for i in iterations.split(",")):
        c32 = affine.to_storage_space(centers[f"centers{it}"].astype(np.float32)).astype(np.float32)
        table = A.CenterTable.of(c32)
        minus2 = np.ascontiguousarray(table.minus2_t.T)
        byte_centers = byteproducts.ByteCenters(minus2, table.sq_norms)
        k, d = minus2.shape

        def walk(x: np.ndarray) -> tuple[Any, ...]:
            labels, min_sq, sums, wic = np.empty(len(x), dtype=np.int64), np.empty(len(x)), np.zeros((k, d)), np.zeros(k)
            rowproducts.lloyd_step(x, minus2, table.sq_norms, labels, min_sq, np.zeros(0), False, sums, wic)
            return labels, min_sq, sums, wic, float(min_sq.sum())

        def byte(x: np.ndarray) -> tuple[Any, ...]:
            labels, min_sq, sums, wic = np.empty(len(x), dtype=np.int64), np.empty(len(x)), np.zeros((k, d)), np.zeros(k)
            inertia = byteproducts.lloyd_step(x, byte_centers, labels, min_sq, sums, wic)
            return labels, min_sq, sums, wic, inertia

        equal, diff, err_walk, err_byte = True, 0.0, 0.0, 0.0
        for x in chunks:
            ra, rb = walk(x), byte(x)
            equal &= all(np.array_equal(u, v) for u, v in zip((ra[0], ra[2], ra[3]), (rb[0], rb[2], rb[3])))
            diff = max(diff, float(np.max(np.abs(ra[1] - rb[1]) / np.maximum(np.abs(ra[1]), 1e-300))))
            x64, c64 = x.astype(np.float64), c32.astype(np.float64)[ra[0]]
            exact = math.fsum(np.concatenate([(x64 * x64).ravel(), (-2.0 * x64 * c64).ravel(), (c64 * c64).ravel()]))
            err_walk = max(err_walk, abs(ra[4] - exact) / exact)
            err_byte = max(err_byte, abs(rb[4] - exact) / exact)
        cases = {"walk": [lambda x=x: walk(x) for x in chunks], "byte": [lambda x=x: byte(x) for x in chunks]}
        print(f"| {it} | " + " | ".join(timed(cases, repeats)) + f" | {equal} | {diff:.1e} | "
              f"{err_walk:.1e} / {err_byte:.1e} |")
        sys.stdout.flush()


def timed(cases: dict[str, list[Callable[[], Any]]], repeats: int) -> list[str]:
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, runs in cases.items():
            for run in runs:
                t0 = time.thread_time()
                run()
                times[name].append(time.thread_time() - t0)
    return [f"{min(t) * 1e3:.2f} ({statistics.median(t) * 1e3:.2f})" for t in times.values()]


def least(run: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.thread_time()
        run()
        times.append(time.thread_time() - t0)
    return min(times) * 1e3


def passes(chunks: list[np.ndarray], centers: Any, affine: Affine, iteration: int, steps: str, repeats: int) -> None:
    """The chunk kernels of a Lloyd pass and of Elkan passes, ms a chunk (mean over the chunks of
    the least of ``repeats``)."""
    from daskcluster.kernels import bounds as B
    from daskcluster.kernels import sweep as S
    from daskcluster.kernels.blocks import ChunkInfo

    def at(it: int) -> np.ndarray:
        return np.asarray(centers[f"centers{it}"], dtype=np.float32)

    lloyd = S.SweepParams((S.Member(S.LLOYD, at(iteration), n_far=len(at(iteration))),), affine)
    rows = [("Lloyd pass", [lambda x=x, i=i: S.sweep_kernel(x, None, ChunkInfo(i, 0), lloyd)
                            for i, x in enumerate(chunks)])]
    first = S.SweepParams((S.Member(S.ELKAN, at(iteration), n_far=10, key=1, generation=1),), affine)
    rows.append(("first Elkan pass", [lambda x=x, i=i: S.sweep_state_kernel(x, None, ChunkInfo(i, 0), first, None)
                                      for i, x in enumerate(chunks)]))
    print("| chunk kernel | ms a chunk | share of the distances computed |")
    print("| --- | ---: | ---: |")
    for name, runs in rows:
        print(f"| {name} (centers of iteration {iteration}) | {np.mean([least(r, repeats) for r in runs]):.2f} | 1 |")
    for step in steps.split(","):
        a, b = (int(v) for v in step.split(":"))
        prev, now = affine.to_storage_space(at(a)).astype(np.float64), affine.to_storage_space(at(b)).astype(np.float64)
        half_cc, half_sep = B.center_geometry(now)
        start = S.SweepParams((S.Member(S.ELKAN, at(a), n_far=10, key=1, generation=1),), affine)
        nxt = S.SweepParams((S.Member(S.ELKAN, at(b), n_far=10, key=1, generation=2,
                                      drift=np.sqrt(((now - prev) ** 2).sum(1)), half_cc=half_cc,
                                      half_sep=half_sep),), affine)
        times, shares = [], []
        for i, x in enumerate(chunks):
            best = np.inf
            for _ in range(repeats):
                state = S.sweep_state_kernel(x, None, ChunkInfo(i, 0), start, None)[1]
                t0 = time.thread_time()
                stats = S.sweep_state_kernel(x, None, ChunkInfo(i, 0), nxt, state)[0]
                best = min(best, time.thread_time() - t0)
            times.append(best * 1e3)
            shares.append(stats.computed[0] / (len(x) * len(now)))
        print(f"| next Elkan pass, centers of iteration {a} -> {b} | {np.mean(times):.2f} | {np.mean(shares):.3f} |")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="the commit to compare with (without it, --passes only)")
    parser.add_argument("--x", required=True)
    parser.add_argument("--centers", required=True)
    parser.add_argument("--iterations", default="1,3,5")
    parser.add_argument("--scale", type=float, default=1 / 255)
    parser.add_argument("--chunk", type=int, default=32768)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--passes", action="store_true", help="time the chunk kernels of the imported tree")
    parser.add_argument("--iteration", type=int, default=3, help="the centers of the Lloyd and first Elkan pass")
    parser.add_argument("--elkan-steps", default="3:4,10:11")
    parser.add_argument("--integer", action="store_true", help="the float32 walk against the 8-bit integer products")
    args = parser.parse_args()
    x = np.load(args.x)
    chunks = [np.ascontiguousarray(x[s : s + args.chunk]) for s in range(0, x.shape[0], args.chunk)]
    centers = np.load(args.centers)
    affine = Affine(scale=args.scale)
    print(f"{cpu_model()}; load average {os.getloadavg()}; {len(chunks)} chunks of {args.chunk} rows; "
          f"CPU time of the thread, ms a chunk, least (median) over {args.repeats} alternated rounds")
    if args.integer:
        integer_ab(chunks, centers, affine, args.iterations, args.repeats)
    if args.passes:
        passes(chunks, centers, affine, args.iteration, args.elkan_steps, args.repeats)
    if args.before is None:
        return
    with tempfile.TemporaryDirectory() as where:
        before = module_at(args.before, PATH, where)
        print(f"| iteration | step | {args.before} | now | labels, counts, sums equal | largest relative "
              "difference of the distances |")
        print("| --- | --- | ---: | ---: | --- | ---: |")
        for it in (int(i) for i in args.iterations.split(",")):
            table = A.CenterTable.of(affine.to_storage_space(centers[f"centers{it}"].astype(np.float32)))
            minus2 = np.ascontiguousarray(table.minus2_t.T)
            mods = {"before": before, "now": rowproducts}
            lloyd = {name: [lloyd_runner(m, c, minus2, table.sq_norms) for c in chunks] for name, m in mods.items()}
            prods = {name: [products_runner(m, c, minus2) for c in chunks] for name, m in mods.items()}
            equal, diff = True, 0.0
            for a, b in zip(lloyd["before"], lloyd["now"]):
                ra, rb = a(), b()
                equal &= all(np.array_equal(u, v) for u, v in zip((ra[0], ra[2], ra[3]), (rb[0], rb[2], rb[3])))
                diff = max(diff, float(np.max(np.abs(ra[1] - rb[1]) / np.maximum(np.abs(ra[1]), 1e-300))))
            print(f"| {it} | lloyd_step | " + " | ".join(timed(lloyd, args.repeats)) + f" | {equal} | {diff:.1e} |")
            print(f"| {it} | products | " + " | ".join(timed(prods, args.repeats)) + " | | |")
            sys.stdout.flush()
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
