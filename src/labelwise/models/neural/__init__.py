"""Neural heads (the ``[neural]`` extra: PyTorch on the CPU).

- :class:`MLPHead`: an MLP on fixed dense features (e.g. sentence embeddings).
- :class:`FineTuned`: the sentence encoder fine-tuned end to end with a multi-label head.
- :class:`FineTunedFewShot`: few-shot learning that fine-tunes the encoder, its head starting
  as the label-name/example prototypes of :class:`~labelwise.models.fewshot.FewShot`.
- :class:`LabelAttention`: label queries cross-attending over a frozen encoder's token
  states (ML-Decoder / Query2Label), with label weights and ML-ROS resampling.
- :mod:`.losses`: BCE, focal and asymmetric (ASL) losses.

Importing this package does not import torch; fitting does (and raises
:class:`~labelwise.errors.MissingDependencyError` with the install hint when it is missing).
"""

from __future__ import annotations

from .attention import LabelAttention
from .fewshot_tuned import FineTunedFewShot
from .finetune import FineTuned
from .losses import LOSSES, asymmetric_loss, bce_loss, focal_loss, make_loss
from .mlp import MLPHead
from .tokens import TokenStates

__all__ = ["LOSSES", "FineTuned", "FineTunedFewShot", "LabelAttention", "MLPHead", "TokenStates",
           "asymmetric_loss", "bce_loss", "focal_loss", "make_loss"]
