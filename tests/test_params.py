"""Declared parameter constraints: scikit-learn's parameters with their meaning, scikit-learn's
messages for bad values, ``exc.param``, and every problem of a parameter set at once."""

from __future__ import annotations

import inspect
import re
import warnings
from numbers import Integral
from typing import Any

import dask.array as da
import numpy as np
import pytest
import sklearn.cluster as skc
import sklearn.decomposition as skd
import sklearn.mixture as skm

from daskcluster import (
    DBSCAN,
    NMF,
    AgglomerativeClustering,
    SpectralClustering,
    OPNMF,
    BayesianGaussianMixture,
    GaussianMixture,
    KMeans,
    MiniBatchKMeans,
)
from daskcluster.data import as_row_data
from daskcluster.errors import InvalidDataError, InvalidParameterError
from daskcluster.params import (
    Interval,
    StrOptions,
    check_parameters,
    parameter_errors,
    validate_params,
)

X = np.random.default_rng(0).normal(size=(60, 3))
X_POS = np.abs(X)

# (ours, scikit-learn's) with the same parameters
PAIRS = [
    (KMeans, skc.KMeans),
    (MiniBatchKMeans, skc.MiniBatchKMeans),
    (GaussianMixture, skm.GaussianMixture),
    (BayesianGaussianMixture, skm.BayesianGaussianMixture),
    (NMF, skd.NMF),
    (DBSCAN, skc.DBSCAN),
    (AgglomerativeClustering, skc.AgglomerativeClustering),
    (SpectralClustering, skc.SpectralClustering),
]

#: Defaults that differ from scikit-learn's on purpose (docs/sklearn-parity.md says why).
OTHER_DEFAULTS = {("KMeans", "init"): "k-means||", ("NMF", "solver"): "mu"}


def _set_order(message: str) -> str:
    """The message with the options inside ``{...}`` sorted: scikit-learn keeps them in a set,
    whose order changes from run to run."""
    return re.sub(r"\{([^{}]*)\}", lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}", message)


def _error_of(fit: Any) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit()
        except ValueError as exc:
            return str(exc)
    raise AssertionError("no error raised")


# --------------------------------------------------------------------------- every parameter


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=[p[0].__name__ for p in PAIRS])
def test_every_sklearn_parameter_with_its_default(ours: type, theirs: type) -> None:
    mine = inspect.signature(ours).parameters
    for name, param in inspect.signature(theirs).parameters.items():
        assert name in mine, f"{ours.__name__} lacks scikit-learn's parameter {name!r}"
        expected = OTHER_DEFAULTS.get((ours.__name__, name), param.default)
        assert mine[name].default == expected, (ours.__name__, name)


@pytest.mark.parametrize("cls", [KMeans, MiniBatchKMeans, GaussianMixture, BayesianGaussianMixture, NMF, OPNMF, DBSCAN,
                                 AgglomerativeClustering, SpectralClustering])
def test_constraints_declared_for_every_parameter(cls: type) -> None:
    est = cls()
    assert set(cls._parameter_constraints) == set(est.get_params())  # type: ignore[attr-defined]
    bad = type("BadType", (), {})()
    for name in est.get_params():
        errors = parameter_errors(cls(**{name: bad}))
        assert [e.param for e in errors] == [name]
        assert re.fullmatch(rf"The '{name}' parameter of {cls.__name__} must be .* Got .* instead\.", str(errors[0]))


# --------------------------------------------------------------------------- scikit-learn's messages

# (estimator, parameters): each parameter set is wrong for one reason, which scikit-learn also rejects
SAME_MESSAGE = [
    ("KMeans", {"n_clusters": 0}), ("KMeans", {"n_clusters": 2.5}), ("KMeans", {"tol": -1}),
    ("KMeans", {"max_iter": 0}), ("KMeans", {"n_init": 0}), ("KMeans", {"n_init": "many"}),
    ("KMeans", {"verbose": -1}), ("KMeans", {"random_state": -1}), ("KMeans", {"random_state": "seed"}),
    ("KMeans", {"copy_x": 3}), ("KMeans", {"algorithm": "full"}),
    ("KMeans", {"n_clusters": 3, "init": np.zeros((4, 3))}), ("KMeans", {"n_clusters": 3, "init": np.zeros((3, 2))}),
    ("MiniBatchKMeans", {"batch_size": 0}), ("MiniBatchKMeans", {"compute_labels": "yes"}),
    ("MiniBatchKMeans", {"max_no_improvement": -1}), ("MiniBatchKMeans", {"init_size": 0}),
    ("MiniBatchKMeans", {"reassignment_ratio": -0.5}), ("MiniBatchKMeans", {"tol": float("nan")}),
    ("GaussianMixture", {"n_components": 0}), ("GaussianMixture", {"covariance_type": "round"}),
    ("GaussianMixture", {"reg_covar": -1.0}), ("GaussianMixture", {"max_iter": -1}),
    ("GaussianMixture", {"init_params": "k-means||"}), ("GaussianMixture", {"warm_start": 2}),
    ("GaussianMixture", {"verbose_interval": 0}), ("GaussianMixture", {"weights_init": 0.5}),
    ("GaussianMixture", {"n_components": 2, "weights_init": [0.2, 0.2, 0.6]}),
    ("GaussianMixture", {"n_components": 2, "weights_init": [0.7, 0.7]}),
    ("GaussianMixture", {"n_components": 2, "weights_init": [1.5, -0.5]}),
    ("GaussianMixture", {"n_components": 2, "means_init": np.zeros((2, 2))}),
    ("GaussianMixture", {"n_components": 2, "precisions_init": np.ones((3, 3))}),
    ("GaussianMixture", {"n_components": 2, "precisions_init": -np.stack([np.eye(3)] * 2)}),
    ("GaussianMixture", {"n_components": 2, "covariance_type": "diag", "precisions_init": -np.ones((2, 3))}),
    ("GaussianMixture", {"n_components": 2, "covariance_type": "spherical", "precisions_init": np.ones(3)}),
    ("GaussianMixture", {"n_components": 61}),
    ("BayesianGaussianMixture", {"weight_concentration_prior_type": "dp"}),
    ("BayesianGaussianMixture", {"weight_concentration_prior": 0.0}),
    ("BayesianGaussianMixture", {"mean_precision_prior": -1}),
    ("BayesianGaussianMixture", {"degrees_of_freedom_prior": 1.5}),
    ("BayesianGaussianMixture", {"mean_prior": [0.0, 1.0]}),
    ("BayesianGaussianMixture", {"covariance_prior": np.eye(2)}),
    ("BayesianGaussianMixture", {"covariance_prior": -np.eye(3)}),
    ("BayesianGaussianMixture", {"covariance_type": "diag", "covariance_prior": [1.0, -1.0, 1.0]}),
    ("BayesianGaussianMixture", {"covariance_prior": -2.0}),
    ("NMF", {"n_components": 0}), ("NMF", {"init": "svd"}), ("NMF", {"tol": -1}), ("NMF", {"alpha_W": -1}),
    ("NMF", {"alpha_H": "other"}), ("NMF", {"l1_ratio": 2}), ("NMF", {"shuffle": "no"}),
    ("NMF", {"beta_loss": "other"}),
    ("DBSCAN", {"eps": 0}), ("DBSCAN", {"min_samples": 0}), ("DBSCAN", {"p": -1.0}),
    ("AgglomerativeClustering", {"linkage": "centroid"}), ("AgglomerativeClustering", {"compute_full_tree": 1}),
    ("AgglomerativeClustering", {"n_clusters": None}),
    ("AgglomerativeClustering", {"n_clusters": None, "distance_threshold": 1.0, "compute_full_tree": False}),
    ("AgglomerativeClustering", {"linkage": "ward", "metric": "l1"}),
    ("SpectralClustering", {"n_init": 0}), ("SpectralClustering", {"eigen_tol": "high"}),
    ("SpectralClustering", {"kernel_params": 1}),
]

OURS = {cls.__name__: (cls, sk) for cls, sk in PAIRS}


@pytest.mark.parametrize("name, params", SAME_MESSAGE, ids=[f"{n}-{sorted(p)}" for n, p in SAME_MESSAGE])
def test_sklearn_message_and_param(name: str, params: dict[str, Any]) -> None:
    ours, theirs = OURS[name]
    data = X_POS if name == "NMF" else X
    expected = _error_of(lambda: theirs(**params).fit(data))
    with pytest.raises(ValueError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours(**params).fit(data)
    assert _set_order(str(info.value)) == _set_order(expected)
    assert info.value.param in params  # type: ignore[attr-defined]


# Where our accepted values differ from scikit-learn's, the message keeps scikit-learn's form.
OWN_MESSAGE = [
    (KMeans(init="kmeans"), "init", ("The 'init' parameter of KMeans must be a str among {'k-means||', 'k-means++', "
                                    "'random', 'mini-batch'}, a callable or an array-like. Got 'kmeans' instead.")),
    (KMeans(cache="yes"), "cache", ("The 'cache' parameter of KMeans must be a str among {'auto'} or an instance of "
                                   "'bool' or an instance of 'numpy.bool'. Got 'yes' instead.")),
    (KMeans(oversampling_factor=0), "oversampling_factor",
     "The 'oversampling_factor' parameter of KMeans must be a float in the range (0.0, inf). Got 0 instead."),
    (MiniBatchKMeans(parallel_chunks=0), "parallel_chunks",
     "The 'parallel_chunks' parameter of MiniBatchKMeans must be an int in the range [1, inf). Got 0 instead."),
    (NMF(solver="cd"), "solver", "solver='cd' (coordinate descent) is not available out of core"),
    (NMF(beta_loss="kullback-leibler"), "beta_loss", "only the Frobenius loss ('frobenius' or 2) is implemented"),
    (OPNMF(n_components=range(3, 4)), "n_components", "a range of at least 2 increasing ranks"),
    (OPNMF(orientation="rows"), "orientation", ("The 'orientation' parameter of OPNMF must be a str among "
                                               "{'samples', 'features'}. Got 'rows' instead.")),
]


@pytest.mark.parametrize("est, param, message", OWN_MESSAGE)
def test_own_parameters(est: Any, param: str, message: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        est.fit(X_POS)
    assert message in str(info.value)
    assert info.value.param == param


# --------------------------------------------------------------------------- every problem at once


def test_parameter_errors_lists_every_problem() -> None:
    data = as_row_data(X, owner="test")
    est = KMeans(n_clusters=3, tol=-1, init=np.zeros((2, 3)), cache="maybe")
    errors = parameter_errors(est, data)
    assert [e.param for e in errors] == ["cache", "tol", "init"]
    assert all(isinstance(e, InvalidParameterError) for e in errors)
    # a check against the data is skipped when a parameter it reads is wrong
    assert [e.param for e in parameter_errors(KMeans(n_clusters=0, init=np.zeros((2, 3))), data)] == ["n_clusters"]
    # too few rows is a data error, with the parameter it concerns
    (few,) = parameter_errors(KMeans(n_clusters=61), data)
    assert isinstance(few, InvalidDataError) and few.param == "n_clusters"
    assert str(few) == "n_samples=60 should be >= n_clusters=61."
    assert parameter_errors(KMeans(3), data) == []
    with pytest.raises(InvalidParameterError, match="'cache'"):  # the first problem
        check_parameters(est)
    gm = GaussianMixture(n_components=2, covariance_type="spherical", means_init=np.zeros((2, 4)),
                         weights_init=[0.5, 0.6], verbose_interval=0)
    assert [e.param for e in parameter_errors(gm, data)] == ["verbose_interval", "weights_init", "means_init"]


def test_validate_params_for_functions() -> None:
    constraints = {"k": [Interval(Integral, 1, None, closed="left")], "how": [StrOptions(["a", "b"]), None]}
    assert validate_params(constraints, {"k": 2, "how": None}, "f") == []
    errors = validate_params(constraints, {"k": 0, "how": "c"}, "f", collect=True)
    assert [str(e) for e in errors] == [
        "The 'k' parameter of f must be an int in the range [1, inf). Got 0 instead.",
        "The 'how' parameter of f must be a str among {'a', 'b'} or None. Got 'c' instead.",
    ]
    with pytest.raises(InvalidParameterError) as info:
        validate_params(constraints, {"k": True}, "f")  # a bool is not a number of clusters
    assert info.value.param == "k"


# --------------------------------------------------------------------------- the parameters' meaning


def test_kmeans_parameters_mean_what_they_mean_in_sklearn() -> None:
    # from the same initial centers, Lloyd's iterations are the same arithmetic up to the order of
    # the sums over rows: centers agree to a few ulps times max_iter, far below 1e-10 on unit data
    init = X[:3].copy()
    for params in ({"max_iter": 2}, {"max_iter": 300, "tol": 1e-3}, {"algorithm": "elkan"}, {"copy_x": False}):
        ours = KMeans(3, init=init, n_init=1, **params).fit(X)
        ref = skc.KMeans(3, init=init, n_init=1, **params).fit(X)
        np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-10, atol=1e-12)
        assert ours.n_iter_ == ref.n_iter_
        np.testing.assert_array_equal(ours.labels_, ref.labels_)


def test_callable_init_and_n_init_auto() -> None:
    calls: list[tuple[int, ...]] = []

    def first_rows(data: np.ndarray, n_clusters: int, random_state: np.random.RandomState) -> np.ndarray:
        calls.append(data.shape)
        assert isinstance(random_state, np.random.RandomState)
        return data[:n_clusters].copy()

    ours = KMeans(3, init=first_rows, n_init="auto").fit(X)
    assert calls == [X.shape] * 10  # n_init='auto' runs 10 seedings for a callable, as scikit-learn 1.4+
    ref = skc.KMeans(3, init=first_rows, n_init=1).fit(X)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-10, atol=1e-12)
    calls.clear()
    MiniBatchKMeans(3, init=first_rows, init_size=30, n_init=1, random_state=0).fit(X)
    assert calls == [(30, 3)]  # the callable sees the init_size sample
    with pytest.warns(RuntimeWarning, match="performing only one init in KMeans instead of n_init=3"):
        KMeans(3, init=X[:3], n_init=3).fit(X)
    with pytest.raises(InvalidParameterError, match="callable init needs X in memory") as info:
        KMeans(3, init=first_rows).fit(da.from_array(X, chunks=20))
    assert info.value.param == "init"


def test_gaussian_mixture_initial_parameters_as_sklearn() -> None:
    # EM from the same initial parameters: the same updates, summed in another order (chunks); a
    # few EM steps keep the differences at a few ulps of the log-likelihood's terms
    k = 2
    params = {"weights_init": [0.4, 0.6], "means_init": X[:2], "precisions_init": np.stack([np.eye(3)] * k),
              "max_iter": 5, "tol": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = GaussianMixture(k, **params).fit(X)  # type: ignore[arg-type]
        ref = skm.GaussianMixture(k, **params).fit(X)
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.weights_, ref.weights_, rtol=1e-9)
    assert ours.n_iter_ == ref.n_iter_
