"""labelwise.store: one set of rules for every saved folder (models, featurizers, calibrators,
policies, pipelines), and the persistence defects of issue 18 section 5 (each test here
fails on the code before labelwise.store)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise.errors import DataFormatError
from labelwise.features import Tfidf
from labelwise.features.base import Featurizer, load_featurizer
from labelwise.labels import LabelSpace
from labelwise.models import LabelTree, OneVsRest, ZeroShot, load_model
from labelwise.pipeline import Pipeline, load_any
from labelwise.store import FolderWriter

FIXTURES = Path(__file__).parent / "data" / "store_v1"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.normal(size=(60, 12)) * (rng.random((60, 12)) < 0.5)).astype(np.float32))
    Y = sp.csr_matrix((X @ rng.normal(size=(12, 4)) > 0.5).astype(np.float32))
    return X, Y


@pytest.fixture(scope="module")
def ovr(data):
    return OneVsRest(random_state=0).fit(*data)


@pytest.fixture(scope="module")
def tree(data):
    return LabelTree(random_state=0).fit(*data)


@pytest.fixture(scope="module")
def tuned(data):
    X, Y = data
    return Pipeline(model=OneVsRest(random_state=0)).fit(X, Y).tune(X, Y, cv=2, k=3)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _resign_model(d: Path) -> None:
    """What an attacker (or a user editing a model) does: recompute every checksum and
    every array entry of manifest.json so that the sha256 check passes."""
    m = json.loads((d / "manifest.json").read_text())
    for f in m["files"]:
        m["files"][f] = _sha(d / f)
    for entry in m["arrays"].values():
        a = np.load(d / entry["file"])
        entry["dtype"], entry["shape"] = a.dtype.str, list(a.shape)
    (d / "manifest.json").write_text(json.dumps(m))


def _resign_pipeline(d: Path) -> None:
    doc = json.loads((d / "pipeline.json").read_text())
    for rel in doc["files"]:
        doc["files"][rel] = _sha(d / rel)
    (d / "pipeline.json").write_text(json.dumps(doc))


def _replace_array(path: Path, a: np.ndarray) -> None:
    path.unlink()
    np.save(path, a)


# ------------------------------------------------------------- arrays of the wrong dtype
@pytest.mark.parametrize("key,dtype", [("coef_data", np.complex64), ("coef_data", np.float64),
                                       ("intercept", np.float64), ("n_iter", np.float64),
                                       ("labels_without_positives", np.int32)])
def test_resigned_ovr_arrays_of_another_dtype_are_refused_at_load(ovr, data, tmp_path, key,
                                                                  dtype):
    d = tmp_path / "m"
    ovr.save(d)
    _replace_array(d / f"{key}.npy", np.load(d / f"{key}.npy").astype(dtype))
    _resign_model(d)
    with pytest.raises(DataFormatError, match=rf"manifest\.json: {key}: array '{key}' has "
                                              rf"dtype {np.dtype(dtype).str}, expected"):
        load_model(d)


@pytest.mark.parametrize("key", ["weights", "feat_id", "node_dense"])
def test_resigned_tree_arrays_of_another_dtype_or_rank_are_refused(tree, tmp_path, key):
    d = tmp_path / "t"
    tree.save(d)
    a = np.load(d / f"{key}.npy")
    _replace_array(d / f"{key}.npy", a.astype(np.float64 if key != "feat_id" else np.int64))
    _resign_model(d)
    with pytest.raises(DataFormatError, match=rf"array '{key}' has dtype"):
        load_model(d)
    _replace_array(d / f"{key}.npy", a.reshape(1, -1))
    _resign_model(d)
    with pytest.raises(DataFormatError, match=rf"array '{key}' has 2 dimension"):
        load_model(d)


def test_an_array_the_class_does_not_save_is_refused(ovr, tmp_path):
    d = tmp_path / "m"
    ovr.save(d)
    np.save(d / "extra.npy", np.zeros(3, dtype=np.float32))
    m = json.loads((d / "manifest.json").read_text())
    m["arrays"]["extra"] = {"file": "extra.npy", "dtype": "<f4", "shape": [3]}
    m["files"]["extra.npy"] = ""
    (d / "manifest.json").write_text(json.dumps(m))
    _resign_model(d)
    with pytest.raises(DataFormatError, match="OneVsRest saves no array named 'extra'"):
        load_model(d)


# ------------------------------------------------------------- NaN / inf
@pytest.mark.parametrize("key", ["coef_data", "intercept"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_weights_are_refused_at_load(ovr, tmp_path, key, value):
    d = tmp_path / "m"
    ovr.save(d)
    a = np.load(d / f"{key}.npy").copy()
    a[0] = value
    _replace_array(d / f"{key}.npy", a)
    _resign_model(d)
    with pytest.raises(DataFormatError, match=rf"manifest\.json: {key}: array '{key}' holds 1 "
                                              "NaN or infinite"):
        load_model(d)


def test_non_finite_weights_are_refused_at_save(data, tmp_path):
    model = OneVsRest().fit(*data)
    model.intercept_ = model.intercept_.copy()
    model.intercept_[1] = np.nan
    with pytest.raises(DataFormatError, match="intercept.*NaN or infinite"):
        model.save(tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_non_finite_thresholds_are_refused_at_load(tuned, tmp_path):
    d = tmp_path / "p"
    tuned.save(d)
    with np.load(d / "decision.npz") as z:
        arrays = {k: z[k].copy() for k in z.files}
    arrays["thresholds"][0] = np.nan
    np.savez(d / "decision.npz", **arrays)
    doc = json.loads((d / "decision.json").read_text())
    doc["npz_sha256"] = _sha(d / "decision.npz")
    (d / "decision.json").write_text(json.dumps(doc))
    _resign_pipeline(d)
    with pytest.raises(DataFormatError, match=r"decision\.npz: thresholds: array 'thresholds' "
                                              "holds 1 NaN"):
        Pipeline.load(d)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_json_numbers_are_refused(tuned, tmp_path, text):
    d = tmp_path / "p"
    tuned.save(d)
    raw = (d / "calibration.json").read_text()
    doc = json.loads(raw)
    # the first number of the calibrator's state becomes non-finite
    doc["object"]["missing_probability"] = "@@"
    (d / "calibration.json").write_text(json.dumps(doc).replace('"@@"', text))
    _resign_pipeline(d)
    with pytest.raises(DataFormatError, match=r"calibration\.json"):
        Pipeline.load(d)


# ------------------------------------------------------------- reading outside the folder
def test_symlinked_array_and_manifest_are_refused(ovr, tmp_path):
    for name in ("intercept.npy", "manifest.json"):
        d = tmp_path / name / "m"
        ovr.save(d)
        outside = tmp_path / name / f"outside-{name}"
        shutil.move(d / name, outside)
        os.symlink(outside, d / name)
        with pytest.raises(DataFormatError, match=rf"{name}: is a symbolic link"):
            load_model(d)


def test_symlinked_file_in_a_pipeline_is_refused(tuned, tmp_path):
    d = tmp_path / "p"
    tuned.save(d)
    outside = tmp_path / "decision.npz"
    shutil.move(d / "decision.npz", outside)
    os.symlink(outside, d / "decision.npz")
    with pytest.raises(DataFormatError, match=r"decision\.npz: is a symbolic link"):
        Pipeline.load(d)
    d2 = tmp_path / "p2"
    tuned.save(d2)
    shutil.move(d2 / "model", tmp_path / "model-outside")
    os.symlink(tmp_path / "model-outside", d2 / "model")
    with pytest.raises(DataFormatError, match=r"model: is a symbolic link"):
        Pipeline.load(d2)


def _embeddings_dict(model, cache_dir=None) -> dict:
    return {"format": "labelwise.featurizer", "format_version": 1, "class": "SentenceEmbeddings",
            "params": {"model": model, "batch_size": 64, "max_seq_length": None, "cache": True,
                       "cache_dir": cache_dir, "progress": None, "device": "cpu"},
            "state": {"dim": 3}}


def _write_featurizer_json(d: Path, doc: dict) -> None:
    d.mkdir(parents=True)
    (d / "featurizer.json").write_text(json.dumps({**doc, "arrays": []}))


def test_featurizer_json_cannot_name_an_encoder_or_cache_outside_its_folder(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "modules.json").write_text("[]")
    _write_featurizer_json(tmp_path / "a", _embeddings_dict(str(elsewhere)))
    with pytest.raises(DataFormatError, match=r"featurizer\.json: params\.model: .*outside the "
                                              "saved folder"):
        load_featurizer(tmp_path / "a")
    _write_featurizer_json(tmp_path / "b", _embeddings_dict("../elsewhere"))
    with pytest.raises(DataFormatError, match=r"params\.model: bad file entry '\.\./elsewhere'"):
        load_featurizer(tmp_path / "b")
    _write_featurizer_json(tmp_path / "c", _embeddings_dict(None, cache_dir=str(elsewhere)))
    with pytest.raises(DataFormatError, match=r"featurizer\.json: params\.cache_dir: .*names no "
                                              "cache folder"):
        load_featurizer(tmp_path / "c")
    # the shipped model (null) and no cache folder load
    _write_featurizer_json(tmp_path / "d", _embeddings_dict(None))
    feat = load_featurizer(tmp_path / "d")
    assert feat.model is None and feat.cache_dir is None


def test_a_users_encoder_is_saved_inside_the_featurizer_and_read_from_there(tmp_path):
    enc = tmp_path / "my-encoder"
    (enc / "sub").mkdir(parents=True)
    (enc / "modules.json").write_text("[]")
    (enc / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    feat = Featurizer.from_dict(_embeddings_dict(str(enc), cache_dir=str(tmp_path / "c")))
    feat.save(tmp_path / "f")
    saved = json.loads((tmp_path / "f" / "featurizer.json").read_text())
    assert saved["params"]["model"] == "encoder" and saved["params"]["cache_dir"] is None
    assert saved["files"]["encoder/sub/weights.bin"] == _sha(enc / "sub" / "weights.bin")
    loaded = load_featurizer(tmp_path / "f")
    assert Path(loaded.model) == tmp_path / "f" / "encoder" and loaded.cache_dir is None
    (tmp_path / "f" / "encoder" / "sub" / "weights.bin").write_bytes(b"\x00\x02")
    with pytest.raises(DataFormatError, match=r"weights\.bin: sha256 mismatch"):
        load_featurizer(tmp_path / "f")


def test_zeroshot_manifest_cannot_name_an_encoder_outside_its_folder(tmp_path):
    model = ZeroShot()
    model.labels_ = LabelSpace(["a", "b"])
    model.n_features_in_ = 3
    model.label_embeddings_ = np.eye(2, 3, dtype=np.float32)
    model.temperature_, model.bias_ = 0.05, 0.2
    model.save(tmp_path / "z")
    assert load_model(tmp_path / "z").encoder is None
    m = json.loads((tmp_path / "z" / "manifest.json").read_text())
    m["params"]["encoder"] = str(tmp_path)
    (tmp_path / "z" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataFormatError, match=r"params\.encoder: .*outside the saved folder"):
        load_model(tmp_path / "z")


# ------------------------------------------------------------- unlisted files
def test_a_file_dropped_from_pipeline_json_is_refused(tuned, tmp_path):
    d = tmp_path / "p"
    tuned.save(d)
    doc = json.loads((d / "pipeline.json").read_text())
    del doc["files"]["decision.npz"]
    (d / "pipeline.json").write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match=r"files not listed in pipeline\.json: "
                                              r"decision\.npz"):
        Pipeline.load(d)


@pytest.mark.parametrize("where", ["", "model/"])
def test_unlisted_files_in_a_saved_folder_are_refused(tuned, ovr, tmp_path, where):
    d = tmp_path / "p"
    tuned.save(d)
    (d / f"{where}notes.txt").write_text("x")
    with pytest.raises(DataFormatError, match=rf"files not listed in pipeline\.json: "
                                              rf"{where}notes\.txt"):
        Pipeline.load(d)
    ovr.save(tmp_path / "m")
    (tmp_path / "m" / "notes.txt").write_text("x")
    with pytest.raises(DataFormatError, match=r"files not listed in manifest\.json: notes\.txt"):
        load_model(tmp_path / "m")


def test_a_featurizer_saved_alone_has_checksums(tmp_path):
    feat = Tfidf(min_df=1).fit(["apple pie", "cherry pie", "apple jam"])
    feat.save(tmp_path / "f")
    doc = json.loads((tmp_path / "f" / "featurizer.json").read_text())
    assert doc["files"] == {name: _sha(tmp_path / "f" / name) for name in doc["files"]}
    assert sorted(doc["files"]) == sorted(e["file"] for e in doc["arrays"].values())
    target = tmp_path / "f" / doc["arrays"]["word_idf"]["file"]
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(DataFormatError, match="sha256 mismatch"):
        load_featurizer(tmp_path / "f")


# ------------------------------------------------------------- one pass, old folders
def test_writer_digests_equal_the_files_and_pipeline_lists_them(tuned, tmp_path, monkeypatch):
    import labelwise.store

    calls = []
    real = labelwise.store.sha256_file
    monkeypatch.setattr(labelwise.store, "sha256_file", lambda p: calls.append(p) or real(p))
    tuned.save(tmp_path / "p")
    # only the npz archives (written by numpy's zipfile) are hashed after writing, once each
    assert sorted(Path(p).name for p in calls) == ["calibration.npz", "decision.npz"]
    doc = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    on_disk = sorted(p.relative_to(tmp_path / "p").as_posix()
                     for p in (tmp_path / "p").rglob("*") if p.is_file())
    assert sorted([*doc["files"], "pipeline.json"]) == on_disk
    assert all(_sha(tmp_path / "p" / rel) == h for rel, h in doc["files"].items())
    w = FolderWriter(tmp_path / "w")
    (tmp_path / "w").mkdir()
    entry = w.array("a.npy", np.arange(5, dtype=np.int64))
    assert entry == {"file": "a.npy", "dtype": "<i8", "shape": [5]}
    assert w.files == {"a.npy": _sha(tmp_path / "w" / "a.npy")}


def test_folders_saved_before_the_store_still_load():
    """tests/data/store_v1 was written by labelwise b84a00d (tests/data/make_store_v1.py):
    a tuned text pipeline, a featurizer saved alone (no checksums) and a LabelTree."""
    texts = (FIXTURES / "texts.txt").read_text().splitlines()
    pipe = Pipeline.load(FIXTURES / "pipeline")
    expected = np.load(FIXTURES / "expected_pipeline_proba.npy")
    np.testing.assert_array_equal(pipe.predict_proba(texts, k=3).toarray(), expected)
    feat = load_featurizer(FIXTURES / "featurizer")
    np.testing.assert_array_equal(feat.transform(texts).toarray(),
                                  pipe.featurizer.transform(texts).toarray())
    tree = load_model(FIXTURES / "tree")
    assert list(tree.labels_.names) == ["pie", "jam", "red"]
    assert tree.decision_function(feat.transform(texts), k=2).shape == (len(texts), 3)
    assert isinstance(load_any(FIXTURES / "tree").model, LabelTree)
