"""Saving policies and calibrators without pickle: ``NAME.json`` + ``NAME.npz``.

``to_dict()`` gives a JSON-able dict and ``arrays()`` a dict of numpy arrays; :func:`write`
stores them in a directory as::

    NAME.npz    the arrays (np.savez, no object arrays)
    NAME.json   {"format": ..., "format_version": 1, "object": <to_dict()>,
                 "arrays": {"key": {"dtype": "<f8", "shape": [..]}},
                 "npz_sha256": "<hex of NAME.npz>"}

Both files are written with :func:`labelwise.atomic.atomic_write` (the npz first, so a
JSON on disk always describes a complete npz). :func:`read` checks the format, the
checksum, and every array's dtype and shape, and loads with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write
from ..errors import DataFormatError
from ..files import read_json_object, sha256_file

__all__ = ["write", "read", "FORMAT_VERSION"]

FORMAT_VERSION = 1




def write(directory: str | os.PathLike[str], name: str, fmt: str, obj: dict[str, Any],
          arrays: dict[str, np.ndarray]) -> None:
    """Write ``name.npz`` then ``name.json`` into ``directory`` (created if missing)."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    clean = {}
    for key, arr in arrays.items():
        a = np.ascontiguousarray(arr)
        if a.dtype.kind == "O":
            raise TypeError(f"array {key!r} has dtype object; only numeric arrays are stored")
        clean[key] = a
    npz = root / f"{name}.npz"
    with atomic_write(npz, "wb") as f:
        np.savez(f, **clean)
    doc = {"format": fmt, "format_version": FORMAT_VERSION, "object": obj,
           "arrays": {k: {"dtype": a.dtype.str, "shape": list(a.shape)} for k, a in clean.items()},
           "npz_sha256": sha256_file(npz)}
    text = json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False)
    with atomic_write(root / f"{name}.json", "w", encoding="utf-8") as f:
        f.write(text + "\n")


def read(directory: str | os.PathLike[str], name: str,
         fmt: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The ``(object dict, arrays)`` written by :func:`write`; every check names the file."""
    root = Path(directory)
    jpath, npath = root / f"{name}.json", root / f"{name}.npz"
    doc = read_json_object(jpath)
    if doc.get("format") != fmt:
        raise DataFormatError(f"expected {fmt!r}, got {doc.get('format')!r}", path=str(jpath),
                              field="format")
    if doc.get("format_version") != FORMAT_VERSION:
        raise DataFormatError(f"format version {doc.get('format_version')!r} is not supported "
                              f"(this labelwise reads {FORMAT_VERSION})", path=str(jpath),
                              field="format_version")
    for key, kind in (("object", dict), ("arrays", dict), ("npz_sha256", str)):
        if not isinstance(doc.get(key), kind):
            raise DataFormatError(f"missing or not a {kind.__name__}", path=str(jpath), field=key)
    if not npath.is_file():
        raise DataFormatError("missing (listed by the JSON file)", path=str(npath))
    actual = sha256_file(npath)
    if actual != doc["npz_sha256"]:
        raise DataFormatError(f"sha256 mismatch: {jpath.name} says {doc['npz_sha256']}, file has "
                              f"{actual}", path=str(npath))
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(npath, allow_pickle=False) as z:
            for key, spec in doc["arrays"].items():
                if key not in z.files:
                    raise DataFormatError(f"array {key!r} is missing", path=str(npath))
                a = z[key]
                if not isinstance(spec, dict) or a.dtype.str != spec.get("dtype") \
                        or list(a.shape) != spec.get("shape"):
                    raise DataFormatError(f"array {key!r} is {a.dtype.str} {list(a.shape)}, "
                                          f"the JSON says {spec}", path=str(npath))
                arrays[key] = a
    except (ValueError, OSError) as e:
        raise DataFormatError(f"cannot read: {e}", path=str(npath)) from None
    return doc["object"], arrays
