"""fastText supervised-format reader.

Format
------
One example per line, UTF-8 (a ``.gz`` file is decompressed on the fly)::

    __label__sauce __label__cheese How much does potato starch affect a cheese sauce recipe?

Definitions (they follow fastText's own parser where it is unambiguous):

- Tokens are separated by runs of ASCII whitespace (space, tab, vertical tab, form feed,
  carriage return), as in fastText's ``Dictionary::readWord``.
- Every token that starts with ``label_prefix`` is a label, wherever it stands on the line
  (fastText does the same; files written by fastText, such as cooking.stackexchange, put
  them first). The label name is the token without the prefix; a bare prefix is an error.
- The text is the line with each label token removed together with the whitespace that
  follows it, then stripped of surrounding whitespace. With the labels first, that is the
  rest of the line exactly as written (inner spacing and punctuation are kept).
- A line without labels is kept as a row with an empty label set (fastText test files hold
  such lines); a line with labels but no text is kept with the empty text ``""``.
- A label listed twice on one line is an error (never silently merged).
- Blank lines (only whitespace) are not rows; they are skipped with one warning that
  counts them.
- Label ids follow first-seen order, unless ``labels=`` gives the names (and their order):
  then a label outside that list is an error naming ``file:line``, never dropped.
- A line that is not valid UTF-8 is an error naming the line.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence

from ..dataset import Dataset, as_label_matrix
from ..errors import DataFormatError
from ..labels import LabelSpace
from ._lines import LabelCollector, iter_lines

__all__ = ["read_fasttext"]

_PIECE = re.compile(r"[^ \t\v\f\r\n]+|[ \t\v\f\r\n]+")


def read_fasttext(
    path: str | os.PathLike[str],
    *,
    label_prefix: str = "__label__",
    labels: Sequence[str] | LabelSpace | None = None,
) -> Dataset:
    """Read a fastText ``__label__`` file into a text :class:`~labelwise.Dataset`.

    Parameters
    ----------
    path:
        The file (``.gz`` allowed).
    label_prefix:
        The prefix that marks a label token (fastText's ``-label``), non-empty.
    labels:
        Label names in id order; every label in the file must be one of them. Without it,
        label ids follow the order in which labels are first seen.
    """
    if (
        not isinstance(label_prefix, str)
        or label_prefix == ""
        or label_prefix != label_prefix.strip()
    ):
        raise DataFormatError(
            f"label_prefix must be a non-empty string without spaces, got {label_prefix!r}"
        )
    name = str(path)
    collector = LabelCollector(name, labels=labels)
    texts: list[str] = []
    rows: list[list[int]] = []
    blank = 0
    plen = len(label_prefix)
    for lineno, raw in iter_lines(path):
        line = raw.rstrip("\n")
        if line.strip(" \t\v\f\r") == "":
            blank += 1
            continue
        names: list[str] = []
        kept: list[str] = []
        skip_space = False
        for piece in _PIECE.findall(line):
            if piece[0] in " \t\v\f\r\n":
                if not skip_space:
                    kept.append(piece)
                skip_space = False
            elif piece.startswith(label_prefix):
                label = piece[plen:]
                if label == "":
                    raise DataFormatError(
                        f"label token {piece!r} has an empty name",
                        path=name,
                        line=lineno,
                        field="labels",
                    )
                names.append(label)
                skip_space = True
            else:
                kept.append(piece)
                skip_space = False
        rows.append(collector.ids(names, line=lineno, field="labels"))
        texts.append("".join(kept).strip(" \t\v\f\r"))
    if blank:
        warnings.warn(f"{name}: skipped {blank} blank line(s)", UserWarning, stacklevel=2)
    space = collector.label_space()
    Y = as_label_matrix(rows, len(space))
    return Dataset(texts, Y, space, meta={"source": name, "format": "fasttext"})
