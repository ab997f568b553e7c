"""BayesianGaussianMixture against scikit-learn: every iteration from the same initial
responsibilities, predictions, sampling, passes, bad input and scikit-learn's API checks."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as SkBayesianGaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

from daskcluster.engine import count_passes
from daskcluster.errors import (
    InvalidDataError,
    InvalidParameterError,
    NonFiniteDataError,
    NotFittedError,
)
from daskcluster.mixture import BayesianGaussianMixture, CollapsedComponentError

TYPES = ("full", "tied", "diag", "spherical")
ROOT = Path(__file__).resolve().parents[1]
PRIORS = ("dirichlet_process", "dirichlet_distribution")


@pytest.fixture(autouse=True)
def quiet() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def blobs(n: int = 500, seed: int = 0, offset: float = 0.0) -> np.ndarray:
    """Three anisotropic, overlapping Gaussian blobs in 3-D."""
    rng = np.random.default_rng(seed)
    sizes = (n // 2 - n // 5, n // 5 + n // 10, n - n // 2 - n // 10)
    parts = [
        rng.normal(0, 1, (sizes[0], 3)) @ np.array([[1.0, 0.4, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.5]]),
        rng.normal(0, 0.6, (sizes[1], 3)) + [3.0, 2.5, 0.0],
        rng.normal(0, 1.5, (sizes[2], 3)) + [-3.0, 0.5, 2.0],
    ]
    return np.concatenate(parts) + offset


LAYOUTS = {
    "numpy": lambda X: X,
    "one-chunk": lambda X: da.from_array(X, chunks=(-1, -1)),
    "many-chunks": lambda X: da.from_array(X, chunks=(37, -1)),
    "uneven-zero": lambda X: da.from_array(X, chunks=((100, 0, 250, 150), (X.shape[1],))),
}

ATTRIBUTES = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_", "mean_precision_",
              "degrees_of_freedom_", "mean_prior_", "covariance_prior_", "degrees_of_freedom_prior_",
              "mean_precision_prior_", "weight_concentration_prior_")


def assert_same_model(ours: BayesianGaussianMixture, sk: SkBayesianGaussianMixture, rtol: float = 1e-6) -> None:
    # scikit-learn's 'tied' lower bounds are arrays of shape (1,)
    assert_allclose(ours.lower_bounds_, np.ravel(sk.lower_bounds_), rtol=rtol)
    assert ours.lower_bound_ == pytest.approx(float(np.ravel(sk.lower_bound_)[0]), rel=rtol)
    assert ours.n_iter_ == sk.n_iter_
    assert ours.converged_ == sk.converged_
    for attr in ATTRIBUTES:
        assert_allclose(getattr(ours, attr), getattr(sk, attr), rtol=rtol, atol=1e-9, err_msg=attr)
    if sk.weight_concentration_prior_type == "dirichlet_process":
        for a, b in zip(ours.weight_concentration_, sk.weight_concentration_):
            assert_allclose(a, b, rtol=rtol)
    else:
        assert_allclose(ours.weight_concentration_, sk.weight_concentration_, rtol=rtol)


# --------------------------------------------------------------------------- iterations equal scikit-learn's


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("prior_type", PRIORS)
@pytest.mark.parametrize("covariance_type", TYPES)
def test_iterations_match_sklearn(covariance_type: str, prior_type: str, layout: str) -> None:
    """'random_from_data' draws the rows scikit-learn draws, so both start from the same
    responsibilities; the default priors come from the data (one pass)."""
    X = blobs()
    common = {"n_components": 5, "covariance_type": covariance_type, "weight_concentration_prior_type": prior_type,
              "init_params": "random_from_data", "random_state": 3}
    for kwargs in ({"max_iter": 6, "tol": 0.0}, {"max_iter": 100, "tol": 1e-3}):
        sk = SkBayesianGaussianMixture(**common, **kwargs).fit(X)
        ours = BayesianGaussianMixture(**common, **kwargs).fit(LAYOUTS[layout](X))
        assert_same_model(ours, sk)
    assert len(ours.lower_bounds_) == ours.n_iter_  # converged or not, as scikit-learn


class _SkFromResponsibilities(SkBayesianGaussianMixture):  # type: ignore[misc]
    """scikit-learn's estimator started from given responsibilities (a test helper)."""

    resp: np.ndarray

    def _initialize_parameters(self, X: np.ndarray, random_state: Any, xp: Any = None) -> None:
        self._initialize(X, self.resp)


@pytest.mark.parametrize("prior_type", PRIORS)
@pytest.mark.parametrize("covariance_type", TYPES)
def test_kmeans_init_and_given_priors_match_sklearn(covariance_type: str, prior_type: str) -> None:
    """'kmeans' starts from one-hot responsibilities at the labels of our distributed KMeans;
    scikit-learn started from the same responsibilities gives the same iterations, with
    priors given (their checks and meanings) and from the data (the initialization's pass)."""
    from daskcluster import KMeans

    X = blobs(seed=1)
    Xd = da.from_array(X, chunks=(90, -1))
    km = KMeans(4, n_init=1, random_state=np.random.RandomState(7)).fit(Xd)
    resp = np.eye(4)[km.labels_.compute()]
    d = X.shape[1]
    given = {"full": np.eye(d) * 0.5, "tied": np.eye(d) * 2.0, "diag": np.full(d, 0.7), "spherical": 0.9}
    for priors in ({}, {"weight_concentration_prior": 0.05, "mean_precision_prior": 0.3,
                        "mean_prior": np.array([0.5, -1.0, 2.0]), "degrees_of_freedom_prior": 4.5,
                        "covariance_prior": given[covariance_type]}):
        kwargs = {"n_components": 4, "covariance_type": covariance_type, "weight_concentration_prior_type": prior_type,
                  "max_iter": 8, "tol": 0.0, **priors}
        sk = _SkFromResponsibilities(**kwargs)
        sk.resp = resp
        sk.fit(X)
        ours = BayesianGaussianMixture(init_params="kmeans", random_state=7, **kwargs).fit(Xd)
        assert_same_model(ours, sk)


def test_exact_far_from_the_origin() -> None:
    """Data offset by 1e6: the centred statistics and the data's covariance (the default
    ``covariance_prior``) keep their digits; the fit equals scikit-learn's on the data without
    the offset, moved. ('full' only: scikit-learn's other types, from one-hot rows, depend on the
    offset through its ``nk + 10 eps`` guard.)"""
    X = blobs()
    kwargs = {"n_components": 3, "covariance_type": "full", "init_params": "random_from_data", "random_state": 0,
              "max_iter": 5, "tol": 0.0}
    sk = SkBayesianGaussianMixture(**kwargs).fit(X)
    ours = BayesianGaussianMixture(**kwargs).fit(da.from_array(X + 1e6, chunks=(64, -1)))
    assert_allclose(ours.covariance_prior_, np.cov(X.T), rtol=1e-9)
    assert_allclose(ours.means_ - 1e6, sk.means_, atol=1e-6)
    assert_allclose(ours.covariances_, sk.covariances_, rtol=1e-6)
    assert_allclose(ours.lower_bounds_, np.ravel(sk.lower_bounds_), rtol=1e-7)


@pytest.mark.slow
def test_process_cluster_matches_sklearn(process_client: Any) -> None:
    X = blobs(600, seed=8)
    Xd = da.from_array(X, chunks=((150, 0, 200, 250), (3,)))
    for covariance_type, prior_type in (("full", "dirichlet_process"), ("diag", "dirichlet_distribution")):
        kwargs = {"n_components": 4, "covariance_type": covariance_type, "weight_concentration_prior_type": prior_type,
                  "init_params": "random_from_data", "random_state": 2, "max_iter": 6, "tol": 0.0}
        ours = BayesianGaussianMixture(**kwargs).fit(Xd)
        labels = ours.predict(Xd).compute()
        sk = SkBayesianGaussianMixture(**kwargs).fit(X)
        assert_same_model(ours, sk)
        np.testing.assert_array_equal(labels, sk.predict(X))
    random_init = BayesianGaussianMixture(n_components=3, init_params="random", random_state=4, max_iter=5).fit(Xd)
    with dask.config.set(scheduler="synchronous"):
        local = BayesianGaussianMixture(n_components=3, init_params="random", random_state=4, max_iter=5).fit(Xd)
    assert_allclose(random_init.means_, local.means_, rtol=1e-12)


# --------------------------------------------------------------------------- passes and priors


def test_one_pass_per_iteration() -> None:
    X = blobs()
    Xd = da.from_array(X, chunks=(100, -1))
    given = {"mean_prior": X.mean(axis=0), "covariance_prior": np.cov(X.T)}
    with count_passes() as counter:
        gm = BayesianGaussianMixture(n_components=3, init_params="random_from_data", random_state=0, max_iter=7,
                                     tol=0, **given).fit(Xd)
    assert gm.n_iter_ == 7 and counter.passes == 7
    with count_passes() as counter:  # default priors: one pass for the data's mean and covariance
        BayesianGaussianMixture(n_components=3, init_params="random_from_data", random_state=0, max_iter=7,
                                tol=0).fit(Xd)
    assert counter.passes == 1 + 7
    with count_passes() as counter:  # the initialization's pass gives them
        gm = BayesianGaussianMixture(n_components=3, init_params="random", random_state=0, max_iter=4,
                                     tol=0).fit(Xd)
    assert counter.passes == 1 + 4
    assert_allclose(gm.mean_prior_, X.mean(axis=0), rtol=1e-12)
    assert_allclose(gm.covariance_prior_, np.cov(X.T), rtol=1e-10)
    with count_passes() as counter:
        proba = gm.predict_proba(Xd)
    assert counter.passes == 0 and isinstance(proba, da.Array)


def test_small_concentration_keeps_the_components_it_needs() -> None:
    """Ten components on three blobs: the posterior empties the unneeded ones."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.5, (300, 2)) for c in ([0, 0], [6, 0], [0, 6])])
    gm = BayesianGaussianMixture(n_components=10, weight_concentration_prior=0.01, max_iter=500,
                                 random_state=0).fit(da.from_array(X, chunks=(200, -1)))
    assert (gm.weights_ > 0.05).sum() == 3
    assert_allclose(np.sort(gm.weights_)[-3:], [1 / 3] * 3, atol=0.01)


def test_warm_start_and_max_iter_zero() -> None:
    X = blobs()
    kwargs = {"n_components": 3, "init_params": "random_from_data", "random_state": 1, "tol": 0.0}
    once = BayesianGaussianMixture(max_iter=6, **kwargs).fit(X)
    warm = BayesianGaussianMixture(max_iter=3, warm_start=True, **kwargs)
    warm.fit(X)
    warm.fit(X)
    assert_allclose(warm.means_, once.means_, rtol=1e-12)
    assert_allclose(warm.lower_bounds_, once.lower_bounds_[3:], rtol=1e-12)
    zero = BayesianGaussianMixture(max_iter=0, **kwargs).fit(X)
    sk = SkBayesianGaussianMixture(max_iter=0, **kwargs).fit(X)
    assert zero.n_iter_ == 0 and not zero.converged_ and zero.lower_bound_ == -np.inf
    assert_allclose(zero.means_, sk.means_, rtol=1e-12)
    assert_allclose(zero.covariances_, sk.covariances_, rtol=1e-12)


# --------------------------------------------------------------------------- predictions and sampling


def _sklearn_with(ours: BayesianGaussianMixture) -> SkBayesianGaussianMixture:
    sk = SkBayesianGaussianMixture(n_components=ours.n_components, covariance_type=ours.covariance_type,
                                   weight_concentration_prior_type=ours.weight_concentration_prior_type,
                                   random_state=ours.random_state)
    for attr in (*ATTRIBUTES, "weight_concentration_", "n_features_in_", "converged_", "n_iter_", "lower_bound_"):
        setattr(sk, attr, getattr(ours, attr))
    return sk


@pytest.mark.parametrize("prior_type", PRIORS)
@pytest.mark.parametrize("covariance_type", TYPES)
def test_predictions_match_sklearn(covariance_type: str, prior_type: str) -> None:
    X = blobs(seed=4)
    Xd = da.from_array(X, chunks=((200, 0, 300), (3,)))
    gm = BayesianGaussianMixture(n_components=4, covariance_type=covariance_type,
                                 weight_concentration_prior_type=prior_type, random_state=0).fit(Xd)
    sk = _sklearn_with(gm)
    lazy = gm.score_samples(Xd), gm.predict_proba(Xd), gm.predict(Xd)
    assert all(isinstance(a, da.Array) for a in lazy)
    proba = gm.predict_proba(X)
    assert isinstance(proba, np.ndarray) and proba.shape == (500, 4)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert_allclose(proba, sk.predict_proba(X), atol=1e-10)
    assert_allclose(lazy[0].compute(), sk.score_samples(X), rtol=1e-10)
    np.testing.assert_array_equal(lazy[2].compute(), sk.predict(X))
    np.testing.assert_array_equal(gm.fit_predict(Xd).compute(), gm.predict(X))
    assert gm.score(Xd) == pytest.approx(sk.score(X), rel=1e-10)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_sample_shapes_frequencies_and_sklearn_draws(covariance_type: str) -> None:
    gm = BayesianGaussianMixture(n_components=3, covariance_type=covariance_type, random_state=1).fit(blobs())
    X, y = gm.sample(20000)
    assert X.shape == (20000, 3) and y.shape == (20000,) and y.dtype == np.int64
    assert_allclose(np.bincount(y, minlength=3) / 20000, gm.weights_, atol=0.015)
    for k in np.flatnonzero(gm.weights_ > 0.1):
        assert_allclose(X[y == k].mean(axis=0), gm.means_[k], atol=0.15)
    Xs, ys = _sklearn_with(gm).sample(500)
    Xo, yo = gm.sample(500)
    assert_allclose(Xo, Xs)
    np.testing.assert_array_equal(yo, ys)


def test_save_and_load(tmp_path: Any) -> None:
    from daskcluster import persistence

    X = blobs()
    gm = BayesianGaussianMixture(n_components=3, random_state=0).fit(X)
    loaded = persistence.load(persistence.save(gm, tmp_path / "bgm.zip"))
    assert_allclose(loaded.score_samples(X), gm.score_samples(X), rtol=0, atol=0)
    for a, b in zip(loaded.weight_concentration_, gm.weight_concentration_):
        np.testing.assert_array_equal(a, b)


def test_top_level_name() -> None:
    import daskcluster

    assert daskcluster.BayesianGaussianMixture is BayesianGaussianMixture


@parametrize_with_checks([BayesianGaussianMixture(n_components=2, max_iter=20, random_state=0)])
def test_sklearn_compatible(estimator: object, check: object) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)  # type: ignore[operator]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "params, match",
    [
        ({"covariance_type": "bogus"}, (r"'covariance_type' parameter of BayesianGaussianMixture must be a str among .*"
                                       r"Got 'bogus' instead")),
        ({"n_components": 0}, r"'n_components' parameter .* range \[1, inf\)\. Got 0 instead"),
        ({"tol": -1.0}, r"'tol' parameter .* Got -1\.0 instead"),
        ({"init_params": "k-means||"}, r"'init_params' .*'kmeans'.* Got 'k-means\|\|' instead"),
        ({"weight_concentration_prior_type": "dp"},
         r"'weight_concentration_prior_type' .*'dirichlet_process'.* Got 'dp' instead"),
        ({"weight_concentration_prior": 0.0}, r"'weight_concentration_prior' .* None or a float in the range \(0\.0, inf\)\. Got 0\.0"),
        ({"mean_precision_prior": -1}, r"'mean_precision_prior' .* None or a float in the range \(0\.0, inf\)\. Got -1 instead"),
        ({"degrees_of_freedom_prior": 1.5}, r"'degrees_of_freedom_prior' should be greater than 2, but got 1\.500\."),
        ({"mean_prior": [0.0, 1.0]}, r"The parameter 'means' should have the shape of \(3,\), but got \(2,\)"),
        ({"covariance_prior": np.eye(2)}, r"'full covariance_prior' should have the shape of \(3, 3\), but got \(2, 2\)"),
        ({"covariance_prior": -np.eye(3)}, r"'full precision' should be symmetric, positive-definite"),
        ({"covariance_type": "diag", "covariance_prior": [1.0, -1.0, 1.0]}, r"'diag precision' should be positive"),
        ({"covariance_type": "spherical", "covariance_prior": [1.0]},
         r"'covariance_prior' .* float in the range \(0, inf\) for covariance_type='spherical'\. Got \[1\.0\]"),
        ({"random_state": "seed"}, r"'random_state' .* Got 'seed' instead"),
    ],
)
def test_wrong_params(params: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        BayesianGaussianMixture(**{"n_components": 3, **params}).fit(blobs(60))


def test_wrong_data() -> None:
    X = blobs(60)
    with pytest.raises(InvalidDataError, match=r"Expected n_samples >= n_components but got n_components = 3, n_samples = 2"):
        BayesianGaussianMixture(n_components=3).fit(X[:2])
    bad = X.copy()
    bad[41, 2] = np.nan
    with pytest.raises(NonFiniteDataError, match=r"nan.* row 41, feature 2"):
        BayesianGaussianMixture(n_components=2, random_state=0).fit(da.from_array(bad, chunks=(20, -1)))
    with pytest.raises(NotFittedError, match="not fitted yet"):
        BayesianGaussianMixture(n_components=2).predict(X)
    gm = BayesianGaussianMixture(n_components=2, random_state=0).fit(X)
    with pytest.raises(InvalidDataError, match="X has 2 features, but BayesianGaussianMixture is expecting 3"):
        gm.score_samples(X[:, :2])
    with pytest.raises(NonFiniteDataError, match=r"row 41"):
        gm.predict(bad)
    with pytest.raises(InvalidParameterError, match=r"'n_samples' parameter of BayesianGaussianMixture.sample .* "
                                                    r"Got 0"):
        gm.sample(0)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_collapse_is_actionable(covariance_type: str) -> None:
    """A constant feature with reg_covar=0 and its (zero) data variance as the prior."""
    X = blobs()
    X[:, 1] = 4.0
    if covariance_type == "spherical":
        X[:] = 4.0
    with pytest.raises(CollapsedComponentError, match="decrease the number of components, increase reg_covar, or "
                                                      "scale the input data"):
        BayesianGaussianMixture(n_components=3, covariance_type=covariance_type, reg_covar=0,
                                random_state=0).fit(X)


# --------------------------------------------------------------------------- the workflow


@pytest.fixture
def workflow() -> Any:
    """The module workflows/bayesian_mixture.py (not a package: loaded from its path)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("workflows_bayesian_mixture", ROOT / "workflows" / "bayesian_mixture.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_workflow_keeps_three_components_of_the_blobs(workflow: Any, tmp_path: Any) -> None:
    """workflows/bayesian_mixture.py at small size (2-D part): most of 10 components emptied on
    the texts' blobs (weights 0.40 / 0.40 / 0.21), the largest kept at about 0.40; a small
    concentration keeps fewer.

    How many are kept depends on the k-means initializations (``n_init=2`` here): over
    ``random_state`` 0-19 on these blobs, 3 in 7 fits, 4 in 9, 5 in 4 with 5 k-means|| rounds;
    3 in 10, 4 in 9, 5 in 1 with the default 2; the largest weight 0.389-0.401 (one blob split
    in two leaves the other two whole)."""
    import json

    assert workflow.main([str(tmp_path), "--small", "--data", "2d"]) == 0
    report = json.loads((tmp_path / "bayesian_mixture.json").read_text())
    assert 3 <= report["blobs"]["n_kept"] <= 5
    assert max(report["blobs"]["kept_weights"]) == pytest.approx(0.40, abs=0.02)
    low, high = report["concentration"]["prior_0.01"], report["concentration"]["prior_10000"]
    assert low["n_kept"] < high["n_kept"] == 10
    assert 4 <= report["moons"]["n_kept"] < 10  # several Gaussians tile the two moons
    for name in ("bgmm_blobs.png", "bgmm_concentration.png", "bgmm_moons.png"):
        assert (tmp_path / name).stat().st_size > 10_000


def test_workflow_mnist_bgmm_chooses_its_components(workflow: Any, tmp_path: Any) -> None:
    """workflows/bayesian_mixture.py's MNIST part at small size: 2,000 real digits,
    daskcluster's PCA to 10 dimensions, 30 components offered; the posterior empties some of
    them and its labels find the digits far better than chance."""
    from daskcluster.datasets import find_mnist

    mnist = find_mnist(ROOT)
    if mnist is None:
        pytest.skip("MNIST (shared/data/mnist.npz) is not on this machine")
    report = workflow.mnist_workflow(str(mnist), True, 10, 30, 42, tmp_path)
    assert report["n_samples"] == 2000 and report["data"].startswith("MNIST")
    assert 10 <= report["n_kept"] < 30
    # convergence within the workflow's max_iter=200 is not asserted: the iterations to tol vary
    # with the initialization (measured: 77-171 over seeds 0-3, and 200 at seed 42 with 2 k-means||
    # rounds; 88-158 with 5)
    assert report["majority_label_accuracy"] > 0.6
    assert (tmp_path / "mnist_bgmm_weights.png").stat().st_size > 10_000
