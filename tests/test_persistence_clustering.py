"""Model files of the two-phase estimators (AgglomerativeClustering, SpectralClustering): every
fitted attribute round-trips exactly, on both routes, a sparse affinity matrix included; the lazy
labels of a fit on lazy input are listed as not saved. (DBSCAN's model files are tested in
test_dbscan.py.)"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.datasets import make_blobs

from daskcluster import AgglomerativeClustering, SpectralClustering
from daskcluster import persistence as P
from daskcluster.persistence import load, read_header, save


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    X, _ = make_blobs(600, centers=4, cluster_std=0.6, random_state=0)
    return X


def assert_round_trip(model: BaseEstimator, X: np.ndarray, lazy: bool, path: Path) -> None:
    model.fit(da.from_array(X, chunks=(200, X.shape[1])) if lazy else X)
    save(model, path)
    loaded = load(path)
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    fitted = {k: v for k, v in vars(model).items() if k.endswith("_") and not k.startswith("_")}
    assert not_saved(path) == ({"labels_"} if lazy else set())
    if lazy:  # these estimators have no predict: the file says how labels_ come back
        assert read_header(path)["not_saved"]["labels_"].endswith("recompute it with a new fit on the training data")
    for name, value in fitted.items():
        if name == "labels_" and lazy:
            assert isinstance(value, da.Array) and not hasattr(loaded, name)
            continue
        restored = getattr(loaded, name)
        if sparse.issparse(value):
            assert type(restored) is type(value) and restored.format == value.format
            for part in ("data", "indices", "indptr"):
                assert getattr(restored, part).dtype == getattr(value, part).dtype
                np.testing.assert_array_equal(getattr(restored, part), getattr(value, part), err_msg=name)
        elif isinstance(value, np.ndarray):
            assert restored.dtype == value.dtype
            np.testing.assert_array_equal(restored, value, err_msg=name)  # bits as written: exact
        else:
            assert restored == value and type(restored) is type(value), name


def not_saved(path: Path) -> set[str]:
    return set(read_header(path)["not_saved"])


@pytest.mark.parametrize("lazy", [False, True], ids=["numpy", "dask"])
@pytest.mark.parametrize("max_samples", [5000, 300], ids=["exact", "two-phase"])
def test_agglomerative_round_trip(blobs: np.ndarray, max_samples: int, lazy: bool, tmp_path: Path) -> None:
    model = AgglomerativeClustering(n_clusters=4, compute_distances=True, max_samples=max_samples,
                                    n_micro_clusters=40, random_state=0)
    assert_round_trip(model, blobs, lazy, tmp_path / "agglomerative.zip")
    assert model.fit_path_ == ("exact" if max_samples > len(blobs) else "two-phase")


@pytest.mark.parametrize("lazy", [False, True], ids=["numpy", "dask"])
@pytest.mark.parametrize("max_samples", [5000, 300], ids=["exact", "two-phase"])
def test_spectral_round_trip(blobs: np.ndarray, max_samples: int, lazy: bool, tmp_path: Path) -> None:
    model = SpectralClustering(n_clusters=4, gamma=0.5, max_samples=max_samples, n_micro_clusters=40, random_state=0)
    assert_round_trip(model, blobs, lazy, tmp_path / "spectral.zip")
    assert model.fit_path_ == ("exact" if max_samples > len(blobs) else "two-phase")


@pytest.mark.filterwarnings("ignore:Graph is not fully connected")  # four separate blobs
def test_spectral_nearest_neighbors_sparse_affinity_round_trip(blobs: np.ndarray, tmp_path: Path) -> None:
    model = SpectralClustering(n_clusters=4, affinity="nearest_neighbors", random_state=0)
    assert_round_trip(model, blobs, False, tmp_path / "spectral.zip")
    assert sparse.issparse(model.affinity_matrix_) and model.affinity_matrix_.nnz > len(blobs)
    as_array = sparse.csc_array(model.affinity_matrix_)
    model.affinity_matrix_ = as_array
    restored = load(save(model, tmp_path / "array.zip")).affinity_matrix_
    assert isinstance(restored, sparse.csc_array) and (restored != as_array).nnz == 0
    model.affinity_matrix_ = as_array.tocoo()
    with pytest.raises(P.UnsupportedValueError, match=r"'affinity_matrix_' is a SciPy sparse coo .* \.tocsr\(\)"):
        save(model, tmp_path / "coo.zip")


@pytest.mark.filterwarnings("ignore:Graph is not fully connected")  # four separate blobs
def test_crafted_sparse_indices_are_refused(blobs: np.ndarray, tmp_path: Path) -> None:
    """Indices beyond the shape (consistent checksums: anyone can recompute them) are refused
    before the matrix is used."""
    path = save(SpectralClustering(n_clusters=4, affinity="nearest_neighbors", random_state=0).fit(blobs),
                tmp_path / "spectral.zip")
    with zipfile.ZipFile(path) as zf:
        doc = json.loads(zf.read("model.json"))
        with np.load(io.BytesIO(zf.read("arrays.npz"))) as f:
            arrays = {k: f[k] for k in f.files}
    name = doc["attributes"]["affinity_matrix_"]["$sparse"]["indices"]["$array"]
    arrays[name] = arrays[name].copy()
    arrays[name][3] = 10**6
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    doc["checksums"] = {"arrays.npz": P._sha256(buf.getvalue())}
    doc["checksums"]["model.json"] = P._sha256(P._canonical(doc))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.json", json.dumps(doc))
        zf.writestr("arrays.npz", buf.getvalue())
    with pytest.raises(P.ModelFileError, match=r"affinity_matrix_.*sparse matrix .* is invalid"):
        load(path)
