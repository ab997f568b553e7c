"""Diagonal GaussianMixture on the 8.1M-row store made by bench_mnist8m.py, streamed, against the read floor.

    python benchmarks/bench_gmm_mnist8m.py        (expects /tmp/m8/mnist8100000.zarr)
"""
import time, statistics
import numpy as np
from distributed import Client, LocalCluster
from daskcluster import GaussianMixture, scaled
from daskcluster.data import as_row_data
from daskcluster.datasets import open_labeled_zarr
from daskcluster.engine import tree_reduce
from daskcluster.progress import progress_hook

def _sum_block(block, weights, chunk, params):
    return block.sum(axis=0, dtype=np.uint64)

def _add(parts):
    return np.sum(parts, axis=0)

if __name__ == "__main__":
    X, y, _ = open_labeled_zarr("/tmp/m8/mnist8100000.zarr")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB", dashboard_address=":0") as cl, Client(cl):
        data = as_row_data(X, owner="bench")
        t0 = time.perf_counter(); tree_reduce(data, _sum_block, 7, _add); floor = time.perf_counter() - t0
        print("read floor", floor, flush=True)
        its = []
        with progress_hook(lambda r: (its.append(r.seconds) if r.estimator == "GaussianMixture" else None, print(r.format(), flush=True))):
            t0 = time.perf_counter()
            gm = GaussianMixture(10, covariance_type="diag", init_params="random_from_data", max_iter=3, tol=0, random_state=0, reg_covar=1e-3, cache=False).fit(scaled(X, 1/255))
            total = time.perf_counter() - t0
        print("diag per iteration", its, "median", statistics.median(its), "ratio", statistics.median(its) / floor, "total", total, flush=True)
