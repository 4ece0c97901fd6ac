"""Text in, labels out: every labelwise text model on GoEmotions and Reuters-21578 in one run.

Datasets (``labelwise.datasets.load``; set ``LABELWISE_DATASETS_MIRROR=/work/shared/datasets``
to read the local copies):

goemotions
    28 labels (27 emotions + neutral), the official train / dev / test split
    (43,410 / 5,426 / 5,427 Reddit comments). Thresholds are tuned on dev.
reuters21578
    ModApte, the 90 topics with a training and a test document (R90). It has no dev split:
    15 % of the training documents, drawn by iterative stratification (seed 0), are held out
    for threshold tuning and every model is trained on the other 85 %.

Methods (each scored on the test split after per-label thresholds tuned on the tuning split
by ``labelwise.decision.PerLabelThreshold``: one policy fitted for macro-F1 and one for
micro-F1, shrinkage 10, on the model's raw scores with k = n_labels):

tfidf-ovr
    ``labelwise.features.Tfidf`` (word 1-2-grams, sublinear tf, min_df 2) fitted on the
    training texts + ``OneVsRest`` (squared hinge, C = 1).
emb-mlp
    ``SentenceEmbeddings`` (the shipped all-MiniLM-L6-v2, unit vectors, on-disk cache) +
    ``labelwise.models.neural.MLPHead`` (one hidden layer of 512, dropout 0.1, BCE, AdamW
    lr 1e-3, batch 64, at most 40 epochs, early stopping on a 10 % iterative-stratified
    validation split of the training rows, patience 3).
zeroshot
    ``ZeroShot`` on the label names (no training data; thresholds still tuned on the
    tuning split, like every method).
fewshot-K (K = 8, 16, 32)
    ``FewShot`` on K training examples per label (for each label in turn, K random training
    rows holding it are added, seed 0; rows keep all their labels), name blending and
    leave-one-out calibration at their defaults.
finetune (``--finetune``; long)
    ``labelwise.models.neural.FineTuned`` (all-MiniLM-L6-v2, mean pooling, linear head, BCE,
    AdamW lr 5e-5 / head 1e-3, 10 % warm-up then linear decay, batch 16, max_seq_length 64,
    ``--finetune-epochs`` epochs, early stopping on a 10 % validation split).
    ``--time-steps N`` instead times N optimiser steps on the training texts and reports
    seconds per step and the extrapolated time per epoch (no scores).

Reported per (dataset, method): micro-F1 (micro policy), macro-F1 (macro policy), micro-F1
of the macro policy, train time in seconds (featurization of the training texts included for
tf-idf; embeddings are read from the cache and their one-off encoding time is reported
separately as ``embed_s`` of the training texts), prediction throughput in items/s of the
model on ready features (``predict_per_s``), and for embedding methods the encoder's
throughput on 256 uncached test texts (``encode_per_s``).

Run: ``LABELWISE_DATASETS_MIRROR=/work/shared/datasets python benchmarks/text.py
[--datasets goemotions,reuters21578] [--methods tfidf-ovr,emb-mlp,zeroshot,fewshot]
[--finetune] [--time-steps 200] [--threads 2] [--out bench-results/text.json]``.
SetFit is not run by this script (see the report of issue 6).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ALL_METHODS = ("tfidf-ovr", "emb-mlp", "zeroshot", "fewshot")
SHOTS = (8, 16, 32)


# ---------------------------------------------------------------------------- data
def load_splits(name: str):
    """(train, tune, test) Datasets; see the module docstring for the tuning split."""
    from labelwise import Dataset
    from labelwise.datasets import load
    from labelwise.split import IterativeStratifiedShuffleSplit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Reuters: one document lists a topic twice (counted)
        train = load(name, split="train")
        test = load(name, split="test")
        if name == "goemotions":
            return train, load(name, split="dev"), test
    cv = IterativeStratifiedShuffleSplit(n_splits=1, test_size=0.15, random_state=0)
    tr, tu = next(cv.split(None, train.Y))
    tr, tu = np.sort(tr), np.sort(tu)

    def part(rows):
        return Dataset([train.X[i] for i in rows], train.Y[rows], train.labels)

    return part(tr), part(tu), test


def embed(texts, *, threads: int):
    import torch

    from labelwise.features import SentenceEmbeddings

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    E = SentenceEmbeddings(progress=sys.stderr.isatty()).transform(list(texts))
    return E, time.perf_counter() - t0


def encode_rate(texts, *, threads: int, n: int = 256) -> float:
    import torch

    from labelwise.features import SentenceEmbeddings

    torch.set_num_threads(threads)
    sample = list(texts)[:n]
    t0 = time.perf_counter()
    SentenceEmbeddings(cache=False).transform(sample)
    return len(sample) / (time.perf_counter() - t0)


# ---------------------------------------------------------------------------- scoring
def tuned_scores(S_tune, Y_tune, S_test, Y_test) -> dict:
    from labelwise.decision import PerLabelThreshold
    from labelwise.metrics import LabelSets, f1_score

    macro = PerLabelThreshold(objective="macro-f1").fit(S_tune, Y_tune)
    micro = PerLabelThreshold(objective="micro-f1").fit(S_tune, Y_tune)
    P_macro, P_micro = LabelSets(macro.apply(S_test)), LabelSets(micro.apply(S_test))
    return {"macro_f1": float(f1_score(Y_test, P_macro, average="macro")),
            "micro_f1": float(f1_score(Y_test, P_micro, average="micro")),
            "micro_f1_of_macro_policy": float(f1_score(Y_test, P_macro, average="micro"))}


def run_model(model, fit_args, X_tune, Y_tune, X_test, Y_test, L) -> dict:
    t0 = time.perf_counter()
    model.fit(*fit_args)
    train_s = time.perf_counter() - t0
    S_tune = model.decision_function(X_tune, k=L)
    t0 = time.perf_counter()
    S_test = model.decision_function(X_test, k=L)
    pred_s = time.perf_counter() - t0
    out = tuned_scores(S_tune, Y_tune, S_test, Y_test)
    out.update(train_s=round(train_s, 2), predict_per_s=round(Y_test.shape[0] / pred_s, 1))
    return out


def shots_rows(Y: sp.csr_matrix, k: int, seed: int = 0) -> np.ndarray:
    """Rows giving each label up to k examples: per label, k random rows holding it."""
    rng = np.random.default_rng(seed)
    Yc = sp.csc_matrix(Y)
    chosen: set[int] = set()
    for j in range(Y.shape[1]):
        rows = Yc.indices[Yc.indptr[j]:Yc.indptr[j + 1]]
        have = sum(1 for r in rows if int(r) in chosen)
        rest = [int(r) for r in rows if int(r) not in chosen]
        take = max(0, min(k - have, len(rest)))
        chosen.update(rng.choice(rest, take, replace=False).tolist() if take else [])
    return np.array(sorted(chosen), dtype=np.int64)


# ---------------------------------------------------------------------------- methods
def bench_dataset(name: str, methods: list[str], args) -> dict:
    from labelwise.models import FewShot, OneVsRest, ZeroShot
    from labelwise.models.neural import FineTuned, MLPHead

    train, tune, test = load_splits(name)
    L = len(train.labels)
    res: dict = {"n_train": train.n_samples, "n_tune": tune.n_samples,
                 "n_test": test.n_samples, "n_labels": L, "methods": {}}
    log = lambda m, r: print(f"{name:14s} {m:12s} {json.dumps(r)}", flush=True)  # noqa: E731

    if "tfidf-ovr" in methods:
        from labelwise.features import Tfidf

        t0 = time.perf_counter()
        tf = Tfidf(ngram_range=(1, 2), min_df=2).fit(train.X)
        Xtr, Xtu, Xte = tf.transform(train.X), tf.transform(tune.X), tf.transform(test.X)
        feat_s = time.perf_counter() - t0
        r = run_model(OneVsRest(C=1.0, n_threads=args.threads, random_state=0),
                      (Xtr, train.Y), Xtu, tune.Y, Xte, test.Y, L)
        r["train_s"] = round(r["train_s"] + feat_s, 2)
        res["methods"]["tfidf-ovr"] = r
        log("tfidf-ovr", r)

    need_emb = any(m in methods for m in ("emb-mlp", "zeroshot", "fewshot"))
    if need_emb:
        Etr, embed_s = embed(train.X, threads=args.threads)
        Etu, _ = embed(tune.X, threads=args.threads)
        Ete, _ = embed(test.X, threads=args.threads)
        res["embed_train_s"] = round(embed_s, 1)
        res["encode_per_s"] = round(encode_rate(test.X, threads=args.threads), 1)

    if "emb-mlp" in methods:
        mlp = MLPHead(hidden_sizes=(512,), dropout=0.1, epochs=40, patience=3,
                      n_threads=args.threads, random_state=0)
        r = run_model(mlp, (Etr, train.Y), Etu, tune.Y, Ete, test.Y, L)
        r["epochs_run"] = len(mlp.history_["train_loss"])
        r["best_epoch"] = mlp.history_["best_epoch"] + 1
        res["methods"]["emb-mlp"] = r
        log("emb-mlp", r)

    if "zeroshot" in methods:
        zs = ZeroShot()
        t0 = time.perf_counter()
        zs.fit(labels=train.labels)
        fit_s = time.perf_counter() - t0
        S_tu = zs.decision_function(Etu, k=L)
        t0 = time.perf_counter()
        S_te = zs.decision_function(Ete, k=L)
        pred_s = time.perf_counter() - t0
        r = tuned_scores(S_tu, tune.Y, S_te, test.Y)
        r.update(train_s=round(fit_s, 2), predict_per_s=round(test.n_samples / pred_s, 1))
        res["methods"]["zeroshot"] = r
        log("zeroshot", r)

    if "fewshot" in methods:
        for k in args.shots:
            rows = shots_rows(train.Y, k)
            fs = FewShot()
            t0 = time.perf_counter()
            fs.fit(Etr[rows], train.Y[rows], labels=train.labels)
            fit_s = time.perf_counter() - t0
            S_tu = fs.decision_function(Etu, k=L)
            t0 = time.perf_counter()
            S_te = fs.decision_function(Ete, k=L)
            pred_s = time.perf_counter() - t0
            r = tuned_scores(S_tu, tune.Y, S_te, test.Y)
            r.update(train_s=round(fit_s, 2), predict_per_s=round(test.n_samples / pred_s, 1),
                     n_examples=int(rows.size))
            res["methods"][f"fewshot-{k}"] = r
            log(f"fewshot-{k}", r)

    if args.time_steps:
        ft = FineTuned(max_seq_length=args.max_seq_length, batch_size=16,
                       max_steps=args.time_steps, early_stopping=False,
                       n_threads=args.threads, random_state=0)
        t0, c0 = time.perf_counter(), time.process_time()
        ft.fit(train.X, train.Y, labels=train.labels)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        per_step = dt / ft.history_["steps"]
        steps_per_epoch = -(-int(train.n_samples * 0.9) // 16)
        r = {"steps": ft.history_["steps"], "seconds": round(dt, 1), "cpu_seconds": round(cpu, 1),
             "load_avg_1min": round(os.getloadavg()[0], 1),
             "s_per_step": round(per_step, 3), "steps_per_epoch": steps_per_epoch,
             "est_epoch_min": round(per_step * steps_per_epoch / 60, 1),
             "first_10_step_loss": float(np.mean(ft.history_["step_loss"][:10])),
             "last_10_step_loss": float(np.mean(ft.history_["step_loss"][-10:]))}
        res["methods"]["finetune-timing"] = r
        log("finetune-timing", r)

    if args.finetune:
        ft = FineTuned(max_seq_length=args.max_seq_length, batch_size=16,
                       epochs=args.finetune_epochs, n_threads=args.threads, random_state=0)
        r = run_model(ft, (train.X, train.Y), list(tune.X), tune.Y, list(test.X), test.Y, L)
        r["epochs_run"] = len(ft.history_["train_loss"])
        res["methods"]["finetune"] = r
        log("finetune", r)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="goemotions,reuters21578")
    ap.add_argument("--methods", default=",".join(ALL_METHODS))
    ap.add_argument("--shots", default=",".join(map(str, SHOTS)))
    ap.add_argument("--finetune", action="store_true", help="fine-tune the encoder (long)")
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--time-steps", type=int, default=0,
                    help="time this many fine-tuning steps (0: skip)")
    ap.add_argument("--max-seq-length", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    args.shots = [int(s) for s in args.shots.split(",") if s]
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(ALL_METHODS))
    if unknown:
        ap.error(f"unknown methods {unknown}; known: {', '.join(ALL_METHODS)}")
    results = {}
    for name in args.datasets.split(","):
        results[name] = bench_dataset(name, methods, args)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
