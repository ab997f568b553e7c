"""Sparse KMeans against scikit-learn, and the Parquet vs Zarr read floor.

Command (from the project root)::

    python benchmarks/bench_sparse.py                       # 200,000 x 50,000, 0.1 % dense, k=20
    python benchmarks/bench_sparse.py --rows 20000 --rounds 1   # a quick look

Part 1. A generated TF-IDF-like CSR matrix (each row: half its terms from one of 50 topics'
vocabularies, half uniform over all columns, tf-idf-like weights, rows L2-normalised; float64).
Each case is a fresh process (so its peak memory is its own) fitting ``KMeans(k, init=C0,
n_init=1, max_iter, tol=0)`` from the same initial centers ``C0`` (means of ``k`` disjoint groups
of rows): scikit-learn ``lloyd`` and ``elkan`` (OpenMP, all cores) and daskcluster ``lloyd`` and
``elkan`` on Dask's threaded scheduler (all cores). Time = wall time of ``fit`` (input checks,
every iteration, the final labels and inertia; after a warm-up fit on a few rows, so compiled
code is loaded); memory = peak resident memory of the process during the fit less its resident
memory just before (sampled every 5 ms). Cases run round-robin
``--rounds`` times; the least and the median are reported. The inertia column checks that
everyone ran the same iterations.

Part 2. The same dense table (``--table-rows`` x 64 float32) written once as Parquet (pandas,
snappy, row groups of 64 Ki rows) and once as Zarr (``write_zarr``, zstd); the floor is one
read of every value through ``daskcluster.io.open_array`` (each block summed, threads), and
the CSR store of part 1 read the same way (one block at a time, summed).

Writes ``benchmarks/RESULTS-sparse.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from machine import cpu_model
from peak_rss import MIB, PeakRSS

ROOT = Path(__file__).resolve().parents[1]


def make_tfidf(n: int, d: int, density: float, seed: int = 0, n_topics: int = 50) -> Any:
    """A TF-IDF-like CSR matrix of shape (n, d): ``density * d`` terms a row."""
    from scipy import sparse

    rng = np.random.default_rng(seed)
    per_row = max(2, int(round(density * d)))
    vocab = rng.integers(0, d, size=(n_topics, 20 * per_row))
    topic = rng.integers(0, n_topics, size=n)
    half = per_row // 2
    own = vocab[topic[:, None], rng.integers(0, vocab.shape[1], size=(n, half))]
    other = rng.integers(0, d, size=(n, per_row - half))
    cols = np.concatenate([own, other], axis=1)
    rows = np.repeat(np.arange(n), per_row)
    idf = np.log(1.0 + d / (1.0 + np.bincount(cols.ravel(), minlength=d)))
    vals = rng.integers(1, 4, size=n * per_row) * idf[cols.ravel()]
    X = sparse.csr_matrix((vals, (rows, cols.ravel())), shape=(n, d))
    X.sum_duplicates()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    return sparse.csr_matrix(sparse.diags(1.0 / norms) @ X)


def initial_centers(X: Any, k: int) -> np.ndarray:
    """Means of ``k`` disjoint groups of rows (distinct norms: no exact ties between centers)."""
    step = max(1, X.shape[0] // (k * 20))
    return np.stack([np.asarray(X[j * step:(j + 1) * step].mean(axis=0)).ravel() for j in range(k)])


# --------------------------------------------------------------------------- one case, own process


def run_case(case: str, data: str, k: int, max_iter: int) -> dict[str, Any]:
    from scipy import sparse

    X = sparse.load_npz(data).tocsr()
    init = initial_centers(X, k)
    impl, algorithm = case.split(":")
    if impl == "sklearn":
        from sklearn.cluster import KMeans as Est

        est = Est(k, init=init, n_init=1, max_iter=max_iter, tol=0.0, algorithm=algorithm)
        ctx: Any = None
    else:
        import dask

        from daskcluster import KMeans as Est  # type: ignore[assignment]

        est = Est(k, init=init, n_init=1, max_iter=max_iter, tol=0.0, algorithm=algorithm)
        ctx = dask.config.set(scheduler="threads")
    if ctx is not None:
        ctx.__enter__()
    # warm-up on a few rows, so that loading compiled code and thread pools is not timed
    type(est)(k, init=init, n_init=1, max_iter=1, algorithm=algorithm).fit(X[: 50 * k])
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        est.fit(X)
        seconds = time.perf_counter() - t0
    return {"case": case, "seconds": seconds, "n_iter": int(est.n_iter_), "inertia": float(est.inertia_),
            "peak_mb": mem.growth_mib * MIB / 1e6}


# --------------------------------------------------------------------------- read floors


def _block_sum(block: Any) -> np.ndarray:
    return np.full((1, 1), float(block.sum()))


def read_floor(make: Any, rounds: int) -> list[float]:
    """Seconds of one read of every value of ``make()`` (a row-chunked Dask array, dense or
    sparse chunks): each block summed where it is read."""
    import dask

    times = []
    with dask.config.set(scheduler="threads"):
        for _ in range(rounds):
            t0 = time.perf_counter()
            X = make()
            X.map_blocks(_block_sum, chunks=((1,) * X.numblocks[0], (1,)), dtype=float,
                         meta=np.empty((0, 0))).sum().compute()
            times.append(time.perf_counter() - t0)
    return times


def machine() -> dict[str, str]:
    from threadpoolctl import threadpool_info

    cpu = cpu_model()
    blas = "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')} ({i.get('num_threads')} "
                     "threads)" for i in threadpool_info())
    import dask
    import scipy
    import sklearn

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    return {"cpu": cpu, "cores": str(os.cpu_count()), "blas": blas, "python": platform.python_version(),
            "versions": f"numpy {np.__version__}, scipy {scipy.__version__}, scikit-learn {sklearn.__version__}, "
                        f"dask {dask.__version__}", "commit": commit.strip()}


def summary(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--features", type=int, default=50_000)
    p.add_argument("--density", type=float, default=0.001)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--max-iter", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--table-rows", type=int, default=500_000)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS-sparse.md"))
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.data, args.k, args.max_iter)))
        return 0

    from scipy import sparse

    load0 = os.getloadavg()
    t_start = time.time()
    tmp = tempfile.mkdtemp(prefix="bench-sparse-")
    try:
        X = make_tfidf(args.rows, args.features, args.density)
        data = os.path.join(tmp, "X.npz")
        sparse.save_npz(data, X, compressed=False)
        cases = ["sklearn:lloyd", "sklearn:elkan", "daskcluster:lloyd", "daskcluster:elkan"]
        results: dict[str, list[dict[str, Any]]] = {c: [] for c in cases}
        for r in range(args.rounds):
            for case in cases:
                cmd = [sys.executable, __file__, "--case", case, "--data", data, "--k", str(args.k),
                       "--max-iter", str(args.max_iter)]
                # the checkout this script sits in, whatever is installed
                env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout.strip().splitlines()[-1]
                results[case].append(json.loads(out))
                print(f"round {r}: {results[case][-1]}", flush=True)
        # part 2: read floors
        import pandas as pd

        from daskcluster.io import open_array, write_zarr
        from daskcluster.io_sparse import write_sparse_zarr

        table = np.random.default_rng(1).standard_normal((args.table_rows, 64)).astype(np.float32)
        pq = os.path.join(tmp, "t.parquet")
        pd.DataFrame(table, columns=[f"f{j}" for j in range(64)]).to_parquet(pq, row_group_size=65536)
        zp = os.path.join(tmp, "t.zarr")
        write_zarr(table, zp)
        sp = write_sparse_zarr(X, os.path.join(tmp, "x.zarr"))
        floors: dict[str, list[float]] = {"Parquet": [], "Zarr": [], "CSR store": []}
        for _ in range(args.rounds):
            floors["Parquet"] += read_floor(lambda: open_array(pq), 1)
            floors["Zarr"] += read_floor(lambda: open_array(zp), 1)
            floors["CSR store"] += read_floor(lambda: open_array(sp), 1)
        sizes = {"Parquet": os.path.getsize(pq), "Zarr": _du(zp), "CSR store": _du(sp)}
        write_report(args, X, results, floors, sizes, table.nbytes, load0, os.getloadavg(), time.time() - t_start)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _du(path: str) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def write_report(args: argparse.Namespace, X: Any, results: dict[str, list[dict[str, Any]]],
                 floors: dict[str, list[float]], sizes: dict[str, int], table_bytes: int,
                 load0: tuple[float, ...], load1: tuple[float, ...], total: float) -> None:
    m = machine()
    best_sk = min(summary([r["seconds"] for r in results[c]])[1] for c in results if c.startswith("sklearn"))
    lines = [
        "# Sparse KMeans and the Parquet read floor",
        "",
        f"Command (from the project root): `python benchmarks/bench_sparse.py --rows {args.rows} --features "
        f"{args.features} --density {args.density} --k {args.k} --max-iter {args.max_iter} --rounds {args.rounds} "
        f"--table-rows {args.table_rows}`  ",
        f"Machine: {m['cpu']}, {m['cores']} logical CPUs; Python {m['python']}; {m['versions']}; BLAS/OpenMP: "
        f"{m['blas']}; project commit {m['commit']}.  ",
        f"Load average before / after: {' '.join(f'{x:.2f}' for x in load0)} / "
        f"{' '.join(f'{x:.2f}' for x in load1)} (a shared machine: other work ran meanwhile); total {total / 60:.1f} min.",
        "",
        f"## KMeans on a TF-IDF-like CSR matrix ({X.shape[0]:,} x {X.shape[1]:,}, {X.nnz:,} stored values, "
        f"{X.nnz / (X.shape[0] * X.shape[1]):.2%} dense, float64, "
        f"{(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 1e6:.0f} MB)",
        "",
        f"`KMeans({args.k}, init=C0, n_init=1, max_iter={args.max_iter}, tol=0)` from the same centers; each case "
        f"a fresh process; {args.rounds} round(s) round-robin. daskcluster on Dask's threaded scheduler "
        "(in-memory CSR, chunks by stored bytes); scikit-learn with OpenMP on all cores. ÷ = median time over the "
        "median of scikit-learn's faster algorithm. Memory: peak resident memory during the fit above the "
        "process's resident memory before it (the input not counted).",
        "",
        "| implementation | algorithm | n_iter | least s | median s | ÷ scikit-learn (fastest) | s/iter (median) "
        "| peak MB (median) | inertia |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case, rs in results.items():
        impl, algo = case.split(":")
        lo, med = summary([r["seconds"] for r in rs])
        peak = statistics.median(r["peak_mb"] for r in rs)
        lines.append(f"| {impl} | {algo} | {rs[0]['n_iter']} | {lo:.2f} | {med:.2f} | {med / best_sk:.2f}× | "
                     f"{med / rs[0]['n_iter']:.3f} | {peak:.0f} | {rs[0]['inertia']:.6f} |")
    lines += [
        "",
        f"## Read floor: the same {args.table_rows:,} x 64 float32 table ({table_bytes / 1e6:.0f} MB) as Parquet and "
        "as Zarr, and the CSR store of part 1",
        "",
        "One read of every value through `open_array(path)` (each block summed by its task, threaded scheduler), "
        f"{args.rounds} round(s) round-robin.",
        "",
        "| source | on disk MB | least s | median s | MB/s (least, of the values) | ÷ Zarr (median) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    zarr_med = statistics.median(floors["Zarr"])
    for name, ts in floors.items():
        lo, med = summary(ts)
        nbytes = table_bytes if name != "CSR store" else X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
        ratio = f"{med / zarr_med:.2f}×" if name != "CSR store" else "-"
        lines.append(f"| {name} | {sizes[name] / 1e6:.0f} | {lo:.2f} | {med:.2f} | {nbytes / 1e6 / lo:.0f} | {ratio} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
