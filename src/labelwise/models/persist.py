"""The model directory format: a manifest plus arrays, no pickle, no code run on load.

A saved model is a directory::

    model/
      manifest.json      format, class, params, label space, learned scalars, checksums
      coef_data.npy      one raw .npy per array (the default; memory-mappable), or
      arrays.npz         all arrays in one compressed archive (``save(..., compress=True)``), or
      arrays.safetensors all arrays in one safetensors file (models whose class says so)

``manifest.json`` holds::

    {"format": "labelwise.model", "format_version": 1,
     "class": "OneVsRest",                  # a name in MODEL_CLASSES, never an import path
     "labelwise_version": "0.1.0",
     "params": {...},                       # get_params(deep=False), JSON values only
     "labels": {...},                       # LabelSpace.to_dict()
     "n_features_in": 1836,
     "state": {...},                        # the model's learned JSON-able facts
     "storage": "npy" | "npz" | "safetensors",
     "arrays": {"coef_data": {"file": "coef_data.npy", "dtype": "<f4", "shape": [812, 1]}},
     "files": {"coef_data.npy": "<sha256 hex>", ...}}

Saving goes through :func:`labelwise.atomic.atomic_directory`, so a crash leaves either the
old directory or the new one. Loading checks the format and version, looks the class up in
the allow-list :data:`MODEL_CLASSES` (unknown names are refused), verifies every file's
SHA-256 (a mismatch raises :class:`~labelwise.errors.DataFormatError` naming the file), and
reads arrays with ``allow_pickle=False`` (``mmap_mode='r'`` when ``mmap=True``, which needs
the ``npy`` or ``safetensors`` storage).

Storage kinds. A model class chooses its storage with the class attribute
``_array_storage``: ``"npy"`` (the default; ``compress=True`` switches to ``"npz"``) or
``"safetensors"`` (the neural models: one ``arrays.safetensors`` file in the `safetensors
<https://github.com/huggingface/safetensors>`_ format, a JSON header plus raw little-endian
bytes, so loading it can never run code; ``compress`` does not apply to it). The file's
tensors must be exactly the manifest's ``arrays`` (same names, dtypes and shapes).
``mmap=True`` maps a safetensors file read-only: the header is parsed and checked here
(every tensor's byte range must lie in the data section and match its dtype and shape) and
each array is a view of one ``numpy.memmap`` of the file. Directories written with any of
the three storages load.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import MODEL_MARKERS, atomic_directory
from ..errors import DataFormatError
from ..labels import LabelSpace
from ..store import (
    FolderWriter,
    check_array,
    check_finite,
    check_folder,
    check_json_finite,
    check_listed,
    read_encoder,
    read_json,
    read_npy,
    verify_files,
    write_encoder,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "MODEL_CLASSES", "save_model", "load_model", "write_model",
           "check_saved_arrays"]

FORMAT = "labelwise.model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

#: The only classes ``load_model`` will build: registry name -> (module, attribute).
MODEL_CLASSES: dict[str, tuple[str, str]] = {
    "OneVsRest": ("labelwise.models.ovr", "OneVsRest"),
    "LabelTree": ("labelwise.models.tree", "LabelTree"),
    "ZeroShot": ("labelwise.models.zeroshot", "ZeroShot"),
    "FewShot": ("labelwise.models.fewshot", "FewShot"),
    "MLPHead": ("labelwise.models.neural.mlp", "MLPHead"),
    "FineTuned": ("labelwise.models.neural.finetune", "FineTuned"),
    "FineTunedFewShot": ("labelwise.models.neural.fewshot_tuned", "FineTunedFewShot"),
    "LabelAttention": ("labelwise.models.neural.attention", "LabelAttention"),
    "ClassifierChain": ("labelwise.models.chains", "ClassifierChain"),
    "LabelPowerset": ("labelwise.models.powerset", "LabelPowerset"),
    "RAkEL": ("labelwise.models.powerset", "RAkEL"),
    "MLkNN": ("labelwise.models.mlknn", "MLkNN"),
    "LabelForest": ("labelwise.models.forest", "LabelForest"),
    "CalibratedLabelRanking": ("labelwise.models.pairwise", "CalibratedLabelRanking"),
    "LabelEmbedding": ("labelwise.models.embedding", "LabelEmbedding"),
    "OutputCodes": ("labelwise.models.codes", "OutputCodes"),
    "Blend": ("labelwise.models.blend", "Blend"),
}

_ARRAY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
_NPZ = "arrays.npz"
_SAFETENSORS = "arrays.safetensors"
#: storage kinds read by load_model
STORAGES = ("npy", "npz", "safetensors")
#: safetensors dtype codes -> numpy dtype strings (the numeric kinds numpy has)
_ST_DTYPES = {"BOOL": "|b1", "U8": "|u1", "I8": "|i1", "U16": "<u2", "I16": "<i2",
              "F16": "<f2", "U32": "<u4", "I32": "<i4", "F32": "<f4", "U64": "<u8",
              "I64": "<i8", "F64": "<f8"}
#: largest safetensors header read (the format's own limit is 100 MB)
_ST_MAX_HEADER = 100_000_000




def _version() -> str:
    from .. import __version__

    return __version__


def _safetensors(purpose: str) -> Any:
    try:
        import safetensors.numpy as st
    except ImportError:
        from ..errors import MissingDependencyError

        raise MissingDependencyError("safetensors", "neural", purpose) from None
    return st


def storage_of(model: Any, *, compress: bool = False) -> str:
    """The storage kind ``save_model`` uses for ``model`` (see the module docstring)."""
    kind = getattr(type(model), "_array_storage", "npy")
    if kind not in ("npy", "safetensors"):
        raise TypeError(f"{type(model).__name__}._array_storage must be 'npy' or 'safetensors', "
                        f"got {kind!r}")
    return "npz" if kind == "npy" and compress else kind


def save_model(model: Any, path: str | os.PathLike[str], *, compress: bool = False) -> None:
    """Write a fitted model to the directory ``path`` (replacing it atomically).

    ``compress=True`` writes one ``arrays.npz`` instead of one ``.npy`` per array; models
    stored as safetensors (``_array_storage``) always write ``arrays.safetensors``."""
    manifest, arrays = _prepare(model, compress=compress)
    with atomic_directory(path, markers=MODEL_MARKERS) as tmp:
        _write(manifest, arrays, FolderWriter(tmp), type(model)._encoder_param)


def write_model(model: Any, out: FolderWriter, *, compress: bool = False) -> None:
    """Write a fitted model into ``out``'s folder (a part of a larger saved folder): every
    file's sha256 is recorded in ``out`` as it is written."""
    manifest, arrays = _prepare(model, compress=compress)
    _write(manifest, arrays, out, type(model)._encoder_param)


def _prepare(model: Any, *, compress: bool) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The manifest (without arrays and files) and the arrays; every check that can fail
    runs here, before anything is written."""
    model._check_fitted()
    name = type(model)._persist_name
    if MODEL_CLASSES.get(name) != (type(model).__module__, type(model).__name__):
        raise TypeError(f"{type(model).__name__} is not registered in MODEL_CLASSES; cannot save")
    storage = storage_of(model, compress=compress)
    arrays, state = model._get_state()
    # a model whose parameters hold live objects (a scikit-learn base) gives their JSON form
    saved = getattr(model, "_saved_params", None)
    params = saved() if saved is not None else model.get_params(deep=False)
    try:
        params_json = json.loads(json.dumps(params, allow_nan=False))
        state_json = json.loads(json.dumps(state, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise TypeError(f"model params/state must be plain JSON values to be saved: {e}") from None
    clean: dict[str, np.ndarray] = {}
    for key, arr in arrays.items():
        if not _ARRAY_NAME.match(key):
            raise ValueError(f"array name {key!r} is not a plain identifier")
        a = np.ascontiguousarray(arr)
        if a.dtype.hasobject:
            raise TypeError(f"array {key!r} holds Python objects; only numeric arrays are saved")
        check_finite(a, name=key)
        clean[key] = a
    check_saved_arrays(type(model), clean, where=type(model).__name__)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": name,
        "labelwise_version": _version(),
        "params": params_json,
        "labels": model.labels_.to_dict(),
        "n_features_in": int(model.n_features_in_),
        "state": state_json,
        "storage": storage,
    }
    return manifest, clean


def _write(manifest: dict[str, Any], arrays: dict[str, np.ndarray], out: FolderWriter,
           encoder_param: str | None) -> None:
    storage = manifest["storage"]
    if encoder_param is not None:
        params = manifest["params"]
        params[encoder_param] = write_encoder(out, params.get(encoder_param))
    entries: dict[str, dict[str, Any]] = {}
    if storage == "npz":
        with open(out.root / _NPZ, "wb") as f:
            np.savez_compressed(f, **arrays)
        out.file_written(_NPZ)
    elif storage == "safetensors":
        _write_safetensors(arrays, out.root / _SAFETENSORS)
        out.file_written(_SAFETENSORS)
    for key, a in arrays.items():
        if storage == "npy":
            entries[key] = out.array(f"{key}.npy", a, key=key)
        else:
            entries[key] = {"dtype": a.dtype.str, "shape": list(a.shape)}
    files = dict(out.own_files())
    out.json(MANIFEST, {**manifest, "arrays": entries, "files": files})


def check_saved_arrays(cls: type, arrays: dict[str, np.ndarray], *, where: str) -> None:
    """Every array is one the class saves, with a dtype and number of dimensions it reads
    (its ``_saved_arrays``: name pattern -> (dtypes, ndim)), and finite where it is float.

    A re-signed file (checksums recomputed) with an array of another dtype would otherwise
    reach a numba kernel and fail at predict with a typing error."""
    spec: dict[str, tuple[tuple[str, ...], int | None]] = getattr(cls, "_saved_arrays", {})
    if not spec:
        raise TypeError(f"{cls.__name__} declares no _saved_arrays")
    for key, a in arrays.items():
        for pattern, (dtypes, ndim) in spec.items():
            if re.fullmatch(pattern, key):
                check_array(a, name=key, dtypes=dtypes, ndim=ndim, where=where)
                break
        else:
            raise DataFormatError(f"{cls.__name__} saves no array named {key!r}", path=where,
                                  field="arrays")


def _write_safetensors(arrays: dict[str, Any], path: Path) -> None:
    st = _safetensors("saving neural model weights")
    tensors = {}
    for key, arr in arrays.items():
        a = np.ascontiguousarray(arr)
        if a.dtype.str not in _ST_DTYPES.values():
            raise TypeError(f"array {key!r}: dtype {a.dtype} cannot be stored as safetensors")
        tensors[key] = a
    st.save_file(tensors, str(path), metadata={"format": FORMAT})


def _map_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Read-only views of every tensor of a safetensors file, from one memory map."""
    where = str(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or n > _ST_MAX_HEADER or 8 + n > size:
            raise DataFormatError("not a safetensors file (bad header length)", path=where)
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataFormatError(f"not a safetensors file (header: {e})", path=where) from None
    if not isinstance(header, dict):
        raise DataFormatError("not a safetensors file (header is not an object)", path=where)
    base = 8 + n
    buf = np.memmap(path, dtype=np.uint8, mode="r") if size > base else None
    out: dict[str, np.ndarray] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        ok = isinstance(entry, dict) and entry.get("dtype") in _ST_DTYPES
        shape, offsets = (entry.get("shape"), entry.get("data_offsets")) if ok else (None, None)
        ok = ok and isinstance(shape, list) and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ok = ok and isinstance(offsets, list) and len(offsets) == 2 and all(
            isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
        if not ok:
            raise DataFormatError(f"bad safetensors entry for {name!r}", path=where)
        dtype = np.dtype(_ST_DTYPES[entry["dtype"]])
        a, b = offsets
        if b - a != dtype.itemsize * int(np.prod(shape, dtype=np.int64)) or base + b > size:
            raise DataFormatError(f"tensor {name!r}: byte range {offsets} does not fit its "
                                  f"dtype and shape or the file", path=where)
        if a == b:
            arr = np.zeros(shape, dtype=dtype)
            arr.flags.writeable = False
        else:
            arr = buf[base + a:base + b].view(dtype).reshape(shape)
        out[name] = arr
    return out


def _read_safetensors(root: Path, files: dict[str, str], mpath: str,
                      mmap: bool) -> dict[str, np.ndarray]:
    if _SAFETENSORS not in files:
        raise DataFormatError(f"{_SAFETENSORS} is not listed", path=mpath, field="files")
    path = root / _SAFETENSORS
    if mmap:
        return _map_safetensors(path)
    st = _safetensors("loading neural model weights")
    from safetensors import SafetensorError

    try:
        return st.load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise DataFormatError(f"cannot read the safetensors file: {e}", path=str(path)) from None


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed, checked ``manifest.json`` of a model directory."""
    root = Path(path)
    mpath = root / MANIFEST
    if not root.is_dir():
        raise DataFormatError("no such model directory", path=str(root))
    if not mpath.is_file() and not mpath.is_symlink():
        raise DataFormatError("not a labelwise model directory (no manifest.json)", path=str(root))
    manifest = read_json(mpath)

    def need(key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in manifest:
            raise DataFormatError("missing", path=str(mpath), field=key)
        if not isinstance(manifest[key], kind):
            raise DataFormatError(f"wrong type {type(manifest[key]).__name__}",
                                  path=str(mpath), field=key)
        return manifest[key]

    if need("format", str) != FORMAT:
        raise DataFormatError(f"expected {FORMAT!r}, got {manifest['format']!r}",
                              path=str(mpath), field="format")
    version = need("format_version", int)
    if version != FORMAT_VERSION:
        raise DataFormatError(
            f"format version {version} is not supported (this labelwise reads {FORMAT_VERSION})",
            path=str(mpath), field="format_version")
    cls_name = need("class", str)
    if cls_name not in MODEL_CLASSES:
        raise DataFormatError(
            f"unknown model class {cls_name!r}; known: {', '.join(sorted(MODEL_CLASSES))}",
            path=str(mpath), field="class")
    need("params", dict)
    need("labels", dict)
    need("n_features_in", int)
    need("state", dict)
    if need("storage", str) not in STORAGES:
        raise DataFormatError(f"expected 'npy', 'npz' or 'safetensors', got "
                              f"{manifest['storage']!r}", path=str(mpath), field="storage")
    need("arrays", dict)
    files = need("files", dict)
    for fname, digest in files.items():
        if (not isinstance(fname, str) or Path(fname).name != fname or fname.startswith(".")
                or fname == MANIFEST or not isinstance(digest, str)):
            raise DataFormatError(f"bad file entry {fname!r}", path=str(mpath), field="files")
    return manifest


def load_model(path: str | os.PathLike[str], *, mmap: bool = False, verify: bool = True,
               also_listed: tuple[str, ...] = ()) -> Any:
    """Read a model directory; ``mmap=True`` maps ``.npy``/safetensors arrays read-only.

    ``verify=False`` skips the SHA-256 check (it reads every byte once). The folder must
    hold exactly the files its manifest lists (``also_listed``: files another index lists
    and checks, such as the calibration an older ``labelwise tune`` wrote beside it), none
    of them a symbolic link.
    """
    root = Path(path)
    manifest = read_manifest(root)
    on_disk = check_folder(root)
    mpath = str(root / MANIFEST)
    files: dict[str, str] = manifest["files"]
    verify_files(root, files, listed_in=MANIFEST, verify=verify)
    check_listed(root, on_disk, [MANIFEST, *files, *also_listed], listed_in=MANIFEST)
    check_json_finite(manifest["state"], where=mpath, field="state")
    storage = manifest["storage"]
    if mmap and storage == "npz":
        raise DataFormatError(
            "saved with compress=True (arrays.npz) and cannot be memory-mapped; "
            "load with mmap=False or save with compress=False", path=str(root))
    arrays: dict[str, np.ndarray] = {}
    npz = None
    tensors = None
    if storage == "safetensors":
        tensors = _read_safetensors(root, files, mpath, mmap)
        extra = sorted(set(tensors) - set(manifest["arrays"]))
        if extra:
            raise DataFormatError(f"{_SAFETENSORS} holds tensors the manifest does not list: "
                                  f"{', '.join(map(repr, extra[:5]))}", path=mpath, field="arrays")
    try:
        if storage == "npz":
            if _NPZ not in files:
                raise DataFormatError(f"{_NPZ} is not listed", path=mpath, field="files")
            npz = np.load(root / _NPZ, allow_pickle=False)
        for key, entry in manifest["arrays"].items():
            if not _ARRAY_NAME.match(str(key)) or not isinstance(entry, dict):
                raise DataFormatError(f"bad array entry {key!r}", path=mpath, field="arrays")
            try:
                if npz is not None:
                    arr = npz[key]
                elif tensors is not None:
                    if key not in tensors:
                        raise DataFormatError(f"array {key!r} is not in {_SAFETENSORS}",
                                              path=mpath, field="arrays")
                    arr = tensors[key]
                else:
                    fname = entry.get("file")
                    if fname not in files:
                        raise DataFormatError(f"array {key!r}: file {fname!r} is not listed",
                                              path=mpath, field="arrays")
                    arr = read_npy(root / fname, mmap=mmap)
            except (ValueError, KeyError, OSError) as e:
                raise DataFormatError(f"cannot read array {key!r}: {e}", path=str(root)) from None
            if arr.dtype.str != entry.get("dtype") or list(arr.shape) != entry.get("shape"):
                raise DataFormatError(
                    f"array {key!r} is {arr.dtype.str} {list(arr.shape)}, manifest says "
                    f"{entry.get('dtype')} {entry.get('shape')}", path=mpath, field="arrays")
            arrays[key] = arr
    finally:
        if npz is not None:
            npz.close()

    module, attr = MODEL_CLASSES[manifest["class"]]
    cls = getattr(importlib.import_module(module), attr)
    check_saved_arrays(cls, arrays, where=mpath)
    params = manifest["params"]
    unknown = sorted(set(params) - set(cls._get_param_names()))
    if unknown:
        raise DataFormatError(f"unknown parameters for {attr}: {', '.join(unknown)}",
                              path=mpath, field="params")
    if cls._encoder_param is not None and cls._encoder_param in params:
        params = {**params, cls._encoder_param: read_encoder(
            root, params[cls._encoder_param], where=mpath, field=f"params.{cls._encoder_param}")}
    # parameters added to a class after a file was written take the value that describes
    # how that file's model was trained, not today's default
    model = cls(**{**getattr(cls, "_params_absent_from_old_files", {}), **params})
    try:
        model._validate_params()
    except ValueError as e:
        raise DataFormatError(str(e), path=mpath, field="params") from None
    try:
        labels = LabelSpace.from_dict(manifest["labels"])
    except Exception as e:  # LabelError or a malformed dict
        raise DataFormatError(f"bad label space: {e}", path=mpath, field="labels") from None
    model.labels_ = labels
    model.n_features_in_ = manifest["n_features_in"]
    model._set_state(arrays, manifest["state"])
    return model
