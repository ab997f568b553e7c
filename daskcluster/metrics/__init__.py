"""Clustering metrics as passes over the data, with scikit-learn's names and meanings.

Labels may be lazy Dask arrays; nothing N-sized comes to the client. Imported on first use
(:mod:`daskcluster._lazy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "adjusted_rand_score": "._contingency",
        "calinski_harabasz_score": "._geometry",
        "contingency_matrix": "._contingency",
        "davies_bouldin_score": "._geometry",
        "homogeneity_completeness_v_measure": "._contingency",
        "inertia": "._geometry",
        "majority_label_accuracy": "._contingency",
        "matched_accuracy": "._contingency",
        "normalized_mutual_info_score": "._contingency",
        "silhouette_error_bound": "._geometry",
        "silhouette_score": "._geometry",
    },
)

if TYPE_CHECKING:
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
