"""Decision and calibration layers on real data, beside LibMultiLabel's thresholding.

For each dataset (MULAN emotions, scene, yeast, enron, medical, bibtex, delicious, corel5k,
tmc2007 with their official train/test splits, and GoEmotions with tf-idf features from
scikit-learn's TfidfVectorizer fitted on the training texts):

labelwise
    ``labelwise.models.OneVsRest`` (squared hinge, C=1, bias=1, no pruning: liblinear
    ``-s 1 -B 1``). Out-of-fold scores on the training rows by
    :func:`labelwise.crossfit.cross_fit_scores` (5 folds, iterative stratification, all
    labels kept); a per-label Platt calibrator with empirical-Bayes pooling fitted on them;
    ``PerLabelThreshold(objective="macro-f1")`` and ``(objective="micro-f1")`` and
    ``PrecisionTarget(0.9)`` fitted on the calibrated out-of-fold probabilities. The model is
    then refitted on all training rows, its test scores calibrated and decided. The test
    rows are used only for the reported numbers.
LibMultiLabel
    ``libmultilabel.linear.train_thresholding`` (its thresholding method: per-label 3-fold
    CV thresholds for Micro-F1 + Macro-F1, the micromacro-freq method of Lin et al. CIKM
    2023 that follows Fan & Lin's SCut) with the same liblinear options ``-s 1 -B 1 -c 1``,
    run in a subprocess of the separate venv ``.venv-peers-lml`` (``--lml-python``) on the
    same feature matrices (exchanged as .npz, no pickle). Predictions:
    ``predict_values(model, X) > 0``.

Features: dense MULAN features are scaled by scikit-learn's MaxAbsScaler fitted on the
training rows (the same matrices go to both). Reported per dataset: macro-F1 and micro-F1
on the test set, the test ECE of the calibrated probabilities (15 uniform bins over all
pairs; :func:`labelwise.calibration.expected_calibration_error`), and coverage at
precision 0.9: the share of test rows that get at least one label from PrecisionTarget(0.9)
tuned on the out-of-fold probabilities, with the precision those labels reach on the test
set (and, for reference, the oracle coverage: ``coverage_at_precision`` chosen on the test
labels themselves, mode "labels").

Run: ``LABELWISE_DATASETS_MIRROR=/work/shared/datasets python benchmarks/decisions.py``
(``--datasets emotions,yeast`` for a subset, ``--out results.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

MULAN = ["emotions", "scene", "yeast", "enron", "medical", "bibtex", "delicious", "corel5k",
         "tmc2007"]
ALL = [*MULAN, "goemotions"]

LML_RUNNER = r"""
import sys, time, numpy as np, scipy.sparse as sp
from libmultilabel import linear
d = sys.argv[1]
np.random.seed(0)
Xtr = sp.load_npz(d + '/Xtr.npz').tocsr(); Ytr = sp.load_npz(d + '/Ytr.npz').tocsr()
Xte = sp.load_npz(d + '/Xte.npz').tocsr()
t0 = time.time()
try:
    model = linear.train_thresholding(Ytr, Xtr, options='-s 1 -B 1 -c 1 -q', verbose=False)
except ValueError:
    # libmultilabel 0.10's train_thresholding orders labels by np.sum(y, 2), which scipy
    # >= 1.15 refuses; the same loop with that one line fixed (label order by frequency)
    from libmultilabel.linear import linear as L
    x, options, bias = L._prepare_options(Xtr, '-s 1 -B 1 -c 1 -q')
    y = Ytr.tocsc()
    weights = np.zeros((x.shape[1], y.shape[1]), order='F')
    thresholds = np.zeros(y.shape[1])
    stats = {'tp': 0, 'fp': 0, 'fn': 0, 'labels': 0}
    for i in np.flip(np.argsort(np.asarray(y.sum(0)).ravel())).flat:
        yi = y[:, i].toarray().reshape(-1)
        w, t, stats = L._micromacro_one_label(2 * yi - 1, x, options, stats)
        weights[:, i] = w.ravel()
        thresholds[i] = t
    model = L.FlatModel(name='thresholding', weights=np.asmatrix(weights), bias=bias,
                        thresholds=thresholds, multiclass=False)
t1 = time.time()
pred = (np.asarray(linear.predict_values(model, Xte)) > 0).astype(np.float32)
sp.save_npz(d + '/pred.npz', sp.csr_matrix(pred))
print(t1 - t0)
"""


def load_data(name: str):
    from sklearn.preprocessing import MaxAbsScaler

    from labelwise.datasets import load

    if name == "goemotions":
        from sklearn.feature_extraction.text import TfidfVectorizer

        tr, te = load("goemotions", split="train"), load("goemotions", split="test")
        vec = TfidfVectorizer(sublinear_tf=True, min_df=2, ngram_range=(1, 2), dtype=np.float32)
        Xtr, Xte = vec.fit_transform(tr.X), vec.transform(te.X)
    else:
        tr = load(f"mulan-{name}", split="train")
        te = load(f"mulan-{name}", split="test")
        Xtr, Xte = sp.csr_matrix(tr.X, dtype=np.float32), sp.csr_matrix(te.X, dtype=np.float32)
        scaler = MaxAbsScaler().fit(Xtr)
        Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
    return (sp.csr_matrix(Xtr, dtype=np.float32), tr.Y.tocsr(), sp.csr_matrix(Xte, dtype=np.float32),
            te.Y.tocsr())


def run_labelwise(Xtr, Ytr, Xte, Yte, *, cv: int = 5) -> dict:
    from labelwise.calibration import PlattCalibrator, expected_calibration_error
    from labelwise.crossfit import cross_fit_scores
    from labelwise.decision import PerLabelThreshold, PrecisionTarget
    from labelwise.metrics import LabelSets, coverage_at_precision, f1_score
    from labelwise.models import OneVsRest

    L = Ytr.shape[1]
    model = OneVsRest(loss="squared_hinge", C=1.0, bias=1.0, prune_threshold=0.0,
                      random_state=0)
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # labels without positives in a fold, max_iter notes
        S_oof = cross_fit_scores(model, Xtr, Ytr, cv=cv, k=L, random_state=0)
        model.fit(Xtr, Ytr)
    t_fit = time.time() - t0
    t0 = time.time()
    cal = PlattCalibrator(per_label=True).fit(S_oof, Ytr)
    P_oof = cal.transform(S_oof)
    macro = PerLabelThreshold(objective="macro-f1").fit(P_oof, Ytr)
    micro = PerLabelThreshold(objective="micro-f1").fit(P_oof, Ytr)
    target = PrecisionTarget(0.9).fit(P_oof, Ytr)
    t_tune = time.time() - t0
    S_te = model.decision_function(Xte, k=L)
    P_te = cal.transform(S_te)
    sets_macro = macro.apply(P_te)
    sets_micro = micro.apply(P_te)
    sets_target = target.apply(P_te)
    n_acc = sets_target.nnz
    prec_target = (float(sets_target.multiply(Yte).sum() / n_acc) if n_acc else float("nan"))
    oracle = coverage_at_precision(Yte, P_te, target=0.9, mode="labels")
    shared = PlattCalibrator().fit(S_oof, Ytr)
    return {
        "macro_f1": f1_score(Yte, LabelSets(sets_macro), average="macro"),
        "micro_f1": f1_score(Yte, LabelSets(sets_micro), average="micro"),
        "micro_f1_of_macro_policy": f1_score(Yte, LabelSets(sets_macro), average="micro"),
        "ece": expected_calibration_error(Yte, P_te),
        "ece_shared_platt": expected_calibration_error(Yte, shared.transform(S_te)),
        "ece_macro": expected_calibration_error(Yte, P_te, average="macro"),
        "coverage_at_0.9": float((np.diff(sets_target.indptr) > 0).mean()),
        "precision_at_target": prec_target,
        "oracle_coverage_at_0.9": oracle.coverage,
        "fit_s": t_fit, "tune_s": t_tune,
    }


def run_lml(python: str, Xtr, Ytr, Xte, Yte) -> dict:
    from labelwise.metrics import LabelSets, f1_score

    with tempfile.TemporaryDirectory() as d:
        sp.save_npz(f"{d}/Xtr.npz", Xtr)
        sp.save_npz(f"{d}/Ytr.npz", sp.csr_matrix(Ytr, dtype=np.float64))
        sp.save_npz(f"{d}/Xte.npz", Xte)
        t0 = time.time()
        out = subprocess.run([python, "-c", LML_RUNNER, d], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"LibMultiLabel failed: {out.stderr[-2000:]}")
        wall = time.time() - t0
        pred = sp.load_npz(f"{d}/pred.npz").tocsr()
    return {"macro_f1": f1_score(Yte, LabelSets(pred), average="macro"),
            "micro_f1": f1_score(Yte, LabelSets(pred), average="micro"),
            "train_s": float(out.stdout.strip().splitlines()[-1]), "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default=",".join(ALL))
    ap.add_argument("--cv", type=int, default=5)
    ap.add_argument("--lml-python", default=str(Path(".venv-peers-lml/bin/python")))
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    os.environ.setdefault("LABELWISE_DATASETS_MIRROR", "/work/shared/datasets")
    results = {}
    for name in args.datasets.split(","):
        Xtr, Ytr, Xte, Yte = load_data(name)
        row = {"n_train": Xtr.shape[0], "n_test": Xte.shape[0], "n_labels": Ytr.shape[1]}
        row["labelwise"] = run_labelwise(Xtr, Ytr, Xte, Yte, cv=args.cv)
        try:
            row["libmultilabel"] = run_lml(args.lml_python, Xtr, Ytr, Xte, Yte)
        except (OSError, RuntimeError) as e:
            row["libmultilabel"] = {"error": str(e)[-300:]}
        results[name] = row
        print(json.dumps({name: row}), flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))
    print_table(results)
    return 0


def print_table(results: dict) -> None:
    head = ("dataset", "L", "macroF1 lw", "macroF1 LML", "d", "microF1 lw", "microF1 LML",
            "ECE", "cov@.9", "prec", "oracle cov")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    diffs = []
    for name, r in results.items():
        a, b = r["labelwise"], r["libmultilabel"]
        bm = b.get("macro_f1", float("nan"))
        d = 100 * (a["macro_f1"] - bm)
        diffs.append(d)
        print(f"| {name} | {r['n_labels']} | {100 * a['macro_f1']:.2f} | {100 * bm:.2f} | "
              f"{d:+.2f} | {100 * a['micro_f1']:.2f} | {100 * b.get('micro_f1', np.nan):.2f} | "
              f"{a['ece']:.4f} | {a['coverage_at_0.9']:.3f} | {a['precision_at_target']:.3f} | "
              f"{a['oracle_coverage_at_0.9']:.3f} |")
    if any(np.isfinite(diffs)):
        print(f"mean macro-F1 difference (points): {np.nanmean(diffs):+.2f}; "
              f"worst: {np.nanmin(diffs):+.2f}")


if __name__ == "__main__":
    sys.exit(main())
