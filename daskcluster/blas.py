"""How many BLAS threads the kernels get.

Every hot loop here is a GEMM. Under Dask's threaded scheduler, several tasks run at once in
one process and each would start a full team of BLAS threads, oversubscribing the cores;
distributed workers already start with one BLAS thread each, and the synchronous scheduler
runs one task at a time, so BLAS is left alone there.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import dask
import dask.threaded
from threadpoolctl import ThreadpoolController

_controller: ThreadpoolController | None = None


def single_threaded_blas() -> AbstractContextManager[Any]:
    """A context in which BLAS uses one thread (in this process; cheap to enter).

    The libraries are looked up once, on the first call (a scan of the loaded shared
    libraries), and the same controller is reused afterwards: entering and leaving then costs
    a few microseconds per library.
    """
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")  # type: ignore[no-any-return]


def blas_for_tasks(n_tasks: int, scheduler: Callable[..., Any] | None = None) -> AbstractContextManager[Any]:
    """One BLAS thread per task while the threaded scheduler may run several of ``n_tasks`` at once;
    BLAS left alone otherwise (one task, or another scheduler).

    Parameters
    ----------
    n_tasks : int
        Number of tasks about to run.
    scheduler : callable, optional
        The ``get`` function that will run them, when the caller already looked it up;
        by default the one Dask's configuration (or an active Client) selects.
    """
    if n_tasks < 2:
        return nullcontext()
    if scheduler is None:
        scheduler = dask.base.get_scheduler()  # type: ignore[no-untyped-call]
    if scheduler is not None and scheduler is not dask.threaded.get:
        return nullcontext()
    return single_threaded_blas()
