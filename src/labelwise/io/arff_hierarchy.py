"""Which ARFF attributes are labels, and their hierarchy.

:func:`label_plan` applies the rules listed in :mod:`labelwise.io.arff` (``labels=``,
``xml=``, ``n_labels=``, Clus hierarchical attribute, sibling XML, MEKA ``-C n``). Two label
sources are parsed here:

MULAN XML label file
    ``<labels xmlns="http://mulan.sourceforge.net/labels"><label name="A"/>...</labels>``.
    Each ``<label name=...>`` names one {0,1} attribute of the ARFF file; the label order is the
    document order. A ``<label>`` nested inside another makes the outer one its parent (a
    MULAN label hierarchy). Parsed with the standard library's ``xml.etree`` (expat: no DTD is
    loaded and nothing is fetched). When no XML is named, ``<stem>.xml`` beside the ARFF is
    used, where the stem drops trailing ``-train``/``-test``/``-sparse``/``-valid`` parts
    (``yeast-train.arff`` -> ``yeast.xml``, ``Corel5k-train-sparse.arff`` -> ``Corel5k.xml``).

Clus hierarchical attribute
    ``@ATTRIBUTE class hierarchical <spec>``. ``spec`` is a comma-separated list that is either
    a *tree* of node paths (``01,01/01,01/01/03``: every node is a label named by its full path,
    whose parent is the path minus its last part; a path whose prefixes are not listed gets
    them added as labels) or a *DAG* of ``parent/child`` edges (``root/GO1,GO1/GO2``: the node
    names are the labels, ``root`` is not a label). The spec is a DAG when any item starts
    with ``root/``; otherwise a tree.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataFormatError

__all__ = [
    "Attribute",
    "LabelPlan",
    "label_plan",
    "XmlLabels",
    "read_label_xml",
    "find_label_xml",
    "ClusHierarchy",
    "parse_clus_spec",
]

_MEKA_C = re.compile(r"(?:^|[\s:])-C\s+(-?\d+)")


@dataclass
class Attribute:
    """One ``@attribute`` of an ARFF header."""

    name: str
    kind: str  # "numeric" | "nominal" | "hierarchical"
    line: int
    categories: tuple[str, ...] = ()
    spec: str = ""


_SPLIT_SUFFIX = re.compile(r"[-_.](train|test|sparse|valid|validation|trainvalid)$", re.IGNORECASE)


@dataclass
class XmlLabels:
    """Label names from a MULAN XML file, in document order, with parents (if nested)."""

    names: list[str]
    parents: dict[str, list[str]]
    path: str


def find_label_xml(arff_path: Path) -> Path | None:
    """``<stem>.xml`` beside ``arff_path`` (stem without -train/-test/-sparse parts), or None."""
    name = arff_path.name
    for ext in (".gz", ".arff"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
    stem = name
    while True:
        cand = arff_path.with_name(stem + ".xml")
        if cand.is_file():
            return cand
        shorter = _SPLIT_SUFFIX.sub("", stem)
        if shorter == stem or not shorter:
            return None
        stem = shorter


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _line_of(text: str, name: str) -> int | None:
    for quote in ('"', "'"):
        pos = text.find(f"name={quote}{name}{quote}")
        if pos >= 0:
            return text.count("\n", 0, pos) + 1
    return None


def read_label_xml(path: str | Path) -> XmlLabels:
    """Parse a MULAN label XML file; raise DataFormatError naming the file (and line) on trouble."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise DataFormatError(f"cannot read label XML: {e.strerror or e}", path=str(p)) from None
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as e:
        line = e.position[0] if getattr(e, "position", None) else None
        raise DataFormatError(f"malformed label XML: {e}", path=str(p), line=line) from None
    text = raw.decode("utf-8", errors="replace")
    if _local(root.tag) != "labels":
        raise DataFormatError(
            f"root element is <{_local(root.tag)}>, expected <labels> (MULAN label file)",
            path=str(p),
            line=1,
        )
    names: list[str] = []
    parents: dict[str, list[str]] = {}
    seen: set[str] = set()
    stack: list[tuple[ET.Element, str | None]] = [(c, None) for c in reversed(list(root))]
    while stack:
        el, parent = stack.pop()
        if _local(el.tag) != "label":
            continue
        name = el.get("name")
        if name is None or name == "":
            raise DataFormatError("a <label> element has no name attribute", path=str(p))
        if name in seen:
            raise DataFormatError(
                f"label {name!r} is listed twice", path=str(p), line=_line_of(text, name)
            )
        seen.add(name)
        names.append(name)
        if parent is not None:
            parents[name] = [parent]
        stack.extend((c, name) for c in reversed(list(el)))
    if not names:
        raise DataFormatError("label XML lists no <label> elements", path=str(p))
    return XmlLabels(names=names, parents=parents, path=str(p))


def xml_label_line(xml: XmlLabels, name: str) -> int | None:
    """1-based line of ``name=...`` for ``name`` in the XML file (for error messages)."""
    try:
        text = Path(xml.path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return _line_of(text, name)


@dataclass
class ClusHierarchy:
    """Labels of a Clus hierarchical attribute: names in order, parents, and the spec kind."""

    names: list[str]
    parents: dict[str, list[str]]
    kind: str  # "tree" or "dag"


def parse_clus_spec(spec: str, *, path: str, line: int, attribute: str) -> ClusHierarchy:
    """Parse the ``hierarchical`` spec of a Clus attribute (see the module docstring)."""
    items = [s.strip() for s in spec.split(",")]
    if not spec.strip() or any(s == "" for s in items):
        raise DataFormatError(
            "hierarchical spec has an empty item (expected 'a,a/b,...' or 'root/a,a/b,...')",
            path=path,
            line=line,
            field=attribute,
        )
    names: list[str] = []
    index: set[str] = set()
    parents: dict[str, list[str]] = {}

    def add(name: str) -> None:
        if name not in index:
            index.add(name)
            names.append(name)

    if any(s.split("/", 1)[0] == "root" and "/" in s for s in items):
        for item in items:
            parts = item.split("/")
            if len(parts) != 2 or not parts[0] or not parts[1]:
                raise DataFormatError(
                    f"DAG hierarchy item {item!r} is not a 'parent/child' edge",
                    path=path,
                    line=line,
                    field=attribute,
                )
            parent, child = parts
            if child == "root":
                raise DataFormatError(
                    f"DAG hierarchy item {item!r} makes 'root' a child",
                    path=path,
                    line=line,
                    field=attribute,
                )
            if parent != "root":
                add(parent)
            add(child)
            if parent != "root":
                ps = parents.setdefault(child, [])
                if parent not in ps:
                    ps.append(parent)
        return ClusHierarchy(names=names, parents=parents, kind="dag")
    for item in items:
        parts = item.split("/")
        if any(p == "" for p in parts):
            raise DataFormatError(
                f"tree hierarchy path {item!r} has an empty part",
                path=path,
                line=line,
                field=attribute,
            )
        for depth in range(1, len(parts) + 1):
            node = "/".join(parts[:depth])
            if node not in index:
                add(node)
                if depth > 1:
                    parents[node] = ["/".join(parts[: depth - 1])]
    return ClusHierarchy(names=names, parents=parents, kind="tree")


# ---------------------------------------------------------------------------- labels
@dataclass
class LabelPlan:
    """Which attributes are labels, their names and parents, and where that came from."""

    names: list[str]
    label_of_attr: np.ndarray  # attribute index -> label id, or -1
    parents: dict[str, list[str]]
    source: str
    xml_path: str | None = None
    clus: ClusHierarchy | None = None
    clus_attr: int = -1
    hierarchy_path: str | None = None
    hierarchy_line: int | None = None


def _unescape(name: str) -> str:
    return re.sub(r"\\(.)", r"\1", name)


def label_plan(
    p: Path, relation: str, attrs: list[Attribute], labels, xml, n_labels, label_location
) -> LabelPlan:
    """Decide which attributes are labels (rules in :mod:`labelwise.io.arff`)."""
    path = str(p)
    n_attr = len(attrs)
    index: dict[str, int] = {}
    twice: set[str] = set()
    for i, a in enumerate(attrs):
        if a.name in index:
            twice.add(a.name)
        index.setdefault(a.name, i)
    hier = [i for i, a in enumerate(attrs) if a.kind == "hierarchical"]
    explicit = labels is not None or xml is not None or n_labels is not None
    if hier and (explicit or len(hier) > 1):
        a = attrs[hier[1] if len(hier) > 1 and not explicit else hier[0]]
        why = (
            "a second hierarchical attribute"
            if not explicit
            else ("a hierarchical attribute can only hold the labels (drop labels=/xml=/n_labels=)")
        )
        raise DataFormatError(why, path=path, line=a.line, field=a.name)
    if hier:
        a = attrs[hier[0]]
        clus = parse_clus_spec(a.spec, path=path, line=a.line, attribute=a.name)
        return LabelPlan(
            names=clus.names,
            label_of_attr=np.full(n_attr, -1, dtype=np.int64),
            parents=clus.parents,
            source="clus-hierarchical",
            clus=clus,
            clus_attr=hier[0],
            hierarchy_path=path,
            hierarchy_line=a.line,
        )
    parents: dict[str, list[str]] = {}
    xml_path: str | None = None
    xml_obj = None
    if labels is not None:
        wanted = [str(n) for n in labels]
        source = "labels-argument"
        for n in wanted:
            if n not in index:
                raise DataFormatError(f"labels= names {n!r}, which is not an attribute", path=path)
        chosen = [index[n] for n in wanted]
    elif xml is not None or n_labels is None and (found := find_label_xml(p)) is not None:
        xml_file = Path(xml) if xml is not None else found
        xml_obj = read_label_xml(xml_file)
        xml_path = xml_obj.path
        source = "mulan-xml"
        unesc: dict[str, list[int]] = {}
        for i, a in enumerate(attrs):
            unesc.setdefault(_unescape(a.name), []).append(i)
        chosen = []
        for n in xml_obj.names:
            if n in index:
                chosen.append(index[n])
            elif len(unesc.get(_unescape(n), [])) == 1:
                chosen.append(unesc[_unescape(n)][0])
            else:
                raise DataFormatError(
                    f"label {n!r} is not an attribute of {path}",
                    path=xml_path,
                    line=xml_label_line(xml_obj, n),
                )
        parents = {
            attrs[chosen[xml_obj.names.index(c)]].name: [
                attrs[chosen[xml_obj.names.index(q)]].name for q in ps
            ]
            for c, ps in xml_obj.parents.items()
        }
    else:
        if n_labels is not None:
            n, source = n_labels, "n_labels-argument"
            if isinstance(n, bool) or not isinstance(n, int | np.integer):
                raise DataFormatError(f"n_labels must be an integer, got {n!r}", path=path)
            if label_location is not None:
                if n <= 0:
                    raise DataFormatError(
                        "n_labels must be positive with label_location", path=path
                    )
                n = n if label_location == "start" else -n
        else:
            m = _MEKA_C.search(relation)
            if m is None:
                raise DataFormatError(
                    "cannot tell which attributes are labels: no XML label file beside it "
                    "(looked for <stem>.xml), no MEKA '-C n' in @relation and no Clus "
                    "hierarchical attribute; pass labels=, xml= or n_labels=",
                    path=path,
                )
            n, source = int(m.group(1)), "meka-relation"
        n = int(n)
        if n == 0 or abs(n) > n_attr:
            raise DataFormatError(
                f"{'-C' if source == 'meka-relation' else 'n_labels'} {n} does not fit "
                f"{n_attr} attributes",
                path=path,
                field="@relation" if source == "meka-relation" else "n_labels",
            )
        chosen = list(range(n)) if n > 0 else list(range(n_attr + n, n_attr))
    label_of_attr = np.full(n_attr, -1, dtype=np.int64)
    label_names: set[str] = set()
    for k, i in enumerate(chosen):
        a = attrs[i]
        if a.name in label_names:
            raise DataFormatError(
                "two label attributes share this name", path=path, line=a.line, field=a.name
            )
        label_names.add(a.name)
        if a.name in twice and source in ("labels-argument", "mulan-xml"):
            raise DataFormatError(
                "label names an attribute declared more than once (ambiguous)",
                path=path,
                line=a.line,
                field=a.name,
            )
        if label_of_attr[i] >= 0:
            raise DataFormatError("attribute named twice as a label", path=path, field=a.name)
        if not (a.kind == "numeric" or (a.kind == "nominal" and set(a.categories) == {"0", "1"})):
            raise DataFormatError(
                "label attribute must be nominal {0,1} (or numeric 0/1), declared as "
                + ("{" + ",".join(a.categories) + "}" if a.kind == "nominal" else a.kind),
                path=path,
                line=a.line,
                field=a.name,
            )
        label_of_attr[i] = k
    return LabelPlan(
        names=[attrs[i].name for i in chosen],
        label_of_attr=label_of_attr,
        parents=parents,
        source=source,
        xml_path=xml_path,
        hierarchy_path=xml_path,
    )
