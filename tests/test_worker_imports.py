"""Workers run the engine, the kernels and the data readers only: no fit makes a worker import
scikit-learn (nor the estimators), and ``import daskcluster`` is light."""

from __future__ import annotations

import pydoc
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Modules a worker must never load.
HEAVY = ("sklearn", "daskcluster.cluster._kmeans", "daskcluster.mixture._base", "daskcluster.decomposition._nmf",
         "daskcluster.decomposition._opnmf", "daskcluster.decomposition._pca")


def _heavy_loaded() -> list[str]:
    """On a worker: the heavy modules it has loaded."""
    import sys

    return [m for m in HEAVY if m in sys.modules]


def _fresh_import(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after ``statement``."""
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT,
                         timeout=120).stdout
    return set(out.split())


def test_import_daskcluster_is_light() -> None:
    loaded = _fresh_import("import daskcluster")
    assert not {m for m in loaded if m.split(".")[0] in ("sklearn", "dask", "numpy", "zarr", "numba", "scipy")}
    assert {m for m in loaded if m.startswith("daskcluster")} == {"daskcluster", "daskcluster._lazy",
                                                                   "daskcluster.errors"}


#: Modules whose functions run on workers, besides every module of the engine and the kernels.
WORKER_SIDE = ("daskcluster.io", "daskcluster.io_sparse", "daskcluster.io_frames", "daskcluster.datasets.blobs",
               "daskcluster.datasets.infinite", "daskcluster.datasets.store",
               "daskcluster.decomposition._nmf_init")
ALL_OF = "; ".join(f"import pkgutil, importlib, {p}; [importlib.import_module(m.name) for m in pkgutil.walk_packages("
                   f"{p}.__path__, '{p}.')]" for p in ("daskcluster.engine", "daskcluster.kernels"))


def test_worker_side_modules_do_not_import_sklearn() -> None:
    loaded = _fresh_import(ALL_OF + "; " + "; ".join(f"import {m}" for m in WORKER_SIDE))
    assert {*WORKER_SIDE, "daskcluster.engine.sequential", "daskcluster.kernels.mixture.passes"} <= loaded
    assert not loaded & set(HEAVY)


def test_lazy_names_behave_as_eager_ones() -> None:
    import daskcluster
    import daskcluster.cluster
    import daskcluster.datasets
    from daskcluster import KMeans  # noqa: F401  (the import statement itself is the test)

    assert daskcluster.KMeans is daskcluster.cluster.KMeans
    assert {"KMeans", "GaussianMixture", "NMF", "DBSCAN", "scaled"} <= set(dir(daskcluster))
    assert set(daskcluster.__all__) <= set(dir(daskcluster))
    assert set(daskcluster.datasets.__all__) <= set(dir(daskcluster.datasets))
    assert all(getattr(daskcluster.datasets, name) is not None for name in daskcluster.datasets.__all__)
    namespace: dict[str, Any] = {}
    exec("from daskcluster.mixture import *", namespace)  # noqa: S102
    assert namespace["GaussianMixture"].__name__ == "GaussianMixture"
    assert "class KMeans" in pydoc.render_doc(daskcluster.cluster, renderer=pydoc.plaintext)  # help() sees them
    with pytest.raises(AttributeError, match="has no attribute 'KMean'"):
        daskcluster.KMean  # noqa: B018


def _transitions(dask_scheduler: Any) -> int:
    """On the scheduler: the task transitions it has made."""
    return int(dask_scheduler.transition_counter)


@pytest.fixture(scope="module")
def fresh_client() -> Iterator[Any]:
    """Workers that have run nothing yet (not the shared test cluster). A test that uses it
    runs its graphs there only inside ``dask.config.set(scheduler=fresh_client.get)``: the
    synchronous scheduler every test gets by default would run them in the test's process."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      memory_limit="1GiB") as cluster, Client(cluster) as client:
        yield client


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Maximum number of iterations")
@pytest.mark.filterwarnings("ignore:OPNMF did not converge")
def test_no_fit_makes_a_worker_import_sklearn(fresh_client: Any, tmp_path: Path) -> None:
    import daskcluster as dc
    from daskcluster.io import write_zarr

    rng = np.random.default_rng(0)
    X = (rng.standard_normal((3000, 6)) + rng.integers(0, 3, 3000)[:, None] * 4).astype(np.float32)
    Xp = np.abs(X)
    path = str(tmp_path / "x.zarr")
    write_zarr(X, path, chunk_bytes=16 * 1024)
    lazy = da.from_array(X, chunks=500)
    fits: dict[str, Callable[[], Any]] = {
        "KMeans lloyd, streamed": lambda: dc.KMeans(3, algorithm="lloyd", n_init=1, random_state=0, cache=False,
                                                    max_iter=5).fit(path),
        "KMeans elkan, streamed": lambda: dc.KMeans(3, algorithm="elkan", n_init=1, random_state=0, cache=False,
                                                    max_iter=5).fit(path),
        "KMeans predict and score": lambda: (dc.KMeans(3, n_init=1, random_state=0, max_iter=3).fit(lazy)
                                             .predict(lazy).compute(),
                                             dc.KMeans(3, n_init=1, random_state=0, max_iter=3).fit(lazy).score(lazy)),
        "MiniBatchKMeans fit": lambda: dc.MiniBatchKMeans(3, random_state=0, batch_size=200, max_iter=2).fit(lazy),
        "MiniBatchKMeans partial_fit": lambda: dc.MiniBatchKMeans(3, random_state=0).partial_fit(lazy[:500])
        .partial_fit(lazy[500:1000]),
        "GaussianMixture": lambda: dc.GaussianMixture(3, random_state=0, max_iter=5).fit(lazy).score(lazy),
        "BayesianGaussianMixture": lambda: dc.BayesianGaussianMixture(n_components=3, random_state=0, max_iter=5)
        .fit(lazy).predict(lazy).compute(),
        "NMF": lambda: dc.NMF(3, random_state=0, max_iter=5, init="random").fit(da.from_array(Xp, chunks=500)),
        "NMF streamed": lambda: dc.NMF(3, random_state=0, max_iter=3, init="nndsvda", cache=False,
                                       temp_folder=str(tmp_path / "w")).fit(da.from_array(Xp, chunks=500)),
        "DBSCAN": lambda: dc.DBSCAN(eps=0.5, min_samples=5).fit(da.from_array(X[:, :2].copy(), chunks=500)),
        "PCA transform and inverse_transform": lambda: _pca_round_trip(dc.PCA(3).fit(lazy), lazy),
        "OPNMF over the samples": lambda: dc.OPNMF(3, orientation="samples", init="random", random_state=0,
                                                   max_iter=3).fit(da.from_array(Xp, chunks=500)).coef_.compute(),
    }
    assert not any(fresh_client.run(_heavy_loaded).values())
    culprits = {}
    idle = []
    for name, fit in fits.items():
        before = fresh_client.run_on_scheduler(_transitions)
        with dask.config.set(scheduler=fresh_client.get):
            fit()
        if fresh_client.run_on_scheduler(_transitions) == before:
            idle.append(name)
        loaded = {m for mods in fresh_client.run(_heavy_loaded).values() for m in mods}
        if loaded:
            culprits[name] = sorted(loaded)
            fresh_client.restart()
    assert idle == []  # each fit ran its passes on the workers
    assert culprits == {}
    assert not any(fresh_client.run(lambda: "sklearn" in sys.modules).values())


def _pca_round_trip(pca: Any, X: da.Array) -> np.ndarray:
    """``inverse_transform`` of the lazy ``transform`` of ``X``, computed."""
    return np.asarray(pca.inverse_transform(pca.transform(X)).compute())
