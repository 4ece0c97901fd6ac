"""Text in, labels out: every labelwise text model on GoEmotions and Reuters-21578 in one run.

Datasets (``labelwise.datasets.load``; set ``LABELWISE_DATASETS_MIRROR=/work/shared/datasets``
to read the local copies):

goemotions
    28 labels (27 emotions + neutral), the official train / dev / test split (43,410 / 5,426
    / 5,427 Reddit comments). The tuning split is dev; the training rows are train.
reuters21578
    ModApte, the 90 topics with a training and a test document (R90: 7,770 training and
    3,019 test documents with at least one topic). There is no dev split: 15 % of the
    training documents, drawn by iterative stratification (seed 0), form the tuning split and
    every method trains on the other 85 %, except tfidf-linear, which chooses everything by
    cross-validation and so trains on all 7,770.

Methods (``METHODS`` maps a name to a runner; ``--methods`` picks them; a runner returns one
or more result rows, e.g. ``fewshot`` gives ``fewshot-8/16/32``). Unless said otherwise the
test split is scored after per-label thresholds tuned on the tuning split by
``labelwise.decision.PerLabelThreshold`` on the raw scores (k = n_labels): one policy fitted
for macro-F1 and one for micro-F1, shrinkage 10.

tfidf-linear
    ``labelwise.features.Tfidf`` (word 1-2-grams, sublinear tf, min_df 2) fitted on the
    training rows + ``OneVsRest``: loss/C (squared hinge C = 0.1, 0.3, 1; logistic C = 1),
    the macro- and micro-F1 threshold shrinkage (0, 3, 10, 30) and the thresholds themselves
    all chosen by 5-fold iterative-stratified cross-validation on the training rows only
    (``benchmarks/text_linear.py``; the tuning split is not used). Train time counts
    featurization, the whole selection and the final fit.
fused-linear
    ``labelwise.features.Fusion`` of that Tfidf and the sentence embeddings (each block
    L2-normalised; embedding block weight ``--fusion-weight``, default 1) + ``OneVsRest``
    (squared hinge, C = 0.1 or 0.3). The dense block makes each fit ~10x slower than on
    tf-idf alone, so the choices are made on the tuning split instead of by
    cross-validation (``text_linear.select_on_tuning``): each C fitted once on the training
    split; C and the shrinkages chosen by 5-fold cross-validated F1 of thresholds on the
    tuning scores; thresholds fitted on the whole tuning split. Train time counts tf-idf
    fitting, reading the embeddings from the cache and the selection; the one-off encoding
    of the texts is ``embed_train_s``.
emb-mlp
    ``SentenceEmbeddings`` (the shipped all-MiniLM-L6-v2, max_seq_length 256, unit vectors,
    on-disk cache) + ``labelwise.models.neural.MLPHead`` (one hidden layer of 512, dropout
    0.1, BCE, AdamW lr 1e-3, batch 64, at most 40 epochs, early stopping on a 10 %
    iterative-stratified validation split of the training rows, patience 3).
zeroshot
    ``ZeroShot`` on the label names (no training data; thresholds still tuned on the
    tuning split, like every method).
fewshot (rows fewshot-K, K = 8, 16, 32)
    ``FewShot`` on K training examples per label (for each label in turn, K random training
    rows holding it are added, seed 0; rows keep all their labels), name blending and
    leave-one-out calibration at their defaults.
fewshot-finetune (rows fewshot-finetune-K)
    ``labelwise.models.neural.FineTunedFewShot`` on the very rows fewshot-K gets: the FewShot
    model of those rows becomes the starting head (unit-length mean pooling, weights =
    centred prototypes / temperature), then the encoder and head are fine-tuned on the same
    rows (BCE, AdamW lr 2e-4 / head 1e-3, 10 epochs, batch 16, no early stopping, 10 %
    warm-up; max_seq_length as finetune's). Train time counts the starting FewShot model's
    encoding and the fine-tuning; ``predict_per_s`` is on raw texts (it encodes them).
finetune
    ``labelwise.models.neural.FineTuned`` (all-MiniLM-L6-v2, mean pooling, linear head, BCE,
    AdamW lr 5e-5 / head 1e-3, 10 % warm-up then linear decay to 0 at the last step, batch
    16, max_seq_length 64 on GoEmotions and 128 on Reuters, no early stopping) under a
    wall-clock budget of ``--finetune-minutes`` (default 25) per dataset for its training
    steps (``FineTuned(max_time=...)``: the learning rate decays to 0 as the budget is spent,
    at most ``--finetune-epochs`` epochs). ``--finetune-steps N`` runs N steps instead
    (deterministic; a time budget gives as many steps as the machine's load allows).
setfit
    SetFit (``benchmarks/setfit_bench.py``, in its own virtualenv: ``bash
    benchmarks/setup_peers.sh setfit``) with the same encoder folder: zero-shot from templated
    label names (``setfit-0``) and k-shot on the very rows fewshot-K gets, its input cut at
    fewshot-finetune's max_seq_length, thresholds tuned like every method. Slow on a CPU: its contrastive pairs take hours at k = 32 here.

Reported per (dataset, method): ``micro_f1`` (micro policy), ``macro_f1`` (macro policy),
``micro_f1_of_macro_policy``, ``train_s`` (seconds, see each method), ``predict_per_s``
(items/s of the model on ready features: tf-idf or cached embeddings; for ``finetune`` on
raw texts), for tf-idf methods ``featurize_per_s`` (test texts/s through the fitted
featurizer), and per dataset ``embed_train_s`` (one-off encoding of the training texts, or
the cache read when they are cached) and ``encode_per_s`` (encoder throughput on 256
uncached test texts). The markdown table at the end lists every row.

Run: ``LABELWISE_DATASETS_MIRROR=/work/shared/datasets LABELWISE_CACHE_HOME=/tmp/fz/cache
python benchmarks/text.py [--datasets goemotions,reuters21578] [--methods
tfidf-linear,fused-linear,emb-mlp,zeroshot,fewshot,fewshot-finetune,finetune,setfit]
[--finetune-minutes 25]
[--threads 2] [--out bench-results/text.json] [--update]``. ``--update`` keeps the rows
already in ``--out`` and replaces only those re-run (one method group re-run later). SetFit
runs in its own environment (``benchmarks/setfit_peer.py``); its rows can be added as
another entry of ``METHODS``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import text_linear  # noqa: E402

SHOTS = (8, 16, 32)
FINETUNE_SEQ = {"goemotions": 64, "reuters21578": 128}
FUSED_GRID = (("squared_hinge", 0.1), ("squared_hinge", 0.3))


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


class Bench:
    """One dataset's splits, options and lazily computed sentence embeddings."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name, self.args = name, args
        self.train, self.tune, self.test = load_splits(name)
        self.L = len(self.train.labels)
        self.extra: dict = {}  # per-dataset figures (embedding times)
        self._emb: dict[str, np.ndarray] = {}

    def full(self) -> tuple[list[str], sp.csr_matrix]:
        """All training rows: GoEmotions' train split; Reuters' train + tuning parts."""
        if self.name == "goemotions":
            return list(self.train.X), self.train.Y
        return list(self.train.X) + list(self.tune.X), sp.vstack([self.train.Y, self.tune.Y],
                                                                 format="csr")

    def featurizer(self):
        from labelwise.features import SentenceEmbeddings

        return SentenceEmbeddings(cache_dir=self.args.cache_dir, progress=sys.stderr.isatty())

    def emb(self, part: str) -> np.ndarray:
        """Embeddings of 'train', 'tune' or 'test' (through the on-disk cache)."""
        if part not in self._emb:
            import torch

            torch.set_num_threads(self.args.threads)
            t0 = time.perf_counter()
            self._emb[part] = self.featurizer().transform(list(getattr(self, part).X))
            if part == "train":
                self.extra["embed_train_s"] = round(time.perf_counter() - t0, 1)
                self.extra["encode_per_s"] = round(self.encode_rate(), 1)
        return self._emb[part]

    def encode_rate(self, n: int = 256) -> float:
        from labelwise.features import SentenceEmbeddings

        sample = list(self.test.X)[:n]
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


def score_fitted(b: Bench, model, X_tune, X_test, train_s: float) -> dict:
    """Thresholds tuned on the tuning split, applied to the test split (module docstring)."""
    S_tune = model.decision_function(X_tune, k=b.L)
    t0 = time.perf_counter()
    S_test = model.decision_function(X_test, k=b.L)
    pred_s = time.perf_counter() - t0
    out = tuned_scores(S_tune, b.tune.Y, S_test, b.test.Y)
    out.update(train_s=round(train_s, 2), predict_per_s=round(b.test.n_samples / pred_s, 1))
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
def linear_rows(b: Bench, featurizer, grid) -> dict:
    texts, Y = b.full()
    Xtr, Xte, feat_s, feat_per_s = text_linear.featurize(featurizer, texts, list(b.test.X))
    model, macro, micro, info = text_linear.select_and_fit(Xtr, Y, grid=grid,
                                                           n_threads=b.args.threads)
    r = text_linear.evaluate(model, macro, micro, Xte, b.test.Y)
    r.update(train_s=round(feat_s + info["selection_s"] + info["fit_s"], 2),
             featurize_s=round(feat_s, 1), featurize_per_s=feat_per_s, n_train=len(texts),
             selection=info)
    return r


def run_tfidf_linear(b: Bench) -> dict:
    from labelwise.features import Tfidf

    tf = Tfidf(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    return {"tfidf-linear": linear_rows(b, tf, text_linear.GRID)}


def run_fused_linear(b: Bench) -> dict:
    from labelwise.features import Fusion, Tfidf

    b.emb("train")  # encode (or read) once; the Fusion transform then reads the cache
    fz = Fusion([("tfidf", Tfidf(ngram_range=(1, 2), min_df=2, sublinear_tf=True)),
                 ("emb", b.featurizer(), b.args.fusion_weight)])
    Xtr, Xte, feat_s, feat_per_s = text_linear.featurize(fz, list(b.train.X), list(b.test.X))
    t0 = time.perf_counter()
    Xtu = fz.transform(list(b.tune.X))
    feat_s += time.perf_counter() - t0
    model, macro, micro, info = text_linear.select_on_tuning(
        Xtr, b.train.Y, Xtu, b.tune.Y, grid=FUSED_GRID, n_threads=b.args.threads)
    r = text_linear.evaluate(model, macro, micro, Xte, b.test.Y)
    r.update(train_s=round(feat_s + info["selection_s"], 2), featurize_s=round(feat_s, 1),
             featurize_per_s=feat_per_s, n_train=b.train.n_samples,
             fusion_weight=b.args.fusion_weight, selection=info)
    return {"fused-linear": r}


def run_emb_mlp(b: Bench) -> dict:
    from labelwise.models.neural import MLPHead

    Etr, Etu, Ete = b.emb("train"), b.emb("tune"), b.emb("test")
    mlp = MLPHead(hidden_sizes=(512,), dropout=0.1, epochs=40, patience=3,
                  n_threads=b.args.threads, random_state=0)
    t0 = time.perf_counter()
    mlp.fit(Etr, b.train.Y)
    r = score_fitted(b, mlp, Etu, Ete, time.perf_counter() - t0)
    r["epochs_run"] = len(mlp.history_["train_loss"])
    r["best_epoch"] = mlp.history_["best_epoch"] + 1
    return {"emb-mlp": r}


def run_zeroshot(b: Bench) -> dict:
    from labelwise.models import ZeroShot

    Etu, Ete = b.emb("tune"), b.emb("test")
    zs = ZeroShot()
    t0 = time.perf_counter()
    zs.fit(labels=b.train.labels)
    return {"zeroshot": score_fitted(b, zs, Etu, Ete, time.perf_counter() - t0)}


def run_fewshot(b: Bench) -> dict:
    from labelwise.models import FewShot

    Etu, Ete = b.emb("tune"), b.emb("test")
    out = {}
    for k in b.args.shots:
        rows = shots_rows(b.train.Y, k)
        E = b.featurizer().transform([b.train.X[i] for i in rows])  # only the k-shot rows
        fs = FewShot()
        t0 = time.perf_counter()
        fs.fit(E, b.train.Y[rows], labels=b.train.labels)
        r = score_fitted(b, fs, Etu, Ete, time.perf_counter() - t0)
        r["n_examples"] = int(rows.size)
        out[f"fewshot-{k}"] = r
    return out


def run_fewshot_finetune(b: Bench) -> dict:
    from labelwise.models.neural import FineTunedFewShot

    seq = b.args.max_seq_length or FINETUNE_SEQ.get(b.name, 128)
    out = {}
    for k in b.args.shots:
        rows = shots_rows(b.train.Y, k)
        model = FineTunedFewShot(max_seq_length=seq, n_threads=b.args.threads, random_state=0)
        t0 = time.perf_counter()
        model.fit([b.train.X[i] for i in rows], b.train.Y[rows], labels=b.train.labels)
        r = score_fitted(b, model, list(b.tune.X), list(b.test.X), time.perf_counter() - t0)
        r.update(n_examples=int(rows.size), steps=int(model.history_["steps"]),
                 max_seq_length=seq, load_avg_1min=round(os.getloadavg()[0], 1))
        out[f"fewshot-finetune-{k}"] = r
    return out


def run_finetune(b: Bench) -> dict:
    from labelwise.models.neural import FineTuned

    seq = b.args.max_seq_length or FINETUNE_SEQ.get(b.name, 128)
    texts = list(b.train.X)

    steps = b.args.finetune_steps or None
    budget = None if steps else b.args.finetune_minutes * 60.0
    ft = FineTuned(max_seq_length=seq, batch_size=16, epochs=b.args.finetune_epochs,
                   max_steps=steps, max_time=budget, early_stopping=False,
                   n_threads=b.args.threads, random_state=0)
    t0 = time.perf_counter()
    ft.fit(texts, b.train.Y, labels=b.train.labels)
    fit_s = time.perf_counter() - t0
    r = score_fitted(b, ft, list(b.tune.X), list(b.test.X), fit_s)
    per_epoch = -(-len(texts) // 16)
    r.update(budget_min=None if b.args.finetune_steps else b.args.finetune_minutes,
             max_seq_length=seq,
             fit_s=round(fit_s, 1), stopped_on_time=bool(ft.history_["stopped_on_time"]),
             steps=int(ft.history_["steps"]), epochs_done=round(ft.history_["steps"] / per_epoch, 3),
             s_per_step=round(fit_s / max(1, ft.history_["steps"]), 3),
             first_50_step_loss=round(float(np.mean(ft.history_["step_loss"][:50])), 4),
             last_50_step_loss=round(float(np.mean(ft.history_["step_loss"][-50:])), 4),
             load_avg_1min=round(os.getloadavg()[0], 1))
    return {"finetune": r}


def run_setfit_peer(b: Bench) -> dict:
    """SetFit (its own virtualenv, benchmarks/setfit_bench.py) zero-shot and k-shot rows, on
    the same splits, examples and threshold tuning as zeroshot and fewshot-K."""
    from setfit_bench import run_setfit

    seq = b.args.max_seq_length or FINETUNE_SEQ.get(b.name, 128)
    out = {}
    for k in (0, *b.args.shots):
        r = run_setfit(b.name, k, threads=b.args.threads, max_seq_length=seq)
        out[r.pop("method")] = r
    return out


# name -> runner(Bench) -> {row name: result}; add a method group (e.g. SetFit) here
METHODS: dict[str, Callable[[Bench], dict]] = {
    "tfidf-linear": run_tfidf_linear,
    "fused-linear": run_fused_linear,
    "emb-mlp": run_emb_mlp,
    "zeroshot": run_zeroshot,
    "fewshot": run_fewshot,
    "fewshot-finetune": run_fewshot_finetune,
    "finetune": run_finetune,
    "setfit": run_setfit_peer,
}


def markdown(results: dict) -> str:
    head = ("| dataset | method | micro-F1 | macro-F1 | train s | predict items/s |\n"
            "|---|---|---|---|---|---|")
    lines = [head]
    for ds, res in results.items():
        for m, r in res["methods"].items():
            lines.append(f"| {ds} | {m} | {r['micro_f1']:.4f} | {r['macro_f1']:.4f} | "
                         f"{r['train_s']:.1f} | {r['predict_per_s']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="goemotions,reuters21578")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--shots", default=",".join(map(str, SHOTS)))
    ap.add_argument("--fusion-weight", type=float, default=1.0)
    ap.add_argument("--finetune-minutes", type=float, default=25.0)
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--finetune-steps", type=int, default=0,
                    help="fixed optimiser steps instead of the --finetune-minutes budget")
    ap.add_argument("--max-seq-length", type=int, default=None,
                    help="fine-tuning max_seq_length (default: 64 GoEmotions, 128 Reuters)")
    ap.add_argument("--cache-dir", default=None,
                    help="embedding cache home (default $LABELWISE_CACHE_HOME)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--update", action="store_true",
                    help="start from the rows already in --out and replace only those re-run")
    args = ap.parse_args(argv)
    args.shots = [int(s) for s in args.shots.split(",") if s]
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        ap.error(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
    results: dict = {}
    if args.update and args.out and Path(args.out).is_file():
        results = json.loads(Path(args.out).read_text())
    for name in args.datasets.split(","):
        b = Bench(name, args)
        res = results.setdefault(name, {"methods": {}})
        res.update(n_train=b.train.n_samples, n_tune=b.tune.n_samples,
                   n_test=b.test.n_samples, n_labels=b.L)
        for m in methods:
            for row, r in METHODS[m](b).items():
                res["methods"][row] = r
                short = {k: v for k, v in r.items() if k != "selection"}
                print(f"{name:14s} {row:13s} {json.dumps(short)}", flush=True)
            res.update(b.extra)
            if args.out:  # after every method, so a long run keeps what it has
                from labelwise.atomic import atomic_write

                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                with atomic_write(args.out, "w") as f:
                    f.write(json.dumps(results, indent=1) + "\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
