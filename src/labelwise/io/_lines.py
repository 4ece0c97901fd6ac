"""Line-reading helpers shared by the text readers: UTF-8 lines with numbers, label-name files,
and the collector that turns each row's label names (or ids) into checked label ids."""

from __future__ import annotations

import gzip
import math
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import DataFormatError
from ..labels import LabelSpace

__all__ = ["iter_lines", "read_name_file", "LabelCollector", "describe_value", "text_number",
           "float32_number", "FLOAT32_OVERFLOW"]

#: a decimal number in ASCII (no ``_`` separators, no other scripts' digits, no nan/inf words)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
#: the smallest magnitude that rounds to infinity in float32 (2**128 - 2**103)
FLOAT32_OVERFLOW = 2.0**128 - 2.0**103


def text_number(text: str) -> float:
    """A number written as text, strictly: ASCII decimal notation (spaces and tabs around it
    allowed) that fits float32; ValueError with the reason otherwise."""
    s = text.strip(" \t")
    if not _NUMBER.fullmatch(s):
        if s.lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise ValueError(f"expected a finite number, got {text[:40]!r}")
        raise ValueError(f"expected a number, got {text[:40]!r}")
    return float32_number(float(s), text)


def float32_number(x: float | int, shown: object) -> float:
    """``x`` as a float that float32 holds without overflowing; ValueError otherwise (a 400-digit
    integer or 1e39 is refused, never turned into inf)."""
    out_of_range = f"value {str(shown)[:40]} is outside the float32 range (|x| < 3.4e38)"
    try:
        y = float(x)
    except OverflowError:  # an integer of hundreds of digits
        raise ValueError(out_of_range) from None
    if math.isnan(y) or (math.isinf(y) and not isinstance(shown, str)):
        raise ValueError(f"expected a finite number, got {str(shown)[:40]}")
    if abs(y) >= FLOAT32_OVERFLOW:
        raise ValueError(out_of_range)
    return y

def iter_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """(1-based line number, line with its ending) for a UTF-8 (or ``.gz``) text file."""
    name = str(path)
    opener = gzip.open if name.lower().endswith(".gz") else open
    try:
        f = opener(path, "rb")
    except OSError as e:
        raise DataFormatError(f"cannot open: {e.strerror or e}", path=name) from None
    lineno = 0
    with f:
        try:
            for raw in f:
                lineno += 1
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataFormatError(
                        f"not valid UTF-8 (byte {e.start}: {raw[e.start : e.start + 1]!r})",
                        path=name,
                        line=lineno,
                    ) from None
                if lineno == 1 and line.startswith("\ufeff"):
                    line = line[1:]
                yield lineno, line
        except (OSError, EOFError, zlib.error) as e:
            raise DataFormatError(f"cannot read: {e}", path=name, line=lineno + 1) from None


#: the last line of a sidecar of label names written by labelwise, after a blank line:
#: ``sha256 <hex>`` of the data file the names belong to
SIDECAR_RECORD = "sha256"


def sidecar_text(names: Sequence[str], data_digest: str) -> str:
    """A ``.labels`` sidecar: one name per line, a blank line, the data file's record."""
    return "".join(n + "\n" for n in names) + f"\n{SIDECAR_RECORD} {data_digest}\n"


def is_record(line: str) -> bool:
    return line.startswith(SIDECAR_RECORD + " ")


def check_record(lines: Sequence[str], first: int, data_path: Any, sidecar: Any) -> None:
    """The lines after a sidecar's blank line (from line ``first``) must be one record whose
    digest is the data file's sha256; a mismatch means names and rows of different writes (a
    write killed between the sidecar's rename and the data's)."""
    from ..files import sha256_file

    parts = lines[0].strip().split(" ") if len(lines) == 1 else []
    if len(parts) != 2 or parts[0] != SIDECAR_RECORD or len(parts[1]) != 64:
        raise DataFormatError(f"expected one last line '{SIDECAR_RECORD} <64 hex digits>' after "
                              "the blank line", path=str(sidecar), line=first)
    actual = sha256_file(data_path)
    if actual != parts[1]:
        raise DataFormatError(
            f"these label names were written for another version of {os.path.basename(data_path)} "
            f"(sha256 {parts[1][:12]}..., the file has {actual[:12]}...): an interrupted write "
            "left names and rows that do not belong together; write the dataset again",
            path=str(sidecar), line=first)


def read_name_file(path: str | os.PathLike[str], *, data_path: Any = None) -> list[str]:
    """Names, one per line (line ends and surrounding spaces stripped); blank lines are errors.

    ``data_path``: the file is that data file's sidecar, which may end with a blank line and
    a record of the data it belongs to (:func:`check_record`).
    """
    names: list[str] = []
    seen: dict[str, int] = {}
    lines = list(iter_lines(path))
    for k, (lineno, line) in enumerate(lines):
        name = line.strip()
        if not name and data_path is not None and k + 1 < len(lines) and is_record(lines[k + 1][1]):
            check_record([rest for _, rest in lines[k + 1 :]], lineno + 1, data_path, path)
            break
        if not name:
            raise DataFormatError("blank line in a label-name file", path=str(path), line=lineno)
        if name in seen:
            raise DataFormatError(
                f"label {name!r} repeats line {seen[name]}", path=str(path), line=lineno
            )
        seen[name] = lineno
        names.append(name)
    return names


class LabelCollector:
    """Turns the label names (or ids) of each row into label ids, checking them."""

    def __init__(
        self, path: str, *, labels: Any = None, id_names: Sequence[str] | None = None
    ) -> None:
        self.path = path
        self.fixed = labels is not None or id_names is not None
        if isinstance(labels, str | bytes | os.PathLike):
            raise DataFormatError(
                "labels= must be a list of names (a file of names goes in label_names=)"
            )
        if labels is not None and not isinstance(labels, LabelSpace):
            labels = LabelSpace(list(labels))
        self.space: LabelSpace | None = labels
        self.names: list[str] = [] if labels is None else list(labels)
        if id_names is not None:
            self.names = list(id_names)
        self.index = {n: i for i, n in enumerate(self.names)}

    def _error(self, msg: str, line: int, field: str | None) -> DataFormatError:
        return DataFormatError(msg, path=self.path, line=line, field=field)

    def ids(self, names: Sequence[str], *, line: int, field: str | None) -> list[int]:
        out: list[int] = []
        for name in names:
            i = self.index.get(name)
            if i is None:
                if self.fixed:
                    raise self._error(
                        f"label {name!r} is not among the {len(self.names)} given labels",
                        line,
                        field,
                    )
                i = self.index[name] = len(self.names)
                self.names.append(name)
            out.append(i)
        return self._no_repeat(out, line, field)

    def from_ids(self, ids: Sequence[int], *, line: int, field: str | None) -> list[int]:
        n = len(self.names)
        for i in ids:
            if not 0 <= i < n:
                raise self._error(
                    f"label id {i} outside the {n} names of the label-name file (0..{n - 1})",
                    line,
                    field,
                )
        return self._no_repeat(list(ids), line, field)

    def _no_repeat(self, ids: list[int], line: int, field: str | None) -> list[int]:
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise self._error(f"label {self.names[dup]!r} listed more than once", line, field)
        return ids

    def label_space(self) -> LabelSpace:
        return self.space if self.space is not None else LabelSpace(self.names)


def describe_value(v: Any) -> str:
    """A short description of a cell value for error messages: its type and repr (cut at 40)."""
    if v is None:
        return "null"
    return f"{type(v).__name__} {repr(v)[:40]}"
