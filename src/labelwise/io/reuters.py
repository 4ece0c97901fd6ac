"""Reuters-21578 (Distribution 1.0) reader: the SGML files ``reut2-000.sgm`` .. ``reut2-021.sgm``.

Format
------
Each file (latin-1) holds ``<REUTERS TOPICS=.. LEWISSPLIT=.. CGISPLIT=.. OLDID=.. NEWID=..>``
elements with ``<DATE>``, ``<TOPICS><D>..</D>..</TOPICS>``, ``<PLACES>`` .. ``<COMPANIES>``,
``<UNKNOWN>`` and ``<TEXT>`` (``<TITLE>``, ``<DATELINE>``, ``<BODY>``; ``TYPE="BRIEF"`` texts have
a title only, ``TYPE="UNPROC"`` texts no inner tags). Tags must nest and close; a tag that is
not closed, closed out of order, or a ``<`` that starts no tag is an error naming ``file:line``.
Entities ``&lt; &gt; &amp; &quot; &#N;`` are unescaped (others are left as written).

Definitions
-----------
- ``split``: ``modapte-train`` = ``LEWISSPLIT="TRAIN"`` and ``TOPICS="YES"`` (9,603 docs);
  ``modapte-test`` = ``LEWISSPLIT="TEST"`` and ``TOPICS="YES"`` (3,299); ``all`` = every
  document (21,578).
- ``topics``: ``all`` keeps every document of the split, labelled with all its topics
  (documents without topics have no labels; 1,828 in ModApte train); the label space is every
  topic that occurs in the files read (120 in the full collection).
  ``r90`` = the topics with at least one ModApte-train and one ModApte-test document (90
  topics): documents keep only those topics, and documents left without one are not part of
  the setting. ModApte then gives 7,770 train / 3,019 test documents. NLTK's ApteMod corpus
  has 7,769 / 3,019 / 90: the same test set and topics, and one train document fewer (which
  one was not identified; the 7,775 ModApte train documents with a topic lose 5 whose topics
  are all outside R90).
  ``r10`` = the 10 topics with the most ModApte-train documents (ties by name):
  earn, acq, money-fx, grain, crude, trade, interest, wheat, ship, corn (9,603 -> 6,490 train /
  2,545 test documents). Both sets are computed from the files read, so train and test share one
  label space; label ids are in topic-name order.
- ``text``: ``title+body`` (title, a newline, body; either may be empty), ``title`` or
  ``body``. The body's end-of-story mark (``&#3;``, ETX) is removed and both are stripped of
  surrounding whitespace; for ``TYPE="UNPROC"`` the whole text is the body.
- A topic listed twice in one document is kept once, with a warning naming the documents
  (the distribution has two: NEWID 5467 lists ``corn`` twice, 19918 ``trade``).
- ``ids`` = NEWID (int64); ``groups`` = the story's day from ``<DATE>`` as ``YYYY-MM-DD``,
  for time-aware splits.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from ..dataset import Dataset, as_label_matrix
from ..errors import DataFormatError
from ..labels import LabelSpace

__all__ = ["read_reuters"]

_SPLITS = ("modapte-train", "modapte-test", "all")
_TOPICS = ("r90", "r10", "all")
_TEXTS = ("title+body", "title", "body")
_TAG = re.compile(r"<(/?)([A-Za-z!][A-Za-z0-9]*)([^<>]*)>")
_ATTR = re.compile(r'([A-Z]+)="([^"]*)"')
_ENTITY = re.compile(r"&(#[0-9]{1,7}|lt|gt|amp|quot);")
_DATE = re.compile(r"\s*([0-9]{1,2})-([A-Z]{3})-([0-9]{4})\b")
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    )
}
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def read_reuters(
    path: str | os.PathLike[str],
    *,
    split: str = "modapte-train",
    topics: str = "r90",
    text: str = "title+body",
) -> Dataset:
    """Read Reuters-21578 from its folder (or one ``.sgm`` file); see the module docstring."""
    for value, allowed, what in (
        (split, _SPLITS, "split"),
        (topics, _TOPICS, "topics"),
        (text, _TEXTS, "text"),
    ):
        if value not in allowed:
            raise DataFormatError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
    p = Path(path)
    files = sorted(p.glob("reut2-*.sgm")) if p.is_dir() else [p]
    if not files:
        raise DataFormatError("no reut2-*.sgm files in this folder", path=str(p))
    docs = [doc for f in files for doc in _parse_file(f)]

    train_count: Counter[str] = Counter()
    test_count: Counter[str] = Counter()
    every: set[str] = set()
    for d in docs:
        every.update(d["topics"])
        if d["topics_attr"] == "YES" and d["lewis"] == "TRAIN":
            train_count.update(d["topics"])
        elif d["topics_attr"] == "YES" and d["lewis"] == "TEST":
            test_count.update(d["topics"])
    if topics == "all":
        names = sorted(every)
    elif topics == "r90":
        names = sorted(t for t in train_count if test_count[t] > 0)
    else:
        names = sorted(sorted(train_count, key=lambda t: (-train_count[t], t))[:10])
    keep = set(names)
    index = {n: i for i, n in enumerate(names)}

    texts: list[str] = []
    rows: list[list[int]] = []
    ids: list[int] = []
    groups: list[str] = []
    repeated: list[int] = []
    for d in docs:
        if split != "all" and not (
            d["topics_attr"] == "YES"
            and d["lewis"] == ("TRAIN" if split == "modapte-train" else "TEST")
        ):
            continue
        labels = [t for t in d["topics"] if t in keep]
        if topics != "all" and not labels:
            continue
        if d["repeated"]:
            repeated.append(d["newid"])
        texts.append(_compose(d["title"], d["body"], text))
        rows.append(sorted(index[t] for t in labels))
        ids.append(d["newid"])
        groups.append(d["day"])
    if repeated:
        warnings.warn(
            f"{p}: {len(repeated)} document(s) list a topic twice (NEWID {', '.join(map(str, repeated))}); "
            "each topic is kept once",
            UserWarning,
            stacklevel=2,
        )
    meta = {"source": str(p), "format": "reuters", "split": split, "topics": topics, "text": text}
    return Dataset(
        texts,
        as_label_matrix(rows, len(names)),
        LabelSpace(names),
        groups=np.asarray(groups, dtype=str) if groups else np.zeros(0, dtype=str),
        ids=np.asarray(ids, dtype=np.int64),
        meta=meta,
    )


def _compose(title: str, body: str, mode: str) -> str:
    if mode == "title":
        return title
    if mode == "body":
        return body
    return f"{title}\n{body}" if title and body else title or body


def _unescape(s: str) -> str:
    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        if e[0] == "#":
            code = int(e[1:])
            return chr(code) if code <= 0x10FFFF else m.group(0)
        return _NAMED[e]

    return _ENTITY.sub(one, s)


def _parse_file(f: Path) -> list[dict]:
    try:
        data = f.read_bytes().decode("latin-1")
    except OSError as e:
        raise DataFormatError(f"cannot read: {e.strerror or e}", path=str(f)) from None
    name = str(f)

    def line_of(pos: int) -> int:
        return data.count("\n", 0, pos) + 1

    def fail(msg: str, pos: int) -> DataFormatError:
        return DataFormatError(msg, path=name, line=line_of(pos))

    docs: list[dict] = []
    stack: list[tuple[str, int]] = []  # (tag name, position)
    doc: dict | None = None
    fields: dict[str, tuple[int, int]] = {}  # tag -> (content start, end) of its last occurrence
    pos = 0
    for m in _TAG.finditer(data):
        stray = data.find("<", pos, m.start())
        if stray >= 0:
            raise fail("'<' that starts no tag (unterminated tag?)", stray)
        pos = m.end()
        closing, tag, attrs = m.group(1) == "/", m.group(2).upper(), m.group(3)
        if tag.startswith("!"):
            if stack:
                raise fail(f"declaration {m.group(0)[:30]!r} inside <{stack[-1][0]}>", m.start())
            continue
        if not closing:
            if tag == "REUTERS":
                if stack:
                    raise fail(
                        f"<REUTERS> inside <{stack[-1][0]}> (is <{stack[-1][0]}> closed?)",
                        m.start(),
                    )
                doc, fields = {"pos": m.start(), "attrs": dict(_ATTR.findall(attrs))}, {}
            elif not stack:
                raise fail(f"<{tag}> outside a <REUTERS> element", m.start())
            stack.append((tag, m.end()))
            continue
        if not stack or stack[-1][0] != tag:
            expected = f"</{stack[-1][0]}>" if stack else "no closing tag"
            raise fail(f"</{tag}> where {expected} was expected", m.start())
        _, start = stack.pop()
        if tag == "D" and len(stack) >= 1:
            fields.setdefault(f"D/{stack[-1][0]}", []).append((start, m.start()))  # type: ignore[arg-type]
        else:
            fields[tag] = (start, m.start())
        if tag == "REUTERS":
            docs.append(_document(data, doc, fields, fail))
    stray = data.find("<", pos)
    if stray >= 0:
        raise fail("'<' that starts no tag (unterminated tag?)", stray)
    if stack:
        raise fail(f"<{stack[-1][0]}> is never closed", stack[-1][1])
    return docs


def _document(data: str, doc: dict, fields: dict, fail) -> dict:
    attrs, at = doc["attrs"], doc["pos"]
    for key in ("TOPICS", "LEWISSPLIT", "NEWID"):
        if key not in attrs:
            raise fail(f"<REUTERS> without the {key} attribute", at)
    if not attrs["NEWID"].isdigit():
        raise fail(f"NEWID {attrs['NEWID']!r} is not a number", at)
    for tag in ("DATE", "TOPICS", "TEXT"):
        if tag not in fields:
            raise fail(f"document NEWID={attrs['NEWID']} has no <{tag}>", at)
    s, e = fields["TOPICS"]
    inner = data[s:e]
    if re.fullmatch(r"(?:<D>[^<>]*</D>)*", inner) is None:
        raise fail("<TOPICS> must hold only <D>..</D> elements", s)
    listed = [_unescape(data[a:b]).strip() for a, b in fields.get("D/TOPICS", [])]
    if "" in listed:
        raise fail(f"<TOPICS> of NEWID={attrs['NEWID']} has an empty topic", s)
    topics = list(dict.fromkeys(listed))
    date = data[fields["DATE"][0] : fields["DATE"][1]]
    m = _DATE.match(date)
    if m is None or m.group(2) not in _MONTHS:
        raise fail(f"<DATE> {date[:30]!r} is not DD-MON-YYYY", fields["DATE"][0])
    day = f"{int(m.group(3)):04d}-{_MONTHS[m.group(2)]:02d}-{int(m.group(1)):02d}"
    title = _unescape(data[slice(*fields["TITLE"])]).strip() if "TITLE" in fields else ""
    if "BODY" in fields:
        body = _unescape(data[slice(*fields["BODY"])])
    elif "TITLE" not in fields and "DATELINE" not in fields:  # TYPE="UNPROC": plain text
        body = _unescape(data[slice(*fields["TEXT"])])
    else:
        body = ""
    body = body.strip().removesuffix("\x03").strip().removeprefix("\x02").strip()
    return {
        "newid": int(attrs["NEWID"]),
        "lewis": attrs["LEWISSPLIT"],
        "topics_attr": attrs["TOPICS"],
        "topics": topics,
        "repeated": len(topics) != len(listed),
        "day": day,
        "title": title,
        "body": body,
    }
