"""Names of a package imported on first use (PEP 562's module ``__getattr__`` and ``__dir__``).

A Dask worker imports a function's module, and so every package above it, to run a task. The
packages of daskcluster therefore import their estimators (and with them scikit-learn, ~0.5 s
and ~160 MB per process) only when a name is first looked up, so that a worker running the
kernels, the engine's tasks or a data reader never loads them. ``from daskcluster import
KMeans``, ``daskcluster.KMeans``, ``dir()``, tab completion, ``help()`` and ``import *`` work
as with eager imports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
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
