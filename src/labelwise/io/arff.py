"""Multi-label ARFF reader: MULAN (+ XML label file), MEKA (``-C n``) and Clus hierarchical.

ARFF syntax accepted
--------------------
``@relation``, ``@attribute``, ``@data`` (keywords in any case); ``%`` starts a comment (a
whole line, or the rest of a line outside quotes); blank lines are skipped. Names and values
may be quoted with ``'`` or ``"`` and use backslash escapes (``'Swainson\\'s Thrush'``);
unquoted tokens are taken literally (``TAG_m\\'usica`` keeps its backslash, as MULAN does).
Attribute types: ``numeric``/``real``/``integer``, nominal ``{a,b,...}`` and Clus
``hierarchical <spec>``; ``string``, ``date`` and ``relational`` are refused. Data rows are
dense (``v1,v2,...``, one value per attribute) or sparse (``{index value, ...}`` with 0-based
attribute indices in increasing order; omitted values are 0, i.e. the first category of a
nominal attribute; ``{}`` is a row of zeros). Numbers follow Java's ``Double.valueOf``
(``NaN``/``Infinity`` accepted); a finite number beyond the float32 range is an error. An
unquoted relation name is the rest of its line (MEKA writes ``@relation Toy: -C 2``). Files
are UTF-8 unless ``encoding=`` says otherwise; ``.gz`` files are decompressed on the fly.

Which attributes are labels (first rule that applies)
-----------------------------------------------------
1. ``labels=[names]``: those attributes, in that order.
2. ``xml=path``: a MULAN XML label file (label order and hierarchy from the XML).
3. ``n_labels=n``: MEKA convention, ``n > 0`` the first n attributes, ``n < 0`` the last |n|;
   with ``label_location='start'|'end'`` a positive n is taken from that end.
4. A Clus ``hierarchical`` attribute: its spec gives the labels (tree paths or DAG edges, see
   :mod:`labelwise.io.arff_hierarchy`); each row's value lists labels separated by ``@``. Y is
   closed under ancestors (a Clus class value lists the most specific labels; their ancestors
   are implied) and ``meta['ancestor_labels_added']`` counts the entries this added. A ``?``
   class value is an error; ``root`` in a DAG row stands for no label.
5. ``<stem>.xml`` beside the file (``yeast-train.arff`` -> ``yeast.xml``); it beats a stale
   MEKA ``-C`` left in the relation name (as in MULAN's medical files).
6. ``-C n`` in the relation name (MEKA), e.g. ``@relation 'Enron: -C 53'``.

Label attributes must be nominal ``{0,1}`` (or numeric) and every value 0 or 1; anything else
is an error naming ``file:line`` and the attribute. A MULAN XML hierarchy (nested labels)
becomes the label space's parents; its Y is read as written (not closed under ancestors).

Features and the choice of X
----------------------------
Every other attribute is a feature (``n_features`` = attributes - label attributes, and less
the Clus ``hierarchical`` attribute), in file order. Numeric values become float32; a nominal
feature becomes its *ordinal code* (0-based position in the declared category list, which
``meta['nominal_features']`` records; not one-hot). Missing values ``?`` become NaN; they are
not an error and raise no warning: ``meta['missing_values']`` counts the NaN values of X.
X is a dense float32 array when every data row is dense, and a CSR float32 matrix (explicit
zeros dropped, NaN kept) when any row is sparse (MULAN's text sets), since sparse files are
sparse on purpose. Two features may share a name (a real Clus file does;
``meta['duplicate_attribute_names']`` lists them); a label name must be unique.

``meta`` also records ``source``, ``relation``, ``label_source`` (``labels-argument``,
``mulan-xml``, ``n_labels-argument``, ``clus-hierarchical`` or ``meka-relation``),
``label_xml`` (the XML file used), ``dense_rows``/``sparse_rows`` and ``x_rule``.

Rows are read in blocks of lines and parsed with numpy (no Python object per value outside
one block); a block that the fast path cannot take is parsed line by line, which is also
where errors are located. Errors are :class:`~labelwise.errors.DataFormatError` with
``path:line: field: reason``.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

from ..dataset import Dataset
from ..errors import DataFormatError, LabelError
from ..labels import LabelSpace
from .arff_hierarchy import Attribute, label_plan
from .arff_rows import RowParser, split_values

__all__ = ["read_arff"]

_BLOCK_BYTES = 1 << 18


def read_arff(
    path: str | os.PathLike[str],
    *,
    labels: Sequence[str] | None = None,
    xml: str | os.PathLike[str] | None = None,
    n_labels: int | None = None,
    label_location: str | None = None,
    encoding: str = "utf-8",
) -> Dataset:
    """Read a multi-label ARFF file (MULAN, MEKA or Clus) into a :class:`~labelwise.Dataset`.

    See the module docstring for the syntax, how label attributes are found, how nominal
    features are encoded (ordinal codes) and when X is dense or CSR. ``dataset.meta`` records
    the relation, the label source (and XML path), nominal categories, missing-value count
    and row kinds.
    """
    p = Path(path)
    spath = str(p)
    if label_location not in (None, "start", "end"):
        raise DataFormatError(
            f"label_location must be 'start' or 'end', got {label_location!r}", path=spath
        )
    try:
        opener = gzip.open if p.name.lower().endswith(".gz") else open
        fh = opener(p, "rb")
    except OSError as e:
        raise DataFormatError(f"cannot open: {e.strerror or e}", path=spath) from None
    with fh:
        reader = _LineReader(fh, spath, encoding)
        relation, attrs = _read_header(reader)
        plan = label_plan(p, relation, attrs, labels, xml, n_labels, label_location)
        parser = RowParser(
            path=spath,
            attrs=attrs,
            label_of_attr=plan.label_of_attr,
            hierarchy=plan.clus,
            hierarchical_attr=plan.clus_attr,
        )
        while True:
            block = reader.block()
            if block is None:
                break
            first_line, lines = block
            parser.feed(first_line, lines)
    X, Y, info = parser.finish(n_labels=len(plan.names))
    try:
        space = LabelSpace(plan.names, parents=plan.parents or None)
    except LabelError as e:
        raise DataFormatError(
            f"label hierarchy: {e}", path=plan.hierarchy_path or spath, line=plan.hierarchy_line
        ) from None
    meta: dict = {
        "source": spath,
        "format": "arff",
        "relation": relation,
        "label_source": plan.source,
        "n_attributes": len(attrs),
    }
    seen: set[str] = set()
    dup = sorted({a.name for a in attrs if a.name in seen or seen.add(a.name)})
    if dup:
        meta["duplicate_attribute_names"] = dup
    if plan.xml_path is not None:
        meta["label_xml"] = plan.xml_path
    if space.is_hierarchical:
        before = Y.nnz
        if plan.clus is not None:
            Y = space.close_under_ancestors(Y)
            meta["ancestor_labels_added"] = int(Y.nnz - before)
        meta["hierarchy"] = plan.clus.kind if plan.clus is not None else "xml"
    nominal = {
        a.name: list(a.categories)
        for i, a in enumerate(attrs)
        if a.kind == "nominal" and plan.label_of_attr[i] < 0
    }
    if nominal:
        meta["nominal_features"] = nominal
        meta["nominal_encoding"] = "ordinal"
    meta.update(info)
    return Dataset(X, Y, space, meta=meta)


# ---------------------------------------------------------------------------- lines
class _LineReader:
    """Lines of a binary file, decoded, with 1-based numbers; header lines one at a time,
    data lines in blocks of about 256 KiB."""

    def __init__(self, fh, path: str, encoding: str) -> None:
        self.fh = fh
        self.path = path
        self.encoding = encoding
        self.lineno = 0
        self.pending: list[str] = []

    def _decode(self, raw: list[bytes], first: int) -> list[str]:
        try:
            text = b"".join(raw).decode(self.encoding)
        except UnicodeDecodeError:
            for k, r in enumerate(raw):
                try:
                    r.decode(self.encoding)
                except UnicodeDecodeError as e:
                    raise DataFormatError(
                        f"bytes that are not valid {self.encoding} at column {e.start + 1} "
                        "(pass encoding=...)",
                        path=self.path,
                        line=first + k,
                    ) from None
            raise DataFormatError(f"not valid {self.encoding}", path=self.path) from None
        except LookupError:
            raise DataFormatError(f"unknown encoding {self.encoding!r}", path=self.path) from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return lines

    def _read(self, size: int) -> list[bytes]:
        try:
            return self.fh.readlines(size)
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            what = "truncated" if isinstance(e, EOFError) else "corrupt"
            done = self.lineno + len(self.pending)
            after = f" after line {done}" if done else ""
            raise DataFormatError(f"{what} gzip data{after}: {e}", path=self.path) from None

    def block(self) -> tuple[int, list[str]] | None:
        first = self.lineno + 1
        if self.pending:
            lines, self.pending = self.pending, []
        else:
            raw = self._read(_BLOCK_BYTES)
            if not raw:
                return None
            lines = self._decode(raw, first)
        self.lineno += len(lines)
        return first, lines

    def next_line(self) -> tuple[int, str] | None:
        if not self.pending:
            raw = self._read(1 << 16)
            if not raw:
                return None
            self.pending = self._decode(raw, self.lineno + 1)
        self.lineno += 1
        return self.lineno, self.pending.pop(0)


# ---------------------------------------------------------------------------- header
def _take_name(text: str, path: str, line: int) -> tuple[str, str]:
    """Split ``text`` into its first (maybe quoted) name and the rest."""
    text = text.lstrip()
    if not text:
        raise DataFormatError("a name is missing", path=path, line=line)
    if text[0] in "'\"":
        values, end = split_values(text, path=path, line=line, first_only=True)
        name = values[0][0]
        return name, text[end:]
    m = re.match(r"[^\s{]+", text)
    if m is None:
        raise DataFormatError("a name is missing", path=path, line=line)
    return m.group(0), text[m.end() :]


def _parse_attribute(rest: str, path: str, line: int) -> Attribute:
    name, rest = _take_name(rest, path, line)
    if name == "":
        raise DataFormatError("attribute name is empty", path=path, line=line)
    rest = rest.strip()
    low = rest.lower()
    word = re.match(r"[a-z]*", low).group(0)
    if word in ("numeric", "real", "integer") and (
        len(rest) == len(word) or rest[len(word)] in " \t%"
    ):
        tail = rest[len(word) :].strip()
        if tail and not tail.startswith("%"):
            raise DataFormatError(
                f"unexpected text {tail[:30]!r} after type {word}", path=path, line=line, field=name
            )
        return Attribute(name, "numeric", line)
    if rest.startswith("{"):
        values, end = split_values(rest[1:], path=path, line=line, closing="}")
        tail = rest[1 + end :].strip()
        if tail and not tail.startswith("%"):
            raise DataFormatError(
                f"unexpected text {tail[:30]!r} after the nominal values",
                path=path,
                line=line,
                field=name,
            )
        cats = tuple(v for v, _ in values)
        if not cats:
            raise DataFormatError(
                "nominal attribute lists no values", path=path, line=line, field=name
            )
        if len(set(cats)) != len(cats):
            raise DataFormatError(
                "nominal attribute lists a value twice", path=path, line=line, field=name
            )
        return Attribute(name, "nominal", line, categories=cats)
    if word == "hierarchical":
        return Attribute(name, "hierarchical", line, spec=rest[len(word) :].strip())
    if word in ("string", "date", "relational"):
        raise DataFormatError(
            f"{word} attributes are not supported (only numeric, nominal and Clus hierarchical)",
            path=path,
            line=line,
            field=name,
        )
    shown = rest.split()[0][:40] if rest.split() else "(nothing)"
    raise DataFormatError(
        f"unknown attribute type {shown!r} (expected numeric, real, integer, {{...}} or hierarchical)",
        path=path,
        line=line,
        field=name,
    )


def _read_header(reader: _LineReader) -> tuple[str, list[Attribute]]:
    path = reader.path
    relation: str | None = None
    attrs: list[Attribute] = []
    names: dict[str, int] = {}
    while True:
        item = reader.next_line()
        if item is None:
            raise DataFormatError(
                f"end of file after line {reader.lineno} without an @data line",
                path=path,
                line=reader.lineno or None,
            )
        line, text = item
        s = text.strip()
        if not s or s.startswith("%"):
            continue
        m = re.match(r"@([A-Za-z]+)", s)
        key = m.group(1).lower() if m else None
        if key == "relation":
            if relation is not None:
                raise DataFormatError("a second @relation line", path=path, line=line)
            rest = s[m.end() :]
            if rest and not rest[0].isspace():
                raise DataFormatError("expected a space after @relation", path=path, line=line)
            if rest.strip()[:1] in ("'", '"'):
                relation, _ = _take_name(rest, path, line)
            else:  # unquoted: the rest of the line (MEKA writes "@relation Toy: -C 2")
                relation = rest.split("%", 1)[0].strip()
                if not relation:
                    raise DataFormatError("the relation name is missing", path=path, line=line)
            continue
        if relation is None:
            raise DataFormatError(f"expected @relation before {s[:30]!r}", path=path, line=line)
        if key == "attribute":
            rest = s[m.end() :]
            if rest and not rest[0].isspace():
                raise DataFormatError("expected a space after @attribute", path=path, line=line)
            a = _parse_attribute(rest, path, line)
            names.setdefault(a.name, len(attrs))
            attrs.append(a)
        elif key == "data" and (s[m.end() :].strip() == "" or s[m.end() :].lstrip()[0] == "%"):
            if not attrs:
                raise DataFormatError("@data before any @attribute", path=path, line=line)
            return relation, attrs
        else:
            raise DataFormatError(
                f"expected @attribute or @data, found {s[:40]!r}", path=path, line=line
            )
