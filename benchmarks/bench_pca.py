"""PCA of MNIST (70,000 x 784, uint8 read as x / 255): daskcluster's exact PCA from the
covariance (one pass) against dask-ml's (tall-and-skinny QR, and its randomized solver) and
scikit-learn's (the same covariance solver, and its randomized one), in one run.

    python benchmarks/bench_pca.py [--rounds 3] [--components 50] [--rows N]

Every contender fits ``--components`` components and projects all rows (``fit`` then
``transform``, the result computed). daskcluster and dask-ml read a Dask array of the rows
(chunks of 10,000 rows; daskcluster the ``uint8`` rows through ``scaled(X, 1/255)``, dask-ml
the float32 ``X / 255`` it needs) on the threaded scheduler; scikit-learn gets the float32
``X / 255`` in memory (not timed). MNIST is found by ``daskcluster.datasets.find_mnist``
(``$DASKCLUSTER_MNIST`` or ``shared/data/mnist.npz`` above the current folder). Rounds alternate the order of the contenders; the
table gives the least and median seconds, the ratio of each to daskcluster (least / median of
the per-round ratios), and the largest difference of the explained variances from scikit-learn's
exact ones. Writes ``benchmarks/RESULTS-pca.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from machine import cpu_model


def machine() -> str:
    from threadpoolctl import threadpool_info

    cpu = cpu_model()
    blas = ", ".join(f"{i['internal_api']} {i.get('architecture', '')} ({i['num_threads']} threads)"
                     for i in threadpool_info())
    return f"{cpu}, {os.cpu_count()} CPUs; BLAS: {blas}"


def load_rows(rows: int | None) -> tuple[np.ndarray, str]:
    from daskcluster.datasets import find_mnist, load_mnist_npz

    path = find_mnist()
    if path is None:
        raise SystemExit("MNIST not found: set DASKCLUSTER_MNIST to the Keras mnist.npz")
    X, _ = load_mnist_npz(path)
    where = f"MNIST ({path})"
    X = np.ascontiguousarray(X.reshape(len(X), -1)[:rows])
    return X, where


def contenders(X8: np.ndarray, k: int) -> dict[str, Callable[[], Any]]:
    import dask.array as da
    from dask_ml.decomposition import PCA as DaskMLPCA
    from sklearn.decomposition import PCA as SkPCA

    from daskcluster import scaled
    from daskcluster.decomposition import PCA

    X32 = X8.astype(np.float32) / np.float32(255)
    d8 = da.from_array(X8, chunks=(10_000, -1))
    d32 = da.from_array(X32, chunks=(10_000, -1))

    def ours() -> Any:
        model = PCA(k).fit(scaled(d8, 1 / 255))
        model.transform(scaled(d8, 1 / 255)).compute()
        return model.explained_variance_

    def dask_ml(solver: str) -> Callable[[], Any]:
        def run() -> Any:
            model = DaskMLPCA(k, svd_solver=solver, random_state=0).fit(d32)
            model.transform(d32).compute()
            return model.explained_variance_
        return run

    def sklearn(solver: str) -> Callable[[], Any]:
        def run() -> Any:
            model = SkPCA(k, svd_solver=solver, random_state=0).fit(X32)
            model.transform(X32)
            return model.explained_variance_
        return run

    return {"daskcluster PCA (covariance, 1 pass)": ours, "dask-ml tsqr": dask_ml("tsqr"),
            "dask-ml randomized": dask_ml("randomized"), "scikit-learn covariance_eigh": sklearn("covariance_eigh"),
            "scikit-learn randomized": sklearn("randomized")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--components", type=int, default=50)
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args()
    import dask

    X8, where = load_rows(args.rows)
    runs = contenders(X8, args.components)
    names = list(runs)
    times: dict[str, list[float]] = {n: [] for n in names}
    variances: dict[str, np.ndarray] = {}
    load0 = os.getloadavg()
    t_start = time.time()
    with dask.config.set(scheduler="threads"):
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                t0 = time.perf_counter()
                variances[name] = np.asarray(runs[name]())
                times[name].append(time.perf_counter() - t0)
                print(f"round {r + 1} {name}: {times[name][-1]:.2f} s", flush=True)
    load1 = os.getloadavg()
    ref = variances["scikit-learn covariance_eigh"]
    ours = names[0]
    lines = [
        "# PCA benchmark", "",
        (f"Data: {where}, {X8.shape[0]:,} x {X8.shape[1]} uint8 read as x / 255; {args.components} components, "
        "fit and transform of all rows."), "",
        "Command: `python benchmarks/bench_pca.py" + (f" --rounds {args.rounds}" if args.rounds != 3 else "")
        + (f" --components {args.components}" if args.components != 50 else "")
        + (f" --rows {args.rows}" if args.rows else "") + "`", "",
        f"Machine: {machine()}", "",
        (f"Load average (1, 5, 15 min) at the start {load0[0]:.1f}, {load0[1]:.1f}, {load0[2]:.1f}; at the end "
        f"{load1[0]:.1f}, {load1[1]:.1f}, {load1[2]:.1f}; {args.rounds} rounds, {time.time() - t_start:.0f} s."), "",
        ("| contender | seconds (least / median) | its time / daskcluster's (least / median) "
        "| max rel. diff. of explained variances from scikit-learn's exact |"),
        "| --- | --- | --- | --- |",
    ]
    for name in names:
        ratios = [t / o for t, o in zip(times[name], times[ours])]
        diff = float(np.max(np.abs(variances[name] - ref) / ref))
        lines.append(f"| {name} | {min(times[name]):.2f} / {statistics.median(times[name]):.2f} | "
                     f"{min(times[name]) / min(times[ours]):.2f} / {statistics.median(ratios):.2f} | {diff:.1e} |")
    report = "\n".join(lines) + "\n"
    print(report)
    (Path(__file__).parent / "RESULTS-pca.md").write_text(report)


if __name__ == "__main__":
    main()
