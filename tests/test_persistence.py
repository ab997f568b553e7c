"""Model files: round trips for every estimator, and clear errors for broken files."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from daskcluster import KMeans
from daskcluster import persistence as P
from daskcluster.errors import DaskClusterError, NotFittedError, SourceError, SourceNotFoundError


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    X, _ = make_blobs(1200, 5, centers=4, random_state=1)
    return X


@pytest.fixture(scope="module")
def fitted(X: np.ndarray) -> KMeans:
    return KMeans(4, random_state=0).fit(X)


def _rewrite(path: Path, **members: bytes) -> None:
    """Replace members of a model zip (as someone editing the file would)."""
    with zipfile.ZipFile(path) as zf:
        content = {n: zf.read(n) for n in zf.namelist()}
    content.update(members)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in content.items():
            zf.writestr(name, data)


def _doc(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("model.json"))


# ----------------------------------------------------------------------------- round trips


def test_kmeans_round_trip_identical_predictions(tmp_path: Path, X: np.ndarray, fitted: KMeans) -> None:
    path = P.save(fitted, tmp_path / "km.zip", metadata={"job": "t", "rows": 1200})
    loaded = P.load(path)
    assert type(loaded) is KMeans
    assert loaded.get_params() == fitted.get_params()
    np.testing.assert_array_equal(loaded.cluster_centers_, fitted.cluster_centers_)
    assert loaded.cluster_centers_.dtype == fitted.cluster_centers_.dtype
    assert loaded.inertia_ == fitted.inertia_ and type(loaded.n_iter_) is int
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    np.testing.assert_array_equal(loaded.labels_, fitted.labels_)  # eager labels are saved
    header = P.read_header(path)
    assert header["format"] == P.FORMAT and header["format_version"] == P.FORMAT_VERSION
    assert header["metadata"]["job"] == "t" and header["metadata"]["rows"] == 1200
    assert set(header["versions"]) >= {"daskcluster", "numpy", "scikit-learn", "python"}


def test_lazy_labels_are_not_saved_and_say_so(tmp_path: Path, X: np.ndarray) -> None:
    km = KMeans(3, random_state=0, init=X[:3]).fit(da.from_array(X, chunks=300))
    assert isinstance(km.labels_, da.Array)
    path = P.save(km, tmp_path / "lazy.zip")
    assert "labels_" in P.read_header(path)["not_saved"]
    loaded = P.load(path)
    assert not hasattr(loaded, "labels_")
    np.testing.assert_array_equal(loaded.init, X[:3])  # an array parameter survives
    np.testing.assert_array_equal(loaded.predict(X), km.predict(X))


def test_numpy_scalars_nan_tuples_and_dicts_keep_their_types(tmp_path: Path, fitted: KMeans) -> None:
    km = KMeans(4, random_state=0)
    for k, v in vars(fitted).items():
        setattr(km, k, v)
    km.extra_ = {"a": (1, 2.5, None), "b": [np.float32(1.5), float("nan"), float("-inf")], "c": np.dtype("float32")}
    km._state = np.int64(7)
    loaded = P.load(P.save(km, tmp_path / "types.zip"))
    a, b, c = loaded.extra_["a"], loaded.extra_["b"], loaded.extra_["c"]
    assert a == (1, 2.5, None) and isinstance(a, tuple)
    assert type(b[0]) is np.float32 and b[0] == 1.5 and np.isnan(b[1]) and b[2] == float("-inf")
    assert c == np.dtype("float32")
    assert type(loaded._state) is np.int64 and loaded._state == 7


def test_sklearn_estimator_round_trip(tmp_path: Path, X: np.ndarray) -> None:
    from sklearn.cluster import KMeans as SkKMeans

    sk = SkKMeans(3, n_init=1, random_state=0).fit(X)
    loaded = P.load(P.save(sk, tmp_path / "sk.zip"))
    np.testing.assert_array_equal(loaded.predict(X), sk.predict(X))


def test_gaussian_mixture_round_trip_without_special_code(tmp_path: Path, X: np.ndarray) -> None:
    from daskcluster.mixture import GaussianMixture

    gm = GaussianMixture(3, covariance_type="full", random_state=0).fit(X)
    loaded = P.load(P.save(gm, tmp_path / "gm.zip"))
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(gm, name))
    assert loaded.lower_bounds_ == gm.lower_bounds_
    np.testing.assert_array_equal(loaded.predict(X), gm.predict(X))
    np.testing.assert_allclose(loaded.score_samples(X), gm.score_samples(X), rtol=0, atol=0)


def test_minibatch_round_trip_keeps_the_partial_fit_state(tmp_path: Path, X: np.ndarray) -> None:
    from daskcluster.cluster._minibatch import MiniBatchKMeans

    mb = MiniBatchKMeans(4, batch_size=200, random_state=0).fit(X)
    loaded = P.load(P.save(mb, tmp_path / "mb.zip"))
    np.testing.assert_array_equal(loaded.predict(X), mb.predict(X))
    # the private counts partial_fit continues from are kept, so both continue alike
    mb.partial_fit(X[:200])
    loaded.partial_fit(X[:200])
    np.testing.assert_array_equal(loaded.cluster_centers_, mb.cluster_centers_)


def test_save_is_atomic_and_leaves_nothing_on_failure(tmp_path: Path, fitted: KMeans,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = P.save(fitted, tmp_path / "m.zip")
    before = path.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", boom)
    with pytest.raises(OSError, match="disk full"):
        P.save(fitted, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zip"]  # no temporary left


def test_save_refuses_what_needs_pickle(tmp_path: Path, fitted: KMeans) -> None:
    km = KMeans(4, random_state=np.random.RandomState(0))
    for k, v in vars(fitted).items():
        if k.endswith("_"):
            setattr(km, k, v)
    with pytest.raises(P.UnsupportedValueError, match="parameter 'random_state'.*RandomState"):
        P.save(km, tmp_path / "x.zip")
    km = KMeans(4)
    km.cluster_centers_ = np.array([object()], dtype=object)
    with pytest.raises(P.UnsupportedValueError, match="'cluster_centers_'.*dtype object"):
        P.save(km, tmp_path / "x.zip")
    with pytest.raises(NotFittedError, match="not fitted"):
        P.save(KMeans(3), tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()
    with pytest.raises(SourceError, match="already exists"):
        P.save(fitted, P.save(fitted, tmp_path / "y.zip"), overwrite=False)


# ----------------------------------------------------------------------------- broken files


def test_truncated_file(tmp_path: Path, fitted: KMeans) -> None:
    path = P.save(fitted, tmp_path / "m.zip")
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 10):
        path.write_bytes(data[:cut])
        with pytest.raises(P.ModelFileError, match="truncated or damaged"):
            P.load(path)


def test_tampered_parameters_or_arrays(tmp_path: Path, fitted: KMeans) -> None:
    path = P.save(fitted, tmp_path / "m.zip")
    doc = _doc(path)
    doc["params"]["n_clusters"] = 5
    _rewrite(path, **{"model.json": json.dumps(doc).encode()})
    with pytest.raises(P.ModelIntegrityError, match="checksum of model.json does not match"):
        P.load(path)

    path = P.save(fitted, tmp_path / "m.zip")
    with zipfile.ZipFile(path) as zf:
        arrays = dict(np.load(io.BytesIO(zf.read("arrays.npz")), allow_pickle=False))
    arrays["a0"] = arrays["a0"] + 1.0
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    _rewrite(path, **{"arrays.npz": buf.getvalue()})
    with pytest.raises(P.ModelIntegrityError, match="checksum of arrays.npz does not match"):
        P.load(path)


def test_newer_format_version(tmp_path: Path, fitted: KMeans) -> None:
    path = P.save(fitted, tmp_path / "m.zip")
    doc = _doc(path)
    doc["format_version"] = P.FORMAT_VERSION + 1
    doc["checksums"]["model.json"] = P._sha256(P._canonical(doc))  # a consistent file from the future
    _rewrite(path, **{"model.json": json.dumps(doc).encode()})
    with pytest.raises(P.ModelVersionError, match=rf"model format {P.FORMAT_VERSION + 1} .*Upgrade daskcluster"):
        P.load(path)


def test_not_a_model(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(P.ModelFileError, match="not a daskcluster model file"):
        P.load(text)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("readme.md", "x")
    with pytest.raises(P.ModelFileError, match=r"not a daskcluster model file \(no model.json"):
        P.load(other)
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("model.json", json.dumps({"format": "something-else"}))
    with pytest.raises(P.ModelFileError, match="not a daskcluster model file"):
        P.load(other)
    with pytest.raises(P.ModelFileError, match="is a directory"):
        P.load(tmp_path)
    with pytest.raises(SourceNotFoundError, match="No model file"):
        P.load(tmp_path / "missing.zip")


def test_only_estimators_of_known_packages_are_loaded(tmp_path: Path, fitted: KMeans) -> None:
    path = P.save(fitted, tmp_path / "m.zip")
    doc = _doc(path)
    doc["class"] = {"module": "os", "name": "system"}
    doc["checksums"]["model.json"] = P._sha256(P._canonical(doc))
    _rewrite(path, **{"model.json": json.dumps(doc).encode()})
    with pytest.raises(P.ModelFileError, match=r"names the class 'os'.'system', which is not one load\(\) creates"):
        P.load(path)


def test_errors_are_daskcluster_and_os_errors() -> None:
    for cls in (P.ModelFileError, P.ModelIntegrityError, P.ModelVersionError):
        assert issubclass(cls, DaskClusterError) and issubclass(cls, OSError)


def test_no_pickle_in_the_module() -> None:
    source = Path(P.__file__).read_text()
    assert "import pickle" not in source and "allow_pickle=True" not in source
    assert os.path.basename(P.__file__) == "persistence.py"
