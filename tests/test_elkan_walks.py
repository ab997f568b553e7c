"""The open rows of a uint8 block whose rows take the walks over their non-zero groups, by one
walk of all the centers (kernels/elkan.py, ``WalkCenters``): the labels, sums and weights of
Lloyd's step against the same centers (and, on rows with no two centers within rounding of each
other, of the step that takes the distances one by one and defers the rows with many open
centers to tiles), and bounds that hold. Ties: tests/test_elkan_exact.py."""

from __future__ import annotations

import numpy as np
import pytest

from daskcluster.kernels import assign as A
from daskcluster.kernels import bounds as B
from daskcluster.kernels import elkan as E
from daskcluster.kernels import rowproducts as P
from daskcluster.kernels import sweep as S
from daskcluster.kernels.blocks import Affine, ChunkInfo

AFFINE = Affine(scale=1 / 255)


def images(n: int = 2000, d: int = 96, k: int = 8, seed: int = 0) -> np.ndarray:
    """uint8 rows around ``k`` prototypes, about half of each row's 8-feature groups zero."""
    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 256, (k, d)) * (rng.random((k, d // 8)) < 0.5).repeat(8, axis=1)
    x = protos[rng.integers(0, k, n)] + rng.normal(0, 60, (n, d))
    x *= protos[rng.integers(0, k, n)] > 0  # the zero groups of another prototype
    return np.clip(x, 0, 255).astype(np.uint8)


def steps(X: np.ndarray, k: int, walks: bool, monkeypatch: pytest.MonkeyPatch, n_steps: int = 7,
          ties: bool = False, sample_weight: np.ndarray | None = None) -> list[
              tuple[np.ndarray, np.ndarray, np.ndarray, B.BoundsState, np.ndarray]]:
    """Bounded Lloyd steps over one block from centers drawn among its rows (float32, scaled):
    per step the sums, weights, labels, the state, and the storage-space centers."""
    serve = E.WalkCenters.serve
    monkeypatch.setattr(E.WalkCenters, "serve", staticmethod(lambda *a, **kw: walks and serve(*a, **kw)))
    rng = np.random.default_rng(1)
    centers = (X[rng.choice(len(X), k, replace=False)] / 255).astype(np.float32)
    if ties:
        centers[1] = centers[0]  # two equal centers: every row nearer them ties
    state, previous, out = None, None, []
    for generation in range(n_steps):
        storage = AFFINE.to_storage_space(centers).astype(np.float64)
        drift = None if previous is None else np.sqrt(((storage - previous) ** 2).sum(1))
        half_cc, half_sep = B.center_geometry(storage) if drift is not None else (None, None)
        member = S.Member(S.ELKAN, centers, n_far=k, key=0, generation=generation, drift=drift, half_cc=half_cc,
                          half_sep=half_sep)
        stats, state = S.sweep_state_kernel(X, sample_weight, ChunkInfo(0, 0), S.SweepParams((member,), AFFINE),
                                            state)
        part = stats.parts[0]
        st = state[0]
        out.append((part.sums.copy(), part.weight_in_clusters.copy(), st.labels.copy(),
                    B.BoundsState(st.generation, st.labels.copy(), st.upper.copy(), st.lower.copy(), st.sums.copy(),
                                  st.wic.copy(), st.csq_floor), storage))
        previous = storage
        centers = (part.sums / np.maximum(part.weight_in_clusters, 1)[:, None]).astype(np.float32)
        if ties:
            centers[1] = centers[0]
    return out


def assert_bounds_hold(X: np.ndarray, st: B.BoundsState, storage: np.ndarray) -> None:
    """``upper ≥ ‖x - c_label‖`` and ``lower[:, j] ≤ ‖x - c_j‖`` (float64 differences, widened
    by far more than their rounding)."""
    d = np.sqrt(((X[:, None, :].astype(np.float64) - storage[None]) ** 2).sum(-1))
    assert np.all(st.upper >= d[np.arange(len(X)), st.labels] * (1 - 1e-12))
    assert np.all(st.lower <= d * (1 + 1e-12))


def same_steps(walked: list, other: list, X: np.ndarray, which: str) -> int:
    """Each step of ``walked`` has the labels, weights and sums of ``other``'s and valid bounds;
    returns how many of its ``which`` bounds (``'upper'`` or ``'lower'``) differ from ``other``'s."""
    differ = 0
    for (sa, wa, la, sta, storage), (sb, wb, lb, stb, _) in zip(walked, other):
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(sa, sb)
        assert_bounds_hold(X, sta, storage)
        differ += int(np.sum(getattr(sta, which) != getattr(stb, which)))
    return differ


def lloyd_step(X: np.ndarray, storage: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, sums and weights of a Lloyd step against the float32 centers ``storage`` (storage
    space, held as float64): the compiled loop of a Lloyd fit's pass."""
    k, d = storage.shape
    labels, min_sq = np.empty(len(X), dtype=np.int64), np.empty(len(X))
    sums, wic = np.zeros((k, d)), np.zeros(k)
    w, weighted = A.weights_arg(None)
    A.assign_and_sum(X, A.CenterTable.of(storage.astype(np.float32)), ChunkInfo(0, 0), labels, min_sq, w, weighted,
                     sums, wic)
    return labels, sums, wic


@pytest.mark.parametrize("dense", [0, 2, 10**9])  # rows with open centers all, many or none "deferred"
@pytest.mark.parametrize("ties", [False, True])
def test_walks_give_lloyds_labels_and_sums_and_valid_bounds(dense: int, ties: bool,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    X = images()
    k = 8
    assert E.WalkCenters.serve(X, k, np.float32)  # the walks are taken
    monkeypatch.setattr(B, "dense_threshold", lambda k: dense)
    walked = steps(X, k, True, monkeypatch, ties=ties)
    single = steps(X, k, False, monkeypatch, ties=ties)
    for _, wic, labels, st, storage in walked:
        ref_labels, ref_sums, ref_wic = lloyd_step(X, storage)
        np.testing.assert_array_equal(labels, ref_labels)
        np.testing.assert_array_equal(st.sums, ref_sums)  # the raw rows' sums, storage space
        np.testing.assert_array_equal(wic, ref_wic)
    assert same_steps(walked, single, X, "upper") > 100  # many rows took the walks (their bounds are the products')
    # the single distances' labels are those of the float64 distances to the step's centers (first of equals)
    _, _, labels, _, storage = single[-1]
    d2 = ((X[:, None, :].astype(np.float64) - storage[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels, d2.argmin(1))


def test_walks_are_taken_only_where_they_pay() -> None:
    X = images()
    assert E.WalkCenters.serve(X, E.WALK_CENTERS, np.float32)
    assert not E.WalkCenters.serve(X, E.WALK_CENTERS + 1, np.float32)  # many centers: one by one
    assert not E.WalkCenters.serve(X, 8, np.float64)  # float64 centers
    assert not E.WalkCenters.serve(X.astype(np.float32), 8, np.float32)  # float32 rows
    assert not E.WalkCenters.serve(np.asfortranarray(X), 8, np.float32)
    dense = np.maximum(X, 1)  # no zero group: the walks do not pay
    assert not P.walks_pay(dense) and not E.WalkCenters.serve(dense, 8, np.float32)


@pytest.mark.parametrize("case", ["dense", "many"])
def test_blocks_without_walks_keep_the_single_distances(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    X = np.maximum(images(n=800), 1) if case == "dense" else images(n=800)
    k = 4 if case == "dense" else E.WALK_CENTERS + 2
    a = steps(X, k, True, monkeypatch, n_steps=4)
    b = steps(X, k, False, monkeypatch, n_steps=4)
    for (sa, wa, la, sta, storage), (sb, wb, lb, stb, _) in zip(a, b):
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(sa, sb)
        if case == "dense":  # the same path: the same bounds (with many centers, the deferred rows walk)
            np.testing.assert_array_equal(sta.upper, stb.upper)
            np.testing.assert_array_equal(sta.lower, stb.lower)
        assert_bounds_hold(X, sta, storage)


@pytest.mark.parametrize("case", ["weighted", "many"])
def test_deferred_rows_by_walks_give_the_labels_and_sums_of_tiles(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Weighted rows, or more than WALK_CENTERS centers: the open rows one distance at a time,
    the rows with many open centers deferred, then walked one by one in their order
    (``refresh_walks``) where they were gathered into tiles: the same labels, weights and sums
    (weighted float64 sums: the same order of the moves)."""
    X = images(n=1500)
    k = 6 if case == "weighted" else E.WALK_CENTERS + 4
    w = np.random.default_rng(3).uniform(0.1, 3.0, len(X)) if case == "weighted" else None
    assert E.WalkCenters.serve(X, k, np.float32, deferred=True)
    monkeypatch.setattr(B, "dense_threshold", lambda k: 1)
    walked = steps(X, k, True, monkeypatch, sample_weight=w)
    tiles = steps(X, k, False, monkeypatch, sample_weight=w)
    assert same_steps(walked, tiles, X, "lower") > 0  # deferred rows were walked (their bounds from their own slack)


def test_fit_with_walks_equals_lloyd(monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole ``algorithm="elkan"`` fit on scaled uint8 rows that take the walks: the labels,
    iterations and centers of ``algorithm="lloyd"``."""
    import dask.array as da

    from daskcluster import KMeans, scaled

    X = images(n=3000, k=10, seed=5)
    init = (X[:10] / 255).astype(np.float32)
    taken: list[bool] = []
    serve = E.WalkCenters.serve
    monkeypatch.setattr(E.WalkCenters, "serve", staticmethod(lambda *a, **kw: taken.append(serve(*a, **kw))
                                                              or taken[-1]))
    data = scaled(da.from_array(X, chunks=(700, X.shape[1])), 1 / 255)
    elkan = KMeans(10, init=init, n_init=1, algorithm="elkan", tol=0, max_iter=30).fit(data)
    lloyd = KMeans(10, init=init, n_init=1, algorithm="lloyd", tol=0, max_iter=30).fit(data)
    assert any(taken)
    assert elkan.n_iter_ == lloyd.n_iter_
    np.testing.assert_array_equal(elkan.labels_.compute(), lloyd.labels_.compute())
    assert np.array_equal(elkan.cluster_centers_, lloyd.cluster_centers_)
