"""GaussianMixture against scikit-learn: EM iterations, predictions, sampling, initializations."""

from __future__ import annotations

import warnings
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from daskcluster import scaled
from daskcluster.engine import count_passes
from daskcluster.mixture import CollapsedComponentError, GaussianMixture

TYPES = ("full", "tied", "diag", "spherical")
N_FEATURES = 3


@pytest.fixture(autouse=True)
def synchronous_scheduler() -> Any:
    with dask.config.set(scheduler="synchronous"), warnings.catch_warnings():
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


def initial_parameters(X: np.ndarray, covariance_type: str) -> dict[str, np.ndarray]:
    """Explicit, deliberately rough initial weights, means and precisions."""
    d = X.shape[1]
    means = X[[0, 260, 480]] + 0.1
    base = np.array([[1.0, 0.2, 0.0], [0.2, 1.5, 0.1], [0.0, 0.1, 0.8]])[:d, :d]
    precisions = {
        "full": np.stack([base, 2 * np.eye(d), base * 0.5]),
        "tied": base,
        "diag": np.array([[1.0, 2.0, 0.5], [0.5, 1.0, 1.0], [2.0, 1.0, 3.0]])[:, :d],
        "spherical": np.array([0.5, 1.0, 2.0]),
    }[covariance_type]
    return {"weights_init": np.array([0.3, 0.3, 0.4]), "means_init": means, "precisions_init": precisions}


LAYOUTS = {
    "numpy": lambda X: X,
    "one-chunk": lambda X: da.from_array(X, chunks=(-1, -1)),
    "many-chunks": lambda X: da.from_array(X, chunks=(37, -1)),
    "uneven-zero": lambda X: da.from_array(X, chunks=((100, 0, 250, 150), (X.shape[1],))),
}


def assert_same_model(ours: GaussianMixture, sk: SkGaussianMixture, rtol: float = 1e-6) -> None:
    assert_allclose(ours.lower_bounds_, sk.lower_bounds_, rtol=rtol, atol=1e-9)
    assert ours.lower_bound_ == pytest.approx(sk.lower_bound_, rel=rtol)
    assert ours.n_iter_ == sk.n_iter_
    assert ours.converged_ == sk.converged_
    for attr in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert_allclose(getattr(ours, attr), getattr(sk, attr), rtol=rtol, atol=1e-9, err_msg=attr)


# --------------------------------------------------------------------------- EM equals scikit-learn


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("covariance_type", TYPES)
def test_em_iterations_match_sklearn(covariance_type: str, layout: str) -> None:
    X = blobs()
    init = initial_parameters(X, covariance_type)
    for kwargs in ({"max_iter": 5, "tol": 0.0}, {"max_iter": 200, "tol": 1e-3}):
        sk = SkGaussianMixture(3, covariance_type=covariance_type, **init, **kwargs).fit(X)
        ours = GaussianMixture(3, covariance_type=covariance_type, **init, **kwargs).fit(LAYOUTS[layout](X))
        assert_same_model(ours, sk)
    assert len(ours.lower_bounds_) == ours.n_iter_ > 5


@pytest.mark.parametrize("covariance_type", TYPES)
def test_em_is_exact_far_from_the_origin(covariance_type: str) -> None:
    """Data offset by 1e6: the centred statistics lose nothing (a naive E[xx^T] - mu mu^T
    would lose about 12 of the 16 digits); the fit equals scikit-learn's on the data without
    the offset, moved."""
    X = blobs()
    offset = 1e6
    init = initial_parameters(X, covariance_type)
    sk = SkGaussianMixture(3, covariance_type=covariance_type, max_iter=5, tol=0, **init).fit(X)
    moved = dict(init, means_init=init["means_init"] + offset)
    ours = GaussianMixture(3, covariance_type=covariance_type, max_iter=5, tol=0, **moved).fit(
        da.from_array(X + offset, chunks=(64, -1))
    )
    assert_allclose(ours.means_ - offset, sk.means_, atol=1e-6)
    assert_allclose(ours.covariances_, sk.covariances_, rtol=1e-6, atol=1e-8)
    assert_allclose(ours.lower_bounds_, sk.lower_bounds_, rtol=1e-7)


@pytest.mark.parametrize("covariance_type", ["full"])
def test_em_is_exact_for_a_tight_component_far_away(covariance_type: str) -> None:
    """A component 1e5 of its own spreads away from the rest (reg_covar=1e-12): its 'full'
    covariance, centred at the component's current mean, still matches scikit-learn's (which
    centres exactly) to 1e-6. ('diag' expands around the chunk's reference point, as
    scikit-learn expands around the origin: both lose (distance / spread)^2 * eps here.)"""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (300, 3)), rng.normal(0, 1e-3, (200, 3)) + 100.0])
    rng.shuffle(X)
    precisions = np.stack([np.eye(3), np.eye(3) * 1e6])
    init = {"weights_init": [0.6, 0.4], "means_init": [[0.1, 0, 0], [100.0001, 100, 100]],
            "precisions_init": precisions if covariance_type == "full" else np.diagonal(precisions, axis1=1, axis2=2)}
    kwargs = {"covariance_type": covariance_type, "reg_covar": 1e-12, "max_iter": 5, "tol": 0, **init}
    sk = SkGaussianMixture(2, **kwargs).fit(X)
    ours = GaussianMixture(2, **kwargs).fit(da.from_array(X, chunks=(64, -1)))
    assert_allclose(ours.covariances_[1], sk.covariances_[1], rtol=1e-6, atol=1e-14)
    assert_allclose(ours.lower_bounds_, sk.lower_bounds_, rtol=1e-10)


def test_scaled_uint8_storage_equals_float64() -> None:
    rng = np.random.default_rng(1)
    raw = np.concatenate([rng.integers(0, 100, (150, 4)), rng.integers(120, 256, (150, 4))]).astype(np.uint8)
    X = raw / 255.0
    init = {"weights_init": [0.5, 0.5], "means_init": X[[0, 200]], "precisions_init": np.stack([np.eye(4) * 20] * 2)}
    a = GaussianMixture(2, max_iter=4, tol=0, **init).fit(scaled(da.from_array(raw, chunks=(70, -1)), 1 / 255))
    b = SkGaussianMixture(2, max_iter=4, tol=0, **init).fit(X)
    assert_same_model(a, b, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_diagonal_types_on_scaled_uint8_with_tiny_means_equal_sklearn(covariance_type: str) -> None:
    # the compiled diagonal pass reads the uint8 rows as stored, four at a time (chunks of 70
    # rows end with a partial group), and flushes means whose square underflows to 0: the
    # distances then differ by less than 2 * 1.5e-154 * precision, far below the tolerance
    rng = np.random.default_rng(2)
    raw = np.concatenate([rng.integers(0, 100, (150, 6)), rng.integers(120, 256, (151, 6))]).astype(np.uint8)
    raw[:, 0] = 0  # a feature that is 0 in every row, as an image's border
    X = raw / 255.0
    means = X[[0, 200]].copy()
    means[:, 0] = [1e-320, -1e-200]
    precisions = np.full((2, 6), 20.0) if covariance_type == "diag" else np.array([20.0, 20.0])
    init = {"weights_init": [0.5, 0.5], "means_init": means, "precisions_init": precisions,
            "covariance_type": covariance_type, "reg_covar": 1e-3, "max_iter": 4, "tol": 0}
    ours = GaussianMixture(2, **init).fit(scaled(da.from_array(raw, chunks=(70, -1)), 1 / 255))
    sk = SkGaussianMixture(2, **init).fit(X)
    assert_same_model(ours, sk, rtol=1e-9)


def test_full_distances_with_a_factor_that_is_not_triangular() -> None:
    # 'full' whitens by a triangular product under an upper-triangular factor; a factor set
    # by hand that is not triangular is multiplied whole, and gives the same distances
    from daskcluster.kernels import mixture as K
    from daskcluster.kernels.mixture.buffers import Scratch

    rng = np.random.default_rng(3)
    d = 20
    X = rng.normal(size=(50, d))
    means = rng.normal(size=(2, d))
    chol = np.stack([np.triu(rng.normal(size=(d, d))) + 5 * np.eye(d) for _ in range(2)])
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    expected = np.stack([(((X - m) @ c) ** 2).sum(axis=1) for m, c in zip(means, chol)], axis=1)
    cov = K.covariance_of("full")
    ref = X[:10].mean(axis=0)
    a = np.hstack([X - ref, np.ones((50, 1))])
    for factor in (chol, chol @ q):
        gp = K.gaussian_params(np.array([0.5, 0.5]), means, factor, "full", log_const=np.zeros(2))
        got = cov.mahalanobis(a, d, cov.prepare(gp, ref), gp, Scratch())
        # ||(x - mu) L||^2 is the same for L and L Q (Q orthogonal); rounding of d-term sums
        assert_allclose(got, expected, rtol=1e-12)


def test_npy_and_zarr_sources(tmp_path: Any) -> None:
    import zarr

    X = blobs()
    init = initial_parameters(X, "diag")
    np.save(tmp_path / "x.npy", X)
    z = zarr.create_array(str(tmp_path / "x.zarr"), shape=X.shape, chunks=(128, 3), dtype="f8")
    z[:] = X
    expected = SkGaussianMixture(3, covariance_type="diag", max_iter=3, tol=0, **init).fit(X)
    for source in (str(tmp_path / "x.npy"), str(tmp_path / "x.zarr")):
        gm = GaussianMixture(3, covariance_type="diag", max_iter=3, tol=0, **init).fit(source)
        assert_same_model(gm, expected)
        assert isinstance(gm.predict(source), da.Array)


def test_one_pass_per_iteration() -> None:
    X = da.from_array(blobs(), chunks=(100, -1))
    init = initial_parameters(blobs(), "full")
    with count_passes() as counter:
        gm = GaussianMixture(3, max_iter=7, tol=0, **init).fit(X)
    assert gm.n_iter_ == 7 and counter.passes == 7
    with count_passes() as counter:
        gm = GaussianMixture(3, max_iter=4, tol=0, init_params="random", random_state=0).fit(X)
    assert counter.passes == 1 + 4
    with count_passes() as counter:
        proba = gm.predict_proba(X)
    assert counter.passes == 0 and isinstance(proba, da.Array)


def test_fit_predict_warm_start_and_max_iter_zero() -> None:
    X = blobs()
    init = initial_parameters(X, "full")
    labels = GaussianMixture(3, **init).fit_predict(X)
    assert isinstance(labels, np.ndarray) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, GaussianMixture(3, **init).fit(X).predict(X))
    once = GaussianMixture(3, max_iter=6, tol=0, **init).fit(X)
    warm = GaussianMixture(3, max_iter=3, tol=0, warm_start=True, **init)
    warm.fit(X)
    warm.fit(X)
    assert_allclose(warm.means_, once.means_, rtol=1e-12)
    assert warm.lower_bounds_ == once.lower_bounds_[3:]
    # max_iter=0 keeps the initial parameters (scikit-learn 1.9 fails here: no covariances_)
    zero = GaussianMixture(3, max_iter=0, **init).fit(X)
    assert zero.n_iter_ == 0 and not zero.converged_ and zero.lower_bound_ == -np.inf
    assert_allclose(zero.means_, init["means_init"])
    assert_allclose(zero.precisions_, init["precisions_init"], rtol=1e-12)
    assert np.allclose(np.triu(zero.precisions_cholesky_), zero.precisions_cholesky_)
    assert_allclose(np.linalg.inv(zero.covariances_), init["precisions_init"], rtol=1e-12, atol=1e-15)


def test_n_init_keeps_the_best_run() -> None:
    X = da.from_array(blobs(seed=3), chunks=(120, -1))
    one = GaussianMixture(3, init_params="random", random_state=5, max_iter=10).fit(X)
    three = GaussianMixture(3, init_params="random", random_state=5, n_init=3, max_iter=10).fit(X)
    assert three.lower_bound_ >= one.lower_bound_ - 1e-12


# --------------------------------------------------------------------------- initializations


def _reference_parameters(X: np.ndarray, resp: np.ndarray, covariance_type: str, reg: float) -> tuple[Any, ...]:
    """A naive scikit-learn M-step, written out with loops (the definition)."""
    nk = resp.sum(axis=0) + 10 * np.finfo(float).eps
    means = resp.T @ X / nk[:, None]
    k, d = means.shape
    full = np.zeros((k, d, d))
    for j in range(k):
        diff = X - means[j]
        full[j] = (resp[:, j, None] * diff).T @ diff / nk[j] + reg * np.eye(d)
    cov = {
        "full": full,
        "tied": (X.T @ X - (nk[:, None] * means).T @ means) / nk.sum() + reg * np.eye(d),
        "diag": np.stack([np.diagonal(c) for c in full]),
        "spherical": np.stack([np.diagonal(c) for c in full]).mean(axis=1),
    }[covariance_type]
    return nk / X.shape[0], means, cov


@pytest.mark.parametrize("covariance_type", TYPES)
def test_kmeans_init_is_one_m_step_on_kmeans_labels(covariance_type: str) -> None:
    from daskcluster import KMeans

    X = blobs()
    Xd = da.from_array(X, chunks=(90, -1))
    gm = GaussianMixture(3, covariance_type=covariance_type, max_iter=0, random_state=7).fit(Xd)
    km = KMeans(3, n_init=1, random_state=np.random.RandomState(7)).fit(Xd)
    resp = np.eye(3)[dask.compute(km.labels_)[0]]
    weights, means, cov = _reference_parameters(X, resp, covariance_type, 1e-6)
    assert_allclose(gm.weights_, weights, rtol=1e-12)
    assert_allclose(gm.means_, means, rtol=1e-10, atol=1e-12)
    assert_allclose(gm.covariances_, cov, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_random_from_data_init_matches_sklearn(covariance_type: str) -> None:
    """Same draws as scikit-learn (``RandomState.choice``), so the whole fit matches, including
    scikit-learn's unnormalized initial weights and its tied covariance over all rows."""
    X = blobs()
    kwargs = {"covariance_type": covariance_type, "init_params": "random_from_data", "random_state": 11,
              "max_iter": 6, "tol": 0}
    sk = SkGaussianMixture(3, **kwargs).fit(X)
    ours = GaussianMixture(3, **kwargs).fit(da.from_array(X, chunks=(77, -1)))
    assert_same_model(ours, sk)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_every_init_gives_a_sound_model_on_any_scheduler(init_params: str) -> None:
    X = da.from_array(blobs(seed=2), chunks=(64, -1))
    gm = GaussianMixture(3, init_params=init_params, random_state=3, max_iter=20).fit(X)
    assert np.isfinite(gm.means_).all() and gm.weights_.sum() == pytest.approx(1.0)
    with dask.config.set(scheduler="threads"):
        again = GaussianMixture(3, init_params=init_params, random_state=3, max_iter=20).fit(X)
    assert_allclose(again.means_, gm.means_, rtol=1e-12)
    assert again.lower_bounds_ == pytest.approx(gm.lower_bounds_, rel=1e-12)


# --------------------------------------------------------------------------- prediction


def _sklearn_with(ours: GaussianMixture) -> SkGaussianMixture:
    sk = SkGaussianMixture(ours.n_components, covariance_type=ours.covariance_type, random_state=ours.random_state)
    for attr in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_", "n_features_in_",
                 "converged_", "n_iter_", "lower_bound_"):
        setattr(sk, attr, getattr(ours, attr))
    return sk


@pytest.mark.parametrize("covariance_type", TYPES)
def test_predictions_match_sklearn(covariance_type: str) -> None:
    X = blobs(seed=4)
    Xd = da.from_array(X, chunks=((200, 0, 300), (3,)))
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(Xd)
    sk = _sklearn_with(gm)
    lazy = gm.score_samples(Xd), gm.predict_proba(Xd), gm.predict(Xd)
    assert all(isinstance(a, da.Array) for a in lazy)
    eager = gm.score_samples(X), gm.predict_proba(X), gm.predict(X)
    assert all(isinstance(a, np.ndarray) for a in eager)
    assert_allclose(lazy[0].compute(), sk.score_samples(X), rtol=1e-10)
    assert_allclose(eager[0], sk.score_samples(X), rtol=1e-10)
    assert_allclose(eager[1], sk.predict_proba(X), atol=1e-10)
    assert_allclose(eager[1].sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(lazy[2].compute(), sk.predict(X))
    assert gm.score(Xd) == pytest.approx(sk.score(X), rel=1e-10)
    assert gm.bic(Xd) == pytest.approx(sk.bic(X), rel=1e-10)
    assert gm.aic(X) == pytest.approx(sk.aic(X), rel=1e-10)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_sample_matches_sklearn_and_weights(covariance_type: str) -> None:
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=1).fit(blobs())
    X, y = gm.sample(20000)
    assert X.shape == (20000, N_FEATURES) and y.shape == (20000,) and y.dtype == np.int64
    assert_allclose(np.bincount(y, minlength=3) / 20000, gm.weights_, atol=0.015)
    for k in range(3):
        assert_allclose(X[y == k].mean(axis=0), gm.means_[k], atol=0.15)
    Xs, ys = _sklearn_with(gm).sample(500)
    Xo, yo = gm.sample(500)
    assert_allclose(Xo, Xs)
    np.testing.assert_array_equal(yo, ys)


def test_estimator_api() -> None:
    gm = GaussianMixture(2, covariance_type="diag", random_state=0)
    assert clone(gm).get_params() == gm.get_params()
    fitted = gm.fit(blobs())
    assert gm.get_params()["covariance_type"] == "diag" and fitted is gm
    import pickle

    again = pickle.loads(pickle.dumps(gm))
    assert_allclose(again.score_samples(blobs()[:10]), gm.score_samples(blobs()[:10]))


def test_verbose_prints_iterations(capsys: pytest.CaptureFixture[str]) -> None:
    GaussianMixture(3, verbose=2, verbose_interval=1, max_iter=3, tol=0, random_state=0).fit(blobs())
    out = capsys.readouterr().out
    assert "Initialization 0" in out and "iteration 3" in out and "ll change" in out


# --------------------------------------------------------------------------- degenerate data


@pytest.mark.parametrize("covariance_type", TYPES)
def test_constant_feature_gives_a_valid_model(covariance_type: str) -> None:
    X = blobs()
    X[:, 1] = 4.0
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(da.from_array(X, chunks=(100, -1)))
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.isfinite(getattr(gm, attr)).all()
    assert np.isfinite(gm.score_samples(X)).all()


@pytest.mark.parametrize("covariance_type", TYPES)
def test_collapse_without_regularization_is_actionable(covariance_type: str) -> None:
    X = blobs()
    X[:, 1] = 4.0  # a constant feature: a zero variance (for 'spherical', every feature)
    if covariance_type == "spherical":
        X[:] = 4.0
    with pytest.raises(CollapsedComponentError, match="decrease the number of components, increase reg_covar, or "
                                                      "scale the input data"):
        GaussianMixture(3, covariance_type=covariance_type, reg_covar=0, random_state=0).fit(X)


def test_duplicate_points_never_give_nan() -> None:
    X = np.repeat(np.array([[0.0, 1.0], [5.0, 5.0]]), 50, axis=0)
    for covariance_type in TYPES:
        for init_params in ("kmeans", "random", "random_from_data"):
            try:
                gm = GaussianMixture(3, covariance_type=covariance_type, init_params=init_params,
                                     random_state=0).fit(X)
            except CollapsedComponentError as exc:
                assert "increase reg_covar" in str(exc) and isinstance(exc, ValueError)
                continue
            assert np.isfinite(gm.means_).all() and np.isfinite(gm.covariances_).all()
            assert np.isfinite(gm.score_samples(X)).all()
    with pytest.raises(CollapsedComponentError, match="component"):
        GaussianMixture(2, reg_covar=0, random_state=0).fit(X)


def test_full_precision_factors_are_exactly_upper_triangular() -> None:
    # the E-step of 'full' takes the triangular product only when the factors hold exact zeros
    # below the diagonal (as scikit-learn's triangular solves give them): a factor with rounding
    # there would be multiplied whole, at twice the arithmetic
    from daskcluster.kernels import mixture as K

    rng = np.random.default_rng(5)
    a = rng.normal(size=(4, 30, 30))
    cov = a @ a.transpose(0, 2, 1) + 0.1 * np.eye(30)
    for covariances in (cov, cov[0]):  # full and tied
        kind = "full" if covariances.ndim == 3 else "tied"
        factors = K.covariance_of(kind).precision_cholesky(covariances)
        assert not np.tril(factors, -1).any()
        precisions = factors @ np.swapaxes(factors, -1, -2)
        eye = np.broadcast_to(np.eye(30), covariances.shape)
        # precisions @ covariances = I up to rounding amplified by the condition number (< 1e6 here)
        assert_allclose(precisions @ covariances, eye, atol=1e-8)
