"""NMF: every iteration equals scikit-learn's multiplicative updates, out of core too."""

from __future__ import annotations

import itertools
import logging
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.decomposition import NMF as SklearnNMF
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from daskcluster import NMF, scaled
from daskcluster.data import as_row_data
from daskcluster.decomposition import NMF as NMFFromPackage
from daskcluster.decomposition._nmf_init import random_init
from daskcluster.decomposition._randomized_svd import left_vector_parts, randomized_svd
from daskcluster.engine import count_passes
from daskcluster.errors import InvalidDataError, InvalidParameterError, NotFittedError
from daskcluster.io import open_array, write_zarr
from daskcluster.kernels import nmf as K
from daskcluster.kernels.blocks import Affine, ChunkInfo
from daskcluster.progress import progress_hook

N, D, K_ = 240, 14, 4


def _data(seed: int = 0, n: int = N, d: int = D) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((n, K_)) @ rng.random((K_, d)) + 0.1 * rng.random((n, d))


def _start(seed: int = 1, n: int = N, d: int = D) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, K_)), rng.random((K_, d))


def _sklearn(X: np.ndarray, W0: np.ndarray, H0: np.ndarray, **kw: object) -> tuple[np.ndarray, SklearnNMF]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = SklearnNMF(K_, init="custom", solver="mu", **kw)  # type: ignore[arg-type]
        return est.fit_transform(X, W=W0.copy(), H=H0.copy()), est


def _ours(X: object, W0: np.ndarray, H0: np.ndarray, **kw: object) -> tuple[np.ndarray, NMF]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = NMF(K_, init="custom", **kw)  # type: ignore[arg-type]
        W = est.fit_transform(X, W=W0, H=H0)
    return np.asarray(dask.compute(W)[0]), est  # NumPy or Dask (computed: no __array__ on every backend)


def _assert_same_fit(W: np.ndarray, est: NMF, W_ref: np.ndarray, ref: SklearnNMF, rtol: float = 1e-8) -> None:
    np.testing.assert_allclose(W, W_ref, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(est.components_, ref.components_, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(est.reconstruction_err_, ref.reconstruction_err_, rtol=rtol)
    assert est.n_iter_ == ref.n_iter_
    assert est.n_components_ == ref.n_components_


def _layout(kind: str, X: np.ndarray) -> object:
    return X if kind == "one chunk" else da.from_array(X, chunks=(23, D))


# --------------------------------------------------------------------------- equality with scikit-learn


@pytest.mark.parametrize("kind", ["one chunk", "many chunks"])
def test_every_iteration_equals_sklearn(kind: str) -> None:
    X = _data()
    W0, H0 = _start()
    errors: list[float] = []
    with progress_hook(lambda rep: errors.append(rep.metrics["error"])):
        _ours(_layout(kind, X), W0, H0, max_iter=25, tol=0)
    # the error after every iteration (no extra pass: from the pass's statistics)
    reference = [_sklearn(X, W0, H0, max_iter=i, tol=0)[1].reconstruction_err_ for i in range(1, 26)]
    np.testing.assert_allclose(errors, reference, rtol=1e-8)
    for i in (1, 2, 3, 7, 25):
        _assert_same_fit(*_ours(_layout(kind, X), W0, H0, max_iter=i, tol=0), *_sklearn(X, W0, H0, max_iter=i, tol=0))


def test_every_iteration_equals_sklearn_on_a_process_cluster(process_client: object, tmp_path: Path) -> None:
    X = _data()
    W0, H0 = _start()
    Xd = da.from_array(X, chunks=(50, D))
    for i in (1, 4, 12):
        W, est = _ours(Xd, W0, H0, max_iter=i, tol=0)
        _assert_same_fit(W, est, *_sklearn(X, W0, H0, max_iter=i, tol=0))
    # W streamed through the temporary Zarr store by the workers
    W, est = _ours(Xd, W0, H0, max_iter=12, tol=0, cache=False, temp_folder=tmp_path)
    _assert_same_fit(W, est, *_sklearn(X, W0, H0, max_iter=12, tol=0))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("reg", [{"alpha_W": 0.01}, {"alpha_W": 0.002, "alpha_H": 0.0005, "l1_ratio": 0.4},
                                 {"alpha_W": 0.0, "alpha_H": 0.003, "l1_ratio": 1.0}])
def test_regularization_and_stopping_equal_sklearn(reg: dict) -> None:
    X = _data(2)
    W0, H0 = _start(3)
    ref = _sklearn(X, W0, H0, max_iter=1000, tol=1e-3, **reg)
    assert 10 < ref[1].n_iter_ < 1000  # stopped by tol, not by max_iter
    _assert_same_fit(*_ours(da.from_array(X, chunks=(60, D)), W0, H0, max_iter=1000, tol=1e-3, **reg), *ref)


def test_transform_equals_sklearn_and_costs_its_passes() -> None:
    X, X_new = _data(4), _data(5, n=90)
    W0, H0 = _start(6)
    _, ref = _sklearn(X, W0, H0, max_iter=300, tol=1e-3, alpha_W=0.001)
    _, est = _ours(X, W0, H0, max_iter=300, tol=1e-3, alpha_W=0.001)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # scikit-learn stops by tol, before max_iter
        expected = ref.transform(X_new)
        with count_passes() as passes:
            W_lazy = est.transform(da.from_array(X_new, chunks=(40, D)))
    assert isinstance(W_lazy, da.Array) and W_lazy.chunks == ((40, 40, 10), (K_,))
    assert passes.passes == 2  # the mean, then the stopping iteration
    np.testing.assert_allclose(W_lazy.compute(), expected, rtol=1e-8, atol=1e-12)
    W_eager = est.transform(X_new)
    assert isinstance(W_eager, np.ndarray)
    np.testing.assert_allclose(W_eager, expected, rtol=1e-8, atol=1e-12)
    # tol=0: all max_iter updates, no pass to find where to stop
    _, ref0 = _sklearn(X, W0, H0, max_iter=15, tol=0)
    _, est0 = _ours(X, W0, H0, max_iter=15, tol=0)
    with count_passes() as passes:
        W0_new = est0.transform(da.from_array(X_new, chunks=(40, D)))
    assert passes.passes == 1
    np.testing.assert_allclose(W0_new.compute(), ref0.transform(X_new), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(est.inverse_transform(W_eager), W_eager @ est.components_)
    assert isinstance(est.inverse_transform(W_lazy), da.Array)


@pytest.mark.parametrize("init", ["nndsvda", "nndsvd", "nndsvdar", "random"])
def test_initializations_reach_sklearn_quality(init: str) -> None:
    X = _data(7, n=600, d=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SklearnNMF(K_, init=init, solver="mu", random_state=0, max_iter=300).fit(X)
        ours = NMF(K_, init=init, random_state=0, max_iter=300).fit(da.from_array(X, chunks=(70, 30)))
    assert ours.reconstruction_err_ <= 1.05 * ref.reconstruction_err_
    assert ours.components_.min() >= 0


def test_random_init_does_not_depend_on_chunking_or_scheduler(process_client: object) -> None:
    X = _data(8, n=9000, d=6)  # more rows than one seed block
    kw = {"init": "random", "random_state": 3, "max_iter": 5, "tol": 0}
    a = NMF(K_, **kw).fit(da.from_array(X, chunks=(1000, 6)))  # type: ignore[arg-type]
    with dask.config.set(scheduler="synchronous"):
        b = NMF(K_, **kw).fit(da.from_array(X, chunks=(3001, 6)))  # type: ignore[arg-type]
        data = as_row_data(X, owner="test")
        W, H = random_init(data, K_, float(X.mean()), np.random.RandomState(3))
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-9)
    np.testing.assert_allclose(a.reconstruction_err_, b.reconstruction_err_, rtol=1e-9)
    # H is drawn as scikit-learn draws it; W per seed block, scaled alike
    avg = np.sqrt(X.mean() / K_)
    np.testing.assert_allclose(H, np.abs(avg * np.random.RandomState(3).standard_normal(size=(K_, 6))), rtol=1e-12)
    W = W.compute()
    assert W.shape == (9000, K_) and W.min() >= 0
    assert 0.5 * avg < W.mean() < 1.1 * avg  # E|N(0, 1)| = 0.80


# --------------------------------------------------------------------------- kernels


def _split(block: np.ndarray, cuts: list[int]) -> list[tuple[np.ndarray, int]]:
    edges = [0, *cuts, block.shape[0]]
    return [(block[a:b], a) for a, b in itertools.pairwise(edges)]


def test_kernels_obey_the_map_reduce_law() -> None:
    rng = np.random.default_rng(9)
    X = rng.random((700, 9))
    W = rng.random((700, 3))
    H = rng.random((3, 9))
    affine = Affine(0.5, 0.25)
    params = K.StepParams(H, H @ H.T, 0.1, 0.2, affine, first=True)
    whole_rows, whole = K.mu_step_kernel(X, (W,), ChunkInfo(0, 0), params)
    pieces = [K.mu_step_kernel(x, (W[s : s + len(x)],), ChunkInfo(i, s), params)
              for i, (x, s) in enumerate(_split(X, [0, 250, 251, 600]))]
    merged = K.combine_step([p[1] for p in pieces])
    np.testing.assert_allclose(np.concatenate([p[0] for p in pieces]), whole_rows, rtol=1e-12)
    for field in ("wtx", "wtw", "x_sq", "wtx0", "wtw0"):
        np.testing.assert_allclose(getattr(merged, field), getattr(whole, field), rtol=1e-12)
    assert merged.min == whole.min
    # the statistics are those of the new rows and the scaled data
    Xs = X * 0.5 + 0.25
    np.testing.assert_allclose(whole.wtx, whole_rows.T @ Xs, rtol=1e-12)
    np.testing.assert_allclose(whole.wtw0, W.T @ W, rtol=1e-12)

    stats = K.data_stats_kernel(X, None, ChunkInfo(0, 0), affine)
    parts = K.combine_data_stats([K.data_stats_kernel(x, None, ChunkInfo(i, s), affine)
                                  for i, (x, s) in enumerate(_split(X, [100, 100, 350]))])
    for field in ("n_rows", "sum", "sq", "col_sum"):
        np.testing.assert_allclose(getattr(parts, field), getattr(stats, field), rtol=1e-12)
    assert parts.min == stats.min and stats.sum == pytest.approx(Xs.sum())

    solve = K.SolveParams(H, H @ H.T, 0.0, 0.05, affine, 0.3, 30, 10)
    trace = K.solve_trace_kernel(X, None, ChunkInfo(0, 0), solve)
    summed = K.combine_trace([K.solve_trace_kernel(x, None, ChunkInfo(i, s), solve)
                              for i, (x, s) in enumerate(_split(X, [333]))])
    np.testing.assert_allclose(summed, trace, rtol=1e-12)
    W30 = K.solve_rows_kernel(X, solve, ChunkInfo(0, 0))
    np.testing.assert_allclose(trace[-1], ((Xs - W30 @ H) ** 2).sum(), rtol=1e-9)


def test_randomized_svd_equals_the_exact_svd_and_costs_its_passes() -> None:
    rng = np.random.default_rng(13)
    # rank 6 with singular values 1..32 (scaled by 1/4: the affine map is applied) plus noise 1e-6:
    # the 14-column sketch holds the rank-6 space after one pass; the noise's share of the
    # subspace decays as (1e-6 / s_j)^(2 * 4). What is left is rounding of the eigenvalues of
    # ZᵀXᵀXZ: about l * eps64 * s_0² absolutely, i.e. l * eps64 * (s_0 / s_j)² / 2 <= 14 * 2.2e-16
    # * 1024 / 2 = 1.6e-12 relative on s_j (rtol 1e-10), and on the vectors (gaps >= 2x) the same.
    basis_u = np.linalg.qr(rng.standard_normal((900, 6)))[0]
    basis_v = np.linalg.qr(rng.standard_normal((40, 6)))[0]
    X = 4 * (basis_u * 2.0 ** np.arange(5, -1, -1)) @ basis_v.T + 1e-6 * rng.random((900, 40))
    s_ref, U_ref, V_ref = (lambda u, s, vt: (s, u, vt.T))(*np.linalg.svd(X / 4, full_matrices=False))
    for chunks in (900, 77):
        data = as_row_data(scaled(da.from_array(X, chunks=(chunks, 40)), 0.25), owner="test")
        with count_passes() as counter:
            values, vectors = randomized_svd(data, 4, seed=5)
            pos, neg = left_vector_parts(data, values, vectors)
        assert counter.passes == 4 + 1 + 1
        np.testing.assert_allclose(values, s_ref[:4], rtol=1e-10)
        np.testing.assert_allclose(np.abs(np.sum(vectors * V_ref[:, :4], axis=0)), 1.0, rtol=1e-10)
        # the parts of U = X V / s, whichever sign each vector came with
        sign = np.sign(np.sum(vectors * V_ref[:, :4], axis=0))
        U = U_ref[:, :4] * sign
        np.testing.assert_allclose(pos, np.linalg.norm(np.maximum(U, 0), axis=0), rtol=1e-9)
        np.testing.assert_allclose(neg, np.linalg.norm(np.minimum(U, 0), axis=0), rtol=1e-9)
    # rank below k: the missing singular values are 0, never rounding noise
    values, _ = randomized_svd(as_row_data(X[:, :1] @ np.ones((1, 5)), owner="test"), 3, seed=0)
    assert values[0] > 0 and values[1] == values[2] == 0


def test_random_rows_do_not_depend_on_the_split() -> None:
    whole = K.random_rows(100, 9000, 3, 11, 2.0, np.dtype(np.float64))
    parts = [K.random_rows(a, b, 3, 11, 2.0, np.dtype(np.float64)) for a, b in [(100, 4096), (4096, 4097), (4097, 9000)]]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert whole.min() >= 0 and not np.array_equal(whole, K.random_rows(100, 9000, 3, 12, 2.0, np.dtype(np.float64)))


# --------------------------------------------------------------------------- out of core


def test_out_of_core_fit_from_zarr_equals_in_memory_fit(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(10)
    X8 = (rng.random((3000, 20)) * 256).astype(np.uint8)
    path = tmp_path / "x.zarr"
    write_zarr(X8, str(path), chunk_bytes=8 * 1024)
    temp = tmp_path / "tmp"
    with caplog.at_level(logging.INFO, logger="daskcluster.decomposition._nmf_store"):
        streamed = NMF(5, init="nndsvda", random_state=0, max_iter=30, tol=0, cache=False, temp_folder=temp)
        W_streamed = streamed.fit_transform(scaled(open_array(str(path), chunk_bytes=8 * 1024), 1 / 255))
    assert "temporary Zarr store" in caplog.text
    assert list(temp.iterdir()) == []  # the store of W is gone
    assert isinstance(W_streamed, da.Array) and len(W_streamed.chunks[0]) > 5
    in_memory = NMF(5, init="nndsvda", random_state=0, max_iter=30, tol=0)
    W_memory = in_memory.fit_transform(scaled(X8, 1 / 255))
    assert W_streamed.dtype == np.float32 and in_memory.components_.dtype == np.float32
    # Both fits compute in float32 (uint8 storage); they differ only in rounding: chunked vs whole
    # products and the BLAS build's order of operations (which differs between machines: this
    # comparison once failed on an AMD EPYC with an elementwise rtol). Per iteration a float32
    # product of inner size k carries a relative error of about sqrt(k) * eps32 (eps32 = 1.2e-7;
    # k <= 3000 rows: <= 7e-6), and 30 multiplicative updates propagate it about linearly:
    # <= 2e-4 of the matrices' scale. That bounds the error normwise and relative to the largest
    # entry, never relative to each entry: W has entries of 3e-6 next to 0.47, whose relative error
    # is unbounded (7.6% on one machine, 2.5% above the old atol on another). So: every entry
    # within 2e-3 of the largest one (10x the bound; measured 1.3e-4) and the Frobenius norm of the
    # difference within 2e-3 of the matrix's (measured 7e-6).
    _assert_close_to_scale(streamed.components_, in_memory.components_, 2e-3)
    _assert_close_to_scale(W_streamed.compute(), W_memory, 2e-3)
    # the error is a sum over all entries, in float64: rounding differences average out (measured 6e-9)
    np.testing.assert_allclose(streamed.reconstruction_err_, in_memory.reconstruction_err_, rtol=1e-4)


def _assert_close_to_scale(actual: np.ndarray, desired: np.ndarray, rel: float) -> None:
    """Entries within ``rel`` of the largest entry, and the difference within ``rel`` normwise."""
    actual, desired = np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64)
    np.testing.assert_allclose(actual, desired, rtol=0, atol=rel * np.abs(desired).max())
    assert np.linalg.norm(actual - desired) <= rel * np.linalg.norm(desired)


def test_streamed_and_cached_w_give_the_same_iterations(tmp_path: Path) -> None:
    X = _data(11)
    W0, H0 = _start(12)
    path = tmp_path / "x.zarr"
    write_zarr(X, str(path), chunk_bytes=40 * D * 8)
    source = open_array(str(path), chunk_bytes=40 * D * 8)
    assert len(source.chunks[0]) == 6
    W_s, streamed = _ours(source, W0, H0, max_iter=12, tol=0, cache=False, temp_folder=tmp_path / "t")
    W_c, cached_fit = _ours(source, W0, H0, max_iter=12, tol=0, cache=True)
    _assert_same_fit(W_s, streamed, W_c, cached_fit, rtol=1e-12)  # type: ignore[arg-type]
    _assert_same_fit(W_s, streamed, *_sklearn(X, W0, H0, max_iter=12, tol=0))


# --------------------------------------------------------------------------- errors


def test_negative_input_named_after_the_first_pass() -> None:
    X = _data(13)
    X[57, 3] = -0.5
    X[200, 1] = -0.25
    W0, H0 = _start()
    with count_passes() as passes, pytest.raises(InvalidDataError, match=r"-0\.5 at row 57, feature 3"):
        NMF(K_, init="custom", max_iter=50).fit(da.from_array(X, chunks=(30, D)), W=W0, H=H0)
    assert passes.passes == 1
    with count_passes() as passes, pytest.raises(InvalidDataError, match=r"-0\.5 at row 57, feature 3"):
        NMF(K_, init="nndsvda", max_iter=50).fit(X)
    assert passes.passes == 1  # before the randomized SVD
    with pytest.raises(InvalidDataError, match="non-negative"):
        NMF(K_).fit(scaled(np.ones((20, 3)), 1.0, -2.0))
    fitted = NMF(K_, init="custom", max_iter=5, tol=0).fit(np.abs(X), W=W0, H=H0)
    X_new = np.abs(X[:50])
    X_new[44, 13] = -1.0
    with count_passes() as passes, pytest.raises(InvalidDataError, match=r"-1\.0 at row 44, feature 13"):
        fitted.transform(X_new)
    assert passes.passes == 1


def test_parameter_and_initialization_errors() -> None:
    X = _data()
    W0, H0 = _start()
    with pytest.raises(InvalidParameterError, match=r"solver='cd' \(coordinate descent\) is not available out of core"):
        NMF(2, solver="cd").fit(X)
    with pytest.raises(InvalidParameterError, match="only the Frobenius loss"):
        NMF(2, beta_loss="kullback-leibler").fit(X)
    with pytest.raises(InvalidParameterError, match="needs both W and H"):
        NMF(K_, init="custom").fit(X, H=H0)
    with pytest.raises(InvalidParameterError, match="input W.*full of zeros"):
        NMF(K_, init="custom").fit(X, W=np.zeros_like(W0), H=H0)
    with pytest.raises(InvalidParameterError, match=r"input H.*smallest value is -1\.0"):
        NMF(K_, init="custom").fit(X, W=W0, H=-np.ones_like(H0))
    with pytest.raises(InvalidParameterError, match=r"input W\) has shape \(240, 3\)"):
        NMF(K_, init="custom").fit(X, W=W0[:, :3], H=H0)
    with pytest.raises(InvalidParameterError, match="n_components <= min"):
        NMF(20, init="nndsvda").fit(X)
    with pytest.raises(InvalidParameterError, match="'alpha_H' parameter"):
        NMF(2, alpha_H="twice").fit(X)
    with pytest.raises(NotFittedError):
        NMF(2).transform(X)
    with pytest.warns(RuntimeWarning, match="provided W or H are ignored"):
        NMF(2, max_iter=2, tol=0, init="random", random_state=0).fit(X, H=H0)
    with pytest.warns(UserWarning, match="cannot update zeros"):
        NMF(2, max_iter=2, tol=0, init="nndsvd", random_state=0).fit(X)
    with pytest.warns(ConvergenceWarning, match="Maximum number of iterations 3"):
        NMF(2, max_iter=3, init="random", random_state=0).fit(X)


def test_auto_components_from_h_dask_w_and_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    X = _data()
    W0, H0 = _start()
    est = NMF(init="custom", max_iter=3, tol=0, verbose=1)
    W = est.fit_transform(X, W=da.from_array(W0, chunks=(100, K_)), H=H0)
    assert est.n_components_ == K_ and W.shape == (N, K_)
    assert capsys.readouterr().out.count("NMF fit") == 3
    assert NMF(max_iter=2, tol=0, init="random", random_state=0).fit(X).n_components_ == D
    assert NMFFromPackage is NMF
    assert list(est.get_feature_names_out()) == [f"nmf{i}" for i in range(K_)]


# --------------------------------------------------------------------------- scikit-learn's API checks

EXPECTED_FAILED = {
    # scikit-learn's own NMF(solver="mu") fails these two: its transform (H fixed, W from a constant
    # start) does not reproduce fit_transform's W within the check's tolerance
    "check_transformer_general": "as scikit-learn's NMF(solver='mu'): transform restarts W",
    "check_transformer_data_not_an_array": "as scikit-learn's NMF(solver='mu'): transform restarts W",
}


@parametrize_with_checks([NMF(n_components=2, init="random", random_state=0, max_iter=50)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_compatible(estimator: object, check: object) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)  # type: ignore[operator]


def test_temporary_w_store_of_a_dead_fit_is_removed_by_the_next(tmp_path: Path) -> None:
    """A fit killed while W is streamed leaves its temporary store; the next fit removes it."""
    import subprocess
    import sys

    from daskcluster.data import as_row_data
    from daskcluster.decomposition._nmf_store import RowStore

    code = ("import os, sys; import numpy as np; from daskcluster.data import as_row_data; "
            "from daskcluster.decomposition._nmf_store import RowStore; "
            "RowStore(as_row_data(np.ones((10, 3)), owner='NMF'), 2, np.float64, folder=sys.argv[1]); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=120)
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".daskcluster-nmf-W.tmp-")
    store = RowStore(as_row_data(np.ones((10, 3)), owner="NMF"), 2, np.float64, folder=str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == [Path(store.path).name]
    store.close()
    assert list(tmp_path.iterdir()) == []
