"""``labelwise split``: a stratified train/test split or k folds of a dataset, written to a folder.

Usage::

    labelwise split DATA (--test-size T | --folds K) --out DIR
        [--order 1|2] [--seed S] [--group-column C | --ignore-groups] [--to xc|jsonl] [--report]

Rows are split by iterative stratification (:mod:`labelwise.split`); ``--order 2`` also
balances label pairs. ``--test-size`` is a share of rows (``0.2``) or a row count (``300``).

Groups: when the dataset carries groups the split is group-aware (no group on both sides).
Table inputs (csv/tsv/jsonl/parquet) read a column named ``group`` automatically;
``--group-column C`` names another column (passed to the reader as ``group_column``; an
integer selects a column by 0-based index in header-less CSV/TSV). ``--ignore-groups`` splits
rows regardless of groups.

Output, in the input's own format family (``--to`` overrides): JSON Lines for text datasets
(``labelwise.io.write(..., format='jsonl')``, which keeps ids and groups), XC sparse text for
sparse or dense features::

    DIR/train.<ext>, DIR/test.<ext>                      (--test-size)
    DIR/fold-<i>/train.<ext>, DIR/fold-<i>/test.<ext>    (--folds K, i = 0..K-1)
    DIR/split.json

``split.json`` records the source, mode, seed, order, whether groups were used, the row
indices (0-based, in the input's row order: ``train``/``test``, or each fold's ``test``; a
fold's train rows are all the others) and the quality measures of
:func:`labelwise.split.split_report`. The whole folder is written atomically; an existing
``DIR`` is replaced only when it is empty or holds a ``split.json`` (an earlier split), and
never when it is or holds DATA (the check ``train --out`` shares).
"""

from __future__ import annotations

import argparse

from ._common import add_format_argument, check_output_dir, load_dataset

HELP = "split a dataset into stratified train/test parts or k folds (leak-free with groups)"

SPLIT_FORMAT = "labelwise.split/1"
#: an existing --out folder is replaced only when it is empty or an earlier split
SPLIT_MARKERS = ("split.json",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="DATA", help="data file, Reuters folder or registry name[:split]")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--test-size", metavar="T", help="test share of rows (e.g. 0.2) or row count (e.g. 300)")
    how.add_argument("--folds", type=int, metavar="K", help="number of cross-validation folds (>= 2)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (written atomically)")
    p.add_argument("--order", type=int, choices=[1, 2], default=1, help="1: balance labels; 2: also label pairs")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same split")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--group-column", metavar="C", help="table column holding group keys (default: 'group' if present)")
    g.add_argument("--ignore-groups", action="store_true", help="split rows even when the data has groups")
    p.add_argument("--to", choices=["xc", "jsonl"], help="output format (default: jsonl for texts, xc for features)")
    p.add_argument("--report", action="store_true", help="print the quality measures (LD, LPD, ED, FZ, FLZ)")
    add_format_argument(p)


def _test_size(text: str):
    from labelwise.errors import LabelwiseError

    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise LabelwiseError(f"--test-size: expected a share like 0.2 or a row count like 300, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    import numpy as np

    from labelwise.atomic import atomic_directory
    from labelwise.errors import LabelwiseError
    from labelwise.io import write
    from labelwise.split import (
        GroupIterativeStratifiedKFold,
        IterativeStratifiedKFold,
        split_report,
        train_test_split,
    )

    options = list(args.option)
    if args.group_column is not None:
        if not os.path.exists(args.source):
            raise LabelwiseError("--group-column needs a table file (csv, tsv, jsonl, parquet), not a registry name")
        options.append(f"group_column={args.group_column}")
    test_size = None if args.test_size is None else _test_size(args.test_size)
    if args.folds is not None and args.folds < 2:
        raise LabelwiseError(f"--folds: expected an integer >= 2, got {args.folds}")
    out = Path(args.out)
    check_output_dir(args.out, args.source, markers=SPLIT_MARKERS)

    ds = load_dataset(args.source, args.format, options)
    groups = None if args.ignore_groups else ds.groups
    if args.group_column is not None and groups is None:
        raise LabelwiseError(f"--group-column {args.group_column}: the reader returned no groups")
    fmt = args.to or ("jsonl" if ds.x_kind == "text" else "xc")
    ext = {"jsonl": "jsonl", "xc": "xc"}[fmt]
    record = {
        "format": SPLIT_FORMAT,
        "source": str(args.source),
        "input_format": ds.meta.get("format"),
        "n_samples": ds.n_samples,
        "n_labels": ds.n_labels,
        "order": args.order,
        "seed": args.seed,
        "grouped": groups is not None,
        "output_format": fmt,
    }
    if groups is not None:
        record["n_groups"] = int(len(np.unique(groups)))

    if test_size is not None:
        train, test = train_test_split(
            None, ds.Y, test_size=test_size, order=args.order, groups=groups, random_state=args.seed
        )
        share = test.size / max(ds.n_samples, 1)
        quality = split_report(ds.Y, [train, test], ratios=[1.0 - share, share])
        record.update(mode="train_test", test_size=test_size, train=train.tolist(), test=test.tolist())
        parts = [("", train, test)]
    else:
        cv_cls = IterativeStratifiedKFold if groups is None else GroupIterativeStratifiedKFold
        cv = cv_cls(args.folds, order=args.order, random_state=args.seed)
        splits = list(cv.split(None, ds.Y, groups))
        quality = split_report(ds.Y, splits)
        record.update(mode="kfold", n_folds=args.folds, folds=[{"test": t.tolist()} for _, t in splits])
        parts = [(f"fold-{i}", tr, te) for i, (tr, te) in enumerate(splits)]
    record["quality"] = quality

    import json

    with atomic_directory(out, markers=SPLIT_MARKERS) as tmp:
        for sub, train, test in parts:
            where = tmp / sub if sub else tmp
            where.mkdir(exist_ok=True)
            write(ds.subset(train), where / f"train.{ext}", format=fmt)
            write(ds.subset(test), where / f"test.{ext}", format=fmt)
        with open(tmp / "split.json", "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
            f.write("\n")

    if test_size is not None:
        print(f"wrote {parts[0][1].size} train and {parts[0][2].size} test rows to {out} ({fmt})")
    else:
        sizes = ", ".join(str(te.size) for _, _, te in parts)
        print(f"wrote {args.folds} folds (test rows: {sizes}) to {out} ({fmt})")
    if args.report:
        for key, value in quality.items():
            shown = f"{value:.6g}" if isinstance(value, float) else value
            print(f"{key:<13} {shown}")
    return 0
