"""Per-iteration progress: one log line per iteration, and hooks (progress bars) to call.

Estimators call :func:`report` once per iteration (one pass over the data). Everything
listening is registered with :func:`progress_hook`, which is how a command-line progress
bar or a notebook widget follows a fit without the estimator knowing about it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

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
        E.g. ``{"inertia": ..., "shift": ...}``: what the iteration measured. A metric given as
        NaN, i.e. not computed by this iteration (the inertia of an Elkan pass that skipped
        distances, a moving average before its first batch), is left out, so that log lines,
        bars and job records show only what is known.
    """

    estimator: str
    stage: str
    iteration: int
    max_iter: int
    seconds: float
    n_samples: int
    metrics: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        known = {k: v for k, v in self.metrics.items() if not _is_nan(v)}
        object.__setattr__(self, "metrics", known)

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


def _is_nan(value: float) -> bool:
    try:
        return math.isnan(value)
    except TypeError:  # not a number: kept, the hooks decide
        return False


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


def _bar_class() -> Any:
    """tqdm's notebook widget in a Jupyter kernel that has ipywidgets; its text bar everywhere else.

    ``tqdm.auto`` picks the widget in any kernel and, without ipywidgets, warns
    (``TqdmWarning: IProgress not found``) before falling back: this picks the text bar
    without the warning.
    """
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is not None and "IPKernelApp" in getattr(shell, "config", {}) and _importable("ipywidgets"):
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm
    from tqdm.std import tqdm

    return tqdm


def _importable(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a module blocked in sys.modules has no spec
        return False


class ProgressBar:
    """Progress bars for fits, for terminals and notebooks.

    One bar per stage of each fit, and only as definite as the fit's length is known:

    * ``init`` (seeding: k-means|| rounds, k-means++ centers): a bar to the stage's number of
      passes, which is fixed in advance;
    * ``fit`` (iterations until convergence, or passes of a sweep): indeterminate, with the
      current iteration, the rate and the last metrics (inertia/shift, lower bound...);
      ``max_iter`` is only the upper bound, so no percentage or ETA is made up from it.

    A new bar starts when a stage starts again (the next run of ``n_init``, the next model).
    Use it as a context manager::

        with ProgressBar():
            KMeans(10).fit(X)

    Parameters
    ----------
    leave : bool, default=True
        Keep finished bars on screen.
    file : file-like, optional
        Where to draw (default: standard error).
    disable : bool or None, default=False
        None: draw only on a terminal (tqdm's rule).
    """

    #: Stages whose number of passes is fixed before they start.
    KNOWN_LENGTH = ("init",)

    def __init__(self, leave: bool = True, file: Any = None, disable: bool | None = False) -> None:
        self.leave = leave
        self.file = file
        self.disable = disable
        self._bars: dict[tuple[str, str], Any] = {}
        self._ctx: Any = None

    def __call__(self, rep: IterationReport) -> None:
        key = (rep.estimator, rep.stage)
        bar = self._bars.get(key)
        if bar is None or rep.iteration <= bar.n:
            if bar is not None:
                bar.close()
            known = rep.stage in self.KNOWN_LENGTH
            bar = _bar_class()(total=rep.max_iter if known else None,
                               desc=f"{rep.estimator} {rep.stage}" + ("" if known else f" (max {rep.max_iter})"),
                               leave=self.leave, file=self.file, unit="pass", disable=self.disable)
            self._bars[key] = bar
        if rep.metrics:
            bar.set_postfix({k: f"{v:.5g}" for k, v in rep.metrics.items()}, refresh=False)
        bar.update(rep.iteration - bar.n)

    def close(self) -> None:
        """Close every bar."""
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()

    def __enter__(self) -> ProgressBar:
        self._ctx = progress_hook(self)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self._ctx.__exit__(*exc)
