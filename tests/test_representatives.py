"""Cluster representatives and label propagation: brute-force equality, chunking, laziness,
the map-reduce law of the kernels, exact per-cluster percentiles, errors."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest

import daskcluster.cluster._representatives as R
from daskcluster import GaussianMixture, KMeans, scaled
from daskcluster.cluster import propagate_labels, representatives
from daskcluster.cluster._representatives import cluster_percentiles
from daskcluster.engine import count_passes
from daskcluster.errors import DataTypeError, InvalidDataError, InvalidParameterError, NonFiniteDataError
from daskcluster.io import write_zarr
from daskcluster.kernels import representatives as K
from daskcluster.kernels.blocks import Affine, ChunkInfo


def brute_force(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    return np.argmin(((X[:, None, :].astype(np.float64) - C[None]) ** 2).sum(axis=2), axis=0)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(3000, 6)), rng.normal(size=(17, 6))


# --------------------------------------------------------------------------- representatives


def test_equals_brute_force_in_memory(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, C = data
    with count_passes() as counter:
        index = representatives(X, C)
    assert counter.passes == 1
    assert index.dtype == np.int64 and index.shape == (17,)
    np.testing.assert_array_equal(index, brute_force(X, C))


@pytest.mark.parametrize("chunk", [1, 7, 250, 3000])
def test_equals_brute_force_over_many_chunks(data: tuple[np.ndarray, np.ndarray], chunk: int) -> None:
    X, C = data
    X = X[:600] if chunk == 1 else X  # 600 one-row chunks keep the graph small
    np.testing.assert_array_equal(representatives(da.from_array(X, chunks=(chunk, 6)), C), brute_force(X, C))


def test_zarr_path_and_fitted_estimator(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = data
    path = tmp_path / "x.zarr"
    write_zarr(X, path, chunk_bytes=6 * 8 * 400)
    km = KMeans(n_clusters=5, random_state=0).fit(X)
    index = representatives(str(path), km)
    np.testing.assert_array_equal(index, brute_force(X, km.cluster_centers_))
    np.testing.assert_array_equal(index, representatives(X, km.cluster_centers_))
    gmm = GaussianMixture(n_components=3, covariance_type="diag", random_state=0).fit(X)
    np.testing.assert_array_equal(representatives(X, gmm), brute_force(X, gmm.means_))


def test_ties_go_to_the_lowest_row() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3))
    C = rng.normal(size=(4, 3))
    best = brute_force(X, C)
    # copies of each center's nearest row, later in the same chunk and in later chunks
    X = np.concatenate([X, X[best], X[best][::-1], X[best]])
    for chunks in (X.shape[0], 101, 5):
        np.testing.assert_array_equal(representatives(da.from_array(X, chunks=(chunks, 3)), C), best)
    # an exact duplicate placed before the original: the earlier copy wins
    Y = np.concatenate([X[best[:1]], X])
    assert representatives(da.from_array(Y, chunks=(50, 3)), C)[0] == 0


def test_scaled_uint8_source_in_scaled_space() -> None:
    rng = np.random.default_rng(2)
    X = rng.integers(0, 256, size=(2000, 10), dtype=np.uint8)
    C = rng.random((6, 10))
    index = representatives(scaled(da.from_array(X, chunks=(300, 10)), 1 / 255), C)
    dist = ((X.astype(np.float64)[:, None] / 255 - C) ** 2).sum(axis=2)
    np.testing.assert_allclose(dist[index, np.arange(6)], dist.min(axis=0), rtol=1e-6)


def test_more_centers_than_rows_share_rows() -> None:
    X = np.array([[0.0, 0.0], [10.0, 10.0]])
    C = np.array([[0.0, 1.0], [1.0, 0.0], [9.0, 9.0]])
    np.testing.assert_array_equal(representatives(X, C), [0, 0, 1])


def test_representatives_errors(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, C = data
    with pytest.raises(InvalidDataError, match="X has 6 features but the centers have 5"):
        representatives(X, C[:, :5])
    with pytest.raises(InvalidParameterError, match=r"shape \(n_clusters, n_features\).*got shape \(6,\)"):
        representatives(X, C[0])
    with pytest.raises(InvalidParameterError, match="NaN or infinity"):
        representatives(X, np.full((2, 6), np.nan))
    with pytest.raises(InvalidParameterError, match="without cluster_centers_ or means_: fit it first"):
        representatives(X, KMeans(n_clusters=3))
    bad = X.copy()
    bad[1234, 2] = np.nan
    with pytest.raises(NonFiniteDataError, match="row 1234, feature 2"):
        representatives(da.from_array(bad, chunks=(500, 6)), C)


# --------------------------------------------------------------------------- map-reduce law


def split_points(n: int, rng: np.random.Generator) -> list[int]:
    return [0, *sorted(rng.choice(np.arange(1, n), size=4, replace=False).tolist()), n]


def test_nearest_kernel_obeys_the_map_reduce_law(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, C = data
    params = K.NearestParams(C, Affine(), np.dtype(np.float64))
    whole = K.nearest_rows_kernel(X, None, ChunkInfo(0, 0), params)
    rng = np.random.default_rng(3)
    for _ in range(3):
        cuts = split_points(len(X), rng)
        parts = [K.nearest_rows_kernel(X[a:b], None, ChunkInfo(i, a), params) for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]
        merged = K.combine_nearest([K.combine_nearest(parts[:2]), K.combine_nearest(parts[2:])])
        np.testing.assert_array_equal(merged.index, whole.index)
        np.testing.assert_array_equal(merged.sq_dist, whole.sq_dist)


@pytest.mark.parametrize("gather", [False, True])
def test_radix_kernel_obeys_the_map_reduce_law(gather: bool) -> None:
    rng = np.random.default_rng(4)
    n, k = 2000, 5
    block = np.column_stack([rng.integers(0, k, n).astype(np.float64), rng.gamma(2.0, size=n)])
    keys = K.order_keys(block[:, 1])
    median_key = int(np.sort(keys)[n // 2])
    prefix = np.full(k, median_key >> 54, dtype=np.uint64)  # 10 bits fixed around the median
    params = K.RadixParams(prefix, np.full(k, 10), np.full(k, gather), 10)
    whole = K.radix_kernel(block, None, ChunkInfo(0, 0), params)
    assert whole.counts.sum() == n
    assert (whole.gathered_value.size > 0) == gather and (whole.hist.sum() > 0) != gather
    cuts = split_points(n, rng)
    parts = [K.radix_kernel(block[a:b], None, ChunkInfo(i, a), params) for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]
    merged = K.combine_radix([K.combine_radix(parts[:3]), K.combine_radix(parts[3:])])
    np.testing.assert_array_equal(merged.counts, whole.counts)
    np.testing.assert_array_equal(merged.hist, whole.hist)
    np.testing.assert_array_equal(merged.gathered_label, whole.gathered_label)
    np.testing.assert_array_equal(merged.gathered_value, whole.gathered_value)
    np.testing.assert_array_equal(merged.min_above, whole.min_above)


def test_order_keys_sort_as_the_values() -> None:
    v = np.array([-np.inf, -1e300, -2.5, -1e-300, -0.0, 0.0, 1e-310, 1e-300, 3.0, 1e308, np.inf])
    keys = K.order_keys(v)
    assert np.all(np.diff(keys.astype(object)) >= 0)
    assert keys[4] == keys[5]  # -0.0 and 0.0
    assert [K.key_value(int(x)) for x in keys] == [float(x) + 0.0 for x in v]


# --------------------------------------------------------------------------- percentiles


@pytest.mark.parametrize("percentile", [0, 4, 20, 37.3, 50, 99.9, 100])
def test_cluster_percentiles_equal_numpy(percentile: float) -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 9, 4000)
    values = rng.gamma(2.0, size=4000)
    expected = [np.percentile(values[labels == c], percentile) for c in range(9)]
    with count_passes() as counter:
        got = cluster_percentiles(labels, values, 9, percentile)
    assert counter.passes == 2  # a histogram, then the few values left gathered
    np.testing.assert_array_equal(got, expected)


def test_cluster_percentiles_deep_selection_ties_and_negatives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(R, "GATHER_MAX", 3)  # force the selection down to single key values
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 4, 3000)
    for values in (np.round(rng.normal(size=3000), 1), -rng.gamma(2.0, size=3000), rng.normal(size=3000)):
        for p in (4, 20, 50, 83):
            lazy = cluster_percentiles(da.from_array(labels, chunks=700), da.from_array(values, chunks=450), 6, p)
            expected = [np.percentile(values[labels == c], p) for c in range(4)]
            np.testing.assert_array_equal(lazy[:4], expected)
            assert np.all(lazy[4:] == -np.inf)  # clusters without rows


# --------------------------------------------------------------------------- propagation


def test_propagate_labels_numpy_and_lazy() -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 10, 1000).astype(np.int32)
    table = rng.permutation(10).astype(np.uint8)
    out = propagate_labels(labels, table)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, table[labels])
    lazy = propagate_labels(da.from_array(labels, chunks=130), table)
    assert isinstance(lazy, da.Array) and lazy.chunks == ((130,) * 7 + (90,),)
    np.testing.assert_array_equal(lazy.compute(), table[labels])


def test_propagate_to_the_closest_percent_per_cluster() -> None:
    rng = np.random.default_rng(8)
    X = np.concatenate([rng.normal(c, 1.0, size=(400, 2)) for c in (0, 6, 12)])
    y = np.repeat([5, 3, 9], 400)
    km = KMeans(n_clusters=3, random_state=0).fit(X)
    dist = km.transform(X).min(axis=1)
    rep = representatives(X, km)
    out = propagate_labels(km.labels_, y[rep], distances=dist, percentile=20)
    assert out.dtype == np.int64
    for c in range(3):
        members = km.labels_ == c
        cut = np.percentile(dist[members], 20)
        np.testing.assert_array_equal(out[members], np.where(dist[members] <= cut, y[rep][c], -1))
    assert abs((out >= 0).mean() - 0.2) < 0.01
    lazy_labels = km.predict(da.from_array(X, chunks=(250, 2)))
    lazy = propagate_labels(lazy_labels, y[rep].astype(np.uint8), distances=da.from_array(dist, chunks=333), percentile=20)
    assert isinstance(lazy, da.Array) and lazy.dtype == np.int16
    np.testing.assert_array_equal(lazy.compute(), out)


def test_propagate_errors() -> None:
    labels = np.array([0, 1, 2, 1])
    with pytest.raises(InvalidParameterError, match="distances without percentile"):
        propagate_labels(labels, [1, 2, 3], distances=np.zeros(4))
    with pytest.raises(InvalidParameterError, match="without distances"):
        propagate_labels(labels, [1, 2, 3], percentile=20)
    with pytest.raises(InvalidParameterError, match="'percentile' parameter of propagate_labels"):
        propagate_labels(labels, [1, 2, 3], distances=np.zeros(4), percentile=120)
    with pytest.raises(InvalidDataError, match=r"holds 2; expected integers in \[0, 2\)"):
        propagate_labels(labels, [1, 2])
    with pytest.raises(InvalidDataError, match=r"expected integers in \[0, 2\)"):
        propagate_labels(da.from_array(labels, chunks=2), [1, 2]).compute()
    with pytest.raises(DataTypeError, match="integer cluster indices"):
        propagate_labels(labels.astype(float), [1, 2, 3])
    with pytest.raises(InvalidDataError, match="one value per row"):
        propagate_labels(labels, [1, 2, 3], distances=np.zeros(3), percentile=20)
    with pytest.raises(NonFiniteDataError, match="at row 2"):
        propagate_labels(labels, [1, 2, 3], distances=np.array([0.0, 1.0, np.nan, 2.0]), percentile=20)
    with pytest.raises(DataTypeError, match="must be integers"):
        propagate_labels(labels, ["a", "b", "c"], distances=np.zeros(4), percentile=20)
