"""``daskcluster validate``: check cluster configs and job files; nothing starts, no data is read."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .console import say
from .options import OK, USAGE


def add_parser(sub: Any) -> None:
    """The ``validate`` command."""
    v = sub.add_parser("validate", help="check cluster configs and job files (nothing starts)")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    v.set_defaults(handler=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    """Every problem of every file, one line each; ``--set`` applies to the jobs. Jobs may use the
    paths that the ``allowed_paths`` of a cluster config given alongside allow (default: the
    working directory and the job file's folder)."""
    from ..deploy import EXTRAS, describe, is_cluster_config, load_config
    from ..deploy.files import ConfigError, load_yaml
    from ..jobs.policy import PathPolicy
    from ..jobs.validation import validate_job

    bad = 0
    docs: dict[str, Any] = {}
    for path in args.files:
        try:
            docs[path] = load_yaml(path)
        except ConfigError as exc:
            bad += 1
            say(str(exc), file=sys.stderr)
    configs = {}
    for path, doc in docs.items():
        if not is_cluster_config(doc):
            continue
        try:
            configs[path] = cfg = load_config(path)
        except ConfigError as exc:
            bad += 1
            say(str(exc), file=sys.stderr)
            continue
        say(f"ok {path}: cluster config, {describe(cfg)}")
        if cfg.kind in EXTRAS:
            import importlib.util

            module, extra, package = EXTRAS[cfg.kind]
            if importlib.util.find_spec(module.split(".")[0]) is None:
                say(f"   note: kind '{cfg.kind}' needs {package}: pip install 'daskcluster[{extra}]'")
    config = next((c for c in configs.values() if c.allowed_paths is not None), None)
    for path, doc in docs.items():
        if is_cluster_config(doc):
            continue
        try:
            checked = validate_job(path, overrides=args.overrides, policy=PathPolicy.for_command(config, job_file=path))
        except ConfigError as exc:
            bad += 1
            say(str(exc), file=sys.stderr)
            continue
        m = checked.meta
        shape = f"{m.n_samples:,} x {m.n_features}" if m.n_samples is not None else "shape checked at run"
        say(f"ok {path}: job '{checked.job.name}', {checked.job.doc.model.name} on {m.description} ({shape})")
        for note in checked.notes:
            say(f"   note: {note}")
    return USAGE if bad else OK
