"""Open labels of a text :class:`~labelwise.pipeline.Pipeline`: labels added after training.

A pipeline owns one :class:`OpenLabels` (its fitted attribute ``open_labels_``, made on first
use): the open part (a fitted :class:`~labelwise.models.fewshot.FewShot` over the added
labels, or None) and the open labels' probability mapping (``calibration``, or None). The
pipeline's ``add_labels``, ``calibrate_open_labels``, ``learn`` and ``label_info`` hand their
work to it (see the "Open labels" section of :mod:`labelwise.pipeline`; the scoring mechanics
are in :mod:`labelwise.models.hybrid`). The pipeline's constructor parameter ``open_labels``
(an unfitted FewShot or None) only gives the encoder settings of labels added later: nothing
here changes it.

The methods that need the pipeline's model, input checks and label space take the pipeline
as their first argument (``pipe``); this module never imports :mod:`labelwise.pipeline`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from .dataset import as_label_matrix
from .errors import DataFormatError, LabelError, LabelwiseError, UnknownLabelError
from .labels import LabelSpace

__all__ = ["OpenLabels", "OPEN_CALIBRATION_ROWS", "extend_policy"]

#: most training rows embedded to calibrate open labels in fit/tune
OPEN_CALIBRATION_ROWS = 2000


class OpenLabels:
    """Labels added to a fitted text pipeline, scored zero-shot, learning few-shot.

    ``part``: the fitted FewShot of the added labels (None before any is added);
    ``calibration``: ``{"temperature", "bias", "n_rows", "n_labels", "n_positives"}`` fitted
    on labelled rows of the supervised labels (None before)."""

    def __init__(self, part: Any = None, calibration: dict[str, Any] | None = None) -> None:
        self.part = part
        self.calibration = calibration

    @property
    def n_labels(self) -> int:
        return 0 if self.part is None else len(self.part.labels_)

    @property
    def in_use(self) -> bool:
        """Whether it holds anything (labels or a fitted mapping)."""
        return self.part is not None or self.calibration is not None

    # ------------------------------------------------------------------ mechanics
    def template(self, pipe: Any) -> Any:
        """An unfitted FewShot with the encoder settings for new open labels: the pipeline's
        ``open_labels`` parameter, else the open part's, else the zero-shot model's, else the
        defaults."""
        from .models.hybrid import template_from
        from .models.zeroshot import ZeroShot

        if pipe.open_labels is not None:
            return template_from(pipe.open_labels)
        if self.part is not None:
            return template_from(self.part)
        return template_from(pipe.model if isinstance(pipe.model, ZeroShot) else None)

    def _mapping(self, pipe: Any, template: Any) -> tuple[float, float]:
        """(temperature, bias) for new open labels: fitted, else the zero-shot model's own."""
        from .models.zeroshot import ZeroShot

        if self.calibration is not None:
            return self.calibration["temperature"], self.calibration["bias"]
        if isinstance(pipe.model, ZeroShot):
            return pipe.model.temperature_, pipe.model.bias_
        warnings.warn("open labels use the default zero-shot probability mapping (temperature "
                      f"{template.temperature}, bias {template.bias}), not one fitted to this "
                      "pipeline's scale: call calibrate_open_labels(X, Y) with labelled rows "
                      "(e.g. the training data)", UserWarning, stacklevel=4)
        return template.temperature, template.bias

    def scores(self, texts: list[str], k: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """The open part's top-k cosines and their probabilities."""
        So = self.part.decision_function(texts, k=k)
        Po = So.copy()
        Po.data = np.asarray(self.part._to_probability(So.data), dtype=np.float32)
        return So, Po

    def refresh(self, pipe: Any, X: Any, Y: Any, random_state: int | None) -> None:
        """After (re)training: open labels that are now model labels leave the open part; the
        mapping is refitted on the training rows (for a text pipeline that has open labels or
        their settings)."""
        if pipe.open_labels is None and not self.in_use:
            return
        if self.part is not None:
            from .models.hybrid import drop

            self.part = drop(self.part, set(pipe.model.labels_.names))
        if pipe.is_text:
            self.calibrate(pipe, X, Y, random_state=random_state)

    # ------------------------------------------------------------------ the pipeline's API
    def add(self, pipe: Any, names: str | list[str], *,
            descriptions: list[str | None] | None = None) -> None:
        """Pipeline.add_labels."""
        pipe._check_fitted()
        pipe._check_tuned()
        if not pipe.is_text:
            raise LabelwiseError("labels can only be added to a pipeline on texts (this one has "
                                 "no text featurizer): a new label is scored from the item's "
                                 "text")
        new = LabelSpace([names] if isinstance(names, str) else list(names),
                         descriptions=descriptions)
        if len(new) == 0:
            raise DataFormatError("no label names given", field="names")
        clash = [n for n in new.names if n in pipe.labels_]
        if clash:
            raise LabelError(f"label(s) already in the pipeline: {', '.join(map(repr, clash))}")
        from .models.hybrid import grow, new_part

        if self.part is None:
            template = self.template(pipe)
            T, b = self._mapping(pipe, template)
            part = new_part(new, template=template, temperature=T, bias=b)
        else:
            part = grow(self.part, new)
        if pipe.decision_ is not None:  # refuse a raw-score policy now, not at predict time
            check_policy(pipe, len(part.labels_))
        self.part = part

    def calibrate(self, pipe: Any, X: Any, Y: Any = None, *,
                  labels: LabelSpace | list[str] | None = None,
                  max_rows: int = OPEN_CALIBRATION_ROWS,
                  random_state: int | None = 0) -> None:
        """Pipeline.calibrate_open_labels."""
        pipe._check_fitted()
        from .features.base import as_texts
        from .models.hybrid import fit_open_calibration, remap

        X, Y, labels = pipe._split(X, Y, labels)
        texts = as_texts(pipe._input(X))
        sup = pipe.model.labels_
        Yc = as_label_matrix(Y, None if labels is None else len(labels))
        if labels is not None:
            Yc = remap(Yc, labels, sup, unknown="ignore")
        elif Yc.shape[1] != len(sup):
            raise DataFormatError(f"Y has {Yc.shape[1]} labels, the model {len(sup)}", field="Y")
        if Yc.shape[0] != len(texts):
            raise DataFormatError(f"X has {len(texts)} rows but Y has {Yc.shape[0]}")
        if len(texts) > max_rows:
            rng = np.random.default_rng(random_state)
            rows = np.sort(rng.choice(len(texts), size=int(max_rows), replace=False))
            texts, Yc = [texts[i] for i in rows], Yc[rows]
        cal = fit_open_calibration(self.template(pipe), sup, texts, Yc)
        self.calibration = cal
        if self.part is not None:
            self.part.temperature_, self.part.bias_ = cal["temperature"], cal["bias"]

    def learn(self, pipe: Any, X: Any, Y: Any = None, *,
              labels: LabelSpace | list[str] | None = None, add_labels: bool = False) -> None:
        """Pipeline.learn."""
        from .features.base import as_texts
        from .models.hybrid import as_fewshot, remap
        from .models.zeroshot import ZeroShot

        pipe._check_fitted()
        X, Y, labels = pipe._split(X, Y, labels)
        texts = as_texts(pipe._input(X))
        Yc = as_label_matrix(Y, None if labels is None else len(labels))
        if labels is None:
            labels = pipe.labels_
            if Yc.shape[1] != len(labels):
                raise DataFormatError(f"Y has {Yc.shape[1]} labels, the pipeline {len(labels)}",
                                      field="Y")
        if Yc.shape[0] != len(texts):
            raise DataFormatError(f"X has {len(texts)} rows but Y has {Yc.shape[0]}")
        unknown = [n for n in labels.names if n not in pipe.labels_]
        if unknown and not add_labels:
            shown = ", ".join(map(repr, unknown[:10])) + (", ..." if len(unknown) > 10 else "")
            raise UnknownLabelError(f"{len(unknown)} label(s) of the data are not in the "
                                    f"pipeline: {shown}; add them first (labelwise labels "
                                    "add) or let learn add them (--add-labels)")
        if unknown:
            d = labels.descriptions
            self.add(pipe, unknown, descriptions=None if d is None else
                     [d[labels.index(n)] for n in unknown])
        Yc = remap(Yc, labels, pipe.labels_, unknown="error")
        n_sup = len(pipe.model.labels_)
        parts = [(self.part, Yc[:, n_sup:].tocsr())]
        Ys = Yc[:, :n_sup].tocsr()
        if Ys.nnz and isinstance(pipe.model, ZeroShot):
            pipe.model = as_fewshot(pipe.model)
            parts.append((pipe.model, Ys))
        elif Ys.nnz:
            warnings.warn(f"{Ys.nnz} example(s) of {np.unique(Ys.indices).size} supervised "
                          f"label(s) were not learned: the labels of a "
                          f"{type(pipe.model).__name__} change only by retraining (labelwise "
                          "train)", UserWarning, stacklevel=3)
        empty = int(np.count_nonzero(np.diff(Yc.indptr) == 0))
        if empty:
            warnings.warn(f"{empty} row(s) without any label were skipped: prototypes learn "
                          "from positive examples only", UserWarning, stacklevel=3)
        for model, Yp in parts:
            rows = np.flatnonzero(np.diff(Yp.indptr) > 0)
            if model is None or rows.size == 0:
                continue
            sub = [texts[i] for i in rows]
            model.learn(sub if model is not pipe.model else pipe.transform(sub), Yp[rows])

    def label_info(self, pipe: Any) -> list[dict[str, Any]]:
        """Pipeline.label_info."""
        from .models.fewshot import FewShot
        from .models.zeroshot import ZeroShot

        space = pipe.labels_
        n_sup = len(pipe.model.labels_)
        counts = getattr(pipe, "label_counts_", None)
        shot = isinstance(pipe.model, ZeroShot)
        sup_examples = (pipe.model.example_counts_ if isinstance(pipe.model, FewShot)
                        else np.zeros(n_sup, np.int64) if shot else counts)
        examples = list(sup_examples if sup_examples is not None else [None] * n_sup)
        if self.part is not None:
            examples += list(self.part.example_counts_)
        out = []
        for j, name in enumerate(space.names):
            n = None if examples[j] is None else int(examples[j])
            kind = "supervised" if j < n_sup and not shot else (
                "few-shot" if n else "zero-shot")
            out.append({"label": name, "description": space.description(j), "kind": kind,
                        "examples": n})
        return out


def check_policy(pipe: Any, n_open: int) -> Any:
    """The pipeline's tuned policy over its labels and ``n_open`` open ones (open labels as
    labels never seen in tuning); refuses a policy on raw scores, which open labels do not
    share."""
    from .models.zeroshot import ZeroShot

    if pipe.calibrator_ is None and not isinstance(pipe.model, ZeroShot):
        raise LabelwiseError("this pipeline's decision policy works on raw scores (no "
                             "calibrator), which open labels do not share: tune it with a "
                             "calibration (e.g. platt-per-label)")
    return extend_policy(pipe.decision_, n_open)


def extend_policy(policy: Any, n_new: int) -> Any:
    """A copy of a fitted policy for ``n_new`` more labels, each treated as a label never seen
    in tuning: per-label thresholds give it the global threshold (the shrinkage target)."""
    import copy

    from .decision import Combined, GlobalThreshold, PerLabelThreshold, PrecisionTarget, TopK

    if not isinstance(policy, TopK | GlobalThreshold | PerLabelThreshold | PrecisionTarget
                      | Combined):
        raise LabelwiseError(f"a {type(policy).__name__} policy cannot take open labels")
    out = copy.copy(policy)
    out.n_labels_ = policy.n_labels_ + n_new
    if isinstance(policy, PerLabelThreshold):
        g = np.full(n_new, policy.global_threshold_, dtype=np.float64)
        out.thresholds_ = np.concatenate([policy.thresholds_, g])
        out.tuned_ = np.concatenate([policy.tuned_, g])
        out.n_positives_ = np.concatenate([policy.n_positives_, np.zeros(n_new, np.int64)])
    elif isinstance(policy, Combined):
        out.threshold_policy_ = extend_policy(policy.threshold_policy_, n_new)
    return out
