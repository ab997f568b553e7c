"""Lock files: one writer at a time for an output folder or a checkpoint.

A lock is a small JSON file (``pid``, ``host``, ``started``, ``argv``) created with
``O_CREAT | O_EXCL``, so exactly one process can create it. A second writer gets
:class:`~daskcluster.errors.LockedError` naming the holder. A lock left by a process that
died on this host (its pid no longer runs) is stale: it is taken over, with a warning. A lock
from another host cannot be checked from here: the message says how to remove it by hand.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from .atomic import FILE_MODE, pid_alive, temp_name
from .errors import LockedError

__all__ = ["FileLock", "read_lock"]

logger = logging.getLogger(__name__)


def read_lock(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The holder recorded in a lock file, ``{}`` if unreadable, None if there is none."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _stale(holder: dict[str, Any]) -> bool:
    pid = holder.get("pid")
    return (holder.get("host") == socket.gethostname() and isinstance(pid, int)
            and pid != os.getpid() and not pid_alive(pid))


class FileLock:
    """An exclusive lock on ``what``, held as the file ``path``.

    Use as a context manager, or call :meth:`acquire` and :meth:`release`.

    Parameters
    ----------
    path : path-like
        The lock file (its folder is created when missing).
    what : str
        What the lock protects, for messages (e.g. ``"the output folder '/out'"``).
    timeout : float, default=0
        Seconds to wait for a live holder to release the lock before the error (for locks
        held only briefly, such as a checkpoint's during one save).
    """

    def __init__(self, path: str | os.PathLike[str], what: str, *, timeout: float = 0) -> None:
        self.path = Path(path)
        self.what = what
        self.timeout = timeout
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def _create(self) -> bool:
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "argv": sys.argv[:4]}
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def _take_over(self, holder: dict[str, Any]) -> None:
        """Move a stale lock aside; put it back if it was replaced by a live one meanwhile."""
        aside = temp_name(self.path, "stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        if read_lock(aside) == holder:
            aside.unlink(missing_ok=True)
            logger.warning("Took over the stale lock '%s' of %s (pid %s on %s no longer runs)",
                           self.path, self.what, holder.get("pid"), holder.get("host"))
            return
        try:  # someone else's fresh lock: give it back
            os.link(aside, self.path)
        except FileExistsError:
            pass
        aside.unlink(missing_ok=True)

    def acquire(self) -> FileLock:
        """Take the lock; raises :class:`LockedError` if a live process holds it."""
        if self._held:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.timeout
        takeovers = 0
        while True:
            if self._create():
                self._held = True
                logger.debug("Locked %s (%s)", self.what, self.path)
                return self
            holder = read_lock(self.path)
            if holder is None:
                continue  # released meanwhile
            if _stale(holder) and takeovers < 3:
                takeovers += 1
                self._take_over(holder)
                continue
            if time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        holder = read_lock(self.path) or {}
        if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            who = "this process"
        else:
            who = f"process {holder.get('pid', '?')} on host {holder.get('host', '?')}"
        raise LockedError(
            f"{self.what[0].upper()}{self.what[1:]} is being written by {who} (lock file '{self.path}', "
            f"taken {holder.get('started', '?')}). Wait for it to finish or use another path; if that "
            f"process no longer runs, delete '{self.path}'."
        )

    def release(self) -> None:
        """Remove the lock file if this object holds it."""
        if not self._held:
            return
        holder = read_lock(self.path)
        if holder is not None and holder.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        self._held = False

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
