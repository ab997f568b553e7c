"""Where NMF keeps ``W`` when it does not stay in memory: the engine's temporary row store.

When the data stream from their source on every pass, each iteration's pass writes the new
``W`` to a generation of a :class:`daskcluster.engine.rowstore.RowStore` and the next pass
reads it back beside the data; only the two latest generations exist at a time, and the whole
folder is removed when the fit ends, whatever happens. The tasks are the engine's
(:func:`~daskcluster.engine.rowstore.store_rows` running
:func:`~daskcluster.kernels.nmf.mu_step_kernel`); this module runs on the client only.
"""

from __future__ import annotations

import logging
import os
from functools import partial

import numpy as np

from ..data import RowData
from ..engine import rowstore
from ..kernels.nmf import mu_step_kernel

logger = logging.getLogger(__name__)

#: ``StoredStep(step, path)``: an iteration's :class:`~daskcluster.kernels.nmf.StepParams`, its
#: new ``W`` written to the generation at ``path``.
StoredStep = partial(rowstore.StoredRows, mu_step_kernel)
#: The pass's kernel: the multiplicative step, its new rows written to the store.
mu_step_to_store = rowstore.store_rows


class RowStore(rowstore.RowStore):
    """The temporary store of NMF's ``W`` (a folder ``.daskcluster-nmf-W.tmp-…``).

    Parameters
    ----------
    data : RowData
    n_columns : int
        ``n_components``.
    dtype : numpy dtype
    folder : str or path-like, optional
        Parent folder (default: Dask's ``temporary-directory``, else the system's).
    """

    def __init__(self, data: RowData, n_columns: int, dtype: np.dtype, folder: str | os.PathLike[str] | None = None) -> None:
        super().__init__(data, n_columns, dtype, folder, prefix="daskcluster-nmf-W", label="nmf-stored-W")
        logger.info("W is kept in the temporary Zarr store %s", self.path)
