"""Semi-supervised learning with clustering: label 50 representatives instead of 50 random rows.

The texts' procedure, on scikit-learn's digits (split as the texts do,
``train_test_split(..., random_state=42)``) and then on MNIST:

1. *random labels*: a classifier (``LogisticRegression``) trained on 50 labelled rows -- the
   first 50 of the shuffled training set, as the texts, and the mean over ``--draws`` random
   draws of 50;
2. *representatives*: the training rows clustered into 50 groups by ``daskcluster.KMeans``; the
   row nearest each center (``daskcluster.cluster.representatives``, one pass) is the one a
   person would label (here its true label is looked up); the classifier trained on those 50;
3. *propagated*: every row gets its cluster's representative's label
   (``daskcluster.cluster.propagate_labels``) and the classifier trains on all of them;
4. *closest 20%*: the label goes only to the rows among the 20% closest to their center in
   each cluster (exact per-cluster percentiles of the distances, a few passes over the labels
   and distances), and the classifier trains on those.

Each step reports the test accuracy; steps 3-4 also the accuracy of the propagated labels.

At scale: the clustering, the representatives, the cluster labels and the distances are
passes over the training rows (on MNIST a Dask array of ``uint8`` pixels read as x / 255;
labels and distances are lazy until used), so they work the same on data that do not fit in
memory. The classifier is scikit-learn's ``LogisticRegression`` fitted in memory on the rows
that carry a label: 50 rows, the 20% closest (12,000 on MNIST) or all of them (60,000 on
MNIST, the longest step). Beyond memory, the labelled rows would go to an
incremental classifier (``partial_fit``) chunk by chunk instead; that is not done here.

MNIST: the 60,000 training and 10,000 test digits of the Keras ``mnist.npz`` that
``daskcluster.datasets.find_mnist`` finds; without it, 70,000 deformed digits are generated
(``make_infinite_mnist`` of scikit-learn's digits) and split 60,000 / 10,000.

Usage::

    python workflows/semi_supervised.py OUTPUT_DIR [--small] [--data {digits,mnist,both}]
        [--mnist {auto,generated,PATH}] [--n-clusters 50] [--percentile 20] [--draws 10] [--seed S]

Writes ``digits_representatives.png`` and ``mnist_representatives.png`` (the representatives
with their labels) and ``semi_supervised.json`` (the accuracies).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np

logger = logging.getLogger("workflows.semi_supervised")

#: MNIST training and test rows used with --small.
SMALL_MNIST = (2000, 1000)
#: random_state of the digits' train/test split, as the texts.
SPLIT_SEED = 42


def classifier(seed: int) -> Any:
    """The texts' classifier: a multinomial logistic regression."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=5000, random_state=seed)


def classifier_accuracy(X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, seed: int) -> float:
    """Accuracy on the test rows of the classifier trained on ``(X, y)``.

    BLAS runs one thread: its products here are small (rows x features x 10 classes), and a team
    of BLAS threads waiting on busy cores made the fit up to 30 times slower on a shared machine.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from daskcluster.blas import single_threaded_blas

    with warnings.catch_warnings(), single_threaded_blas():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return float(classifier(seed).fit(X, y).score(X_test, y_test))


def load_mnist_split(source: str, small: bool, work_dir: Path) -> tuple[Any, np.ndarray, Any, np.ndarray, str]:
    """MNIST training and test rows (uint8, (n, 784)) and labels, and where they came from: the
    real file when found (or given), else generated deformed digits in a Zarr store under
    ``work_dir`` (read into memory: the classifier needs them there)."""
    from daskcluster.datasets import find_mnist, load_mnist_npz, mnist_or_generated

    n_train, n_test = SMALL_MNIST if small else (60_000, 10_000)
    path = None if source == "generated" else (find_mnist() if source == "auto" else Path(source))
    if path is not None:
        X, y = load_mnist_npz(path, split="train")
        X_test, y_test = load_mnist_npz(path, split="test")
        return X[:n_train], y[:n_train], X_test[:n_test], y_test[:n_test], f"MNIST ({path})"
    X, y, where = mnist_or_generated("generated", n_train + n_test, work_dir)
    X = X.compute()  # into memory (np.asarray of a Dask array reads element by element on Dask's query-planning backend)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:], f"{where}, split {n_train:,} / {n_test:,}"


def semi_supervised(
    X_train: Any,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    features: np.ndarray,
    n_clusters: int,
    percentile: float,
    n_init: int,
    draws: int,
    seed: int,
) -> tuple[dict[str, Any], np.ndarray]:
    """Run the four steps; returns the figures and the representatives' row indices.

    ``X_train`` is what the clustering reads (any source; lazy is fine); ``features`` the same
    rows in memory for the classifier, shape (n_train, n_features); ``X_test`` likewise.
    """
    from daskcluster import KMeans
    from daskcluster.cluster import propagate_labels, representatives

    n = len(y_train)
    figures: dict[str, Any] = {"n_train": n, "n_test": len(y_test), "n_labels": n_clusters}
    figures["random_first"] = classifier_accuracy(features[:n_clusters], y_train[:n_clusters], X_test, y_test, seed)
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(draws):
        rows = np.sort(rng.choice(n, size=n_clusters, replace=False))
        scores.append(classifier_accuracy(features[rows], y_train[rows], X_test, y_test, seed))
    figures["random_mean"] = float(np.mean(scores)) if scores else None
    figures["random_std"] = float(np.std(scores)) if scores else None
    figures["random_draws"] = draws

    t0 = time.perf_counter()
    km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(X_train)
    figures["kmeans_seconds"] = round(time.perf_counter() - t0, 2)
    reps = representatives(X_train, km)  # one pass
    y_reps = y_train[reps]  # the labels a person would give the 50 representatives
    figures["representatives"] = classifier_accuracy(features[reps], y_reps, X_test, y_test, seed)

    labels = km.labels_
    if isinstance(labels, da.Array):
        labels = labels.persist()  # one pass over X_train, then reused below
    # dask.compute, not np.asarray: a Dask array has no __array__ on Dask's query-planning backend
    propagated = np.asarray(dask.compute(propagate_labels(labels, y_reps))[0])
    figures["propagated_label_accuracy"] = float(np.mean(propagated == y_train))
    t0 = time.perf_counter()
    figures["propagated"] = classifier_accuracy(features, propagated, X_test, y_test, seed)
    figures["propagated_fit_seconds"] = round(time.perf_counter() - t0, 2)

    distances = km.transform(X_train).min(axis=1)  # each row's distance to its center; lazy for lazy X
    partial = np.asarray(dask.compute(propagate_labels(labels, y_reps, distances=distances,
                                                       percentile=percentile))[0])
    keep = partial >= 0
    figures["percentile"] = percentile
    figures["partial_rows"] = int(keep.sum())
    figures["partial_label_accuracy"] = float(np.mean(partial[keep] == y_train[keep]))
    figures["partial"] = classifier_accuracy(features[keep], partial[keep], X_test, y_test, seed)
    logger.info("%d labels: random %.4f (first %d), representatives %.4f, propagated %.4f, closest %g%% %.4f",
                n_clusters, figures["random_first"], n_clusters, figures["representatives"], figures["propagated"],
                percentile, figures["partial"])
    return figures, reps


def draw_representatives(images: np.ndarray, labels: np.ndarray, shape: tuple[int, int], title: str,
                         path: Path) -> Path:
    """The representative rows as a grid of images titled with their labels."""
    from daskcluster.plotting import plot_image_grid, save_figure

    fig = plot_image_grid(images, shape, n_cols=10, titles=[str(int(v)) for v in labels], cmap="gray_r",
                          suptitle=title)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--small", action="store_true",
                        help=f"a quick run: MNIST's first {SMALL_MNIST[0]:,} training and {SMALL_MNIST[1]:,} test rows, "
                        "3 random draws")
    parser.add_argument("--data", choices=("digits", "mnist", "both"), default="both")
    parser.add_argument("--mnist", default="auto", help="'auto' (the file if found, else generated), 'generated', "
                        "or the path of a Keras mnist.npz")
    parser.add_argument("--n-clusters", type=int, default=50, help="clusters, and so labelled rows (default 50)")
    parser.add_argument("--percentile", type=float, default=20.0,
                        help="propagate to the closest PERCENTILE%% of each cluster (default 20)")
    parser.add_argument("--draws", type=int, default=None, help="random draws of labelled rows (default 10; 3 small)")
    parser.add_argument("--seed", type=int, default=0, help="seeds KMeans, the random draws and the classifier")
    args = parser.parse_args(argv)
    if args.n_clusters < 2:
        parser.error(f"--n-clusters must be at least 2; got {args.n_clusters}")
    if not 0 < args.percentile <= 100:
        parser.error(f"--percentile must be in (0, 100]; got {args.percentile}")
    draws = args.draws if args.draws is not None else (3 if args.small else 10)

    from daskcluster import scaled
    from daskcluster.jobs.outputs import write_json

    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"workflow": "semi_supervised", "small": args.small, "seed": args.seed,
                              "classifier": "LogisticRegression(max_iter=5000)"}
    common = {"n_clusters": args.n_clusters, "percentile": args.percentile, "draws": draws, "seed": args.seed}
    if args.data in ("digits", "both"):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        X, y = load_digits(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=SPLIT_SEED)
        figures, reps = semi_supervised(X_train, y_train, X_test, y_test, features=X_train, n_init=10, **common)
        figures["data"] = "scikit-learn digits, train_test_split (1,347 train / 450 test)"
        draw_representatives(X_train[reps], y_train[reps], (8, 8),
                             f"{args.n_clusters} representatives of digits: test accuracy "
                             f"{figures['representatives']:.3f} (random labels {figures['random_first']:.3f})",
                             out / "digits_representatives.png")
        report["digits"] = figures
    if args.data in ("mnist", "both"):
        with tempfile.TemporaryDirectory(dir=out, prefix=".work-") as work:
            X_train, y_train, X_test, y_test, source = load_mnist_split(args.mnist, args.small, Path(work))
        lazy = scaled(da.from_array(X_train, chunks=(10_000, X_train.shape[1])), 1 / 255)
        features = X_train.astype(np.float32) / 255
        figures, reps = semi_supervised(lazy, y_train, X_test.astype(np.float32) / 255, y_test, features=features,
                                        n_init=1, **common)
        figures["data"] = source
        draw_representatives(X_train[reps], y_train[reps], (28, 28),
                             f"{args.n_clusters} representatives of MNIST: test accuracy "
                             f"{figures['representatives']:.3f} (random labels {figures['random_first']:.3f})",
                             out / "mnist_representatives.png")
        report["mnist"] = figures
    path = write_json(out / "semi_supervised.json", report)
    print(path)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
