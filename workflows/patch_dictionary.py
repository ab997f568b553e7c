"""Learn a dictionary of 20x20 image patches with ``MiniBatchKMeans.partial_fit``.

Patches are cut at random from an image collection and streamed, one image's worth at a time,
through ``partial_fit`` -- the loop a user writes when the data arrive as a stream. The learned
centers are drawn as a grid of small images.

Images: Olivetti faces (400 faces of 64x64) when ``sklearn.datasets.fetch_olivetti_faces`` can
get them (cached or downloaded), else scikit-learn's bundled sample photographs (``china.jpg``,
``flower.jpg``, in grey levels). ``--images sample`` skips the attempt, which needs a network.

Usage::

    python workflows/patch_dictionary.py OUTPUT_DIR [--small] [--images {auto,olivetti,sample}]

Writes ``OUTPUT_DIR/patch_dictionary.png`` (the centers), ``OUTPUT_DIR/patch_samples.png``
(some of the patches it learned from) and ``OUTPUT_DIR/patch_dictionary.json`` (the counts).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

logger = logging.getLogger("workflows.patch_dictionary")

PATCH = (20, 20)


def load_images(which: str) -> tuple[list[np.ndarray], str]:
    """Grey-level images with values in [0, 1], and the name of the collection used."""
    from sklearn import datasets

    if which in ("auto", "olivetti"):
        try:
            faces = datasets.fetch_olivetti_faces(shuffle=True, random_state=0)
            return [img.astype(np.float32) for img in faces.images], "olivetti"
        except Exception as exc:  # offline, blocked, or a corrupt cache: fall back
            logger.warning("Olivetti faces unavailable (%s: %s); using scikit-learn's sample images.",
                           type(exc).__name__, exc)
    photos = datasets.load_sample_images()
    grey = [(img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)) / 255.0
            for img in photos.images]
    return grey, "sample"


def patch_batches(images: list[np.ndarray], per_image: int, passes: int, batch_rows: int,
                  seed: int) -> Iterator[np.ndarray]:
    """Batches of at least ``batch_rows`` patches: each pass visits the images in a random
    order and cuts ``per_image`` random 20x20 patches from each; every patch is standardized
    (zero mean, unit variance) and flattened to a row of 400 values."""
    from sklearn.feature_extraction.image import extract_patches_2d

    rng = np.random.default_rng(seed)
    buffer: list[np.ndarray] = []
    held = 0
    for _ in range(passes):
        for i in rng.permutation(len(images)):
            patches = extract_patches_2d(images[i], PATCH, max_patches=per_image,
                                         random_state=int(rng.integers(2**31 - 1)))
            rows = patches.reshape(len(patches), -1).astype(np.float32)
            rows -= rows.mean(axis=1, keepdims=True)
            rows /= rows.std(axis=1, keepdims=True) + 1e-6
            buffer.append(rows)
            held += len(rows)
            if held >= batch_rows:
                yield np.concatenate(buffer)
                buffer, held = [], 0
    if held:
        yield np.concatenate(buffer)


def draw_grid(tiles: np.ndarray, path: Path, title: str) -> Path:
    """Draw rows of ``tiles`` (n, 400) as a grid of 20x20 images into a PNG (written atomically)."""
    from daskcluster.plotting import plot_image_grid, save_figure

    n_cols = int(np.ceil(np.sqrt(len(tiles))))
    return save_figure(plot_image_grid(tiles, PATCH, n_cols=n_cols, suptitle=title), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--small", action="store_true", help="a quick run: 16 centers, few patches")
    parser.add_argument("--images", choices=("auto", "olivetti", "sample"), default="auto")
    parser.add_argument("--n-clusters", type=int, default=None)
    parser.add_argument("--passes", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from daskcluster import MiniBatchKMeans
    from daskcluster.jobs.outputs import write_json

    n_clusters = args.n_clusters or (16 if args.small else 81)
    images, collection = load_images(args.images)
    if collection == "olivetti":  # 400 faces: 50 patches each, 6 passes (120,000 patches)
        per_image, passes = 50, 6
    else:  # 2 photographs: 1,000 patches each, 60 passes (120,000 patches)
        per_image, passes = 1000, 60
    if args.small:
        images, per_image, passes = images[:20], min(per_image, 200), 2
    passes = args.passes or passes
    batch_rows = max(500, 3 * n_clusters)  # the first batch must hold n_clusters rows
    km = MiniBatchKMeans(n_clusters=n_clusters, random_state=args.seed, compute_labels=False)
    n_patches = 0
    last = None
    for batch in patch_batches(images, per_image, passes, batch_rows, args.seed):
        km.partial_fit(batch)
        n_patches += len(batch)
        last = batch
    logger.info("learned %d centers from %d patches of %d %s images in %d steps",
                n_clusters, n_patches, len(images), collection, km.n_steps_)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    out = args.output_dir / "patch_dictionary.png"
    draw_grid(km.cluster_centers_, out,
              f"{n_clusters} centers of 20x20 patches ({collection} images, {n_patches} patches)")
    assert last is not None
    draw_grid(last[: min(len(last), n_clusters)], args.output_dir / "patch_samples.png", "patches (standardized)")
    report = {"workflow": "patch_dictionary", "small": args.small, "seed": args.seed, "images": collection,
              "n_images": len(images), "n_clusters": n_clusters, "n_patches": n_patches, "n_steps": int(km.n_steps_)}
    write_json(args.output_dir / "patch_dictionary.json", report)
    print(out)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
