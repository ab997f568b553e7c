"""The diagonal types' compiled EM passes (``kernels/mixture/diag_rows.py``, dense, and
``kernels/mixture/diag_nonzeros.py``, on the non-zeros, both ways of adding its statistics;
every test runs all three) against a naive NumPy
reference, on the data it is tuned for: rows with zero columns (image borders), all-zero and
dense blocks, blocks that end inside a tile, components too light to drop small
responsibilities, and a non-finite row inside a tile.

Tolerances: every sum covers at most a few hundred rows of float64 terms, so its relative
rounding is at most ``rows x eps`` (about 5e-14) where its terms share a sign (``n_k``, the
raw moments) and the reference's own rounding is of the same order; the log-likelihood's terms
share a sign too (each row's ``log p(x)`` is negative here). The second moments are centred at
the end of the block (``s2 - s1 m`` around the block's reference point near the data's mean),
which multiplies that rounding by ``E[(x - ref)^2] / var``, at most ~10 for these components:
hence ``rtol=1e-11`` on sums and means, ``1e-10`` on the second moments (plus an absolute
``1e-12`` of the largest one, for components whose moments vanish).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import logsumexp

from daskcluster.errors import NonFiniteDataError
from daskcluster.kernels import mixture as K
from daskcluster.kernels.blocks import Affine, ChunkInfo
from daskcluster.kernels.mixture import diag_rows
from daskcluster.kernels.mixture.diag_rows import ROW_GROUP, TILE_ROWS


@pytest.fixture(autouse=True, params=["dense", "nonzeros-by-component", "nonzeros-as-lanes"])
def loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test on both loops of a block: the dense one, and the one on the non-zeros
    (:mod:`.diag_nonzeros`, taken for every block whose affine map has no offset) with each
    row's statistics added either per component holding it (in integers for ``uint8`` rows held
    by one component alone) or with the components as lanes (rows held alone still in integers)."""
    monkeypatch.setattr(diag_rows, "NONZERO_SHARE", -1.0 if request.param == "dense" else 1.0)
    monkeypatch.setattr(diag_rows, "BLOCK_COST", 0.0 if request.param == "nonzeros-by-component" else 1e9)
    return str(request.param)


def images(n: int, seed: int, side: int = 8) -> np.ndarray:
    """``n`` uint8 ``side x side`` images with a zero border and sparse strokes inside, as rows."""
    rng = np.random.default_rng(seed)
    img = np.zeros((n, side, side), dtype=np.uint8)
    inner = rng.integers(0, 256, (n, side - 2, side - 2))
    inner[rng.random(inner.shape) < 0.7] = 0  # ~30 % non-zero inside, as MNIST's strokes
    img[:, 1:-1, 1:-1] = inner
    return img.reshape(n, side * side)


def mixture(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means (rows of ``x`` moved a little) and diagonal precision Cholesky factors."""
    rng = np.random.default_rng(seed)
    means = x[rng.choice(x.shape[0], k, replace=False)] + rng.normal(0, 0.05, (k, x.shape[1]))
    var = x.var(axis=0) + 0.05
    prec_chol = 1.0 / np.sqrt(var * rng.uniform(0.5, 2.0, (k, x.shape[1])))
    weights = rng.uniform(1.0, 2.0, k)
    return weights / weights.sum(), means, prec_chol


def reference(x: np.ndarray, weights: np.ndarray, means: np.ndarray, prec_chol: np.ndarray,
              min_resp: np.ndarray) -> dict[str, np.ndarray]:
    """One EM pass's statistics in float64 NumPy, straight from the definitions (``prec_chol``
    of shape (K, d))."""
    d = x.shape[1]
    wlp = (np.log(weights) + np.log(prec_chol).sum(axis=1) - 0.5 * d * math.log(2 * math.pi)
           - 0.5 * ((x[:, None, :] - means) ** 2 * prec_chol**2).sum(axis=2))
    log_norm = logsumexp(wlp, axis=1)
    resp = np.exp(wlp - log_norm[:, None])
    kept = np.where(resp >= min_resp, resp, 0.0)
    nk = kept.sum(axis=0)
    mean = kept.T @ x / nk[:, None]
    m2 = np.stack([kept[:, k] @ (x - mean[k]) ** 2 for k in range(means.shape[0])])
    positive = np.where(resp > 0, resp, 1.0)
    return {"log_lik": np.array(log_norm.sum()), "entropy": np.array(np.sum(resp * np.log(positive))),
            "nk": nk, "mean": mean, "m2": m2, "resp": resp}


def check(block: np.ndarray, affine: Affine, params: tuple[np.ndarray, np.ndarray, np.ndarray],
          covariance_type: str = "diag", n_samples: int | None = None) -> dict[str, np.ndarray]:
    """The kernel's statistics of ``block`` equal the reference's; returns the reference."""
    weights, means, prec_chol = params
    gp = K.gaussian_params(weights, means, prec_chol, covariance_type, n_samples, with_entropy=True)
    (stats,) = K.em_kernel(block, None, ChunkInfo(0, 0), K.EMParams((gp,), affine))
    per_feature = np.broadcast_to(prec_chol.reshape(len(weights), -1), means.shape)
    ref = reference(affine.apply(block.astype(np.float64)), weights, means, per_feature, gp.min_resp)
    assert stats.n_rows == block.shape[0]
    assert stats.log_lik == pytest.approx(float(ref["log_lik"]), rel=1e-11)
    assert stats.entropy == pytest.approx(float(ref["entropy"]), rel=1e-9, abs=1e-9)
    assert_allclose(stats.nk, ref["nk"], rtol=1e-11)
    assert_allclose(stats.means + gp.center, ref["mean"], rtol=1e-11, atol=1e-12)
    m2 = ref["m2"]  # 'spherical' keeps the diagonal's statistics too
    assert_allclose(stats.m2, m2, rtol=1e-10, atol=1e-12 * max(1.0, float(m2.max())))
    return ref


# 203 rows: three full 64-row tiles and one of 11 (two groups of four and a group of three)
@pytest.mark.parametrize("n", [1, 3, TILE_ROWS, 203])
def test_uint8_images_with_zero_borders(n: int) -> None:
    block = images(n, seed=n)
    affine = Affine(scale=1 / 255)
    x = affine.apply(images(400, seed=99).astype(np.float64))
    ref = check(block, affine, mixture(x, 4, seed=1))
    if n == 203:  # every component holds more than four rows: the four-row updates and the single ones ran
        assert (ref["resp"].argmax(axis=1)[:, None] == np.arange(4)).sum(axis=0).min() > ROW_GROUP


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_float32_rows_with_zero_columns(covariance_type: str) -> None:
    rng = np.random.default_rng(3)
    block = rng.normal(0, 1, (130, 12)).astype(np.float32)
    block[:, [0, 5, 11]] = 0.0  # columns zero in every row
    block[rng.random(block.shape) < 0.5] = 0.0  # and half of the others
    weights, means, prec_chol = mixture(block.astype(np.float64), 3, seed=4)
    if covariance_type == "spherical":
        prec_chol = prec_chol.mean(axis=1)
    check(block, Affine(), (weights, means, prec_chol), covariance_type)


def test_int16_rows_with_negative_values() -> None:
    """Signed integers as stored (their conversion to float64 by vector lanes too), 130 features
    (two 64-feature masks and a tail of 2), most values zero."""
    rng = np.random.default_rng(13)
    block = rng.integers(-300, 300, (97, 130)).astype(np.int16)
    block[rng.random(block.shape) < 0.75] = 0
    weights, means, prec_chol = mixture(block.astype(np.float64), 3, seed=14)
    check(block, Affine(), (weights, means, prec_chol * 3))


def test_all_zero_block_and_dense_block() -> None:
    affine = Affine(scale=1 / 255)
    x = affine.apply(images(400, seed=7).astype(np.float64))
    ref = check(np.zeros((70, 64), dtype=np.uint8), affine, mixture(x, 3, seed=2))
    assert_allclose(ref["m2"], 0.0)  # every row the same
    rng = np.random.default_rng(5)
    dense = rng.normal(100.0, 3.0, (131, 6))  # no zeros, far from the origin
    check(dense, Affine(), mixture(dense, 3, seed=6))


def test_light_components_keep_every_responsibility() -> None:
    """With ``n_samples``, components below one row's worth of mass keep every non-zero
    responsibility (``min_resp`` 0) while the others drop those below 1e-30."""
    affine = Affine(scale=1 / 255)
    block = images(150, seed=11)
    x = affine.apply(block.astype(np.float64))
    weights, means, prec_chol = mixture(x, 4, seed=12)
    weights = np.array([0.5, 0.3, 0.2 - 1e-9, 1e-9])
    gp = K.gaussian_params(weights, means, prec_chol * 3, "diag", n_samples=150)
    assert gp.min_resp[3] == 0.0 and (gp.min_resp[:3] == K.MIN_RESP).all()
    resp = check(block, affine, (weights, means, prec_chol * 3), n_samples=150)["resp"]
    assert ((resp[:, :3] > 0) & (resp[:, :3] < K.MIN_RESP)).any()  # terms left out of the heavy components
    assert (resp[:, 3] > 0).all() and (resp[:, 3] < K.MIN_RESP).any()  # and kept in the light one


@pytest.mark.parametrize("row", [100, 300])
def test_non_finite_row_raises_naming_it(row: int) -> None:
    """The row named is the first non-finite one, wherever it falls in its tile, also among
    the block's first 256 rows, which set its reference point (every row's ``log p(x)`` is
    then non-finite)."""
    rng = np.random.default_rng(8)
    block = rng.normal(0, 1, (400, 5)).astype(np.float32)
    block[row, 2] = np.nan
    block[390, 0] = np.inf
    gp = K.gaussian_params(*mixture(rng.normal(0, 1, (50, 5)), 3, seed=9), "diag")
    with pytest.raises(NonFiniteDataError, match=rf"non-finite value .*nan.* in chunk 2 at row {1000 + row}, feature 2"):
        K.em_kernel(block, None, ChunkInfo(2, 1000), K.EMParams((gp,), Affine()))


def test_row_estep_skips_only_responsibilities_below_min_resp() -> None:
    """The loop's row E-step takes no exponential for a component more than
    ``-log(min_resp) + 1`` nats (70 for 1e-30) below the row's best: that responsibility is below
    ``min_resp`` (left out of the statistics) and is set to 0; every other one, ``log p(x)`` and
    ``sum r log r`` are :func:`row_responsibilities`' (the skipped terms move them by less than
    1e-29 of the total). Gaps of 68 and 71.5 nats sit on either side of the floor; a component
    with ``min_resp`` 0 keeps a responsibility of exp(-300)."""
    from daskcluster.kernels.mixture.estep import (
        exp_floor,
        responsibilities_above,
        row_responsibilities,
    )

    top = -10.0
    w = top - np.array([0.0, 68.0, 71.5, 300.0, 800.0, 0.5])
    min_resp = np.array([K.MIN_RESP, K.MIN_RESP, K.MIN_RESP, 0.0, K.MIN_RESP, K.MIN_RESP])
    floor = exp_floor(min_resp)
    assert_allclose(floor, [math.log(K.MIN_RESP) - 1.0] * 3 + [-746.0] + [math.log(K.MIN_RESP) - 1.0] * 2)
    ours, ref = w.copy(), w.copy()
    log_norm, entropy = responsibilities_above(ours, floor)
    ref_norm, ref_entropy, _ = row_responsibilities(ref)
    assert K.MIN_RESP < ref[1] and 0.0 < ref[2] < K.MIN_RESP and ref[3] > 0.0 and ref[4] == 0.0
    assert ours[2] == 0.0
    kept = [0, 1, 3, 4, 5]
    assert_allclose(ours[kept], ref[kept], rtol=1e-15, atol=0.0)
    assert log_norm == pytest.approx(ref_norm, rel=1e-15)
    assert entropy == pytest.approx(ref_entropy, rel=1e-15, abs=1e-27)
