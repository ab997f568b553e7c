"""Quantiles of ``log p(x)`` over all rows: a one-pass summary and an exact bracket pass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..blocks import Affine, ChunkInfo
from .params import GaussianParams
from .predict import score_samples_block


@dataclass(frozen=True)
class SketchParams:
    """A quantile summary of ``log p(x)`` keeping every ``max(1, floor(eps * rows))``-th value."""

    model: GaussianParams
    affine: Affine
    eps: float


@dataclass
class ScoreSketch:
    """Sorted order statistics of ``log p(x)`` kept from each chunk, with weights.

    A chunk's sorted scores are cut into groups of ``step`` (the last one shorter); each group
    is represented by its largest value, weighted by its size. For any ``t``, the number of the
    chunk's scores ``<= t`` is at least the weight of the kept values ``<= t`` and at most
    ``step - 1`` more; ``slack`` sums ``step - 1`` over the chunks.
    """

    n_rows: int
    slack: int
    values: np.ndarray
    weights: np.ndarray


def score_sketch_kernel(
    block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: SketchParams
) -> ScoreSketch:
    """Quantile summary of the block's ``log p(x)``."""
    scores = np.sort(score_samples_block(block, params.affine, params.model, chunk))
    n = scores.shape[0]
    if n == 0:
        return ScoreSketch(0, 0, scores, np.zeros(0, dtype=np.int64))
    step = max(1, int(params.eps * n))
    ends = np.arange(step - 1, n, step)
    if ends.size == 0 or ends[-1] != n - 1:
        ends = np.append(ends, n - 1)
    weights = np.diff(ends, prepend=-1).astype(np.int64)
    return ScoreSketch(n, step - 1, scores[ends], weights)


def combine_sketches(parts: list[ScoreSketch]) -> ScoreSketch:
    values = np.concatenate([p.values for p in parts])
    order = np.argsort(values, kind="stable")
    return ScoreSketch(
        sum(p.n_rows for p in parts),
        sum(p.slack for p in parts),
        values[order],
        np.concatenate([p.weights for p in parts])[order],
    )


@dataclass(frozen=True)
class BracketParams:
    """Count the scores ``<= low`` and keep those in ``(low, high]``."""

    model: GaussianParams
    affine: Affine
    low: float
    high: float


@dataclass
class Bracket:
    n_below: int
    values: np.ndarray


def bracket_kernel(
    block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: BracketParams
) -> Bracket:
    scores = score_samples_block(block, params.affine, params.model, chunk)
    inside = (scores > params.low) & (scores <= params.high)
    return Bracket(int((scores <= params.low).sum()), scores[inside])


def combine_brackets(parts: list[Bracket]) -> Bracket:
    return Bracket(sum(p.n_below for p in parts), np.concatenate([p.values for p in parts]))

