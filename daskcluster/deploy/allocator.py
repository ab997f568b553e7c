"""The workers' memory allocator: chunk-sized buffers reused, not page-faulted at every chunk.

Distributed's nannies start each worker with ``MALLOC_TRIM_THRESHOLD_=65536``
(``distributed.nanny.pre-spawn-environ``) so that freed memory goes back to the system. Setting
it also turns off glibc's dynamic mmap threshold: every buffer above 128 KiB is then its own
``mmap``, unmapped when freed. A streamed pass allocates several chunk-sized buffers per chunk
(the compressed bytes, the decoded ones, the array Zarr returns), so each of their pages is
faulted in and zeroed again at every chunk. Serving buffers up to :data:`MMAP_THRESHOLD` from
the heap lets the next chunk reuse them; the trim threshold stays, so what lies free at the
top of the heap still goes back.

Measured (MNIST8M chunks of 32,768 x 784 uint8, Blosc lz4hc 5, ``LocalCluster(2 workers x 1
thread, 2 GiB)``, CPU time inside the task, median of 64 chunks; AMD EPYC): reading and
decoding a chunk 27.5 ms with distributed's settings, 11.9 ms with ``MALLOC_MMAP_THRESHOLD_`` at
32 MiB; the Gaussian-mixture pass on the chunk after it 16.3 against 16.1 ms; the workers' RSS
0.21 against 0.35 GiB (``benchmarks/RESULTS-mnist8m.md``).

The setting must be in a worker's environment before its process starts. Clusters daskcluster
starts get it: ``LocalCluster`` through the nannies' pre-spawn environment
(:func:`worker_allocator`), batch jobs through their script's prologue
(:func:`prologue_exports`), Kubernetes pods through their environment (:func:`pod_env`). A
value the user set (in that configuration or in the environment) is kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dask

#: glibc's largest mmap threshold on 64-bit systems (half its 64 MiB heap size): buffers up to
#: it come from the heap. Chunks of the default size (``chunk_bytes``, 32 MiB) fit under it.
MMAP_THRESHOLD = 32 << 20
#: What every worker's environment gets, unless it sets the variable itself.
WORKER_ALLOCATOR: dict[str, str] = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}

_PRE_SPAWN = "distributed.nanny.pre-spawn-environ"


def pre_spawn_environ() -> dict[str, Any]:
    """Distributed's pre-spawn environment with :data:`WORKER_ALLOCATOR` added where neither it
    nor this process's environment sets the variable."""
    environ = dict(dask.config.get(_PRE_SPAWN, default={}) or {})
    for name, value in WORKER_ALLOCATOR.items():
        if name not in environ and name not in os.environ:
            environ[name] = value
    return environ


@contextmanager
def worker_allocator() -> Iterator[None]:
    """Within it, nannies (of a ``LocalCluster`` being created) start their workers with
    :func:`pre_spawn_environ`."""
    with dask.config.set({_PRE_SPAWN: pre_spawn_environ()}):
        yield


def prologue_exports(prologue: list[str]) -> list[str]:
    """A batch job's script prologue with an ``export`` of each :data:`WORKER_ALLOCATOR` variable
    the prologue does not already set, first (the user's lines run after and win)."""
    exports = [f"export {name}={value}" for name, value in WORKER_ALLOCATOR.items()
               if not any(f"{name}=" in line for line in prologue)]
    return exports + list(prologue)


def pod_env(env: Mapping[str, str]) -> dict[str, str]:
    """A pod's environment with :data:`WORKER_ALLOCATOR`'s variables where it does not set them."""
    return {**WORKER_ALLOCATOR, **env}
