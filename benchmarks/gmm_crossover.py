"""Where the diagonal EM pass on non-zeros stops paying: the dense loop (``_diag_em_rows``) against
the pass on non-zeros (``DiagRows._add_nonzeros``) on image rows made denser, one thread, CPU time.

Run from the project root::

    python benchmarks/gmm_crossover.py --x X.npy --models MODELS.npz

``--x``: ``uint8`` rows (n, 784: 28 x 28 images) cut into chunks of ``--chunk`` rows (32,768:
the benchmark's chunks); ``--models``: a ``.npz`` of the fitted ``GaussianMixture(10, "diag")``
after EM iterations ``--iterations`` (arrays ``means{i}``, ``prec_chol{i}``, ``log_const{i}``,
``center{i}``, ``min_resp{i}``, as :class:`~daskcluster.kernels.mixture.params.GaussianParams`
holds them); ``--components K`` (more than the models have) adds components near theirs, to see
the crossover at up to 32 components.

Two families of denser rows, each at the shares of non-zero values ``--shares`` (the rows as
stored where their share is already higher):

- ``random``: zeros chosen uniformly at random turned into values drawn from the rows' own
  non-zero values (non-zeros spread over the image: the share of non-zero 8-feature groups grows
  fast);
- ``strokes``: each image's strokes thickened, one ring of pixels at a time (the zeros next to a
  non-zero, of the 8 neighbours, take the largest neighbour's value: a grey dilation), the last
  ring taken at random in part (non-zeros next to non-zeros: the groups' share grows slowly).

For each family, share and model, both kernels are called as :meth:`DiagRows.add` calls them (a
fresh :class:`~daskcluster.kernels.mixture.stats.Accumulator` a call), alternated chunk by chunk,
``--repeats`` rounds; the least and median CPU time of the thread a chunk are printed with the
shares of non-zero values and of non-zero 8-feature groups (of all rows, and of the first
:data:`~daskcluster.kernels.mixture.diag_rows.SHARE_ROWS` rows of each chunk, which choose the
kernel), then the shares at which the two cost the same (linear interpolation of the ratio of the
least times), per family and model.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from daskcluster.kernels.blocks import Affine
from daskcluster.kernels.mixture.diag_rows import SHARE_ROWS, DiagRows, _diag_em_rows
from daskcluster.kernels.mixture.estep import reference
from daskcluster.kernels.mixture.params import GaussianParams, gaussian_params
from daskcluster.kernels.mixture.stats import Accumulator

#: Features in a group skipped when all zero (:mod:`~daskcluster.kernels.mixture.nonzero_groups`).
GROUP = 8


def group_share(x: np.ndarray) -> float:
    """Share of the 8-feature groups of the rows ``x`` (n, d) holding a non-zero (the last group
    of ``d mod 8`` features counted as one)."""
    n, d = x.shape
    full = d // GROUP * GROUP
    nonzero = (x[:, :full].reshape(n, -1, GROUP) != 0).any(-1).sum()
    groups = n * (d // GROUP)
    if full < d:
        nonzero += (x[:, full:] != 0).any(-1).sum()
        groups += n
    return float(nonzero) / groups if groups else 0.0


def add_random(x: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` with zeros chosen at random made non-zero (values drawn from ``x``'s non-zeros) until
    ``share`` of its values are non-zero."""
    out = x.copy()
    zero = out == 0
    need = share * out.size - (out.size - zero.sum())
    if need <= 0:
        return out
    pick = zero & (rng.random(out.shape) < need / zero.sum())
    out[pick] = rng.choice(x[~zero], size=int(pick.sum()))
    return out


def add_strokes(x: np.ndarray, share: float, rng: np.random.Generator, side: int = 28) -> np.ndarray:
    """``x`` (n, side^2 images) with its strokes thickened ring by ring (grey dilation over the 8
    neighbours), the last ring in part at random, until ``share`` of its values are non-zero."""
    out = x.reshape(-1, side, side).copy()
    while True:
        pad = np.pad(out, ((0, 0), (1, 1), (1, 1)))
        dilated = out.copy()
        for di in (0, 1, 2):
            for dj in (0, 1, 2):
                np.maximum(dilated, pad[:, di : di + side, dj : dj + side], out=dilated)
        ring = (out == 0) & (dilated != 0)
        need = share * out.size - np.count_nonzero(out)
        n_ring = int(ring.sum())
        if need <= 0 or n_ring == 0:
            break
        if n_ring > need:
            ring &= rng.random(out.shape) < need / n_ring
        out[ring] = dilated[ring]
        if n_ring >= need:
            break
    return out.reshape(x.shape)


def model(models: np.lib.npyio.NpzFile, it: int, components: int, x: np.ndarray) -> GaussianParams:
    """The model after EM iteration ``it`` (``components`` 0: as it is); with fewer components, its
    first ``components``; with more, component ``k`` takes the precisions of component ``k mod K``
    and a mean moved a fifth of the way to a row of ``x`` drawn at random (equal weights, the
    statistics' ``min_resp`` of 8.1 M rows)."""
    if components <= models[f"means{it}"].shape[0]:
        keep = slice(0, components or None)
        return GaussianParams("diag", models[f"means{it}"][keep], models[f"prec_chol{it}"][keep],
                              models[f"log_const{it}"][keep], models[f"center{it}"], models[f"min_resp{it}"][keep])
    means, prec_chol = models[f"means{it}"], models[f"prec_chol{it}"]
    source = np.arange(components) % means.shape[0]
    rows = x[np.random.default_rng(it).choice(x.shape[0], components, replace=False)] / 255
    moved = np.where((np.arange(components) < means.shape[0])[:, None], means[source],
                     0.8 * means[source] + 0.2 * rows)
    return gaussian_params(np.full(components, 1 / components), moved, prec_chol[source], "diag", 8_100_000)


def kernels(gp: GaussianParams, dr: DiagRows, block: np.ndarray) -> dict[str, Callable[[], object]]:
    """The dense loop and the pass on non-zeros on ``block``, each as :meth:`DiagRows.add` calls it."""
    k_n, d = gp.means.shape

    def dense() -> object:
        acc = Accumulator("diag", k_n, d, dr.min_resp)
        return _diag_em_rows(block, dr.scale, dr.offset, dr.ref, dr.mb, dr.prec, dr.log_const, dr.min_resp,
                             dr.floor, acc.nk, acc.s1, acc.s2)

    def nonzeros() -> object:
        acc = Accumulator("diag", k_n, d, dr.min_resp)
        return dr._add_nonzeros(acc, block)

    return {"dense": dense, "nonzeros": nonzeros}


def crossing(points: list[tuple[float, float]]) -> str:
    """The abscissa where ``ratio`` first reaches 1 among ``(share, ratio)`` points, by linear
    interpolation ("> last" or "< first" when it does not cross within them)."""
    points = sorted(points)
    if points[0][1] >= 1:
        return f"< {points[0][0] * 100:.1f} %"
    for (s0, r0), (s1, r1) in itertools.pairwise(points):
        if r1 >= 1 > r0:
            return f"{(s0 + (1 - r0) * (s1 - s0) / (r1 - r0)) * 100:.1f} %"
    return f"> {points[-1][0] * 100:.1f} %"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the machine's architecture."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--x", required=True)
    parser.add_argument("--models", required=True)
    parser.add_argument("--iterations", default="1,3,5")
    parser.add_argument("--shares", default="0.25,0.28,0.31,0.34,0.37,0.4,0.45,0.5,0.6,0.7,0.8,0.9")
    parser.add_argument("--families", default="random,strokes")
    parser.add_argument("--components", type=int, default=0,
                        help="more components than the models have (see ``model``; at most 32 take the pass)")
    parser.add_argument("--chunk", type=int, default=32768)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    x = np.load(args.x)
    models = np.load(args.models)
    affine = Affine(scale=1 / 255)
    iterations = [int(i) for i in args.iterations.split(",")]
    blas = "; ".join(f"{i['internal_api']} {i['version']} ({i.get('architecture')}, {i['num_threads']} threads)"
                     for i in threadpool_info())
    print(f"CPU {cpu_model()}; load average {os.getloadavg()}; BLAS {blas}; "
          f"{x.shape[0]} rows in chunks of {args.chunk}; CPU time of the thread, ms a chunk, least (median) "
          f"over the chunks x {args.repeats} alternated rounds\n")
    print("| rows | values non-zero | groups of 8 non-zero | first 256 rows: values / groups | EM iteration "
          "| dense loop ms | non-zeros ms | non-zeros / dense |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    found: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    with threadpool_limits(1):
        for family in args.families.split(","):
            make = {"random": add_random, "strokes": add_strokes}[family]
            for share in (float(s) for s in args.shares.split(",")):
                rng = np.random.default_rng(args.seed)
                rows = make(x, share, rng)
                chunks = [np.ascontiguousarray(rows[s : s + args.chunk]) for s in range(0, rows.shape[0], args.chunk)]
                heads = np.concatenate([c[:SHARE_ROWS] for c in chunks])
                values, groups = np.count_nonzero(rows) / rows.size, group_share(rows)
                head = f"{np.count_nonzero(heads) / heads.size * 100:.1f} / {group_share(heads) * 100:.1f} %"
                for it in iterations:
                    gp = model(models, it, args.components, x)
                    cases = [kernels(gp, DiagRows(gp, reference(c, affine), affine), c) for c in chunks]
                    times: dict[str, list[float]] = {"dense": [], "nonzeros": []}
                    for _ in range(args.repeats):
                        for case in cases:
                            for name, run in case.items():
                                t0 = time.thread_time()
                                run()
                                times[name].append(time.thread_time() - t0)
                    dense, nonzeros = min(times["dense"]), min(times["nonzeros"])
                    found.setdefault((family, it), []).append((values, groups, nonzeros / dense))
                    cells = [f"{min(t) * 1e3:.1f} ({statistics.median(t) * 1e3:.1f})" for t in times.values()]
                    print(f"| {family} | {values * 100:.1f} % | {groups * 100:.1f} % | {head} | {it} | {cells[0]} "
                          f"| {cells[1]} | {nonzeros / dense:.2f} |", flush=True)
    print("\nEqual cost (the ratio of the least times reaching 1, interpolated):\n")
    print("| rows | EM iteration | at values non-zero | at groups of 8 non-zero |")
    print("| --- | ---: | ---: | ---: |")
    for (family, it), points in found.items():
        print(f"| {family} | {it} | {crossing([(v, r) for v, _, r in points])} "
              f"| {crossing([(g, r) for _, g, r in points])} |")
    print(f"\nload average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
