"""Matplotlib figures of an evaluation, rendered to PNG bytes (headless Agg backend).

Each function takes plain arrays (computed by :mod:`labelwise.report.curves`) and returns PNG
bytes, so the HTML report embeds them without any file beside it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from ..errors import MissingDependencyError

__all__ = ["f1_vs_frequency", "at_k_curves", "precision_coverage", "pr_curves"]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError("matplotlib", "report", "HTML report plots") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=96)
    plt.close(fig)
    return buf.getvalue()


def f1_vs_frequency(support: Sequence[int], f1: Sequence[float]) -> bytes:
    """F1 of each label against its number of positives (log x); labels without positives left out."""
    plt = _pyplot()
    support = np.asarray(support, dtype=np.float64)
    f1 = np.asarray(f1, dtype=np.float64)
    keep = support > 0
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(support[keep], f1[keep], s=10, alpha=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("positives in the evaluation set (log)")
    ax.set_ylabel("F1")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("F1 per label against label frequency")
    ax.grid(True, alpha=0.3)
    return _png(fig)


def at_k_curves(ks: Sequence[int], precision: Sequence[float], recall: Sequence[float]) -> bytes:
    """P@k and R@k for k = 1..K."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ks, precision, marker="o", label="P@k")
    ax.plot(ks, recall, marker="s", label="R@k")
    ax.set_xlabel("k")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Precision and recall at k")
    ax.legend()
    ax.grid(True, alpha=0.3)
    return _png(fig)


def precision_coverage(coverage: Sequence[float], precision: Sequence[float], target: float | None = None) -> bytes:
    """The precision-coverage curve: share of items accepted against precision of what is accepted."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(coverage, precision)
    if target is not None:
        ax.axhline(target, color="grey", linestyle="--", label=f"precision {target:g}")
        ax.legend()
    ax.set_xlabel("coverage (share of items accepted)")
    ax.set_ylabel("precision")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Precision against coverage")
    ax.grid(True, alpha=0.3)
    return _png(fig)


def pr_curves(curves: Sequence[tuple[str, np.ndarray, np.ndarray, float]]) -> bytes:
    """Precision-recall curves, one per (name, recall, precision, AP)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, recall, precision, ap in curves:
        ax.step(recall, precision, where="post", label=f"{name} (AP {ap:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("PR curves of the most frequent labels")
    if curves:
        ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    return _png(fig)
