"""The label-query decoder layer of :class:`~labelwise.models.neural.attention.LabelAttention`
(ML-Decoder's layer: learned queries cross-attending over token memory, feed-forward, group
fully-connected decoding; the formulas are in that module's docstring), its saved weight
names and shapes (:data:`WEIGHTS`), and the length-bucketed mini-batches it trains on.

torch is passed in by the caller (imported lazily there); nothing here imports it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["WEIGHTS", "build_head", "head_shapes", "head_weights", "length_batches"]

#: saved weight name -> shape, from (d_in, d, ff, g, K, L)
WEIGHTS = {
    "embed_weight": lambda d_in, d, ff, g, K, L: (d, d_in),
    "embed_bias": lambda d_in, d, ff, g, K, L: (d,),
    "query": lambda d_in, d, ff, g, K, L: (g, d),
    "norm1_weight": lambda d_in, d, ff, g, K, L: (d,),
    "norm1_bias": lambda d_in, d, ff, g, K, L: (d,),
    **{f"{w}_{p}": (lambda d_in, d, ff, g, K, L, p=p: (d, d) if p == "weight" else (d,))
       for w in ("wq", "wk", "wv", "wo") for p in ("weight", "bias")},
    "norm2_weight": lambda d_in, d, ff, g, K, L: (d,),
    "norm2_bias": lambda d_in, d, ff, g, K, L: (d,),
    "ff1_weight": lambda d_in, d, ff, g, K, L: (ff, d),
    "ff1_bias": lambda d_in, d, ff, g, K, L: (ff,),
    "ff2_weight": lambda d_in, d, ff, g, K, L: (d, ff),
    "ff2_bias": lambda d_in, d, ff, g, K, L: (d,),
    "norm3_weight": lambda d_in, d, ff, g, K, L: (d,),
    "norm3_bias": lambda d_in, d, ff, g, K, L: (d,),
    "group_weight": lambda d_in, d, ff, g, K, L: (g, d, K),
    "group_bias": lambda d_in, d, ff, g, K, L: (L,),
}

_HEAD_CLASS: list[Any] = []
#: training batches are formed within windows of this many batches of shuffled rows
_BUCKET_BATCHES = 16


def length_batches(order: np.ndarray, lengths: np.ndarray, bs: int, gen: Any,
                   torch: Any) -> list[np.ndarray]:
    """Mini-batches of the shuffled rows ``order`` that pad little: each window of
    ``_BUCKET_BATCHES * bs`` rows is sorted by token count and cut into batches of ``bs``,
    and the batches are shuffled (by ``gen``)."""
    batches = []
    win = bs * _BUCKET_BATCHES
    for a in range(0, order.size, win):
        part = order[a:a + win]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[b:b + bs] for b in range(0, part.size, bs)]
    perm = torch.randperm(len(batches), generator=gen).numpy()
    return [batches[i] for i in perm]


def _head_class(torch: Any) -> Any:
    if _HEAD_CLASS:
        return _HEAD_CLASS[0]
    nn = torch.nn

    class Head(nn.Module):
        def __init__(self, d_in: int, d: int, n_heads: int, ff: int, g: int, K: int, L: int,
                     dropout: float) -> None:
            super().__init__()
            self.n_heads, self.L = n_heads, L
            self.embed = nn.Linear(d_in, d)
            self.query = nn.Parameter(torch.randn(g, d))
            self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
            self.wq, self.wk, self.wv, self.wo = (nn.Linear(d, d) for _ in range(4))
            self.ff1, self.ff2 = nn.Linear(d, ff), nn.Linear(ff, d)
            self.drop = nn.Dropout(dropout)
            self.group_weight = nn.Parameter(torch.empty(g, d, K))
            for i in range(g):
                nn.init.xavier_normal_(self.group_weight.data[i])
            self.group_bias = nn.Parameter(torch.zeros(L))

        def forward(self, H: Any, mask: Any) -> Any:
            b, t, _ = H.shape
            g, d = self.query.shape
            h = self.n_heads
            dh = d // h
            M = torch.relu(self.embed(H))
            q = self.norm1(self.query)
            Q = self.wq(q).reshape(g, h, dh).transpose(0, 1)                 # (h, g, dh)
            Kt = self.wk(M).reshape(b, t, h, dh).permute(0, 2, 3, 1)          # (b, h, dh, t)
            V = self.wv(M).reshape(b, t, h, dh).transpose(1, 2)               # (b, h, t, dh)
            S = torch.matmul(Q.unsqueeze(0), Kt) / math.sqrt(dh)              # (b, h, g, t)
            S = S.masked_fill(~mask[:, None, None, :], float("-inf"))
            A = torch.softmax(S, dim=-1)
            out = torch.matmul(A, V).transpose(1, 2).reshape(b, g, d)        # (b, g, d)
            x = self.norm2(q.unsqueeze(0) + self.drop(self.wo(out)))
            x = self.norm3(x + self.drop(self.ff2(self.drop(torch.relu(self.ff1(x))))))
            out = torch.einsum("bgd,gdk->bgk", x, self.group_weight).reshape(b, -1)
            return out[:, :self.L] + self.group_bias

    _HEAD_CLASS.append(Head)
    return Head


def head_shapes(d_in: int, d: int, n_heads: int, ff: int, L: int,
            n_groups: int | None) -> tuple[int, int]:
    """(number of queries g, labels per query K)."""
    groups = L if n_groups is None else min(int(n_groups), L)
    K = -(-L // groups)
    return -(-L // K), K


def build_head(torch: Any, *, d_in: int, d_model: int, n_heads: int, dim_feedforward: int,
               n_labels: int, n_groups: int | None, dropout: float = 0.0,
               weights: dict[str, np.ndarray] | None = None, dtype: Any = None) -> Any:
    """The head module (see the module docstring), from ``weights`` (name -> array, as saved)
    when given, else freshly initialised from torch's current random state."""
    g, K = head_shapes(d_in, d_model, n_heads, dim_feedforward, n_labels, n_groups)
    head = _head_class(torch)(d_in, d_model, n_heads, dim_feedforward, g, K, n_labels, dropout)
    if weights is not None:
        sd = {name.replace("_weight", ".weight").replace("_bias", ".bias")
              if name not in ("group_weight", "group_bias") else name:
              torch.from_numpy(np.array(weights[name], dtype=np.float32)) for name in WEIGHTS}
        head.load_state_dict(sd, strict=True)
    if dtype is not None:
        head = head.to(dtype)
    return head


def head_weights(head: Any) -> dict[str, np.ndarray]:
    out = {}
    for key, t in head.state_dict().items():
        name = key.replace(".", "_")
        out[name] = t.detach().numpy().astype(np.float32, copy=True)
    if set(out) != set(WEIGHTS):  # pragma: no cover - the module and the table disagree
        raise RuntimeError(f"head weights {sorted(out)} != {sorted(WEIGHTS)}")
    return out
