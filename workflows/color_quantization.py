"""Colour quantization with MiniBatchKMeans: one photograph, then a large image collection.

1. The pixels of scikit-learn's ``china.jpg`` (427 x 640) reduced to 16 colours. The pixels stay
   ``uint8``; ``daskcluster.scaled(pixels, 1 / 255)`` makes the estimator see them in [0, 1]
   (each kernel casts and scales a slice at a time). Every pixel is recoloured with its center.
2. A collection of many images, generated and written to a Zarr store of pixel rows
   ``(n_images * size * size, 3)`` ``uint8``: crops of the bundled photographs (``china.jpg``,
   ``flower.jpg``) at a random place and zoom, flipped at random, with random gains per colour
   channel and brightness. One task per chunk of images draws its images from
   ``SeedSequence(seed, spawn_key=(chunk,))``, so the bytes depend only on the parameters; the
   store is written atomically (``daskcluster.io.write_zarr``). ``MiniBatchKMeans(16)`` then
   streams batches from the store chunk by chunk (``cache=False``: nothing is held in memory
   between passes), and the first images are recoloured with the 16 colours found.

Usage::

    python workflows/color_quantization.py OUTPUT_DIR [--small] [--n-colors 16] [--seed S]
        [--part {image,collection,both}] [--n-images N] [--image-size PX] [--store PATH]

``--n-images`` (default 4,096; 96 with ``--small``) and ``--image-size`` (default 128; 48 with
``--small``) set the collection's size: 4,096 images of 128 x 128 are 67 million pixels (201 MB).
``--store PATH`` keeps the store there (and reuses it when it exists); by default it is written
in a temporary folder inside OUTPUT_DIR and removed at the end.

Writes ``color_quantization.png`` (original | quantized) and ``palette.png`` (the colours found)
for the photograph; ``collection_quantization.png`` (the first images before | after, as one
mosaic) and ``collection_palette.png`` for the collection; and ``color_quantization.json``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

logger = logging.getLogger("workflows.color_quantization")

PHOTOS = ("china.jpg", "flower.jpg")
#: Images per generated chunk (one task, one Zarr chunk of their pixel rows at most).
IMAGES_PER_CHUNK = 64
#: Images of the collection shown before and after, as a mosaic of 2 rows.
SHOWN = 8


def load_china(small: bool) -> np.ndarray:
    """The photograph as a (height, width, 3) uint8 array; every 4th pixel each way if small."""
    from sklearn.datasets import load_sample_image

    image = load_sample_image("china.jpg")
    return np.ascontiguousarray(image[::4, ::4]) if small else image


def quantize(image: np.ndarray, n_colors: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Recolour ``image`` with ``n_colors`` colours; returns (quantized uint8 image, palette
    (n_colors, 3) in [0, 1], figures of the fit)."""
    from daskcluster import MiniBatchKMeans, scaled

    pixels = image.reshape(-1, 3)
    t0 = time.perf_counter()
    km = MiniBatchKMeans(n_clusters=n_colors, random_state=seed, batch_size=4096).fit(scaled(pixels, 1 / 255))
    seconds = time.perf_counter() - t0
    palette = np.clip(km.cluster_centers_, 0.0, 1.0)
    labels = np.asarray(km.labels_)
    quantized = (palette[labels] * 255 + 0.5).astype(np.uint8).reshape(image.shape)
    logger.info("%d pixels -> %d colours in %d steps (%d epochs), inertia %.4g",
                len(pixels), n_colors, km.n_steps_, km.n_iter_, km.inertia_)
    figures = {"n_pixels": len(pixels), "n_colors": n_colors, "inertia": float(km.inertia_),
               "mean_squared_error": float(km.inertia_) / len(pixels), "n_steps": int(km.n_steps_),
               "epochs": int(km.n_iter_), "fit_seconds": round(seconds, 2)}
    return quantized, palette, figures


# --------------------------------------------------------------------------- the collection


def augmented_images(photos: tuple[np.ndarray, ...], n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` images of ``size`` x ``size`` x 3, uint8: random crops of the ``photos`` at a random
    zoom (a side of ``size`` to 3 ``size`` pixels, resampled to ``size`` by nearest neighbour),
    flipped left-right half of the time, each channel scaled by a gain in [0.8, 1.2] and shifted
    by a brightness in [-25, 25]."""
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        photo = photos[int(rng.integers(len(photos)))]
        height, width = photo.shape[:2]
        side = int(rng.integers(size, min(3 * size, height, width) + 1))
        top = int(rng.integers(height - side + 1))
        left = int(rng.integers(width - side + 1))
        pick = (np.arange(size) * side) // size
        crop = photo[top + pick[:, None], left + pick[None, :]]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        gains = rng.uniform(0.8, 1.2, size=3)
        shift = rng.uniform(-25.0, 25.0)
        out[i] = np.clip(crop * gains + shift, 0, 255).round().astype(np.uint8)
    return out


@functools.cache
def _photos() -> tuple[np.ndarray, ...]:
    """scikit-learn's sample photos, read once per process."""
    from sklearn.datasets import load_sample_image

    return tuple(load_sample_image(name) for name in PHOTOS)


def _collection_chunk(n_rows: int, seed: int, size: int, chunk: Any) -> np.ndarray:
    """The ``n_rows // size**2`` images of chunk ``chunk.index``, seeded by that index."""
    n = n_rows // (size * size)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(chunk.index,)))
    return augmented_images(_photos(), n, size, rng).reshape(n * size * size, 3)


def collection_array(n_images: int, size: int, seed: int) -> da.Array:
    """The collection as a lazy Dask array of pixel rows, shape (n_images * size**2, 3), uint8:
    one task per ``IMAGES_PER_CHUNK`` images, seeded by the chunk's index (``generated_rows``:
    public API of both Dask array backends)."""
    from daskcluster.engine import generated_rows

    lengths = [min(IMAGES_PER_CHUNK, n_images - start) * size * size for start in range(0, n_images, IMAGES_PER_CHUNK)]
    return generated_rows(lengths, _collection_chunk, (seed, size), dtype=np.uint8, n_columns=3,
                          label="image-collection")


def open_or_write_collection(store: Path, n_images: int, size: int, seed: int) -> da.Array:
    """The collection's Zarr store at ``store``: read when it exists (its rows must be whole
    images of ``size`` x ``size``), else generated and written atomically."""
    from daskcluster.errors import InvalidDataError
    from daskcluster.io import open_array, write_zarr

    chunk_bytes = IMAGES_PER_CHUNK * size * size * 3  # a Dask chunk per Zarr chunk of images
    if store.exists():
        X = open_array(str(store), chunk_bytes=chunk_bytes)
        if X.shape[1] != 3 or X.shape[0] % (size * size):
            raise InvalidDataError(f"The store {str(store)!r} holds {X.shape} pixel rows, not whole {size} x {size} "
                                   "colour images: pass its --image-size, or another --store.")
        logger.info("reading the collection from %s (%d images)", store, X.shape[0] // (size * size))
        return X
    t0 = time.perf_counter()
    write_zarr(collection_array(n_images, size, seed), str(store), chunk_bytes=chunk_bytes)
    logger.info("wrote %d images of %d x %d (%d pixels) to %s in %.1f s", n_images, size, size,
                n_images * size * size, store, time.perf_counter() - t0)
    return open_array(str(store), chunk_bytes=chunk_bytes)


def mosaic(pixels: np.ndarray, size: int, n_cols: int) -> np.ndarray:
    """Pixel rows of whole images, shape (n * size**2, 3), as one image of ``n_cols`` images per
    row with a 2-pixel white border between them."""
    images = pixels.reshape(-1, size, size, 3)
    rows = -(-len(images) // n_cols)
    gap = 2
    out = np.full((rows * (size + gap) - gap, n_cols * (size + gap) - gap, 3), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, n_cols)
        out[r * (size + gap): r * (size + gap) + size, c * (size + gap): c * (size + gap) + size] = image
    return out


def quantize_collection(X: da.Array, size: int, n_colors: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                                   dict[str, Any]]:
    """MiniBatchKMeans streaming from the store; returns the first images (pixel rows, uint8),
    the same recoloured, the palette (n_colors, 3) in [0, 1] and the figures."""
    from daskcluster import MiniBatchKMeans, scaled

    t0 = time.perf_counter()
    km = MiniBatchKMeans(n_clusters=n_colors, random_state=seed, batch_size=4096, cache=False)
    km.fit(scaled(X, 1 / 255))
    seconds = time.perf_counter() - t0
    palette = np.clip(km.cluster_centers_, 0.0, 1.0)
    n_shown = min(SHOWN, X.shape[0] // (size * size))
    shown = np.asarray(X[: n_shown * size * size].compute())
    labels = np.asarray(km.predict(scaled(shown, 1 / 255)))
    recoloured = (palette[labels] * 255 + 0.5).astype(np.uint8)
    n = int(X.shape[0])
    figures = {"n_images": n // (size * size), "image_size": size, "n_pixels": n, "bytes": n * 3,
               "n_chunks": len(X.chunks[0]), "n_colors": n_colors, "inertia": float(km.inertia_),
               "mean_squared_error": float(km.inertia_) / n, "n_steps": int(km.n_steps_), "epochs": int(km.n_iter_),
               "fit_seconds": round(seconds, 2)}
    logger.info("collection: %d pixels -> %d colours in %d steps (%d epochs, %.1f s), mean squared error %.4g",
                n, n_colors, km.n_steps_, km.n_iter_, seconds, figures["mean_squared_error"])
    return shown, recoloured, palette, figures


def draw_palette(palette: np.ndarray, title: str, path: Path) -> Path:
    """The colours, darkest first, as a row of swatches titled with their hex codes."""
    from daskcluster.plotting import plot_image_grid, save_figure

    order = np.argsort(palette @ np.array([0.299, 0.587, 0.114]))
    colours = palette[order]
    titles = ["#" + "".join(f"{int(round(v * 255)):02x}" for v in c) for c in colours]
    fig = plot_image_grid(colours[:, None, None, :], (1, 1, 3), n_cols=len(colours), titles=titles, suptitle=title)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--small", action="store_true",
                        help="a quarter of the photograph's pixels each way; 96 images of 48 x 48")
    parser.add_argument("--n-colors", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--part", choices=("image", "collection", "both"), default="both")
    parser.add_argument("--n-images", type=int, default=None, help="images in the collection (default 4096)")
    parser.add_argument("--image-size", type=int, default=None, help="side of each image in pixels (default 128)")
    parser.add_argument("--store", type=Path, default=None, help="Zarr store of the collection, kept (reused if present)")
    args = parser.parse_args(argv)
    n_images = args.n_images or (96 if args.small else 4096)
    size = args.image_size or (48 if args.small else 128)
    if args.n_colors < 1:
        parser.error(f"--n-colors must be at least 1; got {args.n_colors}")
    if n_images < 1 or not 8 <= size <= 420:
        parser.error(f"--n-images must be at least 1 and --image-size in [8, 420]; got {n_images} and {size}")

    from daskcluster.jobs.outputs import write_json
    from daskcluster.plotting import plot_quantization, save_figure

    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"workflow": "color_quantization", "small": args.small, "seed": args.seed}
    if args.part in ("image", "both"):
        image = load_china(args.small)
        quantized, palette, figures = quantize(image, args.n_colors, args.seed)
        save_figure(plot_quantization(image, quantized, n_colors=args.n_colors), out / "color_quantization.png")
        draw_palette(palette, f"{args.n_colors} colours of china.jpg", out / "palette.png")
        report["image"] = {"name": "china.jpg", "shape": list(image.shape), **figures}
    if args.part in ("collection", "both"):
        with tempfile.TemporaryDirectory(dir=out, prefix=".work-") as work:
            store = args.store or Path(work) / "collection.zarr"
            X = open_or_write_collection(store, n_images, size, args.seed)
            shown, recoloured, palette, figures = quantize_collection(X, size, args.n_colors, args.seed)
        figures["store"] = str(args.store) if args.store else None
        n_shown = len(shown) // (size * size)
        n_cols = (n_shown + 1) // 2  # two rows of images
        fig = plot_quantization(mosaic(shown, size, n_cols), mosaic(recoloured, size, n_cols), n_colors=args.n_colors)
        fig.suptitle(f"{figures['n_images']:,} images of {size} x {size} ({figures['n_pixels']:,} pixels) streamed "
                     f"from Zarr: the first {n_shown}")
        save_figure(fig, out / "collection_quantization.png")
        draw_palette(palette, f"{args.n_colors} colours of the collection", out / "collection_palette.png")
        report["collection"] = figures
    path = write_json(out / "color_quantization.json", report)
    print(path)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
