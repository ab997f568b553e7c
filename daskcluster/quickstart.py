"""The embedded default job: KMeans on MNIST (or generated digits) on a local cluster.

It starts a :class:`distributed.LocalCluster`, finds real MNIST (``$DASKCLUSTER_MNIST`` or
``shared/data/mnist.npz`` above the working directory, by
:func:`~daskcluster.datasets.find_mnist`), generates handwritten-looking digits otherwise
(:func:`~daskcluster.datasets.mnist_or_generated`: deformed copies of scikit-learn's digits,
28 x 28), fits :class:`~daskcluster.KMeans` and prints what it found, with the centers drawn.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from .cluster import KMeans
from .data import scaled
from .datasets import find_mnist, mnist_or_generated
from .metrics import contingency_matrix, majority_label_accuracy

logger = logging.getLogger(__name__)

_SHADES = " .:-=+*#%@"

#: Digits generated when MNIST is not found (a few seconds to make).
N_GENERATED = 20_000


@dataclass
class QuickstartResult:
    """What the quick start found."""

    dataset: str
    n_samples: int
    n_features: int
    n_clusters: int
    seconds: float
    n_iter: int
    inertia: float
    accuracy: float
    sizes: np.ndarray
    majority: np.ndarray
    centers: np.ndarray


def load_default_data(n_generated: int = N_GENERATED, work_dir: str | os.PathLike[str] = ".") -> tuple[str, Any,
                                                                                                      np.ndarray, int]:
    """Real MNIST when present, else ``n_generated`` generated digits (stored in ``work_dir``);
    either way 28 x 28 images scaled to [0, 1], their labels, and 10 clusters."""
    path = find_mnist()
    X, y, description = mnist_or_generated(path if path is not None else "generated",
                                           None if path is not None else n_generated, work_dir)
    if path is None:
        description += ", MNIST not found"
    return description, scaled(X, 1 / 255), y, 10


def run(n_workers: int = 2, threads_per_worker: int = 1, n_clusters: int | None = None,
        random_state: int = 0, out: TextIO | None = None) -> QuickstartResult:
    """Start a LocalCluster, fit KMeans on the default data and print a summary to ``out``."""
    from distributed import Client, LocalCluster

    say = (lambda s: print(s, file=out)) if out is not None else (lambda s: None)
    with tempfile.TemporaryDirectory(prefix="daskcluster-quickstart-") as work_dir, \
            LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                         silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        name, X, y, k = load_default_data(work_dir=work_dir)
        k = n_clusters or k
        say(f"Local cluster: {n_workers} workers x {threads_per_worker} thread(s); dashboard {client.dashboard_link}")
        shape = X.source.shape if hasattr(X, "source") else X.shape
        say(f"Data: {name}, {shape[0]:,} x {shape[1]}")
        t0 = time.perf_counter()
        km = KMeans(n_clusters=k, random_state=random_state).fit(X)
        seconds = time.perf_counter() - t0
        labels = np.asarray(km.labels_ if isinstance(km.labels_, np.ndarray) else km.labels_.compute())
    table = contingency_matrix(y, labels)
    result = QuickstartResult(name, shape[0], shape[1], k, seconds, km.n_iter_, km.inertia_,
                              majority_label_accuracy(y, labels), table.sum(axis=0), table.argmax(axis=0),
                              km.cluster_centers_)
    say(format_result(result))
    return result


def _thumbnail(center: np.ndarray) -> list[str]:
    """A 28x28 image as 7 lines of 14 characters (terminal cells are about twice as tall as wide)."""
    img = center.reshape(7, 4, 14, 2).mean(axis=(1, 3))
    img = (img - img.min()) / max(float(img.max() - img.min()), 1e-12)
    return ["".join(_SHADES[int(v * (len(_SHADES) - 1))] for v in row) for row in img]


def format_result(r: QuickstartResult) -> str:
    """A text report: fit summary, clusters with their sizes and majority labels, centers drawn."""
    lines = [
        f"KMeans(n_clusters={r.n_clusters}) with k-means|| seeding: {r.n_iter} iterations in {r.seconds:.1f}s",
        f"inertia (sum of squared distances): {r.inertia:.6g}",
        f"majority-label accuracy: {r.accuracy:.3f}",
        "cluster  size    majority label",
    ]
    lines += [f"{j:>7}  {int(s):>6}  {int(m)}" for j, (s, m) in enumerate(zip(r.sizes, r.majority))]
    if r.n_features == 784:
        lines.append("cluster centers (majority label above each):")
        order = np.argsort(r.majority, kind="stable")
        for row_start in range(0, len(order), 5):
            group = order[row_start:row_start + 5]
            lines.append("   ".join(f"{int(r.majority[j])}".center(14) for j in group))
            thumbs = [_thumbnail(r.centers[j]) for j in group]
            lines += ["   ".join(t[i] for t in thumbs) for i in range(7)]
    return "\n".join(lines)
