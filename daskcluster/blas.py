"""How many BLAS threads the kernels get: the one policy of the package.

Every hot loop here is a GEMM, and most are small (a tile of a few hundred rows against the
centers, a component's covariance): a team of BLAS threads only costs there. Under Dask's
threaded scheduler several tasks run at once in one process and each would start a full team,
oversubscribing the cores. So:

* kernels that run on small products enter :func:`single_threaded_blas` around them, whatever
  the scheduler;
* a pass run by the threaded scheduler holds :func:`blas_for_tasks` while its tasks run (one
  BLAS thread per task); distributed workers already start with one BLAS thread each, and the
  synchronous scheduler runs one task at a time, so BLAS is left alone there.

BLAS's thread count belongs to the process, not to a thread, so the limit is reference
counted: concurrent and nested uses in one process share one limit, set by the first to enter
and restored by the last to leave. (Two independent limits would restore each other's values
out of order: the first kernel to finish would give the others back the full team while they
run, and the last would leave the process at one thread for good.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import dask
import dask.threaded
from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_users = 0
_limiter: Any = None
_controller: ThreadpoolController | None = None


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """A context in which BLAS uses one thread, in this process.

    Nested and concurrent uses (kernels running in several threads of one process) share one
    limit: the first to enter sets it, the last to leave restores the thread counts found then.
    The libraries are looked up once, on the first call (a scan of the loaded shared
    libraries), and the same controller is reused afterwards: entering and leaving then costs
    a few microseconds per library.
    """
    global _users, _limiter, _controller
    with _lock:
        if _users == 0:
            if _controller is None:
                _controller = ThreadpoolController()
            _limiter = _controller.limit(limits=1, user_api="blas")
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _limiter.restore_original_limits()
                _limiter = None


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
