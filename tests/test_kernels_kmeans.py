"""k-means kernels: against a naive NumPy reference, and the map-reduce law
(statistics of the whole equal the combined statistics of any split)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from daskcluster.errors import NonFiniteDataError
from daskcluster.kernels import assign as A
from daskcluster.kernels import kmeans as K
from daskcluster.kernels import sweep as S
from daskcluster.kernels.blocks import Affine, ChunkInfo

SPLITS = [(0, 500), (0, 1, 500), (0, 137, 137, 401, 500)]


def data(dtype: type = np.float64, n: int = 500, d: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(dtype)


def run_split(kernel, combine, X, w, params, bounds):  # type: ignore[no-untyped-def]
    parts = []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        parts.append(kernel(X[a:b], None if w is None else w[a:b], ChunkInfo(i, a), params))
    return combine(parts)


# The single-model kernels are the sweep kernel with one member.


def lloyd_kernel(block: np.ndarray, w: np.ndarray | None, chunk: ChunkInfo, params: tuple) -> K.LloydStats:
    centers, affine, n_far, moments = params
    stats = S.sweep_kernel(block, w, chunk, S.SweepParams((S.Member(S.LLOYD, centers, n_far=n_far),), affine, moments))
    part = stats.parts[0]
    part.moments = stats.moments
    return part  # type: ignore[return-value]


def plusplus_kernel(block: np.ndarray, w: np.ndarray | None, chunk: ChunkInfo, params: tuple) -> K.PlusPlusStats:
    centers, trials, n_draws, affine, entropy, step = params
    member = S.Member(S.PLUSPLUS, centers, entropy=entropy, round=step, trials=trials, n_draws=n_draws)
    return S.sweep_kernel(block, w, chunk, S.SweepParams((member,), affine)).parts[0]  # type: ignore[return-value]


def round_kernel(block: np.ndarray, w: np.ndarray | None, chunk: ChunkInfo, params: tuple) -> K.Candidates:
    centers, affine, ell, entropy, round = params
    member = S.Member(S.ROUND, centers, ell=ell, entropy=entropy, round=round)
    return S.sweep_kernel(block, w, chunk, S.SweepParams((member,), affine)).parts[0]  # type: ignore[return-value]


def naive_lloyd(X: np.ndarray, w: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    d2 = ((X[:, None, :].astype(np.float64) - C[None].astype(np.float64)) ** 2).sum(-1)
    lab = d2.argmin(1)
    wic = np.bincount(lab, weights=w, minlength=len(C))
    sums = np.zeros(C.shape)
    np.add.at(sums, lab, X * w[:, None])
    return wic, sums, float((d2[np.arange(len(X)), lab] * w).sum())


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 2e-5)])
@pytest.mark.parametrize("k", [1, 3, 40])
def test_lloyd_kernel_matches_naive(dtype: type, rtol: float, k: int) -> None:
    X = data(dtype)
    w = np.random.default_rng(1).uniform(0.5, 2, len(X))
    C = X[:k].copy()
    st = lloyd_kernel(X, w, ChunkInfo(0, 0), (C, Affine(), k, True))
    wic, sums, inertia = naive_lloyd(X, w, C)
    np.testing.assert_allclose(st.weight_in_clusters, wic, rtol=1e-12)
    np.testing.assert_allclose(st.sums, sums, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(st.inertia, inertia, rtol=rtol)
    np.testing.assert_allclose(st.moments.var, X.astype(np.float64).var(0), rtol=rtol)
    np.testing.assert_allclose(st.moments.mean, X.astype(np.float64).mean(0), rtol=rtol, atol=rtol)
    # the farthest points, farthest first
    d2 = ((X[:, None].astype(np.float64) - C[None]) ** 2).sum(-1).min(1)
    np.testing.assert_array_equal(st.far.index, np.argsort(-d2, kind="stable")[:k])


@pytest.mark.parametrize("bounds", SPLITS)
def test_lloyd_map_reduce_law(bounds: tuple[int, ...]) -> None:
    X = data()
    w = np.random.default_rng(2).uniform(0.5, 2, len(X))
    params = (X[:4].copy(), Affine(), 4, True)
    whole = lloyd_kernel(X, w, ChunkInfo(0, 0), params)
    split = run_split(lloyd_kernel, partial(K.combine_lloyd, n_far=4), X, w, params, bounds)
    np.testing.assert_allclose(split.weight_in_clusters, whole.weight_in_clusters, rtol=1e-12)
    np.testing.assert_allclose(split.sums, whole.sums, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(split.inertia, whole.inertia, rtol=1e-12)
    np.testing.assert_allclose(split.moments.mean, whole.moments.mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(split.moments.m2, whole.moments.m2, rtol=1e-12)
    assert split.moments.n == whole.moments.n == len(X)
    np.testing.assert_array_equal(split.far.index, whole.far.index)
    np.testing.assert_allclose(split.far.rows, whole.far.rows)


@pytest.mark.parametrize("bounds", SPLITS)
def test_assign_map_reduce_law(bounds: tuple[int, ...]) -> None:
    X = data()
    params = K.AssignParams(X[:6].copy(), Affine())
    whole = K.assign_stats_kernel(X, None, ChunkInfo(0, 0), params)
    split = run_split(K.assign_stats_kernel, K.combine_assign, X, None, params, bounds)
    np.testing.assert_allclose(split.weight_in_clusters, whole.weight_in_clusters)
    np.testing.assert_allclose(split.inertia, whole.inertia, rtol=1e-12)
    assert whole.weight_in_clusters.sum() == len(X)


@pytest.mark.parametrize("bounds", SPLITS)
def test_plusplus_potentials_map_reduce_law(bounds: tuple[int, ...]) -> None:
    X = data()
    params = (X[:2].copy(), X[10:13].copy(), 0, Affine(), 0, 1)
    whole = plusplus_kernel(X, None, ChunkInfo(0, 0), params)
    split = run_split(plusplus_kernel, K.combine_plusplus, X, None, params, bounds)
    np.testing.assert_allclose(split.potential, whole.potential, rtol=1e-12)
    naive = [
        np.minimum(((X[:, None] - X[:2][None]) ** 2).sum(-1).min(1), ((X - t) ** 2).sum(-1)).sum() for t in X[10:13]
    ]
    np.testing.assert_allclose(whole.potential, naive, rtol=1e-10)


@pytest.mark.parametrize("bounds", SPLITS)
def test_kmeans_parallel_candidates_are_exact_bernoulli(bounds: tuple[int, ...]) -> None:
    """A split keeps a superset per part; the final candidates are exactly those with
    u < ell * w * d^2 / cost over the whole data, whatever the split."""
    X = data()
    ell = 20.0
    params = (X[:1].copy(), Affine(), ell, 123, 1)
    got = run_split(round_kernel, partial(K.combine_candidates, ell=ell), X, None, params, bounds)
    d2 = ((X - X[0]) ** 2).sum(1)
    np.testing.assert_allclose(got.cost, d2.sum(), rtol=1e-10)
    u = np.concatenate([
        K.chunk_rng(123, 1, i).random(b - a) for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
    ])
    expected = np.flatnonzero(u < ell * d2 / d2.sum())
    np.testing.assert_array_equal(np.sort(got.index), expected)
    np.testing.assert_allclose(got.rows, X[got.index])
    assert 5 < len(expected) < 40  # about ell expected


def test_sample_kernel_without_replacement_respects_weights() -> None:
    X = data(n=1000)
    w = np.zeros(1000)
    w[[5, 17, 900]] = [1.0, 2.0, 3.0]
    params = K.SampleParams(3, Affine(), np.dtype(np.float64), 7, 0)
    got = run_split(K.sample_kernel, partial(K.combine_samples, n=3), X, w, params, (0, 400, 1000))
    assert sorted(got.index.tolist()) == [5, 17, 900]
    np.testing.assert_allclose(got.rows, X[got.index])


def test_affine_applied_inside_kernel() -> None:
    X8 = np.random.default_rng(0).integers(0, 256, size=(300, 5), dtype=np.uint8)
    C = (X8[:3] / 255).astype(np.float32)
    st = lloyd_kernel(X8, None, ChunkInfo(0, 0), (C, Affine(1 / 255), 0, False))
    wic, sums, inertia = naive_lloyd((X8 / 255), np.ones(300), C)
    np.testing.assert_allclose(st.sums, sums, rtol=1e-5)
    np.testing.assert_allclose(st.inertia, inertia, rtol=1e-5)
    np.testing.assert_array_equal(st.weight_in_clusters, wic)


def test_non_finite_names_chunk_and_row() -> None:
    X = data()
    X[321, 4] = np.nan
    with pytest.raises(NonFiniteDataError, match=r"chunk 3 at row 1321, feature 4"):
        K.assign_stats_kernel(X, None, ChunkInfo(3, 1000), K.AssignParams(X[:2].copy(), Affine()))


def test_zero_length_block() -> None:
    X = data()[:0]
    C = data()[:3]
    st = lloyd_kernel(X, None, ChunkInfo(0, 0), (C, Affine(), 3, True))
    assert st.inertia == 0 and st.weight_in_clusters.sum() == 0 and len(st.far.index) == 0
    cand = round_kernel(X, None, ChunkInfo(0, 0), (C, Affine(), 4.0, 0, 1))
    assert cand.cost == 0 and len(cand.index) == 0
    pp = plusplus_kernel(X, None, ChunkInfo(0, 0), (C, C[:2], 3, Affine(), 0, 1))
    assert pp.potential.tolist() == [0.0, 0.0] and np.isinf(pp.key).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint8])
@pytest.mark.parametrize("tile", [1, 7, 256, 10_000])
def test_tile_boundaries_are_invisible(dtype: type, tile: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiled kernels give the same labels, sums and inertia whatever the tile size (rows are
    summed in row order, in float64, so only the GEMM's rounding could differ: it does not)."""
    rng = np.random.default_rng(3)
    X = (rng.uniform(0, 255, size=(500, 9))).astype(dtype)
    C = X[:6].astype(np.float64 if dtype == np.float64 else np.float32)
    w = rng.uniform(0.5, 2, len(X))
    params = (C, Affine(), 6, False)
    reference = lloyd_kernel(X, w, ChunkInfo(0, 0), params)
    labels = K.labels_kernel(X, C, Affine(), ChunkInfo(0, 0))
    monkeypatch.setattr(A, "tile_rows", lambda n_features, itemsize: tile)
    tiled = lloyd_kernel(X, w, ChunkInfo(0, 0), params)
    np.testing.assert_array_equal(K.labels_kernel(X, C, Affine(), ChunkInfo(0, 0)), labels)
    np.testing.assert_array_equal(tiled.weight_in_clusters, reference.weight_in_clusters)
    np.testing.assert_allclose(tiled.sums, reference.sums, rtol=1e-15)
    assert tiled.inertia == pytest.approx(reference.inertia, rel=1e-6 if dtype != np.float64 else 1e-14)


def test_nearest_matches_a_naive_argmin_and_flags_nonfinite_rows() -> None:
    X = data(np.float64, n=300, d=5)
    C = X[:7].copy()
    labels, min_sq = A.nearest(X, A.CenterTable.of(C), ChunkInfo(0, 0))
    d2 = ((X[:, None] - C[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels, d2.argmin(1))
    np.testing.assert_allclose(min_sq, d2.min(1), rtol=1e-9, atol=1e-12)
    X[123, 4] = np.inf
    with pytest.raises(NonFiniteDataError, match="row 1123, feature 4"):
        A.nearest(X, A.CenterTable.of(C), ChunkInfo(2, 1000))


@pytest.mark.parametrize("n, m", [(0, 3), (5, 0), (5, 5), (5, 9), (20, 3), (300, 10), (32768, 10)])
def test_farthest_rows_lower_row_first_among_equals(n: int, m: int) -> None:
    """The ``m`` largest values' rows, ascending, ties to the lower row (few distinct values, so
    ties cross the boundary), NaN never taken: what a sort by (-value, row) keeps."""
    from daskcluster.kernels import assign as A

    rng = np.random.default_rng(n + m)
    sq = rng.integers(0, 4, n).astype(np.float64) if n < 1000 else rng.random(n)
    if n > 3:
        sq[3] = np.nan
    order = np.lexsort((np.arange(n), -np.nan_to_num(sq, nan=-np.inf)))
    expect = np.sort(order[: min(m, n)]) if m < n else np.arange(n)
    if m < n:
        expect = expect[~np.isnan(sq[expect])]
    np.testing.assert_array_equal(A.farthest(sq, m), expect)


# ------------------------------------------------------------------ k-means|| with the chunk's kept state


def seeding_passes(X: np.ndarray, w: np.ndarray | None, C: np.ndarray, ends: tuple[int, ...], affine: Affine,
                   keep: bool) -> list[tuple[object, int]]:
    """The passes of a k-means|| seeding whose rounds drew the batches of ``C`` ending at
    ``ends``: a round per batch, then the weighing; each pass's statistics and distances
    computed, the chunk's state carried from pass to pass (``keep``) or never."""
    out, state = [], None
    for r in range(1, len(ends) + 1):
        kind = S.ROUND if r < len(ends) else S.WEIGH
        member = S.Member(kind, C[: ends[r - 1]], ell=8.0, entropy=5, round=r, key=3, batches=ends[:r])
        stats, new = S.sweep_state_kernel(X, w, ChunkInfo(0, 0), S.SweepParams((member,), affine), state)
        state = new if keep else None
        out.append((stats.parts[0], stats.computed[0]))
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint8])
@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_parallel_rounds_same_whether_the_chunk_kept_its_nearest_candidates(dtype: type,
                                                                                   weighted: bool) -> None:
    """A round measures the rows against the previous round's batch only when the chunk kept
    its nearest candidates, and finds the same draw, the same weights and inertia as a chunk
    that kept nothing (every batch measured again)."""
    rng = np.random.default_rng(11)
    X = (rng.uniform(0, 255, size=(700, 24)) * (rng.random((700, 24)) < 0.4)).astype(dtype)
    w = rng.uniform(0.5, 2, len(X)) if weighted else None
    affine = Affine(scale=1 / 255) if dtype == np.uint8 else Affine()
    compute = np.float32 if dtype != np.float64 else np.float64
    scale = 1 / 255 if dtype == np.uint8 else 1.0
    C = (X[rng.choice(len(X), 30, replace=False)].astype(np.float64) * scale).astype(compute)
    C[22] = C[3]  # a candidate drawn again in a later batch: its rows stay with the first
    ends = (1, 8, 19, 30)
    kept = seeding_passes(X, w, C, ends, affine, keep=True)
    fresh = seeding_passes(X, w, C, ends, affine, keep=False)
    for (a, computed_a), (b, computed_b), start, end in zip(kept, fresh, (0,) + ends, ends):
        if isinstance(a, K.Candidates):
            assert a.cost == b.cost
            np.testing.assert_array_equal(a.index, b.index)
            np.testing.assert_array_equal(a.key, b.key)
            np.testing.assert_array_equal(a.rows, b.rows)
        else:
            np.testing.assert_array_equal(a.weight_in_clusters, b.weight_in_clusters)
            assert a.inertia == b.inertia
        assert computed_a == len(X) * (end - start)  # the new batch only
        assert computed_b == len(X) * end
    # the weights are those of each row's nearest candidate
    weights, inertia = kept[-1][0].weight_in_clusters, kept[-1][0].inertia
    wic, _, expected = naive_lloyd(scale * X.astype(np.float64),
                                   np.ones(len(X)) if w is None else w, C.astype(np.float64))
    np.testing.assert_allclose(weights, wic, rtol=1e-12)
    np.testing.assert_allclose(inertia, expected, rtol=1e-5)
    assert weights.sum() == pytest.approx(len(X) if w is None else w.sum())
    assert weights[3] > 0 and weights[22] == 0


def test_kmeans_parallel_state_made_by_another_seeding_is_not_used() -> None:
    """A chunk's kept state of other candidates (a shorter table, another row count) is
    measured again; a pass with no seeding member drops it."""
    X = data(np.float64, n=300)
    C = X[:9].copy()
    ends = (1, 5, 9)
    kept = seeding_passes(X, None, C, ends, Affine(), keep=True)
    fresh = seeding_passes(X, None, C, ends, Affine(), keep=False)
    np.testing.assert_array_equal(kept[-1][0].weight_in_clusters, fresh[-1][0].weight_in_clusters)
    member = S.Member(S.WEIGH, C, key=3, batches=ends)
    alien = {(S.ROUND, 3): S.SeedState(4, np.zeros(300, dtype=np.int32), np.zeros(300))}  # 4 is no batch end
    stats, state = S.sweep_state_kernel(X, None, ChunkInfo(0, 0), S.SweepParams((member,), Affine()), alien)
    np.testing.assert_array_equal(stats.parts[0].weight_in_clusters, fresh[-1][0].weight_in_clusters)
    assert stats.computed[0] == 300 * 9
    lloyd = S.Member(S.LLOYD, C, n_far=0)
    _, after = S.sweep_state_kernel(X, None, ChunkInfo(0, 0), S.SweepParams((lloyd,), Affine()), state)
    assert after == {}


@pytest.mark.parametrize("case", ["random", "extremes"])
def test_byte_moments_are_the_bits_of_the_float64_shifted_sums(case: str) -> None:
    """uint8 rows' moments summed in integers (uint32 lanes flushed every 65,536 rows) equal the
    float64 shifted sums' bits: every partial sum of those is an integer, so exact."""
    rng = np.random.default_rng(4)
    n = 65_536 + 700  # past one flush
    if case == "random":
        X = (rng.integers(0, 256, size=(n, 9)) * (rng.random((n, 9)) < 0.6)).astype(np.uint8)
    else:  # the largest sums a flush holds: 255 everywhere but a first row of 0 (the shift)
        X = np.full((n, 3), 255, dtype=np.uint8)
        X[0] = 0
    affine = Affine(scale=1 / 255)
    got = K.block_moments(X, np.dtype(np.float32), affine)
    shift = X[0].astype(np.float32).astype(np.float64)
    s1, s2 = np.zeros(X.shape[1]), np.zeros(X.shape[1])
    A.shifted_sums(X, shift, s1, s2)
    mean, m2 = shift + s1 / n, np.maximum(s2 - s1 * s1 / n, 0.0)
    np.testing.assert_array_equal(got.mean, affine.scale * mean + affine.offset)
    np.testing.assert_array_equal(got.m2, affine.sq_scale * m2)
    np.testing.assert_allclose(got.var, (X / 255).var(0), rtol=1e-12, atol=1e-15)
