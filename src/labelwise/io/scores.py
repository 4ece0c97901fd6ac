"""Score files: what a model predicted, per item, as (label, score) pairs.

Two formats, both one line per item, in the order of the evaluated data (or matched by id):

- **JSONL** (``.jsonl``): ``{"id": "doc-1", "labels": [{"label": "sports", "score": 0.91}, ...]}``.
  ``label`` is a label *name* of the label space (an integer is taken as a label id); ``id`` is
  optional, and when every line has one and the true data has ids, rows are matched by id.
- **XC-like text** (any other extension): ``label_id:score label_id:score ...`` per line, label
  ids 0-based, an empty line for an item without scores; an optional first line
  ``n_rows n_labels`` (the XC header) is checked against the data. This is what pyxclib and
  napkinXC write.

Scores are finite floats, held as float32. Labels not listed for an item are "not retrieved": top-k scores are
held in a CSR matrix with exactly the listed entries. A label listed twice for one item, an
unknown label, a non-finite score or a malformed line raise :class:`DataFormatError` naming
``file:line``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..atomic import atomic_write
from ..errors import DataFormatError
from ..labels import LabelSpace

__all__ = ["read_scores", "read_truth", "write_scores", "score_lines"]

#: table formats, whose truth files need no text or feature column
_TABLES = ("csv", "tsv", "jsonl", "parquet")


def read_truth(path: str | os.PathLike[str], *, format: str | None = None, **options: Any):
    """The true labels of a data file as a :class:`~labelwise.Dataset`: a table (CSV/TSV,
    JSONL, Parquet) needs only its labels column (and ids to match score lines by id); its
    text or feature column, if any, is not read (``X`` has 0 columns). Other formats are read
    as they are."""
    from . import detect_format, read

    fmt = format or detect_format(path)[0]
    if fmt in _TABLES and "text_column" not in options and "feature_columns" not in options:
        options["text_column"] = False
    return read(path, format=format, **options)


def read_scores(
    path: str | os.PathLike[str],
    labels: LabelSpace,
    *,
    ids: Sequence[Any] | None = None,
    n_rows: int | None = None,
) -> sp.csr_matrix:
    """Read a score file into CSR (n_rows, n_labels) float32, rows aligned with ``ids`` when given."""
    p = Path(path)
    if p.suffix.lower() in (".jsonl", ".ndjson"):
        rows, row_ids = _read_jsonl(p, labels)
    else:
        rows, row_ids = _read_xc(p, labels), None
    if ids is not None and row_ids is not None and all(r is not None for r in row_ids):
        rows = _align_by_id(p, rows, row_ids, ids)
    expected = len(ids) if ids is not None else n_rows
    if expected is not None and len(rows) != expected:
        raise DataFormatError(f"has scores for {len(rows)} items, expected {expected}", path=str(p))
    return _to_csr(rows, len(labels))


def write_scores(
    path: str | os.PathLike[str],
    S: sp.csr_matrix,
    labels: LabelSpace,
    *,
    ids: Sequence[Any] | None = None,
) -> None:
    """Write CSR scores as JSONL (by extension ``.jsonl``) or XC-like text, atomically, best first."""
    jsonl = Path(path).suffix.lower() in (".jsonl", ".ndjson")
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.writelines(score_lines(S, labels, ids=ids, jsonl=jsonl))


def score_lines(
    S: sp.csr_matrix, labels: LabelSpace, *, ids: Sequence[Any] | None = None, jsonl: bool = True
) -> Iterator[str]:
    """The lines of a score file (each ending in a newline), entries of a row best first."""
    S = sp.csr_matrix(S)
    if not jsonl:
        yield f"{S.shape[0]} {S.shape[1]}\n"
    for i in range(S.shape[0]):
        s, e = S.indptr[i], S.indptr[i + 1]
        cols, vals = S.indices[s:e], S.data[s:e]
        order = np.lexsort((cols, -vals))
        if jsonl:
            obj: dict[str, Any] = {}
            if ids is not None:
                v = ids[i]
                obj["id"] = v.item() if hasattr(v, "item") else v
            obj["labels"] = [
                {"label": labels.name(int(cols[j])), "score": float(vals[j])} for j in order
            ]
            yield json.dumps(obj, ensure_ascii=False) + "\n"
        else:
            yield " ".join(f"{int(cols[j])}:{float(vals[j]):.9g}" for j in order) + "\n"


def _read_jsonl(p: Path, labels: LabelSpace) -> tuple[list[dict[int, float]], list[Any]]:
    rows: list[dict[int, float]] = []
    row_ids: list[Any] = []
    with open(p, encoding="utf-8", errors="strict") as f:
        lineno = 0
        try:
            for lineno, line in enumerate(f, 1):  # noqa: B007
                if not line.strip():
                    raise DataFormatError("empty line; expected a JSON object", path=str(p), line=lineno)
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataFormatError(f"not valid JSON ({e.msg})", path=str(p), line=lineno) from None
                if not isinstance(obj, dict) or not isinstance(obj.get("labels"), list):
                    raise DataFormatError(
                        'expected an object with a "labels" list', path=str(p), line=lineno, field="labels"
                    )
                row: dict[int, float] = {}
                for entry in obj["labels"]:
                    if not isinstance(entry, dict) or "label" not in entry or "score" not in entry:
                        raise DataFormatError(
                            'expected {"label": ..., "score": ...}', path=str(p), line=lineno, field="labels"
                        )
                    j = _label_id(entry["label"], labels, p, lineno)
                    row[j] = _score(entry["score"], p, lineno, row, j)
                rows.append(row)
                row_ids.append(obj.get("id"))
        except UnicodeDecodeError as e:
            raise DataFormatError(f"not valid UTF-8 ({e.reason})", path=str(p), line=lineno + 1) from None
    return rows, row_ids


def _read_xc(p: Path, labels: LabelSpace) -> list[dict[int, float]]:
    rows: list[dict[int, float]] = []
    with open(p, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            tokens = line.split()
            if lineno == 1 and len(tokens) == 2 and all(t.isdigit() for t in tokens):
                if int(tokens[1]) != len(labels):
                    raise DataFormatError(
                        f"header says {tokens[1]} labels, the label space has {len(labels)}",
                        path=str(p),
                        line=1,
                    )
                continue
            row: dict[int, float] = {}
            for tok in tokens:
                lab, sep, val = tok.partition(":")
                if not sep:
                    raise DataFormatError(f"expected label_id:score, got {tok[:40]!r}", path=str(p), line=lineno)
                if not lab.isdigit():
                    raise DataFormatError(f"label id {lab[:40]!r} is not a non-negative integer", path=str(p), line=lineno)
                j = _label_id(int(lab), labels, p, lineno)
                try:
                    value = float(val)
                except ValueError:
                    raise DataFormatError(f"score {val[:40]!r} is not a number", path=str(p), line=lineno) from None
                row[j] = _score(value, p, lineno, row, j)
            rows.append(row)
    return rows


def _label_id(label: Any, labels: LabelSpace, p: Path, lineno: int) -> int:
    if isinstance(label, bool):
        raise DataFormatError(f"label {label!r} is neither a name nor an id", path=str(p), line=lineno)
    if isinstance(label, int):
        if not 0 <= label < len(labels):
            raise DataFormatError(f"label id {label} >= n_labels {len(labels)}" if label >= 0 else f"label id {label} is negative", path=str(p), line=lineno)
        return label
    if isinstance(label, str) and label in labels:
        return labels.index(label)
    raise DataFormatError(f"unknown label {label!r}", path=str(p), line=lineno, field="label")


def _score(value: Any, p: Path, lineno: int, row: dict[int, float], j: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataFormatError(f"score {value!r} is not a finite number", path=str(p), line=lineno, field="score")
    if j in row:
        raise DataFormatError(f"label id {j} listed twice", path=str(p), line=lineno)
    return float(value)


def _align_by_id(p: Path, rows: list[dict[int, float]], row_ids: list[Any], ids: Sequence[Any]) -> list[dict[int, float]]:
    by_id: dict[str, int] = {}
    for i, rid in enumerate(row_ids):
        key = str(rid)
        if key in by_id:
            raise DataFormatError(f"id {rid!r} appears twice", path=str(p), line=i + 1, field="id")
        by_id[key] = i
    out = []
    for want in ids:
        key = str(want.item() if hasattr(want, "item") else want)
        if key not in by_id:
            raise DataFormatError(f"no scores for item id {key!r}", path=str(p), field="id")
        out.append(rows[by_id.pop(key)])
    if by_id:
        extra = next(iter(by_id))
        raise DataFormatError(f"scores for unknown item id {extra!r}", path=str(p), line=by_id[extra] + 1, field="id")
    return out


def _to_csr(rows: list[dict[int, float]], n_labels: int) -> sp.csr_matrix:
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    for i, r in enumerate(rows):
        indptr[i + 1] = indptr[i] + len(r)
    indices = np.empty(int(indptr[-1]), dtype=np.int64)
    data = np.empty(int(indptr[-1]), dtype=np.float32)
    for i, r in enumerate(rows):
        cols = np.fromiter(r.keys(), dtype=np.int64, count=len(r))
        vals = np.fromiter(r.values(), dtype=np.float64, count=len(r))
        order = np.argsort(cols)
        indices[indptr[i] : indptr[i + 1]] = cols[order]
        data[indptr[i] : indptr[i + 1]] = vals[order]
    return sp.csr_matrix((data, indices, indptr), shape=(len(rows), n_labels))
