"""Chunk buffers from the heap while streamed runs read (``engine/heap.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from daskcluster.engine import heap

GLIBC = heap._glibc() is not None

# A child started as distributed's nannies start workers (MALLOC_TRIM_THRESHOLD_=65536, so glibc's
# mmap threshold is fixed at 128 KiB and the heap's top trimmed past 64 KiB): the page faults of
# allocating, touching and freeing a 24 MiB buffer ten times, outside and inside
# chunk_buffers_from_heap, and after it.
CHILD = textwrap.dedent("""
    import json, resource
    from daskcluster.engine import heap

    def faults():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(10):
            buf = bytearray(24 << 20)  # malloc's own memory (NumPy asks large arrays for huge pages)
            buf[::4096] = bytes(len(range(0, 24 << 20, 4096)))
            del buf
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    out = {"outside": faults()}
    with heap.chunk_buffers_from_heap():
        faults()  # the heap grows to the buffer's size once
        out["inside"] = faults()
    out["after"] = faults()
    out["runs"] = heap.runs()
    print(json.dumps(out))
""")


@pytest.mark.skipif(not GLIBC, reason="the heap's threshold is glibc's (mallopt); elsewhere nothing is changed")
def test_buffers_are_reused_inside_and_mapped_again_after() -> None:
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    out = json.loads(subprocess.run([sys.executable, "-c", CHILD], env=env, check=True, capture_output=True,
                                    text=True).stdout)
    pages = (24 << 20) // 4096
    assert out["outside"] >= 10 * pages * 0.9  # each buffer mapped and faulted anew
    assert out["inside"] < pages  # reused from the heap
    assert out["after"] >= 10 * pages * 0.9  # the default back when the run ended
    assert out["runs"] == 0


def test_runs_are_counted_across_threads() -> None:
    """The threshold stays raised until the last of overlapping runs (threads of one worker) ends."""
    started, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def run() -> None:
        with heap.chunk_buffers_from_heap():
            started.set()
            release.wait(10)

    t = threading.Thread(target=run)
    t.start()
    started.wait(10)
    with heap.chunk_buffers_from_heap():
        seen.append(heap.runs())
        release.set()
        t.join()
        seen.append(heap.runs())
    seen.append(heap.runs())
    assert seen == ([2, 1, 0] if GLIBC else [0, 0, 0])
