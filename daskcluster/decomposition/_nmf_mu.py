"""The multiplicative-update solver of NMF (Frobenius loss) as one pass per iteration.

Iteration ``t`` follows scikit-learn's ``_fit_multiplicative_update`` step for step: update
``W`` (each chunk its own rows, beside the data), then ``H`` (on the client, from ``WᵀX`` and
``WᵀW`` of the new ``W`` summed over the chunks). The error ``‖X − WH‖`` of every iteration
comes from the same statistics and ``‖X‖²`` (first pass), without another pass; as in
scikit-learn, ``tol`` is checked every 10 iterations against the error at initialization.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass

import dask.array as da
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..data import RowData
from ..engine import tree_reduce_rows
from ..kernels import nmf as K
from ..progress import IterationReport, report
from ._checks import raise_if_negative
from ._nmf_store import RowStore, StoredStep, mu_step_to_store

logger = logging.getLogger(__name__)

#: scikit-learn checks the stopping criterion every this many iterations.
CHECK_EVERY = 10


@dataclass(frozen=True)
class Regularization:
    """Scaled regularization terms, as scikit-learn's ``_compute_regularization``."""

    l1_W: float
    l1_H: float
    l2_W: float
    l2_H: float

    @staticmethod
    def of(alpha_W: float, alpha_H: float | str, l1_ratio: float, n_samples: int, n_features: int) -> Regularization:
        """``alpha_W`` is scaled by ``n_features``, ``alpha_H`` (``'same'``: ``alpha_W``) by
        ``n_samples``, and split into L1 (``l1_ratio``) and L2 (``1 - l1_ratio``) parts."""
        a_H = alpha_W if alpha_H == "same" else float(alpha_H)
        return Regularization(
            n_features * alpha_W * l1_ratio,
            n_samples * a_H * l1_ratio,
            n_features * alpha_W * (1.0 - l1_ratio),
            n_samples * a_H * (1.0 - l1_ratio),
        )


@dataclass
class MUResult:
    """Outcome of the solver: the last ``W`` (kept in memory or in the store), ``H``, the
    number of iterations and ``‖X − WH‖`` (Frobenius norm)."""

    W: da.Array
    H: np.ndarray
    n_iter: int
    error: float


def relative_decrease(previous: float, error: float, error_at_init: float) -> float:
    """scikit-learn's convergence measure ``(previous - error) / error_at_init`` (NaN or inf
    when the initial error is 0, as NumPy divides, so that the run goes on)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(previous - error) / np.float64(error_at_init))


def fit_multiplicative_update(
    data: RowData,
    W: da.Array,
    H: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    reg: Regularization,
    store: RowStore | None,
    owner: str = "NMF",
) -> MUResult:
    """Run the multiplicative updates from ``W`` (n_samples x k, lazy or kept, chunked like the
    data) and ``H`` (k x n_features).

    The first pass also computes ``‖X‖²``, the data's smallest entry (a negative one raises
    :class:`~daskcluster.errors.InvalidDataError` before the second iteration) and the error of
    the initial ``W``, ``H``. With ``store``, each pass writes its ``W`` to the temporary Zarr
    store instead of memory.

    Data passes: one per iteration.
    """
    dtype = data.dtype
    k = H.shape[0]
    H = H.astype(dtype)
    x_sq = error_at_init = previous = error = float("nan")
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        t0 = time.perf_counter()
        params = K.StepParams(H, H @ H.T, reg.l1_W, reg.l2_W, data.affine, first=(n_iter == 1))
        if store is None:
            W_new, stats = tree_reduce_rows(data, K.mu_step_kernel, params, K.combine_step, aligned=[W],
                                            n_columns=k, dtype=dtype, label="nmf-mu")
        else:
            path = store.generation(n_iter)
            _, stats = tree_reduce_rows(data, mu_step_to_store, StoredStep(params, path), K.combine_step,
                                        aligned=[W], n_columns=0, dtype=dtype, label="nmf-mu")
            W_new = store.array(n_iter)
            store.remove(n_iter - 1)
        if n_iter == 1:
            raise_if_negative(stats.min, owner)
            assert stats.wtx0 is not None and stats.wtw0 is not None
            x_sq = stats.x_sq
            error_at_init = previous = math.sqrt(K.squared_error(x_sq, H, stats.wtx0, stats.wtw0))
        H = K.mu_update_h(H, stats.wtx, stats.wtw, reg.l1_H, reg.l2_H)
        W = W_new
        error = math.sqrt(K.squared_error(x_sq, H, stats.wtx, stats.wtw))
        report(IterationReport(owner, "fit", n_iter, max_iter, time.perf_counter() - t0, data.n_samples,
                               {"error": error}))
        if tol > 0 and n_iter % CHECK_EVERY == 0:
            if relative_decrease(previous, error, error_at_init) < tol:
                logger.info("Converged at iteration %d: relative decrease of the error below tol=%g.", n_iter, tol)
                break
            previous = error
    if n_iter == max_iter and tol > 0:
        warnings.warn(
            f"Maximum number of iterations {max_iter} reached. Increase it to improve convergence.",
            ConvergenceWarning,
            stacklevel=4,
        )
    return MUResult(W, H, n_iter, error)
