"""XMC benchmark: labelwise's linear models against omikuji, napkinXC, PECOS and LibMultiLabel.

One run trains and tests every method on every dataset (``benchmarks/data.py``: bibtex,
delicious, cooking, synthetic by default; the long-document sets reuters, enron and
synthetic-long on request), one method at a time, each in its own subprocess:

- labelwise ``OneVsRest`` and ``LabelTree`` (when ``labelwise.models`` has it) in the
  project's ``.venv``, default settings, ``n_threads=--threads``; on request (``--labelwise
  ...,tree3``) also ``LabelTree(n_trees=3)``, the peers' default ensemble size;
- the peers, each in its own virtualenv (``benchmarks/setup_peers.sh``), with their
  documented defaults: omikuji Parabel-like (``omikuji-parabel``) and Bonsai-like
  (``omikuji-bonsai``), napkinXC PLT (``napkinxc-plt``), PECOS XR-Linear (``pecos-xrlinear``),
  LibMultiLabel tree (``lml-tree``).

Each runner (``benchmarks/peers/*_run.py``, protocol in ``peers/_common.py``) reads the XC
files, trains, predicts the top-5 of every test row and writes them to a file. Measured:
``train s`` and ``predict s`` (wall clock, inside the runner, file reading excluded), and
``peak RSS`` of the runner process (its ``VmHWM``, reported by the runner at the end and
polled from ``/proc/<pid>/status`` while it runs: the whole process, Python and loaded
data included; not ``ru_maxrss`` from ``os.wait4``, which Linux floors at this parent's
resident size at the fork, ~280 MB, so that every runner looked alike). ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
``OPENBLAS_NUM_THREADS`` and ``NUMBA_NUM_THREADS`` are set to ``--threads`` as well.
``train_cpu_s`` / ``predict_cpu_s``: the runner's CPU seconds in each phase (all threads;
the fairer figure on a loaded machine), printed under each table. Quality, computed here with :mod:`labelwise.metrics` from the written top-5:
P@1, P@3, P@5, nDCG@5 and PSP@5 (propensities from the train labels, the dataset's preset,
``default`` = A 0.55, B 1.5), in percent.

Output: a markdown table per dataset with ratios against the peers (train / fastest peer's
train, predict / fastest peer's predict, RSS / leanest peer's, P@k minus the best peer's),
and every record in ``bench-results/xmc.json`` (written atomically).

Run: ``python benchmarks/xmc.py [--datasets bibtex,delicious] [--peers omikuji-parabel,...]
[--labelwise ovr,tree] [--quick] [--timeout 3600]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(__file__).resolve().parent / "peers"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import data  # noqa: E402

#: method -> (virtualenv, runner script, variant)
PEERS = {
    "omikuji-parabel": (".venv-peers-omikuji", "omikuji_run.py", "parabel"),
    "omikuji-bonsai": (".venv-peers-omikuji", "omikuji_run.py", "bonsai"),
    "napkinxc-plt": (".venv-peers-napkinxc", "napkinxc_run.py", "default"),
    "pecos-xrlinear": (".venv-peers-pecos", "pecos_run.py", "default"),
    "lml-tree": (".venv-peers-lml", "lml_run.py", "default"),
}
LABELWISE = {
    "ovr": (".venv", "labelwise_run.py", "ovr"),
    "tree": (".venv", "labelwise_run.py", "tree"),
    "tree3": (".venv", "labelwise_run.py", "tree3"),
}
METRICS = ("p@1", "p@3", "p@5", "ndcg@5", "psp@5")
K = 5


def _csv(value: str, known) -> list[str]:
    names = [v for v in value.split(",") if v]
    bad = [v for v in names if v not in known]
    if bad:
        raise SystemExit(f"unknown {bad}; known: {', '.join(known)}")
    return names


def run_method(method: str, spec: tuple[str, str, str], folder: Path, workdir: Path, *,
               threads: int, timeout: float) -> dict:
    """Run one runner subprocess; return its record (timings, peak RSS, status)."""
    venv, script, variant = spec
    python = ROOT / venv / "bin" / "python"
    if venv == ".venv" and not python.exists():
        python = Path(sys.executable)  # labelwise's own: the interpreter running this script
    rec: dict = {"method": method, "venv": venv, "variant": variant}
    if not python.exists():
        rec.update(status="missing", error=f"{python} not found: run benchmarks/setup_peers.sh")
        return rec
    out = workdir / method
    cmd = [str(python), str(PEERS_DIR / script), "--train", str(folder / "train.txt"),
           "--test", str(folder / "test.txt"), "--out", str(out), "--threads", str(threads),
           "--k", str(K), "--workdir", str(workdir), "--variant", variant]
    # labelwise runs from this checkout's src (ahead of any installed copy)
    path = [str(PEERS_DIR)] + ([str(ROOT / "src")] if venv == ".venv" else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), PYTHONUNBUFFERED="1")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    log = workdir / f"{method}.log"
    t0 = time.perf_counter()
    with open(log, "wb") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env,
                                cwd=str(workdir), start_new_session=True)
        timed_out = False
        hwm_seen = 0.0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            hwm_seen = max(hwm_seen, _vm_hwm_mb(proc.pid))
            if time.perf_counter() - t0 > timeout:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
    rec["wall_s"] = time.perf_counter() - t0
    # ru_maxrss is floored at this process's RSS at the fork (Linux keeps it across exec):
    # kept for reference only; the peak is the runner's own VmHWM (see peers/_common.py),
    # or, for a run that never reported, the largest VmHWM seen while polling it
    rec["ru_maxrss_mb"] = usage.ru_maxrss / 1024.0
    rec["peak_rss_mb"] = hwm_seen
    tail = log.read_text(errors="replace")[-2000:]
    if timed_out:
        rec.update(status="timeout", error=f"killed after {timeout:.0f} s", log_tail=tail)
        return rec
    if proc.returncode != 0 or not (out.with_suffix(".json")).exists():
        last = [ln for ln in tail.splitlines() if ln.strip()][-1:] or [""]
        rec.update(status="failed", error=f"exit {proc.returncode}: {last[0][:200]}",
                   log_tail=tail)
        return rec
    info = json.loads(out.with_suffix(".json").read_text())
    rec.update(status="ok", **info)
    rec["peak_rss_mb"] = max(float(info["vm_hwm_mb"]), hwm_seen)
    with np.load(out.with_suffix(".npz"), allow_pickle=False) as z:
        rec["_labels"], rec["_scores"] = z["labels"], z["scores"]
    return rec


def _vm_hwm_mb(pid: int) -> float:
    """VmHWM (peak resident set of its own address space) of a running process, MB; 0 when
    it cannot be read (exited, or no /proc)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def topk_matrix(labels: np.ndarray, scores: np.ndarray, n_labels: int) -> sp.csr_matrix:
    """CSR (n, n_labels) of the runner's top-k (-1 entries are absent)."""
    n, k = labels.shape
    keep = labels >= 0
    if (labels >= n_labels).any():
        raise ValueError(f"a predicted label id is >= n_labels {n_labels}")
    counts = keep.sum(axis=1)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    S = sp.csr_matrix((scores[keep], labels[keep], indptr), shape=(n, n_labels))
    dup = S.copy()
    dup.sum_duplicates()
    if dup.nnz != S.nnz:
        raise ValueError("a row of predictions repeats a label")
    return S


def quality(rec: dict, Y_test: sp.csr_matrix, inv: np.ndarray) -> dict:
    from labelwise.metrics import ranking_metrics

    S = topk_matrix(rec.pop("_labels"), rec.pop("_scores"), Y_test.shape[1])
    m = ranking_metrics(Y_test, S, k=(1, 3, 5), propensity=1.0 / inv)
    return {name: 100.0 * float(m[name]) for name in METRICS}


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(dataset: str, recs: list[dict]) -> str:
    head = ("| dataset | method | train s | predict s | peak RSS MB | P@1 | P@3 | P@5 | nDCG@5 "
            "| PSP@5 | train / fastest peer | predict / fastest peer | RSS / leanest peer "
            "| P@1 / P@3 / P@5 - best peer |")
    lines = [head, "|" + "---|" * 14]
    peers = [r for r in recs if r["status"] == "ok" and r["method"] in PEERS]
    best = {m: max((r[m] for r in peers), default=None) for m in ("p@1", "p@3", "p@5")}
    fast_t = min((r["train_s"] for r in peers), default=None)
    fast_p = min((r["predict_s"] for r in peers), default=None)
    lean = min((r["peak_rss_mb"] for r in peers), default=None)
    for r in recs:
        if r["status"] != "ok":
            lines.append(f"| {dataset} | {r['method']} | {r['status']}: {r.get('error', '')} "
                         + "| " * 12 + "|")
            continue
        ratios = ["-"] * 4
        if peers:
            ratios = [f"{r['train_s'] / fast_t:.2f}x", f"{r['predict_s'] / fast_p:.2f}x",
                      f"{r['peak_rss_mb'] / lean:.2f}x",
                      " / ".join(f"{r[m] - best[m]:+.1f}" for m in ("p@1", "p@3", "p@5"))]
        lines.append(
            f"| {dataset} | {r['method']} | {r['train_s']:.2f} | {r['predict_s']:.2f} "
            f"| {r['peak_rss_mb']:.0f} | " + " | ".join(_fmt(r[m], ".2f") for m in METRICS)
            + " | " + " | ".join(ratios) + " |")
    cpu = [f"{r['method']} {r['train_cpu_s']:.2f} / {r['predict_cpu_s']:.2f}"
           for r in recs if r["status"] == "ok" and "train_cpu_s" in r]
    if cpu:
        lines.append("\nCPU s (train / predict, all threads): " + "; ".join(cpu))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="bibtex,delicious,cooking,synthetic")
    ap.add_argument("--peers", default=",".join(PEERS), help="comma list, '' for none")
    ap.add_argument("--labelwise", default="ovr,tree", help="comma list of ovr,tree,tree3 (LabelTree(n_trees=3)); '' for none")
    ap.add_argument("--quick", action="store_true",
                    help="synthetic-quick (30K labels, 20K rows) instead of synthetic")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default=str(data.DEFAULT_CACHE))
    ap.add_argument("--out", default=str(ROOT / "bench-results" / "xmc.json"))
    args = ap.parse_args(argv)
    datasets = _csv(args.datasets, data.DATASETS)
    if args.quick:
        datasets = ["synthetic-quick" if d == "synthetic" else d for d in datasets]
    import labelwise.models

    methods = {}
    for m in _csv(args.labelwise, LABELWISE):
        cls = {"ovr": "OneVsRest", "tree": "LabelTree", "tree3": "LabelTree"}[m]
        if hasattr(labelwise.models, cls):
            methods[f"labelwise-{m}"] = LABELWISE[m]
        else:
            print(f"[xmc] labelwise.models has no {cls}: labelwise-{m} skipped", file=sys.stderr)
    methods.update({m: PEERS[m] for m in _csv(args.peers, PEERS)})

    from labelwise.io.xc import read_xc
    from labelwise.metrics import inverse_propensities

    results = {"command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "threads": args.threads,
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                           "python": platform.python_version()},
               "datasets": {}, "runs": []}
    tables = []
    for name in datasets:
        folder = data.prepare(name, args.cache)
        meta = json.loads((folder / "meta.json").read_text())
        Y_train = read_xc(folder / "train.txt", index_base=0).Y
        Y_test = read_xc(folder / "test.txt", index_base=0).Y
        inv = inverse_propensities(Y_train, meta["propensity"])
        results["datasets"][name] = meta
        recs = []
        with tempfile.TemporaryDirectory(prefix=f"xmc-{name}-") as tmp:
            for method, spec in methods.items():
                print(f"[xmc] {name} / {method} ...", file=sys.stderr, flush=True)
                rec = run_method(method, spec, folder, Path(tmp), threads=args.threads,
                                 timeout=args.timeout)
                rec["dataset"] = name
                if rec["status"] == "ok":
                    rec.update(quality(rec, Y_test, inv))
                    print(f"[xmc]   train {rec['train_s']:.2f} s, predict {rec['predict_s']:.2f}"
                          f" s, RSS {rec['peak_rss_mb']:.0f} MB, P@1 {rec['p@1']:.2f}",
                          file=sys.stderr, flush=True)
                else:
                    print(f"[xmc]   {rec['status']}: {rec.get('error')}\n"
                          f"{rec.get('log_tail', '')[-600:]}", file=sys.stderr, flush=True)
                recs.append(rec)
        results["runs"].extend(recs)
        tables.append(table(name, recs))
        print(tables[-1] + "\n", flush=True)
    results["tables"] = tables
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from labelwise.atomic import atomic_write

    with atomic_write(out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    print(f"[xmc] results: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
