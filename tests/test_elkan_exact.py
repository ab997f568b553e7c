"""``KMeans(algorithm="elkan")`` on uint8 rows that take the walks over their non-zero groups
(float32 centers, at most ``WALK_CENTERS``, no sample weights): every label is the one Lloyd's
step gives for the same centers, ties included, so a fit goes through Lloyd's labels, sums,
centers and iterations, bit for bit (kernels/bounds.py, "Lloyd's labels")."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest

from daskcluster import KMeans, scaled
from daskcluster.kernels import assign as A
from daskcluster.kernels import bounds as B
from daskcluster.kernels import elkan as E
from daskcluster.kernels import sweep as S
from daskcluster.kernels.blocks import Affine, ChunkInfo

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"


def mnist_rows(n: int) -> np.ndarray:
    """The first ``n`` MNIST training images as uint8 rows of 784 features."""
    if not MNIST.exists():
        pytest.skip(f"MNIST not found at {MNIST}")
    with np.load(MNIST) as z:
        return np.ascontiguousarray(z["x_train"][:n].reshape(n, -1))


def lloyd_step(X: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, sums and weights of the Lloyd step of a fit against ``centers`` (float32, storage
    space): its kernel's own compiled loop."""
    k, d = centers.shape
    labels, min_sq = np.empty(len(X), dtype=np.int64), np.empty(len(X))
    sums, wic = np.zeros((k, d)), np.zeros(k)
    w, weighted = A.weights_arg(None)
    A.assign_and_sum(X, A.CenterTable.of(centers), ChunkInfo(0, 0), labels, min_sq, w, weighted, sums, wic)
    return labels, sums, wic


def elkan_passes(X: np.ndarray, chain: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """An Elkan member's passes over one block against the centers of ``chain`` (float32,
    storage space): the first makes the bounds from every product, the others step by them. Per
    pass the labels, sums, weights and distances computed."""
    state, previous, out = None, None, []
    for generation, centers in enumerate(chain):
        storage = centers.astype(np.float64)
        geometry: dict[str, np.ndarray] = {}
        if previous is not None:
            geometry["drift"] = np.sqrt(((storage - previous) ** 2).sum(1))
            geometry["half_cc"], geometry["half_sep"] = B.center_geometry(storage)
        member = S.Member(S.ELKAN, centers, n_far=len(centers), key=0, generation=generation, **geometry)
        stats, state = S.sweep_state_kernel(X, None, ChunkInfo(0, 0), S.SweepParams((member,), Affine()), state)
        part = stats.parts[0]
        out.append((state[0].labels.copy(), part.sums.copy(), part.weight_in_clusters.copy(), stats.computed[0]))
        previous = storage
    return out


def assert_lloyd_passes(X: np.ndarray, chain: list[np.ndarray]) -> list[np.ndarray]:
    """Every pass of :func:`elkan_passes` has the labels, sums and weights of Lloyd's step against
    the same centers; returns Lloyd's labels."""
    assert E.WalkCenters.serve(X, len(chain[0]), np.float32)
    labels = []
    for centers, (lab, sums, wic, _) in zip(chain, elkan_passes(X, chain)):
        ref, ref_sums, ref_wic = lloyd_step(X, centers)
        np.testing.assert_array_equal(lab, ref)
        np.testing.assert_array_equal(sums, ref_sums)
        np.testing.assert_array_equal(wic, ref_wic)
        labels.append(ref)
    return labels


def sq_distances(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Squared distances from float64 differences."""
    return ((X[:, None, :].astype(np.float64) - centers[None].astype(np.float64)) ** 2).sum(-1)


# --------------------------------------------------------------------------- fits on real MNIST


@pytest.mark.parametrize("max_iter", [15, 1000])  # stopped by max_iter, then run to convergence
@pytest.mark.parametrize("scale", [None, 1 / 255])
def test_mnist_fit_equals_lloyd(max_iter: int, scale: float | None, monkeypatch: pytest.MonkeyPatch) -> None:
    X = mnist_rows(20_000)
    init = X[np.random.default_rng(0).choice(len(X), 10, replace=False)].astype(np.float32)
    rows = da.from_array(X, chunks=(4096, X.shape[1]))
    data = rows if scale is None else scaled(rows, scale)
    if scale is not None:
        init *= np.float32(scale)
    taken: list[bool] = []
    serve = E.WalkCenters.serve
    monkeypatch.setattr(E.WalkCenters, "serve", staticmethod(lambda *a, **kw: taken.append(serve(*a, **kw))
                                                              or taken[-1]))
    elkan = KMeans(10, init=init, n_init=1, algorithm="elkan", tol=0, max_iter=max_iter).fit(data)
    lloyd = KMeans(10, init=init, n_init=1, algorithm="lloyd", tol=0, max_iter=max_iter).fit(data)
    assert all(taken) and len(taken) > 5  # the bounded steps took the walks
    assert elkan.n_iter_ == lloyd.n_iter_ == min(max_iter, lloyd.n_iter_)
    if max_iter > 100:
        assert lloyd.n_iter_ < max_iter  # converged
    assert np.array_equal(elkan.cluster_centers_, lloyd.cluster_centers_)
    np.testing.assert_array_equal(elkan.labels_.compute(), lloyd.labels_.compute())


def test_mnist_chain_of_steps_has_lloyds_labels_and_sums() -> None:
    """Thirty steps on 8,192 MNIST rows, the centers of Lloyd's own chain: each pass's labels,
    sums and weights are Lloyd's step's, and the bounds skip most distances."""
    X = mnist_rows(8192)
    chain = [X[np.random.default_rng(1).choice(len(X), 10, replace=False)].astype(np.float32)]
    for _ in range(30):
        _, sums, wic = lloyd_step(X, chain[-1])
        chain.append((sums / np.maximum(wic, 1)[:, None]).astype(np.float32))
    assert_lloyd_passes(X, chain)
    assert elkan_passes(X, chain)[-1][3] < 0.2 * len(X) * 10


# --------------------------------------------------------------------------- ties


def mirrored(n: int = 2048, d: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Palindromic rows and two centers, each the other reversed, and a third one far away:
    every row exactly as far from the first two, their products and float64 distances summed
    in different orders."""
    rng = np.random.default_rng(0)
    half = rng.integers(1, 256, (n, d // 2)) * (rng.random((n, d // 16)) < 0.6).repeat(8, axis=1)
    X = np.concatenate([half, half[:, ::-1]], axis=1).astype(np.uint8)
    c = (rng.random(d) * 255).astype(np.float32)
    return X, np.stack([c, c[::-1], np.full(d, 255, dtype=np.float32)])


def nudged(n: int = 512, d: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Rows and two centers one float32 step apart in a feature where every row is 200: their
    float32 products with a row round to the same value, so Lloyd's values differ by the
    squared norms only and take the first center, while the second is nearer (float64
    distances tell them apart)."""
    rng = np.random.default_rng(0)
    X = rng.integers(1, 256, (n, d)) * (rng.random((n, d // 8)) < 0.5).repeat(8, axis=1)
    X[:, :8] = rng.integers(150, 256, (n, 8))
    X[:, 0] = 200
    c0 = np.full(d, 100, dtype=np.float32)
    c1 = c0.copy()
    c1[0] = np.nextafter(c0[0], np.float32(np.inf))
    return X.astype(np.uint8), np.stack([c0, c1, np.full(d, 255, dtype=np.float32)])


@pytest.mark.parametrize("case", [mirrored, nudged])
def test_ties_within_rounding_take_lloyds_label(case: object) -> None:
    """Rows whose nearest two centers are within rounding of each other: a bounded step (the
    rows open, walked) gives Lloyd's labels and sums where the float64 distances choose the
    other center for many rows (the labels such rows took before)."""
    X, centers = case()  # type: ignore[operator]
    labels = assert_lloyd_passes(X, [centers, centers, centers])
    by_distances = sq_distances(X, centers).argmin(1)
    assert np.sum(by_distances != labels[-1]) > len(X) // 10


def test_bounds_from_products_take_lloyds_arg_min_before_the_norm() -> None:
    """A pass that makes the bounds from every product (first pass, a chunk that lost its
    state): two centers whose Lloyd values ``float64(x·(-2c)) + ‖c‖²`` differ below the rounding
    of ``‖x‖²`` added to them. Lloyd takes the smaller (the second); the first of equals once
    ``‖x‖²`` is added would be the first."""
    rng = np.random.default_rng(2)
    n, d = 256, 64
    X = rng.integers(100, 256, (n, d)) * (rng.random((n, d // 8)) < 0.5).repeat(8, axis=1)
    X[:, 8:16] = rng.integers(100, 256, (n, 8))  # no row is zero
    X[:, 1:3] = 0  # the centers' only non-zero features: every product is 0
    X = X.astype(np.uint8)
    s = np.float32(1e-5)
    centers = np.zeros((2, d), dtype=np.float32)
    centers[0, 1] = s
    centers[1, 2] = np.nextafter(s, np.float32(0))
    table = A.CenterTable.of(centers)
    assert table.sq_norms[1] < table.sq_norms[0]
    x_sq = (X.astype(np.float64) ** 2).sum(1)
    assert np.all(table.sq_norms[0] + x_sq == table.sq_norms[1] + x_sq)  # a tie once the norm is added
    labels = assert_lloyd_passes(X, [centers])
    assert np.all(labels[0] == 1)


def test_a_tie_with_a_lower_center_is_never_skipped() -> None:
    """Rows labelled by the second of two centers; the first then moves onto it (the same
    center twice: every row ties, Lloyd takes the first). No row keeps the second by its
    bounds, and the rows far from both keep theirs without a distance."""
    rng = np.random.default_rng(3)
    d = 64
    X = rng.integers(0, 256, (1024, d)) * (rng.random((1024, d // 8)) < 0.5).repeat(8, axis=1)
    X[512:] //= 8  # rows near the origin, nearest the third center throughout
    X = X.astype(np.uint8)
    c1 = X[:512].mean(0).astype(np.float32)
    before = np.stack([c1 + 40, c1, np.zeros(d, dtype=np.float32)])
    after = np.stack([c1, c1, np.zeros(d, dtype=np.float32)])
    labels = assert_lloyd_passes(X, [before, after])
    assert np.sum(labels[0] == 1) > 100 and not np.any(labels[1] == 1)
    computed = elkan_passes(X, [before, after])[-1][3]
    assert computed < len(X) * 3 * 0.75  # some rows were skipped


def test_bounds_are_made_again_when_the_centers_norms_grow() -> None:
    """A step whose centers' largest squared norm is more than ``NORM_GROWTH`` times the least
    of the steps that made the bounds does not skip by them: every distance is computed, and the
    labels are Lloyd's."""
    X, centers = mirrored()
    grown = centers.copy()
    grown[2] = np.float32(255 * np.sqrt(B.NORM_GROWTH) * 1.01)  # the largest norm, moved out
    assert B.sq_norm_max(grown) > B.NORM_GROWTH * B.sq_norm_max(centers)
    passes = elkan_passes(X, [centers, centers, grown])
    assert passes[1][3] < len(X) * 3  # the bounds skipped some distances
    assert passes[2][3] == len(X) * 3  # made again
    assert_lloyd_passes(X, [centers, centers, grown])


# --------------------------------------------------------------------------- chunks that lose their bounds


def mirrored_data() -> tuple[da.Array, np.ndarray]:
    """The mirrored rows with their mirror image halved, in chunks of 1,000 rows, and 8 of them
    as the initial centers."""
    X, _ = mirrored(n=3000)
    X = np.concatenate([X, X[:, ::-1] // 2])
    init = X[np.random.default_rng(4).choice(len(X), 8, replace=False)].astype(np.float32)
    return da.from_array(X, chunks=(1000, X.shape[1])), init


@pytest.fixture
def kept_and_lloyd() -> tuple[KMeans, KMeans]:
    """The Elkan fit of :func:`mirrored_data` whose chunks keep their bounds, and the Lloyd fit
    (a test lists it before ``lost_row_state``, which pytest then sets up after it)."""
    data, init = mirrored_data()
    kept = KMeans(8, init=init, n_init=1, algorithm="elkan", tol=0, max_iter=200).fit(data)
    lloyd = KMeans(8, init=init, n_init=1, algorithm="lloyd", tol=0, max_iter=200).fit(data)
    return kept, lloyd


def test_fit_whose_chunks_lose_their_bounds_after_every_pass_equals_lloyd(
        kept_and_lloyd: tuple[KMeans, KMeans], lost_row_state: list[int]) -> None:
    """Every chunk drops its bounds after each pass, so each pass makes them again from every
    product: the fit is Lloyd's, as is the one that keeps them."""
    data, init = mirrored_data()
    kept, lloyd = kept_and_lloyd
    lost = KMeans(8, init=init, n_init=1, algorithm="elkan", tol=0, max_iter=200).fit(data)
    assert max(lost_row_state) == data.numblocks[0]  # every chunk had kept its bounds, and lost them
    for km in (lost, kept):
        assert km.n_iter_ == lloyd.n_iter_ < 200
        assert np.array_equal(km.cluster_centers_, lloyd.cluster_centers_)
        np.testing.assert_array_equal(km.labels_.compute(), lloyd.labels_.compute())
