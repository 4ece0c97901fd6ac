"""Data rows of an ARFF file: value scanners and the block parser behind :func:`read_arff`.

A block of data lines is split into runs of dense rows (``v1,v2,...``) and sparse rows
(``{index value, ...}``). Each run first goes through a numpy fast path (one fixed-width string
array per block, converted column- or entry-wise); a run the fast path cannot take (quotes,
``%`` comments, unknown categories, anything malformed) is parsed line by line by the plain
Python scanners below, which validate every value and raise
:class:`~labelwise.errors.DataFormatError` with ``path:line: field: reason``. Both paths give
identical results (checked in the tests). Syntax and encodings: see :mod:`labelwise.io.arff`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError
from ._lines import FLOAT32_OVERFLOW, text_number
from .arff_hierarchy import Attribute, ClusHierarchy

__all__ = ["RowParser", "split_values"]

#: tokens longer than this send a block to the line-by-line path (numpy's fixed-width string
#: arrays would otherwise take len(longest) * 4 bytes per value)
_MAX_FAST_TOKEN = 40


# ---------------------------------------------------------------------------- scanners
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _read_quoted(text: str, i: int, path: str, line: int) -> tuple[str, int]:
    """The quoted value starting at ``text[i]`` (a quote) and the index after its end."""
    q = text[i]
    out: list[str] = []
    i += 1
    n = len(text)
    while i < n:
        j = i
        while j < n and text[j] != q and text[j] != "\\":
            j += 1
        out.append(text[i:j])
        if j >= n:
            break
        if text[j] == q:
            return "".join(out), j + 1
        if j + 1 < n:
            out.append(_ESCAPES.get(text[j + 1], text[j + 1]))
        i = j + 2
    raise DataFormatError(f"unterminated quote ({q})", path=path, line=line)


def split_values(
    text: str, *, path: str, line: int, closing: str | None = None, first_only: bool = False
) -> tuple[list[tuple[str, bool]], int]:
    """Comma-separated values (``(value, quoted)`` pairs) and the index where scanning ended.

    Stops at a ``%`` comment, at the end, or after ``closing`` (which must then be present).
    """
    values: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    stops = ",%" + (closing or "")
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i < n and text[i] in "'\"":
            v, i = _read_quoted(text, i, path, line)
            if first_only:
                return [(v, True)], i
            quoted = True
            while i < n and text[i].isspace():
                i += 1
        else:
            start = i
            while i < n and text[i] not in stops:
                i += 1
            v, quoted = text[start:i].strip(), False
            if v == "":
                if not values and closing is not None and i < n and text[i] == closing:
                    return values, i + 1
                raise DataFormatError(
                    f"empty value at position {len(values) + 1}", path=path, line=line
                )
        values.append((v, quoted))
        if i >= n or text[i] == "%":
            if closing is not None:
                raise DataFormatError(f"missing closing {closing!r}", path=path, line=line)
            return values, i
        if closing is not None and text[i] == closing:
            return values, i + 1
        if text[i] != ",":
            raise DataFormatError(
                f"unexpected {text[i]!r} after a quoted value", path=path, line=line
            )
        i += 1


def _split_sparse(text: str, path: str, line: int) -> list[tuple[str, str, bool]]:
    """``{i v, ...}`` as ``(index text, value, quoted)`` triples."""
    entries: list[tuple[str, str, bool]] = []
    i, n = 1, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i < n and text[i] == "}" and not entries:
            i += 1
            break
        start = i
        while i < n and not text[i].isspace() and text[i] not in ",}%":
            i += 1
        idx = text[start:i]
        if idx == "":
            raise DataFormatError(
                f"sparse entry {len(entries) + 1}: expected 'index value'", path=path, line=line
            )
        while i < n and text[i].isspace():
            i += 1
        if i < n and text[i] in "'\"":
            v, i = _read_quoted(text, i, path, line)
            quoted = True
            while i < n and text[i].isspace():
                i += 1
        else:
            start = i
            while i < n and text[i] not in ",}%":
                i += 1
            v, quoted = text[start:i].strip(), False
            if v == "":
                raise DataFormatError(
                    f"sparse entry {len(entries) + 1}: index {idx} has no value",
                    path=path,
                    line=line,
                )
        entries.append((idx, v, quoted))
        if i < n and text[i] == ",":
            i += 1
            continue
        if i < n and text[i] == "}":
            i += 1
            break
        if i >= n or text[i] == "%":
            raise DataFormatError("sparse row has no closing '}'", path=path, line=line)
        raise DataFormatError(f"unexpected {text[i]!r} in a sparse row", path=path, line=line)
    rest = text[i:].strip()
    if rest and rest[0] != "%":
        raise DataFormatError(f"unexpected text {rest[:30]!r} after '}}'", path=path, line=line)
    return entries


def _needs_slow_path(vals: np.ndarray, missing: np.ndarray | None) -> bool:
    """True when numpy's parse holds a value the strict parser refuses or must name: one
    beyond float32 (1e39, 1e400 -> inf, 'inf'), or a NaN not written as '?' ('nan')."""
    if (np.abs(vals) >= FLOAT32_OVERFLOW).any():
        return True
    nan = np.isnan(vals)
    return bool(nan.any() and (missing is None or (nan & ~missing).any()))


# ---------------------------------------------------------------------------- rows
_NUMERIC, _NOMINAL, _HIER = 0, 1, 2


class RowParser:
    """Turns blocks of data lines into feature blocks and (row, label) pairs."""

    def __init__(
        self,
        *,
        path: str,
        attrs: list[Attribute],
        label_of_attr: np.ndarray,
        hierarchy: ClusHierarchy | None,
        hierarchical_attr: int,
    ) -> None:
        self.path = path
        self.attrs = attrs
        self.n_attr = len(attrs)
        self.label_of_attr = label_of_attr
        kind = {"numeric": _NUMERIC, "nominal": _NOMINAL, "hierarchical": _HIER}
        self.kind = np.array([kind[a.kind] for a in attrs], dtype=np.int64)
        is_feature = (label_of_attr < 0) & (self.kind != _HIER)
        self.feature_of_attr = np.where(is_feature, np.cumsum(is_feature) - 1, -1)
        self.n_features = int(is_feature.sum())
        self.cat_index = [{c: k for k, c in enumerate(a.categories)} for a in attrs]
        self.label_attrs = np.flatnonzero(label_of_attr >= 0)
        self.num_feats = np.flatnonzero(is_feature & (self.kind == _NUMERIC))
        self.nom_feats = np.flatnonzero(is_feature & (self.kind == _NOMINAL))
        self.hier_attr = hierarchical_attr
        self.hierarchy = hierarchy
        self.hier_index = {} if hierarchy is None else {n: k for k, n in enumerate(hierarchy.names)}
        self.nominal_01 = (
            all(a.categories == ("0", "1") for a in attrs if a.kind == "nominal")
            and hierarchical_attr < 0
        )
        self.parts: list[np.ndarray | sp.csr_matrix] = []
        self._pending_clus: tuple[np.ndarray, np.ndarray] | None = None
        self.label_counts: list[np.ndarray] = []  # positives per row, one array per run
        self.label_cols: list[np.ndarray] = []  # their label ids, row by row
        self._run_labels: list[tuple[np.ndarray, np.ndarray]] = []
        self.n_rows = 0
        self.n_dense = 0
        self.n_sparse = 0

    # -------------------------------------------------------------- feeding
    def feed(self, first_line: int, lines: list[str]) -> None:
        run: list[str] = []
        nums: list[int] = []
        run_kind = ""
        for k, text in enumerate(lines):
            s = text.strip()
            if not s or s[0] == "%":
                continue
            kind = "s" if s[0] == "{" else "d"
            if kind != run_kind and run:
                self._run(run_kind, run, nums)
                run, nums = [], []
            run_kind = kind
            run.append(s)
            nums.append(first_line + k)
        if run:
            self._run(run_kind, run, nums)

    def _add_labels(self, rows: np.ndarray, cols: np.ndarray) -> None:
        """Positive (row within the current run, label id) pairs."""
        self._run_labels.append(
            (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))
        )

    def _run(self, kind: str, rows: list[str], nums: list[int]) -> None:
        self._run_labels = []
        done = self._dense_fast(rows) if kind == "d" else self._sparse_fast(rows)
        if not done:
            if kind == "d":
                self._dense_slow(rows, nums)
            else:
                self._sparse_slow(rows, nums)
        pairs, self._run_labels = self._run_labels, []
        lr = np.concatenate([p[0] for p in pairs]) if pairs else np.zeros(0, np.int64)
        lc = np.concatenate([p[1] for p in pairs]) if pairs else np.zeros(0, np.int64)
        if lr.size > 1 and (lr[1:] < lr[:-1]).any():
            lc = lc[np.argsort(lr, kind="stable")]
        self.label_counts.append(np.bincount(lr, minlength=len(rows)).astype(np.int64))
        self.label_cols.append(lc.astype(np.int32 if lc.size and lc.max() < 2**31 else np.int64))
        if kind == "d":
            self.n_dense += len(rows)
        else:
            self.n_sparse += len(rows)
        self.n_rows += len(rows)

    # -------------------------------------------------------------- fast paths
    def _dense_fast(self, rows: list[str]) -> bool:
        n_cols = self.n_attr
        clus_values: list[str] = []
        if self.hier_attr >= 0:
            # the class value (long, '@'-separated) is kept out of the fixed-width token array
            if self.hier_attr != self.n_attr - 1 or self.n_attr == 1:
                return False
            n_cols -= 1
            cut = [s.rfind(",") for s in rows]
            if min(cut) < 0:
                return False
            clus_values = [s[c + 1 :] for s, c in zip(rows, cut)]
            rows = [s[:c] for s, c in zip(rows, cut)]
        text = ",".join(rows)
        if any(c in text for c in "'\"%_{\x00") or not text.isascii():
            return False
        toks = text.split(",") if n_cols else []
        r = len(rows)
        if len(toks) != r * n_cols or (toks and max(map(len, toks)) > _MAX_FAST_TOKEN):
            return False
        A = np.array(toks, dtype=str).reshape(r, n_cols)
        if " " in text or "\t" in text:
            A = np.char.strip(A)
        X = np.zeros((r, self.n_features), dtype=np.float32)
        try:
            if self.num_feats.size:
                sub = A[:, self.num_feats]
                missing = None
                if "?" in text:
                    missing = sub == "?"
                    sub = np.where(missing, "nan", sub)
                vals = sub.astype(np.float64)
                if _needs_slow_path(vals, missing):
                    return False
                X[:, self.feature_of_attr[self.num_feats]] = vals
        except (ValueError, OverflowError):
            return False
        for j in self.nom_feats:
            u, inv = np.unique(A[:, j], return_inverse=True)
            idx = self.cat_index[j]
            codes = np.array([np.nan if x == "?" else idx.get(x, -1) for x in u], dtype=np.float32)
            if (codes < 0).any():
                return False
            X[:, self.feature_of_attr[j]] = codes[inv.reshape(-1)]
        rows_out, cols_out = [], []
        if self.label_attrs.size:
            L = A[:, self.label_attrs]
            pos = L == "1"
            if not (pos | (L == "0")).all():
                return False
            rr, cc = np.nonzero(pos)
            rows_out.append(rr)
            cols_out.append(self.label_of_attr[self.label_attrs][cc])
        if self.hier_attr >= 0 and not self._clus_column(clus_values, None):
            return False
        return self._commit(X, rows_out, cols_out)

    def _commit(self, X, rows_out, cols_out) -> bool:
        self.parts.append(X)
        for rr, cc in zip(rows_out, cols_out):
            self._add_labels(rr, cc)
        if self._pending_clus is not None:
            self._add_labels(*self._pending_clus)
            self._pending_clus = None
        return True

    def _clus_column(self, values, nums) -> bool:
        """Label pairs for a column of Clus class values; False (fast) or raise (slow) on trouble."""
        rows, cols = [], []
        for r, v in enumerate(values):
            ids = self._clus_value(str(v), False, None if nums is None else nums[r])
            if ids is None:
                return False
            rows.extend([r] * len(ids))
            cols.extend(ids)
        self._pending_clus = (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64))
        return True

    def _clus_value(self, v: str, quoted: bool, line: int | None) -> list[int] | None:
        name = self.attrs[self.hier_attr].name
        if v == "?" and not quoted:
            if line is None:
                return None
            raise DataFormatError(
                "class value is missing ('?')", path=self.path, line=line, field=name
            )
        out = []
        for part in v.split("@"):
            part = part.strip()
            if self.hierarchy is not None and self.hierarchy.kind == "dag" and part == "root":
                continue
            k = self.hier_index.get(part)
            if k is None:
                if line is None:
                    return None
                raise DataFormatError(
                    f"class {part!r} is not in the hierarchy", path=self.path, line=line, field=name
                )
            out.append(k)
        return out

    def _sparse_fast(self, rows: list[str]) -> bool:
        if not self.nominal_01:
            return False
        inner = []
        counts = np.zeros(len(rows), dtype=np.int64)
        for k, s in enumerate(rows):
            if s[-1] != "}":
                return False
            c = s[1:-1]
            if c.strip():
                inner.append(c)
                counts[k] = c.count(",") + 1
        text = ",".join(inner)
        if any(c in text for c in "'\"%_{}\x00") or not text.isascii():
            return False
        toks = text.replace(",", " ").split()
        total = int(counts.sum())
        if len(toks) != 2 * total or (toks and max(map(len, toks)) > _MAX_FAST_TOKEN):
            return False
        T = np.array(toks, dtype=str).reshape(total, 2) if total else np.zeros((0, 2), dtype="<U1")
        try:
            idx = T[:, 0].astype(np.int64)
        except (ValueError, OverflowError):
            return False
        if total and (idx.min() < 0 or idx.max() >= self.n_attr):
            return False
        starts = np.cumsum(counts) - counts
        step = np.diff(idx)
        first = np.zeros(total, dtype=bool)
        first[starts[counts > 0]] = True
        if total > 1 and not (step > 0)[~first[1:]].all():
            return False
        V = T[:, 1]
        row = np.repeat(np.arange(len(rows), dtype=np.int64), counts)
        lab = self.label_of_attr[idx]
        is_lab = lab >= 0
        nominal = self.kind[idx] == _NOMINAL
        Vn = V[nominal]
        if not ((Vn == "0") | (Vn == "1")).all():
            return False
        is_feat = ~is_lab
        try:
            fv = V[is_feat]
            missing = None
            if "?" in text:
                missing = fv == "?"
                fv = np.where(missing, "nan", fv)
            vals = fv.astype(np.float64)
        except (ValueError, OverflowError):
            return False
        if _needs_slow_path(vals, missing):
            return False
        Vl = V[is_lab]
        if not ((Vl == "0") | (Vl == "1")).all():
            return False
        pos = Vl == "1"
        X = sp.csr_matrix(
            (vals, (row[is_feat], self.feature_of_attr[idx[is_feat]])),
            shape=(len(rows), self.n_features),
        )
        self.parts.append(X)
        self._add_labels(row[is_lab][pos], lab[is_lab][pos])
        return True

    # -------------------------------------------------------------- slow paths
    def _value(self, i: int, v: str, quoted: bool, line: int) -> float:
        """One value of attribute ``i`` as float (code for nominal, 0/1 for labels)."""
        a = self.attrs[i]
        is_label = self.label_of_attr[i] >= 0
        if v == "?" and not quoted:
            if is_label:
                raise DataFormatError(
                    "label value is missing ('?'); expected 0 or 1",
                    path=self.path,
                    line=line,
                    field=a.name,
                )
            return float("nan")
        if a.kind == "numeric":
            try:
                x = text_number(v)
            except ValueError as e:
                msg = str(e)
                if msg.startswith("expected a number"):
                    msg = f"expected a number, found {v[:40]!r}"
                raise DataFormatError(msg, path=self.path, line=line, field=a.name) from None
            if is_label and x not in (0.0, 1.0):
                raise DataFormatError(
                    f"label value {v[:40]!r} is not 0 or 1", path=self.path, line=line, field=a.name
                )
            return x
        code = self.cat_index[i].get(v)
        if code is None:
            what = "label value" if is_label else "value"
            cats = ",".join(a.categories[:10]) + (",..." if len(a.categories) > 10 else "")
            raise DataFormatError(
                f"{what} {v[:40]!r} is not one of {{{cats}}}",
                path=self.path,
                line=line,
                field=a.name,
            )
        return float(v == "1") if is_label else float(code)

    def _dense_slow(self, rows: list[str], nums: list[int]) -> None:
        X = np.zeros((len(rows), self.n_features), dtype=np.float32)
        lr, lc, clus_r, clus_c = [], [], [], []
        for r, (s, line) in enumerate(zip(rows, nums)):
            values, _ = split_values(s, path=self.path, line=line)
            if len(values) != self.n_attr:
                raise DataFormatError(
                    f"expected {self.n_attr} values (one per attribute), found {len(values)}",
                    path=self.path,
                    line=line,
                )
            for i, (v, q) in enumerate(values):
                if i == self.hier_attr:
                    ids = self._clus_value(v, q, line)
                    clus_r.extend([r] * len(ids))
                    clus_c.extend(ids)
                    continue
                x = self._value(i, v, q, line)
                f = self.feature_of_attr[i]
                if f >= 0:
                    X[r, f] = x
                elif x == 1.0:
                    lr.append(r)
                    lc.append(self.label_of_attr[i])
        self.parts.append(X)
        self._add_labels(
            np.array(lr + clus_r, dtype=np.int64), np.array(lc + clus_c, dtype=np.int64)
        )

    def _sparse_slow(self, rows: list[str], nums: list[int]) -> None:
        fr, fc, fv, lr, lc, clus_r, clus_c = [], [], [], [], [], [], []
        for r, (s, line) in enumerate(zip(rows, nums)):
            prev = -1
            for idx_text, v, q in _split_sparse(s, self.path, line):
                if not idx_text.isdigit() or not idx_text.isascii():
                    raise DataFormatError(
                        f"sparse index {idx_text[:20]!r} is not a non-negative integer",
                        path=self.path,
                        line=line,
                    )
                i = int(idx_text) if len(idx_text) < 19 else self.n_attr
                if i >= self.n_attr:
                    raise DataFormatError(
                        f"sparse index {i} out of range (attributes 0..{self.n_attr - 1})",
                        path=self.path,
                        line=line,
                    )
                if i <= prev:
                    raise DataFormatError(
                        f"sparse indices must increase ({i} after {prev})",
                        path=self.path,
                        line=line,
                    )
                prev = i
                if i == self.hier_attr:
                    ids = self._clus_value(v, q, line)
                    clus_r.extend([r] * len(ids))
                    clus_c.extend(ids)
                    continue
                x = self._value(i, v, q, line)
                f = self.feature_of_attr[i]
                if f >= 0:
                    fr.append(r)
                    fc.append(f)
                    fv.append(x)
                elif x == 1.0:
                    lr.append(r)
                    lc.append(self.label_of_attr[i])
        X = sp.csr_matrix(
            (
                np.array(fv, dtype=np.float32),
                (np.array(fr, dtype=np.int64), np.array(fc, dtype=np.int64)),
            ),
            shape=(len(rows), self.n_features),
        )
        self.parts.append(X)
        self._add_labels(
            np.array(lr + clus_r, dtype=np.int64), np.array(lc + clus_c, dtype=np.int64)
        )

    # -------------------------------------------------------------- result
    def finish(self, *, n_labels: int) -> tuple[np.ndarray | sp.csr_matrix, sp.csr_matrix, dict]:
        n = self.n_rows
        parts, self.parts = self.parts, []
        if self.n_sparse == 0:
            X = np.concatenate(parts) if parts else np.zeros((0, self.n_features), np.float32)
            del parts
            missing = int(np.count_nonzero(np.isnan(X)))
        else:
            for k, part in enumerate(parts):
                if not sp.issparse(part):
                    parts[k] = sp.csr_matrix(part)
            X = sp.vstack(parts, format="csr")
            del parts
            X = X.astype(np.float32, copy=False)
            X.eliminate_zeros()
            X.sort_indices()
            missing = int(np.count_nonzero(np.isnan(X.data)))
        counts = np.concatenate(self.label_counts) if self.label_counts else np.zeros(0, np.int64)
        cols = np.concatenate(self.label_cols) if self.label_cols else np.zeros(0, np.int64)
        self.label_counts, self.label_cols = [], []
        itype = np.int32 if n_labels < 2**31 and cols.size < 2**31 else np.int64
        indptr = np.zeros(n + 1, dtype=itype)
        np.cumsum(counts, out=indptr[1:])
        Y = sp.csr_matrix(
            (np.ones(cols.size, dtype=np.float32), cols.astype(itype, copy=False), indptr),
            shape=(n, n_labels),
        )
        Y.sum_duplicates()  # a Clus row may list a label twice
        Y.data[:] = 1.0
        info = {
            "dense_rows": self.n_dense,
            "sparse_rows": self.n_sparse,
            "x_rule": "dense: every row dense"
            if self.n_sparse == 0
            else "csr: file has sparse rows",
            "missing_values": missing,
        }
        return X, Y, info
