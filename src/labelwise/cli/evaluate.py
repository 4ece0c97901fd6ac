"""``labelwise evaluate``: the full metric report of a model on a dataset, or of a score file
against the true labels.

``labelwise evaluate MODEL DATA`` scores the top-k (k = ``--top-k`` or the largest ``-k``,
whichever is larger, capped at the number of labels) with the saved pipeline (or plain model
directory) and evaluates it. The scores evaluated are the pipeline's calibrated probabilities
when it has a calibrator, else the model's raw scores. When the pipeline has a decision policy
(``labelwise tune``), the set metrics (F1, precision, recall, hamming, subset accuracy, ...)
and the per-label precision/recall/F1 use the label sets the policy chooses, not a score
threshold; ``set_rule`` and a note say so. ``labelwise evaluate --true FILE --scores FILE``
evaluates a score file.

Score files are JSONL ``{"id", "labels": [{"label": name, "score": s}, ...]}`` or XC-like
``label_id:score`` lines (see :mod:`labelwise.io.scores`), one line per item of the true data,
in its order (JSONL with ids that the data also has: matched by id). A ``--true`` table needs
only ids and labels (no text or features column).

Labels are matched by name (:func:`labelwise.metrics.evaluate`, ``score_labels``): DATA's
labels may come in any order; labels the model never saw are named in one ``warning:`` line
and in the report's ``unknown_labels``, and count as misses (the model never predicts them);
the model's labels that DATA lacks have no positives. ``--train`` labels are matched to
DATA's by name too.
"""

from __future__ import annotations

import argparse

from ._common import (
    add_column_arguments,
    add_format_argument,
    check_output_file,
    column_options,
    load_dataset,
    print_json,
)

HELP = "evaluate a score file against the true labels (P@k, nDCG@k, PSP@k, F1, mAP, AUROC, coverage)"

SUMMARY = ("p@1", "p@3", "p@5", "ndcg@5", "psp@5", "micro_f1", "macro_f1", "samples_f1", "map", "micro_ap", "macro_auroc", "coverage@p0.9")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", metavar="MODEL", help="pipeline or model directory (with DATA)")
    p.add_argument("data", nargs="?", metavar="DATA", help="data with the true labels, scored by MODEL")
    p.add_argument("--true", metavar="FILE", help="data with the true labels (file or registry name[:split])")
    p.add_argument("--scores", metavar="FILE", help="score file: .jsonl or XC-like label:score lines")
    p.add_argument("--top-k", type=int, default=100, help="with MODEL: labels scored per item (default 100)")
    p.add_argument("-k", "--k", type=int, nargs="+", default=[1, 3, 5], help="cut-offs of the rank metrics (default 1 3 5)")
    p.add_argument("--threshold", type=float,
                   help="score threshold that makes predicted sets (default: the pipeline's decision policy, "
                        "else p >= 0.5 on probabilities, else top-1 sets)")
    p.add_argument("--train", metavar="FILE", help="training data whose label counts give the PSP@k propensities")
    p.add_argument("--propensity", default="default", choices=["default", "amazon", "wikipedia", "none"],
                   help="propensity preset A/B of Jain et al. 2016 (default 0.55/1.5)")
    p.add_argument("--json", action="store_true", help="print the whole report as one JSON object")
    p.add_argument("--report", metavar="HTML", help="also write the self-contained HTML report here")
    p.add_argument("--mmap", action="store_true", help="memory-map the model's arrays")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_column_arguments(p)
    add_format_argument(p)


def pipeline_scores(model_dir: str, X, k: int, *, use_policy: bool, mmap: bool = False):
    """(pipeline, scores to evaluate, chosen sets or None, description) on X."""
    from labelwise.pipeline import load_any

    pipe = load_any(model_dir, mmap=mmap)
    k = min(k, len(pipe.labels_))
    S, P, sets = pipe.score_and_sets(X, k=k)
    scores = P if pipe.calibrator_ is not None else S
    what = "calibrated probabilities" if pipe.calibrator_ is not None else "raw model scores"
    if pipe.decision_ is None or not use_policy:
        sets = None
    return pipe, scores, sets, what


def merge_set_metrics(report: dict, set_report: dict, policy_name: str) -> dict:
    """The score report with its set metrics (and per-label P/R/F1) replaced by set_report's."""
    report["metrics"].update(set_report["metrics"])
    if "per_label" in report and "per_label" in set_report:
        for row, srow in zip(report["per_label"], set_report["per_label"], strict=True):
            for key in ("precision", "recall", "f1"):
                row[key] = srow[key]
    rule = f"decision policy {policy_name}"
    report["set_rule"] = rule
    report["notes"] = [n for n in report.get("notes", []) if not n.startswith("set metrics use")]
    report["notes"].append(f"set metrics use the label sets chosen by the pipeline's {rule} "
                           "(tuned on cross-fitted training scores)")
    return report


def run(args: argparse.Namespace) -> int:
    import warnings

    from labelwise.errors import DataFormatError, LabelwiseError
    from labelwise.io.scores import read_scores
    from labelwise.labels import few_names
    from labelwise.metrics import evaluate
    from labelwise.metrics.evaluate import align_by_name

    check_output_file(args.report, args.model, args.data, args.true, args.scores, args.train)
    sets = None
    what = None
    score_labels = None
    if args.model and args.data and not (args.true or args.scores):
        from labelwise.progress import show_progress

        truth = load_dataset(args.data, args.format, args.option, column_options(args))
        with show_progress(not args.quiet):
            pipe, S, sets, what = pipeline_scores(args.model, truth.X, max(args.top_k, *args.k),
                                                  use_policy=args.threshold is None, mmap=args.mmap)
        score_labels = list(pipe.labels_.names)
        unknown = [n for n in truth.labels.names if n not in pipe.labels_]
        if unknown and len(unknown) == truth.n_labels:
            raise DataFormatError(f"none of the data's {truth.n_labels} labels is one of the "
                                  f"model's {len(pipe.labels_)} ({few_names(unknown)})",
                                  path=args.data)
        if unknown:
            warnings.warn(f"{args.data}: {len(unknown)} of the data's {truth.n_labels} labels are "
                          f"not the model's ({few_names(unknown)}): counted as misses", stacklevel=1)
        source = args.model
    elif args.true and args.scores and not (args.model or args.data):
        truth = load_dataset(args.true, args.format, args.option, column_options(args),
                             truth_only=True)
        S = read_scores(args.scores, truth.labels, ids=truth.ids, n_rows=truth.n_samples)
        source = args.scores
    else:
        raise LabelwiseError("give either MODEL DATA, or --true FILE --scores FILE")
    names = list(truth.labels.names)
    Y_train = None
    if args.train is not None:
        Y_train, _ = load_dataset(args.train, args.format, args.option).align_labels(
            truth.labels, unknown="ignore")  # the training labels of the data's labels, by name
    kwargs = {"label_names": names, "score_labels": score_labels}
    report = evaluate(
        truth.Y,
        S,
        k=tuple(args.k),
        threshold=args.threshold,
        propensity=None if args.propensity == "none" else args.propensity,
        Y_train=Y_train,
        **kwargs,
    )
    calibrated: dict = {}
    Y_eval, S_eval = truth.Y, S
    if score_labels is not None:
        Y_eval, S_eval, _, _ = align_by_name(truth.Y, S, **kwargs)
    if what is not None:
        report["notes"].append(f"scores evaluated: the pipeline's {what}")
        if pipe.calibrator_ is not None:
            from labelwise.calibration import expected_calibration_error

            missing = pipe.calibrator_.missing_probability_
            calibrated = {"probabilities": S_eval, "missing_probability": missing}
            Y_model, _ = truth.align_labels(pipe.labels_, unknown="ignore")
            report["metrics"]["ece"] = expected_calibration_error(Y_model, S, missing=missing)
            if report.get("unknown_labels"):
                report["notes"].append("ece: over the model's labels only (the unknown ones "
                                       "have no probability)")
    if sets is not None:
        from labelwise.metrics import LabelSets

        set_report = evaluate(truth.Y, LabelSets(sets), **kwargs)
        report = merge_set_metrics(report, set_report, pipe.decision_.name)
    if args.report:
        from labelwise.report import write_report

        write_report(args.report, Y_eval, S_eval, report, title=f"labelwise evaluation of {source}",
                     **calibrated)
    if args.json:
        print_json(report)
        return 0
    metrics = report["metrics"]
    for key in SUMMARY:
        if key in metrics:
            print(f"{key:<14} {metrics[key]:.4f}")
    for note in report.get("notes", []):
        print(f"note: {note}")
    if args.report:
        print(f"report: {args.report}")
    return 0
