"""KMeans seeding: what k-means|| rounds and the mini-batch warm start cost, and what they buy.

Run from the project root::

    python benchmarks/bench_seeding.py                 # MNIST + 1M generated digits, writes RESULTS-seeding.md
    python benchmarks/bench_seeding.py --quick --output /tmp/seeding.md   # smoke run (10,000 rows, one seed)
    python benchmarks/bench_seeding.py --cases r5,r2,r3 --store-cases r5,r2   # the rounds only
    # the warm start's sample stages on the first 1 M rows of MNIST8M's store, then on all of it (one run)
    python benchmarks/bench_seeding.py --skip-mnist --store-path /tmp/m8/mnist8100000.zarr --store-rows 1000000 \
        --store-cache memory --store-seeds 0,1 --cases r5,warm-nosample,warm,warm-s1-10 --output /tmp/seeding-1m.md
    python benchmarks/bench_seeding.py --skip-mnist --store-path /tmp/m8/mnist8100000.zarr --store-rows 8100000 \
        --store-cache stream --store-seeds 0 --cases warm --output /tmp/seeding-8m.md

After untimed warm-up fits on 5,000 rows (kernels compiled, imports made), for each data set,
each seed of ``--seeds`` (``--store-seeds`` on the store) and each seeding of ``--cases``
(``--store-cases`` on the store; round-robin: every seeding of a seed before the next seed), one
``KMeans(--n-clusters, algorithm=--algorithm, random_state=seed)`` fit to convergence
(scikit-learn's ``tol=1e-4``, ``max_iter=300``):


* ``init="k-means||"`` with ``init_max_iter`` = 1..5 rounds at ``oversampling_factor=2`` (the
  default, ``cluster._init.DEFAULT_ROUNDS`` rounds at 2, is marked in the table), and a few
  (rounds, factor) pairs with about as many candidates in fewer rounds;
* ``init="mini-batch"``: a short ``MiniBatchKMeans`` fit, then the same Lloyd iterations.

Recorded per fit: the seeding's reads of the data in full passes (rows counted by
``daskcluster.engine.count_passes`` before the first full-data Lloyd pass, divided by the rows:
k-means|| rounds and weighting, mini-batch epochs, the read of the sample stages' sample and
their iterations on it, a fraction of a pass each; not the mini-batch fit's read of its seeding
sample, which reads only the chunks holding the sampled rows), the seeding's seconds (from the start of ``fit`` to the start of the
first Lloyd pass, so with ``cache`` persisting the data it includes that), the full-data Lloyd iterations, the total reads (in full passes, the same way) and
seconds, the CPU seconds of the fit (this process's ``time.process_time`` plus, under the
store's cluster, the workers' user + system time from ``psutil``: on a shared machine a steadier
figure than wall-clock seconds), and the final inertia, as a ratio to the first case's inertia
for the same seed (the reference: 5 rounds unless ``--cases`` says otherwise). ``algorithm='elkan'`` (the default here) makes the same
iterations, centers and inertia as ``'lloyd'`` in less time; passes are what an out-of-core fit
pays for, whatever the algorithm.

Data sets: real MNIST (70,000 x 784 uint8, ``scaled(X, 1/255)``, in memory, threaded scheduler)
and a store of generated digits (``make_infinite_mnist``, ``--store-rows`` rows, created on the
first run), on ``LocalCluster(2 workers x 1 thread, 2 GiB)`` with ``cache=--store-cache``.

The report records the command, the CPU model, ``threadpoolctl.threadpool_info()``, versions,
the commit and the load average at the start and end of each data set; it is written atomically
to ``--output`` (keeping the analysis below the line :data:`NOTES` of an earlier report) and printed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_kmeans import cpu_model, git_commit, load_avg, versions

DEFAULT_MNIST = os.path.join(HERE, "..", "..", "shared", "data", "mnist.npz")
DEFAULT_OUTPUT = os.path.join(HERE, "RESULTS-seeding.md")
N_CLUSTERS = 10

#: Line of the report after which the analysis is written by hand; a new run keeps it.
NOTES = "<!-- analysis: kept by bench_seeding.py -->"

#: Key of a case's keyword arguments holding overrides of ``daskcluster.cluster._warm``'s constants.
WARM = "_warm"

#: name -> (label, KMeans keyword arguments) of the seedings that can be compared.
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "r5": ("k-means|| 5 rounds x 2k", {"init_max_iter": 5}),
    "r1": ("k-means|| 1 round x 2k", {"init_max_iter": 1}),
    "r2": ("k-means|| 2 rounds x 2k", {"init_max_iter": 2}),
    "r3": ("k-means|| 3 rounds x 2k", {"init_max_iter": 3}),
    "r4": ("k-means|| 4 rounds x 2k", {"init_max_iter": 4}),
    "r1x10": ("k-means|| 1 round x 10k", {"init_max_iter": 1, "oversampling_factor": 10.0}),
    "r2x5": ("k-means|| 2 rounds x 5k", {"init_max_iter": 2, "oversampling_factor": 5.0}),
    "warm": ("mini-batch warm start", {"init": "mini-batch"}),
    # the warm start's sample stages (cluster/_warm.py) set by overriding its module constants
    "warm-nosample": ("mini-batch warm start, no sample stage",
                      {"init": "mini-batch", WARM: {"SAMPLE_FRACTIONS": ()}}),
    "warm-s10": ("mini-batch warm start, Lloyd on a 10 % sample",
                 {"init": "mini-batch", WARM: {"SAMPLE_FRACTIONS": (0.1,), "MIN_SAMPLE_ROWS": 1000,
                                               "MIN_STAGE_ROWS": 1000, "MAX_SAMPLE_SHARE": 0.5}}),
    "warm-s1-10": ("mini-batch warm start, Lloyd on a 1 % then a 10 % sample",
                   {"init": "mini-batch", WARM: {"SAMPLE_FRACTIONS": (0.01, 0.1), "MIN_SAMPLE_ROWS": 1000,
                                                 "MIN_STAGE_ROWS": 1000, "MAX_SAMPLE_SHARE": 0.5}}),
    "warm-s25": ("mini-batch warm start, Lloyd on a 25 % sample",
                 {"init": "mini-batch", WARM: {"SAMPLE_FRACTIONS": (0.25,), "MIN_SAMPLE_ROWS": 1000,
                                               "MIN_STAGE_ROWS": 1000, "MAX_SAMPLE_SHARE": 0.5}}),
}


def case_label(name: str) -> str:
    """The case's label, with "(default)" when it is what ``KMeans()`` does."""
    from daskcluster.cluster._init import DEFAULT_ROUNDS

    label, kwargs = CASES[name]
    default = kwargs.get("init", "k-means||") == "k-means||" and kwargs.get("oversampling_factor", 2.0) == 2.0 \
        and kwargs.get("init_max_iter") == DEFAULT_ROUNDS
    return f"{label} (default)" if default else label


@dataclass
class Fit:
    """One fit's seeding and totals."""

    seed_reads: float
    seed_seconds: float
    n_iter: int
    reads: float
    seconds: float
    cpu_seconds: float
    inertia: float


@dataclass
class Case:
    label: str
    kwargs: dict[str, Any]
    fits: dict[int, Fit] = field(default_factory=dict)


def _worker_cpu() -> float:
    """User + system CPU seconds of this process (run on each worker)."""
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system


def cpu_now() -> float:
    """This process's CPU seconds plus, under a distributed Client, its workers'."""
    total = time.process_time()
    try:
        from distributed import get_client

        client = get_client()
    except (ImportError, ValueError):
        return total
    return total + sum(client.run(_worker_cpu).values())


def timed_fit(X: Any, kwargs: dict[str, Any], seed: int, algorithm: str, cache: Any, n_clusters: int) -> Fit:
    """One fit to convergence, its seeding measured from its progress reports."""
    import daskcluster.cluster._warm as warm
    from daskcluster import KMeans
    from daskcluster.engine import count_passes
    from daskcluster.progress import progress_hook

    first: dict[str, float] = {}
    n_samples = int(getattr(X, "source", X).shape[0])

    def hook(rep: Any) -> None:
        # the run's first full-data Lloyd pass (the sample stages' own KMeans fits report on fewer rows)
        if rep.estimator == "KMeans" and rep.stage == "fit" and "at" not in first and rep.n_samples == n_samples:
            first.update(at=time.perf_counter() - rep.seconds, reads=(counter.rows - n_samples) / n_samples)

    kwargs = dict(kwargs)
    overrides = kwargs.pop(WARM, {})
    saved = {k: getattr(warm, k) for k in overrides}
    with count_passes() as counter, progress_hook(hook), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k, v in overrides.items():
            setattr(warm, k, v)
        try:
            c0 = cpu_now()
            t0 = time.perf_counter()
            km = KMeans(n_clusters, random_state=seed, algorithm=algorithm, cache=cache, **kwargs).fit(X)
            seconds = time.perf_counter() - t0
            cpu = cpu_now() - c0
        finally:
            for k, v in saved.items():
                setattr(warm, k, v)
    return Fit(first["reads"], first["at"] - t0, int(km.n_iter_), counter.rows / n_samples, seconds, cpu,
               float(km.inertia_))


def warm_up(X: Any, algorithm: str, cache: Any, n_clusters: int) -> None:
    """Untimed fits of each seeding on a few rows: compiles the kernels and imports everything
    where the fits run (here or on the workers)."""
    from daskcluster import KMeans

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for init in ("k-means||", "mini-batch"):
            KMeans(n_clusters, init=init, max_iter=3, random_state=0, algorithm=algorithm, cache=cache).fit(X)


def run_cases(X: Any, small: Any, args: argparse.Namespace, cache: Any, name: str) -> list[Case]:
    warm_up(small, args.algorithm, cache, args.n_clusters)
    cases = [Case(case_label(c), CASES[c][1]) for c in args.cases]
    for seed in args.seeds:
        for case in cases:
            case.fits[seed] = fit = timed_fit(X, case.kwargs, seed, args.algorithm, cache, args.n_clusters)
            print(f"[{name}] seed {seed} {case.label}: seeding {fit.seed_reads:.2f} reads {fit.seed_seconds:.1f} s, "
                  f"{fit.n_iter} iterations, {fit.reads:.2f} reads, {fit.seconds:.1f} s ({fit.cpu_seconds:.1f} CPU s), "
                  f"inertia {fit.inertia:.6g}", flush=True)
    return cases


def table(cases: list[Case], seeds: list[int]) -> list[str]:
    ref = cases[0]
    lines = [("| seeding | seeding reads | seeding s (median) | Lloyd iterations per seed | total reads (median) "
              f"| fit s (least / median) | fit CPU s (median) | inertia / {ref.label}'s, per seed | median |"),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for case in cases:
        fits = [case.fits[s] for s in seeds]
        ratios = [case.fits[s].inertia / ref.fits[s].inertia for s in seeds]
        secs = [f.seconds for f in fits]
        lo, hi = (f"{v:.3g}" for v in (min(f.seed_reads for f in fits), max(f.seed_reads for f in fits)))
        lines.append(
            f"| {case.label} | {lo if lo == hi else f'{lo}-{hi}'} "
            f"| {statistics.median(f.seed_seconds for f in fits):.1f} | {', '.join(str(f.n_iter) for f in fits)} "
            f"| {statistics.median(f.reads for f in fits):.1f} | {min(secs):.1f} / {statistics.median(secs):.1f} "
            f"| {statistics.median(f.cpu_seconds for f in fits):.1f} "
            f"| {', '.join(f'{r:.4f}' for r in ratios)} | {statistics.median(ratios):.4f} |")
    best = min(f.inertia for c in cases for f in c.fits.values())
    lines.append("")
    lines.append(f"Least inertia of any fit: {best:.6g}. {ref.label}'s inertia per seed: "
                 + ", ".join(f"{ref.fits[s].inertia:.6g}" for s in seeds) + ".")
    return lines


def environment() -> list[str]:
    import sklearn.cluster  # noqa: F401 - loads scikit-learn's OpenMP runtime, so threadpool_info lists it
    from threadpoolctl import threadpool_info

    pools = "; ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, "
                      f"{p.get('num_threads')} threads)" for p in threadpool_info())
    return [f"Command: `{' '.join(shlex.quote(a) for a in ['python', *sys.argv])}`", "",
            f"CPU: {cpu_model()}, {os.cpu_count()} cores. BLAS/OpenMP (`threadpoolctl`): {pools}.", "",
            f"Versions: {versions()}. Commit: {git_commit()}.", ""]


def mnist_section(args: argparse.Namespace) -> list[str]:
    import dask

    from daskcluster import scaled
    from daskcluster.datasets import load_mnist_npz

    X8, _ = load_mnist_npz(args.mnist)
    if args.quick:
        X8 = X8[:10_000]
    start = load_avg()
    with dask.config.set(scheduler="threads"):
        cases = run_cases(scaled(X8, 1 / 255), scaled(X8[:5000], 1 / 255), args, "auto", "mnist")
    return [f"## Real MNIST, {len(X8):,} x 784 uint8 in memory, threaded scheduler, k = {args.n_clusters}", "",
            f"Load average (1, 5, 15 min) at start: {start}; at end: {load_avg()}.", "",
            *table(cases, args.seeds), ""]


def store_section(args: argparse.Namespace) -> list[str]:
    from distributed import Client, LocalCluster

    from daskcluster import scaled
    from daskcluster.datasets import make_infinite_mnist, open_labeled_zarr

    path = args.store_path or os.path.join(args.store_dir, f"digits{args.store_rows}.zarr")
    made = ""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB",
                      dashboard_address=None) as cluster, Client(cluster):
        if not os.path.exists(path):
            t0 = time.perf_counter()
            make_infinite_mnist(path, args.store_rows, random_state=0)
            made = f" (generated by this run in {time.perf_counter() - t0:.0f} s)"
        X, _, _ = open_labeled_zarr(path)
        if args.store_path:  # the first --store-rows rows of an existing store
            X = X[:args.store_rows]
        start = load_avg()
        cache = {"auto": "auto", "stream": False, "memory": True}[args.store_cache]
        cases = run_cases(scaled(X, 1 / 255), scaled(X[:5000], 1 / 255), args, cache, "store")
    what = f"The first {X.shape[0]:,} rows" if args.store_path else f"Generated digits, {X.shape[0]:,}"
    return [f"## {what} x 784 uint8 of the Zarr store `{path}`{made}, k = {args.n_clusters}", "",
            (f"`LocalCluster(n_workers=2, threads_per_worker=1, memory_limit='2GiB')`, `cache={cache!r}` "
             f"({X.numblocks[0]} chunks). Load average at start: {start}; at end: {load_avg()}."), "",
            *table(cases, args.seeds), ""]


def names(text: str) -> list[str]:
    """A comma-separated list of case names, checked against :data:`CASES`."""
    chosen = text.split(",")
    unknown = [c for c in chosen if c not in CASES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown cases {unknown}; choose among {', '.join(CASES)}")
    return chosen


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mnist", default=DEFAULT_MNIST)
    parser.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2, 3, 4])
    parser.add_argument("--n-clusters", type=int, default=N_CLUSTERS)
    parser.add_argument("--cases", type=names, default=list(CASES),
                        help=f"seedings compared on MNIST, the first the reference: {','.join(CASES)}")
    parser.add_argument("--store-cases", type=names, default=None, help="seedings compared on the store (--cases)")
    parser.add_argument("--algorithm", choices=["lloyd", "elkan"], default="elkan")
    parser.add_argument("--store-dir", default="/tmp/daskcluster-digits")
    parser.add_argument("--store-rows", type=int, default=1_000_000)
    parser.add_argument("--store-path", default=None,
                        help="an existing labelled store (e.g. MNIST8M's) whose first --store-rows rows are fitted")
    parser.add_argument("--store-seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0])
    parser.add_argument("--store-cache", choices=["auto", "stream", "memory"], default="auto")
    parser.add_argument("--skip-mnist", action="store_true")
    parser.add_argument("--skip-store", action="store_true")
    parser.add_argument("--quick", action="store_true", help="10,000 MNIST rows, seed 0, no store")
    parser.add_argument("--output", default=None, help=f"report file (default {DEFAULT_OUTPUT}; none with --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.skip_store = [0], True
    if args.output is None and not args.quick:
        args.output = DEFAULT_OUTPUT
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from daskcluster.atomic import write_bytes

    notes = ""
    if args.output and os.path.exists(args.output):  # the analysis written below the tables is kept
        with open(args.output, encoding="utf-8") as f:
            old = f.read()
        notes = "\n" + old[old.index(NOTES):] if NOTES in old else ""
    lines = ["# KMeans seeding: k-means|| rounds and the mini-batch warm start", "", *environment()]
    sections = [] if args.skip_mnist else [mnist_section]
    if not args.skip_store:
        sections.append(store_section)
    for section in sections:
        store_args = argparse.Namespace(**{**vars(args), "seeds": args.store_seeds,
                                           "cases": args.store_cases or args.cases})
        lines += section(args if section is mnist_section else store_args)
        text = "\n".join(lines) + "\n"
        print(text)
        if args.output:  # after each data set, so that a failure later keeps what was measured
            write_bytes(args.output, (text + notes).encode())


if __name__ == "__main__":
    main()
