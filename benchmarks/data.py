"""Datasets of the XMC benchmark (``benchmarks/xmc.py``), written once into a cache folder.

Every dataset becomes ``<cache>/<name>/train.txt`` and ``test.txt`` in XC format (header
``n_rows n_features n_labels``, then ``l1,l2 idx:val ...``, 0-based feature indices and label
ids, values ``%.9g`` float32), which omikuji reads natively and napkinXC, PECOS and
LibMultiLabel read as LIBSVM multi-label text after the header line. ``meta.json`` beside them
records the sizes, the source and the propensity preset used for PSP@k. Files are written
atomically (``labelwise.io.write``); an existing folder with a ``meta.json`` of the same
``version`` is reused.

Datasets
--------
``bibtex``, ``delicious``
    The MULAN train/test splits (equal to the XC repository's), read with
    ``labelwise.datasets.load("mulan-bibtex", split=...)``; features as given (binary).
``cooking``
    cooking.stackexchange (fastText tutorial split: 12,404 train / 3,000 test questions).
    Texts become tf-idf with scikit-learn's ``TfidfVectorizer`` fitted on train only:
    unigrams + bigrams, ``min_df=2``, ``sublinear_tf=True``, l2-normalised rows.
``synthetic`` / ``synthetic-quick`` / ``synthetic-1m``
    A power-law XMC set from a latent label-cluster model, deterministic for its seed
    (:func:`synthetic`): 300,000 labels, 200,000 train / 20,000 test rows (quick: 30,000
    labels, 20,000 / 2,000 rows). Every label has at least one train row.
    ``synthetic-1m`` (the Dask benchmark's 1M-label set, ``benchmarks/dask_scale.py xl``):
    1,000,000 labels in 20,000 clusters, 500,000 features, 600,000 train / 20,000 test rows;
    the same label power law (an anchor label drawn 70% from ``p(rank r) ~ r^-0.8`` over a
    random ranking of the labels, 30% uniformly) and the same feature draws as ``synthetic``.
``synthetic-1m-2x``
    ``synthetic-1m`` with twice the train rows: 1,000,000 labels in 20,000 clusters,
    500,000 features, 1,200,000 train / 20,000 test rows (2.66 labels and 37.7 features a
    row: fewer labels have to be added to rows than at 600,000 rows); the same generator,
    seed and law. Sized from the peers' peak memory at 300,000 and 600,000 rows so that
    omikuji's projected peak is well above a 24 GiB machine (the README's 1M-label section).
``synthetic-1m-300k`` / ``synthetic-1m-150k``
    The same 1M labels with 300,000 / 150,000 train rows (20,000 test rows): the probes of
    the peers' memory and time that sized ``synthetic-1m-2x``. Every label still gets a
    train row, so these rows carry more labels (4.4 a row at 300,000).
``synthetic-250k-q``
    A quarter of ``synthetic-1m`` in every dimension (250,000 labels in 5,000 clusters,
    125,000 features, 150,000 train / 5,000 test rows): where the memory of the Dask path's
    processes is measured in minutes.
``reuters``
    Reuters-21578, ModApte train/test, R90 topics (7,770 / 3,019 documents, 90 labels),
    tf-idf as cooking (fitted on train): about 160 features a row.
``enron``
    The Enron emails with categories (``enron-berkeley-annotated``: raw emails, 53 labels),
    split by ``labelwise.split.GroupIterativeStratifiedShuffleSplit(**ENRON_SPLIT)`` over the
    mailbox owner (the dataset's groups), tf-idf as cooking: about 1,200 features a row.
``synthetic-long``
    The synthetic model with long rows (``SYNTHETIC_DRAWS``): 3,000 labels, 20,000 / 2,000
    rows, about 630 features a row.
``synthetic-27k``
    The synthetic model shaped like the issue's second held-out corpus (#18: 43K items,
    200K tf-idf features, 27K labels): 27,000 labels in 540 clusters, 200,000 features,
    43,000 / 10,900 rows, medium rows (``SYNTHETIC_DRAWS``: about 230 features a row).
``synthetic-10k``
    Another medium-row shape, a confirm set for rules read off the sets above: 10,000
    labels in 200 clusters, 100,000 features, 15,000 / 3,000 rows, about 140 features a row.

Run ``python benchmarks/data.py [--cache bench-data] [NAME ...]`` to prepare them ahead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

VERSION = 1
DEFAULT_CACHE = Path(__file__).resolve().parent.parent / "bench-data"
DATASETS = ("bibtex", "delicious", "cooking", "synthetic", "synthetic-quick", "reuters", "enron",
            "synthetic-long", "synthetic-1m", "synthetic-1m-2x", "synthetic-1m-300k",
            "synthetic-1m-150k", "synthetic-250k-q", "synthetic-27k",
            "synthetic-10k")
MIRROR = "/work/shared/datasets"

#: sizes of the synthetic sets: (n_labels, n_clusters, n_features, n_train, n_test)
SYNTHETIC_SIZES = {
    "synthetic": (300_000, 6_000, 200_000, 200_000, 20_000),
    "synthetic-quick": (30_000, 600, 50_000, 20_000, 2_000),
    "synthetic-long": (3_000, 150, 100_000, 20_000, 2_000),
    "synthetic-27k": (27_000, 540, 200_000, 43_000, 10_900),
    "synthetic-10k": (10_000, 200, 100_000, 15_000, 3_000),
    "synthetic-1m": (1_000_000, 20_000, 500_000, 600_000, 20_000),
    "synthetic-1m-2x": (1_000_000, 20_000, 500_000, 1_200_000, 20_000),
    "synthetic-1m-300k": (1_000_000, 20_000, 500_000, 300_000, 20_000),
    "synthetic-1m-150k": (1_000_000, 20_000, 500_000, 150_000, 20_000),
    "synthetic-250k-q": (250_000, 5_000, 125_000, 150_000, 5_000),
}
#: feature draws per row of the synthetic sets (own, cluster's, noise): see synthetic()
SYNTHETIC_DRAWS = {"synthetic-long": (20, 30, 600), "synthetic-27k": (10, 15, 200),
                   "synthetic-10k": (6, 10, 120)}
#: the one tf-idf recipe of the text sets, fitted on train only
TFIDF = dict(sublinear_tf=True, ngram_range=(1, 2), min_df=2, norm="l2", dtype=np.float32)
#: Enron's group-aware split: one GroupIterativeStratifiedShuffleSplit draw
ENRON_SPLIT = dict(n_splits=1, test_size=0.25, random_state=0)


# ---------------------------------------------------------------------- synthetic
def synthetic(n_labels: int, n_clusters: int, n_features: int, n_train: int, n_test: int, *,
              seed: int = 0, zipf_a: float = 0.8, draws: tuple[int, int, int] = (4, 6, 15)):
    """A learnable power-law multi-label set: ``(X_train, Y_train, X_test, Y_test)`` CSR.

    Model: labels are split at random into ``n_clusters`` clusters. Each cluster owns 40
    topic features and each label 8 own features (drawn from a Zipf-like feature
    distribution, so frequent features are shared). A row draws ``1 + Poisson(1.6)`` labels
    (at most 12): an anchor label from a mixture (70% a power law over a random ranking of
    the labels, ``p(rank r) ~ r^-zipf_a``; 30% uniform), the rest from the anchor's cluster
    (60%) or the same mixture (40%). Labels that no train row drew are each added to one
    random train row, so every label has a positive. Features: for each of the row's labels
    ``draws[0]`` (4) draws from its own features and ``draws[1]`` (6) from its cluster's, plus
    ``draws[2]`` (15) noise draws from the global feature distribution; values are
    ``1 + log(count)``, rows l2-normalised. ``draws=(40, 60, 1000)`` gives long rows
    (``synthetic-long``: documents rather than titles, most of each row noise).
    """
    n_own, n_top, n_noise = draws
    rng = np.random.default_rng(seed)
    L, C, V = n_labels, n_clusters, n_features
    cluster = rng.integers(0, C, L)
    order = np.argsort(cluster, kind="stable")
    c_start = np.searchsorted(cluster[order], np.arange(C))
    c_size = np.bincount(cluster, minlength=C)
    rank = rng.permutation(L)
    p_label = 1.0 / (rank + 1.0) ** zipf_a
    cdf_label = np.cumsum(p_label / p_label.sum())
    f_w = 1.0 / np.arange(1, V + 1) ** 0.7
    f_perm = rng.permutation(V)
    cdf_feat = np.cumsum(f_w / f_w.sum())

    def draw_feats(size):
        return f_perm[np.minimum(np.searchsorted(cdf_feat, rng.random(size)), V - 1)]

    def draw_labels(size):
        out = np.minimum(np.searchsorted(cdf_label, rng.random(size)), L - 1)
        uni = rng.random(size) < 0.3
        out[uni] = rng.integers(0, L, int(uni.sum()))
        return out

    cluster_feats = draw_feats((C, 40))
    label_feats = draw_feats((L, 8))
    n = n_train + n_test
    k = np.minimum(1 + rng.poisson(1.6, n), 12)
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    first = np.ones(rows.size, bool)
    first[1:] = rows[1:] != rows[:-1]
    anchor = draw_labels(n)
    labels = np.empty(rows.size, np.int64)
    labels[first] = anchor
    rest = np.flatnonzero(~first)
    a_c = cluster[anchor[rows[rest]]]
    same = rng.random(rest.size) < 0.6
    pick = c_start[a_c] + (rng.random(rest.size) * c_size[a_c]).astype(np.int64)
    labels[rest] = np.where(same, order[np.minimum(pick, L - 1)], draw_labels(rest.size))
    # every label gets a train row
    seen = np.zeros(L, bool)
    seen[labels[rows < n_train]] = True
    missing = np.flatnonzero(~seen)
    rows = np.concatenate([rows, rng.integers(0, n_train, missing.size)])
    labels = np.concatenate([labels, missing])
    keys = np.unique(rows * L + labels)
    rows, labels = keys // L, keys % L
    Y = sp.csr_matrix((np.ones(keys.size, np.float32), (rows, labels)), shape=(n, L))
    # features
    own = label_feats[labels[:, None], rng.integers(0, 8, (labels.size, n_own))].ravel()
    top = cluster_feats[cluster[labels][:, None],
                        rng.integers(0, 40, (labels.size, n_top))].ravel()
    noise_rows = np.repeat(np.arange(n, dtype=np.int64), n_noise)
    f_rows = np.concatenate([np.repeat(rows, n_own), np.repeat(rows, n_top), noise_rows])
    f_cols = np.concatenate([own, top, draw_feats(noise_rows.size)])
    X = sp.csr_matrix((np.ones(f_rows.size, np.float32), (f_rows, f_cols)), shape=(n, V))
    X.sum_duplicates()
    X.data = 1.0 + np.log(X.data)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.csr_matrix(sp.diags(1.0 / norms) @ X, dtype=np.float32)
    X.sort_indices()
    return X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]


# ---------------------------------------------------------------------- real sets
def _mulan(name: str):
    import labelwise.datasets as D

    tr = D.load(f"mulan-{name}", split="train")
    te = D.load(f"mulan-{name}", split="test")
    return (sp.csr_matrix(tr.X, dtype=np.float32), tr.Y, sp.csr_matrix(te.X, dtype=np.float32),
            te.Y, tr.labels)


def _tfidf(tr, te):
    """tf-idf (``TFIDF``) fitted on the train texts; test labels matched to train's by name."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if list(te.labels.names) != list(tr.labels.names):
        raise SystemExit("train and test label spaces differ")
    vec = TfidfVectorizer(**TFIDF)
    Xtr = vec.fit_transform(tr.X)
    Xte = vec.transform(te.X)
    return Xtr.tocsr(), tr.Y, Xte.tocsr(), te.Y, tr.labels


def _text(name: str):
    import labelwise.datasets as D

    return _tfidf(D.load(name, split="train"), D.load(name, split="test"))


def _enron():
    """Enron emails with categories (whole emails, headers included, as the loader gives
    them), split by ``GroupIterativeStratifiedShuffleSplit(**ENRON_SPLIT)`` over the mailbox
    owner (the dataset's groups), so no mailbox is on both sides."""
    import labelwise.datasets as D
    from labelwise.split import GroupIterativeStratifiedShuffleSplit

    ds = D.load("enron-berkeley-annotated")
    tr_idx, te_idx = next(GroupIterativeStratifiedShuffleSplit(**ENRON_SPLIT).split(ds))
    return _tfidf(ds.subset(tr_idx), ds.subset(te_idx))


# ---------------------------------------------------------------------- cache
def _write(folder: Path, Xtr, Ytr, Xte, Yte, meta: dict) -> None:
    from labelwise.dataset import Dataset
    from labelwise.io import write
    from labelwise.labels import LabelSpace

    folder.mkdir(parents=True, exist_ok=True)
    space = LabelSpace([str(i) for i in range(Ytr.shape[1])])
    for split, X, Y in (("train", Xtr, Ytr), ("test", Xte, Yte)):
        write(Dataset(sp.csr_matrix(X, dtype=np.float32), sp.csr_matrix(Y), space),
              folder / f"{split}.txt", format="xc")
    meta = dict(meta, version=VERSION, n_train=int(Xtr.shape[0]), n_test=int(Xte.shape[0]),
                n_features=int(Xtr.shape[1]), n_labels=int(Ytr.shape[1]),
                nnz_x_train=int(Xtr.nnz), labels_per_row=float(Ytr.nnz / max(Ytr.shape[0], 1)),
                labels_with_train_positive=int((np.diff(sp.csc_matrix(Ytr).indptr) > 0).sum()))
    from labelwise.atomic import atomic_write

    with atomic_write(folder / "meta.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)


def prepare(name: str, cache: str | os.PathLike[str] = DEFAULT_CACHE) -> Path:
    """Write dataset ``name`` into ``cache/name/`` unless it is there; return the folder."""
    if name not in DATASETS:
        raise SystemExit(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    folder = Path(cache) / name
    meta_path = folder / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()).get("version") == VERSION:
        return folder
    os.environ.setdefault("LABELWISE_DATASETS_MIRROR", MIRROR)
    t0 = time.perf_counter()
    if name in ("bibtex", "delicious"):
        Xtr, Ytr, Xte, Yte, _ = _mulan(name)
        meta = {"source": f"MULAN {name} train/test (labelwise.datasets mulan-{name})",
                "propensity": "default"}
    elif name in ("cooking", "reuters"):
        full = {"cooking": "cooking-stackexchange", "reuters": "reuters21578"}[name]
        Xtr, Ytr, Xte, Yte, _ = _text(full)
        split = {"cooking": "fastText split", "reuters": "ModApte train/test, R90 topics"}[name]
        meta = {"source": f"{full} ({split}), TfidfVectorizer(sublinear_tf, ngram_range=(1,2), "
                          "min_df=2, l2) fitted on train", "propensity": "default"}
    elif name == "enron":
        Xtr, Ytr, Xte, Yte, _ = _enron()
        meta = {"source": "enron-berkeley-annotated (raw emails), labelwise.split."
                          f"GroupIterativeStratifiedShuffleSplit({ENRON_SPLIT}) over the "
                          "mailbox owner, TfidfVectorizer(sublinear_tf, ngram_range=(1,2), "
                          "min_df=2, l2) fitted on train", "propensity": "default"}
    else:
        sizes = SYNTHETIC_SIZES[name]
        draws = SYNTHETIC_DRAWS.get(name, (4, 6, 15))
        Xtr, Ytr, Xte, Yte = synthetic(*sizes, seed=0, draws=draws)
        meta = {"source": f"benchmarks/data.py synthetic{sizes} seed=0 draws={draws}",
                "propensity": "default"}
    _write(folder, Xtr, Ytr, Xte, Yte, meta)
    print(f"[data] {name}: written to {folder} in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    return folder


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(DATASETS[:4]))
    ap.add_argument("--cache", default=str(DEFAULT_CACHE))
    args = ap.parse_args(argv)
    for name in args.names:
        folder = prepare(name, args.cache)
        print(folder, json.loads((folder / "meta.json").read_text()))


if __name__ == "__main__":
    main()
