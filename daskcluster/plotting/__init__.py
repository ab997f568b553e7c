"""Figures of clusterings, sweeps and mixtures, drawn with matplotlib.

Every function returns a :class:`matplotlib.figure.Figure` built with matplotlib's object API
(never ``pyplot``): figures render without a display, never enter pyplot's list of open
figures, and show as PNG in a notebook when they are a cell's value. matplotlib is imported
on first use (``import daskcluster.plotting`` does not import it); install it with
``pip install "daskcluster[plot]"``.

=================================== ==========================================================
:func:`plot_elbow`                  inertia against ``n_clusters``, the elbow marked
:func:`plot_silhouette_scores`      mean silhouette against ``n_clusters``, the best marked
:func:`plot_sweep`                  one panel per metric of a sweep
:func:`plot_silhouette_diagram`     the silhouette "knife" diagram of a seeded sample of rows
:func:`plot_image_grid`             centers, patches or components as a grid of images
:func:`plot_information_criteria`   BIC and AIC by covariance type
:func:`plot_mixture_2d`             density contours, means and anomalies of 2-D data
:func:`plot_quantization`           an image before and after colour quantization
:func:`plot_segmentation`           an image and its segmentations at several ``k``
:func:`plot_weights_heatmap`        clustered heat map of a factorization's weights
:func:`save_figure`                 a figure written as PNG, atomically
=================================== ==========================================================
"""

from __future__ import annotations

from ._curves import plot_elbow, plot_silhouette_scores, plot_sweep
from ._heatmap import plot_weights_heatmap
from ._images import plot_image_grid, plot_quantization, plot_segmentation
from ._io import save_figure
from ._mixture import plot_information_criteria, plot_mixture_2d
from ._silhouette import plot_silhouette_diagram

__all__ = [
    "plot_elbow",
    "plot_image_grid",
    "plot_information_criteria",
    "plot_mixture_2d",
    "plot_quantization",
    "plot_segmentation",
    "plot_silhouette_diagram",
    "plot_silhouette_scores",
    "plot_sweep",
    "plot_weights_heatmap",
    "save_figure",
]
