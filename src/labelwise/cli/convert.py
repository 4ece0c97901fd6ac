"""``labelwise convert``: rewrite a dataset as XC sparse text or JSONL."""

from __future__ import annotations

import argparse

from ._common import add_format_argument, check_output_file, load_dataset

HELP = "convert a dataset to XC sparse text or JSONL (write -> read is the identity)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="IN", help="data file, Reuters folder or registry name[:split]")
    p.add_argument("out", metavar="OUT", help="output file (written atomically)")
    p.add_argument("--to", choices=["xc", "jsonl"], required=True, help="output format")
    add_format_argument(p)


def run(args: argparse.Namespace) -> int:
    from labelwise.io import write

    check_output_file(args.out, args.source)
    ds = load_dataset(args.source, args.format, args.option)
    write(ds, args.out, format=args.to)
    print(f"wrote {ds.n_samples} rows, {ds.n_labels} labels to {args.out} ({args.to})")
    return 0
