"""Kernels: functions of one block of rows and small broadcast parameters.

A kernel is NumPy and BLAS (SciPy's, or :mod:`.blas_nogil`'s from compiled code), compiled
Numba loops (``nogil``, cached on disk) or LLVM vector code emitted by Numba intrinsics through
llvmlite (:mod:`.vector_ir`, :mod:`.rowproducts`, :mod:`.byteproducts`, :mod:`.mixture`'s
:mod:`~.mixture.whitened`, :mod:`~.mixture.gram`, :mod:`~.mixture.nonzero_groups` and
:mod:`~.mixture.diag_nonzeros`). This package imports NumPy, SciPy, Numba and llvmlite, and of
daskcluster only :mod:`daskcluster.errors` and :mod:`daskcluster.blas`: nothing here knows
about Dask. The modules of the k-means family's statistics and combine functions import no
Numba: they reach the compiled loops through :mod:`.compiled`, in the process that runs them.

A kernel of a pass returns small statistics whose combination (see each module's
``combine_*`` functions) over any split of the rows equals the statistics of the whole: the
map-reduce law that the engine relies on. The others return per-row outputs (labels,
distances, log-densities) of their block.
"""
