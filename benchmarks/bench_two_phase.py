"""Two-phase SpectralClustering and AgglomerativeClustering above ``max_samples``, against dask-ml's
Nyström SpectralClustering (and scikit-learn's estimators on the rows they can hold), in one run.

    python benchmarks/bench_two_phase.py [--data {blobs,moons}] [--n-samples 1000000] [--rounds 2]
        [--sklearn-rows 5000] [--skip-daskml]

Data (``--data``): ``blobs``, ``--n-samples`` rows of five 2-D Gaussian blobs (centers 8 apart,
unit deviation, ``make_blobs(random_state=1)``), asked for 5 clusters, ``gamma=0.1`` and Ward
linkage; or ``moons``, ``make_moons(noise=0.05, random_state=1)``, asked for 2 clusters, the
texts' ``gamma=100`` and single linkage (which follows each moon). The blob or moon of origin is
the truth for the adjusted Rand index (ARI). The distributed cases run on one ``LocalCluster(n_workers=2, threads_per_worker=1)`` with
the rows persisted in its memory in 8 chunks before the clock starts; the threaded cases on the
same rows in memory, in 8 chunks; a case's time is its
``fit`` plus computing every row's label. Each distributed case runs once untimed on 20,000 rows
first (imports and compiled loops loaded on the workers).

* daskcluster ``SpectralClustering`` (default ``max_samples=5000``, ``n_micro_clusters=200``:
  the two-phase route) and ``AgglomerativeClustering``;
* dask-ml ``SpectralClustering(n_components=100)`` (Nyström with 100 landmark rows,
  its default, then its k-means on the (n_samples, 5) embedding), on the threaded scheduler: on a
  distributed Client it fails with dask 2026.8 (a ``KeyError`` on one of its rechunk keys, after
  the scheduler's "Detected different `run_spec`" warnings), so ours runs on both;
* scikit-learn ``SpectralClustering`` and ``AgglomerativeClustering`` on the
  first ``--sklearn-rows`` rows (its dense affinity / distance matrices are O(n²): 1M rows would
  need 8 TB), in this process.

Cases alternate round by round; the table gives the least and the median time. Prints Markdown
(for ``benchmarks/RESULTS-two-phase.md``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kmeans import cpu_model, git_commit, load_avg, versions

CENTERS = np.array([[0, 0], [8, 0], [0, 8], [8, 8], [4, 4]], dtype=float)


@dataclass(frozen=True)
class Setting:
    """What the estimators are asked on one data set."""

    n_clusters: int
    gamma: float
    linkage: str


SETTINGS = {"blobs": Setting(5, 0.1, "ward"), "moons": Setting(2, 100.0, "single")}


def ours_spectral(X: Any, s: Setting) -> np.ndarray:
    from daskcluster import SpectralClustering

    return np.asarray(SpectralClustering(s.n_clusters, gamma=s.gamma, random_state=0).fit(X).labels_.compute())


def ours_agglomerative(X: Any, s: Setting) -> np.ndarray:
    from daskcluster import AgglomerativeClustering

    model = AgglomerativeClustering(s.n_clusters, linkage=s.linkage, random_state=0)
    return np.asarray(model.fit(X).labels_.compute())


def daskml_spectral(X: Any, s: Setting) -> np.ndarray:
    from dask_ml.cluster import SpectralClustering

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpectralClustering(s.n_clusters, gamma=s.gamma, random_state=0)
        return np.asarray(model.fit(X).labels_.compute())


def sklearn_spectral(X: np.ndarray, s: Setting) -> np.ndarray:
    from sklearn.cluster import SpectralClustering

    return SpectralClustering(s.n_clusters, gamma=s.gamma, random_state=0).fit(X).labels_


def sklearn_agglomerative(X: np.ndarray, s: Setting) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    return AgglomerativeClustering(s.n_clusters, linkage=s.linkage).fit(X).labels_


def make_data(name: str, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_blobs, make_moons

    if name == "moons":
        return make_moons(n_samples=n_samples, noise=0.05, random_state=1)
    return make_blobs(n_samples=n_samples, centers=CENTERS, cluster_std=1.0, random_state=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sklearn-rows", type=int, default=5000)
    parser.add_argument("--skip-daskml", action="store_true")
    parser.add_argument("--data", choices=sorted(SETTINGS), default="blobs")
    args = parser.parse_args(argv)

    import dask
    import dask.array as da
    from distributed import Client, LocalCluster
    from sklearn.metrics import adjusted_rand_score

    X, y = make_data(args.data, args.n_samples)
    setting = SETTINGS[args.data]
    small = slice(0, args.sklearn_rows)
    load_start = load_avg()
    t_start = time.strftime("%Y-%m-%dT%H:%M")
    times: dict[str, list[float]] = {}
    scores: dict[str, float] = {}
    n = f"{len(X):,} rows"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        Xd = client.persist(da.from_array(X, chunks=(-(-len(X) // 8), 2)))
        Xt = da.from_array(X, chunks=(-(-len(X) // 8), 2))
        # (name, function, data, truth, scheduler: None for the Client, else a local scheduler)
        agg = f"AgglomerativeClustering ({setting.linkage})"
        cases: list[tuple[str, Callable[[Any, Setting], np.ndarray], Any, np.ndarray, str | None]] = [
            (f"daskcluster SpectralClustering, two-phase, {n}, LocalCluster", ours_spectral, Xd, y, None),
            (f"daskcluster {agg}, two-phase, {n}, LocalCluster", ours_agglomerative, Xd, y, None),
            (f"daskcluster SpectralClustering, two-phase, {n}, threads", ours_spectral, Xt, y, "threads"),
            (f"daskcluster {agg}, two-phase, {n}, threads", ours_agglomerative, Xt, y, "threads"),
            (f"scikit-learn SpectralClustering, {args.sklearn_rows:,} rows", sklearn_spectral, X[small], y[small],
             "threads"),
            (f"scikit-learn {agg}, {args.sklearn_rows:,} rows", sklearn_agglomerative, X[small], y[small],
             "threads"),
        ]
        if not args.skip_daskml:
            cases.insert(4, (f"dask-ml SpectralClustering (Nyström, 100 landmarks), {n}, threads", daskml_spectral,
                             Xt, y, "threads"))
        warm = {None: client.persist(da.from_array(X[:20_000], chunks=(2_500, 2))),
                "threads": da.from_array(X[:20_000], chunks=(2_500, 2))}
        for name, run, data, _, scheduler in cases:  # imports and compiled loops loaded, untimed
            if data is Xd or data is Xt:
                with dask.config.set(scheduler=scheduler):
                    run(warm[scheduler], setting)
        for r in range(args.rounds):
            for name, run, data, truth, scheduler in cases:
                with dask.config.set(scheduler=scheduler):
                    t0 = time.perf_counter()
                    labels = run(data, setting)
                    times.setdefault(name, []).append(time.perf_counter() - t0)
                scores[name] = float(adjusted_rand_score(truth, labels))
                print(f"round {r}: {name}: {times[name][-1]:.2f} s, ARI {scores[name]:.4f}, load {load_avg()}",
                      file=sys.stderr, flush=True)
            report(args, argv, t_start, load_start, times, scores, r + 1)
    return 0


def report(args: Any, argv: list[str] | None, t_start: str, load_start: str, times: dict[str, list[float]],
           scores: dict[str, float], rounds: int) -> None:
    """Print the Markdown report of the rounds done so far."""
    from threadpoolctl import threadpool_info

    blas = "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} ({i.get('num_threads')} "
                     "threads)" for i in threadpool_info())
    out = [
        f"## {args.data}: {args.n_samples:,} rows",
        "",
        "Command (from the project root):",
        "",
        "    python " + " ".join(["benchmarks/bench_two_phase.py", *(argv if argv is not None else sys.argv[1:])]),
        "",
        (f"Run {t_start}; machine: {cpu_model()}, {os.cpu_count()} CPUs; BLAS: {blas}; {versions()}; "
        f"commit {git_commit()}. Load average at start {load_start}, at end {load_avg()}. Distributed cases on "
        "`LocalCluster(n_workers=2, threads_per_worker=1)`, rows persisted in 8 chunks before timing; time = "
        f"`fit` + every row's label; {rounds} rounds, cases alternated; least / median."),
        "",
        f"| case | time s (least / median) | ARI against the {args.data} |",
        "| --- | ---: | ---: |",
    ]
    for name, ts in times.items():
        out.append(f"| {name} | {min(ts):.2f} / {statistics.median(ts):.2f} | {scores[name]:.4f} |")
    print("\n".join(out), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
