"""``Pipeline``: featurizer + model + calibration + decision policy, as one unit.

A pipeline turns raw items into label *sets*::

    texts ──featurizer──► X ──model──► top-k scores ──calibrator──► probabilities ──policy──► sets

``featurizer`` is a labelwise featurizer (:mod:`labelwise.features`) or None when ``X`` is
already numeric (CSR or dense); ``model`` is any labelwise model (:mod:`labelwise.models`),
and the label space comes from it (``labels_``). ``calibrator`` (:mod:`labelwise.calibration`)
and ``decision`` (:mod:`labelwise.decision`) are optional.

Parameters and what is learned (scikit-learn's rule): the constructor parameters are never
changed by ``fit``, ``tune``, ``learn`` or ``add_labels``. ``calibrator`` and ``decision``
say what to tune (unfitted; None: nothing, or ``tune``'s defaults); the tuned ones are the
fitted attributes ``calibrator_`` and ``decision_`` (None until tuned), which every use of
the pipeline reads (predictions, saving, the server, the review queue, the CLI). So
``get_params()`` is the same before and after ``tune`` and ``clone(pipeline)`` is the
untuned pipeline. The open labels live in ``open_labels_`` (an
:class:`~labelwise.pipeline_open.OpenLabels` the pipeline owns).

Fitting and tuning
------------------
``fit(X, Y, *, labels=None)`` (or ``fit(dataset)``) fits the featurizer on the training
texts and the model on their features. Numeric X (no featurizer) is scaled per column first
(``scale``, default ``"auto"``: dense X standardised, sparse X max-abs scaled only when its
column maxima spread over more than two orders of magnitude, tf-idf and binary X unchanged;
:class:`labelwise.features.Scale`), by a scaler fitted on the training rows (``scaler_``,
saved with the pipeline, shown by ``explain()``); with ``"auto"``, a model that scaling
leaves unchanged (``scale_invariant``: forests) gets X as given. Missing values (NaN) in
numeric X are filled (``missing``, default ``"median"``: each column's median over the
training rows, saved in the scaler, applied to every later X too; ``"mean"``; ``"error"``
refuses them, naming the first), with a
:class:`~labelwise.features.scale.MissingValuesWarning` at fit saying how many; a forest
then gets a scaler that only fills. A pipeline whose training rows held no NaN refuses a
later one (it has no value a training row justified). When the pipeline has a
calibrator or a decision policy (the parameters, else the tuned ``calibrator_``/``decision_``, e.g. of a
loaded tuned pipeline), ``fit`` then tunes fresh copies of them as :meth:`Pipeline.tune`
does: a tuned pipeline stays tuned when refitted (``clone`` gives the untuned one).

``tune(X, Y, *, objective=, calibration=, cv=, k=)`` takes the pipeline's *training* data
and nothing else. It cross-fits (:func:`labelwise.crossfit.cross_fit_scores`: ``cv`` folds by
iterative stratification, a clone of the model fitted on ``cv - 1`` folds scores the held-out
fold), fits the calibrator on these out-of-fold top-``k`` scores and the policy on the
calibrated out-of-fold probabilities (on the raw scores when there is no calibrator);
per-label thresholds are tuned on each fold model's own probabilities and averaged over the
folds (as LibMultiLabel's thresholding does), since pooled folds mix models on different
scales, which misleads rare labels. Without model selection the fitted model itself is not refitted (it is
fitted first when it is not yet). With ``select_c`` (the default for OneVsRest, and for the
models whose ``select_c_default`` says so: a single classifier chain, label powerset and
RAkEL, which have ``C`` and no ``loss``, choose ``C`` alone, keeping their own unless another beats it by more
than one standard error, :func:`labelwise.crossfit.f1_noise_margin`) ``tune`` first chooses
``C`` and ``loss`` by the same
cross-fitting (:func:`labelwise.crossfit.select_linear_params` over
:func:`labelwise.crossfit.linear_grid`; each candidate scored by the cross-validated
objective of per-label thresholds tuned on its raw out-of-fold scores, micro-F1 for a
precision objective), reuses the winner's out-of-fold scores for calibration and policy, and
refits the model on all training rows with the chosen values. The model's constructor
parameters stay as given; the values in effect are ``model_params_`` (and
``tuning_["model_selection"]``, with every candidate's score). Evaluation rows never reach
any of it: they have no argument to come in through.

Where the featurizer is fitted during cross-fitting (``featurizer_in_folds``): by default
(None) a featurizer that learns from the rows (tf-idf: its vocabulary and idf weights) is
fitted afresh inside each fold on that fold's training rows, and one that learns nothing
from them (sentence embeddings, ``fits_on_rows = False``) transforms all rows once; a dense
pipeline's column scaler is fitted once on all rows. With a featurizer fitted on all rows
the held-out fold's texts shape its vocabulary and idf, so the fold's words unseen by its
model still take a share of each row's norm and its out-of-fold scores come out lower than
scores of really new texts, and tuned thresholds too low: on Reuters-21578, cooking and
GoEmotions the tuned objective was 0.3-5 points lower on the test split than with
featurizers fitted in the folds (README, "Tuning"). Each fold's featurizer is fitted once
and shared by every candidate of the C search. ``True``/``False`` force either way.

Using it
--------
``decision_function(X, *, k=None)``: top-k raw scores (CSR, as the model contract);
``predict_proba(X, *, k=None)``: the same entries as probabilities (calibrated when there is
a tuned calibrator ``calibrator_``, else the model's link); ``predict(X)``: label sets (CSR
0/1) chosen by the tuned policy ``decision_``, or by the model's default rule without one;
``predict_labels(X, *, k=5)``: per item ``{"labels": [chosen names], "probabilities":
{name: p of each chosen label}, "candidates": [{"label", "score", "probability"}, ...]}``
(top k, best first). ``k=None`` means the tuning ``k`` after tuning (thresholds only accept
labels within it), else 5.

Open labels (hybrid pipelines)
------------------------------
A text pipeline can take labels after training: ``add_labels(names, descriptions=...)``
scores them at once from their names and descriptions (zero-shot), ``learn(X, Y)`` adds
examples that move their prototypes (few-shot), and neither retrains anything. They live in
``open_labels_.part``, a :class:`~labelwise.models.fewshot.FewShot` over the added labels
(``open_labels_`` is the :class:`~labelwise.pipeline_open.OpenLabels` the pipeline owns; the
mechanics and the one probability scale are described in :mod:`labelwise.models.hybrid`);
``labels_`` is the model's labels followed by the open ones. Their probabilities are mapped
by a temperature and bias fitted on labelled rows of the supervised labels
(``calibrate_open_labels(X, Y)``; ``fit`` and ``tune`` do it on the training rows of a
pipeline that has open labels or an ``open_labels`` parameter, at most
:data:`labelwise.pipeline_open.OPEN_CALIBRATION_ROWS` of them, drawn with ``random_state``);
without such a fit they keep the zero-shot model's own mapping (or its defaults). Scores of
both kinds are merged into one top-k ranking by probability; label sets come from the
pipeline's tuned policy with each open label treated as a label never seen in tuning:
a global threshold or precision target applies as it is, per-label thresholds give open
labels the tuned global threshold (the shrinkage target). Without a policy a label is chosen
when its score passes its model's default rule (probability 0.5 for open labels).
The constructor parameter ``open_labels`` is an unfitted FewShot or None: the encoder
settings for labels added later (their mapping calibrated by ``fit``/``tune``); it is never
changed. Refitting on data that now holds an open label makes it supervised (it leaves the
open part).

Saving
------
``save(dir)`` / ``Pipeline.load(dir, *, mmap=False)``: one directory (format in
:mod:`labelwise.pipeline_store`), no pickle, written atomically. :func:`load_any` also reads a
plain model directory (as ``labelwise train`` wrote before pipelines) as a pipeline around
that model.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._estimator import Estimator
from .checks import check_missing_rule, count_missing, positive_int
from .dataset import Dataset, align_labels, as_label_matrix
from .errors import DataFormatError, LabelwiseError, NotFittedError
from .labels import LabelSpace
from .pipeline_open import OPEN_CALIBRATION_ROWS, OpenLabels, check_policy
from .pipeline_store import from_spec, load_pipeline, save_pipeline, spec_of
from .pipeline_store import load_any as _load_any

__all__ = ["Pipeline", "load_any", "make_calibrator", "make_policy", "CALIBRATIONS"]

#: calibration names accepted by :meth:`Pipeline.tune` and ``labelwise tune --calibration``
CALIBRATIONS = ("platt-per-label", "platt-per-label+isotonic", "platt-per-label+context",
                "platt", "isotonic", "temperature", "none")

#: confidence of the lower bound that ``precision=P`` objectives certify on the tuning data
PRECISION_CONFIDENCE = 0.95
#: where a precision certificate's held-out rows come from (Pipeline.tune's ``holdout``)
HOLDOUTS = ("stratified", "last")

#: default number of candidate labels shown per item
DEFAULT_K = 5

#: the objective that ``tune`` (API and CLI) gives a pipeline without a decision policy
DEFAULT_OBJECTIVE = "micro-f1"



def make_calibrator(name: str):
    """A fresh calibrator for a name of :data:`CALIBRATIONS` (None for ``"none"``)."""
    from .calibration import IsotonicCalibrator, PlattCalibrator, TemperatureCalibrator

    makers = {"platt-per-label": lambda: PlattCalibrator(per_label=True),
              "platt-per-label+isotonic": lambda: PlattCalibrator(per_label=True, isotonic=True),
              "platt-per-label+context": lambda: PlattCalibrator(per_label=True, context=True),
              "platt": PlattCalibrator, "isotonic": IsotonicCalibrator,
              "temperature": TemperatureCalibrator, "none": lambda: None}
    if name not in makers:
        raise DataFormatError(f"calibration must be one of {', '.join(CALIBRATIONS)}, got "
                              f"{name!r}", field="calibration")
    return makers[name]()


def parse_objective(text: str) -> tuple[str, Any]:
    """``'macro-f1'`` -> ('f1', 'macro-f1'); ``'precision=0.9'`` -> ('precision', 0.9)."""
    from .decision import OBJECTIVES

    if isinstance(text, str) and text in OBJECTIVES:
        return "f1", text
    key, sep, value = str(text).partition("=")
    if key == "precision" and sep:
        try:
            p = float(value)
        except ValueError:
            p = -1.0
        if 0.0 < p <= 1.0:
            return "precision", p
    raise DataFormatError(f"{text!r}: expected one of {', '.join(OBJECTIVES)} or precision=P "
                          "with 0 < P <= 1", field="objective")


def make_policy(objective: str):
    """A fresh decision policy for an objective: per-label thresholds for an F1, else a
    precision target (``"precision=0.9"``) whose threshold is the lowest one where the 95 %
    lower confidence bound of the tuning precision reaches the target (a point estimate
    promises more than new data keeps)."""
    from .decision import PerLabelThreshold, PrecisionTarget

    kind, value = parse_objective(objective)
    if kind == "f1":
        return PerLabelThreshold(objective=value)
    return PrecisionTarget(value, confidence=PRECISION_CONFIDENCE)


def _is_texts(X: Any) -> bool:
    if isinstance(X, Dataset):
        return X.x_kind == "text"
    if isinstance(X, np.ndarray):
        return X.dtype.kind in "US"
    return isinstance(X, list | tuple) and len(X) > 0 and isinstance(X[0], str)


def fresh(part: Any) -> Any:
    """An unfitted copy of a calibrator or decision policy: a deep copy of an unfitted one,
    the same class and settings of a fitted one (labelwise.pipeline_store.spec_of)."""
    import copy

    if part is None:
        return None
    if not hasattr(part, "n_labels_"):
        return copy.deepcopy(part)
    return from_spec(spec_of(part))


class Pipeline(Estimator):
    """Featurizer, model, calibrator and decision policy as one unit (module docstring).

    Parameters
    ----------
    featurizer: a labelwise featurizer, or None for numeric X.
    model: a labelwise model (required).
    calibrator: a calibrator to tune (a fresh copy is tuned into ``calibrator_``), or None.
    decision: a decision policy to tune (a fresh copy is tuned into ``decision_``), or None.
    cv, k, random_state: the cross-fitting of ``tune``: folds, scores kept per row, seed.
    featurizer_in_folds: fit a fresh featurizer inside each fold; None (default): when the
        featurizer learns from the rows (module docstring).
    open_labels: an unfitted FewShot giving the encoder settings of labels added after
        training (module docstring), or None.
    scale: per-column scaling of numeric X (no featurizer): "auto", "standard", "maxabs",
        "none" or None (labelwise.features.Scale; None and "none" leave X as given).
    missing: what to do with missing values (NaN) in numeric X: "median" (fill with the
        column's median over the training rows), "mean", or "error" (refuse them).

    Fitted attributes: ``calibrator_`` and ``decision_`` (the tuned parts, None until
    tuned), ``tuning_``, ``model_params_``, ``scaler_``, ``label_counts_``,
    ``open_labels_`` (the open labels, :class:`~labelwise.pipeline_open.OpenLabels`).
    """

    #: the tuned calibrator and decision policy (instance attributes once tuned)
    calibrator_: Any = None
    decision_: Any = None

    def __init__(self, featurizer: Any = None, model: Any = None, calibrator: Any = None,
                 decision: Any = None, *, cv: int = 5, k: int = 100,
                 random_state: int | None = 0, featurizer_in_folds: bool | None = None,
                 open_labels: Any = None, scale: str | None = "auto",
                 missing: str = "median") -> None:
        self.featurizer = featurizer
        self.model = model
        self.calibrator = calibrator
        self.decision = decision
        self.cv = cv
        self.k = k
        self.random_state = random_state
        self.featurizer_in_folds = featurizer_in_folds
        self.open_labels = open_labels
        self.scale = scale
        self.missing = missing

    # ------------------------------------------------------------------ state
    @property
    def labels_(self) -> LabelSpace:
        """The label space: the model's labels, then the open labels (if any)."""
        self._check_fitted()
        part = self._open_part()
        if part is None:
            return self.model.labels_
        key = (id(self.model.labels_), id(part.labels_))
        cached = getattr(self, "_joined_labels", None)
        if cached is None or cached[0] != key:
            from .models.hybrid import join_labels

            cached = self._joined_labels = (key, join_labels(self.model.labels_, part.labels_))
        return cached[1]

    @property
    def _open(self) -> OpenLabels:
        """The open labels the pipeline owns (``open_labels_``, made on first use)."""
        state = self.__dict__.get("open_labels_")
        if state is None:
            state = self.__dict__["open_labels_"] = OpenLabels()
        return state

    def _open_part(self) -> Any:
        """The fitted FewShot of the open labels, or None."""
        state = self.__dict__.get("open_labels_")
        return None if state is None else state.part

    @property
    def open_calibration_(self) -> dict[str, Any] | None:
        """The open labels' fitted probability mapping (labelwise.models.hybrid), or None."""
        state = self.__dict__.get("open_labels_")
        return None if state is None else state.calibration

    @property
    def n_open_labels(self) -> int:
        part = self._open_part()
        return 0 if part is None else len(part.labels_)

    @property
    def is_text(self) -> bool:
        """Whether the pipeline takes texts (it has a featurizer, or its model reads texts)."""
        return self.featurizer is not None or bool(getattr(self.model, "takes_texts", False))

    @property
    def is_tuned(self) -> bool:
        return hasattr(self, "tuning_")

    def _check_model(self) -> None:
        from .models.base import MultiLabelModel

        if self.model is None:
            raise LabelwiseError("a Pipeline needs a model: Pipeline(model=OneVsRest(), ...)")
        if not isinstance(self.model, MultiLabelModel):
            raise LabelwiseError(f"model must be a labelwise model, got "
                                 f"{type(self.model).__name__}")
        if self.open_labels is not None:
            from .models.fewshot import FewShot

            if not isinstance(self.open_labels, FewShot):
                raise LabelwiseError(f"open_labels must be a FewShot or None, got "
                                     f"{type(self.open_labels).__name__}")
        for name in ("calibrator", "decision"):
            part = getattr(self, name)
            if part is not None and hasattr(part, "n_labels_"):
                raise LabelwiseError(f"{name} is a fitted {type(part).__name__}: the parameter "
                                     "says what to tune (give an unfitted one); the tuned "
                                     f"one is {name}_")

    def _check_fitted(self) -> None:
        self._check_model()
        if not hasattr(self.model, "labels_"):
            raise NotFittedError("this Pipeline is not fitted yet: call fit(X, Y) or "
                                 "Pipeline.load(path) first")

    def _check_tuned(self) -> None:
        for name in ("calibrator", "decision"):
            if getattr(self, name) is not None and getattr(self, name + "_") is None:
                raise NotFittedError(f"the pipeline's {name} is not tuned yet: call "
                                     "tune(X, Y) with the training data first")

    # ------------------------------------------------------------------ features
    def _split(self, X: Any, Y: Any, labels: Any) -> tuple[Any, Any, Any]:
        if isinstance(X, Dataset):
            if Y is not None or labels is not None:
                raise TypeError("a Dataset carries X, Y and labels: pass no Y or labels")
            return X.X, X.Y, X.labels
        if Y is None:
            raise TypeError("needs Y (or pass a labelwise.Dataset as the only argument)")
        if labels is not None and not isinstance(labels, LabelSpace):
            labels = LabelSpace(labels)
        return X, Y, labels

    def _input(self, X: Any) -> Any:
        if isinstance(X, Dataset):
            X = X.X
        if not self.is_text and _is_texts(X):
            raise DataFormatError("X holds texts but this pipeline has no featurizer (give "
                                  "Pipeline(featurizer=Tfidf(), ...), or numeric features)",
                                  field="X")
        if self.is_text and not _is_texts(X):
            from .features.base import as_texts

            as_texts(X)  # raises a DataFormatError naming what X is instead
        return X

    def transform(self, X: Any) -> Any:
        """The model's input for X: the featurizer's output, or X itself when numeric."""
        X = self._input(X)
        if self.featurizer is None:
            scaler = getattr(self, "scaler_", None)
            return X if scaler is None else scaler.transform(X)
        return self.featurizer.transform(X)

    def _fit_features(self, X: Any) -> Any:
        """Fit the featurizer (texts) or the scaler (numeric X) on the training rows; their
        output."""
        if self.featurizer is not None:
            return self.featurizer.fit_transform(X)
        self.__dict__.pop("scaler_", None)
        if self.is_text:
            return X
        check_missing_rule(self.missing)
        method = self.scale
        if method is None or self._scale_skipped():
            if not count_missing(X):
                return X  # (before a forest: not even the scaler's module is imported)
            method = "none"  # a scaler that only fills the missing values (or refuses them)
        from .features.scale import MissingValuesWarning, Scale

        self.scaler_ = Scale(method=method, missing=self.missing).fit(X)
        missing = self.scaler_.facts_["missing"]
        if missing["values"]:
            warnings.warn(
                f"X holds {missing['values']} missing values (NaN) in {missing['columns']} "
                f"column(s) of {missing['rows']} row(s): filled with each column's "
                f"{self.missing} over the training rows, here and in every later X "
                "(missing='error', --missing error, refuses them)", MissingValuesWarning,
                stacklevel=3)
        return self.scaler_.transform(X)

    def _scale_skipped(self) -> bool:
        """``scale="auto"`` before a model that scaling leaves unchanged (``scale_invariant``:
        forests): X goes to it as given, and neither the scaler's fit nor its transform at
        every predict is paid for nothing."""
        return (self.scale == "auto" and self.featurizer is None
                and bool(getattr(self.model, "scale_invariant", False)))

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, Y: Any = None, *, labels: LabelSpace | list[str] | None = None):
        """Fit featurizer and model on the training data; then tune fresh copies of the
        calibrator/decision when the pipeline has them (the parameters, else the tuned
        ones: module docstring)."""
        self._check_model()
        X, Y, labels = self._split(X, Y, labels)
        X = self._input(X)
        retune = any(p is not None for p in (self.calibrator, self.decision, self.calibrator_,
                                             self.decision_))
        calibrator, decision = self._parts(None, None, defaults=False)
        holdout = self._holdout(None)  # a certificate's held-out share as last tuned
        for name in ("tuning_", "model_params_", "calibrator_", "decision_"):
            self.__dict__.pop(name, None)
        Xf = self._fit_features(X)
        self.model.fit(Xf, Y, labels=labels)
        self._counts(Y)
        if retune:
            self._tune(X, Y, Xf, calibrator=calibrator, decision=decision, objective=None,
                       cv=self.cv, k=self.k, random_state=self.random_state, holdout=holdout)
        self._refresh_open(X, Y, self.random_state)
        return self

    def _parts(self, objective: str | None, calibration: str | None, *,
               defaults: bool) -> tuple[Any, Any]:
        """Fresh (unfitted) calibrator and policy to tune: named by ``calibration`` /
        ``objective``, else copies of the parameters, else of the tuned parts, else (with
        ``defaults``) per-label Platt scaling and :data:`DEFAULT_OBJECTIVE`'s policy."""
        if objective is not None:
            decision = make_policy(objective)
        else:
            decision = fresh(self.decision if self.decision is not None else self.decision_)
            if decision is None and defaults:
                decision = make_policy(DEFAULT_OBJECTIVE)
        if calibration is not None:
            calibrator = make_calibrator(calibration)
        else:
            calibrator = fresh(self.calibrator if self.calibrator is not None
                               else self.calibrator_)
            if calibrator is None and defaults:
                calibrator = make_calibrator("platt-per-label")
        return calibrator, decision

    def _has_open(self) -> bool:
        """Whether open labels take part: an ``open_labels`` parameter, or labels or a
        mapping in ``open_labels_``."""
        state = self.__dict__.get("open_labels_")
        return self.open_labels is not None or (state is not None and state.in_use)

    def _refresh_open(self, X: Any, Y: Any, random_state: int | None) -> None:
        if self._has_open():
            self._open.refresh(self, X, Y, random_state)

    def _counts(self, Y: Any) -> None:
        """Training positives per model label (``label_counts_``, shown by label_info)."""
        Yc = as_label_matrix(Y)
        self.label_counts_ = np.bincount(Yc.indices.astype(np.int64),
                                         minlength=Yc.shape[1]).astype(np.int64)

    def tune(self, X: Any, Y: Any = None, *, objective: str | None = None,
             calibration: str | None = None, cv: int | None = None, k: int | None = None,
             random_state: int | None = None, labels: LabelSpace | list[str] | None = None,
             select_c: bool | None = None, holdout: str | None = None,
             certify_rows: Any = None):
        """Fit calibrator and decision policy on out-of-fold scores of the training data.

        ``objective``: ``"micro-f1"``, ``"macro-f1"``, ``"samples-f1"`` or ``"precision=P"``
        (tunes a fresh policy for it); None tunes a fresh copy of the pipeline's ``decision``
        parameter, else of its tuned ``decision_``, else ``"micro-f1"``'s.
        ``calibration``: a name of :data:`CALIBRATIONS` (``"none"``: no calibrator); None
        tunes a copy of the ``calibrator`` parameter, else of ``calibrator_``, else per-label
        Platt scaling (``"platt-per-label"``). The tuned parts go to ``decision_`` and
        ``calibrator_``; the parameters are left as they are.
        ``cv``, ``k``, ``random_state``: override the pipeline's parameters. ``select_c``:
        choose the model's ``C`` and ``loss`` by cross-fitting and refit it (module
        docstring); None means yes for OneVsRest, True works for any model with both
        (LabelTree: its root C, on the same grid).
        Y's columns are matched to the model's labels by name (labels it lacks: warned, ignored).

        A ``precision=P`` objective certifies its bound on rows the final model never trained
        on: one iteratively stratified 1/cv share of the rows is held out, the featurizer (or
        scaler), the model (with its C search) and the calibrator (on out-of-fold scores) are
        fitted on the others, and the fixed-sequence certificate runs on the held-out rows'
        scores of that pipeline; it stays fitted on those (cv-1)/cv of the rows. (A bound
        computed on cross-fitted scores, with a featurizer that saw the held-out texts, does
        not carry over to the refitted pipeline: on Reuters-21578 a certified 0.9 gave 0.854
        precision on new rows; certified this way, 0.890-0.910 over three seeds.)
        ``holdout``: which share certifies: ``"stratified"`` (the default: iterative
        stratification, for rows in no particular order) or ``"last"``, the last 1/cv of the
        rows in the data's order, for data in time order whose new rows come later: the
        certificate then measures a model on rows later than those it was fitted on, as in
        use (forward validation). On Reuters-21578 (ModApte: the new rows are later
        documents), certified 0.9 / 0.95 gave 0.893 / 0.935 precision on the later documents
        with a stratified share and 0.909 / 0.965 with the last one. None: the pipeline's
        last tuning's choice, else "stratified".
        ``certify_rows``: a boolean array, one per row: the rows whose labels may certify a
        precision target (e.g. people's decisions, not a model's own pseudo-labels, which
        would certify the model against itself); the held-out share is drawn from them
        alone (stratified among them, or the last 1/cv of them) and every other row is
        fitted on. None: every row may.
        """
        self._check_model()
        X, Y, labels = self._split(X, Y, labels)
        X = self._input(X)
        select_c = self._select_c(select_c)
        holdout = self._holdout(holdout)
        calibrator, decision = self._parts(objective, calibration, defaults=True)
        if not hasattr(self.model, "labels_"):
            return self._fit_then_tune(X, Y, labels, calibrator, decision, objective, cv, k,
                                       random_state, select_c, holdout, certify_rows)
        Y, _ = align_labels(Y, labels, self.model.labels_, unknown="warn",  # matched by name
                            what="ignored for tuning (the model cannot predict them)")
        Xf = None if self._in_folds() else self.transform(X)
        seed = self.random_state if random_state is None else random_state
        self._tune(X, Y, Xf, calibrator=calibrator, decision=decision, objective=objective,
                   cv=self.cv if cv is None else cv, k=self.k if k is None else k,
                   random_state=seed, select_c=select_c, holdout=holdout,
                   certify_rows=certify_rows)
        self._counts(Y)
        if self._has_open() and self.is_text:
            self.calibrate_open_labels(X, Y, random_state=seed)
        return self

    def _holdout(self, holdout: str | None) -> str:
        """tune's ``holdout``: None keeps the last tuning's choice, else "stratified"."""
        if holdout is None:
            last = getattr(self, "tuning_", None) or {}
            return (last.get("certified_on") or {}).get("holdout", "stratified")
        if holdout not in HOLDOUTS:
            raise DataFormatError(f"holdout: expected one of {', '.join(HOLDOUTS)}, got "
                                  f"{holdout!r}", field="holdout")
        return holdout

    def _in_folds(self) -> bool:
        """Whether cross-fitting fits the featurizer in each fold (module docstring)."""
        if self.featurizer_in_folds is not None:
            return bool(self.featurizer_in_folds)
        return self.featurizer is not None and bool(getattr(self.featurizer, "fits_on_rows",
                                                            True))

    def _select_c(self, select_c: bool | None) -> bool:
        """None: yes for OneVsRest and the models that ask for it (``select_c_default``: a
        single classifier chain, label powerset and RAkEL, their C alone); True: for any
        model with C (and its loss when it has one: LabelTree too)."""
        from .models.ovr import OneVsRest

        if select_c is None:
            return isinstance(self.model, OneVsRest) or bool(
                getattr(self.model, "select_c_default", False))
        if select_c and "C" not in self.model.get_params(deep=False):
            raise LabelwiseError(f"select_c: {type(self.model).__name__} has no C and loss, "
                                 "nor C alone, to choose")
        return bool(select_c)

    def _fit_then_tune(self, X, Y, labels, calibrator, decision, objective, cv, k,
                       random_state, select_c=False, holdout="stratified", certify_rows=None):
        for name in ("tuning_", "model_params_", "calibrator_", "decision_"):
            self.__dict__.pop(name, None)
        Xf = self._fit_features(X)
        self.model.fit(Xf, Y, labels=labels)
        self._counts(Y)
        seed = self.random_state if random_state is None else random_state
        self._tune(X, Y, None if self._in_folds() else Xf, calibrator=calibrator,
                   decision=decision, objective=objective, cv=self.cv if cv is None else cv,
                   k=self.k if k is None else k, random_state=seed, select_c=select_c,
                   holdout=holdout, certify_rows=certify_rows)
        self._refresh_open(X, Y, seed)
        return self

    def _tune(self, X: Any, Y: Any, Xf: Any, *, calibrator: Any, decision: Any,
              objective: str | None, cv: int, k: int, random_state: int | None,
              select_c: bool = False, holdout: str = "stratified",
              certify_rows: Any = None) -> None:
        """Tune the fresh ``calibrator`` and ``decision`` (either may be None) on out-of-fold
        scores; they become ``calibrator_`` and ``decision_`` once all of it succeeded."""
        from sklearn.base import clone

        from .crossfit import FoldFeatures, FoldPipeline, cross_fit_scores

        n_labels = len(self.model.labels_)
        Yc = as_label_matrix(Y)
        if Yc.shape[1] != n_labels:
            raise DataFormatError(f"Y has {Yc.shape[1]} labels, the model {n_labels}", field="Y")
        k = min(positive_int(k, "k"), n_labels)
        feat = self.featurizer
        if feat is None and getattr(self, "scaler_", None) is not None:
            from .features.scale import Scale

            feat = Scale(method=self.scaler_.method_, missing=self.scaler_.missing_)
        in_folds = feat is not None and self._in_folds()
        if not in_folds and Xf is None:
            Xf = self.transform(X)

        certify = _certifies(decision)
        if certify:
            # a precision certificate holds for the model it was computed on: rows the final
            # model never trains on certify it (one stratified 1/cv share), and the model, its
            # C search and the calibrator are fitted on the other rows (tune's docstring)
            from .crossfit import _rows
            from .split import IterativeStratifiedKFold

            n_rows = Yc.shape[0]
            allowed = _certify_rows(certify_rows, n_rows)
            n_allowed = n_rows if allowed is None else int(allowed.size)
            if n_allowed < 2 * cv:
                what = "rows" if allowed is None else "rows that may certify (certify_rows)"
                raise DataFormatError(f"a precision target certifies on held-out rows: cv={cv} "
                                      f"needs at least {2 * cv} {what}, got {n_allowed}",
                                      field="certify_rows" if allowed is not None else "Y")
            if allowed is not None:  # the held-out share from the allowed rows alone
                if holdout == "last":
                    cert_idx = allowed[n_allowed - n_allowed // int(cv):]
                else:
                    _, sub = next(IterativeStratifiedKFold(
                        n_splits=int(cv), random_state=random_state).split(
                            np.zeros((n_allowed, 1)), Yc[allowed]))
                    cert_idx = allowed[np.sort(sub)]
                fit_idx = np.setdiff1d(np.arange(n_rows), cert_idx)
            elif holdout == "last":  # the latest rows of data in time order (tune's docstring)
                n_fit = n_rows - n_rows // int(cv)
                fit_idx, cert_idx = np.arange(n_fit), np.arange(n_fit, n_rows)
            else:
                fit_idx, cert_idx = next(IterativeStratifiedKFold(
                    n_splits=int(cv), random_state=random_state).split(np.zeros((n_rows, 1)),
                                                                       Yc))
            X_cert, Y_cert = _rows(X, cert_idx), Yc[cert_idx]
            X, Yc = _rows(X, fit_idx), Yc[fit_idx]
            # the featurizer (or scaler) too: fitted with the held-out rows' texts, it gives
            # them a vocabulary and idf weights new rows do not get, and scores them lower
            # (on Reuters-21578, 0.914 precision held out against 0.864 on new rows)
            refit = self._fit_features(X)
            Xf = None if in_folds else refit

        fold_features = FoldFeatures() if in_folds else None  # one featurizer fit a fold

        def make(params: dict[str, Any]) -> Any:
            model = clone(self.model).set_params(**params)
            return FoldPipeline(clone(feat), model, fold_features) if in_folds else model

        selection = None
        if select_c:
            from .crossfit import linear_grid, select_linear_params

            Xs = X if in_folds else Xf
            loss = self.model.get_params(deep=False).get("loss")
            grid = linear_grid(Xf if Xf is not None else self.transform(X), n_labels,
                               C=self.model.C, loss=loss)
            score = self._selection_score(decision, Yc, cv, random_state)
            margin: Any = 0.0
            if loss is None:  # C alone (chains, powerset): a noise-sized gain keeps the C given
                from .crossfit import f1_noise_margin

                def margin(first: float) -> float:
                    return f1_noise_margin(first, Yc)
            best, S, folds, table = select_linear_params(
                make, Xs, Yc, grid, score, cv=cv, k=k, random_state=random_state,
                labels=self.model.labels_, margin=margin)
            with _params_set(self.model, best):  # refit on all rows; params then restored
                self.model.fit(self.transform(X) if Xf is None else Xf, Yc,
                               labels=self.model.labels_)
            self.model_params_ = best
            selection = {**best, "grid": table}
        else:
            S, folds = cross_fit_scores(make({}), X if in_folds else Xf, Yc, cv=cv, k=k,
                                        random_state=random_state, labels=self.model.labels_,
                                        return_folds=True)
        P = S
        if calibrator is not None:
            P = calibrator.fit_transform(S, Yc)
        if certify:
            if selection is None:  # (the C search above already refitted on these rows)
                self.model.fit(self.transform(X) if Xf is None else Xf, Yc,
                               labels=self.model.labels_)
            S_cert = self.model.decision_function(self.transform(X_cert), k=k)
            decision.fit(S_cert if calibrator is None else calibrator.transform(S_cert), Y_cert)
        elif decision is not None:
            from .decision import PerLabelThreshold

            if isinstance(decision, PerLabelThreshold):
                # each fold model's scores tune their own thresholds, which are averaged:
                # pooled folds mix scales, which misleads rare labels
                decision.fit(P, Yc, folds=folds)
            else:
                decision.fit(P, Yc)
        self.calibrator_, self.decision_ = calibrator, decision
        cal_name = None
        if calibrator is not None:
            cal_name = (calibrator.kind
                        + ("-per-label" if getattr(calibrator, "per_label", False) else "")
                        + ("+isotonic" if getattr(calibrator, "isotonic", False) else "")
                        + ("+context" if getattr(calibrator, "context", False) else ""))
        self.tuning_ = {"objective": objective if objective is not None else (
                            None if decision is None else _objective_of(decision)),
                        "calibration": cal_name or "none", "cv": int(cv), "k": k,
                        "random_state": random_state,
                        "featurizer_in_folds": bool(in_folds),
                        "n_samples": int(Yc.shape[0])}
        if certify:
            self.tuning_["n_samples"] = int(Yc.shape[0] + Y_cert.shape[0])
            self.tuning_["certified_on"] = {"fit_rows": int(Yc.shape[0]),
                                            "certification_rows": int(Y_cert.shape[0]),
                                            "holdout": holdout}
            if allowed is not None:
                self.tuning_["certified_on"]["certifiable_rows"] = n_allowed
        if selection is not None:
            self.tuning_["model_selection"] = selection
        if getattr(self, "model_params_", None) is not None:  # what the model was fitted with
            self.tuning_["model_params"] = self.model_params_

    def _selection_score(self, decision: Any, Yc: Any, cv: int,
                         random_state: int | None) -> Any:
        """score(S, folds) of a C/loss candidate: the cross-validated objective of the
        policy kind being tuned, on the raw out-of-fold scores (module docstring)."""
        from .decision import PerLabelThreshold, cross_validated_score

        objective = getattr(decision, "objective", None) or "micro-f1"
        policy = fresh(decision) if isinstance(decision, PerLabelThreshold) else \
            PerLabelThreshold(objective=objective)
        return lambda S, folds: cross_validated_score(policy, S, Yc, cv=cv, metric=objective,
                                                      random_state=random_state, folds=folds)

    # ------------------------------------------------------------------ scoring
    def _k(self, k: int | None) -> int:
        if k is None:
            return int(self.tuning_["k"]) if hasattr(self, "tuning_") else DEFAULT_K
        return positive_int(k, "k")

    def _scores(self, X: Any, k: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(top-k raw scores, their probabilities) over all labels; with open labels the two
        parts' top k are merged by probability (labelwise.models.hybrid.merge_topk)."""
        X = self._input(X)
        # a calibrator that reads a row's top pairs (the context map) sees at least those,
        # so a pair's probability does not depend on k; the extra pairs are cut after it
        need = max(k, getattr(self.calibrator_, "min_k", 1))
        S = self.model.decision_function(self.transform(X), k=need)
        if not S.has_sorted_indices:  # P is laid out as S sorted (calibrator entries)
            S = S.sorted_indices()
        P = self._probability(S)
        if need > k:
            S, P = _first_k(S, P, k)
        if self._open_part() is None:
            return S, P
        from .features.base import as_texts
        from .models.hybrid import merge_topk

        So, Po = self._open.scores(as_texts(X), k)
        return merge_topk(S, P, So, Po, k)

    def decision_function(self, X: Any, *, k: int | None = None) -> sp.csr_matrix:
        """Top-k raw model scores (n_samples, n_labels) CSR (with open labels: the raw scores
        of the k most probable labels)."""
        self._check_fitted()
        if self._open_part() is None:
            return self.model.decision_function(self.transform(X), k=self._k(k))
        self._check_tuned()
        return self._scores(X, self._k(k))[0]

    def _probability(self, S: sp.csr_matrix) -> sp.csr_matrix:
        if self.calibrator_ is not None:
            return self.calibrator_.transform(S)
        P = S.copy()
        P.data = np.asarray(self.model._to_probability(P.data), dtype=np.float32)
        return P

    def predict_proba(self, X: Any, *, k: int | None = None) -> sp.csr_matrix:
        """Top-k probabilities: calibrated when the pipeline has a tuned calibrator."""
        self._check_fitted()
        self._check_tuned()
        return self._scores(X, self._k(k))[1]

    def _policy(self) -> Any:
        """The decision policy over all labels (open labels as labels never seen in tuning)."""
        n_open = self.n_open_labels
        if n_open == 0:
            return self.decision_
        return check_policy(self, n_open)

    def _sets(self, S: sp.csr_matrix, P: sp.csr_matrix) -> sp.csr_matrix:
        """Label sets among the stored entries of S (P: their probabilities)."""
        if self.decision_ is not None:
            return self._policy().apply(P if self.calibrator_ is not None else S)
        thr = np.float32(self.model.default_threshold)
        if self.n_open_labels:
            n_sup = len(self.model.labels_)
            thr = np.where(S.indices < n_sup, thr, np.float32(self._open_part().bias_))
        keep = S.data > thr
        out = sp.csr_matrix((np.where(keep, np.float32(1), np.float32(0)), S.indices.copy(),
                             S.indptr.copy()), shape=S.shape)
        out.eliminate_zeros()
        return out

    def predict(self, X: Any, *, k: int | None = None) -> sp.csr_matrix:
        """Label sets (CSR float32 0/1): the tuned policy's choice (``decision_``), or the
        model's default rule (score above its default threshold, over all labels) without
        one."""
        self._check_fitted()
        self._check_tuned()
        if self.decision_ is None and k is None:
            X = self._input(X)
            out = self.model.predict(self.transform(X))
            part = self._open_part()
            if part is not None:
                from .features.base import as_texts

                out = sp.csr_matrix(sp.hstack([out, part.predict(as_texts(X))], format="csr"),
                                    dtype=np.float32)
                out.sort_indices()
            return out
        S, P = self._scores(X, self._k(k))
        return self._sets(S, P)

    def score_and_sets(self, X: Any, *, k: int | None = None
                       ) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
        """(raw top-k scores, their probabilities, chosen sets) from one model pass; the sets
        are chosen among the top ``max(k, tuning k)`` labels."""
        self._check_fitted()
        self._check_tuned()
        k = self._k(k)
        if hasattr(self, "tuning_"):
            k = max(k, int(self.tuning_["k"]))
        S, P = self._scores(X, k)
        return S, P, self._sets(S, P)

    def predict_labels(self, X: Any, *, k: int = DEFAULT_K) -> list[dict[str, Any]]:
        """Per item: chosen label names, their probabilities and the top-k candidates (ranked
        by raw score, or by probability in a pipeline with open labels)."""
        k = self._k(k)
        S, P, sets = self.score_and_sets(X, k=k)
        names = self.labels_.names
        by_probability = self.n_open_labels > 0
        out = []
        for i in range(S.shape[0]):
            a, b = S.indptr[i], S.indptr[i + 1]
            cols, vals, probs = S.indices[a:b], S.data[a:b], P.data[P.indptr[i]:P.indptr[i + 1]]
            order = np.lexsort((cols, -probs) if by_probability else (cols, -vals))
            prob_of = dict(zip(cols.tolist(), probs.tolist(), strict=True))
            chosen = sets.indices[sets.indptr[i]:sets.indptr[i + 1]].tolist()
            chosen.sort(key=lambda j: (-prob_of[j], j))
            out.append({
                "labels": [names[j] for j in chosen],
                "probabilities": {names[j]: prob_of[j] for j in chosen},
                "candidates": [{"label": names[int(cols[j])], "score": float(vals[j]),
                                "probability": float(probs[j])} for j in order[:k]],
            })
        return out

    def _explain_scaling(self) -> dict[str, Any] | None:
        """The scaler's explain(); for a numeric X left as given before a scale-invariant
        model, why; None where nothing was scaled otherwise."""
        scaler = getattr(self, "scaler_", None)
        out = None if scaler is None else scaler.explain()
        if not self.is_text and self._scale_skipped():
            out = {**(out or {}), "method": "auto", "method_in_effect": "none",
                   "reason": f"{type(self.model).__name__} is unchanged by per-column "
                             "scaling (its trees split on the order of a column's values)"}
        return out

    def explain(self) -> dict[str, Any]:
        """The pipeline's parts in words and numbers (JSON-able)."""
        self._check_fitted()
        out: dict[str, Any] = {
            "featurizer": None if self.featurizer is None else type(self.featurizer).__name__,
            "model": type(self.model).__name__, "n_labels": len(self.labels_),
            "scaling": self._explain_scaling(),
            "model_params": getattr(self, "model_params_", None),
            "calibrator": None if self.calibrator_ is None else self.calibrator_.explain(),
            "decision": None, "tuning": getattr(self, "tuning_", None)}
        if self.decision_ is not None:
            out["decision"] = {key: v for key, v in self.decision_.explain().items()
                               if key != "labels"}
        part = self._open_part()
        if part is not None or self.open_calibration_ is not None:
            out["open_labels"] = {
                "n_labels": self.n_open_labels,
                "temperature": None if part is None else part.temperature_,
                "bias": None if part is None else part.bias_,
                "calibration": self.open_calibration_}
        return out

    # ------------------------------------------------------------------ open labels
    def add_labels(self, names: str | list[str], *,
                   descriptions: list[str | None] | None = None) -> Pipeline:
        """Add labels scored at once from their names (and descriptions), without retraining
        (into ``open_labels_``; module docstring)."""
        self._open.add(self, names, descriptions=descriptions)
        return self

    def calibrate_open_labels(self, X: Any, Y: Any = None, *,
                              labels: LabelSpace | list[str] | None = None,
                              max_rows: int = OPEN_CALIBRATION_ROWS,
                              random_state: int | None = 0) -> Pipeline:
        """Fit the open labels' probability mapping on labelled rows of the model's labels.

        ``X``: texts; ``Y``: their labels (columns named by ``labels``, else the model's
        labels in order; only model labels are used). At most ``max_rows`` rows, drawn with
        ``random_state``. Sets ``open_calibration_`` (see labelwise.models.hybrid)."""
        self._open.calibrate(self, X, Y, labels=labels, max_rows=max_rows,
                             random_state=random_state)
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
        self._open.learn(self, X, Y, labels=labels, add_labels=add_labels)
        return self

    def label_info(self) -> list[dict[str, Any]]:
        """Per label: name, description, kind ("supervised", "zero-shot" or "few-shot") and
        examples (training positives of supervised labels when known, else None; learned
        examples of zero-/few-shot labels)."""
        return self._open.label_info(self)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted pipeline as one directory, atomically (labelwise.pipeline_store)."""
        save_pipeline(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, mmap: bool = False,
             verify: bool = True) -> Pipeline:
        """Read a directory written by :meth:`save`."""
        return load_pipeline(path, cls=cls, mmap=mmap, verify=verify)


class _params_set:
    """Context: ``model``'s parameters set to ``params``, the old values restored after."""

    def __init__(self, model: Any, params: dict[str, Any]) -> None:
        self.model, self.params = model, params

    def __enter__(self) -> None:
        self.old = {key: getattr(self.model, key) for key in self.params}
        self.model.set_params(**self.params)

    def __exit__(self, *exc: Any) -> None:
        self.model.set_params(**self.old)


def _certify_rows(mask: Any, n_rows: int) -> np.ndarray | None:
    """tune's ``certify_rows`` as the indices of the rows that may certify (None: all)."""
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.dtype != bool or m.shape != (n_rows,):
        raise DataFormatError(f"certify_rows: expected a boolean array of {n_rows} values (one "
                              f"per row), got dtype {m.dtype} shape {m.shape}",
                              field="certify_rows")
    return np.flatnonzero(m)


def _certifies(policy: Any) -> bool:
    """True for a policy whose tuning certifies a precision bound (PrecisionTarget with a
    confidence): its data must be rows the final model did not train on."""
    from .decision import PrecisionTarget

    return isinstance(policy, PrecisionTarget) and policy.confidence is not None


def _objective_of(policy: Any) -> str | None:
    obj = getattr(policy, "objective", None)
    if obj is not None:
        return str(obj)
    p = getattr(policy, "precision", None)
    return None if p is None else f"precision={float(p):g}"


def load_any(path: str | os.PathLike[str], *, mmap: bool = False,
             verify: bool = True) -> Pipeline:
    """A pipeline directory, or a plain model directory (as a pipeline around that model)."""
    return _load_any(path, cls=Pipeline, mmap=mmap, verify=verify)


def _first_k(S: sp.csr_matrix, P: sp.csr_matrix, k: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """The k highest raw scores of each row of S (ties: the lower label id, as the models'
    top-k) and their probabilities in P (stored in S's layout)."""
    from .calibration._context import raw_ranks

    n = S.shape[0]
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(S.indptr))
    keep = raw_ranks(S.data, rows, S.indptr.astype(np.int64), S.indices) < k
    indptr = np.zeros(n + 1, S.indptr.dtype)
    np.cumsum(np.bincount(rows[keep], minlength=n), out=indptr[1:])
    return tuple(sp.csr_matrix((M.data[keep], M.indices[keep], indptr), shape=M.shape)
                 for M in (S, P))
