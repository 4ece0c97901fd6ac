"""Reviews back into the model: the one implementation behind ``labelwise review learn`` and
``POST /v1/review/learn``.

The rows are the reviewed items (their text and the labels their reviewer kept or added) and,
with ``include_auto``, the auto-accepted items with their auto labels (pseudo-labels, as in
self-training). Two ways:

- **learn** (no training data): :meth:`Pipeline.learn` with ``add_labels=True``: zero-/few-shot
  labels learn from the rows, labels added by reviewers that the model lacks become open
  labels (scored from their names, then taught by their examples). A supervised label
  learns nothing this way (``learn`` warns with a count): it needs a retrain.
- **retrain** (``train``: a Dataset of texts): the pipeline is refitted on the training data
  plus the rows and tuned once, as it was tuned before (its objective, calibration, ``cv``,
  ``k``, seed, and the C search only when its last tuning ran one): a certified precision
  target stays one, certified on people's rows alone (the training rows and the reviewed
  items: ``Pipeline.tune``'s ``certify_rows``). The auto-accepted items fed back with
  ``include_auto`` are fitted on, never certify: they are the model's own answers (its
  errors included), and a certificate counting them measured the model against itself
  (on Reuters-21578 the certified sets' precision fell below the target after three rounds
  while the certificate said it held). (It used to refit, re-tune in ``fit``, then tune
  again with the C search: three fits of the model's grid where one does.)

The reviews are read in one transaction that also notes the learn as a use of them
(:func:`labelwise.review.queue.reviews_in_use`): from then on they can no longer be undone,
and no undo slips between the read and the note. A learn that fails before its model is saved
removes its note again. The save is atomic (:meth:`Pipeline.save` replaces the directory in
one rename); a failure before it leaves the model on disk as it was.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .errors import NothingToLearnError, ReviewInputError

__all__ = ["learn_model", "review_dataset"]


def review_dataset(rows: list[tuple[str, str, list[str]]], *, train: Any = None):
    """A Dataset of texts and label names: ``train``'s rows (when given), then the review
    ``rows`` ((item id, text, labels) as :func:`labelwise.review.loop.learning_rows` gives)."""
    from labelwise.dataset import Dataset

    texts = [t for _, t, _ in rows]
    label_sets = [labels for _, _, labels in rows]
    if train is not None:
        if train.x_kind != "text":
            raise ReviewInputError(f"train: the training data holds no texts ({train.x_kind})")
        texts = list(train.X) + texts
        label_sets = [train.label_names(i) for i in range(train.n_samples)] + label_sets
    names = list(dict.fromkeys(n for s in label_sets for n in s))
    col = {n: j for j, n in enumerate(names)}
    return Dataset(texts, [[col[n] for n in s] for s in label_sets], names)


def _retrain(pipe: Any, data: Any, certify_rows: Any = None) -> None:
    """Refit ``pipe`` on ``data`` and tune it once with the settings of its last tuning
    (``tuning_``): a fresh (unfitted) copy of the model makes :meth:`Pipeline.tune` fit the
    featurizer and model, then tune fresh copies of its calibrator and policy; only the rows
    of ``certify_rows`` (a boolean mask, None: all) may certify a precision target."""
    from sklearn.base import clone

    last = getattr(pipe, "tuning_", None) or {}
    pipe.model = clone(pipe.model)
    pipe.tune(data, cv=last.get("cv"), k=last.get("k"), random_state=last.get("random_state"),
              select_c=("model_selection" in last) if last else None,
              certify_rows=certify_rows)


def learn_model(db, path: str | Path, *, train: Any = None, include_auto: bool = False
                ) -> dict[str, Any]:
    """Load the text pipeline at ``path``, feed it the review rows (``train``: a Dataset to
    retrain on as well), mark the reviews used, save it back atomically. Returns a summary:
    ``mode`` ("learn" or "retrain"), ``rows`` (review rows), ``train_rows``, ``include_auto``,
    ``labels_added``, ``up_to_review_id``, ``warnings`` (messages of the warnings raised)
    and ``pipeline`` (the new pipeline object)."""
    from labelwise.errors import LabelwiseError
    from labelwise.pipeline import load_any
    from labelwise.pipeline_store import is_pipeline_dir

    from .queue import forget_use, reviews_in_use

    path = Path(path)
    if not is_pipeline_dir(path):
        raise ReviewInputError(f"model: {path} is a plain model directory; review learn needs "
                               "a text pipeline (labelwise train)")
    pipe = load_any(path)
    if not pipe.is_text:
        raise ReviewInputError(f"model: {path} takes numeric features; review learn needs a "
                               "pipeline on texts")
    from . import loop

    with reviews_in_use(db, "learn", detail=str(path)[:500]) as use:
        rows = loop.learning_rows(use.conn, include_auto=include_auto)
        auto_ids = loop.auto_item_ids(use.conn) if include_auto else set()
        if not rows:
            raise NothingToLearnError(
                f"{db.url}: no reviewed items with text and labels to learn from"
                + ("" if include_auto else " (include_auto adds the auto-accepted ones)"))
    try:
        data = review_dataset(rows, train=train)
        before = set(pipe.labels_.names)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if train is not None:
                    # people's rows (training data, reviews) certify; pseudo-labels do not
                    human = np.r_[np.ones(train.n_samples, bool),
                                  [item_id not in auto_ids for item_id, _, _ in rows]]
                    _retrain(pipe, data, human if not human.all() else None)
                else:
                    pipe.learn(data, add_labels=True)
            except ReviewInputError:
                raise
            except LabelwiseError as e:
                raise ReviewInputError(f"model: {e}") from e
        added = [n for n in pipe.labels_.names if n not in before]
        pipe.save(path)
    except BaseException:
        forget_use(db, use.id)  # nothing was saved: the reviews can be undone again
        raise
    return {"mode": "learn" if train is None else "retrain", "rows": len(rows),
            "train_rows": 0 if train is None else int(train.n_samples),
            "include_auto": bool(include_auto), "labels_added": added,
            "up_to_review_id": use.up_to_review_id, "warnings": [str(w.message) for w in caught],
            "pipeline": pipe}
