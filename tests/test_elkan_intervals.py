"""The open distances of Elkan's bounds taken as float32 intervals (kernels/elkan.py): each
interval holds the distance to the float64 centers, and a step gives the labels, sums and
bounds' validity of the step that takes every distance in float64."""

from __future__ import annotations

from fractions import Fraction

import numba
import numpy as np
import pytest

from daskcluster.kernels import bounds as B
from daskcluster.kernels import elkan as E
from daskcluster.kernels import sweep as S
from daskcluster.kernels.blocks import Affine, ChunkInfo


@numba.njit
def _intervals(x, c, c32, err, lo_f, hi_f, tiny):  # type: ignore[no-untyped-def]
    out = np.empty((x.shape[0], c.shape[0], 2))
    for i in range(x.shape[0]):
        for j in range(c.shape[0]):
            lo, hi = E.row_interval(x, i, c, j, c32, err, lo_f, hi_f, tiny)
            out[i, j, 0] = lo
            out[i, j, 1] = hi
    return out


def exact_sq(x: np.ndarray, c: np.ndarray) -> Fraction:
    """``‖x - c‖²`` in exact rational arithmetic."""
    return sum((Fraction(float(a)) - Fraction(float(b))) ** 2 for a, b in zip(x, c))


def contains(lo: float, hi: float, sq: Fraction) -> bool:
    """``lo <= sqrt(sq) <= hi`` without rounding (compare squares)."""
    return (lo <= 0 or Fraction(lo) ** 2 <= sq) and Fraction(hi) ** 2 >= sq


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("case", ["images", "near", "tiny", "wide"])
def test_each_interval_holds_the_exact_distance(dtype: type, case: str) -> None:
    rng = np.random.default_rng(["images", "near", "tiny", "wide"].index(case))
    d = 97
    if dtype is np.uint8:
        x = (rng.random((12, d)) < 0.3) * rng.integers(0, 256, (12, d))
        x = x.astype(np.uint8)
    else:
        scale = {"images": 255.0, "near": 1.0, "tiny": 1e-20, "wide": 1e18}[case]
        x = (rng.standard_normal((12, d)) * scale).astype(np.float32)
    c = x[:5].astype(np.float64) + rng.standard_normal((5, d)) * {"images": 3.0, "near": 1e-6, "tiny": 1e-21,
                                                                "wide": 1e12}[case]
    c[0] = x[0]  # a distance of (almost) zero
    ic = E.IntervalCenters(c)
    got = _intervals(x, c, *ic.args())
    for i in range(len(x)):
        for j in range(len(c)):
            lo, hi = got[i, j]
            assert lo <= hi
            assert contains(lo, hi, exact_sq(x[i].astype(np.float64), c[j])), (i, j, lo, hi)
    # where float32 cannot hold the squares, the interval is the float64 distance
    if case == "wide" and dtype is np.float32:
        big = np.full((1, d), 3e38, dtype=np.float32)
        lo, hi = _intervals(big, np.zeros((1, d)), *E.IntervalCenters(np.zeros((1, d))).args())[0, 0]
        assert lo == hi == pytest.approx(float(np.float32(3e38)) * np.sqrt(d), rel=1e-12)


def test_intervals_are_narrow_and_off_means_float64() -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (20, 784)).astype(np.uint8)
    c = rng.random((10, 784)) * 255
    got = _intervals(x, c, *E.IntervalCenters(c).args())
    exact = np.sqrt(((x[:, None, :].astype(np.float64) - c[None]) ** 2).sum(-1))
    width = (got[..., 1] - got[..., 0]) / exact
    assert width.max() < 1e-4  # (d + 1) 2^-24 relative, twice, and the centers' rounding
    off = _intervals(x, c, *E.IntervalCenters.off())
    np.testing.assert_allclose(off[..., 0], exact, rtol=1e-13)
    np.testing.assert_array_equal(off[..., 0], off[..., 1])


def _steps(X: np.ndarray, intervals: bool, monkeypatch: pytest.MonkeyPatch, steps: int = 6) -> list:
    """``steps`` bounded Lloyd steps over one block: per step the labels' sums, weights and
    distances computed."""
    monkeypatch.setattr(S, "_INTERVAL_DTYPES", S._INTERVAL_DTYPES if intervals else ())
    rng = np.random.default_rng(1)
    centers = X[rng.choice(len(X), 8, replace=False)].astype(np.float64)
    state, previous, out = None, None, []
    for generation in range(steps):
        drift = None if previous is None else np.sqrt(((centers - previous) ** 2).sum(1))
        half_cc, half_sep = B.center_geometry(centers) if drift is not None else (None, None)
        member = S.Member(S.ELKAN, centers, n_far=8, key=0, generation=generation, drift=drift, half_cc=half_cc,
                          half_sep=half_sep)
        stats, state = S.sweep_state_kernel(X, None, ChunkInfo(0, 0), S.SweepParams((member,), Affine()), state)
        part = stats.parts[0]
        out.append((part.sums.copy(), part.weight_in_clusters.copy(), state[0].labels.copy()))
        previous = centers
        centers = part.sums / np.maximum(part.weight_in_clusters, 1)[:, None]
    return out


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_steps_with_intervals_equal_steps_in_float64(dtype: type, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    blobs = rng.integers(0, 200, (8, 64))
    X = np.clip(blobs[rng.integers(0, 8, 3000)] + rng.normal(0, 40, (3000, 64)), 0, 255).astype(dtype)
    a = _steps(X, True, monkeypatch)
    b = _steps(X, False, monkeypatch)
    for (sa, wa, la), (sb, wb, lb) in zip(a, b):
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(sa, sb)
    # the labels are those of a plain Lloyd step from the same centers (float64, by brute force)
    sums, w, labels = a[-1]
    centers = a[-2][0] / np.maximum(a[-2][1], 1)[:, None]
    d2 = ((X[:, None, :].astype(np.float64) - centers[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels, d2.argmin(1))
