"""``daskcluster info``: versions, optional backends, the cluster that would be used and its dashboard."""

from __future__ import annotations

import argparse
from typing import Any

from .. import __version__
from .console import say
from .options import OK, cluster, cluster_options


def add_parser(sub: Any) -> None:
    """The ``info`` command."""
    n = sub.add_parser("info", help="versions, backends, the cluster that would be used and its dashboard")
    cluster_options(n)
    n.add_argument("--start", action="store_true", help="start (or connect to) the cluster to show its dashboard")
    n.set_defaults(handler=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    import importlib.metadata as md
    import platform

    from ..deploy import EXTRAS, default_config, describe, load_config

    say(f"daskcluster {__version__} (Python {platform.python_version()}, {platform.platform()})")
    for package in ("dask", "distributed", "numpy", "scikit-learn", "zarr", "dask-ml", "pydantic", "PyYAML",
                    "tqdm", "bokeh", "matplotlib"):
        try:
            say(f"  {package:<14} {md.version(package)}")
        except md.PackageNotFoundError:
            say(f"  {package:<14} (not installed)")
    say("backends:")
    for kind, (_, extra, package) in EXTRAS.items():
        try:
            state = md.version(package)
        except md.PackageNotFoundError:
            state = f"not installed: pip install 'daskcluster[{extra}]'"
        say(f"  {kind:<11} {package} {state}")
    problem = dashboard_problem()
    if problem:
        say(f"dashboard: {problem}")
    cfg: Any = load_config(args.cluster) if args.cluster else None
    if args.scheduler:
        where = f"existing scheduler at {args.scheduler}"
    else:
        where = describe(cfg or default_config()) + (f" ({args.cluster})" if args.cluster else " (the default)")
    say(f"cluster: {where}")
    connect = args.start or args.scheduler or (cfg is not None and cfg.kind == "address")
    if not connect:
        port = (cfg or default_config()).dashboard_address if hasattr(cfg or default_config(), "dashboard_address") \
            else None
        host = f"127.0.0.1{port}" if port and port.startswith(":") else port
        say(f"dashboard: http://{host}/status once started (--start starts it to check)"
            if port else "dashboard: none configured")
        return OK
    with cluster(args, wait=False) as d:
        info = d.client.scheduler_info()
        workers = info.get("workers", {})
        threads = sum(w.get("nthreads", 0) for w in workers.values())
        say(f"scheduler: {d.scheduler_address}: {len(workers)} worker(s), {threads} thread(s)")
        link = d.dashboard_link
        say(f"dashboard: {link} ({_answer(link)})" if link else "dashboard: the scheduler serves none")
    return OK


#: What Dask's dashboard needs (``distributed.dashboard``'s own requirement).
BOKEH_MINIMUM = (3, 1)


def dashboard_problem() -> str | None:
    """None when this Python can serve Dask's dashboard; else what is missing and the fix."""
    import importlib.metadata as md

    try:
        version = md.version("bokeh")
    except md.PackageNotFoundError:
        return "bokeh is not installed, so a cluster started here serves no dashboard: pip install 'bokeh>=3.1'"
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts < BOKEH_MINIMUM:
        return f"bokeh {version} is older than the 3.1 Dask's dashboard needs: pip install 'bokeh>=3.1'"
    return None


def _answer(link: str) -> str:
    """``HTTP 200`` (or what went wrong) for a GET of the dashboard's page."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(link, timeout=10) as response:
            return f"answers HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"answers HTTP {exc.code}: {exc.reason}"
    except OSError as exc:
        return f"does not answer from here: {exc}"
