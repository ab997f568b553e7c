"""Datasets: MNIST readers (Keras .npz, IDX, OpenML), labelled Zarr stores and scalable generators.

Imported on first use (:mod:`daskcluster._lazy`): a worker generating or reading chunks
(``blobs``, ``infinite``, ``store``) imports only the module it needs, never scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "make_blobs": ".blobs",
        "make_mixture_blobs": ".blobs",
        "make_moons": ".moons",
        "find_mnist": ".mnist",
        "load_mnist_npz": ".mnist",
        "MNIST_ENV": ".mnist",
        "load_mnist": ".mnist",
        "mnist_or_generated": ".fallback",
        "load_mnist_idx": ".idx",
        "read_idx": ".idx",
        "write_idx": ".idx",
        "fetch_mnist_openml": ".openml",
        "write_mnist_zarr": ".store",
        "open_labeled_zarr": ".store",
        "verify_labeled_zarr": ".store",
        "mnist_to_zarr": ".mnist",
        "make_infinite_mnist": ".infinite",
        "load_base_digits": ".infinite",
        "digits_28x28": ".infinite",
        "DEFAULT_CHUNK_ROWS": ".infinite",
        "Deformation": ".deform",
        "deform_images": ".deform",
        "warp_images": ".deform",
    },
)

if TYPE_CHECKING:
    from .blobs import make_blobs, make_mixture_blobs
    from .deform import Deformation, deform_images, warp_images
    from .fallback import mnist_or_generated
    from .idx import load_mnist_idx, read_idx, write_idx
    from .infinite import (
        DEFAULT_CHUNK_ROWS,
        digits_28x28,
        load_base_digits,
        make_infinite_mnist,
    )
    from .mnist import MNIST_ENV, find_mnist, load_mnist, load_mnist_npz, mnist_to_zarr
    from .moons import make_moons
    from .openml import fetch_mnist_openml
    from .store import open_labeled_zarr, verify_labeled_zarr, write_mnist_zarr
