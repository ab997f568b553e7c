"""Gaussian mixtures: components chosen by BIC/AIC, the 4% least likely points flagged as
anomalies, new points drawn -- on 2-D data, then on MNIST after PCA.

1. 2-D data as the texts: ``blobs`` (two stretched blobs and a round one: 1,250 points) and
   ``moons`` (``make_moons``, 1,000 points). ``daskcluster.mixture.gmm_bic_table`` fits every
   number of components in ``--components`` for the four covariance types together (each EM
   iteration is one pass for all the models still iterating) and the model of least BIC is
   kept. The density threshold is the 4th percentile of ``score_samples`` over all the rows
   (``density_threshold(..., exact=True)``: a quantile summary, then one pass for the exact
   value); the rows below it are the anomalies. ``GaussianMixture.sample`` draws new points.
2. MNIST (70,000 digits, ``uint8`` read as x / 255) projected by ``daskcluster.decomposition.PCA``
   (exact, from the covariance: 1 pass) to ``--pca`` components, then the same: BIC/AIC over the numbers of
   components (full and diagonal covariances), anomalies at the 4th percentile, and digits
   drawn from the mixture and mapped back to pixels by the inverse PCA
   (``z @ components_ + mean_``). The projected rows stay a Dask array (persisted: 70,000 x 30
   float32 is 8 MB); every fit, score and threshold is a pass over its chunks.

MNIST is read from the Keras ``mnist.npz`` that ``daskcluster.datasets.find_mnist`` finds; without
it, 70,000 deformed digits are generated (``make_infinite_mnist`` of scikit-learn's digits).

Usage::

    python workflows/gmm_anomalies.py OUTPUT_DIR [--small] [--data {2d,mnist,both}]
        [--mnist {auto,generated,PATH}] [--pca 30] [--mnist-components 5 10 15 20 30]
        [--percentile 4] [--seed S]

Writes ``gmm_<blobs|moons>.png`` (density contours, anomalies in red, sampled points),
``gmm_<blobs|moons>_criteria.png`` and ``mnist_gmm_criteria.png`` (BIC and AIC curves),
``mnist_gmm_samples.png`` (digits drawn from the mixture), ``mnist_gmm_anomalies.png`` (the least
likely digits) and ``gmm_anomalies.json`` (the figures).
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

logger = logging.getLogger("workflows.gmm_anomalies")

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
#: MNIST rows used with --small.
SMALL_MNIST_ROWS = 2000


def two_d_data(name: str, seed: int) -> np.ndarray:
    """``blobs`` (the texts') or ``moons`` (``make_moons(1000, noise=0.05)``)."""
    if name == "blobs":
        from daskcluster.datasets import make_mixture_blobs

        return make_mixture_blobs(random_state=seed)
    from sklearn.datasets import make_moons

    return make_moons(n_samples=1000, noise=0.05, random_state=seed)[0]


def select_and_flag(X: Any, components: list[int], types: tuple[str, ...], percentile: float,
                    seed: int) -> tuple[Any, Any, Any, dict[str, Any]]:
    """BIC/AIC table over ``components`` x ``types``, the model of least BIC, and its anomalies.

    Returns the table, the model, the anomaly mask (shape (n_samples,), lazy for lazy ``X``) and
    the figures: the chosen model, its BIC and AIC, the least-AIC model, the threshold and the
    fraction of rows below it.
    """
    from daskcluster.mixture import anomalies, density_threshold, gmm_bic_table

    t0 = time.perf_counter()
    table = gmm_bic_table(X, n_components=components, covariance_type=types, random_state=seed)
    seconds = time.perf_counter() - t0
    model = table.attrs["best_model"]
    if model is None:
        raise RuntimeError(f"every model of the grid failed: {table['error'].tolist()}")
    best_aic = table.loc[table["aic"].idxmin()]
    threshold = density_threshold(model, X, percentile, exact=True)
    mask = anomalies(model, X, percentile, threshold=threshold, return_mask=True)
    n_anomalies = int(mask.sum().compute() if isinstance(mask, da.Array) else mask.sum())
    n = int(X.shape[0])
    figures = {
        "n_samples": n,
        "grid": {"n_components": components, "covariance_type": list(types)},
        "table_seconds": round(seconds, 2),
        "bic_choice": {"n_components": int(model.n_components), "covariance_type": model.covariance_type},
        "aic_choice": {"n_components": int(best_aic["n_components"]), "covariance_type": best_aic["covariance_type"]},
        "bic": float(table["bic"].min()),
        "aic": float(table["aic"].min()),
        "converged": bool(model.converged_),
        "percentile": percentile,
        "density_threshold": threshold,
        "n_anomalies": n_anomalies,
        "anomaly_fraction": n_anomalies / n,
        "criteria": table[["n_components", "covariance_type", "bic", "aic"]].to_dict("records"),
    }
    logger.info("%d rows: least BIC %s with %d components; %d anomalies (%.2f%%) below log-density %.4g",
                n, model.covariance_type, model.n_components, n_anomalies, 100 * n_anomalies / n, threshold)
    return table, model, mask, figures


def two_d_workflow(name: str, components: list[int], percentile: float, n_new: int, seed: int,
                   out: Path) -> dict[str, Any]:
    """Select, flag and sample on one 2-D data set; draws the contours and the criteria."""
    from daskcluster.plotting import (
        plot_information_criteria,
        plot_mixture_2d,
        save_figure,
    )

    X = two_d_data(name, seed)
    table, model, mask, figures = select_and_flag(X, components, COVARIANCE_TYPES, percentile, seed)
    new, component = model.sample(n_new)
    figures["sampled"] = {"n": n_new, "per_component": np.bincount(component, minlength=model.n_components).tolist()}
    fig = plot_mixture_2d(model, X, anomalies=mask, random_state=seed)
    ax = fig.axes[0]
    ax.scatter(new[:, 0], new[:, 1], marker="^", s=18, color="tab:blue", label=f"sampled ({n_new})")
    ax.legend(loc="best", fontsize="small")
    ax.set_title(f"{name}: {model.n_components} {model.covariance_type} components (least BIC), "
                 f"{figures['n_anomalies']} anomalies", fontsize="medium")
    save_figure(fig, out / f"gmm_{name}.png")
    save_figure(plot_information_criteria(table), out / f"gmm_{name}_criteria.png")
    return figures


def mnist_workflow(source: str, small: bool, n_pca: int, components: list[int], percentile: float, n_new: int,
                   seed: int, out: Path) -> dict[str, Any]:
    """PCA, then select, flag and sample on MNIST; draws the criteria, sampled and anomalous digits."""
    from daskcluster.datasets import mnist_or_generated
    from daskcluster.decomposition import PCA
    from daskcluster.engine import take
    from daskcluster.plotting import (
        plot_image_grid,
        plot_information_criteria,
        save_figure,
    )

    with tempfile.TemporaryDirectory(dir=out, prefix=".work-") as work:
        X, y, where = mnist_or_generated(source, SMALL_MNIST_ROWS if small else None, Path(work))
        pixels = X.astype(np.float32) / np.float32(255)
        t0 = time.perf_counter()
        pca = PCA(n_components=n_pca).fit(pixels)
        Z = pca.transform(pixels).astype(np.float32).persist()
        pca_seconds = time.perf_counter() - t0
        table, model, mask, figures = select_and_flag(Z, components, ("full", "diag"), percentile, seed)
        scores = model.score_samples(Z)
        # the 20 least likely digits: their scores (one float a row) and rows read by public API of both
        # Dask array backends (argtopk and integer indexing are not on the query-planning one)
        scores = np.asarray(dask.compute(scores)[0])
        least = np.sort(np.argpartition(scores, 20)[:20])
        odd_images = take(X, least) if isinstance(X, da.Array) else X[least]
        mask_np = np.asarray(mask.compute() if isinstance(mask, da.Array) else mask)
    figures["data"] = where
    figures["pca"] = {"n_components": n_pca, "explained_variance": float(np.sum(pca.explained_variance_ratio_)),
                      "fit_seconds": round(pca_seconds, 2)}
    rate = np.array([mask_np[y == d].mean() for d in range(10)])
    figures["anomaly_fraction_by_digit"] = rate.round(4).tolist()
    new, _ = model.sample(n_new)
    digits = np.clip(new @ np.asarray(pca.components_) + np.asarray(pca.mean_), 0.0, 1.0)
    save_figure(plot_information_criteria(table), out / "mnist_gmm_criteria.png")
    save_figure(plot_image_grid(digits, (28, 28), n_cols=10, cmap="gray_r",
                                suptitle=f"{n_new} digits drawn from the mixture ({model.n_components} "
                                         f"{model.covariance_type} components on {n_pca} principal components)"),
                out / "mnist_gmm_samples.png")
    save_figure(plot_image_grid(odd_images, (28, 28), n_cols=10, cmap="gray_r", titles=[str(int(v)) for v in y[least]],
                                suptitle=f"the 20 least likely of {len(y):,} digits ({figures['n_anomalies']:,} "
                                         f"anomalies below the {percentile:g}th percentile)"),
                out / "mnist_gmm_anomalies.png")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--small", action="store_true",
                        help=f"a quick run: 1..6 components in 2-D; the first {SMALL_MNIST_ROWS:,} MNIST rows, "
                        "10 principal components, 2..6 components")
    parser.add_argument("--data", choices=("2d", "mnist", "both"), default="both")
    parser.add_argument("--mnist", default="auto", help="'auto' (the file if found, else generated), 'generated', "
                        "or the path of a Keras mnist.npz")
    parser.add_argument("--pca", type=int, default=None, help="principal components of MNIST (default 30)")
    parser.add_argument("--mnist-components", type=int, nargs="+", default=None,
                        help="numbers of components tried on MNIST (default 5 10 15 20 30; 2 4 6 small)")
    parser.add_argument("--percentile", type=float, default=4.0, help="density percentile of the anomalies")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    n_pca = args.pca or (10 if args.small else 30)
    if not 1 <= n_pca <= 784:
        parser.error(f"--pca must be in [1, 784]; got {n_pca}")
    if args.mnist_components is not None and min(args.mnist_components) < 1:
        parser.error(f"--mnist-components must be at least 1; got {args.mnist_components}")
    if not 0 < args.percentile < 100:
        parser.error(f"--percentile must be in (0, 100); got {args.percentile}")

    from daskcluster.jobs.outputs import write_json

    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"workflow": "gmm_anomalies", "small": args.small, "seed": args.seed}
    if args.data in ("2d", "both"):
        components = list(range(1, 7 if args.small else 11))
        for name in ("blobs", "moons"):
            report[name] = two_d_workflow(name, components, args.percentile, 100, args.seed, out)
    if args.data in ("mnist", "both"):
        components = args.mnist_components or ([2, 4, 6] if args.small else [5, 10, 15, 20, 30])
        report["mnist"] = mnist_workflow(args.mnist, args.small, n_pca, components, args.percentile, 30,
                                         args.seed, out)
    path = write_json(out / "gmm_anomalies.json", report)
    print(path)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
