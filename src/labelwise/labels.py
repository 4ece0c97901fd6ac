"""``LabelSpace``: label ids <-> names, with optional descriptions and a hierarchy.

A label space travels with every dataset and inside every saved model, so that outputs
carry label *names*. Ids are positions ``0 .. n_labels-1`` (always held in int64 arrays,
never small integer dtypes). A hierarchy is given as parents per label (a DAG: a label may
have several parents); cycles, self-parents and unknown parents are refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import LabelError, UnknownLabelError

__all__ = ["LabelSpace", "few_names"]

_FORMAT = "labelwise.labelspace/1"


class LabelSpace:
    """An ordered set of label names.

    Parameters
    ----------
    names:
        Label names, one per label id, unique, non-empty strings.
    descriptions:
        Optional free text per label (used by zero-shot models): a sequence aligned with
        ``names`` or a mapping name -> text (labels left out have none).
    parents:
        Optional hierarchy: a mapping child name -> parent name(s). Every name must be in
        ``names``; the graph must be acyclic.
    """

    __slots__ = ("_names", "_index", "_descriptions", "_parents")

    def __init__(
        self,
        names: Iterable[str],
        *,
        descriptions: Sequence[str | None] | Mapping[str, str] | None = None,
        parents: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        names = list(names)
        index: dict[str, int] = {}
        for i, name in enumerate(names):
            if not isinstance(name, str):
                raise LabelError(f"label {i}: name must be a string, got {type(name).__name__}")
            if name == "":
                raise LabelError(f"label {i}: name is empty")
            if name in index:
                raise LabelError(
                    f"duplicate label name {name!r} (ids {index[name]} and {i})"
                )
            index[name] = i
        self._names = tuple(names)
        self._index = index
        self._descriptions = self._parse_descriptions(descriptions)
        self._parents = self._parse_parents(parents)

    # ------------------------------------------------------------------ construction
    def _parse_descriptions(self, descriptions: Any) -> tuple[str | None, ...] | None:
        if descriptions is None:
            return None
        if isinstance(descriptions, Mapping):
            out: list[str | None] = [None] * len(self._names)
            for name, text in descriptions.items():
                out[self.index(name)] = None if text is None else str(text)
            return tuple(out)
        descriptions = list(descriptions)
        if len(descriptions) != len(self._names):
            raise LabelError(
                f"{len(descriptions)} descriptions given for {len(self._names)} labels"
            )
        return tuple(None if d is None else str(d) for d in descriptions)

    def _parse_parents(self, parents: Any) -> tuple[tuple[int, ...], ...] | None:
        if parents is None:
            return None
        out: list[list[int]] = [[] for _ in self._names]
        for child, ps in parents.items():
            c = self.index(child)
            if isinstance(ps, str):
                ps = [ps]
            for p in ps:
                if p not in self._index:
                    raise UnknownLabelError(
                        f"parent {p!r} of label {child!r} is not a label of this space"
                    )
                pid = self._index[p]
                if pid == c:
                    raise LabelError(f"label {child!r} is its own parent")
                if pid not in out[c]:
                    out[c].append(pid)
        result = tuple(tuple(p) for p in out)
        _check_acyclic(self._names, result)
        return result

    # ------------------------------------------------------------------ lookups
    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self):
        return iter(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __getitem__(self, i: int) -> str:
        return self.name(i)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSpace):
            return NotImplemented
        return (
            self._names == other._names
            and self._descriptions == other._descriptions
            and self._parents == other._parents
        )

    def __hash__(self) -> int:
        return hash(self._names)

    def __repr__(self) -> str:
        head = ", ".join(repr(n) for n in self._names[:5])
        more = ", ..." if len(self._names) > 5 else ""
        extra = ", hierarchical" if self._parents is not None else ""
        return f"LabelSpace([{head}{more}], n_labels={len(self)}{extra})"

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def descriptions(self) -> tuple[str | None, ...] | None:
        return self._descriptions

    @property
    def is_hierarchical(self) -> bool:
        return self._parents is not None

    def name(self, i: int) -> str:
        """The name of label id ``i``."""
        n = len(self._names)
        if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= i < n:
            raise UnknownLabelError(f"label id {i!r} is not in 0..{n - 1}")
        return self._names[int(i)]

    def index(self, name: str) -> int:
        """The id of label ``name``."""
        try:
            return self._index[name]
        except (KeyError, TypeError):
            raise UnknownLabelError(f"unknown label {name!r}") from None

    def indices(self, names: Iterable[str]) -> np.ndarray:
        """Ids (int64) of several names, in order."""
        return np.array([self.index(n) for n in names], dtype=np.int64)

    def names_of(self, ids: Iterable[int]) -> list[str]:
        """Names of several ids, in order."""
        return [self.name(int(i)) for i in ids]

    def ids_in(self, target: LabelSpace) -> np.ndarray:
        """For each label of this space, its id in ``target`` matched by name, -1 where
        ``target`` lacks it (int64, never a smaller dtype)."""
        index = target._index
        return np.fromiter((index.get(n, -1) for n in self._names), dtype=np.int64,
                           count=len(self._names))

    def union(self, other: LabelSpace) -> LabelSpace:
        """This space's labels, then ``other``'s labels that it lacks (in ``other``'s order)."""
        extra = [n for n in other._names if n not in self._index]
        return self if not extra else LabelSpace(self._names + tuple(extra))

    def reindex(self, Y: Any, target: LabelSpace) -> tuple[Any, list[str]]:
        """``Y`` (n_samples, len(self)) as columns of ``target``, matched by name.

        Returns ``(Y_target, unknown)``: a CSR float32 0/1 (n_samples, len(target)) whose
        columns are ``target``'s labels (its labels that this space lacks have no positives),
        and the names of this space's labels that ``target`` lacks (their columns are left
        out of ``Y_target``: the caller decides whether that is an error, a warning or a
        miss). The one place where label columns are matched by name.
        """
        import scipy.sparse as sp

        M = sp.csr_matrix(Y)
        if M.shape[1] != len(self):
            raise LabelError(f"Y has {M.shape[1]} columns for {len(self)} labels")
        col = self.ids_in(target)
        unknown = [self._names[j] for j in np.flatnonzero(col < 0)]
        if (not unknown and len(target) == len(self) and M.dtype == np.float32
                and M.has_canonical_format and np.array_equal(col, np.arange(len(self)))):
            return M, []
        M = M.tocoo()
        new = col[M.col.astype(np.int64)]
        keep = new >= 0
        rows = M.row.astype(np.int64)[keep]
        out = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows, new[keep])),
                            shape=(M.shape[0], len(target)))
        out.sum_duplicates()
        out.data[:] = 1
        out.sort_indices()
        return out, unknown

    def description(self, label: int | str) -> str | None:
        i = self.index(label) if isinstance(label, str) else int(label)
        self.name(i)
        return None if self._descriptions is None else self._descriptions[i]

    # ------------------------------------------------------------------ hierarchy
    def parents(self, label: int | str) -> tuple[int, ...]:
        """Ids of the direct parents of a label (empty without a hierarchy)."""
        i = self.index(label) if isinstance(label, str) else int(label)
        self.name(i)
        return () if self._parents is None else self._parents[i]

    def ancestors(self, label: int | str) -> frozenset[int]:
        """Ids of all ancestors of a label, excluding itself."""
        seen: set[int] = set()
        stack = list(self.parents(label))
        while stack:
            p = stack.pop()
            if p not in seen:
                seen.add(p)
                stack.extend(self.parents(p))
        return frozenset(seen)

    def roots(self) -> list[int]:
        """Ids of labels without parents."""
        return [i for i in range(len(self)) if not self.parents(i)]

    def ancestor_matrix(self):
        """A CSR (n_labels, n_labels) 0/1 matrix A with A[i, j] = 1 when j is i or an ancestor of i."""
        import scipy.sparse as sp

        rows: list[int] = []
        cols: list[int] = []
        for i in range(len(self)):
            anc = sorted(self.ancestors(i) | {i})
            rows.extend([i] * len(anc))
            cols.extend(anc)
        n = len(self)
        data = np.ones(len(rows), dtype=np.float32)
        return sp.csr_matrix(
            (data, (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64))), shape=(n, n)
        )

    def close_under_ancestors(self, Y):
        """Y (n_samples, n_labels) CSR with every positive label's ancestors set positive too."""
        if self._parents is None:
            return Y
        Z = (Y @ self.ancestor_matrix()).tocsr()
        Z.data[:] = 1
        Z.eliminate_zeros()
        Z.sort_indices()
        return Z.astype(np.float32)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"format": _FORMAT, "names": list(self._names)}
        if self._descriptions is not None:
            d["descriptions"] = list(self._descriptions)
        if self._parents is not None:
            d["parents"] = {
                self._names[i]: [self._names[p] for p in ps]
                for i, ps in enumerate(self._parents)
                if ps
            }
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LabelSpace:
        if not isinstance(d, Mapping) or "names" not in d:
            raise LabelError("a label space needs a 'names' list")
        fmt = d.get("format", _FORMAT)
        if fmt != _FORMAT:
            raise LabelError(f"unsupported label space format {fmt!r} (expected {_FORMAT!r})")
        return cls(d["names"], descriptions=d.get("descriptions"), parents=d.get("parents"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> LabelSpace:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise LabelError(f"label space JSON is malformed: {e}") from None
        return cls.from_dict(d)

    @classmethod
    def range(cls, n: int) -> LabelSpace:
        """A label space whose names are the ids as strings: '0', '1', ..."""
        return cls([str(i) for i in range(n)])


def few_names(names: Sequence[str], limit: int = 5) -> str:
    """``'a', 'b', 'c' and 4 more``: a few names for a one-line message."""
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_acyclic(names: Sequence[str], parents: Sequence[Sequence[int]]) -> None:
    """Raise LabelError naming a cycle if the parent graph has one (iterative DFS)."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = [WHITE] * len(names)
    for start in range(len(names)):
        if colour[start] != WHITE:
            continue
        stack = [(start, iter(parents[start]))]
        path = [start]
        colour[start] = GREY
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = BLACK
                stack.pop()
                path.pop()
            elif colour[nxt] == GREY:
                cyc = path[path.index(nxt):] + [nxt]
                raise LabelError(
                    "label hierarchy has a cycle: " + " -> ".join(names[c] for c in cyc)
                )
            elif colour[nxt] == WHITE:
                colour[nxt] = GREY
                stack.append((nxt, iter(parents[nxt])))
                path.append(nxt)
