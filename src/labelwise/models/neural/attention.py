"""``LabelAttention``: label queries cross-attending over a frozen encoder's token states
(ML-Decoder, Ridnik et al. 2023; Query2Label, Liu et al. 2021), trained with PyTorch on the CPU.

**Features.** Texts go through a frozen transformer (by default the shipped all-MiniLM-L6-v2)
once per fit: the last hidden states of every token (padding excluded) are kept
(:class:`~labelwise.models.neural.tokens.TokenStates`), and every epoch trains the head on
them, so training costs no encoder passes. Precomputed :class:`TokenStates` may be given
instead of texts (``encode(texts)`` makes them).

**Head** (one decoder layer as in ML-Decoder: cross-attention and a feed-forward block, no
self-attention between the queries). With token states ``H`` (b, t, d_in) and padding mask::

    M = relu(H W_e + b_e)                                   (b, t, d)       token memory
    q = LayerNorm_1(Q)                                      (g, d)          learned queries
    A = softmax(q W_q (M W_k)^T / sqrt(d_h) + mask)         per head, padded tokens -> 0
    x = LayerNorm_2(q + (A (M W_v)) W_o)                    (b, g, d)
    x = LayerNorm_3(x + W_2 relu(W_1 x))
    logits[:, j] = x[:, j // K] . G[j // K, :, j % K] + c_j (group fully-connected decoding)

``g`` queries: one per label (``n_groups=None``, Query2Label) or ``n_groups`` groups of
``K = ceil(n_labels / n_groups)`` labels each (ML-Decoder's group decoding, for many labels:
the cost grows with the groups, not the labels). ``d = d_model``, ``n_heads`` heads of
``d_h = d / n_heads``; dropout (``dropout``) after the attention and in the feed-forward block.

**Loss and imbalance.** BCE, focal or asymmetric (ASL) loss
(:mod:`labelwise.models.neural.losses`); ``label_weights`` multiplies each label's loss
column: None, ``"balanced"`` (``IRLbl_j / MeanIR`` from the training rows,
:mod:`labelwise.models.resample`; a label without positives weighs 1), a list of one weight
per label, or a dict ``{label name: weight}`` (labels not named weigh 1; a name not in the
label space is an error). ``resample="ml-ros"`` clones ``resample_fraction`` of the training
rows by ML-ROS (Charte et al. 2015), applied after the validation split, to the training part
only. AdamW on shuffled mini-batches, early stopping on an iteratively stratified validation
split (:mod:`labelwise.models.neural._training`).

**Scores.** ``decision_function`` gives the logits; the head runs in float64 (from the
float32 weights) and rounds to float32, so a text's score does not depend on the other
texts of the batch at float32 precision; ``predict_proba`` is their sigmoid.

**Saved** (the :mod:`labelwise.models.persist` format, no pickle): the head's weights in one
``arrays.safetensors`` (names in :data:`WEIGHTS`), the encoder by its identity in the state
(name, package version, weights' SHA-256, hidden size, max_seq_length; see
:mod:`labelwise.models.neural.tokens`), never its code or weights; an encoder folder of the
user's is copied into the model folder (:func:`labelwise.store.write_encoder`). Scoring
texts with an encoder whose identity differs from the saved one is refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from ...checks import positive_int
from ...dataset import Dataset, as_label_matrix
from ...errors import DataFormatError
from ...labels import LabelSpace
from ...progress import progress
from ..base import MultiLabelModel, _check_k
from ..resample import imbalance_ratios, ml_ros
from ..topk import topk_dense
from ._torch import check_seed, import_torch, resolve_threads, torch_session
from ._training import check_number, run_epochs, validation_split
from .decoder import WEIGHTS, build_head, head_shapes, head_weights, length_batches
from .losses import check_loss_params, make_loss
from .tokens import TokenStates, token_encoder

__all__ = ["LabelAttention", "WEIGHTS", "build_head"]

#: texts per scoring / validation pass (in order of length, so batches pad little)
_EVAL_ROWS = 128


def _is_texts(X: Any) -> bool:
    return (isinstance(X, list | tuple) and (len(X) == 0 or isinstance(X[0], str))) or (
        isinstance(X, np.ndarray) and X.dtype.kind in "US") or isinstance(X, str)


class LabelAttention(MultiLabelModel):
    """Label-query attention head over a frozen encoder's token states; see the module
    docstring.

    Parameters
    ----------
    encoder: local transformers/sentence-transformers folder; None = all-MiniLM-L6-v2.
    max_seq_length: tokens kept per text.
    n_groups: queries (None = one per label; an int = ML-Decoder's group decoding).
    d_model, n_heads, dim_feedforward: the decoder layer's width, heads and feed-forward width.
    dropout: after the attention and in the feed-forward block, in [0, 1).
    loss, gamma, alpha, gamma_pos, gamma_neg, clip: the loss and its parameters.
    label_weights: None, "balanced", a list of n_labels weights or {label name: weight}.
    resample: None or "ml-ros"; resample_fraction: share of the training rows ML-ROS clones.
    learning_rate, weight_decay: AdamW's. batch_size: texts per step. epochs: most passes.
    early_stopping, validation_fraction, patience: as in :class:`MLPHead`.
    encode_batch_size: texts per encoder pass.
    n_threads: torch threads (None = all cores). random_state: seed (int; None = 0).
    """

    _persist_name = "LabelAttention"
    _saved_arrays = {name: (("<f4",), len(f(1, 1, 1, 1, 1, 1))) for name, f in WEIGHTS.items()}
    _array_storage = "safetensors"
    _encoder_param = "encoder"
    #: a Pipeline hands this model raw texts (it has no featurizer)
    takes_texts = True

    def __init__(self, *, encoder: str | None = None, max_seq_length: int = 128,
                 n_groups: int | None = None, d_model: int = 128, n_heads: int = 4,
                 dim_feedforward: int = 256, dropout: float = 0.1, loss: str = "bce",
                 gamma: float = 2.0, alpha: float | None = None, gamma_pos: float = 0.0,
                 gamma_neg: float = 4.0, clip: float = 0.05, label_weights: Any = None,
                 resample: str | None = None, resample_fraction: float = 0.25,
                 learning_rate: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 64,
                 epochs: int = 30, early_stopping: bool = True, validation_fraction: float = 0.1,
                 patience: int = 3, encode_batch_size: int = 64, n_threads: int | None = None,
                 random_state: int | None = 0) -> None:
        self.encoder = encoder
        self.max_seq_length = max_seq_length
        self.n_groups = n_groups
        self.d_model = d_model
        self.n_heads = n_heads
        self.dim_feedforward = dim_feedforward
        self.dropout = dropout
        self.loss = loss
        self.gamma = gamma
        self.alpha = alpha
        self.gamma_pos = gamma_pos
        self.gamma_neg = gamma_neg
        self.clip = clip
        self.label_weights = label_weights
        self.resample = resample
        self.resample_fraction = resample_fraction
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.encode_batch_size = encode_batch_size
        self.n_threads = n_threads
        self.random_state = random_state

    # ------------------------------------------------------------------ checks
    def _validate_params(self) -> None:
        if self.encoder is not None and not isinstance(self.encoder, str):
            raise ValueError(f"encoder must be a folder path (str) or None, got {self.encoder!r}")
        positive_int(self.max_seq_length, "max_seq_length")
        positive_int(self.n_groups, "n_groups", allow_none=True)
        positive_int(self.d_model, "d_model")
        positive_int(self.n_heads, "n_heads")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be a multiple of n_heads="
                             f"{self.n_heads}")
        positive_int(self.dim_feedforward, "dim_feedforward")
        check_number("dropout", self.dropout, 0.0, 1.0)
        check_loss_params(self.loss, self.gamma, self.alpha, self.gamma_pos, self.gamma_neg,
                          self.clip)
        lw = self.label_weights
        if lw is not None and lw != "balanced":
            values = list(lw.values()) if isinstance(lw, dict) else lw
            if not isinstance(lw, dict | list | tuple) or (
                    isinstance(lw, dict) and not all(isinstance(k, str) for k in lw)):
                raise ValueError(f"label_weights must be None, 'balanced', a list of weights or "
                                 f"a dict {{label name: weight}}, got {lw!r}")
            for v in values:
                check_number("each of label_weights", v, 0.0, math.inf)
        if self.resample not in (None, "ml-ros"):
            raise ValueError(f"resample must be None or 'ml-ros', got {self.resample!r}")
        check_number("resample_fraction", self.resample_fraction, 0.0, 1.0, hi_open=False)
        check_number("learning_rate", self.learning_rate, 0.0, math.inf, lo_open=True)
        check_number("weight_decay", self.weight_decay, 0.0, math.inf)
        positive_int(self.batch_size, "batch_size")
        positive_int(self.epochs, "epochs")
        if not isinstance(self.early_stopping, bool):
            raise ValueError(f"early_stopping must be True or False, got {self.early_stopping!r}")
        check_number("validation_fraction", self.validation_fraction, 0.0, 1.0, lo_open=True)
        positive_int(self.patience, "patience")
        positive_int(self.encode_batch_size, "encode_batch_size")
        resolve_threads(self.n_threads)
        check_seed(self.random_state)

    # ------------------------------------------------------------------ features
    def token_encoder(self) -> Any:
        """The frozen encoder (loaded once per process; see labelwise.models.neural.tokens)."""
        import_torch("the label-attention head")
        return token_encoder(self.encoder, int(self.max_seq_length))

    def encode(self, X: Any) -> TokenStates:
        """Token states of texts X (a list of texts or a Dataset holding texts)."""
        from ...features.base import as_texts

        texts = as_texts(X)
        return self.token_encoder().encode(texts, batch_size=int(self.encode_batch_size),
                                           n_threads=self.n_threads)

    def _states(self, X: Any) -> TokenStates:
        if isinstance(X, Dataset):
            X = X.X
        if isinstance(X, TokenStates):
            return X
        if _is_texts(X):
            return self.encode(X)
        raise DataFormatError(f"X must be texts (a list of str) or TokenStates, got "
                              f"{type(X).__name__}; this model reads texts itself (no "
                              "featurizer)", field="X")

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, Y: Any = None, *, labels: LabelSpace | Sequence[str] | None = None):
        """Fit on texts (or TokenStates) X and labels Y (n_samples, n_labels), or a Dataset."""
        self._validate_params()
        if isinstance(X, Dataset):
            if Y is not None or labels is not None:
                raise TypeError("fit(dataset) takes X, Y and labels from the dataset; "
                                "pass no Y or labels")
            X, Y, labels = X.X, X.Y, X.labels
        elif Y is None:
            raise TypeError("fit(X, Y) needs Y (or pass a labelwise.Dataset as the only argument)")
        if labels is not None and not isinstance(labels, LabelSpace):
            labels = LabelSpace(labels)
        Yc = as_label_matrix(Y, None if labels is None else len(labels))
        n_x = len(X) if isinstance(X, TokenStates | list | tuple | np.ndarray) else None
        if n_x is not None and n_x != Yc.shape[0]:
            raise DataFormatError(f"X has {n_x} rows but Y has {Yc.shape[0]}")
        if Yc.shape[1] == 0:
            raise DataFormatError("Y has no label columns", field="Y")
        if Yc.shape[0] == 0:
            raise DataFormatError("no training rows", field="X")
        import_torch("the label-attention head")  # the install hint before any work
        states = self._states(X)
        if len(states) != Yc.shape[0]:
            raise DataFormatError(f"X has {len(states)} rows but Y has {Yc.shape[0]}")
        self._clear_fitted()
        self.labels_ = LabelSpace.range(Yc.shape[1]) if labels is None else labels
        self.n_features_in_ = states.dim
        try:
            self._fit_states(states, Yc)
        except BaseException:
            self._clear_fitted()
            raise
        return self

    def _label_weights(self, Y: sp.csr_matrix) -> np.ndarray | None:
        lw, L = self.label_weights, Y.shape[1]
        if lw is None:
            return None
        if lw == "balanced":
            ir, mean_ir = imbalance_ratios(Y)
            return np.where(np.isfinite(ir), ir / mean_ir, 1.0).astype(np.float32)
        if isinstance(lw, dict):
            unknown = [name for name in lw if name not in self.labels_]
            if unknown:
                raise DataFormatError(f"label_weights names {len(unknown)} label(s) not in the "
                                      f"label space: {', '.join(map(repr, unknown[:5]))}",
                                      field="label_weights")
            w = np.ones(L, dtype=np.float32)
            w[self.labels_.indices(list(lw)).astype(np.int64)] = [float(v) for v in lw.values()]
            return w
        if len(lw) != L:
            raise DataFormatError(f"label_weights has {len(lw)} weights for {L} labels",
                                  field="label_weights")
        return np.asarray(lw, dtype=np.float32)

    def _fit_states(self, states: TokenStates, Y: sp.csr_matrix) -> None:
        seed = check_seed(self.random_state)
        n, L = Y.shape
        if self.early_stopping:
            train, val = validation_split(Y, float(self.validation_fraction), seed)
        else:
            train, val = np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64)
        if self.resample == "ml-ros":
            train = train[ml_ros(Y[train], fraction=float(self.resample_fraction),
                                 random_state=seed)]
        weights = self._label_weights(Y)
        loss_fn = make_loss(self.loss, gamma=self.gamma, alpha=self.alpha,
                            gamma_pos=self.gamma_pos, gamma_neg=self.gamma_neg, clip=self.clip)
        Yd = Y.toarray().astype(np.float32)
        lengths = states.lengths
        bs = int(self.batch_size)
        with torch_session(self.n_threads, seed) as torch:
            head = build_head(torch, d_in=states.dim, d_model=int(self.d_model),
                              n_heads=int(self.n_heads),
                              dim_feedforward=int(self.dim_feedforward), n_labels=L,
                              n_groups=self.n_groups, dropout=float(self.dropout))
            w = None if weights is None else torch.from_numpy(weights)
            opt = torch.optim.AdamW(head.parameters(), lr=float(self.learning_rate),
                                    weight_decay=float(self.weight_decay))
            gen = torch.Generator().manual_seed(seed)

            def batch(rows: np.ndarray) -> tuple[Any, Any, Any]:
                H, mask = states.padded(rows)
                return torch.from_numpy(H), torch.from_numpy(mask), torch.from_numpy(Yd[rows])

            def train_epoch(epoch: int) -> float:
                head.train()
                order = train[torch.randperm(train.size, generator=gen).numpy()]
                batches = length_batches(order, lengths, bs, gen, torch)
                total = 0.0
                with progress(len(batches), f"epoch {epoch + 1}", unit="batch") as bar:
                    for rows in batches:
                        H, mask, yb = batch(rows)
                        opt.zero_grad()
                        loss = loss_fn(head(H, mask), yb, weight=w)
                        loss.backward()
                        opt.step()
                        total += float(loss.detach()) * yb.shape[0]
                        bar.update(1)
                return total / order.size

            def val_loss() -> float:
                head.eval()
                total = 0.0
                with torch.no_grad():
                    by_length = val[np.argsort(lengths[val], kind="stable")]
                    for a in range(0, val.size, _EVAL_ROWS):
                        H, mask, yb = batch(by_length[a:a + _EVAL_ROWS])
                        total += float(loss_fn(head(H, mask), yb, weight=w)) * yb.shape[0]
                return total / val.size

            self.history_ = run_epochs(
                epochs=int(self.epochs), patience=int(self.patience),
                early_stopping=self.early_stopping, train_epoch=train_epoch, val_loss=val_loss,
                snapshot=lambda: {k: v.detach().clone() for k, v in head.state_dict().items()},
                restore=head.load_state_dict, desc="LabelAttention")
            self.history_["train_rows"] = int(train.size)
            self.weights_ = head_weights(head)
        self.encoder_identity_ = states.encoder

    # ------------------------------------------------------------------ scoring
    def _check_encoder(self, states: TokenStates) -> None:
        if states.dim != self.n_features_in_:
            raise DataFormatError(f"token states have {states.dim} dimensions but the model was "
                                  f"fitted with {self.n_features_in_}", field="X")
        want, got = self.encoder_identity_, states.encoder
        if want is not None and got is not None and (
                want.get("sha256") != got.get("sha256")
                or want.get("max_seq_length") != got.get("max_seq_length")):
            raise DataFormatError(
                f"the encoder differs from the one the model was trained with: trained with "
                f"{want.get('name')} {want.get('version') or ''} (weights sha256 "
                f"{str(want.get('sha256'))[:12]}..., max_seq_length {want.get('max_seq_length')}),"
                f" now {got.get('name')} {got.get('version') or ''} (sha256 "
                f"{str(got.get('sha256'))[:12]}..., max_seq_length {got.get('max_seq_length')})",
                field="encoder")

    def logits(self, X: Any) -> np.ndarray:
        """Float32 logits (n_samples, n_labels) of texts or TokenStates X."""
        self._check_fitted()
        states = self._states(X)
        self._check_encoder(states)
        n, L = len(states), len(self.labels_)
        out = np.empty((n, L), dtype=np.float32)
        if n == 0:
            return out
        with torch_session(self.n_threads) as torch, torch.no_grad():
            head = build_head(torch, d_in=self.n_features_in_, d_model=int(self.d_model),
                              n_heads=int(self.n_heads),
                              dim_feedforward=int(self.dim_feedforward), n_labels=L,
                              n_groups=self.n_groups, weights=self.weights_,
                              dtype=torch.float64)
            head.eval()
            by_length = np.argsort(states.lengths, kind="stable")
            for a in range(0, n, _EVAL_ROWS):
                rows = by_length[a:a + _EVAL_ROWS]
                H, mask = states.padded(rows)
                Z = head(torch.from_numpy(H).to(torch.float64), torch.from_numpy(mask))
                out[rows] = Z.numpy()
        return out

    def decision_function(self, X: Any, *, k: int = 5) -> sp.csr_matrix:
        """Top-k logits (n_samples, n_labels) of texts or TokenStates X."""
        self._check_fitted()
        k = _check_k(k)
        return topk_dense(self.logits(X), k)

    def predict(self, X: Any, *, k: int | None = None,
                threshold: float | None = None) -> sp.csr_matrix:
        """Label sets of texts or TokenStates X; see labelwise.models.base."""
        self._check_fitted()
        Z = self.logits(X)
        thr = self.default_threshold if threshold is None else float(threshold)
        if k is not None:
            S = topk_dense(Z, _check_k(k))
            keep = S.data > thr if threshold is not None else np.ones(S.nnz, dtype=bool)
            S.data = np.where(keep, np.float32(1.0), np.float32(0.0))
            S.eliminate_zeros()
            return S
        out = sp.csr_matrix((Z > thr).astype(np.float32))
        out.sort_indices()
        return out

    def _decision_topk(self, X: Any, k: int) -> sp.csr_matrix:
        return topk_dense(self.logits(X), k)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return dict(self.weights_), {"encoder": self.encoder_identity_,
                                     "history": self.history_}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        L, d_in = len(self.labels_), self.n_features_in_
        if isinstance(d_in, bool) or not isinstance(d_in, int) or d_in < 1:
            raise DataFormatError(f"n_features_in must be a positive integer, got {d_in!r}")
        g, K = head_shapes(d_in, int(self.d_model), int(self.n_heads), int(self.dim_feedforward), L,
                       self.n_groups)
        weights = {}
        for name, shape in WEIGHTS.items():
            want = shape(d_in, int(self.d_model), int(self.dim_feedforward), g, K, L)
            arr = arrays.get(name)
            if arr is None or arr.dtype != np.float32 or arr.shape != want:
                got = "missing" if arr is None else f"{arr.dtype} {arr.shape}"
                raise DataFormatError(f"weight {name}: expected float32 {want}, got {got}")
            weights[name] = arr
        identity = state.get("encoder")
        if identity is not None and not (isinstance(identity, dict)
                                         and isinstance(identity.get("sha256"), str)):
            raise DataFormatError("state encoder must be null or the encoder's identity "
                                  "(name, version, sha256, hidden_size, max_seq_length)")
        history = state.get("history")
        if not isinstance(history, dict):
            raise DataFormatError("state has no training history")
        self.weights_ = weights
        self.encoder_identity_ = identity
        self.history_ = history
