"""Let a compiled loop use the CPU's widest vectors: 512-bit registers where it has AVX-512.

LLVM compiles Numba's loops for the host, but on CPUs with AVX-512 it prefers 256-bit vectors
(``prefer-vector-width=256``, for the clock cost 512-bit instructions had on early AVX-512
parts), so a loop bound by its multiplications (the register-blocked products of
:mod:`daskcluster.kernels.rowproducts`) runs at half the width the CPU has. Calling
:func:`prefer_wide_vectors` in a compiled function sets two attributes of the LLVM function
being compiled, ``"prefer-vector-width"="512"`` and ``"min-legal-vector-width"="512"``: LLVM
then vectorizes its loops (and those inlined into it) with 512-bit registers where the host
has them, and with the widest the host has otherwise (256-bit on AVX2): no target feature is
added, the code runs wherever the same function without the call runs. It compiles to nothing.

If llvmlite ever refuses the attributes, the call leaves the function as it was. Numba's
on-disk cache of a calling function is keyed to the caller's source file: a change here reaches
cached callers only once their own file changes (or the cache is cleared).
"""

from __future__ import annotations

import logging
from typing import Any

from numba.core import types
from numba.extending import intrinsic

logger = logging.getLogger(__name__)

#: The LLVM function attributes that :func:`prefer_wide_vectors` sets.
ATTRIBUTES = ('"prefer-vector-width"="512"', '"min-legal-vector-width"="512"')


@intrinsic
def prefer_wide_vectors(typingctx: Any) -> Any:  # pragma: no cover - compiled
    """Mark the compiled function that calls this to vectorize with 512-bit registers where the
    host has them (see the module). For compiled code only; no run-time cost."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        attributes = builder.function.attributes
        try:  # llvmlite checks names against its list of known attributes; set.add takes these
            for attribute in ATTRIBUTES:
                set.add(attributes, attribute)
        except TypeError:
            logger.debug("llvmlite refused the vector-width attributes; the loop keeps its width")
        return context.get_dummy_value()

    return types.void(), codegen
