"""Lloyd's step of uint8 rows from 8-bit integer products (kernels/byteproducts.py) against the
float32 walk it is certified against (kernels/rowproducts.py) and against exact sums.

Error analysis (see the module): the integer products are ``P_j = x·m_j - x·e_j`` exactly but
for one float64 rounding, with ``|x·e_j| <= ‖x‖ ‖e_j‖``; the float32 walk's are within
``γ_d ‖x‖ ‖m_j‖`` of ``x·m_j``. A row whose two nearest values are apart by more than twice
both bounds has one label under either rule; every other row is labelled by the walk itself.
So the labels and the sums are the walk's bits, the distances are within ``‖x‖ ‖e_j‖`` (plus
float64 rounding) of the exact ones, and the inertia, corrected by ``Σ_j e_j·S_j``, is the
exact one up to float64 rounding: a relative 1e-12 covers the ``n + k d`` roundings of its
sums here (each at most ``2⁻⁵³`` of a partial sum no larger than the total of the rows'
non-negative terms, about 3 times the inertia on these rows).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from daskcluster import KMeans
from daskcluster.kernels import assign as A
from daskcluster.kernels import byteproducts as BP
from daskcluster.kernels import rowproducts as P

#: The ``stroke_bytes`` fixture: uint8 rows (n, d) of a seed that take the walks.
Rows = Callable[[int, int, int], np.ndarray]

needs_vnni = pytest.mark.skipif(not BP.available(), reason="this CPU has no AVX-512 VNNI: the float32 walk serves")


def float_walk(x: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The float32 walk's step (labels, distances, sums, counts)."""
    n, d = x.shape
    table = A.CenterTable.of(centers)
    minus2 = np.ascontiguousarray(table.minus2_t.T)
    labels, min_sq, sums, wic = np.empty(n, dtype=np.int64), np.empty(n), np.zeros((len(centers), d)), np.zeros(
        len(centers))
    w, weighted = A.weights_arg(None)
    P.lloyd_step(x, minus2, table.sq_norms, labels, min_sq, w, weighted, sums, wic)
    return labels, min_sq, sums, wic


def byte_step(x: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    n, d = x.shape
    table = A.CenterTable.of(centers)
    minus2 = np.ascontiguousarray(table.minus2_t.T)
    assert BP.serves(x, minus2, table.sq_norms, False)
    labels, min_sq = np.full(n, -1, dtype=np.int64), np.full(n, np.nan)
    sums, wic = np.zeros((len(centers), d)), np.zeros(len(centers))
    inertia = BP.lloyd_step(x, BP.ByteCenters(minus2, table.sq_norms), labels, min_sq, sums, wic)
    return labels, min_sq, sums, wic, inertia


def exact_inertia(x: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> float:
    """``Σ_i ‖x_i - c_{l_i}‖²`` correctly rounded: ``x²``, ``x c`` and ``c²`` of a uint8 value
    and a float32 one are exact in float64, and ``math.fsum`` adds them exactly."""
    x64, c64 = x.astype(np.float64), centers.astype(np.float64)[labels]
    return math.fsum(np.concatenate([(x64 * x64).ravel(), (-2.0 * x64 * c64).ravel(), (c64 * c64).ravel()]))


def check_step(x: np.ndarray, centers: np.ndarray) -> None:
    labels, min_sq, sums, wic, inertia = byte_step(x, centers)
    ref_labels, _, ref_sums, ref_wic = float_walk(x, centers)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(sums, ref_sums)
    np.testing.assert_array_equal(wic, ref_wic)
    minus2 = (-2.0 * centers.astype(np.float32)).astype(np.float64)
    byte = BP.ByteCenters(minus2.astype(np.float32), (centers.astype(np.float64) ** 2).sum(1))
    e_norm = np.sqrt((byte.residual**2).sum(1))
    x64 = x.astype(np.float64)
    exact_rows = ((x64 - centers.astype(np.float64)[labels]) ** 2).sum(1)
    norm = np.sqrt((x64**2).sum(1))
    bound = norm * e_norm[labels] + 1e-12 * (exact_rows + (centers.astype(np.float64) ** 2).sum(1)[labels]
                                             + (x64**2).sum(1))
    assert (np.abs(min_sq - exact_rows) <= bound).all()
    exact = exact_inertia(x, centers, labels)
    assert abs(inertia - exact) <= 1e-12 * max(exact, 1.0)


@needs_vnni
@pytest.mark.parametrize("n, d, k", [(1, 8, 1), (6, 16, 4), (203, 33, 5), (257, 21, 8), (100, 784, 9),
                                     (202, 784, 10), (129, 100, 13), (300, 784, 16), (70, 1100, 3),
                                     (150, 59, 6)])
def test_labels_and_sums_are_the_float_walks(n: int, d: int, k: int, stroke_bytes: Rows) -> None:
    x = stroke_bytes(n, d, seed=n + d + k)
    rng = np.random.default_rng(d + k)
    centers = x[rng.integers(0, n, k)].astype(np.float32) + rng.uniform(0, 2, (k, d)).astype(np.float32)
    check_step(x, centers)


@needs_vnni
def test_ties_are_broken_as_the_float_walk_breaks_them(stroke_bytes: Rows) -> None:
    """Two equal centers (every row ties between them: the first wins), a center repeated with
    its mirror image, and rows that are the centers themselves (distance 0)."""
    d = 64
    x = stroke_bytes(400, d, seed=3)
    base = x[5:9].astype(np.float32)
    centers = np.concatenate([base[:1], base[:1], base[1:], base[1:2] + 1.0]).astype(np.float32)
    x[:6] = centers[:6].astype(np.uint8)  # rows exactly at a center
    check_step(x, centers)
    labels = byte_step(x, centers)[0]
    assert (labels != 1).all()  # the first of two equal centers


@needs_vnni
@pytest.mark.parametrize("scale", [1e-30, 1e-3, 1.0, 1e6])
def test_centers_of_any_size_and_sign(scale: float, stroke_bytes: Rows) -> None:
    x = stroke_bytes(300, 40, seed=11)
    rng = np.random.default_rng(7)
    centers = (rng.normal(0, 100, (6, 40)) * scale).astype(np.float32)
    centers[0] = 0.0
    centers[1, :20] = 0.0
    check_step(x, centers)


@needs_vnni
def test_real_digits_many_steps(mnist: tuple[np.ndarray, np.ndarray]) -> None:
    """Real MNIST rows against centers from Lloyd's iterations: the rows near a boundary
    (where the float32 walk decides) are a few in a thousand."""
    X, _ = mnist
    x = np.ascontiguousarray(X[:6000])
    centers = x[:10].astype(np.float32)
    for _ in range(4):
        check_step(x, centers)
        _, _, sums, wic = float_walk(x, centers)
        centers = (sums / np.maximum(wic, 1)[:, None]).astype(np.float32)


def test_serves_only_what_it_certifies(stroke_bytes: Rows) -> None:
    x = stroke_bytes(10, 16, seed=1)
    m = np.zeros((3, 16), dtype=np.float32)
    c = np.zeros(3)
    assert not BP.serves(x, m, c, True)  # weighted rows
    assert not BP.serves(x.astype(np.float32), m, c, False)
    assert not BP.serves(x, np.zeros((BP.MAX_CENTERS + 1, 16), dtype=np.float32), np.zeros(BP.MAX_CENTERS + 1),
                         False)
    assert not BP.serves(x[:, :7].copy(), m[:, :7].copy(), c, False)
    bad = m.copy()
    bad[1, 3] = np.inf
    assert not BP.serves(x, bad, c, False)
    assert not BP.serves(x, m, np.array([0.0, np.inf, 0.0]), False)
    assert BP.serves(x, m, c, False) == BP.available()


def test_byte_centers_represent_the_centers() -> None:
    """``hi / s + lo / (256 s) + e`` is ``m`` exactly, the bytes within int8 and ``e`` within
    ``1 / (256 s)`` (clipped ``lo``) of 0."""
    rng = np.random.default_rng(0)
    m = (rng.normal(0, 1, (13, 37)) * np.logspace(-20, 20, 13)[:, None]).astype(np.float32)
    m[0] = 0.0
    byte = BP.ByteCenters(m, (m.astype(np.float64) ** 2).sum(1) / 4)
    groups = 37 // 8
    table = byte.table.reshape(groups, -1, 8, 8)  # (groups, vectors, slot in vector, feature)
    slots = table.transpose(1, 2, 0, 3).reshape(-1, groups * 8)[: 2 * 13].astype(np.float64)
    slots = np.concatenate([slots, byte.tail.astype(np.float64)], axis=1)
    hi, lo = slots[:13], slots[13:]
    rebuilt = hi * byte.inv_hi[:, None] + lo * byte.inv_lo[:, None] + byte.residual
    np.testing.assert_array_equal(rebuilt, m.astype(np.float64))
    assert np.abs(slots).max() <= 127
    assert (np.abs(byte.residual) <= byte.inv_lo[:, None]).all()


@needs_vnni
def test_fit_equals_the_float_walks(monkeypatch: pytest.MonkeyPatch, stroke_bytes: Rows) -> None:
    """A uint8 fit takes the integer products and gives the float32 walk's fit: the same labels,
    centers (bits) and iterations; its inertia is the exact one."""
    x = stroke_bytes(4000, 96, seed=21)
    calls = []
    step = BP.lloyd_step

    def counted(*args: object) -> float:
        calls.append(1)
        return step(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(BP, "lloyd_step", counted)
    ours = KMeans(8, n_init=1, random_state=0, max_iter=40, tol=0).fit(x)
    assert calls
    monkeypatch.setattr(BP, "_HAS_VNNI", False)
    ref = KMeans(8, n_init=1, random_state=0, max_iter=40, tol=0).fit(x)
    np.testing.assert_array_equal(np.asarray(ours.labels_), np.asarray(ref.labels_))
    np.testing.assert_array_equal(ours.cluster_centers_, ref.cluster_centers_)
    assert ours.n_iter_ == ref.n_iter_
    centers32 = ours.cluster_centers_.astype(np.float32)
    exact = exact_inertia(x, centers32, np.asarray(ours.labels_))
    assert ours.inertia_ == pytest.approx(exact, rel=1e-12)
    assert ref.inertia_ == pytest.approx(exact, rel=96 * 2.0**-23)


@needs_vnni
@pytest.mark.parametrize("n", [1, 127, 128, 129, 255, 256, 257, 1000])
@pytest.mark.parametrize("d", [100, 59])
def test_sums_of_full_bytes_never_wrap(n: int, d: int) -> None:
    """Rows of 255 all in one cluster: the uint16 sums (vectors of 32 features, then of 16 and 8,
    then one by one) are flushed before any lane can wrap, whatever the number of rows."""
    x = np.zeros((n, d), dtype=np.uint8)
    x[:, 20:50] = 255
    x[:, d - 1] = 255  # a feature past the last full vector of 32 (and of 8 at d = 59)
    centers = np.zeros((2, d), dtype=np.float32)
    centers[0, 20:50] = 250.0
    labels, _, sums, wic, _ = byte_step(x, centers)
    assert (labels == 0).all()
    expected = np.zeros((2, d))
    expected[0] = 255.0 * n * (x[0] > 0)
    np.testing.assert_array_equal(sums, expected)
    np.testing.assert_array_equal(wic, [n, 0])
