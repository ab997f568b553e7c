"""OPNMF: the ``opnmf`` package's results from the same initial W (both orientations), a valid
model where the package fails, the map-reduce law of the kernels, out of core from Zarr,
rank selection, the negative-input error, and the faces workflow at small size."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import warnings
from itertools import pairwise
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
from opnmf.opnmf import opnmf as package_opnmf
from sklearn.datasets import load_digits

from daskcluster.data import as_row_data
from daskcluster.decomposition import OPNMF
from daskcluster.engine import count_passes, tree_reduce_rows
from daskcluster.errors import (
    InvalidDataError,
    InvalidParameterError,
    NonFiniteDataError,
)
from daskcluster.io import open_array, write_zarr
from daskcluster.kernels import opnmf as K
from daskcluster.kernels.blocks import Affine, ChunkInfo

ROOT = Path(__file__).resolve().parents[1]
SPLITS = [(0, 300), (0, 1, 300), (0, 97, 97, 211, 300)]


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits (1797 x 64, float64 in 0..16) and the mask of its pixels that are
    never inked (3 of them)."""
    X = load_digits().data
    return X, ~X.any(axis=0)


def package(X: np.ndarray, k: int, **kw: object) -> tuple[np.ndarray, np.ndarray, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return package_opnmf(X, k, **kw)  # type: ignore[no-any-return]


def package_n_iter(caplog: pytest.LogCaptureFixture) -> int:
    """The updates the package made, from its log line ``Converged in {iter} iterations``
    (``iter`` is 0-based)."""
    found = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Converged in")]
    assert len(found) == 1, found
    return int(found[0].split()[2]) + 1


def quiet_fit(model: OPNMF, X: object, **kw: object) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit_transform(X, **kw)


def orthonormal_nonnegative(W: np.ndarray, atol: float) -> None:
    assert np.isfinite(W).all() and W.min() > 0
    np.testing.assert_allclose(W.T @ W, np.eye(W.shape[1]), atol=atol)


# --------------------------------------------------------------------------- the package's results


def test_features_equal_the_package_from_the_same_init(digits: tuple[np.ndarray, np.ndarray],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    X, blank = digits
    Xr = X[:, ~blank]  # the package factorizes Xr.T: W over the 61 inked pixels
    W0 = np.random.default_rng(0).random((Xr.shape[1], 6))
    caplog.set_level(logging.INFO, logger="opnmf")
    Wp, Hp, err = package(Xr.T, 6, init="custom", init_W=W0, max_iter=5000, tol=1e-5)
    model = OPNMF(6, orientation="features", init="custom", max_iter=5000, tol=1e-5)
    with count_passes() as passes:
        weights = quiet_fit(model, Xr, init_W=W0)
    assert passes.passes == 1  # the Gram matrix; the iterations read no data
    with count_passes() as passes:
        quiet_fit(OPNMF(6, orientation="features", max_iter=50), Xr)
    assert passes.passes == 1  # NNDSVD too
    assert model.n_iter_ == package_n_iter(caplog) > 100
    np.testing.assert_allclose(model.coef_, Wp, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.components_, Wp.T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(weights, Hp.T, rtol=1e-9, atol=1e-9)
    assert model.reconstruction_err_ == pytest.approx(err, rel=1e-10) and model.mse() == model.reconstruction_err_
    # X ~ fit_transform(X) @ components_, as in scikit-learn
    assert np.linalg.norm(Xr - model.inverse_transform(weights)) == pytest.approx(err, rel=1e-10)
    np.testing.assert_allclose(model.transform(Xr), weights, rtol=1e-12)


def test_samples_equal_the_package_from_the_same_init(digits: tuple[np.ndarray, np.ndarray],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    X, blank = digits
    Xr = X[:240, ~blank]  # the package forms the 240 x 240 XXᵀ; this never does
    W0 = np.random.default_rng(1).random((240, 5))
    caplog.set_level(logging.INFO, logger="opnmf")
    Wp, Hp, err = package(Xr, 5, init="custom", init_W=W0, max_iter=400, tol=1e-3)
    model = OPNMF(5, init="custom", max_iter=400, tol=1e-3)
    data = da.from_array(Xr, chunks=(70, -1))  # 4 chunks: W row-chunked beside them
    with count_passes() as passes:
        W = quiet_fit(model, data, init_W=W0)
    assert isinstance(W, da.Array) and W.chunks[0] == (70, 70, 70, 30)
    # converged at the package's iteration: 1 pass to start, 1 per update, 1 that sees the change < tol
    assert model.n_iter_ == package_n_iter(caplog) > 100
    assert passes.passes == model.n_iter_ + 2
    np.testing.assert_allclose(W.compute(), Wp, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.components_, Hp, rtol=1e-9, atol=1e-9)
    assert model.reconstruction_err_ == pytest.approx(err, rel=1e-10)
    with pytest.raises(InvalidParameterError, match="transform needs orientation='features'"):
        model.transform(Xr)


def test_nndsvd_is_the_package_init_up_to_its_randomized_svd(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, blank = digits
    Xr = X[:, ~blank]
    for orientation, Xp in (("features", Xr.T), ("samples", Xr)):
        Wp, _, err = package(Xp, 6, max_iter=1)  # init='nndsvd' on a randomized SVD
        model = OPNMF(6, orientation=orientation, max_iter=1)
        quiet_fit(model, Xr)
        np.testing.assert_allclose(model.coef_, Wp, atol=1e-4 * np.abs(Wp).max())
        assert model.reconstruction_err_ == pytest.approx(err, rel=1e-5)


def test_blank_pixels_give_a_valid_model_where_the_package_fails(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, blank = digits
    with pytest.raises(np.linalg.LinAlgError, match="SVD did not converge"):
        package(X.T, 6, max_iter=200)
    kept = OPNMF(6, orientation="features", max_iter=200)
    quiet_fit(kept, X)
    orthonormal_nonnegative(kept.coef_, atol=0.3)
    assert np.isfinite(kept.components_).all() and np.isfinite(kept.reconstruction_err_)
    # the blank pixels hold the floor only, and the other pixels get the model of the data without them
    assert kept.coef_[blank].max() < 1e-14
    removed = OPNMF(6, orientation="features", max_iter=200)
    quiet_fit(removed, X[:, ~blank])
    np.testing.assert_allclose(kept.coef_[~blank], removed.coef_, rtol=1e-8, atol=1e-12)
    assert kept.reconstruction_err_ == pytest.approx(removed.reconstruction_err_, rel=1e-10)
    # and the package agrees with that model on the data it can handle
    Wp, _, err = package(X[:, ~blank].T, 6, init="custom", init_W=quiet_init(X[:, ~blank]), max_iter=200)
    np.testing.assert_allclose(removed.coef_, Wp, rtol=1e-8, atol=1e-12)
    assert removed.reconstruction_err_ == pytest.approx(err, rel=1e-10)


def quiet_init(Xr: np.ndarray) -> np.ndarray:
    """Our NNDSVD init of 6 components over the features of ``Xr``, (n_features, 6)."""
    from daskcluster.decomposition._opnmf_fit import prepare
    from daskcluster.decomposition._opnmf_init import nndsvd_features

    prep = prepare(as_row_data(Xr, owner="test"), "features", "nndsvd", 6, 0, "test")
    return nndsvd_features(prep.spectrum, 6, "nndsvd", prep.mean, 0)


def test_all_zero_samples_over_the_samples_give_a_valid_model(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = digits
    Xz = X[:200].copy()
    Xz[[3, 50, 51]] = 0  # blank samples: zero rows of NNDSVD's U, where the package divides 0 by 0
    model = OPNMF(4, max_iter=300, tol=1e-4)
    W = quiet_fit(model, Xz)
    orthonormal_nonnegative(W, atol=0.3)
    assert W[[3, 50, 51]].max() < 1e-14 and np.isfinite(model.components_).all()


# --------------------------------------------------------------------------- kernels: the map-reduce law


def split_stats(kernel, combine, X, params, bounds, aligned=()):  # type: ignore[no-untyped-def]
    parts, rows = [], []
    for i, (a, b) in enumerate(pairwise(bounds)):
        if aligned is None:
            parts.append(kernel(X[a:b], None, ChunkInfo(i, a), params))
        else:
            r, st = kernel(X[a:b], tuple(x[a:b] for x in aligned), ChunkInfo(i, a), params)
            rows.append(r)
            parts.append(st)
    return combine(parts), (np.concatenate(rows) if rows else None)


@pytest.mark.parametrize("bounds", SPLITS)
def test_gram_kernel_obeys_the_map_reduce_law(bounds: tuple[int, ...]) -> None:
    X = np.random.default_rng(0).integers(0, 256, size=(300, 9)).astype(np.uint8)
    affine = Affine(1 / 255)
    st, _ = split_stats(K.gram_kernel, K.combine_gram, X, K.GramParams(affine, 1.0), bounds, aligned=None)
    x = X / 255
    np.testing.assert_allclose(st.gram, x.T @ x, rtol=1e-6)
    np.testing.assert_allclose(st.summary.col_sums, x.sum(0), rtol=1e-6)
    assert st.summary.n_rows == 300 and st.summary.sq_norm == pytest.approx((x**2).sum(), rel=1e-6)
    np.testing.assert_array_equal(st.sample, X)  # every row kept, in order, stored bytes
    # a sample of rows: each chunk's draws depend on the chunk only
    part = K.gram_kernel(X[100:200], None, ChunkInfo(5, 100), K.GramParams(affine, 0.3, seed=9))
    again = K.gram_kernel(X[100:200], None, ChunkInfo(5, 0), K.GramParams(affine, 0.3, seed=9))
    np.testing.assert_array_equal(part.sample, again.sample)
    assert 10 < len(part.sample) < 60 and all(any((r == X[100:200]).all(1)) for r in part.sample)


def test_nndsvd_norms_from_a_sample_of_rows_are_close_to_the_exact_ones() -> None:
    from daskcluster.decomposition._opnmf_init import spectrum

    X = np.random.default_rng(4).random((20_000, 12)) ** 3
    G = X.T @ X
    exact = spectrum(G, X, Affine(), len(X), 5)
    sampled = spectrum(G, X[np.random.default_rng(5).random(len(X)) < 0.2], Affine(), len(X), 5)
    np.testing.assert_allclose(exact.u_pos**2 + exact.u_neg**2, 1, rtol=1e-10)  # unit left vectors
    np.testing.assert_allclose(sampled.u_pos, exact.u_pos, atol=0.02)
    np.testing.assert_allclose(sampled.u_neg, exact.u_neg, atol=0.02)


@pytest.mark.parametrize("bounds", SPLITS)
def test_factor_kernels_obey_the_map_reduce_law(bounds: tuple[int, ...]) -> None:
    rng = np.random.default_rng(2)
    X = rng.random((300, 7))
    V0 = rng.random((300, 3))
    init = K.FactorInit(Affine(), 3, "custom", summary=True)
    st, rows = split_stats(K.factor_init_kernel, K.combine_factor, X, init, bounds, aligned=(V0,))
    np.testing.assert_array_equal(rows, V0)
    np.testing.assert_allclose(st.xtv, X.T @ V0, rtol=1e-12)
    np.testing.assert_allclose(st.vtv, V0.T @ V0, rtol=1e-12)
    assert st.summary.sq_norm == pytest.approx((X**2).sum(), rel=1e-12)
    # one update of W = V0 / s, with the change from a previous factor
    s, V_prev, s_prev = 2.0, rng.random((300, 3)), 3.0
    W = V0 / s
    A = X.T @ W
    step = K.StepParams(Affine(), s, A, A.T @ A, s_prev)
    st, rows = split_stats(K.factor_step_kernel, K.combine_factor, X, step, bounds, aligned=(V0, V_prev))
    expected = np.maximum(W * (X @ A) / (W @ (A.T @ A)), K.FLOOR)
    np.testing.assert_allclose(rows, expected, rtol=1e-12)
    np.testing.assert_allclose(st.xtv, X.T @ expected, rtol=1e-12)
    np.testing.assert_allclose(st.vtv, expected.T @ expected, rtol=1e-12)
    assert st.change_sq == pytest.approx(((V_prev / s_prev - W) ** 2).sum(), rel=1e-12)
    assert st.prev_sq == pytest.approx(((V_prev / s_prev) ** 2).sum(), rel=1e-12)


def test_random_and_permuted_rows_depend_on_the_chunk_only() -> None:
    X = np.arange(60, dtype=np.float64).reshape(10, 6)
    a = K.permute_block(X, 7, 1, ChunkInfo(3, 40))
    np.testing.assert_array_equal(a, K.permute_block(X, 7, 1, ChunkInfo(3, 0)))
    np.testing.assert_array_equal(np.sort(a, axis=1), X)  # each row's own values
    assert not np.array_equal(a, X) and not np.array_equal(a, K.permute_block(X, 7, 1, ChunkInfo(4, 40)))
    b = K.permute_block(X, 7, 0, ChunkInfo(3, 40))
    np.testing.assert_array_equal(np.sort(b, axis=0), X)  # each column's own values
    init = K.FactorInit(Affine(), 2, "random", seed=5)
    r1, _ = K.factor_init_kernel(X, (), ChunkInfo(1, 0), init)
    r2, _ = K.factor_init_kernel(X, (), ChunkInfo(1, 10), init)
    np.testing.assert_array_equal(r1, r2)
    assert r1.min() >= 0


def test_multiplicative_step_takes_zero_for_zero_over_zero() -> None:
    W = np.array([[0.0, 0.0], [1.0, 2.0]])
    out = K.multiplicative_step(W, np.array([[3.0, 0.0], [2.0, 2.0]]), np.array([[0.0, 0.0], [4.0, 1.0]]))
    np.testing.assert_array_equal(out, [[K.FLOOR, K.FLOOR], [0.5, 4.0]])


# --------------------------------------------------------------------------- out of core, errors


def test_fit_from_zarr_equals_the_in_memory_fit(tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]) -> None:
    X8 = (digits[0][:600] * 15).astype(np.uint8)  # 0..240 stored as bytes
    path = tmp_path / "digits.zarr"
    write_zarr(X8, path, chunk_bytes=64 * 100)  # 100-row chunks
    from daskcluster import scaled

    for orientation in ("features", "samples"):
        kw = {"orientation": orientation, "max_iter": 60, "tol": 1e-4}
        mem = OPNMF(5, **kw)
        w_mem = quiet_fit(mem, X8.astype(np.float32) / np.float32(255))
        ooc = OPNMF(5, **kw, cache=False)
        w_ooc = quiet_fit(ooc, scaled(open_array(str(path), chunk_bytes=64 * 100), 1 / 255))  # 100-row chunks
        assert isinstance(w_ooc, da.Array) and len(w_ooc.chunks[0]) == 6
        # float32 fits that differ only in rounding (chunked products, the BLAS build's order of
        # operations, which varies by machine): about sqrt(k) * eps32 <= 7e-6 per iteration, over
        # 60 iterations <= 4e-4 of the matrices' scale. Entries near zero (1e-16 next to 0.9) have
        # no bounded relative error, so the check is against the scale, not per entry: within 2e-3
        # of the largest entry and normwise (measured 7e-6 and 5e-6). As in test_nmf's
        # out-of-core test, which an elementwise rtol made fail on an AMD machine.
        for actual, desired in ((ooc.components_, mem.components_), (w_ooc.compute(), w_mem)):
            actual, desired = np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64)
            np.testing.assert_allclose(actual, desired, rtol=0, atol=2e-3 * np.abs(desired).max())
            assert np.linalg.norm(actual - desired) <= 2e-3 * np.linalg.norm(desired)
        assert ooc.n_iter_ == mem.n_iter_ and ooc.reconstruction_err_ == pytest.approx(mem.reconstruction_err_, rel=1e-5)


def test_negative_input_is_refused_in_the_first_pass() -> None:
    X = np.abs(np.random.default_rng(3).normal(size=(120, 5)))
    X[77, 2] = -0.25
    X[90, 4] = -0.5
    data = da.from_array(X, chunks=(40, 5))
    for orientation, init in (("features", "nndsvd"), ("samples", "nndsvd"), ("samples", "random")):
        with count_passes() as passes, pytest.raises(InvalidDataError, match=r"-0\.5 at row 90, feature 4"):
            OPNMF(2, orientation=orientation, init=init).fit(data)
        assert passes.passes == 1
    X[77, 2] = np.nan
    with pytest.raises(NonFiniteDataError, match="row 77, feature 2"):
        OPNMF(2, orientation="features").fit(X)


def test_bad_parameters_are_refused_before_reading_data() -> None:
    X = np.ones((10, 4))
    with pytest.raises(InvalidParameterError, match="'orientation' parameter of OPNMF"):
        OPNMF(2, orientation="rows").fit(X)
    with pytest.raises(InvalidParameterError, match=r"n_components <= min\(n_samples, n_features\) = 4"):
        OPNMF(5).fit(X)
    with pytest.raises(InvalidParameterError, match="init='custom' needs init_W"):
        OPNMF(2, init="custom").fit(X)
    with pytest.raises(InvalidParameterError, match="init_W is used only with init='custom'"):
        OPNMF(2).fit(X, init_W=np.ones((10, 2)))
    with pytest.raises(InvalidParameterError, match=r"init_W must have shape \(n_features, n_components\) = \(4, 2\)"):
        OPNMF(2, orientation="features", init="custom").fit(X, init_W=np.ones((10, 2)))
    with pytest.raises(InvalidParameterError, match="init_W must be non-negative"):
        OPNMF(2, init="custom").fit(X, init_W=-np.ones((10, 2)))
    with pytest.raises(InvalidParameterError, match="range of at least 2"):
        OPNMF(range(3, 4)).fit(X)


# --------------------------------------------------------------------------- rank selection


def planted(n: int, d: int, k: int, seed: int) -> np.ndarray:
    """Rows that each load on one of ``k`` disjoint groups of features, plus a little noise."""
    rng = np.random.default_rng(seed)
    parts = np.zeros((k, d))
    for j, cols in enumerate(np.array_split(rng.permutation(d), k)):
        parts[j, cols] = rng.uniform(0.5, 1.5, len(cols))
    return rng.uniform(0.5, 2, (n, 1)) * parts[rng.integers(0, k, n)] + 0.01 * rng.random((n, d))


@pytest.mark.parametrize("orientation, ranks", [("features", range(2, 7)), ("samples", range(3, 6))])
def test_rank_selection_finds_the_planted_rank(orientation: str, ranks: range) -> None:
    X = planted(160, 24, 4, seed=0)
    Xo = X if orientation == "features" else X.T.copy()  # clusters of the side W is over
    data = da.from_array(Xo, chunks=(Xo.shape[0] // 2, -1))
    model = OPNMF(ranks, orientation=orientation, max_iter=150, tol=1e-4, random_state=0)
    quiet_fit(model, data)
    assert model.n_components_ == 4 and model.good_ranks_[0] == 4
    np.testing.assert_array_equal(model.ranks_, list(ranks))
    assert model.errors_.max() == 1 and model.random_errors_.max() == 1
    # the package's rule on these errors: the first rank whose next step helps less than on permuted data
    good = model.ranks_[np.flatnonzero(np.diff(model.errors_) > np.diff(model.random_errors_))]
    np.testing.assert_array_equal(model.good_ranks_, good)
    # the kept model is the fit of that rank
    single = OPNMF(4, orientation=orientation, max_iter=150, tol=1e-4)
    quiet_fit(single, data)
    np.testing.assert_allclose(model.components_, single.components_, rtol=1e-10, atol=1e-12)
    # deterministic: the permutations are seeded per chunk
    again = OPNMF(ranks, orientation=orientation, max_iter=150, tol=1e-4, random_state=0)
    quiet_fit(again, data)
    np.testing.assert_array_equal(again.random_errors_, model.random_errors_)


def test_rank_selection_errors_are_the_package_errors(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, blank = digits
    Xr = X[:, ~blank]
    model = OPNMF(range(2, 5), orientation="features", max_iter=2000, tol=1e-6)
    quiet_fit(model, Xr)
    errors = np.array([package(Xr.T, r, max_iter=2000, tol=1e-6)[2] for r in (2, 3, 4)])
    np.testing.assert_allclose(model.errors_, errors / errors.max(), rtol=1e-4)


# --------------------------------------------------------------------------- a process cluster


def test_samples_fit_on_a_process_cluster_equals_the_local_fit(process_client: object) -> None:
    X = planted(300, 12, 3, seed=4)
    data = da.from_array(X, chunks=(75, -1))
    local_W0 = np.random.default_rng(5).random((300, 3))
    ours = OPNMF(3, init="custom", max_iter=50, tol=0)
    W = quiet_fit(ours, data, init_W=local_W0)
    Wp, Hp, _ = package(X, 3, init="custom", init_W=local_W0, max_iter=50, tol=0)
    np.testing.assert_allclose(dask.compute(W)[0], Wp, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.components_, Hp, rtol=1e-9, atol=1e-9)


def test_random_init_rows_and_their_statistics_from_one_pass() -> None:
    data = as_row_data(da.from_array(np.ones((20, 3)), chunks=(5, 3)), owner="test")
    V, st = tree_reduce_rows(data, K.factor_init_kernel, K.FactorInit(Affine(), 2, "random", seed=1),
                             K.combine_factor, n_columns=2, dtype=np.float64)
    np.testing.assert_allclose(st.xtv, np.ones((20, 3)).T @ V.compute())


# --------------------------------------------------------------------------- the workflow


def test_faces_workflow_small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("faces_decomposition", ROOT / "workflows" / "faces_decomposition.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclass looks its module up
    spec.loader.exec_module(module)
    assert module.main([str(tmp_path), "--small", "--images", "digits", "--n-components", "4"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == sorted(summary["figures"]) and len(pngs) == 9  # the inputs, then 4 galleries and 4 heat maps
    assert all((tmp_path / name).stat().st_size > 2000 for name in pngs)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
    models = summary["collections"]["digits"]["models"]
    assert set(models) == {"nmf_samples", "nmf_pixels", "opnmf_samples", "opnmf_pixels"}
    assert all(0 < m["relative_error"] < 1 for m in models.values())
    # OPNMF over the samples "does some sort of clustering": each image loads mainly on one component
    assert models["opnmf_samples"]["top_weight_share"] > models["nmf_samples"]["top_weight_share"] + 0.1
