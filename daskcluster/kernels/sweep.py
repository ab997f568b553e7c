"""Kernels that serve many k-means models in one pass: one stacked product, then per-model work.

A sweep over the number of clusters runs every model's seeding and Lloyd iterations in
lockstep. In each pass, every tile of rows has its squared norms computed once and is
multiplied once by the centers of *all* models still running, stacked into one matrix (a GEMM
of the tile cast to the centers' dtype, or, for few centers and uint8 or float32 rows, the
compiled products of :mod:`daskcluster.kernels.rowproducts` on the stored rows:
:func:`daskcluster.kernels.assign.iter_products`); a Lloyd step alone in its pass takes one
compiled loop instead (:func:`daskcluster.kernels.assign.assign_and_sum`: the products, arg-min
and sums of each row while it is in cache, from 8-bit integer products on CPUs with AVX-512
VNNI, :mod:`daskcluster.kernels.byteproducts`). Each
model then takes its own column segment of that product (its arg-min and minimum, by the
compiled loops of :mod:`daskcluster.kernels.assign`), and does what a single model's kernel in
:mod:`daskcluster.kernels.kmeans` does with it. The per-model
statistics are the same objects, combined by the same functions, so the client-side code of a
single fit applies unchanged.

The other kernels here compute, for many labelings of the rows at once (nearest center of a
k-means model, or most probable component of a mixture), the per-label counts and sums and
then the dispersion around the per-label means: what the Calinski-Harabasz and
Davies-Bouldin indices need, for every model of a sweep in two passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from . import bounds as B
from . import kmeans as K
from .blocks import (
    Affine,
    ChunkInfo,
    iter_compute_slices,
    row_sq_norms,
    slice_rows,
)
from .compiled import compiled

if TYPE_CHECKING:  # the real modules, for type checkers
    from . import assign as A
    from . import elkan as E
    from . import mixture as M
    from . import sparse as S
else:
    A = compiled("assign")
    E = compiled("elkan")
    M = compiled("mixture")
    S = compiled("sparse")


#: What a member of a sweep pass computes: a k-means|| round, a Lloyd step (or an assignment),
#: a greedy k-means++ step, a Lloyd step that skips the distances its bounds rule out, the
#: weights of k-means|| candidates (the weight of the rows nearest each).
ROUND, LLOYD, PLUSPLUS, ELKAN, WEIGH = "round", "lloyd", "plusplus", "elkan", "weigh"


@dataclass(frozen=True)
class Member:
    """One model's part of a sweep pass.

    kind : ``'round'`` (k-means|| oversampling: :class:`~daskcluster.kernels.kmeans.Candidates`),
        ``'plusplus'`` (a greedy k-means++ step: :class:`~daskcluster.kernels.kmeans.PlusPlusStats`)
        ``'lloyd'`` (a Lloyd step: :class:`~daskcluster.kernels.kmeans.LloydStats`; with
        ``n_far=0`` an assignment pass giving counts, sums and inertia), or ``'elkan'`` (the
        same Lloyd step computing only the distances that the bounds kept in the chunk's
        state do not rule out, see :mod:`daskcluster.kernels.bounds`; its inertia is NaN and
        its far points empty unless every distance was computed), or ``'weigh'`` (the weight of
        the rows nearest each of k-means||'s candidates: a
        :class:`~daskcluster.kernels.kmeans.LloydStats` of weights and inertia, no sums).
    centers : (k, n_features), compute dtype.
    ell, entropy, round : k-means|| and k-means++, as
        :class:`~daskcluster.kernels.kmeans.ParallelRoundParams` (``round`` is the k-means++ step).
    n_far : Lloyd only, the farthest points to keep for relocating empty clusters.
    trials, n_draws : k-means++ only, as :class:`~daskcluster.kernels.kmeans.PlusPlusParams`.
    batches : ``'round'`` and ``'weigh'``: where each batch of candidates ends in ``centers``
        (cumulative, increasing, the last ``len(centers)``; one batch when empty). A batch is
        what one round drew. Each row's nearest candidate is found batch by batch, and the
        chunk keeps it between passes (:class:`SeedState`, under ``(ROUND, key)``): a round then
        computes the distances to the batch the previous round drew only, and finds the same
        values as without the state.
    key, generation, drift, half_cc, half_sep : Elkan (``key``: also k-means||): the member's key in the chunk's
        state, the number of the pass in its run, the (k,) storage-space distance each center
        moved since the previous pass (None: compute every distance), and half the distances
        between the centers, (k, k) and to each one's nearest other, (k,)
        (:func:`~daskcluster.kernels.bounds.center_geometry`, computed once on the client).
    """

    kind: str
    centers: np.ndarray
    ell: float = 0.0
    entropy: int = 0
    round: int = 0
    n_far: int = 0
    trials: np.ndarray | None = None
    n_draws: int = 0
    key: int = 0
    generation: int = 0
    drift: np.ndarray | None = None
    half_cc: np.ndarray | None = None
    half_sep: np.ndarray | None = None
    batches: tuple[int, ...] = ()

    @property
    def stacked(self) -> np.ndarray:
        """The rows this member puts in the stacked product: its centers, then its trials."""
        if self.kind == PLUSPLUS and self.trials is not None and len(self.trials):
            return np.concatenate([self.centers, self.trials])
        return self.centers


@dataclass(frozen=True)
class SweepParams:
    """The members of one pass, the scaling, and whether to return the data's moments."""

    members: tuple[Member, ...]
    affine: Affine
    moments: bool = False


@dataclass
class SweepStats:
    """One statistics object per member (in member order), the moments if asked, and per member
    the number of point-to-center distances computed (``n_rows * k`` unless bounds skipped some)."""

    parts: list[K.Candidates | K.LloydStats | K.PlusPlusStats]
    moments: K.Moments | None = None
    computed: list[int] = field(default_factory=list)


@dataclass
class SeedState:
    """What a chunk keeps of a k-means|| seeding between its passes: the candidates ``[0, covered)``
    its rows were measured against, and each row's nearest of them (the first of equals) and
    squared distance to it (storage space, clipped at 0). 12 bytes a row."""

    covered: int
    labels: np.ndarray  # (n_rows,) int32
    min_sq: np.ndarray  # (n_rows,) float64


#: A chunk's state between passes: each Elkan member's bounds under its key, each k-means||
#: member's :class:`SeedState` under ``(ROUND, key)``.
ChunkState = dict[Any, "B.BoundsState | SeedState"]


def _stack(members: tuple[Member, ...], affine: Affine) -> tuple[A.CenterTable, list[slice]]:
    """All members' centers in storage space, stacked into one table, and each one's segment."""
    centers = [affine.to_storage_space(m.stacked) for m in members]
    bounds = np.cumsum([0] + [len(c) for c in centers])
    return A.CenterTable.of(np.concatenate(centers)), [slice(a, b) for a, b in pairwise(bounds)]


def _stacked_table(params: SweepParams, which: tuple[int, ...]) -> tuple[A.CenterTable, list[slice]]:
    """:func:`_stack` of the members ``which``, made once per pass in each process and kept on
    the pass's parameters, which every chunk's task of the pass shares (for wide data the
    transposed table costs as much as a tile's product: 10 ms at 20 x 50,000)."""
    cache = params.__dict__.setdefault("_tables", {})
    if which not in cache:
        cache[which] = _stack(tuple(params.members[j] for j in which), params.affine)
    return cache[which]  # type: ignore[no-any-return]


def sweep_kernel(block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo,
                 params: SweepParams) -> SweepStats:
    """Every member's statistics over one block (no Elkan member), from one stacked product per
    tile. One pass."""
    return sweep_state_kernel(block, sample_weight, chunk, params, None)[0]


def sweep_state_kernel(block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo,
                       params: SweepParams, state: ChunkState | None) -> tuple[SweepStats, ChunkState]:
    """Every member's statistics over one block, and the chunk's new state. One pass.

    The members that need distances share one stacked product per tile (a GEMM or the compiled
    products, :func:`~daskcluster.kernels.assign.iter_products`). An Elkan member whose bounds
    the chunk kept from its previous pass (``state``) computes only the distances they do not
    rule out, row by row; one without them joins the stacked product and makes them.

    Memory: one tile of rows, its (tile_rows, sum of k) product, per member one float64 and
    one int64 per row of the block (minimum distances and labels), an Elkan member's
    bounds (16 + 4 k bytes a row: :class:`~daskcluster.kernels.bounds.BoundsState`), and a
    k-means|| member's nearest candidates (12 bytes a row: :class:`SeedState`).
    """
    affine = params.affine
    members = params.members
    n, d = block.shape
    state = {} if state is None else dict(state)
    bounded = {j: state.get(m.key) for j, m in enumerate(members) if m.kind == ELKAN}
    incremental = [j for j, st in bounded.items() if _usable(st, members[j], n, d, params.moments, affine)]
    seeding = [j for j, m in enumerate(members) if m.kind in (ROUND, WEIGH)]
    stacked = [j for j in range(len(members)) if j not in incremental and j not in seeding]
    w, weighted = A.weights_arg(sample_weight)
    parts: dict[int, K.Candidates | K.LloydStats | K.PlusPlusStats] = {}
    computed = [n * len(m.stacked) for m in members]
    seeds = {(ROUND, members[j].key) for j in seeding}
    for key in [key for key in state if isinstance(key, tuple) and key not in seeds]:
        del state[key]  # a seeding that moved on to its Lloyd steps
    for j in seeding:
        m = members[j]
        kept = state.get((ROUND, m.key))
        kept = kept if isinstance(kept, SeedState) else None
        covered = 0 if kept is None else kept.covered
        seed = _seed_nearest(block, chunk, params, j, kept)
        computed[j] = n * (len(m.centers) - (covered if seed is kept else 0))
        state[(ROUND, m.key)] = seed
        parts[j] = _seed_part(block, sample_weight, chunk, m, seed, affine)
    for j in incremental:
        m = members[j]
        st = state[m.key]
        storage = affine.to_storage_space(m.centers)
        assert m.drift is not None and m.half_cc is not None and m.half_sep is not None
        deferred = np.empty(n, dtype=np.int64)
        rows = block if S.is_sparse(block) else np.asarray(block)
        c64 = storage.astype(np.float64)
        intervals = E.IntervalCenters(c64).args() if rows.dtype in _INTERVAL_DTYPES else E.IntervalCenters.off()
        walks = (E.WalkCenters(storage).args() if not weighted and E.WalkCenters.serve(rows, len(c64), storage.dtype)
                 else E.WalkCenters.off())
        done, n_deferred = E.elkan_rows(_rows_arg(rows, storage), c64, m.half_cc, m.half_sep,
                                        np.asarray(m.drift) * (1 + 1e-12), st.labels, st.upper, st.lower, w, weighted,
                                        st.sums, st.wic, B.dense_threshold(len(m.centers)), deferred, *intervals,
                                        *walks)
        computed[j] = done + n_deferred * len(m.centers)
        if n_deferred:
            _refresh(rows, deferred[:n_deferred], storage, st, chunk, w, weighted)
        st.generation = m.generation
        st.made_with(storage)
        parts[j] = B.lloyd_stats(st.sums, st.wic, float("nan"), K.FarPoints.empty(d, m.centers.dtype), affine)
    if stacked:
        fresh = _stacked_members(block, sample_weight, chunk, params, stacked, parts)
        state.update({members[j].key: st for j, st in fresh.items()})
    moments = _moments(block, members[0].centers.dtype, affine) if params.moments else None
    return SweepStats([parts[j] for j in range(len(members))], moments, computed), state


#: Storage dtypes whose open distances the bounds take first as float32 intervals
#: (:class:`~daskcluster.kernels.elkan.IntervalCenters`); other rows, and CSR rows, in float64.
_INTERVAL_DTYPES = (np.dtype(np.uint8), np.dtype(np.float32))


def _rows_arg(x: Any, centers: np.ndarray | None = None) -> Any:
    """Rows as the bounds' compiled loops take them: a dense array as is, CSR rows (a block or a
    tile) as ``(data, indices, indptr, ‖c‖²)`` (see :func:`~daskcluster.kernels.elkan.row_distance`;
    the norms only where distances are computed)."""
    if isinstance(x, S.CsrTile) or S.is_sparse(x):
        csr = x if isinstance(x, S.CsrTile) else S.as_csr(x)
        c64 = np.zeros((0, 0)) if centers is None else centers.astype(np.float64)
        return csr.data, csr.indices, csr.indptr, np.einsum("ij,ij->i", c64, c64)
    return x


def _batches(m: Member) -> tuple[int, ...]:
    """Where the member's batches of candidates end (one batch when it gives none)."""
    return m.batches or (len(m.centers),)


def _seed_nearest(block: Any, chunk: ChunkInfo, params: SweepParams, j: int,
                  kept: SeedState | None) -> SeedState:
    """Each row's nearest candidate of k-means|| member ``j`` and squared distance to it, from
    ``kept`` (what the chunk's previous pass over it found, if it covers a prefix of the
    member's batches) and the batches after it, one batch at a time: whether ``kept`` was
    found or not, every batch is measured by the same computation, so the result is the same.
    One read of the block (none if ``kept`` covers every batch)."""
    m = params.members[j]
    ends = _batches(m)
    n = block.shape[0]
    if kept is not None and kept.covered in ends and kept.labels.shape[0] == n:
        seed = kept
    else:
        seed = SeedState(0, np.zeros(n, dtype=np.int32), np.full(n, np.inf))
    cache = params.__dict__.setdefault("_tables", {})
    start = 0
    for end in ends:
        if end > seed.covered:
            if (ROUND, j, end) not in cache:
                cache[(ROUND, j, end)] = A.CenterTable.of(params.affine.to_storage_space(m.centers[start:end]))
            labels, min_sq = A.nearest(block, cache[(ROUND, j, end)], chunk)
            np.maximum(min_sq, 0.0, out=min_sq)
            nearer = min_sq < seed.min_sq  # strictly: the first of equals stays, as in one arg-min
            seed.min_sq[nearer] = min_sq[nearer]
            seed.labels[nearer] = labels[nearer] + start
            seed.covered = end
        start = end
    return seed


def _seed_part(block: Any, sample_weight: np.ndarray | None, chunk: ChunkInfo, m: Member, seed: SeedState,
               affine: Affine) -> K.Candidates | K.LloydStats:
    """A k-means|| member's statistics from its rows' nearest candidates: a round's draw, or the
    candidates' weights (in row order, as a Lloyd step adds them) and the inertia."""
    sq = seed.min_sq * affine.sq_scale
    dtype = m.centers.dtype
    if m.kind == ROUND:
        return K.draw_candidates(block, sample_weight, chunk, sq, m.ell, m.entropy, m.round, dtype, affine)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    weight = np.bincount(seed.labels, weights=w, minlength=len(m.centers)).astype(np.float64)
    inertia = float(sq.sum()) if w is None else float(sq @ w)
    k, d = m.centers.shape
    return K.LloydStats(weight, np.zeros((k, 0)), inertia, K.FarPoints.empty(d, dtype), None)


def _moments(block: Any, dtype: np.dtype, affine: Affine) -> K.Moments:
    """The block's per-feature moments (dense or sparse), for scikit-learn's relative ``tol``."""
    if S.is_sparse(block):
        return K.Moments(*S.block_moments(block, affine))
    return K.block_moments(block, dtype, affine)


def _refresh(block: np.ndarray, rows: np.ndarray, centers: np.ndarray, st: B.BoundsState, chunk: ChunkInfo,
             w: np.ndarray, weighted: bool) -> None:
    """The rows ``rows`` of the block, gathered into tiles: every distance from the tiles'
    products (:func:`~daskcluster.kernels.assign.iter_products`), new labels
    and bounds (see :func:`~daskcluster.kernels.elkan.refresh_rows`); for a uint8 block that
    takes the walks, each row's distances by one walk, in place
    (:func:`~daskcluster.kernels.elkan.refresh_walks`)."""
    if E.WalkCenters.serve(block, len(centers), centers.dtype, deferred=True):
        E.refresh_walks(block, rows, *E.WalkCenters(centers).args(), st.labels, st.upper, st.lower, w, weighted,
                        st.sums, st.wic)
        return
    table = A.CenterTable.of(centers)
    d = block.shape[1]
    csq_max = float(table.sq_norms.max(initial=0.0))
    size = A.block_tile_rows(block, table.n_centers, table.dtype.itemsize)
    for t in range(0, len(rows), size):
        idx = rows[t : t + size]
        for _, _, x, x_sq, g in A.iter_products(block[idx], table.minus2_t, chunk, size):
            slack = B.slack(d, table.dtype, float(x_sq.max()), csq_max)
            E.refresh_rows(_rows_arg(x), idx, g, table.sq_norms, x_sq, slack, st.labels, st.upper, st.lower, w, weighted,
                           st.sums, st.wic)


def _usable(st: B.BoundsState | None, m: Member, n: int, d: int, moments: bool, affine: Affine) -> bool:
    """Whether an Elkan member's kept bounds were made by its previous pass over this chunk and
    still certify the rows they skip (:meth:`~daskcluster.kernels.bounds.BoundsState.certifies`)."""
    return (st is not None and not moments and m.drift is not None and m.half_cc is not None
            and st.generation == m.generation - 1
            and st.labels.shape[0] == n and st.sums.shape == (len(m.centers), d)
            and st.certifies(affine.to_storage_space(m.centers)))


def _stacked_members(block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: SweepParams,
                     which: list[int], parts: dict[int, K.Candidates | K.LloydStats | K.PlusPlusStats]) -> dict[
                         int, B.BoundsState]:
    """The members ``which`` over the block from one stacked product per tile: their statistics go
    to ``parts``; returns the new bounds of the Elkan members among them."""
    affine = params.affine
    members = [params.members[j] for j in which]
    n, d = block.shape
    table, segments = _stacked_table(params, tuple(which))
    dtype = table.dtype
    c_sq = table.sq_norms
    min_sq = [np.empty(n) for _ in members]
    labels = [np.empty(n, dtype=np.int64) for _ in members]
    pp_dist = {j: np.empty((n, max(1, len(m.stacked) - len(m.centers)))) for j, m in enumerate(members)
               if m.kind == PLUSPLUS}
    summed = [j for j, m in enumerate(members) if m.kind in (LLOYD, ELKAN)]
    sums = {j: np.zeros((len(members[j].centers), d)) for j in summed}
    wic = {j: np.zeros(len(members[j].centers)) for j in summed}
    elkan = {j: (np.empty(n), np.empty((n, len(m.centers)), dtype=np.float32)) for j, m in enumerate(members)
             if m.kind == ELKAN}
    w, weighted = A.weights_arg(sample_weight)
    rows = A.block_tile_rows(block, table.n_centers, dtype.itemsize)
    alone = len(members) == 1 and members[0].kind == LLOYD  # one read for the whole step
    exact = None
    if alone:
        exact = A.assign_and_sum(block, table, chunk, labels[0], min_sq[0], w, weighted, sums[0], wic[0], rows)
    for start, stop, x, x_sq, g in () if alone else A.iter_products(block, table.minus2_t, chunk, rows):
        xsq_max = float(x_sq.max())
        for j, seg in enumerate(segments):
            part = g[:, seg]
            m = members[j]
            if m.kind == PLUSPLUS:
                pp_dist[j][start:stop] = _plusplus_distances(part, c_sq[seg], len(m.centers), x_sq)
                continue
            lab, sq = labels[j][start:stop], min_sq[j][start:stop]
            if m.kind == ELKAN:
                upper, lower = elkan[j]
                slack = B.slack(d, dtype, xsq_max, float(c_sq[seg].max()))
                E.init_bounds(part, c_sq[seg], x_sq, slack, lab, sq, upper[start:stop], lower[start:stop])
            else:
                A.nearest_in_product(part, c_sq[seg], x_sq, lab, sq)
            if not np.isfinite(sq).all():
                A.check_finite(x, sq, chunk, start)
            np.maximum(sq, 0.0, out=sq)
            if j in sums:
                A.add_tile_rows(x, lab, w[start:stop] if weighted else w, weighted, sums[j], wic[j])
    fresh: dict[int, B.BoundsState] = {}
    for j, m in enumerate(members):
        if m.kind == PLUSPLUS:
            dist = pp_dist[j]
            dist *= affine.sq_scale
            parts[which[j]] = K.plusplus_part(block, sample_weight, chunk, dist, m.n_draws, m.entropy, m.round,
                                              dtype, affine)
            continue
        sq = min_sq[j] * affine.sq_scale
        if exact is not None:
            inertia = exact * affine.sq_scale
        else:
            inertia = float(sq.sum()) if not weighted else float(sq @ w)
        far = K.far_points(block, sample_weight, chunk, sq, labels[j], m.n_far, dtype, affine)
        parts[which[j]] = B.lloyd_stats(sums[j], wic[j], inertia, far, affine)
        if m.kind == ELKAN:
            upper, lower = elkan[j]
            fresh[j] = B.BoundsState(m.generation, labels[j], upper, lower, sums[j], wic[j],
                                     float(c_sq[segments[j]].max()))
    return {which[j]: st for j, st in fresh.items()}


def _plusplus_distances(part: np.ndarray, c_sq: np.ndarray, n_centers: int, x_sq: np.ndarray) -> np.ndarray:
    """A k-means++ member's (rows, h) squared distances from its segment of the product: the
    nearest chosen center's, or a trial's when nearer, as
    :func:`~daskcluster.kernels.kmeans.plusplus_kernel` computes them."""
    n = part.shape[0]
    lab = np.empty(n, dtype=np.int64)
    base = np.empty(n)
    A.nearest_in_product(part[:, :n_centers], c_sq[:n_centers], x_sq, lab, base)
    if part.shape[1] == n_centers:
        return base[:, None]
    trial = np.empty((n, part.shape[1] - n_centers))
    A.distances_from_product(part[:, n_centers:], c_sq[n_centers:], x_sq, trial)
    return np.minimum(base[:, None], trial)


def combine_sweep(parts: list[SweepStats], members: tuple[tuple[str, float, int], ...]) -> SweepStats:
    """Merge sweep statistics in chunk order, member by member.

    ``members`` gives each member's ``(kind, ell, n_far)``, what its own combine needs.
    """
    merged: list[K.Candidates | K.LloydStats | K.PlusPlusStats] = []
    for j, (kind, ell, n_far) in enumerate(members):
        mine = [p.parts[j] for p in parts]
        if kind == ROUND:
            merged.append(K.combine_candidates(mine, ell))  # type: ignore[arg-type]
        elif kind == PLUSPLUS:
            merged.append(K.combine_plusplus(mine))  # type: ignore[arg-type]
        else:
            merged.append(K.combine_lloyd(mine, n_far))  # type: ignore[arg-type]
    moments = parts[0].moments
    for p in parts[1:]:
        if moments is not None and p.moments is not None:
            moments = moments.merge(p.moments)
    computed = [sum(p.computed[j] for p in parts) for j in range(len(members))]
    return SweepStats(merged, moments, computed)


# --------------------------------------------------------------------------- many labelings


@dataclass(frozen=True)
class Labelings:
    """How to label the rows, once per model.

    centers : k-means models, (k_m, n_features) each in the compute dtype: a row's label is its
        nearest center (as ``KMeans.predict``).
    mixtures : Gaussian mixtures: a row's label is its most probable component (as
        ``GaussianMixture.predict``).
    dtype : compute dtype of the k-means assignment.
    centroids : per model, (k_m, n_features) float64 means of the labels (second pass only).
    """

    centers: tuple[np.ndarray, ...]
    mixtures: tuple[M.GaussianParams, ...]
    affine: Affine
    dtype: np.dtype
    centroids: tuple[np.ndarray, ...] = field(default=())

    @property
    def sizes(self) -> list[int]:
        return [len(c) for c in self.centers] + [g.n_components for g in self.mixtures]


@dataclass
class LabelStats:
    """Per model and label: number of rows and sums of rows (first pass), or the sum of
    squared distances and of distances to the label's centroid (second pass)."""

    counts: list[np.ndarray]
    sums: list[np.ndarray]


def _label_rows(block: np.ndarray, chunk: ChunkInfo, params: Labelings) -> list[np.ndarray]:
    """Each model's label of every row of the block: one stacked product for the k-means models,
    one E-step per mixture."""
    n = block.shape[0]
    out = [np.empty(n, dtype=np.int64) for _ in params.centers]
    if params.centers:
        table, segments = _stack(tuple(Member(LLOYD, c.astype(params.dtype)) for c in params.centers), params.affine)
        rows = A.block_tile_rows(block, table.n_centers, table.dtype.itemsize)
        scratch = np.empty(min(n, rows))
        for start, stop, _, x_sq, g in A.iter_products(block, table.minus2_t, chunk, rows):
            for j, seg in enumerate(segments):
                A.nearest_in_product(g[:, seg], table.sq_norms[seg], x_sq, out[j][start:stop], scratch[: stop - start])
    out += [M.predict_block(block, params.affine, gp, chunk) for gp in params.mixtures]
    return out


def label_sums_kernel(block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo,
                      params: Labelings) -> LabelStats:
    """Per model: rows and float64 sums of rows of each label. One pass over the block."""
    labels = _label_rows(block, chunk, params)
    d = block.shape[1]
    counts = [np.zeros(k) for k in params.sizes]
    sums = [np.zeros((k, d)) for k in params.sizes]
    for start, stop, x in iter_compute_slices(block, np.dtype(np.float64), params.affine, slice_rows(d)):
        for j, k in enumerate(params.sizes):
            lab = labels[j][start:stop]
            counts[j] += np.bincount(lab, minlength=k)
            sums[j] += K.cluster_sums(x, lab, None, k)
    return LabelStats(counts, sums)


def dispersion_kernel(block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo,
                      params: Labelings) -> LabelStats:
    """Per model and label: sum of squared distances (``counts``) and of distances (``sums``)
    of the rows to their label's centroid. One pass over the block.

    The distances come in float64 from one GEMM of each slice against every model's centroids,
    stacked: ``||x - m||² = ||x||² - 2 x·m + ||m||²``. Its rounding error is about
    ``1e-16 * ||x||²``, far below the distances of rows to their centroids in data that
    clusters at all (the single-model metrics compute differences instead).
    """
    labels = _label_rows(block, chunk, params)
    d = block.shape[1]
    stacked = np.concatenate(params.centroids)
    m_sq = row_sq_norms(stacked)
    offsets = np.cumsum([0] + params.sizes[:-1])
    sq = [np.zeros(k) for k in params.sizes]
    dist = [np.zeros(k) for k in params.sizes]
    for start, stop, x in iter_compute_slices(block, np.dtype(np.float64), params.affine,
                                              slice_rows(d, stacked.shape[0])):
        g = x @ stacked.T
        x_sq = row_sq_norms(x)
        rows = np.arange(stop - start)
        for j, k in enumerate(params.sizes):
            lab = labels[j][start:stop]
            col = offsets[j] + lab
            r2 = x_sq + m_sq[col] - 2 * g[rows, col]
            np.maximum(r2, 0.0, out=r2)
            sq[j] += np.bincount(lab, weights=r2, minlength=k)
            dist[j] += np.bincount(lab, weights=np.sqrt(r2), minlength=k)
    return LabelStats(sq, dist)


def combine_label_stats(parts: list[LabelStats]) -> LabelStats:
    """Merge in chunk order, model by model."""
    n_models = len(parts[0].counts)
    return LabelStats(
        [np.sum([p.counts[j] for p in parts], axis=0) for j in range(n_models)],
        [np.sum([p.sums[j] for p in parts], axis=0) for j in range(n_models)],
    )
