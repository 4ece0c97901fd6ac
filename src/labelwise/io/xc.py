"""Readers for XC-repository and LIBSVM multi-label sparse text, and the XC writer.

Format
------
XC (the Extreme Classification Repository format) starts with a header line
``n_points n_features n_labels``; every following line is one row::

    l1,l2,... idx:val idx:val ...

Labels are comma-separated label ids (base 0, as in XC and napkinXC); a row without labels
starts with a space or directly with ``idx:val``; an empty line is a row with neither labels
nor features. Tokens are separated by spaces or tabs (``\\r`` before the newline is
accepted). LIBSVM multi-label is the same without the header (note: scikit-learn skips blank
lines, here they are empty rows). Files may be gzip-compressed (detected from the magic
bytes).

Feature index base
------------------
``index_base=0|1`` states it. When it is ``None`` it is detected and reported in
``dataset.meta["index_base"]`` and ``dataset.meta["index_base_detected"]`` (the reason):

- XC: an index 0 means 0-based, an index equal to the header's n_features means 1-based,
  both is an error. When neither appears the header cannot decide: the XC convention
  (0-based) is taken and a warning says so.
- LIBSVM: an index 0 means 0-based, otherwise 1-based (the LIBSVM convention).

Label names
-----------
A sidecar ``<path>.labels`` (one name per line, UTF-8, written by :func:`write_xc`) names the
labels; else ``labels=`` (a LabelSpace or list of names); else names are ``'0'..'n-1'``.
n_labels is the header's for XC, else the number of names, else max label id + 1. Names are
built for unnamed labels only up to ``max(MAX_UNNAMED_LABELS, file size in bytes)``: a larger
count (a 15-byte file declaring 2**31 labels) is an error naming the line, before any is built.

:func:`write_xc` writes the sidecar with a blank line and ``sha256 <hex>`` of the data file
after the names, and puts it in place just before the data file: a write killed between the two
renames leaves names whose record does not match the rows, and reading that pair is an error
(never the old rows with the new names). A sidecar without the record (older files) is read as
before.

Values
------
Values become float32; NaN and infinite values (or values beyond the float32 range) are
refused. A nonzero value too small for float32 becomes 0.0 with a warning that counts
them. Explicit zeros are kept. Rows come out with sorted feature indices; a feature index or
label id listed twice in one row is an error. Float parsing is exact against Python's
``float()`` for values of up to 18 significant digits with a decimal exponent within
+-22 of the mantissa; see :mod:`labelwise.io._xc_kernels` for the (rare) exception.

Errors raise :class:`~labelwise.errors.DataFormatError` with the path and 1-based line.

Speed and memory
----------------
The bytes are parsed by a numba kernel (:mod:`labelwise.io._xc_kernels`) in chunks of
``CHUNK_BYTES``. A plain file is first counted (newlines, ``:`` and ``,``) so that the output
arrays (int32 indices, float32 values) are allocated once; peak memory is then the final
arrays plus one chunk. Gzip data is not counted first; its arrays grow as chunks arrive.
"""

from __future__ import annotations

import gzip
import os
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..atomic import atomic_write
from ..dataset import Dataset
from ..errors import DataFormatError, LabelError
from ..files import sha256_file
from ..labels import LabelSpace
from ._lines import check_record, is_record, sidecar_text

__all__ = ["read_xc", "read_libsvm", "write_xc"]

#: bytes read per parse step; a longer line grows the buffer.
CHUNK_BYTES = 8 << 20
#: largest n_features / n_labels (indices are int32).
_MAX_DIM = 2**31 - 1
#: the most labels a file without label names may declare when it is smaller than this many
#: bytes (their names '0'..'n-1' cost about 60 bytes each; the XC repository's largest label
#: set has 2.8M labels)
MAX_UNNAMED_LABELS = 1 << 22



# ---------------------------------------------------------------------- public API
def read_xc(
    path: str | os.PathLike[str],
    *,
    index_base: int | None = None,
    labels: LabelSpace | Sequence[str] | None = None,
) -> Dataset:
    """Read an XC-repository sparse text file (header ``n_points n_features n_labels``)."""
    parsed = _parse_file(path, header=True)
    n_points, n_features, n_labels = parsed.header
    if parsed.n_rows != n_points:
        if parsed.n_rows > n_points:
            msg = f"header says n_points {n_points} but the file has {parsed.n_rows} rows"
            line = n_points + 2
        else:
            msg = f"header says n_points {n_points} but the file ends after {parsed.n_rows} rows"
            line = parsed.n_rows + 2
        raise DataFormatError(msg, path=str(path), line=line)
    base, reason = _xc_index_base(parsed, index_base, n_features, path)
    return _finish(parsed, path, "xc", base, reason, n_features, n_labels, labels)


def read_libsvm(
    path: str | os.PathLike[str],
    *,
    index_base: int | None = None,
    n_features: int | None = None,
    labels: LabelSpace | Sequence[str] | None = None,
) -> Dataset:
    """Read LIBSVM multi-label sparse text (no header); n_features defaults to max index + 1."""
    if n_features is not None and (isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 0):
        raise DataFormatError(f"n_features must be a non-negative integer, got {n_features!r}")
    parsed = _parse_file(path, header=False)
    x = parsed.x_ind
    _check_base_arg(index_base)
    if index_base is not None:
        base, reason = index_base, "given"
        _check_given_base(parsed, base, path)
    elif x.size == 0:
        base, reason = 1, "no features in the file; 1-based (the LIBSVM convention)"
    elif int(x.min()) == 0:
        base = 0
        reason = f"index 0 seen (line {_line_of_first(parsed, x == 0, 'x')})"
    else:
        base, reason = 1, f"no index 0 seen; max index {int(x.max())}"
    top = int(x.max()) - base if x.size else -1
    if n_features is None:
        n_features = top + 1
    elif top >= n_features:
        line = _line_of_first(parsed, x.astype(np.int64) - base >= n_features, "x")
        raise DataFormatError(
            f"feature index {top + base} >= n_features {n_features} (index base {base})",
            path=str(path),
            line=line,
        )
    return _finish(parsed, path, "libsvm", base, reason, n_features, None, labels)


def write_xc(dataset: Dataset, path: str | os.PathLike[str], *, index_base: int = 0) -> None:
    """Write ``dataset`` as XC sparse text (gzip when ``path`` ends in .gz), atomically.

    Values are written with ``%.9g``, which reads back as the same float32. Label names that
    are not simply ``'0'..'n-1'`` go to the sidecar ``<path>.labels`` with the data's sha256
    (renamed into place just before the data file, see the module docstring); a stale sidecar
    is rewritten the same way, then removed after the data is in place. Descriptions, hierarchy, groups and ids are not
    part of the format and are not written.
    """
    _check_base_arg(index_base)
    if index_base is None:
        raise DataFormatError("index_base must be 0 or 1 for writing")
    X = dataset.X
    if isinstance(X, list):
        raise DataFormatError(
            "XC format holds numeric features, but this dataset's X is texts; featurize first"
        )
    X = sp.csr_matrix(X, dtype=np.float32)
    if not X.has_sorted_indices:
        X = X.sorted_indices()
    if X.nnz and not np.isfinite(X.data).all():
        pos = int(np.flatnonzero(~np.isfinite(X.data))[0])
        row = int(np.searchsorted(X.indptr, pos, side="right") - 1)
        raise DataFormatError(f"X row {row} holds a non-finite value; XC files cannot hold it")
    Y = dataset.Y
    names = list(dataset.labels.names)
    for name in names:
        if "\n" in name or "\r" in name:
            raise DataFormatError(
                f"label name {name!r} holds a line break; the .labels sidecar holds one name per line"
            )
    sidecar = Path(str(path) + ".labels")
    default_names = all(n == str(i) for i, n in enumerate(names))
    with atomic_write(path, "wb") as raw:
        out = raw
        if str(path).lower().endswith(".gz"):  # name and mtime fixed: same data, same bytes
            out = gzip.GzipFile(filename=Path(path).name, fileobj=raw, mode="wb", mtime=0)
        out.write(f"{X.shape[0]} {X.shape[1]} {Y.shape[1]}\n".encode())
        _write_rows(out, X, Y, index_base)
        if out is not raw:
            out.close()
        raw.flush()
        # the names go in place before the rows, recording the new rows' sha256: a kill in
        # between leaves old rows beside names that say so (read refuses the pair)
        if not default_names or sidecar.exists():
            digest = sha256_file(raw.name)
            with atomic_write(sidecar, "w", encoding="utf-8", newline="\n") as f:
                f.write(sidecar_text(names, digest))
    if default_names and sidecar.exists():
        sidecar.unlink()


# ---------------------------------------------------------------------- parsing
class _Parsed:
    __slots__ = ("x_ind", "x_val", "x_ptr", "y_ind", "y_ptr", "n_rows", "header",
                 "first_line", "underflows", "compressed")


def _open(path: str | os.PathLike[str]):
    f = open(path, "rb")  # noqa: SIM115 - returned to the caller
    magic = f.read(2)
    f.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb"), f, True
    return f, f, False


class _GzipError(Exception):
    pass


def _fill(f, buf: np.ndarray, start: int) -> int:
    """Read into buf[start:] until it is full or the data ends; return bytes read."""
    view = memoryview(buf)
    total = 0
    while start + total < buf.size:
        try:
            n = f.readinto(view[start + total:])
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise _GzipError(f"corrupt gzip data: {e}") from None
        if not n:
            break
        total += n
    return total


def _grow(arr: np.ndarray, need: int) -> np.ndarray:
    if arr.size < need:
        arr.resize(max(need, arr.size + arr.size // 2), refcheck=False)
    return arr


def _parse_header(text: bytes, path: Any) -> tuple[int, int, int]:
    try:
        parts = text.decode("ascii").split()
        vals = [int(t) for t in parts]
    except (UnicodeDecodeError, ValueError):
        vals = []
    if (
        len(vals) != 3
        or not all(t.isascii() and t.isdigit() for t in parts)
        or vals[1] > _MAX_DIM
        or vals[2] > _MAX_DIM
    ):
        shown = text[:60].decode("utf-8", errors="replace")
        raise DataFormatError(
            f"expected the header 'n_points n_features n_labels' (three non-negative integers, n_features and n_labels < 2**31), found {shown!r}",
            path=str(path),
            line=1,
            field="header",
        )
    return vals[0], vals[1], vals[2]


def _parse_file(path: str | os.PathLike[str], *, header: bool) -> _Parsed:
    from . import _xc_kernels as K

    if Path(path).is_dir():
        raise DataFormatError("expected a file, got a folder", path=str(path))
    out = _Parsed()
    out.header = None
    out.first_line = 2 if header else 1
    state = np.zeros(4, np.int64)
    err = np.zeros(3, np.int64)
    line = out.first_line
    f, raw, out.compressed = _open(path)
    with raw, f:
        buf = np.empty(CHUNK_BYTES, np.uint8)
        # A plain file is counted first, so the arrays are allocated once at their final
        # size (growing them could hold old and new copies at once); gzip data grows them.
        n_nl = n_colon = n_comma = 0
        if not out.compressed:
            while n := _fill(f, buf, 0):
                _, a, b, c = K.scan(buf, 0, n)
                n_nl, n_colon, n_comma = n_nl + a, n_colon + b, n_comma + c
            f.seek(0)
        x_ind = np.empty(n_colon, np.int32)
        x_val = np.empty(n_colon, np.float32)
        y_ind = np.empty(n_comma + n_nl + 1, np.int32)
        x_ptr = np.zeros(n_nl + 2, np.int64)
        y_ptr = np.zeros(n_nl + 2, np.int64)
        filled = 0
        eof = False
        while True:
            if not eof:
                want = buf.size - filled
                try:
                    got = _fill(f, buf, filled)
                except _GzipError as e:  # name the line the decompressed data reached
                    lines_in_buf = int(np.count_nonzero(buf[:filled] == 10))
                    where = line + lines_in_buf if out.header is not None or not header else 1
                    raise DataFormatError(str(e), path=str(path), line=where) from None
                filled += got
                eof = got < want
            start = 0
            if header and out.header is None:
                if filled == 0:
                    raise DataFormatError(
                        "file is empty: expected the header 'n_points n_features n_labels'",
                        path=str(path), line=1, field="header",
                    )
                nl = bytes(buf[: min(filled, 4096)]).find(b"\n")
                if nl < 0 and not (eof and filled <= 4096):
                    _parse_header(bytes(buf[:60]), path)
                    raise DataFormatError("header line is too long", path=str(path), line=1, field="header")
                end_h = filled if nl < 0 else nl
                out.header = _parse_header(bytes(buf[:end_h]), path)
                start = min(end_h + 1, filled)
                buf[: filled - start] = buf[start:filled]  # drop the header line
                filled -= start
                start = 0
            if out.compressed:
                stop, n_nl, n_colon, n_comma = K.scan(buf, start, filled)
            else:  # the arrays already have room for the whole file
                stop, n_nl, n_colon, n_comma = K.last_newline(buf, start, filled), 0, 0, 0
            if eof:
                stop = filled
            elif stop == start:  # one line longer than the buffer: grow it
                buf.resize(buf.size * 2, refcheck=False)
                continue
            rows = int(state[0])
            x_ptr = _grow(x_ptr, rows + n_nl + 2)
            y_ptr = _grow(y_ptr, rows + n_nl + 2)
            x_ind = _grow(x_ind, int(state[1]) + n_colon)
            x_val = _grow(x_val, int(state[1]) + n_colon)
            y_ind = _grow(y_ind, int(state[2]) + n_comma + n_nl + 1)
            code = K.parse_lines(buf, start, stop, line, x_ind, x_val, x_ptr, y_ind, y_ptr, state, err)
            if code == K.ERR_FULL:
                raise DataFormatError("the file changed while it was being read", path=str(path))
            if code != K.OK:
                e = _kernel_error(code, err, buf, stop, path)
                if not header and e.line == 1 and _looks_like_header(buf, stop):
                    e = DataFormatError(
                        f"{e.reason} (line 1 looks like an XC header 'n_points n_features "
                        "n_labels': read the file as format 'xc')",
                        path=str(path), line=1,
                    )
                raise e
            line += int(state[0]) - rows
            rest = filled - stop
            if rest:
                buf[:rest] = buf[stop:filled]
            filled = rest
            if eof:
                break
    n_rows, nnz, nlab = (int(v) for v in state[:3])
    x_ind.resize(nnz, refcheck=False)
    x_val.resize(nnz, refcheck=False)
    y_ind.resize(nlab, refcheck=False)
    x_ptr.resize(n_rows + 1, refcheck=False)
    y_ptr.resize(n_rows + 1, refcheck=False)
    out.x_ind, out.x_val, out.x_ptr, out.y_ind, out.y_ptr = x_ind, x_val, x_ptr, y_ind, y_ptr
    out.n_rows = n_rows
    out.underflows = int(state[3])
    return out


def _kernel_error(code: int, err: np.ndarray, buf: np.ndarray, stop: int, path: Any) -> DataFormatError:
    pos, line, val = (int(v) for v in err)
    end = pos
    limit = min(stop, pos + 40)
    while end < limit and buf[end] not in (9, 10, 13, 32):
        end += 1
    tok = bytes(buf[pos:end]).decode("utf-8", errors="replace")
    if end == limit and end < stop and buf[end] not in (9, 10, 13, 32):
        tok += "..."
    from ._xc_kernels import MESSAGES

    msg = MESSAGES[code].format(tok=tok, val=val)
    return DataFormatError(msg, path=str(path), line=line)


def _looks_like_header(buf: np.ndarray, stop: int) -> bool:
    first = bytes(buf[: min(stop, 200)]).split(b"\n", 1)[0].split()
    return len(first) == 3 and all(t.isdigit() for t in first)


def _line_of_first(parsed: _Parsed, mask: np.ndarray, which: str) -> int:
    pos = int(np.argmax(mask))
    ptr = parsed.x_ptr if which == "x" else parsed.y_ptr
    row = int(np.searchsorted(ptr, pos, side="right") - 1)
    return row + parsed.first_line


def _check_base_arg(index_base: Any) -> None:
    if index_base is not None and (isinstance(index_base, bool) or index_base not in (0, 1)):
        raise DataFormatError(f"index_base must be 0, 1 or None, got {index_base!r}")


def _check_given_base(parsed: _Parsed, base: int, path: Any) -> None:
    x = parsed.x_ind
    if base == 1 and x.size and int(x.min()) == 0:
        raise DataFormatError(
            "feature index 0 in a file read with index_base=1",
            path=str(path), line=_line_of_first(parsed, x == 0, "x"),
        )


def _xc_index_base(parsed: _Parsed, index_base: int | None, nf: int, path: Any) -> tuple[int, str]:
    x = parsed.x_ind
    _check_base_arg(index_base)
    if index_base is not None:
        _check_given_base(parsed, index_base, path)
        if x.size and int(x.max()) - index_base >= nf:
            bad = x.astype(np.int64) - index_base >= nf
            v = int(x[np.argmax(bad)])
            raise DataFormatError(
                f"feature index {v} >= n_features {nf} (index base {index_base})",
                path=str(path), line=_line_of_first(parsed, bad, "x"),
            )
        return index_base, "given"
    if x.size == 0:
        return 0, "no features in the file; 0-based (the XC convention)"
    lo, hi = int(x.min()), int(x.max())
    if hi > nf:
        raise DataFormatError(
            f"feature index {hi} is out of range for n_features {nf} in either index base",
            path=str(path), line=_line_of_first(parsed, x == hi, "x"),
        )
    if lo == 0 and hi == nf:
        raise DataFormatError(
            f"the file uses index 0 (line {_line_of_first(parsed, x == 0, 'x')}) and index "
            f"{nf} == n_features: neither 0-based nor 1-based indices fit the header",
            path=str(path), line=_line_of_first(parsed, x == hi, "x"),
        )
    if lo == 0:
        return 0, f"index 0 seen (line {_line_of_first(parsed, x == 0, 'x')})"
    if hi == nf:
        return 1, f"index {nf} == n_features seen (line {_line_of_first(parsed, x == hi, 'x')})"
    reason = (
        f"ambiguous: indices lie in {lo}..{hi} of n_features {nf}, neither 0 nor {nf} appears; "
        "assumed 0-based (the XC convention)"
    )
    warnings.warn(f"{path}: feature index base {reason}; pass index_base= to choose", UserWarning, stacklevel=3)
    return 0, reason


def _label_space(path: Any, labels: Any) -> tuple[LabelSpace | None, str | None]:
    sidecar = Path(str(path) + ".labels")
    given = None
    if labels is not None:
        try:
            given = labels if isinstance(labels, LabelSpace) else LabelSpace(list(labels))
        except LabelError as e:
            raise DataFormatError(f"labels=: {e}") from None
    if not sidecar.is_file():
        return given, None if given is None else "labels argument"
    try:
        text = sidecar.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataFormatError(f"label names are not UTF-8 ({e})", path=str(sidecar)) from None
    names = text.split("\n")
    if names and names[-1] == "":
        names.pop()
    names = [n[:-1] if n.endswith("\r") else n for n in names]
    blank = names.index("") if "" in names else -1
    if blank >= 0 and names[blank + 1 : blank + 2] and is_record(names[blank + 1]):
        # names, a blank line, then the record of the rows they belong to
        check_record(names[blank + 1 :], blank + 2, path, sidecar)
        names = names[:blank]
    for i, n in enumerate(names):
        if n == "":
            raise DataFormatError("empty label name", path=str(sidecar), line=i + 1)
    try:
        space = LabelSpace(names)
    except LabelError as e:
        raise DataFormatError(str(e), path=str(sidecar)) from None
    if given is not None and tuple(given.names) != tuple(names):
        raise DataFormatError(
            f"labels= ({len(given)} names) differs from the sidecar's {len(names)} names",
            path=str(sidecar),
        )
    return (given if given is not None else space), f"sidecar {sidecar.name}"


def _check_unnamed_labels(n_labels: int, path: Any, line: int, field: str | None) -> None:
    """A file without label names gets the names '0'..'n_labels-1': refuse a count that the
    file's size cannot justify (a 15-byte file declaring 2**31 labels) before building them."""
    size = os.path.getsize(path)
    limit = max(MAX_UNNAMED_LABELS, size)
    if n_labels > limit:
        raise DataFormatError(
            f"{n_labels} labels without names: more than this {size}-byte file can justify "
            f"(at most {limit} unnamed labels); give the names (a {Path(path).name}.labels "
            "sidecar or labels=) or check the label ids", path=str(path), line=line, field=field)


def _finish(parsed: _Parsed, path: Any, fmt: str, base: int, reason: str, n_features: int,
            n_labels: int | None, labels: Any) -> Dataset:
    space, names_from = _label_space(path, labels)
    y = parsed.y_ind
    if n_labels is not None and space is not None and len(space) != n_labels:
        raise DataFormatError(
            f"{len(space)} label names ({names_from}) for n_labels {n_labels} in the header",
            path=str(path), line=1,
        )
    if space is None and n_labels is not None:
        _check_unnamed_labels(n_labels, path, 1, "header")
    if n_labels is None:
        n_labels = len(space) if space is not None else (int(y.max()) + 1 if y.size else 0)
        if space is None and y.size:
            _check_unnamed_labels(n_labels, path, _line_of_first(parsed, y == n_labels - 1, "y"),
                                  "labels")
    if y.size and int(y.max()) >= n_labels:
        bad = y >= n_labels
        raise DataFormatError(
            f"label id {int(y[np.argmax(bad)])} >= n_labels {n_labels}",
            path=str(path), line=_line_of_first(parsed, bad, "y"),
        )
    if base == 1 and parsed.x_ind.size:
        np.subtract(parsed.x_ind, 1, out=parsed.x_ind)
    if parsed.underflows:
        warnings.warn(
            f"{path}: {parsed.underflows} nonzero values are too small for float32 and became 0.0",
            UserWarning, stacklevel=3,
        )
    n = parsed.n_rows
    X = sp.csr_matrix((parsed.x_val, parsed.x_ind, parsed.x_ptr), shape=(n, n_features))
    Y = sp.csr_matrix((np.ones(y.size, np.float32), y, parsed.y_ptr), shape=(n, n_labels))
    # drop the parser's references (int64 row pointers that scipy copied to int32, ...)
    # before Dataset copies Y, so they are not all held at the peak
    parsed.x_ind = parsed.x_val = parsed.x_ptr = parsed.y_ind = parsed.y_ptr = y = None
    meta = {"format": fmt, "source": str(path), "index_base": base, "index_base_detected": reason}
    if parsed.compressed:
        meta["compression"] = "gzip"
    if names_from is not None:
        meta["label_names"] = names_from
    return Dataset(X, Y, space, meta=meta)


# ---------------------------------------------------------------------- writing
def _write_rows(out: Any, X: sp.csr_matrix, Y: sp.csr_matrix, base: int, block: int = 20000) -> None:
    xp, yp = X.indptr, Y.indptr
    for r0 in range(0, X.shape[0], block):
        r1 = min(r0 + block, X.shape[0])
        xs, xe = int(xp[r0]), int(xp[r1])
        ind = (X.indices[xs:xe].astype(np.int64) + base).tolist()
        val = X.data[xs:xe].tolist()
        yind = Y.indices[int(yp[r0]) : int(yp[r1])].tolist()
        lines = []
        y0 = int(yp[r0])
        for r in range(r0, r1):
            a, b = int(xp[r]) - xs, int(xp[r + 1]) - xs
            labs = ",".join(map(str, yind[int(yp[r]) - y0 : int(yp[r + 1]) - y0]))
            if a == b:
                lines.append(labs)
            else:
                feats = " ".join([f"{i}:{v:.9g}" for i, v in zip(ind[a:b], val[a:b])])
                lines.append(f"{labs} {feats}")
        lines.append("")
        out.write("\n".join(lines).encode())
