"""Dask benchmarks (issue 21): scaling of distributed training, and partitioned training.

``scale``: a LabelTree (default parameters) on ``benchmarks/data.py``'s dataset (default
``synthetic-quick``), fitted locally with 1 thread and on a LocalCluster of 1 and 2
single-threaded worker processes; wall time, speed-up against the local fit, whether the
Dask models equal the local one bit for bit, and the serial share: CPU seconds of the client
process (preparing and scattering the data, assembling the model, and the LocalCluster's
scheduler, which runs in it) against CPU seconds of the worker processes, with Amdahl's
expected speed-up of 2 workers over 1 from it (CPU seconds do not depend on how loaded the
machine is; wall times do).

``federated``: OneVsRest and LabelTree (defaults) on each dataset (default ``bibtex``,
``delicious``, ``cooking``) centralised, and partitioned (``labelwise.federated``) into 5
partitions IID and label-skewed (each label's rows spread over the partitions by a Dirichlet
(alpha 0.3) draw; a row goes to the partition its rarest label picks); each after every
one of ``--rounds`` (1 and 8) rounds; P@1, P@5 and macro-F1 (OneVsRest: margins
above 0; LabelTree: probabilities above 0.5 in the top 10) against the centralised model.

    python benchmarks/dask_scale.py federated [--datasets bibtex delicious cooking]
    python benchmarks/dask_scale.py scale [--dataset synthetic-quick]

Times on a shared, loaded 2-core machine are only indicative.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402


def _load(name: str, cache: str):
    from labelwise.io.xc import read_xc

    folder = data.prepare(name, cache)
    tr = read_xc(folder / "train.txt", index_base=0)
    te = read_xc(folder / "test.txt", index_base=0)
    return tr.X, sp.csr_matrix(tr.Y), te.X, sp.csr_matrix(te.Y)


def _cluster(n: int):
    import distributed

    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    lc = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.CRITICAL)
    return lc, distributed.Client(lc)


def _quality(model, Xte, Yte) -> dict:
    from labelwise.metrics import f1_score, ranking_metrics
    from labelwise.models import OneVsRest

    S = model.decision_function(Xte, k=10)
    m = ranking_metrics(Yte, S, k=(1, 5))
    if isinstance(model, OneVsRest):  # margins; labels chosen above 0
        f1 = f1_score(Yte, model.decision_function_dense(Xte), threshold=0.0, average="macro")
    else:  # probabilities; labels chosen above 0.5 among the top 10
        f1 = f1_score(Yte, S, threshold=0.5, average="macro")
    return {"P@1": 100 * m["p@1"], "P@5": 100 * m["p@5"], "macro-F1": 100 * f1}


def skewed_partitions(Y: sp.csr_matrix, K: int, alpha: float, seed: int) -> np.ndarray:
    """Partition of each row: its rarest label's Dirichlet(alpha) draw over the K parts."""
    rng = np.random.default_rng(seed)
    L = Y.shape[1]
    shares = rng.dirichlet(np.full(K, alpha), size=L)
    freq = np.diff(sp.csc_matrix(Y).indptr)
    part = rng.integers(0, K, Y.shape[0])
    for i in range(Y.shape[0]):
        labs = Y.indices[Y.indptr[i]:Y.indptr[i + 1]]
        if labs.size:
            j = labs[np.argmin(freq[labs])]
            part[i] = rng.choice(K, p=shares[j])
    return part


def federated(args) -> None:
    from labelwise.federated import fit_partitioned, scatter_partitions
    from labelwise.models import LabelTree, OneVsRest

    makers = {"ovr": OneVsRest, "tree": LabelTree}
    kw = dict(random_state=0, memory_limit=None, n_threads=1)
    K = args.partitions
    for dataset in args.datasets:
        Xtr, Ytr, Xte, Yte = _load(dataset, args.cache)
        names = [str(j) for j in range(Ytr.shape[1])]
        rng = np.random.default_rng(0)
        splits = (("IID", rng.integers(0, K, Xtr.shape[0])),
                  (f"skewed (Dirichlet {args.alpha})",
                   skewed_partitions(Ytr, K, args.alpha, 0)))
        lc, client = _cluster(2)
        table = []
        try:
            for model_name in args.models:
                make = makers[model_name]
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    central = make(**kw).fit(Xtr, Ytr, labels=names)
                base = _quality(central, Xte, Yte)
                table.append((model_name, "centralised", "", base, base,
                              time.perf_counter() - t0))
                rounds = sorted(set(args.rounds))
                for how, part in splits:
                    parts = [(Xtr[part == k], Ytr[part == k], names) for k in range(K)]
                    placed = scatter_partitions(client, parts)
                    for R in rounds:
                        t0 = time.perf_counter()
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            model = fit_partitioned(make(**kw), placed, client=client,
                                                    rounds=R)
                        q = _quality(model, Xte, Yte)
                        table.append((model_name, f"{K} partitions {how}", R, q, base,
                                      time.perf_counter() - t0))
                        print(table[-1], file=sys.stderr, flush=True)
                    del placed
        finally:
            client.close()
            lc.close()
        print(f"\n{dataset} (train {Xtr.shape[0]} rows, {Ytr.shape[1]} labels), defaults, "
              f"seed 0, 2 worker processes\n")
        print("| model | training | rounds | P@1 | P@5 | macro-F1 | P@1 - central | "
              "P@5 - central | macro-F1 - central | fit s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for model_name, name, R, q, base, t in table:
            print(f"| {model_name} | {name} | {R} | {q['P@1']:.2f} | {q['P@5']:.2f} | "
                  f"{q['macro-F1']:.2f} | {q['P@1'] - base['P@1']:+.2f} | "
                  f"{q['P@5'] - base['P@5']:+.2f} | {q['macro-F1'] - base['macro-F1']:+.2f} | "
                  f"{t:.1f} |")
        sys.stdout.flush()


def _load_average() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def scale(args) -> None:
    from labelwise.distributed import expected_speedup, fit
    from labelwise.models import LabelTree

    Xtr, Ytr, Xte, Yte = _load(args.dataset, args.cache)
    kw = dict(random_state=0, memory_limit=None, n_threads=1)
    load = [_load_average()]
    t0, c0 = time.perf_counter(), time.process_time()
    local = LabelTree(**kw).fit(Xtr, Ytr)
    t_local, cpu_local = time.perf_counter() - t0, time.process_time() - c0
    out = [("local, 1 thread", t_local, True, None)]
    ref = local._get_state()[0]
    for n in args.workers:
        lc, client = _cluster(n)
        try:
            load.append(_load_average())
            stats: dict = {}
            t0 = time.perf_counter()
            m = fit(LabelTree(**kw), Xtr, Ytr, client=client, stats=stats)
            t = time.perf_counter() - t0
        finally:
            client.close()
            lc.close()
        st = m._get_state()[0]
        same = all(np.array_equal(ref[k], st[k]) for k in ref)
        out.append((f"Dask, {n} worker(s)", t, same, stats))
        print(out[-1], file=sys.stderr, flush=True)
    load.append(_load_average())
    print(f"\n{args.dataset}, LabelTree (defaults, seed 0); load average (1/5/15 min) before "
          f"each run and at the end: {'; '.join(load)}\n")
    print("| run | fit s | speed-up vs local | client CPU s | workers' CPU s (in tasks) | "
          "serial share | Amdahl: expected speed-up of 2 workers over 1 | the same, only "
          "the tasks' CPU divided | model == local |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, t, same, st), n in zip(out, [None, *args.workers], strict=True):
        if st is None:
            cells = f"{cpu_local:.1f} | | | | |"
        else:
            # the workers' CPU outside the tasks (receiving the data, imports) is paid by
            # every worker: it does not shrink with more workers
            c, task = st["client_cpu_s"], st["task_cpu_s"]
            fixed = c + (st["worker_cpu_s"] - task) / n
            cells = (f"{c:.1f} | {st['worker_cpu_s']:.1f} ({task:.1f}) | "
                     f"{100 * st['serial_share']:.1f} % | "
                     f"{expected_speedup(st['serial_share'], 2):.2f}x | "
                     f"{(fixed + task) / (fixed + task / 2):.2f}x |")
        print(f"| {name} | {t:.1f} | {t_local / t:.2f}x | {cells} {'yes' if same else 'NO'} |")
    dask = [(name, t) for name, t, _, st in out if st is not None]
    if len(dask) >= 2:
        print(f"\nmeasured: {dask[-1][0]} is {dask[0][1] / dask[-1][1]:.2f}x {dask[0][0]}'s "
              "speed (wall time; on a loaded machine, indicative only)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("federated", "scale"))
    ap.add_argument("--dataset", help="scale: the dataset")
    ap.add_argument("--datasets", nargs="+", default=["bibtex", "delicious", "cooking"],
                    help="federated: the datasets")
    ap.add_argument("--models", nargs="+", default=["ovr", "tree"], choices=("ovr", "tree"))
    ap.add_argument("--rounds", type=int, nargs="+", default=[1, 8],
                    help="federated: rounds (one partitioned fit per value)")
    ap.add_argument("--cache", default=str(data.DEFAULT_CACHE))
    ap.add_argument("--partitions", type=int, default=5)
    ap.add_argument("--alpha", type=float, default=0.3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)
    if args.what == "federated":
        federated(args)
    else:
        args.dataset = args.dataset or "synthetic-quick"
        scale(args)


if __name__ == "__main__":
    main()
