"""Benchmark: MiniBatchKMeans on real MNIST (70,000 x 784), scikit-learn against daskcluster.

Runs, for several seeds and interleaved so that machine noise hits every method alike:

* scikit-learn ``MiniBatchKMeans(n_clusters=10)`` on a float32 memmap of X / 255;
* daskcluster ``MiniBatchKMeans(n_clusters=10)`` on the same memmap;
* daskcluster on a uint8 Zarr copy of X read as ``scaled(path, 1 / 255)``, with ``cache='auto'``
  (persisted in memory for the fit) and with ``cache=False`` (streamed from the store);

and once the full ``daskcluster.KMeans(n_clusters=10)`` as the reference inertia. For every fit:
wall time of ``fit`` (default parameters, so it includes scikit-learn's and our ``labels_`` /
``inertia_`` pass), the inertia on all rows computed the same way for every model (float64, on
X / 255), and the majority-label accuracy.

Usage::

    python benchmarks/bench_minibatch.py [--seeds 5] [--threads N] [--mnist PATH] [--workdir DIR] [--output FILE]

``--threads N`` limits everything to N threads (BLAS and OpenMP through threadpoolctl, and Dask's
scheduler: synchronous for 1, N threads otherwise); on a machine shared with other jobs, where
OpenMP's spinning threads make multi-threaded timings erratic, ``--threads 1`` and the CPU-time
column give a stable comparison. Prints a Markdown table; ``--output`` also writes it to a file.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def load_mnist(path: str | None) -> tuple[np.ndarray, np.ndarray]:
    from daskcluster.datasets import find_mnist, load_mnist_npz

    found = Path(path) if path else find_mnist(Path(__file__).resolve().parents[1])
    if found is None or not found.is_file():
        sys.exit("MNIST not found: pass --mnist PATH (Keras mnist.npz) or set $DASKCLUSTER_MNIST.")
    return load_mnist_npz(found)


def inertia_all_rows(X_u8: np.ndarray, centers: np.ndarray) -> tuple[float, np.ndarray]:
    """Inertia of all rows of X / 255 against ``centers``, in float64, and the labels."""
    c = np.asarray(centers, dtype=np.float64)
    c_sq = (c**2).sum(1)
    total = 0.0
    labels = np.empty(len(X_u8), dtype=np.int64)
    for s in range(0, len(X_u8), 10000):
        x = X_u8[s : s + 10000].astype(np.float64) / 255.0
        d = (x**2).sum(1)[:, None] - 2 * x @ c.T + c_sq
        lab = d.argmin(1)
        labels[s : s + 10000] = lab
        total += float(np.maximum(d[np.arange(len(x)), lab], 0).sum())
    return total, labels


def majority_accuracy(labels: np.ndarray, y: np.ndarray, k: int) -> float:
    hits = 0
    for j in range(k):
        members = y[labels == j]
        if len(members):
            hits += int(np.bincount(members).max())
    return hits / len(y)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--mnist", default=None)
    parser.add_argument("--workdir", default=None, help="where the memmap and Zarr copies go (default: a temp dir)")
    parser.add_argument("--output", default=None)
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS/OpenMP and Dask to N threads")
    args = parser.parse_args(argv)
    from contextlib import ExitStack

    import dask
    from threadpoolctl import threadpool_limits

    limits = ExitStack()
    if args.threads:
        limits.enter_context(threadpool_limits(args.threads))
        limits.enter_context(dask.config.set(scheduler="synchronous") if args.threads == 1
                             else dask.config.set(scheduler="threads", num_workers=args.threads))
    with limits:
        return run(args)


def run(args: argparse.Namespace) -> int:

    import dask
    import sklearn
    from sklearn.cluster import MiniBatchKMeans as SkMiniBatchKMeans

    import daskcluster
    from daskcluster import KMeans, scaled
    from daskcluster.io import write_zarr

    try:
        from daskcluster import MiniBatchKMeans
    except ImportError:
        from daskcluster.cluster._minibatch import MiniBatchKMeans

    X, y = load_mnist(args.mnist)
    k = 10
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-minibatch-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        mm_path = work / "mnist_f32.npy"
        mm = np.lib.format.open_memmap(mm_path, mode="w+", dtype=np.float32, shape=X.shape)
        mm[:] = X / np.float32(255)
        mm.flush()
        del mm
        memmap = np.load(mm_path, mmap_mode="r")
        zarr_path = work / "mnist_u8.zarr"
        write_zarr(X, zarr_path, overwrite=True)
        zarr_source = scaled(str(zarr_path), 1 / 255)

        methods: dict[str, Callable[[int], Any]] = {
            "scikit-learn MiniBatchKMeans, float32 memmap": lambda s: SkMiniBatchKMeans(k, random_state=s).fit(memmap),
            "daskcluster MiniBatchKMeans, float32 memmap": lambda s: MiniBatchKMeans(k, random_state=s).fit(memmap),
            "daskcluster MiniBatchKMeans, uint8 Zarr (cache='auto')":
                lambda s: MiniBatchKMeans(k, random_state=s).fit(zarr_source),
            "daskcluster MiniBatchKMeans, uint8 Zarr (cache=False)":
                lambda s: MiniBatchKMeans(k, random_state=s, cache=False).fit(zarr_source),
        }
        # warm-up: imports, page cache, BLAS threads
        for fit in methods.values():
            fit(0)
        rows: dict[str, list[tuple[float, float, float, int, float]]] = {name: [] for name in methods}
        for seed in range(args.seeds):
            for name, fit in methods.items():
                c0, t0 = time.process_time(), time.perf_counter()
                model = fit(seed)
                seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
                inertia, labels = inertia_all_rows(X, model.cluster_centers_)
                rows[name].append((seconds, inertia, majority_accuracy(labels, y, k), int(model.n_steps_), cpu))
                print(f"seed {seed} {name}: {seconds:.3f}s (cpu {cpu:.3f}s) inertia {inertia:.6g} "
                      f"steps {model.n_steps_}", file=sys.stderr)
        t0 = time.perf_counter()
        full = KMeans(k, random_state=0).fit(memmap)
        full_seconds = time.perf_counter() - t0
        full_inertia, full_labels = inertia_all_rows(X, full.cluster_centers_)
        full_acc = majority_accuracy(full_labels, y, k)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    sk_name = next(iter(methods))
    sk_time = statistics.median(r[0] for r in rows[sk_name])
    sk_cpu = statistics.median(r[4] for r in rows[sk_name])
    sk_inertia = statistics.median(r[1] for r in rows[sk_name])
    threads = f"{args.threads} thread(s)" if args.threads else "default threads"
    lines = [
        f"MNIST {X.shape[0]} x {X.shape[1]}, n_clusters={k}, {args.seeds} seeds (random_state=0..{args.seeds - 1}), "
        f"{threads}, default parameters otherwise; median over seeds (min in brackets).",
        "",
        "| method | fit time s | time / sklearn | CPU time s | CPU / sklearn | inertia (all rows) | "
        "inertia / sklearn | vs full k-means | accuracy | steps |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, rs in rows.items():
        t = statistics.median(r[0] for r in rs)
        cpu = statistics.median(r[4] for r in rs)
        inertia = statistics.median(r[1] for r in rs)
        acc = statistics.median(r[2] for r in rs)
        steps = statistics.median(r[3] for r in rs)
        lines.append(
            f"| {name} | {t:.3f} [{min(r[0] for r in rs):.3f}] | {t / sk_time:.2f}x | "
            f"{cpu:.3f} [{min(r[4] for r in rs):.3f}] | {cpu / sk_cpu:.2f}x | {inertia:.6g} | "
            f"{inertia / sk_inertia - 1:+.2%} | {inertia / full_inertia - 1:+.2%} | {acc:.3f} | {steps:g} |"
        )
    lines.append(
        f"| daskcluster KMeans (full, reference) | {full_seconds:.3f} | {full_seconds / sk_time:.2f}x | | | "
        f"{full_inertia:.6g} | {full_inertia / sk_inertia - 1:+.2%} | +0.00% | {full_acc:.3f} | "
        f"{full.n_iter_} iterations |"
    )
    lines += [
        "",
        f"Per seed (time s / inertia): " + "; ".join(
            f"{name.split(',')[0].split()[0]}{'' if 'memmap' in name else ' ' + name.split('(')[-1].rstrip(')')}: "
            + ", ".join(f"{r[0]:.2f}/{r[1]:.4g}" for r in rs)
            for name, rs in rows.items()
        ),
        "",
        f"Python {platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
        f"dask {dask.__version__}, daskcluster {daskcluster.__version__}; {os.cpu_count()} CPUs; "
        f"Dask scheduler: {dask.config.get('scheduler', None) or 'default (threads)'}.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
