"""``'full'``: each component has its own covariance matrix.

**E-step.** Up to :data:`~..whitened.MAX_FEATURES` features (100, the measured crossover) and
upper-triangular factors ``L_k`` (scikit-learn's ``precisions_cholesky_``), the squared
whitened distances ``||(x - ref) L_k - (mu_k - ref) L_k||^2`` of a tile are one compiled loop
of register blocks that writes nothing but the (rows, K) distances
(:func:`~..whitened.whitened_sq_norms`: 8 rows against 8 columns, one 512-bit vector, at a time,
the triangle only; measured at 50 features, 10 components, one thread: 0.39-0.40 us a row
against 0.86-1.1 for the residuals, ``dtrmm`` and norms below). Beyond, per component ``k``, the
tile's rows are centred at the component's mean into one buffer, ``(x - mu_k)``, whitened there
in place by the triangular product with ``L_k`` (BLAS ``dtrmm``, ``d (d + 1) / 2``
multiply-adds per row, half the dense product's), and each row's squared norm taken -- one
compiled call per tile, without the GIL (:mod:`daskcluster.kernels.blas_nogil`: SciPy's
Python BLAS wrappers hold it, so the threads of a pass would take turns). One product per
component and tile of a few hundred rows (``d + 2 K`` floats of work per row,
:meth:`FullCovariance.work_width`) costs fewer and larger BLAS calls than column blocks of all
components over thin tiles (measured at 50 features, 10 components, one thread: 0.060 against
0.083 CPU-s per pass over 70,000 rows). A factor that is not upper triangular (set by hand) is
multiplied whole (GEMM).

**Statistics.** The responsibilities of a segment of the block (a few thousand rows) are kept,
and each component's ``sum r (x - mu_k)(x - mu_k)^T`` is added as ``z^T z`` with
``z = sqrt(r) (x - mu_k)`` (the segment's rows read once, each kept row gathered into its
component's buffer of a few hundred rows; each buffer's product by the compiled register
blocks of :func:`~..gram.gram_lower_add` from 8 to 100 features, by SYRK otherwise) over the
rows it holds,
centred at the component's current mean ``mu_k`` (so only the mean's move in this iteration
cancels). For components holding at least one row's worth of mass (``min_resp > 0``), the
rows whose ``r ||x - mu_k||^2`` is at most ``1e-13 / n`` of the segment's total are left out,
which bounds what is left out by ``1e-13`` of the trace of the second moment, below float64's
own rounding of such sums (:func:`_second_moments`); on clustered data that skips most of the
work. A triangle over the rows held is the least arithmetic for these sums (``d (d + 1) / 2``
multiply-adds per row and component held); it adds into the lower triangle of the block's
sums in place, and they are made symmetric once, when they are centred.

**One compiled call per segment.** On float64 rows as stored (no cast, no affine map) and
upper-triangular factors, the whole pass over a segment is one compiled call without the GIL
(:meth:`FullCovariance.em_segment`): the tiles' distances, log-sum-exp and responsibilities,
``n_k`` and ``sum r (x - ref)`` (``dgemm`` per tile), the terms' weights ``r ||x - mu_k||^2``
(the squared norms taken where ``r > 0`` only) and the second moments; no Python runs between
tiles; no exponential for a component more than ``-log(min_resp) + 1`` nats below a row's best
(:func:`_em_segment`). Other rows take the tiles of :mod:`..estep` and :meth:`end_segment`.
Measured on MNIST -> 50 dimensions, 10 components, the benchmark's 8 iterations, one thread:
0.119 CPU-s per iteration against 0.141-0.155 with a call per tile and the former rule.
With ``dtrmm`` and SYRK (before :mod:`..whitened` and :mod:`..gram`), a BGMM iteration's
kernel (0.094-0.099) went to the E-step's distances 0.052 (``dtrmm`` 0.040, i.e. ~45 GFlop/s,
about ``dgemm``'s rate on these shapes once the triangle's diagonal blocks are counted;
residuals 0.009; norms 0.002), log-sum-exp, responsibilities and ``sum r (x - ref)`` 0.011, the
second moments ~0.03 (SYRK ~0.02 of it). Now the distances cost ~0.028 (0.39-0.40 us a row) and
each full buffer's product 18 us instead of 26 (``benchmarks/RESULTS-gmm.md`` for the kernel
per iteration).

**Measured and not kept** (same data and setting):

- *Leaving out the distances of components whose responsibility is exactly 0.* With ``L_k``
  upper triangular, the squared norm of the first ``m`` whitened coordinates is the
  Mahalanobis distance of the first ``m`` features under the component's marginal, a lower
  bound of the whole; a pair whose bound puts it more than 747 nats below the row's best
  component has ``exp`` underflow to exactly 0 in both libraries. Over the benchmark's 8
  BGMM iterations the pairs so proven are, after ``m`` = 4 / 8 / 16 / 25 of the 50
  coordinates, at most 0.0 / 1.9 / 6.9 / 11.6 % (0 in the first three iterations); even an
  oracle knowing every distance finds 0-22 % of the pairs exactly 0 (10 % on average), and
  GaussianMixture's at most 4 / 15 / 19 % after 8 / 16 / 25 coordinates. The first
  coordinates' bound costs ``(m / d)^2`` of the product plus gathers of the survivors: not
  built.
- *One GEMM of the tile against all factors side by side* (``[L_1 ... L_K]``, d x Kd, then
  ``- mu_k L_k``): 62 GFlop/s on twice the flops, 0.054-0.057 CPU-s for the product alone and
  0.063-0.072 with the subtraction and norms, against 0.050-0.055 for the triangular products
  in place; the triangle cut into 2-6 column blocks, one GEMM each over all components:
  0.058-0.059 at best (tiles of 256 rows).
- *The tile transposed* (features by rows) and ``dtrmm`` from the right: the call alone ~7 %
  faster, the distances 0.052 against 0.050 in place.
- *The second moments' rows gathered tile by tile* while in cache (a running threshold
  ``tau T_k(t) / n``, still within the bound; 35.5 % of the pairs kept against 34.9 %): no
  difference on the whole kernel (0.0987 against 0.0987); parts of 1,082-4,328 rows per
  gather, or buffers of 64-1,024 rows: no difference beyond the noise (+-5 %).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numba
import numpy as np

from ...blas_nogil import DGEMM, DSYRK, DTRMM, gemm_tn_add, syrk_lower_add, trmm_upper
from ...blocks import Affine
from ..buffers import COMPUTE_DTYPE, Scratch
from ..estep import exp_floor, responsibilities_above, slice_rows
from ..gram import ROWS as GRAM_ROWS
from ..gram import gram_lower_add
from ..whitened import (
    LANES,
    MAX_FEATURES,
    ROWS,
    pad_factors,
    padded_width,
    whitened_sq_norms,
)
from .base import CovarianceType, WishartPrior, add_reg, chol_inv_t, is_spd, upper_chol

if TYPE_CHECKING:
    from ..params import GaussianParams
    from ..stats import Accumulator

#: Rows each component's buffer gathers for its second moment before its product is added
#: (K buffers of 128 rows: 0.5 MiB at 50 features and 10 components, in cache; a buffer of
#: 56 padded columns, 57 KiB, is read once per block of the triangle by :mod:`..gram`. Kernel
#: CPU per BGMM iteration, one thread, alternated in one process: 0.0735 at 96 and 128 rows,
#: 0.0760 at 256; 0.0701 / 0.0706 / 0.0716 / 0.0737 at 128 / 64 / 256 / 512).
GATHER_ROWS = 128
#: Rows of a segment that is not float64 as stored cast (and mapped) at a time for its second moments.
CAST_ROWS = 4096
#: Share of a component's second-moment trace that the terms a segment leaves out may reach
#: (see :func:`_em_segment`).
LEFT_OUT_TRACE = 1e-13


@numba.njit(nogil=True, cache=True)
def _upper_triangular(factors: np.ndarray) -> bool:  # pragma: no cover (compiled)
    """Whether every (d, d) matrix of ``factors`` (K, d, d) is zero below its diagonal."""
    for k in range(factors.shape[0]):
        for i in range(1, factors.shape[1]):
            for j in range(i):
                if factors[k, i, j] != 0.0:
                    return False
    return True


class Whitening(NamedTuple):
    """The E-step constants of a block: each component's mean relative to the block's
    reference point, and the factors."""

    #: ``mu_k - ref``, (K, d).
    delta: np.ndarray
    #: ``L_k``, (K, d, d), C-contiguous.
    factors: np.ndarray
    #: Whether every factor is upper triangular (else the product is a dense GEMM).
    upper: bool
    #: For :func:`~..whitened.whitened_sq_norms` (upper factors of at most
    #: :data:`~..whitened.MAX_FEATURES` features, else empty): the factors padded with zero
    #: columns, (K, d, D), and ``(mu_k - ref) L_k`` likewise, (K, D).
    padded: np.ndarray
    shifted: np.ndarray


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _residuals(a: np.ndarray, delta: np.ndarray, resid: np.ndarray, sq: np.ndarray, k: int) -> None:  # pragma: no cover
    """``resid = a - delta`` (rows of ``a``, (m, d)) and ``sq[i, k] = ||resid[i]||^2``."""
    m, d = resid.shape
    for i in range(m):
        e = 0.0
        for j in range(d):
            v = a[i, j] - delta[j]
            resid[i, j] = v
            e += v * v
        sq[i, k] = e


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _sq_norms(y: np.ndarray, out: np.ndarray, k: int) -> None:  # pragma: no cover (compiled)
    """``out[i, k] = ||y[i]||^2`` for the rows of ``y`` (m, d)."""
    m, d = y.shape
    for i in range(m):
        s = 0.0
        for j in range(d):
            s += y[i, j] * y[i, j]
        out[i, k] = s


@numba.njit(nogil=True, cache=True)
def _whitened_sq_norms(trmm, a: np.ndarray, delta: np.ndarray, factors: np.ndarray, resid: np.ndarray,  # type: ignore[no-untyped-def]
                       out: np.ndarray) -> None:  # pragma: no cover (compiled)
    """``out[i, k] = ||(a[i, :d] - delta[k]) L_k||^2`` for every component ``k``: the rows
    centred at the component's mean into ``resid`` (n, d), whitened there in place by the
    triangular product, and their squared norms taken, without the GIL."""
    for k in range(delta.shape[0]):
        _residuals(a, delta[k], resid, out, k)
        trmm_upper(trmm, resid, factors[k])
        _sq_norms(resid, out, k)


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _weighted_sq_dists(x: np.ndarray, resp: np.ndarray, points: np.ndarray, out: np.ndarray) -> np.ndarray:  # pragma: no cover
    """``out[i, k] = r_ik ||x_i - p_k||^2`` (0 where ``r_ik = 0``); returns their sums over the
    rows, (K,)."""
    n, d = x.shape
    k_n = resp.shape[1]
    trace = np.zeros(k_n)
    for i in range(n):
        for k in range(k_n):
            r = resp[i, k]
            q = 0.0
            if r > 0.0:
                for j in range(d):
                    v = x[i, j] - points[k, j]
                    q += v * v
                q *= r
            out[i, k] = q
            trace[k] += q
    return trace


@numba.njit(nogil=True, cache=True)
def _second_moments(syrk, x: np.ndarray, resp: np.ndarray, weighted: np.ndarray, trace: np.ndarray,  # type: ignore[no-untyped-def]
                    points: np.ndarray, bounded: np.ndarray, tau: float, bufs: np.ndarray,
                    s2: np.ndarray) -> None:  # pragma: no cover (compiled)
    """``s2[k] += sum_i r_ik (x_i - p_k)(x_i - p_k)^T`` (lower triangles) over the rows ``x``
    (n, d) kept, without the GIL: the rows read once, in order, each kept row
    ``sqrt(r_ik) (x_i - p_k)`` gathered into component ``k``'s buffer of ``bufs`` (K, cap, D),
    added each time that buffer fills and at the end: by the compiled register blocks of
    :func:`~..gram.gram_lower_add` where :func:`uses_gram` (:func:`gather_buffers`: the rows
    then start after the ``D - d`` zero columns), else by SYRK. ``weighted[i, k] = r_ik e_ik`` with
    ``e_ik = ||x_i - p_k||^2``, and ``trace[k]`` their sum over the rows.

    **One read of the rows.** Gathering one component at a time read the segment's rows (out of
    cache: 4.7 MB for 11,667 rows of 50 features) once per component. Measured on MNIST -> 50
    dimensions, 10 components, the benchmark's 8 iterations, one thread: 0.096-0.100 CPU-s per
    iteration for the whole kernel against 0.100-0.105 (checkouts alternated), 0.088-0.095
    against 0.094-0.099 (variants alternated in one process; buffers of 64-2,048 rows per
    component alike within the noise, :data:`GATHER_ROWS`).

    **Terms left out.** Where ``bounded[k]``, the rows whose ``r_ik e_ik <= tau T_k / n`` are
    left out, ``T_k = trace[k]`` the trace of the rows' full second moment ``S_k`` around
    ``p_k``; elsewhere every non-zero ``r_ik`` counts. The part left out, ``E_k``, is positive
    semi-definite with ``trace(E_k) = sum_left-out r e <= n (tau T_k / n) = tau trace(S_k)``, so
    ``||E_k||_2 <= tau trace(S_k)`` and every entry ``|E_k[j, l]| <= sqrt(E_k[j, j] E_k[l, l])
    <= tau trace(S_k)``; summed over the calls (segments, blocks), the same holds for the whole
    statistic. In float64, an entry of ``S_k`` summed from ``n`` terms in any order carries a
    rounding bound of ``~n eps sqrt(S_k[j, j] S_k[l, l])``: with ``tau = 1e-13``
    (:data:`LEFT_OUT_TRACE`) what is left out stays below the share of the trace that float64
    already leaves uncertain in sums over 1,000 rows or more, scikit-learn's included. (``e_ik``
    as computed equals the exact value to a relative ``d eps``.) On MNIST -> 50 dimensions,
    10 components, the benchmark's 8 iterations: 35 % of the (row, component) pairs kept,
    against 57 % with the former rule ``r >= 1e-30`` (which had no such bound).
    """
    n, d = x.shape
    k_n = resp.shape[1]
    cap = bufs.shape[1]
    pad = bufs.shape[2] - d
    gram = uses_gram(d)
    y = np.empty((GRAM_ROWS, LANES))
    threshold = np.empty(k_n)
    for k in range(k_n):
        threshold[k] = tau * trace[k] / n if bounded[k] else 0.0
    counts = np.zeros(k_n, dtype=np.int64)
    for i in range(n):
        xi = x[i]
        for k in range(k_n):
            r = resp[i, k]
            if r > 0.0 and weighted[i, k] > threshold[k]:
                w = math.sqrt(r)
                row = bufs[k, counts[k]]
                pk = points[k]
                for j in range(d):
                    row[pad + j] = w * (xi[j] - pk[j])
                counts[k] += 1
                if counts[k] == cap:
                    if gram:
                        gram_lower_add(bufs[k], cap, s2[k], y)
                    else:
                        syrk_lower_add(syrk, bufs[k], s2[k])
                    counts[k] = 0
    for k in range(k_n):
        if gram:
            gram_lower_add(bufs[k], counts[k], s2[k], y)
        else:
            syrk_lower_add(syrk, bufs[k, : counts[k]], s2[k])


@numba.njit(nogil=True, cache=True)
def _centre_lower(s2: np.ndarray, n: np.ndarray, mo: np.ndarray) -> np.ndarray:  # pragma: no cover (compiled)
    """``S + S^T`` off the diagonal and ``S`` on it (the SYRKs fill the lower triangles of
    ``s2`` (K, d, d) and leave the upper ones at 0), minus ``n_k mo_k mo_k^T``; a new
    symmetric array, in one sweep of the lower triangles."""
    k_n, d, _ = s2.shape
    out = np.empty_like(s2)
    for k in range(k_n):
        for i in range(d):
            c = n[k] * mo[k, i]
            for j in range(i):
                v = s2[k, i, j] + s2[k, j, i] - c * mo[k, j]
                out[k, i, j] = v
                out[k, j, i] = v
            out[k, i, i] = s2[k, i, i] - c * mo[k, i]
    return out


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _sq_dist(a: np.ndarray, i: int, delta: np.ndarray) -> float:  # pragma: no cover (compiled)
    """``||a[i] - delta||^2`` (``a`` (n, d), ``delta`` (d,))."""
    e = 0.0
    for j in range(delta.shape[0]):
        v = a[i, j] - delta[j]
        e += v * v
    return e


@numba.njit(nogil=True, cache=True)
def _em_segment(trmm, gemm, syrk, x: np.ndarray, ref: np.ndarray, delta: np.ndarray, factors: np.ndarray,  # type: ignore[no-untyped-def]
                padded: np.ndarray, shifted: np.ndarray, points: np.ndarray, log_const: np.ndarray, floor: np.ndarray,
                bounded: np.ndarray, tau: float, a: np.ndarray, resid: np.ndarray, last_rows: np.ndarray,
                maha: np.ndarray, resp: np.ndarray, weighted: np.ndarray, bufs: np.ndarray, nk: np.ndarray,
                s1: np.ndarray, s2: np.ndarray) -> tuple[float, float, int, float]:  # pragma: no cover (compiled)
    """E-step and statistics of a segment of float64 rows ``x`` (n, d), in one call without the GIL.

    Tiles of ``a.shape[0]`` rows: ``a = x - ref``; the squared whitened distances ``maha_ik``
    by the compiled register blocks of :func:`~..whitened.whitened_sq_norms` where ``padded``
    holds the padded factors (:func:`~..whitened.pad_factors`; none written but the distances),
    else per component the residuals ``a - delta[k] = x - mu_k`` into ``resid``, the whitening
    by ``dtrmm`` and the squared norms; per row the log-sum-exp and the responsibilities
    (:func:`~..estep.responsibilities_above`: no exponential at or below the component's
    ``floor``, :func:`~..estep.exp_floor`), written to ``resp`` (n, K), with ``nk += r`` and
    ``weighted[i, k] = r_ik e_ik``, ``e_ik = ||x_i - mu_k||^2`` (taken only where ``r_ik > 0``);
    ``s1 += resp^T a`` by ``dgemm``. At the end, per component,
    ``s2[k] += sum r_ik (x_i - p_k)(x_i - p_k)^T`` (lower triangle) by SYRK over the rows kept
    (see below), ``p_k = points[k]`` the component's mean ``mu_k = ref + delta[k]``.

    **Exponentials left out.** Where ``min_resp > 0`` (components holding a row's worth of
    mass), a component more than ``-log(min_resp) + 1`` nats (70 for ``1e-30``) below the row's
    best gets ``r = 0`` without an exponential, its ``r < min_resp / e``: ``n_k`` and
    ``sum r x`` move by less than ``4e-31`` (times the row) a row, ``log p(x)`` and
    ``sum r log r`` by less than ``K 4e-31``, and the trace of ``S_k`` by less than
    ``4e-31 e_ik`` a row (``n_k >= 1`` where this applies), far below float64's rounding of
    these sums.

    The terms of the second moments left out, and their bound: :func:`_second_moments`.

    Returns ``(sum log p(x), sum r log r, first row whose log p(x) is not finite or -1, its
    value)``; after such a row nothing more is added.
    """
    n, d = x.shape
    k_n = delta.shape[0]
    tile = a.shape[0]
    compiled = padded.shape[0] > 0
    log_lik = 0.0
    entropy = 0.0
    trace = np.zeros(k_n)
    for t0 in range(0, n, tile):
        m = min(tile, n - t0)
        at = a[:m]
        for i in range(m):
            for j in range(d):
                at[i, j] = x[t0 + i, j] - ref[j]
        if compiled:
            whitened_sq_norms(at, padded, shifted, last_rows, maha)
        else:
            rt = resid[:m]
            for k in range(k_n):
                _residuals(at, delta[k], rt, weighted[t0 : t0 + m], k)
                trmm_upper(trmm, rt, factors[k])
                _sq_norms(rt, maha, k)
        for i in range(m):
            w = resp[t0 + i]
            for k in range(k_n):
                w[k] = log_const[k] - 0.5 * maha[i, k]
            value, ent = responsibilities_above(w, floor)
            if not math.isfinite(value):
                return log_lik, entropy, t0 + i, value
            log_lik += value
            entropy += ent
            for k in range(k_n):
                r = w[k]
                nk[k] += r
                q = 0.0
                if r > 0.0:
                    q = r * (_sq_dist(at, i, delta[k]) if compiled else weighted[t0 + i, k])
                weighted[t0 + i, k] = q
                trace[k] += q
        gemm_tn_add(gemm, resp[t0 : t0 + m], at, s1)
    _second_moments(syrk, x, resp, weighted, trace, points, bounded, tau, bufs, s2)
    return log_lik, entropy, -1, 0.0


def uses_whitened(n_features: int) -> bool:
    """Whether the E-step's distances of upper-triangular factors take the compiled register
    blocks of :mod:`..whitened` (at most :data:`~..whitened.MAX_FEATURES` features) rather than
    residuals whitened by ``dtrmm``."""
    return n_features <= MAX_FEATURES


@numba.njit(nogil=True, cache=True)
def uses_gram(n_features: int) -> bool:  # pragma: no cover (compiled)
    """Whether the second moments' buffers are added by the compiled register blocks of
    :mod:`..gram` (:data:`~..gram.ROWS` to :data:`~..whitened.MAX_FEATURES` features; measured
    per buffer of 256 rows, one thread: 18 against 26 us for ``dsyrk`` at 50 features, 37 against
    49 at 80, 48 against 70 at 100) rather than by SYRK."""
    return GRAM_ROWS <= n_features <= MAX_FEATURES


def gather_buffers(scratch: Scratch, n_rows: int, n_components: int, n_features: int) -> np.ndarray:
    """Each component's buffer of rows for :func:`_second_moments`, (K, cap, D): ``D`` the
    features padded to a multiple of 8 with zero columns first where :func:`uses_gram`, else
    ``d``."""
    cap = min(GATHER_ROWS, max(1, n_rows))
    width = padded_width(n_features) if uses_gram(n_features) else n_features
    bufs = scratch.get("gather", n_components * cap, width).reshape(n_components, cap, width)
    bufs[:, :, : width - n_features] = 0.0
    return bufs


class FullCovariance(CovarianceType):
    """``'full'``: precisions Cholesky (K, d, d), statistics (K, d, d)."""

    name = "full"
    stats_kind = "full"
    keeps_responsibilities = True

    # ------------------------------------------------------------------ E-step

    def log_det_cholesky(self, prec_chol: np.ndarray, n_features: int) -> np.ndarray:
        return np.asarray(np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1))

    def prepare(self, gp: GaussianParams, ref: np.ndarray) -> Whitening:
        """Each component's mean relative to ``ref``, and the factors (padded for the compiled
        distances where they apply, :func:`uses_whitened`)."""
        chol = np.ascontiguousarray(gp.prec_chol, dtype=COMPUTE_DTYPE)
        delta = np.ascontiguousarray(gp.means - ref, dtype=COMPUTE_DTYPE)
        upper = bool(_upper_triangular(chol))
        if upper and uses_whitened(chol.shape[1]):
            padded, shifted = pad_factors(delta, chol)
        else:
            padded, shifted = np.zeros((0, 0, 0)), np.zeros((0, 0))
        return Whitening(delta, chol, upper, padded, shifted)

    def mahalanobis(self, a: np.ndarray, d: int, prep: Whitening, gp: GaussianParams, ws: Scratch) -> np.ndarray:
        n = a.shape[0]
        out = ws.get("maha", n, gp.n_components)
        resid = ws.get("resid", n, d)
        if prep.upper and prep.padded.shape[0] and a.strides[1] == a.itemsize:
            whitened_sq_norms(a[:, :d], prep.padded, prep.shifted, ws.get("last_rows", ROWS, d), out)
            return out
        if prep.upper:
            _whitened_sq_norms(DTRMM, a, prep.delta, prep.factors, resid, out)
            return out
        for k, factor in enumerate(prep.factors):  # a factor set by hand: dense products
            np.subtract(a[:, :d], prep.delta[k], out=resid)
            y = np.matmul(resid, factor, out=ws.get("y", n, d))
            np.einsum("ij,ij->i", y, y, out=out[:, k])
        return out

    def work_width(self, n_components: int, n_features: int) -> int:
        return n_features + 2 * n_components

    # ------------------------------------------------------------------ one compiled call per segment

    def compiled_segment(self, gp: GaussianParams) -> bool:
        """Whether :meth:`em_segment` applies: every factor upper triangular."""
        return bool(_upper_triangular(np.ascontiguousarray(gp.prec_chol)))

    def em_segment(self, acc: Accumulator, gp: GaussianParams, prep: Whitening, segment: np.ndarray,
                   ref: np.ndarray, scratch: Scratch) -> tuple[int, float]:
        """The E-step of a segment's float64 rows (n, d) and all their statistics, added to
        ``acc`` (after its ``start_segment``), in one compiled call (:func:`_em_segment`):
        no Python between tiles, and the terms of the second moments left out within a bound.

        Returns the segment's first row whose ``log p(x)`` is not finite (-1 if none) and
        that value; nothing after it is added.
        """
        n, d = segment.shape
        k = gp.n_components
        x = np.ascontiguousarray(segment, dtype=COMPUTE_DTYPE)
        tile = slice_rows(d, self.work_width(k, d))
        log_lik, entropy, bad, value = _em_segment(
            DTRMM, DGEMM, DSYRK, x, ref, prep.delta, prep.factors, prep.padded, prep.shifted,
            np.ascontiguousarray(gp.means), np.ascontiguousarray(gp.log_const, dtype=COMPUTE_DTYPE),
            exp_floor(np.asarray(gp.min_resp, dtype=COMPUTE_DTYPE)), gp.min_resp > 0, LEFT_OUT_TRACE,
            scratch.get("a", tile, d), scratch.get("resid", tile, d), scratch.get("last_rows", ROWS, d),
            scratch.get("maha", tile, k),
            acc.segment_responsibilities(n), scratch.get("weighted", n, k),
            gather_buffers(scratch, n, k, d), acc.nk, acc.s1, acc.s2)
        acc.n_rows += n
        acc.log_lik += log_lik
        acc.entropy += entropy if gp.with_entropy else 0.0
        return bad, value

    # ------------------------------------------------------------------ statistics

    def m2_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        return (n_components, n_features, n_features)

    def accumulate(self, acc: Accumulator, a: np.ndarray, d: int, resp: np.ndarray) -> None:
        super().accumulate(acc, a, d, resp)
        acc.keep_responsibilities(resp)

    def end_segment(self, acc: Accumulator, segment: np.ndarray, affine: Affine, ref: np.ndarray) -> None:
        """Each component's ``sum r (x - point)(x - point)^T`` over the segment (:func:`_second_moments`)."""
        resp = acc.segment_responsibilities(segment.shape[0])
        k, d = resp.shape[1], segment.shape[1]
        points = np.ascontiguousarray(np.broadcast_to(ref, (k, d)) if acc.centers is None else acc.centers)
        bufs = gather_buffers(acc.scratch, segment.shape[0], k, d)
        bounded = acc.min_resp > 0
        weighted = acc.scratch.get("weighted", segment.shape[0], k)
        if segment.dtype == COMPUTE_DTYPE and affine.is_identity:
            x = np.ascontiguousarray(segment)
            trace = _weighted_sq_dists(x, resp, points, weighted)
            _second_moments(DSYRK, x, resp, weighted, trace, points, bounded, LEFT_OUT_TRACE, bufs, acc.s2)
            return
        rows = CAST_ROWS
        for start in range(0, segment.shape[0], rows):  # rows cast and mapped a slice at a time
            x = acc.scratch.get("cast", min(rows, segment.shape[0] - start), d)
            np.copyto(x, segment[start : start + rows], casting="unsafe")
            affine.apply(x)
            r = resp[start : start + rows]
            w = weighted[: x.shape[0]]
            trace = _weighted_sq_dists(x, r, points, w)
            _second_moments(DSYRK, x, r, w, trace, points, bounded, LEFT_OUT_TRACE, bufs, acc.s2)

    def centre(self, s2: np.ndarray, s1: np.ndarray, n: np.ndarray, m: np.ndarray,
               offset: np.ndarray) -> np.ndarray:
        return _centre_lower(np.ascontiguousarray(s2), n, np.ascontiguousarray(m - offset))

    def merge_m2(self, a: np.ndarray, b: np.ndarray, delta: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.asarray(a + b + c[:, None, None] * delta[:, :, None] * delta[:, None, :])

    def pooled_m2(self, nk: np.ndarray, means: np.ndarray, m2: np.ndarray) -> np.ndarray:
        mean = nk @ means / nk.sum()
        delta = means - mean
        return np.asarray(m2.sum(axis=0) + (delta * nk[:, None]).T @ delta)

    # ------------------------------------------------------------------ client

    def estimate(self, n: np.ndarray, nk: np.ndarray, mean: np.ndarray, means: np.ndarray, m2: np.ndarray,
                 reg_covar: float) -> np.ndarray:
        # sum r (x - means)(x - means)^T = m2 + n a a^T with a = means - mean (the nk guard's shrink)
        a = means - mean
        cov = (m2 + n[:, None, None] * a[:, :, None] * a[:, None, :]) / nk[:, None, None]
        cov = 0.5 * (cov + cov.transpose(0, 2, 1))
        return add_reg(cov, reg_covar)

    def precision_cholesky(self, covariances: np.ndarray) -> np.ndarray:
        k = covariances.shape[0]
        return chol_inv_t(covariances, lambda j: f"component {j} of {k}")

    def precisions(self, prec_chol: np.ndarray) -> np.ndarray:
        return np.asarray(np.einsum("kij,klj->kil", prec_chol, prec_chol))

    def cholesky_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        return np.stack([upper_chol(p) for p in precisions])

    def covariances_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        return np.asarray(np.linalg.inv(precisions))

    def n_covariance_parameters(self, n_components: int, n_features: int) -> float:
        return n_components * n_features * (n_features + 1) / 2.0

    def precisions_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        return (n_components, n_features, n_features)

    def precisions_valid(self, precisions: np.ndarray) -> bool:
        return all(is_spd(p) for p in precisions)

    def sample(self, rng: np.random.RandomState, means: np.ndarray, covariances: np.ndarray,
               counts: np.ndarray) -> list[np.ndarray]:
        return [rng.multivariate_normal(m, c, int(s)) for m, c, s in zip(means, covariances, counts)]

    # ------------------------------------------------------------------ variational Bayes

    def wishart(self, nk: np.ndarray, xk: np.ndarray, sk: np.ndarray, prior: WishartPrior,
                mean_precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dof = prior.degrees_of_freedom + nk
        diff = xk - prior.mean
        c = nk * prior.mean_precision / mean_precision
        cov = prior.covariance + nk[:, None, None] * sk + c[:, None, None] * diff[:, :, None] * diff[:, None, :]
        return dof, cov / dof[:, None, None]

    def default_covariance_prior(self, covariance: np.ndarray) -> Any:
        return np.atleast_2d(covariance)

    def check_covariance_prior(self, value: Any, n_features: int, owner: str) -> Any:
        return check_matrix_prior(value, n_features, self.name, owner)


def check_matrix_prior(value: Any, n_features: int, covariance_type: str, owner: str) -> np.ndarray:
    """A (d, d) symmetric, positive-definite ``covariance_prior``."""
    from ....errors import InvalidParameterError

    try:
        p = np.atleast_2d(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        p = np.zeros(0)
    if p.shape != (n_features, n_features):
        raise InvalidParameterError(
            f"The 'covariance_prior' parameter of {owner} must be an array-like of shape "
            f"({n_features}, {n_features}) for covariance_type={covariance_type!r}. Got {value!r} instead."
        )
    if not (np.isfinite(p).all() and is_spd(p)):
        raise InvalidParameterError(
            f"The 'covariance_prior' parameter of {owner} must be symmetric, positive-definite for "
            f"covariance_type={covariance_type!r}."
        )
    return p
