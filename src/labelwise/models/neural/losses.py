"""Multi-label losses on logits: binary cross-entropy, focal, asymmetric (ASL).

For a logit ``z`` and target ``y`` in {0, 1}, with ``p = sigmoid(z)``:

- **BCE**: ``-[y log p + (1 - y) log(1 - p)]``.
- **Focal** (Lin et al. 2017): ``-[y (1-p)^g log p + (1 - y) p^g log(1 - p)]``,
  optionally weighted by ``alpha`` on positives and ``1 - alpha`` on negatives;
  ``gamma = 0`` (and no alpha) is BCE.
- **Asymmetric** (ASL, Ridnik et al. 2021, "Asymmetric Loss For Multi-Label
  Classification"): negatives use the shifted probability ``p_m = max(p - clip, 0)``::

      L+ = (1 - p)^gamma_pos * log(p)
      L- = p_m^gamma_neg * log(1 - p_m)
      loss = -[y L+ + (1 - y) L-]

  ``gamma_pos = gamma_neg = 0`` and ``clip = 0`` is BCE. Gradients flow through the
  focusing weights, as in the paper's formula.

Every loss returns the mean over all (item, label) entries; with ``weight`` (a tensor that
broadcasts against the logits, e.g. per-label weights of shape ``(n_labels,)``) each entry's
loss is multiplied by its weight before the mean (the mean is still over all entries, so
weights averaging 1 keep the loss on the same scale). ``make_loss(name, **params)``
builds one from its name (``'bce'``, ``'focal'``, ``'asl'``); the logs are computed from
``logsigmoid`` so large logits do not overflow, and ``log(1 - p_m)`` is clamped at ``eps``
(1e-8, as in the reference implementation) where the clipping makes it ``log(0)``-prone.
"""

from __future__ import annotations

from typing import Any

from ._torch import import_torch

__all__ = ["LOSSES", "bce_loss", "focal_loss", "asymmetric_loss", "make_loss", "check_loss_params"]

LOSSES = ("bce", "focal", "asl")
_EPS = 1e-8


def _mean(entries: Any, weight: Any) -> Any:
    return (entries if weight is None else entries * weight).mean()


def bce_loss(z: Any, y: Any, *, weight: Any = None) -> Any:
    """Mean binary cross-entropy of logits z against 0/1 targets y (same shape)."""
    torch = import_torch()
    if weight is None:
        return torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="mean")
    return _mean(torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none"),
                 weight)


def focal_loss(z: Any, y: Any, *, gamma: float = 2.0, alpha: float | None = None,
               weight: Any = None) -> Any:
    """Mean focal loss of logits z against 0/1 targets y; see the module docstring."""
    torch = import_torch()
    logp = torch.nn.functional.logsigmoid(z)
    log1mp = torch.nn.functional.logsigmoid(-z)
    p = torch.exp(logp)
    pos = y * (1.0 - p) ** gamma * logp
    neg = (1.0 - y) * p ** gamma * log1mp
    if alpha is not None:
        pos = alpha * pos
        neg = (1.0 - alpha) * neg
    return -_mean(pos + neg, weight)


def asymmetric_loss(z: Any, y: Any, *, gamma_pos: float = 0.0, gamma_neg: float = 4.0,
                    clip: float = 0.05, weight: Any = None) -> Any:
    """Mean asymmetric loss (ASL) of logits z against 0/1 targets y; see the module docstring."""
    torch = import_torch()
    logp = torch.nn.functional.logsigmoid(z)
    p = torch.exp(logp)
    if clip > 0:
        pm = (p - clip).clamp(min=0.0)
        log1mpm = torch.log((1.0 - pm).clamp(min=_EPS))
    else:
        pm = p
        log1mpm = torch.nn.functional.logsigmoid(-z)
    pos = y * logp
    neg = (1.0 - y) * log1mpm
    if gamma_pos:
        pos = pos * (1.0 - p) ** gamma_pos
    if gamma_neg:
        neg = neg * pm ** gamma_neg
    return -_mean(pos + neg, weight)


def check_loss_params(loss: Any, gamma: Any, alpha: Any, gamma_pos: Any, gamma_neg: Any,
                      clip: Any) -> None:
    """Raise ValueError for a loss name or loss parameter out of range."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    for name, v in (("gamma", gamma), ("gamma_pos", gamma_pos), ("gamma_neg", gamma_neg)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < float("inf"):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, int | float)
                              or not 0 < alpha < 1):
        raise ValueError(f"alpha must be None or in (0, 1), got {alpha!r}")
    if isinstance(clip, bool) or not isinstance(clip, int | float) or not 0 <= clip < 1:
        raise ValueError(f"clip must be in [0, 1), got {clip!r}")


def make_loss(name: str, *, gamma: float = 2.0, alpha: float | None = None,
              gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05):
    """The loss function ``f(z, y, weight=None) -> scalar`` called ``name`` with its
    parameters bound."""
    check_loss_params(name, gamma, alpha, gamma_pos, gamma_neg, clip)
    if name == "bce":
        return lambda z, y, weight=None: bce_loss(z, y, weight=weight)
    if name == "focal":
        return lambda z, y, weight=None: focal_loss(z, y, gamma=float(gamma), alpha=alpha,
                                                    weight=weight)
    return lambda z, y, weight=None: asymmetric_loss(
        z, y, gamma_pos=float(gamma_pos), gamma_neg=float(gamma_neg), clip=float(clip),
        weight=weight)
