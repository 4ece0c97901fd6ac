"""Loaders for registered datasets that are not one file of a standard format.

``enron-berkeley`` (folder ``enron_with_categories``)
    Folders ``1`` .. ``8`` hold ``N.txt`` (an RFC-822 email with headers) and ``N.cats`` (one
    ``top,sub,frequency`` line per label; frequency = how many annotators chose it, >= 1).
    A row per email, ordered by folder then number; ids ``"<folder>/<N>"``. Labels are
    ``"top.sub"`` (``"3.6"``) in the order of ``categories.txt``, whose text becomes the
    description (``"Primary topics: california energy crisis / california politics"``).
    ``text="raw"`` (default) keeps the whole email exactly (headers included; line ends as
    written, some files use CRLF); ``text="body"`` keeps what follows the first blank line. Groups are the ``X-Origin`` header (mailbox owner),
    normalised to one spelling per owner: each ``-``-separated part capitalised
    (``KEAN-S`` and ``Kean-S`` -> ``Kean-S``).

``annif-titles`` (``documents.tsv``) and ``annif-fulltext`` (folder ``fulltext``)
    ``documents.tsv``: ``text<TAB><uri1> <uri2> ...`` per line. ``fulltext/N.txt`` is a
    document and ``fulltext/N.tsv`` its subjects, one ``<uri><TAB>label`` per line. Label
    names are the URIs without angle brackets, in the order of ``subjects.tsv`` (``<uri><TAB>
    Finnish label``, the description), followed by URIs the split uses that ``subjects.tsv``
    lacks, in first-seen order (the titles use one such, a dummy test subject; the full texts
    77, described by their own ``.tsv``). Parents come from the ``skos:broader`` statements of
    ``yso-archaeology.ttl``, read by a small line parser (Turtle as written by the YSO export:
    a statement starts at column 0 with its subject; ``skos:broader`` objects are prefixed
    names or ``<uri>``s separated by ``,``); links to concepts outside the label space are
    not representable and are counted in ``meta["broader_links_outside"]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..dataset import Dataset
from ..errors import DataFormatError
from ..labels import LabelSpace

__all__ = ["LOADERS", "load_enron_berkeley", "load_annif_titles", "load_annif_fulltext"]

_CATEGORY = re.compile(r"^(\d+)\.(\d+)\s+(.*\S)\s*$")
_GROUP = re.compile(r"^(\d+)\s+(.*\S)\s*$")
_BLANK_LINE = re.compile(r"\r?\n\r?\n")


# ---------------------------------------------------------------------- enron-berkeley
def _read_categories(path: Path) -> tuple[list[str], list[str]]:
    names: list[str] = []
    descriptions: list[str] = []
    groups: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if m := _CATEGORY.match(line):
                top, sub, text = m.groups()
                if top not in groups:
                    raise DataFormatError(
                        f"category {top}.{sub} before its group line", path=str(path), line=lineno
                    )
                names.append(f"{top}.{sub}")
                descriptions.append(f"{groups[top]}: {text}")
            elif m := _GROUP.match(line):
                groups[m.group(1)] = re.sub(r"\s*\(.*\)$", "", m.group(2))
    if not names:
        raise DataFormatError("no 'top.sub text' category lines", path=str(path))
    return names, descriptions


def normalise_origin(value: str) -> str:
    """One spelling per mailbox owner: ``KEAN-S`` / ``kean-s`` -> ``Kean-S``."""
    return "-".join(part.capitalize() for part in value.strip().split("-"))


def load_enron_berkeley(path: Path, *, text: str = "raw") -> Dataset:
    if text not in ("raw", "body"):
        raise DataFormatError(f"text={text!r}: expected 'raw' or 'body'")
    names, descriptions = _read_categories(path / "categories.txt")
    space = LabelSpace(names, descriptions=descriptions)
    index = {n: i for i, n in enumerate(names)}
    folders = sorted((d for d in path.iterdir() if d.is_dir()), key=lambda d: int(d.name))
    texts: list[str] = []
    rows: list[list[int]] = []
    groups: list[str] = []
    ids: list[str] = []
    for d in folders:
        for txt in sorted(d.glob("*.txt"), key=lambda p: int(p.stem)):
            cats = txt.with_suffix(".cats")
            if not cats.is_file():
                raise DataFormatError("email without its .cats file", path=str(cats))
            with open(txt, encoding="utf-8", newline="") as f:  # kept exactly (some are CRLF)
                raw = f.read()
            head, body = (_BLANK_LINE.split(raw, maxsplit=1) + [""])[:2]
            origin = None
            for line in head.splitlines():
                if line.startswith("X-Origin:"):
                    origin = normalise_origin(line[len("X-Origin:") :])
                    break
            if not origin:
                raise DataFormatError("X-Origin: header missing or empty", path=str(txt))
            texts.append(raw if text == "raw" else body)
            rows.append(_read_cats(cats, index))
            groups.append(origin)
            ids.append(f"{d.name}/{txt.stem}")
    return Dataset(
        texts, rows, space, groups=groups, ids=ids,
        meta={"format": "enron-berkeley", "source": str(path), "text": text},
    )


def _read_cats(path: Path, index: dict[str, int]) -> list[int]:
    out: list[int] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.strip().split(",")
            if len(parts) != 3 or not all(p.isdigit() for p in parts):
                raise DataFormatError(
                    "expected 'top,sub,frequency' (three integers)", path=str(path), line=lineno
                )
            name = f"{parts[0]}.{parts[1]}"
            if name not in index:
                raise DataFormatError(
                    f"category {name} is not in categories.txt", path=str(path), line=lineno
                )
            if int(parts[2]) < 1:
                raise DataFormatError("frequency must be >= 1", path=str(path), line=lineno)
            if index[name] in out:
                raise DataFormatError(f"category {name} listed twice", path=str(path), line=lineno)
            out.append(index[name])
    return sorted(out)


# ---------------------------------------------------------------------- annif
def _uri(token: str, path: Path, lineno: int) -> str:
    if len(token) < 3 or token[0] != "<" or token[-1] != ">":
        raise DataFormatError(f"expected a <uri>, got {token!r}", path=str(path), line=lineno)
    return token[1:-1]


def _read_subject_file(path: Path) -> list[tuple[str, str]]:
    """``<uri><TAB>label`` lines (a leading BOM is allowed)."""
    out = []
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            uri, sep, label = line.partition("\t")
            if not sep:
                raise DataFormatError("expected '<uri><TAB>label'", path=str(path), line=lineno)
            out.append((_uri(uri.strip(), path, lineno), label.strip()))
    return out


def read_broader(path: Path) -> list[tuple[str, str]]:
    """(child URI, parent URI) pairs of the ``skos:broader`` statements of a Turtle file."""
    prefixes: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    subject: str | None = None

    def expand(term: str, lineno: int) -> str:
        term = term.strip()
        if term.startswith("<") and term.endswith(">"):
            return term[1:-1]
        prefix, sep, local = term.partition(":")
        if sep and prefix in prefixes:
            return prefixes[prefix] + local
        raise DataFormatError(f"cannot expand term {term!r}", path=str(path), line=lineno)

    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.startswith("@prefix"):
                m = re.match(r"@prefix\s+([\w-]*):\s*<([^>]*)>\s*\.", line)
                if not m:
                    raise DataFormatError("malformed @prefix", path=str(path), line=lineno)
                prefixes[m.group(1)] = m.group(2)
                continue
            if line.strip() and not line[0].isspace() and not line.startswith("#"):
                subject = expand(line.split()[0], lineno)
            m = re.search(r"(?:^|\s)skos:broader\s+([^;]*?)\s*[;.]\s*$", line)
            if m:
                if subject is None:
                    raise DataFormatError("skos:broader outside a statement", path=str(path), line=lineno)
                for obj in m.group(1).split(","):
                    pairs.append((subject, expand(obj, lineno)))
    return pairs


def _annif_space(root: Path, extra: list[tuple[str, str | None]]) -> tuple[LabelSpace, int]:
    subjects = _read_subject_file(root / "subjects.tsv")
    names = [u for u, _ in subjects]
    descriptions: list[str | None] = [d for _, d in subjects]
    known = set(names)
    for uri, desc in extra:
        if uri not in known:
            known.add(uri)
            names.append(uri)
            descriptions.append(desc)
    parents: dict[str, list[str]] = {}
    outside = 0
    for child, parent in read_broader(root / "yso-archaeology.ttl"):
        if child in known and parent in known:
            parents.setdefault(child, []).append(parent)
        else:
            outside += 1
    return LabelSpace(names, descriptions=descriptions, parents=parents), outside


def load_annif_titles(path: Path) -> Dataset:
    root = path.parent
    texts: list[str] = []
    uris: list[list[str]] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            text, sep, subjects = line.partition("\t")
            if not sep or "\t" in subjects:
                raise DataFormatError(
                    "expected 'text<TAB><uri> <uri> ...' (two fields)", path=str(path), line=lineno
                )
            texts.append(text)
            uris.append([_uri(t, path, lineno) for t in subjects.split()])
    space, outside = _annif_space(root, [(u, None) for row in uris for u in row])
    return _annif_dataset(texts, uris, space, outside, path, ids=None)


def load_annif_fulltext(path: Path) -> Dataset:
    root = path.parent
    docs = sorted(path.glob("*.txt"), key=lambda p: int(p.stem) if p.stem.isdigit() else p.stem)
    if not docs:
        raise DataFormatError("no *.txt documents", path=str(path))
    texts, uris, extra = [], [], []
    for doc in docs:
        subjects = _read_subject_file(doc.with_suffix(".tsv"))
        texts.append(doc.read_text(encoding="utf-8"))
        uris.append([u for u, _ in subjects])
        extra.extend(subjects)
    space, outside = _annif_space(root, extra)
    return _annif_dataset(texts, uris, space, outside, path, ids=[d.stem for d in docs])


def _annif_dataset(texts, uris, space, outside, path, *, ids) -> Dataset:
    rows = []
    for i, row in enumerate(uris):
        ids_ = [space.index(u) for u in row]
        if len(set(ids_)) != len(ids_):
            raise DataFormatError(f"row {i + 1}: a subject is listed twice", path=str(path))
        rows.append(sorted(ids_))
    return Dataset(
        texts, rows, space, ids=ids,
        meta={"format": "annif", "source": str(path), "broader_links_outside": outside},
    )


#: split format name -> loader(path, **options)
LOADERS: dict[str, Callable[..., Any]] = {
    "enron-berkeley": load_enron_berkeley,
    "annif-titles": load_annif_titles,
    "annif-fulltext": load_annif_fulltext,
}
