"""LabelAttention (label queries over MiniLM token states) against MiniLM embeddings + a linear
model, on a GoEmotions subsample.

Data: GoEmotions (28 labels; ``labelwise.datasets.load``, set
``LABELWISE_DATASETS_MIRROR=/work/shared/datasets``): ``--n-train`` rows drawn at random (seed
0) from the train split, ``--n-tune`` from dev (the tuning split) and ``--n-test`` from test.
Every method is scored as in ``benchmarks/text.py``: per-label thresholds
(``PerLabelThreshold``, one policy for macro-F1 and one for micro-F1) tuned on the tuning
rows' scores, applied to the test rows.

Methods:

emb-linear-C
    ``SentenceEmbeddings`` (the shipped all-MiniLM-L6-v2, max_seq_length 128, unit vectors,
    cache in a scratch folder so it is encoded here) + ``OneVsRest`` (squared hinge) at
    C = ``--linear-c`` (each a row). ``train_s`` is the model fit; ``encode_s`` (per dataset)
    the one-off encoding of the training texts.
attention-*
    ``LabelAttention`` (d_model 256, 4 heads, feed-forward 512, one query per label, AdamW lr
    1e-3, batch 64, at most ``--epochs`` epochs, early stopping on a 10 % validation split,
    patience 3) on the token states of the same encoder (max_seq_length 128), computed once
    (``token_encode_s``) and shared by the variants: ``attention-bce`` (defaults),
    ``attention-asl`` (asymmetric loss gamma_neg 4, clip 0.05), ``attention-balanced``
    (BCE, label_weights="balanced", ML-ROS 25 %). ``train_s`` is the head's training.

Run: ``LABELWISE_DATASETS_MIRROR=/work/shared/datasets python benchmarks/attention.py
--n-train 6000 --n-tune 1500 --n-test 2000 --threads 2 --out bench-results/attention.json``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _sample(ds, n: int, seed: int):
    from labelwise import Dataset

    rows = np.sort(np.random.default_rng(seed).choice(ds.n_samples, min(n, ds.n_samples),
                                                      replace=False))
    return Dataset([ds.X[i] for i in rows], ds.Y[rows], ds.labels)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=6000)
    p.add_argument("--n-tune", type=int, default=1500)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--linear-c", default="0.3,1,3")
    p.add_argument("--methods", default="emb-linear,attention-bce,attention-asl,"
                                        "attention-balanced")
    p.add_argument("--out", default=None)
    p.add_argument("--states-dir", default=None,
                   help="keep the token states of the sampled rows here (.npz) and reuse them")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="LabelAttention parameter for every attention variant")
    args = p.parse_args(argv)

    import torch

    from labelwise.datasets import load
    from labelwise.features import SentenceEmbeddings
    from labelwise.models import OneVsRest
    from labelwise.models.neural import LabelAttention
    from text import tuned_scores

    torch.set_num_threads(args.threads)
    train = _sample(load("goemotions", split="train"), args.n_train, 0)
    tune = _sample(load("goemotions", split="dev"), args.n_tune, 1)
    test = _sample(load("goemotions", split="test"), args.n_test, 2)
    L = len(train.labels)
    methods = args.methods.split(",")
    results: dict = {"setup": {"n_train": train.n_samples, "n_tune": tune.n_samples,
                               "n_test": test.n_samples, "threads": args.threads}}

    def score(model, X_tune, X_test, train_s):
        S_tune = model.decision_function(X_tune, k=L)
        t0 = time.perf_counter()
        S_test = model.decision_function(X_test, k=L)
        pred_s = time.perf_counter() - t0
        r = tuned_scores(S_tune, tune.Y, S_test, test.Y)
        r.update(train_s=round(train_s, 2), predict_per_s=round(test.n_samples / pred_s, 1))
        return r

    if "emb-linear" in methods:
        with tempfile.TemporaryDirectory() as cache:
            feat = SentenceEmbeddings(max_seq_length=128, cache_dir=cache, progress=False)
            t0 = time.perf_counter()
            Etr = feat.transform(list(train.X))
            results["setup"]["encode_s"] = round(time.perf_counter() - t0, 1)
            Etu, Ete = feat.transform(list(tune.X)), feat.transform(list(test.X))
        for c in args.linear_c.split(","):
            c0 = time.process_time()
            t0 = time.perf_counter()
            m = OneVsRest(C=float(c), n_threads=args.threads, random_state=0).fit(Etr, train.Y)
            cpu = time.process_time() - c0
            results[f"emb-linear-C{c}"] = score(m, Etu, Ete, time.perf_counter() - t0)
            results[f"emb-linear-C{c}"]["train_cpu_s"] = round(cpu, 1)
            print(f"emb-linear-C{c}", results[f"emb-linear-C{c}"], flush=True)

    variants = {"attention-bce": {}, "attention-asl": {"loss": "asl"},
                "attention-balanced": {"label_weights": "balanced", "resample": "ml-ros"}}
    todo = [v for v in variants if v in methods]
    if todo:
        enc = LabelAttention(max_seq_length=128, n_threads=args.threads)

        def states(part, ds):
            from labelwise.models.neural import TokenStates

            path = None if args.states_dir is None else Path(args.states_dir) / (
                f"{part}-{ds.n_samples}.npz")
            if path is not None and path.is_file():
                z = np.load(path, allow_pickle=False)
                return TokenStates(z["H"], z["offsets"], json.loads(str(z["encoder"])))
            t0 = time.perf_counter()
            out = enc.encode(list(ds.X))
            if part == "train":
                results["setup"]["token_encode_s"] = round(time.perf_counter() - t0, 1)
                results["setup"]["token_encode_cpu_s"] = round(time.process_time() - c0, 1)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savez(path, H=out.H, offsets=out.offsets, encoder=json.dumps(out.encoder))
            return out

        c0 = time.process_time()
        Htr = states("train", train)
        results["setup"]["mean_tokens"] = round(float(Htr.lengths.mean()), 1)
        Htu, Hte = states("tune", tune), states("test", test)
        extra = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
        for name in todo:
            m = LabelAttention(**{"max_seq_length": 128, "epochs": args.epochs,
                                  "n_threads": args.threads, "random_state": 0,
                                  **variants[name], **extra})
            c0 = time.process_time()
            t0 = time.perf_counter()
            m.fit(Htr, train.Y, labels=train.labels)
            cpu = time.process_time() - c0
            r = score(m, Htu, Hte, time.perf_counter() - t0)
            r.update(train_cpu_s=round(cpu, 1),
                     epochs_run=len(m.history_["train_loss"]),
                     best_epoch=m.history_["best_epoch"] + 1)
            results[name] = r
            print(name, r, flush=True)
    print(json.dumps(results, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
