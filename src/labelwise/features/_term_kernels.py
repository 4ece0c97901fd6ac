"""numba kernels of :mod:`labelwise.features.terms`: a hash table of terms stored as arrays,
and the n-gram counts of texts looked up in it.

A term is a sequence of code points (uint32). The table is open addressing with linear
probing over a power-of-two number of int64 slots: -1 is empty, else ``(fingerprint << 32) |
term_id`` with the fingerprint 31 bits of the term's hash that the slot number does not use.
A lookup compares fingerprints first and then the code points themselves, so a hash
collision can never give a wrong id. The references these kernels are checked against are
plain Python in tests/test_features_terms.py.
"""

from __future__ import annotations

import numpy as np

from .._numba import njit

_OFFSET = np.uint64(0xCBF29CE484222325)
_PRIME = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_SPACE = 32


@njit(inline="always")
def term_hash(buf, a, b):
    """FNV-1a over the code points buf[a:b], then a 64-bit finaliser (murmur3's fmix64)."""
    h = _OFFSET
    for i in range(a, b):
        h = (h ^ np.uint64(buf[i])) * _PRIME
    h ^= h >> _S33
    h *= _MIX1
    h ^= h >> _S33
    h *= _MIX2
    h ^= h >> _S33
    return h


@njit
def build_table(terms, term_ptr, n_slots):
    """The table of the terms terms[term_ptr[j]:term_ptr[j + 1]] (n_slots a power of two,
    larger than the number of terms)."""
    table = np.full(n_slots, -1, np.int64)
    mask = np.uint64(n_slots - 1)
    for j in range(len(term_ptr) - 1):
        h = term_hash(terms, term_ptr[j], term_ptr[j + 1])
        s = np.int64(h & mask)
        while table[s] != -1:
            s = (s + 1) & (n_slots - 1)
        table[s] = (np.int64(h >> _S33) << 32) | j
    return table


@njit(inline="always")
def find(table, terms, term_ptr, buf, a, b):
    """The id of the term equal to buf[a:b], or -1."""
    h = term_hash(buf, a, b)
    m = len(table) - 1
    s = np.int64(h & np.uint64(m))
    fp = np.int64(h >> _S33)
    n = b - a
    while True:
        e = table[s]
        if e == -1:
            return -1
        if (e >> 32) == fp:
            j = e & 0xFFFFFFFF
            p = term_ptr[j]
            if term_ptr[j + 1] - p == n:
                same = True
                for t in range(n):
                    if terms[p + t] != buf[a + t]:
                        same = False
                        break
                if same:
                    return j
        s = (s + 1) & m


@njit
def check_table(table, terms, term_ptr):
    """-1 when every term is found under its own id (so no term repeats), else the first id
    that is not."""
    for j in range(len(term_ptr) - 1):
        if find(table, terms, term_ptr, terms, term_ptr[j], term_ptr[j + 1]) != j:
            return j
    return -1


@njit(inline="always")
def _word_ngrams(buf, a, b, min_n, max_n, table, terms, term_ptr, offset, out, m, starts, ends):
    """Word n-grams of the tokens in buf[a:b] (separated by single spaces): scikit-learn's
    ``_word_ngrams``; the ids found (plus offset) go to out[m:], the new m is returned."""
    k = 0
    i = a
    while i < b:
        if buf[i] == _SPACE:
            i += 1
            continue
        j = i
        while j < b and buf[j] != _SPACE:
            j += 1
        starts[k] = i
        ends[k] = j
        k += 1
        i = j
    for n in range(min_n, max_n + 1):
        for t in range(k - n + 1):
            f = find(table, terms, term_ptr, buf, starts[t], ends[t + n - 1])
            if f >= 0:
                out[m] = f + offset
                m += 1
    return m


@njit(inline="always")
def _char_wb_ngrams(buf, a, b, min_n, max_n, table, terms, term_ptr, offset, out, m):
    """Character n-grams within word boundaries of buf[a:b], which holds words separated by
    single spaces with a space before the first and after the last: scikit-learn's
    ``_char_wb_ngrams`` (each word padded with one space each side; a padded word shorter
    than n gives itself once, and no longer n-grams)."""
    i = a
    while i < b:
        if buf[i] == _SPACE:
            i += 1
            continue
        j = i
        while j < b and buf[j] != _SPACE:
            j += 1
        w0, w_len = i - 1, j - i + 2  # the padded word: buf[i - 1:j + 1]
        for n in range(min_n, max_n + 1):
            off = 0
            f = find(table, terms, term_ptr, buf, w0, w0 + min(n, w_len))
            if f >= 0:
                out[m] = f + offset
                m += 1
            while off + n < w_len:
                off += 1
                f = find(table, terms, term_ptr, buf, w0 + off, w0 + off + n)
                if f >= 0:
                    out[m] = f + offset
                    m += 1
            if off == 0:
                break
        i = j
    return m


@njit
def count_rows(wbuf, wptr, wmin, wmax, wtable, wterms, wterm_ptr,
               cbuf, cptr, cmin, cmax, ctable, cterms, cterm_ptr, c_offset):
    """Counts of the known word n-grams (ids as they are) and character n-grams (ids plus
    c_offset; none when cptr is empty) of each row: (indptr, indices, counts), indices
    sorted within each row. Row i's words are wbuf[wptr[i]:wptr[i + 1]], its padded words
    cbuf[cptr[i]:cptr[i + 1]] (formats of ``_word_ngrams`` / ``_char_wb_ngrams``)."""
    n_rows = len(wptr) - 1
    has_char = len(cptr) > 0
    longest = 0
    for i in range(n_rows):
        u = (wptr[i + 1] - wptr[i]) * (wmax - wmin + 1)
        if has_char:  # a padded word of w code points spans w + 1 of the row, gives <= w + 2
            u += 2 * (cptr[i + 1] - cptr[i]) * (cmax - cmin + 1)
        longest = max(longest, u)
    ids = np.empty(longest, np.int64)
    starts = np.empty(max(longest, 1), np.int64)
    ends = np.empty(max(longest, 1), np.int64)
    cap = 1024
    indices = np.empty(cap, np.int32)
    counts = np.empty(cap, np.int64)
    indptr = np.zeros(n_rows + 1, np.int64)
    nnz = 0
    for i in range(n_rows):
        m = _word_ngrams(wbuf, wptr[i], wptr[i + 1], wmin, wmax, wtable, wterms, wterm_ptr,
                         0, ids, 0, starts, ends)
        if has_char:
            m = _char_wb_ngrams(cbuf, cptr[i], cptr[i + 1], cmin, cmax, ctable, cterms,
                                cterm_ptr, c_offset, ids, m)
        row = np.sort(ids[:m])
        if nnz + m > cap:
            while nnz + m > cap:
                cap *= 2
            grown = np.empty(cap, np.int32)
            grown[:nnz] = indices[:nnz]
            indices = grown
            grown_c = np.empty(cap, np.int64)
            grown_c[:nnz] = counts[:nnz]
            counts = grown_c
        t = 0
        while t < m:
            u = t + 1
            while u < m and row[u] == row[t]:
                u += 1
            indices[nnz] = row[t]
            counts[nnz] = u - t
            nnz += 1
            t = u
        indptr[i + 1] = nnz
    return indptr, indices[:nnz].copy(), counts[:nnz].copy()


@njit
def l2_rows(indptr, data):
    """Each row of a CSR's data to unit L2 norm in place, as scikit-learn's
    ``inplace_csr_row_normalize_l2`` (float32 squares summed in float64 from left to right,
    each value divided in float64 and rounded to float32); all-zero rows stay as they are."""
    for i in range(len(indptr) - 1):
        total = 0.0
        for j in range(indptr[i], indptr[i + 1]):
            sq = data[j] * data[j]
            total += np.float64(sq)
        if total != 0.0:
            s = np.sqrt(total)
            for j in range(indptr[i], indptr[i + 1]):
                data[j] = np.float32(np.float64(data[j]) / s)
