"""'full' E-step distances by compiled register blocks (:mod:`daskcluster.kernels.mixture.whitened`)
and the exponentials left out below a component's ``min_resp`` (:func:`estep.responsibilities_above`)."""

from __future__ import annotations

import numpy as np
import pytest

from daskcluster.kernels import mixture as K
from daskcluster.kernels.mixture import estep, whitened
from daskcluster.kernels.mixture.buffers import Scratch
from daskcluster.kernels.mixture.covariance import full


def factors(rng: np.random.Generator, k: int, d: int) -> np.ndarray:
    """``k`` upper-triangular precision factors of ``d`` features, of assorted scales."""
    u = np.triu(rng.normal(0, 1.0, (k, d, d)))
    u[:, np.arange(d), np.arange(d)] = np.abs(u[:, np.arange(d), np.arange(d)]) + 0.5
    return u * rng.uniform(0.1, 10.0, (k, 1, 1))


def error_bound(a: np.ndarray, up: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The module's rounding bound of each distance, (n, K): with ``s_j = |m_j| + sum_l |a_l U_lj|``,
    ``y`` the float64 coordinates and ``g = gamma_{2(d+4)}``,
    ``2 g sum |y| s + g^2 sum s^2 + g (1 + g) sum (|y| + g s)^2`` (``|y|`` raised by ``g s``
    to cover the exact coordinates)."""
    d = a.shape[1]
    eps = np.finfo(np.float64).eps / 2
    g = 2 * (d + 4) * eps / (1 - 2 * (d + 4) * eps)
    bound = np.empty((a.shape[0], up.shape[0]))
    for k in range(up.shape[0]):
        s = np.abs(a) @ np.abs(up[k]) + np.abs(m[k])
        y = np.abs(a @ up[k] - m[k]) + g * s
        bound[:, k] = (2 * g * (y * s).sum(axis=1) + g * g * (s * s).sum(axis=1)
                       + g * (1 + g) * ((y + g * s) ** 2).sum(axis=1))
    return bound


def exact_distances(a: np.ndarray, u: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``sum((a U - delta U)^2)`` in extended precision (x86's 80-bit long double: 11 more bits
    than float64, so its own error is ~1/2000 of the bound)."""
    al = a.astype(np.longdouble)
    return np.column_stack([
        (((al @ uk.astype(np.longdouble)) - dk.astype(np.longdouble) @ uk.astype(np.longdouble)) ** 2).sum(axis=1)
        for uk, dk in zip(u, delta)
    ])


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps,
                    reason="needs a long double wider than float64 for the reference")
@pytest.mark.parametrize("n", [1, 7, 8, 37, 256])
@pytest.mark.parametrize("d", [1, 7, 8, 9, 50, 100])
def test_distances_within_the_rounding_bound(n: int, d: int) -> None:
    """Every distance within the module's rounding bound of the extended-precision value, as are
    BLAS's ``sum((X @ U - mu @ U)^2)`` (scikit-learn's formula); rows not a multiple of the
    register block's 8 (the last rows through ``work``), 1 to 100 features (a partial column
    block, one, several); rows read from a wider buffer (the tiled E-step's ``[x - ref, 1]``).
    A wrong or missing term moves a distance by ~its size, ~1e12 times the bound."""
    rng = np.random.default_rng(n * 100 + d)
    k = 3
    u = factors(rng, k, d)
    delta = rng.normal(0, 1.0, (k, d))
    buf = rng.normal(0, 3.0, (n, d + 1))
    a = buf[:, :d]
    up, m = whitened.pad_factors(delta, u)
    assert up.shape == (k, d, whitened.padded_width(d)) and whitened.padded_width(d) % whitened.LANES == 0
    out = np.full((n, k), np.nan)
    whitened.whitened_sq_norms(a, up, m, np.empty((whitened.ROWS, d)), out)
    exact = exact_distances(a, u, delta)
    bound = error_bound(a, up, m)
    assert (np.abs(out - exact) <= bound).all()
    blas = np.column_stack([((a @ uk - dk @ uk) ** 2).sum(axis=1) for uk, dk in zip(u, delta)])
    assert (np.abs(blas - exact) <= bound).all()
    assert np.median(bound / exact) < 1e-12  # tight enough to see an error (loose only where y cancels)


@pytest.mark.parametrize("d", [5, full.MAX_FEATURES, full.MAX_FEATURES + 1])
def test_mahalanobis_on_both_sides_of_the_crossover(d: int) -> None:
    """The 'full' type's tile distances (compiled up to ``MAX_FEATURES`` features, ``dtrmm``
    beyond) equal NumPy's ``||(x - mu) L||^2`` to ``1e-12`` relative (both within ``~d eps``
    of the exact value), on the tiled E-step's ``[x - ref, 1]`` buffer."""
    rng = np.random.default_rng(d)
    k, n = 2, 45
    u = factors(rng, k, d)
    means = rng.normal(0, 1.0, (k, d))
    gp = K.gaussian_params(np.full(k, 0.5), means, u, "full")
    ref = rng.normal(0, 0.1, d)
    x = rng.normal(0, 1.0, (n, d))
    a = np.ones((n, d + 1))
    a[:, :d] = x - ref
    cov = full.FullCovariance()
    prep = cov.prepare(gp, ref)
    assert bool(prep.padded.shape[0]) == full.uses_whitened(d)
    got = cov.mahalanobis(a, d, prep, gp, Scratch())
    want = np.column_stack([(((x - mk) @ uk) ** 2).sum(axis=1) for mk, uk in zip(means, u)])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_responsibilities_above_a_floor() -> None:
    """At ``exp``'s underflow the floor changes nothing; at ``log(1e-30) - 1`` (a component
    holding a row's worth of mass) the components more than 70 nats below the best get exactly
    0, the others and ``log p(x)`` move by less than ``1e-29`` relative (each left-out term is
    below ``1e-30 / e`` of the best's). Beyond that, the two compiled functions may round
    differently (their ``exp`` and the last operations may be compiled differently in one
    process: one ulp was seen in a full run), so each comparison also allows a few ulps: of each
    responsibility and ``log p(x)``, and of ``sum r s - log t``'s operands for ``sum r log r``
    (``|sum r s| <= K / e``, each ``r s >= -1/e``; ``0 <= log t <= log K``)."""
    rng = np.random.default_rng(3)
    eps = np.finfo(np.float64).eps
    entropy_rounding = 4 * eps * (6 / np.e + np.log(6))
    for _ in range(200):
        w = rng.normal(0, 60.0, 6)
        ref = w.copy()
        value, entropy, _ = estep.row_responsibilities(ref)
        same = w.copy()
        got_value, got_entropy = estep.responsibilities_above(same, np.full(6, estep.EXP_UNDERFLOW))
        assert abs(got_value - value) <= 4 * eps * abs(value)
        assert abs(got_entropy - entropy) <= entropy_rounding
        np.testing.assert_allclose(same, ref, rtol=4 * eps, atol=0)
        floor = estep.exp_floor(np.array([1e-30] * 5 + [0.0]))
        assert floor[0] == pytest.approx(np.log(1e-30) - 1) and floor[5] == estep.EXP_UNDERFLOW
        cut = w.copy()
        v2, e2 = estep.responsibilities_above(cut, floor)
        low = (w - w.max() <= floor)
        assert (cut[low] == 0).all() and (ref[low] < 1e-30).all()
        np.testing.assert_allclose(cut[~low], ref[~low], rtol=1e-29 + 4 * eps, atol=0)
        assert abs(v2 - value) <= (1e-29 + 4 * eps) * max(1.0, abs(value))
        assert abs(e2 - entropy) <= 1e-27 + entropy_rounding


@pytest.mark.parametrize("m", [0, 1, 7, 256])
@pytest.mark.parametrize("d", [8, 9, 50, 100])
def test_gram_lower_triangle(m: int, d: int) -> None:
    """:func:`gram.gram_lower_add` adds ``z^T z`` into the lower triangle of its output and leaves
    the upper one as it was, on a buffer with its zero columns first, within the bound
    ``gamma_m sum_i |z_ij z_il|`` of any summation order (here ``1e-13`` of that sum; a lost
    or doubled row moves an entry by ~1/m of it)."""
    from daskcluster.kernels.mixture import gram

    rng = np.random.default_rng(m * 100 + d)
    width = whitened.padded_width(d)
    buf = np.full((300, width), np.nan)
    buf[:, : width - d] = 0.0
    buf[:m, width - d :] = rng.normal(0, 1.0, (m, d))
    out = rng.normal(0, 1.0, (d, d))
    before = out.copy()
    gram.gram_lower_add(buf, m, out, np.empty((gram.ROWS, whitened.LANES)))
    z = buf[:m, width - d :]
    want = before + np.tril(z.T @ z)
    scale = np.abs(z).T @ np.abs(z) + 1.0
    assert (np.abs(out - want) <= 1e-13 * scale).all()
    upper = np.triu_indices(d, 1)
    assert np.array_equal(out[upper], before[upper])
