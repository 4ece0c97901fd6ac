"""What the neural heads share: the validation split, the epoch loop with early stopping,
the numpy forward pass of a saved MLP, and parameter checks.

**Validation split.** With ``early_stopping=True`` the training rows are split once by
:class:`~labelwise.split.IterativeStratifiedShuffleSplit` (``test_size=validation_fraction``,
seeded by the model's ``random_state``); the held-out rows are never trained on.

**Early stopping.** After every epoch the mean loss on the validation rows is computed; the
weights of the epoch with the lowest validation loss are kept, and training stops once
``patience`` epochs in a row brought no improvement. Without early stopping every row
trains for ``epochs`` epochs and the last weights are kept.

**Scoring.** A fitted head is a list of (W, b) layers with ReLU between them; scores are
computed in numpy, in float64 from the float32 weights, and rounded to float32, so a row's
score does not depend on the other rows of the batch (BLAS may sum in another order for
another batch shape; the rounding hides the last-bit differences) and a saved model scores
without torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from ...progress import progress

__all__ = ["validation_split", "run_epochs", "mlp_logits", "check_number"]

_BLOCK_ENTRIES = 1 << 22


def check_number(name: str, v: Any, lo: float, hi: float, *, lo_open: bool = False,
                 hi_open: bool = True) -> None:
    ok = (not isinstance(v, bool) and isinstance(v, int | float | np.floating)
          and math.isfinite(float(v))
          and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi))
    if not ok:
        lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"{name} must be a number in {lb}{lo}, {hi}{rb}, got {v!r}")


def validation_split(Y: sp.csr_matrix, fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) by iterative stratification; ValueError when either
    side would be empty."""
    from ...split import IterativeStratifiedShuffleSplit

    n = Y.shape[0]
    if n < 2:
        raise ValueError(f"early stopping needs at least 2 training rows, got {n} "
                         "(set early_stopping=False)")
    cv = IterativeStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    train, val = next(cv.split(None, Y))
    if train.size == 0 or val.size == 0:
        raise ValueError(f"validation_fraction={fraction} leaves {train.size} training and "
                         f"{val.size} validation rows of {n}; change it or set "
                         "early_stopping=False")
    return np.sort(train).astype(np.int64), np.sort(val).astype(np.int64)


def run_epochs(*, epochs: int, patience: int, early_stopping: bool,
               train_epoch: Callable[[int], float], val_loss: Callable[[], float],
               snapshot: Callable[[], Any], restore: Callable[[Any], None],
               desc: str, time_up: Callable[[], bool] | None = None) -> dict[str, Any]:
    """The epoch loop; returns the history ``{"train_loss": [...], "val_loss": [...],
    "best_epoch": i (0-based), "stopped_early": bool, "stopped_on_time": bool}``.

    ``train_epoch(epoch)`` trains one epoch and returns its mean training loss;
    ``val_loss()`` the validation loss; ``snapshot()``/``restore(s)`` copy the weights out
    and back (used to keep the best epoch's weights). ``time_up()``: True when a time budget
    is spent (checked after each epoch, which ``train_epoch`` may cut short); the loop stops.
    """
    history: dict[str, Any] = {"train_loss": [], "val_loss": [], "best_epoch": epochs - 1,
                               "stopped_early": False, "stopped_on_time": False}
    best, best_state, bad = math.inf, None, 0
    with progress(epochs, desc, unit="epoch") as bar:
        for epoch in range(epochs):
            tl = float(train_epoch(epoch))
            if not math.isfinite(tl):
                raise FloatingPointError(
                    f"training diverged: epoch {epoch + 1} has loss {tl} (lower learning_rate)")
            history["train_loss"].append(tl)
            bar.update(1)
            out_of_time = time_up is not None and time_up()
            if out_of_time:
                history["stopped_on_time"] = epoch + 1 < epochs
            if not early_stopping:
                if out_of_time:
                    break
                continue
            vl = float(val_loss())
            if not math.isfinite(vl):
                raise FloatingPointError(
                    f"training diverged: validation loss {vl} after epoch {epoch + 1}")
            history["val_loss"].append(vl)
            if vl < best:
                best, best_state, bad = vl, snapshot(), 0
                history["best_epoch"] = epoch
            else:
                bad += 1
                if bad >= patience:
                    history["stopped_early"] = epoch + 1 < epochs
                    break
            if out_of_time:
                break
    if early_stopping and best_state is not None:
        restore(best_state)
    return history


def mlp_logits(X: Any, layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Float32 logits (n, n_out) of X (CSR or dense) through ReLU layers ``(W (out, in), b)``;
    computed in float64 block by block (see the module docstring)."""
    n = X.shape[0]
    width = max(max(W.shape[0], W.shape[1]) for W, _ in layers)
    rows = max(1, _BLOCK_ENTRIES // width)
    out = np.empty((n, layers[-1][0].shape[0]), dtype=np.float32)
    Ws = [(np.asarray(W, dtype=np.float64).T.copy(), np.asarray(b, dtype=np.float64))
          for W, b in layers]
    for a in range(0, n, rows):
        H = X[a:a + rows]
        H = H.astype(np.float64) if sp.issparse(H) else np.asarray(H, dtype=np.float64)
        for i, (Wt, b) in enumerate(Ws):
            H = H @ Wt
            H = np.asarray(H) + b
            if i + 1 < len(Ws):
                np.maximum(H, 0.0, out=H)
        out[a:a + rows] = H
    return out
