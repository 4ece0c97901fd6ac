"""``labelwise learn MODEL DATA``: add labelled examples to zero-/few-shot labels, no retraining.

DATA is labelled data (a table with a text column and a labels column, fastText lines, ...);
its rows are embedded once and added to the prototypes of the labels they carry
(:meth:`labelwise.pipeline.Pipeline.learn`, :class:`~labelwise.models.fewshot.FewShot`):

- labels added with ``labelwise labels add`` (zero-shot, or few-shot once they have examples),
  and every label of a pipeline whose model is zero-shot or few-shot, learn from the rows;
- labels of a trained (supervised) model do not: their examples are counted in a warning,
  and only ``labelwise train`` changes them;
- labels the pipeline does not know are an error naming them, unless ``--add-labels`` adds
  them first (from their names) and then learns their examples.

The pipeline directory is rewritten atomically. A summary line says how many examples each
label gained.
"""

from __future__ import annotations

import argparse

from ._common import (
    add_column_arguments,
    add_format_argument,
    check_output_dir,
    column_options,
    load_dataset,
)

HELP = "add labelled examples to zero-/few-shot labels of a pipeline (no retraining)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="text pipeline directory (rewritten atomically)")
    p.add_argument("data", metavar="DATA", help="labelled examples (file, folder or registry name[:split])")
    p.add_argument("--add-labels", action="store_true",
                   help="add the data's labels that the pipeline lacks (zero-shot from their names) "
                        "instead of refusing them")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_column_arguments(p)
    add_format_argument(p)


def run(args: argparse.Namespace) -> int:
    from labelwise.errors import LabelwiseError
    from labelwise.pipeline import load_any
    from labelwise.pipeline_store import is_pipeline_dir
    from labelwise.progress import show_progress

    check_output_dir(args.model, args.data, what="MODEL")
    pipe = load_any(args.model)
    if not pipe.is_text:
        raise LabelwiseError(f"{args.model}: learn needs a pipeline on texts (it has no text "
                             "featurizer)")
    if not is_pipeline_dir(args.model):
        raise LabelwiseError(f"{args.model}: a plain model directory; train a pipeline "
                             "(labelwise train) first")
    data = load_dataset(args.data, args.format, args.option, column_options(args))
    if data.x_kind != "text":
        raise LabelwiseError(f"{args.data} holds no texts ({data.x_kind})")
    before = {d["label"]: d for d in pipe.label_info()}
    with show_progress(not args.quiet):
        pipe.learn(data, add_labels=args.add_labels)
    after = pipe.label_info()
    pipe.save(args.model)
    gained = []
    for d in after:
        old = before.get(d["label"])
        n0 = 0 if old is None else (old["examples"] or 0)
        if d["kind"] != "supervised" and (d["examples"] or 0) > n0:
            new = " (added)" if old is None else ""
            gained.append(f"{d['label']}{new} {n0} -> {d['examples']}")
    added = len(after) - len(before)
    print(f"learned from {data.n_samples} rows: " + ("; ".join(gained) or "no examples learned")
          + (f"; {added} label(s) added" if added else "") + f"; saved to {args.model}")
    n_model = len(pipe.model.labels_)
    model_gained = any((d["examples"] or 0) > (before[d["label"]]["examples"] or 0)
                       for d in after[:n_model] if d["kind"] != "supervised")
    if model_gained and pipe.is_tuned:
        import warnings

        warnings.warn("the pipeline's calibration and thresholds were tuned before these "
                      "examples; run labelwise tune to refit them", stacklevel=1)
    return 0
