"""Compiled loops imported where they run: one handle per module of Numba loops.

The kernel modules a fit's client side needs (the statistics, parameters and combine functions
of :mod:`daskcluster.kernels.kmeans`, :mod:`~daskcluster.kernels.sweep`,
:mod:`~daskcluster.kernels.minibatch`, :mod:`~daskcluster.kernels.bounds`, and
:mod:`~daskcluster.kernels.distances` for the mini-batch estimator) import no Numba.
They reach the modules of compiled loops (:mod:`~daskcluster.kernels.assign`,
:mod:`~daskcluster.kernels.sparse`, :mod:`~daskcluster.kernels.elkan`,
:mod:`~daskcluster.kernels.mixture`) through a :func:`compiled` handle, which imports its module
when one of its names is first read: in the process that runs a kernel (a worker, or the client
under the local schedulers), never in a client that only builds graphs, combines statistics and
unpickles results. Importing Numba and building its dispatchers costs a process about 0.3 CPU
seconds. For type checkers, each module imports the real module under ``TYPE_CHECKING``.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType
from typing import Any


class CompiledModule:
    """A module, imported at the first read of one of its names (thread-safe: the import system
    locks the module while it runs)."""

    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"CompiledModule({self._name!r})"


def compiled(name: str) -> CompiledModule:
    """The module ``name`` of this package (``'assign'``, ``'mixture'``), imported when first used.

    Parameters
    ----------
    name : str
        A module of :mod:`daskcluster.kernels`, relative to it.

    Returns
    -------
    CompiledModule
        Reads of its attributes are those of the module.
    """
    return CompiledModule(f"{__package__}.{name}")
