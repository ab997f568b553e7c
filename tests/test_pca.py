"""``daskcluster.decomposition.PCA``: scikit-learn's ``PCA(svd_solver="covariance_eigh")`` by
one pass over row chunks, on both of Dask's array backends."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.decomposition import PCA as SkPCA
from sklearn.utils.estimator_checks import parametrize_with_checks

from daskcluster import Scaled
from daskcluster.decomposition import PCA
from daskcluster.engine import count_passes
from daskcluster.errors import InvalidParameterError, NonFiniteDataError, NotFittedError

# Error analysis of the comparison. Both sides form the covariance C in float64: scikit-learn
# from raw moments (XᵀX - n μμᵀ) / (n - 1), this package from chunk-centred scatters merged
# exactly in exact arithmetic. With n = 2,000 rows of entries below |μ| + 5σ ≈ 12, the worst
# rounding of an entry of C is about n · eps · 12² / (n - 1) ≈ 3e-14 on either side, so
# ‖δC‖₂ ≤ d · 3e-14 ≈ 3e-13 (d = 8). Weyl's bound moves each eigenvalue by at most that; each
# eigenvector by at most ‖δC‖ / gap with eigenvalue gaps ≥ 0.5: 6e-13. The tolerance 1e-9 is
# three orders of magnitude above these bounds (they are worst cases, not machine figures).
TOL = 1e-9
SPECTRUM = np.array([9.0, 6.0, 4.0, 2.5, 1.5, 1.0, 0.5, 0.25])


def _data(n: int = 2000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    return (rng.standard_normal((n, 8)) * np.sqrt(SPECTRUM)) @ rotation.T + rng.uniform(-2, 2, 8)


@pytest.mark.parametrize("whiten", [False, True])
@pytest.mark.parametrize("n_components", [3, None])
def test_equals_scikit_learn_covariance_eigh(whiten: bool, n_components: int | None) -> None:
    X = _data()
    sk = SkPCA(n_components, whiten=whiten, svd_solver="covariance_eigh").fit(X)
    Xd = da.from_array(X, chunks=((700, 0, 1, 1299), (8,)))  # an empty and a one-row chunk
    with count_passes() as counter:
        ours = PCA(n_components, whiten=whiten).fit(Xd)
    assert counter.passes == 1
    for name in ("components_", "explained_variance_", "explained_variance_ratio_", "singular_values_", "mean_"):
        assert_allclose(getattr(ours, name), getattr(sk, name), rtol=TOL, atol=TOL, err_msg=name)
    assert_allclose(ours.noise_variance_, sk.noise_variance_, rtol=TOL, atol=TOL)
    assert (ours.n_components_, ours.n_samples_, ours.n_features_in_) == (sk.n_components_, 2000, 8)
    Z = ours.transform(Xd)
    assert isinstance(Z, da.Array) and Z.chunks[0] == Xd.chunks[0]
    # projections of entries ≤ 12 on unit vectors, divided by deviations ≥ 0.5 when whitened
    assert_allclose(Z.compute(), sk.transform(X), rtol=0, atol=100 * TOL)
    assert_allclose(ours.inverse_transform(Z).compute(), sk.inverse_transform(sk.transform(X)), rtol=0,
                    atol=100 * TOL)
    eager = PCA(n_components, whiten=whiten).fit_transform(X)
    assert isinstance(eager, np.ndarray)
    assert_allclose(eager, sk.transform(X), rtol=0, atol=100 * TOL)


def test_scaled_storage_and_float32() -> None:
    """uint8 storage read as x / 255 (the MNIST case) equals scikit-learn on the scaled floats;
    float32 input gives float32 projections (scikit-learn keeps the input's float dtype)."""
    pixels = np.random.default_rng(1).integers(0, 256, (600, 10)).astype(np.uint8)
    ours = PCA(4).fit(Scaled(da.from_array(pixels, chunks=(200, -1)), 1 / 255))
    sk = SkPCA(4, svd_solver="covariance_eigh").fit(pixels / 255)
    assert_allclose(ours.components_, sk.components_, rtol=1e-8, atol=1e-8)
    Z32 = PCA(4).fit(pixels.astype(np.float32)).transform(pixels.astype(np.float32))
    assert Z32.dtype == np.float32


def test_errors() -> None:
    X = _data(50)
    with pytest.raises(InvalidParameterError, match=r"n_components=9 must be between 0 and "
                                                     r"min\(n_samples, n_features\)=8"):
        PCA(9).fit(X)
    with pytest.raises(InvalidParameterError, match=r"'n_components' parameter of PCA must be"):
        PCA(0).fit(X)
    with pytest.raises(NotFittedError):
        PCA(2).transform(X)
    with pytest.raises(ValueError, match="features"):
        PCA(2).fit(X).transform(X[:, :5])
    bad = X.copy()
    bad[17, 3] = np.nan
    with pytest.raises(NonFiniteDataError, match=r"row 17, feature 3"):
        PCA(2).fit(da.from_array(bad, chunks=(10, -1)))
    with pytest.raises(NonFiniteDataError, match=r"row 17, feature 3"):
        PCA(2).fit(X).transform(bad)


@parametrize_with_checks([PCA(n_components=2)])
def test_sklearn_compatible(estimator: object, check: object) -> None:
    check(estimator)  # type: ignore[operator]
