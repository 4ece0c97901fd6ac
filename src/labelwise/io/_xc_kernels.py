"""Numba kernels that parse XC / LIBSVM sparse text from raw bytes.

The reader (:mod:`labelwise.io.xc`) feeds a buffer holding whole lines; :func:`parse_lines`
appends labels and features to caller-owned arrays and stops at the first malformed token,
returning an error code, the byte offset of the offending token and its 1-based line
number, so that Python can raise a precise :class:`~labelwise.errors.DataFormatError`.

Grammar of one line (a line ends at ``\\n``; spaces, tabs and ``\\r`` separate tokens)::

    line     := [labels] (SEP feature)* [SEP]
    labels   := id ("," id)*                  id: decimal digits
    feature  := index ":" value               index: decimal digits
    value    := [+-] (digits ["." digits*] | "." digits) [(e|E) [+-] digits]

A line without labels starts with a separator or directly with ``index:value``. Labels and
feature indices are stored raw (no index base applied); rows are sorted by index and
duplicates reported.

Number parsing: a value with at most 18 significant digits whose mantissa is below 2**53 and
whose decimal exponent is within +-22 is computed with one correctly rounded operation
(Clinger's fast path), so it equals Python's ``float(token)`` exactly. Other values (more
than 18 significant digits, which are truncated, or larger exponents) take a few rounded
steps: the float64 may then be off by a few ulps, and its float32 can differ from
``float32(float(token))`` only when the decimal lies within about 1e-15 (relative) of a float32
rounding midpoint. Values written with ``%.9g`` from float32 are never near one.
"""

from __future__ import annotations

import numpy as np

from .._numba import njit

OK = 0
ERR_EXPECTED_INDEX = 1
ERR_EXPECTED_COLON = 2
ERR_EXPECTED_VALUE = 3
ERR_NEGATIVE_INDEX = 4
ERR_INDEX_TOO_LARGE = 5
ERR_NONFINITE = 6
ERR_BAD_LABEL = 7
ERR_NEGATIVE_LABEL = 8
ERR_LABEL_TOO_LARGE = 9
ERR_DUPLICATE_FEATURE = 10
ERR_DUPLICATE_LABEL = 11
ERR_GARBAGE = 12
ERR_FULL = 13  # output arrays too small: the file changed while it was read

#: error code -> message ({tok}: the offending token, {val}: the duplicate id).
MESSAGES = {
    ERR_EXPECTED_INDEX: "expected 'index:value', found {tok!r}",
    ERR_EXPECTED_COLON: "expected 'index:value' (a feature index, ':' and a value), found {tok!r}",
    ERR_EXPECTED_VALUE: "expected a number after ':' in {tok!r}",
    ERR_NEGATIVE_INDEX: "negative feature index in {tok!r}",
    ERR_INDEX_TOO_LARGE: "feature index in {tok!r} is too large (limit 2147483646)",
    ERR_NONFINITE: "value in {tok!r} is not finite (NaN, inf, or beyond the float32 range); such values are refused",
    ERR_BAD_LABEL: "expected comma-separated non-negative integer label ids, found {tok!r}",
    ERR_NEGATIVE_LABEL: "negative label id in {tok!r}",
    ERR_LABEL_TOO_LARGE: "label id in {tok!r} is too large (limit 2147483646)",
    ERR_DUPLICATE_FEATURE: "feature index {val} appears more than once in the row",
    ERR_DUPLICATE_LABEL: "label id {val} appears more than once in the row",
    ERR_GARBAGE: "unexpected text after the value in {tok!r}",
}

#: largest index or label id accepted by the parser (ids are held in int32).
MAX_ID = 2**31 - 2

_POW10 = np.array([10.0**i for i in range(23)], dtype=np.float64)
_TWO53 = 2**53

# byte values
_NL = 10
_SP = 32
_TAB = 9
_CR = 13
_COMMA = 44
_COLON = 58
_DOT = 46
_PLUS = 43
_MINUS = 45
_ZERO = 48
_NINE = 57
# _sort_row's flag as values: literal True/False arguments compile it twice
_WITH_VALUES = np.bool_(True)
_NO_VALUES = np.bool_(False)


@njit(cache=True, nogil=True)
def scan(buf, start, end):
    """Return (offset just past the last newline in buf[start:end] or start, newlines, colons, commas)."""
    last = start
    n_nl = 0
    n_colon = 0
    n_comma = 0
    for p in range(start, end):
        c = buf[p]
        if c == _NL:
            n_nl += 1
            last = p + 1
        elif c == _COLON:
            n_colon += 1
        elif c == _COMMA:
            n_comma += 1
    return last, n_nl, n_colon, n_comma


@njit(cache=True, nogil=True)
def last_newline(buf, start, end):
    """Offset just past the last newline in buf[start:end], or start when there is none."""
    for p in range(end - 1, start - 1, -1):
        if buf[p] == _NL:
            return p + 1
    return start


@njit(cache=True, nogil=True, inline="always")
def _is_sep(c):
    return c == _SP or c == _TAB or c == _CR


@njit(cache=True, nogil=True)
def _scale(mant, e):
    """float64 nearest (see module docstring) to mant * 10**e, mant > 0."""
    v = float(mant)
    if mant <= _TWO53 and -22 <= e <= 22:
        if e >= 0:
            return v * _POW10[e]
        return v / _POW10[-e]
    if e > 400:
        return np.inf
    if e < -400:
        return 0.0
    while e > 22:
        v *= _POW10[22]
        e -= 22
    while e < -22:
        v /= _POW10[22]
        e += 22
    if e >= 0:
        return v * _POW10[e]
    return v / _POW10[-e]


@njit(cache=True, nogil=True)
def _sort_row(ind, val, s, e, with_values):
    """Sort ind[s:e] (and val alongside); return the position of a duplicate or -1."""
    increasing = True
    for k in range(s + 1, e):
        if ind[k] <= ind[k - 1]:
            increasing = False
            break
    if increasing:
        return -1
    order = np.argsort(ind[s:e], kind="mergesort")
    tmp_i = ind[s:e].copy()
    for k in range(e - s):
        ind[s + k] = tmp_i[order[k]]
    if with_values:
        tmp_v = val[s:e].copy()
        for k in range(e - s):
            val[s + k] = tmp_v[order[k]]
    for k in range(s + 1, e):
        if ind[k] == ind[k - 1]:
            return k
    return -1


@njit(cache=True, nogil=True)
def parse_lines(buf, start, end, line0, x_ind, x_val, x_ptr, y_ind, y_ptr, state, err):
    """Parse the lines in buf[start:end] and append them to the output arrays.

    ``state`` (int64[4]) holds the counts so far: rows, nnz, labels, float32 underflows; it
    is updated in place. The arrays should have room for the rows, ``:`` and label ids of
    this chunk (see :func:`scan`); when they do not, ``ERR_FULL`` is returned (nothing is
    written out of bounds). ``end`` sits just past a newline, or at the end of the data.
    ``line0`` is the 1-based line number of buf[start]. On a malformed token it returns
    the error code and fills ``err`` with (byte offset of the token, line, value).
    """
    row = state[0]
    nnz = state[1]
    nlab = state[2]
    under = state[3]
    line = line0
    p = start
    while p < end:
        row_x0 = nnz
        row_y0 = nlab
        ls = p
        # ---------------------------------------------------------------- labels
        c = buf[p]
        if c >= _ZERO and c <= _NINE:
            q = p
            v = 0
            while q < end and buf[q] >= _ZERO and buf[q] <= _NINE:
                if v <= MAX_ID:
                    v = v * 10 + (buf[q] - _ZERO)
                q += 1
            if not (q < end and buf[q] == _COLON):
                # a label list
                while True:
                    if v > MAX_ID:
                        err[0] = p
                        err[1] = line
                        return ERR_LABEL_TOO_LARGE
                    if nlab >= y_ind.size:
                        return ERR_FULL
                    y_ind[nlab] = v
                    nlab += 1
                    if q < end and buf[q] == _COMMA:
                        q += 1
                        p = q
                        if q < end and buf[q] == _MINUS:
                            err[0] = p
                            err[1] = line
                            return ERR_NEGATIVE_LABEL
                        if not (q < end and buf[q] >= _ZERO and buf[q] <= _NINE):
                            err[0] = p
                            err[1] = line
                            return ERR_BAD_LABEL
                        v = 0
                        while q < end and buf[q] >= _ZERO and buf[q] <= _NINE:
                            if v <= MAX_ID:
                                v = v * 10 + (buf[q] - _ZERO)
                            q += 1
                        continue
                    if q >= end or buf[q] == _NL or _is_sep(buf[q]):
                        break
                    err[0] = p
                    err[1] = line
                    return ERR_BAD_LABEL
                p = q
        elif c == _MINUS:
            q = p + 1
            while q < end and buf[q] >= _ZERO and buf[q] <= _NINE:
                q += 1
            err[0] = p
            err[1] = line
            if q < end and buf[q] == _COLON:
                return ERR_NEGATIVE_INDEX
            return ERR_NEGATIVE_LABEL
        elif not (c == _NL or _is_sep(c)):
            err[0] = p
            err[1] = line
            return ERR_BAD_LABEL
        # ---------------------------------------------------------------- features
        while True:
            while p < end and _is_sep(buf[p]):
                p += 1
            if p >= end or buf[p] == _NL:
                break
            tok = p
            c = buf[p]
            if c == _MINUS:
                err[0] = tok
                err[1] = line
                return ERR_NEGATIVE_INDEX
            if not (c >= _ZERO and c <= _NINE):
                err[0] = tok
                err[1] = line
                return ERR_EXPECTED_INDEX
            idx = 0
            while p < end and buf[p] >= _ZERO and buf[p] <= _NINE:
                if idx <= MAX_ID:
                    idx = idx * 10 + (buf[p] - _ZERO)
                p += 1
            if not (p < end and buf[p] == _COLON):
                err[0] = tok
                err[1] = line
                return ERR_EXPECTED_COLON
            if idx > MAX_ID:
                err[0] = tok
                err[1] = line
                return ERR_INDEX_TOO_LARGE
            p += 1
            # value
            neg = False
            if p < end and (buf[p] == _PLUS or buf[p] == _MINUS):
                neg = buf[p] == _MINUS
                p += 1
            mant = 0
            ndig = 0
            ex = 0
            any_digit = False
            while p < end and buf[p] >= _ZERO and buf[p] <= _NINE:
                any_digit = True
                if ndig < 18:
                    mant = mant * 10 + (buf[p] - _ZERO)
                    if mant > 0:
                        ndig += 1
                else:
                    ex += 1
                p += 1
            if p < end and buf[p] == _DOT:
                p += 1
                while p < end and buf[p] >= _ZERO and buf[p] <= _NINE:
                    any_digit = True
                    if ndig < 18:
                        mant = mant * 10 + (buf[p] - _ZERO)
                        if mant > 0:
                            ndig += 1
                        ex -= 1
                    p += 1
            if not any_digit:
                err[0] = tok
                err[1] = line
                if p < end:
                    c = buf[p] | 32  # lower case
                    if c == 110 or c == 105:  # 'n' (nan), 'i' (inf)
                        return ERR_NONFINITE
                return ERR_EXPECTED_VALUE
            if p < end and (buf[p] == 101 or buf[p] == 69):  # e E
                p += 1
                eneg = False
                if p < end and (buf[p] == _PLUS or buf[p] == _MINUS):
                    eneg = buf[p] == _MINUS
                    p += 1
                if not (p < end and buf[p] >= _ZERO and buf[p] <= _NINE):
                    err[0] = tok
                    err[1] = line
                    return ERR_EXPECTED_VALUE
                e10 = 0
                while p < end and buf[p] >= _ZERO and buf[p] <= _NINE:
                    if e10 < 100000:
                        e10 = e10 * 10 + (buf[p] - _ZERO)
                    p += 1
                ex += -e10 if eneg else e10
            if p < end and not (buf[p] == _NL or _is_sep(buf[p])):
                err[0] = tok
                err[1] = line
                return ERR_GARBAGE
            if mant == 0:
                v64 = 0.0
            else:
                v64 = _scale(mant, ex)
            f = np.float32(v64 * -1.0 if neg else v64)  # keeps -0.0
            if np.isinf(f):
                err[0] = tok
                err[1] = line
                return ERR_NONFINITE
            if mant != 0 and f == 0:
                under += 1
            if nnz >= x_ind.size:
                return ERR_FULL
            x_ind[nnz] = idx
            x_val[nnz] = f
            nnz += 1
        # ---------------------------------------------------------------- row end
        k = _sort_row(x_ind, x_val, row_x0, nnz, _WITH_VALUES)
        if k >= 0:
            err[0] = ls
            err[1] = line
            err[2] = x_ind[k]
            return ERR_DUPLICATE_FEATURE
        k = _sort_row(y_ind, x_val, row_y0, nlab, _NO_VALUES)
        if k >= 0:
            err[0] = ls
            err[1] = line
            err[2] = y_ind[k]
            return ERR_DUPLICATE_LABEL
        row += 1
        if row >= x_ptr.size or row >= y_ptr.size:
            return ERR_FULL
        x_ptr[row] = nnz
        y_ptr[row] = nlab
        line += 1
        state[0] = row
        state[1] = nnz
        state[2] = nlab
        state[3] = under
        p += 1  # past the newline (or past the end of the data)
    return OK
