"""``labelwise evaluate``: the full metric report of a model on a dataset, or of a score file
against the true labels.

``labelwise evaluate MODEL DATA`` predicts the top-k (k = the largest ``-k``, at least 100 or
all labels) with the saved model and evaluates it; ``labelwise evaluate --true FILE --scores FILE``
evaluates a score file.

Score files are JSONL ``{"id", "labels": [{"label": name, "score": s}, ...]}`` or XC-like
``label_id:score`` lines (see :mod:`labelwise.io.scores`), one line per item of the true data,
in its order (JSONL with ids that the data also has: matched by id).
"""

from __future__ import annotations

import argparse

from ._common import add_format_argument, load_dataset, print_json

HELP = "evaluate a score file against the true labels (P@k, nDCG@k, PSP@k, F1, mAP, AUROC, coverage)"

SUMMARY = ("p@1", "p@3", "p@5", "ndcg@5", "psp@5", "micro_f1", "macro_f1", "samples_f1", "map", "macro_auroc", "coverage@p0.9")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", metavar="MODEL", help="model directory (with DATA)")
    p.add_argument("data", nargs="?", metavar="DATA", help="data with the true labels, scored by MODEL")
    p.add_argument("--true", metavar="FILE", help="data with the true labels (file or registry name[:split])")
    p.add_argument("--scores", metavar="FILE", help="score file: .jsonl or XC-like label:score lines")
    p.add_argument("--top-k", type=int, default=100, help="with MODEL: labels scored per item (default 100)")
    p.add_argument("-k", "--k", type=int, nargs="+", default=[1, 3, 5], help="cut-offs of the rank metrics (default 1 3 5)")
    p.add_argument("--threshold", type=float, help="score threshold that makes predicted sets (default: top-1 sets)")
    p.add_argument("--train", metavar="FILE", help="training data whose label counts give the PSP@k propensities")
    p.add_argument("--propensity", default="default", choices=["default", "amazon", "wikipedia", "none"],
                   help="propensity preset A/B of Jain et al. 2016 (default 0.55/1.5)")
    p.add_argument("--json", action="store_true", help="print the whole report as one JSON object")
    p.add_argument("--report", metavar="HTML", help="also write the self-contained HTML report here")
    add_format_argument(p)


def run(args: argparse.Namespace) -> int:
    from labelwise.errors import DataFormatError, LabelwiseError
    from labelwise.io.scores import read_scores
    from labelwise.metrics import evaluate

    if args.model and args.data and not (args.true or args.scores):
        from .predict import predict_scores

        truth = load_dataset(args.data, args.format, args.option)
        model, S = predict_scores(args.model, truth.X, max(args.top_k, *args.k))
        if list(truth.labels.names) != list(model.labels_.names):
            raise DataFormatError(
                f"the data's {truth.n_labels} labels differ from the model's {len(model.labels_)} "
                "(names or order)", path=args.data)
        source = args.model
    elif args.true and args.scores and not (args.model or args.data):
        truth = load_dataset(args.true, args.format, args.option)
        S = read_scores(args.scores, truth.labels, ids=truth.ids, n_rows=truth.n_samples)
        source = args.scores
    else:
        raise LabelwiseError("give either MODEL DATA, or --true FILE --scores FILE")
    Y_train = None if args.train is None else load_dataset(args.train, args.format, args.option).Y
    if Y_train is not None and Y_train.shape[1] != truth.n_labels:
        raise DataFormatError(f"training data has {Y_train.shape[1]} labels, the true data {truth.n_labels}", path=args.train)
    report = evaluate(
        truth.Y,
        S,
        k=tuple(args.k),
        threshold=args.threshold,
        propensity=None if args.propensity == "none" else args.propensity,
        Y_train=Y_train,
        label_names=list(truth.labels.names),
    )
    if args.report:
        from labelwise.report import write_report

        write_report(args.report, truth.Y, S, report, title=f"labelwise evaluation of {source}")
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
