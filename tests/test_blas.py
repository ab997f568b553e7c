"""The one BLAS-threads policy: a process-wide limit shared by nested and concurrent users."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from threadpoolctl import ThreadpoolController, threadpool_limits

from daskcluster.blas import single_threaded_blas

ROOT = Path(__file__).resolve().parents[1]


def blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in ThreadpoolController().info() if lib["user_api"] == "blas"}


@pytest.fixture
def two_blas_threads() -> None:
    if not blas_threads():
        pytest.skip("no BLAS library found by threadpoolctl")
    with threadpool_limits(limits=2, user_api="blas"):
        if blas_threads() != {2}:
            pytest.skip("this BLAS build runs one thread only")
        yield


def test_nested_uses_restore_the_limit_found_by_the_first(two_blas_threads: None) -> None:
    with single_threaded_blas():
        assert blas_threads() == {1}
        with single_threaded_blas():
            assert blas_threads() == {1}
        assert blas_threads() == {1}  # the outer user still runs
    assert blas_threads() == {2}


CONCURRENT = """
import json, threading
import numpy as np
from threadpoolctl import ThreadpoolController
from daskcluster.blas import single_threaded_blas

def blas_threads():
    return sorted({lib["num_threads"] for lib in ThreadpoolController().info() if lib["user_api"] == "blas"})

before = blas_threads()
first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
seen = {}

def first():
    with single_threaded_blas():
        first_in.set()
        second_in.wait(10)
    first_out.set()

def second():
    first_in.wait(10)
    with single_threaded_blas():
        second_in.set()
        first_out.wait(10)
        seen["after the first left"] = blas_threads()
        np.ones((64, 64)) @ np.ones((64, 64))

threads = [threading.Thread(target=first), threading.Thread(target=second)]
for t in threads:
    t.start()
for t in threads:
    t.join(20)
print(json.dumps({"before": before, "inside": seen.get("after the first left"), "after": blas_threads()}))
"""


def test_concurrent_users_share_one_limit() -> None:
    """Kernels of a threaded scheduler overlap in time without nesting: the first to leave must
    not give the others back the full team, nor the last leave the process at one thread.

    Run in a fresh interpreter: OpenBLAS ignores thread counts set from a thread other than the
    main one once the main thread has set one (seen with OpenBLAS 0.3.31), which other tests of
    this process do.
    """
    out = subprocess.run([sys.executable, "-c", CONCURRENT], check=True, capture_output=True, text=True,
                         cwd=ROOT, timeout=120).stdout
    got = json.loads(out)
    if not got["before"] or max(got["before"]) < 2:
        pytest.skip(f"BLAS runs {got['before']} threads here: nothing to limit")
    assert got == {"before": got["before"], "inside": [1], "after": got["before"]}


def test_the_limit_is_restored_when_a_kernel_raises(two_blas_threads: None) -> None:
    with pytest.raises(ZeroDivisionError), single_threaded_blas():
        1 / 0  # noqa: B018
    assert blas_threads() == {2}
