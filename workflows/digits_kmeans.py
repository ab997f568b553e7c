"""k-means on handwritten digits: scikit-learn's 8x8 digits and MNIST, centers drawn as digits.

The texts' experiment: ``KMeans(n_clusters=10)`` on the 1,797 digits of 64 grey levels (0..16),
used as they are, keeping the best of ``n_init`` seedings; each cluster is named after the digit
most of its members are, and the fraction of digits in a cluster of their own name is the
*majority-label accuracy* (about 0.79 in the texts). The *matched accuracy* pairs clusters and
digits one to one (Hungarian algorithm) instead. Then the same on MNIST (70,000 x 784 pixels kept
as ``uint8`` and read as x / 255 inside the kernels), a Dask array in row chunks: the fit, the
labels and the metrics are passes over the chunks, nothing N-sized comes to the client.

MNIST is read from the Keras ``mnist.npz`` that ``daskcluster.datasets.find_mnist`` finds
(``$DASKCLUSTER_MNIST``, ``shared/data/mnist.npz`` above the working directory); without it,
``--mnist auto`` generates the same number of deformed digits (``make_infinite_mnist`` from
scikit-learn's digits) into a Zarr store and streams them from there.

Usage::

    python workflows/digits_kmeans.py OUTPUT_DIR [--small] [--data {digits,mnist,both}]
        [--mnist {auto,generated,PATH}] [--n-init N] [--seed S]

Writes ``digits_centers.png``, ``mnist_centers.png`` (each center as an image, titled with its
majority digit and size) and ``digits_kmeans.json`` (the figures).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

logger = logging.getLogger("workflows.digits_kmeans")

#: MNIST rows used with --small (the first rows of the file, or generated).
SMALL_MNIST_ROWS = 5000


def cluster_digits(X: Any, y: np.ndarray, n_init: int, seed: int) -> tuple[Any, dict[str, Any]]:
    """``KMeans(n_clusters=10)`` on ``X`` and how its clusters match the digits ``y``.

    Returns the fitted model and its figures: accuracies, adjusted Rand index, inertia,
    iterations, seconds, and each cluster's majority digit and size.
    """
    from daskcluster import KMeans
    from daskcluster.metrics import (
        adjusted_rand_score,
        contingency_matrix,
        matched_accuracy,
    )

    t0 = time.perf_counter()
    km = KMeans(n_clusters=10, n_init=n_init, random_state=seed).fit(X)
    seconds = time.perf_counter() - t0
    labels = km.labels_
    if isinstance(labels, da.Array):
        labels = labels.persist()  # one pass over X; the metrics below then read these labels
    table = contingency_matrix(y, labels)  # (10 digits, 10 clusters)
    majority = table.argmax(axis=0)
    figures = {
        "n_samples": len(y),
        "n_init": n_init,
        "majority_label_accuracy": float(table.max(axis=0).sum() / table.sum()),
        "matched_accuracy": matched_accuracy(y, labels),
        "adjusted_rand": adjusted_rand_score(y, labels),
        "inertia": float(km.inertia_),
        "n_iter": int(km.n_iter_),
        "fit_seconds": round(seconds, 2),
        "cluster_digit": majority.tolist(),
        "cluster_size": table.sum(axis=0).tolist(),
    }
    logger.info("KMeans(10) on %d digits: majority-label accuracy %.4f, matched %.4f (%.1f s)",
                len(y), figures["majority_label_accuracy"], figures["matched_accuracy"], seconds)
    return km, figures


def draw_centers(centers: np.ndarray, figures: dict[str, Any], shape: tuple[int, int], title: str, path: Path) -> Path:
    """The centers as images in a row of 10, each titled with its majority digit and size."""
    from daskcluster.plotting import plot_image_grid, save_figure

    order = np.argsort(figures["cluster_digit"], kind="stable")
    titles = [f"{figures['cluster_digit'][j]} ({figures['cluster_size'][j]:,})" for j in order]
    fig = plot_image_grid(centers[order], shape, n_cols=10, titles=titles, suptitle=title)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--small", action="store_true",
                        help=f"a quick run: the first {SMALL_MNIST_ROWS:,} MNIST rows, one seeding on MNIST")
    parser.add_argument("--data", choices=("digits", "mnist", "both"), default="both")
    parser.add_argument("--mnist", default="auto", help="'auto' (the file if found, else generated), 'generated', "
                        "or the path of a Keras mnist.npz")
    parser.add_argument("--n-init", type=int, default=10, help="seedings kept best of (default 10, as the texts)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.n_init < 1:
        parser.error(f"--n-init must be at least 1; got {args.n_init}")

    from daskcluster import scaled
    from daskcluster.datasets import mnist_or_generated
    from daskcluster.jobs.outputs import write_json

    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"workflow": "digits_kmeans", "small": args.small, "seed": args.seed}
    if args.data in ("digits", "both"):
        from sklearn.datasets import load_digits

        digits = load_digits()
        km, figures = cluster_digits(digits.data, digits.target, args.n_init, args.seed)
        figures["data"] = "scikit-learn digits (1,797 x 64, grey levels 0..16 as they are)"
        draw_centers(km.cluster_centers_, figures, (8, 8),
                     f"KMeans(10) on digits: majority-label accuracy {figures['majority_label_accuracy']:.3f}",
                     out / "digits_centers.png")
        report["digits"] = figures
    if args.data in ("mnist", "both"):
        with tempfile.TemporaryDirectory(dir=out, prefix=".work-") as work:
            X, y, source = mnist_or_generated(args.mnist, SMALL_MNIST_ROWS if args.small else None, Path(work))
            n_init = 1 if args.small else args.n_init
            km, figures = cluster_digits(scaled(X, 1 / 255), y, n_init, args.seed)
        figures["data"] = source
        draw_centers(km.cluster_centers_, figures, (28, 28),
                     f"KMeans(10) on {len(y):,} MNIST digits: majority-label accuracy "
                     f"{figures['majority_label_accuracy']:.3f}", out / "mnist_centers.png")
        report["mnist"] = figures
    path = write_json(out / "digits_kmeans.json", report)
    print(path)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
