"""The diagonal EM pass on the non-zeros of the rows (``kernels/mixture/diag_nonzeros.py``).

Its log-densities against exact rational arithmetic within the rounding bound of the module's
notes (every vector layout of the compiled loops, stored dtypes, feature counts that end inside a
64-feature mask, and rows near a tight component, where the expanded form cancels); when
``DiagRows`` takes it; and fits through it equal to scikit-learn's, whose diagonal E-step
is the same expanded form. (The statistics of one pass against a NumPy reference: every test of
``test_mixture_diag_tiles.py`` runs on this loop too.)
"""

from __future__ import annotations

import math
from fractions import Fraction

import dask.array as da
import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from daskcluster import GaussianMixture, scaled
from daskcluster.kernels import mixture as K
from daskcluster.kernels.blocks import Affine
from daskcluster.kernels.mixture import diag_rows
from daskcluster.kernels.mixture.diag_nonzeros import (
    BLOCK_COST,
    FLUSH_ROWS,
    MAX_COMPONENTS,
    diag_em_nonzeros,
    padded_components,
)
from daskcluster.kernels.mixture.diag_rows import DiagRows
from daskcluster.kernels.mixture.estep import exp_floor, responsibilities_above
from daskcluster.kernels.mixture.nonzero_groups import (
    GROUP,
    PART,
    TILE_ROWS,
    GroupParams,
    nonzero_log_densities,
    screen_bound,
    screened_tile_distances,
    tile_distances,
)
from daskcluster.kernels.vector_ir import ALIGNMENT, aligned_zeros

EPS = 2.0**-53


def gamma(n: float) -> float:
    return n * EPS / (1 - n * EPS)


def images(n: int, side: int, seed: int) -> np.ndarray:
    """uint8 images with a zero border and ~25 % non-zero strokes inside, as rows (MNIST-like)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((n, side, side), dtype=np.uint8)
    inner = rng.integers(1, 256, (n, side - 4, side - 4))
    inner[rng.random(inner.shape) < 0.6] = 0
    img[:, 2:-2, 2:-2] = inner
    return img.reshape(n, side * side)


def log_densities(x: np.ndarray, scale: float, means: np.ndarray, prec: np.ndarray,
                  log_const: np.ndarray) -> np.ndarray:
    p = GroupParams(means, prec)
    out = np.empty((x.shape[0], means.shape[0]))
    nonzero_log_densities(x, scale, p.p, p.a, p.c, log_const, out)
    return out


def check_log_densities(x: np.ndarray, scale: float, means: np.ndarray, prec: np.ndarray) -> None:
    """The compiled log-densities against exact ones, within the module's bound:
    ``|D - D_exact| <= gamma_{m + 14} (c + S) + gamma_{ceil(log2 d) + 3} c`` for the distance
    (``m`` the row's non-zeros, ``S = sum_nz |y| (|y| P + |A|)``), halved, plus the rounding of
    ``log_const - D / 2``."""
    k_n, d = means.shape
    log_const = np.linspace(-3.0, 2.0, k_n)
    out = log_densities(x, scale, means, prec, log_const)
    y = x.astype(np.float64) * scale  # the values the kernel reads
    c = (means * means * prec).sum(axis=1)
    for i in range(x.shape[0]):
        nz = np.flatnonzero(x[i])
        s = (np.abs(y[i, nz]) * (np.abs(y[i, nz]) * prec[:, nz] + 2.0 * np.abs(means[:, nz]) * prec[:, nz])).sum(axis=1)
        bound = gamma(nz.size + 14) * (c + s) + gamma(math.ceil(math.log2(d)) + 3) * c
        for k in range(k_n):
            exact_d = sum((Fraction(float(y[i, j])) - Fraction(float(means[k, j]))) ** 2 * Fraction(float(prec[k, j]))
                          for j in range(d))
            exact = Fraction(float(log_const[k])) - exact_d / 2
            err = abs(Fraction(float(out[i, k])) - exact)
            assert err <= bound[k] / 2 + 2 * EPS * (abs(log_const[k]) + abs(float(exact))), (i, k, float(err), bound[k])


@pytest.mark.parametrize("k_n", [1, 3, 10, PART, PART + 1, 2 * PART + 5, 32])
def test_log_densities_every_part(k_n: int) -> None:
    """Components in one walk (up to PART) or several; 130 features: 16 groups and a tail of 2;
    70 rows: a tile and 6 rows."""
    rng = np.random.default_rng(k_n)
    x = np.hstack([images(70, 12, seed=k_n)[:, :128], images(70, 12, seed=k_n + 1)[:, 40:42]])
    means = rng.uniform(0, 1, (k_n, 130))
    prec = rng.uniform(1.0, 50.0, (k_n, 130))
    check_log_densities(x, 1 / 255, means, prec)


@pytest.mark.parametrize("d", [3, 8, 64, 71, 136, 600])
def test_log_densities_every_width(d: int) -> None:
    """No full group (3), one (8), one mask's worth (64), a tail of 7 (71), 17 groups (136) and
    75 groups in two blocks of 38 and 37 (600)."""
    rng = np.random.default_rng(d)
    x = rng.integers(1, 256, (7, d)).astype(np.uint8)
    x[rng.random(x.shape) < 0.7] = 0
    x[0] = 0  # a row of zeros only
    x[1] = 255  # a row without a zero
    means = rng.uniform(0, 1, (4, d))
    prec = rng.uniform(1.0, 50.0, (4, d))
    check_log_densities(x, 1 / 255, means, prec)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.float32, np.float64])
@pytest.mark.parametrize("d", [5, 64, 71])
def test_log_densities_stored_dtypes(dtype: type, d: int) -> None:
    rng = np.random.default_rng(d)
    low = -3 if np.dtype(dtype).kind in "if" and dtype is not np.uint8 else 0
    x = rng.integers(low, 100, (9, d)).astype(dtype)
    x[rng.random(x.shape) < 0.7] = 0
    x[0] = 0
    if np.dtype(dtype).kind == "f":
        x[1, d - 1] = -0.0  # a negative zero counts as zero (adds nothing either way)
        x[2, 0] = 0.5
    means = rng.normal(50, 30, (10, d))
    prec = rng.uniform(1e-4, 1e-2, (10, d))
    check_log_densities(x, 1.0, means, prec)


def test_log_densities_near_a_tight_component() -> None:
    """Rows within 1e-6 of a component of precision 1e10: the expanded form cancels about 10
    digits (``c + S`` is 1e12 times ``D``), still within its bound."""
    rng = np.random.default_rng(4)
    x = images(6, 10, seed=4)
    means = np.vstack([x[0] / 255 + rng.normal(0, 1e-6, 100), rng.uniform(0, 1, (2, 100))])
    prec = np.vstack([np.full((1, 100), 1e10), rng.uniform(1, 10, (2, 100))])
    check_log_densities(x, 1 / 255, means, prec)


def test_a_nan_makes_the_row_nan() -> None:
    """A NaN counts as non-zero: its group is taken and the row's log-densities are NaN, the
    other rows' unchanged."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 20))
    x[rng.random(x.shape) < 0.5] = 0.0
    means = rng.normal(size=(3, 20))
    prec = rng.uniform(1, 2, (3, 20))
    log_const = np.zeros(3)
    ref = log_densities(x, 1.0, means, prec, log_const)
    x[2, 17] = np.nan  # in the tail (features 16-19)
    x[3, 9] = np.nan  # in the second group
    out = log_densities(x, 1.0, means, prec, log_const)
    assert np.isnan(out[[2, 3]]).all()
    np.testing.assert_array_equal(out[[0, 1, 4]], ref[[0, 1, 4]])


def test_parameters_on_a_cache_line_or_not() -> None:
    """The parameters laid out on a cache line (as :class:`GroupParams` does) or 8, 32 and 48
    bytes into one: the loads assume no alignment, and the results are the same bits."""
    rng = np.random.default_rng(7)
    x = images(70, 12, seed=7)
    means = rng.uniform(0, 1, (10, 144))
    prec = rng.uniform(1.0, 50.0, (10, 144))
    p = GroupParams(means, prec)
    assert p.p.ctypes.data % ALIGNMENT == 0 and p.a.ctypes.data % ALIGNMENT == 0
    assert p.p.shape == (10, 144) and p.p.shape[1] % GROUP == 0
    log_const = np.linspace(-3.0, 2.0, 10)
    ref = np.empty((70, 10))
    nonzero_log_densities(x, 1 / 255, p.p, p.a, p.c, log_const, ref)
    for shift in (1, 4, 6):
        views = []
        for a in (p.p, p.a):
            buf = aligned_zeros((a.size + shift,))
            view = buf[shift : shift + a.size].reshape(a.shape)
            view[...] = a
            assert view.ctypes.data % ALIGNMENT == 8 * shift
            views.append(view)
        out = np.empty((70, 10))
        nonzero_log_densities(x, 1 / 255, views[0], views[1], p.c, log_const, out)
        np.testing.assert_array_equal(out, ref)


def test_parameters_padded_to_whole_groups() -> None:
    means = np.ones((2, 13))
    prec = np.full((2, 13), 2.0)
    p = GroupParams(means, prec)
    assert p.p.shape == (2, 16) and not p.p[:, 13:].any() and not p.a[:, 13:].any()
    np.testing.assert_array_equal(p.a[:, :13], -4.0)
    np.testing.assert_array_equal(p.c, 26.0)


@pytest.mark.parametrize("shape", [(1,), (784, 12), (10, 784), (3, 5, 7)])
def test_aligned_zeros_start_on_a_cache_line(shape: tuple[int, ...]) -> None:
    a = aligned_zeros(shape)
    assert a.shape == shape and a.dtype == np.float64 and a.flags.c_contiguous and a.flags.writeable
    assert a.ctypes.data % ALIGNMENT == 0
    assert not a.any()


def test_which_blocks_take_the_non_zeros() -> None:
    """Blocks without offset, of at most 32 components, whose first 256 rows have at most 95 % of
    their groups of 8 features non-zero up to 10 components (0.008 less per component more; the
    last ``d mod 8`` features one more group; counted in groups, not values; deterministic given
    the block); else the dense loop."""
    x = images(300, 12, seed=5)
    gp = K.gaussian_params(np.full(3, 1 / 3), x[:3] / 255, np.ones((3, 144)), "diag")
    assert DiagRows(gp, np.zeros(144), Affine(scale=1 / 255)).uses_nonzeros(x)
    assert not DiagRows(gp, np.zeros(144), Affine(scale=1 / 255, offset=-0.5)).uses_nonzeros(x)
    dense = x.copy()
    dense[:256][dense[:256] == 0] = 1
    assert not DiagRows(gp, np.zeros(144), Affine()).uses_nonzeros(dense)
    wide = K.gaussian_params(np.full(MAX_COMPONENTS + 1, 1 / (MAX_COMPONENTS + 1)), x[: MAX_COMPONENTS + 1] / 255,
                             np.ones((MAX_COMPONENTS + 1, 144)), "diag")
    assert not DiagRows(wide, np.zeros(144), Affine()).uses_nonzeros(x)
    assert not DiagRows(gp, np.zeros(144), Affine()).uses_nonzeros(x[:0])
    assert diag_rows.SHARE_ROWS == 256
    assert [round(diag_rows.nonzero_share(k), 12) for k in (1, 10, 11, 32)] == [0.95, 0.95, 0.942, 0.774]
    rng = np.random.default_rng(7)
    for d, dtype, k_n in ((144, np.uint8, 10), (13, np.uint8, 32), (5, np.float64, 11), (20, np.float32, 2)):
        n_groups = -(-d // GROUP)
        loop = DiagRows(K.gaussian_params(np.full(k_n, 1 / k_n), np.zeros((k_n, d)), np.ones((k_n, d)), "diag"),
                        np.zeros(d), Affine())
        limit = math.floor(diag_rows.nonzero_share(k_n) * 256 * n_groups)
        for taken in (limit, limit + 1):
            # ``taken`` groups of the first 256 rows hold one non-zero value, at a random feature of the group.
            block = np.zeros((300, d), dtype=dtype)
            block[256:] = 9  # rows past the first 256 do not count
            for g in rng.choice(256 * n_groups, taken, replace=False):
                row, q = divmod(int(g), n_groups)
                block[row, rng.integers(q * GROUP, min(q * GROUP + GROUP, d))] = np.nan if dtype == np.float64 else 3
            if dtype != np.uint8:
                block[:256][block[:256] == 0] = -0.0  # a negative zero is zero
            assert loop.uses_nonzeros(block) == (taken == limit), (d, k_n, taken)
    # Whole groups non-zero (61 % of the values, which the share of values would have refused): taken.
    block = np.zeros((256, 144), dtype=np.uint8)
    block[:, : 8 * 11] = rng.integers(1, 256, (256, 8 * 11))
    assert DiagRows(gp, np.zeros(144), Affine()).uses_nonzeros(block)
    # One non-zero in every group (12.5 % of the values, every group to walk): the dense loop.
    block = np.zeros((256, 144), dtype=np.uint8)
    block[:, ::8] = 1
    assert not DiagRows(gp, np.zeros(144), Affine()).uses_nonzeros(block)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_blocks_far_from_the_origin_keep_the_dense_loop(covariance_type: str) -> None:
    """Three features offset by 1e6 (spread ~1) beside 13 zero columns (half the groups zero): the
    share of non-zero groups alone would take the pass, whose expanded form loses ~12 of the 16
    digits there (as scikit-learn's does); the dense loop, whose sums are around the block's
    reference point, keeps the fit equal to scikit-learn's on the data without the offset, moved."""
    rng = np.random.default_rng(3)
    X = np.zeros((400, 16))
    X[:, :3] = rng.normal(size=(400, 3)) + np.repeat([[0.0, 0, 0], [4, 4, 0], [0, 4, 4]], [150, 150, 100], axis=0)
    offset = np.zeros(16)
    offset[:3] = 1e6
    gp = K.gaussian_params(np.full(3, 1 / 3), X[:3] + offset, np.ones((3, 16)), "diag")
    assert not DiagRows(gp, np.zeros(16), Affine()).uses_nonzeros(X + offset)
    assert DiagRows(gp, np.zeros(16), Affine()).uses_nonzeros(X)
    means = X[[0, 200, 399]]
    precisions = np.full((3, 16), 1.0) if covariance_type == "diag" else np.ones(3)
    init = {"weights_init": np.full(3, 1 / 3), "precisions_init": precisions, "covariance_type": covariance_type,
            "max_iter": 5, "tol": 0}
    sk = SkGaussianMixture(3, means_init=means, **init).fit(X)
    ours = GaussianMixture(3, means_init=means + offset, **init).fit(da.from_array(X + offset, chunks=(300, -1)))
    assert_allclose(ours.means_ - offset, sk.means_, atol=1e-6)
    assert_allclose(ours.covariances_, sk.covariances_, rtol=1e-6, atol=1e-8)
    assert_allclose(ours.lower_bounds_, sk.lower_bounds_, rtol=1e-7)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("n_components", [5, 10])
def test_fit_on_image_rows_equals_sklearn(covariance_type: str, n_components: int,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """uint8 images (144 features: two masks and a tail), scaled by 1/255, uneven chunks with an
    empty one, a mean whose square underflows: the fit through the non-zero pass equals
    scikit-learn's to the tolerance of the other equality tests (every block takes the pass)."""
    calls = []
    original = diag_rows.diag_em_nonzeros

    def counted(*args: object) -> object:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(diag_rows, "diag_em_nonzeros", counted)
    raw = images(420, 12, seed=n_components)
    X = raw / 255.0
    rng = np.random.default_rng(0)
    means = X[rng.choice(420, n_components, replace=False)].copy()
    means[0, 0] = 1e-320
    precisions = np.full((n_components, 144), 8.0) if covariance_type == "diag" else np.full(n_components, 8.0)
    init = {"weights_init": np.full(n_components, 1 / n_components), "means_init": means,
            "precisions_init": precisions, "covariance_type": covariance_type, "reg_covar": 1e-3,
            "max_iter": 5, "tol": 0}
    ours = GaussianMixture(n_components, **init).fit(
        scaled(da.from_array(raw, chunks=((150, 0, 200, 70), (144,))), 1 / 255))
    sk = SkGaussianMixture(n_components, **init).fit(X)
    assert len(calls) >= 5 * 3
    assert_allclose(ours.lower_bounds_, sk.lower_bounds_, rtol=1e-9)
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert_allclose(getattr(ours, attr), getattr(sk, attr), rtol=1e-7, atol=1e-9, err_msg=attr)


def run_pass(x: np.ndarray, scale: float, means: np.ndarray, prec: np.ndarray, log_const: np.ndarray,
             min_resp: np.ndarray, block_cost: float, screen: bool = True
             ) -> tuple[tuple[float, float, int, float], np.ndarray, np.ndarray, np.ndarray]:
    """``diag_em_nonzeros`` on ``x`` as ``DiagRows`` calls it (``screen=False``: every distance in
    float64): ``(its result, nk, s1, s2)`` around 0."""
    k_n, d = means.shape
    p = GroupParams(means, prec)
    nk = np.zeros(k_n)
    s1 = aligned_zeros((k_n, d))
    s2 = aligned_zeros((k_n, d))
    t1 = aligned_zeros((d, padded_components(k_n)))
    t2 = aligned_zeros((d, padded_components(k_n)))
    bound = screen_bound(x.dtype, scale, d) if screen else None
    coef, slack = bound if bound is not None else (-1.0, 0.0)
    out = diag_em_nonzeros(x, scale, p.p, p.a, p.c, log_const, min_resp, exp_floor(min_resp), nk, s1, s2, t1, t2,
                           block_cost, p.p32, p.a32, coef, slack)
    return out, nk, s1 + t1[:, :k_n].T, s2 + t2[:, :k_n].T


def test_rows_held_alone_sum_bytes_exactly_across_a_conversion() -> None:
    """uint8 rows all held by one component with responsibility 1 are summed in integers: past
    ``FLUSH_ROWS`` rows (here 70,000 rows, a column of 255 in each: its ``sum v^2`` is 1.06 times
    ``2^32``), each entry of ``s1`` is within ``gamma_{2F}`` and of ``s2`` within ``gamma_{3F}``
    of the exact ``sum v scale`` and ``sum (v scale)^2`` (``F = 2`` conversions), ``n_k`` is the
    count; the other component, 1000 nats below, holds nothing."""
    assert FLUSH_ROWS * 255**2 < 2**32 < 70_000 * 255**2
    rng = np.random.default_rng(21)
    x = images(70_000, 9, seed=21)[:, :80].copy()  # a mask of 64 features and a tail of 16
    x[:, 3] = 255
    x[:, 70] = 255  # in the tail too
    scale = 1 / 255
    means = rng.uniform(0, 1, (2, 80))
    prec = rng.uniform(1.0, 3.0, (2, 80))
    log_const = np.array([0.0, -1000.0])
    out, nk, s1, s2 = run_pass(x, scale, means, prec, log_const, np.full(2, K.MIN_RESP), BLOCK_COST)
    assert out[2] == -1
    assert nk.tolist() == [70_000.0, 0.0]
    # log p(x) of the rows from the integer sums, at each conversion: within gamma_{d + 4} of their
    # S and gamma_3 of their constants, as each row's own is within gamma_{m + 14} (c + S) / 2
    w = log_densities(x, scale, means, prec, log_const)[:, 0]
    y = x.astype(np.float64) * scale
    c = float((means[0] ** 2 * prec[0]).sum())
    s = float((y * (y * prec[0] + 2.0 * np.abs(means[0]) * prec[0])).sum())
    tol = gamma(80 + 20) * (s + 70_000 * (c + abs(log_const[0]))) + gamma(70_000) * np.abs(w).sum()
    assert abs(out[0] - math.fsum(w)) <= tol
    assert out[1] == 0.0
    assert not s1[1].any() and not s2[1].any()
    sv = x.sum(axis=0, dtype=np.int64)
    sq = (x.astype(np.int64) ** 2).sum(axis=0)
    flushes = 2
    for j in range(80):
        exact1 = Fraction(scale) * int(sv[j])
        exact2 = Fraction(scale) ** 2 * int(sq[j])
        assert abs(Fraction(float(s1[0, j])) - exact1) <= Fraction(gamma(2 * flushes)) * exact1, j
        assert abs(Fraction(float(s2[0, j])) - exact2) <= Fraction(gamma(3 * flushes)) * exact2, j


@pytest.mark.parametrize("block_cost", [0.0, BLOCK_COST, 1e9])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_statistics_and_row_estep_against_exact_sums(block_cost: float, dtype: type) -> None:
    """Rows held by one component with responsibility 1, alone or beside others (integer sums
    for bytes), and by several (their span's sums per component, or their non-zeros with the
    components as lanes): ``log p(x)`` and
    ``sum r log r`` are the bits of :func:`responsibilities_above` summed row by row, and each
    entry of ``n_k``, ``s1``, ``s2`` is within ``gamma_{m + 4}`` of the exact sum of its ``m``
    non-negative terms ``r``, ``r y``, ``r y^2`` (``r`` the responsibilities kept, from the
    same log-densities)."""
    rng = np.random.default_rng(5)
    n, d, k_n = 600, 80, 3
    x = images(n, 9, seed=5)[:, :d].astype(dtype)
    scale = 1 / 255
    y = x.astype(np.float64) * scale
    means = y[rng.choice(n, k_n, replace=False)]
    prec = rng.uniform(50.0, 150.0, (k_n, d))
    log_const = np.array([0.0, -0.5, 0.3])
    min_resp = np.full(k_n, K.MIN_RESP)
    out, nk, s1, s2 = run_pass(x, scale, means, prec, log_const, min_resp, block_cost)
    assert out[2] == -1
    w = log_densities(x, scale, means, prec, log_const)
    floor = exp_floor(min_resp)
    log_lik = entropy = 0.0
    tops = np.empty(n)
    for i in range(n):
        tops[i] = w[i].max()
        value, ent = responsibilities_above(w[i], floor)
        log_lik += value
        entropy += ent
    r = np.where((w != 0) & (w >= min_resp), w, 0.0)
    if dtype == np.uint8:  # the rows held with responsibility 1: log p(x) from the integer sums
        # Each row's log p(x) is its best w, within gamma_{m + 14} (c + S) / 2 of the exact one and
        # so is the sum from the integer sums (gamma_{d + 4} of the rows' S, gamma_3 of their
        # constants); the row-by-row sum adds gamma_n of the magnitudes.
        c = (means * means * prec).sum(axis=1)
        s = (y * (y[:, None, :] * prec + 2.0 * np.abs(means) * prec).transpose(1, 0, 2)).sum(axis=2)  # (K, n)
        best = np.argmax(w, axis=1)
        held = (r == 1.0).any(axis=1)
        magnitude = (c[best] + s[best, np.arange(n)] + np.abs(log_const[best]))[held].sum()
        tol = gamma(d + 20) * magnitude + gamma(n) * np.abs(tops).sum()
        assert abs(out[0] - log_lik) <= tol, (out[0], log_lik, tol)
        assert out[1] == entropy
    else:
        assert (out[0], out[1]) == (log_lik, entropy)
    holders = (r > 0).sum(axis=1)
    whole = (r == 1.0).any(axis=1)
    # rows held with responsibility 1 alone (39 %), beside others below 2^-53 (26 %), and neither
    assert (whole & (holders == 1)).mean() > 0.2 and (whole & (holders > 1)).mean() > 0.1
    assert (~whole).mean() > 0.2
    bound = Fraction(gamma(n + 4))
    rf = [[Fraction(float(v)) for v in row] for row in r]
    for k in range(k_n):
        exact_nk = sum(rf[i][k] for i in range(n))
        assert abs(Fraction(float(nk[k])) - exact_nk) <= bound * exact_nk
        for j in range(0, d, 7):
            yf = [Fraction(float(v)) for v in y[:, j]]
            exact1 = sum(rf[i][k] * yf[i] for i in range(n))
            exact2 = sum(rf[i][k] * yf[i] * yf[i] for i in range(n))
            assert abs(Fraction(float(s1[k, j])) - exact1) <= bound * exact1, (k, j)
            assert abs(Fraction(float(s2[k, j])) - exact2) <= bound * exact2, (k, j)


def screened(x: np.ndarray, scale: float, p: GroupParams, log_const: np.ndarray, min_resp: np.ndarray,
             single_whole: bool) -> tuple[np.ndarray, int]:
    """:func:`screened_tile_distances` over the rows of ``x`` tile by tile: ``(dist (n, K), float64
    values taken)``."""
    n, d = x.shape
    k_n = p.p.shape[0]
    bound = screen_bound(x.dtype, scale, d)
    assert bound is not None
    coef, slack = bound
    floor = exp_floor(min_resp)
    out = np.empty((n, k_n))
    dist = np.empty((TILE_ROWS, k_n))
    acc = np.empty((TILE_ROWS, k_n, GROUP))
    acc32 = np.empty((TILE_ROWS, k_n, GROUP), dtype=np.float32)
    bits = np.empty((TILE_ROWS, 4), dtype=np.int64)
    given = 0
    for t0 in range(0, n, TILE_ROWS):
        rows = min(TILE_ROWS, n - t0)
        given += screened_tile_distances(x, t0, rows, scale, p.p, p.a, p.p32, p.a32, p.c, log_const, floor, min_resp,
                                         coef, slack, single_whole, dist, acc, acc32, bits)
        out[t0 : t0 + rows] = dist[:rows]
    return out, given


def full_distances(x: np.ndarray, scale: float, p: GroupParams) -> np.ndarray:
    n, k_n = x.shape[0], p.p.shape[0]
    out = np.empty((n, k_n))
    dist = np.empty((TILE_ROWS, k_n))
    acc = np.empty((TILE_ROWS, k_n, GROUP))
    for t0 in range(0, n, TILE_ROWS):
        rows = min(TILE_ROWS, n - t0)
        tile_distances(x, t0, rows, scale, p.p, p.a, dist, acc)
        out[t0 : t0 + rows] = dist[:rows]
    return out


@pytest.mark.parametrize(("dtype", "d"), [(np.uint8, 80), (np.uint8, 77), (np.int16, 80), (np.int8, 600)])
def test_screen_keeps_every_component_above_its_floor(dtype: type, d: int) -> None:
    """The float32 screen leaves out only components whose float64 log-density lies at or below
    the best's plus their floor (there ``r = 0`` without it), gives the kept ones the bits of
    :func:`tile_distances`, and under ``single_whole`` a row with one component kept holds its
    best; near ties, tight components (precisions up to 1e4) and a NaN-free mix of gaps."""
    rng = np.random.default_rng(3)
    n, k_n = 900, 7
    base = images(n, 30, seed=3)[:, :d]
    x = (base.astype(np.int64) - (128 if dtype == np.int8 else 0)).astype(dtype) if dtype != np.int16 else \
        (base.astype(np.int16) * 100 - 9000)
    x[base == 0] = 0
    scale = 1 / 255 if dtype != np.int16 else 1e-4
    y = x.astype(np.float64) * scale
    means = y[rng.choice(n, k_n, replace=False)] + rng.normal(0, 0.05, (k_n, d))
    prec = 10.0 ** rng.uniform(-1, 4, (k_n, d))
    means[1] = means[0] + 1e-3  # a near tie
    prec[1] = prec[0]
    p = GroupParams(means, prec)
    log_const = rng.uniform(-5, 5, k_n)
    min_resp = np.where(np.arange(k_n) == 3, 0.0, K.MIN_RESP)  # one component with the exp underflow floor
    full = full_distances(x, scale, p)
    w = log_const - 0.5 * (p.c + full)
    gaps = w - w.max(axis=1, keepdims=True)
    floor = exp_floor(min_resp)
    for single_whole in (False, True):
        out, given = screened(x, scale, p, log_const, min_resp, single_whole)
        kept = np.isfinite(out)
        assert np.all(gaps[~kept] <= floor[np.nonzero(~kept)[1]])
        single = kept.sum(axis=1) == 1
        compare = kept & ~single[:, None] if single_whole else kept
        assert np.array_equal(out[compare], full[compare])
        assert np.array_equal(np.argmax(np.where(kept, 0.0, -np.inf), axis=1)[single], np.argmax(w, axis=1)[single])
        assert given == (compare.sum() if single_whole else kept.sum())
        assert 0.2 < (~kept).mean() < 0.95 and single.mean() > 0.1  # the screen does leave components out


@pytest.mark.parametrize(("dtype", "scale", "offset"), [(np.uint8, 1 / 255, 0.0), (np.uint8, 1 / 255, 50.0),
                                                        (np.int16, 3e-3, 0.0), (np.uint16, 1e-20, 0.0)])
def test_screen_bound_holds_against_exact_sums(dtype: type, scale: float, offset: float) -> None:
    """The float32 distance is within :func:`screen_bound`'s ``coef max(2 D~ + 17 c, 0) + slack`` of
    the exact ``D`` (one component: the screen returns its float32 value), with means far from the
    data (``offset``: large ``c`` and cancellation), precisions over 8 decades, a tail of 5
    features and values near float32's subnormals (``scale`` 1e-20)."""
    rng = np.random.default_rng(11)
    n, d = 120, 85
    top = np.iinfo(dtype).max
    x = rng.integers(0, top, (n, d), endpoint=True).astype(dtype)
    x[rng.random((n, d)) < 0.6] = 0
    y = x.astype(np.float64) * scale
    coef, slack = screen_bound(x.dtype, scale, d)
    for trial in range(3):
        means = y[rng.integers(n)] + offset * scale * top + rng.normal(0, scale * top / 10, d)
        prec = 10.0 ** rng.uniform(-4, 4, d) / (scale * top) ** 2
        p = GroupParams(means[None], prec[None])
        out, given = screened(x, scale, p, np.zeros(1), np.zeros(1), True)
        assert given == 0
        pf = [Fraction(float(v)) for v in p.p[0, :d]]
        af = [Fraction(float(v)) for v in p.a[0, :d]]
        for i in range(0, n, 7):
            yf = [Fraction(float(v)) for v in y[i]]
            exact = sum(yf[j] * (yf[j] * pf[j] + af[j]) for j in range(d) if x[i, j] != 0)
            bound = coef * max(2 * out[i, 0] + 17 * p.c[0], 0.0) + slack
            assert abs(Fraction(float(out[i, 0])) - exact) <= Fraction(bound), (trial, i)
