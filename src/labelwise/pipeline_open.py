"""Open labels of a text :class:`~labelwise.pipeline.Pipeline`: labels added after training.

The methods of :class:`OpenLabelsMixin` give a pipeline ``add_labels``,
``calibrate_open_labels``, ``learn`` and ``label_info`` (see the "Open labels" section of
:mod:`labelwise.pipeline`; the scoring mechanics are in :mod:`labelwise.models.hybrid`).
They rely on the pipeline's ``model``, ``open_labels``, ``decision`` and its input helpers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .dataset import as_label_matrix
from .errors import DataFormatError, LabelError, LabelwiseError
from .labels import LabelSpace

if TYPE_CHECKING:
    from .pipeline import Pipeline

#: most training rows embedded to calibrate open labels in fit/tune
OPEN_CALIBRATION_ROWS = 2000


class OpenLabelsMixin:
    """Labels added to a fitted text pipeline, scored zero-shot, learning few-shot."""

    def _refresh_open(self, X: Any, Y: Any, random_state: int | None) -> None:
        """After (re)training: open labels that are now model labels leave the open part; the
        open labels' mapping is refitted on the training rows (when the pipeline has any)."""
        if self.open_labels is None:
            return
        part = self._open_part()
        if part is not None:
            from .models.hybrid import drop

            now = set(self.model.labels_.names)
            kept = drop(part, now)
            self.open_labels = kept if kept is not None else _template(part)
        if self.is_text:
            self.calibrate_open_labels(X, Y, random_state=random_state)

    def _open_template(self) -> Any:
        from .models.hybrid import template_from
        from .models.zeroshot import ZeroShot

        if self.open_labels is not None:
            return template_from(self.open_labels)
        return template_from(self.model if isinstance(self.model, ZeroShot) else None)

    def _open_mapping(self, template: Any) -> tuple[float, float]:
        """(temperature, bias) for new open labels: fitted, else the zero-shot model's own."""
        from .models.zeroshot import ZeroShot

        cal = getattr(self, "open_calibration_", None)
        if cal is not None:
            return cal["temperature"], cal["bias"]
        if isinstance(self.model, ZeroShot):
            return self.model.temperature_, self.model.bias_
        import warnings

        warnings.warn("open labels use the default zero-shot probability mapping (temperature "
                      f"{template.temperature}, bias {template.bias}), not one fitted to this "
                      "pipeline's scale: call calibrate_open_labels(X, Y) with labelled rows "
                      "(e.g. the training data)", UserWarning, stacklevel=3)
        return template.temperature, template.bias

    def add_labels(self, names: str | list[str], *,
                   descriptions: list[str | None] | None = None) -> Pipeline:
        """Add labels scored at once from their names (and descriptions), without retraining."""
        self._check_fitted()
        self._check_tuned()
        if not self.is_text:
            raise LabelwiseError("labels can only be added to a pipeline on texts (this one has "
                                 "no text featurizer): a new label is scored from the item's "
                                 "text")
        new = LabelSpace([names] if isinstance(names, str) else list(names),
                         descriptions=descriptions)
        if len(new) == 0:
            raise DataFormatError("no label names given", field="names")
        clash = [n for n in new.names if n in self.labels_]
        if clash:
            raise LabelError(f"label(s) already in the pipeline: {', '.join(map(repr, clash))}")
        from .models.hybrid import grow, new_part

        part = self._open_part()
        if part is None:
            template = self._open_template()
            T, b = self._open_mapping(template)
            part = new_part(new, template=template, temperature=T, bias=b)
        else:
            part = grow(part, new)
        self.open_labels = part
        if self.decision is not None:
            self._policy()  # refuses a raw-score policy now rather than at predict time
        return self

    def calibrate_open_labels(self, X: Any, Y: Any = None, *,
                              labels: LabelSpace | list[str] | None = None,
                              max_rows: int = OPEN_CALIBRATION_ROWS,
                              random_state: int | None = 0) -> Pipeline:
        """Fit the open labels' probability mapping on labelled rows of the model's labels.

        ``X``: texts; ``Y``: their labels (columns named by ``labels``, else the model's
        labels in order; only model labels are used). At most ``max_rows`` rows, drawn with
        ``random_state``. Sets ``open_calibration_`` (see labelwise.models.hybrid)."""
        self._check_fitted()
        from .features.base import as_texts
        from .models.hybrid import fit_open_calibration, remap

        X, Y, labels = self._split(X, Y, labels)
        texts = as_texts(self._input(X))
        sup = self.model.labels_
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
        cal = fit_open_calibration(self._open_template(), sup, texts, Yc)
        self.open_calibration_ = cal
        part = self._open_part()
        if part is not None:
            part.temperature_, part.bias_ = cal["temperature"], cal["bias"]
        return self

    def learn(self, X: Any, Y: Any = None, *, labels: LabelSpace | list[str] | None = None,
              add_labels: bool = False) -> Pipeline:
        """Add labelled examples of zero-/few-shot labels, without retraining.

        Y's columns are named by ``labels`` (a Dataset carries them; None: the pipeline's
        labels in order). Open labels learn (FewShot.learn); so do the model's labels when
        the model itself is a ZeroShot (it becomes the equal FewShot) or a FewShot. Examples
        of other models' labels are not learned (warned with a count): they need retraining.
        Labels the pipeline lacks raise UnknownLabelError, or with ``add_labels=True`` are
        added first as open labels (from their names and the data's descriptions)."""
        import warnings

        from .errors import UnknownLabelError
        from .features.base import as_texts
        from .models.hybrid import as_fewshot, remap
        from .models.zeroshot import ZeroShot

        self._check_fitted()
        X, Y, labels = self._split(X, Y, labels)
        texts = as_texts(self._input(X))
        Yc = as_label_matrix(Y, None if labels is None else len(labels))
        if labels is None:
            labels = self.labels_
            if Yc.shape[1] != len(labels):
                raise DataFormatError(f"Y has {Yc.shape[1]} labels, the pipeline {len(labels)}",
                                      field="Y")
        if Yc.shape[0] != len(texts):
            raise DataFormatError(f"X has {len(texts)} rows but Y has {Yc.shape[0]}")
        unknown = [n for n in labels.names if n not in self.labels_]
        if unknown and not add_labels:
            shown = ", ".join(map(repr, unknown[:10])) + (", ..." if len(unknown) > 10 else "")
            raise UnknownLabelError(f"{len(unknown)} label(s) of the data are not in the "
                                    f"pipeline: {shown}; add them first (labelwise labels "
                                    "add) or let learn add them (--add-labels)")
        if unknown:
            d = labels.descriptions
            self.add_labels(unknown, descriptions=None if d is None else
                            [d[labels.index(n)] for n in unknown])
        Yc = remap(Yc, labels, self.labels_, unknown="error")
        n_sup = len(self.model.labels_)
        parts = [(self._open_part(), Yc[:, n_sup:].tocsr())]
        Ys = Yc[:, :n_sup].tocsr()
        if Ys.nnz and isinstance(self.model, ZeroShot):
            self.model = as_fewshot(self.model)
            parts.append((self.model, Ys))
        elif Ys.nnz:
            warnings.warn(f"{Ys.nnz} example(s) of {np.unique(Ys.indices).size} supervised "
                          f"label(s) were not learned: the labels of a "
                          f"{type(self.model).__name__} change only by retraining (labelwise "
                          "train)", UserWarning, stacklevel=2)
        empty = int(np.count_nonzero(np.diff(Yc.indptr) == 0))
        if empty:
            warnings.warn(f"{empty} row(s) without any label were skipped: prototypes learn "
                          "from positive examples only", UserWarning, stacklevel=2)
        for model, Yp in parts:
            rows = np.flatnonzero(np.diff(Yp.indptr) > 0)
            if model is None or rows.size == 0:
                continue
            sub = [texts[i] for i in rows]
            model.learn(sub if model is not self.model else self.transform(sub), Yp[rows])
        return self

    def label_info(self) -> list[dict[str, Any]]:
        """Per label: name, description, kind ("supervised", "zero-shot" or "few-shot") and
        examples (training positives of supervised labels when known, else None; learned
        examples of zero-/few-shot labels)."""
        from .models.fewshot import FewShot
        from .models.zeroshot import ZeroShot

        space = self.labels_
        n_sup = len(self.model.labels_)
        counts = getattr(self, "label_counts_", None)
        shot = isinstance(self.model, ZeroShot)
        sup_examples = (self.model.example_counts_ if isinstance(self.model, FewShot)
                        else np.zeros(n_sup, np.int64) if shot else counts)
        part = self._open_part()
        examples = list(sup_examples if sup_examples is not None else [None] * n_sup)
        if part is not None:
            examples += list(part.example_counts_)
        out = []
        for j, name in enumerate(space.names):
            n = None if examples[j] is None else int(examples[j])
            kind = "supervised" if j < n_sup and not shot else (
                "few-shot" if n else "zero-shot")
            out.append({"label": name, "description": space.description(j), "kind": kind,
                        "examples": n})
        return out


def _template(part: Any) -> Any:
    from .models.hybrid import template_from

    return template_from(part)


def _extend_policy(policy: Any, n_new: int) -> Any:
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
        out.threshold_policy_ = _extend_policy(policy.threshold_policy_, n_new)
    return out
