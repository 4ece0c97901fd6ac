"""``FineTunedFewShot``: few-shot learning that fine-tunes the encoder from the prototypes.

:class:`~labelwise.models.fewshot.FewShot` scores a text by its cosine to each label's
prototype (the label-name vector blended with the examples' mean, centred over the labels)
and maps it to a probability by a temperature ``T`` and bias ``b``. That model *is* a
linear head on unit-length mean-pooled encoder outputs: weight ``u_j / T``, bias ``-b / T``.
``FineTunedFewShot`` builds that FewShot model from the training texts and their labels
(the label names come from the label space), starts a :class:`FineTuned` model from it
(unit-length pooled vectors, head = the prototypes' weight and bias), and fine-tunes the
encoder and the head together on the same few examples with the multi-label loss.

Before the first step the model scores exactly as the FewShot model (up to the encoder's
``max_seq_length``), so the label names' knowledge is where training starts, not something
the head must first learn from a handful of rows; the encoder then adapts to the domain
and to the labels' boundaries, as SetFit's contrastive tuning does, but on the multi-label
loss directly. Measured on GoEmotions (``benchmarks/text.py``, thresholds tuned on dev):
see README. The defaults (learning rate 2e-4, 10 epochs, no early stopping: a validation
split would take a fifth of a handful of examples) were chosen on GoEmotions at 8
examples per label.

Everything else (saving with the encoder in safetensors, scoring texts or pooled vectors,
``max_time``) is :class:`FineTuned`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from ...errors import DataFormatError
from ..fewshot import FewShot
from ..zeroshot import DEFAULT_TEMPLATES, check_templates
from ._training import check_number
from .finetune import FineTuned

__all__ = ["FineTunedFewShot"]


class FineTunedFewShot(FineTuned):
    """Fine-tuned encoder whose head starts as the FewShot prototypes; see the module docstring.

    Parameters: :class:`FineTuned`'s (with few-shot defaults; ``alpha`` is the focal loss's),
    and for the starting prototypes ``shots_alpha`` (FewShot's ``alpha``: examples that weigh
    as much as the label name), ``templates``, ``use_descriptions`` and ``humanize_names``
    (as in :class:`~labelwise.models.fewshot.FewShot`).
    """

    _persist_name = "FineTunedFewShot"
    unit_pooled = True

    def __init__(self, *, encoder: str | None = None, max_seq_length: int = 128,
                 loss: str = "bce", gamma: float = 2.0, alpha: float | None = None,
                 gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05,
                 learning_rate: float = 2e-4, head_learning_rate: float = 1e-3,
                 weight_decay: float = 0.01, warmup_ratio: float = 0.1, batch_size: int = 16,
                 eval_batch_size: int = 64, epochs: int = 10, max_steps: int | None = None,
                 max_time: float | None = None, dropout: float = 0.0,
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 patience: int = 1, n_threads: int | None = None, random_state: int | None = 0,
                 shots_alpha: float = 8.0, templates: Sequence[str] = DEFAULT_TEMPLATES,
                 use_descriptions: bool = True, humanize_names: bool = True) -> None:
        super().__init__(encoder=encoder, max_seq_length=max_seq_length, loss=loss, gamma=gamma,
                         alpha=alpha, gamma_pos=gamma_pos, gamma_neg=gamma_neg, clip=clip,
                         learning_rate=learning_rate, head_learning_rate=head_learning_rate,
                         weight_decay=weight_decay, warmup_ratio=warmup_ratio,
                         batch_size=batch_size, eval_batch_size=eval_batch_size, epochs=epochs,
                         max_steps=max_steps, max_time=max_time, dropout=dropout,
                         early_stopping=early_stopping,
                         validation_fraction=validation_fraction, patience=patience,
                         n_threads=n_threads, random_state=random_state)
        self.shots_alpha = shots_alpha
        self.templates = templates
        self.use_descriptions = use_descriptions
        self.humanize_names = humanize_names

    def _validate_params(self) -> None:
        super()._validate_params()
        check_number("shots_alpha", self.shots_alpha, 0.0, float("inf"), lo_open=True)
        check_templates(self.templates)
        for name in ("use_descriptions", "humanize_names"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def _initial_head(self, texts: list[str], Y: sp.csr_matrix,
                      hidden: int) -> tuple[np.ndarray, np.ndarray]:
        """The FewShot model of these examples as a head: (centred prototypes / T, -b / T)."""
        fs = FewShot(encoder=self.encoder, templates=tuple(self.templates),
                     use_descriptions=self.use_descriptions, humanize_names=self.humanize_names,
                     batch_size=self.eval_batch_size, max_seq_length=self.max_seq_length,
                     cache=False, progress=False, alpha=float(self.shots_alpha))
        fs.fit(texts, Y, labels=self.labels_)
        U = fs._label_vectors()
        if U.shape != (Y.shape[1], hidden):
            raise DataFormatError(f"the encoder's sentence vectors have {U.shape[1]} dimensions, "
                                  f"its hidden size is {hidden}", field="encoder")
        T, b = float(fs.temperature_), float(fs.bias_)
        self.start_temperature_, self.start_bias_ = T, b
        return ((U / T).astype(np.float32), np.full(Y.shape[1], -b / T, dtype=np.float32))

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, state = super()._get_state()
        state["start"] = {"temperature": self.start_temperature_, "bias": self.start_bias_}
        return arrays, state

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        super()._set_state(arrays, state)
        if isinstance(self.templates, list):  # JSON turned the tuple into a list
            self.templates = tuple(self.templates)
        start = state.get("start")
        if not isinstance(start, dict) or not all(
                isinstance(start.get(k), int | float) for k in ("temperature", "bias")):
            raise DataFormatError("state start must hold the starting temperature and bias")
        self.start_temperature_ = float(start["temperature"])
        self.start_bias_ = float(start["bias"])

