"""The one store for every saved part: a folder, a JSON manifest, numeric arrays, sha256.

Models (:mod:`labelwise.models.persist`), featurizers (:mod:`labelwise.features.base`),
calibrators and decision policies (``NAME.json`` + ``NAME.npz``) and pipelines
(:mod:`labelwise.pipeline_store`) all write and read through this module, so one set of
rules holds for everything labelwise saves:

Writing (:class:`FolderWriter`)
    Every file is written inside a temporary folder from
    :func:`labelwise.atomic.atomic_directory` (a crash leaves the old folder or the new one)
    and hashed while it is written, once: a pipeline lists the digests its parts' writers
    recorded instead of reading the files back. Arrays are plain numeric ``.npy`` (no object
    dtype, no pickle); float arrays must be finite (:func:`check_finite`) and JSON documents
    hold no NaN or infinity.

Reading
    :func:`read_json` refuses NaN/Infinity constants (``json`` accepts them by default) and
    names the file and line; :func:`check_folder` refuses a folder holding a symbolic link
    anywhere (a link could point outside it) and returns every file in it;
    :func:`check_listed` refuses a file on disk that the manifest does not list, and
    :func:`verify_files` a listed path that leaves the folder, a listed file that is missing
    or whose sha256 differs; :func:`read_npy` reads one array with ``allow_pickle=False``
    (memory-mapped read-only on request) and :func:`check_array` checks a loaded array
    against what the class that reads it expects (dtype, number of dimensions, finite), so a
    re-signed file (checksums recomputed) with arrays of another dtype is refused at load
    instead of failing inside a numba kernel at predict.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from .errors import DataFormatError
from .files import check_listed_file, sha256_file

__all__ = ["FolderWriter", "read_json", "check_folder", "check_listed", "verify_files",
           "safe_relative", "read_npy", "check_array", "check_finite", "check_json_finite",
           "sha256_file", "ARRAY_NAME", "write_object", "save_object", "read_object",
           "OBJECT_FORMAT_VERSION", "write_encoder", "read_encoder", "ENCODER_FOLDER", "writing", "reading",
           "encoder_param_to_json", "encoder_param_from_json", "reading_a_file"]

#: a plain identifier: the names arrays are saved under
ARRAY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")


# ---------------------------------------------------------------------------- checks
def check_finite(a: Any, *, name: str, where: str | None = None) -> None:
    """DataFormatError naming ``where``/``name`` when a float array holds NaN or infinity."""
    arr = np.asarray(a)
    if arr.dtype.kind in "fc" and arr.size and not bool(np.isfinite(arr).all()):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise DataFormatError(f"array {name!r} holds {bad} NaN or infinite value(s); saved "
                              "weights must be finite", path=where, field=name)


def check_json_finite(value: Any, *, where: str | None = None, field: str = "") -> None:
    """DataFormatError naming the field when a JSON-able value holds a non-finite float."""
    if isinstance(value, float) and not math.isfinite(value):
        raise DataFormatError(f"{value!r} is not a finite number", path=where, field=field)
    if isinstance(value, dict):
        for key, v in value.items():
            check_json_finite(v, where=where, field=f"{field}.{key}" if field else str(key))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_json_finite(v, where=where, field=f"{field}[{i}]")


def check_array(a: np.ndarray, *, name: str, dtypes: Iterable[str], ndim: int | None = None,
                where: str | None = None) -> np.ndarray:
    """``a`` when its dtype is one of ``dtypes`` (numpy codes such as ``"<f4"``), it has
    ``ndim`` dimensions and its floats are finite; DataFormatError naming it otherwise."""
    allowed = [np.dtype(t) for t in dtypes]
    if a.dtype not in allowed:
        raise DataFormatError(f"array {name!r} has dtype {a.dtype.str}, expected "
                              f"{' or '.join(t.str for t in allowed)}", path=where, field=name)
    if ndim is not None and a.ndim != ndim:
        raise DataFormatError(f"array {name!r} has {a.ndim} dimension(s) {list(a.shape)}, "
                              f"expected {ndim}", path=where, field=name)
    check_finite(a, name=name, where=where)
    return a


def safe_relative(rel: Any, *, where: str, field: str = "files") -> PurePosixPath:
    """A listed path as a relative POSIX path that stays inside its folder (no ``..``, not
    absolute, no hidden part, no backslash)."""
    p = PurePosixPath(rel) if isinstance(rel, str) and rel else None
    if (p is None or p.is_absolute() or "\\" in rel
            or any(part in ("", ".", "..") or part.startswith(".") for part in p.parts)
            or str(p) != rel):
        raise DataFormatError(f"bad file entry {rel!r} (expected a plain path inside the "
                              "folder)", path=where, field=field)
    return p


def check_folder(root: Path) -> set[str]:
    """Every file under ``root`` (relative POSIX paths); a symbolic link anywhere inside, or
    anything that is neither a file nor a folder, is refused (naming it)."""
    if root.is_symlink() and not root.is_dir():
        raise DataFormatError("not a folder", path=str(root))
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in [*dirnames, *filenames]:
            p = base / name
            if p.is_symlink():
                raise DataFormatError("is a symbolic link; saved folders hold plain files only "
                                      "(a link can point outside the folder)", path=str(p))
        for name in filenames:
            p = base / name
            if not p.is_file():
                raise DataFormatError("not a plain file", path=str(p))
            found.add(p.relative_to(root).as_posix())
    return found


def check_listed(root: Path, on_disk: Iterable[str], listed: Iterable[str], *,
                 listed_in: str) -> None:
    """Refuse a file in the folder that the manifest (``listed_in``) does not list: it would
    load unverified, or not at all, and either way it is not what was saved."""
    extra = sorted(set(on_disk) - set(listed))
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise DataFormatError(f"files not listed in {listed_in}: {shown} (a saved folder "
                              "holds only the files its manifest lists with their sha256)",
                              path=str(root))


def verify_files(root: Path, files: Any, *, listed_in: str, verify: bool = True,
                 where: str | None = None) -> dict[str, str]:
    """``files`` (relative path -> sha256 hex) checked: every path stays inside ``root``,
    every file exists and, with ``verify``, still has its digest."""
    where = str(root / listed_in) if where is None else where
    if not isinstance(files, dict):
        raise DataFormatError("expected an object of file -> sha256", path=where, field="files")
    for rel, digest in files.items():
        safe_relative(rel, where=where)
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise DataFormatError(f"bad sha256 for {rel!r}", path=where, field="files")
        path = root / rel
        if path.is_symlink():
            raise DataFormatError("is a symbolic link; saved folders hold plain files only",
                                  path=str(path))
        check_listed_file(path, digest, listed_in=listed_in, verify=verify)
    return files


# ---------------------------------------------------------------------------- reading
def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} does not fit a finite float")
    return value


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object in ``path``; DataFormatError naming the file (and line) when it is
    missing, a symbolic link, malformed, not an object, or holds NaN/Infinity."""
    p = Path(path)
    where = str(p)
    if p.is_symlink():
        raise DataFormatError("is a symbolic link; saved folders hold plain files only",
                              path=where)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFormatError("missing", path=where) from None
    except UnicodeDecodeError:
        raise DataFormatError("not UTF-8 text", path=where) from None
    except IsADirectoryError:
        raise DataFormatError("a folder, expected a JSON file", path=where) from None
    try:
        doc = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError as e:
        raise DataFormatError(f"malformed JSON: {e.msg}", path=where, line=e.lineno) from None
    except ValueError as e:  # NaN / Infinity / -Infinity
        raise DataFormatError(str(e), path=where) from None
    if not isinstance(doc, dict):
        raise DataFormatError("expected a JSON object", path=where, line=1)
    return doc


def read_npy(path: Path, *, mmap: bool = False) -> np.ndarray:
    """One ``.npy`` array, never unpickled; ``mmap`` maps it read-only."""
    if path.is_symlink():
        raise DataFormatError("is a symbolic link; saved folders hold plain files only",
                              path=str(path))
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataFormatError(f"cannot read the array: {e}", path=str(path)) from None


# ---------------------------------------------------------------------------- writing
class _HashingFile:
    """A binary file whose sha256 is computed as it is written (one pass over the bytes)."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self.sha = hashlib.sha256()

    def write(self, data: Any) -> int:
        mv = memoryview(data).cast("B")
        self.sha.update(mv)
        return self._f.write(mv)

    def flush(self) -> None:
        self._f.flush()


class FolderWriter:
    """Writes files into ``root`` (a temporary folder from ``atomic_directory``) and records
    each file's sha256 as it writes it; ``sub(name)`` writes into a subfolder and records
    into the same table (paths prefixed), so a pipeline lists its parts' files unread."""

    def __init__(self, root: Path, *, prefix: str = "", files: dict[str, str] | None = None):
        self.root = Path(root)
        self.prefix = prefix
        self.files: dict[str, str] = {} if files is None else files
        self.encoders: dict[str, str] = {}  # encoder folders copied here: source -> name

    def sub(self, name: str) -> FolderWriter:
        (self.root / name).mkdir(parents=True, exist_ok=True)
        return FolderWriter(self.root / name, prefix=f"{self.prefix}{name}/", files=self.files)

    def own_files(self) -> dict[str, str]:
        """The files written under this writer's folder, relative to it."""
        n = len(self.prefix)
        return {k[n:]: v for k, v in self.files.items() if k.startswith(self.prefix)}

    def _record(self, name: str, digest: str) -> str:
        self.files[self.prefix + name] = digest
        return digest

    def array(self, name: str, a: Any, *, key: str | None = None) -> dict[str, Any]:
        """Write ``a`` as ``name`` (.npy); returns its manifest entry (file, dtype, shape)."""
        arr = np.ascontiguousarray(a)
        if arr.dtype.hasobject:
            raise TypeError(f"array {key or name!r} holds Python objects; only numeric "
                            "arrays are saved")
        check_finite(arr, name=key or name)
        with open(self.root / name, "wb") as f:
            h = _HashingFile(f)
            np.save(h, arr, allow_pickle=False)
        self._record(name, h.sha.hexdigest())
        return {"file": name, "dtype": arr.dtype.str, "shape": list(arr.shape)}

    def json(self, name: str, doc: dict[str, Any], *, indent: int | None = 1) -> str:
        """Write ``doc`` (no NaN/infinity allowed) as ``name``; returns its sha256."""
        text = json.dumps(doc, indent=indent, ensure_ascii=False, allow_nan=False) + "\n"
        data = text.encode("utf-8")
        (self.root / name).write_bytes(data)
        return self._record(name, hashlib.sha256(data).hexdigest())

    def file_written(self, name: str) -> str:
        """Record a file written by a library (npz, safetensors): hashed once, here."""
        return self._record(name, sha256_file(self.root / name))


# ---------------------------------------------------------------------------- encoders
#: the folder, inside a saved featurizer or model, that holds a user's own sentence encoder
ENCODER_FOLDER = "encoder"


def _shipped_encoder() -> Path | None:
    try:
        from .features.embeddings import default_model_path

        return default_model_path().resolve()
    except Exception:  # the [text] extra is absent: no shipped model to compare with
        return None


def write_encoder(out: FolderWriter, folder: str | os.PathLike[str] | None) -> str | None:
    """The saved value of an encoder-folder parameter: None for the shipped model (None, or
    its own folder), else the folder copied into ``out``'s ``encoder/`` (every file hashed
    as it is copied) and saved as the relative path ``"encoder"``, so that loading reads
    nothing outside the saved folder."""
    if folder is None:
        return None
    src = Path(folder).expanduser().resolve()
    if src == _shipped_encoder():
        return None
    if not src.is_dir():
        raise DataFormatError("the encoder folder to save with the model is missing",
                              path=str(src))
    copied = out.encoders.get(str(src))
    if copied is not None:
        return copied
    name = ENCODER_FOLDER if not out.encoders else f"{ENCODER_FOLDER}_{len(out.encoders)}"
    out.encoders[str(src)] = name
    dest = out.sub(name)
    for dirpath, _, filenames in os.walk(src):
        rel_dir = Path(dirpath).relative_to(src)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            rel = (rel_dir / name).as_posix()
            (dest.root / rel).parent.mkdir(parents=True, exist_ok=True)
            with open(Path(dirpath) / name, "rb") as fin, open(dest.root / rel, "wb") as fout:
                h = _HashingFile(fout)
                for block in iter(lambda: fin.read(1 << 20), b""):  # noqa: B023
                    h.write(block)
            dest._record(rel, h.sha.hexdigest())
    return ENCODER_FOLDER


#: the folder being written (saving) / read (loading) while a featurizer's parameters are
#: turned to and from JSON, for parameters that name an encoder folder (nested featurizers
#: such as Fusion's blocks reach it without a writer argument through every layer)
_WRITING: contextvars.ContextVar[FolderWriter | None] = contextvars.ContextVar(
    "labelwise_store_writing", default=None)
_READING: contextvars.ContextVar[tuple[Path, str] | None] = contextvars.ContextVar(
    "labelwise_store_reading", default=None)


@contextlib.contextmanager
def writing(out: FolderWriter) -> Iterator[None]:
    """Within it, :func:`encoder_param_to_json` copies encoder folders into ``out``."""
    token = _WRITING.set(out)
    try:
        yield
    finally:
        _WRITING.reset(token)


@contextlib.contextmanager
def reading(root: Path, where: str) -> Iterator[None]:
    """Within it, :func:`encoder_param_from_json` resolves encoder folders inside ``root``."""
    token = _READING.set((root, where))
    try:
        yield
    finally:
        _READING.reset(token)


def reading_a_file() -> bool:
    """Whether parameters are being read from a saved file (inside :func:`reading`)."""
    return _READING.get() is not None


def encoder_param_to_json(folder: Any) -> Any:
    """An encoder-folder parameter as saved: :func:`write_encoder` inside :func:`writing`,
    the value itself outside (``to_dict`` for display or in-memory copies)."""
    out = _WRITING.get()
    return folder if out is None else write_encoder(out, folder)


def encoder_param_from_json(value: Any, *, field: str) -> Any:
    """An encoder-folder parameter read back: :func:`read_encoder` inside :func:`reading`
    (every file load), the value itself outside (``from_dict`` of an in-memory dict)."""
    ctx = _READING.get()
    if ctx is None:
        return value
    root, where = ctx
    return read_encoder(root, value, where=where, field=field)


def read_encoder(root: Path, value: Any, *, where: str, field: str) -> str | None:
    """An encoder-folder parameter read from a saved file: None (the shipped model) or a
    relative folder inside ``root`` (as :func:`write_encoder` writes), returned as a path;
    any other folder is refused, so a saved file cannot make labelwise load a model from
    elsewhere."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataFormatError(f"expected null or a folder inside the saved folder, got "
                              f"{value!r}", path=where, field=field)
    if value.startswith(("/", "~")) or os.path.isabs(value):
        raise DataFormatError(f"{value!r} is outside the saved folder: the encoder must be the "
                              "shipped model (null) or a folder saved inside it", path=where,
                              field=field)
    rel = safe_relative(value, where=where, field=field)
    folder = root / rel
    if not folder.is_dir() or folder.is_symlink():
        raise DataFormatError(f"{value!r} is not a folder inside the saved folder", path=where,
                              field=field)
    return str(folder)


# ------------------------------------------------------------------ calibrators, policies
#: format version of NAME.json written by :func:`write_object`
OBJECT_FORMAT_VERSION = 1


def _object_doc(fmt: str, obj: dict[str, Any], clean: dict[str, np.ndarray],
                digest: str) -> dict[str, Any]:
    return {"format": fmt, "format_version": OBJECT_FORMAT_VERSION, "object": obj,
            "arrays": {k: {"dtype": a.dtype.str, "shape": list(a.shape)}
                       for k, a in clean.items()},
            "npz_sha256": digest}


def _object_arrays(obj: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    clean = {}
    for key, arr in arrays.items():
        a = np.ascontiguousarray(arr)
        if a.dtype.hasobject:
            raise TypeError(f"array {key!r} has dtype object; only numeric arrays are stored")
        check_finite(a, name=key)
        clean[key] = a
    check_json_finite(obj, field="object")
    return clean


def write_object(out: FolderWriter, name: str, fmt: str, obj: dict[str, Any],
                 arrays: dict[str, np.ndarray]) -> None:
    """``name.npz`` (the arrays) and ``name.json`` (``obj``, every array's dtype and shape,
    the npz's sha256) into a folder being written: the saved form of calibrators and
    decision policies inside a pipeline."""
    clean = _object_arrays(obj, arrays)
    with open(out.root / f"{name}.npz", "wb") as f:
        np.savez(f, **clean)
    digest = out.file_written(f"{name}.npz")
    out.json(f"{name}.json", _object_doc(fmt, obj, clean, digest))


def save_object(directory: str | os.PathLike[str], name: str, fmt: str, obj: dict[str, Any],
                arrays: dict[str, np.ndarray]) -> None:
    """:func:`write_object` into an existing folder (created if missing), file by file with
    :func:`labelwise.atomic.atomic_write`: the npz first, so a JSON file on disk always
    describes a complete npz."""
    from .atomic import atomic_write

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    clean = _object_arrays(obj, arrays)
    npz = root / f"{name}.npz"
    with atomic_write(npz, "wb") as f:
        np.savez(f, **clean)
    text = json.dumps(_object_doc(fmt, obj, clean, sha256_file(npz)), indent=1,
                      ensure_ascii=False, allow_nan=False)
    with atomic_write(root / f"{name}.json", "w", encoding="utf-8") as f:
        f.write(text + "\n")


def read_object(directory: str | os.PathLike[str], name: str, fmt: str, *,
                verify: bool = True) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The ``(object dict, arrays)`` written by :func:`write_object`; every check names the
    file (format, checksum, every array's dtype and shape, finite values)."""
    root = Path(directory)
    jpath, npath = root / f"{name}.json", root / f"{name}.npz"
    doc = read_json(jpath)
    if doc.get("format") != fmt:
        raise DataFormatError(f"expected {fmt!r}, got {doc.get('format')!r}", path=str(jpath),
                              field="format")
    if doc.get("format_version") != OBJECT_FORMAT_VERSION:
        raise DataFormatError(f"format version {doc.get('format_version')!r} is not supported "
                              f"(this labelwise reads {OBJECT_FORMAT_VERSION})", path=str(jpath),
                              field="format_version")
    for key, kind in (("object", dict), ("arrays", dict), ("npz_sha256", str)):
        if not isinstance(doc.get(key), kind):
            raise DataFormatError(f"missing or not a {kind.__name__}", path=str(jpath), field=key)
    verify_files(root, {npath.name: doc["npz_sha256"]}, listed_in=jpath.name, verify=verify,
                 where=str(jpath))
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(npath, allow_pickle=False) as z:
            extra = sorted(set(z.files) - set(doc["arrays"]))
            if extra:
                raise DataFormatError(f"arrays not listed in {jpath.name}: {extra[:5]}",
                                      path=str(npath))
            for key, spec in doc["arrays"].items():
                if key not in z.files:
                    raise DataFormatError(f"array {key!r} is missing", path=str(npath))
                a = z[key]
                if not isinstance(spec, dict) or a.dtype.str != spec.get("dtype") \
                        or list(a.shape) != spec.get("shape"):
                    raise DataFormatError(f"array {key!r} is {a.dtype.str} {list(a.shape)}, "
                                          f"the JSON says {spec}", path=str(npath))
                check_finite(a, name=key, where=str(npath))
                arrays[key] = a
    except (ValueError, OSError, EOFError) as e:
        if isinstance(e, DataFormatError):
            raise
        raise DataFormatError(f"cannot read: {e}", path=str(npath)) from None
    check_json_finite(doc["object"], where=str(jpath), field="object")
    return doc["object"], arrays
