"""The model directory format: a manifest plus arrays, no pickle, no code run on load.

A saved model is a directory::

    model/
      manifest.json      format, class, params, label space, learned scalars, checksums
      coef_data.npy      one raw .npy per array (the default; memory-mappable), or
      arrays.npz         all arrays in one compressed archive (``save(..., compress=True)``)

``manifest.json`` holds::

    {"format": "labelwise.model", "format_version": 1,
     "class": "OneVsRest",                  # a name in MODEL_CLASSES, never an import path
     "labelwise_version": "0.1.0",
     "params": {...},                       # get_params(deep=False), JSON values only
     "labels": {...},                       # LabelSpace.to_dict()
     "n_features_in": 1836,
     "state": {...},                        # the model's learned JSON-able facts
     "storage": "npy" | "npz",
     "arrays": {"coef_data": {"file": "coef_data.npy", "dtype": "<f4", "shape": [812, 1]}},
     "files": {"coef_data.npy": "<sha256 hex>", ...}}

Saving goes through :func:`labelwise.atomic.atomic_directory`, so a crash leaves either the
old directory or the new one. Loading checks the format and version, looks the class up in
the allow-list :data:`MODEL_CLASSES` (unknown names are refused), verifies every file's
SHA-256 (a mismatch raises :class:`~labelwise.errors.DataFormatError` naming the file), and
reads arrays with ``allow_pickle=False`` (``mmap_mode='r'`` when ``mmap=True``, which needs
the ``npy`` storage).
"""

from __future__ import annotations

import importlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_directory
from ..errors import DataFormatError
from ..files import read_json_object, sha256_file
from ..labels import LabelSpace

__all__ = ["FORMAT", "FORMAT_VERSION", "MODEL_CLASSES", "save_model", "load_model"]

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
}

_ARRAY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
_NPZ = "arrays.npz"




def _version() -> str:
    from .. import __version__

    return __version__


def save_model(model: Any, path: str | os.PathLike[str], *, compress: bool = False) -> None:
    """Write a fitted model to the directory ``path`` (replacing it atomically)."""
    model._check_fitted()
    name = type(model)._persist_name
    if MODEL_CLASSES.get(name) != (type(model).__module__, type(model).__name__):
        raise TypeError(f"{type(model).__name__} is not registered in MODEL_CLASSES; cannot save")
    arrays, state = model._get_state()
    params = model.get_params(deep=False)
    try:
        params_json = json.loads(json.dumps(params, allow_nan=False))
        state_json = json.loads(json.dumps(state, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise TypeError(f"model params/state must be plain JSON values to be saved: {e}") from None
    for key, arr in arrays.items():
        if not _ARRAY_NAME.match(key):
            raise ValueError(f"array name {key!r} is not a plain identifier")
        if np.asarray(arr).dtype.hasobject:
            raise TypeError(f"array {key!r} holds Python objects; only numeric arrays are saved")
    with atomic_directory(path) as tmp:
        entries: dict[str, dict[str, Any]] = {}
        files: dict[str, str] = {}
        if compress:
            np.savez_compressed(tmp / _NPZ, **{k: np.asarray(a) for k, a in arrays.items()})
            files[_NPZ] = sha256_file(tmp / _NPZ)
        for key, arr in arrays.items():
            a = np.ascontiguousarray(arr)
            entry: dict[str, Any] = {"dtype": a.dtype.str, "shape": list(a.shape)}
            if not compress:
                fname = f"{key}.npy"
                with open(tmp / fname, "wb") as f:
                    np.save(f, a, allow_pickle=False)
                files[fname] = sha256_file(tmp / fname)
                entry["file"] = fname
            entries[key] = entry
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "class": name,
            "labelwise_version": _version(),
            "params": params_json,
            "labels": model.labels_.to_dict(),
            "n_features_in": int(model.n_features_in_),
            "state": state_json,
            "storage": "npz" if compress else "npy",
            "arrays": entries,
            "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n",
                                    encoding="utf-8")


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed, checked ``manifest.json`` of a model directory."""
    root = Path(path)
    mpath = root / MANIFEST
    if not root.is_dir():
        raise DataFormatError("no such model directory", path=str(root))
    if not mpath.is_file():
        raise DataFormatError("not a labelwise model directory (no manifest.json)", path=str(root))
    manifest = read_json_object(mpath)

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
    if need("storage", str) not in ("npy", "npz"):
        raise DataFormatError(f"expected 'npy' or 'npz', got {manifest['storage']!r}",
                              path=str(mpath), field="storage")
    need("arrays", dict)
    files = need("files", dict)
    for fname, digest in files.items():
        if (not isinstance(fname, str) or Path(fname).name != fname or fname.startswith(".")
                or not isinstance(digest, str)):
            raise DataFormatError(f"bad file entry {fname!r}", path=str(mpath), field="files")
    return manifest


def load_model(path: str | os.PathLike[str], *, mmap: bool = False, verify: bool = True) -> Any:
    """Read a model directory; ``mmap=True`` maps ``.npy`` arrays read-only.

    ``verify=False`` skips the SHA-256 check (it reads every byte once).
    """
    root = Path(path)
    manifest = read_manifest(root)
    mpath = str(root / MANIFEST)
    files: dict[str, str] = manifest["files"]
    for fname, digest in files.items():
        fpath = root / fname
        if not fpath.is_file():
            raise DataFormatError("file listed in manifest.json is missing", path=str(fpath))
        if verify:
            actual = sha256_file(fpath)
            if actual != digest:
                raise DataFormatError(
                    f"sha256 mismatch: manifest.json says {digest}, file has {actual} "
                    "(the model files are corrupt or were changed)", path=str(fpath))
    storage = manifest["storage"]
    if mmap and storage != "npy":
        raise DataFormatError(
            "saved with compress=True (arrays.npz) and cannot be memory-mapped; "
            "load with mmap=False or save with compress=False", path=str(root))
    arrays: dict[str, np.ndarray] = {}
    npz = None
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
                else:
                    fname = entry.get("file")
                    if fname not in files:
                        raise DataFormatError(f"array {key!r}: file {fname!r} is not listed",
                                              path=mpath, field="arrays")
                    arr = np.load(root / fname, mmap_mode="r" if mmap else None,
                                  allow_pickle=False)
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
    params = manifest["params"]
    unknown = sorted(set(params) - set(cls._get_param_names()))
    if unknown:
        raise DataFormatError(f"unknown parameters for {attr}: {', '.join(unknown)}",
                              path=mpath, field="params")
    model = cls(**params)
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
