"""Progress bars say only what is known: a bar to the end for seeding (its passes are fixed),
an indeterminate count with the rate and metrics for iterations that stop at convergence; in a
notebook kernel without ipywidgets, the text bar and no warning."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from daskcluster.progress import IterationReport, ProgressBar


def _reports(stage: str, n: int, max_iter: int) -> list[IterationReport]:
    return [IterationReport("KMeans", stage, i, max_iter, 0.01, 1000, {"inertia": 100.0 / i, "shift": 1.0 / i})
            for i in range(1, n + 1)]


def test_seeding_has_a_total_and_iterations_are_indeterminate() -> None:
    out = io.StringIO()
    bar = ProgressBar(file=out)
    for rep in _reports("init", 3, 3) + _reports("fit", 24, 300):
        bar(rep)
    init, fit = bar._bars[("KMeans", "init")], bar._bars[("KMeans", "fit")]
    assert (init.total, init.n) == (3, 3)
    assert (fit.total, fit.n) == (None, 24)  # converged at 24 of at most 300: no 24/300, no percentage
    bar.close()
    text = out.getvalue().replace("\r", "\n")
    last_fit = [line for line in text.splitlines() if line.startswith("KMeans fit")][-1]
    assert re.match(r"KMeans fit \(max 300\): 24pass \[[0-9:]+, .*pass/s, inertia=4\.1667, shift=0\.041667\]",
                    last_fit), last_fit
    assert "%" not in last_fit and "/300" not in last_fit


def test_a_new_run_starts_a_new_bar() -> None:
    bar = ProgressBar(file=io.StringIO())
    for rep in _reports("fit", 5, 300) + _reports("fit", 2, 300):  # n_init=2: the second run from 1
        bar(rep)
    assert bar._bars[("KMeans", "fit")].n == 2
    bar.close()


def test_a_fit_drives_the_bar_to_its_iteration_count() -> None:
    from daskcluster import KMeans

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 1.0, size=(500, 2)) for c in (0, 10, 20)])
    out = io.StringIO()
    with ProgressBar(file=out, leave=True) as bar:
        km = KMeans(3, init="random", n_init=1, random_state=0).fit(X)
        fit = bar._bars[("KMeans", "fit")]
        assert fit.total is None and fit.n == km.n_iter_


NOTEBOOK_CELL = """
import sys, warnings
sys.modules["ipywidgets"] = None        # a kernel without ipywidgets, even where it is installed
import numpy as np
from daskcluster import KMeans
from daskcluster.progress import ProgressBar
X = np.random.default_rng(0).normal(size=(300, 2))
with warnings.catch_warnings():
    warnings.simplefilter("error")      # any warning fails the cell
    with ProgressBar() as bar:
        KMeans(2, n_init=1, random_state=0).fit(X)
        print(type(bar._bars[("KMeans", "fit")]).__module__)
"""


@pytest.mark.slow
def test_a_notebook_without_ipywidgets_gets_the_text_bar_without_a_warning() -> None:
    nbformat = pytest.importorskip("nbformat", reason="nbformat is part of the test extra")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is part of the test extra")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK_CELL)])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    stdout = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert stdout.strip() == "tqdm.std"
    assert "Warning" not in stderr and "KMeans fit" in stderr


def test_a_sweep_has_one_bar_counting_its_passes() -> None:
    from daskcluster.progress import progress_hook
    from daskcluster.selection import kmeans_sweep

    X = np.random.default_rng(0).normal(size=(2000, 3))
    reports: list[IterationReport] = []
    with ProgressBar(file=io.StringIO()) as bar, progress_hook(reports.append):
        kmeans_sweep(X, [2, 3, 4], random_state=0)
        assert list(bar._bars) == [("kmeans_sweep", "fit")]
        sweep = bar._bars[("kmeans_sweep", "fit")]
        # the passes it made, not a fraction of its upper bound (the sweep ends when every run has converged)
        assert sweep.total is None and sweep.n == len(reports) == reports[-1].iteration < reports[-1].max_iter


def test_elkan_iterations_report_what_they_measured_and_no_nan(caplog: pytest.LogCaptureFixture) -> None:
    """An Elkan pass that skips distances does not compute the inertia: its reports (log line,
    bar, hooks) carry the centers' shift and the share of distances computed, and no NaN."""
    from daskcluster import KMeans
    from daskcluster.progress import progress_hook

    X = np.random.default_rng(0).normal(size=(3000, 2))
    reports: list[IterationReport] = []
    out = io.StringIO()
    with caplog.at_level("INFO", logger="daskcluster.progress"), ProgressBar(file=out) as bar, \
            progress_hook(reports.append):
        KMeans(8, algorithm="elkan", init="random", n_init=1, random_state=0, tol=0.0).fit(X)
        bar.close()
    fits = [rep for rep in reports if rep.stage == "fit"]
    bounded = [rep for rep in fits if rep.metrics["computed"] < 1]
    assert bounded, "no iteration skipped distances: the case does not test the bounded pass"
    assert all("inertia" not in rep.metrics and rep.metrics["shift"] >= 0 for rep in bounded)
    assert all(np.isfinite(v) for rep in reports for v in rep.metrics.values())
    assert "inertia" in fits[0].metrics  # the first pass computes every distance, so it knows the inertia
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("KMeans fit")]
    assert len(lines) == len(fits) and not any("nan" in line.lower() for line in lines)
    assert "nan" not in out.getvalue().lower()


def test_a_metric_given_as_nan_is_left_out() -> None:
    rep = IterationReport("MiniBatchKMeans", "fit", 1, 100, 0.5, 1000,
                          {"ewa_inertia": float("nan"), "steps": 3.0, "lower_bound": float("-inf")})
    assert rep.metrics == {"steps": 3.0, "lower_bound": float("-inf")}
    assert "nan" not in rep.format() and "steps=3" in rep.format()
