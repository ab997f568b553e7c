"""daskcluster.plotting draws what it says, without a display (Agg), and saves PNG atomically."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dask.array as da
import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from PIL import Image

from daskcluster import plotting as P
from daskcluster.engine import count_passes
from daskcluster.errors import (
    DataTypeError,
    InvalidDataError,
    InvalidParameterError,
    NonFiniteDataError,
)
from daskcluster.metrics import silhouette_score

matplotlib.use("Agg")  # no display: pyplot, when a test imports it, renders off-screen

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def sweep() -> pd.DataFrame:
    """A sweep table as kmeans_sweep gives it: k = 1 has no silhouette/CH/DB (NaN)."""
    ks = np.arange(1, 9)
    table = pd.DataFrame({
        "n_clusters": ks,
        "inertia": [800.0, 420.0, 260.0, 80.0, 72.0, 66.0, 61.0, 57.0],
        "silhouette": [np.nan, 0.45, 0.52, 0.71, 0.60, 0.55, 0.50, 0.41],
        "calinski_harabasz": [np.nan, 300.0, 500.0, 1200.0, 990.0, 850.0, 800.0, 760.0],
        "davies_bouldin": [np.nan, 1.0, 0.7, 0.4, 0.8, 0.7, 0.9, 1.0],
        "fit_time": 0.01 * ks,
    })
    table.attrs["elbow"] = 4
    return table


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [7.0, 0.0], [0.0, 7.0]])
    labels = np.repeat(np.arange(3), 400)
    return centers[labels] + rng.normal(size=(1200, 2)), labels


def _lines(ax, prefix: str):  # type: ignore[no-untyped-def]
    return [line for line in ax.lines if line.get_label().startswith(prefix)]


# --------------------------------------------------------------------------- figures, imports

def test_import_does_not_import_matplotlib() -> None:
    code = ("import sys, daskcluster, daskcluster.plotting; "
            "assert 'matplotlib' not in sys.modules, sorted(m for m in sys.modules if 'matplotlib' in m)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch, sweep: pd.DataFrame) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r'pip install "daskcluster\[plot\]"'):
        P.plot_elbow(sweep)


def test_figures_stay_out_of_pyplot_and_display_as_png(sweep: pd.DataFrame) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = P.plot_sweep(sweep)
    assert isinstance(fig, Figure)
    assert plt.get_fignums() == before
    assert fig._repr_png_().startswith(b"\x89PNG\r\n\x1a\n")


# --------------------------------------------------------------------------- curves

def test_elbow_marks_the_elbow_of_the_table(sweep: pd.DataFrame) -> None:
    fig = P.plot_elbow(sweep)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "number of clusters (n_clusters)"
    assert ax.get_ylabel().startswith("inertia")
    assert ax.get_title() == "Elbow method: k = 4"
    (curve,) = _lines(ax, "inertia")
    np.testing.assert_array_equal(curve.get_xdata(), np.arange(1, 9))
    (mark,) = _lines(ax, "elbow")
    assert list(mark.get_xdata()) == [4] and list(mark.get_ydata()) == [80.0]
    assert [ln.get_xdata()[0] for ln in ax.lines if ln.get_linestyle() == "--"] == [4]


def test_elbow_given_overrides_attrs_and_bad_elbow_is_refused(sweep: pd.DataFrame) -> None:
    (mark,) = _lines(P.plot_elbow(sweep, elbow=3).axes[0], "elbow")
    assert list(mark.get_xdata()) == [3]
    plain = sweep.copy()
    plain.attrs = {}
    assert _lines(P.plot_elbow(plain).axes[0], "elbow") == []
    with pytest.raises(InvalidParameterError, match=r"must be one of the table's n_clusters .* Got 12"):
        P.plot_elbow(sweep, elbow=12)


def test_elbow_leaves_out_failed_rows_and_draws_into_given_axes(sweep: pd.DataFrame) -> None:
    table = sweep.copy()
    table.loc[2, "inertia"] = np.nan
    host = Figure()
    ax = host.add_subplot(1, 2, 2)
    assert P.plot_elbow(table, ax=ax) is host
    np.testing.assert_array_equal(_lines(ax, "inertia")[0].get_xdata(), [1, 2, 4, 5, 6, 7, 8])
    with pytest.raises(DataTypeError, match="matplotlib Axes"):
        P.plot_elbow(table, ax="left")


def test_curves_refuse_bad_tables(sweep: pd.DataFrame) -> None:
    with pytest.raises(InvalidDataError, match=r"lacks \['inertia'\]"):
        P.plot_elbow(sweep.drop(columns="inertia"))
    with pytest.raises(DataTypeError, match="pandas DataFrame"):
        P.plot_elbow({"n_clusters": [1, 2], "inertia": [2.0, 1.0]})
    with pytest.raises(InvalidDataError, match="empty table"):
        P.plot_silhouette_scores(sweep.iloc[:0])
    with pytest.raises(InvalidDataError, match="no finite value"):
        P.plot_silhouette_scores(sweep.iloc[:1])
    with pytest.raises(InvalidDataError, match="no metric"):
        P.plot_sweep(sweep[["n_clusters"]])


def test_silhouette_scores_marks_the_best(sweep: pd.DataFrame) -> None:
    (ax,) = P.plot_silhouette_scores(sweep).axes
    assert ax.get_ylabel() == "mean silhouette coefficient"
    assert ax.get_title() == "Silhouette: best k = 4"
    np.testing.assert_array_equal(_lines(ax, "silhouette")[0].get_xdata(), np.arange(2, 9))
    (best,) = _lines(ax, "best")
    assert list(best.get_xdata()) == [4] and list(best.get_ydata()) == [0.71]


def test_sweep_has_one_panel_per_present_metric(sweep: pd.DataFrame) -> None:
    fig = P.plot_sweep(sweep)
    assert [ax.get_ylabel() for ax in fig.axes] == ["inertia", "silhouette", "Calinski-Harabasz",
                                                    "Davies-Bouldin", "fit time (s)"]
    assert all(ax.get_xlabel() == "n_clusters" for ax in fig.axes)
    assert fig.axes[0].get_subplotspec().get_geometry()[:2] == (2, 3)
    assert list(_lines(fig.axes[0], "elbow")[0].get_xdata()) == [4]
    assert list(_lines(fig.axes[3], "best")[0].get_xdata()) == [4]  # least Davies-Bouldin
    assert fig.axes[3].get_title().startswith("Davies-Bouldin (lower is better)")
    assert _lines(fig.axes[4], "best") == []
    partial = sweep[["n_clusters", "inertia", "davies_bouldin"]].assign(silhouette=np.nan)
    assert [ax.get_ylabel() for ax in P.plot_sweep(partial).axes] == ["inertia", "Davies-Bouldin"]


# --------------------------------------------------------------------------- silhouette diagram

def test_silhouette_diagram_on_lazy_data(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    X, labels = blobs
    with count_passes() as passes:
        fig = P.plot_silhouette_diagram(da.from_array(X, chunks=(100, 2)), da.from_array(labels, chunks=70),
                                        sample_size=300, random_state=3)
    assert passes.passes == 0
    (ax,) = fig.axes
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 3
    assert ax.get_xlabel() == "silhouette coefficient" and ax.get_ylabel() == "cluster"
    assert ax.get_title() == "Silhouette of 3 clusters, a sample of 300 of 1,200 rows"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1", "2"]
    (mean,) = [ln for ln in ax.lines if ln.get_label().startswith("mean")]
    expected = silhouette_score(X, labels, sample_size=300, random_state=3)
    assert mean.get_xdata()[0] == pytest.approx(expected, rel=1e-5)
    # each band holds its cluster's sampled rows
    heights = [c.get_paths()[0].vertices[:, 1] for c in ax.collections if isinstance(c, PolyCollection)]
    assert sum(round(h.max() - h.min()) + 1 for h in heights) == 300


def test_silhouette_diagram_reads_only_sampled_chunks(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    X, labels = blobs
    read: list[int] = []

    def record(block: np.ndarray, block_info=None) -> np.ndarray:  # type: ignore[no-untyped-def]
        read.append(block_info[0]["chunk-location"][0])
        return block

    lazy = da.from_array(X, chunks=(10, 2)).map_blocks(record, meta=np.empty((0, 0), dtype=X.dtype))
    fig = P.plot_silhouette_diagram(lazy, labels, sample_size=6, random_state=0)
    index = np.sort(np.random.default_rng(0).choice(len(X), size=6, replace=False))
    assert sorted(set(read)) == sorted(set((index // 10).tolist()))
    assert "a sample of 6 of 1,200 rows" in fig.axes[0].get_title()


def test_silhouette_diagram_of_every_row_and_zarr_labels(tmp_path: Path,
                                                         blobs: tuple[np.ndarray, np.ndarray]) -> None:
    import zarr

    X, labels = blobs
    store = zarr.create_array(str(tmp_path / "labels.zarr"), shape=(len(labels), 1), chunks=(250, 1), dtype="int32")
    store[:] = labels[:, None]
    fig = P.plot_silhouette_diagram(X, str(tmp_path / "labels.zarr"), sample_size=None)
    assert fig.axes[0].get_title() == "Silhouette of 3 clusters, all 1,200 rows"


def test_silhouette_diagram_errors(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    X, labels = blobs
    with pytest.raises(InvalidDataError, match=r"labels must have shape \(1200,\).*got \(1199,\)"):
        P.plot_silhouette_diagram(X, labels[:-1])
    with pytest.raises(InvalidDataError, match="holds 1 cluster"):
        P.plot_silhouette_diagram(X, np.zeros(len(X), dtype=int), sample_size=50)
    with pytest.raises(InvalidParameterError, match="'sample_size'"):
        P.plot_silhouette_diagram(X, labels, sample_size=1)


# --------------------------------------------------------------------------- images

def test_image_grid_of_flat_centers() -> None:
    centers = np.random.default_rng(0).random((10, 64))
    fig = P.plot_image_grid(centers, (8, 8), n_cols=5, titles=[f"c{i}" for i in range(10)], suptitle="centers")
    assert len(fig.axes) == 10
    assert fig.axes[0].get_subplotspec().get_geometry()[:2] == (2, 5)
    assert [ax.get_title() for ax in fig.axes] == [f"c{i}" for i in range(10)]
    assert fig.get_suptitle() == "centers"
    for ax, center in zip(fig.axes, centers):
        (image,) = ax.get_images()
        np.testing.assert_array_equal(image.get_array(), center.reshape(8, 8))
        assert image.get_cmap().name == "gray"
        assert ax.get_xticks().size == 0


def test_image_grid_shapes_and_colour() -> None:
    rng = np.random.default_rng(1)
    fig = P.plot_image_grid(rng.random((7, 28, 28)), (28, 28))
    assert len(fig.axes) == 7
    assert fig.axes[0].get_subplotspec().get_geometry()[:2] == (3, 3)
    rgb = rng.integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    fig = P.plot_image_grid(rgb, (5, 6))
    shown = fig.axes[2].get_images()[0].get_array()
    assert shown.shape == (5, 6, 3)
    np.testing.assert_allclose(shown, rgb[2] / 255.0)
    flat = P.plot_image_grid(rgb.reshape(4, -1), (5, 6, 3))
    np.testing.assert_allclose(flat.axes[2].get_images()[0].get_array(), rgb[2] / 255.0)


def test_image_grid_of_digits_centers() -> None:
    from sklearn.datasets import load_digits

    from daskcluster import KMeans

    digits = load_digits()
    km = KMeans(n_clusters=10, random_state=0).fit(digits.data)
    fig = P.plot_image_grid(km.cluster_centers_, (8, 8), suptitle="k-means centers of the digits")
    assert len(fig.axes) == 10 and fig.axes[0].get_subplotspec().get_geometry()[:2] == (3, 4)
    for ax, center in zip(fig.axes, km.cluster_centers_):
        np.testing.assert_array_equal(ax.get_images()[0].get_array(), center.reshape(8, 8))


def test_image_grid_of_mnist(mnist: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = mnist
    fig = P.plot_image_grid(X[:20], (28, 28), titles=[str(v) for v in y[:20]])
    assert len(fig.axes) == 20 and fig.axes[0].get_subplotspec().get_geometry()[:2] == (4, 5)
    assert [ax.get_title() for ax in fig.axes] == [str(v) for v in y[:20]]
    np.testing.assert_array_equal(fig.axes[7].get_images()[0].get_array(), X[7].reshape(28, 28))


def test_image_grid_errors() -> None:
    with pytest.raises(InvalidDataError, match=r"64 values per row, but image_shape=\(28, 28\) needs 784"):
        P.plot_image_grid(np.zeros((3, 64)), (28, 28))
    with pytest.raises(InvalidParameterError, match="'image_shape'"):
        P.plot_image_grid(np.zeros((3, 64)), 64)
    with pytest.raises(InvalidParameterError, match="one title per image"):
        P.plot_image_grid(np.zeros((3, 64)), (8, 8), titles=["a"])
    with pytest.raises(DataTypeError, match="numbers"):
        P.plot_image_grid(np.array([["a"] * 4]), (2, 2))


def test_quantization_before_and_after() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    palette = np.array([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7]])
    quantized = palette[(image[..., 0] > 127).astype(int)]  # centers in [0, 1], as scaled(pixels, 1/255) gives
    fig = P.plot_quantization(image, quantized)
    n_original = len(np.unique(image.reshape(-1, 3), axis=0))
    assert [ax.get_title() for ax in fig.axes] == [f"Original ({n_original:,} colours)", "Quantized (2 colours)"]
    np.testing.assert_allclose(fig.axes[0].get_images()[0].get_array(), image / 255.0)
    np.testing.assert_allclose(fig.axes[1].get_images()[0].get_array(), quantized)
    assert P.plot_quantization(image, quantized, n_colors=16).axes[1].get_title() == "Quantized (16 colours)"
    with pytest.raises(InvalidDataError, match=r"quantized has shape \(240, 3\) but original \(12, 20, 3\)"):
        P.plot_quantization(image, quantized.reshape(-1, 3))


def test_segmentation_panels() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((10, 16, 3))
    recoloured = np.where(image > 0.5, 1.0, 0.0)
    segs = {4: (image[..., 0] * 4).astype(int), 2: recoloured, 8: (image[..., 1] * 8).astype(np.uint8)}
    fig = P.plot_segmentation(image, segs)
    assert [ax.get_title() for ax in fig.axes] == ["original", "k = 2", "k = 4", "k = 8"]
    assert fig.axes[0].get_subplotspec().get_geometry()[:2] == (1, 4)
    np.testing.assert_allclose(fig.axes[1].get_images()[0].get_array(), recoloured)
    labels_panel = fig.axes[2].get_images()[0]
    assert labels_panel.get_array().shape == (10, 16) and labels_panel.get_cmap().name == "tab10"
    fig = P.plot_segmentation(image, segs, cmap="viridis")
    assert fig.axes[3].get_images()[0].get_cmap().name == "viridis"
    five = P.plot_segmentation(image[..., 0], {k: (image[..., 0] * k).astype(int) for k in (2, 3, 4, 5)})
    assert len(five.axes) == 5 and five.axes[0].get_subplotspec().get_geometry()[:2] == (2, 4)


def test_segmentation_errors() -> None:
    image = np.zeros((10, 16, 3))
    with pytest.raises(InvalidParameterError, match="non-empty mapping"):
        P.plot_segmentation(image, {})
    with pytest.raises(InvalidDataError, match=r"segmentations\[3\] of shape \(160,\)"):
        P.plot_segmentation(image, {3: np.zeros(160, dtype=int)})
    with pytest.raises(InvalidDataError, match=r"labels segmentations\[3\] have shape \(16, 10\)"):
        P.plot_segmentation(image, {3: np.zeros((16, 10), dtype=int)})


# --------------------------------------------------------------------------- mixtures

def test_information_criteria_of_a_real_table(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    from daskcluster.mixture import gmm_bic_table

    X, _ = blobs
    table = gmm_bic_table(X[::4], n_components=[1, 2, 3, 4], covariance_type=["full", "spherical"], random_state=0,
                          max_iter=30)
    fig = P.plot_information_criteria(table)
    assert len(fig.axes) == 2
    bic_ax, aic_ax = fig.axes
    assert [ln.get_label() for ln in bic_ax.lines] == ["full", "spherical", "least BIC"]
    assert bic_ax.get_ylabel() == "BIC (lower is better)" and aic_ax.get_ylabel() == "AIC (lower is better)"
    assert bic_ax.get_xlabel() == "number of components (n_components)"
    best = table.loc[table["bic"].idxmin()]
    (star,) = _lines(bic_ax, "least")
    assert list(star.get_xdata()) == [best["n_components"]] and list(star.get_ydata()) == [best["bic"]]
    assert bic_ax.get_title() == f"BIC (least: {best['covariance_type']}, {best['n_components']} components)"


def test_information_criteria_skip_failed_models() -> None:
    table = pd.DataFrame({
        "n_components": [1, 2, 3, 1, 2, 3, 1, 2],
        "covariance_type": ["full"] * 3 + ["tied"] * 3 + ["diag"] * 2,
        "bic": [10.0, np.nan, 7.0, 11.0, 9.0, 8.0, np.nan, np.nan],
        "aic": [9.0, np.nan, 6.5, 10.0, 8.0, 7.5, np.nan, np.nan],
    })
    bic_ax, _ = P.plot_information_criteria(table).axes
    lines = {ln.get_label(): ln for ln in bic_ax.lines}
    assert set(lines) == {"full", "tied", "least BIC"}  # diag failed everywhere: no line
    np.testing.assert_array_equal(lines["full"].get_xdata(), [1, 3])
    assert list(lines["least BIC"].get_xdata()) == [3] and list(lines["least BIC"].get_ydata()) == [7.0]
    with pytest.raises(InvalidDataError, match="every model"):
        P.plot_information_criteria(table.assign(bic=np.nan, aic=np.nan))
    with pytest.raises(InvalidDataError, match=r"lacks \['aic'\]"):
        P.plot_information_criteria(table.drop(columns="aic"))


@pytest.fixture(scope="module")
def fitted(blobs: tuple[np.ndarray, np.ndarray]):  # type: ignore[no-untyped-def]
    from daskcluster.mixture import GaussianMixture

    X, _ = blobs
    return GaussianMixture(3, random_state=0).fit(X)


def _scatter(ax, prefix: str):  # type: ignore[no-untyped-def]
    (points,) = [c for c in ax.collections if c.get_label().startswith(prefix)]
    return points


def test_mixture_2d_contours_sample_means_and_anomalies(fitted, blobs) -> None:  # type: ignore[no-untyped-def]
    from daskcluster.mixture import anomalies

    X, _ = blobs
    mask = anomalies(fitted, da.from_array(X, chunks=(300, 2)), 5.0, return_mask=True)
    fig = P.plot_mixture_2d(fitted, da.from_array(X, chunks=(300, 2)), anomalies=mask, sample_size=500,
                            random_state=0, n_grid=60)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "feature 0" and ax.get_ylabel() == "feature 1"
    assert "negative log-likelihood" in ax.get_title()
    assert any(isinstance(c, ContourSet) for c in ax.collections)
    assert len(_scatter(ax, "500 of 1,200 rows").get_offsets()) == 500
    np.testing.assert_allclose(_scatter(ax, "means").get_offsets(), fitted.means_)
    n_odd = int(mask.sum().compute())
    odd = _scatter(ax, "anomalies")
    assert odd.get_label() == f"anomalies ({n_odd})"
    assert len(odd.get_offsets()) == n_odd
    np.testing.assert_allclose(odd.get_facecolor()[0][:3], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(np.sort(odd.get_offsets()[:, 0]), np.sort(X[mask.compute(), 0]), rtol=1e-6)


def test_mixture_2d_anomalies_as_indices_or_rows_and_sklearn_model(blobs) -> None:  # type: ignore[no-untyped-def]
    from sklearn.mixture import GaussianMixture

    X, _ = blobs
    model = GaussianMixture(3, random_state=0).fit(X)
    index = np.argsort(model.score_samples(X))[:30]
    by_index = P.plot_mixture_2d(model, X, anomalies=index, n_grid=40, random_state=0)
    by_rows = P.plot_mixture_2d(model, X, anomalies=X[index], n_grid=40, random_state=0)
    for fig in (by_index, by_rows):
        odd = _scatter(fig.axes[0], "anomalies (30)")
        np.testing.assert_allclose(np.sort(odd.get_offsets()[:, 1]), np.sort(X[index, 1]))
        assert _scatter(fig.axes[0], "all 1,200 rows") is not None
    capped = P.plot_mixture_2d(model, X, anomalies=index, n_grid=40, sample_size=10, random_state=0)
    assert len(_scatter(capped.axes[0], "anomalies (10 of 30)").get_offsets()) == 10


def test_mixture_2d_errors(fitted, blobs) -> None:  # type: ignore[no-untyped-def]
    from sklearn.mixture import GaussianMixture

    X, _ = blobs
    X3 = np.column_stack([X, X[:, 0]])
    with pytest.raises(InvalidDataError, match=r"X has shape \(1200, 3\) \(3 features\)"):
        P.plot_mixture_2d(fitted, X3)
    with pytest.raises(InvalidDataError, match=r"means_ have shape \(2, 3\)"):
        P.plot_mixture_2d(GaussianMixture(2, random_state=0).fit(X3), X3)
    with pytest.raises(InvalidParameterError, match="fitted GaussianMixture"):
        P.plot_mixture_2d(GaussianMixture(2), X)
    with pytest.raises(InvalidDataError, match=r"mask has shape \(10,\)"):
        P.plot_mixture_2d(fitted, X, anomalies=np.zeros(10, dtype=bool))
    with pytest.raises(InvalidDataError, match=r"indices must be in \[0, 1200\)"):
        P.plot_mixture_2d(fitted, X, anomalies=[5, 1200])


# --------------------------------------------------------------------------- heat map

def test_weights_heatmap_rows_in_leaf_order() -> None:
    from scipy.cluster.hierarchy import leaves_list, linkage

    W = np.abs(np.random.default_rng(0).normal(size=(40, 5)))
    fig = P.plot_weights_heatmap(W, row_labels=[f"r{i}" for i in range(40)], title="NMF weights")
    assert len(fig.axes) == 3  # heat map, colour bar, row dendrogram
    heat = fig.axes[0]
    order = leaves_list(linkage(W, method="average"))
    np.testing.assert_allclose(heat.get_images()[0].get_array(), W[order])
    assert [t.get_text() for t in heat.get_yticklabels()] == [f"r{i}" for i in order]
    assert [t.get_text() for t in heat.get_xticklabels()] == ["0", "1", "2", "3", "4"]
    assert fig.get_suptitle() == "NMF weights (40 rows x 5 components)"
    dendrogram_ax = fig.axes[2]
    assert len(dendrogram_ax.lines) == 39  # one link per merge

    both = P.plot_weights_heatmap(W, cluster_cols=True, col_labels=list("abcde"))
    assert len(both.axes) == 4
    cols = leaves_list(linkage(W.T, method="average"))
    np.testing.assert_allclose(both.axes[0].get_images()[0].get_array(), W[np.ix_(order, cols)])
    assert [t.get_text() for t in both.axes[0].get_xticklabels()] == [list("abcde")[j] for j in cols]
    plain = P.plot_weights_heatmap(W, cluster_rows=False)
    assert len(plain.axes) == 2
    np.testing.assert_allclose(plain.axes[0].get_images()[0].get_array(), W)


def test_weights_heatmap_samples_large_lazy_weights() -> None:
    W = np.abs(np.random.default_rng(1).normal(size=(600, 3)))
    fig = P.plot_weights_heatmap(da.from_array(W, chunks=(100, 3)), max_rows=120, random_state=4)
    assert fig.get_suptitle() == "Weights (120 of 600 rows sampled x 3 components)"
    shown = fig.axes[0].get_images()[0].get_array()
    assert shown.shape == (120, 3)
    index = np.sort(np.random.default_rng(4).choice(600, size=120, replace=False))
    np.testing.assert_allclose(np.sort(shown[:, 0]), np.sort(W[index, 0]), rtol=1e-6)
    again = P.plot_weights_heatmap(da.from_array(W, chunks=(100, 3)), max_rows=120, random_state=4)
    np.testing.assert_array_equal(again.axes[0].get_images()[0].get_array(), shown)


def test_weights_heatmap_errors() -> None:
    W = np.ones((5, 2))
    with pytest.raises(InvalidParameterError, match="one label per row of W \\(5\\)"):
        P.plot_weights_heatmap(W, row_labels=["a"])
    with pytest.raises(InvalidParameterError, match="'method'"):
        P.plot_weights_heatmap(W, method="nearest")
    with pytest.raises(InvalidParameterError, match="'metric'"):
        P.plot_weights_heatmap(W, metric="no-such-metric")
    bad = W.copy()
    bad[3, 1] = np.nan
    with pytest.raises(NonFiniteDataError, match="row 3"):
        P.plot_weights_heatmap(bad)


# --------------------------------------------------------------------------- saving

def test_save_figure_writes_a_png_atomically(tmp_path: Path, sweep: pd.DataFrame) -> None:
    fig = P.plot_elbow(sweep)
    path = P.save_figure(fig, tmp_path / "out" / "elbow.png", dpi=50)
    assert path == tmp_path / "out" / "elbow.png"
    assert sorted(p.name for p in path.parent.iterdir()) == ["elbow.png"]
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (round(fig.get_figwidth() * 50), round(fig.get_figheight() * 50))
    assert fig.axes  # the figure is still usable
    P.save_figure(fig, str(path), dpi=80)
    with Image.open(path) as image:
        assert image.size == (round(fig.get_figwidth() * 80), round(fig.get_figheight() * 80))


def test_save_figure_failure_keeps_the_previous_file(tmp_path: Path, sweep: pd.DataFrame) -> None:
    from matplotlib.artist import Artist

    class Broken(Artist):  # an artist whose drawing fails, as a real rendering error would
        def draw(self, renderer) -> None:  # type: ignore[no-untyped-def]
            raise RuntimeError("cannot draw")

    path = P.save_figure(P.plot_elbow(sweep), tmp_path / "elbow.png")
    before = path.read_bytes()
    fig = P.plot_elbow(sweep)
    fig.axes[0].add_artist(Broken())
    with pytest.raises(RuntimeError, match="cannot draw"):
        P.save_figure(fig, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["elbow.png"]


def test_save_figure_errors(tmp_path: Path, sweep: pd.DataFrame) -> None:
    fig = P.plot_elbow(sweep)
    with pytest.raises(InvalidParameterError, match="must end in '.png'"):
        P.save_figure(fig, tmp_path / "elbow.jpg")
    with pytest.raises(InvalidParameterError, match="'dpi'"):
        P.save_figure(fig, tmp_path / "elbow.png", dpi=0)
    with pytest.raises(DataTypeError, match="matplotlib Figure"):
        P.save_figure(fig.axes[0], tmp_path / "elbow.png")
