"""Small-label-set benchmark: labelwise's families and ``auto`` beside scikit-multilearn,
scikit-learn and LibMultiLabel, on the MULAN sets with their official train/test splits.

Methods (each run in its own subprocess, one at a time):

- labelwise ``ovr`` (OneVsRest, C and loss chosen by ``tune``), ``tree`` (LabelTree),
  ``chain``, ``ecc`` (10 random-order chains, bootstrap, beam search), ``powerset``,
  ``rakel`` (RAkELd k=3), ``rakelo`` (RAkELo k=3), ``mlknn``, ``forest`` (random forest,
  100 trees), ``extra`` (extra-trees), ``clr`` (calibrated label ranking), ``plst`` /
  ``cplst`` (label-space reduction) and ``codes`` (ECC output codes): as a user runs them, a :class:`labelwise.Pipeline`
  with the model's defaults, fitted (``train s``: this fit only) and then ``tune``-d on the
  training rows (``tune s``: 5-fold out-of-fold calibration and a micro-F1 threshold policy;
  for ovr also the choice of C and loss). Quality is that of the tuned pipeline;
  ``micro/macro-F1 @0.5`` is the same model before tuning, at the model's default rule (the
  peers' protocol); ``micro/macro-F1 tuned for macro-F1`` is the same fitted pipeline tuned
  again with ``objective="macro-f1"`` (what a user who wants macro-F1 runs; for ovr it
  chooses C and the loss again), not timed;
- ``auto`` / ``auto-macro``: :class:`labelwise.auto.AutoModel` with ``--budget`` seconds
  (default 120) and the objective micro-F1 / macro-F1; ``train s`` is the whole run
  (cross-validated choice plus the final fit), its leaderboard is kept in the record;
- scikit-multilearn(-ng) (its own virtualenv, ``.venv-peers-skml``): ``skml-br``,
  ``skml-cc``, ``skml-lp``, ``skml-rakeld`` (k=3), each on ``LogisticRegression(max_iter=
  1000)``, and ``skml-mlknn`` (k=10);
- scikit-learn (same virtualenv): ``sk-chain`` (``ClassifierChain`` of
  ``LogisticRegression(max_iter=1000)``), ``sk-forest`` and ``sk-extra`` (multi-output
  ``RandomForestClassifier`` / ``ExtraTreesClassifier``, 100 trees), thresholded at 0.5;
- LibMultiLabel (``.venv-peers-lml``, ``bash benchmarks/setup_peers.sh lml``): ``lml-thresh``,
  ``linear.train_thresholding`` (one-vs-rest liblinear with per-label thresholds chosen by
  its internal cross-validation, the micromacro-freq method), positive where the thresholded
  decision value is > 0. Peers get the features as read (no scaling).

Measured: micro-F1, macro-F1, Hamming loss, subset accuracy (from the predicted sets), mAP
(mean over labels of average precision, from the scores), train (fit only) and predict
seconds (wall clock inside the runner, data reading excluded), the fit's CPU seconds (all
threads of the runner, ``time.process_time``), the 1-minute load average when the method
started and peak RSS (the runner's VmHWM). Metrics are computed here with :mod:`labelwise.metrics`.
Every runner is a fresh process; labelwise's modules are compiled to bytecode once before the
runs (``bench-results/pycache``, ``PYTHONPYCACHEPREFIX``), as an installed package's are.

Run: ``python benchmarks/small.py [--datasets emotions,scene] [--methods chain,skml-cc]
[--threads 2] [--timeout 1800] [--budget 120]``; every record goes to
``bench-results/small-DATASET.json`` (merged with the records already there, so a set can be
run in parts), and ``python benchmarks/small.py --report`` prints the tables of all saved
records (``--summary``: auto against the best peer and the published figures, each family
against the peers of its family). Datasets: ``$LABELWISE_DATASETS`` (default ``/work/shared/datasets``), folders
``mulan-NAME``; tmc2007 is MULAN's tmc2007-500 and corel5k the sparse ARFF files. Peers::

    python3 -m venv .venv-peers-skml
    .venv-peers-skml/bin/pip install scikit-multilearn-ng scikit-learn
    bash benchmarks/setup_peers.sh lml
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("LABELWISE_DATASETS", "/work/shared/datasets"))
DATASETS = ("emotions", "scene", "yeast", "enron", "medical", "tmc2007", "bibtex", "corel5k")
#: (train file, test file) inside mulan-NAME where they are not NAME-train/test.arff
FILES = {"tmc2007": ("tmc2007-500-train.arff", "tmc2007-500-test.arff"),
         "corel5k": ("Corel5k-train-sparse.arff", "Corel5k-test-sparse.arff")}
LABELWISE = {
    "ovr": ("OneVsRest", {}),
    "tree": ("LabelTree", {}),
    "chain": ("ClassifierChain", {}),
    "ecc": ("ClassifierChain", {"order": "random", "n_chains": 10, "bootstrap": True,
                                "inference": "beam"}),
    "powerset": ("LabelPowerset", {}),
    "rakel": ("RAkEL", {}),
    "rakelo": ("RAkEL", {"mode": "overlapping"}),
    "mlknn": ("MLkNN", {}),
    "forest": ("LabelForest", {}),
    "extra": ("LabelForest", {"kind": "extra"}),
    "clr": ("CalibratedLabelRanking", {}),
    "plst": ("LabelEmbedding", {}),
    "cplst": ("LabelEmbedding", {"method": "cplst"}),
    "codes": ("OutputCodes", {}),
}
AUTO = {"auto": "micro-f1", "auto-macro": "macro-f1"}
PEERS = ("skml-br", "skml-cc", "skml-lp", "skml-rakeld", "skml-mlknn", "sk-chain",
         "sk-forest", "sk-extra", "lml-thresh")
PEER_VENV = ROOT / ".venv-peers-skml"
LML_VENV = ROOT / ".venv-peers-lml"
RESULTS = ROOT / "bench-results"


# ---------------------------------------------------------------------- runners (children)
def _peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _load(folder: Path):
    z = np.load(folder / "data.npz", allow_pickle=False)

    def csr(prefix):
        return sp.csr_matrix((z[prefix + "_data"], z[prefix + "_indices"], z[prefix + "_indptr"]),
                             shape=tuple(z[prefix + "_shape"]))

    return csr("xtr"), csr("ytr"), csr("xte")


def _dense_or_csr(X: sp.csr_matrix):
    """Dense features go to labelwise as dense arrays (as the ARFF reader gives them)."""
    return X.toarray() if X.nnz > 0.5 * X.shape[0] * X.shape[1] else X


def run_labelwise(method: str, folder: Path, threads: int) -> dict:
    import labelwise.models as models
    from labelwise import Pipeline

    Xtr, Ytr, Xte = _load(folder)
    Xtr, Xte = _dense_or_csr(Xtr), _dense_or_csr(Xte)
    cls_name, params = LABELWISE[method]
    cls = getattr(models, cls_name)
    if "n_threads" in cls().get_params():
        params = {**params, "n_threads": threads}
    L = Ytr.shape[1]
    t0, c0 = time.perf_counter(), time.process_time()
    pipe = Pipeline(model=cls(**params))
    pipe.fit(Xtr, Ytr)
    t1, c1 = time.perf_counter(), time.process_time()
    P0 = pipe.predict(Xte).toarray() > 0  # the model's default rule (not timed)
    t2 = time.perf_counter()
    pipe.tune(Xtr, Ytr)
    t3 = time.perf_counter()
    S = pipe.predict_proba(Xte, k=L).toarray()
    P = pipe.predict(Xte).toarray() > 0
    t4 = time.perf_counter()
    params = getattr(pipe, "model_params_", None) or {}
    # what a user who wants macro-F1 runs next: `labelwise tune --objective macro-f1` on the
    # same fitted pipeline (for OneVsRest this chooses C and the loss again); not timed
    pipe.tune(Xtr, Ytr, objective="macro-f1")
    P_macro = pipe.predict(Xte).toarray() > 0
    return {"train_s": t1 - t0, "train_cpu_s": c1 - c0, "tune_s": t3 - t2,
            "predict_s": t4 - t3, "S": S, "P": P, "P0": P0, "P_macro": P_macro,
            "params": params}


def run_auto(method: str, folder: Path, threads: int, budget: float) -> dict:
    from labelwise.auto import AutoModel

    Xtr, Ytr, Xte = _load(folder)
    Xtr, Xte = _dense_or_csr(Xtr), _dense_or_csr(Xte)
    L = Ytr.shape[1]
    t0, c0 = time.perf_counter(), time.process_time()
    auto = AutoModel(budget=budget, objective=AUTO[method], n_threads=threads).fit(Xtr, Ytr)
    t1, c1 = time.perf_counter(), time.process_time()
    S = auto.predict_proba(Xte, k=L).toarray()
    P = auto.predict(Xte).toarray() > 0
    t2 = time.perf_counter()
    return {"train_s": t1 - t0, "train_cpu_s": c1 - c0, "predict_s": t2 - t1, "S": S, "P": P,
            "budget_s": budget,
            "chosen": auto.chosen_, "leaderboard": auto.leaderboard_}


def _patch_skml_mlknn() -> str:
    """scikit-multilearn's MLkNN calls NearestNeighbors(self.k) positionally, which
    scikit-learn >= 1.0 refuses; the -ng fork fixed it. Patch only when needed."""
    from skmultilearn.adapt import mlknn

    src = Path(mlknn.__file__).read_text()
    if "NearestNeighbors(self.k)" in src:
        from sklearn.neighbors import NearestNeighbors

        def _fit(self, X, y):
            self._label_cache = mlknn.get_matrix_in_format(y, "lil")
            self._num_instances = self._label_cache.shape[0]
            self._num_labels = self._label_cache.shape[1]
            self._prior_prob_true, self._prior_prob_false = self._compute_prior(self._label_cache)
            self.knn_ = NearestNeighbors(n_neighbors=self.k).fit(X)
            self._cond_prob_true, self._cond_prob_false = self._compute_cond(X, self._label_cache)
            return self

        mlknn.MLkNN.fit = _fit
        return "patched NearestNeighbors(self.k) -> n_neighbors=self.k"
    return "int64 labels (float labels crash skml-ng's MLkNN)"


def run_lml(folder: Path, threads: int) -> dict:
    import contextlib

    from libmultilabel.linear import linear

    Xtr, Ytr, Xte = _load(folder)
    Xtr, Xte = Xtr.astype(np.float64).tocsr(), Xte.astype(np.float64).tocsr()
    options = f"-m {threads}"
    t0, c0 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(sys.stderr):
        model = _lml_train_thresholding(linear, Ytr.astype(np.float64).tocsr(), Xtr, options)
    t1, c1 = time.perf_counter(), time.process_time()
    S = np.asarray(linear.predict_values(model, Xte))
    P = S > 0
    t2 = time.perf_counter()
    return {"train_s": t1 - t0, "train_cpu_s": c1 - c0, "predict_s": t2 - t1, "S": S, "P": P,
            "note": f"train_thresholding options {options!r}; patched: per-label positive "
                    "counts (0.10.0 calls np.sum(y, 2) on a sparse matrix: 'axis out of range')"}


def _lml_train_thresholding(linear, y, x, options):
    """LibMultiLabel 0.10.0's ``linear.train_thresholding`` (same steps, its own helpers),
    with one fix: it counts each label's positives by ``np.sum(y, 2)``, which current scipy
    refuses for a sparse ``y`` ("axis out of range for ndim"); here ``y.sum(axis=0)``."""
    x, options, bias = linear._prepare_options(x, options)
    y = y.tocsc()
    weights = np.zeros((x.shape[1], y.shape[1]), order="F")
    thresholds = np.zeros(y.shape[1])
    num_positives = np.asarray(y.sum(axis=0)).ravel()
    stats = {"tp": 0, "fp": 0, "fn": 0, "labels": 0}
    for i in np.flip(np.argsort(num_positives, kind="stable")):
        yi = y[:, i].toarray().reshape(-1)
        w, t, stats = linear._micromacro_one_label(2 * yi - 1, x, options, stats)
        weights[:, i] = w.ravel()
        thresholds[i] = t
    return linear.FlatModel(name="thresholding", weights=np.asmatrix(weights), bias=bias,
                            thresholds=thresholds, multiclass=False)


def _one_class_safe_lr():
    """``LogisticRegression(max_iter=1000)`` that, for a label with one class in its training
    rows (medical has labels without positives in the training split), predicts that class
    with probability 1 instead of raising; otherwise it is scikit-learn's own."""
    from sklearn.linear_model import LogisticRegression

    class OneClassSafeLR(LogisticRegression):
        def fit(self, X, y, sample_weight=None):
            classes = np.unique(np.asarray(y).ravel())
            self.__dict__.pop("constant_", None)
            if classes.size < 2:
                self.constant_ = int(classes[0]) if classes.size else 0
                self.classes_ = np.array([0, 1])
                return self
            return super().fit(X, y, sample_weight)

        def predict_proba(self, X):
            if hasattr(self, "constant_"):
                out = np.zeros((X.shape[0], 2))
                out[:, self.constant_] = 1.0
                return out
            return super().predict_proba(X)

        def predict(self, X):
            if hasattr(self, "constant_"):
                return np.full(X.shape[0], self.constant_)
            return super().predict(X)

        def decision_function(self, X):
            if hasattr(self, "constant_"):
                return np.full(X.shape[0], 1.0 if self.constant_ else -1.0)
            return super().decision_function(X)

    return OneClassSafeLR(max_iter=1000)


def run_peer(method: str, folder: Path, threads: int) -> dict:
    if method == "lml-thresh":
        return run_lml(folder, threads)
    Xtr, Ytr, Xte = _load(folder)
    note = ""
    Yd = Ytr.toarray().astype(np.int64)
    lr = _one_class_safe_lr()
    one_class = int(np.sum((Yd.sum(axis=0) == 0) | (Yd.sum(axis=0) == Yd.shape[0])))
    if one_class and method != "skml-mlknn" and method not in ("sk-forest", "sk-extra"):
        note = (f"patched: {one_class} label(s) with one class in the training rows get a "
                "constant (LogisticRegression refuses them: 'needs samples of at least 2 "
                "classes')")
    if method.startswith("skml-"):
        from skmultilearn.problem_transform import (
            BinaryRelevance,
            ClassifierChain,
            LabelPowerset,
        )

        if method == "skml-br":
            model = BinaryRelevance(classifier=lr, require_dense=[False, True])
        elif method == "skml-cc":
            model = ClassifierChain(classifier=lr, require_dense=[False, True])
        elif method == "skml-lp":
            model = LabelPowerset(classifier=lr, require_dense=[False, True])
        elif method == "skml-rakeld":
            from skmultilearn.ensemble import RakelD

            model = RakelD(base_classifier=lr, labelset_size=3,
                           base_classifier_require_dense=[False, True])
        else:
            from skmultilearn.adapt import MLkNN

            note = _patch_skml_mlknn()
            model = MLkNN(k=10)
        t0, c0 = time.perf_counter(), time.process_time()
        # integer labels: skml-ng's MLkNN indexes its count tables with sums of the label
        # matrix, which fail ("Inexact indices") when the labels are floats
        model.fit(Xtr, sp.csr_matrix(Yd))
        t1, c1 = time.perf_counter(), time.process_time()
        S = model.predict_proba(Xte)
        S = S.toarray() if sp.issparse(S) else np.asarray(S)
        P = model.predict(Xte)
        P = (P.toarray() if sp.issparse(P) else np.asarray(P)) > 0
        t2 = time.perf_counter()
    else:
        if method == "sk-chain":
            from sklearn.multioutput import ClassifierChain as SkChain

            model = SkChain(lr, random_state=0)
        else:
            from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

            cls = RandomForestClassifier if method == "sk-forest" else ExtraTreesClassifier
            model = cls(n_estimators=100, n_jobs=threads, random_state=0)
        t0, c0 = time.perf_counter(), time.process_time()
        model.fit(Xtr, Yd)
        t1, c1 = time.perf_counter(), time.process_time()
        if method == "sk-chain":
            S = model.predict_proba(Xte)
        else:
            S = np.column_stack([p[:, list(c).index(1)] if 1 in list(c) else np.zeros(Xte.shape[0])
                                 for p, c in zip(model.predict_proba(Xte), model.classes_)])
        P = S > 0.5
        t2 = time.perf_counter()
    return {"train_s": t1 - t0, "train_cpu_s": c1 - c0, "predict_s": t2 - t1,
            "S": np.asarray(S, np.float64), "P": P, "note": note}


def child(method: str, folder: Path, threads: int, budget: float) -> None:
    if method in LABELWISE:
        out = run_labelwise(method, folder, threads)
    elif method in AUTO:
        out = run_auto(method, folder, threads, budget)
    else:
        out = run_peer(method, folder, threads)
    np.save(folder / f"{method}-S.npy", out.pop("S"))
    np.save(folder / f"{method}-P.npy", out.pop("P"))
    for key in ("P0", "P_macro"):
        if key in out:
            np.save(folder / f"{method}-{key}.npy", out.pop(key))
    out["peak_rss_mb"] = _peak_rss_mb()
    (folder / f"{method}.json").write_text(json.dumps(out))


# ---------------------------------------------------------------------- parent
def prepare(name: str, folder: Path) -> tuple[sp.csr_matrix, int]:
    sys.path.insert(0, str(ROOT / "src"))
    from labelwise.cli._common import load_dataset

    base = DATA / f"mulan-{name}"
    tr_file, te_file = FILES.get(name, (f"{name}-train.arff", f"{name}-test.arff"))
    tr = load_dataset(str(base / tr_file), None, [])
    te = load_dataset(str(base / te_file), None, [])
    if list(tr.labels.names) != list(te.labels.names):
        raise SystemExit(f"{name}: train and test label names differ")
    arrays = {}
    for key, M in (("xtr", tr.X), ("ytr", tr.Y), ("xte", te.X)):
        M = sp.csr_matrix(M, dtype=np.float32 if key != "ytr" else np.float64)
        arrays.update({f"{key}_data": M.data, f"{key}_indices": M.indices.astype(np.int64),
                       f"{key}_indptr": M.indptr.astype(np.int64),
                       f"{key}_shape": np.asarray(M.shape, np.int64)})
    np.savez(folder / "data.npz", **arrays)
    return sp.csr_matrix(te.Y), tr.X.shape[0]


def measure(Yte: sp.csr_matrix, S: np.ndarray, P: np.ndarray) -> dict:
    from labelwise.metrics import (
        LabelSets,
        f1_score,
        hamming_loss,
        mean_average_precision,
        subset_accuracy,
    )

    Ps = LabelSets(sp.csr_matrix(P.astype(np.float32)))
    return {"micro_f1": f1_score(Yte, Ps, average="micro"),
            "macro_f1": f1_score(Yte, Ps, average="macro"),
            "hamming_loss": hamming_loss(Yte, Ps), "subset_accuracy": subset_accuracy(Yte, Ps),
            "map": mean_average_precision(Yte, S)}


#: labelwise's bytecode, compiled once before the runs (``PYTHONPYCACHEPREFIX``): an installed
#: package has it (pip compiles it), as the peers' packages do, so a module labelwise imports
#: inside a fit is not compiled from source in the timed fit, even where the environment
#: sets ``PYTHONDONTWRITEBYTECODE``
PYCACHE = ROOT / "bench-results" / "pycache"


def _bytecode_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def compile_bytecode() -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src" / "labelwise")],
                   env=_bytecode_env(), check=True)


def run_one(method: str, folder: Path, threads: int, timeout: float, budget: float) -> dict:
    if method in LABELWISE or method in AUTO:
        python = sys.executable
    else:
        python = str((LML_VENV if method.startswith("lml") else PEER_VENV) / "bin" / "python")
    env = {**_bytecode_env(), "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "NUMBA_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    cmd = [python, __file__, "--child", method, "--folder", str(folder),
           "--threads", str(threads), "--budget", str(budget)]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return {**json.loads((folder / f"{method}.json").read_text()), "process_s": wall}


HEADER = ("| method | micro-F1 | macro-F1 | Hamming | subset acc | mAP | train s | train CPU s | "
          "tune s | predict s | peak RSS MB | micro/macro-F1 @0.5 | micro/macro-F1 tuned for "
          "macro-F1 | load | note |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def row(rec: dict) -> str:
    if "error" in rec:
        return f"| {rec['method']} | failed: {rec['error']} ||||||||||||||"
    note = rec.get("note", "")
    if "chosen" in rec:
        note = (f"chose {rec['chosen']['candidate']} (budget {rec['budget_s']:.0f} s, "
                f"{len(rec['leaderboard'])} candidates)")
    untuned = (f"{rec['micro_f1_at_default']:.3f} / {rec['macro_f1_at_default']:.3f}"
               if "micro_f1_at_default" in rec else "")
    for_macro = (f"{rec['micro_f1_tuned_macro']:.3f} / {rec['macro_f1_tuned_macro']:.3f}"
                 if "micro_f1_tuned_macro" in rec else "")
    tune = f"{rec['tune_s']:.2f}" if "tune_s" in rec else ""
    # (records before the CPU seconds and the load average were kept show blanks there)
    cpu = f"{rec['train_cpu_s']:.3f}" if "train_cpu_s" in rec else ""
    load = f"{rec['loadavg'][0]:.2f}" if "loadavg" in rec else ""
    return (f"| {rec['method']} | {rec['micro_f1']:.3f} | {rec['macro_f1']:.3f} | "
            f"{rec['hamming_loss']:.4f} | {rec['subset_accuracy']:.3f} | {rec['map']:.3f} | "
            f"{rec['train_s']:.3f} | {cpu} | {tune} | {rec['predict_s']:.2f} | "
            f"{rec['peak_rss_mb']:.0f} | {untuned} | {for_macro} | {load} | {note} |")


def report(names: list[str]) -> None:
    order = {m: i for i, m in enumerate([*AUTO, *LABELWISE, *PEERS])}
    for name in names:
        path = RESULTS / f"small-{name}.json"
        if not path.exists():
            continue
        doc = json.loads(path.read_text())
        print(f"\n### {name} ({doc['n_train']} train / {doc['n_test']} test rows, "
              f"{doc['n_labels']} labels)\n")
        print(HEADER)
        for rec in sorted(doc["records"].values(), key=lambda r: order.get(r["method"], 99)):
            print(row(rec))


#: best micro-F1 / macro-F1 published by Bogatinovski et al. 2022 (as quoted in issue 22)
PUBLISHED = {"emotions": (0.719, 0.698), "scene": (0.792, 0.800), "yeast": (0.682, 0.483),
             "enron": (0.610, 0.229), "medical": (0.813, 0.400), "tmc2007": (0.792, 0.710)}
#: lazy learners (ML-kNN): scikit-multilearn's fit stores the rows and leaves the neighbour
#: search to predict, so the family comparison times fit + predict for both sides
LAZY = ("mlknn",)
#: labelwise family -> the peers of the same family
SAME_FAMILY = {"ovr": ("skml-br", "lml-thresh"), "chain": ("skml-cc", "sk-chain"),
               "powerset": ("skml-lp",), "rakel": ("skml-rakeld",), "mlknn": ("skml-mlknn",),
               "forest": ("sk-forest",), "extra": ("sk-extra",)}


def summary(names: list[str]) -> None:
    """auto against the best peer and the published figures; each family against the
    peers of the same family (fit-time ratio, F1 at equal protocol and tuned)."""
    print("\n| dataset | auto micro / macro | best peer micro (who) | best peer macro (who) | "
          "published micro / macro | auto train s / budget s | chosen |")
    print("|---|---|---|---|---|---|---|")
    pairs = []
    for name in names:
        path = RESULTS / f"small-{name}.json"
        if not path.exists():
            continue
        recs = {m: r for m, r in json.loads(path.read_text())["records"].items()
                if "error" not in r}
        peers = [r for m, r in recs.items() if m in PEERS]
        a = recs.get("auto")
        bm = max(peers, key=lambda r: r["micro_f1"], default=None)
        bM = max(peers, key=lambda r: r["macro_f1"], default=None)
        pub = PUBLISHED.get(name)
        print(f"| {name} | " + (f"{a['micro_f1']:.3f} / {a['macro_f1']:.3f}" if a else "-")
              + " | " + (f"{bm['micro_f1']:.3f} ({bm['method']})" if bm else "-")
              + " | " + (f"{bM['macro_f1']:.3f} ({bM['method']})" if bM else "-")
              + " | " + (f"{pub[0]:.3f} / {pub[1]:.3f}" if pub else "-")
              + " | " + (f"{a['train_s']:.0f} / {a['budget_s']:.0f}" if a else "-")
              + " | " + (a["chosen"]["candidate"] if a else "-") + " |")
        for fam, others in SAME_FAMILY.items():
            for other in others:
                if fam in recs and other in recs:
                    pairs.append((name, fam, recs[fam], other, recs[other]))
    print("\n| dataset | family | peer | fit s ours / peer (x faster) | fit CPU s ours / peer | "
          "micro-F1 ours @0.5 / tuned / peer | macro-F1 ours @0.5 / tuned / peer | "
          "ours tuned for macro-F1: micro / macro |")
    print("|---|---|---|---|---|---|---|---|")
    for name, fam, r, other, q in pairs:
        ours, theirs, what = r["train_s"], q["train_s"], ""
        if fam in LAZY:  # fit + predict (the peer's fit defers the neighbour search)
            ours, theirs = ours + r["predict_s"], theirs + q["predict_s"]
            what = " fit+predict"
        cpu = (f"{r['train_cpu_s']:.3f} / {q['train_cpu_s']:.3f}"
               if "train_cpu_s" in r and "train_cpu_s" in q and not what else "")
        print(f"| {name} | {fam} | {other} | {ours:.3f} / {theirs:.3f} "
              f"({theirs / max(ours, 1e-9):.1f}x){what} | {cpu} | "
              f"{r.get('micro_f1_at_default', float('nan')):.3f} / {r['micro_f1']:.3f} / "
              f"{q['micro_f1']:.3f} | {r.get('macro_f1_at_default', float('nan')):.3f} / "
              f"{r['macro_f1']:.3f} / {q['macro_f1']:.3f} | "
              + (f"{r['micro_f1_tuned_macro']:.3f} / {r['macro_f1_tuned_macro']:.3f}"
                 if "micro_f1_tuned_macro" in r else "") + " |")


def save_records(name: str, facts: dict, records: list[dict]) -> None:
    """Merge ``records`` into bench-results/small-NAME.json (atomically)."""
    from labelwise.atomic import atomic_write

    path = RESULTS / f"small-{name}.json"
    RESULTS.mkdir(exist_ok=True)
    doc = json.loads(path.read_text()) if path.exists() else {"records": {}}
    doc.update(facts)
    for rec in records:
        doc["records"][rec["method"]] = rec
    with atomic_write(path) as f:
        f.write(json.dumps(doc, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--methods", default=",".join([*AUTO, *LABELWISE, *PEERS]))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--budget", type=float, default=120, help="auto's budget in seconds")
    ap.add_argument("--report", action="store_true", help="print the saved tables and exit")
    ap.add_argument("--summary", action="store_true",
                    help="print auto against the peers and each family against its peers")
    ap.add_argument("--child")
    ap.add_argument("--folder")
    args = ap.parse_args()
    if args.child:
        child(args.child, Path(args.folder), args.threads, args.budget)
        return
    sys.path.insert(0, str(ROOT / "src"))
    names = [n for n in args.datasets.split(",") if n]
    for name in names:
        if name not in DATASETS:
            raise SystemExit(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if args.report or args.summary:
        if args.report:
            report(names)
        if args.summary:
            summary(names)
        return
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(LABELWISE) - set(PEERS) - set(AUTO))
    if unknown:
        raise SystemExit(f"unknown methods: {', '.join(unknown)}")
    compile_bytecode()
    for name in names:
        if not (DATA / f"mulan-{name}").is_dir():
            print(f"skipping {name}: {DATA / f'mulan-{name}'} is absent", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory(prefix="lw-small-") as tmp:
            folder = Path(tmp)
            Yte, n_train = prepare(name, folder)
            facts = {"dataset": name, "n_train": n_train, "n_test": Yte.shape[0],
                     "n_labels": Yte.shape[1]}
            print(f"\n### {name} ({n_train} train / {Yte.shape[0]} test rows, "
                  f"{Yte.shape[1]} labels)\n")
            print(HEADER, flush=True)
            for method in methods:
                rec = {"dataset": name, "method": method, "threads": args.threads,
                       "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "loadavg": list(os.getloadavg()),
                       **run_one(method, folder, args.threads, args.timeout, args.budget)}
                if "error" not in rec:
                    S = np.load(folder / f"{method}-S.npy")
                    P = np.load(folder / f"{method}-P.npy")
                    rec.update(measure(Yte, S, P))
                    if (folder / f"{method}-P0.npy").exists():
                        at = measure(Yte, S, np.load(folder / f"{method}-P0.npy"))
                        rec["micro_f1_at_default"] = at["micro_f1"]
                        rec["macro_f1_at_default"] = at["macro_f1"]
                    if (folder / f"{method}-P_macro.npy").exists():
                        at = measure(Yte, S, np.load(folder / f"{method}-P_macro.npy"))
                        rec["micro_f1_tuned_macro"] = at["micro_f1"]
                        rec["macro_f1_tuned_macro"] = at["macro_f1"]
                print(row(rec), flush=True)
                save_records(name, facts, [rec])


if __name__ == "__main__":
    main()
