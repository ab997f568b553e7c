"""'full' second moments: each component's kept rows gathered into its own buffer while the
rows are read once, a SYRK each time a buffer fills (:func:`full._second_moments`)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from daskcluster.kernels import mixture as K
from daskcluster.kernels.blocks import Affine, ChunkInfo
from daskcluster.kernels.mixture.covariance import full

N_ROWS = 2000


def four_blobs(seed: int = 0) -> np.ndarray:
    """2,000 rows of 5 features around four overlapping centres, each component holding rows
    on both sides of every buffer boundary tried below."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2.0, (4, 5))
    labels = rng.integers(0, 4, N_ROWS)
    return centres[labels] + rng.normal(0, 1.0, (N_ROWS, 5))


def params(x: np.ndarray, bounded: bool) -> K.GaussianParams:
    """Four components with their own covariances (upper-triangular factors), spread so that
    some responsibilities are far below 1e-13 (``bounded``: terms may be left out)."""
    rng = np.random.default_rng(1)
    means = x[rng.choice(N_ROWS, 4, replace=False)]
    a = rng.normal(0, 0.4, (4, 5, 5))
    cov = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(5)
    prec_chol = full.FullCovariance().precision_cholesky(cov)
    return K.gaussian_params(np.full(4, 0.25), means, prec_chol, "full", n_samples=N_ROWS if bounded else None)


def naive_statistics(x: np.ndarray, gp: K.GaussianParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_k``, the means and ``sum r (x - mean_k)(x - mean_k)^T`` from NumPy's dense products."""
    log = np.column_stack([
        c - 0.5 * (((x - m) @ u) ** 2).sum(axis=1) for c, m, u in zip(gp.log_const, gp.means, gp.prec_chol)
    ])
    resp = np.exp(log - log.max(axis=1, keepdims=True))
    resp /= resp.sum(axis=1, keepdims=True)
    nk = resp.sum(axis=0)
    means = resp.T @ x / nk[:, None]
    m2 = np.stack([(resp[:, k, None] * (x - means[k])).T @ (x - means[k]) for k in range(4)])
    return nk, means, m2


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cap", [1, 7, 256, 5000])
def test_gathered_second_moments_equal_the_dense_products(cap: int, dtype: type,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Every positive responsibility counted (no bound on what is left out): the second moments
    equal NumPy's dense products whatever the buffers' size (1: a SYRK per row; 7 and 256:
    buffers filled many times, the rest added at the end; 5000: never full), on float64 rows
    (the one-call segment) and float32 rows (cast a slice at a time). Each entry is a sum of
    2,000 terms: its rounding is below ``2000 eps`` of the component's trace, 4e-13, so
    ``1e-11`` of the trace fails on any row lost or counted twice (a row holds ~1e-3 of it)."""
    monkeypatch.setattr(full, "GATHER_ROWS", cap)
    x = four_blobs()
    gp = params(x, bounded=False)
    (stats,) = K.em_kernel(x.astype(dtype), None, ChunkInfo(0, 0), K.EMParams((gp,), Affine()))
    nk, means, m2 = naive_statistics(x.astype(dtype).astype(np.float64), gp)
    assert_allclose(stats.nk, nk, rtol=1e-12)
    assert_allclose(stats.means + gp.center, means, rtol=1e-11, atol=1e-12)
    trace = np.trace(m2, axis1=1, axis2=2)
    assert (np.abs(stats.m2 - m2) <= 1e-11 * trace[:, None, None]).all()
    assert_allclose(stats.m2, stats.m2.transpose(0, 2, 1), rtol=0, atol=0)


def test_buffer_size_changes_only_the_rounding(monkeypatch: pytest.MonkeyPatch) -> None:
    """With terms left out (components holding a row's worth of mass), the same terms are kept
    whatever the buffers' size: the statistics agree to the rounding of 2,000-term sums, and
    every other statistic is bit-identical (the E-step does not depend on the buffers)."""
    x = four_blobs(seed=2)
    gp = params(x, bounded=True)
    out = []
    for cap in (1, 13, 4096):
        monkeypatch.setattr(full, "GATHER_ROWS", cap)
        out.append(K.em_kernel(x, None, ChunkInfo(0, 0), K.EMParams((gp,), Affine()))[0])
    trace = np.trace(out[-1].m2, axis1=1, axis2=2)
    for stats in out[:-1]:
        assert (stats.nk == out[-1].nk).all() and (stats.means == out[-1].means).all()
        assert stats.log_lik == out[-1].log_lik
        assert (np.abs(stats.m2 - out[-1].m2) <= 1e-12 * trace[:, None, None]).all()
