"""SetFit beside labelwise's zero-shot and few-shot, with the same encoder and the same splits.

``run_setfit(dataset_name, k)`` (from the main venv) builds a job for
``benchmarks/setfit_peer.py``, runs it inside ``.venv-peers-setfit`` (``bash
benchmarks/setup_peers.sh setfit``) and returns one record shaped like benchmarks/text.py's:
micro-F1, macro-F1, micro-F1 of the macro policy (thresholds tuned per label on the tuning
split by text.py's ``tuned_scores``, on SetFit's ``predict_proba``), train time and
prediction throughput.

``k=0`` is SetFit's zero-shot recipe (templated label-name examples); ``k > 0`` uses the
training rows text.py's ``shots_rows(Y, k, seed=0)`` picks for fewshot-K (for each label in
turn, k random rows holding it; rows keep all their labels), so SetFit and labelwise's
FewShot see the very same examples. Splits come from text.py's ``load_splits`` (GoEmotions:
dev tunes; Reuters: 15 % of train held out by iterative stratification, seed 0).

Texts travel as JSON lines in ``work_dir`` (default ``bench-data/setfit/<dataset>``):
``tune.jsonl``, ``test.jsonl`` and ``train-<k>.jsonl``; SetFit's probabilities come back
as ``.npy`` files.

CLI: ``python benchmarks/setfit_bench.py goemotions --shots 0,8,16,32 [--threads 2]
[--num-iterations 20] [--max-seq-length 128] [--out bench-results/setfit-goemotions.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEER_PY = ROOT / ".venv-peers-setfit" / "bin" / "python"


def _text_module():
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import text  # benchmarks/text.py

    return text


def _write_jsonl(path: Path, rows) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def label_names(labels) -> list[str]:
    """Label names as text (``_`` and ``-`` read as spaces, as labelwise's ZeroShot does)."""
    return [n.replace("_", " ").replace("-", " ").strip() or n for n in labels.names]


_SPLITS: dict[str, tuple] = {}


def splits(name: str):
    if name not in _SPLITS:
        _SPLITS[name] = _text_module().load_splits(name)
    return _SPLITS[name]


def run_setfit(dataset_name: str, k: int, *, threads: int = 2, num_iterations: int = 20,
               num_epochs: int = 1, batch_size: int = 16, seed: int = 0,
               max_seq_length: int | None = None,
               work_dir: str | os.PathLike[str] | None = None,
               timeout: float | None = None) -> dict:
    """Train and score SetFit on ``dataset_name`` with k examples per label (0: zero-shot).

    ``max_seq_length`` truncates the encoder's input (None: the encoder's own, 256 tokens
    for all-MiniLM-L6-v2). The peer's progress bars go to ``work_dir/log-<method>.txt``.
    """
    if not PEER_PY.exists():
        raise FileNotFoundError(f"{PEER_PY} is missing: run bash benchmarks/setup_peers.sh setfit")
    text = _text_module()
    train, tune, test = splits(dataset_name)
    L = len(train.labels)
    wd = Path(work_dir) if work_dir is not None else ROOT / "bench-data" / "setfit" / dataset_name
    wd.mkdir(parents=True, exist_ok=True)
    for part, ds in (("tune", tune), ("test", test)):
        p = wd / f"{part}.jsonl"
        if not p.exists():
            _write_jsonl(p, ({"text": t} for t in ds.X))
    job: dict = {"encoder": None, "label_names": label_names(train.labels),
                 "predict": {"tune": str(wd / "tune.jsonl"), "test": str(wd / "test.jsonl")},
                 "threads": threads, "seed": seed, "num_iterations": num_iterations,
                 "num_epochs": num_epochs, "batch_size": batch_size,
                 "max_seq_length": max_seq_length, "progress": True}
    if k > 0:
        rows = text.shots_rows(train.Y, k, seed=0)
        Yr = train.Y[rows]
        p = wd / f"train-{k}.jsonl"
        _write_jsonl(p, ({"text": train.X[int(i)],
                          "labels": Yr.indices[Yr.indptr[r]:Yr.indptr[r + 1]].tolist()}
                         for r, i in enumerate(rows)))
        job.update(mode="fewshot", train=str(p))
        method = f"setfit-{k}"
    else:
        # SetFit's zero-shot how-to: 8 templated examples per label, one epoch
        job.update(mode="zeroshot", template="This sentence is {}", sample_size=8,
                   batch_size=32 if batch_size == 16 else batch_size)
        method = "setfit-zeroshot"
    out = wd / f"out-{method}"
    job["out_dir"] = str(out)
    job_path = wd / f"job-{method}.json"
    job_path.write_text(json.dumps(job, indent=1) + "\n", encoding="utf-8")
    log_path = wd / f"log-{method}.txt"
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run([str(PEER_PY), str(HERE / "setfit_peer.py"), str(job_path)],
                              stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        raise RuntimeError(f"SetFit peer failed ({proc.returncode}), {log_path}:\n{tail}")
    rec = json.loads((out / "record.json").read_text(encoding="utf-8"))
    P_tune = np.load(out / "tune.npy", allow_pickle=False)
    P_test = np.load(out / "test.npy", allow_pickle=False)
    if P_tune.shape != (tune.n_samples, L) or P_test.shape != (test.n_samples, L):
        raise RuntimeError(f"unexpected probability shapes {P_tune.shape}, {P_test.shape}")
    r = text.tuned_scores(P_tune, tune.Y, P_test, test.Y)
    r.update(train_s=rec["train_s"],
             predict_per_s=round(test.n_samples / rec["predict_s"]["test"], 1),
             n_examples=int(rec["n_train"]), num_iterations=rec["num_iterations"],
             num_epochs=rec["num_epochs"], batch_size=rec["batch_size"], threads=threads,
             max_seq_length=rec["max_seq_length"], wall_s=round(wall, 1),
             setfit=rec["setfit"], torch=rec["torch"])
    return {"method": method, **r}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", choices=["goemotions", "reuters21578"])
    ap.add_argument("--shots", default="0,8,16,32", help="0 = zero-shot")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--num-iterations", type=int, default=20)
    ap.add_argument("--max-seq-length", type=int, default=None,
                    help="encoder input length in tokens (default: the encoder's, 256)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    results = {}
    for k in (int(s) for s in args.shots.split(",") if s):
        r = run_setfit(args.dataset, k, threads=args.threads,
                       num_iterations=args.num_iterations,
                       max_seq_length=args.max_seq_length)
        results[r.pop("method")] = r
        print(f"{args.dataset:14s} {'setfit-' + (str(k) if k else 'zeroshot'):16s} "
              f"{json.dumps(r)}", flush=True)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({args.dataset: results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
