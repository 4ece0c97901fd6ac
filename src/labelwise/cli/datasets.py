"""``labelwise datasets``: list the registered datasets, fetch their files into the data home.

``labelwise datasets list [--json]``
    one line per dataset: name, splits (with rows), labels, features, size, whether every
    file is in the data home (``$LABELWISE_DATA_HOME`` or ``~/.cache/labelwise``).
``labelwise datasets fetch NAME [NAME ...]``
    download (from ``$LABELWISE_DATASETS_MIRROR`` when set, else upstream) and verify every
    file of each dataset into the data home; prints the path of each file.
"""

from __future__ import annotations

import argparse

from ._common import print_json

HELP = "list the registered datasets or fetch their files into the data home"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    lp = sub.add_parser("list", help="list the registered datasets and their splits")
    lp.add_argument("--json", action="store_true", help="print a JSON list")
    fp = sub.add_parser("fetch", help="download and verify every file of datasets")
    fp.add_argument("names", nargs="+", metavar="NAME", help="registered dataset name")
    fp.add_argument("--json", action="store_true", help="print {name: [paths]} as JSON")
    fp.add_argument("--quiet", action="store_true", help="no download progress line")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def run(args: argparse.Namespace) -> int:
    from labelwise.datasets import data_home, fetch, list_datasets

    if args.datasets_command == "list":
        rows = list_datasets()
        if args.json:
            print_json(rows)
            return 0
        table = [("NAME", "SPLITS", "LABELS", "FEATURES", "SIZE", "CACHED")]
        for r in rows:
            splits = " ".join(
                f"{s}{'*' if s == r['default_split'] else ''}:{n}" for s, n in r["splits"].items()
            )
            size = _size(r["bytes"]) if r["bytes"] else f"{r['n_files']} files"
            table.append(
                (r["name"], splits, str(r["n_labels"]), str(r["n_features"] or "text"), size,
                 "yes" if r["cached"] else "no")
            )
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for row in table:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        print(f"(* = default split; data home: {data_home()})")
        return 0
    out = {}
    for name in args.names:
        out[name] = [str(p) for p in fetch(name)]
    if args.json:
        print_json(out)
    else:
        for paths in out.values():
            for p in paths:
                print(p)
    return 0
