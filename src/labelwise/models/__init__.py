"""Model families that share one contract (:mod:`labelwise.models.base`).

- :class:`LabelTree`: a label tree for extreme label sets (PIFA, balanced k-means, beam search).
- :class:`MLPHead`, :class:`FineTuned`, :class:`FineTunedFewShot` (extra ``[neural]``): PyTorch
  heads on embeddings, a fine-tuned sentence encoder, and few-shot fine-tuning that starts from
  the prototypes, with BCE, focal and asymmetric losses.
- :class:`LabelAttention` (extra ``[neural]``): label queries cross-attending over the token
  states of a frozen encoder (ML-Decoder / Query2Label), for texts.
- :class:`ZeroShot`, :class:`FewShot`: label-name embeddings and per-label prototypes.
- :class:`ClassifierChain`: classifier chains, ensembles of chains, beam search over the chain.
- :class:`LabelForest`: multi-output random forests / extra-trees saved as flat tree arrays.
- :class:`LabelPowerset`, :class:`RAkEL`: label powerset with pruning of rare label sets,
  random k-labelsets (disjoint or overlapping).
- :class:`MLkNN`: multi-label k-nearest neighbours (exact cosine neighbours, Bayes posteriors).
- :class:`CalibratedLabelRanking`: pairwise classifiers for every label pair plus a virtual
  label (calibrated label ranking).
- :class:`LabelEmbedding`: PLST / CPLST label-space reduction with ridge regression.
- :class:`OutputCodes`: error-correcting or random binary codes over the labels, decoded by loss.
- :class:`Blend`: the mean of several fitted members' Platt-mapped probabilities (what
  ``--model auto`` builds when blending beats every single candidate).
- :class:`OneVsRest`: one-vs-rest L2-regularised linear classifiers (squared hinge or
  logistic) trained by dual coordinate descent in numba, with weight pruning.

Every model saves to and loads from a directory (:mod:`labelwise.models.persist`);
:func:`load_model` reads any registered family. Scores come back as top-k CSR matrices
(:mod:`labelwise.models.topk`).
"""

from __future__ import annotations

from .base import MultiLabelModel, as_feature_matrix
from .blend import Blend
from .chains import ClassifierChain
from .codes import OutputCodes
from .embedding import LabelEmbedding
from .fewshot import FewShot
from .forest import LabelForest
from .mlknn import MLkNN
from .neural import FineTuned, FineTunedFewShot, LabelAttention, MLPHead
from .ovr import OneVsRest, fit_linear
from .pairwise import CalibratedLabelRanking
from .persist import MODEL_CLASSES, load_model, save_model
from .powerset import LabelPowerset, RAkEL
from .resample import imbalance_ratios, ml_ros
from .topk import linear_topk, topk_csr, topk_dense
from .tree import LabelTree
from .zeroshot import ZeroShot

__all__ = [
    "Blend",
    "CalibratedLabelRanking",
    "ClassifierChain",
    "FewShot",
    "FineTuned",
    "FineTunedFewShot",
    "LabelAttention",
    "LabelEmbedding",
    "LabelForest",
    "LabelPowerset",
    "LabelTree",
    "MLPHead",
    "MLkNN",
    "MODEL_CLASSES",
    "MultiLabelModel",
    "OneVsRest",
    "OutputCodes",
    "RAkEL",
    "ZeroShot",
    "as_feature_matrix",
    "fit_linear",
    "imbalance_ratios",
    "linear_topk",
    "load_model",
    "ml_ros",
    "save_model",
    "topk_csr",
    "topk_dense",
]
