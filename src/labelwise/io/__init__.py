"""Readers and writers for the field's multi-label data formats.

``read(path, format=None, **options)`` returns a :class:`~labelwise.Dataset`. The format is
taken from ``format=`` when given, else detected from the extension and the first bytes
(``detect_format`` says which and why). Every reader raises
:class:`~labelwise.errors.DataFormatError` naming ``file:line`` on malformed input.

Formats
-------
- ``xc``: XC repository sparse text, header ``n_points n_features n_labels``.
- ``libsvm``: LIBSVM multi-label, no header (``index_base=0|1`` for feature indices).
- ``arff``: MULAN ARFF (+ XML label file), MEKA ARFF (``-C n``), Clus hierarchical ARFF.
- ``fasttext``: ``__label__`` lines.
- ``csv``, ``tsv``, ``jsonl``, ``parquet``: tables with a text (or feature) column and a
  labels column.
- ``reuters``: the Reuters-21578 SGML distribution (a folder of ``reut2-*.sgm``).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from ..errors import DataFormatError

__all__ = ["read", "write", "detect_format", "READERS", "WRITERS"]

#: format name -> (module, function). Imported lazily so that start-up stays light.
READERS: dict[str, tuple[str, str]] = {
    "xc": ("labelwise.io.xc", "read_xc"),
    "libsvm": ("labelwise.io.xc", "read_libsvm"),
    "arff": ("labelwise.io.arff", "read_arff"),
    "fasttext": ("labelwise.io.fasttext", "read_fasttext"),
    "csv": ("labelwise.io.table", "read_table"),
    "tsv": ("labelwise.io.table", "read_table"),
    "jsonl": ("labelwise.io.table", "read_table"),
    "parquet": ("labelwise.io.table", "read_table"),
    "reuters": ("labelwise.io.reuters", "read_reuters"),
}

WRITERS: dict[str, tuple[str, str]] = {
    "xc": ("labelwise.io.xc", "write_xc"),
    "jsonl": ("labelwise.io.jsonl", "write_jsonl"),
}

_EXTENSIONS = {
    ".arff": "arff",
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".sgm": "reuters",
    ".xc": "xc",
    ".svm": "libsvm",
    ".libsvm": "libsvm",
    ".ft": "fasttext",
}


def detect_format(path: str | os.PathLike[str]) -> tuple[str, str]:
    """Return ``(format, reason)`` for a path, from its extension or its first line."""
    p = Path(path)
    if p.is_dir():
        if any(p.glob("reut2-*.sgm")):
            return "reuters", "folder holds reut2-*.sgm files"
        raise DataFormatError(
            "cannot tell the format of a folder (expected the Reuters-21578 reut2-*.sgm files)",
            path=str(p),
        )
    if not p.exists():
        raise DataFormatError("no such file", path=str(p))
    suffixes = [s.lower() for s in p.suffixes]
    suffix = suffixes[-1] if suffixes else ""
    if suffix == ".gz" and len(suffixes) > 1:
        suffix = suffixes[-2]
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix], f"extension {suffix}"
    first = _first_line(p)
    if first is None:
        raise DataFormatError("file is empty: cannot tell its format", path=str(p))
    stripped = first.strip()
    if stripped.startswith("__label__"):
        return "fasttext", "first line starts with __label__"
    parts = stripped.split()
    if len(parts) == 3 and all(t.isdigit() for t in parts):
        return "xc", "first line is an 'n_points n_features n_labels' header"
    if stripped.startswith("{") and stripped.endswith("}"):
        return "jsonl", "first line is a JSON object"
    if stripped.lower().startswith("@relation"):
        return "arff", "first line is an ARFF @relation"
    if parts and (":" in parts[-1] or all(c.isdigit() or c == "," for c in parts[0])):
        return "libsvm", "first line looks like 'labels idx:value ...' without a header"
    if "\t" in first:
        return "tsv", "first line has tabs"
    raise DataFormatError(
        "cannot tell the format from the extension or the first line; pass format= "
        f"(one of {', '.join(sorted(READERS))})",
        path=str(p),
        line=1,
    )


def _first_line(p: Path) -> str | None:
    import gzip

    opener = gzip.open if p.suffix.lower() == ".gz" else open
    with opener(p, "rb") as f:
        for raw in f:
            line = raw.decode("utf-8", errors="replace")
            if line.strip() and not line.lstrip().startswith("%"):
                return line
    return None


def _resolve(table: dict[str, tuple[str, str]], fmt: str, what: str) -> Any:
    try:
        module, func = table[fmt]
    except KeyError:
        raise DataFormatError(
            f"unknown {what} format {fmt!r}; expected one of {', '.join(sorted(table))}"
        ) from None
    return getattr(importlib.import_module(module), func)


def read(path: str | os.PathLike[str], *, format: str | None = None, **options: Any):
    """Read a dataset file (or Reuters folder) into a :class:`~labelwise.Dataset`.

    ``format`` forces a reader; otherwise it is detected. Reader options are passed on
    (e.g. ``index_base=1`` for LIBSVM, ``text_column=`` for tables).
    """
    fmt = format or detect_format(path)[0]
    reader = _resolve(READERS, fmt, "input")
    if fmt in ("csv", "tsv", "jsonl", "parquet"):
        options.setdefault("format", fmt)
    return reader(path, **options)


def write(dataset: Any, path: str | os.PathLike[str], *, format: str | None = None, **options: Any) -> None:
    """Write a dataset as ``xc`` or ``jsonl`` (from ``format=`` or the extension), atomically."""
    if format is None:
        suffix = Path(path).suffix.lower()
        format = {".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "xc")
    writer = _resolve(WRITERS, format, "output")
    writer(dataset, path, **options)
