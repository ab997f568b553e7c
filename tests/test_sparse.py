"""Sparse input: CSR/CSC in memory, Dask arrays of sparse chunks, stores of CSR row blocks.

Tolerances. From the same init, our Lloyd step and scikit-learn's take the same arg-min of
``‖c‖² - 2 x·c`` and divide per-cluster sums of the same rows. In float64 the sums differ only
by the order of the additions (chunks, tiles): each sum of ``m`` rows carries a relative error
of at most ``m ε`` of the sum of absolute values, and on these data (values in [0, 1), clusters
of ~100-1000 rows) that is below ``1e3 · 2.2e-16 ≈ 2e-13``; we assert ``rtol=1e-10`` on centers
and inertia (the inertia adds ``n`` such terms), which leaves room for a few iterations of
propagation and still fails at once if a row is dropped or mislabelled (an error of ~1e-3). The
labels and ``n_iter_`` must be equal. In float32 scikit-learn accumulates in float32: the error
of a center grows to ``m ε₃₂ ≈ 1e3 · 6e-8 = 6e-5`` relative, so ``rtol=1e-4``.
"""

from __future__ import annotations

import os

import dask
import dask.array as da
import numpy as np
import pytest
from scipy import sparse
from sklearn.cluster import KMeans as SkKMeans

from daskcluster import NMF, GaussianMixture, KMeans, MiniBatchKMeans
from daskcluster.errors import (
    DataTypeError,
    InvalidParameterError,
    NonFiniteDataError,
    SourceError,
    StoreIntegrityError,
)
from daskcluster.io import open_array, write_zarr
from daskcluster.io_sparse import write_sparse_zarr
from daskcluster.kernels import sparse as S
from daskcluster.kernels.assign import CenterTable, iter_products
from daskcluster.kernels.blocks import Affine, ChunkInfo
from daskcluster.kernels.kmeans import block_moments


def _tfidf_like(n: int, d: int, k: int, density: float, seed: int, dtype: type = np.float64) -> sparse.csr_matrix:
    """Rows drawn from ``k`` topics (each a set of frequent columns), as TF-IDF vectors but not
    normalised: rows of equal norm make exact ties between centers for the rows that share no
    column with them, which any rounding then breaks its own way."""
    rng = np.random.default_rng(seed)
    per_row = max(2, int(density * d))
    topics = [rng.choice(d, size=max(per_row * 2, 4), replace=False) for _ in range(k)]
    rows, cols = [], []
    for i in range(n):
        t = topics[rng.integers(k)]
        c = np.unique(np.concatenate([rng.choice(t, per_row // 2 + 1), rng.integers(0, d, per_row // 2)]))
        rows.append(np.full(len(c), i))
        cols.append(c)
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sparse.csr_matrix((rng.random(len(r)) + 0.1, (r, c)), shape=(n, d), dtype=dtype)


@pytest.fixture(scope="module")
def X_sparse() -> sparse.csr_matrix:
    return _tfidf_like(3000, 400, 6, 0.02, 0)


def _init(X: sparse.csr_matrix, k: int = 6) -> np.ndarray:
    """Means of ``k`` disjoint groups of rows: centers of distinct norms."""
    return np.stack([np.asarray(X[j::k * 50].mean(axis=0)).ravel() for j in range(k)])


def _values(x: object) -> np.ndarray:
    """A NumPy array of ``x``, computed when lazy (``np.asarray`` of a Dask array is not on
    every Dask array backend)."""
    return np.asarray(dask.compute(x)[0])


def _assert_same(ours: KMeans, ref: SkKMeans, rtol: float = 1e-10) -> None:
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=rtol, atol=rtol * 1e-2)
    np.testing.assert_allclose(ours.inertia_, ref.inertia_, rtol=rtol)
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_array_equal(_values(ours.labels_), ref.labels_)


# ------------------------------------------------------------------ kernels


def test_sparse_tiles_give_the_dense_products_norms_and_sums(X_sparse: sparse.csr_matrix) -> None:
    block = X_sparse[:700]
    centers = X_sparse[:5].toarray()
    table = CenterTable.of(centers)
    dense = block.toarray()
    for (a, b, x, x_sq, g), (a2, b2, xd, xd_sq, gd) in zip(
            iter_products(block, table.minus2_t, ChunkInfo(0, 0), 128),
            iter_products(dense, table.minus2_t, ChunkInfo(0, 0), 128)):
        assert (a, b) == (a2, b2) and isinstance(x, S.CsrTile)
        np.testing.assert_allclose(x_sq, xd_sq, rtol=1e-13)
        np.testing.assert_allclose(g, gd, rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(x.toarray(), xd)
    labels = np.arange(700) % 5
    np.testing.assert_allclose(S.cluster_sums(block, labels, None, 5),
                               np.stack([dense[labels == j].sum(axis=0) for j in range(5)]), rtol=1e-13, atol=1e-15)
    n, mean, m2 = S.block_moments(block, Affine(2.0, 1.0))
    ref = block_moments(dense, np.dtype(np.float64), Affine(2.0, 1.0))
    assert n == ref.n
    np.testing.assert_allclose(mean, ref.mean, rtol=1e-12)
    np.testing.assert_allclose(m2, ref.m2, rtol=1e-10, atol=1e-12)


def test_nan_in_sparse_data_names_row_and_feature(X_sparse: sparse.csr_matrix) -> None:
    X = X_sparse.copy()
    X.data[X.indptr[1234] + 1] = np.nan
    col = X.indices[X.indptr[1234] + 1]
    with pytest.raises(NonFiniteDataError, match=f"row 1234, feature {col}"):
        KMeans(4, random_state=0).fit(X)


# ------------------------------------------------------------------ KMeans equals scikit-learn


@pytest.mark.parametrize("algorithm", ["lloyd", "elkan"])
@pytest.mark.parametrize("chunks", [None, 500])
def test_kmeans_on_csr_equals_sklearn(X_sparse: sparse.csr_matrix, algorithm: str, chunks: int | None) -> None:
    init = _init(X_sparse)
    ref = SkKMeans(6, init=init, n_init=1, algorithm=algorithm, tol=1e-6).fit(X_sparse)
    X = X_sparse if chunks is None else da.from_array(X_sparse, chunks=(chunks, -1), asarray=False)
    ours = KMeans(6, init=init, n_init=1, algorithm=algorithm, tol=1e-6).fit(X)
    assert isinstance(ours.labels_, da.Array) == (chunks is not None)
    _assert_same(ours, ref)
    np.testing.assert_array_equal(_values(ours.predict(X)), ref.predict(X_sparse))
    np.testing.assert_allclose(_values(ours.transform(X)), ref.transform(X_sparse), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.score(X), ref.score(X_sparse), rtol=1e-10)


def test_kmeans_on_csc_float32_and_weights_equals_sklearn(X_sparse: sparse.csr_matrix) -> None:
    X = X_sparse.astype(np.float32).tocsc()
    w = np.random.default_rng(1).random(X.shape[0]) + 0.5
    init = _init(X_sparse).astype(np.float32)
    ref = SkKMeans(6, init=init, n_init=1).fit(X, sample_weight=w)
    ours = KMeans(6, init=init, n_init=1).fit(X, sample_weight=w)
    _assert_same(ours, ref, rtol=1e-4)
    assert ours.cluster_centers_.dtype == np.float32


@pytest.mark.parametrize("init", ["k-means||", "k-means++", "random"])
def test_seeding_on_sparse_chunks_equals_seeding_on_the_same_dense_chunks(X_sparse: sparse.csr_matrix,
                                                                         init: str) -> None:
    sp = KMeans(6, init=init, n_init=1, random_state=3).fit(da.from_array(X_sparse, chunks=(700, -1), asarray=False))
    de = KMeans(6, init=init, n_init=1, random_state=3).fit(da.from_array(X_sparse.toarray(), chunks=(700, -1)))
    np.testing.assert_allclose(sp.cluster_centers_, de.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert sp.n_iter_ == de.n_iter_
    np.testing.assert_allclose(sp.inertia_, de.inertia_, rtol=1e-10)


@pytest.mark.slow
def test_kmeans_on_sparse_chunks_on_a_local_cluster_equals_sklearn(X_sparse: sparse.csr_matrix,
                                                                   process_client: object) -> None:
    init = _init(X_sparse)
    ref = SkKMeans(6, init=init, n_init=1).fit(X_sparse)
    # Elkan: its pass keeps state beside the chunks on the workers
    ours = KMeans(6, init=init, n_init=1, algorithm="elkan").fit(da.from_array(X_sparse, chunks=(600, -1), asarray=False))
    _assert_same(ours, ref)


# ------------------------------------------------------------------ MiniBatchKMeans


def test_minibatch_on_csr_equals_minibatch_on_the_same_dense_rows(X_sparse: sparse.csr_matrix) -> None:
    init = _init(X_sparse)
    kw = {"n_clusters": 6, "init": init, "n_init": 1, "batch_size": 256, "max_iter": 3, "random_state": 0}
    sp = MiniBatchKMeans(**kw).fit(da.from_array(X_sparse, chunks=(1000, -1), asarray=False))
    de = MiniBatchKMeans(**kw).fit(da.from_array(X_sparse.toarray(), chunks=(1000, -1)))
    np.testing.assert_allclose(sp.cluster_centers_, de.cluster_centers_, rtol=1e-9, atol=1e-12)
    assert sp.n_steps_ == de.n_steps_
    np.testing.assert_array_equal(_values(sp.labels_), _values(de.labels_))
    a, b = MiniBatchKMeans(**kw), MiniBatchKMeans(**kw)
    for start in range(0, 3000, 1000):
        a.partial_fit(X_sparse[start:start + 1000])
        b.partial_fit(X_sparse[start:start + 1000].toarray())
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ where sparse cannot work


@pytest.mark.parametrize("estimator", [GaussianMixture(2), NMF(2)])
def test_sparse_refused_with_sklearns_message(X_sparse: sparse.csr_matrix, estimator: object) -> None:
    with pytest.raises(TypeError, match="Sparse data was passed for .*, but dense data is required. "
                                        r"Use '\.toarray\(\)'") as info:
        estimator.fit(X_sparse)  # type: ignore[attr-defined]
    assert isinstance(info.value, DataTypeError)


def test_sparse_with_an_offset_is_refused(X_sparse: sparse.csr_matrix) -> None:
    from daskcluster import scaled

    with pytest.raises(InvalidParameterError, match="offset=0"):
        KMeans(3).fit(scaled(X_sparse, 2.0, 1.0))
    a = KMeans(3, init=X_sparse[:3].toarray() * 2, n_init=1).fit(scaled(X_sparse, 2.0))
    b = KMeans(3, init=X_sparse[:3].toarray() * 2, n_init=1).fit(X_sparse * 2)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-12)


# ------------------------------------------------------------------ a store of CSR row blocks


def test_sparse_store_streams_blocks_and_gives_the_in_memory_model(X_sparse: sparse.csr_matrix,
                                                                   tmp_path: object) -> None:
    path = os.path.join(tmp_path, "x.zarr")
    write_sparse_zarr(X_sparse, path, chunk_bytes=40_000)
    X = open_array(path)
    assert X.shape == X_sparse.shape and X.numblocks[0] > 4
    first, second = X.chunks[0][:2]
    assert isinstance(X[first:first + second].compute(), sparse.csr_matrix)
    assert (X.compute() != X_sparse).nnz == 0
    init = _init(X_sparse)
    ours = KMeans(6, init=init, n_init=1, cache=False).fit(path)
    _assert_same(ours, SkKMeans(6, init=init, n_init=1).fit(X_sparse))
    with pytest.raises(SourceError, match="already exists"):
        write_sparse_zarr(X_sparse, path)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temporary left
    import zarr

    group = zarr.open_group(path, mode="r+")
    del group["data_2"]
    with pytest.raises(StoreIntegrityError, match="row block 2"):
        open_array(path).compute()


def test_write_zarr_of_sparse_is_refused_with_the_way_out(X_sparse: sparse.csr_matrix, tmp_path: object) -> None:
    with pytest.raises(DataTypeError, match="write_sparse_zarr"):
        write_zarr(X_sparse, os.path.join(tmp_path, "d.zarr"))
