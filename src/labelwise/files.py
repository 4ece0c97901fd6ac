"""Reading back the files labelwise writes: a file's sha256, and a JSON object whose errors
name the place (``path:line``). The writing side is :mod:`labelwise.atomic`."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .errors import DataFormatError

__all__ = ["sha256_file", "read_json_object", "check_listed_file"]


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_listed_file(path: Path, digest: str, *, listed_in: str, verify: bool = True) -> None:
    """A file that an index (``listed_in``, e.g. manifest.json) lists with its sha256: it must
    exist and, with ``verify``, still have that digest; DataFormatError naming it otherwise."""
    if not path.is_file():
        raise DataFormatError(f"file listed in {listed_in} is missing", path=str(path))
    if verify:
        actual = sha256_file(path)
        if actual != digest:
            raise DataFormatError(f"sha256 mismatch: {listed_in} says {digest}, file has "
                                  f"{actual} (the files are corrupt or were changed)",
                                  path=str(path))


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object in ``path``; DataFormatError naming the file (and line) otherwise."""
    where = str(path)
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFormatError("missing", path=where) from None
    except json.JSONDecodeError as e:
        raise DataFormatError(f"malformed JSON: {e.msg}", path=where, line=e.lineno) from None
    except UnicodeDecodeError:
        raise DataFormatError("not UTF-8 text", path=where) from None
    if not isinstance(doc, dict):
        raise DataFormatError("expected a JSON object", path=where, line=1)
    return doc
