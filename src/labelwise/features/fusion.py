"""``Fusion``: several featurizers side by side, each block normalised and weighted.

For blocks ``B_1 .. B_m`` with weights ``w_1 .. w_m`` the output row is::

    [ w_1 * B_1(x) / ||B_1(x)||,  ...,  w_m * B_m(x) / ||B_m(x)|| ]

(``normalize='l2'``; with ``normalize=None`` blocks are used as they come). A zero row stays
zero. The output is CSR float32 when any block is sparse, else dense float32.

Context-aware option: with ``context='<block name>'`` one more block is appended, the mean
of that block's (normalised) rows over the item's group — all rows of the same
``transform`` call whose ``groups`` key is equal, the item itself included — L2-normalised
and weighted by ``context_weight``. ``transform(X, groups=...)`` then needs ``groups``, one
hashable key per text (a document id for the sentences of one document, a thread id, ...).

Saved form: ``params`` hold ``normalize``, ``context`` and ``context_weight``; ``state``
holds each block's name, weight and nested ``to_dict()``; arrays of block ``i`` are stored
as ``b<i>__<name>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize as _normalize

from ..errors import DataFormatError
from .base import Featurizer, as_texts

__all__ = ["Fusion"]


class Fusion(Featurizer):
    """Concatenate featurizers with per-block normalisation and weights.

    Parameters
    ----------
    blocks: sequence of ``(name, featurizer)`` or ``(name, featurizer, weight)``; weight 1.0
        when left out. Names must be unique plain identifiers.
    normalize: 'l2' (each block row to unit length before weighting) or None.
    context: name of the block whose group mean is appended (see the module docstring), or None.
    context_weight: weight of the context block.
    """

    _persist_name = "Fusion"

    def __init__(self, blocks: Sequence[Any] = (), *, normalize: str | None = "l2",
                 context: str | None = None, context_weight: float = 1.0) -> None:
        self.blocks = blocks
        self.normalize = normalize
        self.context = context
        self.context_weight = context_weight

    def _parsed_blocks(self) -> list[tuple[str, Featurizer, float]]:
        out: list[tuple[str, Featurizer, float]] = []
        if self.normalize not in ("l2", None):
            raise ValueError(f"normalize must be 'l2' or None, got {self.normalize!r}")
        for i, b in enumerate(self.blocks):
            if not isinstance(b, tuple | list) or len(b) not in (2, 3):
                raise ValueError(f"block {i}: expected (name, featurizer[, weight]), got {b!r}")
            name, feat = b[0], b[1]
            weight = float(b[2]) if len(b) == 3 else 1.0
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"block {i}: name must be a plain identifier, got {name!r}")
            if not isinstance(feat, Featurizer):
                raise ValueError(f"block {name!r}: {type(feat).__name__} is not a Featurizer")
            if not np.isfinite(weight) or weight < 0:
                raise ValueError(f"block {name!r}: weight must be finite and >= 0, got {weight}")
            out.append((name, feat, weight))
        names = [n for n, _, _ in out]
        if len(set(names)) != len(names):
            raise ValueError(f"block names repeat: {names}")
        if not out:
            raise ValueError("Fusion needs at least one block")
        if self.context is not None and self.context not in names:
            raise ValueError(f"context block {self.context!r} is not one of {names}")
        return out

    def _fit(self, texts: list[str]) -> None:
        blocks = self._parsed_blocks()
        for _, feat, _ in blocks:
            feat.fit(texts)
        self.blocks_ = blocks

    def transform(self, X: Any, *, groups: Sequence[Any] | np.ndarray | None = None):
        """Fused features of the texts X; ``groups`` (one key per text) when ``context`` is set."""
        self._check_fitted()
        texts = as_texts(X)
        if self.context is not None:
            if groups is None:
                raise DataFormatError(
                    f"context={self.context!r} needs groups: one key per text", field="groups")
            groups = np.asarray(groups)
            if groups.ndim != 1 or groups.shape[0] != len(texts):
                raise DataFormatError(f"groups must have one entry per text ({len(texts)}), "
                                      f"got shape {groups.shape}", field="groups")
        elif groups is not None:
            raise DataFormatError("groups given but context is None", field="groups")
        parts: list[Any] = []
        ctx = None
        for name, feat, weight in self.blocks_:
            B = feat.transform(texts)
            if self.normalize == "l2":
                B = _normalize(B, norm="l2", copy=True)
            if name == self.context:
                ctx = _group_mean(B, groups)
            parts.append(B * np.float32(weight))
        if ctx is not None:
            parts.append(_normalize(ctx, norm="l2", copy=False) * np.float32(self.context_weight))
        if any(sp.issparse(p) for p in parts):
            X = sp.hstack([sp.csr_matrix(p) for p in parts], format="csr", dtype=np.float32)
            X.sort_indices()
            return X
        return np.ascontiguousarray(np.hstack(parts), dtype=np.float32)

    def _transform(self, texts: list[str]):  # pragma: no cover - transform is overridden
        return self.transform(texts)

    def _json_params(self) -> dict[str, Any]:
        return {"normalize": self.normalize, "context": self.context,
                "context_weight": float(self.context_weight)}

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {}
        blocks = []
        for i, (name, feat, weight) in enumerate(self.blocks_):
            blocks.append({"name": name, "weight": weight, "featurizer": feat.to_dict()})
            for key, a in feat.arrays().items():
                arrays[f"b{i}__{key}"] = a
        return arrays, {"blocks": blocks}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        blocks = []
        for i, b in enumerate(state["blocks"]):
            prefix = f"b{i}__"
            sub = {k[len(prefix):]: a for k, a in arrays.items() if k.startswith(prefix)}
            feat = Featurizer.from_dict(b["featurizer"], sub, where=f"block {b['name']!r}")
            blocks.append((b["name"], feat, float(b["weight"])))
        self.blocks = blocks
        self.blocks_ = self._parsed_blocks()


def _group_mean(B: Any, groups: np.ndarray) -> Any:
    """Row i -> mean of the rows of B whose group equals groups[i] (dense or CSR)."""
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    n = inverse.shape[0]
    G = sp.csr_matrix((np.ones(n, dtype=np.float32), (inverse, np.arange(n))),
                      shape=(counts.shape[0], n))
    means = (G @ B) / counts[:, None].astype(np.float32) if not sp.issparse(B) else \
        sp.diags((1.0 / counts).astype(np.float32)) @ (G @ B)
    return means[inverse] if not sp.issparse(means) else sp.csr_matrix(means)[inverse]
