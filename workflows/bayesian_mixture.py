"""Bayesian Gaussian mixtures: the posterior chooses the number of components.

1. The texts' blobs (two stretched blobs and a round one: 1,250 points):
   ``BayesianGaussianMixture(n_components=10, n_init=10, init_params="k-means++")`` keeps three components (weights
   about 0.40 / 0.21 / 0.40) and drives the other seven towards zero.
2. The effect of ``weight_concentration_prior`` on the first 73 rows: 0.01 (few components)
   against 10,000 (many), ``max_iter=1000``.
3. Moons (``make_moons(1000, noise=0.05)``): the Gaussian components tile each moon.
4. MNIST (70,000 digits, ``uint8`` read as x / 255) projected by ``daskcluster.decomposition.PCA`` to ``--pca``
   components, then ``BayesianGaussianMixture(n_components=--mnist-components)``: how many
   components the posterior keeps (weight above 1/(2 K)), and the majority-label accuracy of
   its labels. Every fit is one pass over the chunks per iteration.

MNIST is read from the Keras ``mnist.npz`` that ``daskcluster.datasets.find_mnist`` finds; without
it, 70,000 deformed digits are generated (``make_infinite_mnist`` of scikit-learn's digits).

Usage::

    python workflows/bayesian_mixture.py OUTPUT_DIR [--small] [--data {2d,mnist,both}]
        [--mnist {auto,generated,PATH}] [--pca 30] [--mnist-components 30] [--seed 42]

Writes ``bgmm_blobs.png`` (contours and weights), ``bgmm_concentration.png`` (the two priors
side by side), ``bgmm_moons.png``, ``mnist_bgmm_weights.png`` (the sorted weights) and
``bayesian_mixture.json`` (the figures).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("workflows.bayesian_mixture")

#: MNIST rows used with --small.
SMALL_MNIST_ROWS = 2000


def _weights_axis(fig: Any, weights: np.ndarray, rect: tuple[float, float, float, float]) -> None:
    ax = fig.add_axes(rect)
    ax.bar(np.arange(len(weights)), weights, color="tab:blue")
    ax.set_xlabel("component", fontsize="small")
    ax.set_ylabel("weight", fontsize="small")
    ax.tick_params(labelsize="x-small")


def blobs_workflow(seed: int, n_init: int, out: Path) -> dict[str, Any]:
    """Ten components on the blobs: the weights of the unneeded ones go to zero."""
    from daskcluster import BayesianGaussianMixture
    from daskcluster.datasets import make_mixture_blobs
    from daskcluster.plotting import plot_mixture_2d, save_figure

    X = make_mixture_blobs(random_state=seed)
    t0 = time.perf_counter()
    # greedy k-means++ starts (one pass per component: nothing on 1,250 points) reach the texts'
    # three components at seed 42 as scikit-learn's 'kmeans' starts do; the default 'kmeans'
    # starts (a k-means|| seeding) split one blob in four of ten starts' best there
    bgm = BayesianGaussianMixture(n_components=10, n_init=n_init, random_state=seed, init_params="k-means++").fit(X)
    seconds = time.perf_counter() - t0
    weights = np.asarray(bgm.weights_)
    kept = weights > 0.01
    fig = plot_mixture_2d(bgm, X, random_state=seed)
    fig.axes[0].set_title(f"blobs: {int(kept.sum())} of 10 components kept", fontsize="medium")
    _weights_axis(fig, weights, (0.70, 0.70, 0.22, 0.18))
    save_figure(fig, out / "bgmm_blobs.png")
    logger.info("blobs: weights %s", np.round(weights, 2).tolist())
    return {"n_samples": len(X), "weights": np.round(weights, 4).tolist(), "n_kept": int(kept.sum()),
            "kept_weights": np.round(np.sort(weights[kept])[::-1], 4).tolist(), "n_iter": int(bgm.n_iter_),
            "converged": bool(bgm.converged_), "seconds": round(seconds, 2)}


def concentration_workflow(seed: int, out: Path, n_rows: int = 73) -> dict[str, Any]:
    """``weight_concentration_prior`` 0.01 against 10,000 on the first ``n_rows`` rows."""
    from matplotlib.figure import Figure

    from daskcluster import BayesianGaussianMixture
    from daskcluster.datasets import make_mixture_blobs
    from daskcluster.plotting import plot_mixture_2d, save_figure

    X = make_mixture_blobs(random_state=seed)[:n_rows]
    fig = Figure(figsize=(11, 4.5))
    report: dict[str, Any] = {"n_samples": n_rows}
    for i, prior in enumerate((0.01, 10000.0)):
        bgm = BayesianGaussianMixture(n_components=10, max_iter=1000, weight_concentration_prior=prior,
                                      random_state=seed).fit(X)
        weights = np.asarray(bgm.weights_)
        ax = fig.add_subplot(1, 2, i + 1)
        plot_mixture_2d(bgm, X, random_state=seed, ax=ax)
        ax.set_title(f"weight_concentration_prior = {prior:g}: {int((weights > 0.01).sum())} components",
                     fontsize="medium")
        report[f"prior_{prior:g}"] = {"weights": np.round(weights, 4).tolist(), "n_kept": int((weights > 0.01).sum()),
                                      "n_iter": int(bgm.n_iter_)}
    save_figure(fig, out / "bgmm_concentration.png")
    return report


def moons_workflow(seed: int, n_init: int, out: Path) -> dict[str, Any]:
    """Ten components on the moons: each moon is tiled by several Gaussians."""
    from sklearn.datasets import make_moons

    from daskcluster import BayesianGaussianMixture
    from daskcluster.plotting import plot_mixture_2d, save_figure

    X = make_moons(n_samples=1000, noise=0.05, random_state=seed)[0]
    bgm = BayesianGaussianMixture(n_components=10, n_init=n_init, random_state=seed).fit(X)
    weights = np.asarray(bgm.weights_)
    fig = plot_mixture_2d(bgm, X, random_state=seed)
    fig.axes[0].set_title(f"moons: {int((weights > 0.01).sum())} Gaussian components tile two moons",
                          fontsize="medium")
    save_figure(fig, out / "bgmm_moons.png")
    return {"n_samples": len(X), "weights": np.round(weights, 4).tolist(), "n_kept": int((weights > 0.01).sum())}


def mnist_workflow(source: str, small: bool, n_pca: int, n_components: int, seed: int, out: Path) -> dict[str, Any]:
    """PCA, then a Bayesian mixture that chooses its number of components."""
    import dask.array as da
    from matplotlib.figure import Figure

    from daskcluster import BayesianGaussianMixture
    from daskcluster.datasets import mnist_or_generated
    from daskcluster.decomposition import PCA
    from daskcluster.metrics import majority_label_accuracy
    from daskcluster.plotting import save_figure

    with tempfile.TemporaryDirectory(dir=out, prefix=".work-") as work:
        X, y, where = mnist_or_generated(source, SMALL_MNIST_ROWS if small else None, Path(work))
        pixels = X.astype(np.float32) / np.float32(255)
        t0 = time.perf_counter()
        Z = PCA(n_components=n_pca).fit(pixels).transform(pixels).astype(np.float64).persist()
        pca_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        bgm = BayesianGaussianMixture(n_components=n_components, covariance_type="full", max_iter=200,
                                      random_state=seed).fit(Z)
        fit_seconds = time.perf_counter() - t0
        labels = bgm.predict(Z)
        labels = np.asarray(labels.compute() if isinstance(labels, da.Array) else labels)
    weights = np.asarray(bgm.weights_)
    kept = weights > 1.0 / (2 * n_components)
    fig = Figure(figsize=(7, 3.5))
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(np.arange(n_components), np.sort(weights)[::-1], color="tab:blue")
    ax.axhline(1.0 / (2 * n_components), color="tab:red", lw=0.8, ls="--", label="1 / (2 K)")
    ax.set_xlabel("component (by weight)")
    ax.set_ylabel("weight")
    ax.set_title(f"MNIST, {n_pca} principal components: {int(kept.sum())} of {n_components} components kept",
                 fontsize="medium")
    ax.legend(fontsize="small")
    save_figure(fig, out / "mnist_bgmm_weights.png")
    return {"data": where, "n_samples": len(y), "pca": {"n_components": n_pca, "seconds": round(pca_seconds, 2)},
            "n_components": n_components, "n_kept": int(kept.sum()),
            "weights": np.round(np.sort(weights)[::-1], 4).tolist(), "n_iter": int(bgm.n_iter_),
            "converged": bool(bgm.converged_), "fit_seconds": round(fit_seconds, 2),
            "majority_label_accuracy": float(majority_label_accuracy(np.asarray(y), labels))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--small", action="store_true",
                        help=f"a quick run: n_init=2 in 2-D; the first {SMALL_MNIST_ROWS:,} MNIST rows, "
                        "10 principal components, 10 components")
    parser.add_argument("--data", choices=("2d", "mnist", "both"), default="both")
    parser.add_argument("--mnist", default="auto", help="'auto' (the file if found, else generated), 'generated', "
                        "or the path of a Keras mnist.npz")
    parser.add_argument("--pca", type=int, default=None, help="principal components of MNIST (default 30)")
    parser.add_argument("--mnist-components", type=int, default=None,
                        help="components of the MNIST mixture (default 30; 10 small)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    n_pca = args.pca or (10 if args.small else 30)
    if not 1 <= n_pca <= 784:
        parser.error(f"--pca must be in [1, 784]; got {n_pca}")
    n_components = args.mnist_components or (10 if args.small else 30)
    if n_components < 1:
        parser.error(f"--mnist-components must be at least 1; got {n_components}")

    from daskcluster.jobs.outputs import write_json

    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"workflow": "bayesian_mixture", "small": args.small, "seed": args.seed}
    n_init = 2 if args.small else 10
    if args.data in ("2d", "both"):
        report["blobs"] = blobs_workflow(args.seed, n_init, out)
        report["concentration"] = concentration_workflow(args.seed, out)
        report["moons"] = moons_workflow(args.seed, n_init, out)
    if args.data in ("mnist", "both"):
        report["mnist"] = mnist_workflow(args.mnist, args.small, n_pca, n_components, args.seed, out)
    path = write_json(out / "bayesian_mixture.json", report)
    print(path)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
