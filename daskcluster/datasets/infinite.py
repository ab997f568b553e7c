""""Infinite MNIST": random smooth deformations of base digits, any number of them, into Zarr.

In the spirit of Loosli, Canu and Bottou's infinite MNIST (MNIST8M: 8.1 million deformed
training digits), without its code: each sample is a base digit seen through a random small
affine map (rotation, zoom, shear, translation) plus a smooth elastic displacement field (see
:mod:`daskcluster.datasets.deform`), and keeps its base digit's label.

Generation is one Dask task per Zarr chunk of rows (per shard when the store is sharded): each
chunk's rows are drawn from the chunk's own seed,
``numpy.random.SeedSequence(random_state, spawn_key=(chunk_index,))``, warped, written to ``X``,
``y`` and ``base_index``, and their SHA-256 returned. Memory is bounded by a few
chunks per worker thread, no two tasks write the same Zarr chunk, and the bytes depend only on
``random_state``, ``chunk_rows``, the deformation amplitudes and the base digits: not on the
codec, the sharding, the scheduler, the number of workers or ``n_samples`` (a smaller set is a prefix of a larger one).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import dask
import numpy as np
import zarr

from ..blas import single_threaded_blas
from ..errors import (
    InvalidDataError,
    InvalidParameterError,
    SourceError,
    SourceNotFoundError,
)
from ..io import DEFAULT_CHUNK_BYTES, writable
from .deform import Deformation, warp_images
from .mnist import MNIST_ENV, find_mnist, load_mnist, load_mnist_npz
from ..storage import GENERATED_CHUNK_ROWS, Layout
from .store import (
    atomic_store,
    base_attrs,
    chunk_digests,
    create_labeled_group,
    open_labeled_zarr,
)

__all__ = ["make_infinite_mnist", "load_base_digits", "generate_block", "DEFAULT_CHUNK_ROWS"]

logger = logging.getLogger(__name__)

#: Rows per generated chunk (:data:`daskcluster.storage.GENERATED_CHUNK_ROWS`): 32,768 rows of
#: 784 bytes = 25.7 MB. A fixed default (not derived from ``n_samples``) so that every size made
#: with it is a prefix of every larger size.
DEFAULT_CHUNK_ROWS = GENERATED_CHUNK_ROWS

_SEEDING = "numpy.random.SeedSequence(random_state, spawn_key=(chunk_index,)); u = rng.random((rows, 1 + n_uniforms))"


# -------------------------------------------------------------------------- base digits


def digits_28x28() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1,797), upscaled to 20x20 and centred in 28x28.

    Bilinear upscaling (``scipy.ndimage.zoom``, order 1), grey levels 0..16 mapped to 0..255:
    an offline stand-in for MNIST with MNIST's frame (a 20x20 digit in a 28x28 image).

    Returns
    -------
    images : ndarray of shape (1797, 28, 28), uint8
    labels : ndarray of shape (1797,), uint8
    """
    from scipy import ndimage
    from sklearn.datasets import load_digits

    digits = load_digits()
    big = ndimage.zoom(digits.images, (1, 20 / 8, 20 / 8), order=1, grid_mode=True, mode="nearest")
    images = np.zeros((len(big), 28, 28), dtype=np.uint8)
    images[:, 4:24, 4:24] = np.clip(np.rint(big * (255.0 / 16.0)), 0, 255)
    return images, digits.target.astype(np.uint8)


def load_base_digits(base: Any = None) -> tuple[np.ndarray, np.ndarray, str]:
    """The digits to deform, their labels and a description of where they came from.

    Parameters
    ----------
    base : None, "mnist", "digits", path-like or (images, labels), default=None
        ``None``: the 60,000 MNIST training digits if :func:`find_mnist` finds MNIST, else
        :func:`digits_28x28` (works offline). ``"mnist"``: MNIST or an error. ``"digits"``:
        scikit-learn's digits. A path: an MNIST ``.npz`` or IDX folder (training split). A
        pair: ``images`` of shape (n, H, W) or (n, H*W) with H == W, uint8, and ``labels``
        (n,) integers in 0..255.

    Returns
    -------
    images : ndarray of shape (n_base, H, W), uint8, C-contiguous
    labels : ndarray of shape (n_base,), uint8
    description : str
    """
    if base is None or (isinstance(base, str) and base == "mnist"):
        path = find_mnist()
        if path is not None:
            X, y = load_mnist_npz(path, split="train")
            return X.reshape(-1, 28, 28), y, f"mnist-npz:{path} (train)"
        if base == "mnist":
            raise SourceNotFoundError(
                f"base='mnist' but no MNIST file was found (${MNIST_ENV}, shared/data/mnist.npz, "
                "data/mnist.npz). Set $DASKCLUSTER_MNIST, pass base=<path to mnist.npz or IDX folder>, "
                "or base='digits' for scikit-learn's 8x8 digits."
            )
        logger.info("MNIST not found; deforming scikit-learn's 8x8 digits upscaled to 28x28")
        images, labels = digits_28x28()
        return images, labels, "sklearn-digits-28x28"
    if isinstance(base, str) and base == "digits":
        images, labels = digits_28x28()
        return images, labels, "sklearn-digits-28x28"
    if isinstance(base, (str, os.PathLike)):
        X, y = load_mnist(base, split="train")
        side = int(round(X.shape[1] ** 0.5))
        return X.reshape(-1, side, side), y, f"mnist:{os.path.abspath(os.fspath(base))} (train)"
    if isinstance(base, Sequence) and len(base) == 2:
        images, labels = np.asarray(base[0]), np.asarray(base[1])
        if images.ndim == 2:
            side = int(round(images.shape[1] ** 0.5))
            if side * side != images.shape[1]:
                raise InvalidDataError(
                    f"base images of shape {images.shape} are not square: give them as (n, H, W)."
                )
            images = images.reshape(-1, side, side)
        if images.ndim != 3 or images.dtype != np.uint8 or len(images) == 0:
            raise InvalidDataError(
                f"base images must be a non-empty uint8 array of shape (n, H, W); got {images.dtype} {images.shape}."
            )
        if labels.shape != (len(images),) or labels.dtype.kind not in "ui" or labels.min() < 0 or labels.max() > 255:
            raise InvalidDataError(
                f"base labels must be integers in 0..255 of shape ({len(images)},); got {labels.dtype} {labels.shape}."
            )
        return np.ascontiguousarray(images), labels.astype(np.uint8), "user"
    raise InvalidParameterError(
        "The 'base' parameter must be None, 'mnist', 'digits', a path to MNIST or a pair (images, labels). "
        f"Got {base!r} instead."
    )


# ------------------------------------------------------------------------------- chunks


class _BaseDigits:
    """The base digits as one opaque graph value (Dask does not look inside it)."""

    __slots__ = ("images", "labels")

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = images
        self.labels = labels

    def __reduce__(self) -> tuple[type, tuple[np.ndarray, np.ndarray]]:
        return (_BaseDigits, (self.images, self.labels))


def generate_block(
    images: np.ndarray,
    labels: np.ndarray,
    chunk_index: int,
    n_rows: int,
    random_state: int,
    deformation: Deformation,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows of one chunk, from the chunk's own seed.

    Row ``r`` uses row ``r`` of ``rng.random((n_rows, 1 + n_uniforms))``: column 0 picks the
    base digit, the others its deformation. So the first rows of a chunk do not depend on
    ``n_rows``.

    Returns
    -------
    X : ndarray of shape (n_rows, H * W), uint8
    y : ndarray of shape (n_rows,), uint8, the base digits' labels
    base_index : ndarray of shape (n_rows,), int32
    """
    rng = np.random.default_rng(np.random.SeedSequence(random_state, spawn_key=(chunk_index,)))
    u = rng.random((n_rows, 1 + deformation.n_uniforms))
    index = np.minimum((u[:, 0] * len(images)).astype(np.intp), len(images) - 1)
    coef = deformation.coefficients(u[:, 1:], images.shape[1:])
    X = warp_images(images, coef, index=index).reshape(n_rows, -1)
    return X, labels[index], index.astype(np.int32)


def _generate_chunks(
    store: str,
    start: int,
    stop: int,
    rows: int,
    base: _BaseDigits,
    random_state: int,
    deformation: dict[str, Any],
) -> list[tuple[str, str]]:
    """Generate and write rows ``start:stop`` (exactly one Zarr chunk, or one shard of chunks of
    ``rows`` rows, each from its own seed); return the SHA-256 of each chunk's X and y."""
    warp = Deformation(**deformation)
    blocks = [generate_block(base.images, base.labels, first // rows, min(rows, stop - first), random_state, warp)
              for first in range(start, stop, rows)]
    group = zarr.open_group(store, mode="r+")
    for name, part in zip(("X", "y", "base_index"), zip(*blocks)):
        writable(group[name])[start:stop] = np.concatenate(part)  # every chunk stored, all-zero ones too
    return [chunk_digests(X, y) for X, y, _ in blocks]


# -------------------------------------------------------------------------- scheduling


def _distributed_client() -> Any:
    """The distributed Client that ``dask.compute`` would use now, or None."""
    scheduler = dask.base.get_scheduler()
    owner = getattr(scheduler, "__self__", None)
    if owner is not None and type(owner).__module__.startswith("distributed"):
        return owner
    return None


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidParameterError(
            f"The '{name}' parameter of make_infinite_mnist must be an int in the range [{minimum}, inf). "
            f"Got {value!r} instead."
        )
    return int(value)


def make_infinite_mnist(
    path: str | os.PathLike[str],
    n_samples: int,
    *,
    base: Any = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    random_state: int | None = 0,
    rotation: float = 10.0,
    scale: float = 0.1,
    shear: float = 0.1,
    translation: float = 0.5,
    elastic: float = 1.0,
    elastic_grid: int = 4,
    compressors: Any = "default",
    shards: int | None = None,
    overwrite: bool = False,
) -> tuple[Any, Any, dict[str, Any]]:
    """Generate ``n_samples`` deformed digits straight into a labelled Zarr store at ``path``.

    Runs on the current Dask scheduler (threaded by default, or a distributed ``Client``), one
    task per Zarr chunk (per shard when sharded). Data passes: 1 to generate (in parallel) and 1 sequential read on the
    client for the SHA-256 of the whole arrays (which also checks what was written).

    Parameters
    ----------
    path : path-like
        Local directory to create; it appears only once complete (see
        :func:`~daskcluster.datasets.store.atomic_store`). Under a distributed cluster the
        workers must see the same path (a shared filesystem).
    n_samples : int
        Number of images, e.g. 8_100_000 for MNIST8M's size.
    base : None, "mnist", "digits", path-like or (images, labels), default=None
        The digits to deform (see :func:`load_base_digits`): real MNIST training digits when
        found, else scikit-learn's digits (so it works offline). They are sent to each worker
        once.
    chunk_rows : int, default=32768
        Rows per task and per Zarr chunk (25.7 MB of 28x28 images). Part of the seed: the same
        ``chunk_rows`` and ``random_state`` give the same bytes.
    random_state : int or None, default=0
        Root of the per-chunk seeds. None draws fresh entropy, recorded in the attributes.
    rotation, scale, shear, translation, elastic, elastic_grid
        Deformation amplitudes; see :class:`~daskcluster.datasets.deform.Deformation`.
    compressors : "default", str, None, codec or sequence of codecs, default="default"
        See :func:`daskcluster.storage.resolve_compressors`: by default Blosc lz4hc level 5
        for the images (the fastest to stream, ``benchmarks/RESULTS-codecs.md``). The codec
        changes the files, never the values.
    shards : int or None, default=None
        Rows per shard file (rounded down to a multiple of ``chunk_rows``), or one file per chunk. Changes the
        files, never the values.
    overwrite : bool, default=False
        Replace an existing Zarr store at ``path`` once the new one is complete.

    Returns
    -------
    X : dask array of shape (n_samples, H * W), uint8
    y : dask array of shape (n_samples,), uint8
    attrs : dict
        The store's attributes: ``source``, ``checksum``, ``generator`` (seed, chunk_rows,
        amplitudes), ``base`` (source, count, SHA-256 of the base digits).

    Examples
    --------
    >>> import tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "inf.zarr")
    >>> X, y, attrs = make_infinite_mnist(out, 1000, base="digits", chunk_rows=400)
    >>> X.shape, X.dtype, attrs["generator"]["random_state"]
    ((1000, 784), dtype('uint8'), 0)
    """
    n_samples = _check_int("n_samples", n_samples, 1)
    chunk_rows = _check_int("chunk_rows", chunk_rows, 1)
    if random_state is None:
        random_state = int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
    else:
        random_state = _check_int("random_state", random_state, 0)
    deformation = Deformation(rotation, scale, shear, translation, elastic, elastic_grid)
    rows = min(chunk_rows, n_samples)
    layout = Layout.plan(n_samples, np.uint8, rows, compressors=compressors, shards=shards)

    t0 = time.perf_counter()
    with atomic_store(path, overwrite=overwrite, func="make_infinite_mnist") as tmp:
        images, labels, description = load_base_digits(base)
        base_sha = hashlib.sha256(images.data).hexdigest()
        n_features = images.shape[1] * images.shape[2]
        group = create_labeled_group(tmp, n_samples, n_features, layout, compressors=compressors, base_index=True)

        name = f"infinite-mnist-{dask.base.tokenize(tmp, random_state, chunk_rows, deformation.to_dict(), base_sha)}"
        base_value: Any = _BaseDigits(images, labels)
        client = _distributed_client()
        if client is not None:
            base_value = client.scatter(base_value, broadcast=True, hash=False)
        else:
            base_value = dask.delayed(base_value, name=f"{name}-base", traverse=False)
        params = deformation.to_dict()
        starts = list(range(0, n_samples, layout.write_rows))
        tasks = [
            dask.delayed(_generate_chunks, pure=True)(
                tmp, start, min(start + layout.write_rows, n_samples), rows, base_value, random_state, params,
                dask_key_name=(name, i),
            )
            for i, start in enumerate(starts)
        ]
        logger.info(
            "Generating %d images in %d chunks of %d rows from %d base digits (%s) into '%s'",
            n_samples, len(tasks), rows, len(images), description, path,
        )
        with nullcontext() if client is not None else single_threaded_blas():
            digests = [d for part in dask.compute(*tasks) for d in part]
        t_gen = time.perf_counter() - t0

        checksum = _read_back_checksum(group, rows, digests, tmp)
        group.attrs.update(
            {
                **base_attrs(
                    source=f"make_infinite_mnist(base={description})",
                    n_samples=n_samples, n_features=n_features, rows=rows,
                    image_shape=images.shape[1:], checksum=checksum,
                ),
                "generator": {
                    "name": "daskcluster.datasets.make_infinite_mnist",
                    "random_state": random_state,
                    "chunk_rows": chunk_rows,
                    "seeding": _SEEDING,
                    "deformation": params,
                    "sampling": "bilinear, zero outside the image, rounded half up",
                },
                "base": {"source": description, "n": len(images), "image_shape": list(images.shape[1:]), "sha256": base_sha},
            }
        )
    elapsed = time.perf_counter() - t0
    logger.info(
        "Wrote %d images to '%s' in %.1f s (generation %.1f s, %.0f images/s)",
        n_samples, path, elapsed, t_gen, n_samples / max(t_gen, 1e-9),
    )
    return open_labeled_zarr(path, chunk_bytes=max(DEFAULT_CHUNK_BYTES, rows * n_features))


def _read_back_checksum(group: zarr.Group, rows: int, digests: Sequence[tuple[str, str]], where: str) -> dict[str, Any]:
    """SHA-256 of the whole arrays, read back chunk by chunk; each chunk checked against its task's."""
    X, y = group["X"], group["y"]
    n = X.shape[0]
    hx, hy = hashlib.sha256(), hashlib.sha256()
    for i, start in enumerate(range(0, n, rows)):
        stop = min(start + rows, n)
        block, lab = X[start:stop], y[start:stop]
        hx.update(np.ascontiguousarray(block).data)
        hy.update(np.ascontiguousarray(lab).data)
        if chunk_digests(block, lab) != tuple(digests[i]):
            raise SourceError(
                f"Chunk {i} (rows {start}:{stop}) read back from '{where}' differs from what its task "
                "wrote; the filesystem lost or changed data. Nothing was written at the final path."
            )
    return {
        "algorithm": "sha256",
        "X": hx.hexdigest(),
        "y": hy.hexdigest(),
        "X_chunks": [d[0] for d in digests],
        "y_chunks": [d[1] for d in digests],
    }
