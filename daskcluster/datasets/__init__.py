"""Datasets: MNIST readers and scalable generators."""

from .blobs import make_blobs
from .mnist import MNIST_ENV, find_mnist, load_mnist_npz

__all__ = ["make_blobs", "find_mnist", "load_mnist_npz", "MNIST_ENV"]
