"""A saved model applied to data: ``apply_model(..., "predict")`` (what ``daskcluster predict`` and
the ``apply`` job kind run) beside scikit-learn's ``KMeans.predict`` with the same centers.

Run from the project root::

    python benchmarks/bench_apply.py                # 5 rounds, writes benchmarks/RESULTS-apply.md
    python benchmarks/bench_apply.py --repeats 3
    python benchmarks/bench_apply.py --quick        # 1 round on 10,000 rows, writes nothing

The data: MNIST (70,000 x 784 uint8) in a Zarr store, read as x/255; the model: our
``KMeans(n_clusters=10, random_state=0)`` fitted once and saved (``model.zip``). Two tasks,
each timed for both libraries, round-robin:

* **file to file**: the saved model and the Zarr store in, the labels on disk out. Ours:
  ``apply_model(model.zip, ZarrData(scale=1/255), "predict", out=labels.zarr)`` on Dask's
  threaded scheduler (the labels written chunk by chunk into a store renamed into place). The
  peer's fastest way with the same inputs: read the store into memory, ``X / 255`` as float32,
  ``sklearn.cluster.KMeans.predict`` (centers set from our model; float32 is scikit-learn's
  fastest dtype here), ``numpy.save`` of the labels.
* **predict in memory**: the rows already in memory; ours ``model.predict(scaled(X, 1/255))``
  (uint8 rows, cast tile by tile), scikit-learn's ``predict(X32)`` on the float32 copy it needs.

The labels must be equal (ties aside: counted and reported). Reported: least and median of
each, the ratio ours / scikit-learn (below 1: ours faster), the CPU model, the BLAS kernel
(``threadpoolctl``) and the load average during the rounds (the machine is shared).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
OUTPUT = HERE / "RESULTS-apply.md"

from bench_kmeans import cpu_model, load_avg, versions


def blas() -> str:
    from threadpoolctl import threadpool_info

    return "; ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, "
                     f"{i.get('num_threads')} threads)" for i in threadpool_info() if i.get("user_api") == "blas")


def prepare(folder: Path, n_rows: int | None) -> tuple[Path, Path, np.ndarray, Any]:
    """The Zarr store of MNIST, our fitted model saved, the rows in memory, scikit-learn's model."""
    import dask
    from sklearn.cluster import KMeans as SKKMeans

    from daskcluster import KMeans, persistence
    from daskcluster.data import scaled
    from daskcluster.datasets import find_mnist, load_mnist_npz
    from daskcluster.io import write_zarr

    path = find_mnist()
    if path is None:
        sys.exit("MNIST not found: set $DASKCLUSTER_MNIST or put shared/data/mnist.npz above the working directory.")
    X, _ = load_mnist_npz(path)
    X = X.reshape(len(X), -1)[:n_rows]
    store = folder / "mnist.zarr"
    with dask.config.set(scheduler="threads"):
        write_zarr(X, store)
        model = KMeans(10, random_state=0).fit(scaled(X, 1 / 255))
    model_path = folder / "model.zip"
    persistence.save(model, model_path)
    sk = SKKMeans(10, init=model.cluster_centers_, n_init=1, max_iter=1).fit(model.cluster_centers_)
    sk.cluster_centers_ = model.cluster_centers_.astype(np.float32)
    return store, model_path, X, sk


def graph_counts(model: Any, data: Any, store: Path) -> dict[str, int]:
    """Tasks, blocks and bytes of the file-to-file predict (no data computed)."""
    from daskcluster import io
    from daskcluster.jobs.sources import load

    labels = model.predict(load(data).X)
    graph = dict(labels.__dask_graph__())
    blocks = labels.numblocks[0]
    n = int(labels.shape[0])
    stored = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    return {"tasks": len(graph), "blocks": blocks, "other": len(graph) - 2 * blocks,
            "label_chunks": -(-n // max(1, io.chunk_rows(n, 1, 4, io.DEFAULT_CHUNK_BYTES, min_chunks=1))),
            "stored_bytes": stored, "raw_bytes": n * int(model.n_features_in_), "label_bytes": 4 * n}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 round on 10,000 rows; writes nothing")
    args = parser.parse_args(argv)
    repeats, n_rows = (1, 10_000) if args.quick else (args.repeats, None)

    import dask
    import zarr

    from daskcluster import persistence
    from daskcluster.data import scaled
    from daskcluster.jobs.apply import apply_model
    from daskcluster.jobs.schema import ZarrData

    times: dict[str, list[float]] = {k: [] for k in ("ours file", "sklearn file", "ours memory", "sklearn memory")}
    loads: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store, model_path, X, sk = prepare(folder, n_rows)
        model = persistence.load(model_path)
        data = ZarrData(kind="zarr", path=str(store), scale="1/255")

        def ours_file() -> np.ndarray:
            with dask.config.set(scheduler="threads"):
                apply_model(model_path, data, "predict", out=folder / "labels.zarr", overwrite=True)
            return np.asarray(zarr.open_array(str(folder / "labels.zarr"), mode="r")[:])

        def sklearn_file() -> np.ndarray:
            rows = zarr.open_array(str(store), mode="r")[:]
            labels = sk.predict(rows.astype(np.float32) / np.float32(255))
            np.save(folder / "labels.npy", labels.astype(np.int32))
            return labels

        X32 = X.astype(np.float32) / np.float32(255)
        cases: dict[str, Callable[[], Any]] = {
            "ours file": ours_file, "sklearn file": sklearn_file,
            "ours memory": lambda: np.asarray(model.predict(scaled(X, 1 / 255))),
            "sklearn memory": lambda: sk.predict(X32),
        }
        labels: dict[str, np.ndarray] = {}
        for _ in range(repeats):
            for name, fn in cases.items():
                seconds, labels[name] = timed(fn)
                times[name].append(seconds)
                loads.append(os.getloadavg()[0])
                print(f"{name}: {seconds:.3f}s (load {loads[-1]:.1f})", flush=True)
        differ = int((labels["ours file"] != labels["sklearn file"]).sum())
        differ_memory = int((labels["ours memory"] != labels["sklearn memory"]).sum())
        counts = graph_counts(model, data, store)
    n = len(X)
    least = {k: min(v) for k, v in times.items()}
    median = {k: statistics.median(v) for k, v in times.items()}
    lines = [
        "# A saved model applied to data: `apply_model` / `daskcluster predict` vs scikit-learn `KMeans.predict`",
        "",
        f"Measured {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} on {platform.node()} ({os.cpu_count()} CPUs, "
        f"{cpu_model()}), {repeats} round(s) round-robin; load average during the rounds "
        f"{min(loads):.1f} to {max(loads):.1f} (now {load_avg()}).",
        "",
        f"BLAS: {blas()}.  ",
        f"Versions: {versions()}.",
        "",
        "Command (from the project root):",
        "",
        "```bash",
        "python benchmarks/bench_apply.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "```",
        "",
        f"MNIST, {n:,} x 784 uint8 in a Zarr store, read as x/255; `KMeans(n_clusters=10, random_state=0)` fitted "
        "once by daskcluster and saved; scikit-learn's `KMeans` given the same centers (float32).",
        "",
        "| task | daskcluster least (s) | median (s) | scikit-learn least (s) | median (s) | ratio of medians (ours / sklearn) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for task, key in (("file to file (read the store, predict, write the labels)", "file"),
                      ("predict, rows in memory", "memory")):
        o, s = f"ours {key}", f"sklearn {key}"
        lines.append(f"| {task} | {least[o]:.3f} | {median[o]:.3f} | {least[s]:.3f} | {median[s]:.3f} | "
                     f"{median[o] / median[s]:.2f} |")
    lines += [
        "",
        f"Labels differing from scikit-learn's: {differ} of {n:,} (file to file), {differ_memory} (in memory): "
        "rows at equal distance from two centers, up to rounding.",
        "",
        "Ours writes a Zarr store chunk by chunk (compressed, renamed into place when complete) and works on "
        "the uint8 rows tile by tile; scikit-learn needs the float32 copy of all rows in memory (220 MB for "
        "MNIST) and writes one `.npy`.",
        "",
        "## Counts (independent of the machine)",
        "",
        f"File to file: **1 pass** over the rows; the labels graph has {counts['tasks']} tasks "
        f"({counts['blocks']} reads of the store's row blocks, {counts['blocks']} label kernels, "
        f"{counts['other']} other), then one write task per labels chunk ({counts['label_chunks']}); bytes read: "
        f"the store's {counts['stored_bytes']:,} stored bytes ({counts['raw_bytes']:,} uint8 values); bytes moved "
        f"between tasks: the labels, {counts['label_bytes']:,} (int32). Under Dask's threaded scheduler the "
        "label kernels run with one BLAS thread each (`daskcluster.blas.blas_for_tasks`).",
        "",
        "## Where the time went (file to file, 2.2x scikit-learn before)",
        "",
        "The counts above were already minimal (one read per row block, one kernel per block, no data moved but "
        "the labels); the in-memory predict and the lazy one on the synchronous scheduler with one BLAS thread "
        "took the same time. The gap was the threaded scheduler computing the labels with *every* kernel "
        "starting a full OpenBLAS team: 2 tasks x 2 BLAS threads on 2 cores, whose spinning threads preempt "
        "each other (`iter_products`, the tile GEMM, showed as dominant). A fit's passes already held one BLAS "
        "thread per task; writing labels (`jobs/outputs.write_labels`, used by `predict` and by jobs) and "
        "`transform`'s store now do too. Same run, file to file on 70,000 rows, 3 rounds round-robin at load "
        "average 25: 0.34 / 0.65 s (least / median) with one BLAS thread per kernel, 7.8 / 8.5 s without. "
        "Distributed workers start with one BLAS thread each, so this was a threaded-scheduler (in-process) cost.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if not args.quick:
        OUTPUT.write_text(report)
        print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
