"""Gaussian blobs of any size, generated lazily chunk by chunk with per-chunk seeds."""

from __future__ import annotations

import dask.array as da
import numpy as np

from ..engine import generated_rows
from ..kernels.blocks import ChunkInfo


def _blob_rng(entropy: int, chunk: ChunkInfo) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(chunk.index,)))


def _blob_labels(n: int, entropy: int, n_centers: int, chunk: ChunkInfo) -> np.ndarray:
    """The blob of each row of a chunk: the first draws of the chunk's generator."""
    return _blob_rng(entropy, chunk).integers(0, n_centers, size=n).astype(np.int32)


def _blob_rows(n: int, entropy: int, centers: np.ndarray, std: float, dtype: str, chunk: ChunkInfo) -> np.ndarray:
    """A chunk's rows: its labels drawn as :func:`_blob_labels` draws them, then the noise."""
    rng = _blob_rng(entropy, chunk)
    y = rng.integers(0, len(centers), size=n)
    return (centers[y] + rng.standard_normal((n, centers.shape[1])) * std).astype(dtype)


def make_blobs(
    n_samples: int = 100_000,
    n_features: int = 2,
    *,
    centers: int | np.ndarray = 8,
    cluster_std: float = 1.0,
    center_box: tuple[float, float] = (-10.0, 10.0),
    chunk_rows: int = 100_000,
    random_state: int = 0,
    dtype: str = "float64",
) -> tuple[da.Array, da.Array, np.ndarray]:
    """Isotropic Gaussian blobs as lazy Dask arrays; the same seed gives the same bytes on
    any scheduler and number of workers (each chunk has its own seed, from ``random_state`` and
    its index).

    Returns
    -------
    X : dask array of shape (n_samples, n_features)
    y : dask array of shape (n_samples,), int32, the blob of each row
    centers : ndarray of shape (n_centers, n_features)
    """
    if isinstance(centers, (int, np.integer)):
        rng = np.random.default_rng(np.random.SeedSequence(random_state, spawn_key=(2**31,)))
        centers = rng.uniform(center_box[0], center_box[1], size=(int(centers), n_features))
    centers = np.asarray(centers, dtype=np.float64)
    sizes = [chunk_rows] * (n_samples // chunk_rows) + ([n_samples % chunk_rows] if n_samples % chunk_rows else [])
    # X and y of a chunk come from one generator; y alone costs only its integer draws
    X = generated_rows(sizes, _blob_rows, (random_state, centers, float(cluster_std), dtype), dtype=dtype,
                       n_columns=centers.shape[1], label="blobs-X")
    y = generated_rows(sizes, _blob_labels, (random_state, len(centers)), dtype=np.int32, label="blobs-y")
    return X, y, centers


def make_mixture_blobs(n_samples: int = 1250, *, random_state: int = 42) -> np.ndarray:
    """The textbook data of Gaussian mixtures: two blobs stretched by one linear map and a
    round one, offset; shape (n_samples, 2), four fifths in the stretched pair, in memory.

    With the defaults, the 1,250 rows of the clustering chapter of *Hands-On Machine Learning*
    (a full-covariance mixture of three components fits them).
    """
    from sklearn.datasets import make_blobs as sk_make_blobs

    X1, _ = sk_make_blobs(n_samples=n_samples * 4 // 5, centers=((4, -4), (0, 0)), random_state=random_state)
    X1 = X1 @ np.array([[0.374, 0.95], [0.732, 0.598]])
    X2, _ = sk_make_blobs(n_samples=n_samples - len(X1), centers=1, random_state=random_state)
    return np.concatenate([X1, X2 + [6, -8]])
