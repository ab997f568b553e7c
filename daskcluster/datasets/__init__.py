"""Datasets: MNIST readers (Keras .npz, IDX, OpenML), labelled Zarr stores and scalable generators."""

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

__all__ = [
    "make_blobs",
    "make_mixture_blobs",
    "make_moons",
    "find_mnist",
    "load_mnist_npz",
    "MNIST_ENV",
    "load_mnist",
    "mnist_or_generated",
    "load_mnist_idx",
    "read_idx",
    "write_idx",
    "fetch_mnist_openml",
    "write_mnist_zarr",
    "open_labeled_zarr",
    "verify_labeled_zarr",
    "mnist_to_zarr",
    "make_infinite_mnist",
    "load_base_digits",
    "digits_28x28",
    "DEFAULT_CHUNK_ROWS",
    "Deformation",
    "deform_images",
    "warp_images",
]
