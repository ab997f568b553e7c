"""The diagonal EM pass on non-zeros (``kernels/mixture/diag_nonzeros.py``) at a past commit
against now, on MNIST8M chunks and real models, one thread, CPU time, alternated.

Run from the project root::

    python benchmarks/gmm_stats_ab.py --before 4e01846 --x X.npy --models MODELS.npz

``--x``: ``uint8`` rows (n, 784) cut into chunks of ``--chunk`` rows (32,768: the benchmark's
chunks); ``--models``: a ``.npz`` of the fitted ``GaussianMixture(10, "diag")`` after EM
iterations ``--iterations`` (arrays ``means{i}``, ``prec_chol{i}``, ``log_const{i}``,
``center{i}``, ``min_resp{i}``, as :class:`~daskcluster.kernels.mixture.params.GaussianParams`
holds them). The module of ``--before`` is read from git and imported beside the current one;
both are called as ``DiagRows`` calls them (each with its own ``BLOCK_COST``), and, per model,
the least and median CPU time of a chunk over ``--repeats`` alternated rounds are printed with the
largest relative difference of the results (``log p``, ``sum r log r``, ``n_k``, the sums).
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from past_module import module_at  # noqa: E402

from daskcluster.kernels.blocks import Affine  # noqa: E402
from daskcluster.kernels.mixture import diag_nonzeros  # noqa: E402
from daskcluster.kernels.mixture.diag_nonzeros import padded_components  # noqa: E402
from daskcluster.kernels.mixture.diag_rows import DiagRows  # noqa: E402
from daskcluster.kernels.mixture.estep import reference  # noqa: E402
from daskcluster.kernels.mixture.nonzero_groups import GroupParams, screen_bound  # noqa: E402
from daskcluster.kernels.mixture.params import GaussianParams  # noqa: E402
from daskcluster.kernels.vector_ir import aligned_zeros  # noqa: E402

PATH = "daskcluster/kernels/mixture/diag_nonzeros.py"
#: Where what the module's past versions imported relatively is now.
MOVED = {".vector_ir": "daskcluster.kernels.vector_ir"}


def runner(mod: Any, dr: DiagRows, block: np.ndarray) -> Callable[[], tuple[Any, ...]]:
    """A call of ``mod.diag_em_nonzeros`` on ``block`` as ``DiagRows`` makes it (sums around 0):
    with the (d, Kpad) parameters of ``mod.NonzeroParams`` where the module has them (its E-step
    before the groups of :mod:`~daskcluster.kernels.mixture.nonzero_groups`), else with
    :class:`~daskcluster.kernels.mixture.nonzero_groups.GroupParams`."""
    k_n, d = dr.means.shape
    if hasattr(mod, "NonzeroParams"):
        old = mod.NonzeroParams(dr.means, dr.prec)
        p, a, c, width = old.pt, old.at, old.c, old.pt.shape[1]
    else:
        new = GroupParams(dr.means, dr.prec)
        p, a, c, width = new.p, new.a, new.c, padded_components(k_n)

    screen: tuple[Any, ...] = ()
    if "p32" in inspect.signature(mod.diag_em_nonzeros.py_func).parameters:  # the float32 screen
        bound = screen_bound(block.dtype, dr.scale, d)
        screen = (new.p32, new.a32) + (bound if bound is not None else (-1.0, 0.0))

    def run() -> tuple[Any, ...]:
        nk = np.zeros(k_n)
        s1, s2 = aligned_zeros((k_n, d)), aligned_zeros((k_n, d))
        t1, t2 = aligned_zeros((d, width)), aligned_zeros((d, width))
        out = mod.diag_em_nonzeros(block, dr.scale, p, a, c, dr.log_const, dr.min_resp, dr.floor, nk, s1,
                                   s2, t1, t2, mod.BLOCK_COST, *screen)
        return out, nk, s1 + t1[:, :k_n].T, s2 + t2[:, :k_n].T

    return run


def largest_difference(a: tuple[Any, ...], b: tuple[Any, ...]) -> float:
    pairs = [(np.array(a[0][:2]), np.array(b[0][:2]))] + list(zip(a[1:], b[1:]))
    return max(float(np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-300))) for x, y in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the commit to compare with")
    parser.add_argument("--x", required=True)
    parser.add_argument("--models", required=True)
    parser.add_argument("--iterations", default="1,3,5")
    parser.add_argument("--chunk", type=int, default=32768)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    x = np.load(args.x)
    chunks = [np.ascontiguousarray(x[s : s + args.chunk]) for s in range(0, x.shape[0], args.chunk)]
    models = np.load(args.models)
    affine = Affine(scale=1 / 255)
    blas = "; ".join(f"{i['internal_api']} {i['version']} ({i.get('architecture')}, {i['num_threads']} threads)"
                     for i in threadpool_info())
    print(f"load average {os.getloadavg()}; BLAS {blas}; {len(chunks)} chunks of {args.chunk} rows; "
          f"CPU time of the thread, ms a chunk, least (median) over {args.repeats} alternated rounds")
    with tempfile.TemporaryDirectory() as where:
        before = module_at(args.before, PATH, where, MOVED)
        print(f"| EM iteration | {args.before} | now | largest relative difference |")
        print("| --- | ---: | ---: | ---: |")
        for it in (int(i) for i in args.iterations.split(",")):
            gp = GaussianParams("diag", models[f"means{it}"], models[f"prec_chol{it}"], models[f"log_const{it}"],
                                models[f"center{it}"], models[f"min_resp{it}"])
            drs = [DiagRows(gp, reference(c, affine), affine) for c in chunks]
            cases = {"before": [runner(before, dr, c) for dr, c in zip(drs, chunks)],
                     "now": [runner(diag_nonzeros, dr, c) for dr, c in zip(drs, chunks)]}
            diff = max(largest_difference(a(), b()) for a, b in zip(cases["before"], cases["now"]))
            times: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(args.repeats):
                for name, runs in cases.items():
                    for run in runs:
                        t0 = time.thread_time()
                        run()
                        times[name].append(time.thread_time() - t0)
            cells = [f"{min(t) * 1e3:.2f} ({statistics.median(t) * 1e3:.2f})" for t in times.values()]
            print(f"| {it} | {cells[0]} | {cells[1]} | {diff:.1e} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
