"""``labelwise labels add MODEL --name N`` / ``labelwise labels list MODEL``: a pipeline's labels.

``add`` gives a saved text pipeline a new label, scored at once from its name and optional
description (zero-shot), without retraining; ``labelwise predict MODEL "some text"`` predicts
it right away. The pipeline directory is rewritten atomically. Its probabilities use the
pipeline's open-label calibration (:mod:`labelwise.models.hybrid`): fitted by ``--calibrate
DATA`` (labelled rows of the trained labels, e.g. the training file; at most
``--calibration-rows`` of them are embedded), or earlier by ``tune``; without one the
zero-shot default mapping is used and a note says so.

``list`` prints one JSON object per label::

    {"label": "gratitude", "description": "thanks", "kind": "zero-shot", "examples": 0}

``kind`` is ``supervised`` (scored by the trained model), ``zero-shot`` (from its name) or
``few-shot`` (from examples added by ``labelwise learn``); ``examples`` counts training
positives of supervised labels (null when the pipeline does not know them) and learned
examples of the others.
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

HELP = "list a pipeline's labels, or add a label predicted at once from its name (no retraining)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="labels_command", metavar="ACTION", required=True)
    a = sub.add_parser("add", help="add a label scored from its name and description",
                       description="add a label scored from its name and description")
    a.add_argument("model", metavar="MODEL", help="text pipeline directory (rewritten atomically)")
    a.add_argument("--name", required=True, help="the new label's name")
    a.add_argument("--description", help="a sentence saying what the label means")
    a.add_argument("--calibrate", metavar="DATA",
                   help="labelled data of the trained labels (e.g. the training file) to fit "
                        "the new labels' probability scale on")
    a.add_argument("--calibration-rows", type=int, default=2000, metavar="N",
                   help="most rows of DATA embedded for --calibrate (default 2000)")
    a.add_argument("--seed", type=int, default=0, help="random_state drawing those rows (default 0)")
    add_column_arguments(a)
    add_format_argument(a)
    ls = sub.add_parser("list", help="the labels, their kind and example counts (JSON lines)",
                        description="the labels, their kind and example counts (JSON lines)")
    ls.add_argument("model", metavar="MODEL", help="pipeline (or model) directory")


def run(args: argparse.Namespace) -> int:
    if args.labels_command == "list":
        return _list(args)
    return _add(args)


def _list(args: argparse.Namespace) -> int:
    import json
    import sys

    from labelwise.pipeline import load_any

    pipe = load_any(args.model)
    for info in pipe.label_info():
        sys.stdout.write(json.dumps(info, ensure_ascii=False) + "\n")
    return 0


def _add(args: argparse.Namespace) -> int:

    from labelwise.errors import DataFormatError, LabelwiseError
    from labelwise.pipeline import load_any
    from labelwise.pipeline_store import is_pipeline_dir

    if not args.name.strip():
        raise LabelwiseError("--name: the label name is empty")
    if args.calibration_rows < 1:
        raise LabelwiseError(f"--calibration-rows must be >= 1, got {args.calibration_rows}")
    check_output_dir(args.model, args.calibrate, what="MODEL")
    pipe = load_any(args.model)
    if not pipe.is_text:
        raise LabelwiseError(f"{args.model}: labels can only be added to a pipeline on texts "
                             "(it has no text featurizer): a new label is scored from the text")
    if not is_pipeline_dir(args.model):
        raise DataFormatError("a plain model directory cannot hold added labels; train a "
                              "pipeline (labelwise train)", path=args.model)
    if args.name in pipe.labels_:
        raise LabelwiseError(f"label {args.name!r} is already in {args.model}")
    calibrated = getattr(pipe, "open_calibration_", None) is not None
    if args.calibrate:
        data = load_dataset(args.calibrate, args.format, args.option, column_options(args))
        if data.x_kind != "text":
            raise LabelwiseError(f"--calibrate: {args.calibrate} holds no texts")
        pipe.calibrate_open_labels(data, max_rows=args.calibration_rows, random_state=args.seed)
        calibrated = True
    import warnings

    from labelwise.models.zeroshot import ZeroShot

    if not calibrated and not isinstance(pipe.model, ZeroShot):
        warnings.warn("the new label uses the default zero-shot probability mapping; give "
                      "--calibrate TRAIN_DATA to fit it to the pipeline's calibrated scale",
                      stacklevel=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="open labels use the default")  # noted above
        pipe.add_labels([args.name], descriptions=[args.description])
    pipe.save(args.model)
    info = pipe.label_info()[-1]
    scale = "calibrated" if calibrated else "default"
    print(f"added label {info['label']!r} (zero-shot, {scale} probability mapping) to "
          f"{args.model}: {len(pipe.labels_)} labels, {pipe.n_open_labels} added after training")
    return 0
