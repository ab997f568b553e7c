"""Images: grids of centers or components, colour quantization, segmentations.

In a grid (:func:`plot_image_grid`) grey-level images are scaled each from its own minimum to
its maximum. Colour images, and the pictures of :func:`plot_quantization` and
:func:`plot_segmentation` (grey or colour), are read by value: floats in [0, 1] are shown as
they are, integers and floats in [0, 255] as 8-bit intensities, any other range is scaled from
the image's minimum to its maximum; so a ``uint8`` photograph and its quantized copy with
centers in [0, 1] (from ``scaled(pixels, 1 / 255)``) look alike.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import DataTypeError, InvalidDataError, InvalidParameterError
from ..params import check_int
from ._backend import grid_shape, new_figure, require_matplotlib

logger = logging.getLogger(__name__)


def as_image_array(value: Any, *, name: str, owner: str) -> np.ndarray:
    """``value`` as a NumPy array of numbers (a Dask array is computed: meant for small arrays)."""
    if hasattr(value, "compute") and not isinstance(value, np.ndarray):
        value = value.compute()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise DataTypeError(f"{owner} cannot use {name} of type {type(value).__name__}: {exc}") from exc
    if array.dtype.kind == "b":
        array = array.astype(np.uint8)
    if array.dtype.kind not in "uif":
        raise DataTypeError(f"{owner} needs numbers in {name}; got dtype {array.dtype}. Convert it with "
                            f"{name}.astype(numpy.float64).")
    return array


def colour_range(image: np.ndarray) -> np.ndarray:
    """A colour image as floats in [0, 1], as ``imshow`` shows them (see the module doc)."""
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if image.dtype.kind == "f" and low >= 0 and high <= 1:
        return values
    if low >= 0 and high <= 255:
        return values / 255.0
    span = high - low if high > low else 1.0
    return np.clip((values - low) / span, 0.0, 1.0)


def _check_shape(image_shape: Any, owner: str) -> tuple[int, ...]:
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list)) else None
    if (shape is None or len(shape) not in (2, 3) or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape)
            or (len(shape) == 3 and shape[2] not in (3, 4))):
        raise InvalidParameterError(f"The 'image_shape' parameter of {owner} must be (height, width) or "
                                    f"(height, width, 3 or 4). Got {image_shape!r} instead.")
    return tuple(int(s) for s in shape)


def as_images(images: Any, image_shape: Any, *, owner: str) -> np.ndarray:
    """Images of shape (n, prod(image_shape)), (n, h, w) or (n, h, w, 3 or 4) as (n, h, w[, c])."""
    shape = _check_shape(image_shape, owner)
    array = as_image_array(images, name="images", owner=owner)
    size = math.prod(shape)
    if array.ndim == 2:
        if array.shape[1] != size:
            raise InvalidDataError(f"{owner}: images of shape {array.shape} have {array.shape[1]} values per row, "
                                   f"but image_shape={shape} needs {size}. Pass image_shape=(height, width) of the "
                                   "images, e.g. (8, 8) for digits or (28, 28) for MNIST.")
        array = array.reshape((array.shape[0], *shape))
    elif array.ndim in (3, 4):
        if array.shape[1:3] != shape[:2] or (array.ndim == 4 and array.shape[3] not in (3, 4)) or (
                len(shape) == 3 and array.shape[1:] != shape):
            raise InvalidDataError(f"{owner}: images of shape {array.shape} do not match image_shape={shape}; "
                                   "expected (n, height, width) or (n, height, width, 3).")
    else:
        raise InvalidDataError(f"{owner}: images must have shape (n, prod(image_shape)), (n, height, width) or "
                               f"(n, height, width, 3); got {array.shape}.")
    if array.shape[0] == 0:
        raise InvalidDataError(f"{owner}: no image to draw (images has shape {array.shape}).")
    return array


def _show(ax: Any, image: np.ndarray, cmap: Any) -> None:
    """One image, without ticks; grey levels through ``cmap``, colours as they are."""
    ax.imshow(image, cmap=None if image.ndim == 3 else cmap, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _show_fixed(ax: Any, image: np.ndarray) -> None:
    """A photograph-like image through :func:`colour_range`, grey levels on a fixed [0, 1] scale."""
    ax.imshow(colour_range(image), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_image_grid(
    images: Any,
    image_shape: tuple[int, ...],
    *,
    n_cols: int | None = None,
    titles: Sequence[str] | None = None,
    cmap: Any = "gray",
    suptitle: str | None = None,
) -> Any:
    """A grid of small images: centers of digits or MNIST, patch dictionaries, NMF components.

    Parameters
    ----------
    images : array-like of shape (n_images, prod(image_shape)), (n_images, height, width) or \
(n_images, height, width, 3)
        E.g. ``KMeans(...).cluster_centers_`` of 8x8 digits. A Dask array is computed (meant
        for a few images, not a data set).
    image_shape : tuple
        ``(height, width)``, or ``(height, width, 3)`` for rows of flattened colour images.
    n_cols : int, optional
        Columns of the grid; by default about the square root of ``n_images``, at most 10.
    titles : sequence of str, optional
        One title per image.
    cmap : str or matplotlib Colormap, default='gray'
        For grey-level images, each scaled from its own minimum to its maximum; colour images
        are shown in colour (see the module doc for their value range).
    suptitle : str, optional
        Title of the figure.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per image. Data passes: 0.

    Examples
    --------
    >>> import numpy as np
    >>> from daskcluster.plotting import plot_image_grid
    >>> centers = np.random.default_rng(0).random((10, 64))
    >>> fig = plot_image_grid(centers, (8, 8), n_cols=5, titles=[str(i) for i in range(10)])
    >>> len(fig.axes)
    10
    """
    owner = "plot_image_grid"
    array = as_images(images, image_shape, owner=owner)
    n = array.shape[0]
    check_int(owner, "n_cols", n_cols, 1, allow_none=True)
    if titles is not None:
        titles = [str(t) for t in titles]
        if len(titles) != n:
            raise InvalidParameterError(f"The 'titles' parameter of {owner} must hold one title per image ({n}). "
                                        f"Got {len(titles)} titles instead.")
    rows, cols = grid_shape(n, n_cols, 10)
    fig = new_figure(owner, max(2.0, 1.3 * cols), max(1.6, 1.3 * rows + (0.3 if suptitle else 0.0)))
    shown = [colour_range(a) for a in array] if array.ndim == 4 else list(array)
    for i, image in enumerate(shown):
        ax = fig.add_subplot(rows, cols, i + 1)
        _show(ax, image, cmap)
        if titles is not None:
            ax.set_title(titles[i], fontsize="small")
    if suptitle is not None:
        fig.suptitle(suptitle)
    return fig


def _as_picture(value: Any, *, name: str, owner: str) -> np.ndarray:
    array = as_image_array(value, name=name, owner=owner)
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise InvalidDataError(f"{owner}: {name} must be an image of shape (height, width) or (height, width, 3); "
                               f"got {array.shape}. Reshape flat pixels with .reshape(height, width, 3).")
    return array


def count_colours(image: np.ndarray) -> int:
    """Number of distinct colours (grey levels for a (h, w) image)."""
    pixels = image.reshape(image.shape[0] * image.shape[1], -1)
    if pixels.dtype == np.uint8 and pixels.shape[1] <= 4:
        packed = np.zeros(len(pixels), dtype=np.uint32)
        for j in range(pixels.shape[1]):
            packed |= pixels[:, j].astype(np.uint32) << np.uint32(8 * j)
        return len(np.unique(packed))
    return len(np.unique(pixels, axis=0))


def plot_quantization(original: Any, quantized: Any, *, n_colors: int | None = None) -> Any:
    """An image before and after colour quantization, side by side.

    Parameters
    ----------
    original : array-like of shape (height, width, 3) or (height, width)
    quantized : array-like of the same shape
        E.g. ``centers[labels].reshape(original.shape)``.
    n_colors : int, optional
        The number of colours of the quantized image, for its title; counted when not given.
        The original's colours are always counted.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes, titled with their numbers of colours; both images go through the same value
        mapping (see the module doc). Data passes: 0.

    Examples
    --------
    >>> import numpy as np
    >>> from daskcluster.plotting import plot_quantization
    >>> image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    >>> quantized = np.where(image > 127, 255, 0).astype(np.uint8)
    >>> [ax.get_title() for ax in plot_quantization(image, quantized).axes]
    ['Original (600 colours)', 'Quantized (8 colours)']
    """
    owner = "plot_quantization"
    before = _as_picture(original, name="original", owner=owner)
    after = _as_picture(quantized, name="quantized", owner=owner)
    if before.shape != after.shape:
        raise InvalidDataError(f"{owner}: quantized has shape {after.shape} but original {before.shape}; pass the "
                               "quantized image reshaped like the original (quantized.reshape(original.shape)).")
    check_int(owner, "n_colors", n_colors, 1, allow_none=True)
    counted = count_colours(before)
    colours_after = n_colors if n_colors is not None else count_colours(after)
    require_matplotlib(owner)
    height, width = before.shape[:2]
    fig = new_figure(owner, 10.0, max(2.5, 5.0 * height / width + 0.6))
    for i, (image, title) in enumerate(((before, f"Original ({counted:,} colours)"),
                                        (after, f"Quantized ({colours_after:,} colours)"))):
        ax = fig.add_subplot(1, 2, i + 1)
        _show_fixed(ax, image)
        ax.set_title(title)
    return fig


def _is_labels(seg: np.ndarray, k: int) -> bool:
    """Whether a (height, width) array holds cluster labels: whole numbers in [0, k)."""
    if seg.ndim != 2 or seg.size == 0:
        return False
    if seg.dtype.kind == "f" and not (np.isfinite(seg).all() and np.array_equal(seg, np.round(seg))):
        return False
    return bool(seg.min() >= 0 and seg.max() < k)


def _label_colours(cmap: Any, k: int) -> tuple[Any, float, float]:
    """The colour map of a label panel and its (vmin, vmax): one qualitative colour per label when
    ``cmap`` is None and ``k <= 20``."""
    if cmap is not None:
        return cmap, 0.0, float(max(k - 1, 1))
    if k <= 10:
        return "tab10", -0.5, 9.5
    if k <= 20:
        return "tab20", -0.5, 19.5
    return "nipy_spectral", 0.0, float(k - 1)


def plot_segmentation(image: Any, segmentations: Mapping[int, Any], *, cmap: Any = None) -> Any:
    """An image and its segmentations for several numbers of clusters.

    Parameters
    ----------
    image : array-like of shape (height, width, 3) or (height, width)
    segmentations : mapping of int to array-like
        ``k`` to the image segmented into ``k`` clusters, either as an image like ``image``
        (e.g. each pixel recoloured with its center: same shape) or as labels: whole numbers in
        ``[0, k)`` of shape (height, width). Drawn in increasing ``k``.
    cmap : str or matplotlib Colormap, optional
        For label panels; by default one colour per label (``'tab10'`` up to 10 clusters,
        ``'tab20'`` up to 20, ``'nipy_spectral'`` beyond).

    Returns
    -------
    matplotlib.figure.Figure
        ``1 + len(segmentations)`` axes, at most four per row: "original", then "k = ..." for
        each. Data passes: 0.

    Examples
    --------
    >>> import numpy as np
    >>> from daskcluster.plotting import plot_segmentation
    >>> image = np.random.default_rng(0).random((16, 16, 3))
    >>> labels = {3: (image[..., 0] * 3).astype(int), 2: (image[..., 0] > 0.5).astype(int)}
    >>> [ax.get_title() for ax in plot_segmentation(image, labels).axes]
    ['original', 'k = 2', 'k = 3']
    """
    owner = "plot_segmentation"
    picture = _as_picture(image, name="image", owner=owner)
    if not isinstance(segmentations, Mapping) or not segmentations:
        got = "an empty mapping" if isinstance(segmentations, Mapping) else type(segmentations).__name__
        raise InvalidParameterError(f"The 'segmentations' parameter of {owner} must be a non-empty mapping of k "
                                    f"to the segmented image. Got {got} instead.")
    panels: list[tuple[int, np.ndarray, bool]] = []
    for k in sorted(segmentations):
        check_int(owner, "segmentations' keys", k, 1)
        seg = as_image_array(segmentations[k], name=f"segmentations[{k}]", owner=owner)
        labels = _is_labels(seg, int(k))
        if not labels and seg.shape != picture.shape:
            raise InvalidDataError(f"{owner}: segmentations[{k}] of shape {seg.shape} is neither an image like the "
                                   f"original {picture.shape} nor labels of shape {picture.shape[:2]} with values "
                                   f"in [0, {k}). Reshape it like the image (e.g. .reshape({picture.shape[:2]}) "
                                   "for labels).")
        if labels and seg.shape != picture.shape[:2]:
            raise InvalidDataError(f"{owner}: the labels segmentations[{k}] have shape {seg.shape}; they must have "
                                   f"the image's {picture.shape[:2]}. Reshape them with .reshape({picture.shape[:2]}).")
        panels.append((int(k), seg, labels))
    require_matplotlib(owner)
    n = 1 + len(panels)
    rows, cols = grid_shape(n, min(n, 4), 4)
    height, width = picture.shape[:2]
    fig = new_figure(owner, 3.2 * cols, max(1.8, rows * (3.2 * height / width + 0.4)))
    ax = fig.add_subplot(rows, cols, 1)
    _show_fixed(ax, picture)
    ax.set_title("original")
    for i, (k, seg, labels) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 2)
        if labels:
            colours, vmin, vmax = _label_colours(cmap, k)
            ax.imshow(seg, cmap=colours, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            _show_fixed(ax, seg)
        ax.set_title(f"k = {k}")
    return fig
