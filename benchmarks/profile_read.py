"""Where the CPU time of one streamed pass goes, stage by stage, chunk by chunk.

Run from the project root::

    python benchmarks/profile_read.py --store /tmp/m8/mnist8100000.zarr --chunks 61

One thread of this process walks the first ``--chunks`` Zarr chunks of the store's array ``X``
and times, for each chunk, in CPU seconds of the process (``time.process_time``: zarr decodes
in its own threads; BLAS is limited to one thread, as on a worker; the data are in the page
cache, read once before timing):

* ``file read``: the chunk file's bytes read into memory (``open().read()``);
* ``blosc decode``: those bytes decoded by numcodecs' Blosc into a new buffer, and into a
  preallocated one (``out=``);
* ``zarr read``: ``z[start:stop]`` through zarr's public API (file read, decode and zarr's own
  work: its event loop, codec pipeline and copies), and the same through
  :class:`daskcluster.io.CheckedReads` (what a pass's reading task calls);
* ``floor``: the read floor's reduction of the benchmarks, a column-wise max that reads every
  byte, and the earlier one, a column sum in uint64;
* ``float32 copy``: a whole-chunk ``block.astype(float32) * (1/255)`` (what a kernel that did
  not convert tile by tile would pay);
* ``Lloyd kernel``: a Lloyd step of ``k`` given centers on the uint8 block as a pass runs it
  (:func:`daskcluster.kernels.assign.assign_and_sum`): for few centers one compiled loop of
  :mod:`daskcluster.kernels.rowproducts` (products, arg-min and sums of each group of rows while
  it is in L1); the same step made of the compiled product and norms, then the arg-min and the
  sums tile by tile (:func:`~daskcluster.kernels.assign.iter_nearest` and
  :func:`~daskcluster.kernels.assign.add_rows`: the step before the fused loop), the compiled
  product and norms timed alone; then the same step on the GEMM path (tile-wise cast, GEMM,
  arg-min, float64 sums), and each of its steps timed alone. The fused loop is also timed on hot
  rows (the chunk's first 4,096 rows eight times, in cache): what it costs without the memory
  reads.

``--dtype float32`` runs the Lloyd kernels on ``block.astype(float32) / 255`` instead of the
uint8 block (the rows ``bench_mnist8m.py --sections dask-ml`` persists; the copy is made before
the timing), with centers scaled alike::

    python benchmarks/profile_read.py --chunks 16 --dtype float32

Prints one Markdown table: milliseconds per chunk (least and median over the chunks) and the
projection to the whole array's chunks, per core.

``--worker`` instead samples one worker of ``LocalCluster(2 workers x 1 thread, 2 GiB)`` with
``py-spy`` (``pip install py-spy``; 200 Hz, native frames) during ``--passes`` read-floor passes
over the first ``--chunks`` chunks, and prints the shares of the worker's busy samples (idle
threads left out) by where they fall: decoding, zarr's copy into the returned array, event
loops and comms, freeing buffers, the file read, the floor's touch::

    python benchmarks/profile_read.py --worker --chunks 61 --passes 6
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from collections import Counter
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model  # noqa: E402


def _cpu(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def kernel_stages(block: np.ndarray, table: Any, w: np.ndarray, weighted: bool) -> dict[str, float]:
    """CPU seconds of each step of the Lloyd kernel over ``block``, tile by tile (the steps of
    :func:`daskcluster.kernels.assign.iter_products`, then the arg-min and the sums)."""
    from daskcluster.kernels.assign import add_rows, nearest_in_product, row_sq_norms64, tile_rows

    n, d = block.shape
    k = table.n_centers
    rows = tile_rows(d, table.dtype.itemsize)
    buf, g, x_sq = np.empty((rows, d), table.dtype), np.empty((rows, k), table.dtype), np.empty(rows)
    labels, min_sq = np.empty(rows, dtype=np.int64), np.empty(rows)
    sums, wic = np.zeros((k, d)), np.zeros(k)
    cast = f"tile cast ({block.dtype} -> {table.dtype})"
    spent = dict.fromkeys((cast, "row norms (float64)", "GEMM", "arg-min", "sums"), 0.0)
    names = list(spent)
    for start in range(0, n, rows):
        m = min(rows, n - start)
        x = buf[:m]
        steps = (lambda: np.copyto(x, block[start:start + m], casting="unsafe"),
                 lambda: row_sq_norms64(x, x_sq[:m]),
                 lambda: np.matmul(x, table.minus2_t, out=g[:m]),
                 lambda: nearest_in_product(g[:m], table.sq_norms, x_sq[:m], labels[:m], min_sq[:m]),
                 lambda: add_rows(x, labels[:m], w, weighted, sums, wic))
        for name, step in zip(names, steps):
            spent[name] += _cpu(step)[0]
    return spent


def compiled_product(block: np.ndarray, table: Any) -> None:
    """The compiled product and norms of :mod:`daskcluster.kernels.rowproducts` alone, tile by
    tile, as :func:`daskcluster.kernels.assign.iter_products` calls it."""
    from daskcluster.kernels.assign import tile_rows
    from daskcluster.kernels.rowproducts import products

    n, d = block.shape
    rows = tile_rows(d, table.dtype.itemsize)
    minus2 = np.ascontiguousarray(table.minus2_t.T)
    g, x_sq = np.empty((rows, table.n_centers), table.dtype), np.empty(rows)
    for start in range(0, n, rows):
        m = min(rows, n - start)
        products(block[start:start + m], minus2, g[:m], x_sq[:m])


#: Where a sampled stack falls: the first rule whose frame name occurs in it (else "other").
WORKER_RULES = (
    ("Blosc / LZ4 decoding", "blosc_decompress_ctx"),
    ("zarr copying each decoded chunk into the array it returns", "NDBuffer.__setitem__"),
    ("file read", "read_bytes"),
    ("freeing chunk buffers (munmap)", "munmap"),
    ("the floor's touch (column max)", "UBYTE_maximum"),
    ("event loops (zarr's and the worker's), comms, task bookkeeping", "BaseEventLoop._run_once"),
)
_IDLE = ("acquire_lock", "epoll_wait", "SimpleQueue_get", "sem_wait", "select (selectors", "pthread_cond_timedwait",
         "pthread_cond_wait", "monitor_parent", "watch_stop_q")


def worker_profile(store: str, component: str, n_chunks: int, passes: int) -> None:
    """Shares of one worker's busy samples during ``passes`` read-floor passes (see the module)."""
    from distributed import Client, LocalCluster

    from bench_mnist8m import WorkerCPU, _max, _touch_block
    from daskcluster.data import as_row_data
    from daskcluster.engine import tree_reduce
    from daskcluster.io import open_array

    z_rows = int(__import__("zarr").open_array(store, path=component, mode="r").chunks[0])
    X = open_array(store, component=component)
    X = X[: min(n_chunks * z_rows, X.shape[0])]
    out = Path(tempfile.mkdtemp()) / "worker.txt"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        data = as_row_data(X, owner="profile")
        tree_reduce(data, _touch_block, "warm-up", _max)
        spy = subprocess.Popen(["py-spy", "record", "-r", "200", "--native", "-t", "-f", "raw", "-o", str(out),
                                "--pid", str(pids[0])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        for p in range(passes):
            with WorkerCPU(pids) as cpu:
                t0 = time.perf_counter()
                tree_reduce(data, _touch_block, p, _max)
                wall = time.perf_counter() - t0
            print(f"floor pass {p}: {wall:.2f} s, workers {cpu.seconds:.2f} CPU-s "
                  f"({1e3 * cpu.seconds / data.n_chunks:.1f} ms per chunk)", flush=True)
        spy.send_signal(2)
        spy.wait()
    shares: Counter[str] = Counter()
    for line in out.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        if any(word in stack for word in _IDLE):
            continue
        shares[next((name for name, frame in WORKER_RULES if frame in stack), "other")] += int(count)
    total = sum(shares.values())
    print(f"\n{total} busy samples of worker {pids[0]}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\n| where | share of the worker's busy time |\n| --- | --- |")
    for name, count in shares.most_common():
        print(f"| {name} | {100 * count / total:.1f} % |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="/tmp/m8/mnist8100000.zarr")
    parser.add_argument("--component", default="X")
    parser.add_argument("--chunks", type=int, default=61, help="Zarr chunks to walk (from the first)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--worker", action="store_true", help="sample a worker with py-spy during floor passes")
    parser.add_argument("--passes", type=int, default=6, help="floor passes of --worker")
    parser.add_argument("--dtype", choices=("uint8", "float32"), default="uint8",
                        help="rows of the Lloyd kernels: the stored uint8 or float32 / 255")
    args = parser.parse_args()
    if args.worker:
        worker_profile(args.store, args.component, args.chunks, args.passes)
        return

    import numcodecs
    import threadpoolctl
    import zarr

    from daskcluster.io import CheckedReads
    from daskcluster.kernels import rowproducts
    from daskcluster.kernels.assign import CenterTable, add_rows, assign_and_sum, iter_nearest, weights_arg
    from daskcluster.kernels.blocks import ChunkInfo

    z = zarr.open_array(args.store, path=args.component, mode="r")
    rows, d = int(z.chunks[0]), int(z.shape[1])
    n_chunks = min(args.chunks, -(-int(z.shape[0]) // rows))
    base = Path(args.store) / args.component
    blosc = None
    codecs = z.compressors
    if codecs:
        c = codecs[0]
        blosc = numcodecs.Blosc(cname=c.cname.value, clevel=c.clevel, shuffle=numcodecs.Blosc.NOSHUFFLE)
    reader = CheckedReads(z, "profile")
    rng = np.random.default_rng(0)
    as_float = args.dtype == "float32"
    centers = rng.uniform(0, 1 if as_float else 255, size=(args.k, d)).astype(np.float32)
    table = CenterTable.of(centers)
    w, weighted = weights_arg(None)
    out_buf = np.empty(rows * d, dtype=np.uint8)

    stages: dict[str, list[float]] = {}

    def add(name: str, seconds: float) -> None:
        stages.setdefault(name, []).append(seconds)

    threadpoolctl.threadpool_limits(1)
    for i in range(n_chunks):  # warm the page cache and the compiled loops
        z[i * rows:(i + 1) * rows]
    for i in range(n_chunks):
        start, stop = i * rows, min((i + 1) * rows, int(z.shape[0]))
        key = base / "c" / str(i) / "0"
        if blosc is not None and key.exists():
            t, raw = _cpu(lambda: key.read_bytes())
            add("file read", t)
            t, _ = _cpu(lambda: blosc.decode(raw))
            add("blosc decode, new buffer", t)
            t, _ = _cpu(lambda: blosc.decode(raw, out=out_buf))
            add("blosc decode, into a preallocated buffer", t)
        t, _ = _cpu(lambda: z[start:stop])
        add("zarr read z[start:stop]", t)
        t, block = _cpu(lambda: reader[start:stop])
        add("CheckedReads[start:stop] (a reading task)", t)
        t, _ = _cpu(lambda: block.sum(axis=0, dtype=np.uint64))
        add("earlier floor's sum: block.sum(axis=0, dtype=uint64)", t)
        t, _ = _cpu(lambda: block.max(axis=0))
        add("floor's touch: block.max(axis=0)", t)
        t, _ = _cpu(lambda: block.astype(np.float32) * np.float32(1 / 255))
        add("whole-chunk float32 copy, scaled", t)
        if as_float:
            block = block.astype(np.float32) * np.float32(1 / 255)

        def lloyd() -> None:
            n = block.shape[0]
            labels, min_sq = np.empty(n, dtype=np.int64), np.empty(n)
            sums, wic = np.zeros((args.k, d)), np.zeros(args.k)
            assign_and_sum(block, table, ChunkInfo(i, start), labels, min_sq, w, weighted, sums, wic)

        def lloyd_tiles() -> None:
            n = block.shape[0]
            labels, min_sq = np.empty(n, dtype=np.int64), np.empty(n)
            sums, wic = np.zeros((args.k, d)), np.zeros(args.k)
            for s, e, x in iter_nearest(block, table, ChunkInfo(i, start), labels, min_sq):
                add_rows(x, labels[s:e], w, weighted, sums, wic)

        def lloyd_hot(hot: np.ndarray = block[:4096]) -> None:
            n = hot.shape[0]
            labels, min_sq = np.empty(n, dtype=np.int64), np.empty(n)
            sums, wic = np.zeros((args.k, d)), np.zeros(args.k)
            for _ in range(-(-block.shape[0] // n)):
                assign_and_sum(hot, table, ChunkInfo(i, start), labels, min_sq, w, weighted, sums, wic)

        compiled = rowproducts.applies(block, table.minus2_t)
        t, _ = _cpu(lloyd)
        add(f"Lloyd kernel, k={args.k}, {block.dtype} rows: "
            + ("one compiled loop (rowproducts.lloyd_step): products, arg-min, sums"
               if compiled else "tile cast, GEMM, arg-min, sums"), t)
        t, _ = _cpu(lloyd_hot)
        add("  the same on hot rows (4,096 rows in cache, as many times as the chunk has rows)", t)
        if compiled:
            t, _ = _cpu(lloyd_tiles)
            add(f"Lloyd kernel, k={args.k}, in steps: compiled product and norms, then arg-min and sums by tile", t)
            t, _ = _cpu(lambda b=block: compiled_product(b, table))
            add("  of which compiled product and norms", t)
        limit, rowproducts.MAX_CENTERS = rowproducts.MAX_CENTERS, 0
        try:
            t, _ = _cpu(lloyd)
        finally:
            rowproducts.MAX_CENTERS = limit
        add(f"Lloyd kernel, k={args.k}, GEMM path (tile cast, GEMM, arg-min, sums)", t)
        for name, seconds in kernel_stages(block, table, w, weighted).items():
            add(f"  of which {name}", seconds)

    total_chunks = -(-int(z.shape[0]) // rows)
    print(f"Store {args.store}/{args.component}: {z.shape} {z.dtype}, chunks of {rows:,} rows "
          f"({rows * d / 1e6:.1f} MB raw), codecs {[str(c) for c in codecs]}")
    print(f"{n_chunks} chunks walked by one thread; CPU {cpu_model()}; BLAS "
          f"{[(i['internal_api'], i.get('architecture'), i['num_threads']) for i in threadpoolctl.threadpool_info()]}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\n| stage | ms per chunk, least | median | GB/s per core (median) | CPU-s for all {total_chunks} chunks |")
    print("| --- | --- | --- | --- | --- |")
    for name, times in stages.items():
        med = statistics.median(times)
        print(f"| {name} | {1e3 * min(times):.1f} | {1e3 * med:.1f} | {rows * d / med / 1e9:.2f} | "
              f"{med * total_chunks:.2f} |")


if __name__ == "__main__":
    main()
