"""Argument helpers shared by the sub-commands (standard library only)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_format_argument(p: argparse.ArgumentParser) -> None:
    from labelwise.io import READERS

    p.add_argument(
        "--format",
        choices=sorted(READERS),
        help="input format (default: detected from the extension and first line)",
    )
    p.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="reader option, repeatable (e.g. -o index_base=1, -o text_column=text)",
    )


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE strings to a dict; values parsed as JSON when they are valid JSON, else kept as text."""
    from labelwise.errors import LabelwiseError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise LabelwiseError(f"option {pair!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def load_dataset(source: str, fmt: str | None, options: list[str]):
    """A path (file or folder) or a registry name like ``mulan-yeast`` / ``mulan-yeast:test``."""
    import os

    from labelwise.io import read

    if os.path.exists(source):
        return read(source, format=fmt, **parse_options(options))
    from labelwise.datasets import load, parse_name

    name, split = parse_name(source)
    return load(name, split=split)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
