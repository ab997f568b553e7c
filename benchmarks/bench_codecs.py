"""Codecs, chunk rows and sharding of Zarr stores, measured for streamed fits.

Run from the project root::

    python benchmarks/bench_codecs.py --dir /tmp/codecs --output benchmarks/RESULTS-codecs.md
    python benchmarks/bench_codecs.py --quick --output /tmp/codecs.md       # smoke run

Data (generated once into ``--dir``, then reused):

* ``digits``: ``--n`` (400,000) deformed MNIST digits, uint8 x 784, from
  :func:`daskcluster.datasets.make_infinite_mnist` (real MNIST base when found, ``random_state=0``);
* ``mnist/255``: the first ``--n-float`` (100,000) of them as float32 ``X / 255``;
* ``blobs``: ``make_blobs`` float32, 2,000,000 x 16, 10 centers (noisy mantissas: the
  hardest case for every codec).

For each store layout (codec x shuffle, chunk rows, shards), written with
:func:`daskcluster.io.write_zarr` on the threaded scheduler (2 threads):

* write time and ratio (raw bytes / bytes on disk);
* the read floor per core: one thread of this process reads and decodes every chunk through
  zarr (Blosc single-threaded), GB/s of raw data;
* the read floor on 2 worker processes (``LocalCluster(2 workers x 1 thread)``): one pass that
  reads, decodes and touches every byte of the store (a column-wise max, 1-4 ms per 25 MB chunk,
  as ``bench_mnist8m.py``), seconds;
* a streamed ``KMeans(10)`` Lloyd pass on the same cluster (``init`` fixed, ``max_iter=3``,
  ``tol=0``, ``cache=False``; uint8 data through ``scaled(X, 1/255)``): the median iteration.

The data are in the OS page cache (each store was just written, and read once before timing).
Every layout is measured once per round, round-robin over ``--rounds`` rounds; the least and
the median are reported. ``--cold`` also times one 2-worker read floor after
``echo 3 > /proc/sys/vm/drop_caches`` (root only) for each codec of the digits.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_kmeans import cpu_model, git_commit, load_avg, versions  # noqa: E402
from bench_mnist8m import WorkerCPU, _max, _touch_block  # noqa: E402
from peak_rss import worker_pids  # noqa: E402

MB = 1e6


@dataclass
class Case:
    data: str
    codec: str
    rows: int
    shards: int | None = None
    write_s: float = 0.0
    ratio: float = 0.0
    files: int = 0
    core: list[float] = field(default_factory=list)  # CPU seconds of the reading thread
    floor: list[float] = field(default_factory=list)
    lloyd: list[float] = field(default_factory=list)
    floor_cpu: list[float] = field(default_factory=list)  # CPU seconds of both workers
    lloyd_cpu: list[float] = field(default_factory=list)
    cold: float | None = None
    stored_rows: int = 0  # rows per Zarr chunk as written (chunk_rows balances the chunks)
    stored_shard_rows: int | None = None  # rows per shard as written (whole chunks)

    @property
    def name(self) -> str:
        shards = f", shards {self.stored_shard_rows or self.shards:,}" if self.shards else ""
        return f"{self.codec}, chunks {self.stored_rows or self.rows:,}{shards}"

    def path(self, root: Path) -> Path:
        return root / f"{self.data.replace('/', '-')}-{self.codec.replace(':', '-')}-{self.rows}-{self.shards}.zarr"


def make_sources(root: Path, n: int, n_float: int, source: str | None = None) -> dict[str, Any]:
    import dask
    import zarr

    from daskcluster.datasets import make_blobs, make_infinite_mnist

    if source is not None:  # the first n rows of an existing store of digits (e.g. the 8.1 M-row one)
        return {"digits": zarr.open_array(source, path="X", mode="r")[:n]}
    raw = root / f"digits-raw-{n}.zarr"
    if not raw.exists():
        with dask.config.set(scheduler="threads", num_workers=2):
            make_infinite_mnist(raw, n, random_state=0, compressors=None)
    digits = zarr.open_group(raw, mode="r")["X"][...]
    floats = (digits[:n_float] / np.float32(255)).astype(np.float32)
    blobs, _, _ = make_blobs(2_000_000, 16, centers=10, random_state=0, chunk_rows=500_000, dtype="float32")
    return {"digits": digits, "mnist/255": floats, "blobs": blobs.compute()}


def cases(args: argparse.Namespace, sources: dict[str, Any]) -> list[Case]:
    out: list[Case] = []
    if args.codecs or args.chunk_rows:  # the digits only: every codec at every chunk rows
        codecs = args.codecs.split(",") if args.codecs else ["lz4hc:5", "lz4:5", "none"]
        rows_list = [int(r) for r in args.chunk_rows.split(",")] if args.chunk_rows else [args.rows]
        return [Case("digits", c, r) for r in rows_list for c in codecs]
    byte_codecs = ["lz4hc:5", "lz4:5", "zstd:1", "zstd:3", "lz4hc:5:bitshuffle", "lz4:5:bitshuffle",
                   "zstd:1:bitshuffle", "none"]
    wide_codecs = ["lz4:5:shuffle", "lz4:5:noshuffle", "lz4:5:bitshuffle", "lz4hc:5:shuffle", "zstd:3:shuffle",
                   "none"]
    if args.quick:
        byte_codecs, wide_codecs = ["lz4hc:5", "zstd:3", "none"], ["lz4:5:shuffle", "none"]
    rows = args.rows
    out += [Case("digits", c, rows) for c in byte_codecs]
    for data in ("mnist/255", "blobs"):
        X = sources[data]
        r = max(rows * 784 // (X.shape[1] * X.dtype.itemsize), 1)  # the same bytes per chunk as the digits'
        out += [Case(data, c, r) for c in wide_codecs]
    layouts = [(8192, None), (16384, None), (65536, None), (16384, 16 * 16384), (32768, 8 * 32768)]
    if args.quick:
        layouts = [(8192, None), (8192, 4 * 8192)]
    out += [Case("digits", "lz4hc:5", r, s) for r, s in layouts]
    return out


def disk_bytes(path: Path) -> tuple[int, int]:
    files = [f for f in path.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files), sum(1 for f in files if "/c/" in str(f))


def write(case: Case, X: np.ndarray, root: Path, reuse: bool) -> None:
    import dask
    import zarr

    from daskcluster.io import write_zarr

    path = case.path(root)
    sidecar = path.with_suffix(".json")
    if reuse and path.exists() and sidecar.exists():  # written by an earlier run: its write time
        case.write_s = json.loads(sidecar.read_text())["write_s"]
        z = zarr.open_array(path, mode="r")
        case.stored_rows = int(z.chunks[0])
        case.stored_shard_rows = int(z.shards[0]) if z.shards else None
        size, case.files = disk_bytes(path)
        case.ratio = X.nbytes / size
        return
    shutil.rmtree(path, ignore_errors=True)
    with dask.config.set(scheduler="threads", num_workers=2):
        t0 = time.perf_counter()
        z = write_zarr(X, path, chunk_bytes=case.rows * X.shape[1] * X.dtype.itemsize, min_chunks=1,
                   compressors=None if case.codec == "none" else case.codec, shards=case.shards)
        case.write_s = time.perf_counter() - t0
    case.stored_rows = int(z.chunks[0])
    case.stored_shard_rows = int(z.shards[0]) if z.shards else None
    size, case.files = disk_bytes(path)
    case.ratio = X.nbytes / size
    sidecar.write_text(json.dumps({"write_s": case.write_s}))


def read_one_core(case: Case, root: Path) -> float:
    """Seconds for one thread to read and decode every chunk (Blosc single-threaded)."""
    import zarr

    z = zarr.open_array(case.path(root), mode="r")
    t0 = time.process_time()  # CPU time of this process (zarr decodes in its own threads), whatever else runs
    for start in range(0, z.shape[0], case.stored_rows):
        z[start:start + case.stored_rows]
    return time.process_time() - t0


def open_store(case: Case, root: Path) -> Any:
    from daskcluster.io import open_array

    z_bytes = case.stored_rows * (784 if case.data != "blobs" else 16) * (1 if case.data == "digits" else 4)
    return open_array(case.path(root), chunk_bytes=z_bytes, min_chunks=1)  # one task per Zarr chunk


def floor_2_workers(case: Case, root: Path, salt: int) -> float:
    from daskcluster.data import as_row_data
    from daskcluster.engine import tree_reduce

    data = as_row_data(open_store(case, root), owner="bench")
    t0 = time.perf_counter()
    tree_reduce(data, _touch_block, salt, _max)  # another salt each time: other keys, no reuse
    return time.perf_counter() - t0


def lloyd_pass(case: Case, root: Path, init: np.ndarray) -> float:
    from daskcluster import KMeans, scaled
    from daskcluster.progress import progress_hook

    X = open_store(case, root)
    if case.data == "digits":
        X = scaled(X, 1 / 255)
    times: list[float] = []

    def hook(rep: Any) -> None:
        if rep.stage == "fit":
            times.append(rep.seconds)

    with progress_hook(hook):
        KMeans(10, init=init, n_init=1, max_iter=3, tol=0, cache=False).fit(X)
    return statistics.median(times)


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def fmt(values: list[float], unit: str = "s") -> str:
    if not values:
        return ""
    return f"{min(values):.2f} / {statistics.median(values):.2f} {unit}"


def report(args: argparse.Namespace, done: list[Case], env: dict[str, Any], sources: dict[str, Any]) -> str:
    L = ["# Storage layout for streamed fits: codecs, chunk rows, shards", ""]
    L.append(f"Command: `python benchmarks/bench_codecs.py {' '.join(sys.argv[1:])}`  ")
    L.append(f"Run {env['date']}, {env['elapsed'] / 60:.1f} min; load average (1, 5, 15 min) at start "
             f"{env['load_start']}, at end {env['load_end']} (2 cores shared with other jobs).  ")
    L.append(f"CPU: {env['cpu']}; BLAS: {env['blas']}.  ")
    L.append(f"{env['versions']}; commit {env['commit']}.")
    L.append("")
    L.append("Data: " + "; ".join(f"`{k}` {v.shape[0]:,} x {v.shape[1]} {v.dtype} ({v.nbytes / MB:.0f} MB)"
                                  for k, v in sources.items()) + ".")
    L.append("")
    L.append(f"Each cell: least / median of {args.rounds} round(s) (round-robin). *decode, 1 core*: GB/s of raw "
             "data read and decoded through zarr (Blosc single-threaded, one chunk at a time), per CPU second of this "
             "process. *floor, 2 workers*: one pass that reads, decodes and takes a column-wise max, on `LocalCluster(2 workers x 1 "
             "thread)`: wall seconds, and CPU seconds of both workers. *Lloyd pass*: the median iteration of a "
             "streamed `KMeans(10)` on the same cluster, one task per Zarr chunk, data in the page cache: wall "
             "seconds, and the workers' CPU seconds of the whole fit divided by its 3 iterations (seeding from "
             "given centers and the labelling pass included). On a shared machine the CPU seconds are the "
             "steadier measure; wall times follow the load.")
    for data in sources:
        rows = [c for c in done if c.data == data]
        if not rows:
            continue
        L += ["", f"## {data}", "",
              "| layout | ratio | files | write | decode, 1 core | floor, 2 workers | floor CPU | Lloyd pass "
              "| Lloyd CPU | Lloyd CPU / least |" + (" cold floor |" if any(c.cold is not None for c in rows) else ""),
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
              + (" --- |" if any(c.cold is not None for c in rows) else "")]
        best = min(min(c.lloyd_cpu) for c in rows)
        for c in rows:
            nbytes = sources[data].nbytes
            per_core = [nbytes / t / 1e9 for t in c.core]
            cold = "" if c.cold is None else f" {c.cold:.2f} s |"
            L.append(f"| {c.name} | {c.ratio:.2f} | {c.files} | {c.write_s:.1f} s | "
                     f"{max(per_core):.2f} / {statistics.median(per_core):.2f} GB/s | {fmt(c.floor)} | "
                     f"{fmt(c.floor_cpu, 'CPU-s')} | {fmt(c.lloyd)} | {fmt(c.lloyd_cpu, 'CPU-s')} | "
                     f"{min(c.lloyd_cpu) / best:.2f}x |" + (cold if any(x.cold is not None for x in rows) else ""))
    return "\n".join(L) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="/tmp/daskcluster-codecs")
    parser.add_argument("--n", type=int, default=400_000)
    parser.add_argument("--n-float", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=32_768, help="rows per chunk of the codec comparison")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cold", action="store_true", help="also a cold-cache floor (drops the page cache)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="keep the stores of an earlier run (and its write times)")
    parser.add_argument("--output", default=None)
    parser.add_argument("--source", default=None, metavar="STORE",
                        help="take the digits from the first --n rows of this store's array X (e.g. "
                             "/tmp/m8/mnist8100000.zarr) instead of generating them; no float data")
    parser.add_argument("--codecs", default=None,
                        help="digits only: these codecs (comma-separated, e.g. 'lz4hc:5,lz4:5,none')")
    parser.add_argument("--chunk-rows", default=None,
                        help="digits only: these rows per chunk (comma-separated, e.g. '16384,32768,65536')")
    args = parser.parse_args()
    if args.quick:
        args.n, args.n_float, args.rows, args.rounds = 40_000, 10_000, 8192, 1

    import numcodecs.blosc
    from distributed import Client, LocalCluster
    from threadpoolctl import threadpool_info

    numcodecs.blosc.set_nthreads(1)
    numcodecs.blosc.use_threads = False
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    env: dict[str, Any] = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                           "load_start": load_avg(), "cpu": cpu_model(), "versions": versions(),
                           "commit": git_commit()}
    env["blas"] = ", ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, "
                            f"{p.get('num_threads')} threads)" for p in threadpool_info() if p.get("user_api") == "blas")
    sources = make_sources(root, args.n, args.n_float, args.source)
    todo = cases(args, sources)
    for case in todo:
        write(case, sources[case.data], root, args.reuse)
        print(f"wrote {case.data} {case.name}: ratio {case.ratio:.2f}, {case.write_s:.1f} s", flush=True)

    from daskcluster.datasets import make_infinite_mnist  # noqa: F401 - imported before workers start

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        inits = {d: np.asarray(X[:: max(X.shape[0] // 10, 1)][:10], dtype=np.float32) for d, X in sources.items()}
        inits["digits"] = inits["digits"] / np.float32(255)
        for case in todo:  # warm-up: page cache, worker imports, compiled kernels
            floor_2_workers(case, root, -1)
        lloyd_pass(todo[0], root, inits[todo[0].data])
        for r in range(args.rounds):
            for case in todo:
                case.core.append(read_one_core(case, root))
                with WorkerCPU(worker_pids(client)) as cpu:
                    case.floor.append(floor_2_workers(case, root, r))
                case.floor_cpu.append(cpu.seconds)
                with WorkerCPU(worker_pids(client)) as cpu:
                    case.lloyd.append(lloyd_pass(case, root, inits[case.data]))
                case.lloyd_cpu.append(cpu.seconds / 3)  # the fit's iterations (max_iter=3), init and final pass included
                print(f"round {r}: {case.data} {case.name}: core {case.core[-1]:.2f} s CPU, floor {case.floor[-1]:.2f} s "
                      f"({case.floor_cpu[-1]:.2f} CPU-s), Lloyd {case.lloyd[-1]:.2f} s ({case.lloyd_cpu[-1]:.2f} CPU-s) "
                      f"(load {load_avg()})", flush=True)
        if args.cold:
            for case in todo:
                if case.data == "digits" and case.shards is None and case.rows == args.rows and drop_caches():
                    case.cold = floor_2_workers(case, root, 10_000)
    env["elapsed"] = time.perf_counter() - t_start
    env["load_end"] = load_avg()
    text = report(args, todo, env, sources)
    print(text)
    if args.output:
        Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
