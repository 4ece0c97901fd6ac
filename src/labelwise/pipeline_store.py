"""The pipeline directory format: one folder, JSON plus numeric arrays, no pickle.

A saved :class:`~labelwise.pipeline.Pipeline` is a directory::

    pipeline/
      pipeline.json          format, components, tuning facts, sha256 of every other file
      model/                 the model directory format (labelwise.models.persist)
      featurizer/            featurizer.json + one .npy per array (labelwise.features.base)
      scaler/                the per-column Scale of numeric X, the same featurizer format
      calibration.json/.npz  the tuned calibrator (``calibrator_``), when there is one
      decision.json/.npz     the tuned decision policy (``decision_``), when there is one
      open_labels/           the FewShot of labels added after training (hybrid pipelines)
      label_counts.npy       int64 training positives per model label, when known

``pipeline.json`` holds::

    {"format": "labelwise.pipeline", "format_version": 1, "labelwise_version": "0.1.0",
     "components": {"featurizer": {"path": "featurizer", "class": "Tfidf"} | null,
                    "model": {"path": "model", "class": "OneVsRest"},
                    "calibrator": {"name": "calibration", "kind": "platt"} | null,
                    "decision": {"name": "decision", "policy": "per-label-threshold"} | null,
                    "open_labels": {"path": "open_labels", "class": "FewShot"}
                                   | {"class": "FewShot", "params": {...}} | null},
     "n_labels": 28,                   # all labels: the model's, then the open ones
     "open_calibration": {"temperature", "bias", "n_rows", "n_labels", "n_positives"} | null,
     "label_counts": "label_counts.npy" | null,
     "params": {"cv": 5, "k": 100, "random_state": 0, "featurizer_in_folds": null | bool,
                "scale": "auto" | ... | null,   # no "scale" (older files): null
                "missing": "median" | "mean" | "error",   # absent (older files): "median"
                "calibrator": {"kind", "params"} | null,            # the constructor's
                "decision": {"policy", "params"[, "threshold"]} | null,  # (unfitted) parts
                "open_labels": {FewShot parameters} | null},
     # components may hold "scaler": {"path": "scaler", "class": "Scale"}
     "tuning": {"objective", "calibration", "cv", "k", "random_state",
                "featurizer_in_folds", "n_samples"} | null,
     "files": {"model/manifest.json": "<sha256 hex>", ...}}

``components`` hold what was learned: the tuned ``calibrator_`` and ``decision_``, and the open
part (``open_labels``: a model directory) or, before any label was added, the parameters of the
FewShot that will hold them (see :mod:`labelwise.models.hybrid`). ``params`` hold the
constructor's parameters, so a loaded pipeline's ``get_params()`` is the saved one's: its
``calibrator`` and ``decision`` as their class and settings (:func:`spec_of`), its
``open_labels`` as FewShot parameters. Files written before these three keys existed (when
``tune`` overwrote the parameters with what it tuned) load with the parameters taken from the
tuned parts (unfitted copies of them) and, for an open part, its encoder settings. A
pipeline with open labels is written as format version 2, so that a labelwise that does not
know open labels refuses it instead of dropping them; others stay version 1.

The whole directory is written through :func:`labelwise.atomic.atomic_directory` (a crash
leaves the old pipeline or the new one). Loading checks the format and version, verifies
every listed file's SHA-256 (``verify=False`` skips that), refuses a listed path that leaves
the directory, and builds components only from the allow-lists of their own formats.

Plain model directories (``manifest.json`` at the top, as ``labelwise train`` wrote before
pipelines existed) load through :func:`load_any` as a pipeline around the model; when
``labelwise tune`` wrote ``calibration.*``, ``decision.*`` and ``decision-manifest.json``
next to that manifest, those are checked (their sha256 and the model manifest's) and loaded
too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import PIPELINE_MARKERS, atomic_directory
from .checks import MISSING_RULES
from .errors import DataFormatError
from .store import (
    FolderWriter,
    check_folder,
    check_listed,
    read_json,
    read_npy,
    sha256_file,
    verify_files,
    write_object,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "PIPELINE_FILE", "save_pipeline", "load_pipeline",
           "load_any", "is_pipeline_dir", "LEGACY_DECISION_MANIFEST", "spec_of", "from_spec"]

FORMAT = "labelwise.pipeline"
FORMAT_VERSION = 1
#: the format version of pipelines with open labels (FORMAT_VERSION for the others)
OPEN_LABELS_FORMAT_VERSION = 2
_READS = (FORMAT_VERSION, OPEN_LABELS_FORMAT_VERSION)
LABEL_COUNTS = "label_counts.npy"
PIPELINE_FILE = "pipeline.json"
LEGACY_DECISION_MANIFEST = "decision-manifest.json"
_LEGACY_FILES = ("calibration.json", "calibration.npz", "decision.json", "decision.npz")


def is_pipeline_dir(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / PIPELINE_FILE).is_file()


def spec_of(part: Any) -> dict[str, Any]:
    """A calibrator's or decision policy's class and settings (fitted or not), as JSON:
    ``{"kind", "params"}`` or ``{"policy", "params"}`` (a Combined adds ``"threshold"``, the
    inner policy's spec or None)."""
    from .calibration.calibrators import CALIBRATORS, Calibrator
    from .decision.policies import POLICIES, Combined, DecisionPolicy

    if isinstance(part, Calibrator) and CALIBRATORS.get(part.kind) is type(part):
        return {"kind": part.kind, "params": part._params()}
    if isinstance(part, DecisionPolicy) and POLICIES.get(part.name) is type(part):
        out = {"policy": part.name, "params": part._params()}
        if isinstance(part, Combined):
            out["threshold"] = None if part.threshold is None else spec_of(part.threshold)
        return out
    raise DataFormatError(f"cannot save a {type(part).__name__}: a pipeline saves the "
                          "calibrators of labelwise.calibration and the policies of "
                          "labelwise.decision", field="calibrator/decision")


def from_spec(spec: Any, *, where: str | None = None) -> Any:
    """The unfitted calibrator or policy that :func:`spec_of` describes."""
    from .calibration.calibrators import CALIBRATORS
    from .decision.policies import POLICIES, Combined

    try:
        if isinstance(spec, dict) and spec.get("kind") in CALIBRATORS:
            return CALIBRATORS[spec["kind"]](**spec["params"])
        if isinstance(spec, dict) and spec.get("policy") in POLICIES:
            cls = POLICIES[spec["policy"]]
            if cls is Combined:
                inner = spec.get("threshold")
                return cls(None if inner is None else from_spec(inner, where=where),
                           **spec["params"])
            return cls(**spec["params"])
    except (KeyError, TypeError) as e:
        raise DataFormatError(f"malformed calibrator or policy {spec!r}: {e!r}", path=where,
                              field="params") from None
    raise DataFormatError(f"expected a calibrator {{'kind', 'params'}} or a policy "
                          f"{{'policy', 'params'}}, got {spec!r}", path=where, field="params")




def save_pipeline(pipe: Any, path: str | os.PathLike[str]) -> None:
    """Write a fitted (and possibly tuned) pipeline to the directory ``path``, atomically.

    Every part is written through one :class:`labelwise.store.FolderWriter`, which hashes
    each file as it writes it: ``pipeline.json`` lists those digests (no file is read back)."""
    from . import __version__
    from .calibration.calibrators import FORMAT as CALIBRATION_FORMAT
    from .decision.policies import FORMAT as DECISION_FORMAT
    from .features.base import write_featurizer
    from .models.persist import write_model

    pipe._check_fitted()
    pipe._check_tuned()
    feat = pipe.featurizer
    feat_dict = None if feat is None else feat.to_dict()  # raises before any disk work
    part = pipe._open_part()  # what was learned: the open labels' FewShot, or None
    template = None
    if pipe.open_labels is not None:  # the parameter: settings of labels added later
        template = json.loads(json.dumps(pipe.open_labels.get_params(deep=False),
                                         allow_nan=False))
    specs = {name: None if getattr(pipe, name) is None else spec_of(getattr(pipe, name))
             for name in ("calibrator", "decision")}  # raises before any disk work
    counts = getattr(pipe, "label_counts_", None)
    with atomic_directory(path, markers=PIPELINE_MARKERS) as tmp:
        out = FolderWriter(tmp)
        components: dict[str, Any] = {"featurizer": None, "calibrator": None, "decision": None,
                                      "open_labels": None}
        write_model(pipe.model, out.sub("model"))
        components["model"] = {"path": "model", "class": type(pipe.model)._persist_name}
        if feat is not None:
            write_featurizer(feat, out.sub("featurizer"))
            components["featurizer"] = {"path": "featurizer", "class": feat_dict["class"]}
        scaler = getattr(pipe, "scaler_", None)
        if scaler is not None:
            write_featurizer(scaler, out.sub("scaler"))
            components["scaler"] = {"path": "scaler", "class": "Scale"}
        calibrator, decision = pipe.calibrator_, pipe.decision_
        if calibrator is not None:
            write_object(out, "calibration", CALIBRATION_FORMAT, calibrator.to_dict(),
                         calibrator.arrays())
            components["calibrator"] = {"name": "calibration", "kind": calibrator.kind}
        if decision is not None:
            write_object(out, "decision", DECISION_FORMAT, decision.to_dict(),
                         decision.arrays())
            components["decision"] = {"name": "decision", "policy": decision.name}
        if part is not None:
            write_model(part, out.sub("open_labels"))
            components["open_labels"] = {"path": "open_labels", "class": type(part)._persist_name}
        elif template is not None:
            components["open_labels"] = {"class": type(pipe.open_labels)._persist_name,
                                         "params": template}
        if counts is not None:
            out.array(LABEL_COUNTS, np.asarray(counts, dtype=np.int64))
        has_open = part is not None or template is not None
        version = OPEN_LABELS_FORMAT_VERSION if has_open else FORMAT_VERSION
        doc = {"format": FORMAT, "format_version": version,
               "labelwise_version": __version__, "components": components,
               "n_labels": len(pipe.labels_),
               "open_calibration": pipe.open_calibration_,
               "label_counts": None if counts is None else LABEL_COUNTS,
               "params": {"cv": pipe.cv, "k": pipe.k, "random_state": pipe.random_state,
                          "featurizer_in_folds": (None if pipe.featurizer_in_folds is None
                                                  else bool(pipe.featurizer_in_folds)),
                          "scale": pipe.scale, "missing": pipe.missing, **specs,
                          "open_labels": template},
               "tuning": getattr(pipe, "tuning_", None), "files": dict(sorted(out.files.items()))}
        out.json(PIPELINE_FILE, doc)


def _read_doc(root: Path) -> dict[str, Any]:
    jpath = root / PIPELINE_FILE
    where = str(jpath)
    doc = read_json(jpath)
    if doc.get("format") != FORMAT:
        raise DataFormatError(f"expected {FORMAT!r}, got {doc.get('format')!r}", path=where,
                              field="format")
    if doc.get("format_version") not in _READS:
        raise DataFormatError(f"format version {doc.get('format_version')!r} is not supported "
                              f"(this labelwise reads {', '.join(map(str, _READS))})",
                              path=where, field="format_version")
    for key, kind in (("components", dict), ("files", dict), ("params", dict)):
        if not isinstance(doc.get(key), kind):
            raise DataFormatError(f"missing or not a {kind.__name__}", path=where, field=key)
    if doc.get("tuning") is not None and not isinstance(doc["tuning"], dict):
        raise DataFormatError("expected an object or null", path=where, field="tuning")
    return doc


def _check_files(root: Path, files: dict[str, Any], where: str, verify: bool,
                 on_disk: set[str] | None = None) -> None:
    """Every listed file inside the folder, present and (with ``verify``) unchanged; with
    ``on_disk``, every file in the folder listed (an unlisted one would load unverified)."""
    if PIPELINE_FILE in files:
        raise DataFormatError(f"bad file entry {PIPELINE_FILE!r}", path=where, field="files")
    verify_files(root, files, listed_in=PIPELINE_FILE, verify=verify, where=where)
    if on_disk is not None:
        check_listed(root, on_disk, [PIPELINE_FILE, *files], listed_in=PIPELINE_FILE)


def _component(doc: dict[str, Any], name: str, key: str, where: str) -> str | None:
    entry = doc["components"].get(name)
    if entry is None:
        return None
    value = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(value, str) or "/" in value or value.startswith(".") or not value:
        raise DataFormatError(f"bad {name} entry {entry!r}", path=where, field="components")
    return value


def load_pipeline(path: str | os.PathLike[str], *, cls: type, mmap: bool = False,
                  verify: bool = True):
    """Read a pipeline directory written by :func:`save_pipeline` as a ``cls`` (the
    :class:`~labelwise.pipeline.Pipeline` class, passed by its ``load``: this module never
    imports the module that uses it)."""
    from .calibration import load_calibrator
    from .decision import load_policy
    from .features.base import load_featurizer
    from .models.persist import load_model

    root = Path(path)
    if not root.is_dir():
        raise DataFormatError("no such pipeline directory", path=str(root))
    if not (root / PIPELINE_FILE).is_file():
        raise DataFormatError(f"not a labelwise pipeline directory (no {PIPELINE_FILE})",
                              path=str(root))
    on_disk = check_folder(root)
    doc = _read_doc(root)
    where = str(root / PIPELINE_FILE)
    _check_files(root, doc["files"], where, verify, on_disk)
    model_dir = _component(doc, "model", "path", where)
    if model_dir is None:
        raise DataFormatError("the pipeline has no model", path=where, field="components")
    model = load_model(root / model_dir, mmap=mmap, verify=False)  # files checked above
    feat_dir = _component(doc, "featurizer", "path", where)
    featurizer = (None if feat_dir is None
                  else load_featurizer(root / feat_dir, verify=False, mmap=mmap))
    cal_name = _component(doc, "calibrator", "name", where)
    calibrator = None if cal_name is None else load_calibrator(root, name=cal_name,
                                                               verify=False)
    dec_name = _component(doc, "decision", "name", where)
    decision = None if dec_name is None else load_policy(root, name=dec_name, verify=False)
    params = doc["params"]
    specs = {}  # the constructor's parts; older files: unfitted copies of the tuned ones
    for name, tuned in (("calibrator", calibrator), ("decision", decision)):
        if name in params:
            specs[name] = None if params[name] is None else from_spec(params[name], where=where)
        else:
            specs[name] = None if tuned is None else from_spec(spec_of(tuned), where=where)
    missing = params.get("missing", "median")
    if missing not in MISSING_RULES:
        raise DataFormatError(f"expected one of {', '.join(MISSING_RULES)}, got {missing!r}",
                              path=where, field="params.missing")
    try:
        pipe = cls(featurizer, model, specs["calibrator"], specs["decision"], cv=params["cv"],
                   k=params["k"], random_state=params["random_state"],
                   featurizer_in_folds=_optional_bool(params["featurizer_in_folds"], where),
                   scale=params.get("scale"), missing=missing)
    except KeyError as e:
        raise DataFormatError(f"missing {e.args[0]!r}", path=where, field="params") from None
    pipe.calibrator_, pipe.decision_ = calibrator, decision
    _check_label_counts(pipe, where)
    scaler_dir = _component(doc, "scaler", "path", where)
    if scaler_dir is not None:
        scaler = load_featurizer(root / scaler_dir, verify=False)
        if type(scaler).__name__ != "Scale" or featurizer is not None:
            raise DataFormatError("the scaler must be a Scale, in a pipeline without a "
                                  "featurizer", path=where, field="components")
        pipe.scaler_ = scaler
    if doc.get("tuning") is not None:
        pipe.tuning_ = doc["tuning"]
        if isinstance(pipe.tuning_.get("model_params"), dict):
            pipe.model_params_ = pipe.tuning_["model_params"]
        _check_tuning_k(pipe, where)
    _load_open(root, doc, pipe, where, mmap)
    return pipe


def _load_open(root: Path, doc: dict[str, Any], pipe: Any, where: str, mmap: bool) -> None:
    """The open labels, their calibration and the label counts (all optional)."""
    from .models.fewshot import FewShot
    from .models.hybrid import template_from
    from .models.persist import load_model

    entry = doc["components"].get("open_labels")
    if "open_labels" in doc["params"]:  # the constructor's parameter
        template = doc["params"]["open_labels"]
        pipe.open_labels = None if template is None else _fewshot(template, where, "params")
    if entry is not None:
        if not isinstance(entry, dict) or entry.get("class") != FewShot._persist_name:
            raise DataFormatError(f"bad open_labels entry {entry!r}", path=where,
                                  field="components")
        if "params" in entry:
            if "open_labels" not in doc["params"]:  # older files: the parameter was here
                pipe.open_labels = _fewshot(entry["params"], where, "components")
        else:
            sub = _component(doc, "open_labels", "path", where)
            part = load_model(root / sub, mmap=mmap, verify=False)  # files checked above
            if not isinstance(part, FewShot):
                raise DataFormatError(f"open_labels holds a {type(part).__name__}, not a "
                                      "FewShot", path=where, field="components")
            clash = set(part.labels_.names) & set(pipe.model.labels_.names)
            if clash:
                raise DataFormatError(f"open labels also in the model: {sorted(clash)}",
                                      path=where, field="components")
            pipe._open.part = part
            if "open_labels" not in doc["params"]:  # older files held the part as parameter
                pipe.open_labels = template_from(part)
    cal = doc.get("open_calibration")
    if cal is not None:
        ok = isinstance(cal, dict) and all(
            isinstance(cal.get(key), int | float) and not isinstance(cal.get(key), bool)
            for key in ("temperature", "bias"))
        if not ok or not cal["temperature"] > 0:
            raise DataFormatError("expected temperature > 0 and bias numbers", path=where,
                                  field="open_calibration")
        pipe._open.calibration = cal
    counts = doc.get("label_counts")
    if counts is not None:
        if counts != LABEL_COUNTS or LABEL_COUNTS not in doc["files"]:
            raise DataFormatError(f"expected {LABEL_COUNTS!r} (listed in files)", path=where,
                                  field="label_counts")
        arr = read_npy(root / LABEL_COUNTS)
        if arr.dtype != np.int64 or arr.shape != (len(pipe.model.labels_),) or np.any(arr < 0):
            raise DataFormatError("expected int64 counts >= 0, one per model label",
                                  path=str(root / LABEL_COUNTS))
        pipe.label_counts_ = arr
    n = doc.get("n_labels")
    if n is not None and n != len(pipe.labels_):
        raise DataFormatError(f"n_labels is {n!r}, the components hold {len(pipe.labels_)}",
                              path=where, field="n_labels")


def _optional_bool(value: Any, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise DataFormatError(f"featurizer_in_folds must be true, false or null, got {value!r}",
                          path=where, field="params.featurizer_in_folds")


def _fewshot(params: Any, where: str, field: str) -> Any:
    """The FewShot of saved parameters (the ``open_labels`` parameter)."""
    from .models.fewshot import FewShot

    names = set(FewShot._get_param_names())
    if not isinstance(params, dict) or set(params) - names:
        raise DataFormatError("bad open_labels parameters", path=where, field=field)
    if isinstance(params.get("templates"), list):
        params = {**params, "templates": tuple(params["templates"])}
    return FewShot(**params)


def _check_label_counts(pipe: Any, where: str) -> None:
    n = len(pipe.model.labels_)
    for name in ("calibrator_", "decision_"):
        comp = getattr(pipe, name)
        if comp is not None and comp.n_labels_ != n:
            raise DataFormatError(f"the {name[:-1]} was fitted on {comp.n_labels_} labels, "
                                  f"the model has {n}", path=where)


def _check_tuning_k(pipe: Any, where: str) -> None:
    k = pipe.tuning_.get("k")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise DataFormatError(f"tuning k must be a positive int, got {k!r}", path=where,
                              field="tuning")


def _load_legacy(root: Path, pipe: Any, verify: bool) -> None:
    """calibration/decision written by the older ``labelwise tune`` next to manifest.json."""
    from .calibration import load_calibrator
    from .decision import load_policy

    mpath = root / LEGACY_DECISION_MANIFEST
    where = str(mpath)
    man = read_json(mpath)
    if man.get("format") != "labelwise.decision-manifest":
        raise DataFormatError("expected a 'labelwise.decision-manifest' object", path=where)
    files = man.get("files")
    if not isinstance(files, dict) or sorted(files) != sorted(_LEGACY_FILES):
        raise DataFormatError(f"expected sha256 of {', '.join(_LEGACY_FILES)}", path=where,
                              field="files")
    if verify:
        if man.get("model_manifest_sha256") != sha256_file(root / "manifest.json"):
            raise DataFormatError("the model's manifest.json changed since tuning (sha256 "
                                  "mismatch): tune again", path=where,
                                  field="model_manifest_sha256")
        _check_files(root, files, where, True)
    pipe.calibrator_ = load_calibrator(root, name="calibration")
    pipe.decision_ = load_policy(root, name="decision")
    # the parameters, as those of a pipeline tuned by the older `labelwise tune`: the tuned
    # parts' class and settings
    pipe.calibrator = from_spec(spec_of(pipe.calibrator_), where=where)
    pipe.decision = from_spec(spec_of(pipe.decision_), where=where)
    _check_label_counts(pipe, where)
    pipe.tuning_ = {"objective": man.get("objective"), "calibration": man.get("calibration"),
                    "cv": man.get("cv"), "k": man.get("k"), "random_state": None,
                    "featurizer_in_folds": False, "n_samples": None}
    _check_tuning_k(pipe, where)


def load_any(path: str | os.PathLike[str], *, cls: type, mmap: bool = False,
             verify: bool = True):
    """A pipeline directory, or a plain model directory wrapped as a pipeline (``cls``: the
    Pipeline class, as in :func:`load_pipeline`)."""
    from .models.persist import MANIFEST, load_model

    root = Path(path)
    if is_pipeline_dir(root):
        return load_pipeline(root, cls=cls, mmap=mmap, verify=verify)
    if not root.is_dir():
        raise DataFormatError("no such pipeline or model directory", path=str(root))
    if not (root / MANIFEST).is_file():
        raise DataFormatError(f"not a labelwise pipeline or model directory (no {PIPELINE_FILE} "
                              f"or {MANIFEST})", path=str(root))
    legacy = (root / LEGACY_DECISION_MANIFEST).is_file()
    also = (LEGACY_DECISION_MANIFEST, *_LEGACY_FILES) if legacy else ()
    pipe = cls(model=load_model(root, mmap=mmap, verify=verify, also_listed=also))
    if legacy:
        _load_legacy(root, pipe, verify)
    return pipe
