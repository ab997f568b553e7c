"""Model files of the two-phase estimators (AgglomerativeClustering, SpectralClustering): every
fitted attribute round-trips exactly, on both routes; the lazy labels of a fit on lazy input are
listed as not saved. (DBSCAN's model files are tested in test_dbscan.py.)"""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.datasets import make_blobs

from daskcluster import AgglomerativeClustering, SpectralClustering
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
    for name, value in fitted.items():
        if name == "labels_" and lazy:
            assert isinstance(value, da.Array) and not hasattr(loaded, name)
            continue
        restored = getattr(loaded, name)
        if isinstance(value, np.ndarray):
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
