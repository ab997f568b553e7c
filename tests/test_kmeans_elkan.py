"""KMeans(algorithm="elkan"): the same clustering as Lloyd from the same init, with most
distances skipped; bounds kept beside the chunks only save work. (Equality with
scikit-learn's Lloyd for every chunking and dtype: tests/test_kmeans_sklearn.py.)"""

from __future__ import annotations

import os

import dask.array as da
import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs

from daskcluster import KMeans, scaled
from daskcluster.engine import count_passes, rowstate
from daskcluster.kernels import bounds as B
from daskcluster.kernels import kmeans as K
from daskcluster.kernels import sweep as S
from daskcluster.kernels.blocks import Affine, ChunkInfo
from daskcluster.progress import progress_hook


def blobs(dtype: type, n: int = 1500, d: int = 6, k: int = 5, seed: int = 0) -> np.ndarray:
    X, _ = make_blobs(n, d, centers=k, cluster_std=2.5, random_state=seed)
    return X.astype(dtype)


def test_elkan_with_sample_weight_scaled_uint8_and_many_clusters() -> None:
    rng = np.random.default_rng(0)
    X8 = rng.integers(0, 256, size=(3000, 12), dtype=np.uint8)
    X8[:1500, :6] //= 4
    w = rng.uniform(0.1, 3.0, len(X8))
    X = X8 / 255.0
    init = X[rng.choice(len(X), 40, replace=False)]
    ref = SkKMeans(40, init=init, n_init=1, algorithm="lloyd", max_iter=100).fit(X, sample_weight=w)
    data = scaled(da.from_array(X8, chunks=(700, 12)), 1 / 255)
    elkan = KMeans(40, init=init, n_init=1, algorithm="elkan", max_iter=100).fit(data, sample_weight=w)
    assert abs(elkan.n_iter_ - ref.n_iter_) <= 2
    np.testing.assert_allclose(elkan.cluster_centers_, ref.cluster_centers_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(elkan.inertia_, ref.inertia_, rtol=1e-6)


def test_elkan_skips_most_distances_once_few_rows_move() -> None:
    X = blobs(np.float64, n=6000, d=8, k=10, seed=3)
    init = X[:10].copy()
    computed: list[float] = []
    with progress_hook(lambda rep: computed.append(rep.metrics["computed"]) if rep.stage == "fit" else None):
        km = KMeans(10, init=init, n_init=1, algorithm="elkan", tol=0).fit(da.from_array(X, chunks=1000))
    assert km.n_iter_ == len(computed) > 3
    assert computed[0] == 1.0  # the first pass computes every distance
    assert max(computed[2:]) < 0.5 and computed[-1] < 0.05


def test_elkan_relocates_empty_clusters_as_lloyd() -> None:
    X = blobs(np.float64, n=1200, d=4, k=3, seed=1)
    init = np.vstack([X[[0, 400, 800, 1]], np.full((2, 4), 1e3)])  # two far centers empty at once
    ref = SkKMeans(6, init=init, n_init=1, algorithm="lloyd").fit(X)
    lloyd = KMeans(6, init=init, n_init=1, algorithm="lloyd").fit(da.from_array(X, chunks=300))
    with count_passes() as c:
        elkan = KMeans(6, init=init, n_init=1, algorithm="elkan").fit(da.from_array(X, chunks=300))
    assert lloyd.n_iter_ == ref.n_iter_
    assert elkan.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(elkan.cluster_centers_, ref.cluster_centers_, rtol=1e-9, atol=1e-9)
    assert c.passes <= elkan.n_iter_ * 2 + 1


def elkan_pass(X: np.ndarray, centers: np.ndarray, generation: int, drift: np.ndarray | None,
               state: dict | None, key: int = 0) -> tuple[K.LloydStats, int, dict]:
    half_cc, half_sep = B.center_geometry(centers) if drift is not None else (None, None)
    member = S.Member(S.ELKAN, centers, n_far=len(centers), key=key, generation=generation, drift=drift,
                      half_cc=half_cc, half_sep=half_sep)
    stats, state = S.sweep_state_kernel(X, None, ChunkInfo(0, 0), S.SweepParams((member,), Affine()), state)
    return stats.parts[0], stats.computed[0], state  # type: ignore[return-value]


@pytest.mark.parametrize("dense", [0, 2, 10**9])  # rows deferred to a GEMM: all, those with many open centers, none
def test_elkan_member_gives_the_same_statistics_with_or_without_its_state(dense: int,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The state only saves work: each step's labels and sums equal a fresh full step's, and a
    Lloyd member's."""
    monkeypatch.setattr(B, "dense_threshold", lambda k: dense)
    X = blobs(np.float32, n=900, d=5, k=6, seed=4)
    rng = np.random.default_rng(0)
    centers = X[:6].copy()
    state = None
    previous = None
    for generation in range(6):
        drift = None if previous is None else np.sqrt(((centers.astype(np.float64) - previous) ** 2).sum(1))
        stats, computed, state = elkan_pass(X, centers, generation, drift, state)
        fresh, all_distances, _ = elkan_pass(X, centers, generation, drift, None)
        plain = S.Member(S.LLOYD, centers, n_far=6)
        lloyd = S.sweep_kernel(X, None, ChunkInfo(0, 0), S.SweepParams((plain,), Affine())).parts[0]
        for other in (fresh, lloyd):
            np.testing.assert_array_equal(stats.weight_in_clusters, other.weight_in_clusters)
            np.testing.assert_allclose(stats.sums, other.sums, rtol=1e-12, atol=1e-9)
        assert fresh.inertia == pytest.approx(lloyd.inertia, rel=1e-12)
        assert all_distances == X.shape[0] * 6
        if generation:
            assert computed < all_distances and np.isnan(stats.inertia) and len(stats.far.index) == 0
        previous = centers.astype(np.float64)
        centers = (stats.sums / np.maximum(stats.weight_in_clusters, 1)[:, None]).astype(np.float32)
        centers += rng.normal(scale=0.01, size=centers.shape).astype(np.float32)
    # bounds made by another pass than the previous one are not used
    assert elkan_pass(X, centers, 42, np.zeros(6), state)[1] == X.shape[0] * 6
    # a member that is not in the pass keeps its bounds in the chunk's state
    _, _, state = elkan_pass(X, centers, 0, None, state, key=7)
    assert set(state) == {0, 7}


def test_fit_releases_the_bounds() -> None:
    X = blobs(np.float64)
    KMeans(5, init=X[:5].copy(), n_init=1, algorithm="elkan").fit(da.from_array(X, chunks=300))
    assert rowstate.held() == {}


def test_elkan_checkpoint_resume_gives_the_same_model(tmp_path: object) -> None:
    X = da.from_array(blobs(np.float64, n=3000, k=8, seed=2), chunks=500)
    params = {"n_clusters": 8, "random_state": 0, "n_init": 1, "algorithm": "elkan", "tol": 0}
    uninterrupted = KMeans(**params).fit(X)

    class Stop(Exception):
        pass

    def stop_at_3(rep: object) -> None:
        if rep.stage == "fit" and rep.iteration == 3:  # type: ignore[attr-defined]
            raise Stop

    ckpt = str(tmp_path) + "/fit.ckpt.npz"  # type: ignore[operator]
    with progress_hook(stop_at_3), pytest.raises(Stop):
        KMeans(**params, checkpoint=ckpt).fit(X)
    assert rowstate.held() == {}
    resumed = KMeans(**params, checkpoint=ckpt).fit(X)
    np.testing.assert_allclose(resumed.cluster_centers_, uninterrupted.cluster_centers_, rtol=1e-10)
    assert resumed.n_iter_ == uninterrupted.n_iter_
    assert resumed.inertia_ == pytest.approx(uninterrupted.inertia_, rel=1e-10)


def test_bad_algorithm() -> None:
    with pytest.raises(ValueError, match="'algorithm' parameter of KMeans must be .* Got 'full' instead"):
        KMeans(2, algorithm="full").fit(blobs(np.float64))


@pytest.mark.slow
def test_elkan_on_process_cluster_with_a_killed_worker() -> None:
    """Real worker processes: the bounds stay on the workers between passes; a worker killed
    mid-fit loses its chunks' bounds (and cached data), which are recomputed: same model."""
    from distributed import Client, LocalCluster

    X = blobs(np.float64, n=8000, d=6, k=8, seed=5)
    init = X[:8].copy()
    ref = SkKMeans(8, init=init, n_init=1, algorithm="lloyd").fit(X)
    Xd = da.from_array(X, chunks=1000)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        plain = KMeans(8, init=init, n_init=1, algorithm="elkan").fit(Xd)
        pids = list(client.run(os.getpid).values())
        killed = []

        def kill_one(rep: object) -> None:
            if rep.stage == "fit" and rep.iteration == 3 and not killed:  # type: ignore[attr-defined]
                os.kill(pids[0], 9)
                killed.append(pids[0])

        with progress_hook(kill_one):
            interrupted = KMeans(8, init=init, n_init=1, algorithm="elkan").fit(Xd)
        assert killed
        held = client.run(lambda: sum(rowstate.held().values()))
        assert sum(held.values()) == 0  # the fits released their bounds on every worker
    for km in (plain, interrupted):
        assert km.n_iter_ == ref.n_iter_
        np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-7, atol=1e-9)
        np.testing.assert_array_equal(km.labels_.compute(scheduler="sync"), ref.labels_)


@pytest.mark.slow
def test_elkan_streamed_from_zarr_keeps_its_bounds_on_the_workers(process_client: object, tmp_path: object) -> None:
    """Streamed data (cache=False): each chunk's task, its read included, runs on the same worker
    pass after pass, so the bounds are found again and late passes compute few distances."""
    from daskcluster.io import open_array, write_zarr

    X = blobs(np.float32, n=12_000, d=16, k=6, seed=7)
    path = str(tmp_path) + "/x.zarr"  # type: ignore[operator]
    write_zarr(X, path, chunk_bytes=100_000)
    data = open_array(path, chunk_bytes=100_000)
    assert data.numblocks[0] >= 4
    init = X[:6].copy()
    computed: list[float] = []
    with progress_hook(lambda rep: computed.append(rep.metrics["computed"]) if rep.stage == "fit" else None):
        elkan = KMeans(6, init=init, n_init=1, algorithm="elkan", tol=0, cache=False).fit(data)
    lloyd = KMeans(6, init=init, n_init=1, algorithm="lloyd", tol=0, cache=False).fit(data)
    assert elkan.n_iter_ == lloyd.n_iter_ > 4
    np.testing.assert_allclose(elkan.cluster_centers_, lloyd.cluster_centers_, rtol=1e-6, atol=1e-6)
    assert computed[-1] < 0.1, computed


@pytest.mark.slow
def test_elkan_on_persisted_chunks_in_one_task_each(process_client: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Persisted data whose chunks are not grouped by worker (scattered placement): each chunk's
    task runs where the chunk is held, and the bounds are found there."""
    from daskcluster.engine import passes

    monkeypatch.setattr(passes, "_reduce_by_worker", lambda *args, **kwargs: (False, None))
    X = blobs(np.float64, n=6000, d=8, k=6, seed=8)
    init = X[:6].copy()
    computed: list[float] = []
    with progress_hook(lambda rep: computed.append(rep.metrics["computed"]) if rep.stage == "fit" else None):
        elkan = KMeans(6, init=init, n_init=1, algorithm="elkan", tol=0).fit(X)
    ref = SkKMeans(6, init=init, n_init=1, algorithm="lloyd", tol=0).fit(X)
    assert elkan.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(elkan.cluster_centers_, ref.cluster_centers_, rtol=1e-7, atol=1e-9)
    assert computed[-1] < 0.2, computed
