"""Decision and calibration layers on real data, beside LibMultiLabel's thresholding.

For each dataset (MULAN emotions, scene, yeast, enron, medical, bibtex, delicious, corel5k,
tmc2007 with their official train/test splits, and GoEmotions: its texts through labelwise's
default Tfidf featurizer for labelwise, tf-idf features from scikit-learn's TfidfVectorizer
fitted on the training texts for LibMultiLabel):

labelwise
    Run exactly as a user runs it, with no preprocessing outside it: the features as
    ``labelwise.datasets.load`` reads them go to one :class:`labelwise.Pipeline` around a
    default ``OneVsRest()`` (what ``labelwise train DATA --model ovr`` builds), which scales
    numeric columns itself (``scale="auto"``: dense standardised, sparse max-abs scaled only
    when its column maxima spread over more than 100x; MULAN's sparse sets are binary and
    pass unchanged), then

    1. ``tune(objective="macro-f1")`` (``labelwise tune MODEL DATA``): C and loss chosen by
       cross-fitting on the training rows (:func:`labelwise.crossfit.linear_grid`, each
       candidate scored by the cross-validated macro-F1 of per-label thresholds tuned on its
       out-of-fold scores), the model refitted with them, per-label Platt calibration and
       fold-averaged per-label macro-F1 thresholds on the winner's out-of-fold scores;
    2. ``tune(objective="micro-f1", select_c=False)`` and then
       ``tune(objective="precision=0.9", select_c=False)`` (``--no-select-c``: the model
       chosen in 1 is kept) give the micro-F1 sets and the precision target
       (``PrecisionTarget(0.9, confidence=0.95)``: lowest threshold whose Clopper-Pearson
       95% lower bound of precision on the out-of-fold probabilities is >= 0.9).

    The test rows give the reported numbers and nothing else. ``--scale`` and
    ``--no-select-c`` run the same path with another scaling or without the choice of C.
LibMultiLabel
    ``libmultilabel.linear.train_thresholding`` (its thresholding method: per-label 3-fold
    CV thresholds for Micro-F1 + Macro-F1, the micromacro-freq method of Lin et al. CIKM
    2023 that follows Fan & Lin's SCut) with the same liblinear options ``-s 1 -B 1 -c 1``,
    run in a subprocess of the separate venv ``.venv-peers-lml`` (``--lml-python``) on the
    feature matrices described below (exchanged as .npz, no pickle). Predictions:
    ``predict_values(model, X) > 0``.

LibMultiLabel's results are cached per dataset in ``--lml-cache`` (default
``bench-results/decisions-lml/NAME.json``, keyed by a sha256 of the four matrices and the
options), so reruns of the labelwise side are cheap; a run past ``--lml-timeout`` seconds
(default 3600) is cached as skipped. ``--lml-only`` fills the cache, ``--lml-cache-only``
never runs LibMultiLabel.

Features: LibMultiLabel, which has no scaling step, gets the dense MULAN features max-abs
scaled on the training rows (as in every earlier run: its cached results stay valid);
labelwise gets them as read. Reported per dataset: macro-F1 and micro-F1
on the test set; the calibration of the test probabilities by three estimators: the ECE
(15 uniform bins over all pairs; :func:`labelwise.calibration.expected_calibration_error`)
beside its noise floor (the mean ECE of outcomes drawn from the probabilities themselves:
what a perfectly calibrated model would score on a test set of this size), Kumar et al.'s
debiased l2 calibration error (:func:`labelwise.calibration.debiased_calibration_error`,
15 equal-mass bins; about 0 for a perfectly calibrated model at any test size) and
Roelofs et al.'s ECE_sweep (:func:`labelwise.calibration.ece_sweep`); and coverage at
precision 0.9: the share of test rows that get at least one label from the precision
target tuned on the out-of-fold probabilities, with the precision those labels reach on
the test set and its Clopper-Pearson 95% interval (and, for reference, the oracle
coverage: ``coverage_at_precision`` chosen on the test labels themselves, mode "labels").
The label cardinality of the training and test rows is reported too (tmc2007's test rows
have other label frequencies than its training rows: a shift no training-side choice can
see).

Run: ``LABELWISE_DATASETS_MIRROR=/work/shared/datasets python benchmarks/decisions.py``
(``--datasets emotions,yeast`` for a subset, ``--out results.json``; ``--table
results.json`` prints the table of an earlier run, taking LibMultiLabel results that were
missing then from the cache when they were made since from the same matrices).
"""

from __future__ import annotations

import argparse
import hashlib
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
    """(labelwise's training X, Y and test X, Y as read from the files; LibMultiLabel's
    training and test X). labelwise gets the features exactly as a user's ``labelwise
    train`` reads them (its Pipeline scales numeric columns itself); LibMultiLabel, which
    has no such step, gets dense MULAN features max-abs scaled on the training rows (as in
    every earlier run, so its cached results stay valid)."""
    from sklearn.preprocessing import MaxAbsScaler

    from labelwise.datasets import load

    if name == "goemotions":
        from sklearn.feature_extraction.text import TfidfVectorizer

        tr, te = load("goemotions", split="train"), load("goemotions", split="test")
        vec = TfidfVectorizer(sublinear_tf=True, min_df=2, ngram_range=(1, 2), dtype=np.float32)
        Ltr, Lte = vec.fit_transform(tr.X), vec.transform(te.X)
        Xtr, Xte = tr.X, te.X  # labelwise: the texts, through its own Tfidf featurizer
    else:
        tr = load(f"mulan-{name}", split="train")
        te = load(f"mulan-{name}", split="test")
        Xtr, Xte = tr.X, te.X
        Ltr, Lte = sp.csr_matrix(Xtr, dtype=np.float32), sp.csr_matrix(Xte, dtype=np.float32)
        scaler = MaxAbsScaler().fit(Ltr)
        Ltr, Lte = scaler.transform(Ltr), scaler.transform(Lte)
    return (Xtr, tr.Y.tocsr(), Xte, te.Y.tocsr(), sp.csr_matrix(Ltr, dtype=np.float32),
            sp.csr_matrix(Lte, dtype=np.float32))


TOP_K = 100


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval for k successes of n."""
    from scipy.stats import beta

    if n == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def ece_noise_floor(P, missing, *, n_bins: int = 15, draws: int = 20, seed: int = 0) -> float:
    """Mean ECE (15 uniform bins over all pairs, as reported) of outcomes drawn from the
    probabilities themselves, y ~ Bernoulli(p): what a perfectly calibrated model scores on
    a test set of this size. Unstored pairs have probability ``missing``."""
    from labelwise.decision._entries import entries

    E = entries(P)
    p = E.values
    n_missing = E.shape[0] * E.shape[1] - E.nnz
    m = 0.0 if missing is None else float(missing)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.searchsorted(edges, np.r_[p, m], side="right") - 1, 0, n_bins - 1)
    sp_ = np.bincount(b[:-1], weights=p, minlength=n_bins)
    sp_[b[-1]] += n_missing * m
    total = p.size + n_missing
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draws):
        sy = np.bincount(b[:-1], weights=(rng.random(p.size) < p) * 1.0, minlength=n_bins)
        sy[b[-1]] += rng.binomial(n_missing, m) if n_missing else 0
        out.append(np.abs(sy - sp_).sum() / total)
    return float(np.mean(out))


def run_labelwise(Xtr, Ytr, Xte, Yte, *, cv: int = 5, scale: str | None = "auto",
                  select_c: bool = True) -> dict:
    """The labelwise side, as a user runs it (module docstring): train, tune, predict
    through one Pipeline; the test rows only give the reported numbers."""
    from labelwise.calibration import (
        debiased_calibration_error,
        ece_sweep,
        expected_calibration_error,
    )
    from labelwise.features import Tfidf
    from labelwise.metrics import LabelSets, coverage_at_precision, f1_score
    from labelwise.models import OneVsRest
    from labelwise.pipeline import Pipeline

    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # labels without positives in a fold, max_iter
        # labelwise train DATA --model ovr; labelwise tune MODEL DATA --objective macro-f1
        texts = isinstance(Xtr, list)  # labelwise train --model ovr: tf-idf for texts
        pipe = Pipeline(Tfidf() if texts else None, OneVsRest(), random_state=0,
                        scale=scale).fit(Xtr, Ytr)
        t_fit = time.time() - t0
        pipe.tune(Xtr, Ytr, objective="macro-f1", cv=cv, select_c=None if select_c else False)
        t_tune = time.time() - t0 - t_fit
        tuning = dict(pipe.tuning_)
        sets_macro = pipe.predict(Xte)
        S_te, P_te, _ = pipe.score_and_sets(Xte)
        miss = pipe.calibrator_.missing_probability_
        # the same model, its policy retuned: labelwise tune ... --objective micro-f1 /
        # precision=0.9 --no-select-c (C and loss stay as the macro-F1 tuning chose them)
        pipe.tune(Xtr, Ytr, objective="micro-f1", cv=cv, select_c=False)
        sets_micro = pipe.predict(Xte)
        pipe.tune(Xtr, Ytr, objective="precision=0.9", cv=cv, select_c=False)
        target = pipe.decision_
        sets_target = pipe.predict(Xte)
    n_acc = sets_target.nnz
    k_acc = int(round(float(sets_target.multiply(Yte).sum())))
    prec_target = k_acc / n_acc if n_acc else float("nan")
    oracle = coverage_at_precision(Yte, P_te, target=0.9, mode="labels")
    scaling = pipe.explain()["scaling"]
    params = getattr(pipe, "model_params_", None) or {"loss": pipe.model.loss,
                                                      "C": pipe.model.C}
    return {
        "model": {**params, "top_k": int(tuning["k"])},
        "scaling": scaling,
        "model_selection": tuning.get("model_selection"),
        "calibrator": tuning["calibration"],
        "macro_f1": f1_score(Yte, LabelSets(sets_macro), average="macro"),
        "micro_f1": f1_score(Yte, LabelSets(sets_micro), average="micro"),
        "micro_f1_of_macro_policy": f1_score(Yte, LabelSets(sets_macro), average="micro"),
        "ece": expected_calibration_error(Yte, P_te, missing=miss),
        "ece_macro": expected_calibration_error(Yte, P_te, average="macro", missing=miss),
        "ece_noise_floor": ece_noise_floor(P_te, miss),
        "debiased_ce": debiased_calibration_error(Yte, P_te, missing=miss),
        "ece_sweep": ece_sweep(Yte, P_te, missing=miss),
        "coverage_at_0.9": float((np.diff(sets_target.indptr) > 0).mean()),
        "precision_at_target": prec_target,
        "accepted_test_pairs": int(n_acc),
        "precision_at_target_ci95": clopper_pearson(k_acc, n_acc),
        "coverage_at_0.9_on_train_oof": target.coverage_,
        "precision_on_train_oof": target.precision_,
        "precision_lower_bound_on_train_oof": target.precision_lower_bound_,
        "label_cardinality": [float(Ytr.sum() / Ytr.shape[0]), float(Yte.sum() / Yte.shape[0])],
        "oracle_coverage_at_0.9": oracle.coverage,
        "fit_s": t_fit, "tune_s": t_tune,
        "n_test_scores": int(S_te.nnz),
    }


LML_OPTIONS = "-s 1 -B 1 -c 1 -q"


def fingerprint(*mats) -> str:
    """sha256 over the shapes and CSR arrays of the matrices (the LibMultiLabel cache key)."""
    h = hashlib.sha256()
    for M in mats:
        M = sp.csr_matrix(M)
        h.update(repr(M.shape).encode())
        for a in (M.indptr.astype(np.int64), M.indices.astype(np.int64),
                  M.data.astype(np.float64)):
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def lml_key(Xtr, Ytr, Xte, Yte) -> str:
    return fingerprint(Xtr, Ytr, Xte, Yte) + ":" + LML_OPTIONS


def refresh_lml(results: dict, cache_dir: Path) -> dict:
    """Rows whose LibMultiLabel run was missing get the cached result made since from the
    same matrices and options (same ``lml_key``)."""
    for name, row in results.items():
        path = cache_dir / f"{name}.json"
        if "macro_f1" in row.get("libmultilabel", {}) or not path.is_file():
            continue
        doc = json.loads(path.read_text())
        if row.get("lml_key") and doc.get("key") == row["lml_key"] \
                and "macro_f1" in doc["result"]:
            row["libmultilabel"] = {**doc["result"], "cached": True}
    return results


def run_lml(python: str, Xtr, Ytr, Xte, Yte, *, timeout: float | None = None) -> dict:
    from labelwise.metrics import LabelSets, f1_score

    with tempfile.TemporaryDirectory() as d:
        sp.save_npz(f"{d}/Xtr.npz", Xtr)
        sp.save_npz(f"{d}/Ytr.npz", sp.csr_matrix(Ytr, dtype=np.float64))
        sp.save_npz(f"{d}/Xte.npz", Xte)
        t0 = time.time()
        try:
            out = subprocess.run([python, "-c", LML_RUNNER, d], capture_output=True, text=True,
                                 timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"skipped": f"LibMultiLabel ran past {timeout:.0f} s on this machine"}
        if out.returncode != 0:
            raise RuntimeError(f"LibMultiLabel failed: {out.stderr[-2000:]}")
        wall = time.time() - t0
        pred = sp.load_npz(f"{d}/pred.npz").tocsr()
    return {"macro_f1": f1_score(Yte, LabelSets(pred), average="macro"),
            "micro_f1": f1_score(Yte, LabelSets(pred), average="micro"),
            "train_s": float(out.stdout.strip().splitlines()[-1]), "wall_s": wall}


def lml_cached(name: str, python: str, Xtr, Ytr, Xte, Yte, *, cache_dir: Path,
               timeout: float | None, retry_skipped: bool = False,
               cache_only: bool = False) -> dict:
    """LibMultiLabel's result for one dataset, from ``cache_dir/NAME.json`` when that file
    was made from the same matrices and options (its ``key``); else run and store it. A run
    that timed out is stored as ``{"skipped": ...}`` and not retried unless
    ``retry_skipped``."""
    from labelwise.atomic import atomic_write

    key = lml_key(Xtr, Ytr, Xte, Yte)
    path = cache_dir / f"{name}.json"
    if path.is_file():
        doc = json.loads(path.read_text())
        if doc.get("key") == key and not ("skipped" in doc["result"] and retry_skipped):
            return {**doc["result"], "cached": True}
    if cache_only:
        return {"skipped": f"not in the cache {path} (run with --lml-only first)"}
    res = run_lml(python, Xtr, Ytr, Xte, Yte, timeout=timeout)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"key": key, "dataset": name, "result": res}, indent=1))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default=",".join(ALL))
    ap.add_argument("--cv", type=int, default=5)
    ap.add_argument("--scale", default="auto", choices=("auto", "standard", "maxabs", "none"),
                    help="labelwise's Pipeline(scale=...) (labelwise train --scale)")
    ap.add_argument("--no-select-c", dest="select_c", action="store_false",
                    help="labelwise tune --no-select-c: keep OneVsRest's default C and loss")
    ap.add_argument("--lml-python", default=str(Path(".venv-peers-lml/bin/python")))
    ap.add_argument("--lml-cache", default="bench-results/decisions-lml",
                    help="folder of cached LibMultiLabel results, one NAME.json per dataset")
    ap.add_argument("--lml-timeout", type=float, default=3600.0,
                    help="seconds before a LibMultiLabel run is abandoned (marked skipped)")
    ap.add_argument("--lml-retry", action="store_true", help="rerun cached timeouts")
    ap.add_argument("--lml-only", action="store_true",
                    help="only fill the LibMultiLabel cache")
    ap.add_argument("--lml-cache-only", action="store_true",
                    help="never run LibMultiLabel; use its cached results where present")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--table", default=None, metavar="JSON",
                    help="only print the table of results written earlier by --out")
    args = ap.parse_args(argv)
    if args.table:
        print_table(refresh_lml(json.loads(Path(args.table).read_text()),
                                Path(args.lml_cache)))
        return 0
    os.environ.setdefault("LABELWISE_DATASETS_MIRROR", "/work/shared/datasets")
    results = {}
    for name in args.datasets.split(","):
        Xtr, Ytr, Xte, Yte, Ltr, Lte = load_data(name)
        row = {"n_train": Ytr.shape[0], "n_test": Yte.shape[0], "n_labels": Ytr.shape[1],
               "lml_key": lml_key(Ltr, Ytr, Lte, Yte)}
        try:
            row["libmultilabel"] = lml_cached(name, args.lml_python, Ltr, Ytr, Lte, Yte,
                                              cache_dir=Path(args.lml_cache),
                                              timeout=args.lml_timeout,
                                              retry_skipped=args.lml_retry,
                                              cache_only=args.lml_cache_only)
        except (OSError, RuntimeError) as e:
            row["libmultilabel"] = {"error": str(e)[-300:]}
        if not args.lml_only:
            row["labelwise"] = run_labelwise(Xtr, Ytr, Xte, Yte, cv=args.cv,
                                             scale=None if args.scale == "none" else args.scale,
                                             select_c=args.select_c)
        results[name] = row
        print(json.dumps({name: row}), flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))
    if not args.lml_only:
        print_table(results)
    return 0


def print_table(results: dict) -> None:
    """The README's table, then what the tuning chose on the training rows."""
    head = ("dataset", "labels", "macro-F1 labelwise", "macro-F1 LibMultiLabel",
            "micro-F1 labelwise", "micro-F1 LibMultiLabel", "ECE, 15 bins (noise floor)",
            "debiased CE", "coverage at precision 0.9, 95 % bound (precision reached on test)")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    diffs = []
    for name, r in results.items():
        a, b = r["labelwise"], r["libmultilabel"]
        bm = b.get("macro_f1", float("nan"))
        lml_macro = f"{100 * bm:.2f}" if "macro_f1" in b else "-"
        lml_micro = f"{100 * b['micro_f1']:.2f}" if "micro_f1" in b else "-"
        diffs.append(100 * (a["macro_f1"] - bm))
        prec = (f"{a['precision_at_target']:.3f}" if a.get("accepted_test_pairs") else "-")
        print(f"| {name} | {r['n_labels']} | {100 * a['macro_f1']:.2f} | {lml_macro} | "
              f"{100 * a['micro_f1']:.2f} | {lml_micro} | {a['ece']:.3f} "
              f"({a['ece_noise_floor']:.3f}) | {a['debiased_ce']:.3f} | "
              f"{a['coverage_at_0.9']:.3f} ({prec}) |")
    diffs = [d for d in diffs if np.isfinite(d)]
    if diffs:
        print(f"\nmean macro-F1 difference over {len(diffs)} datasets with both (points): "
              f"{np.mean(diffs):+.2f}; worst: {min(diffs):+.2f}")
    print("\nchosen on the training rows (scaling; loss and C; fit, tune seconds):")
    for name, r in results.items():
        a = r["labelwise"]
        sc = a.get("scaling") or {}
        print(f"- {name}: scaling {sc.get('method_in_effect', 'none')} (column maxima spread "
              f"{sc.get('spread', float('nan')):.3g}); {a['model']['loss']} "
              f"C={a['model']['C']:g}; fit {a['fit_s']:.1f} s, tune {a['tune_s']:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
