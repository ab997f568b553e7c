"""Clustering metrics as passes over the data, with scikit-learn's names and meanings.

Labels may be lazy Dask arrays; nothing N-sized comes to the client.
"""

from ._contingency import (
    adjusted_rand_score,
    contingency_matrix,
    homogeneity_completeness_v_measure,
    majority_label_accuracy,
    matched_accuracy,
    normalized_mutual_info_score,
)
from ._geometry import (
    calinski_harabasz_score,
    davies_bouldin_score,
    inertia,
    silhouette_error_bound,
    silhouette_score,
)

__all__ = [
    "adjusted_rand_score",
    "calinski_harabasz_score",
    "contingency_matrix",
    "davies_bouldin_score",
    "homogeneity_completeness_v_measure",
    "inertia",
    "majority_label_accuracy",
    "matched_accuracy",
    "normalized_mutual_info_score",
    "silhouette_error_bound",
    "silhouette_score",
]
