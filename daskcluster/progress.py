"""Per-iteration progress: one log line per iteration, and hooks (progress bars) to call.

Estimators call :func:`report` once per iteration (one pass over the data). Everything
listening is registered with :func:`progress_hook`, which is how a command-line progress
bar or a notebook widget follows a fit without the estimator knowing about it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IterationReport:
    """What one iteration of a fit did.

    Attributes
    ----------
    estimator : str
        Class name, e.g. ``"KMeans"``.
    stage : str
        ``"init"`` for seeding passes, ``"fit"`` for the iterations proper.
    iteration : int
        1-based iteration number within the stage.
    max_iter : int
        Upper bound on the iterations of the stage.
    seconds : float
        Wall time of the iteration.
    n_samples : int
        Rows read by the iteration's pass.
    metrics : dict of str to float
        E.g. ``{"inertia": ..., "shift": ...}``.
    """

    estimator: str
    stage: str
    iteration: int
    max_iter: int
    seconds: float
    n_samples: int
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        """Rows read per second by the iteration's pass."""
        return self.n_samples / self.seconds if self.seconds > 0 else float("inf")

    def format(self) -> str:
        """One log line: ``KMeans fit 3/300 inertia=1.2e+05 shift=0.01 0.12s 5.8e+05 rows/s``."""
        parts = " ".join(f"{k}={v:.6g}" for k, v in self.metrics.items())
        return (
            f"{self.estimator} {self.stage} {self.iteration}/{self.max_iter} {parts} "
            f"{self.seconds:.3f}s {self.rows_per_second:.3g} rows/s"
        )


Hook = Callable[[IterationReport], None]
_hooks: ContextVar[tuple[Hook, ...]] = ContextVar("daskcluster_progress_hooks", default=())


@contextmanager
def progress_hook(hook: Hook) -> Iterator[Hook]:
    """Call ``hook(report)`` for every iteration reported inside the ``with`` block."""
    token = _hooks.set(_hooks.get() + (hook,))
    try:
        yield hook
    finally:
        _hooks.reset(token)


def report(rep: IterationReport) -> None:
    """Log one iteration at INFO level and pass it to every registered hook."""
    logger.info(rep.format())
    for hook in _hooks.get():
        hook(rep)
