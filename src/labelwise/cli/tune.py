"""``labelwise tune MODEL DATA``: fit calibration and a decision policy into a model directory.

DATA is the model's *training* data. The model's class and parameters are cross-fitted on it
(``--cv`` folds, iterative stratification; :func:`labelwise.crossfit.cross_fit_scores`), the
calibrator is fitted on the out-of-fold top-k scores and the policy on the calibrated
out-of-fold probabilities. Written next to ``manifest.json`` (which is left unchanged)::

    calibration.json + calibration.npz     labelwise.calibration format
    decision.json + decision.npz           labelwise.decision format
    decision-manifest.json                 {"format": "labelwise.decision-manifest",
                                            "format_version": 1, "objective", "cv", "k",
                                            "calibration", "model_manifest_sha256",
                                            "files": {name: sha256 of the four files}}

A Pipeline applies them as: model scores (top k) -> calibration -> decision.
"""

from __future__ import annotations

import argparse

from ._common import add_format_argument, load_dataset, print_json

HELP = "tune calibration and decision thresholds of a saved model on its training data"

CALIBRATIONS = ("platt-per-label", "platt", "isotonic", "temperature")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="model directory (written by save)")
    p.add_argument("data", metavar="DATA", help="training data file or registry name[:split]")
    add_format_argument(p)
    p.add_argument("--objective", default="macro-f1",
                   help="micro-f1, macro-f1, samples-f1 or precision=P (default macro-f1)")
    p.add_argument("--cv", type=int, default=5, help="cross-fitting folds (default 5)")
    p.add_argument("--k", type=int, default=100,
                   help="scores kept per row (top k; default 100, capped at n_labels)")
    p.add_argument("--calibration", choices=CALIBRATIONS, default="platt-per-label")
    p.add_argument("--seed", type=int, default=0, help="random state of the folds")


def parse_objective(text: str):
    """``'macro-f1'`` -> ('f1', 'macro-f1'); ``'precision=0.9'`` -> ('precision', 0.9)."""
    from labelwise.decision import OBJECTIVES
    from labelwise.errors import LabelwiseError

    if text in OBJECTIVES:
        return "f1", text
    key, sep, value = text.partition("=")
    if key == "precision" and sep:
        try:
            p = float(value)
        except ValueError:
            p = -1.0
        if 0.0 < p <= 1.0:
            return "precision", p
    raise LabelwiseError(f"--objective {text!r}: expected one of {', '.join(OBJECTIVES)} "
                         "or precision=P with 0 < P <= 1")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from labelwise.atomic import atomic_write
    from labelwise.calibration import IsotonicCalibrator, PlattCalibrator, TemperatureCalibrator
    from labelwise.crossfit import cross_fit_scores
    from labelwise.decision import PerLabelThreshold, PrecisionTarget
    from labelwise.decision._store import sha256_file
    from labelwise.errors import LabelwiseError
    from labelwise.models import load_model

    kind, value = parse_objective(args.objective)
    if args.cv < 2:
        raise LabelwiseError(f"--cv {args.cv}: expected at least 2 folds")
    if args.k < 1:
        raise LabelwiseError(f"--k {args.k}: expected a positive number")
    root = Path(args.model)
    model = load_model(root)
    ds = load_dataset(args.data, args.format, args.option)
    if ds.x_kind == "text":
        raise LabelwiseError(f"{args.data}: holds texts; this model needs numeric features")
    if ds.labels != model.labels_:
        raise LabelwiseError(f"{args.data}: its label space differs from the model's "
                             f"({len(ds.labels)} vs {len(model.labels_)} labels, or other names)")
    k = min(args.k, len(model.labels_))
    S = cross_fit_scores(model, ds.X, ds.Y, cv=args.cv, k=k, random_state=args.seed)
    cal = {"platt-per-label": lambda: PlattCalibrator(per_label=True),
           "platt": PlattCalibrator, "isotonic": IsotonicCalibrator,
           "temperature": TemperatureCalibrator}[args.calibration]()
    P = cal.fit_transform(S, ds.Y)
    policy = PerLabelThreshold(objective=value) if kind == "f1" else PrecisionTarget(value)
    policy.fit(P, ds.Y)
    cal.save(root, name="calibration")
    policy.save(root, name="decision")
    files = {n: sha256_file(root / n) for n in ("calibration.json", "calibration.npz",
                                                "decision.json", "decision.npz")}
    manifest = {"format": "labelwise.decision-manifest", "format_version": 1,
                "objective": args.objective, "cv": args.cv, "k": k,
                "calibration": args.calibration,
                "model_manifest_sha256": sha256_file(root / "manifest.json"), "files": files}
    with atomic_write(root / "decision-manifest.json", "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=1) + "\n")
    summary = {"model": str(root), "objective": args.objective, "cv": args.cv, "k": k,
               "calibration": cal.explain() if args.calibration != "platt-per-label"
               else {"kind": "platt", "per_label": True,
                     "missing_probability": cal.missing_probability_},
               "decision": {key: v for key, v in policy.explain().items() if key != "labels"}}
    print_json(summary)
    return 0
