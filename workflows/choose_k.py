"""Choose the number of clusters of MNIST: inertia (elbow), silhouette, Calinski-Harabasz and
Davies-Bouldin for k = 2..12, from one sweep whose passes serve every k.

Data: real MNIST (``$DASKCLUSTER_MNIST`` or the usual places, see ``daskcluster.datasets``)
scaled to [0, 1], or, when it is absent, deformed digits generated from scikit-learn's 8x8
digits (``make_infinite_mnist``). ``--small`` takes 3,000 rows and k = 2..6.

Usage::

    python workflows/choose_k.py OUTPUT_DIR [--small] [--kmin 2] [--kmax 12] [--rows N] [--seed 0]

Writes ``OUTPUT_DIR/choose_k.png`` (one panel per score), ``OUTPUT_DIR/elbow.png``,
``OUTPUT_DIR/silhouette_diagram.png`` (the model of best silhouette, on a sample),
``OUTPUT_DIR/centers.png`` (that model's centers as digits) and ``OUTPUT_DIR/choose_k.json``
(the table without the models, the elbow, the passes and the seconds).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("workflows.choose_k")


def load_data(rows: int | None, seed: int, folder: Path) -> tuple[Any, str]:
    """MNIST rows as ``scaled(uint8, 1/255)``: a seeded sample of ``rows`` of the file, or that many
    deformed 8x8 digits generated into a Zarr store in ``folder`` when MNIST is absent."""
    from daskcluster import scaled
    from daskcluster.datasets import find_mnist, mnist_or_generated

    found = find_mnist(Path(__file__).resolve().parents[1])
    if found is None:
        X, _, where = mnist_or_generated("generated", rows or 20_000, folder, random_state=seed)
        return scaled(X, 1 / 255), f"{where}, {X.shape[0]:,} rows"
    X, _, where = mnist_or_generated(found)
    if rows is not None and rows < X.shape[0]:
        X = X[np.sort(np.random.default_rng(seed).choice(X.shape[0], rows, replace=False))]
    return scaled(X, 1 / 255), f"{where}, {X.shape[0]:,} rows"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--small", action="store_true", help="3,000 rows and k = 2..6")
    parser.add_argument("--kmin", type=int, default=2)
    parser.add_argument("--kmax", type=int, default=None)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from daskcluster.jobs.outputs import write_json
    from daskcluster.plotting import (
        plot_elbow,
        plot_image_grid,
        plot_silhouette_diagram,
        plot_sweep,
        save_figure,
    )
    from daskcluster.progress import ProgressBar
    from daskcluster.selection import kmeans_sweep

    kmax = args.kmax or (6 if args.small else 12)
    rows = args.rows or (3000 if args.small else None)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    X, description = load_data(rows, args.seed, args.output_dir)
    sample = 1000 if args.small else 10_000
    t0 = time.perf_counter()
    with ProgressBar(leave=False):
        table = kmeans_sweep(X, n_clusters=range(args.kmin, kmax + 1), random_state=args.seed,
                             silhouette_sample_size=sample)
    seconds = time.perf_counter() - t0
    best = table.attrs["best_model"]
    out = args.output_dir
    save_figure(plot_sweep(table), out / "choose_k.png")
    save_figure(plot_elbow(table), out / "elbow.png")
    save_figure(plot_silhouette_diagram(X, best.labels_, sample_size=min(2000, sample), random_state=args.seed),
                out / "silhouette_diagram.png")
    side = int(np.sqrt(best.cluster_centers_.shape[1]))
    save_figure(plot_image_grid(best.cluster_centers_, (side, side),
                                suptitle=f"centers of the k = {best.n_clusters} model"), out / "centers.png")
    columns = ["n_clusters", "inertia", "silhouette", "calinski_harabasz", "davies_bouldin", "n_iter"]
    summary = {"data": description, "elbow": table.attrs["elbow"], "best_silhouette_k": int(best.n_clusters),
               "passes": int(table.attrs["passes"]), "seconds": round(seconds, 2),
               "table": table[columns].to_dict(orient="records")}
    write_json(out / "choose_k.json", summary)
    print(table[columns].to_string(index=False))
    print(f"{description}: elbow at k = {summary['elbow']}, best silhouette at k = {summary['best_silhouette_k']}; "
          f"{summary['passes']} passes over the data for {len(table)} models in {seconds:.1f}s. Figures in {out}.")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
