"""Rank selection for OPNMF against permuted data, as the ``opnmf`` package's ``rank_permute``.

Every candidate rank is fitted on the data and on a permuted copy of it (the same values,
their joint structure destroyed); both error curves are divided by their largest value, and a
rank is good when going to the next rank lowers the data's error less than the permuted
data's (``diff(errors) > diff(random_errors)``). The first good rank is chosen.

The permuted copy is never stored. It is a lazy map over the chunks, each chunk permuted with
a generator seeded by ``(seed, chunk index)``, so every pass sees the same copy and the result
does not depend on the scheduler:

* over the features (the package's ``opnmf(X.T)``: each sample's values shuffled among its
  features, independently per sample) the package's permutation exactly;
* over the samples (the package's ``opnmf(X)``: each feature's values shuffled among the
  samples, independently per feature) within each row chunk -- the same null model when the
  rows are not stored in a meaningful order (shuffle sorted data first).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..data import RowData
from ..engine import map_rows
from ..kernels import opnmf as K
from ._opnmf_fit import FitResult

logger = logging.getLogger(__name__)


def permuted(data: RowData, orientation: str, seed: int) -> RowData:
    """The lazily permuted copy of ``data`` that the null model is fitted on (see the module)."""
    axis = 1 if orientation == "features" else 0
    array = map_rows(data, K.permute_block, (seed, axis), dtype=data.array.dtype, n_columns=data.n_features,
                     label="opnmf-permuted")
    return replace(data, array=array)


@dataclass
class RankSelection:
    """Outcome of the selection, with the package's names.

    Attributes
    ----------
    ranks : ndarray of shape (n_ranks,)
    errors : ndarray of shape (n_ranks,)
        Reconstruction errors on the data, divided by their largest value.
    random_errors : ndarray of shape (n_ranks,)
        The same on the permuted data.
    good_ranks : ndarray
        Ranks whose step to the next rank helps the data less than the permuted data.
    chosen : int
        The first good rank (the largest rank tested when none is good, with a warning).
    """

    ranks: np.ndarray
    errors: np.ndarray
    random_errors: np.ndarray
    good_ranks: np.ndarray
    chosen: int


def _normalised(errors: Sequence[float]) -> np.ndarray:
    e = np.asarray(errors, dtype=np.float64)
    top = e.max()
    return e / top if top > 0 else e


def select_rank(
    ranks: Sequence[int],
    fit_data: Callable[[int], FitResult],
    fit_permuted: Callable[[int], FitResult],
) -> tuple[RankSelection, FitResult]:
    """Fit every rank on the permuted data, then on the data; choose as the package does.

    Returns the selection and the fit of the chosen rank on the data (the fits of the other
    ranks are dropped).
    """
    ranks_arr = np.asarray(list(ranks), dtype=np.int64)
    random_errors = []
    for r in ranks_arr:
        random_errors.append(fit_permuted(int(r)).error)
        logger.info("rank %d on permuted data: error %.6g", r, random_errors[-1])
    fits: dict[int, FitResult] = {}
    for r in ranks_arr:
        fits[int(r)] = fit_data(int(r))
        logger.info("rank %d: error %.6g", r, fits[int(r)].error)
    errors = _normalised([fits[int(r)].error for r in ranks_arr])
    rand = _normalised(random_errors)
    good = ranks_arr[np.where(np.diff(errors) > np.diff(rand))[0]]
    if good.size:
        chosen = int(good[0])
    else:
        chosen = int(ranks_arr[-1])
        warnings.warn(
            f"No rank in {ranks_arr.tolist()} lowers the error less than on permuted data when going to the "
            f"next rank; keeping the largest rank tested, {chosen}. Test a wider range of n_components.",
            UserWarning,
            stacklevel=3,
        )
    logger.info("rank selection: good ranks %s, chosen %d", good.tolist(), chosen)
    return RankSelection(ranks_arr, errors, rand, good, chosen), fits[chosen]
