"""NMF's ``transform``: solve for ``W`` with ``H`` fixed, as scikit-learn does.

scikit-learn's ``NMF.transform`` runs the multiplicative updates of ``W`` alone from
``W = sqrt(mean(X) / k)`` everywhere, checks the error every 10 iterations against the error at
that start and stops when its relative decrease falls below ``tol``. With ``H`` fixed, the
update of a row of ``W`` needs only that row of ``X``: each chunk runs all its updates locally.
Only the stopping iteration is global. So:

1. one pass: ``mean(X)`` (and the error at the start, from ``‖X‖²`` and the column sums; the
   smallest entry, a negative one raising);
2. when ``tol > 0``, one pass in which every chunk runs ``max_iter`` updates and returns its
   squared error after every 10th; the client picks the iteration where scikit-learn stops;
3. the output: a row-wise map that runs that many updates per chunk (lazy for lazy input).
"""

from __future__ import annotations

import logging
import math
import warnings

import dask.array as da
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..data import RowData
from ..engine import map_rows, tree_reduce
from ..kernels import nmf as K
from ._nmf_init import data_statistics
from ._nmf_mu import CHECK_EVERY, Regularization, relative_decrease

logger = logging.getLogger(__name__)


def stopping_iteration(trace: np.ndarray, error_at_init: float, tol: float, max_iter: int) -> int:
    """The iteration at which scikit-learn's loop stops, from the squared errors after every
    :data:`CHECK_EVERY` iterations (``trace[i]`` after ``(i + 1) * CHECK_EVERY``)."""
    previous = error_at_init
    for i, sq in enumerate(trace):
        error = math.sqrt(max(float(sq), 0.0))
        if relative_decrease(previous, error, error_at_init) < tol:
            return (i + 1) * CHECK_EVERY
        previous = error
    return max_iter


def solve_w(
    data: RowData, H: np.ndarray, *, max_iter: int, tol: float, reg: Regularization, owner: str = "NMF"
) -> da.Array:
    """``W`` (n_samples x k) minimizing ``‖X − WH‖`` with ``H`` fixed, by scikit-learn's updates.

    Returns a lazy Dask array chunked like the data. Data passes: 1 (mean), plus 1 when
    ``tol > 0`` (the stopping iteration), plus 1 when the result is computed.
    """
    dtype = data.dtype
    k = H.shape[0]
    H = H.astype(dtype)
    stats = data_statistics(data, owner)
    mean = stats.sum / (data.n_samples * data.n_features)
    w_init = float(np.sqrt(mean / k))
    params = K.SolveParams(H, H @ H.T, reg.l1_W, reg.l2_W, data.affine, w_init, max_iter, CHECK_EVERY)
    n_iter = max_iter
    if tol > 0:
        # every row of W H starts as r = w_init * (sum of H's rows)
        r = w_init * H.astype(np.float64).sum(axis=0)
        sq_init = stats.sq - 2.0 * float(r @ stats.col_sum) + data.n_samples * float(r @ r)
        error_at_init = math.sqrt(max(sq_init, 0.0))
        trace = tree_reduce(data, K.solve_trace_kernel, params, K.combine_trace, label="nmf-transform-trace")
        n_iter = stopping_iteration(trace, error_at_init, tol, max_iter)
        logger.info("%s.transform: %d iterations", owner, n_iter)
        if n_iter == max_iter:
            warnings.warn(
                f"Maximum number of iterations {max_iter} reached. Increase it to improve convergence.",
                ConvergenceWarning,
                stacklevel=3,
            )
    params = K.SolveParams(H, H @ H.T, reg.l1_W, reg.l2_W, data.affine, w_init, n_iter, CHECK_EVERY)
    return map_rows(data, K.solve_rows_kernel, (params,), dtype=dtype, n_columns=k, label="nmf-transform")
