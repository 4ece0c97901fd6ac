"""Tables of examples: CSV, TSV, JSON Lines and Parquet; and the JSON Lines writer.

Each row is one example: a text column (or feature columns), a labels column, and optional
id and group columns. Rows are streamed (no DataFrame is built; pandas is not needed).

Files
-----
- ``csv`` / ``tsv``: read with the standard library ``csv`` module, delimiter ``,`` or TAB,
  ``quoting="minimal"`` (default: ``"`` quotes fields, doubled inside) or ``quoting="none"``
  (``csv.QUOTE_NONE``: quotes are ordinary characters, as GoEmotions must be read). With
  ``header=True`` the first row names the columns; every row must have as many fields as the
  first. UTF-8 (a BOM is dropped; ``.gz`` is decompressed). Line numbers are physical lines.
  The ``csv`` module refuses fields over ``csv.field_size_limit()`` characters (131,072 by
  default; this reader does not change that process-wide setting): use JSONL for long texts.
- ``jsonl``: one JSON object per line; keys are the column names.
- ``parquet``: read with pyarrow (the ``[tables]`` extra) in record batches; in messages the
  "line" is the 1-based row number.

Blank lines are not rows: they are skipped with one warning that counts them.

Columns
-------
Columns are chosen by name, or by 0-based index (CSV/TSV without a header must use indices).
Defaults: the text column is ``text`` when present, else a ``features`` column; ``id`` and
``group`` columns are used when present (``id_column=False`` / ``group_column=False`` turn
that off).

- text: a string. ``text_column=False``: no text nor feature column is read (``X`` is a
  float32 array with 0 columns), for files of true labels (ids and labels only).
- ``feature_columns``: a list of columns each holding one number -> dense float32 ``X``; or a
  single column whose cells hold a whole vector: a JSON list (dense row) or a JSON object
  ``{"index": value}`` (sparse row; CSR ``X``). Values must be finite numbers or missing:
  an empty CSV/TSV cell, one of :data:`MISSING_CELLS` (``NA``, ``N/A``, ``NaN``, ``nan``,
  ``null``, ``?``) or a JSON/Parquet null is read as NaN and counted in
  ``meta["missing_values"]``; the pipeline fills or refuses them (``Pipeline(missing=)``).
- labels (``labels_column``, ``None`` for unlabelled data): a JSON/Parquet list of names; a
  list of objects with ``label_key`` (e.g. Annif's ``{"uri": ...}``); or a string. A string
  is split on ``label_sep`` (pieces stripped of surrounding spaces; a whitespace separator
  splits on runs of whitespace). With ``label_sep=None`` a string must be a JSON list
  (``["a", "b"]``) or empty (no labels): anything else is an error asking for ``label_sep``,
  since ``"a,b"`` could be one label or two. With ``label_names=`` (a file with one name per
  line, like GoEmotions' ``labels.txt``) the labels are 0-based integer ids into that file.
- id / group: strings, or integers (JSON/Parquet); one kind per column.

Label order: ``labels=`` when given; else the ``label_names`` file; else a ``<path>.labels``
sidecar (one name per line) when it exists; else first-seen order. A label outside a given
list, or an id outside the name file, is an error naming ``file:line: column``: labels are
never dropped. A label listed twice in one row is an error.

Writer and sidecars
-------------------
``write_jsonl`` writes one object per row: ``{"id"?, "text" | "features", "labels": [names],
"group"?}``; sparse rows as ``{"index": value}`` objects, dense rows as lists. When the label
order cannot be rebuilt from the rows (labels unused, or not in first-seen order) it writes
``<path>.labels``; for feature data it writes ``<path>.meta.json``
(``{"format": "labelwise.jsonl/1", "x_kind": ..., "n_features": ...}``). Sidecars are written
(atomically) before the data file; a sidecar that is not needed is removed, so
``read_table(write_jsonl(d))`` gives ``d`` back: texts or features (with ``n_features``),
label names and order, ids and groups. Label descriptions and hierarchy are not kept.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..dataset import Dataset, as_label_matrix
from ..errors import DataFormatError, MissingDependencyError
from ..files import sha256_file
from ..labels import LabelSpace
from ._lines import LabelCollector, float32_number, iter_lines, read_name_file, text_number
from ._lines import describe_value as _kind
from .jsonl import META_FORMAT as _META_FORMAT
from .jsonl import write_jsonl

__all__ = ["read_table", "write_jsonl"]

_FORMATS = ("csv", "tsv", "jsonl", "parquet")


def _warn_blank(name: str, blank: int) -> None:
    if blank:
        warnings.warn(f"{name}: skipped {blank} blank line(s)", UserWarning, stacklevel=3)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"key {dup!r} appears twice in one object")
    return d


def _json(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_no_duplicate_keys)


# ---------------------------------------------------------------------------- row sources
def _csv_rows(
    path: Path, fmt: str, header: bool, quoting: str, out: dict
) -> Iterator[tuple[int, Any]]:
    if quoting not in ("minimal", "none"):
        raise DataFormatError(f"quoting must be 'minimal' or 'none', got {quoting!r}")
    kw: dict[str, Any] = {"delimiter": "," if fmt == "csv" else "\t", "strict": True}
    kw.update(
        {"quoting": csv.QUOTE_NONE, "quotechar": None} if quoting == "none" else {"quotechar": '"'}
    )
    lines = (line for _, line in iter_lines(path))
    reader = csv.reader(lines, **kw)
    width = None
    blank = 0
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise DataFormatError(
                f"malformed {fmt.upper()}: {e}", path=str(path), line=start
            ) from None
        if not row:
            blank += 1
            continue
        if width is None:
            width = len(row)
            if header:
                out["columns"], out["header_line"] = row, start
                continue
        if len(row) != width:
            raise DataFormatError(
                f"{len(row)} fields where the first row has {width}", path=str(path), line=start
            )
        yield start, row
    _warn_blank(str(path), blank)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    blank = 0
    for lineno, line in iter_lines(path):
        if not line.strip():
            blank += 1
            continue
        try:
            obj = _json(line)
        except (ValueError, RecursionError) as e:
            raise DataFormatError(f"malformed JSON: {e}", path=str(path), line=lineno) from None
        if not isinstance(obj, dict):
            raise DataFormatError(
                f"expected a JSON object, got {type(obj).__name__}", path=str(path), line=lineno
            )
        yield lineno, obj
    _warn_blank(str(path), blank)


def _parquet_rows(path: Path, out: dict) -> Iterator[tuple[int, Any]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("pyarrow", "tables", "reading Parquet") from None
    try:
        pf = pq.ParquetFile(path)
        out["columns"] = list(pf.schema_arrow.names)
        row = 0
        for batch in pf.iter_batches(batch_size=65536):
            for rec in batch.to_pylist():
                row += 1
                yield row, rec
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DataFormatError(f"cannot read Parquet: {e}", path=str(path)) from None


# ---------------------------------------------------------------------------- cell parsing
#: the CSV/TSV cells (besides an empty one) read as a missing feature value (NaN)
MISSING_CELLS = frozenset({"NA", "N/A", "NaN", "nan", "null", "?"})
_MISSING_TEXT = MISSING_CELLS | {""}


class _Cells:
    """Typed cell access with errors that name file, line and column."""

    def __init__(self, path: str, from_text: bool) -> None:
        self.path = path
        self.from_text = from_text  # CSV/TSV: every cell is a string
        self.missing = 0  # feature values read as missing (NaN)

    def error(self, msg: str, line: int, col: str) -> DataFormatError:
        return DataFormatError(msg, path=self.path, line=line, field=col)

    def text(self, v: Any, line: int, col: str) -> str:
        if not isinstance(v, str):
            raise self.error(f"expected a text, got {_kind(v)}", line, col)
        return v

    def number(self, v: Any, line: int, col: str) -> float:
        """A cell's number, refused when float32 cannot hold it (no silent inf)."""
        try:
            if self.from_text and isinstance(v, str):
                return text_number(v)
            if isinstance(v, int | float) and not isinstance(v, bool):
                return float32_number(v, v)
        except ValueError as e:
            raise self.error(str(e), line, col) from None
        raise self.error(f"expected a number, got {_kind(v)}", line, col)

    def feature(self, v: Any, line: int, col: str) -> float:
        """A feature cell's number, or NaN for a missing one (an empty or :data:`MISSING_CELLS`
        text cell, a null), counted in ``missing``."""
        if v is None or (self.from_text and isinstance(v, str)
                         and v.strip(" \t") in _MISSING_TEXT):
            self.missing += 1
            return math.nan
        return self.number(v, line, col)

    def key(self, v: Any, line: int, col: str, out: list) -> None:
        """Append an id/group value; one column holds strings or 64-bit integers, not both."""
        if not (
            isinstance(v, str)
            or (isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63)
        ):
            raise self.error(f"expected a string or a 64-bit integer, got {_kind(v)}", line, col)
        if out and type(out[0]) is not type(v):
            raise self.error(f"{_kind(v)} in a column of {type(out[0]).__name__} values", line, col)
        out.append(v)

    def maybe_json(self, v: Any, line: int, col: str) -> Any:
        if self.from_text and isinstance(v, str):
            try:
                return _json(v)
            except (ValueError, RecursionError) as e:
                raise self.error(f"expected a JSON value: {e}", line, col) from None
        return v

    def label_items(
        self, v: Any, line: int, col: str, sep: str | None, key: str | None, by_id: bool
    ) -> list:
        """Label names (str) or ids (int) of one cell."""
        if isinstance(v, str):
            if sep is not None:
                pieces = v.split() if sep.strip() == "" else [p.strip() for p in v.split(sep)]
                if v.strip() == "":
                    pieces = []
            elif v.strip() == "":
                pieces = []
            elif v.lstrip().startswith("["):
                try:
                    return self.label_items(_json(v), line, col, None, key, by_id)
                except (ValueError, RecursionError) as e:
                    raise self.error(f"expected a JSON list of labels: {e}", line, col) from None
            else:
                raise self.error(
                    f"labels given as the string {v[:40]!r}: pass label_sep= (e.g. ',', ' ', '|') "
                    "or write a JSON list",
                    line,
                    col,
                )
            if by_id:
                for p in pieces:
                    if not (p.isascii() and p.isdigit()) or len(p) > 18:
                        raise self.error(f"expected an integer label id, got {p[:40]!r}", line, col)
                return [int(p) for p in pieces]
            for p in pieces:
                if p == "":
                    raise self.error(f"empty label name in {v[:40]!r}", line, col)
            return pieces
        if by_id and isinstance(v, int) and not isinstance(v, bool):
            return [v]
        if not isinstance(v, list):
            raise self.error(f"expected a list of labels, got {_kind(v)}", line, col)
        out = []
        for item in v:
            if key is not None and isinstance(item, dict):
                if key not in item:
                    raise self.error(f"label object without the key {key!r}", line, col)
                item = item[key]
            if by_id:
                if not isinstance(item, int) or isinstance(item, bool):
                    raise self.error(f"expected integer label ids, got {_kind(item)}", line, col)
            elif not isinstance(item, str) or item == "":
                raise self.error(f"expected non-empty label names, got {_kind(item)}", line, col)
            out.append(item)
        return out


# ---------------------------------------------------------------------------- reader
def read_table(
    path: str | os.PathLike[str],
    *,
    format: str,
    text_column: str | int | None = None,
    feature_columns: str | int | Sequence[str | int] | None = None,
    labels_column: str | int | None = "labels",
    label_sep: str | None = None,
    label_names: str | os.PathLike[str] | None = None,
    label_key: str | None = None,
    group_column: str | int | bool | None = None,
    id_column: str | int | bool | None = None,
    header: bool = True,
    labels: Sequence[str] | LabelSpace | None = None,
    quoting: str = "minimal",
) -> Dataset:
    """Read a CSV, TSV, JSON Lines or Parquet table into a :class:`~labelwise.Dataset`.

    See the module docstring for the column rules. ``format`` is one of ``csv``, ``tsv``,
    ``jsonl``, ``parquet``.
    """
    if format not in _FORMATS:
        raise DataFormatError(f"format must be one of {', '.join(_FORMATS)}, got {format!r}")
    if label_sep is not None and (not isinstance(label_sep, str) or label_sep == ""):
        raise DataFormatError(f"label_sep must be a non-empty string, got {label_sep!r}")
    p = Path(path)
    name = str(path)
    if labels is not None and label_names is not None:
        raise DataFormatError("give labels= or label_names=, not both")
    id_names = None if label_names is None else read_name_file(label_names)
    meta_side = _read_meta_sidecar(p)
    if labels is None and id_names is None and Path(f"{p}.labels").is_file():
        labels = read_name_file(f"{p}.labels", data_path=p)
    collector = LabelCollector(name, labels=labels, id_names=id_names)

    info: dict[str, Any] = {}
    if format in ("csv", "tsv"):
        rows = _csv_rows(p, format, header, quoting, info)
    elif format == "jsonl":
        rows = _jsonl_rows(p)
    else:
        rows = _parquet_rows(p, info)
    cells = _Cells(name, from_text=format in ("csv", "tsv"))

    first = next(rows, None)
    if format in ("csv", "tsv") and header and "columns" not in info:
        raise DataFormatError("file is empty: expected a header row", path=name, line=1)
    columns: list[str] | None = info.get("columns")
    at = info.get("header_line", None if first is None else first[0])  # line for column errors
    if format == "jsonl" and first is not None:
        columns = list(first[1])
    width = (
        len(first[1]) if format in ("csv", "tsv") and first is not None else (len(columns or ()))
    )

    def resolve(spec: Any, what: str) -> tuple[Any, str]:
        """(row key, column name for messages)."""
        if isinstance(spec, bool) or not isinstance(spec, str | int):
            raise DataFormatError(
                f"{what}: expected a column name or 0-based index, got {spec!r}", path=name, line=at
            )
        if format in ("csv", "tsv"):
            if isinstance(spec, int):
                if first is not None and not 0 <= spec < width:
                    raise DataFormatError(
                        f"{what}: column index {spec} outside 0..{width - 1}", path=name, line=at
                    )
                return spec, columns[spec] if columns and spec < len(columns) else f"column {spec}"
            if not header:
                raise DataFormatError(
                    f"{what}: header=False: select columns by 0-based index, not {spec!r}",
                    path=name,
                    line=at,
                )
            if spec not in columns:
                raise DataFormatError(
                    f"{what}: no column {spec!r} (columns: {', '.join(columns)})",
                    path=name,
                    line=at,
                )
            if columns.count(spec) > 1:
                raise DataFormatError(
                    f"{what}: column name {spec!r} appears twice in the header", path=name, line=at
                )
            return columns.index(spec), spec
        if isinstance(spec, int):
            if format == "jsonl":
                raise DataFormatError(
                    f"{what}: JSON Lines columns are chosen by name, not index {spec}",
                    path=name,
                    line=at,
                )
            if not 0 <= spec < len(columns):
                raise DataFormatError(
                    f"{what}: column index {spec} outside 0..{len(columns) - 1}", path=name, line=at
                )
            return columns[spec], columns[spec]
        if format == "parquet" and spec not in columns:
            raise DataFormatError(
                f"{what}: no column {spec!r} (columns: {', '.join(columns)})", path=name, line=at
            )
        return spec, spec

    def auto(spec: Any, default: str, what: str) -> tuple[Any, str] | None:
        if spec is False:
            return None
        if spec is None or spec is True:
            if columns is not None and default in columns:
                return resolve(default, what)
            if spec is True:
                raise DataFormatError(f"{what}: no column {default!r}", path=name, line=at)
            return None
        return resolve(spec, what)

    # X columns
    x_mode = "text"
    if text_column is not None and feature_columns is not None:
        raise DataFormatError("give text_column= or feature_columns=, not both")
    if text_column is False and feature_columns is None:
        x_mode, x_cols = "numbers", []
    elif feature_columns is not None:
        if isinstance(feature_columns, str | int) and not isinstance(feature_columns, bool):
            x_mode, x_cols = "vector", [resolve(feature_columns, "feature_columns")]
        else:
            x_mode, x_cols = "numbers", [resolve(c, "feature_columns") for c in feature_columns]
            if not x_cols:
                raise DataFormatError("feature_columns is empty")
    elif text_column is not None:
        x_cols = [resolve(text_column, "text_column")]
    elif columns is not None and "text" in columns:
        x_cols = [resolve("text", "text_column")]
    elif columns is not None and "features" in columns:
        x_mode, x_cols = "vector", [resolve("features", "feature_columns")]
    elif first is None:
        x_cols = []
        if meta_side is not None:
            x_mode = "vector"
    else:
        raise DataFormatError(
            "no 'text' or 'features' column: pass text_column= or feature_columns= "
            "(0-based indices when header=False)",
            path=name,
            line=at,
        )
    y_col = None if labels_column is None else resolve(labels_column, "labels_column")
    id_col = auto(id_column, "id", "id_column")
    g_col = auto(group_column, "group", "group_column")

    def get(row: Any, col: tuple[Any, str], line: int) -> Any:
        if isinstance(row, list):
            return row[col[0]]
        if col[0] not in row:
            raise DataFormatError(f"missing column {col[1]!r}", path=name, line=line, field=col[1])
        return row[col[0]]

    texts: list[str] = []
    flat = array("f")
    indptr, indices, vec_data = [0], array("q"), array("f")
    vec_kind: str | None = None
    dense_width: int | None = None
    label_rows: list[list[int]] = []
    ids: list[Any] = []
    groups: list[Any] = []
    n_rows = 0
    all_rows = rows if first is None else _chain(first, rows)
    for line, row in all_rows:
        n_rows += 1
        if x_mode == "text":
            texts.append(cells.text(get(row, x_cols[0], line), line, x_cols[0][1]))
        elif x_mode == "numbers":
            flat.extend(cells.feature(get(row, c, line), line, c[1]) for c in x_cols)
        else:
            col = x_cols[0][1]
            vec = cells.maybe_json(get(row, x_cols[0], line), line, col)
            kind = "sparse" if isinstance(vec, dict) else "dense" if isinstance(vec, list) else None
            if kind is None:
                raise cells.error(
                    f"expected a list or an {{index: value}} object, got {_kind(vec)}", line, col
                )
            if vec_kind is not None and kind != vec_kind:
                raise cells.error(f"a {kind} row in a column of {vec_kind} rows", line, col)
            vec_kind = kind
            if kind == "dense":
                if dense_width is not None and len(vec) != dense_width:
                    raise cells.error(
                        f"{len(vec)} values where earlier rows have {dense_width}", line, col
                    )
                dense_width = len(vec)
                flat.extend(cells.feature(x, line, col) for x in vec)
            else:
                row_keys: dict[int, str] = {}
                for k, x in vec.items():
                    if not (k.isascii() and k.isdigit()) or len(k) > 18:
                        raise cells.error(
                            f"feature index {k[:20]!r} is not an integer in 0..10**18", line, col
                        )
                    j = int(k)
                    if j in row_keys:
                        raise cells.error(f"feature index {j} given twice ({row_keys[j]!r} and "
                                          f"{k!r})", line, col)
                    row_keys[j] = k
                    indices.append(j)
                    vec_data.append(cells.feature(x, line, col))
                indptr.append(len(indices))
        if y_col is None:
            label_rows.append([])
        else:
            items = cells.label_items(
                get(row, y_col, line), line, y_col[1], label_sep, label_key, id_names is not None
            )
            if id_names is not None:
                label_rows.append(collector.from_ids(items, line=line, field=y_col[1]))
            else:
                label_rows.append(collector.ids(items, line=line, field=y_col[1]))
        if id_col is not None:
            cells.key(get(row, id_col, line), line, id_col[1], ids)
        if g_col is not None:
            cells.key(get(row, g_col, line), line, g_col[1], groups)

    X = _build_x(
        x_mode,
        texts,
        flat,
        len(x_cols),
        n_rows,
        vec_kind,
        dense_width,
        indptr,
        indices,
        vec_data,
        meta_side,
        name,
    )
    space = collector.label_space()
    Y = as_label_matrix(label_rows, len(space))
    return Dataset(
        X,
        Y,
        space,
        groups=None if g_col is None else _key_column(groups),
        ids=None if id_col is None else _key_column(ids),
        meta={"source": name, "format": format,
              **({"missing_values": cells.missing} if cells.missing else {})},
    )


def _chain(first: tuple[int, Any], rest: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
    yield first
    yield from rest


def _build_x(
    mode, texts, flat, n_cols, n_rows, vec_kind, dense_width, indptr, indices, data, meta, name
):
    if mode == "text":
        return texts
    if mode == "numbers":
        return np.frombuffer(flat, dtype=np.float32).reshape(n_rows, n_cols).copy()
    n_features = None if meta is None else meta["n_features"]
    kind = vec_kind or (meta or {}).get("x_kind", "sparse")
    if kind == "dense":
        width = dense_width if dense_width is not None else (n_features or 0)
        if n_features is not None and width != n_features:
            raise DataFormatError(
                f"rows have {width} features but {name}.meta.json says {n_features}", path=name
            )
        return np.frombuffer(flat, dtype=np.float32).reshape(n_rows, width).copy()
    ind = np.frombuffer(indices, dtype=np.int64)
    top = int(ind.max()) + 1 if ind.size else 0
    if n_features is None:
        n_features = top
    elif top > n_features:
        raise DataFormatError(
            f"feature index {top - 1} >= n_features {n_features} of {name}.meta.json", path=name
        )
    X = sp.csr_matrix(
        (np.frombuffer(data, dtype=np.float32).copy(), ind.copy(), np.asarray(indptr, np.int64)),
        shape=(n_rows, n_features),
    )
    X.sort_indices()
    return X


def _key_column(values: list[Any]) -> np.ndarray:
    if values and isinstance(values[0], int):
        return np.asarray(values, dtype=np.int64)
    return np.asarray(values, dtype=str) if values else np.zeros(0, dtype=str)


def _read_meta_sidecar(p: Path) -> dict[str, Any] | None:
    side = Path(f"{p}.meta.json")
    if not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise DataFormatError(f"unreadable sidecar: {e}", path=str(side)) from None
    ok = (
        isinstance(meta, dict)
        and meta.get("format") == _META_FORMAT
        and meta.get("x_kind") in ("sparse", "dense")
        and isinstance(meta.get("n_features"), int)
        and not isinstance(meta["n_features"], bool)
        and meta["n_features"] >= 0
    )
    if not ok:
        raise DataFormatError(
            f"expected {{'format': {_META_FORMAT!r}, 'x_kind': 'sparse'|'dense', 'n_features': int}}",
            path=str(side),
        )
    digest = meta.get("data_sha256")  # absent in files written before it was recorded
    if digest is not None and digest != sha256_file(p):
        raise DataFormatError(
            f"written for another version of {p.name} (data_sha256 differs): an interrupted "
            "write left a sidecar and rows that do not belong together; write the dataset again",
            path=str(side))
    return meta

