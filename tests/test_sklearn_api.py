"""scikit-learn's own API checks, run on daskcluster's estimators (MiniBatchKMeans, NMF and
BayesianGaussianMixture run them in their own test modules)."""

from __future__ import annotations

import warnings

from sklearn.utils.estimator_checks import parametrize_with_checks

from daskcluster import (
    DBSCAN,
    OPNMF,
    AgglomerativeClustering,
    GaussianMixture,
    KMeans,
    SpectralClustering,
)

# Like scikit-learn's own KMeans: weighted seeding draws differ from seeding on repeated rows.
EXPECTED_FAILED = {
    "check_sample_weight_equivalence_on_dense_data": "random seeding sees weights, not repeated rows",
    "check_sample_weight_equivalence_on_sparse_data": "random seeding sees weights, not repeated rows",
}


@parametrize_with_checks([KMeans(n_clusters=3, random_state=0), KMeans(n_clusters=3, random_state=0, algorithm="elkan"),
                          AgglomerativeClustering(), SpectralClustering(n_clusters=3, random_state=0), DBSCAN(),
                          GaussianMixture(n_components=2, random_state=0),
                          OPNMF(n_components=2, orientation="features", max_iter=200, random_state=0)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED if isinstance(est, KMeans) else {})
def test_sklearn_compatible(estimator: object, check: object) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)  # type: ignore[operator]
