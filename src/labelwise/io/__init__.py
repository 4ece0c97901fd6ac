"""Readers and writers for the field's multi-label data formats.

``read(path, format=None, **options)`` returns a :class:`~labelwise.Dataset`. The format is
taken from ``format=`` when given, else detected from the extension and the first bytes
(``detect_format`` says which and why). Every reader raises
:class:`~labelwise.errors.DataFormatError` naming ``file:line`` on malformed input; so do
broken gzip data (truncated, bad CRC, bad deflate stream) and a reader option the reader does
not take (the message lists the valid ones). Numbers are never coerced: a value beyond
float32 (1e39, 1e400, a 400-digit integer), ``1_000`` or digits of other scripts are errors.

``write(dataset, path)`` takes the format from the name under a final ``.gz``
(``d.jsonl.gz`` is gzipped JSON Lines) and refuses an extension it does not write.

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

import contextlib
import importlib
import inspect
import os
from collections.abc import Iterator
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

_TABLES = ("csv", "tsv", "jsonl", "parquet")
#: output extension (under a final .gz) -> writer format, when write() is given no format=
_WRITE_EXTENSIONS = {"": "xc", ".xc": "xc", ".txt": "xc", ".svm": "xc", ".jsonl": "jsonl",
                     ".ndjson": "jsonl"}

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
    with _compressed_errors(p), opener(p, "rb") as f:
        for raw in f:
            line = raw.decode("utf-8", errors="replace")
            if line.strip() and not line.lstrip().startswith("%"):
                return line
    return None


@contextlib.contextmanager
def _compressed_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """gzip's own exceptions (truncated data, bad CRC, bad deflate stream) as DataFormatError."""
    import gzip
    import zlib

    try:
        yield
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        what = "truncated" if isinstance(e, EOFError) else "corrupt"
        raise DataFormatError(f"{what} gzip data: {e}", path=str(path)) from None


def _check_options(reader: Any, fmt: str, options: dict[str, Any], path: Any) -> None:
    """Refuse reader options that ``reader`` does not take, listing the ones it does."""
    params = list(inspect.signature(reader).parameters.values())[1:]
    valid = [p.name for p in params if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        shown = [v for v in valid if v != "format" or fmt not in _TABLES]
        raise DataFormatError(
            f"unknown reader option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for "
            f"{fmt} data; valid options: {', '.join(shown)}", path=str(path))


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
    if fmt in _TABLES:
        options["format"] = fmt  # read_table serves four formats
    _check_options(reader, fmt, options, path)
    with _compressed_errors(path):
        return reader(path, **options)


def write(dataset: Any, path: str | os.PathLike[str], *, format: str | None = None, **options: Any) -> None:
    """Write a dataset as ``xc`` or ``jsonl`` (from ``format=`` or the extension), atomically.

    The extension is read under a final ``.gz`` (``d.jsonl.gz`` is gzipped JSON Lines);
    without ``format=``, ``.jsonl``/``.ndjson`` give JSON Lines, ``.xc``, ``.txt``, ``.svm``
    or no extension XC, and any other extension (``.csv``, ``.arff``, ...) is refused rather
    than written in a format its name does not say.
    """
    if format is None:
        name = Path(path).name.lower()
        if name.endswith(".gz"):
            name = name[:-3]
        suffix = Path(name).suffix
        format = _WRITE_EXTENSIONS.get(suffix)
        if format is None:
            raise DataFormatError(
                f"cannot tell the output format from the extension {suffix!r}; pass format= "
                f"(one of {', '.join(sorted(WRITERS))}) or name the file .xc or .jsonl",
                path=str(path))
    writer = _resolve(WRITERS, format, "output")
    writer(dataset, path, **options)
