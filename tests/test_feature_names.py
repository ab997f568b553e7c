"""Feature names in, named outputs out: pandas and Dask DataFrames, xarray, ``set_output`` and
``ColumnTransformer`` pipelines, as with scikit-learn's estimators."""

from __future__ import annotations

import warnings
from typing import Any

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import sklearn
import sklearn.cluster as skc
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from daskcluster import (
    DBSCAN,
    NMF,
    OPNMF,
    AgglomerativeClustering,
    BayesianGaussianMixture,
    GaussianMixture,
    KMeans,
    MiniBatchKMeans,
    SpectralClustering,
)
from daskcluster.errors import DataTypeError, InvalidDataError, InvalidParameterError

RNG = np.random.default_rng(0)
FRAME = pd.DataFrame(np.abs(RNG.normal(size=(90, 3))) + np.repeat(np.eye(3) * 4, 30, axis=0),
                     columns=["alpha", "beta", "gamma"], index=pd.RangeIndex(100, 190, name="row"))

TRANSFORMERS = [
    (KMeans(3, random_state=0), "kmeans", 3),
    (MiniBatchKMeans(3, random_state=0, batch_size=30), "minibatchkmeans", 3),
    (NMF(2, init="random", random_state=0, max_iter=50), "nmf", 2),
    (OPNMF(2, orientation="features", max_iter=100), "opnmf", 2),
]


def _quiet(fn: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


@pytest.mark.parametrize("est", [t[0] for t in TRANSFORMERS] + [GaussianMixture(2, random_state=0),
                                                             BayesianGaussianMixture(n_components=2, random_state=0),
                                                             DBSCAN(), AgglomerativeClustering(3),
                                                             SpectralClustering(3, random_state=0)],
                         ids=lambda e: type(e).__name__)
def test_pandas_in_gives_feature_names(est: Any) -> None:
    _quiet(lambda: est.fit(FRAME))
    np.testing.assert_array_equal(est.feature_names_in_, np.array(["alpha", "beta", "gamma"], dtype=object))
    assert est.n_features_in_ == 3
    _quiet(lambda: est.fit(FRAME.to_numpy()))  # a fit without names forgets them, as scikit-learn
    assert not hasattr(est, "feature_names_in_")


@pytest.mark.parametrize("est, prefix, k", TRANSFORMERS, ids=lambda e: type(e).__name__)
def test_set_output_pandas(est: Any, prefix: str, k: int) -> None:
    est = sklearn.clone(est).set_output(transform="pandas")
    out = _quiet(lambda: est.fit_transform(FRAME))
    names = [f"{prefix}{i}" for i in range(k)]
    assert list(est.get_feature_names_out()) == names
    assert isinstance(out, pd.DataFrame) and list(out.columns) == names
    pd.testing.assert_index_equal(out.index, FRAME.index)
    again = est.transform(FRAME)
    assert isinstance(again, pd.DataFrame) and list(again.columns) == names
    np.testing.assert_allclose(again.to_numpy(), est.set_output(transform="default").transform(FRAME.to_numpy()))


def test_names_out_as_sklearn() -> None:
    ours = KMeans(3, random_state=0).fit(FRAME)
    ref = skc.KMeans(3, random_state=0, n_init=1).fit(FRAME)
    np.testing.assert_array_equal(ours.get_feature_names_out(), ref.get_feature_names_out())
    np.testing.assert_array_equal(ours.get_feature_names_out(["alpha", "beta", "gamma"]), ref.get_feature_names_out())
    with pytest.raises(ValueError, match="input_features is not equal to feature_names_in_"):
        ours.get_feature_names_out(["a", "b", "c"])


def test_global_transform_output() -> None:
    est = KMeans(3, random_state=0).fit(FRAME)
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(est.transform(FRAME), pd.DataFrame)
    assert isinstance(est.transform(FRAME), np.ndarray)
    with pytest.raises(InvalidParameterError, match="output config must be in"):
        est.set_output(transform="arrow")


def test_predict_checks_names_as_sklearn() -> None:
    ours = KMeans(3, random_state=0).fit(FRAME)
    ref = skc.KMeans(3, random_state=0, n_init=1).fit(FRAME)
    renamed = FRAME.rename(columns={"beta": "delta"})
    reordered = FRAME[["beta", "alpha", "gamma"]]
    for bad in (renamed, reordered):
        with pytest.raises(ValueError) as expected:
            ref.predict(bad)
        with pytest.raises(InvalidDataError) as got:
            ours.predict(bad)
        assert str(got.value) == str(expected.value)
    with pytest.warns(UserWarning, match="X does not have valid feature names, but KMeans was fitted with feature"):
        ours.predict(FRAME.to_numpy())
    plain = KMeans(3, random_state=0).fit(FRAME.to_numpy())
    with pytest.warns(UserWarning, match="X has feature names, but KMeans was fitted without feature names"):
        plain.predict(FRAME)


def test_dask_dataframe_stays_lazy() -> None:
    ddf = dd.from_pandas(FRAME, npartitions=3)
    est = KMeans(3, random_state=0).set_output(transform="pandas").fit(ddf)
    np.testing.assert_array_equal(est.feature_names_in_, FRAME.columns.to_numpy(dtype=object))
    assert isinstance(est.labels_, da.Array)
    out = est.transform(ddf)
    assert isinstance(out, dd.DataFrame) and list(out.columns) == ["kmeans0", "kmeans1", "kmeans2"]
    computed = out.compute()
    pd.testing.assert_index_equal(computed.index, FRAME.index)
    np.testing.assert_allclose(computed.to_numpy(), est.set_output(transform="default").transform(FRAME.to_numpy()))
    np.testing.assert_array_equal(est.labels_.compute(), est.predict(FRAME))


def test_xarray_names_from_the_feature_coordinate() -> None:
    xr = pytest.importorskip("xarray", reason="xarray is an optional extra")
    arr = xr.DataArray(da.from_array(FRAME.to_numpy(), chunks=30), dims=("sample", "band"),
                       coords={"band": ["alpha", "beta", "gamma"]})
    est = KMeans(3, random_state=0).fit(arr)
    np.testing.assert_array_equal(est.feature_names_in_, FRAME.columns.to_numpy(dtype=object))
    assert isinstance(est.labels_, da.Array)  # the Dask array under the DataArray is not pulled in


def test_column_transformer_pipeline() -> None:
    ct = ColumnTransformer([("km", make_pipeline(StandardScaler(), KMeans(3, random_state=0)), ["alpha", "beta"]),
                            ("keep", "passthrough", ["gamma"])]).set_output(transform="pandas")
    out = ct.fit_transform(FRAME)
    assert list(out.columns) == ["km__kmeans0", "km__kmeans1", "km__kmeans2", "keep__gamma"]
    pd.testing.assert_index_equal(out.index, FRAME.index)
    assert list(ct.get_feature_names_out()) == list(out.columns)
    np.testing.assert_array_equal(ct.named_transformers_["km"][-1].feature_names_in_, np.array(["alpha", "beta"],
                                                                                            dtype=object))


def test_bad_frames() -> None:
    mixed = FRAME.set_axis(["alpha", 1, "gamma"], axis=1)
    with pytest.raises(DataTypeError, match="Feature names are only supported if all input features have string"):
        KMeans(3).fit(mixed)
    text = FRAME.assign(beta=["x"] * len(FRAME))
    with pytest.raises(DataTypeError, match=r"columns that are not numbers: 'beta'"):
        KMeans(3).fit(text)
    numbered = FRAME.set_axis([0, 1, 2], axis=1)  # names that are not strings are not kept, as scikit-learn
    assert not hasattr(KMeans(3, random_state=0).fit(numbered), "feature_names_in_")


def test_model_file_keeps_names_and_output(tmp_path: Any) -> None:
    from daskcluster.persistence import load, save

    est = KMeans(3, random_state=0).set_output(transform="pandas").fit(FRAME)
    save(est, tmp_path / "model.zip")
    back = load(tmp_path / "model.zip")
    np.testing.assert_array_equal(back.feature_names_in_, est.feature_names_in_)
    assert back.feature_names_in_.dtype == object
    pd.testing.assert_frame_equal(back.transform(FRAME), est.transform(FRAME))
    with pytest.raises(InvalidDataError, match="The feature names should match"):
        back.predict(FRAME[["beta", "alpha", "gamma"]])
