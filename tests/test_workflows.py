"""The workflows in workflows/ at a small size: each runs, writes valid PNGs and its JSON, and
finds the figures the texts report (digits: KMeans(10) majority-label accuracy >= 0.78;
50 representatives beat 50 random labels by a clear margin; 4% anomalies)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_workflow(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"workflows_{name}", ROOT / "workflows" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run(name: str, out: Path, *args: str) -> dict[str, Any]:
    """Run a workflow's main() and return the JSON it wrote."""
    assert load_workflow(name).main([str(out), *args]) == 0
    report = json.loads((out / f"{name}.json").read_text())
    assert report["workflow"] == name
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"
    return report


def assert_png(path: Path, min_size: tuple[int, int] = (300, 150)) -> None:
    """A complete PNG of at least ``min_size`` pixels that is not a blank canvas."""
    from PIL import Image

    assert path.is_file(), path
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size[0] >= min_size[0] and img.size[1] >= min_size[1], img.size
        pixels = np.asarray(img.convert("L"), dtype=float)
    assert pixels.std() > 5, f"{path.name} looks blank"


def test_digits_kmeans(tmp_path: Path) -> None:
    report = run("digits_kmeans", tmp_path, "--small")
    digits = report["digits"]
    assert digits["n_samples"] == 1797 and digits["n_init"] == 10
    assert digits["majority_label_accuracy"] >= 0.78  # the texts: about 0.79
    assert digits["matched_accuracy"] <= digits["majority_label_accuracy"] + 1e-12
    assert sorted(digits["cluster_digit"]) != [0] * 10 and sum(digits["cluster_size"]) == 1797
    mnist = report["mnist"]
    assert mnist["n_samples"] == 5000
    assert mnist["majority_label_accuracy"] > 0.5  # ten clusters of pixels find most digits
    assert_png(tmp_path / "digits_centers.png", (800, 120))
    assert_png(tmp_path / "mnist_centers.png", (800, 120))


def test_digits_kmeans_on_generated_mnist(tmp_path: Path) -> None:
    report = run("digits_kmeans", tmp_path, "--small", "--data", "mnist", "--mnist", "generated")
    assert "digits" not in report
    mnist = report["mnist"]
    assert mnist["data"].startswith("generated") and mnist["n_samples"] == 5000
    assert mnist["majority_label_accuracy"] > 0.4
    assert_png(tmp_path / "mnist_centers.png", (800, 120))


def test_semi_supervised(tmp_path: Path) -> None:
    report = run("semi_supervised", tmp_path, "--small")
    digits = report["digits"]
    assert (digits["n_train"], digits["n_test"], digits["n_labels"]) == (1347, 450, 50)
    # the texts: about 0.83 with 50 random labels, about 0.92 with the 50 representatives
    assert digits["representatives"] - digits["random_first"] >= 0.05
    assert digits["representatives"] - digits["random_mean"] >= 0.05
    assert digits["representatives"] >= 0.88
    # labels propagated to each cluster's closest 20% are more often right than to all rows
    assert digits["partial_label_accuracy"] > digits["propagated_label_accuracy"] > 0.85
    assert abs(digits["partial_rows"] - 0.2 * 1347) <= 50
    mnist = report["mnist"]
    assert (mnist["n_train"], mnist["n_test"]) == (2000, 1000)
    assert mnist["representatives"] > mnist["random_first"]
    assert mnist["partial_label_accuracy"] > mnist["propagated_label_accuracy"]
    assert_png(tmp_path / "digits_representatives.png", (800, 400))
    assert_png(tmp_path / "mnist_representatives.png", (800, 400))


def test_segmentation(tmp_path: Path) -> None:
    report = run("segmentation", tmp_path, "--small", "--images", "flower.jpg", "china.jpg", "--k", "2", "4", "8")
    for name, stem in (("flower.jpg", "flower"), ("china.jpg", "china")):
        image = report["images"][name]
        assert image["shape"][2] == 3 and image["n_pixels"] == image["shape"][0] * image["shape"][1]
        fits = image["fits"]
        assert [f["k"] for f in fits] == [2, 4, 8]
        inertia = [f["inertia"] for f in fits]
        assert inertia[0] > inertia[1] > inertia[2] > 0  # more colours, closer to the image
        assert_png(tmp_path / f"segmentation_{stem}.png", (600, 150))


def test_color_quantization_image_and_collection(tmp_path: Path) -> None:
    store = tmp_path / "store.zarr"
    report = run("color_quantization", tmp_path / "a", "--small", "--store", str(store))
    image = report["image"]
    assert image["n_colors"] == 16 and image["n_pixels"] == 107 * 160
    collection = report["collection"]
    assert (collection["n_images"], collection["image_size"], collection["n_chunks"]) == (96, 48, 2)
    assert collection["n_pixels"] == 96 * 48 * 48
    assert 0 < collection["mean_squared_error"] < 0.05
    for name in ("color_quantization", "collection_quantization"):
        assert_png(tmp_path / "a" / f"{name}.png", (800, 200))
    for name in ("palette", "collection_palette"):
        assert_png(tmp_path / "a" / f"{name}.png", (600, 60))
    # the store is kept and read again: the same pixels give the same model
    assert store.is_dir()
    again = run("color_quantization", tmp_path / "b", "--small", "--part", "collection", "--store", str(store))
    assert again["collection"]["inertia"] == collection["inertia"]
    assert "image" not in again


def test_collection_is_deterministic_and_chunked_by_images() -> None:
    wf = load_workflow("color_quantization")
    X = wf.collection_array(70, 16, seed=3)
    assert X.shape == (70 * 256, 3) and X.dtype == np.uint8
    assert X.chunks[0] == (64 * 256, 6 * 256)
    first = np.asarray(X.compute())
    np.testing.assert_array_equal(first, np.asarray(wf.collection_array(70, 16, seed=3).compute()))
    assert not np.array_equal(first, np.asarray(wf.collection_array(70, 16, seed=4).compute()))
    # a smaller collection is a prefix of a larger one with the same seed (chunks seeded by index)
    np.testing.assert_array_equal(np.asarray(wf.collection_array(64, 16, seed=3).compute()), first[: 64 * 256])


def test_gmm_anomalies(tmp_path: Path) -> None:
    report = run("gmm_anomalies", tmp_path, "--small")
    blobs = report["blobs"]
    assert blobs["bic_choice"] == {"n_components": 3, "covariance_type": "full"}  # the texts' model
    for name in ("blobs", "moons", "mnist"):
        figures = report[name]
        assert abs(figures["anomaly_fraction"] - 0.04) <= 0.002, (name, figures["anomaly_fraction"])
        assert figures["n_anomalies"] == round(figures["anomaly_fraction"] * figures["n_samples"])
        bics = [row["bic"] for row in figures["criteria"]]
        assert figures["bic"] == min(bics)
    assert report["moons"]["bic_choice"]["n_components"] > 2  # moons are not Gaussian: more components
    assert report["mnist"]["pca"]["n_components"] == 10
    for name in ("gmm_blobs", "gmm_moons"):
        assert_png(tmp_path / f"{name}.png", (500, 400))
        assert_png(tmp_path / f"{name}_criteria.png", (800, 300))
    assert_png(tmp_path / "mnist_gmm_criteria.png", (800, 300))
    assert_png(tmp_path / "mnist_gmm_samples.png", (800, 300))
    assert_png(tmp_path / "mnist_gmm_anomalies.png", (800, 200))


def test_patch_dictionary(tmp_path: Path) -> None:
    report = run("patch_dictionary", tmp_path, "--small", "--images", "sample")
    assert (report["n_clusters"], report["n_images"], report["images"]) == (16, 2, "sample")
    assert report["n_patches"] == 2 * 2 * 200 and report["n_steps"] >= 1
    assert_png(tmp_path / "patch_dictionary.png", (300, 300))
    assert_png(tmp_path / "patch_samples.png", (300, 300))


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        load_workflow("semi_supervised").main([str(tmp_path), "--percentile", "0"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        load_workflow("color_quantization").main([str(tmp_path), "--image-size", "4"])
    with pytest.raises(SystemExit):
        load_workflow("digits_kmeans").main([str(tmp_path), "--n-init", "0"])
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_nonconvex_clustering(tmp_path: Path) -> None:
    report = run("nonconvex_clustering", tmp_path, "--small")
    for gamma in ("gamma_100", "gamma_1"):
        moons = report["spectral_moons"][gamma]
        assert moons["fit_path"] == "exact" and moons["labels_equal_sklearn"] and moons["affinity_equal_sklearn"]
    assert report["spectral_moons"]["gamma_100"]["cluster_sizes"] == [500, 500]  # the two moons
    agg = report["agglomerative"]
    assert agg["children"] == [[0, 1], [2, 3], [4, 5]]  # the texts' tree of [0, 2, 5, 8.5]
    assert agg["moons_cluster_sizes"]["single"] == [500, 500]
    blobs = report["two_phase_blobs"]
    assert blobs["n_samples"] == 20_000
    for name in ("spectral", "agglomerative_ward"):
        assert blobs[name]["fit_path"] == "two-phase" and blobs[name]["labels_lazy"]
        assert blobs[name]["ari"] >= 0.95
    for name in ("spectral_moons", "agglomerative_moons", "two_phase_blobs"):
        assert_png(tmp_path / f"{name}.png", (800, 300))
    assert_png(tmp_path / "agglomerative_dendrogram.png", (400, 300))


def test_dbscan_moons(tmp_path: Path) -> None:
    report = run("dbscan_moons", tmp_path, "--small")
    narrow, wide = report["moons"]["eps=0.05"], report["moons"]["eps=0.2"]
    assert (narrow["n_core_samples"], narrow["n_clusters"]) == (808, 7) and narrow["n_anomalies"] > 0  # the texts
    assert wide["n_clusters"] == 2 and narrow["same_as_scikit_learn"] and wide["same_as_scikit_learn"]
    assert report["moons"]["new_points"]["predict"] == [-1, 0, 1, -1]  # the texts' recipe with anomalies
    large = report["large"]
    assert large["n_samples"] == 200_000 and large["n_partitions"] >= 2
    assert min(large["largest_clusters"][:2]) > 0.45 * 200_000  # the two moons hold most rows
    for name in ("dbscan_moons", "dbscan_predict", "dbscan_large"):
        assert_png(tmp_path / f"{name}.png", (500, 300))
