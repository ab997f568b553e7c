"""MNIST from OpenML (``mnist_784``, version 1) through :func:`sklearn.datasets.fetch_openml`.

Downloads once (about 15 MB compressed) into scikit-learn's ``data_home`` and reads the cache
afterwards, network or not. Without a network and without a cache it raises a
:class:`~daskcluster.errors.SourceError` that says so and names the local readers to use instead.
"""

from __future__ import annotations

import logging
import os
from urllib.error import HTTPError, URLError

import numpy as np
import sklearn.datasets

from ..errors import InvalidParameterError, SourceError

__all__ = ["fetch_mnist_openml", "OPENML_NAME", "OPENML_VERSION"]

logger = logging.getLogger(__name__)

OPENML_NAME = "mnist_784"
OPENML_VERSION = 1
_N_TRAIN, _N_TOTAL = 60_000, 70_000

_LOCAL_FIX = (
    "Pass a local file instead: load_mnist_npz(path) for the Keras mnist.npz, "
    "load_mnist_idx(directory) for the IDX files (train-images-idx3-ubyte.gz, ...), or set "
    "$DASKCLUSTER_MNIST to an mnist.npz for find_mnist()."
)


def fetch_mnist_openml(
    *,
    data_home: str | os.PathLike[str] | None = None,
    split: str = "all",
    n_retries: int = 3,
    delay: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Fetch MNIST from OpenML (``mnist_784``), cached under ``data_home``.

    Parameters
    ----------
    data_home : path-like, optional
        scikit-learn's download and cache folder (default ``~/scikit_learn_data`` or
        ``$SCIKIT_LEARN_DATA``). A cached copy is read without any network.
    split : {'all', 'train', 'test'}, default='all'
        OpenML keeps the original order: the first 60,000 rows are the training set, the
        last 10,000 the test set.
    n_retries, delay : int, float
        Passed to :func:`sklearn.datasets.fetch_openml` (retries on network errors).

    Returns
    -------
    X : ndarray of shape (n_samples, 784), uint8
    y : ndarray of shape (n_samples,), uint8

    Raises
    ------
    SourceError
        No network (and no cache), an HTTP error from OpenML, or data that is not MNIST's
        70,000 x 784 pixels in 0..255 with labels 0..9.
    """
    if split not in ("all", "train", "test"):
        raise InvalidParameterError(f"The 'split' parameter must be one of 'all', 'train', 'test'. Got {split!r} instead.")
    home = None if data_home is None else os.fspath(data_home)
    logger.info("Fetching %s (version %d) from OpenML, cache in %s", OPENML_NAME, OPENML_VERSION, home or "the default data_home")
    try:
        X, y = sklearn.datasets.fetch_openml(
            OPENML_NAME,
            version=OPENML_VERSION,
            data_home=home,
            as_frame=False,
            return_X_y=True,
            n_retries=n_retries,
            delay=delay,
        )
    except HTTPError as exc:
        raise SourceError(f"OpenML answered HTTP {exc.code} ({exc.reason}) for {OPENML_NAME}. {_LOCAL_FIX}") from exc
    except (URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceError(
            f"Cannot download {OPENML_NAME} from OpenML: there is no network ({reason}) and no "
            f"cached copy under data_home={home or sklearn.datasets.get_data_home()!r}. {_LOCAL_FIX}"
        ) from exc
    X = np.asarray(X)
    y = np.asarray(y)
    if X.shape != (_N_TOTAL, 784) or y.shape != (_N_TOTAL,):
        raise SourceError(
            f"OpenML's {OPENML_NAME} has X of shape {X.shape} and y of shape {y.shape}; expected "
            f"({_N_TOTAL}, 784) and ({_N_TOTAL},). Clear the cache under data_home and fetch again."
        )
    pixels = X.astype(np.uint8)
    labels = y.astype(np.int64)  # the labels arrive as the strings '0'..'9'
    if not np.array_equal(pixels, X) or labels.min() < 0 or labels.max() > 9:
        raise SourceError(
            f"OpenML's {OPENML_NAME} is not integer pixels in 0..255 with labels 0..9. "
            "Clear the cache under data_home and fetch again."
        )
    part = {"all": slice(None), "train": slice(0, _N_TRAIN), "test": slice(_N_TRAIN, None)}[split]
    return pixels[part], labels.astype(np.uint8)[part]
