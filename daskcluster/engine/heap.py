"""Chunk buffers from the heap while a streamed run reads: glibc's mmap threshold raised for the run.

distributed's nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also turns
off glibc's dynamic mmap threshold: every buffer above 128 KiB is then its own ``mmap``,
unmapped when freed. A streamed run allocates several chunk-sized buffers per chunk (the
compressed bytes, the decoded ones, the array Zarr returns), so each of their pages is faulted
in and zeroed again at every chunk. While at least one run of this process reads
(:func:`chunk_buffers_from_heap`, entered by :class:`~.readahead.RunReader`), buffers up to
:data:`MMAP_THRESHOLD` come from the heap and a few chunks' worth of free heap is kept
(:data:`TRIM_THRESHOLD`), so the next chunk reuses them; when the last run ends, both
thresholds go back to what the process started with and the free heap is returned to the
system (``malloc_trim``), so that memory held between passes (persisted arrays, a fit's state) is not
kept from the system by buffers of a pass that is over.

Measured (MNIST8M chunks of 32,768 x 784 uint8, Blosc lz4hc 5, ``LocalCluster(2 workers x 1
thread, 2 GiB)``, AMD EPYC): reading and decoding a chunk in a worker 27.5 ms of CPU with
buffers mapped anew, 11.9 ms from the heap; the streamed read floor of the whole store 3.94 s
against 2.19 s (``benchmarks/RESULTS-mnist8m.md``). Setting the threshold for the whole worker
instead (``MALLOC_MMAP_THRESHOLD_`` in its environment) kept freed buffers between persisted
arrays: a KMeans iteration on 500,000 persisted float32 rows went from 0.12 to 1.95 s, the
workers spilling (peak RSS 1.47 against 1.27 GiB).

Elsewhere than glibc (macOS, musl) nothing is changed.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)

#: glibc's ``mallopt`` parameters.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Buffers up to this many bytes come from the heap during a run: glibc's largest mmap threshold
#: on 64-bit systems (half its 64 MiB heap size), above a chunk of the default size
#: (``chunk_bytes``, 32 MiB).
MMAP_THRESHOLD = 32 << 20
#: glibc's default mmap threshold, restored when the last run ends.
DEFAULT_MMAP_THRESHOLD = 128 << 10
#: Free bytes at the top of the heap kept during a run (a few chunks): a buffer freed there is
#: not returned to the system before the next chunk asks for it again.
TRIM_THRESHOLD = 4 * MMAP_THRESHOLD
#: glibc's default trim threshold, restored when the last run ends unless the process's
#: environment sets one (``MALLOC_TRIM_THRESHOLD_``, as distributed's nannies do).
DEFAULT_TRIM_THRESHOLD = 128 << 10


def _trim_threshold() -> int:
    """The trim threshold the process started with."""
    try:
        return int(os.environ.get("MALLOC_TRIM_THRESHOLD_", DEFAULT_TRIM_THRESHOLD))
    except ValueError:
        return DEFAULT_TRIM_THRESHOLD


def _glibc() -> Any:
    """The process's C library if it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()
_lock = threading.Lock()
_runs = 0


def runs() -> int:
    """Runs of this process inside :func:`chunk_buffers_from_heap` now."""
    return _runs


@contextmanager
def chunk_buffers_from_heap() -> Iterator[None]:
    """Within it (in any thread of the process), buffers up to :data:`MMAP_THRESHOLD` bytes come
    from the heap; when the last such block of the process exits, the default threshold is back
    and the free heap returned to the system."""
    global _runs
    if _LIBC is None:
        yield
        return
    with _lock:
        _runs += 1
        if _runs == 1:
            _LIBC.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
            if not _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD):
                logger.debug("mallopt(M_MMAP_THRESHOLD, %d) refused", MMAP_THRESHOLD)
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0:
                _LIBC.mallopt(M_MMAP_THRESHOLD, DEFAULT_MMAP_THRESHOLD)
                _LIBC.mallopt(M_TRIM_THRESHOLD, _trim_threshold())
                _LIBC.malloc_trim(0)
