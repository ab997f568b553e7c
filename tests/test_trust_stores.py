"""Damaged Zarr stores are package errors naming the path and the fix, never rows of zeros
(issue 14, item 2). Every case damages a real store on disk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from daskcluster import KMeans
from daskcluster.datasets.store import open_labeled_zarr, write_mnist_zarr
from daskcluster.errors import DaskClusterError, SourceError, StoreIntegrityError
from daskcluster.io import open_array, write_zarr


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A 40 x 3 float32 store of 4 chunks of 10 rows; chunk 1 all zeros."""
    X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    X[10:20] = 0
    path = tmp_path / "x.zarr"
    write_zarr(X, path, chunk_bytes=10 * 3 * 4)
    return path


def test_all_zero_chunks_are_stored_and_listed(store: Path) -> None:
    assert sorted(os.listdir(store / "c")) == ["0", "1", "2", "3"]
    doc = json.loads((store / "zarr.json").read_text())["attributes"]["daskcluster"]
    assert doc["shape"] == [40, 3] and len(doc["chunk_sha256"]) == 4


def test_missing_chunk_is_an_error(store: Path) -> None:
    shutil.rmtree(store / "c" / "2")
    with pytest.raises(StoreIntegrityError, match=r"x.zarr'.* 1 chunk\(s\) missing, e.g. chunk 2 \(rows 20:30\).*Write the store again"):
        open_array(store)
    with pytest.raises(StoreIntegrityError, match="missing"):
        KMeans(2, n_init=1, random_state=0).fit(str(store))


def test_missing_all_zero_chunk_is_an_error(store: Path) -> None:
    shutil.rmtree(store / "c" / "1")
    with pytest.raises(StoreIntegrityError, match=r"chunk 1 \(rows 10:20\)"):
        open_array(store)


def test_enlarged_shape_is_an_error(store: Path) -> None:
    meta = json.loads((store / "zarr.json").read_text())
    meta["shape"] = [80, 3]
    (store / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreIntegrityError, match=r"x.zarr'.* has shape \(80, 3\).*written with shape \(40, 3\).*altered"):
        open_array(store)


def test_corrupt_metadata_names_the_path(store: Path) -> None:
    text = (store / "zarr.json").read_text()
    (store / "zarr.json").write_text(text[: len(text) // 2])
    with pytest.raises(StoreIntegrityError, match=rf"'{store}'.* damaged: it is not valid JSON.*Write the store again"):
        open_array(store)


def test_corrupt_chunk_names_the_rows(store: Path) -> None:
    chunk = store / "c" / "3" / "0"
    chunk.write_bytes(b"\x02\x01" + os.urandom(chunk.stat().st_size))
    X = open_array(store)
    with pytest.raises(StoreIntegrityError, match=r"x.zarr'.*chunk 3 \(rows 30:40.*corrupt; write the store again"):
        X.compute()


def test_corrupt_labelled_store_chunk_and_missing_chunk(tmp_path: Path) -> None:
    path = tmp_path / "m.zarr"
    X = np.zeros((30, 4), dtype=np.uint8)
    write_mnist_zarr(X, np.zeros(30, dtype=np.uint8), path, source="test", chunk_bytes=40)
    assert len(os.listdir(path / "y" / "c")) == 3  # all-zero labels stored too
    (path / "y" / "c" / "1").unlink()
    with pytest.raises(StoreIntegrityError, match=r"m.zarr' component 'y'.* chunk 1 \(rows 10:20\)"):
        open_labeled_zarr(path)


def test_unreadable_store_is_a_permission_error(store: Path) -> None:
    """Permission denied is said so, with the fix. Root ignores file modes, so as root the store
    is opened by a child process without the capabilities that bypass them (``setpriv``)."""
    store.chmod(0o000)
    try:
        if os.geteuid() != 0:
            with pytest.raises(SourceError, match=rf"Cannot read '{store}': permission denied.*read access"):
                open_array(store)
            return
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: file modes cannot be enforced here")
        code = textwrap.dedent(f"""
            from daskcluster.io import open_array
            from daskcluster.errors import SourceError
            try:
                open_array({str(store)!r})
            except SourceError as exc:
                print(type(exc).__name__, exc)
        """)
        out = subprocess.run([setpriv, "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-c", code],
                             capture_output=True, text=True, timeout=120, check=False)
        assert f"SourceError Cannot read '{store}': permission denied" in out.stdout, out.stdout + out.stderr
        assert "read access" in out.stdout
    finally:
        store.chmod(0o755)


def test_every_damage_is_a_package_error(store: Path) -> None:
    """The base class catches all of them (and OSError, as the built-in kind)."""
    shutil.rmtree(store / "c" / "0")
    with pytest.raises(DaskClusterError):
        open_array(store)
    with pytest.raises(OSError):
        open_array(store)


def test_verify_names_a_chunk_whose_values_changed(store: Path) -> None:
    """A chunk rewritten with valid but other values decodes fine; its checksum does not."""
    from daskcluster.io import verify_zarr

    assert verify_zarr(store) == 4
    import zarr

    zarr.open_array(str(store), mode="r+")[25, 1] = 7.0
    with pytest.raises(StoreIntegrityError, match=r"x.zarr': Zarr chunk 2 \(rows 20:30\) does not match its SHA-256"):
        verify_zarr(store)
