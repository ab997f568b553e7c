"""KMeans on real MNIST, fitted to convergence: daskcluster vs scikit-learn (lloyd and elkan) vs dask-ml.

Run from the project root::

    python benchmarks/bench_kmeans.py                    # full run, writes benchmarks/RESULTS-kmeans.md
    python benchmarks/bench_kmeans.py --quick --output /tmp/bench_quick.md   # smoke run (5,000 rows, k=10)

What is measured (one process, one run, so that ratios compare like with like):

1. Fits to convergence from the same initial centers, for k in ``--ks`` (default 10, 100 on
   all 70,000 x 784 rows of MNIST train+test; k >= 1,000 on the first 20,000 rows). The
   centers are ``sklearn.cluster.kmeans_plusplus(X / 255, k, random_state=0)`` on the float32
   data, computed once per k and given to everyone as ``init``; ``n_init=1``, ``tol=1e-4``,
   ``max_iter=300``. Cases:

   * scikit-learn ``KMeans(algorithm="lloyd")`` and ``KMeans(algorithm="elkan")`` on float32
     ``X / 255``;
   * dask-ml ``KMeans`` on a Dask array of float32 ``X / 255`` (threaded scheduler), with
     ``max_iter=1000`` and its own ``tol=1e-4``, which is absolute on the summed squared shift
     of the centers (scikit-learn's and daskcluster's is relative to the data's variance), so
     its n_iter differs;
   * daskcluster ``KMeans(algorithm="lloyd")`` and ``KMeans(algorithm="elkan")``, each with
     ``scaled(X_uint8, 1/255)`` (uint8 storage) and with float32 ``X / 255``, on the threaded
     scheduler and on ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``
     (the NumPy array is given to ``fit``: shipping it to the workers is part of each fit).

   Each configuration gets one untimed warm-up fit on 2,000 rows (k=10, 5 iterations) before
   its first timed fit, so first-call costs (numba compilation, imports, worker start-up) are
   not timed. Each timing is the best of ``--rounds`` fits, round-robin across the cases of a k.
   Recorded: fit seconds, n_iter, ms per iteration (fit time / n_iter, nothing subtracted),
   data passes (daskcluster), inertia (recomputed in float64 from the returned centers, the
   same way for all), ratios against the faster of scikit-learn's two algorithms and against
   its lloyd, and a sanity comparison with scikit-learn lloyd's fit: largest difference of
   the centers relative to their largest entry, fraction of equal labels, n_iter difference.

2. Per-pass overhead on tiny chunks: ``KMeans(10, init=fixed, n_init=1, max_iter=20, tol=0)``
   on 8 chunks of 100 rows x 784 features (a Dask array chunked (100, 784)), on threads and on
   the LocalCluster: ms per pass = fit time / passes (``daskcluster.engine.count_passes``).

3. Targets (ticked in the report): threads <= 0.5x the faster scikit-learn and LocalCluster
   <= 0.7x at every k (fit time, uint8 input; float32 shown alongside), per-pass overhead
   <= 10 ms, and >= 10x faster than dask-ml (ms per iteration, threaded scheduler).

The threaded cases and scikit-learn run first, then the LocalCluster is started (once) for the
cluster cases and closed. The report records the CPU model, ``threadpoolctl.threadpool_info()``,
library versions, the command line and the load average at start and end; it is written
atomically to ``--output`` and printed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from machine import cpu_model

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "mnist.npz")
DEFAULT_OUTPUT = os.path.join(HERE, "RESULTS-kmeans.md")

SEED = 0
MAX_ITER = 300
TOL = 1e-4
DASKML_MAX_ITER = 1000
SUBSET_FROM_K = 1000  # k at or above which the fit runs on the first SUBSET_ROWS rows
SUBSET_ROWS = 20_000
QUICK_ROWS = 5_000
WARMUP_ROWS, WARMUP_K, WARMUP_ITER = 2_000, 10, 5
OVERHEAD_CHUNKS, OVERHEAD_CHUNK_ROWS, OVERHEAD_K, OVERHEAD_ITER = 8, 100, 10, 20

TARGET_THREADS = 0.5  # daskcluster threads: fit time <= 0.5x the faster scikit-learn
TARGET_CLUSTER = 0.7  # daskcluster LocalCluster(2x1): fit time <= 0.7x the faster scikit-learn
TARGET_PASS_MS = 10.0  # per-pass overhead on tiny chunks
TARGET_VS_DASKML = 10.0  # daskcluster >= 10x faster than dask-ml per iteration

THREADS = "threads"
CLUSTER = "LocalCluster 2×1"
U8, F32 = "scaled(uint8, 1/255)", "float32 X/255"


# --------------------------------------------------------------------------- data


@dataclass
class Data:
    """The rows a fit runs on, in both storage forms."""

    X8: np.ndarray  # (n, 784) uint8
    Xf: np.ndarray  # (n, 784) float32, X8 / 255

    @property
    def n(self) -> int:
        return self.X8.shape[0]

    def head(self, n: int) -> Data:
        return Data(self.X8[:n], self.Xf[:n])


def load(path: str, n_rows: int | None) -> Data:
    from daskcluster.datasets import load_mnist_npz

    X8, _ = load_mnist_npz(path)
    X8 = np.ascontiguousarray(X8[:n_rows] if n_rows else X8)
    return Data(X8, X8.astype(np.float32) / np.float32(255))


def nearest_f64(Xf: np.ndarray, centers: np.ndarray, rows: int = 4096) -> tuple[np.ndarray, float]:
    """Labels and inertia of ``Xf`` against ``centers``, computed in float64."""
    C = np.asarray(centers, dtype=np.float64)
    c_sq = np.einsum("ij,ij->i", C, C)
    labels = np.empty(Xf.shape[0], dtype=np.int64)
    inertia = 0.0
    for s in range(0, Xf.shape[0], rows):
        x = Xf[s : s + rows].astype(np.float64)
        d = x @ C.T
        d *= -2
        d += c_sq
        d += np.einsum("ij,ij->i", x, x)[:, None]
        lab = d.argmin(axis=1)
        labels[s : s + rows] = lab
        inertia += float(np.maximum(d[np.arange(len(lab)), lab], 0).sum())
    return labels, inertia


def kmeanspp(Xf: np.ndarray, k: int) -> np.ndarray:
    from sklearn.cluster import kmeans_plusplus

    centers, _ = kmeans_plusplus(Xf, k, random_state=SEED)
    return np.ascontiguousarray(centers, dtype=np.float32)


# --------------------------------------------------------------------------- environment


def versions() -> str:
    import importlib.metadata as md

    out = [f"Python {platform.python_version()}"]
    for dist in ("numpy", "scipy", "scikit-learn", "dask", "distributed", "dask-ml", "numba", "threadpoolctl",
                 "daskcluster"):
        try:
            out.append(f"{dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            out.append(f"{dist} (not installed)")
    return ", ".join(out)


def git_commit() -> str:
    def git(*words: str) -> str:
        return subprocess.run(["git", *words], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD") or "unknown"
        if git("status", "--porcelain", "--", "daskcluster"):
            commit += " (daskcluster/ has uncommitted changes)"
        return commit
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_avg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


#: Environment variables that change BLAS/OpenMP behaviour; noted in the report when set.
THREAD_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

#: BLAS threads of this process at start, restored before every timed fit: dask-ml on the threaded
#: scheduler leaves OpenBLAS at 1 thread for the whole process (scikit-learn's
#: ``threadpool_limits(1)``, entered and left concurrently by several Dask threads, restores the
#: wrong value), which would slow every later BLAS call.
BLAS_THREADS: int | None = None


def reset_blas() -> None:
    if BLAS_THREADS:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=BLAS_THREADS, user_api="blas")


# --------------------------------------------------------------------------- fits


@dataclass
class Fit:
    seconds: float
    n_iter: int
    centers: np.ndarray
    labels: np.ndarray | None = None
    passes: int | None = None

    @property
    def ms_per_iter(self) -> float:
        return 1e3 * self.seconds / max(self.n_iter, 1)


#: A fit function: (data, initial centers, max_iter, tol) -> Fit.
FitFn = Callable[[Data, np.ndarray, int, float], Fit]


def sklearn_fit(algorithm: str) -> FitFn:
    def fit(data: Data, centers: np.ndarray, max_iter: int, tol: float) -> Fit:
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=len(centers), init=centers, n_init=1, max_iter=max_iter, tol=tol,
                    algorithm=algorithm)
        t0 = time.perf_counter()
        km.fit(data.Xf)
        seconds = time.perf_counter() - t0
        return Fit(seconds, int(km.n_iter_), km.cluster_centers_, km.labels_)

    return fit


def daskml_fit(data: Data, centers: np.ndarray, max_iter: int, tol: float) -> Fit:
    import dask.array as da
    from dask_ml.cluster import KMeans

    from daskcluster.io import chunk_rows

    # The same row chunking daskcluster picks for a float32 array.
    Xd = da.from_array(data.Xf, chunks=(chunk_rows(data.n, data.Xf.shape[1], 4), -1))
    # "max_iter large" for the timed fits (its tol means something else); warm-ups keep their few iterations.
    km = KMeans(n_clusters=len(centers), init=centers, max_iter=DASKML_MAX_ITER if max_iter >= MAX_ITER else max_iter,
                tol=tol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        km.fit(Xd)
        seconds = time.perf_counter() - t0
    return Fit(seconds, int(km.n_iter_), np.asarray(km.cluster_centers_), np.asarray(km.labels_))


def has_algorithm() -> bool:
    """Whether ``daskcluster.KMeans`` takes an ``algorithm`` parameter (being added)."""
    from daskcluster import KMeans

    return "algorithm" in KMeans().get_params()


def daskcluster_kmeans(n_clusters: int, centers: np.ndarray, algorithm: str, max_iter: int, tol: float) -> Any:
    """Every daskcluster ``KMeans`` of this script is made here.

    ``algorithm`` is passed whenever the estimator has the parameter (so "lloyd" is never left
    to a default), and otherwise only when it is not "lloyd" (so "elkan" fails loudly).
    """
    from daskcluster import KMeans

    params: dict[str, Any] = dict(n_clusters=n_clusters, init=centers, n_init=1, max_iter=max_iter, tol=tol)
    if algorithm != "lloyd" or has_algorithm():
        params["algorithm"] = algorithm
    return KMeans(**params)


def timed_daskcluster(km: Any, X: Any) -> tuple[float, int]:
    from daskcluster.engine import count_passes

    with count_passes() as counter:
        t0 = time.perf_counter()
        km.fit(X)
        seconds = time.perf_counter() - t0
    return seconds, counter.passes


def daskcluster_fit(algorithm: str, storage: str) -> FitFn:
    def fit(data: Data, centers: np.ndarray, max_iter: int, tol: float) -> Fit:
        from daskcluster import scaled

        X = scaled(data.X8, 1 / 255) if storage == U8 else data.Xf
        km = daskcluster_kmeans(len(centers), centers, algorithm, max_iter, tol)
        seconds, passes = timed_daskcluster(km, X)
        return Fit(seconds, int(km.n_iter_), np.asarray(km.cluster_centers_), np.asarray(km.labels_), passes)

    return fit


@dataclass
class Case:
    """One configuration (library, algorithm, input, scheduler) at one k."""

    key: str
    library: str
    algorithm: str
    storage: str
    scheduler: str
    fn: FitFn
    fits: list[Fit] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None
    inertia: float | None = None
    # Sanity comparison with scikit-learn lloyd's fit.
    center_diff: float | None = None
    label_agree: float | None = None
    n_iter_diff: int | None = None

    @property
    def best(self) -> Fit | None:
        return min(self.fits, key=lambda f: f.seconds) if self.fits else None


def make_cases(k: int, scheduler: str, args: argparse.Namespace, elkan_ours: bool) -> list[Case]:
    ours_algorithms = ["lloyd", "elkan"] if elkan_ours else ["lloyd"]
    ours = [Case(f"dc-{a}-{'u8' if s == U8 else 'f32'}-{'thr' if scheduler == THREADS else 'lc'}", "daskcluster",
                 a, s, scheduler, daskcluster_fit(a, s)) for a in ours_algorithms for s in (U8, F32)]
    if scheduler == CLUSTER:
        return ours
    cases = [Case("sk-lloyd", "scikit-learn", "lloyd", F32, "OpenMP", sklearn_fit("lloyd")),
             Case("sk-elkan", "scikit-learn", "elkan", F32, "OpenMP", sklearn_fit("elkan"))]
    dm = Case("daskml", "dask-ml", "lloyd", F32 + " (dask array)", THREADS, daskml_fit)
    if args.no_daskml:
        dm.skipped = "--no-daskml"
    elif args.skip_daskml_above is not None and k > args.skip_daskml_above:
        dm.skipped = f"--skip-daskml-above {args.skip_daskml_above}"
    return [*cases, dm, *ours]


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]


def run_k(k: int, data: Data, cases: list[Case], rounds: int, warm: set[str], warmup: Data) -> None:
    """Warm each configuration up (once per run), then ``rounds`` timed fits round-robin."""
    centers = kmeanspp(data.Xf, k)
    warm_centers = kmeanspp(warmup.Xf, WARMUP_K)
    for r in range(rounds):
        for c in cases:
            if c.error or c.skipped:
                continue
            try:
                if c.key not in warm:
                    reset_blas()
                    c.fn(warmup, warm_centers, WARMUP_ITER, TOL)
                    warm.add(c.key)
                reset_blas()
                fit = c.fn(data, centers, MAX_ITER, TOL)
            except Exception as exc:  # noqa: BLE001 - record any failure and go on with the others
                c.error = _failure(exc)
                print(f"  k={k} {c.key}: FAILED\n{traceback.format_exc()}", flush=True)
                continue
            c.fits.append(fit)
            extra = "" if fit.passes is None else f"  passes={fit.passes}"
            print(f"  [{r + 1}/{rounds}] k={k:<5} {c.key:<18} {fit.seconds:9.3f}s  n_iter={fit.n_iter:<4} "
                  f"{fit.ms_per_iter:9.2f} ms/iter{extra}", flush=True)
    for c in cases:
        if c.fits:
            c.inertia = nearest_f64(data.Xf, c.fits[-1].centers)[1]


def sanity(cases: list[Case]) -> None:
    """Compare every fit with scikit-learn lloyd's (its last round)."""
    ref = next((c for c in cases if c.key == "sk-lloyd" and c.fits), None)
    if ref is None:
        return
    r = ref.fits[-1]
    scale = float(np.abs(r.centers).max()) or 1.0
    for c in cases:
        if not c.fits:
            continue
        f = c.fits[-1]
        c.center_diff = float(np.abs(np.asarray(f.centers, dtype=np.float64) - r.centers).max()) / scale
        if f.labels is not None and r.labels is not None and len(f.labels) == len(r.labels):
            c.label_agree = float(np.mean(np.asarray(f.labels) == r.labels))
        c.n_iter_diff = f.n_iter - r.n_iter


# --------------------------------------------------------------------------- per-pass overhead


@dataclass
class Overhead:
    scheduler: str
    fits: list[tuple[float, int, int]] = field(default_factory=list)  # (seconds, passes, n_iter)
    error: str | None = None

    @property
    def best(self) -> tuple[float, int, int] | None:
        return min(self.fits, key=lambda f: f[0] / max(f[1], 1)) if self.fits else None

    @property
    def ms_per_pass(self) -> float | None:
        b = self.best
        return None if b is None else 1e3 * b[0] / max(b[1], 1)


def run_overhead(data: Data, scheduler: str, rounds: int) -> Overhead:
    import dask.array as da

    n = OVERHEAD_CHUNKS * OVERHEAD_CHUNK_ROWS
    Xf = data.Xf[:n]
    X = da.from_array(Xf, chunks=(OVERHEAD_CHUNK_ROWS, Xf.shape[1]))
    centers = kmeanspp(Xf, OVERHEAD_K)
    out = Overhead(scheduler)
    try:
        for r in range(rounds + 1):  # the first fit is the untimed warm-up
            km = daskcluster_kmeans(OVERHEAD_K, centers, "lloyd", OVERHEAD_ITER, 0.0)
            seconds, passes = timed_daskcluster(km, X)
            if r:
                out.fits.append((seconds, passes, int(km.n_iter_)))
                print(f"  [{r}/{rounds}] overhead {scheduler:<18} {seconds:8.3f}s  passes={passes}  "
                      f"{1e3 * seconds / max(passes, 1):.2f} ms/pass", flush=True)
    except Exception as exc:  # noqa: BLE001
        out.error = _failure(exc)
        print(f"  overhead {scheduler}: FAILED\n{traceback.format_exc()}", flush=True)
    return out


# --------------------------------------------------------------------------- report


def _f(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _x(v: float | None, spec: str) -> str:
    return "-" if v is None else f"{v:{spec}}×"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("✓" if ok else "✗")


@dataclass
class Run:
    """Everything one invocation measured."""

    args: argparse.Namespace
    n_rows: int
    by_k: dict[int, list[Case]]
    overhead: list[Overhead]
    notes: list[str]


def seconds_of(cases: list[Case], key: str) -> float | None:
    c = next((c for c in cases if c.key == key), None)
    return None if c is None or c.best is None else c.best.seconds


def faster_sklearn(cases: list[Case]) -> tuple[float | None, str]:
    sk = [(s, a) for a in ("lloyd", "elkan") if (s := seconds_of(cases, f"sk-{a}")) is not None]
    return min(sk) if sk else (None, "-")


def targets(run: Run) -> list[tuple[str, str, str, bool | None]]:
    """(target, measured on uint8, float32 alongside, met?) rows."""
    rows: list[tuple[str, str, str, bool | None]] = []
    for k, cases in run.by_k.items():
        fast, fast_name = faster_sklearn(cases)
        for sched, tag, limit in ((THREADS, "thr", TARGET_THREADS), (CLUSTER, "lc", TARGET_CLUSTER)):
            for alg in ("lloyd", "elkan"):
                keys = (f"dc-{alg}-u8-{tag}", f"dc-{alg}-f32-{tag}")
                if not any(c.key == keys[0] for c in cases):
                    continue
                u8, f32 = (_ratio(seconds_of(cases, key), fast) for key in keys)
                rows.append((f"k={k}, {sched}, {alg}: fit ≤ {limit}× the faster scikit-learn ({fast_name})",
                             _x(u8, ".2f"), _x(f32, ".2f"), None if u8 is None else u8 <= limit))
    for o in run.overhead:
        ms = o.ms_per_pass
        rows.append((f"per-pass overhead, {OVERHEAD_CHUNKS} chunks of {OVERHEAD_CHUNK_ROWS}×784, {o.scheduler}: "
                     f"≤ {TARGET_PASS_MS:g} ms", f"{_f(ms, '.2f')} ms", "-", None if ms is None else ms <= TARGET_PASS_MS))
    for k, cases in run.by_k.items():
        dm = next((c for c in cases if c.key == "daskml"), None)
        dm_ms = dm.best.ms_per_iter if dm is not None and dm.best else None
        for alg in ("lloyd", "elkan"):
            ours = {s: next((c for c in cases if c.key == f"dc-{alg}-{s}-thr"), None) for s in ("u8", "f32")}
            if ours["u8"] is None:
                continue
            u8, f32 = (_ratio(dm_ms, c.best.ms_per_iter if c is not None and c.best else None) for c in ours.values())
            rows.append((f"k={k}, threads, {alg}: ≥ {TARGET_VS_DASKML:g}× faster than dask-ml per iteration",
                         _x(u8, ".1f"), _x(f32, ".1f"), None if u8 is None else u8 >= TARGET_VS_DASKML))
    return rows


def report(run: Run, env: dict[str, Any]) -> str:
    a = run.args
    L: list[str] = ["# KMeans on MNIST, fitted to convergence (issue: second round)", ""]
    L.append(f"Command (from the project root): `{env['command']}`  ")
    L.append(f"Run started {env['date']}, took {env['elapsed'] / 60:.1f} min; load average (1, 5, 15 min) at start "
             f"{env['load_start']}, at end {env['load_end']}.  ")
    L.append(f"Machine: {env['cpu']} ({os.cpu_count()} logical CPUs, {platform.machine()}); {env['versions']}; "
             f"project commit {env['commit']}.  ")
    thread_env: dict[str, str] = env["thread_env"]
    if "OPENBLAS_CORETYPE" in thread_env:
        L.append(f"**Environment note:** `OPENBLAS_CORETYPE={thread_env['OPENBLAS_CORETYPE']}` is set: OpenBLAS uses "
                 "that kernel instead of the one it detects (see the architecture below).  ")
    L.append("Thread-related environment variables at start: "
             + (", ".join(f"`{k}={v}`" for k, v in thread_env.items()) or "none set") + ".")
    L.append("")
    L.append("`threadpoolctl.threadpool_info()` at start:")
    L.append("")
    L.append("| user_api | internal_api | version | architecture | threading layer | threads | library |")
    L.append("|---|---|---|---|---|---:|---|")
    for i in env["threadpools"]:
        L.append(f"| {i.get('user_api')} | {i.get('internal_api')} | {i.get('version')} | {i.get('architecture', '-')} "
                 f"| {i.get('threading_layer', '-')} | {i.get('num_threads')} | `{os.path.basename(i.get('filepath', ''))}` |")
    L.append("")
    L.append(f"Data: real MNIST train+test (`{os.path.relpath(a.data, ROOT)}`), {run.n_rows:,} × 784 uint8"
             + (f"; k ≥ {SUBSET_FROM_K:,} on the first {min(SUBSET_ROWS, run.n_rows):,} rows" if any(
                 k >= SUBSET_FROM_K for k in run.by_k) else "") + ". scikit-learn and dask-ml get float32 `X/255`; "
             "daskcluster gets `scaled(X_uint8, 1/255)` (uint8 storage) and float32 `X/255`.")
    L.append("")
    L.append("How it was measured:")
    L.append("")
    L.append(f"* Same initial centers for everyone: `sklearn.cluster.kmeans_plusplus(X/255, k, random_state={SEED})` "
             f"on the float32 data, given as `init`; `n_init=1`, `tol={TOL:g}`, `max_iter={MAX_ITER}`. dask-ml: "
             f"`max_iter={DASKML_MAX_ITER}` and its own `tol={TOL:g}`, which is absolute on the summed squared shift of "
             "the centers (scikit-learn's and daskcluster's is relative to the mean variance of the features), so it "
             "stops after a different number of iterations.")
    L.append(f"* Best of {a.rounds} timed fit(s) per case, round-robin across the cases of a k. Before its first "
             f"timed fit each configuration got one untimed warm-up fit ({WARMUP_ROWS:,} rows, k={WARMUP_K}, "
             f"{WARMUP_ITER} iterations), so first-call costs (numba compilation, imports, worker start-up) are "
             "excluded from every timing.")
    L.append("* Threaded scheduler and scikit-learn first; then one "
             "`LocalCluster(n_workers=2, threads_per_worker=1, processes=True)` for the cluster cases. On the cluster "
             "the NumPy array is given to `fit`, so shipping it to the workers is part of each timed fit.")
    L.append(f"* BLAS is reset to its starting thread count ({BLAS_THREADS}) before every fit: a dask-ml fit on the "
             "threaded scheduler leaves this process's OpenBLAS at 1 thread otherwise.")
    L.append("* ms/iter = fit time / n_iter, nothing subtracted. passes = `daskcluster.engine.count_passes()`. "
             "inertia = float64 sum of squared distances of `X/255` to the nearest returned center, recomputed the "
             "same way for all (dask-ml's own `inertia_` is a sum of unsquared distances).")
    L.append("* ÷ faster sk = fit time ÷ the faster of scikit-learn's lloyd and elkan at that k; ÷ sk lloyd = fit "
             "time ÷ scikit-learn lloyd's. Sanity columns (not pass/fail), against scikit-learn lloyd's fit: "
             "Δcenters = max |c − c_sk| ÷ max |c_sk|; labels = fraction of equal `labels_`; Δn_iter = n_iter − n_iter_sk.")
    L.append("")
    header = ("| k | rows | implementation | algorithm | input | scheduler | fit s | n_iter | ms/iter | passes | inertia | "
              "÷ faster sk | ÷ sk lloyd | Δcenters | labels | Δn_iter |")
    for k, cases in run.by_k.items():
        fast, fast_name = faster_sklearn(cases)
        lloyd = seconds_of(cases, "sk-lloyd")
        L.append(f"### k = {k}")
        L.append("")
        L.append(f"Faster scikit-learn algorithm at this k: {fast_name}.")
        L.append("")
        L.append(header)
        L.append("|---:|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        rows = env["rows_by_k"][k]
        for c in cases:
            head = f"| {k} | {rows:,} | {c.library} | {c.algorithm} | {_cell(c.storage)} | {c.scheduler} |"
            if c.skipped or c.error:
                what = f"skipped ({c.skipped})" if c.skipped else f"failed: {_cell(c.error or '')}"
                L.append(f"{head} {what} | - | - | - | - | - | - | - | - | - |")
                continue
            b = c.best
            assert b is not None
            L.append(f"{head} {b.seconds:.3f} | {b.n_iter} | {b.ms_per_iter:.2f} | {_f(b.passes, 'd')} | "
                     f"{_f(c.inertia, '.6g')} | {_x(_ratio(b.seconds, fast), '.2f')} | "
                     f"{_x(_ratio(b.seconds, lloyd), '.2f')} | {_f(c.center_diff, '.1e')} | "
                     f"{_f(c.label_agree, '.4f')} | {_f(c.n_iter_diff, '+d')} |")
        L.append("")
    L.append(f"### Per-pass overhead (`KMeans({OVERHEAD_K}, init=fixed, n_init=1, max_iter={OVERHEAD_ITER}, tol=0)` "
             f"on a Dask array of {OVERHEAD_CHUNKS} chunks of {OVERHEAD_CHUNK_ROWS} × 784 float32)")
    L.append("")
    L.append(f"ms/pass = fit time ÷ passes; best of {a.rounds} fit(s) after one untimed warm-up fit.")
    L.append("")
    L.append("| scheduler | fit s | passes | n_iter | ms/pass |")
    L.append("|---|---:|---:|---:|---:|")
    for o in run.overhead:
        if o.error or o.best is None:
            L.append(f"| {o.scheduler} | failed: {_cell(o.error or 'no fit')} | - | - | - |")
            continue
        s, p, it = o.best
        L.append(f"| {o.scheduler} | {s:.3f} | {p} | {it} | {_f(o.ms_per_pass, '.2f')} |")
    L.append("")
    L.append("### Targets (ratios from this run; ✓/✗ decided on the uint8 input)")
    L.append("")
    L.append("| target | measured (uint8) | float32 | met |")
    L.append("|---|---:|---:|:---:|")
    for name, u8, f32, ok in targets(run):
        L.append(f"| {name} | {u8} | {f32} | {_mark(ok)} |")
    L.append("")
    if run.notes:
        L.append("### Notes")
        L.append("")
        L += [f"* {n}" for n in run.notes]
        L.append("")
    return "\n".join(L)


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, fsync'd, then renamed."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- main


@contextmanager
def local_cluster() -> Iterator[Any]:
    """One LocalCluster (2 processes x 1 thread) with a default Client, closed on exit."""
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=40) as lc, distributed.Client(lc) as client:
        yield client


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ks", default=None,
                   help=f"comma-separated k (default 10,100,1000; --quick: 10); k ≥ {SUBSET_FROM_K} runs on the "
                        f"first {SUBSET_ROWS:,} rows")
    p.add_argument("--rounds", type=int, default=None,
                   help="timed fits per case; the best is kept (default 2; --quick: 1)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK_ROWS:,} rows, k=10, 1 round; writes a file only with --output")
    p.add_argument("--no-cluster", action="store_true", help="skip the LocalCluster cases")
    p.add_argument("--no-daskml", action="store_true", help="skip dask-ml")
    p.add_argument("--skip-daskml-above", type=int, default=None, metavar="K",
                   help="skip dask-ml for k > K (it is slow at large k); the report says so")
    p.add_argument("--data", default=DEFAULT_DATA, help="MNIST .npz in the Keras layout")
    p.add_argument("--output", default=None,
                   help=f"Markdown report (default {os.path.relpath(DEFAULT_OUTPUT, ROOT)}; --quick: none)")
    args = p.parse_args(argv)
    args.command = shlex.join(["python", os.path.relpath(os.path.abspath(__file__), ROOT),
                               *(argv if argv is not None else sys.argv[1:])])
    if args.ks is None:
        args.ks = "10" if args.quick else "10,100,1000"
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    try:
        args.k_list = [int(k) for k in args.ks.split(",") if k.strip()]
    except ValueError:
        p.error(f"--ks must be comma-separated integers; got {args.ks!r}")
    if not args.k_list or min(args.k_list) < 1:
        p.error(f"--ks must list positive integers; got {args.ks!r}")
    if args.rounds < 1:
        p.error(f"--rounds must be >= 1; got {args.rounds}")
    if args.output is None and not args.quick:
        args.output = DEFAULT_OUTPUT
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Before distributed is imported: starting a LocalCluster sets OMP_NUM_THREADS=1 etc. in this
    # process's environment (for the workers it spawns).
    thread_env = {v: os.environ[v] for v in THREAD_ENV if v in os.environ}
    import dask
    import sklearn.cluster  # noqa: F401 - loads scikit-learn's OpenMP runtime, so threadpool_info lists it
    from threadpoolctl import threadpool_info

    import daskcluster  # noqa: F401

    global BLAS_THREADS
    pools = threadpool_info()
    BLAS_THREADS = max((i["num_threads"] for i in pools if i.get("user_api") == "blas"), default=None)
    env: dict[str, Any] = {
        "command": args.command, "date": _dt.datetime.now().isoformat(timespec="minutes"),
        "load_start": load_avg(), "cpu": cpu_model(), "versions": versions(), "commit": git_commit(),
        "threadpools": pools, "thread_env": thread_env,
    }
    t_start = time.perf_counter()
    print(f"{env['command']}\nCPU: {env['cpu']}; load average at start {env['load_start']}", flush=True)
    for i in pools:
        print(f"  {i.get('user_api')}: {i.get('internal_api')} {i.get('version')} "
              f"{i.get('architecture', '')} {i.get('num_threads')} threads", flush=True)
    if "OPENBLAS_CORETYPE" in thread_env:
        print(f"  note: OPENBLAS_CORETYPE={thread_env['OPENBLAS_CORETYPE']} is set", flush=True)

    data = load(args.data, QUICK_ROWS if args.quick else None)
    warmup = data.head(WARMUP_ROWS)
    notes: list[str] = []
    elkan_ours = True
    if not has_algorithm():
        if args.quick:
            elkan_ours = False
            msg = ("daskcluster elkan skipped: `daskcluster.KMeans` has no `algorithm` parameter yet "
                   "(its fits ran with the estimator's only algorithm, Lloyd)")
            print(msg, flush=True)
            notes.append(msg)
        else:
            notes.append("`daskcluster.KMeans` has no `algorithm` parameter yet: the elkan cases fail, and the lloyd "
                         "cases ran with the estimator's only algorithm (Lloyd).")
    rows_by_k = {}
    for k in args.k_list:
        rows_by_k[k] = min(SUBSET_ROWS, data.n) if k >= SUBSET_FROM_K else data.n
        if k > rows_by_k[k]:
            print(f"k={k} > {rows_by_k[k]} rows: dropped", flush=True)
            notes.append(f"k={k} dropped: more clusters than the {rows_by_k[k]:,} rows.")
    ks = [k for k in args.k_list if k <= rows_by_k[k]]
    by_k = {k: make_cases(k, THREADS, args, elkan_ours) for k in ks}
    for k, cases in by_k.items():
        notes += [f"k={k}: dask-ml skipped ({c.skipped})." for c in cases if c.skipped]

    overhead: list[Overhead] = []
    warm: set[str] = set()
    print(f"\n[threaded scheduler and scikit-learn] {data.n:,} rows, ks={ks}, rounds={args.rounds}", flush=True)
    with dask.config.set(scheduler="threads"):
        for k, cases in by_k.items():
            run_k(k, data.head(rows_by_k[k]), cases, args.rounds, warm, warmup)
        overhead.append(run_overhead(data, THREADS, args.rounds))

    if not args.no_cluster:
        print("\n[LocalCluster(n_workers=2, threads_per_worker=1, processes=True)]", flush=True)
        with local_cluster():
            for k in ks:
                cluster_cases = make_cases(k, CLUSTER, args, elkan_ours)
                run_k(k, data.head(rows_by_k[k]), cluster_cases, args.rounds, warm, warmup)
                by_k[k] += cluster_cases
            overhead.append(run_overhead(data, CLUSTER, args.rounds))
    else:
        notes.append("LocalCluster cases not run (--no-cluster).")
    for cases in by_k.values():
        sanity(cases)

    env["elapsed"] = time.perf_counter() - t_start
    env["load_end"] = load_avg()
    env["rows_by_k"] = rows_by_k
    run = Run(args, data.n, by_k, overhead, notes)
    text = report(run, env)
    print("\n" + text, flush=True)
    print(f"Load average at end {env['load_end']}; total {env['elapsed']:.0f} s.")
    if args.output:
        write_atomic(args.output, text + "\n")
        print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
