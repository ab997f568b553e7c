"""DBSCAN on the moons: the texts' two settings of ``eps``, new points classified, then a large
generated set streamed from Zarr.

1. ``make_moons(1000, noise=0.05, random_state=42)`` clustered by ``daskcluster.DBSCAN`` with
   ``eps=0.05`` (808 core samples, 7 clusters and noise) and ``eps=0.2`` (the two moons), each
   checked against scikit-learn's ``DBSCAN`` (same core samples, same labels).
2. New points classified by the ``eps=0.2`` model: ``predict`` gives each the cluster of its
   nearest core sample within ``eps``, else -1 (an anomaly) -- the texts' recipe of a
   ``KNeighborsClassifier`` on the core samples with the distance check, as one pass. The
   figure shades the plane by the prediction.
3. ``--large`` rows of moons (default 20,000,000; 200,000 with ``--small``) generated chunk by
   chunk (``daskcluster.datasets.make_moons``), written to a Zarr store with
   ``daskcluster.io.write_zarr`` and clustered by streaming from the store, with ``eps`` scaled
   so that a row has about 20 neighbours (``eps = 0.0028 * sqrt(1e6 / n)``). With
   ``--workers N`` this part runs on a ``LocalCluster`` of N worker processes (1 thread each);
   otherwise on Dask's threaded scheduler.

Usage::

    python workflows/dbscan_moons.py OUTPUT_DIR [--small] [--large N] [--workers N]
        [--memory-limit 2GiB] [--store PATH]

Writes ``dbscan_moons.png`` (both settings: core samples, border samples, anomalies),
``dbscan_predict.png`` (the plane shaded by ``predict``, the new points), ``dbscan_large.png``
(a sample of the large set coloured by cluster) and ``dbscan_moons.json`` (the figures).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("workflows.dbscan_moons")

#: The texts' new points.
NEW_POINTS = np.array([[-0.5, 0], [0, 0.5], [1, -0.1], [2, 1]])


def eps_for(n: int) -> float:
    """About 20 neighbours per row on moons of noise 0.05 at any size."""
    return float(0.0028 * np.sqrt(1e6 / n))


def draw_clusters(ax: Any, model: Any, X: np.ndarray, title: str) -> None:
    """Core samples large, border samples small, anomalies as red crosses (the texts' figure)."""
    labels = np.asarray(model.labels_)
    core = np.zeros(len(X), dtype=bool)
    core[np.asarray(model.core_sample_indices_)] = True
    anomalies = labels == -1
    border = ~(core | anomalies)
    ax.scatter(X[core, 0], X[core, 1], c=labels[core], s=30, marker="o", cmap="Paired")
    ax.scatter(X[core, 0], X[core, 1], marker="*", s=4, c=labels[core])
    ax.scatter(X[anomalies, 0], X[anomalies, 1], c="r", marker="x", s=40)
    ax.scatter(X[border, 0], X[border, 1], c=labels[border], marker=".", s=8)
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")


def texts_moons(out: Path) -> dict[str, Any]:
    """Part 1 and 2: both settings, the check against scikit-learn, new points classified."""
    from sklearn.cluster import DBSCAN as SkDBSCAN
    from sklearn.datasets import make_moons

    from daskcluster import DBSCAN
    from daskcluster.plotting import save_figure
    from daskcluster.plotting._backend import new_figure

    X, _ = make_moons(n_samples=1000, noise=0.05, random_state=42)
    report: dict[str, Any] = {}
    fig = new_figure("dbscan_moons", 10, 4)
    models = {}
    for ax, eps in zip(fig.subplots(1, 2), (0.05, 0.2)):
        model = DBSCAN(eps=eps, min_samples=5).fit(X)
        ref = SkDBSCAN(eps=eps, min_samples=5).fit(X)
        labels = model.labels_
        report[f"eps={eps}"] = {
            "n_core_samples": len(model.core_sample_indices_),
            "n_clusters": model.n_clusters_,
            "n_anomalies": int((labels == -1).sum()),
            "same_as_scikit_learn": bool(np.array_equal(labels, ref.labels_)
                                         and np.array_equal(model.core_sample_indices_, ref.core_sample_indices_)),
        }
        draw_clusters(ax, model, X, f"eps={eps}, min_samples=5: {model.n_clusters_} clusters")
        models[eps] = model
    save_figure(fig, out / "dbscan_moons.png")

    model = models[0.2]
    predicted = model.predict(NEW_POINTS)
    report["new_points"] = {"X": NEW_POINTS.tolist(), "predict": predicted.tolist()}
    fig = new_figure("dbscan_moons", 6, 4)
    ax = fig.subplots()
    xx, yy = np.meshgrid(np.linspace(-1.5, 2.5, 400), np.linspace(-1.0, 1.5, 250))
    grid = model.predict(np.column_stack([xx.ravel(), yy.ravel()])).reshape(xx.shape)
    ax.contourf(xx, yy, grid, levels=np.arange(-1.5, grid.max() + 1), cmap="Pastel2", alpha=0.8)
    ax.scatter(X[:, 0], X[:, 1], s=4, c="k")
    ax.scatter(NEW_POINTS[:, 0], NEW_POINTS[:, 1], c="b", marker="+", s=200, zorder=10)
    for point, label in zip(NEW_POINTS, predicted):
        ax.annotate(str(label), point, textcoords="offset points", xytext=(6, 6), color="b")
    ax.set_title("predict (eps=0.2): nearest core sample within eps, else -1", fontsize="medium")
    save_figure(fig, out / "dbscan_predict.png")
    return report


def large_moons(out: Path, n: int, workers: int, memory_limit: str, store: Path | None) -> dict[str, Any]:
    """Part 3: a large generated set, written to Zarr, clustered streaming from the store."""
    import dask

    from daskcluster import DBSCAN
    from daskcluster.datasets import make_moons
    from daskcluster.io import write_zarr
    from daskcluster.plotting import save_figure
    from daskcluster.plotting._backend import new_figure

    folder = None
    if store is None:
        folder = Path(tempfile.mkdtemp(prefix="dbscan-moons-"))
        store = folder / f"moons{n}.zarr"
    try:
        X, _ = make_moons(n, noise=0.05, chunk_rows=min(n, 1_000_000), random_state=0)
        t0 = time.perf_counter()
        with dask.config.set(scheduler="threads"):
            write_zarr(X, str(store), overwrite=True)
        written = time.perf_counter() - t0
        eps = eps_for(n)
        cluster = client = None
        if workers:
            from distributed import Client, LocalCluster

            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   memory_limit=memory_limit, dashboard_address=":0")
            client = Client(cluster)
        try:
            with dask.config.set(scheduler="threads") if client is None else dask.config.set({}):
                t0 = time.perf_counter()
                model = DBSCAN(eps=eps, min_samples=5).fit(str(store))
                fitted = time.perf_counter() - t0
                labels = model.labels_.compute()
        finally:
            if client is not None:
                client.close()
                cluster.close()
        step = max(1, n // 50_000)
        sample = np.asarray(X[::step].compute())
        fig = new_figure("dbscan_moons", 7, 4)
        ax = fig.subplots()
        shown = labels[::step]
        noise = shown == -1
        ax.scatter(sample[~noise, 0], sample[~noise, 1], c=shown[~noise] % 20, cmap="tab20", s=1)
        ax.scatter(sample[noise, 0], sample[noise, 1], c="r", marker="x", s=4)
        ax.set_title(f"{n:,} moons from Zarr, eps={eps:.5f}: {model.n_clusters_} clusters "
                     f"(every {step}th row shown)", fontsize="medium")
        save_figure(fig, out / "dbscan_large.png")
        sizes = np.bincount(labels[labels >= 0])
        return {
            "n_samples": n, "eps": eps, "min_samples": 5, "workers": workers, "seconds_write": round(written, 2),
            "seconds_fit": round(fitted, 2), "n_clusters": model.n_clusters_,
            "n_anomalies": int((labels == -1).sum()),
            "largest_clusters": np.sort(sizes)[::-1][:5].tolist(),
            "n_partitions": model._plan.n_partitions,
        }
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--small", action="store_true", help="a quick run: 200,000 rows in the large part")
    parser.add_argument("--large", type=int, default=None, help="rows of the large set (default 20,000,000)")
    parser.add_argument("--workers", type=int, default=0, help="LocalCluster worker processes for the large part")
    parser.add_argument("--memory-limit", default="2GiB", help="memory limit of each worker")
    parser.add_argument("--store", type=Path, default=None, help="where to write the large set's Zarr store")
    args = parser.parse_args(argv)
    n = args.large or (200_000 if args.small else 20_000_000)
    if n < 1000:
        parser.error(f"--large must be at least 1000; got {n}")
    if args.workers < 0:
        parser.error(f"--workers must be >= 0; got {args.workers}")

    from daskcluster.jobs.outputs import write_json

    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"workflow": "dbscan_moons", "small": args.small}
    report["moons"] = texts_moons(out)
    report["large"] = large_moons(out, n, args.workers, args.memory_limit, args.store)
    path = write_json(out / "dbscan_moons.json", report)
    print(path)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
