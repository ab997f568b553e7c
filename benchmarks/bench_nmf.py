"""NMF on real MNIST: daskcluster vs scikit-learn's ``NMF(solver="mu")`` and ``MiniBatchNMF``, in one run.

Run from the project root::

    python benchmarks/bench_nmf.py            # full run: 70,000 x 784, writes benchmarks/RESULTS-nmf.md
    python benchmarks/bench_nmf.py --quick    # smoke test: 10,000 rows, 1 round, writes nothing

What is measured (one process, one run, so that ratios compare like with like):

1. Time per iteration at ``n_components=20`` from the same custom initial ``W`` and ``H``
   (seeded uniform), ``max_iter=10, tol=0`` so that every solver runs exactly 10 iterations
   (``n_iter_`` is checked). Seconds per iteration are fit time / ``n_iter_``, nothing
   subtracted (daskcluster's fits include the first pass's extra statistics and shipping the
   initial ``W``); for daskcluster the median seconds of one iteration's pass, from the
   progress hook, are given too. Cases:

   * scikit-learn ``NMF(solver="mu")`` on float64 ``X / 255`` (what it makes of MNIST's uint8
     by itself is float64) and on float32 ``X / 255``;
   * scikit-learn ``MiniBatchNMF`` (default ``batch_size=1024``) on float32 ``X / 255``: one
     iteration is one epoch over the data;
   * daskcluster ``NMF`` on the threaded scheduler (no Client) with ``scaled(X_uint8, 1/255)``
     (uint8 storage, float32 compute) and with float64 ``X / 255``;
   * daskcluster on a ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` with
     ``scaled(X_uint8, 1/255)``: the NumPy array is given to ``fit``, so shipping it to the
     workers is part of every fit.

   One warm-up run per case (not timed), then ``--rounds`` rounds, round-robin across the cases
   (the machine is shared); the least and the median over the rounds are reported.

2. Agreement: after the 10 iterations, the largest relative difference between daskcluster's
   and scikit-learn's ``H`` and ``reconstruction_err_`` (float64).

3. A default-style fit (``init='nndsvda'``, ``tol=1e-4``, ``max_iter=--fit-iter``,
   ``random_state=0``): total time, iterations and reconstruction error of ``X / 255`` — one
   run each; daskcluster's NNDSVD comes from Dask's randomized SVD, scikit-learn's from its own.

The Markdown goes to ``benchmarks/RESULTS-nmf.md`` (the whole file).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "mnist.npz")
DEFAULT_OUTPUT = os.path.join(HERE, "RESULTS-nmf.md")
K = 20
MAX_ITER = 10
SEED = 0
#: daskcluster per iteration (threads) must be at most this multiple of scikit-learn's MU solver.
TARGET_VS_SKLEARN_MU = 1.0


def load_mnist(path: str, n_rows: int | None) -> np.ndarray:
    """MNIST train + test as (n, 784) uint8; the first ``n_rows`` rows if given."""
    with np.load(path) as f:
        X = np.concatenate([f["x_train"], f["x_test"]]).reshape(-1, 28 * 28)
    return np.ascontiguousarray(X[:n_rows] if n_rows else X)


@dataclass
class Run:
    """One timed fit."""

    seconds: float
    n_iter: int
    hook_median: float | None = None
    H: np.ndarray | None = None
    error: float | None = None

    @property
    def per_iter(self) -> float:
        return self.seconds / max(self.n_iter, 1)


@dataclass
class Case:
    """A named configuration, timed once per round."""

    name: str
    fn: Callable[[int], Run]
    runs: list[Run] = field(default_factory=list)

    def least(self) -> float:
        return min(r.per_iter for r in self.runs)

    def median(self) -> float:
        return statistics.median(r.per_iter for r in self.runs)

    def hook(self, how: Callable[[list[float]], float]) -> float | None:
        values = [r.hook_median for r in self.runs if r.hook_median is not None]
        return how(values) if values else None


def sklearn_mu(X: np.ndarray, W0: np.ndarray, H0: np.ndarray) -> Callable[[int], Run]:
    from sklearn.decomposition import NMF

    def run(max_iter: int) -> Run:
        est = NMF(K, init="custom", solver="mu", max_iter=max_iter, tol=0)
        W, H = W0.astype(X.dtype), H0.astype(X.dtype)
        t0 = time.perf_counter()
        est.fit(X, W=W, H=H)
        return Run(time.perf_counter() - t0, est.n_iter_, None, est.components_, est.reconstruction_err_)

    return run


def sklearn_minibatch(X: np.ndarray, W0: np.ndarray, H0: np.ndarray) -> Callable[[int], Run]:
    from sklearn.decomposition import MiniBatchNMF

    def run(max_iter: int) -> Run:
        est = MiniBatchNMF(K, init="custom", max_iter=max_iter, tol=0, max_no_improvement=None, random_state=SEED)
        W, H = W0.astype(X.dtype), H0.astype(X.dtype)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, W=W, H=H)
        return Run(time.perf_counter() - t0, est.n_iter_, None, est.components_, est.reconstruction_err_)

    return run


def ours(X: Any, W0: np.ndarray, H0: np.ndarray) -> Callable[[int], Run]:
    from daskcluster import NMF
    from daskcluster.progress import progress_hook

    def run(max_iter: int) -> Run:
        seconds: list[float] = []
        est = NMF(K, init="custom", max_iter=max_iter, tol=0)
        t0 = time.perf_counter()
        with progress_hook(lambda rep: seconds.append(rep.seconds)):
            est.fit(X, W=W0, H=H0)
        wall = time.perf_counter() - t0
        return Run(wall, est.n_iter_, statistics.median(seconds), est.components_, est.reconstruction_err_)

    return run


def default_fits(X8: np.ndarray, fit_iter: int) -> list[tuple[str, float, int, float]]:
    """``init='nndsvda'`` fits of ``X / 255``: (library, seconds, n_iter, reconstruction error)."""
    from sklearn.decomposition import NMF as SklearnNMF

    from daskcluster import NMF, scaled

    out = []
    X64 = X8 / 255.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        sk = SklearnNMF(K, init="nndsvda", solver="mu", max_iter=fit_iter, random_state=SEED).fit(X64)
        out.append(("scikit-learn NMF(solver='mu'), float64", time.perf_counter() - t0, sk.n_iter_,
                    sk.reconstruction_err_))
        t0 = time.perf_counter()
        ds = NMF(K, init="nndsvda", max_iter=fit_iter, random_state=SEED).fit(scaled(X8, 1 / 255))
        seconds = time.perf_counter() - t0
    out.append(("daskcluster NMF, uint8 storage (float32)", seconds, ds.n_iter_, ds.reconstruction_err_))
    return out


def machine() -> str:
    import dask
    import sklearn

    return (f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, NumPy "
            f"{np.__version__}, scikit-learn {sklearn.__version__}, dask {dask.__version__}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("DASKCLUSTER_MNIST", DEFAULT_DATA))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fit-iter", type=int, default=100, help="max_iter of the nndsvda fits")
    parser.add_argument("--quick", action="store_true", help="10,000 rows, 1 round, no file written")
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.fit_iter = 1, 20
    import dask
    from distributed import Client, LocalCluster

    from daskcluster import scaled

    X8 = load_mnist(args.data, 10_000 if args.quick else None)
    n = X8.shape[0]
    rng = np.random.default_rng(SEED)
    W0 = rng.random((n, K))
    H0 = rng.random((K, 784))
    X64 = X8 / 255.0
    X32 = X64.astype(np.float32)
    load_start = os.getloadavg()
    started = _dt.datetime.now()

    threaded = [
        Case("scikit-learn NMF(solver='mu'), float64", sklearn_mu(X64, W0, H0)),
        Case("scikit-learn NMF(solver='mu'), float32", sklearn_mu(X32, W0, H0)),
        Case("scikit-learn MiniBatchNMF, float32 (1 iteration = 1 epoch)", sklearn_minibatch(X32, W0, H0)),
        Case("daskcluster NMF threaded, uint8 storage (float32)", ours(scaled(X8, 1 / 255), W0, H0)),
        Case("daskcluster NMF threaded, float64", ours(X64, W0, H0)),
    ]
    cluster_case = Case("daskcluster NMF LocalCluster 2×1, uint8 storage (float32)", ours(scaled(X8, 1 / 255), W0, H0))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        for case in threaded:
            with dask.config.set(scheduler="threads"):
                case.fn(2)  # warm-up
        with Client(cluster):
            cluster_case.fn(2)
        for r in range(args.rounds):
            for case in threaded:
                with dask.config.set(scheduler="threads"):
                    run = case.fn(MAX_ITER)
                assert run.n_iter == MAX_ITER, (case.name, run.n_iter)
                case.runs.append(run)
            with Client(cluster):
                run = cluster_case.fn(MAX_ITER)
            assert run.n_iter == MAX_ITER
            cluster_case.runs.append(run)
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{c.runs[-1].per_iter:.3f}" for c in
                                                                 [*threaded, cluster_case]), flush=True)
    cases = [*threaded, cluster_case]

    sk64, ours64 = threaded[0].runs[-1], threaded[4].runs[-1]
    assert sk64.H is not None and ours64.H is not None
    dH = float(np.max(np.abs(ours64.H - sk64.H) / np.maximum(np.abs(sk64.H), 1e-300)))
    dErr = abs(float(ours64.error) - float(sk64.error)) / float(sk64.error)  # type: ignore[arg-type]

    with dask.config.set(scheduler="threads"):
        fits = default_fits(X8, args.fit_iter)
    load_end = os.getloadavg()

    lines = report(args, n, cases, dH, dErr, fits, load_start, load_end, started)
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        tmp = args.output + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, args.output)
        print(f"written to {args.output}")
    return 0


def report(args: argparse.Namespace, n: int, cases: list[Case], dH: float, dErr: float,
           fits: list[tuple[str, float, int, float]], load_start: tuple[float, ...], load_end: tuple[float, ...],
           started: _dt.datetime) -> list[str]:
    by = {c.name: c for c in cases}
    sk64 = by["scikit-learn NMF(solver='mu'), float64"]
    sk32 = by["scikit-learn NMF(solver='mu'), float32"]
    mine = by["daskcluster NMF threaded, uint8 storage (float32)"]
    mine64 = by["daskcluster NMF threaded, float64"]
    lines = [
        "# NMF on MNIST (issue: NMF)",
        "",
        f"Command: `python benchmarks/bench_nmf.py{' --quick' if args.quick else ''}` — {started:%Y-%m-%d %H:%M}",
        "",
        (f"Machine: {machine()}. The machine is shared with other jobs (load average at start "
        f"{', '.join(f'{v:.1f}' for v in load_start)}, at end {', '.join(f'{v:.1f}' for v in load_end)}), so every "
        f"case ran {args.rounds} times, round-robin with the others; tables give the **least** and the **median** "
        "over those rounds."),
        "",
        (f"Data: MNIST {n:,} × 784, `n_components={K}`, the same seeded uniform custom `W`, `H` for every case, "
        f"`max_iter={MAX_ITER}`, `tol=0`."),
        "",
        "## Time per iteration",
        "",
        ("Seconds per iteration = fit time / n_iter (least / median). For daskcluster, the seconds of one "
        "iteration's pass (median over the iterations of a fit, from the progress hook) too."),
        "",
        "| case | s / iteration (least / median) | one pass (least / median) | vs scikit-learn MU float64 (least) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for c in cases:
        hook_least, hook_median = c.hook(min), c.hook(statistics.median)
        hook = "" if hook_least is None else f"{hook_least:.4f} / {hook_median:.4f}"
        lines.append(f"| {c.name} | {c.least():.4f} / {c.median():.4f} | {hook} | {sk64.least() / c.least():.1f}× |")
    ratio_least = mine.least() / sk32.least()
    ratio_median = mine.median() / sk32.median()
    ratio64_least = mine64.least() / sk64.least()
    ratio64_median = mine64.median() / sk64.median()
    ok = lambda v: "yes" if v <= TARGET_VS_SKLEARN_MU else "NO"
    lines += [
        "",
        "## Target",
        "",
        "| target | measured (least / median) | required | met (least / median) |",
        "| --- | ---: | ---: | --- |",
        (f"| daskcluster threaded (uint8) per iteration ÷ scikit-learn MU (float32, its faster setting) | "
        f"{ratio_least:.2f} / {ratio_median:.2f} | ≤ {TARGET_VS_SKLEARN_MU:g} | {ok(ratio_least)} / {ok(ratio_median)} |"),
        (f"| daskcluster threaded per iteration ÷ scikit-learn MU, both float64 | "
        f"{ratio64_least:.2f} / {ratio64_median:.2f} | ≤ {TARGET_VS_SKLEARN_MU:g} | {ok(ratio64_least)} / "
        f"{ok(ratio64_median)} |"),
        "",
        "## Agreement (float64, after the same 10 iterations)",
        "",
        f"Largest relative difference of `H`: {dH:.1e}; of `reconstruction_err_`: {dErr:.1e}.",
        "",
        (f"## Fits from `init='nndsvda'` (`tol=1e-4`, `max_iter={args.fit_iter}`, `random_state=0`, threaded, one run "
        "each)"),
        "",
        "| library | total fit (s) | n_iter | reconstruction error ‖X/255 − WH‖ |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, seconds, n_iter, err in fits:
        lines.append(f"| {name} | {seconds:.2f} | {n_iter} | {err:.2f} |")
    lines += [
        "",
        ("daskcluster's NNDSVD comes from Dask's randomized SVD (`svd_compressed`, 2 QR power iterations, "
        "6 passes) of the data as stored, scikit-learn's from its own randomized SVD of the whole array in "
        "memory; daskcluster computes in float32 for uint8 storage, scikit-learn in float64."),
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
