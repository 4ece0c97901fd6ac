"""``POST /v1/models/{name}/learn``: examples and new labels into a pipeline, a new version.

Under the model's lock: the pipeline is read from disk (not the memory-mapped copy being
served, whose arrays are read-only), new labels go through ``Pipeline.add_labels`` and the
examples through ``Pipeline.learn`` (the calls ``labelwise labels add`` / ``labelwise
learn`` make), the result is saved with ``Pipeline.save`` (the directory is replaced
atomically) and loaded as the served version, as a reload does.
"""

from __future__ import annotations

import warnings
from typing import Any

from .errors import Problem, scrub
from .schemas import LearnRequest

__all__ = ["learn_into"]


def learn_into(registry: Any, name: str, body: LearnRequest) -> dict[str, Any]:
    from labelwise.dataset import Dataset
    from labelwise.errors import LabelwiseError
    from labelwise.pipeline import load_any
    from labelwise.pipeline_store import is_pipeline_dir

    path = registry.paths[name]
    with registry.lock(name):
        old = registry.get(name)
        if not is_pipeline_dir(path):
            raise Problem(422, f"model {name!r} is a plain model directory, not a pipeline: "
                               "learn needs a text pipeline (labelwise train)")
        try:
            pipe = load_any(path)
        except (LabelwiseError, OSError) as e:
            raise Problem(409, f"the version on disk failed to load: {scrub(str(e))}") from None
        if not pipe.is_text:
            raise Problem(422, f"model {name!r} takes numeric features: learn needs a text "
                               "pipeline")
        for i, ex in enumerate(body.examples):
            if not ex.text.strip():
                raise Problem(422, f"examples[{i}].text: empty text")
        before = len(pipe.labels_)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if body.labels:
                    pipe.add_labels([lab.name for lab in body.labels],
                                    descriptions=[lab.description for lab in body.labels])
                if body.examples:
                    names = sorted({n for ex in body.examples for n in ex.labels})
                    col = {n: j for j, n in enumerate(names)}
                    Y = [sorted({col[n] for n in ex.labels}) for ex in body.examples]
                    pipe.learn(Dataset([ex.text for ex in body.examples], Y, names))
            except LabelwiseError as e:
                raise Problem(422, scrub(str(e))) from None
        added = list(pipe.labels_.names[before:])
        pipe.save(path)
        _, new = registry.reload(name)
    return {"model": name, "version": new.version,
            "previous_version": "" if old is None else old.version, "labels_added": added,
            "examples": len(body.examples),
            "warnings": [scrub(str(w.message)) for w in caught]}
