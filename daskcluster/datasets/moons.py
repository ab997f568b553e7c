"""Two interleaving half circles ("moons") of any size, generated lazily chunk by chunk.

The shape of scikit-learn's ``make_moons``: the upper moon is ``(cos t, sin t)`` and the lower
one ``(1 - cos t, 0.5 - sin t)``, ``t`` in ``[0, pi]``, plus Gaussian noise. scikit-learn spaces
``t`` evenly; here each row draws its moon and its ``t`` at random from its chunk's own seed
(``random_state`` and the chunk's index), so that any size can be made chunk by chunk in
parallel, and the same seed gives the same bytes on any scheduler and number of workers.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from ..engine import generated_rows
from ..kernels.blocks import ChunkInfo


def _moons_rng(entropy: int, chunk: ChunkInfo) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(chunk.index,)))


def _moon_labels(n: int, entropy: int, chunk: ChunkInfo) -> np.ndarray:
    """The moon of each row of a chunk (0 upper, 1 lower): the chunk generator's first draws."""
    return _moons_rng(entropy, chunk).integers(0, 2, size=n).astype(np.int32)


def _moon_rows(n: int, entropy: int, noise: float, dtype: str, chunk: ChunkInfo) -> np.ndarray:
    """A chunk's rows: its moons drawn as :func:`_moon_labels` draws them, then ``t`` and the noise."""
    rng = _moons_rng(entropy, chunk)
    y = rng.integers(0, 2, size=n)
    t = rng.uniform(0.0, np.pi, size=n)
    lower = y == 1
    X = np.column_stack([np.where(lower, 1 - np.cos(t), np.cos(t)), np.where(lower, 0.5 - np.sin(t), np.sin(t))])
    if noise:
        X += rng.normal(scale=noise, size=X.shape)
    return X.astype(dtype)


def make_moons(
    n_samples: int = 100_000,
    *,
    noise: float = 0.05,
    chunk_rows: int = 1_000_000,
    random_state: int = 0,
    dtype: str = "float64",
) -> tuple[da.Array, da.Array]:
    """Two moons in 2-D as lazy Dask arrays, of any size.

    Parameters
    ----------
    n_samples : int, default=100_000
    noise : float, default=0.05
        Standard deviation of the Gaussian noise added to each coordinate.
    chunk_rows : int, default=1_000_000
        Rows per chunk (16 MB of float64).
    random_state : int, default=0
    dtype : str, default="float64"

    Returns
    -------
    X : dask array of shape (n_samples, 2)
    y : dask array of shape (n_samples,), int32, the moon of each row
        Costs nothing until computed; then one independent task per chunk.
    """
    sizes = [chunk_rows] * (n_samples // chunk_rows) + ([n_samples % chunk_rows] if n_samples % chunk_rows else [])
    X = generated_rows(sizes, _moon_rows, (random_state, float(noise), dtype), dtype=dtype, n_columns=2,
                       label="moons-X")
    y = generated_rows(sizes, _moon_labels, (random_state,), dtype=np.int32, label="moons-y")
    return X, y
