"""The passes of EM: the E-step and M-step statistics of one or several mixtures, the
log-likelihood, and the statistics of initial responsibilities (k-means labels, random)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...blas import single_threaded_blas
from ..blocks import Affine, ChunkInfo, check_finite_rows, row_sq_norms
from ..distances import nearest_center
from ..kmeans import chunk_rng
from .buffers import COMPUTE_DTYPE, Scratch
from .covariance import covariance_of
from .diag_rows import DiagRows
from .estep import (
    Estep,
    needs_squares,
    raise_non_finite,
    reference,
    segments,
    tiles,
    width_of,
)
from .params import GaussianParams
from .stats import Accumulator, MixtureStats

#: ``resp_of(start, x, a)``: one ``(resp, log_lik, entropy)`` per accumulator for the tile ``a``
#: whose float64 rows ``x`` start at row ``start`` of the block.
RespOf = Callable[[int, np.ndarray, np.ndarray], list[tuple[np.ndarray, float, float]]]


@dataclass(frozen=True)
class EMParams:
    """One EM pass for one or several mixtures (all read the block once)."""

    models: tuple[GaussianParams, ...]
    affine: Affine


def accumulate(block: np.ndarray, ref: np.ndarray, affine: Affine, accs: list[Accumulator], width: int,
               resp_of: RespOf, squares: bool) -> None:
    """Feed each accumulator, tile by tile, the responsibilities ``resp_of`` gives."""
    n_components = max(acc.nk.shape[0] for acc in accs)
    with single_threaded_blas():
        for seg_start, segment in segments(block, n_components):
            for acc in accs:
                acc.start_segment(segment.shape[0])
            for start, x, a in tiles(segment, affine, ref, width, squares):
                for acc, (resp, log_lik, entropy) in zip(accs, resp_of(seg_start + start, x, a)):
                    acc.add(a, resp, log_lik, entropy)
            for acc in accs:
                acc.end_segment(segment, affine, ref)


def em_kernel(
    block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: EMParams
) -> list[MixtureStats]:
    """E-step of each mixture on one block, and the statistics of its M-step. One read of the block."""
    d = block.shape[1]
    models = params.models
    accs = [Accumulator(m.kind, m.n_components, d, m.min_resp, m.means if m.covariance.keeps_responsibilities else None)
            for m in models]
    if block.shape[0] == 0:
        return [acc.finish(np.zeros(d), np.zeros(d)) for acc in accs]
    ref = reference(block, params.affine)
    if all(m.covariance.compiled_rows for m in models):
        return _diag_em(block, ref, params.affine, chunk, models, accs)
    if block.dtype == COMPUTE_DTYPE and params.affine.is_identity and all(m.covariance.compiled_segment(m)
                                                                          for m in models):
        return _segment_em(block, ref, chunk, models, accs)
    esteps = [Estep(gp, ref) for gp in models]

    def resp_of(start: int, x: np.ndarray, a: np.ndarray) -> list[tuple[np.ndarray, float, float]]:
        out = []
        for est in esteps:
            t = est.run(a)
            est.check(t, x, chunk, start)
            out.append((t.resp, t.log_lik, t.entropy if est.gp.with_entropy else 0.0))
        return out

    accumulate(block, ref, params.affine, accs, width_of(models), resp_of, needs_squares(models))
    return [acc.finish(ref, gp.center) for acc, gp in zip(accs, models)]


def _diag_em(block: np.ndarray, ref: np.ndarray, affine: Affine, chunk: ChunkInfo, models: tuple[GaussianParams, ...],
             accs: list[Accumulator]) -> list[MixtureStats]:
    """:func:`em_kernel` when every mixture has a diagonal type: one compiled loop over the rows
    as stored (:mod:`.diag_rows`), the block read once per mixture."""
    for acc, gp in zip(accs, models):
        bad, value = DiagRows(gp, ref, affine).add(acc, block)
        if bad >= 0:
            row = affine.apply(block[bad : bad + 1].astype(COMPUTE_DTYPE))
            raise_non_finite(0, value, row, chunk, bad)
    return [acc.finish(ref, gp.center) for acc, gp in zip(accs, models)]


def _segment_em(block: np.ndarray, ref: np.ndarray, chunk: ChunkInfo, models: tuple[GaussianParams, ...],
                accs: list[Accumulator]) -> list[MixtureStats]:
    """:func:`em_kernel` on float64 rows as stored when every mixture's type does a segment in
    one compiled call (:meth:`~.covariance.CovarianceType.em_segment`: ``'full'``)."""
    with single_threaded_blas():
        for acc, gp in zip(accs, models):
            cov = gp.covariance
            prep = cov.prepare(gp, ref)
            scratch = Scratch()
            for seg_start, segment in segments(block, gp.n_components):
                acc.start_segment(segment.shape[0])
                bad, value = cov.em_segment(acc, gp, prep, segment, ref, scratch)
                if bad >= 0:
                    raise_non_finite(0, value, segment[bad : bad + 1], chunk, seg_start + bad)
    return [acc.finish(ref, gp.center) for acc, gp in zip(accs, models)]


@dataclass
class LogLikSums:
    """Rows read and, per mixture, the sum of their ``log p(x)``."""

    n_rows: int
    sums: np.ndarray


def loglik_kernel(
    block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: EMParams
) -> LogLikSums:
    """Total log-likelihood of a block under each mixture."""
    sums = np.zeros(len(params.models))
    if block.shape[0] == 0:
        return LogLikSums(0, sums)
    ref = reference(block, params.affine)
    esteps = [Estep(gp, ref) for gp in params.models]
    with single_threaded_blas():
        for start, x, a in tiles(block, params.affine, ref, width_of(params.models), needs_squares(params.models)):
            for j, est in enumerate(esteps):
                t = est.run(a)
                est.check(t, x, chunk, start)
                sums[j] += t.log_lik
    return LogLikSums(block.shape[0], sums)


def combine_loglik(parts: list[LogLikSums]) -> LogLikSums:
    return LogLikSums(sum(p.n_rows for p in parts), np.sum([p.sums for p in parts], axis=0))


# --------------------------------------------------------------------------- initialization passes


@dataclass(frozen=True)
class HardInitParams:
    """Responsibilities one-hot at each row's nearest center (k-means initialization).

    ``kinds`` are statistics kinds (``'full'``, ``'tied'``, ``'diag'``), one result each.
    """

    centers: np.ndarray
    kinds: tuple[str, ...]
    center: np.ndarray
    affine: Affine


def _init_stats(block: np.ndarray, chunk: ChunkInfo, affine: Affine, kinds: tuple[str, ...], k: int,
                center: np.ndarray, resp_of: Callable[[int, np.ndarray], np.ndarray]) -> list[MixtureStats]:
    d = block.shape[1]
    accs = [Accumulator(kind, k, d) for kind in kinds]
    if block.shape[0] == 0:
        return [acc.finish(np.zeros(d), np.zeros(d)) for acc in accs]

    def each(start: int, x: np.ndarray, a: np.ndarray) -> list[tuple[np.ndarray, float, float]]:
        check_finite_rows(x, row_sq_norms(x), chunk, start)
        resp = resp_of(start, x)
        return [(resp, 0.0, 0.0)] * len(accs)

    ref = reference(block, affine)
    squares = any(covariance_of(kind).uses_squares for kind in kinds)
    accumulate(block, ref, affine, accs, 2 * k, each, squares)
    return [acc.finish(ref, center) for acc in accs]


def hard_init_kernel(
    block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: HardInitParams
) -> list[MixtureStats]:
    """Statistics of each kind under the hard assignment of rows to their nearest center."""
    centers = params.centers
    k = centers.shape[0]
    c_sq = row_sq_norms(centers)
    scratch = Scratch()

    def resp_of(start: int, x: np.ndarray) -> np.ndarray:
        labels = nearest_center(x, row_sq_norms(x), centers, c_sq)[0]
        resp = scratch.get("resp", x.shape[0], k)
        resp[...] = 0.0
        resp[np.arange(x.shape[0]), labels] = 1.0
        return resp

    return _init_stats(block, chunk, params.affine, params.kinds, k, params.center, resp_of)


@dataclass(frozen=True)
class RandomInitParams:
    """Responsibilities drawn uniformly at random and normalized per row ('random' init)."""

    n_components: int
    kinds: tuple[str, ...]
    center: np.ndarray
    affine: Affine
    entropy: int
    tag: int


def random_init_kernel(
    block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: RandomInitParams
) -> list[MixtureStats]:
    """Statistics of each kind under random responsibilities; the chunk's draws come from
    ``SeedSequence(entropy, spawn_key=(tag, chunk.index))``."""
    k = params.n_components
    resp_all = chunk_rng(params.entropy, params.tag, chunk.index).random((block.shape[0], k))
    resp_all /= resp_all.sum(axis=1, keepdims=True)
    return _init_stats(block, chunk, params.affine, params.kinds, k, params.center,
                       lambda start, x: resp_all[start : start + x.shape[0]])
