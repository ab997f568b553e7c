"""The elbow of a decreasing curve (inertia against the number of clusters)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ..errors import InvalidDataError

logger = logging.getLogger(__name__)


def find_elbow(n_clusters: Sequence[int], inertia: Sequence[float]) -> int | None:
    """The number of clusters at the elbow of the inertia curve, or None when there is none.

    The "kneedle" rule (Satopää et al., 2011) on the logarithm of the inertia: both axes are
    scaled to [0, 1] and the elbow is the point farthest below the straight line from the first
    point to the last. Inertia falls by factors as clusters are split, so on the log scale the
    bend sits where splitting stops paying off by a large factor, whatever the range of k swept
    (on the linear scale the first steps dominate and the elbow comes early). With an inertia
    of zero the linear scale is used. A curve with fewer than three points, or one that never
    falls below that line (no bend), has no elbow.

    Parameters
    ----------
    n_clusters : sequence of int of shape (m,)
        Increasing numbers of clusters.
    inertia : sequence of float of shape (m,)

    Returns
    -------
    int or None. No data pass.

    References
    ----------
    V. Satopää, J. Albrecht, D. Irwin, B. Raghavan. Finding a "kneedle" in a haystack: detecting
    knee points in system behavior. ICDCS Workshops, 2011.
    """
    k = np.asarray(n_clusters, dtype=np.float64)
    y = np.asarray(inertia, dtype=np.float64)
    if k.shape != y.shape or k.ndim != 1:
        raise InvalidDataError(f"n_clusters and inertia must be 1-D of the same length; got {k.shape} and {y.shape}.")
    ok = np.isfinite(y)
    k, y = k[ok], y[ok]
    order = np.argsort(k)
    k, y = k[order], y[order]
    if len(k) < 3 or k[0] == k[-1]:
        return None
    if (y > 0).all():
        y = np.log(y)
    if y[0] == y[-1]:
        return None
    kn = (k - k[0]) / (k[-1] - k[0])
    yn = (y - y[-1]) / (y[0] - y[-1])
    gap = (1.0 - kn) - yn  # the chord from (0, 1) to (1, 0), minus the curve
    best = int(np.argmax(gap))
    if gap[best] <= 0:
        return None
    return int(k[best])
