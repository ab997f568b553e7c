"""Diagonal GaussianMixture streamed from an MNIST8M-like Zarr store, against the read floor, one run.

Run from the project root::

    python benchmarks/bench_gmm_mnist8m.py --n 1000000            # ~2 minutes: 1 M rows
    python benchmarks/bench_gmm_mnist8m.py                        # the 8.1 M-row store
    python benchmarks/bench_gmm_mnist8m.py --n 1000000 --kernel-only   # 2 and 3 below, no cluster
    python benchmarks/bench_gmm_mnist8m.py --n 1000000 --variants --kernel-rows 131072   # 2 to 4

What is measured (one process, one run, so that ratios compare like with like):

1. **Streamed, on** ``LocalCluster(n_workers=2, threads_per_worker=1, memory_limit="2GiB")``,
   ``--rounds`` rounds, round-robin: the **read floor** (one pass that only reads, decompresses
   and touches every byte: ``tree_reduce`` of a column max, as in ``bench_mnist8m.py``; a
   column sum in ``uint64``, the floor before, costs a third of the decoding) and
   ``GaussianMixture(10, covariance_type="diag", init_params="random_from_data", reg_covar=1e-3,
   max_iter=--iters, tol=0, cache=False)`` on ``scaled(X, 1/255)``, its seconds per EM
   iteration from the progress hook (the pass of each iteration, client work included).
   Reported: least and median of each, and their ratio (target: EM iteration ≤ 1.5× the floor).
   One untimed floor pass and a one-iteration fit on one chunk warm the workers up first.
2. **Per row and core, in this process on one thread**: the EM kernel of the fitted model over
   the first ``--kernel-rows`` rows held in memory as ``uint8`` (CPU time of the thread), and
   the read floor of the same rows from the store (decompression and column max, CPU time of
   the process, so that codec threads are counted).
3. **Where the dense loop's time goes** (same rows, same thread): the compiled loop of
   ``kernels/mixture/diag_rows.py`` (which these rows, mostly zeros, no longer take) cut after each of its stages (cast and centring; distances;
   log-sum-exp and responsibilities; statistics), and how sparse the rows are (non-zero bytes,
   non-zero 8-byte words, the span from a row's first to its last non-zero, and the span of a
   group of four rows, the rows the distances take together).

4. **The kernel before and now, and ways of using the zeros** (``--variants``; same rows, same
   thread, per chunk of the store, CPU time, alternated): the loop with its statistics row by
   row (the kernel of commit e825fc4), the dense loop with statistics per 64-row tile
   (``diag_rows``), the kernel now (``DiagRows.add``, which takes these blocks on their non-zeros:
   ``diag_nonzeros``), the loop on the columns non-zero in each 128-row tile only, and per-row
   non-zeros with the parameters laid out (d, K) in Numba's own loops, and now with its
   parameters and sums 32 bytes into a cache line (as NumPy may place them); each with its
   largest relative difference from the kernel's statistics. Then the E-step's log-densities
   alone: now (the non-zero 8-feature groups of ``nonzero_groups``), now with its parameters 48
   bytes into a cache line, now on the same rows with each row's non-zeros moved to its first
   columns (fewer non-zero groups), and the walk of the non-zeros by bit masks with the
   components as vector lanes that it replaced (``diag_nonzeros`` at ``--walk-before``, read from
   git). Then the dense loop,
   now and now unaligned at the models of EM iterations 1 to ``--variant-iterations`` of the
   same fit.

``--kernel-only`` skips 1 and fits the model of 2 and 3 on the rows in memory instead;
``--variants`` implies it.

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

import numba
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_gmm import blas_info
from bench_kmeans import git_commit, versions
from bench_mnist8m import _max, _touch_block
from machine import cpu_model

from daskcluster.kernels.mixture.diag_rows import ROW_GROUP, _log_densities4
from daskcluster.kernels.mixture.estep import row_responsibilities


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
        tree_reduce(data, _touch_block, None, _max)
        GaussianMixture(10, covariance_type="diag", init_params="random_from_data", max_iter=1, random_state=0,
                        reg_covar=1e-3, cache=False).fit(scaled(X[: X.chunks[0][0]], 1 / 255))
        for r in range(rounds):
            t0 = time.perf_counter()
            tree_reduce(data, _touch_block, None, _max)
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


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _diag_stages(x: np.ndarray, scale: float, offset: float, ref: np.ndarray, mb: np.ndarray, prec: np.ndarray,
                 log_const: np.ndarray, min_resp: np.ndarray, nk: np.ndarray, s1: np.ndarray, s2: np.ndarray,
                 stages: int) -> float:  # pragma: no cover (compiled)
    """The loop of ``diag_rows._diag_em_rows`` before its statistics were batched per tile (its
    own helpers; statistics row by row), cut after ``stages`` of its four stages: 1 cast and
    centring, 2 distances, 3 log-sum-exp and responsibilities, 4 statistics. With ``stages=4``
    it is the kernel of commit e825fc4 (without the entropy's sum): the "before" of
    ``--variants``."""
    n, d = x.shape
    k_n = mb.shape[0]
    v = np.empty((ROW_GROUP, d))
    w = np.zeros((ROW_GROUP, k_n))
    log_lik = 0.0
    for i0 in range(0, n, ROW_GROUP):
        rows = min(ROW_GROUP, n - i0)
        for b in range(ROW_GROUP):
            i = i0 + min(b, rows - 1)
            for j in range(d):
                v[b, j] = (x[i, j] * scale + offset) - ref[j]
        if stages < 2:
            log_lik += v[0, 0]
            continue
        _log_densities4(v, 0, mb, prec, log_const, w)
        if stages < 3:
            log_lik += w[0, 0]
            continue
        for b in range(rows):
            log_norm, _, _ = row_responsibilities(w[b])
            log_lik += log_norm
            if stages < 4:
                continue
            for k in range(k_n):
                r = w[b, k]
                if r != 0.0 and r >= min_resp[k]:
                    nk[k] += r
                    for j in range(d):
                        t = v[b, j]
                        s1[k, j] += r * t
                        s2[k, j] += r * (t * t)
    return log_lik


def sparsity(block: np.ndarray) -> dict[str, float]:
    """How much of each row the zeros leave: fractions of the 784 columns per row."""
    nz = block != 0
    d = block.shape[1]
    words = nz[:, : d - d % 8].reshape(block.shape[0], -1, 8).any(axis=2)
    first, last = nz.argmax(axis=1), d - 1 - nz[:, ::-1].argmax(axis=1)
    g = nz[: block.shape[0] // 4 * 4].reshape(-1, 4, d).any(axis=1)
    g_first, g_last = g.argmax(axis=1), d - 1 - g[:, ::-1].argmax(axis=1)
    return {"non-zero bytes": float(nz.mean()), "non-zero 8-byte words": float(words.mean()),
            "row span (first to last non-zero)": float((last - first + 1).mean() / d),
            "span of 4 rows": float((g_last - g_first + 1).mean() / d)}


def kernel_stages(block: np.ndarray, gp: object, chunk_rows: int, repeats: int = 3) -> dict[str, float]:
    """Microseconds per row of each stage of the diagonal kernel, one thread (least of ``repeats``),
    and of the kernel itself (``em_kernel``), on the rows of ``block`` in chunks of ``chunk_rows``."""
    from daskcluster.kernels import mixture as K
    from daskcluster.kernels.blocks import Affine, ChunkInfo
    from daskcluster.kernels.mixture.diag_rows import DiagRows

    affine = Affine(scale=1 / 255)
    n = block.shape[0]
    chunks = [block[s : s + chunk_rows] for s in range(0, n, chunk_rows)]
    loops = [DiagRows(gp, K.reference(c, affine), affine) for c in chunks]  # type: ignore[arg-type]
    params = K.EMParams((gp,), affine)  # type: ignore[arg-type]

    def staged(stages: int) -> None:
        for c, dr in zip(chunks, loops):
            k, d = dr.mb.shape
            _diag_stages(c, dr.scale, dr.offset, dr.ref, dr.mb, dr.prec, dr.log_const, dr.min_resp, np.zeros(k),
                         np.zeros((k, d)), np.zeros((k, d)), stages)

    def whole() -> None:
        for start, c in zip(range(0, n, chunk_rows), chunks):
            K.em_kernel(c, None, ChunkInfo(0, start), params)

    cases = {f"stages 1-{s}": (lambda s=s: staged(s)) for s in (1, 2, 3, 4)}
    cases["em_kernel"] = whole
    times: dict[str, list[float]] = {name: [] for name in cases}
    for f in cases.values():
        f()  # compile / warm
    for _ in range(repeats):
        for name, f in cases.items():
            t0 = time.thread_time()
            f()
            times[name].append(time.thread_time() - t0)
    return {name: min(t) / n * 1e6 for name, t in times.items()}


# --------------------------------------------------------------------------- variants (--variants)
# Ways of using the rows' zeros, measured against the kernel and not built (see
# ``kernels/mixture/diag_rows.py``): each returns the block's sums like ``_diag_em_rows``.

FASTMATH = {"reassoc", "contract"}


@numba.njit(nogil=True, cache=True)
def _tile_columns(x: np.ndarray, start: int, stop: int, seen: np.ndarray,
                  cols: np.ndarray) -> int:  # pragma: no cover (compiled)
    """The columns with a non-zero in rows ``start:stop`` of ``x`` into ``cols``; their count."""
    d = x.shape[1]
    for j in range(d):
        seen[j] = False
    for i in range(start, stop):
        for j in range(d):
            seen[j] |= x[i, j] != 0
    m = 0
    for j in range(d):
        cols[m] = j
        m += seen[j]
    return m


@numba.njit(nogil=True, cache=True, fastmath=FASTMATH)
def _em_tile_columns(x: np.ndarray, scale: float, offset: float, ref: np.ndarray, mb: np.ndarray,
                     prec: np.ndarray, log_const: np.ndarray, min_resp: np.ndarray, nk: np.ndarray,
                     s1: np.ndarray, s2: np.ndarray, tile: int) -> float:  # pragma: no cover (compiled)
    """The row-by-row loop on the columns non-zero in some row of each ``tile``-row tile only
    (exact: a dropped column's ``v`` is the constant ``offset - ref_j``, whose distance terms
    go into the tile's ``log_const`` and whose statistics are ``c sum r``, ``c^2 sum r``)."""
    n, d = x.shape
    k_n = mb.shape[0]
    v = np.empty((ROW_GROUP, d))
    w = np.empty((ROW_GROUP, k_n))
    seen = np.empty(d, dtype=np.bool_)
    cols = np.empty(d, dtype=np.int64)
    lc = np.empty(k_n)
    mass = np.empty(k_n)
    log_lik = 0.0
    for t0 in range(0, n, tile):
        t1 = min(n, t0 + tile)
        dk = _tile_columns(x, t0, t1, seen, cols)
        mbc = np.empty((k_n, dk))
        pc = np.empty((k_n, dk))
        refc = np.empty(dk)
        s1c = np.zeros((k_n, dk))
        s2c = np.zeros((k_n, dk))
        for q in range(dk):
            refc[q] = ref[cols[q]]
        for k in range(k_n):
            a = 0.0
            for j in range(d):
                if not seen[j]:
                    t = (offset - ref[j]) - mb[k, j]
                    a += prec[k, j] * (t * t)
            lc[k] = log_const[k] - 0.5 * a
            mass[k] = 0.0
            for q in range(dk):
                mbc[k, q] = mb[k, cols[q]]
                pc[k, q] = prec[k, cols[q]]
        for i0 in range(t0, t1, ROW_GROUP):
            rows = min(ROW_GROUP, t1 - i0)
            for b in range(ROW_GROUP):
                i = i0 + min(b, rows - 1)
                for q in range(dk):
                    v[b, q] = (x[i, cols[q]] * scale + offset) - refc[q]
            _log_densities4(v, 0, mbc, pc, lc, w)
            for b in range(rows):
                log_norm, _, _ = row_responsibilities(w[b])
                log_lik += log_norm
                for k in range(k_n):
                    r = w[b, k]
                    if r != 0.0 and r >= min_resp[k]:
                        nk[k] += r
                        mass[k] += r
                        for q in range(dk):
                            t = v[b, q]
                            s1c[k, q] += r * t
                            s2c[k, q] += r * (t * t)
        for k in range(k_n):
            for q in range(dk):
                s1[k, cols[q]] += s1c[k, q]
                s2[k, cols[q]] += s2c[k, q]
            for j in range(d):
                if not seen[j]:
                    c = offset - ref[j]
                    s1[k, j] += mass[k] * c
                    s2[k, j] += mass[k] * (c * c)
    return log_lik


@numba.njit(nogil=True, cache=True, fastmath=FASTMATH)
def _em_nonzeros(x: np.ndarray, scale: float, pt: np.ndarray, at: np.ndarray, c: np.ndarray,
                 log_const: np.ndarray, min_resp: np.ndarray, nk: np.ndarray, t1: np.ndarray,
                 t2: np.ndarray) -> float:  # pragma: no cover (compiled)
    """Per row, its non-zeros ``y`` (branch-free compaction), the distances
    ``c_k + sum_nz y (P_jk y + A_jk)`` with the parameters laid out (d, K) (``A = -2 mu P``,
    ``c_k = sum_j P_kj mu_kj^2``; four non-zeros per K-vector update), and the statistics
    ``sum r y``, ``sum r y^2`` over the non-zeros, around 0 (the stored zero, ``offset`` 0)."""
    n, d = x.shape
    k_n = log_const.shape[0]
    kp = pt.shape[1]
    idx = np.empty(d, dtype=np.int64)
    val = np.empty(d)
    dist = np.empty(kp)
    w = np.empty(k_n)
    log_lik = 0.0
    for i in range(n):
        m = 0
        for j in range(d):
            xv = x[i, j]
            idx[m] = j
            val[m] = xv * scale
            m += xv != 0
        for k in range(kp):
            dist[k] = c[k]
        q = 0
        while q + 4 <= m:
            j0 = idx[q]
            j1 = idx[q + 1]
            j2 = idx[q + 2]
            j3 = idx[q + 3]
            y0 = val[q]
            y1 = val[q + 1]
            y2 = val[q + 2]
            y3 = val[q + 3]
            for k in range(kp):
                dist[k] += (y0 * (pt[j0, k] * y0 + at[j0, k]) + y1 * (pt[j1, k] * y1 + at[j1, k])) + (
                    y2 * (pt[j2, k] * y2 + at[j2, k]) + y3 * (pt[j3, k] * y3 + at[j3, k]))
            q += 4
        while q < m:
            j0 = idx[q]
            y0 = val[q]
            for k in range(kp):
                dist[k] += y0 * (pt[j0, k] * y0 + at[j0, k])
            q += 1
        for k in range(k_n):
            w[k] = log_const[k] - 0.5 * max(dist[k], 0.0)
        log_norm, _, _ = row_responsibilities(w)
        log_lik += log_norm
        for k in range(k_n):
            r = w[k]
            if r != 0.0 and r >= min_resp[k]:
                nk[k] += r
                for q in range(m):
                    y = val[q]
                    ry = r * y
                    t1[k, idx[q]] += ry
                    t2[k, idx[q]] += ry * y
    return log_lik


def variants(block: np.ndarray, gp: object, chunk_rows: int, repeats: int = 5,
             quick: bool = False) -> list[tuple[str, float, float, float]]:
    """Per chunk of ``block`` (one thread, CPU time): the kernel before and now and the variants
    above (``quick``: the dense loop, now and now unaligned only), alternated ``repeats`` times; per variant ``(name, least ms per chunk, median,
    largest relative difference of log p(x), n_k, the means and the second moments from now's)``."""
    from daskcluster.kernels import mixture as K
    from daskcluster.kernels.blocks import Affine
    from daskcluster.kernels.mixture.diag_rows import DiagRows
    from daskcluster.kernels.mixture.stats import Accumulator

    affine = Affine(scale=1 / 255)
    chunks = [block[s : s + chunk_rows] for s in range(0, block.shape[0], chunk_rows)]
    loops = [DiagRows(gp, K.reference(c, affine), affine) for c in chunks]  # type: ignore[arg-type]
    k, d = loops[0].mb.shape
    kp = -(-k // 4) * 4

    def new_acc() -> Accumulator:
        return Accumulator("diag", k, d, loops[0].min_resp)

    def now(c: np.ndarray, dr: DiagRows) -> tuple[float, Accumulator]:
        acc = new_acc()
        dr.add(acc, c)
        return acc.log_lik, acc

    def dense(c: np.ndarray, dr: DiagRows) -> tuple[float, Accumulator]:
        acc = new_acc()
        ll, _, _, _ = _diag_em_rows(c, dr.scale, dr.offset, dr.ref, dr.mb, dr.prec, dr.log_const, dr.min_resp,
                                    dr.floor, acc.nk, acc.s1, acc.s2)
        return ll, acc

    def before(c: np.ndarray, dr: DiagRows) -> tuple[float, Accumulator]:
        acc = new_acc()
        ll = _diag_stages(c, dr.scale, dr.offset, dr.ref, dr.mb, dr.prec, dr.log_const, dr.min_resp, acc.nk,
                          acc.s1, acc.s2, 4)
        return ll, acc

    def tile_columns(c: np.ndarray, dr: DiagRows) -> tuple[float, Accumulator]:
        acc = new_acc()
        ll = _em_tile_columns(c, dr.scale, dr.offset, dr.ref, dr.mb, dr.prec, dr.log_const, dr.min_resp, acc.nk,
                              acc.s1, acc.s2, 128)
        return ll, acc

    def nonzeros(c: np.ndarray, dr: DiagRows) -> tuple[float, Accumulator]:
        mu = dr.mb + dr.ref
        pt = np.zeros((d, kp))
        at = np.zeros((d, kp))
        cc = np.zeros(kp)
        pt[:, :k] = dr.prec.T
        at[:, :k] = (-2.0 * mu * dr.prec).T
        cc[:k] = (dr.prec * mu * mu).sum(axis=1)
        acc = new_acc()
        t1, t2 = np.zeros((k, d)), np.zeros((k, d))
        ll = _em_nonzeros(c, dr.scale, pt, at, cc, dr.log_const, dr.min_resp, acc.nk, t1, t2)
        acc.s1 = t1 - acc.nk[:, None] * dr.ref  # around ref, as the accumulator keeps them
        acc.s2 = t2 - 2.0 * dr.ref * t1 + acc.nk[:, None] * dr.ref * dr.ref
        return ll, acc

    def unaligned(c: np.ndarray, dr: DiagRows) -> tuple[float, Accumulator]:
        """``now`` with its parameters and sums starting 32 bytes into a cache line (as NumPy may place them)."""
        from daskcluster.kernels.mixture.diag_nonzeros import (
            BLOCK_COST,
            diag_em_nonzeros,
            padded_components,
        )
        from daskcluster.kernels.vector_ir import aligned_zeros

        def off_line(a: np.ndarray) -> np.ndarray:
            buf = aligned_zeros((a.size + 4,))
            out = buf[4 : 4 + a.size].reshape(a.shape)
            out[...] = a
            return out

        if dr._nonzero_params is None:
            dr.add(new_acc(), c[:1])
        p = dr._nonzero_params
        assert p is not None
        pp, pa = off_line(p.p), off_line(p.a)
        acc = new_acc()
        s1, s2 = off_line(np.zeros((k, d))), off_line(np.zeros((k, d)))
        width = padded_components(k)
        t1, t2 = off_line(np.zeros((d, width))), off_line(np.zeros((d, width)))
        ll, _, _, _ = diag_em_nonzeros(c, dr.scale, pp, pa, p.c, dr.log_const, dr.min_resp, dr.floor, acc.nk,
                                       s1, s2, t1, t2, BLOCK_COST)
        s1 += t1[:, :k].T
        s2 += t2[:, :k].T
        acc.s1 = s1 - acc.nk[:, None] * dr.ref
        acc.s2 = s2 - 2.0 * dr.ref * s1 + acc.nk[:, None] * (dr.ref * dr.ref)
        return ll, acc

    from daskcluster.kernels.mixture.diag_rows import _diag_em_rows

    assert all(dr.uses_nonzeros(c) for c, dr in zip(chunks, loops))
    cases = {"before (statistics row by row, commit e825fc4)": before,
             "dense loop, statistics per 64-row tile (diag_rows)": dense,
             "now: on non-zeros, the E-step by non-zero 8-feature groups (diag_nonzeros)": now,
             "now with its parameters and sums 32 bytes into a cache line": unaligned,
             "columns non-zero in the 128-row tile only": tile_columns,
             "per-row non-zeros, parameters (d, K), numba's own loops": nonzeros}
    if quick:
        cases = {name: f for name, f in cases.items() if f in (dense, now, unaligned)}
    times: dict[str, list[float]] = {name: [] for name in cases}
    ref_stats = []
    for c, dr in zip(chunks, loops):
        ll, acc = now(c, dr)
        acc.n_rows = c.shape[0]
        ref_stats.append((ll, acc.finish(dr.ref, np.zeros(d))))
    diffs: dict[str, float] = {}
    for name, f in cases.items():
        worst = 0.0
        for (ll0, st0), c, dr in zip(ref_stats, chunks, loops):
            ll, acc = f(c, dr)  # compiles on first call
            acc.n_rows = c.shape[0]
            st = acc.finish(dr.ref, np.zeros(d))
            worst = max(worst, abs(ll - ll0) / abs(ll0), float(np.max(np.abs(st.nk - st0.nk) / st0.nk.max())),
                        float(np.max(np.abs(st.means - st0.means))) / float(np.max(np.abs(st0.means))),
                        float(np.max(np.abs(st.m2 - st0.m2))) / float(np.max(np.abs(st0.m2))))
        diffs[name] = worst
    for _ in range(repeats):
        for name, f in cases.items():
            for c, dr in zip(chunks, loops):
                t0 = time.thread_time()
                f(c, dr)
                times[name].append(time.thread_time() - t0)
    return [(name, min(t) * 1e3, statistics.median(t) * 1e3, diffs[name]) for name, t in times.items()]


def walks(block: np.ndarray, gp: object, chunk_rows: int, before: str, repeats: int = 5) -> list[tuple[str, float, float, float]]:
    """The E-step's log-densities alone per chunk of ``block``, one thread, CPU time, alternated
    ``repeats`` times: now (``nonzero_groups.nonzero_log_densities``), now with its parameters
    48 bytes into a cache line, now on the same rows with each row's non-zeros moved to its first
    columns (fewer non-zero groups), and the walk of ``diag_nonzeros`` at commit ``before`` (its
    non-zeros by bit masks, the components as vector lanes); per case ``(name, least ms per chunk,
    median, largest relative difference from now's)``."""
    import tempfile

    from gmm_stats_ab import module_at

    from daskcluster.kernels import mixture as K
    from daskcluster.kernels.blocks import Affine
    from daskcluster.kernels.mixture.diag_rows import DiagRows
    from daskcluster.kernels.mixture.nonzero_groups import (
        GroupParams,
        nonzero_log_densities,
    )
    from daskcluster.kernels.vector_ir import aligned_zeros

    affine = Affine(scale=1 / 255)
    chunks = [block[s : s + chunk_rows] for s in range(0, block.shape[0], chunk_rows)]
    dr = DiagRows(gp, K.reference(chunks[0], affine), affine)  # type: ignore[arg-type]
    p = GroupParams(dr.means, dr.prec)
    k = dr.log_const.shape[0]

    def off_line(a: np.ndarray) -> np.ndarray:
        buf = aligned_zeros((a.size + 6,))
        out = buf[6 : 6 + a.size].reshape(a.shape)
        out[...] = a
        return out

    p48, a48 = off_line(p.p), off_line(p.a)
    outs = {id(c): np.empty((c.shape[0], k)) for c in chunks}
    packed = {id(c): np.take_along_axis(c, np.argsort(c == 0, axis=1, kind="stable"), axis=1) for c in chunks}
    with tempfile.TemporaryDirectory() as where:
        old = module_at(before, where)
        q = old.NonzeroParams(dr.means, dr.prec)
        cases = {
            "now: non-zero 8-feature groups, features as vector lanes (nonzero_groups)":
                lambda c: nonzero_log_densities(c, dr.scale, p.p, p.a, p.c, dr.log_const, outs[id(c)]),
            "now with p, a 48 bytes into a cache line":
                lambda c: nonzero_log_densities(c, dr.scale, p48, a48, p.c, dr.log_const, outs[id(c)]),
            f"non-zeros by bit masks, components as vector lanes (diag_nonzeros of {before})":
                lambda c: old.nonzero_log_densities(c, dr.scale, q.pt, q.at, q.c, dr.log_const, outs[id(c)]),
            "(now on the same rows, each row's non-zeros moved to its first columns)":
                lambda c: nonzero_log_densities(packed[id(c)], dr.scale, p.p, p.a, p.c, dr.log_const, outs[id(c)]),
        }
        ref = {}
        for c in chunks:
            next(iter(cases.values()))(c)
            ref[id(c)] = outs[id(c)].copy()
        diffs = {}
        for name, f in cases.items():
            worst = 0.0
            for c in chunks:
                f(c)
                if not name.startswith("("):
                    worst = max(worst, float(np.max(np.abs(outs[id(c)] - ref[id(c)]) / np.abs(ref[id(c)]))))
            diffs[name] = worst
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(repeats):
            for name, f in cases.items():
                for c in chunks:
                    t0 = time.thread_time()
                    f(c)
                    times[name].append(time.thread_time() - t0)
    return [(name, min(t) * 1e3, statistics.median(t) * 1e3, diffs[name]) for name, t in times.items()]


def fit_in_memory(block: np.ndarray, iters: int) -> object:
    """The benchmark's model fitted on rows in memory (threaded scheduler), for ``--kernel-only``."""
    import dask
    import dask.array as da

    from daskcluster import GaussianMixture, scaled

    with dask.config.set(scheduler="threads"):
        return GaussianMixture(10, covariance_type="diag", init_params="random_from_data", max_iter=iters, tol=0,
                               random_state=0, reg_covar=1e-3, cache=False).fit(
            scaled(da.from_array(block, chunks=(32768, -1)), 1 / 255))


def fitted_params(block: np.ndarray, iters: int) -> object:
    """The kernel's parameters of the model of :func:`fit_in_memory` after ``iters`` EM iterations."""
    from daskcluster.kernels import mixture as K

    gm = fit_in_memory(block, iters)
    return K.gaussian_params(gm.weights_, gm.means_, gm.precisions_cholesky_, "diag", block.shape[0])  # type: ignore[attr-defined]


def per_row(X: object, gm: object, rows: int, kernel_only: bool) -> dict[str, object]:
    """Per row on one core: the EM kernel on in-memory uint8 rows and each of its stages, reading
    the rows from the store (µs), and how sparse the rows are. ``gm`` is fitted on the rows in
    memory first when ``kernel_only``."""
    from threadpoolctl import threadpool_limits

    from daskcluster.kernels import mixture as K

    head = X[:rows]  # type: ignore[index]
    chunk_rows = head.chunks[0][0]
    block = head.compute()
    if kernel_only:
        gm = fit_in_memory(block, 3)
    gp = K.gaussian_params(gm.weights_, gm.means_, gm.precisions_cholesky_, "diag", block.shape[0])  # type: ignore[attr-defined]
    read = []
    with threadpool_limits(1, "blas"):
        stages = kernel_stages(block, gp, chunk_rows)
        for _ in range(3):
            t0 = time.process_time()
            for part in head.to_delayed().ravel():
                part.compute(scheduler="sync").max(axis=0)
            read.append(time.process_time() - t0)
    return {"kernel": stages["em_kernel"], "read": min(read) / block.shape[0] * 1e6, "stages": stages,
            "sparsity": sparsity(block), "rows": block.shape[0], "block": block, "gp": gp, "chunk_rows": chunk_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default="/tmp/m8/mnist8100000.zarr")
    parser.add_argument("--n", type=int, default=None, help="rows (a prefix of the store, or the rows to generate)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iters", type=int, default=3, help="EM iterations per fit")
    parser.add_argument("--kernel-rows", type=int, default=200_000)
    parser.add_argument("--kernel-only", action="store_true", help="no cluster: the per-row figures only")
    parser.add_argument("--variant-iterations", type=int, default=5,
                        help="with --variants: the dense loop and now at the models of EM iterations 1 to this")
    parser.add_argument("--walk-before", default="016406c",
                        help="with --variants: the commit whose E-step walk the log-densities are compared with")
    parser.add_argument("--variants", action="store_true",
                        help="no cluster: the per-row figures and the kernel before/now and its variants per chunk")
    args = parser.parse_args()
    args.kernel_only = args.kernel_only or args.variants
    load_start = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    X = open_store(args.store, args.n)
    print(f"X {X.shape} {X.dtype}, chunks {X.chunks[0][0]} rows", flush=True)  # type: ignore[attr-defined]
    floors: list[float] = []
    per_iter: list[float] = []
    gm = None
    if not args.kernel_only:
        floors, per_iter, gm = streamed(X, args.rounds, args.iters)
    r = per_row(X, gm, args.kernel_rows, args.kernel_only)
    load_end = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"""
### Diagonal GaussianMixture streamed from Zarr, against the read floor

Command: `python benchmarks/bench_gmm_mnist8m.py {" ".join(sys.argv[1:])}` — {time.strftime("%Y-%m-%d %H:%M")}

Machine: {cpu_model()}, {os.cpu_count()} CPUs; BLAS {blas_info()}; {versions()}; commit {git_commit()}.
Load average at start {load_start}, at end {load_end}.

Data: {X.shape[0]:,} rows × {X.shape[1]} uint8 from `{args.store}` (chunks of {X.chunks[0][0]:,} rows), `scaled(X, 1/255)`.""")
    if floors:
        f_min, f_med = min(floors), statistics.median(floors)
        e_min, e_med = min(per_iter), statistics.median(per_iter)
        print(f"""`LocalCluster(2 workers × 1 thread, 2 GiB)`, {args.rounds} rounds round-robin, {args.iters} EM iterations per fit.

| | least (s) | median (s) |
| --- | ---: | ---: |
| read floor (read, decompress, column max) | {f_min:.2f} | {f_med:.2f} |
| EM iteration, diag, 10 components | {e_min:.2f} | {e_med:.2f} |
| ratio EM / floor (target ≤ 1.5) | {e_min / f_min:.2f} | {e_med / f_med:.2f} |""")
    st = r["stages"]
    assert isinstance(st, dict)
    parts = [("cast and centring", st["stages 1-1"]), ("distances", st["stages 1-2"] - st["stages 1-1"]),
             ("log-sum-exp, responsibilities", st["stages 1-3"] - st["stages 1-2"]),
             ("statistics", st["stages 1-4"] - st["stages 1-3"]), ("the four stages", st["stages 1-4"]),
             ("`em_kernel` (the kernel of a pass)", st["em_kernel"])]
    sp = r["sparsity"]
    assert isinstance(sp, dict)
    print(f"""
Per row and core, one thread, the first {r["rows"]:,} rows (CPU time, least of 3): EM kernel on the rows in memory
{r["kernel"]:.2f} µs; reading them from the store (decode, column max) {r["read"]:.2f} µs (CPU time of the process).

| stage of the dense diagonal loop (`diag_rows`, not the pass these rows take) | µs / row |
| --- | ---: |
""" + "\n".join(f"| {name} | {us:.3f} |" for name, us in parts) + """

Sparsity of the rows (fraction of the columns): """ + "; ".join(f"{k} {v:.2f}" for k, v in sp.items()) + ".\n",
          flush=True)
    if args.variants:
        table = variants(r["block"], r["gp"], r["chunk_rows"])  # type: ignore[arg-type]
        chunk_rows = r["chunk_rows"]
        load_end = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"""Per chunk of {chunk_rows:,} rows, one thread, CPU time (least and median over the chunks and 5
alternated repeats), the model after 3 EM iterations; load average at the end {load_end}:

| kernel | ms / chunk (least) | median | largest relative difference from now's statistics |
| --- | ---: | ---: | ---: |
""" + "\n".join(f"| {name} | {lo:.1f} | {med:.1f} | {diff:.1e} |" for name, lo, med, diff in table) + "\n", flush=True)
        table = walks(r["block"], r["gp"], r["chunk_rows"], args.walk_before)  # type: ignore[arg-type]
        load_end = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"""The E-step's log-densities alone, per chunk of {chunk_rows:,} rows (same model, same measure; the
walk of `diag_nonzeros` at commit {args.walk_before}); load average at the end {load_end}:

| log-densities | ms / chunk (least) | median | largest relative difference from now's |
| --- | ---: | ---: | ---: |
""" + "\n".join(f"| {name} | {lo:.2f} | {med:.2f} | {diff:.1e} |" for name, lo, med, diff in table) + "\n", flush=True)
        rows = []
        for it in range(1, args.variant_iterations + 1):
            gp = fitted_params(r["block"], it)  # type: ignore[arg-type]
            for name, lo, med, diff in variants(r["block"], gp, r["chunk_rows"], quick=True):  # type: ignore[arg-type]
                rows.append(f"| {it} | {name} | {lo:.1f} | {med:.1f} | {diff:.1e} |")
        load_end = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"""The dense loop and now at the model of each EM iteration of the benchmark's fit (same rows, same
measure); load average at the end {load_end}:

| EM iteration | kernel | ms / chunk (least) | median | largest relative difference from now's statistics |
| ---: | --- | ---: | ---: | ---: |
""" + "\n".join(rows) + "\n", flush=True)


if __name__ == "__main__":
    main()
