"""The engine: everything that runs on the workers.

One pass over row-chunked data is a map of a kernel over the chunks and a fixed-order tree
reduction of its small statistics (:mod:`.passes`); arrays of rows generated chunk by chunk or
held after a pass are built by :mod:`.arrays`; passes whose state flows from chunk to chunk in
a seeded order (mini-batches) are run by :mod:`.sequential`; rows kept beside streamed data go
to the temporary store of :mod:`.rowstore`; rows staged on disk per partition are run by the
tasks of :mod:`.partitions`, with the kernel functions an estimator gives them (DBSCAN's boxes).
"""

from .arrays import generated_rows, held_rows, nonzero_index, rows_at, unique_values
from .passes import (
    SPLIT_EVERY,
    PassCounter,
    count_passes,
    map_rows,
    record_pass,
    take,
    take_rows,
    tree_reduce,
    tree_reduce_rows,
)
from .rowstore import RowStore, StoredRows, store_rows
from .schedule import row_block
from .sequential import (
    Round,
    SequentialSteps,
    epoch_rounds,
    run_on_whole,
    run_sequential,
)

__all__ = [
    "SPLIT_EVERY",
    "PassCounter",
    "Round",
    "RowStore",
    "SequentialSteps",
    "StoredRows",
    "count_passes",
    "epoch_rounds",
    "generated_rows",
    "held_rows",
    "map_rows",
    "nonzero_index",
    "record_pass",
    "row_block",
    "rows_at",
    "run_on_whole",
    "run_sequential",
    "store_rows",
    "take",
    "take_rows",
    "tree_reduce",
    "tree_reduce_rows",
    "unique_values",
]
