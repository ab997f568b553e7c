"""How many BLAS threads the kernels get.

Every hot loop here is a GEMM. Under Dask's threaded (or synchronous) scheduler, several tasks
run at once in one process and each would start a full team of BLAS threads, oversubscribing
the cores; distributed workers already start with one BLAS thread each.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import dask
import dask.threaded
from threadpoolctl import ThreadpoolController

_controller: ThreadpoolController | None = None


def single_threaded_blas() -> AbstractContextManager[Any]:
    """A context in which BLAS uses one thread (in this process; cheap to enter)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")  # type: ignore[no-any-return]


def blas_for_tasks(n_tasks: int) -> AbstractContextManager[Any]:
    """One BLAS thread per task while the threaded scheduler may run several of ``n_tasks`` at once;
    BLAS left alone otherwise (one task, or another scheduler)."""
    scheduler = dask.base.get_scheduler()
    if n_tasks < 2 or (scheduler is not None and scheduler is not dask.threaded.get):
        return nullcontext()
    return single_threaded_blas()
