"""Atomic writes of files and directories: the one helper every writer in daskcluster uses.

A file or directory is written under a hidden temporary sibling, flushed to disk (``fsync`` of
the file, or of every file of a directory), renamed into place, and the folder is flushed
too, so that after a crash the path holds either the previous content or the new one, never
a partial one and never nothing:

* a **file** is renamed over the old one (``os.replace``: atomic on POSIX and Windows);
* a **directory** (a Zarr store) is swapped with the old one in one step where Linux allows it
  (``renameat2(RENAME_EXCHANGE)``); elsewhere the old one is moved aside only once the new one
  is complete, the new one renamed in, and the old one put back if that fails. A crash between
  those two renames leaves the old copy as ``.<name>.old-...``, which the next write to the
  same path (or :func:`clean_stale`) puts back.
* ``overwrite=False`` is checked by the rename itself (``RENAME_NOREPLACE``, or ``os.link``
  for files), so two writers racing for a new path cannot both win.

Temporary names carry the writer's host and pid: ``.<name>.tmp-<host>.<pid>.<random>``. The
next write to a path removes the temporaries of writers that died on this host
(:func:`clean_stale`). Files are given mode 0644 (directories 0755), whatever the process
umask of ``tempfile``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import logging
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import SourceError

__all__ = [
    "FILE_MODE",
    "atomic_dir",
    "atomic_file",
    "clean_stale",
    "clean_stale_in",
    "commit_dir",
    "fsync_dir",
    "fsync_tree",
    "pid_alive",
    "temp_name",
    "write_bytes",
]

logger = logging.getLogger(__name__)

#: Mode of every file daskcluster writes (models, checkpoints, metrics, figures, stores).
FILE_MODE = 0o644
DIR_MODE = 0o755

_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def host_tag() -> str:
    """A short, file-name-safe tag of this host (8 hex digits of the hostname's SHA-256)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temp_name(final: Path, kind: str = "tmp") -> Path:
    """``.<name>.<kind>-<host>.<pid>.<random>`` beside ``final``."""
    return final.parent / f".{final.name}.{kind}-{host_tag()}.{os.getpid()}.{uuid.uuid4().hex[:12]}"


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(name: str, base: str, kind: str) -> tuple[str, int] | None:
    """(host tag, pid) of a temporary named by :func:`temp_name`, or None for another name."""
    prefix = f".{base}.{kind}-"
    if not name.startswith(prefix):
        return None
    parts = name[len(prefix):].split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_stale(final: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries of dead writers of ``final``; put back an old copy left by a crash.

    Only temporaries written on this host by a process that no longer runs are touched.
    Returns the paths removed or restored.
    """
    final = Path(final)
    parent = final.parent
    if not parent.is_dir():
        return []
    here = host_tag()
    done: list[Path] = []
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    for name in names:
        for kind in ("tmp", "old"):
            owner = _owner(name, final.name, kind)
            if owner is None or owner[0] != here or pid_alive(owner[1]):
                continue
            path = parent / name
            if kind == "old" and not os.path.lexists(final):
                # a crash between "old aside" and "new in": the old copy is the last good one
                os.replace(path, final)
                logger.warning("Restored '%s' from '%s', left by a writer that died", final, path)
            else:
                _remove(path)
                logger.info("Removed '%s', left by a writer that died (pid %d)", path, owner[1])
            done.append(path)
    if done:
        fsync_dir(parent)
    return done


def clean_stale_in(folder: str | os.PathLike[str]) -> list[Path]:
    """:func:`clean_stale` for every path of ``folder`` that has temporaries of dead writers."""
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    bases = set()
    for name in names:
        for kind in ("tmp", "old"):
            marker = f".{kind}-"
            if name.startswith(".") and marker in name:
                base = name[1:name.rindex(marker)]
                if _owner(name, base, kind) is not None:
                    bases.add(base)
    done: list[Path] = []
    for base in sorted(bases):
        done += clean_stale(folder / base)
    return done


def scratch_dir(name: str, folder: str | os.PathLike[str] | None = None) -> str:
    """A new, private folder for one run's temporary files: ``<parent>/.<name>.tmp-<host>.<pid>.<random>``
    under ``folder`` (default: Dask's ``temporary-directory``, else the system's). The folders
    that runs of this name left behind when their process died are removed first."""
    import tempfile

    import dask

    parent = Path(folder or dask.config.get("temporary-directory", None) or tempfile.gettempdir())
    os.makedirs(parent, exist_ok=True)
    base = parent / name
    clean_stale(base)
    path = temp_name(base)
    os.mkdir(path)
    return str(path)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (renames, new files) to disk; a no-op where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                os.chmod(path, FILE_MODE)
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        with contextlib.suppress(OSError):
            os.chmod(dirpath, DIR_MODE)
        fsync_dir(dirpath)


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2`` (Linux); False when the system has none, raises OSError on failure."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.renameat2
    except (OSError, AttributeError):
        return False
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if func(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False  # kernel or filesystem without this flag
    raise OSError(err, os.strerror(err), str(dst))


def _exists_error(final: Path) -> SourceError:
    return SourceError(
        f"'{final}' already exists (it appeared while writing); pass overwrite=True to replace it, "
        "or choose another path."
    )


def _commit_file(tmp: Path, final: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, final)
        return
    try:
        if not _renameat2(tmp, final, _RENAME_NOREPLACE):
            os.link(tmp, final)  # fails if final exists: no check-then-write race
            tmp.unlink()
    except FileExistsError:
        raise _exists_error(final) from None


def commit_dir(tmp: Path, final: Path, overwrite: bool) -> None:
    if not os.path.lexists(final):
        try:
            if not _renameat2(tmp, final, _RENAME_NOREPLACE):
                os.rename(tmp, final)
        except (FileExistsError, IsADirectoryError):
            raise _exists_error(final) from None
        except OSError as exc:
            if exc.errno == errno.ENOTEMPTY:
                raise _exists_error(final) from None
            raise
        return
    if not overwrite:
        raise _exists_error(final)
    if _renameat2(tmp, final, _RENAME_EXCHANGE):  # one step: the path is never empty
        old = tmp  # now holds the previous content
    else:
        old = temp_name(final, "old")
        os.replace(final, old)
        try:
            os.replace(tmp, final)
        except BaseException:
            os.replace(old, final)
            raise
    fsync_dir(final.parent)
    try:
        _remove(old)
    except OSError as exc:
        logger.warning("Replaced '%s' but could not delete its old copy '%s': %s", final, old, exc)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], *, overwrite: bool = True,
                mode: int = FILE_MODE) -> Iterator[IO[bytes]]:
    """Yield a binary file that becomes ``path`` when the block succeeds.

    On success: flush, ``fsync``, mode ``mode``, rename into place, ``fsync`` of the folder.
    On any exception (KeyboardInterrupt included) the temporary is removed and ``path`` is
    left as it was.

    Parameters
    ----------
    path : path-like
        The file to write; its folder is created when missing.
    overwrite : bool, default=True
        With False, an existing ``path`` (even one that appears while writing) is an error,
        checked atomically by the final rename.
    mode : int, default=0o644

    Raises
    ------
    SourceError
        ``overwrite`` is False and ``path`` exists.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final)
    tmp = temp_name(final)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        _commit_file(tmp, final, overwrite)
        fsync_dir(final.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`); returns ``path``."""
    with atomic_file(path, overwrite=overwrite) as handle:
        handle.write(data)
    return Path(path)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory path (not yet created) that becomes ``path`` on success.

    On success every file below it is flushed and given mode 0644, then it is renamed (or
    swapped, see the module notes) into place and the folder flushed. On any exception the
    temporary is removed and ``path`` is left as it was.

    Raises
    ------
    SourceError
        ``overwrite`` is False and ``path`` exists (or appeared while writing).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final)
    tmp = temp_name(final)
    try:
        yield tmp
        if tmp.is_dir():
            fsync_tree(tmp)
        commit_dir(tmp, final, overwrite)
        fsync_dir(final.parent)
    except BaseException:
        _remove(tmp)
        raise
