"""The engine: everything that runs on the workers.

One pass over row-chunked data is a map of a kernel over the chunks and a fixed-order tree
reduction of its small statistics (:mod:`.passes`); arrays of rows generated chunk by chunk or
held after a pass are built by :mod:`.arrays`.
"""

from .arrays import generated_rows, held_rows, nonzero_index, rows_at, unique_values
from .passes import (
    SPLIT_EVERY,
    PassCounter,
    count_passes,
    map_rows,
    take,
    take_rows,
    tree_reduce,
    tree_reduce_rows,
)
from .schedule import row_block

__all__ = [
    "SPLIT_EVERY",
    "PassCounter",
    "count_passes",
    "generated_rows",
    "held_rows",
    "map_rows",
    "nonzero_index",
    "row_block",
    "rows_at",
    "take",
    "take_rows",
    "tree_reduce",
    "tree_reduce_rows",
    "unique_values",
]
