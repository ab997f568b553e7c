"""The EM loop as passes: one pass per iteration for one or several mixtures at once.

Each pass runs the E-step of every active mixture on every chunk and returns their M-step
statistics; the M-step runs on the client. The loop follows scikit-learn's
``BaseMixture.fit_predict`` step for step: the lower bound of an iteration is the mean
log-likelihood under the parameters *before* its M-step, and a run has converged when the
lower bound changed by less than ``tol``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import RowData
from ..engine import tree_reduce
from ..kernels import mixture as K
from ..progress import IterationReport, report
from ._covariance import NK_GUARD, CollapsedComponentError, covariance_of

logger = logging.getLogger(__name__)


@dataclass
class GaussianModel:
    """Parameters of one mixture (scikit-learn's fitted attributes, without the ``_``).

    ``covariances`` is None only for a model built from ``precisions_init`` and not yet
    through an M-step.
    """

    covariance_type: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray | None
    precisions_cholesky: np.ndarray

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def precisions(self) -> np.ndarray:
        return covariance_of(self.covariance_type).precisions(self.precisions_cholesky)

    def kernel_params(self, n_samples: int | None = None) -> K.GaussianParams:
        """The E-step's parameters; ``n_samples`` allows the sparse second moments of ``'full'``."""
        return K.gaussian_params(self.weights, self.means, self.precisions_cholesky, self.covariance_type, n_samples)


@dataclass
class Estimates:
    """Weights, means and covariances from statistics, before any Cholesky factorization."""

    nk: np.ndarray
    means: np.ndarray
    covariances: np.ndarray


def estimate_parameters(stats: K.MixtureStats, center: np.ndarray, covariance_type: str, reg_covar: float) -> Estimates:
    """scikit-learn's ``_estimate_gaussian_parameters`` from sufficient statistics.

    ``nk = sum resp + 10 eps``, ``means = sum resp x / nk`` and the covariances of the type,
    each computed from the centred statistics without cancellation at the data's scale.
    """
    n = stats.nk
    nk = n + NK_GUARD
    mean = center + stats.means
    means = n[:, None] * mean / nk[:, None]
    cov = covariance_of(covariance_type).estimate(n, nk, mean, means, stats.m2, reg_covar)
    return Estimates(nk, means, cov)


def m_step(stats: K.MixtureStats, center: np.ndarray, covariance_type: str, reg_covar: float) -> GaussianModel:
    """The M-step: new parameters from the statistics of an E-step.

    Raises
    ------
    CollapsedComponentError
        A covariance is not positive definite.
    """
    est = estimate_parameters(stats, center, covariance_type, reg_covar)
    if not (np.isfinite(est.means).all() and np.isfinite(est.nk).all()):
        raise CollapsedComponentError("The M-step produced non-finite means. Scale the input data.")
    prec_chol = covariance_of(covariance_type).precision_cholesky(est.covariances)
    return GaussianModel(covariance_type, est.nk / est.nk.sum(), est.means, est.covariances, prec_chol)


@dataclass
class EMRun:
    """State of one EM run (one initialization of one mixture).

    ``model`` is a :class:`GaussianModel` (a :class:`~._variational.VariationalModel` for a
    :class:`~._variational.VariationalRun`).
    """

    model: Any
    reg_covar: float
    tol: float
    max_iter: int
    lower_bound: float = -math.inf
    lower_bounds: list[float] = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    error: CollapsedComponentError | None = None
    #: ``time.perf_counter()`` when the run stopped iterating (NaN while it runs).
    finished_at: float = math.nan

    @property
    def active(self) -> bool:
        return not self.converged and self.error is None and self.n_iter < self.max_iter

    def kernel_params(self, n_samples: int) -> K.GaussianParams:
        """The E-step's parameters of the next pass."""
        params: K.GaussianParams = self.model.kernel_params(n_samples)
        return params

    def step(self, stats: K.MixtureStats, center: np.ndarray, n_samples: int) -> float:
        """The M-step from the statistics of a pass; returns the iteration's lower bound (the
        mean log-likelihood under the parameters before the M-step).

        Raises
        ------
        CollapsedComponentError
            A covariance is not positive definite.
        """
        lower_bound = stats.log_lik / n_samples
        self.model = m_step(stats, center, self.model.covariance_type, self.reg_covar)
        return lower_bound


#: ``printer(run_index, run, change, seconds)`` after each iteration of a run.
Printer = Callable[[int, EMRun, float, float], None]


def run_em(
    data: RowData,
    runs: list[EMRun],
    *,
    owner: str = "GaussianMixture",
    on_error: str = "raise",
    printer: Printer | None = None,
) -> list[EMRun]:
    """Iterate EM on every run until each has converged or reached its ``max_iter``.

    All active runs share each pass (the data are read once per iteration whatever their
    number). ``on_error='raise'`` lets a :class:`CollapsedComponentError` out; ``'record'``
    stores it in the run and stops that run only.

    Data passes: ``max(run.n_iter)``.
    """
    n = data.n_samples
    max_iter = max((r.max_iter for r in runs), default=0)
    step = 0
    while True:
        active = [i for i, r in enumerate(runs) if r.active]
        if not active:
            return runs
        step += 1
        t0 = time.perf_counter()
        params = K.EMParams(tuple(runs[i].kernel_params(n) for i in active), data.affine)
        stats = tree_reduce(data, K.em_kernel, params, K.combine_stats, label="gmm-em")
        seconds = time.perf_counter() - t0
        for i, gp, st in zip(active, params.models, stats):
            run = runs[i]
            try:
                lower_bound = run.step(st, gp.center, n)
            except CollapsedComponentError as exc:
                if on_error == "raise":
                    raise
                logger.info("run %d stopped at iteration %d: %s", i, run.n_iter + 1, exc)
                run.error = exc
                run.finished_at = time.perf_counter()
                continue
            run.n_iter += 1
            change = lower_bound - run.lower_bound
            run.lower_bound = lower_bound
            run.lower_bounds.append(lower_bound)
            if abs(change) < run.tol:
                run.converged = True
            if not run.active:
                run.finished_at = time.perf_counter()
            if printer is not None:
                printer(i, run, change, seconds)
        best = max((runs[i].lower_bound for i in active), default=-math.inf)
        report(IterationReport(owner, "fit", step, max_iter, seconds, n,
                               {"lower_bound": best, "active_runs": float(len(active))}))
