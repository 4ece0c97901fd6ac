"""JSON Lines writer: one object per item, ``{"id"?, "text" | "features", "labels": [names], "group"?}``.

Sidecars keep what rows alone cannot carry, so that ``write_jsonl -> read_table`` is the identity:
``<path>.labels`` (label names in order, when order or unused labels cannot be rebuilt from the
rows) and ``<path>.meta.json`` (``x_kind`` and ``n_features`` for feature data). All writes are
atomic: the rows are written to a temporary file first, then each sidecar goes in place
recording the rows' sha256 (``.labels``: a blank line and ``sha256 <hex>`` after the names;
``.meta.json``: ``data_sha256``), then the rows; a sidecar no longer needed is deleted last. A
write killed between the renames leaves sidecars whose record does not match the rows, which
the reader refuses. A path ending in ``.gz`` is written gzipped. A missing feature value
(NaN) is written as ``null``, which the reader reads back as NaN; infinite values are refused.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write
from ..dataset import Dataset
from ..errors import DataFormatError
from ..files import sha256_file
from ._lines import describe_value, sidecar_text

__all__ = ["write_jsonl", "META_FORMAT"]

META_FORMAT = "labelwise.jsonl/1"

def write_jsonl(
    dataset: Dataset,
    path: str | os.PathLike[str],
    *,
    text_key: str = "text",
    labels_key: str = "labels",
) -> None:
    """Write ``dataset`` as JSON Lines (plus sidecars when needed), atomically; see the module docstring."""
    p = Path(path)
    names = list(dataset.labels)
    Y = dataset.Y
    first_seen: list[int] = []
    seen: set[int] = set()
    for j in Y.indices:
        if int(j) not in seen:
            seen.add(int(j))
            first_seen.append(int(j))
    need_labels = first_seen != list(range(len(names)))
    names_fit = True  # whether the names can go in a one-name-per-line sidecar
    for label in names:
        if label != label.strip() or "\n" in label or "\r" in label:
            names_fit = False
            if need_labels:
                raise DataFormatError(
                    f"label {label!r} cannot go in a one-name-per-line .labels sidecar", path=str(p)
                )
    kind = dataset.x_kind
    ids = (
        None if dataset.ids is None else [_plain(v, "ids", i, p) for i, v in enumerate(dataset.ids)]
    )
    groups = (
        None
        if dataset.groups is None
        else [_plain(v, "groups", i, p) for i, v in enumerate(dataset.groups)]
    )
    X = dataset.X
    if kind != "text" and X.dtype.kind == "f":
        vals = X.data if kind == "sparse" else X
        if np.isinf(vals).any():
            raise DataFormatError("X holds infinite values, which JSON cannot carry (a missing "
                                  "value, NaN, is written as null)", path=str(p))

    labels_side, meta_side = Path(f"{p}.labels"), Path(f"{p}.meta.json")
    if not names_fit and labels_side.is_file():
        labels_side.unlink()  # stale, and these names cannot replace it
    try:
        with atomic_write(p, "wb") as raw:
            with _text_out(raw, p) as f:
                _write_rows(f, dataset, names, ids, groups, text_key, labels_key)
            raw.flush()
            # the sidecars go in place before the rows, each recording the new rows' sha256:
            # a kill in between leaves old rows beside sidecars that say so (read refuses them)
            digest = sha256_file(raw.name)
            if need_labels or labels_side.exists():
                with atomic_write(labels_side, "w", encoding="utf-8", newline="\n") as f:
                    f.write(sidecar_text(names, digest))
            if kind != "text":
                with atomic_write(meta_side, "w", encoding="utf-8") as f:
                    json.dump({"format": META_FORMAT, "x_kind": kind,
                               "n_features": dataset.n_features, "data_sha256": digest}, f)
    except UnicodeEncodeError as e:
        raise DataFormatError(f"text cannot be encoded as UTF-8: {e.reason}", path=str(p)) from None
    for side, needed in ((labels_side, need_labels), (meta_side, kind != "text")):
        if not needed and side.is_file():
            side.unlink()


def _write_rows(f: Any, dataset: Dataset, names: list[str], ids: list | None,
                groups: list | None, text_key: str, labels_key: str) -> None:
    X, Y, kind = dataset.X, dataset.Y, dataset.x_kind
    for i in range(dataset.n_samples):
        obj: dict[str, Any] = {}
        if ids is not None:
            obj["id"] = ids[i]
        if kind == "text":
            obj[text_key] = X[i]
        elif kind == "sparse":
            s, e = X.indptr[i], X.indptr[i + 1]
            obj["features"] = {
                str(int(j)): _value(v)
                for j, v in zip(X.indices[s:e], X.data[s:e], strict=True)
            }
        else:
            obj["features"] = [_value(v) for v in X[i]]
        obj[labels_key] = [names[j] for j in Y.indices[Y.indptr[i] : Y.indptr[i + 1]]]
        if groups is not None:
            obj["group"] = groups[i]
        f.write(json.dumps(obj, ensure_ascii=False))
        f.write("\n")


def _value(v: Any) -> float | None:
    """A feature value for JSON: a missing one (NaN) as null."""
    v = float(v)
    return None if v != v else v


@contextlib.contextmanager
def _text_out(raw: Any, p: Path) -> Iterator[Any]:
    """UTF-8 text onto ``raw``, gzipped (fixed name and mtime) when ``p`` ends in .gz."""
    inner = raw
    if p.name.lower().endswith(".gz"):
        inner = gzip.GzipFile(filename=p.name[:-3], fileobj=raw, mode="wb", mtime=0)
    text = io.TextIOWrapper(inner, encoding="utf-8", newline="\n", write_through=False)
    try:
        yield text
        text.flush()
    finally:
        text.detach()
        if inner is not raw:
            inner.close()


def _plain(v: Any, what: str, i: int, p: Path) -> str | int:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)):
        return v
    raise DataFormatError(
        f"{what}[{i}] is {describe_value(v)}: only strings and integers can be written", path=str(p)
    )
