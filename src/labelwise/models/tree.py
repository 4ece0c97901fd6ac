"""``LabelTree``: a label-tree model for extreme label sets (Parabel / Bonsai style).

Training (see :mod:`labelwise.models._tree_build` for the layout and task format):

1. X is row-normalised (``normalize="l2"``, the preprocessing Parabel, Bonsai and PECOS
   expect of tf-idf features; ``normalize=None`` uses X as given). The same map is applied
   at prediction time, inside the model.
2. Label representations: PIFA (the normalised sum of the label's positive rows), and/or
   the rows of a ``label_features`` matrix passed to ``fit`` (concatenated when both).
3. ``n_trees`` trees, each from balanced spherical hierarchical k-means on those
   representations (``branching`` children per node, leaves of at most ``max_leaf_size``
   labels, ``cluster_iters`` rounds per 2-means split); trees differ by their random
   centroid seeds.
4. At every node a linear classifier per child, trained on the rows positive for that node,
   by the same dual coordinate descent as :class:`~labelwise.models.OneVsRest` (``loss``,
   ``C``, ``bias``, ``tol``, ``max_iter``), then pruned (``prune_threshold``, 0.1 as in
   Parabel/omikuji). A node trained on ``m`` of the ``n`` rows uses
   ``C * (n / m) ** C_node_power`` (see :func:`~labelwise.models._tree_build.node_C`): the
   DCD objective sums the loss over the node's rows, so with one C everywhere the deep
   nodes, which see few rows, are regularised far more than the root. Every node is an
   independent task run by a pool of ``n_threads`` threads over one shared CSR X; a node
   solved one classifier at a time that holds a large share of the work is cut over the
   threads (:func:`~labelwise.models._tree_build.split_tasks`; the same model). How a
   node's classifiers are solved depends on its shape, never the optimum reached: with
   the squared hinge, in lockstep blocks of at most ``BLOCK_BYTES`` (one pass over a row's
   features gives every classifier's margin; a node too big for one block is cut into the
   fewest that fit); a node of few long rows (``2 nnz >= n^2``, as the Enron emails' root)
   one classifier at a time on its Gram matrix (:mod:`~labelwise.models._dcd_gram`:
   margins kept instead of weights, a row's margin one read); otherwise one at a time.

Scores: ``decision_function`` returns each label's estimated probability, the product of the
classifier probabilities along its path (``exp(-max(0, 1 - m)^p)`` for the squared hinge,
``p = hinge_power`` for the classifier of the label itself, 3 by default as in PECOS, and
``p = inner_hinge_power`` for the classifiers that lead to nodes, 2 by default as in Parabel
and omikuji; ``sigmoid(m)`` for the logistic loss), found by a beam search of width
``beam_size`` and averaged over the trees (a tree that does not reach a label contributes
0). Labels no beam reaches score 0. ``predict`` thresholds at 0.5 and ``predict_proba``
returns the same numbers.

Learned state: ``node_clf_start_``, ``clf_child_``, ``tree_roots_`` (the trees, concatenated;
see :func:`labelwise.models._tree_kernels.beam_search`); the pruned weights laid out node by
node, feature-major (``node_feat_start_``, ``feat_id_``, ``feat_ptr_``, ``weights_``,
``node_dense_``, ``child_shift_``, ``val_child_``; see
:func:`labelwise.models._tree_build.node_major_weights`: sparse (child, weight) pairs, or a
dense block for a node where that is at most twice as big; features found by a search, or
directly when the node's features are padded to the range they span, so scoring a node
costs ``O(nnz(x) log F + matched weights)`` or less); ``intercept_``, ``n_iter_`` (DCD
epochs) per classifier; ``labels_without_positives_``.

Defaults (measured on MULAN Bibtex and Delicious, 2-core machine, before the block solver
changed the DCD row order, which moved P@1 by 0.15 or less; see the benchmark notes):
``branching=16`` (Bonsai/PECOS-like shallow trees: on Delicious P@1 67.3 against 66.2 for
Parabel's binary trees, at the same cost), ``max_leaf_size=100`` (Parabel's; 50 or 200 lose
0.4-0.6 P@1 on Delicious), ``max_iter=20`` (Parabel's and omikuji's cap; re-checked
with ``tol``, choosing on Bibtex, Delicious, cooking, synthetic-quick, MULAN Enron and
three generated long-row sets and confirming on Reuters and the Enron emails: a cap of
10 held on every choosing set and cut Reuters' fit by a quarter, but lost on the Enron
emails, whose root runs 18-19 epochs: P@1 / P@3 / P@5 / PSP@5 -0.72 / -0.59 / -0.27 /
-0.36, means over seeds 0-3; a cap of 6 or 8, or ``tol=0.2``, lost up to 2.0 P@1 on the
hardest generated set), ``n_trees=1``
(three trees cost three times as much and gained nothing measurable on these sets: Bibtex
64.3 either way, Delicious 67.1 vs 67.3; raise it for large label sets, where ensembles help
Parabel), ``normalize="l2"`` (without it Bibtex drops from 64.3 to 54.0 P@1),
``beam_size=40`` with ``inner_hinge_power=2`` (the peers use a beam of 10 and one exponent
at every node; both are read at prediction only): on the 300K-label set (seed 0, 20K test
rows, 2 threads) P@1 / P@3 / P@5 with the exponent 3 everywhere are 38.31 / 17.21 / 10.87 at
beam 10 (2.7 s), 39.90 / 18.36 / 11.75 at 20 (5.0 s) and 40.59 / 18.98 / 12.29 at 50
(10.0 s); with 2 at the inner nodes, 40.93 / 19.12 / 12.31 at 20, 41.76 / 19.87 / 12.96 at
30 (7.3 s), 42.34 / 20.39 / 13.41 at 40 (9.2 s) and 42.60 / 20.68 / 13.69 at 50 (the peers
take 27 s or more). The flatter inner exponent keeps more paths alive in the beam; one
steeper than the leaves' loses (4 inside, 3 at the leaves: 38.04 at beam 20), and a steeper
leaf exponent gains more there (5 with 3 inside: 42.92 / 21.28 / 14.19 at beam 50) but loses
0.25 / 0.0 / 0.4 on Delicious. Means over seeds 0-3, inner exponent 2 against 3: Bibtex
64.66 / 39.91 / 28.92 vs 64.63 / 39.85 / 28.90, Delicious 66.77 / 60.44 / 55.78 vs 66.81 /
60.44 / 55.74, cooking 70.52 / 44.75 / 30.73 vs 70.68 / 44.19 / 30.27; on these three sets
the root has at most 10 children, all leaves, so any beam of 10 or more is exhaustive.
``cluster_iters=10`` (PECOS's k-means uses 20): mean P@1 over seeds 0-3 against 20 rounds,
Bibtex 64.22 either way, Delicious 66.58 vs 66.65, cooking 70.39 vs 70.50, synthetic-quick
38.63 vs 38.29, and on the 300K-label set 37.20 vs 37.23 with the tree built in 12 s instead
of 16 s. ``hinge_power=3`` (PECOS's "l3-hinge"; Parabel and omikuji use 2): mean P@1 / P@3 /
P@5 over seeds 0-3 against 2, Bibtex 64.38 / 39.40 / 28.56 vs 64.22 / 39.08 / 28.50, cooking
70.33 / 44.01 / 30.02 vs 70.38 / 43.54 / 29.42, Delicious 66.51 / 60.28 / 55.71 vs 66.58 /
60.56 / 55.94, and on the 300K-label set (seed 0) 37.86 / 16.81 / 10.58 vs 37.20 / 15.85 /
9.81; 4 gains more on the other three but loses 0.2 / 0.4 / 0.5 on Delicious. ``C=0.25``
with ``C_node_power=0.75`` (0 means one C everywhere, as the peers do; the root is trained
at C, a node with a sixteenth of the rows at 2.0), chosen with ``hinge_power=3`` on P@1 /
P@3 / P@5, means over seeds 0-3 (the 300K-label set: seed 0), against the earlier C=0.5 with
0.25: Bibtex 64.63 / 39.85 / 28.90 vs 64.38 / 39.40 / 28.56, Delicious 66.81 / 60.44 / 55.75
vs 66.51 / 60.28 / 55.71, cooking 70.68 / 44.19 / 30.27 vs 70.33 / 44.01 / 30.02, 300K
labels 38.31 / 17.21 / 10.87 vs 37.86 / 16.81 / 10.58, in about the same fit time. C=0.35
with 0.25 is as good on the small sets but loses 0.7 P@1 on the 300K-label set; a power of
1.0 gains there (38.62) and costs 0.2 on cooking and 1 s more fit; C=1 with 0.25 (the peers'
C) gives Bibtex 63.31 / 38.61 / 27.84.
``C_row_scaling=True``: those sets have short rows (Bibtex 68 features a row, Delicious 19,
cooking 12, synthetic 40); on long documents one C regularises far too much (an l2-normalised
row of many features needs a larger weight vector for the same margin), so C is multiplied
by ``clip((r / 70) ** 2, 1, 8)`` for ``r`` features per row (1 on the sets above, whose
models do not change). Chosen on Reuters-21578 (ModApte, 90 labels, 160 features a row:
a root-only tree, so C is its classifiers'): P@1 / P@5 / PSP@5 90.69 / 23.13 / 86.11 at
C=0.25, 92.61 / 23.46 / 88.89 at 0.5, 93.57 / 23.63 / 90.54 at 1 and 93.97 / 23.66 / 90.99
at 2 (omikuji and PECOS, at C=1: 93.57 / 23.64 / 90.6); the cap from the Enron emails
(1,213 features a row; C=1: 72.56 / 46.02 / 53.10, 2: 72.03 / 46.39 / 54.13, 4: 69.13 /
45.49 / 53.02). Larger C costs solver epochs (Reuters 5.6 at C=0.25, 9.3 at 1, 11.8 at 2).
The cap was re-checked over six group splits of the Enron emails (split seeds 0-5; with 53
labels every peer is one-vs-rest too, and PECOS and omikuji train the same squared-hinge
problem at C=1): C=2 against C=1 gives P@1 / P@3 / P@5 / PSP@5 -1.77 / +0.89 / -0.03 /
+0.44 in the mean, P@1 lower and P@3 higher on all six; a cap of 4 (C=1 on every long-row
set) loses 2.5 P@1 on a generated long-row dev set (1,000 labels, 254 features a row), so
the cap stays. At C=1 the trees equal PECOS's and omikuji's P@1 once the biases are
pruned as theirs are (liblinear's bias is a weight like any other, pruned below 0.1):
zeroing one frequent label's bias (0.03-0.08) gains 0.6-0.8 P@1 there (means over the six
splits) and nothing measurable on the dev sets, so biases stay unpruned.

Memory: ``estimate_memory(X, Y)`` (see its docstring) is checked against ``memory_limit``
before anything is allocated, and the pruned weights are counted while tasks finish; past
the limit either way, :class:`~labelwise.errors.ResourceLimitError` (never an OOM kill).
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError, ResourceLimitError
from ..progress import progress
from . import _dcd, _tree_build, _tree_kernels
from .base import MultiLabelModel, as_feature_matrix
from .ovr import LOSSES, check_linear_params, check_number, memory_limit_bytes
from .topk import _run_rows, map_threads, resolve_n_threads

__all__ = ["LabelTree"]



def _is_int(v: Any, low: int) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | np.integer) and v >= low


class LabelTree(MultiLabelModel):
    """Label tree with linear node classifiers and beam search (see the module docstring).

    Parameters
    ----------
    n_trees: trees in the ensemble (>= 1).
    branching: children per internal node (>= 2).
    max_leaf_size: most labels in a leaf (>= 1).
    beam_size: nodes kept per tree level at prediction (>= 1).
    hinge_power: with the squared hinge, a label's classifier (in a leaf) gives margin m the
        probability ``exp(-max(0, 1 - m) ** hinge_power)`` (> 0).
    inner_hinge_power: the same exponent for the classifiers that lead to nodes (> 0; None =
        ``hinge_power``). Both are used only at prediction, so they can be changed on a
        trained model with ``set_params``.
    loss, C, bias, tol, max_iter, prune_threshold: the node classifiers, as in OneVsRest.
    C_node_power: a node trained on m of the n rows uses ``C * (n / m) ** C_node_power``
        (>= 0; 0 = the same C at every node).
    C_row_scaling: True = C is first multiplied by ``clip((r / 70) ** 2, 1, 8)``, ``r`` the
        mean features per training row (:func:`~labelwise.models._tree_build.row_length_C_scale`);
        False = C as given.
    cluster_iters: rounds of each balanced 2-means split (>= 1).
    label_features: "pifa" (label rows from positive instances, plus any ``label_features``
        matrix given to fit, concatenated) or "given" (only that matrix).
    normalize: "l2" (row-normalise X, at fit and predict) or None.
    n_threads: worker threads (None = all CPUs this process may use).
    memory_limit: bytes, "auto" (80% of available memory) or None (no check).
    random_state: int seed (None = a fresh seed each fit).
    """

    _persist_name = "LabelTree"
    #: the arrays a saved LabelTree holds: name -> (dtypes, ndim) (checked on load)
    _saved_arrays = {key: ((np.dtype(t).str,), 1) for key, t in {
        "node_clf_start": "i8", "clf_child": "i8", "tree_roots": "i8", "node_feat_start": "i8",
        "feat_id": "i4", "feat_ptr": "i8", "weights": "f4", "node_dense": "u1",
        "child_shift": "i8", "val_child": "i4", "intercept": "f4", "n_iter": "i4",
        "labels_without_positives": "i8"}.items()}
    #: manifests written before ``C_node_power`` existed describe trees with one C everywhere;
    #: those written before ``hinge_power`` existed, trees scored with the exponent 2; those
    #: written before ``inner_hinge_power`` existed, one exponent at every node
    _params_absent_from_old_files = {"C_node_power": 0.0, "hinge_power": 2.0,
                                     "inner_hinge_power": None, "C_row_scaling": False}
    default_threshold = 0.5

    def __init__(self, *, n_trees: int = 1, branching: int = 16, max_leaf_size: int = 100,
                 beam_size: int = 40, hinge_power: float = 3.0,
                 inner_hinge_power: float | None = 2.0, loss: str = "squared_hinge",
                 C: float = 0.25, C_node_power: float = 0.75, C_row_scaling: bool = True,
                 bias: float = 1.0, tol: float = 0.1,
                 max_iter: int = 20, prune_threshold: float = 0.1, cluster_iters: int = 10,
                 label_features: str = "pifa", normalize: str | None = "l2",
                 n_threads: int | None = None, memory_limit: int | str | None = "auto",
                 random_state: int | None = 0) -> None:
        self.n_trees = n_trees
        self.branching = branching
        self.max_leaf_size = max_leaf_size
        self.beam_size = beam_size
        self.hinge_power = hinge_power
        self.inner_hinge_power = inner_hinge_power
        self.loss = loss
        self.C = C
        self.C_node_power = C_node_power
        self.C_row_scaling = C_row_scaling
        self.bias = bias
        self.tol = tol
        self.max_iter = max_iter
        self.prune_threshold = prune_threshold
        self.cluster_iters = cluster_iters
        self.label_features = label_features
        self.normalize = normalize
        self.n_threads = n_threads
        self.memory_limit = memory_limit
        self.random_state = random_state

    # ------------------------------------------------------------------ parameters
    def _validate_params(self) -> None:
        for name, low in (("n_trees", 1), ("branching", 2), ("max_leaf_size", 1),
                          ("max_iter", 1), ("cluster_iters", 1)):
            if not _is_int(getattr(self, name), low):
                raise ValueError(f"{name} must be an int >= {low}, got {getattr(self, name)!r}")
        self._check_prediction_params()
        check_linear_params(self)
        check_number(self, "C_node_power", 0.0, strict=False)
        if not isinstance(self.C_row_scaling, bool | np.bool_):
            raise ValueError(f"C_row_scaling must be True or False, got {self.C_row_scaling!r}")
        if self.label_features not in ("pifa", "given"):
            raise ValueError(f"label_features must be 'pifa' or 'given', got "
                             f"{self.label_features!r}")

    def _check_prediction_params(self) -> None:
        """The parameters prediction reads, checked again there: set_params may change them."""
        if not _is_int(self.beam_size, 1):
            raise ValueError(f"beam_size must be an int >= 1, got {self.beam_size!r}")
        check_number(self, "hinge_power", 0.0, strict=True)
        if self.inner_hinge_power is not None:
            check_number(self, "inner_hinge_power", 0.0, strict=True)

    # ------------------------------------------------------------------ memory
    def estimate_memory(self, X: Any, Y: Any) -> int:
        """Estimated peak bytes that ``fit(X, Y)`` allocates beyond its inputs.

        The sum of two parts. *Fixed* (upper bounds): the normalised copy of X's values, the
        label matrix (CSC), the label representations (at most ``min(n_labels * n_features,
        R)`` entries, ``R = sum_i nnz(x_i) |y_i|``, counted three times: the k-means splits
        of one round hold a working copy of their labels' rows), every tree's task index
        lists (each level holds at most ``nnz(Y) + n_samples`` row ids) and per-thread solver
        buffers (the lockstep block of :func:`~labelwise.models._dcd.sq_hinge_block`
        included, at most ``_tree_kernels.BLOCK_BYTES`` a thread, or a node's Gram matrix
        of :mod:`~labelwise.models._dcd_gram`, at most ``_tree_kernels.GRAM_BYTES``, with
        its rows' values regrouped by feature).
        *Weights* (an estimate, not a bound: pruning decides): ``min(n_classifiers *
        n_features, R)`` pruned weights per tree, counted twice (task results and the
        assembled layout). Because the weights cannot be bounded usefully in advance, ``fit``
        also counts the pruned weights as tasks finish and stops with ResourceLimitError
        as soon as they would pass ``memory_limit`` minus the fixed part.
        """
        fixed, weights = self._memory_parts(X, Y)
        return int(fixed + weights)

    def _memory_parts(self, X: Any, Y: Any) -> tuple[float, float]:
        X = as_feature_matrix(X) if not sp.issparse(X) else sp.csr_matrix(X)
        Y = sp.csr_matrix(Y)
        n, d = X.shape
        L = Y.shape[1]
        row_nnz = np.diff(X.indptr).astype(np.float64)
        row_labels = np.diff(Y.indptr).astype(np.float64)
        # not ``row_nnz @ row_labels``: a BLAS dot wakes OpenBLAS's threads, which then spin
        # for about 0.1 s, taking a core from the node tasks that follow
        reach = float(np.sum(row_nnz * row_labels))
        depth = 1
        size = L
        while size > self.max_leaf_size:
            size = -(-size // self.branching)
            depth += 1
        n_clf = 2 * L + self.branching
        x_copy = X.nnz * 4 + (0 if X.dtype == np.float32 else X.nnz * 4 + (n + 1) * 8)
        y_bytes = Y.nnz * 12 + (L + n + 2) * 8
        z_bytes = 3 * min(float(L) * d, reach) * 8
        tasks = self.n_trees * (depth + 1) * (Y.nnz + n) * 16
        threads = resolve_n_threads(self.n_threads)
        m_max = max(self.branching, min(self.max_leaf_size, L))
        block = min(float(_tree_kernels.BLOCK_BYTES), (d + n) * m_max * 8.0 + n * m_max)
        # a node solved in the Gram form (_dcd_gram) holds its n_node^2 matrix (n_node^2 * 8
        # <= GRAM_BYTES) and its rows' values regrouped by feature (16 bytes a value, at
        # most the values of the n_node longest rows)
        n_gram = min(n, int((_tree_kernels.GRAM_BYTES / 8) ** 0.5))
        gram = (n_gram * n_gram * 8.0
                + 16.0 * float(np.sum(np.sort(row_nnz)[::-1][:n_gram])) + d * 16.0)
        per_thread = (d + 1) * 13 + n * 40 + max(block, gram)
        fixed = (x_copy + y_bytes + z_bytes + tasks + threads * per_thread
                 + n_clf * self.n_trees * 24)
        weights = 2 * self.n_trees * min(float(n_clf) * d, reach) * 8
        return float(fixed), float(weights)

    def _memory_limit_bytes(self) -> float | None:
        return memory_limit_bytes(self.memory_limit)

    def _check_memory(self, X: sp.csr_matrix, Y: sp.csr_matrix) -> float | None:
        """Refuse up front; return the bytes left for the pruned weights (None: no limit)."""
        limit = self._memory_limit_bytes()
        if limit is None:
            return None
        fixed, weights = self._memory_parts(X, Y)
        if fixed + weights > limit:
            raise ResourceLimitError(
                f"training needs about {(fixed + weights) / 2**20:.1f} MiB (estimate_memory) "
                f"but memory_limit is {limit / 2**20:.1f} MiB; raise memory_limit, lower "
                "n_trees, max_leaf_size or n_threads")
        return (limit - fixed) / 2  # weights are held twice (results, then the layout)

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, Y: Any = None, *, labels: Any = None, label_features: Any = None):
        """Fit on X, Y (or a Dataset); ``label_features`` (n_labels, n_cols) optional."""
        self._fit_label_features = label_features
        try:
            return super().fit(X, Y, labels=labels)
        finally:
            del self._fit_label_features

    def _prepare_X(self, X: sp.csr_matrix) -> sp.csr_matrix:
        return (_tree_build.l2_normalize_rows(X, resolve_n_threads(self.n_threads))
                if self.normalize == "l2" else X)

    def _fit(self, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
        L = Y.shape[1]
        extra = self._fit_label_features
        if extra is not None:
            extra = as_feature_matrix(extra)
            if extra.shape[0] != L:
                raise DataFormatError(f"label_features has {extra.shape[0]} rows but Y has {L} "
                                      "labels", field="label_features")
        elif self.label_features == "given":
            raise TypeError("label_features='given' needs fit(..., label_features=matrix)")
        weight_budget = self._check_memory(X, Y)
        seed = self.random_state
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        Xn = self._prepare_X(X)
        Ycsc = sp.csc_matrix(Y, dtype=np.float32)
        Ycsc.sort_indices()
        positives = np.diff(Ycsc.indptr)
        empty = np.flatnonzero(positives == 0).astype(np.int64)
        if empty.size:
            warnings.warn(
                f"{empty.size} of {L} labels have no positive training example; they get "
                "classifiers trained on negatives only (see labels_without_positives_)",
                UserWarning, stacklevel=3)
        threads = resolve_n_threads(self.n_threads)
        runner = getattr(self, "_task_runner", None)
        if runner is None and L <= self.max_leaf_size:
            # every tree is one leaf (the root's classifiers are the labels): nothing is
            # clustered, so the label representations would go unread
            Z = sp.csr_matrix((L, 0), dtype=np.float32)
        else:
            Z = _tree_build.label_representations(
                Xn, Ycsc, pifa=self.label_features == "pifa", extra=extra, n_threads=threads)
        sq = _dcd.row_sq_norms(Xn.indptr, Xn.data, float(self.bias))
        kw = dict(loss=LOSSES[self.loss], bias=self.bias, tol=self.tol,
                  max_iter=self.max_iter, prune_threshold=self.prune_threshold)
        C_root = float(self.C) * (_tree_build.row_length_C_scale(Xn) if self.C_row_scaling
                                  else 1.0)
        if runner is not None:  # another engine (labelwise.distributed) builds and trains
            spec = _tree_build.TreeSpec(
                n_trees=self.n_trees, branching=self.branching,
                max_leaf_size=self.max_leaf_size, cluster_iters=self.cluster_iters,
                seed=int(seed), C_root=C_root, C_node_power=float(self.C_node_power), kw=kw)
            # the runner empties the list once the data is on the workers: this process
            # then holds none of it while the trees train
            shared = [Xn, sq, Ycsc, Z]
            del Xn, sq, Ycsc, Z
            starts, children, roots, results, layout = runner.train_trees(shared, spec)
        else:
            starts, children, roots, results = self._train_local(
                Xn, sq, Ycsc, Z, seed=int(seed), C_root=C_root, kw=kw, threads=threads,
                weight_budget=weight_budget)
            layout = None
            del Z
        W, intercept, n_iter = _tree_build.assemble_weights(results, int(starts[-1]), X.shape[1],
                                                            float(self.bias))
        self.node_clf_start_ = np.asarray(starts, np.int64)
        self.clf_child_ = np.asarray(children, np.int64)
        self.tree_roots_ = np.asarray(roots, np.int64)
        if layout is None:
            self._set_weights(W, threads)
        else:  # laid out already, node by node (the same arrays)
            for key in _WEIGHT_ARRAYS:
                setattr(self, key + "_", layout[key])
        self.intercept_ = intercept
        self.n_iter_ = n_iter
        self.labels_without_positives_ = empty

    def _train_local(self, Xn: sp.csr_matrix, sq: np.ndarray, Ycsc: sp.csc_matrix,
                     Z: sp.csr_matrix, *, seed: int, C_root: float, kw: dict, threads: int,
                     weight_budget: float | None) -> tuple:
        """Build the trees and train every node on this machine's threads: ``(node_clf_start,
        clf_child, tree_roots, task results)`` of all trees, concatenated."""
        starts, children, roots, tasks = [np.zeros(1, np.int64)], [], [], []
        n_nodes = n_clf = 0
        for t in range(self.n_trees):
            layout = _tree_build.build_tree(
                Z, branching=self.branching, max_leaf_size=self.max_leaf_size,
                cluster_iters=self.cluster_iters, seed=seed + 7919 * t, n_threads=threads)
            tasks += _tree_build.training_tasks(Ycsc, layout, tree=t, clf_offset=n_clf,
                                                seed=seed)
            kids = layout.clf_child.copy()
            kids[kids >= 0] += n_nodes
            roots.append(n_nodes)
            starts.append(layout.node_clf_start[1:] + n_clf)
            children.append(kids)
            n_nodes += layout.n_nodes
            n_clf += kids.shape[0]
        n = Xn.shape[0]
        tasks = _tree_build.split_tasks(Xn, tasks, loss=kw["loss"], n_threads=threads)
        order = sorted(range(len(tasks)), key=lambda i: -tasks[i].cost)
        bar = progress(n_clf, "training tree nodes", unit="classifier")

        held = [0]
        lock = threading.Lock()
        # a node solved on its Gram matrix and cut over the threads builds the matrix once:
        # its first piece to run builds it (the others wait), the last one drops it
        pieces: dict[tuple[int, int], int] = {}
        for t in tasks:
            pieces[(t.tree, t.node)] = pieces.get((t.tree, t.node), 0) + 1
        shared = {key: {"lock": threading.Lock(), "K": None, "left": count}
                  for key, count in pieces.items() if count > 1}
        for key in list(shared):
            first = next(t for t in tasks if (t.tree, t.node) == key)
            if not _tree_build.uses_gram(Xn, first, kw["loss"]):
                del shared[key]

        def gram_for(task: _tree_build.NodeTask) -> np.ndarray | None:
            entry = shared.get((task.tree, task.node))
            if entry is None:
                return None
            with entry["lock"]:
                if entry["K"] is None:  # on every thread: the other pieces wait for it
                    entry["K"] = _tree_build.gram_matrix(Xn, task, float(self.bias), threads)
                return entry["K"]

        def done_with(task: _tree_build.NodeTask) -> None:
            entry = shared.get((task.tree, task.node))
            if entry is not None:
                with entry["lock"]:
                    entry["left"] -= 1
                    if entry["left"] == 0:
                        entry["K"] = None

        def run(i: int) -> _tree_build.TaskResult | None:
            if weight_budget is not None and held[0] > weight_budget:
                return None  # another task already ran over the limit
            C = _tree_build.node_C(C_root, n, tasks[i].rows.shape[0], self.C_node_power)
            res = _tree_build.run_task(Xn, sq, tasks[i], C=C, gram=gram_for(tasks[i]), **kw)
            done_with(tasks[i])
            bar.update(tasks[i].seeds.shape[0])
            with lock:
                held[0] += res.feat.nbytes + res.vals.nbytes
            if weight_budget is not None and held[0] > weight_budget:
                raise ResourceLimitError(
                    f"the pruned weights passed {held[0] / 2**20:.1f} MiB before training "
                    f"ended, more than memory_limit leaves for them "
                    f"({weight_budget / 2**20:.1f} MiB); raise memory_limit or "
                    "prune_threshold, or lower n_trees")
            return res

        with bar:
            results = map_threads(run, order, threads)
        return (np.concatenate(starts), np.concatenate(children), np.asarray(roots, np.int64),
                results)

    def _set_weights(self, W: sp.csr_matrix, n_threads: int) -> None:
        lay = _tree_build.node_major_weights(W, self.node_clf_start_, n_threads)
        for key in _WEIGHT_ARRAYS:
            setattr(self, key + "_", lay[key])

    # ------------------------------------------------------------------ prediction
    def _decision_topk(self, X: sp.csr_matrix, k: int) -> sp.csr_matrix:
        self._check_prediction_params()
        Xn = self._prepare_X(X)
        L = len(self.labels_)
        k = min(k, L)
        args = (Xn.indptr, Xn.indices, Xn.data, self.node_clf_start_, self.clf_child_,
                self.tree_roots_, *(getattr(self, key + "_") for key in _WEIGHT_ARRAYS),
                self.intercept_, LOSSES[self.loss], float(self.hinge_power),
                float(self.hinge_power if self.inner_hinge_power is None
                      else self.inner_hinge_power), int(self.beam_size), L, k)
        return _run_rows(_tree_kernels.beam_search, Xn.shape[0], k, L, args, self.n_threads)

    def _to_probability(self, scores: np.ndarray) -> np.ndarray:
        return np.clip(scores, 0.0, 1.0)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {key: np.asarray(getattr(self, key + "_")) for key in _STATE_ARRAYS}
        arrays["node_dense"] = arrays["node_dense"].astype(np.uint8)
        return arrays, {}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        missing = [k for k in _STATE_ARRAYS if k not in arrays]
        if missing:
            raise DataFormatError(f"LabelTree model lacks arrays: {', '.join(missing)}")
        a = {k: np.asarray(arrays[k]) for k in _STATE_ARRAYS}
        L, d = len(self.labels_), int(self.n_features_in_)
        if not _valid_state(a, L, d):
            raise DataFormatError(f"LabelTree arrays do not describe trees over {L} labels and "
                                  f"{d} features", field="arrays")
        a["node_dense"] = a["node_dense"].astype(bool)
        for key in _STATE_ARRAYS:
            setattr(self, key + "_", a[key])


#: the weight arrays of _tree_build.node_major_weights, in beam_search's argument order
_WEIGHT_ARRAYS = ("node_feat_start", "feat_id", "feat_ptr", "weights", "node_dense",
                  "child_shift", "val_child")
_STATE_ARRAYS = ("node_clf_start", "clf_child", "tree_roots", *_WEIGHT_ARRAYS, "intercept",
                 "n_iter", "labels_without_positives")
_DTYPES = {"node_clf_start": "i8", "clf_child": "i8", "tree_roots": "i8",
           "node_feat_start": "i8", "feat_id": "i4", "feat_ptr": "i8", "weights": "f4",
           "node_dense": "u1", "child_shift": "i8", "val_child": "i4", "intercept": "f4",
           "n_iter": "i4", "labels_without_positives": "i8"}


#: weight slots checked at once by _valid_state (its temporaries stay near 40 bytes a slot of
#: one block, not of the whole model: a 1M-label model has about a billion slots)
_CHECK_SLOTS = 1 << 22


def _monotone(p: np.ndarray, end: int) -> bool:
    if not (p.ndim == 1 and p.size >= 1 and int(p[0]) == 0 and int(p[-1]) == end):
        return False
    return all(bool(np.all(np.diff(p[a:a + _CHECK_SLOTS + 1]) >= 0))
               for a in range(0, p.size - 1, _CHECK_SLOTS))


def _valid_state(a: dict[str, np.ndarray], L: int, d: int) -> bool:
    """Every index in range, so the kernels (which do not bounds-check) stay inside arrays."""
    if any(a[k].dtype != np.dtype(t) for k, t in _DTYPES.items()):
        return False
    starts, child, roots = a["node_clf_start"], a["clf_child"], a["tree_roots"]
    n_nodes, n_clf = starts.shape[0] - 1, child.shape[0]
    if not (n_nodes >= 1 and _monotone(starts, n_clf) and bool(np.all(np.diff(starts) >= 1))
            and roots.ndim == 1 and roots.size >= 1
            and bool(np.all((roots >= 0) & (roots < n_nodes)))
            and bool(np.all((child < n_nodes) & (child >= -L)))
            and a["intercept"].shape == (n_clf,) and a["n_iter"].shape == (n_clf,)):
        return False
    # every edge leads to a higher node id and no node has two parents: trees, no cycles, so
    # the beam search ends; a node's children are all nodes or all labels (a leaf), and in one
    # tree a label has one leaf (the beam search reads its score there, it does not sum)
    node = np.repeat(np.arange(n_nodes), np.diff(starts))
    inner = child >= 0
    parents = np.bincount(child[inner], minlength=n_nodes)
    n_label_kids = np.add.reduceat((~inner).astype(np.int64), starts[:-1])
    if (np.any(child[inner] <= node[inner]) or np.any(parents > 1) or np.any(parents[roots])
            or np.any((n_label_kids > 0) & (n_label_kids < np.diff(starts)))
            or (roots.size == 1 and np.any(np.bincount(-child[~inner] - 1, minlength=L) > 1))):
        return False
    fs, fid, fp, w = a["node_feat_start"], a["feat_id"], a["feat_ptr"], a["weights"]
    dense, shift, vc = a["node_dense"], a["child_shift"], a["val_child"]
    if not (fs.shape == (n_nodes + 1,) and _monotone(fs, fid.shape[0])
            and _monotone(fp, w.shape[0]) and fp.shape == (fid.shape[0] + 1,)
            and dense.shape == (n_nodes,) and shift.shape == (n_nodes,)
            and (fid.size == 0 or (int(fid.min()) >= 0 and int(fid.max()) < d))):
        return False
    m = np.diff(starts)
    # nodes in blocks of about _CHECK_SLOTS weight slots (a node is never cut)
    node_end = np.asarray(fp[fs[1:]], np.int64)
    cuts = np.unique(np.searchsorted(node_end, np.arange(_CHECK_SLOTS, int(fp[-1]),
                                                         _CHECK_SLOTS), side="right"))
    for v0, v1 in zip([0, *cuts.tolist()], [*cuts.tolist(), n_nodes], strict=True):
        if v1 > v0 and not _valid_slots(fs, fp, dense, shift, vc, m, v0, v1):
            return False
    return True


def _valid_slots(fs, fp, dense, shift, vc, m, v0: int, v1: int) -> bool:
    """_valid_state's check of the weight slots of nodes ``v0 .. v1 - 1``: a dense node's
    entries hold one slot per child, a sparse node's slots name a child of that node."""
    e0, e1 = int(fs[v0]), int(fs[v1])
    entry_node = np.repeat(np.arange(v0, v1), np.diff(fs[v0:v1 + 1]))
    slots = np.diff(fp[e0:e1 + 1])
    is_dense = dense[entry_node] == 1
    if not np.all(slots[is_dense] == m[entry_node[is_dense]]):
        return False
    slot_node = np.repeat(entry_node, slots)
    sparse = dense[slot_node] == 0
    q = int(fp[e0]) + np.flatnonzero(sparse) - shift[slot_node[sparse]]
    if q.size and (int(q.min()) < 0 or int(q.max()) >= vc.shape[0]):
        return False
    kid = vc[q]
    return bool(np.all((kid >= 0) & (kid < m[slot_node[sparse]])))
