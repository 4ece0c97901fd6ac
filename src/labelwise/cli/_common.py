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


#: what a user of a Python library types on the command line for these values
_PYTHON_WORDS = {"None": None, "True": True, "False": False}


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE strings to a dict; values parsed as JSON when they are valid JSON (``2``,
    ``0.5``, ``null``, ``true``, ``"text"``), Python's spellings ``None``, ``True`` and
    ``False`` as those values, anything else kept as text."""
    from labelwise.errors import LabelwiseError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise LabelwiseError(f"option {pair!r}: expected KEY=VALUE")
        if value in _PYTHON_WORDS:
            out[key] = _PYTHON_WORDS[value]
        else:
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError:
                out[key] = value
    return out


TABLE_FORMATS = ("csv", "tsv", "jsonl", "parquet")


def add_column_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text-column", metavar="NAME",
                   help="table data (csv/tsv/jsonl/parquet): the column holding the text (default: text)")
    p.add_argument("--labels-column", metavar="NAME",
                   help="table data: the column holding the label list (default: labels)")


def column_options(args: argparse.Namespace) -> dict[str, Any]:
    """The reader options given by --text-column / --labels-column (absent ones left out)."""
    out: dict[str, Any] = {}
    if getattr(args, "text_column", None) is not None:
        out["text_column"] = args.text_column
    if getattr(args, "labels_column", None) is not None:
        out["labels_column"] = args.labels_column
    return out


def table_format(source: str, fmt: str | None) -> bool:
    """Whether ``source`` (an existing path) is read as a table (csv/tsv/jsonl/parquet)."""
    from labelwise.io import detect_format

    return (fmt or detect_format(source)[0]) in TABLE_FORMATS


def load_dataset(source: str, fmt: str | None, options: list[str],
                 columns: dict[str, Any] | None = None, *, truth_only: bool = False):
    """A path (file or folder) or a registry name like ``mulan-yeast`` / ``mulan-yeast:test``.

    ``columns``: reader options from :func:`column_options`; they apply to table files only
    (given for any other data they raise a one-line error). ``truth_only``: only the labels
    (and ids) are needed; a table file may lack a text or features column
    (:func:`labelwise.io.scores.read_truth`).
    """
    import os

    from labelwise.errors import LabelwiseError
    from labelwise.io import read

    columns = dict(columns or {})
    if os.path.exists(source):
        opts = parse_options(options)
        if columns:
            if not table_format(source, fmt):
                flags = ", ".join("--" + key.replace("_", "-") for key in columns)
                raise LabelwiseError(f"{flags}: only for csv/tsv/jsonl/parquet data, "
                                     f"not {source}")
            opts.update(columns)
        if truth_only:
            from labelwise.io.scores import read_truth

            return read_truth(source, format=fmt, **opts)
        return read(source, format=fmt, **opts)
    if columns:
        raise LabelwiseError(f"--text-column/--labels-column: {source} is not a file")
    from labelwise.datasets import load, parse_name

    name, split = parse_name(source)
    return load(name, split=split)


#: what marks a folder as a labelwise model or pipeline (``train --out`` replaces only those)
MODEL_MARKERS = ("manifest.json", "pipeline.json")


def check_output_dir(out: str, *inputs: str | None, markers: tuple[str, ...] = MODEL_MARKERS,
                     what: str = "--out") -> None:
    """Refuse an output folder that is neither new, empty, nor one labelwise wrote (holding
    one of ``markers``), or that is or holds one of the command's ``inputs``; one check for
    every command that writes a folder (train, split, tune, learn, labels add)."""
    from labelwise.atomic import check_replaceable

    check_replaceable(out, markers=markers, inputs=[i for i in inputs if i], what=what)


def check_output_file(out: str | None, *inputs: str | None) -> None:
    """Refuse an output file that is a folder, is one of the command's ``inputs`` (or one
    of their sidecars), or lies inside an input folder (a model directory)."""
    from pathlib import Path

    from labelwise.errors import OutputExistsError

    if out is None:
        return
    target = Path(out)
    if target.is_dir():
        raise OutputExistsError(f"output {out}: is a folder; expected a file path")
    resolved = target.resolve()
    for src in inputs:
        if not src or not Path(src).exists():
            continue
        s = Path(src).resolve()
        sides = {s, s.with_name(s.name + ".labels"), s.with_name(s.name + ".meta.json")}
        if resolved in sides or s in resolved.parents:
            raise OutputExistsError(f"output {out}: is or lies inside the input {src}; refusing "
                                    "to overwrite it (choose another path)")


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
