"""``TermTable``: a vocabulary (term -> column) held in three numeric arrays.

A Python ``dict`` of terms is private to each process that builds it: served by several
workers, every worker held its own copy, and the workers' lookups (reference counts) turned
even a copy inherited by ``fork`` into private pages. A ``TermTable`` keeps the same mapping
in arrays that are saved with the featurizer and memory-mapped at load, so every process
reads one copy from the page cache:

``terms`` (uint32)
    the code points of all terms, one after the other, in column order;
``term_ptr`` (int64, n_terms + 1)
    term j is ``terms[term_ptr[j]:term_ptr[j + 1]]``;
``table`` (int64, a power of two > n_terms)
    an open-addressing hash table (:mod:`labelwise.features._term_kernels`): -1 or a
    fingerprint and a term id.

A lookup hashes the code points of the token, then compares the code points of the
candidate term, so the answer is exactly the dict's (a collision costs a comparison, never a
wrong id). Arrays read from a file are checked before use: pointers in range, every entry of
the table a term id, and every term found under its own id (so no term repeats and the table
fits its terms).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["TermTable", "code_points"]

#: the most terms a table holds (ids are kept in 32 bits of a slot)
MAX_TERMS = 2**31 - 1


def code_points(text: str) -> np.ndarray:
    """The code points of ``text`` as a read-only uint32 array (lone surrogates kept)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _frozen(a: np.ndarray) -> np.ndarray:
    """A read-only plain-ndarray view (every array the kernels see has one numba type)."""
    a = np.asarray(a).view(np.ndarray)
    a.flags.writeable = False
    return a


class TermTable:
    """The terms of one vocabulary block, in column order (module docstring)."""

    __slots__ = ("terms", "term_ptr", "table")

    def __init__(self, terms: np.ndarray, term_ptr: np.ndarray, table: np.ndarray) -> None:
        self.terms = _frozen(terms)
        self.term_ptr = _frozen(term_ptr)
        self.table = _frozen(table)

    @classmethod
    def from_terms(cls, terms: list[str]) -> TermTable:
        """The table of ``terms`` (column j = terms[j]); ValueError when a term repeats."""
        from ._term_kernels import build_table

        if len(terms) > MAX_TERMS:
            raise ValueError(f"{len(terms)} terms, at most {MAX_TERMS}")
        lengths = np.fromiter((len(t) for t in terms), dtype=np.int64, count=len(terms))
        ptr = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(lengths, out=ptr[1:])
        buf = code_points("".join(terms))
        n_slots = 1 << max(4, (2 * len(terms)).bit_length())  # load factor <= 0.5
        self = cls(buf, ptr, build_table(buf, _frozen(ptr), n_slots))
        bad = self._first_misplaced()
        if bad >= 0:
            raise ValueError(f"the vocabulary repeats a term: {terms[bad]!r}")
        return self

    @classmethod
    def from_arrays(cls, terms: Any, term_ptr: Any, table: Any, *, name: str) -> TermTable:
        """A table read from a file, checked (module docstring); ValueError naming ``name``'s
        array and what is wrong."""
        terms, term_ptr, table = np.asarray(terms), np.asarray(term_ptr), np.asarray(table)
        for key, a, dtype in (("terms", terms, np.uint32), ("term_ptr", term_ptr, np.int64),
                              ("table", table, np.int64)):
            if a.dtype != dtype or a.ndim != 1:
                raise ValueError(f"{name}_{key} must be a 1-d {np.dtype(dtype).name} array, "
                                 f"got {a.dtype} with shape {a.shape}")
        n = len(term_ptr) - 1
        if n < 0 or n > MAX_TERMS:
            raise ValueError(f"{name}_term_ptr must hold 1 to {MAX_TERMS + 1} offsets")
        if term_ptr[0] != 0 or term_ptr[-1] != len(terms) or np.any(np.diff(term_ptr) < 0):
            raise ValueError(f"{name}_term_ptr must rise from 0 to len({name}_terms) = "
                             f"{len(terms)}")
        if terms.size and int(terms.max()) > 0x10FFFF:
            raise ValueError(f"{name}_terms holds a value above 0x10FFFF (not a code point)")
        size = len(table)
        if size <= n or size & (size - 1):
            raise ValueError(f"{name}_table must have a power-of-two size above the {n} "
                             f"terms, got {size}")
        used = table[table != -1]
        if np.any(used < 0) or np.any((used & 0xFFFFFFFF) >= n):
            raise ValueError(f"{name}_table holds an entry that is not -1 or a term id")
        self = cls(terms, term_ptr, table)
        bad = self._first_misplaced()
        if bad >= 0:
            raise ValueError(f"{name}_table does not find term {bad} under its id (a repeated "
                             "term or a table built for other terms)")
        return self

    def _first_misplaced(self) -> int:
        from ._term_kernels import check_table

        return int(check_table(self.table, self.terms, self.term_ptr))

    def __len__(self) -> int:
        return len(self.term_ptr) - 1

    def names(self) -> list[str]:
        """The terms as strings, in column order."""
        text = self.terms.tobytes().decode("utf-32-le", "surrogatepass")
        ptr = self.term_ptr.tolist()
        return [text[a:b] for a, b in zip(ptr[:-1], ptr[1:])]

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The saved form: ``{prefix}_terms``, ``{prefix}_term_ptr``, ``{prefix}_table``."""
        return {f"{prefix}_terms": self.terms, f"{prefix}_term_ptr": self.term_ptr,
                f"{prefix}_table": self.table}

    def __getstate__(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.array(self.terms), np.array(self.term_ptr), np.array(self.table))

    def __setstate__(self, state: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        TermTable.__init__(self, *state)

