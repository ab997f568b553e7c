"""Where a job may read and write: the path roots its operator allows.

A job file names paths (its data, its labels, a model to apply, its output folder). Whoever
runs the command, or owns the cluster, decides where those may point: the cluster config's
``allowed_paths`` block lists the roots, and every path of a job must lie under one of them
once made absolute and with its symbolic links resolved (so ``..`` and links lead nowhere
else)::

    allowed_paths:
      read: [/data/shared, .]      # data, labels and models
      write: [/scratch/results]    # output folders

Without the block the roots are the working directory and the folder of the job file, for
reading and writing. Paths given on the command line (``--out``, the data and model of
``predict``) are the operator's own and are allowed as given. ``file://`` URLs are paths of
this machine and are checked as such; other URLs (``s3://...``) are left to the storage's own
permissions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..locations import local_path

__all__ = ["PathPolicy"]


def _real(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


@dataclass(frozen=True)
class PathPolicy:
    """The roots a job may read under and write under (absolute, links resolved).

    Parameters
    ----------
    read : tuple of Path
        Roots for the job's inputs (data, labels, models to apply).
    write : tuple of Path
        Roots for the job's output folder.
    """

    read: tuple[Path, ...]
    write: tuple[Path, ...]

    @classmethod
    def from_roots(cls, read: Iterable[str | os.PathLike[str]], write: Iterable[str | os.PathLike[str]]) -> PathPolicy:
        return cls(tuple(_real(p) for p in read), tuple(_real(p) for p in write))

    @classmethod
    def for_command(cls, config: Any = None, *, job_file: str | os.PathLike[str] | None = None,
                    also_write: Iterable[str | os.PathLike[str]] = ()) -> PathPolicy:
        """The policy of a command: the cluster config's ``allowed_paths`` (default: the working
        directory and the folder of ``job_file``) plus the output folder the operator gave
        (``also_write``: ``--out``)."""
        block = getattr(config, "allowed_paths", None)
        default = ["."] + ([os.path.dirname(os.path.abspath(job_file))] if job_file is not None else [])
        read = list(block.read) if block is not None else default
        write = list(block.write) if block is not None else default
        return cls.from_roots(read, [*write, *also_write])

    @staticmethod
    def _under(path: Path, roots: tuple[Path, ...]) -> bool:
        return any(path == root or root in path.parents for root in roots)

    def problem(self, key: str, path: str, *, write: bool = False) -> str | None:
        """None if ``path`` (the value of ``key`` in the job) is allowed; else the message."""
        local = local_path(path)
        if local is None:
            return None
        roots = self.write if write else self.read
        if self._under(_real(local), roots):
            return None
        what = "write" if write else "read"
        return (f"key '{key}': {path!r} is outside the folders jobs may {what} "
                f"({', '.join(str(r) for r in roots)}). Move it under one of them, or add a root to the cluster "
                f"config's allowed_paths.{what}" + (" (or give the folder with --out)" if write else "") + ".")
