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
    from ..deploy import EXTRAS, describe, is_cluster_config, load_config
    from ..deploy.files import ConfigError, load_yaml
    from ..jobs import check_job, load_job

    bad = 0
    for path in args.files:
        try:
            doc = load_yaml(path)
            if is_cluster_config(doc):
                cfg = load_config(path, overrides=args.overrides)
                say(f"ok {path}: cluster config, {describe(cfg)}")
                if cfg.kind in EXTRAS:
                    import importlib.util

                    module, extra, package = EXTRAS[cfg.kind]
                    if importlib.util.find_spec(module.split(".")[0]) is None:
                        say(f"   note: kind '{cfg.kind}' needs {package}: pip install 'daskcluster[{extra}]'")
            else:
                checked = check_job(load_job(path, overrides=args.overrides))
                m = checked.meta
                shape = f"{m.n_samples:,} x {m.n_features}" if m.n_samples is not None else "shape checked at run"
                say(f"ok {path}: job '{checked.job.name}', {checked.job.doc.model.name} on {m.description} ({shape})")
                for note in checked.notes:
                    say(f"   note: {note}")
        except ConfigError as exc:
            bad += 1
            say(str(exc), file=sys.stderr)
    return USAGE if bad else OK
