"""Row-aligned state kept beside the chunks, in the memory of the process that ran their task.

Some passes carry per-row state from one pass to the next that only saves work, never
changes a result — the distance bounds of accelerated k-means, each row's nearest k-means||
candidate between seeding rounds. Such state is kept in a
process-local table keyed by ``(token, chunk index)``: on a Dask worker it sits beside the
chunk the worker holds (tasks run where their data are, so the next pass over the chunk finds
it); on the local schedulers it is in this process. A kernel that finds no state, or state
that another pass made, recomputes it: so a lost worker, a task moved to another worker or a
restarted fit give the same result, only slower.

:func:`tree_reduce_with_state` is the pass; :func:`release` drops a fit's state everywhere.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import dask.array as da
import numpy as np

from ..data import RowData
from ..kernels.blocks import ChunkInfo
from .passes import tree_reduce

logger = logging.getLogger(__name__)

S = TypeVar("S")
T = TypeVar("T")

_states: dict[str, dict[int, Any]] = {}
_lock = threading.Lock()


def new_token(prefix: str = "state") -> str:
    """A fresh key for one fit's state."""
    return f"{prefix}-{uuid.uuid4().hex}"


def _run_with_state(kernel: Callable[..., tuple[S, Any]], token: str, block: np.ndarray,
                    sample_weight: np.ndarray | None, chunk: ChunkInfo, params: Any) -> S:
    with _lock:
        state = _states.get(token, {}).pop(chunk.index, None)
    stats, new = kernel(block, sample_weight, chunk, params, state)
    with _lock:
        _states.setdefault(token, {})[chunk.index] = new
    return stats


def tree_reduce_with_state(
    data: RowData,
    kernel: Callable[[np.ndarray, np.ndarray | None, ChunkInfo, Any, Any], tuple[S, Any]],
    params: Any,
    combine: Callable[[list[S]], S],
    *,
    token: str,
    weights: da.Array | None = None,
    label: str | None = None,
) -> S:
    """One pass over ``data`` (as :func:`~daskcluster.engine.tree_reduce`) whose kernel also
    reads and replaces the state its chunk left in the previous pass under ``token``.

    ``kernel(block, weights_block, ChunkInfo, params, state_or_None) -> (statistics, new_state)``.
    The state must only save work: the statistics may not depend on whether it was found.
    Each chunk's task runs where its chunk is held (persisted data) or on a fixed worker
    (streamed data), so the state is found again pass after pass. Data passes: 1.
    """
    name = label or getattr(kernel, "__name__", "pass")
    return tree_reduce(data, partial(_run_with_state, kernel, token), params, combine, weights=weights, label=name)


def drop(token: str) -> int:
    """Drop this process's state under ``token``; returns the number of chunks it held."""
    with _lock:
        return len(_states.pop(token, {}))


def held() -> dict[str, int]:
    """The tokens whose state this process holds, with their number of chunks."""
    with _lock:
        return {token: len(chunks) for token, chunks in _states.items()}


def release(token: str) -> None:
    """Drop the state under ``token`` in this process and on every worker of the active
    distributed Client (if any)."""
    drop(token)
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        return
    try:
        client.run(drop, token)
    except Exception as exc:  # noqa: BLE001 - the workers may be gone; the state only costs memory
        logger.debug("could not drop state %s on the workers: %s", token, exc)
