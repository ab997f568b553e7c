"""Initial ``W`` and ``H`` of NMF: random, NNDSVD from an out-of-core randomized SVD, or given.

``W`` (n_samples x n_components) is never built on the client: it is a lazy Dask array chunked
like the data, computed chunk by chunk by the first iteration's pass. ``H`` is small and built
here. Random draws of ``W`` come from seed blocks of fixed size
(:data:`~daskcluster.kernels.nmf.SEED_BLOCK_ROWS` rows, ``SeedSequence(seed, block)``), so the
same ``random_state`` gives the same ``W`` whatever the chunking and the scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from ..data import RowData
from ..engine import tree_reduce
from ..errors import InvalidDataError, InvalidParameterError
from ..kernels import nmf as K
from ._checks import raise_if_negative

logger = logging.getLogger(__name__)

#: Power iterations (with QR normalisation) of the randomized SVD behind NNDSVD.
SVD_POWER_ITER = 2
#: Extra columns of the randomized SVD's sketch.
SVD_OVERSAMPLES = 10
#: Entries of the NNDSVD factors below this become zero (scikit-learn's ``eps``).
NNDSVD_EPS = 1e-6


def data_statistics(data: RowData, owner: str) -> K.DataStats:
    """Sum, squared norm, column sums and smallest entry of the data; raises on a negative
    value (naming it and where it is) or a non-finite one. Data passes: 1."""
    stats = tree_reduce(data, K.data_stats_kernel, data.affine, K.combine_data_stats, label="nmf-data-stats")
    raise_if_negative(stats.min, owner)
    return stats


def generated_rows(
    data: RowData, label: str, func: Callable[..., np.ndarray], args: tuple[Any, ...], n_columns: int,
    dtype: np.dtype, source: da.Array | None = None,
) -> da.Array:
    """A lazy (n_samples, n_columns) array chunked like ``data``'s rows, without reading the data.

    Chunk ``i`` is ``func(start_i, stop_i, *args)``, or ``func(source_block_i, start_i, *args)``
    when ``source`` (an array with the data's row chunks) is given.
    """
    chunks = data.array.chunks[0]
    if source is not None and source.chunks[0] != chunks:
        source = source.rechunk({0: chunks, 1: -1})
    name = f"{label}-{tokenize(label, chunks, args, None if source is None else source.name)}"
    dsk: dict[Any, Any] = {}
    for i, (start, n) in enumerate(zip(data.starts, chunks)):
        if source is None:
            dsk[(name, i, 0)] = (func, start, start + n, *args)
        else:
            dsk[(name, i, 0)] = (func, (source.name, i, 0), start, *args)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[] if source is None else [source])
    return da.Array(graph, name, (chunks, (n_columns,)), dtype=dtype)


def random_init(
    data: RowData, n_components: int, mean: float, rs: np.random.RandomState
) -> tuple[da.Array, np.ndarray]:
    """scikit-learn's ``init='random'``: ``|avg · N(0, 1)|`` with ``avg = sqrt(mean(X) / k)``.

    ``H`` is drawn first from ``rs`` exactly as scikit-learn draws it (same ``random_state``,
    same ``H``); ``W`` is drawn per seed block from one integer then drawn from ``rs``. Reads no
    data (the mean comes from :func:`data_statistics`).
    """
    dtype = data.dtype
    avg = np.sqrt(mean / n_components)
    H = np.abs(avg * rs.standard_normal(size=(n_components, data.n_features)).astype(dtype, copy=False))
    entropy = int(rs.randint(np.iinfo(np.int32).max))
    W = generated_rows(data, "nmf-random-W", K.random_rows, (n_components, entropy, float(avg), dtype),
                       n_components, dtype)
    return W, H.astype(dtype)


def scaled_array(data: RowData) -> da.Array:
    """The data as the estimator sees them: compute dtype, affine scaling applied (lazy)."""
    x = data.array.astype(data.dtype)
    if not data.affine.is_identity:
        x = x * data.dtype.type(data.affine.scale) + data.dtype.type(data.affine.offset)
    return x


def nndsvd_init(
    data: RowData, n_components: int, variant: str, mean: float, rs: np.random.RandomState
) -> tuple[da.Array, np.ndarray]:
    """NNDSVD (Boutsidis & Gallopoulos 2008) from Dask's randomized SVD of the data.

    ``dask.array.linalg.svd_compressed`` (QR power iterations, seeded from ``rs``) gives ``U``
    (n_samples x k, its basis persisted in (cluster) memory, n_samples x (k + 10)), ``s`` and
    ``V``; the NNDSVD construction follows scikit-learn's, with ``W`` built lazily chunk by
    chunk from ``U``. ``variant``: ``'nndsvd'`` keeps the zeros, ``'nndsvda'`` fills them with
    the data's mean, ``'nndsvdar'`` with ``|mean · N(0, 1) / 100|``.

    Data passes: ``2 + 2 * SVD_POWER_ITER`` (6), all inside the SVD.
    """
    k = n_components
    dtype = data.dtype
    seed = int(rs.randint(np.iinfo(np.int32).max))
    x = scaled_array(data)
    with dask.config.set({"array.slicing.split_large_chunks": False}):
        U, S, V = da.linalg.svd_compressed(
            x, k, iterator="QR", n_power_iter=SVD_POWER_ITER, n_oversamples=SVD_OVERSAMPLES, seed=seed,
            compute=True,
        )
        U = U.rechunk({0: data.array.chunks[0], 1: -1})
        S, V, pos_sq, neg_sq = dask.compute(S, V, (da.maximum(U, 0) ** 2).sum(axis=0),
                                            (da.minimum(U, 0) ** 2).sum(axis=0))
    S = np.asarray(S, dtype=np.float64)
    V = np.asarray(V, dtype=np.float64)
    if not np.all(np.isfinite(S)) or S[0] <= 0:
        raise InvalidDataError(
            "The randomized SVD behind NNDSVD found no positive singular value: X is all zeros "
            "(or nearly so). Use init='random' or check the data."
        )
    H = np.zeros((k, data.n_features))
    H[0] = np.sqrt(S[0]) * np.abs(V[0])
    signs = np.ones(k)
    scales = np.zeros(k)
    for j in range(1, k):
        y = V[j]
        y_p, y_n = np.maximum(y, 0), np.abs(np.minimum(y, 0))
        x_p_nrm, x_n_nrm = np.sqrt(pos_sq[j]), np.sqrt(neg_sq[j])
        y_p_nrm, y_n_nrm = np.linalg.norm(y_p), np.linalg.norm(y_n)
        m_p, m_n = x_p_nrm * y_p_nrm, x_n_nrm * y_n_nrm
        if m_p > m_n:
            sign, x_nrm, v, sigma = 1.0, x_p_nrm, y_p / y_p_nrm, m_p
        else:
            sign, x_nrm, v, sigma = -1.0, x_n_nrm, y_n / y_n_nrm, m_n
        lbd = np.sqrt(S[j] * sigma)
        signs[j] = sign
        scales[j] = lbd / x_nrm
        H[j] = lbd * v
    H[H < NNDSVD_EPS] = 0
    fill = {"nndsvd": "zeros", "nndsvda": "mean", "nndsvdar": "random"}[variant]
    if fill == "mean":
        H[H == 0] = mean
    elif fill == "random":
        zero = H == 0
        H[zero] = np.abs(mean * rs.standard_normal(size=int(zero.sum())) / 100)
    entropy = int(rs.randint(np.iinfo(np.int32).max))
    rows = K.NNDSVDRows(float(np.sqrt(S[0])), signs, scales, NNDSVD_EPS, fill, float(mean), entropy)
    W = generated_rows(data, f"nmf-{variant}-W", K.nndsvd_rows, (rows, dtype), k, dtype, source=U)
    logger.info("%s: singular values %s", variant, np.array2string(S, precision=4))
    return W, H.astype(dtype)


def custom_init(
    data: RowData, n_components: int, W: Any, H: Any, owner: str
) -> tuple[da.Array, np.ndarray]:
    """Check the ``W`` and ``H`` given with ``init='custom'`` as scikit-learn does (shapes,
    finite, non-negative, not all zeros) and cast them to the compute dtype.

    ``W`` may be a NumPy or Dask array of shape (n_samples, n_components); a Dask ``W`` is
    checked by one pass over ``W`` (not over the data). Returns ``W`` chunked like the data.
    """
    if W is None or H is None:
        raise InvalidParameterError(
            f"{owner} with init='custom' needs both W and H: call fit(X, W=..., H=...) or fit_transform(X, W=..., "
            "H=...)."
        )
    H = _check_factor(np.asarray(H), (n_components, data.n_features), f"{owner} (input H)")
    if isinstance(W, da.Array):
        if W.ndim != 2 or W.shape != (data.n_samples, n_components):
            raise InvalidParameterError(_shape_message(f"{owner} (input W)", W.shape, (data.n_samples, n_components)))
        lo, hi, finite = dask.compute(W.min(), W.max(), da.isfinite(W).all())
        _check_values(f"{owner} (input W)", float(lo), float(hi), bool(finite))
        Wd = W.astype(data.dtype).rechunk({0: data.array.chunks[0], 1: -1})
    else:
        Wn = _check_factor(np.asarray(W), (data.n_samples, n_components), f"{owner} (input W)")
        Wd = da.from_array(Wn.astype(data.dtype), chunks=(data.array.chunks[0], (n_components,)))
    return Wd, H.astype(data.dtype)


def _shape_message(whom: str, got: tuple[int, ...], expected: tuple[int, int]) -> str:
    return f"Array passed to {whom} has shape {tuple(got)}; expected {expected} (n_rows, n_columns)."


def _check_values(whom: str, lo: float, hi: float, finite: bool) -> None:
    if not finite:
        raise InvalidParameterError(f"Array passed to {whom} contains NaN or infinity.")
    if lo < 0:
        raise InvalidParameterError(f"Negative values in data passed to {whom}: its smallest value is {lo!r}.")
    if hi == 0:
        raise InvalidParameterError(f"Array passed to {whom} is full of zeros.")


def _check_factor(A: np.ndarray, shape: tuple[int, int], whom: str) -> np.ndarray:
    if A.ndim != 2 or A.shape != shape:
        raise InvalidParameterError(_shape_message(whom, A.shape, shape))
    try:
        A = A.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"Array passed to {whom} must hold numbers: {exc}") from exc
    _check_values(whom, float(A.min()), float(A.max()), bool(np.isfinite(A).all()))
    return A
