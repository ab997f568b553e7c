"""Peak resident memory of some processes while inside a block, sampled from a thread.

Shared by the benchmark scripts (run them from the project root: ``python benchmarks/x.py``
puts this folder first on ``sys.path``)::

    from peak_rss import PeakRSS, worker_pids

    with PeakRSS(worker_pids(client)) as rss:   # the workers of a distributed Client
        model.fit(X)
    rss.largest_mib        # the largest process's peak (a worker's footprint included)
    rss.growth_mib         # the largest rise of one process above its value on entry

    with PeakRSS() as rss:                      # this process
        sklearn_model.fit(X)

A sampler sees what its period lets it see: a peak shorter than ``interval`` can be missed, so
the figures are lower bounds (one more sample is taken on exit). A process that ends inside the
block (a restarted worker) keeps the peak seen so far; its successor is not followed.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Self

import psutil

MIB = 2**20


def worker_pids(client: Any) -> list[int]:
    """The process ids of a distributed Client's workers."""
    return list(client.run(os.getpid).values())


class PeakRSS:
    """Per-process peak RSS inside a ``with`` block.

    Parameters
    ----------
    pids : list of int, optional
        The processes to follow; by default this one.
    interval : float, default=0.01
        Seconds between samples.
    """

    def __init__(self, pids: list[int] | None = None, interval: float = 0.01) -> None:
        self._procs = {pid: psutil.Process(pid) for pid in (pids or [os.getpid()])}
        self.interval = interval
        self.base: dict[int, int] = {}
        self.peak: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for pid, proc in list(self._procs.items()):
            try:
                rss = proc.memory_info().rss
            except psutil.NoSuchProcess:
                del self._procs[pid]
                continue
            self.peak[pid] = max(self.peak.get(pid, 0), rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Self:
        for pid, proc in self._procs.items():
            self.base[pid] = self.peak[pid] = proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def largest_mib(self) -> float:
        """The largest single process's peak RSS, MiB."""
        return max(self.peak.values()) / MIB

    @property
    def growth_mib(self) -> float:
        """The largest rise of one process's RSS above its value on entry, MiB."""
        return max(self.peak[pid] - self.base[pid] for pid in self.peak) / MIB
