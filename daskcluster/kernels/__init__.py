"""Pure NumPy kernels: functions of one block of rows and small broadcast parameters.

Nothing in this package knows about Dask. Every kernel returns small statistics whose
combination (see each module's ``combine_*`` functions) over any split of the rows equals
the statistics of the whole: the map-reduce law that the engine relies on.
"""
