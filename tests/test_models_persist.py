"""The model directory format: manifest, checksums, allow-listed classes, no pickle, atomic."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import scipy.sparse as sp

import labelwise
from labelwise.errors import DataFormatError
from labelwise.models import OneVsRest, load_model, persist


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.normal(size=(50, 12)) * (rng.random((50, 12)) < 0.5)).astype(np.float32))
    Y = sp.csr_matrix((X @ rng.normal(size=(12, 4)) > 0.5).astype(np.float32))
    model = OneVsRest(C=0.5, random_state=2).fit(X, Y, labels=["ä", "b c", "d/e", "f"])
    return model, X


def _manifest(path):
    return json.loads((path / "manifest.json").read_text(encoding="utf-8"))


def _rewrite(path, manifest):
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_manifest_contents_and_checksums(fitted, tmp_path):
    model, _ = fitted
    model.save(tmp_path / "m")
    m = _manifest(tmp_path / "m")
    assert m["format"] == "labelwise.model" and m["format_version"] == 1
    assert m["class"] == "OneVsRest" and m["labelwise_version"] == labelwise.__version__
    assert m["params"] == model.get_params() and m["storage"] == "npy"
    assert m["labels"] == model.labels_.to_dict() and m["n_features_in"] == 12
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == sorted(["manifest.json", *m["files"]])
    for name, digest in m["files"].items():
        assert hashlib.sha256((tmp_path / "m" / name).read_bytes()).hexdigest() == digest
    assert m["arrays"]["coef_data"] == {"dtype": "<f4", "shape": [model.coef_.nnz],
                                        "file": "coef_data.npy"}
    assert not list(tmp_path.glob(".*")), "temporary directories left behind"


def test_corrupt_file_is_named(fitted, tmp_path):
    model, X = fitted
    model.save(tmp_path / "m")
    target = tmp_path / "m" / "intercept.npy"
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(DataFormatError, match=r"intercept\.npy: sha256 mismatch"):
        OneVsRest.load(tmp_path / "m")
    # verify=False reads it anyway (the bytes are still a valid array)
    loaded = OneVsRest.load(tmp_path / "m", verify=False)
    assert loaded.intercept_[-1] != model.intercept_[-1]


def test_missing_file_and_missing_manifest(fitted, tmp_path):
    model, _ = fitted
    model.save(tmp_path / "m")
    (tmp_path / "m" / "n_iter.npy").unlink()
    with pytest.raises(DataFormatError, match=r"n_iter\.npy: file listed in manifest"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "manifest.json").unlink()
    with pytest.raises(DataFormatError, match="no manifest.json"):
        load_model(tmp_path / "m")
    with pytest.raises(DataFormatError, match="no such model directory"):
        load_model(tmp_path / "absent")


@pytest.mark.parametrize("field,value,message", [
    ("class", "os.system", "unknown model class 'os.system'"),
    ("class", "labelwise.models.ovr.OneVsRest", "unknown model class"),
    ("format_version", 2, "format version 2 is not supported"),
    ("format", "sklearn.pickle", "expected 'labelwise.model'"),
    ("storage", "pickle", "expected 'npy' or 'npz'"),
    ("params", {"loss": "logistic", "evil": 1}, "unknown parameters for OneVsRest: evil"),
    ("n_features_in", "12", "wrong type"),
    ("params", {"n_threads": "many"}, "n_threads must be None or a positive int"),
])
def test_manifest_fields_are_checked(fitted, tmp_path, field, value, message):
    model, _ = fitted
    model.save(tmp_path / "m")
    m = _manifest(tmp_path / "m")
    m[field] = value
    _rewrite(tmp_path / "m", m)
    with pytest.raises(DataFormatError, match=message) as err:
        load_model(tmp_path / "m")
    assert "manifest.json" in str(err.value) and field in str(err.value)


def test_malformed_manifest_names_the_line(fitted, tmp_path):
    model, _ = fitted
    model.save(tmp_path / "m")
    (tmp_path / "m" / "manifest.json").write_text('{\n"format": \n}', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"manifest\.json:3: malformed JSON"):
        load_model(tmp_path / "m")


def test_file_names_cannot_leave_the_directory(fitted, tmp_path):
    model, _ = fitted
    model.save(tmp_path / "m")
    m = _manifest(tmp_path / "m")
    m["files"]["../outside.npy"] = "0" * 64
    _rewrite(tmp_path / "m", m)
    with pytest.raises(DataFormatError, match="bad file entry"):
        load_model(tmp_path / "m")


def test_pickled_arrays_are_never_unpickled(fitted, tmp_path):
    model, _ = fitted
    model.save(tmp_path / "m")
    evil = tmp_path / "m" / "n_iter.npy"
    np.save(evil, np.array([{"x": 1}] * 4, dtype=object), allow_pickle=True)
    m = _manifest(tmp_path / "m")
    m["files"]["n_iter.npy"] = hashlib.sha256(evil.read_bytes()).hexdigest()
    _rewrite(tmp_path / "m", m)
    with pytest.raises(DataFormatError, match="cannot read array 'n_iter'"):
        load_model(tmp_path / "m")


def test_array_shape_must_match_manifest_and_model(fitted, tmp_path):
    model, _ = fitted
    model.save(tmp_path / "m")
    path = tmp_path / "m" / "intercept.npy"
    np.save(path, np.zeros(3, np.float32))
    m = _manifest(tmp_path / "m")
    m["files"]["intercept.npy"] = hashlib.sha256(path.read_bytes()).hexdigest()
    _rewrite(tmp_path / "m", m)
    with pytest.raises(DataFormatError, match="array 'intercept' is <f4 \\[3\\]"):
        load_model(tmp_path / "m")
    m["arrays"]["intercept"]["shape"] = [3]
    _rewrite(tmp_path / "m", m)
    with pytest.raises(DataFormatError, match="do not fit 12 features x 4 labels"):
        load_model(tmp_path / "m")


def test_mmap_maps_read_only_and_needs_npy(fitted, tmp_path):
    model, X = fitted
    model.save(tmp_path / "m")
    loaded = OneVsRest.load(tmp_path / "m", mmap=True)
    assert not loaded.coef_.data.flags.writeable
    assert isinstance(loaded.coef_.data.base, np.memmap)
    assert (loaded.decision_function(X, k=2) != model.decision_function(X, k=2)).nnz == 0
    model.save(tmp_path / "z", compress=True)
    assert sorted(p.name for p in (tmp_path / "z").iterdir()) == ["arrays.npz", "manifest.json"]
    with pytest.raises(DataFormatError, match="cannot be memory-mapped"):
        OneVsRest.load(tmp_path / "z", mmap=True)


def test_failed_save_keeps_the_old_model(fitted, tmp_path, monkeypatch):
    model, X = fitted
    model.save(tmp_path / "m")
    before = (tmp_path / "m" / "manifest.json").read_bytes()
    calls = []

    def failing_save(f, arr, allow_pickle=False):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_save(f, arr, allow_pickle=allow_pickle)

    real_save = np.save
    monkeypatch.setattr(persist.np, "save", failing_save)
    other = OneVsRest(C=3.0).fit(X, sp.csr_matrix(np.eye(50, 4, dtype=np.float32) + np.eye(50, 4, -4, dtype=np.float32)))
    with pytest.raises(OSError, match="disk full"):
        other.save(tmp_path / "m")
    monkeypatch.undo()
    assert (tmp_path / "m" / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert OneVsRest.load(tmp_path / "m").C == 0.5


def test_unsaveable_params_are_refused(fitted, tmp_path):
    model, _ = fitted
    clone = OneVsRest(**model.get_params())
    clone.__dict__.update({k: v for k, v in vars(model).items() if k.endswith("_")})
    clone.memory_limit = object()
    with pytest.raises(TypeError, match="plain JSON"):
        clone.save(tmp_path / "m")
    assert not (tmp_path / "m").exists()
