"""What the partitions of :mod:`labelwise.distributed.partitions` are (files, byte ranges),
and the tf-idf fitted from their counts. Runs on the client; reads no rows."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataFormatError

__all__ = ["list_partitions", "tfidf_from_counts", "is_partitioned", "has_text_column"]

_DATA_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".xc": "xc", ".txt": None,
                  ".svm": "libsvm", ".libsvm": "libsvm"}


def list_partitions(target: str | os.PathLike[str] | list, *, byte_ranges: int = 1,
                    format: str | None = None) -> tuple[str, list[tuple]]:
    """``(format, specs)`` of a folder, a glob pattern or a list of files. Parquet: one spec
    ``(path,)`` per file; XC / LIBSVM: ``(path, start, end, has_header)`` per byte range."""
    if isinstance(target, list | tuple):
        files = [str(p) for p in target]
    elif any(c in str(target) for c in "*?["):
        files = sorted(glob.glob(str(target)))
    elif Path(target).is_dir():
        files = sorted(str(p) for p in Path(target).iterdir() if p.is_file()
                       and not p.name.startswith((".", "_"))
                       and p.suffix.lower() in _DATA_SUFFIXES)
    else:
        files = [str(target)]
    if not files:
        raise DataFormatError("no partition files (expected .parquet, .xc, .txt, .svm or "
                              ".libsvm files)", path=str(target))
    if isinstance(byte_ranges, bool) or not isinstance(byte_ranges, int) or byte_ranges < 1:
        raise DataFormatError(f"byte_ranges must be an int >= 1, got {byte_ranges!r}")
    from ..io import detect_format

    fmts = {format or detect_format(f)[0] for f in files}
    if len(fmts) != 1 or next(iter(fmts)) not in ("parquet", "xc", "libsvm"):
        raise DataFormatError(f"partitions must all be parquet, xc or libsvm, found "
                              f"{', '.join(sorted(fmts))}", path=str(target))
    fmt = fmts.pop()
    if fmt == "parquet":
        if byte_ranges != 1:
            raise DataFormatError("byte_ranges: Parquet is split by files (or write more files)",
                                  path=str(target))
        return fmt, [(f,) for f in files]
    specs = []
    for f in files:
        size = os.path.getsize(f)
        cuts = np.linspace(0, size, byte_ranges + 1).round().astype(np.int64)
        specs += [(f, int(a), int(b), fmt == "xc") for a, b in zip(cuts[:-1], cuts[1:])
                  if b > a or size == 0]
    return fmt, specs


def _xc_header(path: str) -> tuple[int, int, int]:
    from ..io.xc import _parse_header

    with open(path, "rb") as f:
        return _parse_header(f.readline(4096).rstrip(b"\r\n"), path)


# ------------------------------------------------------------------ tf-idf from counts
def tfidf_from_counts(featurizer: Any, n_docs: int, counts: list[dict],
                      char_range: Any = None, rate: float | None = None) -> Any:
    """Fit ``featurizer`` (a :class:`~labelwise.features.Tfidf`) from per-partition counts
    (``blocks`` of :func:`labelwise.distributed._rows.text_counts`), with scikit-learn's
    rules: vocabulary sorted, ``min_df`` / ``max_df`` / ``max_features`` as in
    ``CountVectorizer._limit_features``, ``idf = ln((1 + n) / (1 + df)) + 1`` in float32.
    ``char_range`` / ``rate``: the character n-gram choice (:func:`_rows.char_choice`)."""
    from numbers import Integral

    arrays, state = {}, {"char_ngram_range": None if char_range is None else list(char_range),
                         "unseen_word_rate": rate}
    for name, analyzer, rng in featurizer._blocks(char_range):
        featurizer._vectorizer(analyzer, rng)._validate_params()
        df: dict[str, int] = {}
        tf: dict[str, int] = {}
        for c in counts:
            bdf, btf = c[name]
            for term, v in bdf.items():
                df[term] = df.get(term, 0) + v
            for term, v in (btf or {}).items():
                tf[term] = tf.get(term, 0) + v
        if not df:
            raise DataFormatError(f"{name} n-grams: empty vocabulary; perhaps the documents "
                                  "only contain stop words", field="X")
        terms = sorted(df)
        dfs = np.array([df[t] for t in terms], np.int64)
        max_df, min_df = featurizer.max_df, featurizer.min_df
        high = max_df if isinstance(max_df, Integral) else max_df * n_docs
        low = min_df if isinstance(min_df, Integral) else min_df * n_docs
        if high < low:
            raise DataFormatError(f"{name} n-grams: max_df corresponds to < documents than "
                                  "min_df", field="X")
        mask = (dfs <= high) & (dfs >= low)
        limit = featurizer.max_features
        if limit is not None and mask.sum() > limit:
            tfs = np.array([tf[t] for t in terms], np.int64).astype(np.float32)
            keep = (-tfs[mask]).argsort()[:limit]
            new = np.zeros(len(dfs), bool)
            new[np.where(mask)[0][keep]] = True
            mask = new
        if not mask.any():
            raise DataFormatError(f"{name} n-grams: After pruning, no terms remain. Try a "
                                  "lower min_df or a higher max_df.", field="X")
        kept = np.flatnonzero(mask)
        d = dfs[kept].astype(np.float32)
        d += 1.0
        idf = np.full_like(d, n_docs + 1, dtype=np.float32)
        idf /= d
        np.log(idf, out=idf)
        idf += 1.0
        state[f"{name}_vocabulary"] = [terms[i] for i in kept]
        arrays[f"{name}_idf"] = idf
    featurizer._clear_fitted()
    featurizer._set_state(arrays, state)
    featurizer.fitted_ = True
    return featurizer


def _parquet_bytes(path: str) -> int:
    import pyarrow.parquet as pq

    md = pq.ParquetFile(path).metadata
    return sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))


def is_partitioned(target: str, byte_ranges: int | None = None) -> bool:
    """Whether ``labelwise train TARGET --dask ...`` reads TARGET as partitions: a glob
    pattern, a folder of .parquet / XC / LIBSVM files, or any file with ``--byte-ranges``."""
    if byte_ranges is not None or any(c in target for c in "*?["):
        return True
    p = Path(target)
    return p.is_dir() and any(q.suffix.lower() in _DATA_SUFFIXES for q in p.iterdir())


def has_text_column(path: str, options: dict[str, Any]) -> bool:
    """Whether a Parquet partition holds texts (its text column, ``text`` by default)."""
    import pyarrow.parquet as pq

    names = pq.ParquetFile(path).schema_arrow.names
    col = options.get("text_column")
    if col is None:
        return "text" in names
    return (names[col] if isinstance(col, int) and 0 <= col < len(names) else col) in names
