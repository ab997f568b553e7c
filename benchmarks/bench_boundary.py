"""Would rereading only the rows that can still change cut a streamed k-means fit's full reads?

Run from the project root::

    python benchmarks/bench_boundary.py                       # MNIST 70k, seeds 0-2, writes RESULTS-boundary.md
    python benchmarks/bench_boundary.py --seeds 0 --inits mini-batch --output /tmp/boundary.md   # one case

The scheme simulated (exact: it would give Lloyd's iterates, iteration by iteration): a full
pass at iteration ``t0`` gives every row its label ``a`` and its distance gaps
``g_j = d(x, c_j) - d(x, c_a)`` (the margin ``m = min_{j != a} g_j``). Each chunk keeps in
worker memory its "boundary" rows (margin at most the chunk's ``q``-quantile: their data,
positions, labels) and the per-cluster sums of all its other rows. While the centers stay
within ``D_j = ||c_j(t) - c_j(t0)||`` of where they were at ``t0``, a kept-out row of label
``a`` provably keeps it when ``g_j > D_a + D_j`` for every ``j != a`` (triangle inequality), so
an iteration can read only the boundary rows held in memory ("light" iteration) as long as
that holds for every chunk; when it fails, a full pass (new ``t0``). Two tests are simulated:
``margin`` (per chunk and label, the least kept-out margin against ``D_a + max_{j != a} D_j``)
and ``pairwise`` (per chunk, the (k, k) least gaps ``G[a, j]`` against ``D_a + D_j``: the
sharpest test a chunk can make from a small summary). A final full pass gives the inertia and
labels, as in a plain fit.

For each seed the Lloyd iterates are computed exactly in NumPy (float64) from daskcluster's
default seeding (``KMeans(10)``: k-means||) and from its mini-batch warm start
(``KMeans(10, init='mini-batch')``), each with the entropy ``KMeans.fit`` draws from
``random_state``, on MNIST 70,000 x 784 scaled by 1/255, with the chunking ``KMeans`` gives it,
scikit-learn's convergence rule (labels unchanged, or squared center shift within
``tol=1e-4`` times the mean feature variance). With ``--check``, a daskcluster
``KMeans(algorithm='lloyd')`` fit from the same init gives its ``n_iter_`` beside the
simulation's. Recorded per seed and per ``q``: full passes with and without the scheme, their
ratio, the light iterations, the boundary rows held (and their bytes: 784 uint8 + 8 position +
8 label + 8 margin per row, scaled to 8.1 M rows), and the number of kept-out rows whose label
changed during a light iteration (must be 0: a check of the simulation).

The report records the command, the CPU model, ``threadpoolctl.threadpool_info()`` and the load
average, and is written atomically to ``--output`` (keeping the analysis below the line
:data:`NOTES` of an earlier report).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import sys
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from machine import cpu_model

DEFAULT_MNIST = os.path.join(HERE, "..", "..", "shared", "data", "mnist.npz")
DEFAULT_OUTPUT = os.path.join(HERE, "RESULTS-boundary.md")
N_CLUSTERS = 10
QUANTILES = (0.01, 0.02, 0.05, 0.10, 0.20, 0.50)
MNIST8M_ROWS = 8_100_000
#: Bytes a boundary row holds: its 784 uint8 values, position (int64), label (int64), margin (float64).
ROW_BYTES = 784 + 8 + 8 + 8
#: The analysis below this line of an earlier report is kept when the report is written again.
NOTES = "## Analysis"


@dataclass
class Trace:
    """Lloyd's iterates from one init: per iteration the centers, labels and distance gaps."""

    centers: list
    labels: list
    gaps: list  # (n, k) float32: d_j - d_label
    n_iter: int = 0
    steps: list = field(default_factory=list)  # largest center step per iteration


def load_mnist(path: str):
    import numpy as np

    with np.load(path) as f:
        x = np.concatenate([f["x_train"], f["x_test"]])
    return x.reshape(len(x), -1)


def lloyd_trace(X, centers, tol_abs: float, max_iter: int = 300) -> Trace:
    """Lloyd from ``centers`` (float64, scikit-learn's convergence rule), keeping every iterate."""
    import numpy as np

    n, d = X.shape
    k = len(centers)
    x_sq = np.einsum("ij,ij->i", X, X)
    trace = Trace([], [], [])
    c = centers.astype(np.float64)
    previous = None
    for _ in range(max_iter):
        dist = np.sqrt(np.maximum(x_sq[:, None] - 2 * X @ c.T + np.einsum("ij,ij->i", c, c)[None], 0.0))
        labels = dist.argmin(axis=1)
        trace.centers.append(c)
        trace.labels.append(labels)
        trace.gaps.append((dist - dist[np.arange(n), labels][:, None]).astype(np.float32))
        wic = np.bincount(labels, minlength=k).astype(np.float64)
        sums = np.zeros((k, d))
        for j in range(k):
            sums[j] = X[labels == j].sum(axis=0)
        new = c.copy()
        nz = wic > 0
        new[nz] = sums[nz] / wic[nz, None]
        shift = float(((new - c) ** 2).sum())
        trace.steps.append(float(np.sqrt(((new - c) ** 2).sum(axis=1)).max()))
        strict = previous is not None and bool((previous == labels).all())
        previous = labels
        c = new
        if strict or shift <= tol_abs:
            break
    trace.n_iter = len(trace.centers)
    return trace


@dataclass
class Outcome:
    q: float
    test: str
    full: int
    plain: int
    light: int
    boundary_rows: int
    violations: int
    full_at: list


def simulate(trace: Trace, bounds: list[tuple[int, int]], q: float, test: str) -> Outcome:
    """Full passes the scheme would need on ``trace`` with chunks ``bounds`` and quantile ``q``."""
    import numpy as np

    k = trace.centers[0].shape[0]
    n = len(trace.labels[0])
    t0 = None
    full, light, violations, held = 0, 0, 0, 0
    full_at = []
    summary = boundary = labels0 = None
    slack = 1e-6  # room for the rounding of computed distances (far above float64's)
    for t in range(trace.n_iter):
        need_full = t0 is None
        if not need_full:
            moved = np.sqrt(((trace.centers[t] - trace.centers[t0]) ** 2).sum(axis=1))
            if test == "margin":
                others = np.array([np.max(np.delete(moved, j)) if k > 1 else 0.0 for j in range(k)])
                need_full = bool((summary <= (moved + others)[None] + slack).any())
            else:
                need = moved[:, None] + moved[None, :]
                np.fill_diagonal(need, -np.inf)
                need_full = bool((summary <= need[None] + slack).any())
        if need_full:
            full += 1
            full_at.append(t)
            t0 = t
            labels0, gaps = trace.labels[t], trace.gaps[t]
            margin = np.partition(gaps, 1, axis=1)[:, 1] if k > 1 else np.full(n, np.inf)
            boundary = np.zeros(n, bool)
            shape = (len(bounds), k) if test == "margin" else (len(bounds), k, k)
            summary = np.full(shape, np.inf)
            for c, (lo, hi) in enumerate(bounds):
                if hi == lo:
                    continue
                b = margin[lo:hi] <= np.quantile(margin[lo:hi], q)
                boundary[lo:hi] = b
                for a in range(k):
                    sel = ~b & (labels0[lo:hi] == a)
                    if not sel.any():
                        continue
                    if test == "margin":
                        summary[c, a] = margin[lo:hi][sel].min()
                    else:
                        summary[c, a] = gaps[lo:hi][sel].min(axis=0)
                        summary[c, a, a] = np.inf
            held = max(held, int(boundary.sum()))
        else:
            light += 1
            violations += int((trace.labels[t][~boundary] != labels0[~boundary]).sum())
    return Outcome(q, test, full + 1, trace.n_iter + 1, light, held, violations, full_at)


def initial_centers(X_uint8, seed: int, init: str):
    """The initial centers of ``KMeans(10, init=init, random_state=seed)`` (``'k-means||'``, the
    default, or the ``'mini-batch'`` warm start) and the chunk bounds ``KMeans`` gives the data."""
    import numpy as np

    from daskcluster import KMeans, scaled
    from daskcluster.cluster._driver import seed as seed_centers
    from daskcluster.cluster._warm import mini_batch_centers

    km = KMeans(N_CLUSTERS, init=init, random_state=seed)
    data = km._fit_data(scaled(X_uint8, 1 / 255))
    entropy = int(np.random.RandomState(seed).randint(np.iinfo(np.int32).max, size=1)[0])
    if init == "mini-batch":
        centers = mini_batch_centers(data, None, N_CLUSTERS, entropy)
    else:
        centers = seed_centers(data, None, N_CLUSTERS, init, entropy=entropy)
    edges = np.cumsum((0,) + tuple(data.array.chunks[0]))
    return centers.astype(np.float64), [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def check_n_iter(X_uint8, centers) -> int:
    from daskcluster import KMeans, scaled

    km = KMeans(N_CLUSTERS, init=centers.astype("float32"), n_init=1, algorithm="lloyd", cache=True)
    return int(km.fit(scaled(X_uint8, 1 / 255)).n_iter_)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default=DEFAULT_MNIST)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--inits", default="k-means||,mini-batch",
                        help="seedings to start from: KMeans's default 'k-means||', the 'mini-batch' warm start")
    parser.add_argument("--check", action="store_true", help="also fit daskcluster's Lloyd from each init")
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    import numpy as np
    import threadpoolctl

    from daskcluster.atomic import write_bytes

    X_uint8 = load_mnist(args.mnist)
    X = X_uint8.astype(np.float64) / 255
    tol_abs = 1e-4 * float(X.var(axis=0).mean())
    blas = [(i.get("internal_api"), i.get("architecture"), i.get("num_threads")) for i in threadpoolctl.threadpool_info()]
    lines = [
        "# Boundary rows: full reads a streamed k-means fit would save (simulation)",
        "",
        f"Command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`  ",
        f"CPU: {cpu_model()}; BLAS: {blas}; load average at start: {os.getloadavg()}",
        "",
        (f"MNIST {X.shape[0]} x {X.shape[1]} / 255, KMeans({N_CLUSTERS}) from its default seeding (k-means||) and from "
         "the mini-batch warm start, Lloyd in float64, "
        "tol=1e-4. `full` = full reads of the data with the scheme (including the final E-step), `plain` = "
        "without (iterations + 1), `held` = most boundary rows held at once (MB at 70k / at 8.1 M rows), "
        "`full in 1st / 2nd half` = the full reads made in the first and second half of the iterations "
        "(the final E-step not counted), `viol` = kept-out rows whose label changed in a light iteration (must be 0)."),
        "",
    ]
    rows: list[tuple[str, int, Outcome]] = []
    for init, seed in itertools.product(args.inits.split(","), [int(s) for s in args.seeds.split(",")]):
        t = time.process_time()
        centers, bounds = initial_centers(X_uint8, seed, init)
        trace = lloyd_trace(X, centers, tol_abs)
        check = f", daskcluster Lloyd n_iter_ {check_n_iter(X_uint8, centers)}" if args.check else ""
        steps = trace.steps
        lines.append(f"- {init}, seed {seed}: {trace.n_iter} Lloyd iterations{check}, {len(bounds)} chunks; largest center "
                     f"step at iterations 1/5/10/20/40/last: "
                     + ", ".join(f"{steps[min(i, len(steps) - 1)]:.3g}" for i in (0, 4, 9, 19, 39, len(steps) - 1)))
        for test in ("margin", "pairwise"):
            for q in QUANTILES:
                out = simulate(trace, bounds, q, test)
                rows.append((init, seed, out))
        print(f"{init}, seed {seed}: {trace.n_iter} iterations, {time.process_time() - t:.1f} s CPU", flush=True)
    lines += ["", ("| init | seed | test | q | full | plain | plain / full | full in 1st / 2nd half | light | held rows "
                   "| held MB (70k / 8.1M) | viol |"),
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for init, seed, o in rows:
        mb = o.boundary_rows * ROW_BYTES / 1e6
        half = (o.plain - 1) / 2
        first = sum(1 for t in o.full_at if t < half)
        halves = f"{first} / {len(o.full_at) - first}"
        lines.append(f"| {init} | {seed} | {o.test} | {o.q:.0%} | {o.full} | {o.plain} | {o.plain / o.full:.2f}x | {halves} | {o.light} "
                     f"| {o.boundary_rows} | {mb:.1f} / {mb * MNIST8M_ROWS / X.shape[0]:.0f} | {o.violations} |")
    lines += ["", f"Load average at end: {os.getloadavg()}", ""]
    text = "\n".join(lines)
    notes = ""
    if os.path.exists(args.output):
        with open(args.output) as f:
            earlier = f.read()
        if NOTES in earlier:
            notes = "\n" + earlier[earlier.index(NOTES):]
    write_bytes(args.output, (text + notes).encode())
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
