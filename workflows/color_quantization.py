"""Colour quantization: the pixels of ``china.jpg`` reduced to 16 colours by MiniBatchKMeans.

The pixels stay ``uint8``; ``daskcluster.scaled(pixels, 1 / 255)`` makes the estimator see them
in [0, 1] (each kernel casts and scales a slice at a time). Every pixel is then recoloured with
its center, and the result is drawn beside the original.

Usage::

    python workflows/color_quantization.py OUTPUT_DIR [--small] [--n-colors 16]

Writes ``OUTPUT_DIR/color_quantization.png`` (original | quantized) and
``OUTPUT_DIR/palette.png`` (the colours found).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

logger = logging.getLogger("workflows.color_quantization")


def load_china(small: bool) -> np.ndarray:
    """The photograph as a (height, width, 3) uint8 array; every 4th pixel each way if small."""
    from sklearn.datasets import load_sample_image

    image = load_sample_image("china.jpg")
    return np.ascontiguousarray(image[::4, ::4]) if small else image


def quantize(image: np.ndarray, n_colors: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Recolour ``image`` with ``n_colors`` colours; returns (quantized uint8 image, palette
    (n_colors, 3) in [0, 1], inertia)."""
    from daskcluster import scaled

    from daskcluster import MiniBatchKMeans


    pixels = image.reshape(-1, 3)
    km = MiniBatchKMeans(n_clusters=n_colors, random_state=seed, batch_size=4096).fit(scaled(pixels, 1 / 255))
    palette = np.clip(km.cluster_centers_, 0.0, 1.0)
    labels = np.asarray(km.labels_)
    quantized = (palette[labels] * 255 + 0.5).astype(np.uint8).reshape(image.shape)
    logger.info("%d pixels -> %d colours in %d steps (%d epochs), inertia %.4g",
                len(pixels), n_colors, km.n_steps_, km.n_iter_, km.inertia_)
    return quantized, palette, float(km.inertia_)


def draw(original: np.ndarray, quantized: np.ndarray, palette: np.ndarray, out_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, img, title in zip(axes, (original, quantized),
                              ("original", f"{len(palette)} colours (MiniBatchKMeans)")):
        ax.imshow(img)
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.tight_layout()
    path = out_dir / "color_quantization.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)

    order = np.argsort(palette @ np.array([0.299, 0.587, 0.114]))
    fig, ax = plt.subplots(figsize=(len(palette) * 0.4 + 0.4, 0.9))
    ax.imshow(palette[order][None, :, :], aspect="auto")
    ax.set_axis_off()
    fig.savefig(out_dir / "palette.png", dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--small", action="store_true", help="a quarter of the pixels each way")
    parser.add_argument("--n-colors", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    image = load_china(args.small)
    quantized, palette, _ = quantize(image, args.n_colors, args.seed)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    path = draw(image, quantized, palette, args.output_dir)
    print(path)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
