"""Mixture kernels (the map-reduce law, a naive reference), anomalies, model selection, errors,
the MNIST-like PCA pipeline and a real multi-process cluster."""

from __future__ import annotations

import math
import warnings
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from daskcluster.engine import count_passes
from daskcluster.errors import InvalidDataError, InvalidParameterError, NonFiniteDataError, NotFittedError
from daskcluster.kernels import mixture as K
from daskcluster.kernels.blocks import Affine, ChunkInfo
from daskcluster.mixture import GaussianMixture, anomalies, density_threshold, gmm_bic_table
from daskcluster.mixture._covariance import PRECISION_CHOLESKY

TYPES = ("full", "tied", "diag", "spherical")


@pytest.fixture(autouse=True)
def synchronous_scheduler() -> Any:
    with dask.config.set(scheduler="synchronous"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def blobs(n: int = 600, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([
        rng.normal(0, 1, (n // 3, 3)),
        rng.normal(0, 0.5, (n // 3, 3)) + [4.0, 1.0, 0.0],
        rng.normal(0, 1.5, (n - 2 * (n // 3), 3)) + [-3.0, 3.0, 1.0],
    ])


def mixture(covariance_type: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random weights, means and precision Cholesky factors of a 3-component mixture in 3-D."""
    rng = np.random.default_rng(seed)
    weights = np.array([0.2, 0.5, 0.3])
    means = rng.normal(0, 2, (3, 3))
    a = rng.normal(0, 0.3, (3, 3, 3))
    cov_full = a @ a.transpose(0, 2, 1) + np.eye(3)
    cov = {"full": cov_full, "tied": cov_full[0], "diag": np.stack([np.diagonal(c) for c in cov_full]),
           "spherical": np.array([0.5, 1.0, 2.0])}[covariance_type]
    return weights, means, PRECISION_CHOLESKY[covariance_type](cov)


def covariances(covariance_type: str, prec_chol: np.ndarray) -> np.ndarray:
    """Full covariance matrices of each component from the precision Cholesky factors."""
    full = {
        "full": lambda p: np.stack([np.linalg.inv(u @ u.T) for u in p]),
        "tied": lambda p: np.stack([np.linalg.inv(p @ p.T)] * 3),
        "diag": lambda p: np.stack([np.diag(1 / u**2) for u in p]),
        "spherical": lambda p: np.stack([np.eye(3) / u**2 for u in p]),
    }
    return full[covariance_type](prec_chol)


# --------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_em_kernel_against_naive_reference(covariance_type: str, dtype: type, sparse: bool) -> None:
    """``sparse``: responsibilities below 1e-30 left out of the 'full' second moments."""
    X = blobs(300).astype(dtype)
    x = X.astype(np.float64)
    weights, means, prec_chol = mixture(covariance_type)
    if sparse:
        prec_chol = prec_chol * 6  # tight components: some responsibilities below 1e-30
    gp = K.gaussian_params(weights, means, prec_chol, covariance_type, n_samples=300 if sparse else None)
    (stats,) = K.em_kernel(X, None, ChunkInfo(0, 0), K.EMParams((gp,), Affine()))
    cov = covariances(covariance_type, prec_chol)
    wlp = np.column_stack([np.log(w) + multivariate_normal(m, c).logpdf(x) for w, m, c in zip(weights, means, cov)])
    log_norm = logsumexp(wlp, axis=1)
    resp = np.exp(wlp - log_norm[:, None])
    nk = resp.sum(axis=0)
    mean = resp.T @ x / nk[:, None]
    m2_full = np.stack([(resp[:, k, None] * (x - mean[k])).T @ (x - mean[k]) for k in range(3)])
    m2 = {"full": m2_full, "tied": m2_full.sum(axis=0),
          "diag": np.stack([np.diagonal(m) for m in m2_full])}[K.STATS_KIND[covariance_type]]
    assert not sparse or (resp < K.MIN_RESP).any()  # the sparse path leaves terms out
    assert stats.log_lik == pytest.approx(log_norm.sum(), rel=1e-12)
    assert_allclose(stats.nk, nk, rtol=1e-12)
    assert_allclose(stats.means + gp.center, mean, rtol=1e-11)
    assert_allclose(stats.m2, m2, rtol=1e-10, atol=1e-10)
    scores = K.score_samples_block(X, Affine(), gp, ChunkInfo(0, 0))
    assert_allclose(scores, log_norm, rtol=1e-12)
    assert_allclose(K.predict_proba_block(X, Affine(), gp, ChunkInfo(0, 0)), resp, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_full_second_moments_leave_out_within_their_bound(dtype: type, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a 'full' second moment leaves out (components holding a row's worth of mass, once
    ``n_samples`` is known) is positive semi-definite with a trace of at most ``tau`` times the
    trace of the component's second moment around its mean (:func:`full._second_moments`).
    Checked with ``tau = 1e-2`` instead of 1e-13, so that many terms are left out and the bound
    is tight enough to fail if the rule were wrong; float64 rows take the one-call segment
    path, float32 rows the tiles."""
    from daskcluster.kernels.mixture.covariance import full

    tau = 1e-2
    monkeypatch.setattr(full, "LEFT_OUT_TRACE", tau)
    X = blobs(300).astype(dtype)
    x = X.astype(np.float64)
    weights, means, prec_chol = mixture("full")
    params = [K.EMParams((K.gaussian_params(weights, means, prec_chol, "full", n_samples=n),), Affine())
              for n in (300, None)]
    bounded, every = (K.em_kernel(X, None, ChunkInfo(0, 0), p)[0] for p in params)
    assert_allclose(bounded.nk, every.nk, rtol=1e-13)
    assert_allclose(bounded.means, every.means, rtol=1e-13, atol=1e-14)
    cov = covariances("full", prec_chol)
    wlp = np.column_stack([np.log(w) + multivariate_normal(m, c).logpdf(x) for w, m, c in zip(weights, means, cov)])
    resp = np.exp(wlp - logsumexp(wlp, axis=1)[:, None])
    trace_around_mean = np.array([resp[:, k] @ ((x - means[k]) ** 2).sum(axis=1) for k in range(3)])
    left_out = every.m2 - bounded.m2
    traces = np.trace(left_out, axis1=1, axis2=2)
    assert (traces > 1e-6 * trace_around_mean).all()  # terms were left out
    assert (traces <= tau * trace_around_mean * (1 + 1e-9)).all()
    assert (np.linalg.eigvalsh(left_out) >= -1e-12 * trace_around_mean[:, None]).all()


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_compiled_rows_equal_the_tiled_pass(covariance_type: str) -> None:
    """The diagonal types' compiled pass (alone in a pass) against the tiled GEMM pass (taken
    when a 'full' mixture shares the pass), on uint8 rows read through an affine map, with
    ``sum r log r``. Both sum the same terms in another order: with 3 dimensions and 300 rows
    the relative rounding of each sum is a few hundred eps at most, hence rtol=1e-11."""
    raw = (blobs(300) * 20 + 128).clip(0, 255).astype(np.uint8)
    affine = Affine(1 / 20, -6.4)
    gp = K.gaussian_params(*mixture(covariance_type), covariance_type, with_entropy=True)
    other = K.gaussian_params(*mixture("full"), "full")
    (alone,) = K.em_kernel(raw, None, ChunkInfo(0, 0), K.EMParams((gp,), affine))
    shared = K.em_kernel(raw, None, ChunkInfo(0, 0), K.EMParams((gp, other), affine))[0]
    assert alone.n_rows == shared.n_rows == 300
    assert alone.log_lik == pytest.approx(shared.log_lik, rel=1e-12)
    assert alone.entropy == pytest.approx(shared.entropy, rel=1e-11) and alone.entropy < 0
    assert_allclose(alone.nk, shared.nk, rtol=1e-12)
    assert_allclose(alone.means, shared.means, rtol=1e-11, atol=1e-12)
    assert_allclose(alone.m2, shared.m2, rtol=1e-11)
    weights, means, prec_chol = mixture(covariance_type)
    tight = K.gaussian_params(weights, means, prec_chol * 1e10, covariance_type)
    huge = blobs(40) * 1e145  # finite rows (and norms) whose distances overflow under every component
    with pytest.raises(InvalidDataError, match=r"log-likelihood of row 0 \(chunk 3\) .* -inf.* too large"):
        K.em_kernel(huge, None, ChunkInfo(3, 0), K.EMParams((tight,), Affine()))


@pytest.mark.parametrize("covariance_type", TYPES)
def test_map_reduce_law(covariance_type: str) -> None:
    """The statistics of the whole equal the combined statistics of any split of its rows."""
    X = blobs(500, seed=1) * 3 + 100.0
    gp = K.gaussian_params(*mixture(covariance_type, seed=2), covariance_type)
    gp = K.GaussianParams(gp.covariance_type, gp.means * 3 + 100, gp.prec_chol / 3, gp.log_const - 3 * math.log(3),
                          gp.center * 3 + 100, gp.min_resp)
    params = K.EMParams((gp,), Affine())
    whole = K.em_kernel(X, None, ChunkInfo(0, 0), params)[0]
    rng = np.random.default_rng(0)
    for cuts in ([250], [0, 1, 499], sorted(rng.choice(np.arange(1, 500), 12, replace=False)), [100, 100, 300]):
        bounds = [0, *cuts, 500]
        parts = [K.em_kernel(X[a:b], None, ChunkInfo(i, a), params) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
        merged = K.combine_stats([K.combine_stats(parts[: len(parts) // 2 or 1]), *parts[len(parts) // 2 or 1:]])[0]
        assert merged.n_rows == whole.n_rows
        assert merged.log_lik == pytest.approx(whole.log_lik, rel=1e-12)
        assert_allclose(merged.nk, whole.nk, rtol=1e-12)
        assert_allclose(merged.means, whole.means, rtol=1e-10, atol=1e-10)
        assert_allclose(merged.m2, whole.m2, rtol=1e-10, atol=1e-9)
    hard = K.HardInitParams(gp.means, ("full", "tied", "diag"), gp.center, Affine())
    whole_hard = K.hard_init_kernel(X, None, ChunkInfo(0, 0), hard)
    halves = K.combine_stats([K.hard_init_kernel(X[:123], None, ChunkInfo(0, 0), hard),
                              K.hard_init_kernel(X[123:], None, ChunkInfo(1, 123), hard)])
    for a, b in zip(whole_hard, halves):
        assert_allclose(a.nk, b.nk)
        assert_allclose(a.m2, b.m2, rtol=1e-10, atol=1e-9)


def test_kernels_leave_blas_threads_as_they_were() -> None:
    from threadpoolctl import threadpool_info

    before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    gp = K.gaussian_params(*mixture("full"), "full")
    K.em_kernel(blobs(50), None, ChunkInfo(0, 0), K.EMParams((gp,), Affine()))
    assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"] == before


# --------------------------------------------------------------------------- anomalies


@pytest.fixture(scope="module")
def fitted() -> tuple[GaussianMixture, np.ndarray, SkGaussianMixture]:
    X = blobs(3000, seed=5)
    with dask.config.set(scheduler="synchronous"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(3, random_state=0).fit(X)
    sk = SkGaussianMixture(3)
    for attr in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_", "n_features_in_"):
        setattr(sk, attr, getattr(gm, attr))
    return gm, X, sk


@pytest.mark.parametrize("percentile", [0.0, 1.0, 4.0, 37.5, 100.0])
def test_density_threshold_within_stated_bound(fitted: Any, percentile: float) -> None:
    gm, X, sk = fitted
    Xd = da.from_array(X, chunks=(110, -1))  # 28 chunks, step 5 at eps=0.05
    scores = np.sort(sk.score_samples(X))
    n, eps = len(scores), 0.05
    t = density_threshold(gm, Xd, percentile, eps=eps)
    rank = int(math.floor((n - 1) * percentile / 100))  # 0-based lower order statistic
    half = math.ceil(eps * n / 2)
    assert scores[max(0, rank - half)] - 1e-9 <= t <= scores[min(n - 1, rank + half)] + 1e-9
    exact = density_threshold(gm, Xd, percentile, eps=eps, exact=True)
    assert exact == pytest.approx(np.percentile(scores, percentile), rel=1e-12, abs=1e-12)


def test_anomalies_lazy_and_eager(fitted: Any) -> None:
    gm, X, sk = fitted
    Xd = da.from_array(X, chunks=(500, -1))
    t = density_threshold(gm, X, 4.0, exact=True)
    expected = sk.score_samples(X) < np.percentile(sk.score_samples(X), 4.0)
    mask = anomalies(gm, Xd, 4.0, exact=True, return_mask=True)
    assert isinstance(mask, da.Array) and mask.dtype == bool
    np.testing.assert_array_equal(mask.compute(), expected)
    rows = anomalies(gm, Xd, threshold=t)
    assert isinstance(rows, da.Array) and rows.shape == (expected.sum(), 3)  # known chunk sizes
    assert_allclose(rows.compute(), X[expected])
    eager = anomalies(gm, X, 4.0, exact=True)
    assert isinstance(eager, np.ndarray) and eager.shape == (expected.sum(), 3)
    with count_passes() as counter:
        anomalies(gm, Xd, 4.0)
    assert counter.passes == 1


# --------------------------------------------------------------------------- model selection


def test_gmm_bic_table_matches_each_model_and_shares_passes() -> None:
    X = blobs(600, seed=3)
    Xd = da.from_array(X, chunks=(150, -1))
    types = ["full", "diag", "spherical"]
    with count_passes() as counter:
        table = gmm_bic_table(Xd, [1, 2, 3, 4], types, init_params="random_from_data", random_state=0)
    assert list(table.columns[:4]) == ["n_components", "covariance_type", "bic", "aic"]
    assert len(table) == 12 and table["best"].sum() == 1
    # no initialization pass (random rows), one pass per iteration for all models, one to score
    assert counter.passes == table["n_iter"].max() + 1
    best = table.loc[table["bic"].idxmin()]
    assert table.attrs["best_model"] is best["model"] and best["n_components"] == 3
    for _, row in table.iterrows():
        model = row["model"]
        assert model.bic(X) == pytest.approx(row["bic"], rel=1e-12)
        assert model.aic(X) == pytest.approx(row["aic"], rel=1e-12)
        if row["n_components"] != 3:
            continue
        alone = GaussianMixture(row["n_components"], covariance_type=row["covariance_type"],
                                init_params="random_from_data", random_state=0).fit(Xd)
        sk = SkGaussianMixture(row["n_components"], covariance_type=row["covariance_type"],
                               init_params="random_from_data", random_state=0).fit(X)
        assert row["lower_bound"] == pytest.approx(alone.lower_bound_, rel=1e-10)
        assert row["bic"] == pytest.approx(sk.bic(X), rel=1e-6)


def test_gmm_bic_table_reports_a_collapse_without_stopping() -> None:
    X = blobs(300)
    X[:, 2] = 1.0
    table = gmm_bic_table(X, [2], ["full", "spherical"], reg_covar=0.0, random_state=0)
    full, spherical = table.iloc[0], table.iloc[1]
    assert "increase reg_covar" in full["error"] and math.isnan(full["bic"])
    assert not isinstance(spherical["error"], str) and np.isfinite(spherical["bic"]) and spherical["best"]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "params, match",
    [
        ({"covariance_type": "bogus"},
         r"'covariance_type' parameter of GaussianMixture must be a str among .*'full'.*Got 'bogus'"),
        ({"n_components": 0}, r"'n_components' parameter .* range \[1, inf\)\. Got 0 instead"),
        ({"n_components": 2.5}, r"'n_components' .* Got 2\.5 instead"),
        ({"tol": -1.0}, r"'tol' parameter .* Got -1\.0 instead"),
        ({"reg_covar": -0.1}, r"'reg_covar' .* Got -0\.1 instead"),
        ({"max_iter": -1}, r"'max_iter' .* Got -1 instead"),
        ({"n_init": 0}, r"'n_init' .* Got 0 instead"),
        ({"init_params": "k-means||"}, r"'init_params' .*'kmeans'.* Got 'k-means\|\|' instead"),
        ({"warm_start": "yes"}, r"'warm_start' .* Got 'yes' instead"),
        ({"verbose_interval": 0}, r"'verbose_interval' .* Got 0 instead"),
        ({"cache": "maybe"}, r"'cache' .* Got 'maybe' instead"),
        ({"random_state": "seed"}, r"'random_state' .* Got 'seed' instead"),
        ({"weights_init": [0.5, 0.5]}, r"The parameter 'weights' should have the shape of \(3,\), but got \(2,\)"),
        ({"weights_init": [0.5, 0.5, 0.5]}, r"'weights' should be normalized, but got sum\(weights\) = 1\.50000"),
        ({"weights_init": [1.5, -0.5, 0.0]}, r"'weights' should be in the range \[0, 1\], but got max value -0\.50000, min value 1\.50000"),
        ({"means_init": np.zeros((3, 2))}, r"The parameter 'means' should have the shape of \(3, 3\), but got \(3, 2\)"),
        ({"means_init": np.full((3, 3), np.nan)}, r"'means' contains NaN"),
        ({"precisions_init": np.ones((3, 3))}, r"'full precision' should have the shape of \(3, 3, 3\), "
                                               r"but got \(3, 3\)"),
        ({"precisions_init": -np.stack([np.eye(3)] * 3)}, r"'full precision' should be symmetric, positive-definite"),
        ({"covariance_type": "diag", "precisions_init": -np.ones((3, 3))}, r"'diag precision' should be positive"),
    ],
)
def test_wrong_params(params: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        GaussianMixture(**{"n_components": 3, **params}).fit(blobs(60))


def test_wrong_data() -> None:
    X = blobs(60)
    with pytest.raises(InvalidDataError, match=r"Expected n_samples >= n_components but got n_components = 3, n_samples = 2"):
        GaussianMixture(3).fit(X[:2])
    with pytest.raises(InvalidDataError, match=r"1 sample\(s\) .* minimum of 2 is required by GaussianMixture"):
        GaussianMixture(1).fit(X[:1])
    bad = X.copy()
    bad[41, 2] = np.nan
    with pytest.raises(NonFiniteDataError, match=r"nan.* row 41, feature 2"):
        GaussianMixture(2, random_state=0).fit(da.from_array(bad, chunks=(20, -1)))
    with pytest.raises(NotFittedError, match="not fitted yet"):
        GaussianMixture(2).predict(X)
    gm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(InvalidDataError, match="X has 2 features, but GaussianMixture is expecting 3"):
        gm.score_samples(X[:, :2])
    with pytest.raises(NonFiniteDataError, match=r"row 41"):
        gm.predict(bad)
    with pytest.raises(InvalidParameterError, match=r"'n_samples' parameter of GaussianMixture.sample .* Got 0"):
        gm.sample(0)
    with pytest.raises(InvalidParameterError, match=r"'percentile' parameter of density_threshold .* Got 101"):
        density_threshold(gm, X, 101)
    with pytest.raises(InvalidParameterError, match=r"'eps' parameter of density_threshold .* Got 0"):
        density_threshold(gm, X, 5, eps=0)
    with pytest.raises(InvalidParameterError, match=r"'covariance_type' parameter of gmm_bic_table .* Got 'round'"):
        gmm_bic_table(X, [1, 2], ["full", "round"])
    with pytest.raises(InvalidDataError, match=r"n_samples=60 should be >= n_components=61"):
        gmm_bic_table(X, [1, 61])


# --------------------------------------------------------------------------- pipelines and clusters


def test_pca_then_mixture_pipeline_on_digits() -> None:
    """The documented high-dimensional pipeline at small size: 8x8 digits (64 features) ->
    PCA out of core (one pass, on both Dask array backends) -> GaussianMixture on the lazy
    projection."""
    from sklearn.datasets import load_digits

    from daskcluster.decomposition import PCA
    from daskcluster.metrics import majority_label_accuracy

    digits = load_digits()
    X = da.from_array(digits.data / 16.0, chunks=(300, -1))
    Z = PCA(n_components=20).fit(X).transform(X)
    assert isinstance(Z, da.Array) and Z.shape == (1797, 20)
    gm = GaussianMixture(10, covariance_type="full", random_state=0, max_iter=50).fit(Z)
    labels = gm.predict(Z)
    assert isinstance(labels, da.Array)
    assert majority_label_accuracy(digits.target, labels.compute()) > 0.6


@pytest.mark.slow
def test_distributed_local_cluster_matches_sklearn() -> None:
    from distributed import Client, LocalCluster

    X = blobs(600, seed=8)
    Xd = da.from_array(X, chunks=((150, 0, 200, 250), (3,)))
    init = {"weights_init": [0.3, 0.3, 0.4], "means_init": X[[0, 250, 500]],
            "precisions_init": np.stack([np.eye(3)] * 3)}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client, dask.config.set(scheduler=client.get):
        ours = GaussianMixture(3, max_iter=6, tol=0, **init).fit(Xd)
        labels = ours.predict(Xd).compute()
        random_init = GaussianMixture(3, init_params="random", random_state=4, max_iter=5).fit(Xd)
    sk = SkGaussianMixture(3, max_iter=6, tol=0, **init).fit(X)
    assert_allclose(ours.lower_bounds_, sk.lower_bounds_, rtol=1e-9)
    assert_allclose(ours.covariances_, sk.covariances_, rtol=1e-8)
    np.testing.assert_array_equal(labels, sk.predict(X))
    local = GaussianMixture(3, init_params="random", random_state=4, max_iter=5).fit(Xd)
    assert_allclose(random_init.means_, local.means_, rtol=1e-12)
