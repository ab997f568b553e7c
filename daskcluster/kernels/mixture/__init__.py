"""Kernels of Gaussian mixtures: log-densities, responsibilities and EM sufficient statistics.

Everything here works on one block of rows and small broadcast parameters, in float64 (a
mixture's log-densities and covariances need it; :mod:`.nonzero_groups`' float32 screen only
picks the components it then takes in float64); the block keeps its storage dtype and is
converted a tile at a time. The modules:

========================  ================================================================
:mod:`.covariance`        the four covariance types, one object each: per-tile distances,
                          statistics and their merge (workers); estimates, precisions,
                          parameters counts, checks, sampling, variational updates (client)
:mod:`.buffers`           the compute dtype, ``log 2π`` and the reused scratch buffers
:mod:`.params`            :class:`GaussianParams`, a mixture ready for the E-step
:mod:`.estep`             tiles ``[x - ref, 1, (x - ref)^2]``, log-densities, log-sum-exp
:mod:`.stats`             :class:`MixtureStats`, accumulated per block, merged by Chan's update
:mod:`.passes`            the EM, log-likelihood and initialization kernels of a pass
:mod:`.diag_rows`         the EM pass of the diagonal types as one compiled loop over the rows
:mod:`.diag_nonzeros`     the EM pass of the diagonal types over rows that are mostly zeros,
                          on their non-zeros only
:mod:`.nonzero_groups`    that pass's log-densities over each row's non-zero 8-feature groups
:mod:`.whitened`          ``'full'``'s squared whitened distances of a tile, by register blocks
:mod:`.gram`              the lower triangle of ``z^T z`` of gathered rows (``'full'``'s
                          second moments), by register blocks
:mod:`.predict`           ``log p(x)``, responsibilities, labels of each row
:mod:`.quantiles`         the quantile summary of ``log p(x)`` and its exact bracket
========================  ================================================================

Every name the estimators' passes use is importable from here (``from daskcluster.kernels
import mixture as K``); the covariance types' own names (:class:`~.covariance.WishartPrior`,
:class:`~.covariance.CollapsedComponentError`, ...) from :mod:`.covariance`.
"""

from __future__ import annotations

from .buffers import COMPUTE_DTYPE, LOG_2PI, Scratch
from .covariance import COVARIANCE_TYPES, COVARIANCES, CovarianceType, covariance_of
from .estep import (
    SEGMENT_ELEMENTS,
    SLICE_ELEMENTS,
    Estep,
    TileEstep,
    raise_non_finite,
    reference,
    slice_rows,
    tiles,
)
from .params import MIN_RESP, GaussianParams, gaussian_params, log_det_cholesky
from .passes import (
    EMParams,
    HardInitParams,
    LogLikSums,
    RandomInitParams,
    combine_loglik,
    em_kernel,
    hard_init_kernel,
    loglik_kernel,
    random_init_kernel,
)
from .predict import (
    below_block,
    predict_block,
    predict_proba_block,
    score_samples_block,
)
from .quantiles import (
    Bracket,
    BracketParams,
    ScoreSketch,
    SketchParams,
    bracket_kernel,
    combine_brackets,
    combine_sketches,
    score_sketch_kernel,
)
from .stats import Accumulator, MixtureStats, combine_stats
from ...blas import single_threaded_blas

#: The statistics kind of each covariance type (``'spherical'`` accumulates ``'diag'``'s).
STATS_KIND = {name: cov.stats_kind for name, cov in COVARIANCES.items()}

__all__ = [
    "COMPUTE_DTYPE",
    "COVARIANCES",
    "COVARIANCE_TYPES",
    "LOG_2PI",
    "MIN_RESP",
    "SEGMENT_ELEMENTS",
    "SLICE_ELEMENTS",
    "STATS_KIND",
    "Accumulator",
    "Bracket",
    "BracketParams",
    "CovarianceType",
    "EMParams",
    "Estep",
    "GaussianParams",
    "HardInitParams",
    "LogLikSums",
    "MixtureStats",
    "RandomInitParams",
    "ScoreSketch",
    "Scratch",
    "SketchParams",
    "TileEstep",
    "below_block",
    "bracket_kernel",
    "combine_brackets",
    "combine_loglik",
    "combine_sketches",
    "combine_stats",
    "covariance_of",
    "em_kernel",
    "gaussian_params",
    "hard_init_kernel",
    "log_det_cholesky",
    "loglik_kernel",
    "predict_block",
    "predict_proba_block",
    "raise_non_finite",
    "random_init_kernel",
    "reference",
    "score_samples_block",
    "score_sketch_kernel",
    "single_threaded_blas",
    "slice_rows",
    "tiles",
]
