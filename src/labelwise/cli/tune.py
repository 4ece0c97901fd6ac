"""``labelwise tune MODEL DATA``: fit calibration and a decision policy into a pipeline.

DATA is the pipeline's *training* data, its labels matched to the model's by name (labels the
model lacks are named in one ``warning:`` line and ignored: the model cannot predict them): :meth:`labelwise.Pipeline.tune` cross-fits the model
on it (``--cv`` folds, iterative stratification; the featurizer fitted on all training texts,
see :mod:`labelwise.pipeline`), fits the calibrator on the out-of-fold top-k scores and the
policy on the calibrated out-of-fold probabilities. Nothing else reaches the tuning.

MODEL is a pipeline directory (``labelwise train``): it is rewritten atomically with
``calibration.*`` and ``decision.*`` added (:mod:`labelwise.pipeline_store`). A plain model
directory (``manifest.json`` at the top, from older versions) keeps its layout: the files are
written next to ``manifest.json`` (which is left unchanged)::

    calibration.json + calibration.npz     labelwise.calibration format
    decision.json + decision.npz           labelwise.decision format
    decision-manifest.json                 {"format": "labelwise.decision-manifest",
                                            "format_version": 1, "objective", "cv", "k",
                                            "calibration", "model_manifest_sha256",
                                            "files": {name: sha256 of the four files}}

and :func:`labelwise.pipeline.load_any` reads them back. The pipeline applies them as:
model scores (top k) -> calibration -> decision.
"""

from __future__ import annotations

import argparse

from ._common import (
    add_column_arguments,
    add_format_argument,
    check_output_dir,
    column_options,
    load_dataset,
    print_json,
)

HELP = "tune calibration and decision thresholds of a saved pipeline on its training data"

#: labelwise.pipeline.CALIBRATIONS (a copy: the CLI starts without importing the pipeline)
CALIBRATIONS = ("platt-per-label", "platt-per-label+isotonic", "platt-per-label+context",
                "platt", "isotonic", "temperature", "none")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="pipeline (or model) directory written by 'labelwise train'")
    p.add_argument("data", metavar="DATA", help="training data file or registry name[:split]")
    add_format_argument(p)
    add_column_arguments(p)
    p.add_argument("--objective", default=None,
                   help="micro-f1, macro-f1, samples-f1 or precision=P (default: the pipeline's "
                        "own objective when it is tuned, else micro-f1, as Pipeline.tune)")
    p.add_argument("--cv", type=int, default=5, help="cross-fitting folds (default 5)")
    p.add_argument("--k", type=int, default=100,
                   help="scores kept per row (top k; default 100, capped at n_labels)")
    p.add_argument("--calibration", choices=CALIBRATIONS, default="platt-per-label")
    p.add_argument("--seed", type=int, default=0, help="random state of the folds")
    p.add_argument("--no-select-c", dest="select_c", action="store_false",
                   help="keep the model's C and loss (by default a OneVsRest model's C and "
                        "loss, and the C of a single classifier chain, label powerset or "
                        "RAkEL, are chosen by the same cross-fitting and the model refitted)")
    p.add_argument("--holdout", choices=("stratified", "last"), default=None,
                   help="precision=P: the held-out 1/cv share that certifies it: 'stratified' "
                        "(default) or 'last', the last rows in the data's order, for data in "
                        "time order whose new rows come later (Pipeline.tune)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def parse_objective(text: str):
    """``'macro-f1'`` -> ('f1', 'macro-f1'); ``'precision=0.9'`` -> ('precision', 0.9)."""
    from labelwise.decision import OBJECTIVES
    from labelwise.errors import DataFormatError, LabelwiseError
    from labelwise.pipeline import parse_objective as parse

    try:
        return parse(text)
    except DataFormatError:
        raise LabelwiseError(f"--objective {text!r}: expected one of {', '.join(OBJECTIVES)} "
                             "or precision=P with 0 < P <= 1") from None


def _write_legacy(root, pipe, args) -> None:
    """calibration/decision files next to a plain model directory's manifest.json."""
    import json

    from labelwise.atomic import atomic_write
    from labelwise.files import sha256_file
    from labelwise.pipeline_store import LEGACY_DECISION_MANIFEST

    if pipe.calibrator_ is None:
        from labelwise.errors import LabelwiseError

        raise LabelwiseError(f"--calibration none: {root} is a plain model directory, whose tuning "
                             "files need a calibrator; train a pipeline with 'labelwise train' first")
    pipe.calibrator_.save(root, name="calibration")
    pipe.decision_.save(root, name="decision")
    files = {n: sha256_file(root / n) for n in ("calibration.json", "calibration.npz",
                                                "decision.json", "decision.npz")}
    manifest = {"format": "labelwise.decision-manifest", "format_version": 1,
                "objective": pipe.tuning_["objective"], "cv": args.cv, "k": pipe.tuning_["k"],
                "calibration": args.calibration,
                "model_manifest_sha256": sha256_file(root / "manifest.json"), "files": files}
    with atomic_write(root / LEGACY_DECISION_MANIFEST, "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=1) + "\n")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from labelwise.errors import LabelwiseError
    from labelwise.pipeline import load_any
    from labelwise.pipeline_store import is_pipeline_dir
    from labelwise.progress import show_progress

    if args.objective is not None:
        parse_objective(args.objective)
    if args.cv < 2:
        raise LabelwiseError(f"--cv {args.cv}: expected at least 2 folds")
    if args.k < 1:
        raise LabelwiseError(f"--k {args.k}: expected a positive number")
    root = Path(args.model)
    check_output_dir(args.model, args.data, what="MODEL")
    pipe = load_any(root)
    ds = load_dataset(args.data, args.format, args.option, column_options(args))
    if ds.x_kind == "text" and not pipe.is_text:
        raise LabelwiseError(f"{args.data}: holds texts; this model needs numeric features")
    if ds.x_kind != "text" and pipe.is_text:
        raise LabelwiseError(f"{args.data}: holds numeric features; this pipeline needs texts")
    # labels matched by name: those the trained model lacks are warned about and ignored
    # (Pipeline.tune); labels added later (`labels add`) have no tuned part
    with show_progress(not args.quiet):
        pipe.tune(ds, objective=args.objective, calibration=args.calibration, cv=args.cv,
                  k=args.k, random_state=args.seed, select_c=None if args.select_c else False,
                  holdout=args.holdout)
    if is_pipeline_dir(root):
        pipe.save(root)
    else:
        _write_legacy(root, pipe, args)
    cal = pipe.calibrator_
    if cal is None:
        cal_summary = None
    elif args.calibration == "platt-per-label":
        cal_summary = {"kind": "platt", "per_label": True,
                       "missing_probability": cal.missing_probability_}
    else:
        cal_summary = cal.explain()
    summary = {"model": str(root), "objective": pipe.tuning_["objective"], "cv": args.cv,
               "k": pipe.tuning_["k"], "calibration": cal_summary,
               "model_params": getattr(pipe, "model_params_", None),
               "certified_on": pipe.tuning_.get("certified_on"),
               "decision": {key: v for key, v in pipe.decision_.explain().items() if key != "labels"}}
    print_json(summary)
    return 0
