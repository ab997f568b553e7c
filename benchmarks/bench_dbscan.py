"""DBSCAN on 2-D moons of 100k, 1M and 20M rows: daskcluster against scikit-learn's DBSCAN.

    python benchmarks/bench_dbscan.py [--sizes 100000,1000000,20000000] [--rounds 2]
        [--sklearn-max 1000000] [--memory-limit 2GiB] [--folder /tmp]

Data: ``daskcluster.datasets.make_moons(n, noise=0.05)`` written to Zarr with
``daskcluster.io.write_zarr`` (float64, the default chunking: at least 16 chunks, at most
32 MiB each). ``eps`` shrinks with ``n`` so that a row has about the same number of
neighbours at every size (``eps = 0.0028 * sqrt(1e6 / n)``: about 20), ``min_samples=5``.

* **daskcluster, LocalCluster**: ``DBSCAN(eps, min_samples).fit(path)`` streamed from the Zarr
  store on ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
  memory_limit=--memory-limit)``, then ``labels_.compute()`` (the fit leaves the labels lazy);
  time = fit + labels. Peak worker memory: the largest RSS of a worker process, sampled every
  10 ms from the client (``psutil`` on the workers' pids).
* **daskcluster, threads**: the same on the NumPy array in this process, threaded scheduler.
* **scikit-learn**: ``sklearn.cluster.DBSCAN(eps, min_samples, algorithm=A, n_jobs=-1)`` on the
  NumPy array, for ``A`` in ``kd_tree`` and ``ball_tree`` (the ratio uses the faster), up to
  ``--sklearn-max`` rows. Peak memory: this process's RSS above its level before the fit.

Rounds alternate the implementations (round-robin); the tables give the least and the median.
The first round checks that labels and core samples equal scikit-learn's. Prints Markdown
(for ``benchmarks/RESULTS-dbscan.md``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import cpu_model
from peak_rss import PeakRSS


def eps_for(n: int) -> float:
    """About 20 neighbours per row on the moons at any size."""
    return float(0.0028 * np.sqrt(1e6 / n))


def machine() -> str:
    from threadpoolctl import threadpool_info

    cpu = cpu_model()
    blas = "; ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, {i.get('num_threads')} threads)"
                     for i in threadpool_info())
    import dask
    import numba
    import sklearn

    return (f"{os.cpu_count()} logical CPUs, {cpu}; Python {platform.python_version()}, numpy {np.__version__}, "
            f"scikit-learn {sklearn.__version__}, dask {dask.__version__}, numba {numba.__version__}; BLAS/OpenMP: {blas}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000,20000000")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sklearn-max", type=int, default=1_000_000)
    parser.add_argument("--threads-max", type=int, default=1_000_000)
    parser.add_argument("--memory-limit", default="2GiB")
    parser.add_argument("--folder", default=None, help="where the Zarr stores are written (default: a temp dir)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    import dask
    import zarr
    from distributed import Client, LocalCluster
    from sklearn.cluster import DBSCAN as SkDBSCAN

    from daskcluster import DBSCAN
    from daskcluster.datasets import make_moons
    from daskcluster.io import write_zarr

    start = time.strftime("%Y-%m-%dT%H:%M")
    load_before = os.getloadavg()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="bench-dbscan-"))
    stores = {}
    for n in sizes:
        path = folder / f"moons{n}.zarr"
        if not path.exists():
            X, _ = make_moons(n, noise=0.05, chunk_rows=min(n, 1_000_000), random_state=0)
            with dask.config.set(scheduler="threads"):
                write_zarr(X, str(path))
        stores[n] = str(path)

    times: dict[tuple[int, str], list[float]] = {}
    mem: dict[tuple[int, str], float] = {}
    notes: dict[int, str] = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=args.memory_limit,
                      dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            pids = list(client.run(os.getpid).values())
            DBSCAN(eps=0.1).fit(stores[sizes[0]]).labels_.compute()  # workers load the compiled loops
        with dask.config.set(scheduler="threads"):
            DBSCAN(eps=0.1).fit(np.random.default_rng(0).random((1000, 2)))  # and this process
        for n in sizes:
            eps = eps_for(n)
            X = np.asarray(zarr.open_array(stores[n], mode="r")[...]) if n <= max(args.sklearn_max, args.threads_max) else None
            reference = None
            for r in range(args.rounds):
                with Client(cluster) as client, PeakRSS(pids) as peak:
                    t0 = time.perf_counter()
                    model = DBSCAN(eps=eps, min_samples=5).fit(stores[n])
                    t1 = time.perf_counter()
                    labels = model.labels_.compute()
                    t2 = time.perf_counter()
                times.setdefault((n, "daskcluster, LocalCluster"), []).append(t2 - t0)
                times.setdefault((n, "  of which fit"), []).append(t1 - t0)
                mem[(n, "daskcluster, LocalCluster")] = max(mem.get((n, "daskcluster, LocalCluster"), 0), peak.largest_mib)
                n_clusters = model.n_clusters_
                if X is not None and n <= args.threads_max:
                    with dask.config.set(scheduler="threads"), PeakRSS() as peak:
                        t0 = time.perf_counter()
                        DBSCAN(eps=eps, min_samples=5).fit(X)
                        times.setdefault((n, "daskcluster, threads"), []).append(time.perf_counter() - t0)
                    mem[(n, "daskcluster, threads")] = max(mem.get((n, "daskcluster, threads"), 0), peak.growth_mib)
                if X is not None and n <= args.sklearn_max:
                    for algorithm in ("kd_tree", "ball_tree"):
                        key = (n, f"scikit-learn {algorithm}")
                        with PeakRSS() as peak:
                            t0 = time.perf_counter()
                            ref = SkDBSCAN(eps=eps, min_samples=5, algorithm=algorithm, n_jobs=-1).fit(X)
                            times.setdefault(key, []).append(time.perf_counter() - t0)
                        mem[key] = max(mem.get(key, 0), peak.growth_mib)
                        reference = ref
                    if r == 0:
                        same = (np.array_equal(labels, reference.labels_)
                                and np.array_equal(model.core_sample_indices_.compute(), reference.core_sample_indices_))
                        notes[n] = f"labels and core samples equal to scikit-learn's: {same}"
                notes.setdefault(n, "")
                notes[n] = notes[n].split(" | ")[0] + f" | {n_clusters} clusters, {int((labels == -1).sum())} noise"
                print(n, r, {k[1]: v[-1] for k, v in times.items() if k[0] == n}, flush=True)
    load_after = os.getloadavg()

    print("\n## DBSCAN on 2-D moons (`benchmarks/bench_dbscan.py`)\n")
    print(f"Command: `python benchmarks/bench_dbscan.py --sizes {args.sizes} --rounds {args.rounds} "
          f"--sklearn-max {args.sklearn_max} --memory-limit {args.memory_limit}`  ")
    print(f"Run started {start}; load average before/after: {' '.join(f'{x:.2f}' for x in load_before)} / "
          f"{' '.join(f'{x:.2f}' for x in load_after)}.  ")
    print(f"Machine: {machine()}.\n")
    print("| n | eps | implementation | least s | median s | scikit-learn's least ÷ this least | peak memory MiB |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for n in sizes:
        sk = [min(v) for k, v in times.items() if k[0] == n and k[1].startswith("scikit-learn")]
        best_sk = min(sk) if sk else None
        for (m, name), v in times.items():
            if m != n:
                continue
            ratio = f"{best_sk / min(v):.2f}×" if best_sk and not name.startswith(" ") else "-"
            peak = f"{mem[(n, name)]:.0f}" if (n, name) in mem else "-"
            print(f"| {n:,} | {eps_for(n):.5f} | {name} | {min(v):.2f} | {statistics.median(v):.2f} | {ratio} | {peak} |")
    print()
    for n in sizes:
        print(f"- n={n:,}: {notes.get(n, '')}")


if __name__ == "__main__":
    main()
