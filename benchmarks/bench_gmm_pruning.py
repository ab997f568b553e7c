"""Can bounds prune the diagonal E-step on MNIST8M? The gaps between a row's components, the
work an ideal pruning would leave, and a pruned kernel timed against ``diag_rows``, one thread.

Run from the project root (about a minute; the store is ``bench_mnist8m.py``'s)::

    python benchmarks/bench_gmm_pruning.py
    python benchmarks/bench_gmm_pruning.py --rows 65536 --iters 5 --width 32

**The idea.** With a diagonal precision a component's distance
``D_k = sum_j P_kj (v_j - mu_kj)^2`` is a sum of non-negative terms, so a partial sum over some
features bounds the weighted log-density from above: ``w_k <= log_const_k - partial_k / 2``.
Once a row's best component is computed in full (``top``), a component whose bound is below
``top - G`` has ``r_k <= exp(-G)``:

* ``G = 746`` (``exp`` underflows to 0 in float64): ``r_k`` is exactly 0, in scikit-learn too;
* ``G = -log(min_resp_k)`` (69.1 nats for components holding a row's worth of mass, the
  statistics' ``1e-30`` threshold of ``diag_rows``; 746 for the others): ``r_k`` is below the
  threshold, so the kernel's statistics leave it out anyway, and ``log p(x)`` moves by less
  than ``1e-30``.

Both are exact up to rounding against the unpruned kernel (plus a margin of 1 nat and the
relative rounding of a distance).

**What is measured**, on the benchmark's mixture (``GaussianMixture(10, "diag",
init_params="random_from_data", reg_covar=1e-3)`` on ``scaled(X, 1/255)``, fitted on the first
``--rows`` rows in memory) before each of its E-steps 1 .. ``--iters`` (E-step 1: ``random_from_data``'s
start, ten rows with variances ``reg_covar``, rebuilt here with the rows drawn by a seeded
generator):

1. per row (4,096 rows after the first chunk): how many components lie within 746 and 69 nats of
   the best, the median gap to the second, the median of the best's ``D / 2``;
2. the **ideal** distance work left by each ``G``, as a fraction of the dense loop's, when the
   best is known in advance and every other component is dropped at the first block of
   ``--width`` features (blocks in the order of :func:`block_order`) where its bound falls
   below ``top - G``: per row, and per group of four rows (the unit whose parameters the dense
   loop loads once);
3. a **pruned kernel** (per row: the head's ``HEAD_FEATURES`` features for every component four
   rows at a time, then the components by decreasing bound, each continued block by block until
   its bound falls below the stop or it is complete; per four rows: the same with a component
   continued for the four rows while one of them may hold it; statistics as ``diag_rows``) against
   ``diag_rows``'s kernel, per chunk, one thread, CPU time, alternated: least and median ms
   per chunk, (row, component) pairs computed in full per row, and the largest relative
   difference of ``log p(x)``, ``n_k``, ``sum r v`` and ``sum r v^2`` from the kernel's.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import numba
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_gmm import blas_info
from bench_gmm_mnist8m import fit_in_memory, open_store
from bench_kmeans import git_commit, versions
from machine import cpu_model

from daskcluster.kernels.mixture.diag_rows import ROW_GROUP, TILE_ROWS, _add_held
from daskcluster.kernels.mixture.estep import EXP_UNDERFLOW, row_responsibilities

#: Features of the head: their distances are computed for every component, four rows at a time.
HEAD_FEATURES = 64
#: ``exp(s)`` is 0 in float64 for ``s <= -EXACT_GAP``.
EXACT_GAP = -EXP_UNDERFLOW
FASTMATH = {"reassoc", "contract"}


def block_order(mb: np.ndarray, prec: np.ndarray, width: int) -> np.ndarray:
    """First columns of the blocks of ``width`` contiguous features, the blocks that separate
    the components most first: by ``sum_k P_kj (mu_kj - mean_k mu_kj)^2`` summed over a block."""
    d = mb.shape[1]
    spread = (prec * (mb - mb.mean(axis=0)) ** 2).sum(axis=0)
    starts = np.arange(0, d, width, dtype=np.int64)
    return np.ascontiguousarray(starts[np.argsort(-np.add.reduceat(spread, starts), kind="stable")], dtype=np.uint64)


@numba.njit(nogil=True, cache=True, fastmath=FASTMATH)
def _head4(v: np.ndarray, b0: int, mb: np.ndarray, prec: np.ndarray, starts: np.ndarray, n_head: int,
           width: int, part: np.ndarray) -> None:  # pragma: no cover (compiled)
    """``part[b, k]``: the distances over the blocks ``starts[:n_head]`` of rows ``b0 .. b0 + 3``."""
    d = np.uint64(mb.shape[1])
    for k in range(mb.shape[0]):
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        for h in range(n_head):
            s = starts[h]
            for j in range(s, min(s + width, d)):
                m = mb[k, j]
                p = prec[k, j]
                t0 = v[b0, j] - m
                t1 = v[b0 + 1, j] - m
                t2 = v[b0 + 2, j] - m
                t3 = v[b0 + 3, j] - m
                a0 += p * (t0 * t0)
                a1 += p * (t1 * t1)
                a2 += p * (t2 * t2)
                a3 += p * (t3 * t3)
        part[b0, k] = a0
        part[b0 + 1, k] = a1
        part[b0 + 2, k] = a2
        part[b0 + 3, k] = a3


@numba.njit(nogil=True, cache=True, fastmath=FASTMATH)
def _block(v: np.ndarray, b: int, mb: np.ndarray, prec: np.ndarray, k: int, s: int, e: int) -> float:  # pragma: no cover
    """Row ``b``'s distance to component ``k`` over the features ``s:e`` (``s``, ``e`` unsigned:
    from a signed start Numba cannot prove the index non-negative and does not vectorize the
    loop, 0.85 against 0.18-0.2 ns per feature)."""
    a = 0.0
    for j in range(s, e):
        t = v[b, j] - mb[k, j]
        a += prec[k, j] * (t * t)
    return a


@numba.njit(nogil=True, cache=True)
def _prune_row(v: np.ndarray, b: int, mb: np.ndarray, prec: np.ndarray, log_const: np.ndarray,
               starts: np.ndarray, n_head: int, width: int, part: np.ndarray, bound: np.ndarray,
               gap: np.ndarray, rel: float, lc_abs: float, w: np.ndarray) -> int:  # pragma: no cover (compiled)
    """``w[b]``, ``-inf`` for the components pruned (see the module notes): the components by
    decreasing bound, each continued block by block until its bound falls below
    ``top - gap_k - margin`` or it is complete; returns the components computed in full."""
    k_n = mb.shape[0]
    d = np.uint64(mb.shape[1])
    nb = starts.shape[0]
    for k in range(k_n):
        bound[k] = log_const[k] - 0.5 * part[b, k]
        w[b, k] = -np.inf
    top = -np.inf
    margin = 0.0
    done = 0
    for _ in range(k_n):
        k = 0
        best = -np.inf
        for q in range(k_n):
            if bound[q] > best:
                best = bound[q]
                k = q
        if done > 0 and not best >= top - EXACT_GAP - margin:  # every remaining bound is below
            break
        bound[k] = -np.inf
        stop = top - gap[k] - margin
        acc = part[b, k]
        whole = True
        for h in range(n_head, nb):
            if log_const[k] - 0.5 * acc < stop:
                whole = False
                break
            s = starts[h]
            acc += _block(v, b, mb, prec, k, s, min(s + width, d))
        value = log_const[k] - 0.5 * acc
        if not whole or value < stop:
            continue
        w[b, k] = value
        done += 1
        if value > top:
            top = value
            margin = 1.0 + rel * (lc_abs + abs(top) + EXACT_GAP)
    return done


@numba.njit(nogil=True, cache=True, fastmath=FASTMATH)
def _block4(v: np.ndarray, b0: int, mb: np.ndarray, prec: np.ndarray, k: int, s: int, e: int,
            acc: np.ndarray) -> None:  # pragma: no cover (compiled)
    """``acc[0:4] +=`` rows ``b0 .. b0 + 3``'s distances to component ``k`` over the features ``s:e``
    (unsigned, as for :func:`_block`)."""
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    for j in range(s, e):
        m = mb[k, j]
        p = prec[k, j]
        t0 = v[b0, j] - m
        t1 = v[b0 + 1, j] - m
        t2 = v[b0 + 2, j] - m
        t3 = v[b0 + 3, j] - m
        a0 += p * (t0 * t0)
        a1 += p * (t1 * t1)
        a2 += p * (t2 * t2)
        a3 += p * (t3 * t3)
    acc[0] += a0
    acc[1] += a1
    acc[2] += a2
    acc[3] += a3


@numba.njit(nogil=True, cache=True)
def _prune_group(v: np.ndarray, b0: int, mb: np.ndarray, prec: np.ndarray, log_const: np.ndarray,
                 starts: np.ndarray, n_head: int, width: int, part: np.ndarray, bound: np.ndarray,
                 gap: np.ndarray, rel: float, lc_abs: float, w: np.ndarray, acc: np.ndarray,
                 top: np.ndarray, margin: np.ndarray) -> int:  # pragma: no cover (compiled)
    """:func:`_prune_row` for the four rows ``b0 .. b0 + 3`` together: a component is continued
    block by block for all four while one of them may still hold it; pairs computed in full."""
    k_n = mb.shape[0]
    d = np.uint64(mb.shape[1])
    nb = starts.shape[0]
    for k in range(k_n):
        bound[k] = -np.inf
        for b in range(4):
            w[b0 + b, k] = -np.inf
            bound[k] = max(bound[k], log_const[k] - 0.5 * part[b0 + b, k])
    for b in range(4):
        top[b] = -np.inf
        margin[b] = 0.0
    done = 0
    first = True
    for _ in range(k_n):
        k = 0
        best = -np.inf
        for q in range(k_n):
            if bound[q] > best:
                best = bound[q]
                k = q
        if not first:
            low = True
            for b in range(4):
                low = low and not (best >= top[b] - EXACT_GAP - margin[b])
            if low:
                break
        first = False
        bound[k] = -np.inf
        for b in range(4):
            acc[b] = part[b0 + b, k]
        h = n_head
        while h < nb:
            alive = False
            for b in range(4):
                alive = alive or log_const[k] - 0.5 * acc[b] >= top[b] - gap[k] - margin[b]
            if not alive:
                break
            s = starts[h]
            _block4(v, b0, mb, prec, k, s, min(s + width, d), acc)
            h += 1
        if h < nb:
            continue
        for b in range(4):
            value = log_const[k] - 0.5 * acc[b]
            if value >= top[b] - gap[k] - margin[b]:
                w[b0 + b, k] = value
                done += 1
                if value > top[b]:
                    top[b] = value
                    margin[b] = 1.0 + rel * (lc_abs + abs(value) + EXACT_GAP)
    return done


@numba.njit(nogil=True, cache=True, fastmath=FASTMATH)
def _em_pruned(x: np.ndarray, scale: float, offset: float, ref: np.ndarray, mb: np.ndarray, prec: np.ndarray,
               log_const: np.ndarray, min_resp: np.ndarray, nk: np.ndarray, s1: np.ndarray, s2: np.ndarray,
               starts: np.ndarray, n_head: int, width: int, gap: np.ndarray, rel: float,
               groups: bool) -> tuple[float, int]:  # pragma: no cover (compiled)
    """``diag_rows._diag_em_rows`` with the pruned E-step, per row or (``groups``) per four rows;
    returns ``(sum log p(x), pairs in full)``."""
    n, d = x.shape
    k_n = mb.shape[0]
    v = np.empty((TILE_ROWS, d))
    w = np.empty((TILE_ROWS, k_n))
    part = np.empty((TILE_ROWS, k_n))
    bound = np.empty(k_n)
    acc4 = np.empty(4)
    top4 = np.empty(4)
    margin4 = np.empty(4)
    held = np.empty((k_n, TILE_ROWS), dtype=np.int64)
    resp = np.empty((k_n, TILE_ROWS))
    counts = np.zeros(k_n, dtype=np.int64)
    lc_abs = 0.0
    for k in range(k_n):
        if math.isfinite(log_const[k]):
            lc_abs = max(lc_abs, abs(log_const[k]))
    log_lik = 0.0
    full = 0
    for t0 in range(0, n, TILE_ROWS):
        t_rows = min(TILE_ROWS, n - t0)
        for g in range(0, t_rows, ROW_GROUP):
            rows = min(ROW_GROUP, t_rows - g)
            for b in range(ROW_GROUP):
                i = t0 + g + min(b, rows - 1)
                for j in range(d):
                    v[g + b, j] = (x[i, j] * scale + offset) - ref[j]
            _head4(v, g, mb, prec, starts, n_head, width, part)
            if groups:
                done = _prune_group(v, g, mb, prec, log_const, starts, n_head, width, part, bound, gap, rel, lc_abs,
                                    w, acc4, top4, margin4)
                full += done * rows // ROW_GROUP
        for b in range(t_rows):
            if not groups:
                full += _prune_row(v, b, mb, prec, log_const, starts, n_head, width, part, bound, gap, rel, lc_abs, w)
            log_norm, _, _ = row_responsibilities(w[b])
            log_lik += log_norm
            for k in range(k_n):
                r = w[b, k]
                if r != 0.0 and r >= min_resp[k]:
                    held[k, counts[k]] = b
                    resp[k, counts[k]] = r
                    counts[k] += 1
        _add_held(v, held, resp, counts, nk, s1, s2)
    return log_lik, full


def init_model(block: np.ndarray, k: int, reg_covar: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``random_from_data``'s start: ``k`` rows as means, variances ``reg_covar``, equal weights."""
    rows = np.random.default_rng(seed).choice(block.shape[0], k, replace=False)
    return np.full(k, 1.0 / k), block[rows] / 255.0, np.full((k, block.shape[1]), 1.0 / math.sqrt(reg_covar))


def gaps(x: np.ndarray, model: tuple[np.ndarray, np.ndarray, np.ndarray], width: int,
         min_resp: float) -> dict[str, float]:
    """Per-row gaps and the ideal pruned work (see the module notes) on the float rows ``x``."""
    weights, means, prec_chol = model
    prec = prec_chol**2
    d = x.shape[1]
    lc = np.log(weights) + np.log(prec_chol).sum(axis=1) - 0.5 * d * math.log(2 * math.pi)
    terms = (x[:, None, :] - means) ** 2 * prec  # (n, K, d)
    starts = block_order(means - x.mean(axis=0), prec, width)
    perm = np.concatenate([np.arange(int(s), min(int(s) + width, d)) for s in starts])
    cum = np.cumsum(terms[:, :, perm], axis=2)
    w = lc - 0.5 * cum[:, :, -1]
    top = w.max(axis=1)
    n, k = w.shape
    out = {"within 746 nats": float((w > (top - EXACT_GAP)[:, None]).sum(axis=1).mean()),
           "within 69 nats": float((w > (top + math.log(min_resp))[:, None]).sum(axis=1).mean()),
           "median gap to 2nd": float(np.median(np.sort(top[:, None] - w, axis=1)[:, 1])),
           "median D/2 of best": float(np.median(lc[w.argmax(axis=1)] - top))}
    bound = lc[None, :, None] - 0.5 * cum
    for name, g in (("746", EXACT_GAP), ("69", -math.log(min_resp))):
        below = bound < (top - g - 1.0)[:, None, None]
        first = np.where(below.any(axis=2), below.argmax(axis=2) + 1, d)
        first = np.minimum(np.ceil(first / width) * width, d)
        first[np.arange(n), w.argmax(axis=1)] = d
        groups = first[: n // 4 * 4].reshape(-1, 4, k).max(axis=1)
        out[f"ideal work G={name}, per row"] = float(first.sum() / (d * k * n))
        out[f"ideal work G={name}, four rows"] = float(groups.sum() / (d * k * groups.shape[0]))
    return out


def timed(block: np.ndarray, model: tuple[np.ndarray, np.ndarray, np.ndarray], chunk_rows: int, width: int,
          repeats: int) -> list[tuple[str, float, float, float, float]]:
    """Per chunk, one thread: the kernel and the pruned kernel with both gaps (see the notes)."""
    from daskcluster.kernels import mixture as K
    from daskcluster.kernels.blocks import Affine
    from daskcluster.kernels.mixture.diag_rows import DiagRows
    from daskcluster.kernels.mixture.stats import Accumulator

    affine = Affine(scale=1 / 255)
    gp = K.gaussian_params(*model, "diag", 8_100_000)
    chunks = [block[s : s + chunk_rows] for s in range(0, block.shape[0], chunk_rows)]
    loops = [DiagRows(gp, K.reference(c, affine), affine) for c in chunks]
    k, d = loops[0].mb.shape
    n_head = max(1, min(HEAD_FEATURES // width, -(-d // width)))
    rel = 4.0 * (d + 8) * float(np.finfo(np.float64).eps)

    def kernel(c: np.ndarray, dr: DiagRows, case: tuple[np.ndarray, bool] | None) -> tuple[Accumulator, float]:
        acc = Accumulator("diag", k, d, dr.min_resp)
        if case is None:
            dr.add(acc, c)
            return acc, float(k)
        gap, groups = case
        starts = block_order(dr.mb, dr.prec, width)
        acc.log_lik, full = _em_pruned(c, dr.scale, dr.offset, dr.ref, dr.mb, dr.prec, dr.log_const, dr.min_resp,
                                       acc.nk, acc.s1, acc.s2, starts, n_head, np.uint64(width), gap, rel, groups)
        return acc, full / c.shape[0]

    gap_stats = np.where(gp.min_resp > 0, -np.log(np.where(gp.min_resp > 0, gp.min_resp, 1.0)), EXACT_GAP)
    exact = np.full(k, EXACT_GAP)
    cases: dict[str, tuple[np.ndarray, bool] | None] = {
        "diag_rows kernel (dense)": None, "pruned per row, G = 746 (r exactly 0)": (exact, False),
        "pruned per row, G = -log min_resp (69)": (gap_stats, False),
        "pruned per four rows, G = 746": (exact, True), "pruned per four rows, G = -log min_resp": (gap_stats, True)}
    base = [kernel(c, dr, None)[0] for c, dr in zip(chunks, loops)]
    diffs: dict[str, float] = {}
    pairs: dict[str, float] = {}
    for name, case in cases.items():
        worst, per = 0.0, []
        for b0, c, dr in zip(base, chunks, loops):
            acc, full = kernel(c, dr, case)
            per.append(full)
            worst = max(worst, abs(acc.log_lik - b0.log_lik) / abs(b0.log_lik),
                        float(np.max(np.abs(acc.nk - b0.nk))) / float(b0.nk.max()),
                        float(np.max(np.abs(acc.s1 - b0.s1))) / float(np.max(np.abs(b0.s1))),
                        float(np.max(np.abs(acc.s2 - b0.s2))) / float(np.max(np.abs(b0.s2))))
        diffs[name], pairs[name] = worst, float(np.mean(per))
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, case in cases.items():
            for c, dr in zip(chunks, loops):
                t0 = time.thread_time()
                kernel(c, dr, case)
                times[name].append(time.thread_time() - t0)
    return [(name, min(t) * 1e3, statistics.median(t) * 1e3, pairs[name], diffs[name]) for name, t in times.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default="/tmp/m8/mnist8100000.zarr")
    parser.add_argument("--rows", type=int, default=65536, help="rows fitted and timed (a prefix of the store)")
    parser.add_argument("--iters", type=int, default=5, help="E-steps of the benchmark's fit examined")
    parser.add_argument("--width", type=int, default=64, help="features per block of the pruned E-step")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    load_start = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    X = open_store(args.store, None)
    block = X[: args.rows].compute()  # type: ignore[index]
    chunk_rows = X.chunks[0][0]  # type: ignore[attr-defined]
    x = block[chunk_rows : chunk_rows + 4096].astype(np.float64) / 255.0
    models = [init_model(block, 10, 1e-3, 0)]
    for it in range(1, args.iters):
        gm = fit_in_memory(block, it)
        models.append((gm.weights_, gm.means_, gm.precisions_cholesky_))  # type: ignore[attr-defined]
    print(f"""
### Pruning the diagonal E-step by bounds: `GaussianMixture(10, "diag")`, MNIST8M rows

Command: `python benchmarks/bench_gmm_pruning.py {" ".join(sys.argv[1:])}` — {time.strftime("%Y-%m-%d %H:%M")}

Machine: {cpu_model()}, {os.cpu_count()} CPUs; BLAS {blas_info()}; {versions()}; commit {git_commit()}.
Load average at start {load_start}. Mixture fitted on the first {args.rows:,} rows (`reg_covar=1e-3`,
`scaled(X, 1/255)`); gaps on 4,096 rows; blocks of {args.width} features; one thread, CPU time.
""", flush=True)
    print("| E-step | within 746 nats | within 69 nats | median gap to 2nd | median D/2 of best | ideal work "
          "G=746 per row / four rows | ideal work G=69 per row / four rows |\n| --- | ---: | ---: | ---: | ---: | ---: "
          "| ---: |")
    for i, m in enumerate(models, 1):
        g = gaps(x, m, args.width, 1e-30)
        print(f"| {i} | {g['within 746 nats']:.2f} | {g['within 69 nats']:.2f} | {g['median gap to 2nd']:.0f} | "
              f"{g['median D/2 of best']:.0f} | {g['ideal work G=746, per row']:.2f} / "
              f"{g['ideal work G=746, four rows']:.2f} | {g['ideal work G=69, per row']:.2f} / "
              f"{g['ideal work G=69, four rows']:.2f} |", flush=True)
    print("\n| E-step | kernel | ms / chunk (least) | median | pairs in full per row | largest relative difference "
          "|\n| --- | --- | ---: | ---: | ---: | ---: |")
    with threadpool_limits(1):
        for i, m in enumerate(models, 1):
            for name, lo, med, pairs, diff in timed(block, m, chunk_rows, args.width, args.repeats):
                print(f"| {i} | {name} | {lo:.1f} | {med:.1f} | {pairs:.2f} | {diff:.1e} |", flush=True)
    print(f"\nLoad average at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())}.")


if __name__ == "__main__":
    main()
