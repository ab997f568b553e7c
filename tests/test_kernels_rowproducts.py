"""The compiled product of few centers (kernels/rowproducts.py) against exact references and
against the GEMM path of kernels/assign.py.

Error analysis: a float32 dot product of length ``d`` summed in any order differs from the
exact one by at most ``γ_d Σ_f |x_f m_f|``, ``γ_d = d u / (1 - d u)``, ``u = 2⁻²⁴`` (Higham,
Accuracy and Stability of Numerical Algorithms, 3.1); the GEMM's and the compiled loop's
products both satisfy it, so they differ by at most twice that, and a row's label can differ
between the two paths only if its two nearest centers' distances are closer than that.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np
import pytest

from daskcluster.errors import NonFiniteDataError
from daskcluster.kernels import assign as A
from daskcluster.kernels import kmeans as K
from daskcluster.kernels import rowproducts as P
from daskcluster.kernels import sweep as S
from daskcluster.kernels.blocks import Affine, ChunkInfo

#: The ``stroke_bytes`` fixture: uint8 rows (n, d) of a seed that take the walks.
Rows = Callable[[int, int, int], np.ndarray]

U32 = 2.0**-24


def gamma(d: int) -> float:
    return d * U32 / (1 - d * U32)


def digits_like(n: int, d: int, seed: int, density: float = 0.25) -> np.ndarray:
    """uint8 rows with ``density`` of non-zero bytes, like MNIST's (a quarter)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 256, size=(n, d)).astype(np.uint8)
    x[rng.random((n, d)) >= density] = 0
    return x


def rows_of(dtype: type, n: int, d: int, seed: int) -> np.ndarray:
    x = digits_like(n, d, seed)
    return x if dtype == np.uint8 else (x / np.float32(255)).astype(np.float32)


def gemm_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "MAX_CENTERS", 0)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("n, d, k", [(1, 5, 1), (3, 9, 3), (7, 16, 4), (13, 33, 5), (301, 784, 10), (64, 100, 32),
                                     (50, 100, 48)])
def test_products_within_the_dot_product_bound(dtype: type, n: int, d: int, k: int) -> None:
    x = rows_of(dtype, n, d, seed=n + d + k)
    centers = np.random.default_rng(k).uniform(0, 255 if dtype == np.uint8 else 1, size=(k, d)).astype(np.float32)
    minus2 = np.ascontiguousarray(-2 * centers)
    g, x_sq = np.full((n, k), np.nan, dtype=np.float32), np.full(n, np.nan)
    P.products(x, minus2, g, x_sq)
    x64, m64 = x.astype(np.float64), minus2.astype(np.float64)
    exact = x64 @ m64.T
    bound = gamma(d + 1) * (np.abs(x64) @ np.abs(m64).T)
    assert (np.abs(g - exact) <= bound).all()
    if dtype == np.uint8:
        np.testing.assert_array_equal(x_sq, (x.astype(np.int64) ** 2).sum(1))  # exact
    else:
        np.testing.assert_allclose(x_sq, (x64**2).sum(1), rtol=d * 2.0**-53, atol=0)


def test_zero_and_saturated_rows() -> None:
    """All-zero rows give zero products and norms; rows of 255 (dense) the exact products,
    which are integers here and below 2²⁴, so float32 holds them exactly."""
    x = np.zeros((9, 784), dtype=np.uint8)
    x[5:] = 255
    minus2 = -2 * np.random.default_rng(0).integers(0, 3, size=(10, 784)).astype(np.float32)
    g, x_sq = np.empty((9, 10), dtype=np.float32), np.empty(9)
    P.products(x, minus2, g, x_sq)
    np.testing.assert_array_equal(g[:5], 0)
    np.testing.assert_array_equal(x_sq[:5], 0)
    np.testing.assert_array_equal(g[5:], np.broadcast_to(255 * minus2.sum(1), (4, 10)))
    np.testing.assert_array_equal(x_sq[5:], 784 * 255**2)


def test_applies_only_where_it_pays() -> None:
    x8 = digits_like(10, 8, 0)
    t = np.zeros((8, 10), dtype=np.float32)
    assert P.applies(x8, t) and P.applies(x8.astype(np.float32), t)
    assert not P.applies(x8.astype(np.float64), t.astype(np.float64))  # float64 data: BLAS
    assert not P.applies(x8, np.zeros((8, P.MAX_CENTERS + 1), dtype=np.float32))  # many centers: BLAS
    assert not P.applies(np.asfortranarray(x8), t)
    assert not P.applies(x8.astype(np.uint16), t)


def lloyd(block: np.ndarray, w: np.ndarray | None, centers: np.ndarray) -> K.LloydStats:
    member = S.Member(S.LLOYD, centers, n_far=3)
    return S.sweep_kernel(block, w, ChunkInfo(0, 0), S.SweepParams((member,), Affine())).parts[0]  # type: ignore


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("k", [10, 13])
def test_lloyd_step_equals_the_gemm_path(dtype: type, weighted: bool, k: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Labels identical wherever the two nearest centers are farther apart than the rounding
    bound (here: every row but a handful), counts and sums identical, inertia within it."""
    n, d = 2001, 784
    x = rows_of(dtype, n, d, seed=1)
    centers = x[:k].astype(np.float32) * np.float32(0.9) + np.float32(0.1)
    w = np.random.default_rng(2).uniform(0.5, 2.0, n) if weighted else None
    table = A.CenterTable.of(centers)
    assert P.applies(x, table.minus2_t)
    labels, min_sq = A.nearest(x, table, ChunkInfo(0, 0))
    fast = lloyd(x, w, centers)
    with monkeypatch.context() as m:
        gemm_path(m)
        ref_labels, ref_sq = A.nearest(x, table, ChunkInfo(0, 0))
        ref = lloyd(x, w, centers)
    x64, c64 = x.astype(np.float64), centers.astype(np.float64)
    d2 = (x64**2).sum(1)[:, None] + (c64**2).sum(1)[None] - 2 * x64 @ c64.T
    two = np.sort(d2, axis=1)[:, :2]
    rounding = 2 * 2 * gamma(d + 1) * (np.abs(x64) @ np.abs(c64).T).max(1)
    clear = two[:, 1] - two[:, 0] > rounding
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(labels[clear], ref_labels[clear])
    np.testing.assert_array_equal(labels[clear], d2.argmin(1)[clear])
    np.testing.assert_allclose(min_sq, ref_sq, rtol=0, atol=rounding.max())
    if clear.all() or np.array_equal(labels, ref_labels):
        np.testing.assert_array_equal(fast.weight_in_clusters, ref.weight_in_clusters)
        np.testing.assert_array_equal(fast.sums, ref.sums)
    assert fast.inertia == pytest.approx(ref.inertia, rel=0, abs=n * rounding.max() * (2 if weighted else 1))


def test_non_finite_row_is_named() -> None:
    x = rows_of(np.float32, 700, 20, seed=4)
    x[517, 13] = np.nan
    centers = x[:3].copy()
    table = A.CenterTable.of(centers)
    assert P.applies(x, table.minus2_t)
    with pytest.raises(NonFiniteDataError, match=r"in chunk 2 at row 1517, feature 13"):
        A.nearest(x, table, ChunkInfo(2, 1000))
    x[517, 13] = np.inf
    with pytest.raises(NonFiniteDataError, match=r"inf\)+ in chunk 0 at row 517, feature 13"):
        lloyd(x, None, centers)


@pytest.mark.parametrize("k", [1, 7, 200])
@pytest.mark.parametrize("saturated", [False, True])
def test_byte_sums_are_the_float64_sums(k: int, saturated: bool) -> None:
    """Unweighted uint8 rows summed in uint16 blocks of 256 rows (few clusters; 380 rows of 255
    in one cluster cross a block and fill one to 256 * 255) or in float64 (many): the same bits
    as the float64 loop, added onto sums that already hold some rows'."""
    x = np.full((500, 30), 255, dtype=np.uint8) if saturated else digits_like(500, 30, 5, density=0.9)
    labels = np.random.default_rng(6).integers(0, k, 500)
    w, weighted = A.weights_arg(None)
    sums, wic = np.zeros((k, 30)), np.zeros(k)
    ref_sums, ref_wic = np.zeros((k, 30)), np.zeros(k)
    for a, b in ((0, 120), (120, 500)):
        A.add_rows(x[a:b], labels[a:b], w, weighted, sums, wic)
        A._add_rows(x[a:b], labels[a:b], w, weighted, ref_sums, ref_wic)
    np.testing.assert_array_equal(sums, ref_sums)
    np.testing.assert_array_equal(wic, ref_wic)
    exact = np.zeros((k, 30), dtype=np.int64)
    np.add.at(exact, labels, x.astype(np.int64))
    np.testing.assert_array_equal(sums, exact)


@pytest.mark.parametrize("d", [P._INT32_FEATURES, P._INT32_FEATURES + 1])
def test_byte_norms_exact_past_int32(d: int) -> None:
    """Rows of 255 at the widest int32 norm and one feature past it (int64): exact."""
    x = np.full((2, d), 255, dtype=np.uint8)
    g, x_sq = np.empty((2, 1), dtype=np.float32), np.empty(2)
    P.products(x, np.zeros((1, d), dtype=np.float32), g, x_sq)
    np.testing.assert_array_equal(x_sq, d * 255**2)
    assert d * 255**2 >= 2**31 or d == P._INT32_FEATURES


@pytest.mark.parametrize("k, widths", [(1, [4]), (4, [4]), (5, [5]), (7, [4, 4]), (8, [4, 4]), (9, [5, 4]),
                                       (10, [5, 5]), (12, [4, 4, 4]), (13, [5, 4, 4]), (32, [5, 5, 5, 5, 4, 4, 4])])
def test_center_groups_repeat_few_centers(k: int, widths: list[int]) -> None:
    """Groups of five or four centers, the fewest computed columns (none repeated from 8 on)."""
    got = P.center_groups(k)
    assert got.tolist() == widths
    assert 0 <= got.sum() - k < 4 and (k < 8 or k == 11 or got.sum() == k)


def fused_reference(x: np.ndarray, minus2: np.ndarray, c_sq: np.ndarray, labels: np.ndarray, w: np.ndarray,
                    weighted: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The product, arg-min and float64 row-order sums as separate calls (the tiled path's
    loops), the sums of the rows by ``labels`` added onto ones."""
    n, k = x.shape[0], minus2.shape[0]
    g, x_sq = np.empty((n, k), dtype=np.float32), np.empty(n)
    P.products(x, minus2, g, x_sq)
    ref_labels, ref_sq = np.empty(n, dtype=np.int64), np.empty(n)
    A.nearest_in_product(g, c_sq, x_sq, ref_labels, ref_sq)
    sums, wic = np.ones((k, x.shape[1])), np.ones(k)  # added onto, as the step's
    A._add_rows(x, labels, w, weighted, sums, wic)
    return ref_labels, ref_sq, sums, wic, g


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n, d, k", [(1, 5, 1), (3, 9, 3), (6, 16, 4), (203, 33, 5), (202, 784, 10), (129, 100, 32),
                                     (130, 100, 48)])
def test_fused_lloyd_step_is_product_argmin_and_sums(dtype: type, weighted: bool, n: int, d: int, k: int) -> None:
    """lloyd_step against products, nearest_in_product and the float64 loop of add_rows called
    one after the other: labels equal wherever the nearest two centers are apart by more than
    twice the dot-product bound (both products satisfy it), distances within it, and the sums
    of the rows by the step's own labels the same bits (rows added in row order, uint8 rows as
    exact integers)."""
    x = rows_of(dtype, n, d, seed=3 * n + k)
    rng = np.random.default_rng(d)
    centers = x[rng.integers(0, n, k)].astype(np.float32) + rng.uniform(0, 2 if dtype == np.uint8 else 0.01,
                                                                        (k, d)).astype(np.float32)
    table = A.CenterTable.of(centers)
    minus2 = np.ascontiguousarray(table.minus2_t.T)
    w, weighted = A.weights_arg(rng.uniform(0.5, 2.0, n) if weighted else None)
    labels, min_sq = np.full(n, -1, dtype=np.int64), np.full(n, np.nan)
    sums, wic = np.ones((k, d)), np.ones(k)  # added onto
    P.lloyd_step(x, minus2, table.sq_norms, labels, min_sq, w, weighted, sums, wic)
    ref_labels, ref_sq, ref_sums, ref_wic, _ = fused_reference(x, minus2, table.sq_norms, labels, w, weighted)
    x64, m64 = x.astype(np.float64), minus2.astype(np.float64)
    bound = gamma(d + 1) * (np.abs(x64) @ np.abs(m64).T)
    d2 = (x64**2).sum(1)[:, None] + table.sq_norms[None] + x64 @ m64.T
    two = np.sort(d2, axis=1)[:, :2] if k > 1 else np.hstack([d2, np.full((n, 1), np.inf)])
    clear = two[:, 1] - two[:, 0] > 4 * bound.max(1)
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(labels[clear], ref_labels[clear])
    np.testing.assert_allclose(min_sq, ref_sq, rtol=0, atol=2 * bound.max() + 1e-300)
    np.testing.assert_array_equal(sums, ref_sums)
    np.testing.assert_array_equal(wic, ref_wic)


@pytest.mark.parametrize(("d", "walk_share"), [(3, P.WALK_SHARE), (16, 1.0)], ids=["register-blocks", "walks"])
def test_byte_sums_exact_past_uint16(monkeypatch: pytest.MonkeyPatch, d: int, walk_share: float) -> None:
    """70,000 rows of 255 in one cluster (and one zero row in the other) sum to 255 x 69,999 per
    feature: exact, since the uint16 partial sums are flushed to float64 every 256 rows (the
    register blocks) or after 256 of a cluster's own rows (the walks over non-zero groups, taken
    at any share of them here); without the flush they would wrap past 65,535."""
    monkeypatch.setattr(P, "WALK_SHARE", walk_share)
    n = 70_000
    assert 255 * n > 2**16 and n > P._FLUSH
    x = np.full((n, d), 255, dtype=np.uint8)
    x[-1] = 0
    assert P.walks_pay(x) == (d >= P.GROUP)
    minus2 = np.ascontiguousarray(-2 * np.array([[250.0] * d, [0.0] * d], dtype=np.float32))
    c_sq = (minus2.astype(np.float64) ** 2).sum(1) / 4
    labels, min_sq = np.empty(n, dtype=np.int64), np.empty(n)
    sums, wic = np.zeros((2, d)), np.zeros(2)
    w, weighted = A.weights_arg(None)
    P.lloyd_step(x, minus2, c_sq, labels, min_sq, w, weighted, sums, wic)
    assert labels[-1] == 1 and (labels[:-1] == 0).all()
    np.testing.assert_array_equal(sums, [[255 * (n - 1)] * d, [0] * d])
    np.testing.assert_array_equal(wic, [n - 1, 1])
    np.testing.assert_array_equal(min_sq[:-1], d * 25.0)


def wide_float_rows(n: int, d: int, seed: int) -> np.ndarray:
    """float32 rows of both signs over 2⁻⁴⁰ to 2⁴⁰, with zeros: row-order float64 sums of such rows
    differ from sums in any other order (or with a fused multiply-add) in their last bits."""
    rng = np.random.default_rng(seed)
    x = rng.choice([-1.0, 1.0], (n, d)) * np.exp2(rng.uniform(-40, 40, (n, d)))
    x[rng.random((n, d)) < 0.2] = 0.0
    return x.astype(np.float32)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n, d, k", [(1, 1, 1), (5, 7, 2), (37, 17, 3), (203, 33, 9), (130, 785, 10), (61, 100, 48)])
def test_fused_float_sums_are_row_order_float64(weighted: bool, n: int, d: int, k: int) -> None:
    """float32 rows spanning 80 binary orders of magnitude (their products with the centers stay finite): the step's sums are, bit for bit,
    ``sums[label] += w x`` row by row in float64 (the product rounded before the addition), added
    onto sums already there; the weights in clusters likewise."""
    x = wide_float_rows(n, d, seed=n * k + d)
    rng = np.random.default_rng(k)
    centers = x[rng.integers(0, n, k)]
    table = A.CenterTable.of(centers)
    w, weighted = A.weights_arg(rng.uniform(0.5, 2.0, n) if weighted else None)
    labels, min_sq = np.full(n, -1, dtype=np.int64), np.empty(n)
    start = rng.standard_normal((k, d))
    sums, wic = start.copy(), np.ones(k)
    P.lloyd_step(x, np.ascontiguousarray(table.minus2_t.T), table.sq_norms, labels, min_sq, w, weighted, sums, wic)
    assert ((0 <= labels) & (labels < k)).all()
    ref, ref_wic = start.copy(), np.ones(k)
    for i in range(n):
        wi = w[i] if weighted else 1.0
        ref[labels[i]] += wi * x[i].astype(np.float64) if weighted else x[i].astype(np.float64)
        ref_wic[labels[i]] += wi
    np.testing.assert_array_equal(sums, ref)
    np.testing.assert_array_equal(wic, ref_wic)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n, d", [(1, 1), (3, 7), (6, 15), (9, 16), (11, 17), (13, 33), (65, 784), (7, 1001)])
def test_fused_float_norms_are_float64_sums(weighted: bool, n: int, d: int) -> None:
    """One center at the origin: each distance is the row's squared norm, summed in float64 from
    exact squares (a float32 value's square is exact in float64), so within ``d`` float64
    roundings of the exact sum, ``γ_d Σ x_f²`` (Higham 3.1, float64 ``u = 2⁻⁵³``), for every
    row count (groups of four and the rows left) and feature count (vector lanes and the rest)."""
    x = rows_of(np.float32, n, d, seed=n + d)
    x[::2] *= -np.float32(3.5)  # both signs, other magnitudes
    w, weighted = A.weights_arg(np.full(n, 0.5) if weighted else None)
    labels, min_sq = np.full(n, -1, dtype=np.int64), np.full(n, np.nan)
    sums, wic = np.zeros((1, d)), np.zeros(1)
    minus2, c_sq = np.zeros((1, d), dtype=np.float32), np.zeros(1)
    P.lloyd_step(x, minus2, c_sq, labels, min_sq, w, weighted, sums, wic)
    np.testing.assert_array_equal(labels, 0)
    sq = x.astype(np.float64) ** 2
    exact = np.array([math.fsum(row) for row in sq])
    gamma64 = d * 2.0**-53 / (1 - d * 2.0**-53)
    assert (np.abs(min_sq - exact) <= gamma64 * exact).all()
    ref = np.empty(n)
    A.row_sq_norms64(x, ref)
    assert (np.abs(min_sq - ref) <= 2 * gamma64 * exact).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("k", [1, 10, 48])
def test_lloyd_step_on_a_row_slice_equals_a_copy(dtype: type, k: int) -> None:
    """A C-contiguous slice of rows inside a larger block (data not at the block's start, rows
    after it) gives the same bits as a copy of it; a slice with a row step is not C-contiguous
    and is left to the GEMM path."""
    big = rows_of(dtype, 240, 37, seed=k)
    view = big[13:170]
    assert view.flags.c_contiguous and view.base is not None
    rng = np.random.default_rng(k)
    centers = big[rng.integers(0, 240, k)].astype(np.float32)
    table = A.CenterTable.of(centers)
    minus2 = np.ascontiguousarray(table.minus2_t.T)
    w, weighted = A.weights_arg(None)
    out = []
    for x in (view, view.copy()):
        labels, min_sq = np.empty(len(x), dtype=np.int64), np.empty(len(x))
        sums, wic = np.zeros((k, 37)), np.zeros(k)
        P.lloyd_step(x, minus2, table.sq_norms, labels, min_sq, w, weighted, sums, wic)
        out.append((labels, min_sq, sums, wic))
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)
    assert not P.applies(big[::2], table.minus2_t)


# --------------------------------------------------------------------------- walks over non-zero groups


@pytest.fixture(params=["walks", "blocks"])
def byte_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """uint8 rows through the walks over non-zero groups, or through the register blocks,
    whatever their share of non-zero groups."""
    monkeypatch.setattr(P, "WALK_SHARE", 1.0 if request.param == "walks" else -1.0)
    return str(request.param)


@pytest.mark.parametrize("n, d, k", [(3, 5, 1), (4, 8, 2), (9, 9, 3), (11, 63, 4), (17, 64, 5), (23, 65, 10),
                                     (301, 784, 10), (40, 100, 13), (31, 1030, 7), (50, 100, 25), (50, 200, 48)])
def test_walks_within_the_dot_product_bound(n: int, d: int, k: int, monkeypatch: pytest.MonkeyPatch,
                                            stroke_bytes: Rows) -> None:
    """Products over the non-zero groups only (a zero group adds exactly zero), summed in another
    order: within the same bound ``γ_d Σ |x m|``; the norms exact. Widths not a multiple of 8
    (the tail one feature at a time) or of 64 (a second mask word), past 1,024 features (two
    walks a row), odd ``k`` (a zero center beside the last), ``k`` past :data:`PART` (parts)."""
    monkeypatch.setattr(P, "WALK_SHARE", 1.0)
    x = stroke_bytes(n, d, seed=n + d + k)
    assert P.walks_pay(x) == (d >= P.GROUP)
    minus2 = np.ascontiguousarray(-2 * np.random.default_rng(k).uniform(0, 255, size=(k, d)).astype(np.float32))
    g, x_sq = np.full((n, k), np.nan, dtype=np.float32), np.full(n, np.nan)
    P.products(x, minus2, g, x_sq)
    x64, m64 = x.astype(np.float64), minus2.astype(np.float64)
    bound = gamma(d + 1) * (np.abs(x64) @ np.abs(m64).T)
    assert (np.abs(g - x64 @ m64.T) <= bound).all()
    np.testing.assert_array_equal(g[0], 0)
    np.testing.assert_array_equal(x_sq, (x.astype(np.int64) ** 2).sum(1))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n, d, k", [(1, 8, 1), (6, 16, 4), (203, 33, 5), (202, 784, 10), (129, 100, 13),
                                     (130, 100, 48)])
def test_walks_lloyd_step_is_product_argmin_and_sums(weighted: bool, n: int, d: int, k: int,
                                                      byte_path: str,
                                                      stroke_bytes: Rows) -> None:
    """The step on uint8 rows with all-zero groups, by either path, against its product,
    ``nearest_in_product`` and the float64 loop of ``add_rows``: labels equal (the same products),
    distances within the rounding of ``‖x‖² + min``, the sums the same bits."""
    x = stroke_bytes(n, d, seed=5 * n + k)
    rng = np.random.default_rng(d + k)
    centers = x[rng.integers(0, n, k)].astype(np.float32) + rng.uniform(0, 2, (k, d)).astype(np.float32)
    table = A.CenterTable.of(centers)
    minus2 = np.ascontiguousarray(table.minus2_t.T)
    w, weighted = A.weights_arg(rng.uniform(0.5, 2.0, n) if weighted else None)
    labels, min_sq = np.full(n, -1, dtype=np.int64), np.full(n, np.nan)
    sums, wic = np.ones((k, d)), np.ones(k)
    P.lloyd_step(x, minus2, table.sq_norms, labels, min_sq, w, weighted, sums, wic)
    ref_labels, ref_sq, ref_sums, ref_wic, _ = fused_reference(x, minus2, table.sq_norms, labels, w, weighted)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(min_sq, ref_sq, rtol=4 * 2.0**-53, atol=0)
    np.testing.assert_array_equal(sums, ref_sums)
    np.testing.assert_array_equal(wic, ref_wic)


def test_walks_equal_blocks_on_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The two uint8 paths on the same rows: labels equal wherever the two nearest centers are
    apart by more than twice the dot-product bound, distances within it, and for equal labels
    counts and sums the same bits."""
    n, d, k = 3000, 784, 10
    x = digits_like(n, d, 9, density=0.05)  # a third of the groups non-zero
    x[0] = 0
    centers = x[:k].astype(np.float32) * np.float32(0.9) + np.float32(0.1)
    table = A.CenterTable.of(centers)
    minus2 = np.ascontiguousarray(table.minus2_t.T)
    w, weighted = A.weights_arg(None)
    runs = []
    for share in (1.0, -1.0):
        monkeypatch.setattr(P, "WALK_SHARE", share)
        labels, min_sq, sums, wic = np.empty(n, dtype=np.int64), np.empty(n), np.zeros((k, d)), np.zeros(k)
        P.lloyd_step(x, minus2, table.sq_norms, labels, min_sq, w, weighted, sums, wic)
        runs.append((labels, min_sq, sums, wic))
    x64, m64 = x.astype(np.float64), minus2.astype(np.float64)
    bound = gamma(d + 1) * (np.abs(x64) @ np.abs(m64).T)
    d2 = (x64**2).sum(1)[:, None] + table.sq_norms[None] + x64 @ m64.T
    two = np.sort(d2, axis=1)[:, :2]
    clear = two[:, 1] - two[:, 0] > 4 * bound.max(1)
    assert clear.mean() > 0.99
    (la, sa, ua, wa), (lb, sb, ub, wb) = runs
    np.testing.assert_array_equal(la[clear], lb[clear])
    np.testing.assert_allclose(sa, sb, rtol=0, atol=2 * bound.max())
    if np.array_equal(la, lb):
        np.testing.assert_array_equal(ua, ub)
        np.testing.assert_array_equal(wa, wb)


def test_walks_pay_by_the_share_of_non_zero_groups() -> None:
    """The share of non-zero 8-feature groups of the first rows decides; a NaN is not a byte, and
    float32 rows (NaN rows among them) keep the register blocks."""
    x = np.zeros((300, 80), dtype=np.uint8)
    x[:, :8 * 9] = 1  # 9 of 10 groups
    assert P._group_share(x, 256) == pytest.approx(0.9)
    assert P.walks_pay(x) == (0.9 <= P.WALK_SHARE)
    x[:256, 72] = 1  # every group of the rows counted
    assert P._group_share(x, 256) == 1.0 and not P.walks_pay(x)
    x[256:] = 0  # rows past the first 256 are not counted
    assert not P.walks_pay(x)
    assert not P.walks_pay(np.ones((4, 7), dtype=np.uint8))  # no full group
    assert P._group_share(np.zeros((0, 16), dtype=np.uint8), 0) == 0.0
    x = rows_of(np.float32, 300, 40, seed=8)
    x[7] = np.nan
    centers = x[10:13].copy()
    with pytest.raises(NonFiniteDataError, match=r"row 7, feature 0"):
        lloyd(x, None, centers)


@numba.njit
def first_min(g: np.ndarray, c_sq: np.ndarray, k: int) -> int:  # pragma: no cover - compiled
    return P._first_min(g, c_sq, k)  # type: ignore[no-any-return]


def test_first_min_is_the_first_of_equals() -> None:
    """Ties go to the first center, as ``numpy.argmin``; a NaN or a non-finite least leaves the
    choice to the scalar loop (-1)."""
    c_sq = np.full(3 + P.GROUP, np.inf)
    c_sq[:3] = [1.0, 0.0, 0.0]
    g = np.zeros(3 + P.GROUP, dtype=np.float32)
    g[:3] = [-1.0, 0.0, 5.0]
    assert first_min(g, c_sq, 3) == 0  # 0.0, 0.0, 5.0
    g[0] = 0.0
    assert first_min(g, c_sq, 3) == 1
    for k in (1, 8, 9, 17, 48):
        rng = np.random.default_rng(k)
        v = rng.integers(0, 4, k).astype(np.float32)
        gk = np.zeros(k + P.GROUP, dtype=np.float32)
        gk[:k] = v
        ck = np.full(k + P.GROUP, np.inf)
        ck[:k] = 0.0
        assert first_min(gk, ck, k) == int(np.argmin(v))
    g[1] = np.nan
    assert first_min(g, c_sq, 3) == -1
    g[1] = 0.0
    c_sq[:3] = np.inf
    assert first_min(g, c_sq, 3) == -1


def test_block_products_choose_once_for_the_block(monkeypatch: pytest.MonkeyPatch,
                                                  stroke_bytes: Rows) -> None:
    """The path is the block's (its first rows' share of non-zero groups), not each tile's: a
    block whose first rows are sparse and later rows dense walks every tile; the tiles' products
    are the whole block's, and uint8 blocks read in place are tiled by their stored bytes."""
    x = digits_like(600, 784, 3, density=0.9)
    x[:300] = stroke_bytes(300, 784, seed=4)
    assert P._group_share(x, 256) <= P.WALK_SHARE < P._group_share(x[300:], 256)
    minus2 = np.ascontiguousarray(-2 * np.random.default_rng(1).uniform(0, 255, size=(10, 784)).astype(np.float32))
    tiles = P.BlockProducts(x, minus2)
    assert tiles.table is not None and P.BlockProducts(x[300:], minus2).table is None
    g, x_sq = np.empty((600, 10), dtype=np.float32), np.empty(600)
    for a in range(0, 600, 128):
        tiles(x[a : a + 128], g[a : a + 128], x_sq[a : a + 128])
    whole_g, whole_sq = np.empty((600, 10), dtype=np.float32), np.empty(600)
    P.products(x, minus2, whole_g, whole_sq)
    np.testing.assert_array_equal(g, whole_g)
    np.testing.assert_array_equal(x_sq, whole_sq)
    assert A.block_tile_rows(x, 10, 4) == A.tile_rows(784, 1) > A.tile_rows(784, 4)
    assert A.block_tile_rows(x, P.MAX_CENTERS + 1, 4) == A.tile_rows(784, 4)  # the GEMM path's cast tile
    assert A.block_tile_rows(x.astype(np.float32), 10, 4) == A.tile_rows(784, 4)
    assert A.block_tile_rows(x, 10, 8) == A.tile_rows(784, 8)
