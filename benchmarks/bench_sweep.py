"""Benchmark: choosing k on MNIST (70,000 x 784), a k-sweep k = 2..12, in one run.

* scikit-learn: the obvious loop, ``KMeans(k, random_state=0).fit(X)`` then
  ``silhouette_score(X, labels, sample_size=10_000, random_state=0)`` for each k, on float32 X;
* daskcluster: ``kmeans_sweep(X, n_clusters=range(2, 13), random_state=0)`` on the uint8 array
  (inertia, sampled silhouette on 10,000 rows, Calinski-Harabasz and Davies-Bouldin for every
  k), on the threaded scheduler and on a 2-worker ``LocalCluster`` (processes, 1 thread each);
* daskcluster's own loop of separate ``KMeans(k)`` fits (the same models as the sweep), to show
  the passes the sweep shares.

For each: wall time, data passes (scikit-learn: the Lloyd iterations it ran, plus its
k-means++ seeding, which reads the data once per center: a lower bound), the elbow and the k of
best silhouette. The rounds run one after the other (each method once per round); tables give
the least and the median over the rounds.

Usage::

    python benchmarks/bench_sweep.py [--rounds 1] [--mnist PATH] [--output benchmarks/RESULTS-sweep.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

KS = list(range(2, 13))
SAMPLE = 10_000


def load_mnist(path: str | None) -> np.ndarray:
    from daskcluster.datasets import find_mnist, load_mnist_npz

    found = Path(path) if path else find_mnist(Path(__file__).resolve().parents[1])
    if found is None or not found.is_file():
        sys.exit("MNIST not found: pass --mnist PATH (Keras mnist.npz) or set $DASKCLUSTER_MNIST.")
    return load_mnist_npz(found)[0].reshape(70_000, -1)


def run_sklearn(X: np.ndarray) -> dict[str, Any]:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    X32 = X.astype(np.float32)
    t0 = time.perf_counter()
    inertia, sil, iters = [], [], 0
    for k in KS:
        km = KMeans(k, random_state=0).fit(X32)
        iters += km.n_iter_ + k
        inertia.append(km.inertia_)
        sil.append(silhouette_score(X32, km.labels_, sample_size=SAMPLE, random_state=0))
    return {"seconds": time.perf_counter() - t0, "passes": iters, "inertia": inertia, "silhouette": sil}


def run_sweep(X: np.ndarray) -> dict[str, Any]:
    from daskcluster.selection import kmeans_sweep

    t0 = time.perf_counter()
    table = kmeans_sweep(X, n_clusters=KS, random_state=0, silhouette_sample_size=SAMPLE)
    return {"seconds": time.perf_counter() - t0, "passes": table.attrs["passes"],
            "inertia": table["inertia"].tolist(), "silhouette": table["silhouette"].tolist(),
            "elbow": table.attrs["elbow"], "n_iter": table["n_iter"].tolist()}


def run_separate(X: np.ndarray) -> dict[str, Any]:
    from daskcluster import KMeans
    from daskcluster.engine import count_passes
    from daskcluster.metrics import silhouette_score

    t0 = time.perf_counter()
    inertia, sil = [], []
    with count_passes() as counter:
        for k in KS:
            km = KMeans(k, random_state=0).fit(X)
            inertia.append(km.inertia_)
            sil.append(silhouette_score(X, km.labels_, sample_size=SAMPLE, random_state=0))
    return {"seconds": time.perf_counter() - t0, "passes": counter.passes, "inertia": inertia, "silhouette": sil}


def summary(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--mnist", default=None)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)

    import dask
    import sklearn
    from distributed import Client, LocalCluster

    X = load_mnist(args.mnist)
    load_start = os.getloadavg()
    results: dict[str, list[dict[str, Any]]] = {"sklearn": [], "threads": [], "local": [], "separate": []}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        for r in range(args.rounds):
            print(f"round {r + 1}: scikit-learn loop", flush=True)
            results["sklearn"].append(run_sklearn(X))
            print("  daskcluster sweep, threads", flush=True)
            with dask.config.set(scheduler="threads"):
                results["threads"].append(run_sweep(X))
                print("  daskcluster separate fits, threads", flush=True)
                results["separate"].append(run_separate(X))
            print("  daskcluster sweep, LocalCluster", flush=True)
            with Client(cluster):
                results["local"].append(run_sweep(X))
    load_end = os.getloadavg()

    sk = summary([r["seconds"] for r in results["sklearn"]])
    lines = [
        "# Choosing k on MNIST: a k-sweep k = 2..12 (issue: seeing the results)",
        "",
        f"Command: `python benchmarks/bench_sweep.py --rounds {args.rounds}` — {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, NumPy "
        f"{np.__version__}, scikit-learn {sklearn.__version__}, dask {dask.__version__}; load average at start "
        f"{', '.join(f'{v:.1f}' for v in load_start)}, at end {', '.join(f'{v:.1f}' for v in load_end)} (the "
        "machine is shared with other jobs).",
        "",
        f"Data: MNIST 70,000 × 784 (uint8 for daskcluster, float32 for scikit-learn). Every method fits k = "
        f"{KS[0]}..{KS[-1]} with `random_state=0` and scores the silhouette on a {SAMPLE:,}-row sample. "
        f"{args.rounds} round(s); seconds are least / median over the rounds.",
        "",
        "| method | seconds (least / median) | speed-up vs scikit-learn loop | data passes |",
        "| --- | ---: | ---: | ---: |",
    ]
    names = {"sklearn": "scikit-learn loop: KMeans(k).fit + silhouette_score(sample_size=10,000)",
             "threads": "daskcluster `kmeans_sweep`, threaded scheduler",
             "local": "daskcluster `kmeans_sweep`, LocalCluster 2 workers × 1 thread",
             "separate": "daskcluster loop of separate `KMeans(k).fit` + `silhouette_score`, threaded"}
    for key in ("sklearn", "threads", "local", "separate"):
        least, median = summary([r["seconds"] for r in results[key]])
        passes = results[key][0]["passes"]
        note = " (≥: Lloyd iterations + one per seeded center)" if key == "sklearn" else ""
        lines.append(f"| {names[key]} | {least:.1f} / {median:.1f} | {sk[0] / least:.2f} / {sk[1] / median:.2f} | "
                     f"{passes}{note} |")
    sweep = results["threads"][0]
    lines += [
        "",
        "## What each found (first round)",
        "",
        "| k | scikit-learn inertia | sweep inertia | scikit-learn silhouette | sweep silhouette | sweep n_iter |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    skr = results["sklearn"][0]
    for i, k in enumerate(KS):
        lines.append(f"| {k} | {skr['inertia'][i]:.4e} | {sweep['inertia'][i]:.4e} | {skr['silhouette'][i]:.4f} | "
                     f"{sweep['silhouette'][i]:.4f} | {sweep['n_iter'][i]} |")
    best_sk = KS[int(np.argmax(skr["silhouette"]))]
    best_ours = KS[int(np.nanargmax(sweep["silhouette"]))]
    least = summary([r["seconds"] for r in results["threads"]])[0]
    lines += [
        "",
        f"Elbow found by the sweep (kneedle on log inertia): k = {sweep['elbow']}. Best silhouette: k = {best_ours} "
        f"(scikit-learn loop: k = {best_sk}).",
        "",
        "## Target",
        "",
        "| target | measured (least) | required | met |",
        "| --- | ---: | ---: | --- |",
        f"| sweep ≥ 3× faster than the scikit-learn loop (threads) | {sk[0] / least:.2f} | ≥ 3 | "
        f"{'yes' if sk[0] / least >= 3 else 'NO'} |",
        f"| sweep ≥ 3× faster than the scikit-learn loop (LocalCluster) | "
        f"{sk[0] / summary([r['seconds'] for r in results['local']])[0]:.2f} | ≥ 3 | "
        f"{'yes' if sk[0] / summary([r['seconds'] for r in results['local']])[0] >= 3 else 'NO'} |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.output:
        out = Path(args.output)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
