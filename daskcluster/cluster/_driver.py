"""The one k-means driver: seeding and Lloyd iterations of one run or many, in lockstep.

A *run* is one seeding (k-means||, greedy k-means++ or random rows) followed by Lloyd
iterations, written as a small state machine (:class:`Run`) that names what it needs from the
next pass as a :class:`~daskcluster.kernels.sweep.Member`. :func:`lockstep` makes the passes:
each one serves every active run (each tile's products taken once, with all their centers
stacked: see :mod:`daskcluster.kernels.sweep`) and moves each run on by its own statistics.
``KMeans.fit`` drives one run at a time (so that a checkpoint holds one run's state);
``kmeans_sweep`` drives every run of every number of clusters at once; ``MiniBatchKMeans`` and
``GaussianMixture`` use the seeding alone (:func:`seed`). So a change to the loop is made once,
here.

Randomness comes from each run's ``entropy`` (an int drawn from ``random_state``): the
client's choices from a generator seeded with it, each chunk's from
``SeedSequence(entropy, spawn_key=(pass, chunk))``, so the result does not depend on the
scheduler, the number of workers, or which runs share the passes.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

import dask.array as da
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..data import RowData
from ..engine import rowstate, tree_reduce
from ..kernels import bounds as B
from ..kernels import kmeans as K
from ..kernels import sweep as S
from ..progress import IterationReport, report
from ._init import (
    DEFAULT_ROUNDS,
    INITS,
    first_center,
    local_trials,
    more_rounds,
    plusplus_advance,
    plusplus_draws,
    random_rows,
    recluster_candidates,
)
from ._lloyd import LloydState, lloyd_update, shift_of

logger = logging.getLogger(__name__)

#: scikit-learn's values of ``algorithm``.
ALGORITHMS = ("lloyd", "elkan")

SEEDING = ("round", "weigh", "plusplus")

#: Members whose chunks keep state between passes (:mod:`daskcluster.engine.rowstate`): Elkan's
#: bounds, and each row's nearest k-means|| candidate, so that a round measures the rows against
#: the previous round's candidates only.
STATEFUL = (S.ELKAN, S.ROUND, S.WEIGH)

#: A bounded step that computed more than this fraction of the distances row by row is followed
#: by one that computes them all from each tile's products and renews the bounds
#: (:func:`~daskcluster.kernels.assign.iter_products`: a GEMM, or for uint8 or float32 rows and at
#: most :data:`~daskcluster.kernels.rowproducts.MAX_CENTERS` centers in the pass the compiled
#: products of :mod:`~daskcluster.kernels.rowproducts`): measured on MNIST with the tiles'
#: products by GEMM, a distance computed alone costs about twice its share of a tile's product.
DENSE_FRACTION = 0.5


@dataclass
class Run:
    """One seeding + Lloyd run of ``k`` clusters, as a state machine driven by passes.

    ``phase`` is ``'round'`` (k-means|| oversampling), ``'weigh'`` (weighting its candidates),
    ``'plusplus'`` (a greedy k-means++ step), ``'lloyd'`` or ``'done'``. With ``bounded``
    (``algorithm='elkan'``) its Lloyd steps keep distance bounds beside the chunks:
    ``generation`` numbers those passes, ``previous`` holds the centers of the last one, and
    ``exact_next`` asks for a plain Lloyd step (after a bounded step emptied a cluster, whose
    relocation needs the farthest points), ``dense_next`` for a bounded step that computes every
    distance from each tile's products (after one whose bounds ruled out less than half of them).
    """

    k: int
    entropy: int
    phase: str
    key: int = 0
    ell: float = 0.0
    rounds: int = DEFAULT_ROUNDS
    bounded: bool = False
    candidates: np.ndarray | None = None
    batches: list[int] = field(default_factory=list)
    trials: np.ndarray | None = None
    n_local_trials: int = 0
    r: int = 0
    state: LloydState | None = None
    generation: int = 0
    previous: np.ndarray | None = None
    exact_next: bool = False
    dense_next: bool = False
    finished_at: float = float("nan")

    @classmethod
    def from_centers(cls, centers: np.ndarray, *, key: int = 0, bounded: bool = False,
                     state: LloydState | None = None) -> Run:
        """A run that starts at its Lloyd iterations (explicit init, or a checkpoint's state)."""
        start = state if state is not None else LloydState(centers)
        phase = "done" if start.converged is not None else "lloyd"
        return cls(len(centers), 0, phase, key=key, bounded=bounded, state=start)

    def start(self, data: RowData, weights: da.Array | None, init: str, *, oversampling_factor: float = 2.0,
              rounds: int | None = None) -> None:
        """Draw what the seeding starts from (``init``: one of :data:`INITS`): the first center
        (at most one pass), or for ``'random'`` all ``k`` rows (then the run is at Lloyd)."""
        if init == "random":
            self.state = LloydState(random_rows(data, weights, self.k, self.entropy))
            self.phase = "lloyd"
            return
        self.candidates = first_center(data, weights, self.entropy)
        if init == "k-means||":
            self.phase, self.ell, self.rounds = "round", float(oversampling_factor * self.k), rounds or DEFAULT_ROUNDS
            self.batches = [len(self.candidates)]
            return
        self.phase = "plusplus"
        self.n_local_trials = local_trials(self.k, None)
        self.trials = np.zeros((0, data.n_features), dtype=data.dtype)
        if len(self.candidates) >= self.k:
            self.state, self.phase = LloydState(self.candidates), "lloyd"

    def member(self, data: RowData) -> S.Member:
        """What this run needs from the next pass."""
        if self.phase == "round":
            assert self.candidates is not None
            return S.Member(S.ROUND, self.candidates, ell=self.ell, entropy=self.entropy, round=self.r + 1,
                            key=self.key, batches=tuple(self.batches))
        if self.phase == "weigh":
            assert self.candidates is not None
            return S.Member(S.WEIGH, self.candidates, key=self.key, batches=tuple(self.batches))
        if self.phase == "plusplus":
            assert self.candidates is not None and self.trials is not None
            n_draws = plusplus_draws(self.candidates, self.trials, self.k, self.n_local_trials)
            return S.Member(S.PLUSPLUS, self.candidates, entropy=self.entropy, round=self.r + 1, trials=self.trials,
                            n_draws=n_draws)
        assert self.state is not None
        if not self.bounded or self.exact_next:
            return S.Member(S.LLOYD, self.state.centers, n_far=self.k)
        if self.previous is None or self.dense_next:  # every distance, from each tile's products
            return S.Member(S.ELKAN, self.state.centers, n_far=self.k, key=self.key, generation=self.generation)
        storage = data.affine.to_storage_space(self.state.centers).astype(np.float64)
        moved = storage - data.affine.to_storage_space(self.previous)
        half_cc, half_sep = B.center_geometry(storage)
        return S.Member(S.ELKAN, self.state.centers, n_far=self.k, key=self.key, generation=self.generation,
                        drift=np.sqrt(np.einsum("ij,ij->i", moved, moved)), half_cc=half_cc, half_sep=half_sep)

    def advance(self, part: K.Candidates | K.LloydStats | K.PlusPlusStats, data: RowData, *, tol_abs: float,
                max_iter: int, kind: str, computed: float = 1.0) -> None:
        """Move on by the statistics ``part`` its member (of ``kind``) got from the pass, in which
        the fraction ``computed`` of its distances were computed."""
        if self.phase == "round":
            assert self.candidates is not None and isinstance(part, K.Candidates)
            self.r += 1
            if part.cost > 0 and len(part.rows):
                self.candidates = np.concatenate([self.candidates, part.rows.astype(data.dtype)])
                self.batches.append(len(self.candidates))
            if part.cost <= 0 or not more_rounds(self.r, self.rounds, len(self.candidates), self.k):
                self.phase = "weigh"
            return
        if self.phase == "plusplus":
            assert self.candidates is not None and self.trials is not None and isinstance(part, K.PlusPlusStats)
            self.r += 1
            self.candidates, self.trials, _ = plusplus_advance(self.candidates, self.trials, part, self.k, data.dtype)
            if len(self.candidates) >= self.k:
                self.state, self.phase = LloydState(self.candidates, tol_abs=tol_abs), "lloyd"
                self.candidates = self.trials = None
            return
        assert isinstance(part, K.LloydStats)
        if self.phase == "weigh":
            assert self.candidates is not None
            logger.info("k-means||: %d rounds, %d candidates", self.r, len(self.candidates))
            centers = recluster_candidates(self.candidates, part.weight_in_clusters, self.k, self.entropy, data.dtype)
            self.state, self.phase, self.candidates = LloydState(centers, tol_abs=tol_abs), "lloyd", None
            return
        assert self.state is not None
        if kind == S.ELKAN:
            self.generation += 1
            self.previous = self.state.centers
            self.dense_next = computed > DENSE_FRACTION and not self.dense_next
            if (part.weight_in_clusters == 0).any() and not np.isfinite(part.inertia):
                self.exact_next = True  # the same step again, measuring every distance
                return
        self.exact_next = False
        old = self.state if self.state.tol_abs is not None else LloydState(self.state.centers, tol_abs=tol_abs)
        self.state = lloyd_update(old, part, dtype=data.dtype)
        if self.state.converged is not None or self.state.n_iter >= max_iter:
            self.phase = "done"


@dataclass
class Step:
    """What one pass did for one run: its phase and Lloyd state before the pass, the kind of
    its member, its statistics and how many distances were computed for it."""

    run: Run
    phase: str
    before: LloydState | None
    kind: str
    part: K.Candidates | K.LloydStats | K.PlusPlusStats
    computed: int


@dataclass
class Pass:
    """One pass of :func:`lockstep`: its number, wall time and each active run's step."""

    number: int
    seconds: float
    steps: list[Step] = field(default_factory=list)


def lockstep(data: RowData, runs: list[Run], *, weights: da.Array | None, tol: float, max_iter: int,
             tol_abs: float | None = None, seed_only: bool = False, label: str = "kmeans") -> Iterator[Pass]:
    """Drive ``runs`` (already started) to the end of their Lloyd iterations (or of their
    seeding with ``seed_only``), every active run in each pass; yield after each pass.

    ``tol`` is relative, as in scikit-learn: the absolute threshold on the squared center shift
    is ``tol`` times the mean per-feature variance of the data, measured by the first pass
    (unless ``tol_abs`` is given). The bounds of bounded runs are released when the generator
    ends (or is closed). Data passes: one per yield.
    """
    # each run's state beside the chunks is found under its key
    assert len({run.key for run in runs}) == len(runs), [run.key for run in runs]
    token = rowstate.new_token(label) if any(run.bounded or run.phase == "round" for run in runs) else None
    number = 0
    try:
        while True:
            active = [run for run in runs if run.phase != "done" and not (seed_only and run.phase == "lloyd")]
            if not active:
                return
            number += 1
            t0 = time.perf_counter()
            members = tuple(run.member(data) for run in active)
            params = S.SweepParams(members, data.affine, moments=tol_abs is None)
            combine = partial(S.combine_sweep, members=tuple((m.kind, m.ell, m.n_far) for m in members))
            if token is not None and any(m.kind in STATEFUL for m in members):
                stats = rowstate.tree_reduce_with_state(data, S.sweep_state_kernel, params, combine, token=token,
                                                        weights=weights, label=label)
            else:
                stats = tree_reduce(data, S.sweep_kernel, params, combine, weights=weights, label=label)
            if tol_abs is None:
                assert stats.moments is not None
                tol_abs = float(np.mean(stats.moments.var)) * tol if tol > 0 else 0.0
            done = Pass(number, 0.0)
            for run, member, part, computed in zip(active, members, stats.parts, stats.computed):
                done.steps.append(Step(run, run.phase, run.state, member.kind, part, computed))
                with warnings.catch_warnings():
                    if len(runs) > 1:  # a sweep reports too few distinct points once, at its end
                        warnings.simplefilter("ignore", ConvergenceWarning)
                    run.advance(part, data, tol_abs=tol_abs, max_iter=max_iter, kind=member.kind,
                                computed=computed / max(1, data.n_samples * len(member.stacked)))
            done.seconds = time.perf_counter() - t0
            yield done
    finally:
        if token is not None:
            rowstate.release(token)


def report_pass(owner: str, done: Pass, data: RowData, *, max_iter: int, rounds: int) -> None:
    """One progress report per run that finished a seeding step or a Lloyd iteration in the
    pass (a bounded step that must be made again reports when it is)."""
    for step in done.steps:
        run = step.run
        if step.phase in SEEDING:
            metrics = {"candidates": float(len(run.candidates) if run.candidates is not None else run.k)}
            if isinstance(step.part, K.Candidates):
                metrics["cost"] = step.part.cost
            report(IterationReport(owner, "init", run.r, rounds if step.phase != "plusplus" else run.k, done.seconds,
                                   data.n_samples, metrics))
            continue
        if run.exact_next or run.state is None or step.before is None:
            continue
        assert isinstance(step.part, K.LloydStats)
        metrics = {"inertia": step.part.inertia, "shift": shift_of(step.before, run.state)}
        if run.bounded:
            metrics["computed"] = step.computed / max(1, data.n_samples * run.k)
        report(IterationReport(owner, "fit", run.state.n_iter, max_iter, done.seconds, data.n_samples, metrics))


def final_stats(data: RowData, weights: da.Array | None, runs: list[Run]) -> list[K.LloydStats]:
    """Every run's inertia, per-cluster weights and sums at its final centers. Data passes: 1."""
    members = tuple(S.Member(S.LLOYD, run.state.centers) for run in runs)  # type: ignore[union-attr]
    stats = tree_reduce(data, S.sweep_kernel, S.SweepParams(members, data.affine),
                        partial(S.combine_sweep, members=tuple((S.LLOYD, 0.0, 0) for _ in runs)), weights=weights,
                        label="kmeans-final")
    return stats.parts  # type: ignore[return-value]


def seed(data: RowData, weights: da.Array | None, n_clusters: int, init: str, *, entropy: int,
         oversampling_factor: float = 2.0, rounds: int | None = None, owner: str = "KMeans") -> np.ndarray:
    """The initial centers of one run (``init``: one of :data:`INITS`), shape (n_clusters,
    n_features) in the compute dtype.

    Data passes: k-means|| ``rounds + 1`` (+1 with weights); k-means++ ``n_clusters`` (+1 with
    weights); random at most 1.
    """
    run = Run(n_clusters, entropy, "")
    run.start(data, weights, init, oversampling_factor=oversampling_factor, rounds=rounds)
    for done in lockstep(data, [run], weights=weights, tol=0.0, max_iter=0, tol_abs=0.0, seed_only=True,
                         label=f"kmeans-init-{init}"):
        report_pass(owner, done, data, max_iter=0, rounds=run.rounds)
    assert run.state is not None
    return run.state.centers
