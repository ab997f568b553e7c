"""Image segmentation by colour: an image's pixels clustered by KMeans at several k, side by side.

Each pixel is a row of 3 colour values (kept ``uint8``, read as x / 255 inside the kernels); a
``KMeans(n_clusters=k)`` of the rows, then every pixel recoloured with its cluster's center,
gives the image in ``k`` colours -- regions of one colour, however far apart. Small ``k`` merges
small regions of a rare colour into their surroundings (the texts' ladybug disappears below
k = 8); larger ``k`` keeps them. The images are scikit-learn's bundled photographs
(``sklearn.datasets.load_sample_image``: ``flower.jpg``, ``china.jpg``).

Usage::

    python workflows/segmentation.py OUTPUT_DIR [--small] [--images flower.jpg china.jpg]
        [--k 2 4 6 8 10] [--seed S]

Writes ``segmentation_<image>.png`` (the original, then one panel per k) and
``segmentation.json`` (inertia, iterations, seconds and the largest cluster's share per k).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("workflows.segmentation")

SAMPLE_IMAGES = ("flower.jpg", "china.jpg")


def load_image(name: str, small: bool) -> np.ndarray:
    """A bundled photograph, shape (height, width, 3), uint8; every 4th pixel each way if small."""
    from sklearn.datasets import load_sample_image

    image = load_sample_image(name)
    return np.ascontiguousarray(image[::4, ::4]) if small else image


def segment(image: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The image with each pixel recoloured by its ``KMeans(n_clusters=k)`` center, and the fit's figures."""
    from daskcluster import KMeans, scaled

    pixels = image.reshape(-1, 3)
    t0 = time.perf_counter()
    km = KMeans(n_clusters=k, random_state=seed).fit(scaled(pixels, 1 / 255))
    seconds = time.perf_counter() - t0
    labels = np.asarray(km.labels_)
    palette = np.clip(km.cluster_centers_, 0.0, 1.0)
    segmented = (palette[labels] * 255 + 0.5).astype(np.uint8).reshape(image.shape)
    sizes = np.bincount(labels, minlength=k)
    figures = {"k": k, "inertia": float(km.inertia_), "n_iter": int(km.n_iter_), "fit_seconds": round(seconds, 2),
               "largest_share": float(sizes.max() / sizes.sum()), "smallest_share": float(sizes.min() / sizes.sum())}
    logger.info("k=%d: inertia %.4g in %d iterations (%.2f s)", k, km.inertia_, km.n_iter_, seconds)
    return segmented, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--small", action="store_true", help="every 4th pixel each way")
    parser.add_argument("--images", nargs="+", choices=SAMPLE_IMAGES, default=["flower.jpg"])
    parser.add_argument("--k", nargs="+", type=int, default=[2, 4, 6, 8, 10], help="numbers of clusters")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.k) < 1:
        parser.error(f"every --k must be at least 1; got {args.k}")

    from daskcluster.jobs.outputs import write_json
    from daskcluster.plotting import plot_segmentation, save_figure

    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"workflow": "segmentation", "small": args.small, "seed": args.seed, "images": {}}
    for name in args.images:
        image = load_image(name, args.small)
        panels: dict[int, np.ndarray] = {}
        rows = []
        for k in sorted(set(args.k)):
            panels[k], figures = segment(image, k, args.seed)
            rows.append(figures)
        fig = plot_segmentation(image, panels)
        fig.suptitle(f"{name} ({image.shape[1]} x {image.shape[0]} pixels) segmented by colour with KMeans")
        path = save_figure(fig, out / f"segmentation_{Path(name).stem}.png")
        report["images"][name] = {"shape": list(image.shape), "n_pixels": int(image.shape[0] * image.shape[1]),
                                  "fits": rows, "figure": path.name}
    path = write_json(out / "segmentation.json", report)
    print(path)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
