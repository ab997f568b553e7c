"""A module of the package as of a past commit, imported beside the current one (for A/B runs)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from collections.abc import Mapping
from types import ModuleType


def module_at(commit: str, path: str, where: str, moved: Mapping[str, str] | None = None) -> ModuleType:
    """The module at ``path`` (e.g. ``daskcluster/kernels/rowproducts.py``) as of ``commit``, its
    relative imports made absolute (``moved``: relative names, e.g. ``.vector_ir``, to the
    absolute module that now holds what they named then), written to ``where`` and imported
    there as ``<name>_<commit>``."""
    source = subprocess.run(["git", "show", f"{commit}:{path}"], check=True, capture_output=True, text=True).stdout
    package = path.removesuffix(".py").split("/")[:-1]

    def absolute(match: re.Match[str]) -> str:
        dots, name = match.group(1), match.group(2)
        if (moved or {}).get(dots + name):
            return f"from {moved[dots + name]} import"  # type: ignore[index]
        base = package[: len(package) - (len(dots) - 1)]
        return f"from {'.'.join(base + ([name] if name else []))} import"

    source = re.sub(r"from (\.+)([\w.]*) import", absolute, source)
    name = f"{os.path.basename(path).removesuffix('.py')}_{commit}"
    file = os.path.join(where, f"{name}.py")
    with open(file, "w") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
