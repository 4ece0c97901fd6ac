"""A tiny random token encoder for the LabelAttention tests, so they do not load MiniLM.

``TinyTokens`` has the interface of :class:`labelwise.models.neural.tokens.TransformerTokens`
(``encode(texts, batch_size=, n_threads=)`` -> TokenStates, ``identity``, ``hidden_size``):
a text is a [CLS] token plus its lower-cased words (at most ``max_seq_length - 1``), each
word hashed (crc32) to a row of a fixed random table, plus a position vector, through tanh.
``install_tiny_encoder(monkeypatch)`` makes every LabelAttention use it (as if it were the
shipped encoder).
"""

from __future__ import annotations

import zlib

import numpy as np

from labelwise.models.neural import attention
from labelwise.models.neural.tokens import TokenStates

DIM = 12
_VOCAB = 512


class TinyTokens:
    def __init__(self, max_seq_length: int = 128, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.table = rng.normal(size=(_VOCAB + 1, DIM)).astype(np.float32)
        self.pos = 0.1 * rng.normal(size=(512, DIM)).astype(np.float32)
        self.max_seq_length = int(max_seq_length)
        self.hidden_size = DIM
        self.identity = {"name": "tiny", "version": None, "sha256": f"tiny-{seed}",
                         "hidden_size": DIM, "max_seq_length": self.max_seq_length}
        self.calls = 0

    def encode(self, texts, *, batch_size=64, n_threads=None) -> TokenStates:
        self.calls += 1
        out = []
        for t in texts:
            ids = [_VOCAB] + [zlib.crc32(w.encode()) % _VOCAB for w in t.lower().split()]
            ids = ids[:self.max_seq_length]
            out.append(np.tanh(self.table[ids] + self.pos[:len(ids)]))
        return TokenStates.from_list(out, self.identity, DIM)


def install_tiny_encoder(monkeypatch, seed: int = 0) -> dict:
    """Every LabelAttention (any encoder folder) gets a TinyTokens; returns the encoders
    made, by max_seq_length."""
    made: dict = {}

    def fake(folder, max_seq_length):
        if max_seq_length not in made:
            made[max_seq_length] = TinyTokens(max_seq_length, seed)
        return made[max_seq_length]

    monkeypatch.setattr(attention, "token_encoder", fake)
    return made
