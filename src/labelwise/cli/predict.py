"""``labelwise predict MODEL DATA``: chosen labels, probabilities and top-k candidates per item.

DATA is a data file (or folder), ``-`` (one text per line on stdin), a registry name, or,
when it is not an existing path and MODEL has a text featurizer, one text to label. Output:
one JSON object per item (stdout, or ``--out FILE.jsonl``)::

    {"id": "doc-7",                                   # when the data has ids
     "labels": ["sports", "football"],                # chosen by the decision policy
     "probabilities": {"sports": 0.93, "football": 0.71},
     "candidates": [{"label": "sports", "score": 2.1, "probability": 0.93}, ...]}  # top k

Labels are chosen by the pipeline's decision policy (``labelwise tune``), or without one by
the model's default rule (score above its default threshold) among the scored labels.
Probabilities are calibrated when the pipeline has a calibrator, else the model's link.
``--scores`` writes score lines instead (the format ``evaluate --scores`` reads:
``{"id", "labels": [{"label", "score"}]}`` JSONL, or XC-like ``label:score`` lines for an
``--out`` file that does not end in ``.jsonl``).
"""

from __future__ import annotations

import argparse

from ._common import (
    add_column_arguments,
    add_format_argument,
    check_output_file,
    column_options,
    load_dataset,
)

HELP = "label items: chosen labels (names), their probabilities and the top-k candidates"

#: items predicted per model call
BATCH = 2048

#: a one-word DATA ending like this is probably a mistyped file name (warned about)
_DATA_SUFFIXES = (".jsonl", ".ndjson", ".csv", ".tsv", ".txt", ".xc", ".svm", ".libsvm", ".parquet",
                  ".arff", ".ft", ".gz")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="pipeline (or model) directory written by 'labelwise train'")
    p.add_argument("data", metavar="DATA",
                   help="data to label: a file, folder or registry name[:split]; '-' for one text per line "
                        "on stdin; or, for a text pipeline, the text itself")
    p.add_argument("--top-k", "-k", type=int, default=5, help="candidates per item (default 5)")
    p.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    p.add_argument("--scores", action="store_true",
                   help="write top-k score lines (for 'evaluate --scores') instead of decisions")
    p.add_argument("--mmap", action="store_true", help="memory-map the model's arrays")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--dask", metavar="CLUSTER",
                   help="predict on Dask (local:N or tcp://HOST:8786) into --out DIR/ as Parquet "
                        "partitions; MODEL must be readable at the same path on every worker")
    add_column_arguments(p)
    add_format_argument(p)


def read_items(source: str, pipe, args: argparse.Namespace):
    """(X, ids) of DATA: a file (labels not needed), stdin lines, a registry name or one text."""
    import os
    import sys

    from labelwise.errors import DataFormatError

    from ._common import table_format

    if source == "-":
        if not pipe.is_text:
            raise DataFormatError("reading texts from stdin needs a pipeline with a text featurizer",
                                  path=args.model)
        texts = [line.rstrip("\r\n") for line in sys.stdin]
        return texts, None
    if not os.path.exists(source) and pipe.is_text and not column_options(args):
        if " " not in source and os.path.splitext(source)[1].lower() in _DATA_SUFFIXES:
            import warnings

            warnings.warn(f"{source!r} is not an existing file: it is labelled as a text", stacklevel=2)
        return [source], None
    columns = column_options(args)
    if os.path.exists(source) and "labels_column" not in columns and table_format(source, args.format) \
            and not any(o.startswith("labels_column=") for o in args.option):
        columns["labels_column"] = None  # labels are not needed to predict: unlabelled tables are fine
    if not os.path.exists(source):
        from labelwise.errors import DatasetError

        try:
            data = load_dataset(source, args.format, args.option, columns)
        except DatasetError as e:
            raise DatasetError(f"{source!r} is neither a file nor a dataset name ({e}); texts are "
                               f"only read from the command line by a text pipeline") from None
        return data.X, data.ids
    data = load_dataset(source, args.format, args.option, columns)
    return data.X, data.ids


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from labelwise.errors import LabelwiseError
    from labelwise.io.scores import score_lines, write_scores
    from labelwise.pipeline import load_any
    from labelwise.progress import progress, show_progress

    if args.top_k < 1:
        raise LabelwiseError(f"--top-k must be >= 1, got {args.top_k}")
    if getattr(args, "dask", None):
        return run_dask(args)
    check_output_file(args.out, args.model, args.data)
    pipe = load_any(args.model, mmap=args.mmap)
    X, ids = read_items(args.data, pipe, args)
    n = len(X) if isinstance(X, list) else X.shape[0]
    if args.scores:
        with show_progress(not args.quiet):
            S = pipe.decision_function(X, k=args.top_k)
        if args.out:
            write_scores(args.out, S, pipe.labels_, ids=ids)
            print(f"wrote top-{args.top_k} scores of {n} items to {args.out}", file=sys.stderr)
        else:
            sys.stdout.writelines(score_lines(S, pipe.labels_, ids=ids, jsonl=True))
        return 0

    def lines():
        with show_progress(not args.quiet), progress(n, "predict", "items") as bar:
            for a in range(0, n, BATCH):
                b = min(n, a + BATCH)
                for i, item in enumerate(pipe.predict_labels(X[a:b], k=args.top_k), a):
                    if ids is not None:
                        v = ids[i]
                        item = {"id": v.item() if hasattr(v, "item") else v, **item}
                    yield json.dumps(item, ensure_ascii=False) + "\n"
                bar.update(b - a)

    if args.out:
        from labelwise.atomic import atomic_write

        with atomic_write(args.out, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(lines())
        print(f"wrote the labels of {n} items to {args.out}", file=sys.stderr)
    else:
        sys.stdout.writelines(lines())
    return 0


def run_dask(args: argparse.Namespace) -> int:
    """``--dask``: Parquet partitions (id, labels, probabilities, top-k) in the folder --out."""
    import sys

    from labelwise.distributed import PREDICTIONS_MARKER, connect, predict_to_parquet
    from labelwise.errors import LabelwiseError
    from labelwise.pipeline import load_any

    from ._common import check_output_dir

    if not args.out or args.scores:
        raise LabelwiseError("--dask writes Parquet partitions: it needs --out DIR and takes no "
                             "--scores")
    check_output_dir(args.out, args.model, args.data, markers=(PREDICTIONS_MARKER,))
    pipe = load_any(args.model, mmap=True)  # reads the items; the workers load their own copy
    X, ids = read_items(args.data, pipe, args)
    del pipe
    with connect(args.dask) as client:
        n = predict_to_parquet(args.model, X, args.out, client=client, ids=ids, k=args.top_k)
    print(f"wrote the labels of {n} items to {args.out} (Parquet partitions)", file=sys.stderr)
    return 0
