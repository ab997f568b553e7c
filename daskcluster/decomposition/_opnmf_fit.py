"""The OPNMF iterations, both ways, from the same update rule as the ``opnmf`` package.

Over the features, ``W`` (n_features, k) is updated on the client from the Gram matrix
``G = XᵀX`` of the first pass: ``W <- W * GW / (W WᵀGW)``, however many iterations, no more
data. Over the samples, ``W`` (n_samples, k) is row-chunked beside ``X`` and each iteration is
one pass (:func:`~daskcluster.engine.tree_reduce_rows`) that updates every chunk's rows from
``A = XᵀW`` (n_features, k) and ``AᵀA`` (k, k) and sums the next ``XᵀW`` and ``WᵀW``; the
normalisation by the spectral norm of ``W`` (the square root of the largest eigenvalue of
``WᵀW``) is applied lazily by the next pass. Both then follow the package: relative change of
``W`` below ``tol`` stops, components sorted by ``||W_j|| ||H_j||`` (largest first), the
error ``||X - W H||_F`` (here from the small matrices ``WᵀW`` and ``HHᵀ``, no extra pass).
"""

from __future__ import annotations

import logging
import time
import warnings
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..blas import single_threaded_blas
from ..data import RowData
from ..engine import tree_reduce, tree_reduce_rows
from ..kernels import opnmf as K
from ..progress import IterationReport, report
from ._checks import raise_if_negative
from ._opnmf_init import (
    NNDSVD_INITS,
    Spectrum,
    nndsvd_features,
    nndsvd_samples_params,
    random_features,
    random_scale,
    sample_probability,
    spectrum,
)

logger = logging.getLogger(__name__)

#: Iterations between two debug lines of the iterations over the features.
LOG_EVERY = 100

#: Below this many multiply-adds per Gram product, the client iterations use one BLAS thread.
SMALL_PRODUCT = 50_000_000


@dataclass
class Prepared:
    """What the first passes over one dataset learned, shared by the fits of every rank.

    Attributes
    ----------
    data : RowData
    summary : DataSummary or None
        None until a pass has read the data (over the samples with a custom or random init,
        the fit's first pass computes it).
    gram : ndarray of shape (n_features, n_features) or None
    spectrum : Spectrum or None
        The top singular triplets, for NNDSVD.
    """

    data: RowData
    summary: K.DataSummary | None = None
    gram: np.ndarray | None = None
    spectrum: Spectrum | None = None

    @property
    def mean(self) -> float:
        """Mean of all entries of ``X``."""
        assert self.summary is not None
        return self.summary.total / (self.data.n_samples * self.data.n_features)


@dataclass
class FitResult:
    """One fitted OPNMF.

    Attributes
    ----------
    W : ndarray or dask.array.Array
        The orthonormal non-negative factor, components sorted: (n_features, k) over the
        features, (n_samples, k) over the samples (lazy, persisted, for lazy input).
    H : ndarray of shape (k, n_features) or None
        ``WᵀX`` over the samples; None over the features (``XW`` has one row per sample and is
        computed when asked for).
    error : float
        ``||X - W H||_F`` (over the features: ``||X - X W Wᵀ||_F``).
    n_iter : int
        Updates made.
    delta : float
        Relative change of ``W`` at the last update.
    """

    W: np.ndarray | da.Array
    H: np.ndarray | None
    error: float
    n_iter: int
    delta: float


def prepare(data: RowData, orientation: str, init: str, max_rank: int, seed: int, owner: str) -> Prepared:
    """The pass every rank shares: the Gram matrix (over the features always, over the samples
    for NNDSVD) with the checks of the data and, for NNDSVD, the sampled rows and the singular
    triplets. Data passes: 0 (over the samples with a custom or random init) or 1."""
    prep = Prepared(data)
    if orientation == "features" or init in NNDSVD_INITS:
        t0 = time.perf_counter()
        prob = 0.0
        if init in NNDSVD_INITS:
            prob = sample_probability(data.n_samples, data.n_features, data.array.dtype.itemsize)
        params = K.GramParams(data.affine, prob, seed)
        stats = tree_reduce(data, K.gram_kernel, params, K.combine_gram, label="opnmf-gram")
        raise_if_negative(stats.summary.min, owner)
        prep.summary, prep.gram = stats.summary, stats.gram
        if init in NNDSVD_INITS:
            prep.spectrum = spectrum(stats.gram, stats.sample, data.affine, data.n_samples, max_rank)
        report(IterationReport(owner, "init", 1, 1, time.perf_counter() - t0, data.n_samples,
                               {"sq_norm": stats.summary.sq_norm}))
    return prep


def sort_and_error(hh: np.ndarray, ww: np.ndarray, sq_norm: float) -> tuple[np.ndarray, float]:
    """The package's order of the components and the reconstruction error.

    ``hh = HHᵀ`` and ``ww = WᵀW`` (k, k), ``sq_norm = ||X||_F²``. The order sorts
    ``||W_j|| ||H_j||`` decreasingly (a zero ``||H_j||`` counts as 1, with the package's
    warning); the error is ``sqrt(||X||² - 2 tr(HHᵀ) + <WᵀW, HHᵀ>)`` = ``||X - W H||_F``
    since ``H = WᵀX``.
    """
    hlen = np.sqrt(np.maximum(np.diag(hh), 0.0))
    n_zero = int(np.sum(hlen == 0))
    if n_zero > 0:
        warnings.warn(f"low rank: {n_zero} factors have norm 0", stacklevel=3)
        hlen[hlen == 0] = 1
    idx = np.argsort(-1 * (np.sqrt(np.maximum(np.diag(ww), 0.0)) * hlen))
    err_sq = sq_norm - 2.0 * float(np.trace(hh)) + float(np.sum(ww * hh))
    return idx, float(np.sqrt(max(err_sq, 0.0)))


def _warn_not_converged(delta: float, tol: float, max_iter: int) -> None:
    if delta > tol:
        warnings.warn(f"OPNMF did not converge with tolerance = {tol} under {max_iter} iterations",
                      ConvergenceWarning, stacklevel=4)


# --------------------------------------------------------------------------- over the features


def _spectral_norm(vtv: np.ndarray) -> float:
    """``||V||_2`` from ``VᵀV``: the square root of its largest eigenvalue."""
    return float(np.sqrt(max(np.linalg.eigvalsh(vtv)[-1], 0.0)))


def iterate_gram(gram: np.ndarray, W: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, int, float]:
    """The package's iterations with ``XXᵀ = gram``: update, floor, divide by the spectral
    norm (from the eigenvalues of the small ``WᵀW``, not an SVD of ``W``), stop when
    ``||W_old - W||_F / ||W_old||_F < tol``. Returns ``(W, n_iter, delta)``."""
    W = np.array(W, dtype=np.float64)
    with _client_blas(gram.shape[0], W.shape[1]):
        return _iterate_gram(gram, W, max_iter, tol)


def _client_blas(n_features: int, k: int) -> AbstractContextManager[Any]:
    """One BLAS thread for small iterations: a team of threads costs more than a (d, d) x (d, k)
    product of less than :data:`SMALL_PRODUCT` multiply-adds, and far more on a busy machine."""
    return single_threaded_blas() if n_features * n_features * k < SMALL_PRODUCT else nullcontext()


def _iterate_gram(gram: np.ndarray, W: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, int, float]:
    delta = np.inf
    n_iter = 0
    for it in range(max_iter):
        old = W
        enum = gram @ W
        W = K.multiplicative_step(W, enum, W @ (W.T @ enum))
        W = W / _spectral_norm(W.T @ W)
        old_norm = np.linalg.norm(old, ord="fro")
        delta = float(np.linalg.norm(old - W, ord="fro") / old_norm) if old_norm > 0 else np.inf
        n_iter = it + 1
        if it % LOG_EVERY == 0:
            logger.debug("iter=%d diff=%g", it, delta)
        if delta < tol:
            break
    return W, n_iter, delta


def fit_features(prep: Prepared, k: int, init: str, init_W: np.ndarray | None, seed: int,
                 max_iter: int, tol: float, owner: str) -> FitResult:
    """OPNMF with ``W`` over the features: client iterations on the Gram matrix. Data passes: 0
    (the Gram matrix and the NNDSVD norms are in ``prep``)."""
    assert prep.gram is not None and prep.summary is not None
    d = prep.data.n_features
    if init == "custom":
        assert init_W is not None
        W0 = np.array(init_W, dtype=np.float64)
    elif init == "random":
        W0 = random_features(d, k, prep.mean, seed)
    else:
        assert prep.spectrum is not None
        W0 = nndsvd_features(prep.spectrum, k, init, prep.mean, seed)
    t0 = time.perf_counter()
    W, n_iter, delta = iterate_gram(prep.gram, W0, max_iter, tol)
    logger.info("%s over the features, k=%d: %d iterations on the client in %.2fs, diff=%g", owner, k, n_iter,
                time.perf_counter() - t0, delta)
    _warn_not_converged(delta, tol, max_iter)
    gw = prep.gram @ W
    idx, error = sort_and_error(W.T @ gw, W.T @ W, prep.summary.sq_norm)
    return FitResult(W[:, idx], None, error, n_iter, delta)


# --------------------------------------------------------------------------- over the samples


def _relative_change(V_old: da.Array, s_old: float, V_new: da.Array, s_new: float) -> float:
    """``||V_old / s_old - V_new / s_new||_F / ||V_old / s_old||_F`` over the kept rows (no data
    pass: the factors are in memory)."""
    old = V_old / s_old
    dsq, osq = dask.compute(((old - V_new / s_new) ** 2).sum(), (old**2).sum())
    return float(np.sqrt(dsq / osq)) if osq > 0 else np.inf


def _initial_params(prep: Prepared, k: int, init: str, seed: int) -> K.FactorInit:
    data = prep.data
    first = prep.summary is None
    if init in NNDSVD_INITS:
        assert prep.spectrum is not None
        return nndsvd_samples_params(prep.spectrum, k, init, prep.mean, seed, data)
    return K.FactorInit(data.affine, k, init, summary=first, seed=seed)


def fit_samples(prep: Prepared, k: int, init: str, init_W: da.Array | None, seed: int,
                max_iter: int, tol: float, owner: str) -> FitResult:
    """OPNMF with ``W`` over the samples, row-chunked beside the data. Data passes: 1 to start
    (``W``'s rows, ``XᵀW`` and ``WᵀW``; the first pass over the data with a custom or random
    init), 1 per iteration, and 1 more that finds the last change below ``tol`` (none when
    ``max_iter`` stops the fit)."""
    data = prep.data
    t0 = time.perf_counter()
    aligned = [init_W] if init == "custom" and init_W is not None else []
    params = _initial_params(prep, k, init, seed)
    V, stats = tree_reduce_rows(data, K.factor_init_kernel, params, K.combine_factor, aligned=aligned,
                                n_columns=k, dtype=np.float64, label="opnmf-init")
    if prep.summary is None:
        assert stats.summary is not None
        raise_if_negative(stats.summary.min, owner)
        prep.summary = stats.summary
    scale = random_scale(prep.mean, k) if init == "random" else 1.0
    report(IterationReport(owner, "init", 1, 1, time.perf_counter() - t0, data.n_samples, {}))
    # Each pass updates W_t into V_{t+1} and also measures the change of the previous update,
    # ||W_{t-1} - W_t|| (W_t's normalisation is known only once its pass is combined): when that
    # change is below tol, W_t is the result and the pass's V_{t+1} is dropped.
    V_prev: da.Array | None = None
    scale_prev: float | None = None
    xtv, vtv = stats.xtv, stats.vtv
    delta = np.inf
    n_iter = 0
    while n_iter < max_iter:
        t0 = time.perf_counter()
        xtw = xtv / scale
        step = K.StepParams(data.affine, scale, xtw, xtw.T @ xtw, scale_prev)
        V_new, stats = tree_reduce_rows(data, K.factor_step_kernel, step, K.combine_factor,
                                        aligned=[V] if V_prev is None else [V, V_prev],
                                        n_columns=k, dtype=np.float64, label="opnmf-step")
        if V_prev is not None:
            delta = float(np.sqrt(stats.change_sq / stats.prev_sq)) if stats.prev_sq > 0 else np.inf
            report(IterationReport(owner, "fit", n_iter, max_iter, time.perf_counter() - t0, data.n_samples,
                                   {"diff": delta}))
            if delta < tol:
                break
        V_prev, scale_prev = V, scale
        V, scale, xtv, vtv = V_new, _spectral_norm(stats.vtv), stats.xtv, stats.vtv
        n_iter += 1
    else:
        if V_prev is not None and scale_prev is not None:
            delta = _relative_change(V_prev, scale_prev, V, scale)
            report(IterationReport(owner, "fit", n_iter, max_iter, 0.0, 0, {"diff": delta}))
    _warn_not_converged(delta, tol, max_iter)
    xtw = xtv / scale
    idx, error = sort_and_error(xtw.T @ xtw, vtv / scale**2, prep.summary.sq_norm)
    # the columns picked block by block (integer indexing fails on Dask's query-planning backend)
    W = V.map_blocks(K.scaled_columns, idx, scale, chunks=(V.chunks[0], (len(idx),)), dtype=V.dtype,
                     meta=np.empty((0, 0), dtype=V.dtype))
    W = W.compute() if not data.lazy else W.persist()
    return FitResult(W, np.ascontiguousarray(xtw[:, idx].T), error, n_iter, delta)
