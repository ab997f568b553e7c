"""Tests of daskcluster.datasets: MNIST readers (npz, IDX, OpenML), labelled Zarr stores, the
deformation kernel and the infinite-MNIST generator.

Everything runs offline and small. Fake MNIST files are made from scikit-learn's digits
(upscaled to 28x28); real MNIST is used too when the ``mnist`` fixture finds it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError

import dask
import dask.array as da
import numpy as np
import pytest
import sklearn.datasets
import zarr
from scipy import ndimage

import daskcluster.datasets.infinite as infinite
from daskcluster.datasets import (
    MNIST_ENV,
    Deformation,
    deform_images,
    digits_28x28,
    fetch_mnist_openml,
    find_mnist,
    load_base_digits,
    load_mnist,
    load_mnist_idx,
    load_mnist_npz,
    make_infinite_mnist,
    mnist_to_zarr,
    open_labeled_zarr,
    read_idx,
    verify_labeled_zarr,
    warp_images,
    write_idx,
    write_mnist_zarr,
)
from daskcluster.datasets.deform import _PAD, _basis
from daskcluster.datasets.infinite import generate_block
from daskcluster.errors import (
    DataTypeError,
    InvalidDataError,
    InvalidParameterError,
    SourceError,
    SourceNotFoundError,
)

N_TRAIN = 1500  # fake MNIST: the 1,797 sklearn digits split 1500 / 297


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return digits_28x28()


@pytest.fixture
def fake_mnist(digits: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> dict[str, Any]:
    """The digits as a Keras mnist.npz and as IDX files (train gzipped, test plain)."""
    images, labels = digits
    parts = {
        "train": (images[:N_TRAIN], labels[:N_TRAIN]),
        "test": (images[N_TRAIN:], labels[N_TRAIN:]),
    }
    npz = tmp_path / "mnist.npz"
    np.savez_compressed(
        npz, x_train=parts["train"][0], y_train=parts["train"][1], x_test=parts["test"][0], y_test=parts["test"][1]
    )
    idx_dir = tmp_path / "idx"
    idx_dir.mkdir()
    write_idx(idx_dir / "train-images-idx3-ubyte.gz", parts["train"][0])
    write_idx(idx_dir / "train-labels-idx1-ubyte.gz", parts["train"][1])
    write_idx(idx_dir / "t10k-images-idx3-ubyte", parts["test"][0])
    write_idx(idx_dir / "t10k-labels-idx1-ubyte", parts["test"][1])
    return {"npz": npz, "idx": idx_dir, "images": images, "labels": labels}


def no_leftovers(path: Path) -> bool:
    """Nothing at ``path`` and no hidden temporary beside it."""
    siblings = [p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]
    return not os.path.lexists(path) and not siblings


def make(path: Path, n: int, **kwargs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """make_infinite_mnist on sklearn digits, computed: X, y, base_index, attrs."""
    kwargs.setdefault("base", "digits")
    kwargs.setdefault("chunk_rows", 400)
    X, y, attrs = make_infinite_mnist(path, n, **kwargs)
    base_index = zarr.open_array(str(path), path="base_index", mode="r")[:]
    return X.compute(), y.compute(), base_index, attrs


# ------------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path: Path, dtype: str, name: str) -> None:
    array = (np.arange(60) - 20).reshape(3, 4, 5).astype(dtype)
    if dtype == "uint8":
        array = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    out = read_idx(write_idx(tmp_path / name, array))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable


def test_idx_header_is_big_endian_mnist(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x", np.zeros((2, 28, 28), dtype=np.uint8))
    header = path.read_bytes()[:16]
    assert header == bytes.fromhex("00000803") + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2


def test_idx_gzip_recognized_by_content(tmp_path: Path) -> None:
    array = np.arange(10, dtype=np.uint8)
    gz = write_idx(tmp_path / "labels.gz", array)
    plain_name = gz.rename(tmp_path / "labels-idx1-ubyte")  # gzipped, but not named .gz
    np.testing.assert_array_equal(read_idx(plain_name), array)


def _idx_bytes() -> bytes:
    return bytes.fromhex("00000803") + b"".join(n.to_bytes(4, "big") for n in (2, 28, 28)) + bytes(2 * 784)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "too short to be an IDX file: 0 bytes"),
        (bytes.fromhex("12340803") + bytes(8), "not an IDX file: magic number 0x12340803"),
        (bytes.fromhex("00000A03") + bytes(12), "not an IDX file: magic number 0x00000A03"),
        (bytes.fromhex("00000803") + bytes(6), r"truncated: its header announces 3 dimensions \(16 bytes\)"),
        (_idx_bytes()[:-100], r"is truncated: the header announces shape \(2, 28, 28\) of unsigned byte \(1568 bytes"),
        (_idx_bytes() + b"xx", r"has trailing bytes: .* but 1570 bytes follow the header"),
        (gzip.compress(_idx_bytes())[:-30], "corrupt or truncated gzip file"),
        (gzip.compress(_idx_bytes())[:20] + b"\xff" * 10 + gzip.compress(_idx_bytes())[30:], "corrupt or truncated gzip file"),
    ],
    ids=["empty", "bad-magic", "bad-type", "short-header", "truncated-data", "trailing", "truncated-gz", "corrupt-gz"],
)
def test_corrupt_idx_errors_name_the_file(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=re.escape(str(path)) + ".*" + match):
        read_idx(path)


def test_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match=re.escape(str(tmp_path / "nope"))):
        read_idx(tmp_path / "nope")


def test_load_mnist_idx_swapped_files(fake_mnist: dict[str, Any]) -> None:
    d = fake_mnist["idx"]
    os.replace(d / "t10k-images-idx3-ubyte", d / "tmp")
    os.replace(d / "t10k-labels-idx1-ubyte", d / "t10k-images-idx3-ubyte")
    os.replace(d / "tmp", d / "t10k-labels-idx1-ubyte")
    match = re.escape(str(d / "t10k-images-idx3-ubyte")) + r"' has magic number 0x00000801 .* expected 0x00000803"
    with pytest.raises(SourceError, match=match):
        load_mnist_idx(d, split="test")


def test_load_mnist_idx_count_mismatch(fake_mnist: dict[str, Any]) -> None:
    d = fake_mnist["idx"]
    write_idx(d / "t10k-labels-idx1-ubyte", fake_mnist["labels"][:10])
    with pytest.raises(SourceError, match=r"holds 297 images but .*t10k-labels-idx1-ubyte' holds 10 labels"):
        load_mnist_idx(d)


def test_load_mnist_idx_missing_file(fake_mnist: dict[str, Any]) -> None:
    d = fake_mnist["idx"]
    (d / "t10k-labels-idx1-ubyte").unlink()
    X, _ = load_mnist_idx(d, split="train")  # the train files suffice for split='train'
    assert len(X) == N_TRAIN
    with pytest.raises(SourceNotFoundError, match=r"No 't10k-labels-idx1-ubyte' or 't10k-labels-idx1-ubyte.gz' in"):
        load_mnist_idx(d)


def test_load_mnist_idx_accepts_dotted_names(fake_mnist: dict[str, Any]) -> None:
    d = fake_mnist["idx"]
    os.replace(d / "t10k-images-idx3-ubyte", d / "t10k-images.idx3-ubyte")
    X, y = load_mnist_idx(d, split="test")
    np.testing.assert_array_equal(X, fake_mnist["images"][N_TRAIN:].reshape(-1, 784))


# ------------------------------------------------------------------- readers agree


def test_readers_agree_on_fake_mnist(fake_mnist: dict[str, Any], tmp_path: Path) -> None:
    images, labels = fake_mnist["images"], fake_mnist["labels"]
    for split, rows in (("all", slice(None)), ("train", slice(0, N_TRAIN)), ("test", slice(N_TRAIN, None))):
        X_npz, y_npz = load_mnist_npz(fake_mnist["npz"], split=split)
        X_idx, y_idx = load_mnist_idx(fake_mnist["idx"], split=split)
        np.testing.assert_array_equal(X_npz, images[rows].reshape(-1, 784))
        np.testing.assert_array_equal(y_npz, labels[rows])
        np.testing.assert_array_equal(X_idx, X_npz)
        np.testing.assert_array_equal(y_idx, y_npz)
        assert X_idx.dtype == y_idx.dtype == np.uint8
    np.testing.assert_array_equal(load_mnist(fake_mnist["idx"])[0], load_mnist(fake_mnist["npz"])[0])

    X, y, attrs = mnist_to_zarr(tmp_path / "m.zarr", fake_mnist["idx"], chunk_bytes=300 * 784)
    assert X.chunks[0][0] % 300 == 0 and attrs["chunk_rows"] == 300
    np.testing.assert_array_equal(X.compute(), images.reshape(-1, 784))
    np.testing.assert_array_equal(y.compute(), labels)
    assert attrs["source"] == f"mnist-idx:{fake_mnist['idx'].resolve()} (all)"


def test_readers_agree_on_real_mnist(mnist: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    X, y = mnist
    for name, rows in (("train", slice(0, 60_000)), ("t10k", slice(60_000, None))):
        gz = ".gz" if name == "train" else ""  # one split gzipped, the other plain
        write_idx(tmp_path / f"{name}-images-idx3-ubyte{gz}", X[rows].reshape(-1, 28, 28), compresslevel=1 if gz else None)
        write_idx(tmp_path / f"{name}-labels-idx1-ubyte{gz}", y[rows], compresslevel=1 if gz else None)
    X_idx, y_idx = load_mnist_idx(tmp_path)
    np.testing.assert_array_equal(X_idx, X)
    np.testing.assert_array_equal(y_idx, y)

    Xz, yz, attrs = write_mnist_zarr(X_idx, y_idx, tmp_path / "mnist.zarr", source="mnist-idx")
    np.testing.assert_array_equal(Xz.compute(), X)
    np.testing.assert_array_equal(yz.compute(), y)
    assert attrs["checksum"]["X"] == hashlib.sha256(X.tobytes()).hexdigest()
    assert attrs["n"] == 70_000 and attrs["shape"] == [70_000, 784] and attrs["image_shape"] == [28, 28]
    assert np.bincount(y[:60_000]).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


# ------------------------------------------------------------------------------- npz


def test_corrupt_npz_errors_name_the_file(fake_mnist: dict[str, Any], tmp_path: Path) -> None:
    good = fake_mnist["npz"].read_bytes()
    cases = {
        "truncated.npz": good[: len(good) // 2],
        "garbage.npz": b"this is not a zip file" * 10,
        "flipped.npz": good[:2000] + bytes(255 - b for b in good[2000:2400]) + good[2400:],
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(SourceError, match=re.escape(repr(str(path))) + ".*(truncated or corrupt|Cannot read)"):
            load_mnist_npz(path)
    partial = tmp_path / "partial.npz"
    np.savez(partial, x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(2, np.uint8))
    with pytest.raises(SourceError, match=re.escape(repr(str(partial))) + r".*missing \['x_test', 'y_test'\]"):
        load_mnist_npz(partial)
    mismatched = tmp_path / "mismatched.npz"
    np.savez(mismatched, x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(3, np.uint8),
             x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.zeros(1, np.uint8))
    with pytest.raises(SourceError, match=r"x_train of shape \(2, 28, 28\) and y_train of shape \(3,\)"):
        load_mnist_npz(mismatched)


@pytest.mark.parametrize("split", ["all", "train", "test"])
def test_load_mnist_npz_first_rows(fake_mnist: dict[str, Any], tmp_path: Path, split: str) -> None:
    X, y = load_mnist_npz(fake_mnist["npz"], split=split)
    images, labels = fake_mnist["images"], fake_mnist["labels"]
    stored = tmp_path / "stored.npz"  # not compressed, and the test images in Fortran order
    np.savez(stored, x_train=images[:N_TRAIN], y_train=labels[:N_TRAIN].astype(np.int64),
             x_test=np.asfortranarray(images[N_TRAIN:]), y_test=labels[N_TRAIN:])
    for path in (fake_mnist["npz"], stored):
        for n in (0, 1, 700, N_TRAIN, N_TRAIN + 5, 10**6):
            Xn, yn = load_mnist_npz(path, split=split, max_rows=n)
            np.testing.assert_array_equal(Xn, X[:n])
            np.testing.assert_array_equal(yn, y[:n])
            assert Xn.shape == X[:n].shape and Xn.dtype == yn.dtype == np.uint8 and Xn.flags.writeable
    with pytest.raises(InvalidParameterError, match=r"'max_rows' parameter .* Got -1 instead"):
        load_mnist_npz(fake_mnist["npz"], max_rows=-1)


def test_load_mnist_npz_first_rows_reads_no_further(fake_mnist: dict[str, Any], tmp_path: Path) -> None:
    """Damage past the rows asked for is never decompressed; the checks still come from the headers."""
    import zipfile

    good = fake_mnist["npz"].read_bytes()
    with zipfile.ZipFile(fake_mnist["npz"]) as zf:
        info = zf.getinfo("x_train.npy")
    name_and_extra = int.from_bytes(good[info.header_offset + 26 : info.header_offset + 28], "little") + int.from_bytes(
        good[info.header_offset + 28 : info.header_offset + 30], "little")
    end = info.header_offset + 30 + name_and_extra + info.compress_size  # end of x_train's compressed bytes
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(good[: end - 200] + bytes(255 - b for b in good[end - 200 : end - 100]) + good[end - 100 :])
    with pytest.raises(SourceError, match="truncated or corrupt"):
        load_mnist_npz(damaged, split="train")
    X1, y1 = load_mnist_npz(damaged, split="train", max_rows=10)
    np.testing.assert_array_equal(X1, fake_mnist["images"][:10].reshape(10, -1))
    np.testing.assert_array_equal(y1, fake_mnist["labels"][:10])
    mismatched = tmp_path / "mismatched.npz"
    np.savez(mismatched, x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(3, np.uint8),
             x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.zeros(1, np.uint8))
    with pytest.raises(SourceError, match=r"x_train of shape \(2, 28, 28\) and y_train of shape \(3,\)"):
        load_mnist_npz(mismatched, max_rows=1)
    partial = tmp_path / "partial.npz"
    np.savez(partial, x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(2, np.uint8))
    with pytest.raises(SourceError, match=r"missing \['x_test', 'y_test'\]"):
        load_mnist_npz(partial, max_rows=1)


def test_load_mnist_dispatch_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MNIST_ENV, str(tmp_path / "absent.npz"))
    assert find_mnist() is None
    with pytest.raises(SourceNotFoundError, match="download=True"):
        load_mnist()
    with pytest.raises(SourceNotFoundError, match="No MNIST file or folder"):
        load_mnist(tmp_path / "nothing")
    single = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(SourceError, match="looks like one IDX file"):
        load_mnist(single)
    with pytest.raises(InvalidParameterError, match="'split' parameter .* Got 'val'"):
        load_mnist(tmp_path, split="val")


# ----------------------------------------------------------------------------- OpenML


def test_openml_offline_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def offline(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        raise URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", offline)
    with pytest.raises(SourceError, match=r"no network .*Network is unreachable.*Pass a local file instead: load_mnist_npz"):
        fetch_mnist_openml(data_home=tmp_path)
    assert calls[0]["data_home"] == str(tmp_path) and calls[0]["as_frame"] is False

    monkeypatch.setenv(MNIST_ENV, str(tmp_path / "absent.npz"))
    with pytest.raises(SourceError, match="no network"):
        load_mnist(download=True, data_home=tmp_path)


def test_openml_http_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise HTTPError("https://openml.org", 503, "Service Unavailable", {}, None)  # type: ignore[arg-type]

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", unavailable)
    with pytest.raises(SourceError, match="OpenML answered HTTP 503"):
        fetch_mnist_openml()


def test_openml_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    """What fetch_openml returns for mnist_784 (float pixels, string labels) becomes uint8."""
    labels = np.array([str(i % 10) for i in range(70_000)], dtype=object)
    pixels = np.broadcast_to(np.float64(3.0), (70_000, 784))
    monkeypatch.setattr(sklearn.datasets, "fetch_openml", lambda *a, **k: (pixels, labels))
    X, y = fetch_mnist_openml(split="test")
    assert X.shape == (10_000, 784) and X.dtype == np.uint8 and int(X.max()) == 3
    assert y.dtype == np.uint8 and y[:3].tolist() == [0, 1, 2]
    monkeypatch.setattr(sklearn.datasets, "fetch_openml", lambda *a, **k: (pixels + 0.5, labels))
    with pytest.raises(SourceError, match="not integer pixels in 0..255"):
        fetch_mnist_openml()


# ------------------------------------------------------------------- labelled stores


def test_write_mnist_zarr_layout_and_checksum(digits: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    images, labels = digits
    path = tmp_path / "d.zarr"
    X, y, attrs = write_mnist_zarr(images, labels, path, source="sklearn-digits", chunk_bytes=500 * 784)
    group = zarr.open_group(str(path), mode="r")
    assert group["X"].dtype == np.uint8 and group["X"].shape == (1797, 784) and group["X"].chunks == (450, 784)
    assert group["y"].dtype == np.uint8 and group["y"].chunks == (450,)
    flat = images.reshape(-1, 784)
    assert attrs["checksum"]["X"] == hashlib.sha256(flat.tobytes()).hexdigest()
    assert attrs["checksum"]["y"] == hashlib.sha256(labels.tobytes()).hexdigest()
    assert attrs["checksum"]["X_chunks"][1] == hashlib.sha256(flat[450:900].tobytes()).hexdigest()
    assert attrs["source"] == "sklearn-digits" and attrs["n"] == 1797 and attrs["shape"] == [1797, 784]
    assert isinstance(X, da.Array) and X.chunks[0] == y.chunks[0]
    assert verify_labeled_zarr(path) == attrs["checksum"]

    group = zarr.open_group(str(path), mode="r+")
    group["X"][500, 0] = 1 + int(group["X"][500, 0])  # corrupt chunk 1
    with pytest.raises(SourceError, match=r"chunk 1 of X \(rows 450:900\) does not match"):
        verify_labeled_zarr(path)


def test_write_mnist_zarr_failure_leaves_nothing(digits: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    images, labels = digits

    def fail_on_second(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        if block_info[0]["chunk-location"][0] == 1:
            raise RuntimeError("disk on fire")
        return block

    X = da.from_array(images.reshape(-1, 784), chunks=(600, 784)).map_blocks(fail_on_second,
                                                                              meta=np.empty((0, 0), np.uint8))
    path = tmp_path / "fail.zarr"
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_mnist_zarr(X, labels, path, source="test", chunk_bytes=600 * 784)
    assert no_leftovers(path)


def test_write_mnist_zarr_refuses_and_replaces(digits: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    images, labels = digits
    path = tmp_path / "d.zarr"
    write_mnist_zarr(images[:10], labels[:10], path, source="first")
    with pytest.raises(SourceError, match="already exists. Pass overwrite=True"):
        write_mnist_zarr(images[:20], labels[:20], path, source="second")
    _, _, attrs = write_mnist_zarr(images[:20], labels[:20], path, source="second", overwrite=True)
    assert attrs["n"] == 20 and attrs["source"] == "second" and no_leftovers(tmp_path / "x")
    (tmp_path / "plain").mkdir()
    with pytest.raises(SourceError, match="is not a Zarr store; it is never replaced"):
        write_mnist_zarr(images[:10], labels[:10], tmp_path / "plain", source="x", overwrite=True)


@pytest.mark.parametrize(
    "X, y, error, match",
    [
        (np.zeros((3, 784)), np.zeros(3, np.uint8), DataTypeError, "X must be uint8 pixels; got dtype float64"),
        (np.zeros((3, 784), np.uint8), np.zeros(4, np.uint8), InvalidDataError, r"y must have shape \(3,\).*got \(4,\)"),
        (np.zeros((3, 784), np.uint8), np.full(3, 300), InvalidDataError, r"labels in 0..255 .* \[300, 300\]"),
        (np.zeros((3, 784), np.uint8), np.zeros(3, np.float32), DataTypeError, "integer labels; got dtype float32"),
        (np.zeros(784, np.uint8), np.zeros(1, np.uint8), InvalidDataError, r"shape \(n, n_features\) or \(n, H, W\); got \(784,\)"),
    ],
)
def test_write_mnist_zarr_bad_input(tmp_path: Path, X: Any, y: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        write_mnist_zarr(X, y, tmp_path / "bad.zarr", source="test")
    assert no_leftovers(tmp_path / "bad.zarr")


def test_open_labeled_zarr_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="No labelled Zarr store"):
        open_labeled_zarr(tmp_path / "absent.zarr")
    zarr.create_array(str(tmp_path / "plain.zarr"), shape=(2, 2), dtype="u1")
    with pytest.raises(SourceError, match="not a Zarr group"):
        open_labeled_zarr(tmp_path / "plain.zarr")
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("X", shape=(2, 2), dtype="u1")
    with pytest.raises(SourceError, match=r"not a labelled store: no array \['y'\]"):
        open_labeled_zarr(tmp_path / "g.zarr")


# --------------------------------------------------------------------- deformation kernel


def test_zero_deformation_is_identity(digits: tuple[np.ndarray, np.ndarray]) -> None:
    images = digits[0][:50]
    out = deform_images(images, random_state=0, rotation=0, scale=0, shear=0, translation=0, elastic=0)
    np.testing.assert_array_equal(out, images)


def test_warp_matches_scipy_map_coordinates(digits: tuple[np.ndarray, np.ndarray]) -> None:
    """The vectorized kernel against a per-image reference: bilinear, zeros outside."""
    images = digits[0][:40]
    deformation = Deformation(rotation=30, scale=0.3, shear=0.3, translation=4, elastic=2.5)
    coef = deformation.coefficients(np.random.default_rng(0).random((40, deformation.n_uniforms)), (28, 28))
    out = warp_images(images, coef)
    basis = _basis(28, 28, 4).astype(np.float64)
    for i in range(40):
        where = coef[i].astype(np.float64) @ basis - _PAD
        ref = ndimage.map_coordinates(images[i].astype(np.float64), where, order=1, mode="grid-constant", cval=0.0)
        diff = np.abs(np.floor(ref + 0.5) - out[i].ravel())
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # float32 vs float64 near .5 only


def test_warp_does_not_depend_on_batch(digits: tuple[np.ndarray, np.ndarray]) -> None:
    images = digits[0]
    deformation = Deformation()
    rng = np.random.default_rng(1)
    coef = deformation.coefficients(rng.random((300, deformation.n_uniforms)), (28, 28))
    index = rng.integers(0, len(images), 300)
    a = warp_images(images, coef, index=index, batch_size=128)
    b = warp_images(images, coef, index=index, batch_size=7)
    c = np.stack([warp_images(images[j : j + 1], coef[i : i + 1])[0] for i, j in enumerate(index[:20])])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:20], c)


def test_warp_translation_by_whole_pixels(digits: tuple[np.ndarray, np.ndarray]) -> None:
    image = digits[0][:1]
    coef = Deformation(0, 0, 0, 0, 0).coefficients(np.full((1, Deformation().n_uniforms), 0.5), (28, 28))
    coef[0, :, 0] += (2.0, -3.0)  # sample 2 rows below and 3 columns left: the digit moves up and right
    out = warp_images(image, coef)[0]
    expected = np.zeros_like(image[0])
    expected[:-2, 3:] = image[0][2:, :-3]
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rotation": -1}, r"'rotation' parameter must be a float in the range \[0, 180\]. Got -1"),
        ({"scale": 1.0}, r"'scale' parameter must be a float in the range \[0, 1\). Got 1.0"),
        ({"elastic": float("nan")}, r"'elastic' parameter .* Got nan"),
        ({"elastic_grid": 1}, r"'elastic_grid' parameter must be an int in the range \[2, inf\). Got 1"),
        ({"translation": "2"}, r"'translation' parameter .* Got '2'"),
    ],
)
def test_deformation_validation(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        Deformation(**kwargs)


# ------------------------------------------------------------------ infinite MNIST


def test_digits_fallback_frame() -> None:
    images, labels = digits_28x28()
    assert images.shape == (1797, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.uint8
    assert images[:, :4].max() == 0 and images[:, 24:].max() == 0 and images[:, :, :4].max() == 0
    assert images.max() == 255 and sorted(set(labels.tolist())) == list(range(10))


def test_generator_is_deterministic(tmp_path: Path) -> None:
    X1, y1, i1, a1 = make(tmp_path / "a.zarr", 1000, random_state=7)
    X2, y2, i2, a2 = make(tmp_path / "b.zarr", 1000, random_state=7)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(i1, i2)
    assert a1["checksum"] == a2["checksum"]
    X3, _, i3, a3 = make(tmp_path / "c.zarr", 1000, random_state=8)
    assert a3["checksum"]["X"] != a1["checksum"]["X"]
    assert (X3 != X1).any(axis=1).mean() > 0.99 and (i3 != i1).mean() > 0.99


def test_generator_same_bytes_on_threads(tmp_path: Path) -> None:
    X1, y1, _, a1 = make(tmp_path / "sync.zarr", 1000, random_state=3)
    with dask.config.set(scheduler="threads", num_workers=2):
        X2, y2, _, a2 = make(tmp_path / "threads.zarr", 1000, random_state=3)
    np.testing.assert_array_equal(X1, X2)
    assert a1["checksum"] == a2["checksum"]


@pytest.mark.slow
def test_generator_same_bytes_on_process_cluster(tmp_path: Path, process_client: Any) -> None:
    assert infinite._distributed_client() is process_client  # base digits scattered, tasks on the workers
    _, _, _, a_cluster = make(tmp_path / "cluster.zarr", 2000, chunk_rows=250, random_state=5)
    assert len(a_cluster["checksum"]["X_chunks"]) == 8  # 8 tasks, spread over the 2 workers
    with dask.config.set(scheduler="synchronous"):
        X_sync, _, _, a_sync = make(tmp_path / "sync.zarr", 2000, chunk_rows=250, random_state=5)
    assert a_cluster["checksum"] == a_sync["checksum"]
    np.testing.assert_array_equal(open_labeled_zarr(tmp_path / "cluster.zarr")[0].compute(scheduler="sync"), X_sync)


def test_generator_chunks_are_independent(tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y, index, attrs = make(tmp_path / "a.zarr", 1000, random_state=11)
    assert zarr.open_array(str(tmp_path / "a.zarr"), path="X", mode="r").chunks == (400, 784)
    images, labels = digits
    Xc, yc, ic = generate_block(images, labels, 2, 200, 11, Deformation())  # the last, partial chunk alone
    np.testing.assert_array_equal(Xc, X[800:])
    np.testing.assert_array_equal(ic, index[800:])
    # a smaller set is a prefix of a larger one (same chunk_rows and seed)
    X_small, y_small, _, _ = make(tmp_path / "small.zarr", 650, random_state=11)
    np.testing.assert_array_equal(X_small, X[:650])
    np.testing.assert_array_equal(y_small, y[:650])


def test_generator_labels_are_the_base_labels(tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    images, labels = digits
    X, y, index, attrs = make(tmp_path / "a.zarr", 2000, random_state=0)
    np.testing.assert_array_equal(y, labels[index])
    assert attrs["base"]["n"] == len(images)
    assert attrs["base"]["sha256"] == hashlib.sha256(images.tobytes()).hexdigest()
    assert len(np.unique(index)) > 1000  # the draws cover the base set
    knn = KNeighborsClassifier(n_neighbors=1).fit(images.reshape(len(images), -1), labels)
    accuracy = (knn.predict(X) == y).mean()
    assert accuracy > 0.93, accuracy  # undeformed 1-NN would be 1.0; natural MNIST test digits: 0.96
    assert (X != images[index].reshape(len(X), -1)).any(axis=1).all()  # every image was deformed


def test_generator_on_real_mnist(mnist: tuple[np.ndarray, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deformed MNIST digits stay their digit: 1-NN on the 60,000 base digits labels them as
    well as it labels MNIST's own test digits (about 0.96)."""
    from sklearn.neighbors import KNeighborsClassifier

    monkeypatch.setenv(MNIST_ENV, str(find_mnist(Path(__file__).resolve().parents[1])))
    X, y, attrs = make_infinite_mnist(tmp_path / "a.zarr", 400, chunk_rows=200)
    assert attrs["base"]["n"] == 60_000 and attrs["base"]["source"].startswith("mnist-npz:")
    index = zarr.open_array(str(tmp_path / "a.zarr"), path="base_index", mode="r")[:]
    train_X, train_y = mnist[0][:60_000], mnist[1][:60_000]
    np.testing.assert_array_equal(y.compute(), train_y[index])
    knn = KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(train_X, train_y)
    accuracy = (knn.predict(X.compute()) == y.compute()).mean()
    assert accuracy > 0.92, accuracy


def test_generator_falls_back_to_sklearn_digits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MNIST_ENV, str(tmp_path / "no-such-mnist.npz"))
    _, _, description = load_base_digits(None)
    assert description == "sklearn-digits-28x28"
    X, y, _, attrs = make(tmp_path / "a.zarr", 300, base=None)
    assert attrs["base"]["source"] == "sklearn-digits-28x28" and attrs["base"]["n"] == 1797
    assert X.shape == (300, 784) and set(np.unique(y)) <= set(range(10))
    with pytest.raises(SourceNotFoundError, match="base='mnist' but no MNIST file was found"):
        make_infinite_mnist(tmp_path / "b.zarr", 10, base="mnist")
    assert no_leftovers(tmp_path / "b.zarr")


def test_generator_attrs_and_checksum(tmp_path: Path) -> None:
    X, y, index, attrs = make(tmp_path / "a.zarr", 900, random_state=4, rotation=5.0, elastic_grid=3)
    gen = attrs["generator"]
    assert gen["random_state"] == 4 and gen["chunk_rows"] == 400
    assert gen["deformation"] == {"rotation": 5.0, "scale": 0.1, "shear": 0.1, "translation": 0.5, "elastic": 1.0, "elastic_grid": 3}
    assert "SeedSequence(random_state, spawn_key=(chunk_index,))" in gen["seeding"]
    assert attrs["n"] == 900 and attrs["shape"] == [900, 784] and attrs["chunk_rows"] == 400
    assert attrs["checksum"]["X"] == hashlib.sha256(X.tobytes()).hexdigest()
    assert attrs["checksum"]["y"] == hashlib.sha256(y.tobytes()).hexdigest()
    assert attrs["checksum"]["X_chunks"][2] == hashlib.sha256(X[800:].tobytes()).hexdigest()
    assert verify_labeled_zarr(tmp_path / "a.zarr") == attrs["checksum"]
    codecs = zarr.open_array(str(tmp_path / "a.zarr"), path="X", mode="r").compressors
    assert type(codecs[0]).__name__ == "BloscCodec" and codecs[0].cname.value == "lz4hc"


def test_generator_fresh_seed_is_recorded(tmp_path: Path) -> None:
    _, _, _, attrs = make(tmp_path / "a.zarr", 300, random_state=None)
    seed = attrs["generator"]["random_state"]
    assert isinstance(seed, int) and seed > 2**32
    _, _, _, again = make(tmp_path / "b.zarr", 300, random_state=seed)
    assert again["checksum"]["X"] == attrs["checksum"]["X"]


def test_generator_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = infinite.warp_images

    def fail_on_third(*args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("worker died")
        return real(*args, **kwargs)

    monkeypatch.setattr(infinite, "warp_images", fail_on_third)
    path = tmp_path / "a.zarr"
    with pytest.raises(MemoryError, match="worker died"):
        make(path, 2000)
    assert len(calls) == 3 and no_leftovers(path)


def test_generator_refuses_existing_path_before_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.zarr"
    make(path, 100)
    monkeypatch.setattr(infinite, "load_base_digits", lambda base: pytest.fail("did work"))
    with pytest.raises(SourceError, match="already exists"):
        make_infinite_mnist(path, 100)
    monkeypatch.undo()
    _, _, _, attrs = make(path, 200, overwrite=True)
    assert attrs["n"] == 200 and no_leftovers(tmp_path / "other")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 0}, r"'n_samples' parameter of make_infinite_mnist must be an int in the range \[1, inf\). Got 0"),
        ({"chunk_rows": 0}, r"'chunk_rows' .* Got 0"),
        ({"random_state": -1}, r"'random_state' .* \[0, inf\). Got -1"),
        ({"random_state": np.random.default_rng(0)}, r"'random_state' .* Got Generator"),
        ({"shear": -0.5}, r"'shear' parameter must be a float in the range \[0, inf\). Got -0.5"),
        ({"base": 3}, r"'base' parameter must be None, 'mnist', 'digits'.* Got 3"),
        ({"base": (np.zeros((2, 5, 5)), np.zeros(2))}, r"base images must be a non-empty uint8"),
    ],
)
def test_generator_bad_parameters(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    args = {"n_samples": 10, **kwargs}
    with pytest.raises((InvalidParameterError, InvalidDataError), match=match):
        make_infinite_mnist(tmp_path / "a.zarr", args.pop("n_samples"), **args)
    assert no_leftovers(tmp_path / "a.zarr")


def test_generator_custom_base(tmp_path: Path) -> None:
    images = np.zeros((2, 16, 16), np.uint8)
    images[0, 4:12, 7:9] = 255  # a bar: label 1
    images[1, 4:12, 4:12] = 200  # a block: label 7
    X, y, attrs = make_infinite_mnist(tmp_path / "a.zarr", 50, base=(images, [1, 7]), chunk_rows=20)
    assert X.shape == (50, 256) and attrs["image_shape"] == [16, 16] and attrs["base"]["source"] == "user"
    assert set(np.unique(y.compute())) == {1, 7}
    shutil.rmtree(tmp_path / "a.zarr")


@pytest.mark.parametrize(
    "images, coef_shape, index, match",
    [
        (np.zeros((2, 28, 28)), (2, 2, 19), None, r"uint8 array of shape \(n_images, H, W\); got float64"),
        (np.zeros((2, 28, 28), np.uint8), (2, 2, 18), None, r"coef must have shape \(2, 2, 3 \+ g\*\*2\)"),
        (np.zeros((2, 28, 28), np.uint8), (3, 2, 19), None, "same length; got 2 and 3"),
        (np.zeros((2, 28, 28), np.uint8), (1, 2, 19), [2], r"index must be in \[0, 2\) .* \[2, 2\]"),
    ],
)
def test_warp_bad_input(images: np.ndarray, coef_shape: tuple[int, ...], index: Any, match: str) -> None:
    with pytest.raises(InvalidDataError, match=match):
        warp_images(images, np.zeros(coef_shape, np.float32), index=index)
