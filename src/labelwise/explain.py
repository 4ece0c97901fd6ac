"""Which terms pushed a label up: per-term contributions of linear and tree models on tf-idf.

For a :class:`~labelwise.pipeline.Pipeline` whose featurizer is
:class:`~labelwise.features.Tfidf` and whose model is a
:class:`~labelwise.models.OneVsRest` or a :class:`~labelwise.models.LabelTree`, the score of
label ``j`` on item ``x`` comes from a linear classifier: the margin ``m = x'.w_j + b_j``,
where ``x'`` is the item's tf-idf row as the model sees it (after the model's own row
normalisation, ``normalize="l2"``: a no-op on tf-idf rows that are already unit length). The
*contribution* of term ``f`` is ``x'_f * w_jf``; the contributions of all terms plus the
intercept ``b_j`` add up to the margin exactly (up to float32 rounding).

- OneVsRest: ``w_j`` is column ``j`` of ``coef_`` and ``b_j`` is ``intercept_[j]``; the margin
  is the model's raw score (``decision_function``).
- LabelTree: ``w_j`` is the classifier of label ``j`` in its leaf (the weights the leaf's node
  stores, decoded from the node-major layout described in
  :func:`labelwise.models._tree_build.node_major_weights`). The label's score also multiplies
  in the classifiers of the inner nodes on its path, which say which *region* of the label
  space an item belongs to rather than why this label among its neighbours, so only the leaf
  classifier is explained. With ``n_trees > 1`` each tree has its own leaf classifier for the
  label; the contributions (and the margin and intercept) reported are their means over the
  trees.

Only terms with a positive contribution are listed (the words that pushed the label up),
best first; ``n_terms`` bounds their number.

:func:`explain_labels` returns, per item, per asked label::

    {"label": "baking", "margin": 0.83, "intercept": -0.41,
     "terms": [{"term": "flour", "value": 0.31, "weight": 2.2, "contribution": 0.68}, ...]}

Labels a pipeline took after training (open labels, scored from their names by a zero-shot
model) have no term weights: they come back with ``"terms": None`` and a ``"reason"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from .errors import DataFormatError, LabelwiseError, UnknownLabelError

__all__ = ["explainable", "explain_labels", "label_contributions", "DEFAULT_TERMS"]

#: terms listed per label unless asked otherwise
DEFAULT_TERMS = 10


def explainable(pipeline: Any) -> bool:
    """Whether :func:`explain_labels` can explain this pipeline: a tf-idf featurizer and a
    OneVsRest or LabelTree model."""
    from .features.tfidf import Tfidf
    from .models.ovr import OneVsRest
    from .models.tree import LabelTree

    return (isinstance(getattr(pipeline, "featurizer", None), Tfidf)
            and isinstance(getattr(pipeline, "model", None), OneVsRest | LabelTree))


def _check(pipeline: Any) -> None:
    if not explainable(pipeline):
        feat = getattr(pipeline, "featurizer", None)
        model = getattr(pipeline, "model", None)
        raise LabelwiseError(
            "explanations need a tf-idf featurizer and a OneVsRest or LabelTree model; this "
            f"pipeline has {type(feat).__name__ if feat is not None else 'no featurizer'} and "
            f"{type(model).__name__}")


def _tree_leaf_weights(model: Any, c: int, features: np.ndarray) -> np.ndarray:
    """Weights of tree classifier ``c`` on ``features`` (sorted int array): float64 array,
    0 where the classifier has no weight."""
    starts = model.node_clf_start_
    v = int(np.searchsorted(starts, c, side="right")) - 1
    jc = c - int(starts[v])
    e0, e1 = int(model.node_feat_start_[v]), int(model.node_feat_start_[v + 1])
    out = np.zeros(features.shape[0], np.float64)
    if e1 == e0 or features.size == 0:
        return out
    feat_id = model.feat_id_[e0:e1]
    pos = np.minimum(np.searchsorted(feat_id, features), feat_id.shape[0] - 1)
    hit = np.flatnonzero(feat_id[pos] == features)
    entries = e0 + pos[hit]
    ptr, weights = model.feat_ptr_, model.weights_
    if model.node_dense_[v]:  # every entry holds the node's m weights, child jc at offset jc
        out[hit] = weights[ptr[entries] + jc]
        return out
    shift = int(model.child_shift_[v])
    for i, e in zip(hit.tolist(), entries.tolist(), strict=True):
        a, b = int(ptr[e]), int(ptr[e + 1])
        where = np.flatnonzero(model.val_child_[a - shift:b - shift] == jc)
        if where.size:
            out[i] = float(weights[a + int(where[0])])
    return out


def _leaf_classifiers(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """(order, starts): the leaf classifiers of label ``j`` (one per tree that holds it) are
    ``order[starts[j]:starts[j + 1]]``. Built once per fitted tree and kept on the model (keyed
    on ``clf_child_``, which a refit replaces)."""
    key = id(model.clf_child_)
    cached = model.__dict__.get("_explain_leaves")
    if cached is None or cached[0] != key:
        child = np.asarray(model.clf_child_)
        leaf = np.flatnonzero(child < 0)
        label = -child[leaf] - 1
        order = leaf[np.argsort(label, kind="stable")]
        starts = np.zeros(len(model.labels_) + 1, np.int64)
        np.cumsum(np.bincount(label, minlength=len(model.labels_)), out=starts[1:])
        cached = model.__dict__["_explain_leaves"] = (key, order, starts)
    return cached[1], cached[2]


def label_contributions(model: Any, x: sp.csr_matrix, labels: Sequence[int]
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(features, values, W, intercepts) of label ids ``labels`` on one row ``x`` (1 x
    n_features CSR, as the model sees it after its own row normalisation): the row's stored
    features (ascending), their values, the labels' classifier weights on them, float64
    (n_row_features, n_labels) (means over trees for a LabelTree), and their intercepts.
    ``values[:, None] * W`` are the contributions; a column's sum plus its intercept is the
    label's margin."""
    from .models.ovr import OneVsRest

    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    feats = np.asarray(x.indices, dtype=np.int64)
    order = np.argsort(feats, kind="stable")
    feats = feats[order]
    vals = np.asarray(x.data, dtype=np.float64)[order]
    if isinstance(model, OneVsRest):
        W = np.asarray(model.coef_[feats][:, labels].toarray(), dtype=np.float64)
        return feats, vals, W, np.asarray(model.intercept_, np.float64)[labels]
    leaves, starts = _leaf_classifiers(model)
    W = np.zeros((feats.shape[0], labels.shape[0]), np.float64)
    b = np.zeros(labels.shape[0], np.float64)
    for col, j in enumerate(labels.tolist()):
        clfs = leaves[starts[j]:starts[j + 1]]
        if clfs.size == 0:  # a valid tree holds every label in a leaf; say so if one does not
            raise LabelwiseError(f"label {j} has no leaf classifier in this tree model")
        W[:, col] = np.mean([_tree_leaf_weights(model, int(c), feats) for c in clfs], axis=0)
        b[col] = float(np.mean(np.asarray(model.intercept_, np.float64)[clfs]))
    return feats, vals, W, b


def explain_labels(pipeline: Any, texts: Sequence[str],
                   labels: Sequence[Sequence[str]], *, n_terms: int = DEFAULT_TERMS
                   ) -> list[list[dict[str, Any]]]:
    """Per item ``texts[i]``, for each label name of ``labels[i]``: the terms that pushed it up
    (module docstring for the form and the arithmetic).

    Raises LabelwiseError when the pipeline is not explainable (:func:`explainable`),
    UnknownLabelError for a label name the pipeline does not hold, DataFormatError for a bad
    ``n_terms`` or mismatched lengths.
    """
    _check(pipeline)
    if isinstance(n_terms, bool) or not isinstance(n_terms, int | np.integer) or n_terms < 1:
        raise DataFormatError(f"n_terms must be a positive int, got {n_terms!r}", field="n_terms")
    if isinstance(texts, str) or len(texts) != len(labels):
        raise DataFormatError(f"texts and labels must be lists of the same length, got "
                              f"{'a string' if isinstance(texts, str) else len(texts)} and "
                              f"{len(labels)}", field="labels")
    model = pipeline.model
    own = model.labels_
    every = pipeline.labels_
    for i, names in enumerate(labels):
        for name in names:
            if name not in every:
                raise UnknownLabelError(f"labels[{i}]: unknown label {name!r}")
    if len(texts) == 0:
        return []
    X = pipeline.featurizer.transform(list(texts))
    X = sp.csr_matrix(model._prepare_X(sp.csr_matrix(X, dtype=np.float32)))
    term_names = _term_names(pipeline.featurizer)
    out = []
    for i, names in enumerate(labels):
        ids = [own.index(name) for name in names if name in own]
        feats, vals, W, b = label_contributions(model, X[i], ids)
        contrib = vals[:, None] * W
        found, col = [], 0
        for name in names:
            if name not in own:
                found.append({"label": name, "terms": None, "margin": None, "intercept": None,
                              "reason": "a label added after training (scored from its name "
                                        "and description): no term weights"})
                continue
            c = contrib[:, col]
            top = [int(t) for t in np.lexsort((feats, -c)) if c[t] > 0][:n_terms]
            found.append({
                "label": name, "margin": float(c.sum() + b[col]), "intercept": float(b[col]),
                "terms": [{"term": term_names(int(feats[t])), "value": float(vals[t]),
                           "weight": float(W[t, col]), "contribution": float(c[t])}
                          for t in top]})
            col += 1
        out.append(found)
    return out


def _term_names(featurizer: Any):
    """A function: column id -> term name (``char:`` prefixed for character n-grams). The
    names are built once per fitted vocabulary and kept on the featurizer (a refit replaces
    ``tables_``, which the cache is keyed on)."""
    key = id(featurizer.tables_)
    cached = featurizer.__dict__.get("_explain_term_names")
    if cached is None or cached[0] != key:
        names = np.asarray(featurizer.feature_names(), dtype=object)
        cached = featurizer.__dict__["_explain_term_names"] = (key, names)
    names = cached[1]
    return lambda f: str(names[f])
