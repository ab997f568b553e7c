"""KMeans on real MNIST: daskcluster vs scikit-learn vs dask-ml, side by side in one run.

Run from the project root::

    python benchmarks/bench_kmeans.py            # full run: 70,000 x 784, writes benchmarks/RESULTS.md
    python benchmarks/bench_kmeans.py --quick    # smoke test: 10,000 rows, 1 repeat, writes nothing

What is measured (all in one process, one run, so that ratios compare like with like):

1. Time per Lloyd iteration, k = 10 and k = 100, from the same explicit initial centers
   (k distinct rows drawn by a seeded RNG) with ``max_iter=20, tol=0`` so every
   implementation runs exactly 20 iterations (``n_iter_`` is checked). Time per iteration
   is fit time / n_iter, nothing subtracted. For daskcluster the median of the per-iteration
   seconds of the progress hook is also reported. Cases:

   * a bare NumPy float32 GEMM ``(n x 784) @ (784 x k)``: the floor;
   * scikit-learn ``KMeans(algorithm="lloyd", n_init=1)`` on float32 ``X / 255``;
   * daskcluster on the threaded scheduler (no Client) with ``scaled(X_uint8, 1/255)``
     (uint8 storage) and with float32 ``X / 255``;
   * dask-ml ``KMeans(init=centers, max_iter=20, tol=0)`` on a dask array of float32
     ``X / 255`` (threaded scheduler);
   * on a ``distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``:
     daskcluster with ``scaled(X_uint8, 1/255)`` (the NumPy array is given to ``fit``, so
     shipping it to the workers is part of every fit) and dask-ml on the float32 dask array
     (persisted on the workers once, before timing: shipping is *not* part of its fits).

   Each case is run once as a warm-up (not timed, fewer iterations), then ``--repeats``
   times round-robin across the cases of a phase; the median is reported.

2. A default fit at k = 10 (each library's own default init and n_init, ``random_state=0``,
   threaded scheduler): total fit time (median of the repeats), n_iter, inertia recomputed
   the same way for everyone (float64 sum of squared distances of ``X / 255`` to the nearest
   returned center) and majority-label accuracy (each cluster labelled with its most frequent
   true digit; clusters are the nearest returned center in float64).

The Markdown goes to ``benchmarks/RESULTS.md`` under ``## KMeans on MNIST (issue: core)``;
only that section is replaced, other sections of the file are kept.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "mnist.npz")
DEFAULT_OUTPUT = os.path.join(HERE, "RESULTS.md")
SECTION = "## KMeans on MNIST (issue: core)"
KS = (10, 100)
MAX_ITER = 20
SEED = 0

# Targets (ratios measured in the same run).
TARGET_THREADS_VS_SKLEARN = 0.6  # daskcluster threads, k=10: <= 0.6 x scikit-learn
TARGET_CLUSTER_VS_SKLEARN = 1.5  # daskcluster LocalCluster(2 workers), k=10: <= 1.5 x scikit-learn
TARGET_VS_GEMM = 1.2  # daskcluster k=100: <= 1.2 x bare GEMM
TARGET_VS_DASKML = 5.0  # daskcluster >= 5 x faster than dask-ml everywhere


# --------------------------------------------------------------------------- data


def load_mnist(path: str, n_rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST train + test as (n, 784) uint8 and (n,) labels; the first ``n_rows`` rows if given."""
    with np.load(path) as f:
        X = np.concatenate([f["x_train"], f["x_test"]]).reshape(-1, 28 * 28)
        y = np.concatenate([f["y_train"], f["y_test"]]).astype(np.int64)
    if n_rows is not None:
        X, y = X[:n_rows], y[:n_rows]
    return np.ascontiguousarray(X), y


def nearest_f64(X64: np.ndarray, centers: np.ndarray, rows: int = 8192) -> tuple[np.ndarray, float]:
    """Labels and inertia of ``X64`` (float64) against ``centers``, all in float64."""
    C = np.asarray(centers, dtype=np.float64)
    c_sq = np.einsum("ij,ij->i", C, C)
    labels = np.empty(X64.shape[0], dtype=np.int64)
    inertia = 0.0
    for s in range(0, X64.shape[0], rows):
        x = X64[s : s + rows]
        d = x @ C.T
        d *= -2
        d += c_sq
        d += np.einsum("ij,ij->i", x, x)[:, None]
        lab = d.argmin(axis=1)
        labels[s : s + rows] = lab
        inertia += float(np.maximum(d[np.arange(len(lab)), lab], 0).sum())
    return labels, inertia


def majority_accuracy(labels: np.ndarray, y: np.ndarray, k: int) -> float:
    """Accuracy when each cluster is labelled with its most frequent true class."""
    n_classes = int(y.max()) + 1
    table = np.bincount(labels * n_classes + y, minlength=k * n_classes).reshape(k, n_classes)
    return float(table.max(axis=1).sum() / len(y))


# --------------------------------------------------------------------------- contention

#: Before a timed run, wait (at most this long) until other processes use < QUIET_BUSY of the CPUs.
QUIET_BUSY = 0.15
QUIET_MAX_WAIT = 60.0
#: A timed run (>= MIN_CHECK_SECONDS) during which other processes used more than this fraction of
#: the CPUs is discarded and re-run, while the re-run budget lasts.
NOISY_FRACTION = 0.10
MIN_CHECK_SECONDS = 0.2


def _cpu_busy_seconds() -> float:
    """CPU-seconds spent non-idle by the whole machine since boot (from /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU-seconds of this process and its children (LocalCluster nanny and worker processes)."""
    import psutil

    total = 0.0
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


class Contention:
    """Measures how much CPU *other* processes (other users of a shared machine) take."""

    def __init__(self, budget_seconds: float) -> None:
        self.wait_budget = budget_seconds
        self.waited = 0.0
        self.reruns = 0
        self.max_reruns = 40
        self.max_noise = 0.0  # worst other-process CPU fraction among kept runs

    def others_busy(self, interval: float = 0.5) -> float:
        b0, o0, t0 = _cpu_busy_seconds(), _own_cpu_seconds(), time.perf_counter()
        time.sleep(interval)
        b1, o1, t1 = _cpu_busy_seconds(), _own_cpu_seconds(), time.perf_counter()
        return max(0.0, (b1 - b0) - (o1 - o0)) / ((t1 - t0) * (os.cpu_count() or 1))

    def wait_quiet(self) -> None:
        t0 = time.perf_counter()
        limit = min(QUIET_MAX_WAIT, max(0.0, self.wait_budget - self.waited))
        while self.others_busy(0.3) > QUIET_BUSY and time.perf_counter() - t0 < limit:
            pass
        self.waited += time.perf_counter() - t0

    def measure(self, fn: Callable[[], Run]) -> tuple[Run, float]:
        """Run ``fn`` and return it with the CPU fraction other processes took meanwhile."""
        b0, o0, t0 = _cpu_busy_seconds(), _own_cpu_seconds(), time.perf_counter()
        run = fn()
        b1, o1, wall = _cpu_busy_seconds(), _own_cpu_seconds(), time.perf_counter() - t0
        if wall < MIN_CHECK_SECONDS:  # too short for /proc/stat's 10 ms ticks
            return run, 0.0
        return run, max(0.0, (b1 - b0) - (o1 - o0)) / (wall * (os.cpu_count() or 1))


# --------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One timed fit (or GEMM)."""

    seconds: float
    n_iter: int = 1
    centers: np.ndarray | None = None
    hook_median: float | None = None  # daskcluster: median per-iteration seconds of the progress hook
    passes: int | None = None  # daskcluster: passes over the data
    noise: float = 0.0  # CPU fraction taken by other processes during the run

    @property
    def per_iter(self) -> float:
        return self.seconds / max(self.n_iter, 1)


@dataclass
class Case:
    """A benchmark cell: a callable doing one timed fit, repeated."""

    key: str
    library: str
    input: str
    scheduler: str
    k: int | None
    fn: Callable[[int], Run]  # argument: max_iter (a warm-up uses fewer iterations)
    runs: list[Run] = field(default_factory=list)
    error: str | None = None

    def med(self, attr: str = "per_iter") -> float | None:
        vals = [getattr(r, attr) for r in self.runs if getattr(r, attr) is not None]
        return statistics.median(vals) if vals else None

    def spread(self) -> str:
        vals = [r.per_iter for r in self.runs]
        return f"{min(vals):.4f}-{max(vals):.4f}" if vals else "-"


def _quiet() -> Any:
    cm = warnings.catch_warnings()
    cm.__enter__()
    warnings.simplefilter("ignore")
    return cm


def gemm_case(Xf: np.ndarray, centers: np.ndarray) -> Callable[[int], Run]:
    ct = centers.T

    def run(_max_iter: int) -> Run:
        times = []
        for _ in range(9):
            t0 = time.perf_counter()
            Xf @ ct
            times.append(time.perf_counter() - t0)
        return Run(statistics.median(times))

    return run


def sklearn_case(Xf: np.ndarray, centers: np.ndarray) -> Callable[[int], Run]:
    from sklearn.cluster import KMeans as SKKMeans

    def run(max_iter: int) -> Run:
        km = SKKMeans(n_clusters=len(centers), init=centers, n_init=1, max_iter=max_iter, tol=0, algorithm="lloyd")
        t0 = time.perf_counter()
        km.fit(Xf)
        return Run(time.perf_counter() - t0, km.n_iter_, km.cluster_centers_)

    return run


def daskcluster_fit(km: Any, X: Any) -> Run:
    from daskcluster.engine import count_passes
    from daskcluster.progress import progress_hook

    seconds: list[float] = []

    def hook(rep: Any) -> None:
        if rep.stage == "fit":
            seconds.append(rep.seconds)

    with count_passes() as counter, progress_hook(hook):
        t0 = time.perf_counter()
        km.fit(X)
        elapsed = time.perf_counter() - t0
    return Run(elapsed, km.n_iter_, km.cluster_centers_, statistics.median(seconds) if seconds else None,
               counter.passes)


def daskcluster_case(X: Any, centers: np.ndarray) -> Callable[[int], Run]:
    from daskcluster import KMeans

    def run(max_iter: int) -> Run:
        # n_init=1 spelled out, as for scikit-learn (with an array init "auto" also means 1).
        km = KMeans(n_clusters=len(centers), init=centers, n_init=1, max_iter=max_iter, tol=0)
        return daskcluster_fit(km, X)

    return run


def daskml_case(Xd: Any, centers: np.ndarray) -> Callable[[int], Run]:
    def run(max_iter: int) -> Run:
        from dask_ml.cluster import KMeans as DMKMeans

        cm = _quiet()
        try:
            km = DMKMeans(n_clusters=len(centers), init=centers, max_iter=max_iter, tol=0)
            t0 = time.perf_counter()
            km.fit(Xd)
            elapsed = time.perf_counter() - t0
        finally:
            cm.__exit__(None, None, None)
        return Run(elapsed, int(km.n_iter_), np.asarray(km.cluster_centers_))

    return run


#: BLAS threads of this process at start-up, restored before every run: dask-ml on the threaded
#: scheduler leaves OpenBLAS at 1 thread for the whole process (scikit-learn's
#: ``threadpool_limits(1)`` entered and left concurrently by several Dask threads restores the
#: wrong value), which would slow every later BLAS call, the GEMM floor included.
BLAS_THREADS: int | None = None


def reset_blas() -> None:
    """Give BLAS back the number of threads it had when the script started."""
    if BLAS_THREADS:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=BLAS_THREADS, user_api="blas")


def timed(cont: Contention, fn: Callable[[], Run], label: str) -> Run:
    """One timed run after waiting for a quiet machine; re-run (budget permitting) if others interfered."""
    while True:
        reset_blas()
        cont.wait_quiet()
        run, noise = cont.measure(fn)
        run.noise = noise
        if noise <= NOISY_FRACTION or cont.reruns >= cont.max_reruns or cont.waited >= cont.wait_budget:
            cont.max_noise = max(cont.max_noise, noise)
            return run
        cont.reruns += 1
        print(f"  ({label}: other processes took {noise:.0%} of the CPUs during the run; re-running)", flush=True)



def run_phase(name: str, cases: list[Case], repeats: int, warmup_iter: int, cont: Contention) -> None:
    """Warm each case up once, then run all cases round-robin ``repeats`` times."""
    print(f"\n[{name}] warm-up ({warmup_iter} iterations) ...", flush=True)
    for c in cases:
        try:
            reset_blas()
            c.fn(warmup_iter)
        except Exception as exc:  # noqa: BLE001 - record any failure (dask-ml vs scikit-learn versions)
            c.error = f"{type(exc).__name__}: {exc}".strip()
            print(f"  {c.key}: FAILED\n{traceback.format_exc()}", flush=True)
    for r in range(repeats):
        for c in cases:
            if c.error:
                continue
            try:
                run = timed(cont, lambda: c.fn(MAX_ITER), c.key)
            except Exception as exc:  # noqa: BLE001
                c.error = f"{type(exc).__name__}: {exc}".strip()
                print(f"  {c.key}: FAILED\n{traceback.format_exc()}", flush=True)
                continue
            c.runs.append(run)
            extra = "" if run.hook_median is None else f"  hook median {run.hook_median:.4f}s"
            print(f"  [{r + 1}/{repeats}] {c.key:<34} {run.seconds:8.3f}s  n_iter={run.n_iter:<3} "
                  f"{run.per_iter:.4f}s/iter{extra}  (others: {run.noise:.0%} CPU)", flush=True)


# --------------------------------------------------------------------------- default fits


@dataclass
class DefaultFit:
    library: str
    settings: str
    runs: list[Run] = field(default_factory=list)
    error: str | None = None
    inertia: float | None = None
    accuracy: float | None = None
    reported_inertia: float | None = None

    def med_seconds(self) -> float | None:
        return statistics.median(r.seconds for r in self.runs) if self.runs else None


def default_fits(X: np.ndarray, Xf: np.ndarray, Xd: Any, X64: np.ndarray, y: np.ndarray,
                 repeats: int, cont: Contention) -> list[DefaultFit]:
    from dask_ml.cluster import KMeans as DMKMeans
    from sklearn.cluster import KMeans as SKKMeans

    from daskcluster import KMeans, scaled

    k = 10

    def sk() -> tuple[Run, float]:
        km = SKKMeans(n_clusters=k, random_state=SEED)
        t0 = time.perf_counter()
        km.fit(Xf)
        return Run(time.perf_counter() - t0, km.n_iter_, km.cluster_centers_), km.inertia_

    def dc() -> tuple[Run, float]:
        km = KMeans(n_clusters=k, random_state=SEED)
        return daskcluster_fit(km, scaled(X, 1 / 255)), km.inertia_

    def dm() -> tuple[Run, float]:
        cm = _quiet()
        try:
            km = DMKMeans(n_clusters=k, random_state=SEED)
            t0 = time.perf_counter()
            km.fit(Xd)
            elapsed = time.perf_counter() - t0
        finally:
            cm.__exit__(None, None, None)
        return Run(elapsed, int(km.n_iter_), np.asarray(km.cluster_centers_)), float(km.inertia_)

    fits = [
        (DefaultFit("scikit-learn", "float32 X/255; init='k-means++', n_init='auto' (1), lloyd, tol=1e-4"), sk),
        (DefaultFit("daskcluster", "scaled(uint8, 1/255), threads; init='k-means||', n_init='auto' (1), tol=1e-4"), dc),
        (DefaultFit("dask-ml", "float32 X/255 dask array, threads; init='k-means||', n_init='auto', tol=1e-4"), dm),
    ]
    print(f"\n[default fits, k={k}, random_state={SEED}] ({repeats} repeats, libraries already warm)", flush=True)
    for r in range(repeats):
        for fit, fn in fits:
            if fit.error:
                continue
            try:
                box: dict[str, float] = {}

                def once(fn: Callable[[], tuple[Run, float]] = fn) -> Run:
                    run, box["inertia"] = fn()
                    return run

                run = timed(cont, once, fit.library)
                inertia = box["inertia"]
            except Exception as exc:  # noqa: BLE001
                fit.error = f"{type(exc).__name__}: {exc}".strip()
                print(f"  {fit.library}: FAILED\n{traceback.format_exc()}", flush=True)
                continue
            fit.runs.append(run)
            fit.reported_inertia = float(inertia)
            print(f"  [{r + 1}/{repeats}] {fit.library:<13} {run.seconds:8.3f}s  n_iter={run.n_iter}  "
                  f"(others: {run.noise:.0%} CPU)", flush=True)
    for fit, _ in fits:
        if fit.runs:
            labels, fit.inertia = nearest_f64(X64, fit.runs[-1].centers)
            fit.accuracy = majority_accuracy(labels, y, k)
    return [f for f, _ in fits]


# --------------------------------------------------------------------------- kernel profile


class LineTimer:
    """Wall time per source line of the given functions (inclusive of what a line calls).

    A ``sys.settrace`` line timer: cheap here, since the kernels run few Python lines that each
    do a lot of NumPy work. Generators are handled (the time between a ``yield`` and the
    resumption is not counted).
    """

    def __init__(self, funcs: list[Any]) -> None:
        self.codes = {f.__code__: f for f in funcs}
        self.times: dict[tuple[Any, int], float] = {}
        self.hits: dict[tuple[Any, int], int] = {}
        self._last: dict[Any, tuple[int, float]] = {}

    def _global(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code in self.codes:
            self._last[frame] = (frame.f_lineno, time.perf_counter())
            return self._local
        return None

    def _local(self, frame: Any, event: str, arg: Any) -> Any:
        now = time.perf_counter()
        prev = self._last.pop(frame, None)
        if prev is not None:
            key = (frame.f_code, prev[0])
            self.times[key] = self.times.get(key, 0.0) + now - prev[1]
            self.hits[key] = self.hits.get(key, 0) + 1
        if event == "line":
            self._last[frame] = (frame.f_lineno, time.perf_counter())
        return self._local

    def __enter__(self) -> LineTimer:
        self.times.clear()
        self.hits.clear()
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.settrace(None)

    def report(self, total: float, min_share: float = 0.005) -> list[str]:
        import inspect
        import linecache

        out = []
        for code, func in self.codes.items():
            rows = sorted((line, t) for (c, line), t in self.times.items() if c is code)
            if not rows:
                continue
            out.append(f"  {inspect.getsourcefile(func).split('daskcluster', 1)[-1].lstrip('/')}:"
                       f"{code.co_name}  ({sum(t for _, t in rows) * 1e3:.1f} ms incl.)")
            for line, t in rows:
                if t < min_share * total:
                    continue
                src = linecache.getline(code.co_filename, line).strip()
                out.append(f"    {line:>4} {t * 1e3:8.1f} ms {100 * t / total:5.1f}%  x{self.hits[(code, line)]:<4} "
                           f"{src[:90]}")
        return out


def profile_lloyd_kernel(X: np.ndarray, Xf: np.ndarray, repeats: int, cont: Contention | None = None) -> list[str]:
    """Line profile of ``lloyd_kernel`` on one block holding all rows, k = 10 and 100.

    BLAS is limited to one thread, as in a task on the threaded scheduler (daskcluster limits
    it there) or on a distributed worker (``OPENBLAS_NUM_THREADS=1``). Returns printable lines.
    """
    from threadpoolctl import threadpool_limits

    from daskcluster.kernels import blocks as B
    from daskcluster.kernels import distances as D
    from daskcluster.kernels import kmeans as K

    funcs = [K.lloyd_kernel]
    for mod, names in ((K, ("cluster_sums",)), (D, ("nearest_center",)),
                       (B, ("iter_compute_slices", "row_sq_norms", "check_finite_rows"))):
        funcs += [getattr(mod, n) for n in names if callable(getattr(mod, n, None))]
    out = [f"lloyd_kernel on one block of {X.shape[0]:,} rows, BLAS limited to 1 thread; "
           f"wall ms per line (inclusive), best of {repeats} traced calls; lines < 0.5% omitted."]
    rng = np.random.default_rng(SEED)
    with threadpool_limits(1, user_api="blas"):
        for k in KS:
            C = Xf[np.sort(rng.choice(X.shape[0], size=k, replace=False))].copy()
            if cont is not None:
                cont.wait_quiet()
            gemm = min(_time(lambda: Xf @ C.T) for _ in range(repeats))
            for label, block, affine in (("scaled(uint8, 1/255)", X, B.Affine(1 / 255)), ("float32", Xf, B.Affine())):
                params = K.LloydParams(C, affine, n_far=k, moments=False)
                info = B.ChunkInfo(0, 0)
                K.lloyd_kernel(block, None, info, params)  # warm-up
                if cont is not None:
                    cont.wait_quiet()
                plain = min(_time(lambda: K.lloyd_kernel(block, None, info, params)) for _ in range(repeats))
                best: LineTimer | None = None
                best_t = float("inf")
                for _ in range(repeats):
                    if cont is not None:
                        cont.wait_quiet()
                    timer = LineTimer(funcs)
                    with timer:
                        t = _time(lambda: K.lloyd_kernel(block, None, info, params))
                    if t < best_t:
                        best, best_t = timer, t
                out.append("")
                out.append(f"k={k}, {label}: lloyd_kernel {plain * 1e3:.1f} ms untraced ({best_t * 1e3:.1f} ms traced); "
                           f"bare float32 GEMM ({X.shape[0]}x784)@(784x{k}) on 1 thread {gemm * 1e3:.1f} ms "
                           f"-> kernel = {plain / gemm:.2f}x GEMM")
                assert best is not None
                out += best.report(best_t)
    return out


def _time(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- report


def _fmt(v: float | None, spec: str = ".4f", none: str = "-") -> str:
    return none if v is None else format(v, spec)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def environment() -> dict[str, str]:
    import dask
    import distributed
    import sklearn
    from threadpoolctl import threadpool_info

    import daskcluster

    try:
        import dask_ml

        dask_ml_version = dask_ml.__version__
    except Exception as exc:  # noqa: BLE001
        dask_ml_version = f"not importable ({exc})"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "daskcluster"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        commit += " (daskcluster/ has uncommitted changes)" if dirty else ""
    except Exception:  # noqa: BLE001
        commit = "unknown"
    blas = ", ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
                     for i in threadpool_info())
    return {
        "date": _dt.datetime.now().isoformat(timespec="minutes"),
        "python": platform.python_version(),
        "cpu": f"{os.cpu_count()} logical CPUs, {platform.processor() or platform.machine()}",
        "libraries": (f"numpy {np.__version__}, scikit-learn {sklearn.__version__}, dask {dask.__version__}, "
                      f"distributed {distributed.__version__}, dask-ml {dask_ml_version}, "
                      f"daskcluster {daskcluster.__version__}"),
        "threadpools": blas,
        "commit": commit,
    }


def build_report(args: argparse.Namespace, n_rows: int, cases: dict[str, Case], defaults: list[DefaultFit],
                 inertias: dict[str, float], env: dict[str, str], load: tuple[str, str],
                 elapsed: float, cont: Contention,
                 profile: list[str]) -> tuple[str, list[tuple[str, str, bool | None]]]:
    def per(key: str) -> float | None:
        c = cases.get(key)
        return None if c is None else c.med()

    lines = [SECTION, ""]
    lines.append(f"Command (from the project root): `{args.command}`  ")
    lines.append(f"Data: real MNIST train+test, {n_rows:,} x 784 (`{os.path.relpath(args.data, ROOT)}`). "
                 f"Run started {env['date']}, total {elapsed / 60:.1f} min, load average before/after: {load[0]} / {load[1]}.  ")
    lines.append(f"Machine: {env['cpu']}; Python {env['python']}; {env['libraries']}; "
                 f"BLAS/OpenMP at start: {env['threadpools']}; project commit {env['commit']}.  ")
    lines.append(f"BLAS is reset to {BLAS_THREADS} thread(s) before every run: a dask-ml fit on the threaded "
                 "scheduler leaves this process's OpenBLAS at 1 thread (scikit-learn's `threadpool_limits(1)`, "
                 "entered and left concurrently by several Dask threads, restores the wrong value), which would "
                 "otherwise slow every later BLAS call, the GEMM floor included.  ")
    lines.append(f"Shared machine: before each timed run the script waited for other processes to use < "
                 f"{QUIET_BUSY:.0%} of the CPUs ({cont.waited:.0f} s waited in all) and re-ran {cont.reruns} run(s) "
                 f"during which they took > {NOISY_FRACTION:.0%}; worst other-process CPU share in a kept run "
                 f"(runs ≥ {MIN_CHECK_SECONDS} s): {cont.max_noise:.0%}.")
    lines.append("")
    lines.append(f"### Time per Lloyd iteration (fixed init, `max_iter={MAX_ITER}, tol=0`; median of "
                 f"{args.repeats} run(s) after a warm-up)")
    lines.append("")
    lines.append("Same initial centers for everyone (k distinct rows chosen with `numpy.random.default_rng(0)`). "
                 "s/iter = fit time / n_iter, nothing subtracted (so it includes input handling, the final "
                 "labels/inertia and, for daskcluster on the cluster, shipping the NumPy array to the workers). "
                 "'hook' = median per-iteration seconds reported by `daskcluster.progress.progress_hook`. "
                 "'inertia' = float64 inertia of `X/255` against the centers after the run (a check that "
                 "everyone ran the same Lloyd iterations). 'passes' = `daskcluster.engine.count_passes()` "
                 "(20 Lloyd passes + 1 for the final inertia; the `labels_` pass is a map, not counted, so "
                 "daskcluster reads the data 22 times per fit, scikit-learn 21). 'others' CPU' = the largest share of the CPUs that "
                 "other processes on the machine took during a kept run of the case.")
    lines.append("")
    lines.append("| k | implementation | input | scheduler | n_iter | s/iter | hook s/iter | passes | "
                 "÷ scikit-learn | ÷ GEMM | dask-ml ÷ this | inertia | others' CPU |")
    lines.append("|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in KS:
        sk = per(f"sklearn-{k}")
        gemm = per(f"gemm-{k}")
        for key, c in cases.items():
            if c.k != k:
                continue
            p = c.med()
            if c.error:
                err = c.error.replace("|", "\\|").replace("\n", " ")
                lines.append(f"| {k} | {c.library} | {_cell(c.input)} | {c.scheduler} | - | failed: {_cell(err[:300])} "
                             "| - | - | - | - | - | - | - |")
                continue
            n_iter = "-" if c.library.startswith("NumPy") else str(c.runs[-1].n_iter)
            dm_key = "daskml-thr" if c.scheduler == "threads" else "daskml-lc"
            dm = per(f"{dm_key}-{k}") if c.library == "daskcluster" else None
            passes = c.runs[-1].passes if c.runs and c.runs[-1].passes is not None else None
            inert = inertias.get(c.key)
            lines.append(
                f"| {k} | {c.library} | {_cell(c.input)} | {c.scheduler} | {n_iter} | {_fmt(p)} | {_fmt(c.med('hook_median'))} | "
                f"{'-' if passes is None else passes} | {_fmt(_ratio(p, sk), '.2f')}× | {_fmt(_ratio(p, gemm), '.2f')}× | "
                f"{_fmt(_ratio(dm, p), '.2f', '-')}{'×' if dm else ''} | {_fmt(inert, '.6g')} | "
                f"{'-' if c.library.startswith('NumPy') else format(max(r.noise for r in c.runs), '.0%')} |"
            )
    lines.append("")

    # Targets.
    targets: list[tuple[str, str, bool | None]] = []

    def target(name: str, value: float | None, limit: float, le: bool = True, what: str = "") -> None:
        ok = None if value is None else (value <= limit if le else value >= limit)
        targets.append((name, f"{_fmt(value, '.2f')}× {what}".strip(), ok))

    for key, sched in (("dc-u8-thr", "threads, uint8 scaled"), ("dc-f32-thr", "threads, float32")):
        target(f"k=10, {sched}: s/iter ≤ {TARGET_THREADS_VS_SKLEARN}× scikit-learn",
               _ratio(per(f"{key}-10"), per("sklearn-10")), TARGET_THREADS_VS_SKLEARN, what="of scikit-learn")
    target(f"k=10, LocalCluster 2 workers, uint8 scaled: s/iter ≤ {TARGET_CLUSTER_VS_SKLEARN}× scikit-learn",
           _ratio(per("dc-u8-lc-10"), per("sklearn-10")), TARGET_CLUSTER_VS_SKLEARN, what="of scikit-learn")
    for key, sched in (("dc-u8-thr", "threads, uint8 scaled"), ("dc-f32-thr", "threads, float32"),
                       ("dc-u8-lc", "LocalCluster, uint8 scaled")):
        target(f"k=100, {sched}: s/iter ≤ {TARGET_VS_GEMM}× bare GEMM", _ratio(per(f"{key}-100"), per("gemm-100")),
               TARGET_VS_GEMM, what="of the GEMM")
    for k in KS:
        for key, dm_key, sched in (("dc-u8-thr", "daskml-thr", "threads, uint8 scaled"),
                                   ("dc-f32-thr", "daskml-thr", "threads, float32"),
                                   ("dc-u8-lc", "daskml-lc", "LocalCluster, uint8 scaled")):
            target(f"k={k}, {sched}: ≥ {TARGET_VS_DASKML:g}× faster than dask-ml per iteration",
                   _ratio(per(f"{dm_key}-{k}"), per(f"{key}-{k}")), TARGET_VS_DASKML, le=False, what="faster")
    dc_def = next((f for f in defaults if f.library == "daskcluster"), None)
    dm_def = next((f for f in defaults if f.library == "dask-ml"), None)
    if dc_def and dm_def:
        target(f"default fit k=10 (threads): ≥ {TARGET_VS_DASKML:g}× faster than dask-ml (total fit time)",
               _ratio(dm_def.med_seconds(), dc_def.med_seconds()), TARGET_VS_DASKML, le=False, what="faster")

    lines.append("### Targets (ratios from this run)")
    lines.append("")
    lines.append("| target | measured | met |")
    lines.append("|---|---:|:---:|")
    for name, value, ok in targets:
        lines.append(f"| {name} | {value} | {'n/a' if ok is None else ('yes' if ok else '**no**')} |")
    lines.append("")

    lines.append(f"### Default fit, k=10, `random_state={SEED}` (threaded scheduler; median fit time of "
                 f"{args.default_repeats} run(s))")
    lines.append("")
    lines.append("inertia: float64 sum of squared distances of `X/255` to the nearest returned center, recomputed "
                 "the same way for all; accuracy: each cluster (nearest returned center) labelled with its most "
                 "frequent true digit. dask-ml's own `inertia_` is the sum of (unsquared) Euclidean distances "
                 "(`pairwise_distances_argmin_min(...)[1].sum()`), hence not comparable; its `tol` is absolute "
                 "on the center shift, where scikit-learn's and daskcluster's is relative to the data variance.")
    lines.append("")
    lines.append("| implementation | settings | fit s | n_iter | inertia (recomputed) | inertia_ (reported) | "
                 "majority-label accuracy |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    for f in defaults:
        if f.error:
            err = f.error.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {f.library} | {_cell(f.settings)} | failed: {_cell(err[:300])} | - | - | - | - |")
            continue
        lines.append(f"| {f.library} | {_cell(f.settings)} | {_fmt(f.med_seconds(), '.2f')} | {f.runs[-1].n_iter} | "
                     f"{_fmt(f.inertia, '.6g')} | {_fmt(f.reported_inertia, '.6g')} | {_fmt(f.accuracy, '.4f')} |")
    lines.append("")
    lines.append("### Where daskcluster's kernel spends its time")
    lines.append("")
    lines.append("<details><summary>Line profile of <code>daskcluster/kernels/kmeans.py: lloyd_kernel</code> "
                 "(same run; <code>python benchmarks/bench_kmeans.py --profile</code> prints it alone)</summary>")
    lines.append("")
    lines.append("```text")
    lines += profile
    lines.append("```")
    lines.append("")
    lines.append("</details>")
    lines.append("")
    return "\n".join(lines), targets


def write_section(path: str, section: str) -> None:
    """Replace (or append) this benchmark's section in ``path``, keeping every other section."""
    text = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    if not text.strip():
        text = "# Benchmark results\n\nEach section is written by one script in `benchmarks/`; see its command.\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    body = section.rstrip("\n") + "\n"
    if pattern.search(text):
        text = pattern.sub(lambda _m: body + "\n", text, count=1)
        text = text.rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + body
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000-row subset, 1 repeat; writes no Markdown")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per case (default 3; quick: 1)")
    parser.add_argument("--data", default=DEFAULT_DATA, help="mnist.npz (Keras layout)")
    parser.add_argument("--output", default=None,
                        help=f"Markdown file to update (default {os.path.relpath(DEFAULT_OUTPUT, ROOT)}; "
                             "quick: none)")
    parser.add_argument("--no-cluster", action="store_true", help="skip the LocalCluster cases")
    parser.add_argument("--max-wait", type=float, default=None,
                        help="seconds the run may spend in all waiting for other processes to leave the CPUs "
                             "(default 600; quick: 30)")
    parser.add_argument("--profile", action="store_true",
                        help="only line-profile daskcluster's lloyd_kernel on one block of all rows, and print it")
    args = parser.parse_args(argv)
    args.command = "python benchmarks/bench_kmeans.py" + "".join(
        " " + a for a in (argv if argv is not None else sys.argv[1:]))
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.default_repeats = args.repeats
    output = args.output or (None if args.quick else DEFAULT_OUTPUT)
    warmup_iter = 2 if args.quick else 3

    import dask.array as da
    import distributed

    from daskcluster import scaled
    from daskcluster.io import chunk_rows

    global BLAS_THREADS
    from threadpoolctl import threadpool_info

    BLAS_THREADS = max((i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"), default=None)
    env = environment()
    t_start = time.perf_counter()
    load_before = " ".join(f"{v:.2f}" for v in os.getloadavg())
    X, y = load_mnist(args.data, 10_000 if args.quick else None)
    n = X.shape[0]
    Xf = X.astype(np.float32) / np.float32(255)
    if args.profile:
        print("\n".join(profile_lloyd_kernel(X, Xf, args.repeats, Contention(120.0))))
        return 0
    X64 = X.astype(np.float64) / 255.0
    # dask-ml input: the same row chunking daskcluster picks for a float32 array.
    Xd = da.from_array(Xf, chunks=(chunk_rows(n, Xf.shape[1], Xf.dtype.itemsize), -1))
    print(f"MNIST {X.shape} uint8, dask-ml chunks {Xd.chunks[0]}, repeats={args.repeats}", flush=True)

    rng = np.random.default_rng(SEED)
    init = {k: Xf[np.sort(rng.choice(n, size=k, replace=False))].copy() for k in KS}

    cases: dict[str, Case] = {}

    def add(case: Case) -> Case:
        cases[f"{case.key}"] = case
        return case

    threads: list[Case] = []
    cluster: list[Case] = []
    for k in KS:
        c = init[k]
        threads += [
            add(Case(f"gemm-{k}", "NumPy GEMM (floor)", f"float32 ({n}×784)@(784×{k})", "BLAS", k, gemm_case(Xf, c))),
            add(Case(f"sklearn-{k}", "scikit-learn", "float32 X/255", "OpenMP", k, sklearn_case(Xf, c))),
            add(Case(f"dc-u8-thr-{k}", "daskcluster", "scaled(uint8, 1/255)", "threads", k,
                     daskcluster_case(scaled(X, 1 / 255), c))),
            add(Case(f"dc-f32-thr-{k}", "daskcluster", "float32 X/255", "threads", k, daskcluster_case(Xf, c))),
            add(Case(f"daskml-thr-{k}", "dask-ml", "float32 X/255 (dask array)", "threads", k, daskml_case(Xd, c))),
        ]
    cont = Contention(budget_seconds=args.max_wait if args.max_wait is not None else (30.0 if args.quick else 600.0))
    run_phase("threaded scheduler", threads, args.repeats, warmup_iter, cont)
    defaults = default_fits(X, Xf, Xd, X64, y, args.default_repeats, cont)

    if not args.no_cluster:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                      silence_logs=40) as lc, distributed.Client(lc) as client:
            Xd_lc = client.persist(Xd)
            distributed.wait(Xd_lc)
            for k in KS:
                c = init[k]
                cluster += [
                    add(Case(f"dc-u8-lc-{k}", "daskcluster", "scaled(uint8, 1/255)", "LocalCluster 2×1", k,
                             daskcluster_case(scaled(X, 1 / 255), c))),
                    add(Case(f"daskml-lc-{k}", "dask-ml", "float32 X/255 (dask array, persisted)", "LocalCluster 2×1",
                             k, daskml_case(Xd_lc, c))),
                ]
            run_phase("LocalCluster(n_workers=2, threads_per_worker=1, processes=True)", cluster, args.repeats,
                      warmup_iter, cont)
            del Xd_lc

    # Order the table: per k, GEMM, scikit-learn, daskcluster cases, dask-ml cases.
    order = ["gemm", "sklearn", "dc-u8-thr", "dc-f32-thr", "dc-u8-lc", "daskml-thr", "daskml-lc"]
    cases = {f"{p}-{k}": cases[f"{p}-{k}"] for k in KS for p in order if f"{p}-{k}" in cases}

    inertias = {}
    for key, c in cases.items():
        if c.runs and c.runs[-1].centers is not None:
            inertias[key] = nearest_f64(X64, c.runs[-1].centers)[1]

    # n_iter check.
    for key, c in cases.items():
        if c.runs and not c.library.startswith("NumPy"):
            its = {r.n_iter for r in c.runs}
            if its != {MAX_ITER}:
                print(f"WARNING: {key} ran {sorted(its)} iterations, not {MAX_ITER}", flush=True)

    print("\n[line profile of daskcluster's lloyd_kernel]", flush=True)
    try:
        profile = profile_lloyd_kernel(X, Xf, args.repeats, cont)
    except Exception as exc:  # noqa: BLE001 - the kernel's signature may change under us
        profile = [f"profile failed: {type(exc).__name__}: {exc}"]
    print("\n".join(profile), flush=True)

    elapsed = time.perf_counter() - t_start
    load_after = " ".join(f"{v:.2f}" for v in os.getloadavg())
    section, targets = build_report(args, n, cases, defaults, inertias, env, (load_before, load_after),
                                    elapsed, cont, profile)

    # Console table.
    print("\n" + "=" * 118)
    print(f"{'k':>4} {'case':<16} {'implementation':<20} {'input':<38} {'n_iter':>6} {'s/iter':>8} "
          f"{'min-max':>15} {'hook':>8} {'/sklearn':>8} {'/GEMM':>7}")
    for key, c in cases.items():
        p = c.med()
        sk, gemm = cases.get(f"sklearn-{c.k}"), cases.get(f"gemm-{c.k}")
        if c.error:
            print(f"{c.k:>4} {key:<16} {c.library:<20} FAILED: {c.error[:200]}")
            continue
        print(f"{c.k:>4} {key:<16} {c.library:<20} {c.input + ' / ' + c.scheduler:<38.38} "
              f"{(c.runs[-1].n_iter if c.runs else 0):>6} {_fmt(p):>8} {c.spread():>15} {_fmt(c.med('hook_median')):>8} "
              f"{_fmt(_ratio(p, sk.med() if sk else None), '.2f'):>8} {_fmt(_ratio(p, gemm.med() if gemm else None), '.2f'):>7}")
    print("\nDefault fits (k=10):")
    for f in defaults:
        if f.error:
            print(f"  {f.library:<13} FAILED: {f.error[:300]}")
        else:
            print(f"  {f.library:<13} {f.med_seconds():8.2f}s  n_iter={f.runs[-1].n_iter:<4} inertia={f.inertia:.6g} "
                  f"accuracy={f.accuracy:.4f}")
    print("\nTargets:")
    for name, value, ok in targets:
        print(f"  [{'n/a' if ok is None else ('MET' if ok else 'MISSED'):>6}] {name}: {value}")
    print(f"\nTotal {elapsed:.0f}s")
    if output:
        write_section(output, section)
        print(f"Wrote section '{SECTION}' of {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
