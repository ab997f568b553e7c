"""``daskcluster datasets``: write a dataset (generated blobs, MNIST, a .npy/raw/Zarr source) into Zarr."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import SourceNotFoundError
from ..locations import is_url
from .console import say
from .options import OK, UsageError, cluster, cluster_options, count, nonnegative_float


def add_parser(sub: Any) -> None:
    """``datasets blobs|mnist|ingest``."""
    d = sub.add_parser("datasets", help="write a dataset into Zarr (generated, MNIST, or another source)")
    dsub = d.add_subparsers(dest="dataset", required=True, metavar="SOURCE")
    b = dsub.add_parser("blobs", help="Gaussian blobs of any size, generated chunk by chunk")
    b.add_argument("out", metavar="OUT.zarr")
    b.add_argument("--n-samples", type=count(1), required=True)
    b.add_argument("--n-features", type=count(1), required=True)
    b.add_argument("--centers", type=count(1), default=8)
    b.add_argument("--cluster-std", type=nonnegative_float, default=1.0)
    b.add_argument("--chunk-rows", type=count(1), default=100_000)
    b.add_argument("--random-state", type=int, default=0)
    b.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    m = dsub.add_parser("mnist", help="MNIST from the Keras .npz file, uint8")
    m.add_argument("out", metavar="OUT.zarr")
    m.add_argument("--path", help="the .npz file (default: $DASKCLUSTER_MNIST or shared/data/mnist.npz)")
    m.add_argument("--split", choices=("all", "train", "test"), default="all")
    i = dsub.add_parser("ingest", help="copy a .npy, raw binary or Zarr source into Zarr")
    i.add_argument("source", metavar="SOURCE")
    i.add_argument("out", metavar="OUT.zarr")
    i.add_argument("--dtype", help="raw files: the dtype, e.g. uint8")
    i.add_argument("--shape", help="raw files: ROWS,COLUMNS")
    i.add_argument("--byte-offset", type=count(0), default=0, help="raw files: header bytes to skip")
    i.add_argument("--component", help="Zarr groups: the array inside")
    for p in (b, m, i):
        p.add_argument("--chunk-bytes", type=count(1), default=None, help="bytes per Zarr chunk (default 32 MiB)")
        p.add_argument("--compressors", metavar="CODEC", default="default",
                       help="'default' (Blosc lz4hc for uint8, lz4 + byte shuffle for wider items), 'none', or "
                            "CNAME[:LEVEL[:SHUFFLE]] such as zstd:3 (see docs/storage.md)")
        p.add_argument("--shards", type=count(1), default=None, metavar="ROWS",
                       help="rows per shard file (Zarr v3 sharding, whole chunks); default one file per chunk")
        p.add_argument("--overwrite", action="store_true", help="replace an existing store (atomically)")
        cluster_options(p)
        p.set_defaults(handler=cmd_datasets)
    for p in (b, m):
        p.add_argument("--labels", metavar="LABELS.zarr", help="where the labels go (default: OUT-labels.zarr)")


def cmd_datasets(args: argparse.Namespace) -> int:
    from .. import io

    for target in (args.out, getattr(args, "labels", None)):
        if target and not is_url(target) and os.path.exists(target) and not args.overwrite:
            raise UsageError(f"{target} already exists; pass --overwrite to replace it (atomically).")
    _check_inputs(args)
    from ..storage import describe_compressors, resolve_compressors

    try:  # a bad codec name stops here, before any data is made or read
        resolve_compressors(args.compressors, "uint8")
    except ValueError as exc:
        raise UsageError(f"--compressors {args.compressors}: {exc}") from None
    kwargs: dict[str, Any] = {"overwrite": args.overwrite, "compressors": args.compressors, "shards": args.shards}
    if args.chunk_bytes is not None:
        kwargs["chunk_bytes"] = args.chunk_bytes
    labels_path = None
    y: Any = None
    with _maybe_cluster(args):
        if args.dataset == "blobs":
            from ..datasets import make_blobs

            X, y, _ = make_blobs(args.n_samples, args.n_features, centers=args.centers, cluster_std=args.cluster_std,
                                 chunk_rows=args.chunk_rows, random_state=args.random_state, dtype=args.dtype)
            source: Any = X
        elif args.dataset == "mnist":
            from ..datasets import load_mnist_npz
            from ..jobs.schema import MnistData
            from ..jobs.sources import resolve_mnist

            try:
                path = resolve_mnist(MnistData(kind="mnist", path=args.path))
            except SourceNotFoundError as exc:  # no --path, and no file where MNIST is looked for
                raise UsageError(f"{exc} Give the Keras mnist.npz file with --path.") from None
            source, y = load_mnist_npz(path, split=args.split)
        else:
            source = args.source
            if args.dtype or args.shape:
                if not (args.dtype and args.shape):
                    raise UsageError("a raw file needs both --dtype and --shape ROWS,COLUMNS.")
                try:
                    kwargs["shape"] = tuple(int(v) for v in args.shape.split(","))
                except ValueError:
                    raise UsageError(f"--shape {args.shape!r}: expected ROWS,COLUMNS such as 60000,784.") from None
                kwargs.update(dtype=args.dtype, offset=args.byte_offset)
            if args.component:
                kwargs["component"] = args.component
        t0 = time.perf_counter()
        z = io.write_zarr(source, args.out, **kwargs)
        say(f"wrote {args.out}: {z.shape[0]:,} x {z.shape[1]} {z.dtype}, chunks {z.chunks}"
            f"{f', shards {z.shards}' if z.shards else ''}, {describe_compressors(z.compressors)} "
            f"in {time.perf_counter() - t0:.1f}s")
        if y is not None:
            base = args.out.rstrip("/")
            labels_path = args.labels or base.removesuffix(".zarr") + "-labels.zarr"
            import dask.array as da

            ya = y if isinstance(y, da.Array) else da.from_array(y, chunks=1_000_000)
            if is_url(labels_path):  # an object store: write_zarr's copy-then-move, as for the data
                io.write_zarr(ya.astype("int32")[:, None], labels_path, overwrite=args.overwrite)
                say(f"wrote {labels_path}: labels, int32 (n_samples, 1)")
            else:
                from ..jobs.outputs import write_labels

                write_labels(Path(labels_path), ya)
                say(f"wrote {labels_path}: labels, int32 (n_samples,)")
            say(f"use in a job: data: {{kind: zarr, path: {os.path.abspath(args.out)}, "
                f"labels: {{path: {os.path.abspath(labels_path)}}}}}")
    return OK


def _check_inputs(args: argparse.Namespace) -> None:
    """A local input named on the command line exists (exit status 2 before anything starts)."""
    given = {"mnist": ("--path", getattr(args, "path", None)), "ingest": ("SOURCE", getattr(args, "source", None))}
    option, path = given.get(args.dataset, ("", None))
    if path and not is_url(path) and not os.path.exists(path):
        what = "the Keras mnist.npz file" if args.dataset == "mnist" else "a .npy, raw or Zarr source"
        raise UsageError(f"{option} {path}: no such file or directory. Give {what}.")


@contextmanager
def _maybe_cluster(args: argparse.Namespace) -> Iterator[None]:
    """A cluster when one is asked for; otherwise Dask's threaded scheduler on this machine."""
    if args.cluster or args.scheduler:
        with cluster(args):
            yield
    else:
        import dask

        with dask.config.set(scheduler="threads"):
            yield
