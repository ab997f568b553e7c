"""Faces decomposition: NMF and OPNMF, each over the samples and over the pixels, drawn as
galleries of parts and clustered heat maps of the weights; and a parts dictionary of MNIST
learned out of core.

This follows the ``opnmf`` package's faces example (itself after scikit-learn's). NMF and
OPNMF both factorize the non-negative images ``X`` (n_images, n_pixels) as ``X ~ W H``.
OPNMF's ``W`` is orthonormal and non-negative, so each row of the side it is over loads
mainly on one component -- "some sort of clustering": over the samples (``X ~ W WᵀX``) it
groups the images, over the pixels (``X ~ X W Wᵀ``) it cuts the image into disjoint parts.
For every model the gallery shows ``components_`` (n_components, n_pixels) as images and the
heat map shows each image's weights ``fit_transform(X)`` (n_images, n_components), rows
ordered by hierarchical clustering. NMF "over the pixels" is NMF of ``X.T``, the example's
second use; OPNMF's two uses are ``OPNMF(orientation='samples'|'features')`` on ``X``.

Images: Olivetti faces (400 of 64x64) when ``sklearn.datasets.fetch_olivetti_faces`` can get
them (cached or downloaded); otherwise, offline, scikit-learn's bundled 8x8 digits (1,797) and
16x16 grey patches cut from its sample photographs (``china.jpg``, ``flower.jpg``).
``--images`` picks one collection.

``--mnist`` adds the MNIST-scale dictionary: OPNMF over the pixels of MNIST read from a Zarr
store (``--mnist-store``; by default real MNIST, written once to ``OUTPUT_DIR/mnist.zarr``),
streamed (``cache=False``): one pass sums the 784 x 784 Gram matrix (and keeps the rows NNDSVD
measures), every iteration runs on that matrix, and the weights ``XW`` are a lazy map read
only where the heat map samples rows; the parts are drawn as 28x28 images.

Usage::

    python workflows/faces_decomposition.py OUTPUT_DIR [--small] [--images {auto,olivetti,digits,sample}]
        [--n-components 6] [--mnist] [--mnist-store PATH] [--mnist-components 16] [--seed 0]

Writes, per collection ``C``: ``C_images.png`` (some inputs), ``C_{model}_components.png`` and
``C_{model}_weights.png`` for ``model`` in ``nmf_samples``, ``nmf_pixels``, ``opnmf_samples``,
``opnmf_pixels``; with ``--mnist``: ``mnist_opnmf_parts.png`` and ``mnist_opnmf_weights.png``;
and ``summary.json`` (errors, iterations, passes, seconds, and how strongly each image's
weights concentrate on one component). Every file is written under a temporary name, then
renamed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("workflows.faces_decomposition")

PATCH = (16, 16)


@dataclass
class Collection:
    """Non-negative images as rows, (n_images, n_pixels), and how to draw them."""

    name: str
    X: np.ndarray
    image_shape: tuple[int, int]
    description: str


def olivetti(small: bool, seed: int) -> Collection | None:
    """Olivetti faces in [0, 1], or None when they cannot be had."""
    from sklearn.datasets import fetch_olivetti_faces

    try:
        faces = fetch_olivetti_faces(shuffle=True, random_state=seed)
    except Exception as exc:  # noqa: BLE001 - offline, blocked, or a corrupt cache: fall back
        logger.warning("Olivetti faces unavailable (%s: %s).", type(exc).__name__, exc)
        return None
    X = faces.data.astype(np.float64)
    if small:
        X = X[:100]
    return Collection("olivetti", X, (64, 64), f"Olivetti faces, {len(X)} of 64x64")


def digits(small: bool) -> Collection:
    """scikit-learn's 8x8 digits in [0, 1] (blank border pixels kept: OPNMF handles them)."""
    from sklearn.datasets import load_digits

    X = load_digits().data / 16.0
    if small:
        X = X[:300]
    return Collection("digits", X, (8, 8), f"scikit-learn digits, {len(X)} of 8x8")


def sample_patches(small: bool, seed: int) -> Collection:
    """16x16 grey patches in [0, 1] cut at random from scikit-learn's two sample photographs."""
    from sklearn.datasets import load_sample_images
    from sklearn.feature_extraction.image import extract_patches_2d

    per_image = 300 if small else 2000
    rng = np.random.default_rng(seed)
    rows = []
    for img in load_sample_images().images:
        grey = (img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])) / 255.0
        patches = extract_patches_2d(grey, PATCH, max_patches=per_image, random_state=int(rng.integers(2**31 - 1)))
        rows.append(patches.reshape(len(patches), -1))
    X = np.concatenate(rows)
    return Collection("sample", X, PATCH, f"{len(X)} grey 16x16 patches of scikit-learn's sample photographs")


def collections(which: str, small: bool, seed: int) -> list[Collection]:
    """The image collections to decompose (see the module doc)."""
    if which in ("auto", "olivetti"):
        faces = olivetti(small, seed)
        if faces is not None:
            return [faces]
        if which == "olivetti":
            raise SystemExit("Olivetti faces are unavailable (no network, no cache); use --images digits or sample.")
        logger.warning("Using scikit-learn's bundled digits and sample photographs instead.")
        return [digits(small), sample_patches(small, seed)]
    return [digits(small)] if which == "digits" else [sample_patches(small, seed)]


def top_share(weights: np.ndarray) -> float:
    """Mean over the images of their largest weight's share of their total weight: near 1 when
    every image loads on one component (a clustering), ``1 / n_components`` when spread."""
    w = np.asarray(weights, dtype=np.float64)
    total = w.sum(axis=1)
    keep = total > 0
    return float(np.mean(w[keep].max(axis=1) / total[keep]))


def decompose(col: Collection, k: int, small: bool, seed: int) -> dict[str, dict[str, Any]]:
    """The four models of one collection: ``{model: {"components", "weights", "error", ...}}``."""
    from daskcluster import NMF, OPNMF

    max_iter = 300 if small else 2000
    X = col.X
    models: dict[str, dict[str, Any]] = {}

    def run(name: str, fit: Any) -> None:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings at the example's loose tol
            components, weights, model = fit()
        seconds = time.perf_counter() - t0
        error = float(np.linalg.norm(X - weights @ components))
        models[name] = {"components": components, "weights": np.asarray(weights), "model": model,
                        "error": error, "relative_error": error / float(np.linalg.norm(X)),
                        "n_iter": int(model.n_iter_), "seconds": round(seconds, 3)}
        logger.info("%s %s: relative error %.4f, %d iterations, %.2fs", col.name, name,
                    models[name]["relative_error"], model.n_iter_, seconds)

    def nmf_samples() -> tuple[np.ndarray, np.ndarray, Any]:
        m = NMF(k, init="nndsvd", tol=5e-3, max_iter=max_iter, random_state=seed)
        W = m.fit_transform(X)
        return m.components_, W, m

    def nmf_pixels() -> tuple[np.ndarray, np.ndarray, Any]:
        # NMF of X.T: its W (n_pixels, k) are images, its H (k, n_images) the images' weights
        m = NMF(k, init="nndsvd", tol=5e-3, max_iter=max_iter, random_state=seed)
        W = m.fit_transform(np.ascontiguousarray(X.T))
        return W.T, m.components_.T, m

    def opnmf(orientation: str) -> tuple[np.ndarray, np.ndarray, Any]:
        m = OPNMF(k, orientation=orientation, init="nndsvd", tol=5e-3, max_iter=max_iter)
        weights = m.fit_transform(X)
        return m.components_, weights, m

    run("nmf_samples", nmf_samples)
    run("nmf_pixels", nmf_pixels)
    run("opnmf_samples", lambda: opnmf("samples"))
    run("opnmf_pixels", lambda: opnmf("features"))
    return models


TITLES = {
    "nmf_samples": ("NMF: components H", "NMF: weights W"),
    "nmf_pixels": ("NMF of X.T: W over the pixels, as images", "NMF of X.T: H, the images' weights"),
    "opnmf_samples": ("OPNMF over the samples: components H = WᵀX", "OPNMF over the samples: weights W"),
    "opnmf_pixels": ("OPNMF over the pixels: parts Wᵀ", "OPNMF over the pixels: weights XW"),
}


def draw_collection(col: Collection, models: dict[str, dict[str, Any]], out: Path) -> list[str]:
    """Save the collection's figures; return their file names."""
    from daskcluster.plotting import plot_image_grid, plot_weights_heatmap, save_figure

    written = []
    shown = col.X[: min(len(col.X), 12)]
    name = f"{col.name}_images.png"
    save_figure(plot_image_grid(shown, col.image_shape, n_cols=6, suptitle=f"{col.description}: first images"),
                out / name)
    written.append(name)
    for model, result in models.items():
        parts_title, weights_title = TITLES[model]
        k = len(result["components"])
        name = f"{col.name}_{model}_components.png"
        fig = plot_image_grid(result["components"], col.image_shape, n_cols=min(k, 6),
                              titles=[str(j) for j in range(k)],
                              suptitle=f"{parts_title} (relative error {result['relative_error']:.3f})")
        save_figure(fig, out / name)
        written.append(name)
        name = f"{col.name}_{model}_weights.png"
        save_figure(plot_weights_heatmap(result["weights"], title=weights_title), out / name)
        written.append(name)
    return written


def mnist_store(arg: str | None, out: Path, small: bool, seed: int) -> tuple[Any, tuple[int, int], str]:
    """The MNIST-like data as a lazy uint8 array, its image shape, and a description: the store
    given, else real MNIST written once to ``out/mnist.zarr``, else deformed 8x8 digits
    generated there."""
    import dask.array as da

    from daskcluster.datasets import (
        find_mnist,
        load_mnist_npz,
        make_infinite_mnist,
        open_labeled_zarr,
    )
    from daskcluster.errors import SourceError, SourceNotFoundError
    from daskcluster.io import open_array, write_zarr

    if arg is not None:
        path = Path(arg)
        try:
            X, _, attrs = open_labeled_zarr(path)
            shape = tuple(attrs.get("image_shape", (28, 28)))
        except SourceNotFoundError:
            raise
        except SourceError:  # a plain Zarr array, not a labelled store
            X = open_array(str(path))
            side = round(float(np.sqrt(X.shape[1])))
            shape = (side, side)
        return X, shape, f"{path.name}, {X.shape[0]:,} rows"  # type: ignore[return-value]
    mnist = find_mnist(Path(__file__).resolve().parents[1])
    rows = 10_000 if small else None
    if mnist is None:
        n = rows or 60_000
        X, _, _ = make_infinite_mnist(out / "generated_digits.zarr", n, base="digits", random_state=seed,
                                      overwrite=True)
        return X, (8, 8), f"deformed 8x8 digits (MNIST not found), {n:,} rows"
    path = out / ("mnist_small.zarr" if small else "mnist.zarr")
    if not path.exists():
        images, _ = load_mnist_npz(mnist)
        images = images.reshape(len(images), -1)[:rows]
        write_zarr(images, path)
    X = open_array(str(path))
    assert isinstance(X, da.Array)
    return X, (28, 28), f"MNIST ({mnist.name}) from {path.name}, {X.shape[0]:,} rows"


def mnist_parts(store: str | None, k: int, out: Path, small: bool, seed: int) -> tuple[dict[str, Any], list[str]]:
    """OPNMF over the pixels of MNIST, streamed from its store; the parts and the weights drawn."""
    from daskcluster import OPNMF, scaled
    from daskcluster.engine import count_passes
    from daskcluster.plotting import plot_image_grid, plot_weights_heatmap, save_figure

    X, shape, description = mnist_store(store, out, small, seed)
    model = OPNMF(k, orientation="features", init="nndsvd", tol=1e-5, max_iter=5000, cache=False)
    t0 = time.perf_counter()
    with count_passes() as passes, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weights = model.fit_transform(scaled(X, 1 / 255))  # lazy: one pass when computed
    seconds = time.perf_counter() - t0
    info = {"data": description, "n_components": k, "passes": passes.passes, "n_iter": int(model.n_iter_),
            "seconds": round(seconds, 2), "error": model.reconstruction_err_}
    written = []
    save_figure(plot_image_grid(model.components_, shape, n_cols=min(k, 8), titles=[str(j) for j in range(k)],
                                suptitle=f"OPNMF parts of {description} ({_passes(passes.passes)}, {seconds:.0f}s)"),
                out / "mnist_opnmf_parts.png")
    written.append("mnist_opnmf_parts.png")
    save_figure(plot_weights_heatmap(weights, title="MNIST weights XW", random_state=seed),
                out / "mnist_opnmf_weights.png")
    written.append("mnist_opnmf_weights.png")
    logger.info("MNIST parts: %d passes, %d iterations, %.1fs", passes.passes, model.n_iter_, seconds)
    return info, written


def _passes(n: int) -> str:
    return f"{n} pass" if n == 1 else f"{n} passes"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--small", action="store_true", help="fewer images and iterations")
    parser.add_argument("--images", choices=("auto", "olivetti", "digits", "sample"), default="auto")
    parser.add_argument("--n-components", type=int, default=6)
    parser.add_argument("--mnist", action="store_true", help="also the out-of-core MNIST parts dictionary")
    parser.add_argument("--mnist-store", default=None, help="Zarr store of MNIST-like digits (default: real MNIST)")
    parser.add_argument("--mnist-components", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from daskcluster.jobs.outputs import write_json

    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"collections": {}, "figures": []}
    for col in collections(args.images, args.small, args.seed):
        models = decompose(col, args.n_components, args.small, args.seed)
        summary["figures"] += draw_collection(col, models, out)
        summary["collections"][col.name] = {
            "data": col.description,
            "models": {name: {"relative_error": round(r["relative_error"], 5), "n_iter": r["n_iter"],
                              "seconds": r["seconds"], "top_weight_share": round(top_share(r["weights"]), 4)}
                       for name, r in models.items()},
        }
    if args.mnist:
        k = args.mnist_components or (9 if args.small else 16)
        info, written = mnist_parts(args.mnist_store, k, out, args.small, args.seed)
        summary["mnist"] = info
        summary["figures"] += written
    write_json(out / "summary.json", summary)
    for entry in summary["collections"].values():
        print(f"{entry['data']}:")
        for model, r in entry["models"].items():
            print(f"  {model:14s} relative error {r['relative_error']:.4f}  top-weight share "
                  f"{r['top_weight_share']:.3f}  {r['n_iter']} iterations  {r['seconds']}s")
    if "mnist" in summary:
        m = summary["mnist"]
        print(f"MNIST parts: {m['data']}: {_passes(m['passes'])}, {m['n_iter']} iterations, {m['seconds']}s")
    print(f"{len(summary['figures'])} figures in {out}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
