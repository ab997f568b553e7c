"""Spectral and agglomerative clustering, as the clustering chapter of the texts shows them, and
their two-phase route on a large set of blobs.

1. **Spectral clustering of the moons** (``make_moons(1000, noise=0.05, random_state=42)``):
   ``SpectralClustering(n_clusters=2, gamma=100)`` and ``gamma=1``, ``random_state=42``. Below
   ``max_samples`` the estimator is scikit-learn's, exactly: the report says whether the labels
   and the affinity matrix equal scikit-learn's.
2. **Agglomerative clustering** of the texts' four numbers ``[0, 2, 5, 8.5]``
   (``children_`` is ``[[0, 1], [2, 3], [4, 5]]``), drawn as a dendrogram; and the moons with
   single linkage (which follows each moon) against Ward (which cuts them across).
3. **The two-phase route**: blobs of ``--rows`` rows (5 blobs in 2-D, lazy, per-chunk seeds;
   1,000,000 rows, 20,000 with ``--small``), far above ``max_samples``: ``SpectralClustering``
   and ``AgglomerativeClustering`` (Ward) summarise the rows by 200 k-means micro-clusters on the
   workers, cluster the weighted summary on the client, and label every row lazily. The adjusted
   Rand index against the blobs is a pass over the labels.

Usage::

    python workflows/nonconvex_clustering.py OUTPUT_DIR [--small] [--rows N] [--seed S]

Writes ``spectral_moons.png`` (the two gammas), ``agglomerative_dendrogram.png``,
``agglomerative_moons.png``, ``two_phase_blobs.png`` (a sample of rows coloured by cluster, the
micro-clusters' means) and ``nonconvex_clustering.json`` (the figures).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("workflows.nonconvex_clustering")

#: Centers of the large blob set: five blobs 8 apart, unit deviation.
BLOB_CENTERS = np.array([[0, 0], [8, 0], [0, 8], [8, 8], [4, 4]], dtype=float)
#: Rows of the sample drawn in the two-phase figure.
SAMPLE_ROWS = 5000


def new_figure(n_panels: int, height: float = 4.0) -> tuple[Any, list[Any]]:
    """A figure of ``n_panels`` side by side, with its own Agg canvas (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5 * n_panels, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, n_panels, i + 1) for i in range(n_panels)]


def scatter_labels(ax: Any, X: np.ndarray, labels: np.ndarray, title: str) -> None:
    ax.scatter(X[:, 0], X[:, 1], c=labels, s=6, cmap="tab10", vmin=0, vmax=9)
    ax.set_title(title, fontsize="medium")
    ax.set_aspect("equal", adjustable="datalim")


def spectral_moons(X: np.ndarray, seed: int, out: Path) -> dict[str, Any]:
    """Spectral clustering of the moons at gamma 100 and 1, compared with scikit-learn's."""
    from sklearn.cluster import SpectralClustering as SkSpectral

    from daskcluster import SpectralClustering
    from daskcluster.plotting import save_figure

    fig, axes = new_figure(2)
    report: dict[str, Any] = {}
    for ax, gamma in zip(axes, (100, 1)):
        sc = SpectralClustering(n_clusters=2, gamma=gamma, random_state=seed).fit(X)
        ref = SkSpectral(n_clusters=2, gamma=gamma, random_state=seed).fit(X)
        report[f"gamma_{gamma}"] = {
            "fit_path": sc.fit_path_,
            "cluster_sizes": np.bincount(sc.labels_, minlength=2).tolist(),
            "labels_equal_sklearn": bool(np.array_equal(sc.labels_, ref.labels_)),
            "affinity_equal_sklearn": bool(np.array_equal(sc.affinity_matrix_, ref.affinity_matrix_)),
        }
        scatter_labels(ax, X, sc.labels_, f"SpectralClustering, gamma={gamma}")
    save_figure(fig, out / "spectral_moons.png")
    return report


def linkage_matrix(agg: Any) -> np.ndarray:
    """SciPy's linkage matrix of a fitted tree: children, merge distance, rows under the node."""
    n = agg.n_leaves_
    sizes = np.ones(2 * n - 1)
    for i, (a, b) in enumerate(agg.children_):
        sizes[n + i] = sizes[a] + sizes[b]
    return np.column_stack([agg.children_, agg.distances_, sizes[n:]]).astype(float)


def agglomerative(X_moons: np.ndarray, out: Path) -> dict[str, Any]:
    """The texts' four numbers and their dendrogram; the moons by single and Ward linkage."""
    from scipy.cluster.hierarchy import dendrogram

    from daskcluster import AgglomerativeClustering
    from daskcluster.plotting import save_figure

    numbers = np.array([0, 2, 5, 8.5]).reshape(-1, 1)
    agg = AgglomerativeClustering(linkage="complete", compute_distances=True).fit(numbers)
    fig, (ax,) = new_figure(1, 3.5)
    dendrogram(linkage_matrix(agg), labels=["0", "2", "5", "8.5"], ax=ax)
    ax.set_title(f"children_ = {agg.children_.tolist()}", fontsize="medium")
    ax.set_ylabel("merge distance (complete linkage)")
    save_figure(fig, out / "agglomerative_dendrogram.png")
    fig, axes = new_figure(2)
    moons: dict[str, Any] = {}
    for ax, linkage in zip(axes, ("single", "ward")):
        labels = AgglomerativeClustering(n_clusters=2, linkage=linkage).fit(X_moons).labels_
        moons[linkage] = np.bincount(labels, minlength=2).tolist()
        scatter_labels(ax, X_moons, labels, f"AgglomerativeClustering, linkage={linkage!r}")
    save_figure(fig, out / "agglomerative_moons.png")
    return {"children": agg.children_.tolist(), "distances": agg.distances_.tolist(), "n_leaves": agg.n_leaves_,
            "moons_cluster_sizes": moons}


def two_phase_blobs(n_rows: int, seed: int, out: Path) -> dict[str, Any]:
    """Both estimators' two-phase route on lazy blobs; ARI as a pass over the labels."""
    from daskcluster import AgglomerativeClustering, SpectralClustering
    from daskcluster.datasets import make_blobs
    from daskcluster.metrics import adjusted_rand_score
    from daskcluster.plotting import save_figure

    X, y, _ = make_blobs(n_rows, centers=BLOB_CENTERS, cluster_std=1.0, chunk_rows=max(n_rows // 8, 1),
                         random_state=seed)
    sample = np.asarray(X[:SAMPLE_ROWS].compute())
    fig, axes = new_figure(2)
    report: dict[str, Any] = {"n_samples": n_rows}
    models = {"spectral": SpectralClustering(n_clusters=5, gamma=0.1, random_state=seed),
              "agglomerative_ward": AgglomerativeClustering(n_clusters=5, random_state=seed)}
    for ax, (name, model) in zip(axes, models.items()):
        t0 = time.perf_counter()
        model.fit(X)
        seconds = time.perf_counter() - t0
        ari = float(adjusted_rand_score(y, model.labels_))
        report[name] = {"fit_path": model.fit_path_, "fit_seconds": round(seconds, 2), "ari": ari,
                        "n_micro_clusters": int(model.micro_centers_.shape[0]),
                        "labels_lazy": type(model.labels_).__module__.startswith("dask")}
        logger.info("%s on %d rows: %s route in %.1f s, ARI %.4f", name, n_rows, model.fit_path_, seconds, ari)
        scatter_labels(ax, sample, np.asarray(model.labels_[:SAMPLE_ROWS].compute()),
                       f"{type(model).__name__}, {n_rows:,} rows (ARI {ari:.3f})")
        ax.scatter(*model.micro_centers_.T, s=10, marker="x", color="black", label="micro-cluster means")
        ax.legend(loc="lower right", fontsize="small")
    save_figure(fig, out / "two_phase_blobs.png")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--small", action="store_true", help="20,000 rows of blobs instead of 1,000,000")
    parser.add_argument("--rows", type=int, default=None, help="rows of the large blob set")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    n_rows = args.rows or (20_000 if args.small else 1_000_000)
    if n_rows <= 5000:
        parser.error(f"--rows must be above max_samples (5000) to take the two-phase route; got {n_rows}")

    from sklearn.datasets import make_moons

    from daskcluster.jobs.outputs import write_json

    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    X_moons = make_moons(n_samples=1000, noise=0.05, random_state=args.seed)[0]
    report: dict[str, Any] = {"workflow": "nonconvex_clustering", "small": args.small, "seed": args.seed}
    report["spectral_moons"] = spectral_moons(X_moons, args.seed, out)
    report["agglomerative"] = agglomerative(X_moons, out)
    report["two_phase_blobs"] = two_phase_blobs(n_rows, args.seed, out)
    print(write_json(out / "nonconvex_clustering.json", report))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
