"""``labelwise predict``: top-k labels (names and scores) of a saved model for a dataset."""

from __future__ import annotations

import argparse

from ._common import add_format_argument, load_dataset

HELP = "predict the top-k labels (names and scores) of every item of a dataset"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="model directory written by 'labelwise train'")
    p.add_argument("data", metavar="DATA", help="data to predict (file, folder or registry name[:split])")
    p.add_argument("--top-k", "-k", type=int, default=5, help="labels per item (default 5)")
    p.add_argument("--out", metavar="FILE",
                   help="write here (.jsonl: {id, labels: [{label, score}]}; else XC-like label:score lines); default stdout as JSONL")
    p.add_argument("--mmap", action="store_true", help="memory-map the model's arrays")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_format_argument(p)


def predict_scores(model_dir: str, X, k: int, *, mmap: bool = False, quiet: bool = True):
    """(model, top-k CSR scores) of the model directory on features X."""
    from labelwise.models import load_model
    from labelwise.progress import show_progress

    model = load_model(model_dir, mmap=mmap)
    with show_progress(not quiet):
        return model, model.decision_function(X, k=k)


def run(args: argparse.Namespace) -> int:
    import sys

    from labelwise.errors import LabelwiseError
    from labelwise.io.scores import score_lines, write_scores

    if args.top_k < 1:
        raise LabelwiseError(f"--top-k must be >= 1, got {args.top_k}")
    data = load_dataset(args.data, args.format, args.option)
    model, S = predict_scores(args.model, data.X, args.top_k, mmap=args.mmap, quiet=args.quiet)
    if args.out:
        write_scores(args.out, S, model.labels_, ids=data.ids)
        print(f"wrote top-{args.top_k} labels of {S.shape[0]} items to {args.out}", file=sys.stderr)
    else:
        sys.stdout.writelines(score_lines(S, model.labels_, ids=data.ids, jsonl=True))
    return 0
