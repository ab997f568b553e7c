"""No crafted model file can act (issue 14, item 3).

Every file here is consistent: its checksums are recomputed after crafting, as anyone can, so
only the loader's own rules stand between the file and the process.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daskcluster import KMeans
from daskcluster import persistence as P


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    X = np.random.default_rng(0).normal(size=(60, 2))
    return P.save(KMeans(2, n_init=1, random_state=0).fit(X), tmp_path / "m.zip")


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _craft(path: Path, edit: Any = None, npz: bytes | None = None) -> Path:
    """Rewrite ``path`` after ``edit(doc)``, with checksums recomputed (as an attacker would)."""
    members = _members(path)
    doc = json.loads(members["model.json"])
    if edit is not None:
        edit(doc)
    if npz is not None:
        members["arrays.npz"] = npz
    doc["checksums"] = {"arrays.npz": P._sha256(members["arrays.npz"])}
    doc["checksums"]["model.json"] = P._sha256(P._canonical(doc))
    members["model.json"] = json.dumps(doc).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_file_naming_the_cli_module_is_refused_and_the_host_continues(saved: Path) -> None:
    """Before: load() imported daskcluster.__main__, which ran the CLI and exited the host."""
    _craft(saved, lambda d: d.update({"class": {"module": "daskcluster.__main__", "name": "main"}}))
    code = (f"from daskcluster import persistence as P\n"
            f"try:\n    P.load({str(saved)!r})\nexcept P.ModelFileError as exc:\n    print('refused:', exc)\n"
            f"import sys\nprint('host continues', 'daskcluster.__main__' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert "refused:" in out.stdout and "'daskcluster.__main__'.'main', which is not one load() creates" in out.stdout
    assert "host continues False" in out.stdout, out.stdout + out.stderr


def test_importing_main_module_runs_nothing() -> None:
    out = subprocess.run([sys.executable, "-c", "import daskcluster.__main__; print('still here')", "--version"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "still here", out.stdout + out.stderr


@pytest.mark.parametrize("module, name", [
    ("sklearn.pipeline", "Pipeline"),          # an importable estimator, not a model class
    ("daskcluster.jobs.runner", "run_job"),    # a function of the package
    ("builtins", "eval"),
    ("daskcluster.cluster", "KMeans.__init__"),
])
def test_other_module_or_class_is_refused(saved: Path, module: str, name: str) -> None:
    _craft(saved, lambda d: d.update({"class": {"module": module, "name": name}}))
    with pytest.raises(P.ModelFileError, match=rf"names the class '{module}'.'{name}', which is not one load"):
        P.load(saved)
    assert module not in sys.modules or module in ("builtins", "daskcluster.cluster", "sklearn.pipeline",
                                                   "daskcluster.jobs.runner")


@pytest.mark.parametrize("section, name", [
    ("attributes", "__dict__"), ("attributes", "__class__"), ("attributes", "fit"),
    ("attributes", "predict_"), ("state", "__dict__"), ("state", "_check_params"), ("state", "__init__"),
    ("attributes", "n_clusters"),
])
def test_attribute_names_outside_fitted_or_state_are_refused(saved: Path, section: str, name: str) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc[section][name] = 1
    if name == "predict_":  # a fitted-looking name that shadows nothing is fine; make it shadow
        setattr(KMeans, "predict_", property(lambda self: 0))
    try:
        _craft(saved, edit)
        with pytest.raises(P.ModelFileError, match=rf"{section} names '{name}', which is not a .*Refused"):
            P.load(saved)
    finally:
        if name == "predict_":
            delattr(KMeans, "predict_")


def test_crafted_scalar_dtype_cannot_allocate(saved: Path) -> None:
    _craft(saved, lambda d: d["attributes"].update({"big_": {"$scalar": 1, "dtype": "(1000000000000,)f8"}}))
    with pytest.raises(P.ModelFileError, match=r"attribute 'big_': the dtype '\(1000000000000,\)f8' .*not a plain"):
        P.load(saved)


def test_zip_bomb_member_is_refused_before_decompression(saved: Path, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    members = _members(saved)
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.json", members["model.json"] + b" " * (P.MAX_JSON_BYTES + 1))
        zf.writestr("arrays.npz", members["arrays.npz"])
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(P.ModelFileError, match=r"model.json declares 67,1\d\d,\d\d\d bytes uncompressed .*limit of 67,108,864.*zip bomb"):
        P.load(bomb)


def test_npz_larger_than_max_bytes_is_refused(saved: Path) -> None:
    buf = io.BytesIO()
    np.savez(buf, a0=np.zeros((2, 2)), pad=np.zeros(2_000_000))
    _craft(saved, npz=buf.getvalue())
    with pytest.raises(P.ModelFileError, match=r"arrays.npz declares 16,000,\d+ bytes.*limit of 1,000,000"):
        P.load(saved, max_bytes=1_000_000)


def test_oversized_declared_array_is_refused_before_allocation(saved: Path) -> None:
    """An .npy header declaring 8 TB with a few bytes of data: refused from the header."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    npy = header.getvalue() + b"\0" * 64
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a0.npy", npy)
    _craft(saved, lambda d: d["arrays"].update({"a0": {"dtype": "<f8", "shape": [10**12]}}), npz=buf.getvalue())
    with pytest.raises(P.ModelFileError, match=r"array 'a0' declares shape \(1000000000000,\).*limit of"):
        P.load(saved)


def test_legit_file_still_loads(saved: Path) -> None:
    model = P.load(saved)
    assert type(model) is KMeans and model.cluster_centers_.shape == (2, 2)


def test_every_public_estimator_is_in_the_registry() -> None:
    """A new estimator needs one line in MODEL_CLASSES to be loadable; this test says which."""
    from sklearn.base import BaseEstimator

    import daskcluster

    public = {name for name in dir(daskcluster)
              if isinstance(getattr(daskcluster, name), type) and issubclass(getattr(daskcluster, name), BaseEstimator)}
    for sub in ("cluster", "mixture", "decomposition"):
        module = __import__(f"daskcluster.{sub}", fromlist=["_"])
        public |= {name for name in getattr(module, "__all__", dir(module))
                   if isinstance(getattr(module, name, None), type) and issubclass(getattr(module, name), BaseEstimator)}
    missing = sorted(name for name in public if ("daskcluster", name) not in P.MODEL_CLASSES)
    assert not missing, f"add to persistence.MODEL_CLASSES: {missing}"
