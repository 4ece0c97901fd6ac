"""``MLPHead``: a multi-layer perceptron on fixed dense features (sentence embeddings, fused
features, or any numeric matrix), trained with PyTorch on the CPU.

Architecture: ``Linear -> ReLU -> Dropout`` for each size in ``hidden_sizes``, then a
``Linear`` to one logit per label (``hidden_sizes=()`` is a linear model). Loss: BCE,
focal or asymmetric (:mod:`labelwise.models.neural.losses`), averaged over all
(item, label) entries. Optimiser: AdamW (``learning_rate``, ``weight_decay``) on shuffled
mini-batches of ``batch_size`` rows for at most ``epochs`` epochs, with early stopping on a
validation split made by the iterative stratifier (:mod:`labelwise.models.neural._training`).
Sparse inputs are densified one mini-batch at a time.

Scores (``decision_function``) are the logits, computed in numpy from the saved weights
(no torch needed to predict); ``predict_proba`` is their sigmoid and the default threshold
is 0.0 (probability 0.5).

Determinism: training seeds torch (weights, dropout, shuffling) from ``random_state`` and
turns on ``torch.use_deterministic_algorithms`` for the duration of ``fit``; on the CPU the
same seed and thread count give the same weights. Saved arrays (one ``arrays.safetensors``
file, see :mod:`labelwise.models.persist`): ``weight_i`` (out, in) float32 and ``bias_i``
(out,) float32 per layer; the state holds the training history.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from ...checks import positive_int
from ...errors import DataFormatError
from ...progress import progress
from ..base import MultiLabelModel
from ..topk import topk_dense
from ._torch import check_seed, import_torch, resolve_threads, torch_session
from ._training import (
    check_number,
    mlp_logits,
    run_epochs,
    validation_split,
)
from .losses import check_loss_params, make_loss

__all__ = ["MLPHead"]

_EVAL_ROWS = 2048


class MLPHead(MultiLabelModel):
    """MLP on fixed features; see the module docstring.

    Parameters
    ----------
    hidden_sizes: widths of the hidden layers (``()`` = linear).
    dropout: dropout probability after each hidden layer, in [0, 1).
    loss: ``'bce'``, ``'focal'`` or ``'asl'``; ``gamma``/``alpha`` (focal) and
        ``gamma_pos``/``gamma_neg``/``clip`` (asl) are its parameters.
    learning_rate, weight_decay: AdamW's.
    batch_size: rows per mini-batch.
    epochs: most passes over the training rows.
    early_stopping: hold out ``validation_fraction`` of the rows (iterative stratification)
        and keep the epoch with the lowest validation loss; stop after ``patience`` epochs
        without improvement.
    n_threads: torch threads (None = all cores).
    random_state: seed (int; None = 0).
    """

    _persist_name = "MLPHead"
    #: the arrays a saved MLPHead holds: name pattern -> (dtypes, ndim) (checked on load)
    _saved_arrays = {r"weight_\d+": (("<f4",), 2), r"bias_\d+": (("<f4",), 1)}
    #: weights are saved as one safetensors file (labelwise.models.persist)
    _array_storage = "safetensors"

    def __init__(self, *, hidden_sizes: Sequence[int] = (512,), dropout: float = 0.1,
                 loss: str = "bce", gamma: float = 2.0, alpha: float | None = None,
                 gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05,
                 learning_rate: float = 1e-3, weight_decay: float = 1e-4,
                 batch_size: int = 64, epochs: int = 30, early_stopping: bool = True,
                 validation_fraction: float = 0.1, patience: int = 3,
                 n_threads: int | None = None, random_state: int | None = 0) -> None:
        self.hidden_sizes = hidden_sizes
        self.dropout = dropout
        self.loss = loss
        self.gamma = gamma
        self.alpha = alpha
        self.gamma_pos = gamma_pos
        self.gamma_neg = gamma_neg
        self.clip = clip
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.n_threads = n_threads
        self.random_state = random_state

    # ------------------------------------------------------------------ checks
    def _validate_params(self) -> None:
        if isinstance(self.hidden_sizes, list):  # JSON turned the tuple into a list
            self.hidden_sizes = tuple(self.hidden_sizes)
        if not isinstance(self.hidden_sizes, tuple):
            raise ValueError(f"hidden_sizes must be a tuple of positive ints, got "
                             f"{self.hidden_sizes!r}")
        for i, h in enumerate(self.hidden_sizes):
            positive_int(h, f"hidden_sizes[{i}]")
        check_number("dropout", self.dropout, 0.0, 1.0)
        check_loss_params(self.loss, self.gamma, self.alpha, self.gamma_pos, self.gamma_neg,
                          self.clip)
        check_number("learning_rate", self.learning_rate, 0.0, float("inf"), lo_open=True)
        check_number("weight_decay", self.weight_decay, 0.0, float("inf"))
        positive_int(self.batch_size, "batch_size")
        positive_int(self.epochs, "epochs")
        positive_int(self.patience, "patience")
        if not isinstance(self.early_stopping, bool):
            raise ValueError(f"early_stopping must be True or False, got {self.early_stopping!r}")
        check_number("validation_fraction", self.validation_fraction, 0.0, 1.0, lo_open=True)
        resolve_threads(self.n_threads)
        check_seed(self.random_state)

    # ------------------------------------------------------------------ training
    def _fit(self, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
        import_torch()  # fail with the install hint before any work
        seed = check_seed(self.random_state)
        n = X.shape[0]
        if self.early_stopping:
            train, val = validation_split(Y, float(self.validation_fraction), seed)
        else:
            train, val = np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64)
        loss_fn = make_loss(self.loss, gamma=self.gamma, alpha=self.alpha,
                            gamma_pos=self.gamma_pos, gamma_neg=self.gamma_neg, clip=self.clip)
        bs = int(self.batch_size)
        with torch_session(self.n_threads, seed) as torch:
            net = self._build(torch, X.shape[1], Y.shape[1])
            opt = torch.optim.AdamW(net.parameters(), lr=float(self.learning_rate),
                                    weight_decay=float(self.weight_decay))
            gen = torch.Generator().manual_seed(seed)

            def batch(rows: np.ndarray) -> tuple[Any, Any]:
                return (torch.from_numpy(X[rows].toarray()),
                        torch.from_numpy(Y[rows].toarray().astype(np.float32)))

            def train_epoch(epoch: int) -> float:
                net.train()
                order = train[torch.randperm(train.size, generator=gen).numpy()]
                total = 0.0
                n_batches = -(-order.size // bs)
                with progress(n_batches, f"epoch {epoch + 1}", unit="batch") as bar:
                    for a in range(0, order.size, bs):
                        xb, yb = batch(order[a:a + bs])
                        opt.zero_grad()
                        loss = loss_fn(net(xb), yb)
                        loss.backward()
                        opt.step()
                        total += float(loss.detach()) * xb.shape[0]
                        bar.update(1)
                return total / order.size

            def val_loss() -> float:
                net.eval()
                total = 0.0
                with torch.no_grad():
                    for a in range(0, val.size, _EVAL_ROWS):
                        xb, yb = batch(val[a:a + _EVAL_ROWS])
                        total += float(loss_fn(net(xb), yb)) * xb.shape[0]
                return total / val.size

            self.history_ = run_epochs(
                epochs=int(self.epochs), patience=int(self.patience),
                early_stopping=self.early_stopping, train_epoch=train_epoch, val_loss=val_loss,
                snapshot=lambda: {k: v.detach().clone() for k, v in net.state_dict().items()},
                restore=net.load_state_dict, desc="MLPHead")
            linears = [m for m in net if isinstance(m, torch.nn.Linear)]
            self.coefs_ = [m.weight.detach().numpy().astype(np.float32, copy=True)
                           for m in linears]
            self.intercepts_ = [m.bias.detach().numpy().astype(np.float32, copy=True)
                                for m in linears]

    def _build(self, torch: Any, n_in: int, n_out: int) -> Any:
        nn = torch.nn
        layers: list[Any] = []
        width = n_in
        for h in self.hidden_sizes:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            if self.dropout > 0:
                layers.append(nn.Dropout(float(self.dropout)))
            width = int(h)
        layers.append(nn.Linear(width, n_out))
        return nn.Sequential(*layers)

    # ------------------------------------------------------------------ scoring
    def _decision_topk(self, X: sp.csr_matrix, k: int) -> sp.csr_matrix:
        logits = mlp_logits(X, list(zip(self.coefs_, self.intercepts_, strict=True)))
        return topk_dense(logits, k)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {}
        for i, (W, b) in enumerate(zip(self.coefs_, self.intercepts_, strict=True)):
            arrays[f"weight_{i}"] = W
            arrays[f"bias_{i}"] = b
        return arrays, {"n_layers": len(self.coefs_), "history": self.history_}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        n_layers = state.get("n_layers")
        if n_layers != len(self.hidden_sizes) + 1:
            raise DataFormatError(f"state n_layers={n_layers!r} does not match hidden_sizes "
                             f"{self.hidden_sizes!r}")
        widths = [self.n_features_in_, *map(int, self.hidden_sizes), len(self.labels_)]
        coefs, intercepts = [], []
        for i in range(n_layers):
            W, b = arrays.get(f"weight_{i}"), arrays.get(f"bias_{i}")
            want = (widths[i + 1], widths[i])
            if W is None or b is None or W.dtype != np.float32 or b.dtype != np.float32 \
                    or W.shape != want or b.shape != (want[0],):
                raise DataFormatError(f"layer {i}: expected float32 weight_{i} {want} and bias_{i} "
                                 f"({want[0]},)")
            coefs.append(W)
            intercepts.append(b)
        self.coefs_, self.intercepts_ = coefs, intercepts
        history = state.get("history")
        if not isinstance(history, dict):
            raise DataFormatError("state has no training history")
        self.history_ = history
