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
  plus the rows and re-tuned with its own objective (a certified precision target stays one).

Before the new version is saved, the reviews read are marked as used
(:func:`labelwise.review.queue.record_use`, kind "learn"): they can no longer be undone. The
save is atomic (:meth:`Pipeline.save` replaces the directory in one rename); a failure
before it leaves the model on disk as it was.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from .errors import NothingToLearnError, ReviewInputError

__all__ = ["learn_model", "review_dataset"]


def review_dataset(db, *, include_auto: bool = False, train: Any = None):
    """(Dataset of texts and label names, number of review rows, highest review id read)."""
    from labelwise.dataset import Dataset

    from . import loop, queue

    rows = loop.reviewed_rows(db, include_auto=include_auto)
    up_to = queue.max_review_id(db)  # read after the rows: the mark covers them all
    if not rows:
        raise NothingToLearnError(f"{db.url}: no reviewed items with text and labels to learn "
                                  "from" + ("" if include_auto else
                                            " (include_auto adds the auto-accepted ones)"))
    texts = [t for _, t, _ in rows]
    label_sets = [labels for _, _, labels in rows]
    if train is not None:
        if train.x_kind != "text":
            raise ReviewInputError(f"train: the training data holds no texts ({train.x_kind})")
        texts = list(train.X) + texts
        label_sets = [train.label_names(i) for i in range(train.n_samples)] + label_sets
    names = list(dict.fromkeys(n for s in label_sets for n in s))
    col = {n: j for j, n in enumerate(names)}
    return Dataset(texts, [[col[n] for n in s] for s in label_sets], names), len(rows), up_to


def learn_model(db, path: str | Path, *, train: Any = None, include_auto: bool = False,
                save: bool = True) -> dict[str, Any]:
    """Load the text pipeline at ``path``, feed it the review rows (``train``: a Dataset to
    retrain on as well), mark the reviews used, save it back atomically. Returns a summary:
    ``mode`` ("learn" or "retrain"), ``rows`` (review rows), ``train_rows``, ``include_auto``,
    ``labels_added``, ``up_to_review_id``, ``warnings`` (messages of the warnings raised)
    and ``pipeline`` (the new pipeline object)."""
    from labelwise.errors import LabelwiseError
    from labelwise.pipeline import load_any
    from labelwise.pipeline_store import is_pipeline_dir

    from .queue import record_use

    path = Path(path)
    if not is_pipeline_dir(path):
        raise ReviewInputError(f"model: {path} is a plain model directory; review learn needs "
                               "a text pipeline (labelwise train)")
    pipe = load_any(path)
    if not pipe.is_text:
        raise ReviewInputError(f"model: {path} takes numeric features; review learn needs a "
                               "pipeline on texts")
    data, n_rows, up_to = review_dataset(db, include_auto=include_auto, train=train)
    before = list(pipe.labels_.names)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if train is not None:
                pipe.fit(data)
                pipe.tune(data)  # keeps its own calibration and (certified) decision policy
            else:
                pipe.learn(data, add_labels=True)
        except ReviewInputError:
            raise
        except LabelwiseError as e:
            raise ReviewInputError(f"model: {e}") from e
    known = set(before)
    added = [n for n in pipe.labels_.names if n not in known]
    if save:
        record_use(db, "learn", up_to=up_to, detail=str(path)[:500])
        pipe.save(path)
    return {"mode": "learn" if train is None else "retrain", "rows": n_rows,
            "train_rows": 0 if train is None else int(train.n_samples),
            "include_auto": bool(include_auto), "labels_added": added,
            "up_to_review_id": up_to, "warnings": [str(w.message) for w in caught],
            "pipeline": pipe}
