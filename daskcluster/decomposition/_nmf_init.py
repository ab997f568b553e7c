"""Initial ``W`` and ``H`` of NMF: random, NNDSVD from an out-of-core randomized SVD, or given.

``W`` (n_samples x n_components) is never built on the client: it is a lazy Dask array chunked
like the data, computed chunk by chunk by the first iteration's pass. ``H`` is small and built
here. Random draws of ``W`` come from seed blocks of fixed size
(:data:`~daskcluster.kernels.nmf.SEED_BLOCK_ROWS` rows, ``SeedSequence(seed, block)``), so the
same ``random_state`` gives the same ``W`` whatever the chunking and the scheduler.
"""

from __future__ import annotations

import logging
from typing import Any

import dask
import dask.array as da
import numpy as np

from ..data import RowData
from ..engine import generated_rows, map_rows, tree_reduce
from ..errors import InvalidDataError, InvalidParameterError
from ..kernels import nmf as K
from ..kernels.blocks import Affine, ChunkInfo, iter_compute_slices, slice_rows
from ._checks import raise_if_negative
from ._randomized_svd import left_vector_parts, randomized_svd

logger = logging.getLogger(__name__)

#: Subspace iterations (passes, with QR normalisation) of the randomized SVD behind NNDSVD, as
#: scikit-learn's ``randomized_svd`` makes for ``n_iter='auto'`` and many samples.
SVD_POWER_ITER = 4
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


def _random_rows(n: int, n_components: int, entropy: int, scale: float, dtype: np.dtype,
                 chunk: ChunkInfo) -> np.ndarray:
    return K.random_rows(chunk.start, chunk.start + n, n_components, entropy, scale, dtype)


def _nndsvd_rows(block: np.ndarray, affine: Affine, projection: np.ndarray, rows: K.NNDSVDRows, dtype: np.dtype,
                 chunk: ChunkInfo) -> np.ndarray:
    """A chunk's rows of the NNDSVD ``W``, from its rows of ``U = X V / s`` (computed here, in
    float64, a slice at a time)."""
    out = np.empty((block.shape[0], projection.shape[1]), dtype=dtype)
    for start, stop, x in iter_compute_slices(block, np.dtype(np.float64), affine,
                                              slice_rows(block.shape[1], projection.shape[1])):
        out[start:stop] = K.nndsvd_rows(x @ projection, chunk.start + start, rows, dtype)
    return out


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
    W = generated_rows(data.array.chunks[0], _random_rows, (n_components, entropy, float(avg), dtype), dtype=dtype,
                       n_columns=n_components, label="nmf-random-W")
    return W, H.astype(dtype)


def nndsvd_init(
    data: RowData, n_components: int, variant: str, mean: float, rs: np.random.RandomState
) -> tuple[da.Array, np.ndarray]:
    """NNDSVD (Boutsidis & Gallopoulos 2008) from an out-of-core randomized SVD of the data.

    :func:`~daskcluster.decomposition._randomized_svd.randomized_svd` (its sketch seeded from
    ``rs``) gives ``s`` and ``V``; one more pass measures the positive and negative parts of the
    left vectors ``U = X V / s``. The NNDSVD construction follows scikit-learn's; ``W`` is built
    lazily chunk by chunk from the chunk's rows of ``U``, when the first iteration's pass reads
    the chunk. ``variant``: ``'nndsvd'`` keeps the zeros, ``'nndsvda'`` fills them with the
    data's mean, ``'nndsvdar'`` with ``|mean · N(0, 1) / 100|``.

    Data passes: ``SVD_POWER_ITER + 2`` (6).
    """
    k = n_components
    dtype = data.dtype
    seed = int(rs.randint(np.iinfo(np.int32).max))
    S, V = randomized_svd(data, k, n_oversamples=SVD_OVERSAMPLES, n_iter=SVD_POWER_ITER, seed=seed)
    if not np.all(np.isfinite(S)) or S[0] <= 0:
        raise InvalidDataError(
            "The randomized SVD behind NNDSVD found no positive singular value: X is all zeros "
            "(or nearly so). Use init='random' or check the data."
        )
    x_pos, x_neg = left_vector_parts(data, S, V)
    V = V.T  # (k, n_features): the rows are the right singular vectors, as scikit-learn's V
    H = np.zeros((k, data.n_features))
    H[0] = np.sqrt(S[0]) * np.abs(V[0])
    signs = np.ones(k)
    scales = np.zeros(k)
    for j in range(1, k):
        y = V[j]
        y_p, y_n = np.maximum(y, 0), np.abs(np.minimum(y, 0))
        x_p_nrm, x_n_nrm = x_pos[j], x_neg[j]
        y_p_nrm, y_n_nrm = np.linalg.norm(y_p), np.linalg.norm(y_n)
        m_p, m_n = x_p_nrm * y_p_nrm, x_n_nrm * y_n_nrm
        if max(m_p, m_n) == 0:  # s_j = 0 (rank below k): no column, as scikit-learn's tiny ones
            continue
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
    inv = np.zeros_like(S)
    np.divide(1.0, S, out=inv, where=S > 0)
    W = map_rows(data, _nndsvd_rows, (data.affine, V.T * inv, rows, dtype), dtype=dtype, n_columns=k,
                 label=f"nmf-{variant}-W")
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
