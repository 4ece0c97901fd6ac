"""Partitioned training on Dask (issue 21 item 2): rows stay on the workers that read them.

A dataset of ``benchmarks/data.py`` (default ``bibtex``) as one XC file cut into byte ranges,
trained on a LocalCluster of single-threaded worker processes with a per-worker memory
limit, against the local fit of the same model on the whole file: fit seconds, P@1 / P@5 on
the test file, the largest weight difference, the estimated peak per worker (the number the
run is checked against before loading: the worker's memory in use after pass 1 plus the
estimate for its partitions) and each worker's measured peak RSS (ru_maxrss) and its growth
over the RSS after pass 1.

    python benchmarks/dask_partitioned.py [--dataset bibtex] [--model ovr|tree] \\
        [--workers 2] [--ranges 4] [--worker-memory 2GiB] [--batch-labels 64 512]

Times on a shared, loaded 2-core machine are only indicative.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402


def _peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss_now() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def main(argv: list[str] | None = None) -> int:
    import distributed
    from dask.utils import parse_bytes

    from labelwise.distributed import partitions as P
    from labelwise.io.xc import read_xc
    from labelwise.metrics import ranking_metrics
    from labelwise.models import LabelTree, OneVsRest

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="bibtex")
    ap.add_argument("--cache", default="/tmp/labelwise-bench-data")
    ap.add_argument("--model", choices=("ovr", "tree"), default="ovr")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ranges", type=int, default=4)
    ap.add_argument("--worker-memory", default="2GiB")
    ap.add_argument("--batch-labels", type=int, nargs="+", default=[P.MAX_BATCH_LABELS],
                    help="ovr: labels solved side by side (64 = one block at a time, as "
                    "before batching); one partitioned fit per value")
    args = ap.parse_args(argv)
    folder = data.prepare(args.dataset, args.cache)
    train, test = folder / "train.txt", folder / "test.txt"
    tr, te = read_xc(train, index_base=0), read_xc(test, index_base=0)
    make = (lambda: OneVsRest(random_state=0)) if args.model == "ovr" else (
        lambda: LabelTree(random_state=0))
    warnings.simplefilter("ignore")
    t = time.perf_counter()
    local = make().fit(tr.X, sp.csr_matrix(tr.Y))
    t_local = time.perf_counter() - t
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    limit = parse_bytes(args.worker_memory)
    lc = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                  processes=True, dashboard_address=None,
                                  memory_limit=limit, silence_logs=logging.CRITICAL)
    client = distributed.Client(lc)
    fits = []
    try:
        for batch in args.batch_labels if args.model == "ovr" else [None]:
            if batch is not None:
                P.MAX_BATCH_LABELS = batch
            t = time.perf_counter()
            parts = P.open_partitions(client, train, byte_ranges=args.ranges, _tasks=[])
            before = client.run(_rss_now)
            model = P.fit(make(), parts)
            t_dist = time.perf_counter() - t
            # a solver round trip submits one of these per partition
            trips = sum(name in ("label_sums", "eval_sums", "hv_sums")
                        for name, _ in parts.tasks) // len(parts.workers)
            fits.append((batch, model, t_dist, trips))
        rss = client.run(_peak_rss)
    finally:
        client.close()
        lc.close()
    rows = [("local", local, t_local, None)]
    rows += [("partitioned" + ("" if b is None else f", {b} labels at once"), m, secs, trips)
             for b, m, secs, trips in fits]
    print(f"{args.dataset}: {tr.X.shape[0]} train rows, {tr.X.shape[1]} features, "
          f"{tr.Y.shape[1]} labels; {args.model}; {args.ranges} byte ranges on "
          f"{args.workers} workers, limit {limit / 2**20:.0f} MiB each; load average "
          f"{' / '.join(Path('/proc/loadavg').read_text().split()[:3])} at the end")
    print("| run | fit s | solver round trips | P@1 | P@5 |")
    print("|---|---|---|---|---|")
    for label, m, secs, trips in rows:
        r = ranking_metrics(sp.csr_matrix(te.Y), m.decision_function(te.X, k=5), k=(1, 5))
        print(f"| {label} | {secs:.1f} | {'' if trips is None else trips} | "
              f"{100 * r['p@1']:.2f} | {100 * r['p@5']:.2f} |")
    if args.model == "ovr":
        print(f"largest |w_partitioned - w_local|: {abs(model.coef_ - local.coef_).max():.4f}")
        for b, m, _, _ in fits[1:]:
            same = all((getattr(m.coef_, k) == getattr(fits[0][1].coef_, k)).all()
                       for k in ("data", "indices", "indptr"))
            print(f"{b} labels at once: weights bit-identical to {fits[0][0]}: {same}")
    print("| worker | RSS after pass 1 | estimated peak (in use + partitions) | measured peak "
          "RSS | measured growth |")
    print("|---|---|---|---|---|")
    for w in sorted(parts.estimate):
        print(f"| {w} | {before[w] / 2**20:.1f} MiB | {parts.estimate[w] / 2**20:.1f} MiB | "
              f"{rss[w] / 2**20:.1f} MiB | {(rss[w] - before[w]) / 2**20:.1f} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
