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
    ("storage", "pickle", "expected 'npy', 'npz' or 'safetensors'"),
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


# ---------------------------------------------------------------------------- safetensors
def _mlp_fitted():
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from labelwise.models.neural import MLPHead

    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 6)).astype(np.float32)
    Y = sp.csr_matrix((X @ rng.normal(size=(6, 3)) > 0.3).astype(np.float32))
    model = MLPHead(hidden_sizes=(8,), epochs=3, batch_size=16, early_stopping=False,
                    n_threads=1, random_state=0).fit(X, Y, labels=["a", "b", "c"])
    return model, X


def test_neural_weights_are_one_safetensors_file(tmp_path):
    from safetensors.numpy import load_file

    model, X = _mlp_fitted()
    model.save(tmp_path / "m")
    model.save(tmp_path / "z", compress=True)  # compress does not apply to safetensors models
    for d in ("m", "z"):
        assert sorted(p.name for p in (tmp_path / d).iterdir()) == ["arrays.safetensors",
                                                                   "manifest.json"]
    m = _manifest(tmp_path / "m")
    assert m["storage"] == "safetensors"
    body = (tmp_path / "m" / "arrays.safetensors").read_bytes()
    assert m["files"] == {"arrays.safetensors": hashlib.sha256(body).hexdigest()}
    assert m["arrays"]["weight_0"] == {"dtype": "<f4", "shape": [8, 6]}  # no "file" key
    tensors = load_file(str(tmp_path / "m" / "arrays.safetensors"))
    assert sorted(tensors) == ["bias_0", "bias_1", "weight_0", "weight_1"]
    assert np.array_equal(tensors["weight_1"], model.coefs_[1])
    S = model.decision_function(X, k=2)
    for mmap in (False, True):
        loaded = load_model(tmp_path / "m", mmap=mmap)
        assert (loaded.decision_function(X, k=2) != S).nnz == 0
        assert np.array_equal(loaded.decision_function(X, k=2).data, S.data)
    mapped = load_model(tmp_path / "m", mmap=True)
    assert not mapped.coefs_[0].flags.writeable
    assert isinstance(mapped.coefs_[0].base, np.memmap)


def test_tampered_safetensors_is_refused(tmp_path):
    model, _ = _mlp_fitted()
    model.save(tmp_path / "m")
    path = tmp_path / "m" / "arrays.safetensors"
    body = bytearray(path.read_bytes())
    body[-1] ^= 0x40  # one bit of the last bias value
    path.write_bytes(bytes(body))
    with pytest.raises(DataFormatError, match=r"arrays\.safetensors: sha256 mismatch"):
        load_model(tmp_path / "m")
    with pytest.raises(DataFormatError, match=r"arrays\.safetensors: sha256 mismatch"):
        load_model(tmp_path / "m", mmap=True)


def _relist(root):
    m = _manifest(root)
    m["files"]["arrays.safetensors"] = hashlib.sha256(
        (root / "arrays.safetensors").read_bytes()).hexdigest()
    _rewrite(root, m)


@pytest.mark.parametrize("mmap", [False, True])
def test_malformed_safetensors_with_a_matching_checksum_is_refused(tmp_path, mmap):
    from safetensors.numpy import save_file

    model, _ = _mlp_fitted()
    root = tmp_path / "m"
    model.save(root)
    path = root / "arrays.safetensors"
    # truncated: the header promises more bytes than the file holds
    path.write_bytes(path.read_bytes()[:-8])
    _relist(root)
    with pytest.raises(DataFormatError, match=r"arrays\.safetensors"):
        load_model(root, mmap=mmap)
    # not a safetensors file at all
    path.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{oops")
    _relist(root)
    with pytest.raises(DataFormatError, match=r"arrays\.safetensors"):
        load_model(root, mmap=mmap)
    # valid file, but a tensor the manifest does not list, and one of another shape
    arrays, _ = model._get_state()
    save_file({**arrays, "extra": np.zeros(2, np.float32)}, str(path))
    _relist(root)
    with pytest.raises(DataFormatError, match="'extra'"):
        load_model(root, mmap=mmap)
    save_file({**arrays, "bias_1": np.zeros(4, np.float32)}, str(path))
    _relist(root)
    with pytest.raises(DataFormatError, match=r"array 'bias_1' is <f4 \[4\]"):
        load_model(root, mmap=mmap)


def test_safetensors_memory_map_equals_the_library(tmp_path):
    """The header parser behind mmap=True against safetensors' own reader, all dtypes."""
    pytest.importorskip("safetensors")
    from safetensors.numpy import load_file, save_file

    rng = np.random.default_rng(5)
    arrays = {f"a_{np.dtype(t).name}": (rng.normal(size=(3, 5)) * 50).astype(t)
              for t in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")}
    arrays["flags"] = rng.random((4, 2)) < 0.5
    arrays["scalar"] = np.array(2.5, dtype=np.float64)
    arrays["empty"] = np.zeros((0, 7), dtype=np.float32)
    arrays["odd"] = np.arange(3, dtype=np.uint8)  # odd byte counts before wider dtypes
    path = tmp_path / "t.safetensors"
    save_file(arrays, str(path))
    mapped = persist._map_safetensors(path)
    read = load_file(str(path))
    assert sorted(mapped) == sorted(read) == sorted(arrays)
    for key, a in arrays.items():
        assert mapped[key].dtype == read[key].dtype == a.dtype, key
        assert mapped[key].shape == a.shape and np.array_equal(mapped[key], a), key
        assert not mapped[key].flags.writeable


def test_npy_directories_of_neural_models_still_load(tmp_path, monkeypatch):
    from labelwise.models.neural import MLPHead

    model, X = _mlp_fitted()
    monkeypatch.setattr(MLPHead, "_array_storage", "npy")  # as saved before safetensors
    model.save(tmp_path / "old")
    monkeypatch.undo()
    assert _manifest(tmp_path / "old")["storage"] == "npy"
    assert (tmp_path / "old" / "weight_0.npy").is_file()
    loaded = load_model(tmp_path / "old")
    assert np.array_equal(loaded.decision_function(X, k=3).data, model.decision_function(X, k=3).data)
