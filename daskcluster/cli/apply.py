"""``daskcluster predict``, ``transform`` and ``score``: a saved model applied to data on a cluster.

``DATA`` is read as a job reads its ``data`` block: a Zarr store (path or URL), a ``.npy``
file, a raw binary file (``--dtype``, ``--shape``), or ``mnist`` (the Keras file found as
jobs find it), with ``--scale``, ``--offset``, ``--max-rows``. The labels (or the transform)
are computed and written by the workers, into a store that appears complete or not at all.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..locations import is_url
from .console import say
from .options import OK, UsageError, cluster, cluster_options, count


def add_parsers(sub: Any) -> None:
    """The commands ``predict``, ``transform`` and ``score``."""
    from ..jobs.apply import METHODS

    for method, text in METHODS.items():
        p = sub.add_parser(method, help=f"a saved model's {method} of data, on a cluster",
                           description=f"Load MODEL.zip and compute {text}, on a cluster (the local default, "
                                       "--cluster or --scheduler).")
        p.add_argument("model", metavar="MODEL.zip")
        p.add_argument("data", metavar="DATA", help="a Zarr store (path or URL), a .npy file, a raw file (with "
                                                    "--dtype and --shape), or 'mnist'")
        if method != "score":
            p.add_argument("--out", required=True, metavar="OUT.zarr", help="where the result is written")
            p.add_argument("--overwrite", action="store_true", help="replace an existing store (atomically)")
        cluster_options(p)
        p.add_argument("--kind", choices=("zarr", "npy", "raw", "mnist"),
                       help="the source kind (default: from DATA: .npy, mnist, else zarr; raw with --dtype)")
        p.add_argument("--scale", help="read the data as x * scale + offset, e.g. 1/255")
        p.add_argument("--offset", help="see --scale (default 0)")
        p.add_argument("--max-rows", type=count(1), help="only the first rows")
        p.add_argument("--chunk-bytes", type=count(1), help="target bytes of a row chunk")
        p.add_argument("--component", help="Zarr groups: the array inside")
        p.add_argument("--dtype", help="raw files: the dtype, e.g. uint8")
        p.add_argument("--shape", help="raw files: ROWS,COLUMNS")
        p.add_argument("--byte-offset", type=count(0), help="raw files: header bytes to skip")
        p.add_argument("--split", choices=("all", "train", "test"), help="mnist: which rows (default all)")
        p.set_defaults(handler=cmd_apply, method=method)


def _data_block(args: argparse.Namespace) -> dict[str, Any]:
    """The job ``data`` block the options describe."""
    kind = args.kind
    if kind is None:
        kind = ("mnist" if args.data == "mnist" else "npy" if args.data.endswith(".npy")
                else "raw" if args.dtype or args.shape else "zarr")
    block: dict[str, Any] = {"kind": kind}
    if kind != "mnist" or args.data != "mnist":
        block["path"] = args.data
    if args.shape is not None:
        try:
            block["shape"] = [int(v) for v in args.shape.split(",")]
        except ValueError:
            raise UsageError(f"--shape {args.shape!r}: expected ROWS,COLUMNS such as 60000,784.") from None
    for option, key in (("scale", "scale"), ("offset", "offset"), ("max_rows", "max_rows"),
                        ("chunk_bytes", "chunk_bytes"), ("component", "component"), ("dtype", "dtype"),
                        ("byte_offset", "byte_offset"), ("split", "split")):
        value = getattr(args, option)
        if value is not None and key in ("scale", "offset") and "/" not in value:
            try:
                value = float(value)
            except ValueError:
                raise UsageError(f"--{key} {value!r}: expected a number such as 0.5 or a fraction such as 1/255.") \
                    from None
        if value is not None:
            block[key] = value
    return block


def cmd_apply(args: argparse.Namespace) -> int:
    from ..deploy.files import parse_model
    from ..jobs.apply import apply_model, load_model
    from ..jobs.schema import DATA_KINDS

    block = _data_block(args)
    try:
        data = parse_model(DATA_KINDS[block["kind"]], block, "DATA", ("data",))
    except KeyError:
        raise UsageError(f"--kind {block['kind']!r}: use one of {', '.join(DATA_KINDS)}.") from None
    path = getattr(data, "path", None)
    if path is not None and not is_url(path) and not os.path.exists(path):
        raise UsageError(f"DATA: no such file or folder {path!r}.")
    model = load_model(args.model, args.method)  # before the cluster starts: a wrong file costs nothing
    with cluster(args):
        result = apply_model(model, data.model_copy(update={"path": os.path.abspath(path)}) if path and
                             not is_url(path) else data, args.method, out=getattr(args, "out", None),
                             overwrite=getattr(args, "overwrite", False))
    what = f"{type(result.model).__name__}.{args.method} of {result.description}, {result.n_samples:,} x " \
           f"{result.n_features}"
    if result.score is not None:
        say(f"{result.score:.10g}")
        say(f"{what} in {result.seconds:.2f}s", file=sys.stderr)
    else:
        say(f"wrote {result.out}: {what} in {result.seconds:.2f}s")
    return OK
