"""What every covariance type provides, and what they share.

A covariance type is one object with two sides:

**worker side** (pure NumPy on one slice of a block, no Dask): the constants of the E-step
given the block's reference point (:meth:`CovarianceType.prepare`), the squared Mahalanobis
distances of a tile's rows to every component (:meth:`~CovarianceType.mahalanobis`), the
second moments to accumulate (:meth:`~CovarianceType.accumulate`), their centring at the end
of a block (:meth:`~CovarianceType.centre`) and their merge (:meth:`~CovarianceType.merge_m2`);

**client side** (small arrays of at most ``n_components x n_features^2``): the covariances
from the statistics (:meth:`~CovarianceType.estimate`, scikit-learn's M-step), their
variational posterior (:meth:`~CovarianceType.wishart`, scikit-learn's Bayesian M-step), the
Cholesky factors of the precisions, the number of parameters, the checks of
``precisions_init`` and ``covariance_prior``, and sampling.

A **tile** is a slice of a block read as ``a = [x - ref, 1, (x - ref)^2]``, in one buffer of
shape ``(rows, 2 d + 1)`` (``(rows, d + 1)`` when no type of the pass uses the squares), so
that a type needing ``x^2`` (``'diag'``) gets it computed once per tile, and a product
against ``a`` yields ``sum r``, ``sum r x`` and ``sum r x^2`` at once.

Statistics of a type are those of its :attr:`~CovarianceType.stats_kind` (``'spherical'``
accumulates ``'diag'``'s: its variances are means of the diagonal ones).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from scipy.linalg.lapack import dtrtri
from scipy.special import gammaln

from ....errors import ConvergenceError, InvalidDataError, InvalidParameterError
from ...blocks import Affine
from ..buffers import Scratch

if TYPE_CHECKING:
    from ..params import GaussianParams
    from ..stats import Accumulator

COLLAPSED_MESSAGE = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar, or scale the input data."
)


class CollapsedComponentError(ConvergenceError, InvalidDataError):
    """A component's covariance is not positive definite (a collapsed or singleton component).

    Also a ``ValueError`` (as scikit-learn raises) and an ``ArithmeticError``.
    """


def collapsed(detail: str) -> CollapsedComponentError:
    return CollapsedComponentError(f"{COLLAPSED_MESSAGE} ({detail})")


@dataclass(frozen=True)
class WishartPrior:
    """The priors of scikit-learn's ``BayesianGaussianMixture`` on the means and precisions.

    Attributes
    ----------
    mean_precision : float
        ``beta_0`` (``mean_precision_prior_``).
    mean : ndarray of shape (n_features,)
        ``m_0`` (``mean_prior_``).
    degrees_of_freedom : float
        ``nu_0`` (``degrees_of_freedom_prior_``).
    covariance : ndarray or float
        ``W_0^-1`` (``covariance_prior_``): (d, d) full and tied, (d,) diag, a float spherical.
    """

    mean_precision: float
    mean: np.ndarray
    degrees_of_freedom: float
    covariance: Any


def log_wishart_norm(dof: np.ndarray, log_det_chol: np.ndarray, n_features: int) -> np.ndarray:
    """scikit-learn's ``_log_wishart_norm`` (without the ``log pi`` term), per component."""
    dof = np.asarray(dof, dtype=np.float64)
    j = np.arange(n_features)[:, None]
    return np.asarray(-(dof * log_det_chol + dof * n_features * 0.5 * np.log(2.0)
                        + gammaln(0.5 * (np.atleast_1d(dof) - j)).sum(axis=0)))


def chol_inv_t(cov: np.ndarray, what: Callable[[int], str]) -> np.ndarray:
    """``inv(cholesky(cov)).T`` of one (d, d) or a stack of (K, d, d) covariances."""
    if not np.isfinite(cov).all():
        bad = int(np.argwhere(~np.isfinite(cov.reshape(-1, cov.shape[-1] ** 2)).any(axis=1))[0, 0])
        raise collapsed(f"{what(bad)}: the covariance is not finite")
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        stack = cov.reshape(-1, *cov.shape[-2:])
        bad = next(j for j in range(stack.shape[0]) if not is_pd(stack[j]))
        raise collapsed(f"{what(bad)}: the covariance is not positive definite") from None
    # triangular inverses (LAPACK dtrtri): the factors are exactly upper triangular, as
    # scikit-learn's triangular solves give them (a general solve leaves rounding below the
    # diagonal, and the E-step of 'full' multiplies triangles). Not scipy's solve_triangular:
    # its dtrsm wakes OpenBLAS's threads, milliseconds per call on a loaded machine.
    stack = chol.reshape(-1, *cov.shape[-2:])
    inv = np.stack([dtrtri(c, lower=1)[0] for c in stack]).reshape(cov.shape)
    return np.swapaxes(inv, -1, -2)


def is_pd(cov: np.ndarray) -> bool:
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return False
    return True


def is_spd(p: np.ndarray) -> bool:
    """Symmetric and positive definite (scikit-learn's ``_check_precision_matrix``)."""
    return bool(np.allclose(p, p.T) and (np.linalg.eigvalsh(p) > 0).all())


def upper_chol(precision: np.ndarray) -> np.ndarray:
    """``U`` upper-triangular with ``precision = U U^T``."""
    # the lower factor of the reversed matrix, reversed back
    return np.linalg.cholesky(precision[::-1, ::-1])[::-1, ::-1].copy()


def add_reg(cov: np.ndarray, reg_covar: float) -> np.ndarray:
    """``reg_covar`` added to the diagonal of one or a stack of matrices, in place."""
    idx = np.arange(cov.shape[-1])
    cov[..., idx, idx] += reg_covar
    return cov


def positive_chol(cov: np.ndarray) -> np.ndarray:
    """``1 / sqrt(variances)``; raises when a variance is not positive and finite."""
    bad = ~(np.isfinite(cov) & (cov > 0))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        at = f" at component {where[0]}" if where else ""
        raise collapsed(f"variance {float(np.asarray(cov)[where])!r}{at}")
    return np.asarray(1.0 / np.sqrt(cov))


class CovarianceType:
    """One covariance type of a Gaussian mixture: worker and client sides (see the module notes).

    Subclasses set :attr:`name`, :attr:`stats_kind`, :attr:`uses_squares` and implement the
    methods that raise :class:`NotImplementedError` here. Instances hold no state; the registry
    :data:`daskcluster.kernels.mixture.covariance.COVARIANCES` keeps one of each.
    """

    #: ``'full'``, ``'tied'``, ``'diag'`` or ``'spherical'`` (scikit-learn's ``covariance_type``).
    name: ClassVar[str]
    #: The type whose statistics this one accumulates.
    stats_kind: ClassVar[str]
    #: Whether the tiles of a pass must carry ``(x - ref)^2``.
    uses_squares: ClassVar[bool] = False
    #: Whether the statistics keep a segment's responsibilities (``'full'``'s second moments).
    keeps_responsibilities: ClassVar[bool] = False
    #: Whether an EM pass runs as one compiled loop over the rows (:mod:`..diag_rows`: the
    #: diagonal types, whose statistics are ``'diag'``'s).
    compiled_rows: ClassVar[bool] = False
    #: How ``precisions_init`` must be, for the error message.
    precisions_requirement: ClassVar[str] = "symmetric, positive-definite"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __reduce__(self) -> Any:
        # one instance per type, also after a trip to a worker
        from . import covariance_of

        return covariance_of, (self.name,)

    # ------------------------------------------------------------------ worker: E-step

    def log_det_cholesky(self, prec_chol: np.ndarray, n_features: int) -> np.ndarray:
        """``log det`` of each component's precision Cholesky factor, (n_components,) (a
        scalar for ``'tied'``)."""
        raise NotImplementedError

    def prepare(self, gp: GaussianParams, ref: np.ndarray) -> Any:
        """The constants of :meth:`mahalanobis` for a block read around ``ref``."""
        raise NotImplementedError

    def mahalanobis(self, a: np.ndarray, d: int, prep: Any, gp: GaussianParams, ws: Scratch) -> np.ndarray:
        """Squared Mahalanobis distances of the tile's rows to each component, (rows, K), in a
        scratch buffer. ``a`` is the tile ``[x - ref, 1, (x - ref)^2]``, ``d`` the features."""
        raise NotImplementedError

    def work_width(self, n_components: int, n_features: int) -> int:
        """Floats of temporary work per row of a tile."""
        return 2 * n_components

    def compiled_segment(self, gp: GaussianParams) -> bool:
        """Whether an EM pass over float64 rows as stored runs :meth:`em_segment` (one compiled
        call per segment of the block: ``'full'``) instead of the tiles."""
        return False

    def em_segment(self, acc: Accumulator, gp: GaussianParams, prep: Any, segment: np.ndarray,
                   ref: np.ndarray, scratch: Scratch) -> tuple[int, float]:
        """E-step and statistics of a segment of float64 rows, added to ``acc``; returns the first
        row whose ``log p(x)`` is not finite (-1 if none) and that value."""
        raise NotImplementedError

    # ------------------------------------------------------------------ worker: statistics

    def m2_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        """Shape of the second moments."""
        raise NotImplementedError

    def accumulate(self, acc: Accumulator, a: np.ndarray, d: int, resp: np.ndarray) -> None:
        """Add a tile's ``sum r``, ``sum r (x - ref)`` and raw second moments to ``acc``."""
        g = resp.T @ a[:, : d + 1]  # [sum r (x - ref), sum r] in one product
        acc.s1 += g[:, :d]
        acc.nk += g[:, d]

    def end_segment(self, acc: Accumulator, segment: np.ndarray, affine: Affine, ref: np.ndarray) -> None:
        """After the tiles of a segment of the block (``'full'``: the second moments)."""

    def centre(self, s2: np.ndarray, s1: np.ndarray, n: np.ndarray, m: np.ndarray,
               offset: np.ndarray) -> np.ndarray:
        """Centred second moments from the raw ones ``s2`` (around the reference, or for
        ``'full'`` around each component's ``offset`` from it), the sums ``s1``, the counts
        ``n`` and the means ``m`` (both relative to the reference)."""
        raise NotImplementedError

    def merge_m2(self, a: np.ndarray, b: np.ndarray, delta: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Chan's merge of two second moments: ``delta`` the difference of the means, ``c``
        ``n_a n_b / n`` per component."""
        raise NotImplementedError

    def pooled_m2(self, nk: np.ndarray, means: np.ndarray, m2: np.ndarray) -> np.ndarray:
        """Second moment of all the rows around their mean, from per-component statistics of
        responsibilities that sum to 1 per row: (d, d) for full and tied, (d,) for diag."""
        raise NotImplementedError

    # ------------------------------------------------------------------ client: estimates

    def estimate(self, n: np.ndarray, nk: np.ndarray, mean: np.ndarray, means: np.ndarray, m2: np.ndarray,
                 reg_covar: float) -> np.ndarray:
        """scikit-learn's covariances from the statistics: ``n`` the responsibility mass,
        ``nk = n + 10 eps``, ``mean`` the weighted means, ``means = n * mean / nk``, ``m2`` the
        centred second moments (around ``mean``)."""
        raise NotImplementedError

    def precision_cholesky(self, covariances: np.ndarray) -> np.ndarray:
        """Cholesky factors of the precisions (scikit-learn's ``precisions_cholesky_``).

        Raises
        ------
        CollapsedComponentError
            A covariance is not positive definite.
        """
        raise NotImplementedError

    def precisions(self, prec_chol: np.ndarray) -> np.ndarray:
        """Precisions from their Cholesky factors."""
        raise NotImplementedError

    def cholesky_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        """Cholesky factors from given precisions (``precisions_init``)."""
        raise NotImplementedError

    def covariances_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        """Covariances of given precisions (only for a model never fitted: ``max_iter=0``)."""
        raise NotImplementedError

    def n_covariance_parameters(self, n_components: int, n_features: int) -> float:
        raise NotImplementedError

    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Free parameters of a mixture: covariances, means and ``n_components - 1`` weights."""
        cov = self.n_covariance_parameters(n_components, n_features)
        return int(cov + n_components * n_features + n_components - 1)

    # ------------------------------------------------------------------ client: user input

    def precisions_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        raise NotImplementedError

    def precisions_valid(self, precisions: np.ndarray) -> bool:
        raise NotImplementedError

    def check_precisions(self, value: object, n_components: int, n_features: int, owner: str) -> np.ndarray:
        """Validate ``precisions_init``: its shape, finiteness, and positive definiteness
        (positivity for ``'diag'``/``'spherical'``)."""
        p = np.asarray(value, dtype=np.float64)
        expected = self.precisions_shape(n_components, n_features)
        if p.shape != expected:
            raise InvalidParameterError(
                f"The 'precisions_init' parameter of {owner} must have shape {expected} for "
                f"covariance_type={self.name!r}. Got shape {p.shape} instead."
            )
        if not np.isfinite(p).all():
            raise InvalidParameterError(f"The 'precisions_init' parameter of {owner} contains NaN or infinity.")
        if not self.precisions_valid(p):
            raise InvalidParameterError(
                f"The 'precisions_init' parameter of {owner} must be {self.precisions_requirement} for "
                f"covariance_type={self.name!r}."
            )
        return p

    def sample(self, rng: np.random.RandomState, means: np.ndarray, covariances: np.ndarray,
               counts: np.ndarray) -> list[np.ndarray]:
        """``counts[k]`` draws of each component ``k``, as scikit-learn draws them."""
        raise NotImplementedError

    # ------------------------------------------------------------------ client: variational Bayes

    def wishart(self, nk: np.ndarray, xk: np.ndarray, sk: np.ndarray, prior: WishartPrior,
                mean_precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """scikit-learn's variational update of the precisions' Wishart posterior.

        Parameters
        ----------
        nk, xk, sk
            ``nk`` (n_components,), means (n_components, n_features) and covariances of the
            type, as :meth:`estimate` gives them (``reg_covar`` included).
        prior : WishartPrior
        mean_precision : ndarray of shape (n_components,)
            ``beta_0 + nk``.

        Returns
        -------
        degrees_of_freedom : ndarray of shape (n_components,) (a float for ``'tied'``)
        covariances : ndarray
            Normalized by the degrees of freedom, as scikit-learn's ``covariances_``.
        """
        raise NotImplementedError

    def log_wishart_total(self, dof: np.ndarray, log_det_chol: np.ndarray, n_features: int,
                          n_components: int) -> float:
        """``sum_k log B(W_k, nu_k)`` of the lower bound (``'tied'``: ``K`` times its one term)."""
        return float(np.sum(log_wishart_norm(dof, log_det_chol, n_features)))

    def default_covariance_prior(self, covariance: np.ndarray) -> Any:
        """scikit-learn's default ``covariance_prior_`` from the data's covariance (``ddof=1``):
        (d, d) for full and tied, its diagonal (d,) for diag and spherical."""
        raise NotImplementedError

    def check_covariance_prior(self, value: Any, n_features: int, owner: str) -> Any:
        """Validate a user's ``covariance_prior`` for this type."""
        raise NotImplementedError

    def full_prior_covariance(self) -> bool:
        """Whether the default prior needs the full (d, d) covariance of the data."""
        return self.stats_kind in ("full", "tied")
