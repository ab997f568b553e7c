"""The BLAS products compiled kernels call without the GIL, against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from daskcluster.kernels.blas_nogil import DSYRK, DTRMM, syrk_lower_add, trmm_upper


@pytest.mark.parametrize("n_rows", [0, 1, 7, 300])
def test_triangular_product_in_place_equals_numpy(n_rows: int) -> None:
    rng = np.random.default_rng(n_rows)
    d = 13
    factor = np.triu(rng.normal(size=(d, d)))
    y = rng.normal(size=(n_rows, d))
    expected = y @ factor
    trmm_upper(DTRMM, y, factor)
    # sums of at most d products of O(1) values: rounding ~ d * eps
    assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_rows", [0, 1, 7, 300])
def test_syrk_adds_to_the_lower_triangle_only(n_rows: int) -> None:
    rng = np.random.default_rng(n_rows)
    d = 13
    x = rng.normal(size=(n_rows, d))
    out = rng.normal(size=(d, d))
    before = out.copy()
    syrk_lower_add(DSYRK, x, out)
    lower = np.tril_indices(d)
    # sums of n_rows products of O(1) values: rounding ~ n_rows * eps relative to n_rows
    assert_allclose(out[lower], (before + x.T @ x)[lower], rtol=1e-12, atol=1e-12 * max(1, n_rows))
    upper = np.triu_indices(d, 1)
    assert_array_equal(out[upper], before[upper])
