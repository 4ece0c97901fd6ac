"""Benchmark of ``labelwise.metrics.evaluate`` at XMC scale, and against scikit-learn.

1. Synthetic XMC data: ``Y_true`` n x L (default 1M x 100K) with power-law label frequencies
   (Zipf-like, exponent 0.9) and about 5 labels per row; top-10 CSR scores from a simulated
   model (each true label is retrieved with probability 0.7, the rest of the 10 are drawn
   from the label distribution). ``evaluate`` runs in a fresh child process that loads the
   arrays, warms the numba cache on a tiny input, then times one call: all rank-based,
   set (top-1 sets), threshold-free and coverage metrics, per-label list included. Peak
   RSS is the child's VmHWM over the call (reset just before it; inputs included).
2. A dense case small enough for scikit-learn (default 10K x 500): the metrics scikit-learn
   has (P/R/F1 x 4 averages, Hamming, subset accuracy, Jaccard, AP per label, macro and micro
   AUROC, LRAP, coverage error, label ranking loss), timed against the same from
   ``evaluate``.

Run: ``python benchmarks/metrics.py`` (``--help`` for sizes).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

GOAL_S = 10.0
GOAL_GIB = 2.0


def synthetic(n: int, L: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    probs = 1.0 / np.arange(1, L + 1) ** 0.9
    probs /= probs.sum()
    cdf = np.cumsum(probs)
    counts = np.maximum(rng.poisson(5.0, n), 1)
    rows = np.repeat(np.arange(n, dtype=np.int64), counts)
    labels = np.minimum(np.searchsorted(cdf, rng.random(rows.size)), L - 1)
    keys = np.unique(rows * L + labels)
    Y = sp.csr_matrix((np.ones(keys.size, np.float32), (keys // L, keys % L)), shape=(n, L))
    # candidates: retrieved true labels (score boosted) + 2k random labels
    keep = rng.random(keys.size) < 0.7
    ck = keys[keep]
    cs = rng.random(ck.size) + 0.6
    r2 = np.repeat(np.arange(n, dtype=np.int64), 2 * k)
    l2 = np.minimum(np.searchsorted(cdf, rng.random(r2.size)), L - 1)
    ck = np.concatenate([ck, r2 * L + l2])
    cs = np.concatenate([cs, rng.random(r2.size)])
    order = np.lexsort((-cs, ck))
    ck, cs = ck[order], cs[order]
    first = np.r_[True, ck[1:] != ck[:-1]]  # one score per (row, label): the best
    ck, cs = ck[first], cs[first]
    crow = ck // L
    order = np.lexsort((-cs, crow))
    ck, cs, crow = ck[order], cs[order], crow[order]
    starts = np.searchsorted(crow, np.arange(n))
    rank = np.arange(ck.size) - starts[crow]
    top = rank < k
    S = sp.csr_matrix((cs[top].astype(np.float32), (crow[top], ck[top] % L)), shape=(n, L))
    S.sort_indices()
    return Y, S


def _proc_status_gib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        return None
    return None


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0); ignored where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _child(path: str) -> None:
    from labelwise.metrics import evaluate

    z = np.load(path)
    Y = sp.csr_matrix((z["y_data"], z["y_indices"], z["y_indptr"]), shape=tuple(z["shape"]))
    S = sp.csr_matrix((z["s_data"], z["s_indices"], z["s_indptr"]), shape=tuple(z["shape"]))
    evaluate(Y[:200], S[:200])  # numba cache warm-up
    rss0 = _proc_status_gib("VmRSS")
    _reset_peak()
    t = time.perf_counter()
    rep = evaluate(Y, S, k=(1, 3, 5))
    dt = time.perf_counter() - t
    # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak over exec
    rss = _proc_status_gib("VmHWM")
    if rss is None:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    m = rep["metrics"]
    print(json.dumps({"seconds": dt, "peak_gib": rss, "before_gib": rss0,
                      "n_metrics": len(m), "n_per_label": len(rep["per_label"]),
                      "sample": {key: m[key] for key in ("p@1", "p@5", "ndcg@5", "psp@5",
                                                         "map", "micro_f1", "lrap",
                                                         "coverage@p0.9")},
                      "set_rule": rep["set_rule"]}))


def xmc(n: int, L: int, k: int) -> None:
    t = time.perf_counter()
    Y, S = synthetic(n, L, k)
    print(f"generated Y {Y.shape} nnz={Y.nnz} ({Y.nnz / n:.2f}/row), top-{k} scores "
          f"nnz={S.nnz} in {time.perf_counter() - t:.1f} s")
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "data.npz")
        np.savez(path, y_data=Y.data, y_indices=Y.indices, y_indptr=Y.indptr, s_data=S.data,
                 s_indices=S.indices, s_indptr=S.indptr, shape=np.array(Y.shape))
        del Y, S
        out = subprocess.run([sys.executable, __file__, "--child", path], check=True,
                             capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\nevaluate() on {n:,} x {L:,}, top-{k} CSR scores "
          f"({res['n_metrics']} metrics + {res['n_per_label']:,} per-label rows, "
          f"sets: {res['set_rule']})")
    print(f"{'measure':<26}{'value':>10}{'goal':>10}{'ok':>6}")
    print(f"{'wall time (s)':<26}{res['seconds']:>10.2f}{GOAL_S:>10.1f}"
          f"{'yes' if res['seconds'] < GOAL_S else 'NO':>6}")
    print(f"{'peak RSS (GiB)':<26}{res['peak_gib']:>10.2f}{GOAL_GIB:>10.1f}"
          f"{'yes' if res['peak_gib'] < GOAL_GIB else 'NO':>6}")
    if res["before_gib"] is not None:
        print(f"{'RSS before call (GiB)':<26}{res['before_gib']:>10.2f}"
              "   (inputs + numba + Python)")
    print("sample values:", json.dumps(res["sample"]))


def versus_sklearn(n: int, L: int) -> None:
    import sklearn.metrics as skm

    from labelwise.metrics import LabelSets, evaluate

    rng = np.random.default_rng(1)
    Y = (rng.random((n, L)) < 5.0 / L * 4).astype(np.int64)
    S = np.clip(Y * 0.3 + rng.random((n, L)) * 0.8, 0, 1)
    P = (S >= 0.5).astype(np.int64)
    evaluate(Y[:50], S[:50])  # warm-up
    t = time.perf_counter()
    evaluate(Y, S, k=(1, 3, 5), per_label=False)
    t_lw = time.perf_counter() - t
    t = time.perf_counter()
    evaluate(Y, LabelSets(P), per_label=False)
    t_lw_sets = time.perf_counter() - t

    t = time.perf_counter()
    for avg in ("micro", "macro", "samples", "weighted"):
        skm.precision_recall_fscore_support(Y, P, average=avg, zero_division=0)
    skm.hamming_loss(Y, P)
    skm.accuracy_score(Y, P)
    skm.jaccard_score(Y, P, average="samples", zero_division=0)
    t_sk_sets = time.perf_counter() - t
    t = time.perf_counter()
    ok = (Y.sum(0) > 0) & (Y.sum(0) < n)
    skm.average_precision_score(Y[:, ok], S[:, ok], average=None)
    skm.roc_auc_score(Y[:, ok], S[:, ok], average="macro")
    skm.roc_auc_score(Y, S, average="micro")
    skm.label_ranking_average_precision_score(Y, S)
    skm.coverage_error(Y, S)
    skm.label_ranking_loss(Y, S)
    t_sk_free = time.perf_counter() - t
    t_sk = t_sk_sets + t_sk_free
    print(f"\ndense {n:,} x {L:,} vs scikit-learn (the metrics it has)")
    print(f"{'':<44}{'seconds':>9}")
    print(f"{'scikit-learn set metrics (10 calls)':<44}{t_sk_sets:>9.2f}")
    print(f"{'scikit-learn threshold-free (6 calls)':<44}{t_sk_free:>9.2f}")
    print(f"{'scikit-learn total':<44}{t_sk:>9.2f}")
    print(f"{'labelwise evaluate(LabelSets) (set metrics)':<44}{t_lw_sets:>9.2f}"
          f"   ratio sklearn/labelwise {t_sk_sets / t_lw_sets:.1f}x")
    print(f"{'labelwise evaluate(dense) (all metrics)':<44}{t_lw:>9.2f}"
          f"   ratio sklearn/labelwise {t_sk / t_lw:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--labels", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--sk-n", type=int, default=10_000)
    ap.add_argument("--sk-labels", type=int, default=500)
    ap.add_argument("--skip-xmc", action="store_true")
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(a.child)
        return
    if not a.skip_xmc:
        xmc(a.n, a.labels, a.k)
    if not a.skip_sklearn:
        versus_sklearn(a.sk_n, a.sk_labels)


if __name__ == "__main__":
    main()
