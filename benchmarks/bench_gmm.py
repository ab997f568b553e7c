"""Gaussian mixtures on real MNIST (PCA to 50 dimensions): daskcluster vs scikit-learn, one run.

Run from the project root::

    python benchmarks/bench_gmm.py            # full run: 70,000 x 50, writes benchmarks/RESULTS-gmm.md
    python benchmarks/bench_gmm.py --quick    # smoke test: 10,000 rows, 1 repeat, writes nothing
    python benchmarks/bench_gmm.py --iterations-only --types diag --no-cluster --repeats 3
                                              # times per iteration only (e.g. two checkouts compared)

What is measured (all in one process, one run, so that ratios compare like with like):

0. MNIST (``../shared/data/mnist.npz``, 70,000 x 784 ``uint8``), ``X / 255`` reduced to 50
   dimensions by ``dask_ml.decomposition.PCA`` (TSQR, out of core on a row-chunked Dask
   array); the projection ``Z`` (float64, 70,000 x 50) is what every fit below sees.
1. Time per EM iteration, ``n_components=10``, each covariance type, from the same initial
   parameters (scikit-learn's ``'kmeans'`` initialization with ``random_state=0``, passed to
   both as ``weights_init``/``means_init``/``precisions_init``) with ``tol=0`` so both run
   exactly ``--iters`` iterations (``n_iter_`` checked). Time per iteration = fit time /
   iterations, nothing subtracted (no initialization pass is made). Cases: scikit-learn
   ``GaussianMixture`` with the default BLAS threads and with one BLAS thread (on a loaded
   machine OpenBLAS's threads can make it many times slower; the faster of the two is the
   scikit-learn figure); daskcluster on the threaded scheduler (NumPy ``Z`` given to ``fit``);
   daskcluster on a ``distributed.LocalCluster(n_workers=2, threads_per_worker=1,
   processes=True)`` with ``Z`` persisted on the workers once before timing. Every case runs
   ``--repeats`` times, round-robin, after one untimed warm-up fit each; the median is
   reported. The largest difference between the two libraries' ``lower_bounds_`` is reported.
2. A GEMM-only floor for the full-covariance iteration, measured in every round between the
   timed fits (median reported): the E-step whitening ``Z @ [L_1 ... L_10]`` (70,000 x 50 @
   50 x 500) and the M-step weighted outer products ``Z^T [r_1 Z ... r_10 Z]`` (50 x 70,000 @
   70,000 x 500, the weighted rows built beforehand) timed alone, best of 3, three ways on the
   same two cores: whole arrays with the default BLAS threads; two threads each on half the
   rows with one BLAS thread; and the same in 1,024-row slices into reused buffers. The least
   is the floor.
3. A default fit (``init_params='kmeans'``, ``tol=1e-3``, ``max_iter=100``, ``random_state=0``)
   of each type for both libraries (threaded scheduler; scikit-learn with its faster BLAS
   setting from 1.): total time, iterations, final lower bound and majority-label accuracy
   (each component labelled with its most frequent digit).
4. Where the time of our full-covariance iteration goes: one kernel pass over ``Z`` in four
   chunks on one thread, under ``cProfile``.
5. ``BayesianGaussianMixture`` (skipped with ``--no-bayesian``): time per iteration of each
   covariance type against scikit-learn's, both from the same initial responsibilities (one-hot
   at the rows ``init_params='random_from_data'`` draws for ``random_state=0``) and the default
   priors given explicitly, ``tol=0``; threaded and on the same ``LocalCluster``; cases as in 1.
6. Where the time of one iteration goes, each type, both estimators, both libraries: one
   thread's CPU time under ``cProfile`` (skipped with ``--no-bayesian``).

Default fits are skipped with ``--no-default-fits``.

The Markdown goes to ``benchmarks/RESULTS-gmm.md`` (the whole file is rewritten).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as _dt
import os
import platform
import pstats
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench_kmeans import git_commit, versions  # noqa: E402
from machine import cpu_model  # noqa: E402

TYPES = ("full", "tied", "diag", "spherical")
K = 10
#: scikit-learn's cases: its default BLAS threads and one BLAS thread (``--sklearn-one-thread``: the latter only).
SKLEARN_CASES = ("sklearn", "sklearn-1-blas-thread")


def blas_info() -> str:
    """The BLAS and OpenMP libraries of this process (``threadpoolctl``): kernel, version, threads."""
    import sklearn.cluster  # noqa: F401  (loads scikit-learn's OpenMP runtime, so that it is listed)
    from threadpoolctl import threadpool_info

    return "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture') or ''} "
                     f"({i.get('num_threads')} threads)".replace("  ", " ") for i in threadpool_info())


def timed(f: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = f()
    return time.perf_counter() - t0, out


def load(n_rows: int | None, projection: str | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """MNIST projected on 50 principal components by dask-ml's PCA (out of core); with
    ``projection``, the projection saved there by an earlier run (PCA seconds NaN), or saved
    there after this one."""
    import dask.array as da
    from dask_ml.decomposition import PCA

    from daskcluster.datasets.mnist import find_mnist, load_mnist_npz

    path = find_mnist(ROOT)
    if path is None:
        sys.exit("MNIST not found: put mnist.npz in ../shared/data/ or set DASKCLUSTER_MNIST.")
    images, labels = load_mnist_npz(path)
    if n_rows is not None:
        images, labels = images[:n_rows], labels[:n_rows]
    X = da.from_array(images, chunks=(10_000, images.shape[1])) / 255.0
    if projection is not None and os.path.exists(projection):
        Z = np.load(projection)
        if Z.shape != (images.shape[0], 50):
            sys.exit(f"{projection} holds shape {Z.shape}, not ({images.shape[0]}, 50): remove it or give another path.")
        return np.ascontiguousarray(Z, dtype=np.float64), labels.astype(np.int64), float("nan")
    seconds, Z = timed(lambda: PCA(n_components=50, svd_solver="tsqr", random_state=0).fit(X).transform(X).compute())
    if projection is not None:
        np.save(projection, Z)
    return np.ascontiguousarray(Z, dtype=np.float64), labels.astype(np.int64), seconds


def initial_parameters(Z: np.ndarray, covariance_type: str) -> dict[str, np.ndarray]:
    from sklearn.mixture import GaussianMixture as Sk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = Sk(K, covariance_type=covariance_type, max_iter=0, random_state=0).fit(Z)
    return {"weights_init": sk.weights_, "means_init": sk.means_, "precisions_init": sk.precisions_}


def accuracy(y: np.ndarray, labels: np.ndarray) -> float:
    table = np.zeros((int(y.max()) + 1, int(labels.max()) + 1))
    np.add.at(table, (y, labels), 1)
    return float(table.max(axis=0).sum() / table.sum())


# --------------------------------------------------------------------------- per-iteration


def bayesian_initial_parameters(Z: np.ndarray, covariance_type: str) -> dict[str, Any]:
    """The same initial responsibilities for both libraries (one-hot at the rows scikit-learn's
    ``'random_from_data'`` draws for ``random_state=0``) and the default priors given
    explicitly, so that neither library reads the data for them during the timed fit."""
    cov = np.cov(Z.T)
    prior = {"full": cov, "tied": cov, "diag": np.diagonal(cov).copy(),
             "spherical": float(np.diagonal(cov).mean())}[covariance_type]
    return {"init_params": "random_from_data", "random_state": 0, "mean_prior": Z.mean(axis=0),
            "covariance_prior": prior}


def per_iteration(Z: np.ndarray, iters: dict[str, int], repeats: int, client: Any = None,
                  with_sklearn: bool = True, floors: list[dict[str, float]] | None = None,
                  estimator: str = "gmm", types: tuple[str, ...] = TYPES) -> dict[tuple[str, str], dict[str, Any]]:
    """Median seconds per iteration of each (library, type) from the same initial parameters
    (``estimator='gmm'``: ``GaussianMixture``; ``'bgmm'``: ``BayesianGaussianMixture`` from the
    same initial responsibilities)."""
    import dask
    import dask.array as da
    from threadpoolctl import threadpool_limits

    from daskcluster.progress import progress_hook

    if estimator == "gmm":
        from sklearn.mixture import GaussianMixture as Sk

        from daskcluster.mixture import GaussianMixture as Ours

        inits = {ct: initial_parameters(Z, ct) for ct in types}
    else:
        from sklearn.mixture import BayesianGaussianMixture as Sk  # type: ignore[assignment]

        from daskcluster.mixture import BayesianGaussianMixture as Ours  # type: ignore[assignment]

        inits = {ct: bayesian_initial_parameters(Z, ct) for ct in types}

    def GaussianMixture(k: int, **kwargs: Any) -> Any:  # both estimators, by keyword
        return Ours(n_components=k, **kwargs)

    def Sk_(k: int, **kwargs: Any) -> Any:
        return Sk(n_components=k, **kwargs)
    data: Any = Z
    scheduler: dict[str, Any] = {}
    if client is not None:
        from distributed import wait

        data = client.persist(da.from_array(Z, chunks=(-(-Z.shape[0] // 8), Z.shape[1])))
        wait(data)
        scheduler = {"scheduler": client.get}
    results: dict[tuple[str, str], dict[str, Any]] = {}
    libs = (list(SKLEARN_CASES) if with_sklearn else []) + ["daskcluster"]
    with warnings.catch_warnings(), dask.config.set(**scheduler):  # warm-up, not timed
        warnings.simplefilter("ignore")
        for ct in types:
            if with_sklearn and "sklearn" in SKLEARN_CASES:
                Sk_(K, covariance_type=ct, max_iter=1, **inits[ct]).fit(Z)
            if with_sklearn:
                with threadpool_limits(1):
                    Sk_(K, covariance_type=ct, max_iter=1, **inits[ct]).fit(Z)
            GaussianMixture(K, covariance_type=ct, max_iter=1, cache=False, **inits[ct]).fit(data)
    for rep in range(repeats):
        if floors is not None:
            floors.append(gemm_floor(Z))
            print(f"  [{rep + 1}/{repeats}] floor {floors[-1]['floor']:.4f} s", flush=True)
        for ct in types:
            for lib in libs:
                kwargs = dict(covariance_type=ct, max_iter=iters[ct], tol=0.0, **inits[ct])
                hook: list[float] = []
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if lib == "sklearn":
                        seconds, model = timed(lambda: Sk_(K, **kwargs).fit(Z))
                    elif lib == "sklearn-1-blas-thread":
                        with threadpool_limits(1):
                            seconds, model = timed(lambda: Sk_(K, **kwargs).fit(Z))
                    else:
                        with dask.config.set(**scheduler), progress_hook(lambda r: hook.append(r.seconds)):
                            seconds, model = timed(lambda: GaussianMixture(K, cache=False, **kwargs).fit(data))
                assert model.n_iter_ == iters[ct], (lib, ct, model.n_iter_)
                entry = results.setdefault((lib, ct), {"per_iter": [], "hook": [], "lower_bounds": None})
                entry["per_iter"].append(seconds / iters[ct])
                entry["hook"].extend(hook)
                entry["lower_bounds"] = np.ravel(np.asarray(model.lower_bounds_, dtype=float))
                print(f"  [{rep + 1}/{repeats}] {lib:11s} {ct:9s} {seconds / iters[ct]:.4f} s/iter", flush=True)
    for entry in results.values():
        entry["median"] = statistics.median(entry["per_iter"])
        entry["min"] = min(entry["per_iter"])
        entry["hook_median"] = statistics.median(entry["hook"]) if entry["hook"] else float("nan")
    if with_sklearn:
        for ct in types:
            b = results[("sklearn-1-blas-thread", ct)]
            a = results.get(("sklearn", ct), b)
            one = b["min"] <= a["min"]
            results[("sklearn-best", ct)] = {
                "min": min(a["min"], b["min"]), "median": min(a["median"], b["median"]), "one_thread": one,
            }
    return results


# --------------------------------------------------------------------------- floor


def gemm_floor(Z: np.ndarray, repeats: int = 3) -> dict[str, float]:
    """E-step whitening + M-step weighted outer products of one full-covariance iteration,
    nothing else (the weighted rows are built beforehand), best of ``repeats``."""
    from threadpoolctl import threadpool_limits

    n, d = Z.shape
    rng = np.random.default_rng(0)
    lcat = np.triu(rng.normal(size=(K, d, d))).transpose(1, 0, 2).reshape(d, K * d).copy()
    resp = rng.random((n, K))
    resp /= resp.sum(axis=1, keepdims=True)
    weighted = (resp[:, :, None] * Z[:, None, :]).reshape(n, K * d)
    rows = 1024

    def best(f: Callable[[], Any]) -> float:
        f()
        return min(timed(f)[0] for _ in range(repeats))

    def sliced(part: slice) -> None:
        # in slices, into reused buffers: no 280 MB product written to memory, weights in cache
        y = np.empty((rows, K * d))
        w = weighted[:rows].copy()
        for s in range(part.start, part.stop, rows):
            x = Z[s : min(s + rows, part.stop)]
            np.matmul(x, lcat, out=y[: x.shape[0]])
            x.T @ w[: x.shape[0]]

    out: dict[str, float] = {}
    out["e_whole"] = best(lambda: Z @ lcat)
    out["m_whole"] = best(lambda: Z.T @ weighted)
    halves = [slice(0, n // 2), slice(n // 2, n)]
    with threadpool_limits(1), ThreadPoolExecutor(2) as pool:
        out["e_split"] = best(lambda: list(pool.map(lambda s: Z[s] @ lcat, halves)))
        out["m_split"] = best(lambda: list(pool.map(lambda s: Z[s].T @ weighted[s], halves)))
        out["sliced"] = best(lambda: list(pool.map(sliced, halves)))
        out["one_thread"] = best(lambda: sliced(slice(0, n)))
    out["whole"] = out["e_whole"] + out["m_whole"]
    out["split"] = out["e_split"] + out["m_split"]
    out["floor"] = min(out["whole"], out["split"], out["sliced"])
    return out


def summarize_floor(runs: list[dict[str, float]]) -> dict[str, float]:
    """Median of each part over the rounds, and the least floor of any round (``floor_min``)."""
    out = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    out["floor_min"] = min(r["floor"] for r in runs)
    return out


# --------------------------------------------------------------------------- default fits


def default_fits(Z: np.ndarray, y: np.ndarray, one_thread: dict[str, bool]) -> dict[tuple[str, str], dict[str, Any]]:
    from contextlib import nullcontext

    from sklearn.mixture import GaussianMixture as Sk
    from threadpoolctl import threadpool_limits

    from daskcluster.mixture import GaussianMixture

    out: dict[tuple[str, str], dict[str, Any]] = {}
    for ct in TYPES:
        for lib, cls in (("sklearn", Sk), ("daskcluster", GaussianMixture)):
            limit = threadpool_limits(1) if lib == "sklearn" and one_thread[ct] else nullcontext()
            with warnings.catch_warnings(), limit:
                warnings.simplefilter("ignore")
                seconds, model = timed(lambda: cls(K, covariance_type=ct, random_state=0).fit(Z))
            labels = np.asarray(model.predict(Z))
            out[(lib, ct)] = {"seconds": seconds, "n_iter": model.n_iter_, "lower_bound": model.lower_bound_,
                              "converged": model.converged_, "accuracy": accuracy(y, labels)}
            print(f"  default {lib:11s} {ct:9s} {seconds:.2f}s n_iter={model.n_iter_} "
                  f"lb={model.lower_bound_:.4f} acc={out[(lib, ct)]['accuracy']:.3f}", flush=True)
    return out


# --------------------------------------------------------------------------- profile


def profile_full(Z: np.ndarray) -> list[tuple[str, float]]:
    """Seconds per function of one single-threaded kernel pass (full, 10 components)."""
    from threadpoolctl import threadpool_limits

    from daskcluster.kernels import mixture as KM
    from daskcluster.kernels.blocks import Affine, ChunkInfo

    init = initial_parameters(Z, "full")
    gp = KM.gaussian_params(init["weights_init"], init["means_init"],
                            KM.covariance_of("full").cholesky_from_precisions(init["precisions_init"]), "full",
                            Z.shape[0])
    params = KM.EMParams((gp,), Affine())
    step = -(-Z.shape[0] // 4)

    def one_pass() -> None:
        for s in range(0, Z.shape[0], step):
            KM.em_kernel(Z[s : s + step], None, ChunkInfo(0, s), params)

    with threadpool_limits(1):
        one_pass()
        prof = cProfile.Profile()
        total, _ = timed(lambda: prof.runcall(one_pass))
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    wanted = {("full.py", "mahalanobis"): "E-step: whitening GEMM + squared norms",
              ("estep.py", "_estep_rows"): "log-sum-exp, responsibilities",
              ("full.py", "end_segment"): "M-step: gather rows + weighted outer-product GEMMs",
              ("stats.py", "add"): "n_k and weighted sums"}
    rows = []
    for (path, _, name), (_, _, tottime, cumtime, _) in stats.items():
        if (os.path.basename(path), name) in wanted:
            rows.append((wanted[(os.path.basename(path), name)], cumtime))
    rows.append(("total (one pass, one thread)", total))
    return rows


#: Parts of one iteration: (file, function) -> part, for ours and for scikit-learn's estimators.
OUR_PARTS = {
    ("passes.py", "tree_reduce"): "pass (Dask graph and scheduling, kernels, merges)",
    ("passes.py", "em_kernel"): "kernels (all chunks)",
    ("diag_rows.py", "add"): "compiled loop: log-density, log-sum-exp, r log r, statistics",
    ("passes.py", "accumulate"): "tiles: E-step, log-sum-exp and statistics",
    ("estep.py", "run"): "E-step: log-density, log-sum-exp, responsibilities, r log r",
    ("full.py", "mahalanobis"): "E-step distances (whitening GEMM, squared norms)",
    ("tied.py", "mahalanobis"): "E-step distances (whitening GEMM, expanded distances)",
    ("estep.py", "_estep_rows"): "log-sum-exp, responsibilities, r log r (compiled)",
    ("stats.py", "add"): "statistics: n_k, weighted sums (and tied's second moments)",
    ("stats.py", "end_segment"): "statistics: full's second moments (SYRK over the rows held)",
    ("_em.py", "step"): "client: M-step",
    ("_variational.py", "step"): "client: variational update and lower bound",
    ("_variational.py", "kernel_params"): "client: E-step constants (digamma terms, expected log-weights)",
    ("_em.py", "kernel_params"): "client: E-step constants",
}
SK_PARTS = {
    ("_base.py", "_estimate_log_prob_resp"): "E-step (log-density, weights, log-sum-exp)",
    ("_gaussian_mixture.py", "_estimate_log_gaussian_prob"): "E-step log-density",
    ("_bayesian_mixture.py", "_estimate_log_prob"): "E-step log-density and variational terms",
    ("_bayesian_mixture.py", "_estimate_log_weights"): "expected log-weights (digamma)",
    ("_logsumexp.py", "logsumexp"): "log-sum-exp",
    ("_base.py", "_m_step"): "M-step",
    ("_gaussian_mixture.py", "_m_step"): "M-step",
    ("_bayesian_mixture.py", "_m_step"): "M-step (statistics and variational update)",
    ("_bayesian_mixture.py", "_compute_lower_bound"): "lower bound",
}


def profile_iterations(Z: np.ndarray, iters: dict[str, int]) -> dict[tuple[str, str, str], dict[str, float]]:
    """Seconds per iteration of each part (cProfile cumulative times / iterations), one thread:
    our two estimators on Dask's synchronous scheduler and scikit-learn's, from the same initial
    parameters as the per-iteration timings. Keys ``(library, estimator, type)``."""
    import dask
    from sklearn.mixture import BayesianGaussianMixture as SkB
    from sklearn.mixture import GaussianMixture as SkG
    from threadpoolctl import threadpool_limits

    from daskcluster.mixture import BayesianGaussianMixture, GaussianMixture

    out: dict[tuple[str, str, str], dict[str, float]] = {}
    for ct in TYPES:
        n = iters[ct]
        for est, inits in (("gmm", initial_parameters(Z, ct)), ("bgmm", bayesian_initial_parameters(Z, ct))):
            cases = (("daskcluster", GaussianMixture if est == "gmm" else BayesianGaussianMixture, OUR_PARTS),
                     ("sklearn", SkG if est == "gmm" else SkB, SK_PARTS))
            for lib, cls, parts in cases:
                def fit() -> Any:
                    extra = {"cache": False} if lib == "daskcluster" else {}
                    return cls(n_components=K, covariance_type=ct, max_iter=n, tol=0.0, **inits, **extra).fit(Z)

                with warnings.catch_warnings(), threadpool_limits(1), dask.config.set(scheduler="synchronous"):
                    warnings.simplefilter("ignore")
                    fit()
                    prof = cProfile.Profile(timer=time.thread_time)  # CPU time: not inflated by other jobs
                    t0 = time.thread_time()
                    prof.runcall(fit)
                    total = time.thread_time() - t0
                row: dict[str, float] = {}
                for (path, _, name), (_, _, _, cumtime, _) in pstats.Stats(prof).stats.items():  # type: ignore[attr-defined]
                    part = parts.get((os.path.basename(path), name))
                    if part is not None:
                        row[part] = row.get(part, 0.0) + cumtime / n
                row["whole fit / iterations"] = total / n
                out[(lib, est, ct)] = row
                print(f"  profile {lib:11s} {est:4s} {ct:9s} {total / n:.4f} CPU s/iter (one thread, profiled)", flush=True)
    return out


def profile_section(prof: dict[tuple[str, str, str], dict[str, float]]) -> list[str]:
    """One table per covariance type: the parts of an iteration of each estimator."""
    lines = ["## Where the time of one iteration goes, each type (one thread, cProfile, CPU s per iteration)", "",
             "One BLAS thread, Dask's synchronous scheduler, the data in the chunks the estimators make; the "
             "thread's CPU time (`time.thread_time`, so that other jobs on the shared machine do not inflate it); "
             "cumulative times of the functions named, divided by the iterations (nested parts are included in "
             "the parts above them: the kernels in the pass, the E-step in the tiles). scikit-learn's fit also "
             "makes a final E-step (its `fit` is `fit_predict`).", ""]
    for ct in TYPES:
        cols = [("daskcluster", "gmm"), ("daskcluster", "bgmm"), ("sklearn", "gmm"), ("sklearn", "bgmm")]
        lines += [f"**{ct}**", "", "| part | " + " | ".join(f"{lib} {'GMM' if e == 'gmm' else 'BGMM'}"
                                                         for lib, e in cols) + " |",
                  "| --- |" + " ---: |" * len(cols)]
        order = [*OUR_PARTS.values(), *SK_PARTS.values(), "whole fit / iterations"]
        parts = [p for i, p in enumerate(order)
                 if p not in order[:i] and any(p in prof[(lib, e, ct)] for lib, e in cols)]
        for part in parts:
            cells = [prof[(lib, e, ct)].get(part) for lib, e in cols]
            lines.append(f"| {part} | " + " | ".join("–" if c is None else f"{c:.4f}" for c in cells) + " |")
        lines.append("")
    return lines


# --------------------------------------------------------------------------- report


def _cell(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "–"
    return f"{entry['min']:.4f} / {entry['median']:.4f}"


def bayesian_section(threaded: dict[Any, Any], dist: dict[Any, Any], iters: dict[str, int],
                     floor: dict[str, float] | None = None) -> list[str]:
    """The BayesianGaussianMixture table and its targets."""
    lines = ["## BayesianGaussianMixture: time per iteration (same initial responsibilities, `tol=0`)", "",
             "Both start one-hot at the rows scikit-learn's `init_params='random_from_data'` draws for "
             "`random_state=0`, with the default priors (the data's mean and covariance) given explicitly; "
             f"iterations per fit: {', '.join(f'{ct} {iters[ct]}' for ct in TYPES)}. Seconds per iteration "
             "(fit time / iterations; `'tied'` includes both libraries' pass over all rows for its initial "
             "covariance), least / median.", "",
             "| covariance | scikit-learn (default BLAS) | scikit-learn (1 BLAS thread) | daskcluster threaded "
             "| daskcluster LocalCluster 2×1 | ratio threaded (least / median) | ratio LocalCluster (least / median) "
             "| max rel Δ lower bound |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    nan = {"min": float("nan"), "median": float("nan")}
    for ct in TYPES:
        sk, ours = threaded[("sklearn-best", ct)], threaded[("daskcluster", ct)]
        lc = dist.get(("daskcluster", ct), nan)
        lbs = threaded[("sklearn-1-blas-thread", ct)]["lower_bounds"], ours["lower_bounds"]
        diff = float(np.max(np.abs(lbs[0] - lbs[1]) / np.abs(lbs[0])))
        lines.append(f"| {ct} | {_cell(threaded.get(('sklearn', ct)))} | {_cell(threaded[('sklearn-1-blas-thread', ct)])} "
                     f"| {_cell(ours)} | {_cell(dist.get(('daskcluster', ct)))} "
                     f"| {ours['min'] / sk['min']:.2f}× / {ours['median'] / sk['median']:.2f}× "
                     f"| {lc['min'] / sk['min']:.2f}× / {lc['median'] / sk['median']:.2f}× | {diff:.1e} |")
    lines += ["", "Targets (issue 16): every covariance type ≤ 0.5× scikit-learn's time per iteration on threads "
              "(full ≤ 0.1×), ≤ 1.0× on the 2-worker LocalCluster.", ""]
    if floor is not None:
        sk_full = threaded[("sklearn-best", "full")]
        lines += [f"Full ≤ 0.1× means ≤ {0.1 * sk_full['min']:.4f} s per iteration (least) here. The GEMM-only "
                  f"floor of a full iteration measured in the same run (dense whitening and outer products, "
                  f"above) is {floor['floor_min']:.4f} s least / {floor['floor']:.4f} s median, "
                  f"{floor['floor_min'] / sk_full['min']:.2f}× / {floor['floor'] / sk_full['median']:.2f}× "
                  f"scikit-learn's iteration; its whitening GEMM alone is {floor['e_split']:.4f} s "
                  "(two threads × half the rows).", ""]
    return lines


def write_report(path: str, meta: dict[str, Any], threaded: dict[Any, Any], dist: dict[Any, Any],
                 floor: dict[str, float], defaults: dict[Any, Any], prof: list[tuple[str, float]],
                 iters: dict[str, int], extra: list[str] | None = None) -> str:
    nan = {"min": float("nan"), "median": float("nan")}
    lines = ["# GaussianMixture on MNIST (issue: mixture)", ""]
    lines += [f"Command: `{meta['command']}` — {meta['date']}", "",
              f"Machine: {meta['machine']}. The machine is shared with other jobs (load average at start "
              f"{meta['load_start']}, at end {meta['load_end']}), so every case was run {meta['repeats']} times, "
              "round-robin with the others and with the floor; tables give the **least** and the **median** "
              "over those rounds (the least is the best estimate of the uncontended time; targets are judged "
              "on both).", "",
              f"Data: MNIST {meta['shape'][0]:,} rows, `X / 255` → 50 dimensions by `dask_ml.decomposition.PCA` "
              "(TSQR, out of core): " + (f"{meta['pca_seconds']:.1f} s" if meta['pca_seconds'] == meta['pca_seconds']
                                         else "loaded from `--projection`, the file an earlier run of this script "
                                         "saved") + ". `n_components=10`.", ""]
    lines += ["## Time per EM iteration (same initial parameters, `tol=0`)", "",
              f"Iterations per fit: {', '.join(f'{ct} {iters[ct]}' for ct in TYPES)}. Seconds per iteration, "
              "least / median. " + ("scikit-learn with its default BLAS threads and with one BLAS thread (the "
                                    "faster is used for the ratios)." if "sklearn" in SKLEARN_CASES else
                                    "scikit-learn with one BLAS thread only (`--sklearn-one-thread`: on this loaded "
                                    "machine its default BLAS threads are several times slower)."), "",
              "| covariance | scikit-learn (default BLAS) | scikit-learn (1 BLAS thread) | daskcluster threaded "
              "| daskcluster LocalCluster 2×1 | speed-up threaded (least / median) | max abs Δ lower bound |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for ct in TYPES:
        sk, ours = threaded[("sklearn-best", ct)], threaded[("daskcluster", ct)]
        lbs = threaded[("sklearn-1-blas-thread", ct)]["lower_bounds"], ours["lower_bounds"]
        diff = float(np.max(np.abs(lbs[0] - lbs[1])))
        lines.append(f"| {ct} | {_cell(threaded.get(('sklearn', ct)))} | {_cell(threaded[('sklearn-1-blas-thread', ct)])} "
                     f"| {_cell(ours)} | {_cell(dist.get(('daskcluster', ct)))} "
                     f"| {sk['min'] / ours['min']:.1f}× / {sk['median'] / ours['median']:.1f}× | {diff:.1e} |")
    lines += ["", "## GEMM-only floor of the full-covariance iteration (median over the rounds)", "",
              "| part | whole arrays, default BLAS threads (s) | two threads × half the rows, 1 BLAS thread (s) |",
              "| --- | ---: | ---: |",
              f"| E-step whitening `Z @ [L_1 … L_10]` | {floor['e_whole']:.4f} | {floor['e_split']:.4f} |",
              f"| M-step outer products `Zᵀ [r_1 Z … r_10 Z]` | {floor['m_whole']:.4f} | {floor['m_split']:.4f} |",
              f"| sum | {floor['whole']:.4f} | {floor['split']:.4f} |", "",
              f"The same GEMMs in 1,024-row slices into reused buffers (no 280 MB product written to memory, "
              f"the weighted rows in cache), two threads × half the rows: {floor['sliced']:.4f} s "
              f"(one thread: {floor['one_thread']:.4f} s).", "",
              f"**Floor = {floor['floor_min']:.4f} s** least over the rounds, {floor['floor']:.4f} s median (the "
              "least of the three ways in each round).", ""]
    full = threaded[("daskcluster", "full")]
    full_lc = dist.get(("daskcluster", "full"), nan)
    sk = {ct: threaded[("sklearn-best", ct)] for ct in TYPES}
    ours = {ct: threaded[("daskcluster", ct)] for ct in TYPES}

    def ratio(a: dict[str, float], b: dict[str, float]) -> tuple[float, float]:
        return a["min"] / b["min"], a["median"] / b["median"]

    fl = {"min": floor["floor_min"], "median": floor["floor"]}
    targets = [
        ("full within 1.5× of the GEMM floor (threaded)", ratio(full, fl), "≤ 1.5", lambda v: v <= 1.5),
        ("full within 1.5× of the GEMM floor (LocalCluster)", ratio(full_lc, fl), "≤ 1.5", lambda v: v <= 1.5),
        ("full ≥ 5× faster than scikit-learn", ratio(sk["full"], ours["full"]), "≥ 5", lambda v: v >= 5),
        ("tied ≥ 4× faster than scikit-learn", ratio(sk["tied"], ours["tied"]), "≥ 4", lambda v: v >= 4),
        ("diag at least as fast as scikit-learn", ratio(sk["diag"], ours["diag"]), "≥ 1", lambda v: v >= 1),
        ("spherical at least as fast as scikit-learn", ratio(sk["spherical"], ours["spherical"]), "≥ 1",
         lambda v: v >= 1),
    ]
    lines += ["## Targets (threaded scheduler unless said)", "",
              "| target | measured (least / median) | required | met (least / median) |", "| --- | ---: | ---: | --- |"]
    for name, (lo, med), req, ok in targets:
        lines.append(f"| {name} | {lo:.2f} / {med:.2f} | {req} | {'yes' if ok(lo) else 'NO'} / "
                     f"{'yes' if ok(med) else 'NO'} |")
    lines += ["", "## Default fits (`init_params='kmeans'`, `tol=1e-3`, `random_state=0`, threaded scheduler)", ""]
    if defaults:
        lines += ["| covariance | library | total fit (s) | n_iter | converged | lower bound | majority-label accuracy |",
                  "| --- | --- | ---: | ---: | --- | ---: | ---: |"]
        for ct in TYPES:
            for lib in ("sklearn", "daskcluster"):
                r = defaults[(lib, ct)]
                lines.append(f"| {ct} | {lib} | {r['seconds']:.2f} | {r['n_iter']} | {r['converged']} | "
                             f"{r['lower_bound']:.4f} | {r['accuracy']:.3f} |")
        lines += ["", "One run each (scikit-learn with its faster BLAS setting from above). The two libraries start "
                  "from different k-means (scikit-learn's k-means++ and Lloyd; ours k-means|| and Lloyd, as passes), "
                  "so they reach different local optima with different numbers of iterations."]
    else:
        lines += ["Not run this time (`--no-default-fits`)."]
    lines += ["", "## Where the time of one full-covariance iteration goes (one thread, cProfile)", "",
              "| part | seconds |", "| --- | ---: |"]
    lines += [f"| {name} | {sec:.4f} |" for name, sec in prof]
    lines += ["", "Notes:", "",
              "- Our full-covariance M-step forms each component's second moment over the rows it holds "
              "(responsibility ≥ 1e-30, here about a quarter of the (row, component) pairs) by SYRK; the floor "
              "counts the dense products. scikit-learn's iteration spends most of its time outside BLAS "
              "(n × d temporaries per component).",
              "- daskcluster per-iteration medians from the progress hook (pass time only): "
              + ", ".join(f"{ct} {threaded[('daskcluster', ct)]['hook_median']:.4f} s" for ct in TYPES) + ".",
              ""]
    lines += extra or []
    text = "\n".join(lines)
    with open(path, "w") as fh:
        fh.write(text)
    return text


def iterations_only(Z: np.ndarray, iters: dict[str, int], repeats: int, types: tuple[str, ...], cluster: bool,
                    bayesian: bool) -> None:
    """Times per iteration of the chosen types, printed as one line per (estimator, type), after
    the machine, the BLAS and the load average (again at the end)."""
    print(f"{cpu_model()}, {os.cpu_count()} CPUs; BLAS {blas_info()}; commit {git_commit()}; load average "
          + ", ".join(f"{x:.1f}" for x in os.getloadavg()), flush=True)
    for estimator in ("gmm", "bgmm") if bayesian else ("gmm",):
        threaded = per_iteration(Z, iters, repeats, estimator=estimator, types=types)
        dist: dict[Any, Any] = {}
        if cluster:
            from distributed import Client, LocalCluster

            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, \
                    Client(lc) as client:
                dist = per_iteration(Z, iters, repeats, client=client, with_sklearn=False, estimator=estimator,
                                     types=types)
        for ct in types:
            sk, ours = threaded[("sklearn-best", ct)], threaded[("daskcluster", ct)]
            line = (f"{estimator:4s} {ct:9s} scikit-learn {sk['min']:.4f} s/iter, daskcluster threaded "
                    f"{ours['min']:.4f} ({ours['min'] / sk['min']:.2f}x)")
            if ("daskcluster", ct) in dist:
                lc_min = dist[("daskcluster", ct)]["min"]
                line += f", LocalCluster {lc_min:.4f} ({lc_min / sk['min']:.2f}x)"
            print(line + " (least over the repeats)", flush=True)
    print("load average at the end " + ", ".join(f"{x:.1f}" for x in os.getloadavg()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 rows, 1 repeat, no report")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-cluster", action="store_true", help="skip the LocalCluster runs")
    parser.add_argument("--no-bayesian", action="store_true", help="skip BayesianGaussianMixture")
    parser.add_argument("--sklearn-one-thread", action="store_true",
                        help="time scikit-learn with one BLAS thread only (on a loaded machine its default BLAS "
                        "threads are many times slower, so the one-thread case is its faster option)")
    parser.add_argument("--projection", default=None,
                        help="a .npy file of the projection: loaded when it exists, else computed and saved there")
    parser.add_argument("--no-default-fits", action="store_true",
                        help="skip the default fits (scikit-learn's take minutes on a loaded machine)")
    parser.add_argument("--iterations-only", action="store_true",
                        help="only the times per iteration against scikit-learn (threaded, and the LocalCluster "
                        "unless --no-cluster), printed, no report: e.g. to compare two checkouts")
    parser.add_argument("--types", default=",".join(TYPES), help="covariance types, comma-separated "
                        "(with --iterations-only)")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    iters = {"full": 8, "tied": 20, "diag": 20, "spherical": 20}
    if args.quick:
        iters = {ct: 3 for ct in TYPES}
    load_start = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print("loading MNIST and PCA...", flush=True)
    global SKLEARN_CASES
    if args.sklearn_one_thread:
        SKLEARN_CASES = ("sklearn-1-blas-thread",)
    Z, y, pca_seconds = load(10_000 if args.quick else None, args.projection)
    print(f"  Z {Z.shape}, PCA {pca_seconds:.1f}s", flush=True)
    if args.iterations_only:
        iterations_only(Z, iters, repeats, tuple(args.types.split(",")), not args.no_cluster, not args.no_bayesian)
        return
    print("per-iteration (and the floor), threaded scheduler...", flush=True)
    floors: list[dict[str, float]] = []
    threaded = per_iteration(Z, iters, repeats, floors=floors)
    floor = summarize_floor(floors)
    dist: dict[Any, Any] = {}
    if not args.no_cluster:
        from distributed import Client, LocalCluster

        print("per-iteration, LocalCluster...", flush=True)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            dist = per_iteration(Z, iters, repeats, client=client, with_sklearn=False)
    extra: list[str] = []
    if not args.no_bayesian:
        print("BayesianGaussianMixture per-iteration, threaded scheduler...", flush=True)
        b_threaded = per_iteration(Z, iters, repeats, estimator="bgmm")
        b_dist: dict[Any, Any] = {}
        if not args.no_cluster:
            from distributed import Client, LocalCluster

            print("BayesianGaussianMixture per-iteration, LocalCluster...", flush=True)
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
                    Client(cluster) as client:
                b_dist = per_iteration(Z, iters, repeats, client=client, with_sklearn=False, estimator="bgmm")
        extra = bayesian_section(b_threaded, b_dist, iters, floor)
    defaults: dict[Any, Any] = {}
    if not args.no_default_fits:
        print("default fits...", flush=True)
        defaults = default_fits(Z, y, {ct: threaded[("sklearn-best", ct)]["one_thread"] for ct in TYPES})
    print("profile...", flush=True)
    prof = profile_full(Z)
    if not args.no_bayesian:
        print("profile of one iteration per type...", flush=True)
        extra += profile_section(profile_iterations(Z, iters))
    meta = {
        "command": "python benchmarks/bench_gmm.py " + " ".join(sys.argv[1:]),
        "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs ({platform.machine()}); BLAS {blas_info()}; {versions()}; "
                   f"commit {git_commit()}",
        "load_start": load_start,
        "load_end": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
        "shape": Z.shape,
        "pca_seconds": pca_seconds,
        "repeats": repeats,
    }
    out = os.path.join(HERE, "RESULTS-gmm.md")
    text = write_report(out if not args.quick else os.devnull, meta, threaded, dist, floor, defaults, prof, iters,
                        extra)
    print(text)


if __name__ == "__main__":
    main()
