"""The k-means driver's loop: what it does to the process beside the passes."""

from __future__ import annotations

import gc

import dask.array as da
import numpy as np
from sklearn.datasets import make_blobs

from daskcluster import KMeans
from daskcluster.cluster._driver import frozen_heap
from daskcluster.progress import progress_hook


def _fit_seeing_freeze_counts(X: da.Array) -> tuple[np.ndarray, list[int]]:
    seen: list[int] = []
    with progress_hook(lambda rep: seen.append(gc.get_freeze_count())):
        km = KMeans(3, init=np.asarray(X[:3]), n_init=1, max_iter=5, tol=0).fit(X)
    return km.cluster_centers_, seen


def test_heap_frozen_while_a_fit_runs_and_unfrozen_after() -> None:
    X = da.from_array(make_blobs(600, 4, centers=3, random_state=0)[0], chunks=(100, 4))
    assert gc.get_freeze_count() == 0
    centers, seen = _fit_seeing_freeze_counts(X)
    assert seen and all(count > 0 for count in seen)  # every iteration ran with the heap frozen
    assert gc.get_freeze_count() == 0
    # a heap the program froze stays as it was, and the centers do not depend on it
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        again, _ = _fit_seeing_freeze_counts(X)
        assert 0 < gc.get_freeze_count() <= frozen  # still frozen (less what was freed meanwhile)
    finally:
        gc.unfreeze()
    np.testing.assert_array_equal(centers, again)


def test_frozen_heap_unfreezes_on_error() -> None:
    try:
        with frozen_heap():
            assert gc.get_freeze_count() > 0
            raise KeyError("stop")
    except KeyError:
        pass
    assert gc.get_freeze_count() == 0
