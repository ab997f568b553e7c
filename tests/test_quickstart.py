"""The quick start through the installed command, on a small MNIST-layout file."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from daskcluster.metrics import contingency_matrix, majority_label_accuracy


def _small_mnist(path: str, mnist: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = mnist
    np.savez_compressed(path, x_train=X[:3000].reshape(-1, 28, 28), y_train=y[:3000],
                        x_test=X[60000:61000].reshape(-1, 28, 28), y_test=y[60000:61000])


def test_cli_help() -> None:
    out = subprocess.run([sys.executable, "-m", "daskcluster", "--help"], capture_output=True, text=True, check=True)
    assert "quickstart" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "daskcluster", "nosuchcommand"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


@pytest.mark.slow
def test_quickstart_runs_and_reports(tmp_path: object, mnist: tuple[np.ndarray, np.ndarray]) -> None:
    path = os.path.join(tmp_path, "mnist.npz")
    _small_mnist(path, mnist)
    env = {**os.environ, "DASKCLUSTER_MNIST": path}
    out = subprocess.run([sys.executable, "-m", "daskcluster", "quickstart"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "4,000 x 784" in out.stdout
    acc = float(out.stdout.split("majority-label accuracy:")[1].split()[0])
    assert 0.45 < acc <= 1.0
    assert out.stdout.count("\n") > 30  # the centers are drawn


def test_contingency_and_majority_accuracy_lazy_and_eager() -> None:
    import dask.array as da
    from sklearn.metrics.cluster import contingency_matrix as sk_contingency

    rng = np.random.default_rng(0)
    t = rng.integers(0, 4, 500)
    p = rng.integers(0, 6, 500)
    np.testing.assert_array_equal(contingency_matrix(t, p), sk_contingency(t, p))
    np.testing.assert_array_equal(contingency_matrix(da.from_array(t, chunks=77), da.from_array(p, chunks=50)),
                                  sk_contingency(t, p))
    table = sk_contingency(t, p)
    assert majority_label_accuracy(t, p) == pytest.approx(table.max(0).sum() / 500)


def test_without_mnist_the_quickstart_clusters_generated_digits(tmp_path: object,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Not Gaussian blobs: handwritten-looking digits whose clusters follow the digits, so the
    centers a newcomer sees are digits."""
    from daskcluster import KMeans
    from daskcluster.quickstart import load_default_data

    monkeypatch.setenv("DASKCLUSTER_MNIST", os.path.join(str(tmp_path), "absent.npz"))  # found nowhere
    name, X, y, k = load_default_data(n_generated=2000, work_dir=str(tmp_path))
    assert "generated" in name and "MNIST not found" in name and k == 10
    assert X.source.shape == (2000, 784) and X.source.dtype == np.uint8 and X.scale == pytest.approx(1 / 255)
    assert sorted(np.unique(y)) == list(range(10))
    km = KMeans(10, random_state=0).fit(X)
    labels = np.asarray(km.labels_.compute())
    # blobs would give 1.000; noise ~0.1; generated digits are in between, as MNIST (about 0.6)
    assert 0.4 < majority_label_accuracy(y, labels) < 0.98
    assert km.n_iter_ > 3
