"""``labelwise info``: statistics of a dataset file or registry dataset."""

from __future__ import annotations

import argparse

from ._common import add_format_argument, load_dataset, print_json

HELP = "print statistics of a dataset (a file, a Reuters folder, or a registry name)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="PATH_OR_NAME", help="data file or registry name[:split]")
    add_format_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    ds = load_dataset(args.source, args.format, args.option)
    stats = ds.stats()
    if args.json:
        print_json(stats)
        return 0
    width = max(len(k) for k in stats)
    for key, value in stats.items():
        if isinstance(value, dict):
            value = "  ".join(
                f"{k}:{v:g}" if isinstance(v, int | float) else f"{k}:{v}" for k, v in value.items()
            )
        elif isinstance(value, float):
            value = f"{value:.4g}"
        print(f"{key:<{width}}  {value}")
    names = ds.labels.names
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    print(f"{'labels':<{width}}  {shown}")
    return 0
