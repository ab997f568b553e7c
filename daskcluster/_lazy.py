"""Names of a package imported on first use (PEP 562's module ``__getattr__`` and ``__dir__``).

A Dask worker imports a function's module, and so every package above it, to run a task. The
packages of daskcluster therefore import their estimators (and with them scikit-learn, ~0.5 s
and ~160 MB per process) only when a name is first looked up, so that a worker running the
kernels, the engine's tasks or a data reader never loads them. ``from daskcluster import
KMeans``, ``daskcluster.KMeans``, ``dir()``, tab completion, ``help()`` and ``import *`` work
as with eager imports.

Two helpers for processes that know what they will need: :func:`import_without` imports a
library without the optional packages it would load only to recognise their types, and
:func:`import_in_background` imports a library in a thread while the process waits on
something else.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from types import ModuleType
from typing import Any


def attach(
    package: str, names: Mapping[str, str], eager: Sequence[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """The ``__getattr__``, ``__dir__`` and ``__all__`` of a package whose names load lazily.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    names : mapping of str to str
        Each public name and the module that defines it (absolute, or relative to ``package``
        when it starts with a dot).
    eager : sequence of str, default=()
        Names the package defines itself, listed in ``__all__`` too.

    Returns
    -------
    __getattr__, __dir__, __all__
        To be assigned to the package's module attributes of the same names. A name is
        imported on its first lookup and then stored in the package, so later lookups cost
        nothing.
    """
    modules = {name: module if not module.startswith(".") else package + module for name, module in names.items()}
    public = [*eager, *modules]

    def __getattr__(name: str) -> Any:
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(modules[name]), name)
        setattr(import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(public) | set(vars(import_module(package))))

    return __getattr__, __dir__, public


def import_without(module: str, optional: Sequence[str]) -> ModuleType:
    """Import ``module`` as if the optional packages ``optional`` were not installed.

    For a library that imports packages it can do without, only to recognise their types: Dask
    imports xarray (and with it pandas and pyarrow) to recognise a ``DataArray`` in
    ``dask.array.asarray``, and pydata sparse (and with it Numba) to accept its arrays as chunks,
    about half a second in all. A process that never has such objects (the ``daskcluster``
    command: its jobs read Zarr, ``.npy``, raw, Parquet, MNIST and generated data) imports the
    library without them. They stay importable afterwards; only that library's check for them is
    skipped. Does nothing to a module already imported.

    Parameters
    ----------
    module : str
        The module to import (e.g. ``"dask.array"``).
    optional : sequence of str
        Top-level packages that stay unimported meanwhile (those already imported are left alone).

    Returns
    -------
    module
    """
    if module in sys.modules:
        return sys.modules[module]
    hidden = [name for name in optional if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # what makes ``import name`` raise ImportError
    try:
        return import_module(module)
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


def import_in_background(modules: Sequence[str]) -> threading.Thread:
    """Start importing ``modules`` in a daemon thread; return the thread.

    For a library needed later by a process that is waiting meanwhile (the command imports
    matplotlib for its plots while the fit's passes run on the workers). An import that fails
    here fails again, with its message, where the module is used.
    """

    def run() -> None:
        for name in modules:
            try:
                import_module(name)
            except Exception:  # raised again, where it matters, by the import that needs it
                return

    thread = threading.Thread(target=run, name="daskcluster-import", daemon=True)
    thread.start()
    return thread
