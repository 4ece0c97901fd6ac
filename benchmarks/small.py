"""Small-label-set benchmark: labelwise's label-dependence families beside scikit-multilearn
and scikit-learn, on the MULAN sets with their official train/test splits.

Methods (each run in its own subprocess, one at a time):

- labelwise ``chain``, ``ecc`` (10 random-order chains, bootstrap, beam search),
  ``powerset``, ``rakel`` (RAkELd k=3), ``rakelo`` (RAkELo k=3), ``mlknn``, ``forest``
  (random forest, 100 trees), ``extra`` (extra-trees), ``clr`` (calibrated label ranking),
  ``plst`` / ``cplst`` (label-space reduction) and ``codes`` (ECC output codes): as a user
  runs them, a :class:`labelwise.Pipeline` with the model's defaults, fitted and then ``tune``-d on the
  training rows (5-fold out-of-fold calibration and a micro-F1 threshold policy); the
  training time includes the tuning; no preprocessing outside the pipeline;
- scikit-multilearn(-ng) (its own virtualenv, ``.venv-peers-skml``): ``skml-br``,
  ``skml-cc``, ``skml-lp``, ``skml-rakeld`` (k=3), each on ``LogisticRegression(max_iter=
  1000)``, and ``skml-mlknn`` (k=10);
- scikit-learn (same virtualenv): ``sk-chain`` (``ClassifierChain`` of
  ``LogisticRegression(max_iter=1000)``), ``sk-forest`` and ``sk-extra`` (multi-output
  ``RandomForestClassifier`` / ``ExtraTreesClassifier``, 100 trees), thresholded at 0.5.

Measured: micro-F1, macro-F1, Hamming loss, subset accuracy (from the predicted sets), mAP
(mean over labels of average precision, from the probabilities), train and predict seconds
(wall clock inside the runner, data reading excluded) and peak RSS (the runner's VmHWM).
Metrics are computed here with :mod:`labelwise.metrics`.

Run: ``python benchmarks/small.py [--datasets emotions,scene] [--methods chain,skml-cc]
[--threads 2] [--timeout 1800]``; the table goes to stdout and every record to
``bench-results/small.json``. Setup of the peers::

    python3 -m venv .venv-peers-skml
    .venv-peers-skml/bin/pip install scikit-multilearn-ng scikit-learn
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
LABELWISE = {
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
PEERS = ("skml-br", "skml-cc", "skml-lp", "skml-rakeld", "skml-mlknn", "sk-chain",
         "sk-forest", "sk-extra")
PEER_VENV = ROOT / ".venv-peers-skml"


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


def run_labelwise(method: str, folder: Path, threads: int) -> dict:
    import labelwise.models as models
    from labelwise import Pipeline

    Xtr, Ytr, Xte = _load(folder)
    cls_name, params = LABELWISE[method]
    cls = getattr(models, cls_name)
    if "n_threads" in cls().get_params():
        params = {**params, "n_threads": threads}
    t0 = time.perf_counter()
    pipe = Pipeline(model=cls(**params))
    pipe.fit(Xtr, Ytr)
    pipe.tune(Xtr, Ytr)
    t1 = time.perf_counter()
    L = Ytr.shape[1]
    S = pipe.predict_proba(Xte, k=L).toarray()
    P = pipe.predict(Xte).toarray() > 0
    t2 = time.perf_counter()
    return {"train_s": t1 - t0, "predict_s": t2 - t1, "S": S, "P": P}


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
    return ""


def run_peer(method: str, folder: Path, threads: int) -> dict:
    from sklearn.linear_model import LogisticRegression

    Xtr, Ytr, Xte = _load(folder)
    note = ""
    lr = LogisticRegression(max_iter=1000)
    Yd = Ytr.toarray().astype(np.int64)
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
        t0 = time.perf_counter()
        # integer labels: skml-ng's MLkNN indexes its count tables with sums of the label
        # matrix, which fail ("Inexact indices") when the labels are floats
        model.fit(Xtr, sp.csr_matrix(Yd))
        t1 = time.perf_counter()
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
        t0 = time.perf_counter()
        model.fit(Xtr, Yd)
        t1 = time.perf_counter()
        if method == "sk-chain":
            S = model.predict_proba(Xte)
        else:
            S = np.column_stack([p[:, list(c).index(1)] if 1 in list(c) else np.zeros(Xte.shape[0])
                                 for p, c in zip(model.predict_proba(Xte), model.classes_)])
        P = S > 0.5
        t2 = time.perf_counter()
    return {"train_s": t1 - t0, "predict_s": t2 - t1, "S": np.asarray(S, np.float64), "P": P,
            "note": note}


def child(method: str, folder: Path, threads: int) -> None:
    out = run_labelwise(method, folder, threads) if method in LABELWISE \
        else run_peer(method, folder, threads)
    np.save(folder / f"{method}-S.npy", out.pop("S"))
    np.save(folder / f"{method}-P.npy", out.pop("P"))
    out["peak_rss_mb"] = _peak_rss_mb()
    (folder / f"{method}.json").write_text(json.dumps(out))


# ---------------------------------------------------------------------- parent
def prepare(name: str, folder: Path) -> tuple[sp.csr_matrix, int]:
    sys.path.insert(0, str(ROOT / "src"))
    from labelwise.cli._common import load_dataset

    base = DATA / f"mulan-{name}"
    tr = load_dataset(str(base / f"{name}-train.arff"), None, [])
    te = load_dataset(str(base / f"{name}-test.arff"), None, [])
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


def run_one(method: str, folder: Path, threads: int, timeout: float) -> dict:
    python = sys.executable if method in LABELWISE else str(PEER_VENV / "bin" / "python")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "NUMBA_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    cmd = [python, __file__, "--child", method, "--folder", str(folder),
           "--threads", str(threads)]
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return json.loads((folder / f"{method}.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="emotions,scene,yeast")
    ap.add_argument("--methods", default=",".join([*LABELWISE, *PEERS]))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--child")
    ap.add_argument("--folder")
    args = ap.parse_args()
    if args.child:
        child(args.child, Path(args.folder), args.threads)
        return
    sys.path.insert(0, str(ROOT / "src"))
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(LABELWISE) - set(PEERS))
    if unknown:
        raise SystemExit(f"unknown methods: {', '.join(unknown)}")
    records = []
    for name in args.datasets.split(","):
        if name not in DATASETS:
            raise SystemExit(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
        if not (DATA / f"mulan-{name}").is_dir():
            print(f"skipping {name}: {DATA / f'mulan-{name}'} is absent", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory(prefix="lw-small-") as tmp:
            folder = Path(tmp)
            Yte, n_train = prepare(name, folder)
            print(f"\n### {name} ({n_train} train / {Yte.shape[0]} test rows, "
                  f"{Yte.shape[1]} labels)\n")
            print("| method | micro-F1 | macro-F1 | Hamming | subset acc | mAP | train s | "
                  "predict s | peak RSS MB | note |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for method in methods:
                rec = {"dataset": name, "method": method, **run_one(method, folder,
                                                                    args.threads, args.timeout)}
                if "error" not in rec:
                    S = np.load(folder / f"{method}-S.npy")
                    P = np.load(folder / f"{method}-P.npy")
                    rec.update(measure(Yte, S, P))
                    print(f"| {method} | {rec['micro_f1']:.3f} | {rec['macro_f1']:.3f} | "
                          f"{rec['hamming_loss']:.4f} | {rec['subset_accuracy']:.3f} | "
                          f"{rec['map']:.3f} | {rec['train_s']:.2f} | {rec['predict_s']:.2f} | "
                          f"{rec['peak_rss_mb']:.0f} | {rec.get('note', '')} |", flush=True)
                else:
                    print(f"| {method} | failed: {rec['error']} |||||||||", flush=True)
                records.append(rec)
    out = ROOT / "bench-results" / "small.json"
    out.parent.mkdir(exist_ok=True)
    from labelwise.atomic import atomic_write

    with atomic_write(out) as f:
        f.write(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
