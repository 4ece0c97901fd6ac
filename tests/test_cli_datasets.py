"""``labelwise datasets list`` / ``fetch``, and registry names in ``labelwise info``."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import shared_dataset_dir
from labelwise.cli.main import main


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("LABELWISE_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LABELWISE_DATASETS_MIRROR", raising=False)


@pytest.fixture
def yeast_mirror(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    shutil.copytree(shared_dataset_dir("mulan-yeast"), mirror / "mulan-yeast")
    monkeypatch.setenv("LABELWISE_DATASETS_MIRROR", str(mirror))
    return mirror


def test_list_table(capsys, tmp_path):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "SPLITS", "LABELS", "FEATURES", "SIZE", "CACHED"]
    yeast = next(line for line in out if line.startswith("mulan-yeast "))
    assert yeast.split() == [
        "mulan-yeast", "train*:1500", "test:917", "all:2417", "14", "103", "4.6", "MiB", "no"]
    cooking = next(line for line in out if line.startswith("cooking-stackexchange "))
    assert " 736 " in cooking and " text " in cooking
    assert out[-1] == f"(* = default split; data home: {tmp_path / 'home'})"


def test_list_json(capsys):
    assert main(["datasets", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["goemotions-group"]["splits"] == {"train": 43410, "dev": 5426, "test": 5427}
    assert rows["annif-archaeology-fi"]["default_split"] == "all"
    assert rows["enron-berkeley-annotated"]["n_files"] == 3405


def test_fetch_prints_paths_and_marks_cached(capsys, yeast_mirror, tmp_path):
    assert main(["datasets", "fetch", "mulan-yeast"]) == 0
    paths = capsys.readouterr().out.split()
    home = tmp_path / "home" / "mulan-yeast"
    assert paths == [str(home / n) for n in
                     ("yeast-test.arff", "yeast-train.arff", "yeast.arff", "yeast.xml")]
    for p in paths:
        assert (home / p).read_bytes() == (yeast_mirror / "mulan-yeast" / p.rsplit("/", 1)[1]).read_bytes()
    assert main(["datasets", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["mulan-yeast"]["cached"] is True and rows["mulan-emotions"]["cached"] is False


def test_fetch_json(capsys, yeast_mirror):
    assert main(["datasets", "fetch", "mulan-yeast", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["mulan-yeast"] and len(out["mulan-yeast"]) == 4


def test_fetch_unknown_is_one_error_line(capsys):
    assert main(["datasets", "fetch", "mulan-yaest"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown dataset 'mulan-yaest'; known datasets: ")
    assert "mulan-yeast" in err and err.count("\n") == 1


def test_fetch_corrupt_mirror_file_is_one_error_line(capsys, yeast_mirror):
    f = yeast_mirror / "mulan-yeast" / "yeast.xml"
    f.chmod(0o644)
    f.write_bytes(f.read_bytes().replace(b"Class1", b"Class0"))
    assert main(["datasets", "fetch", "mulan-yeast"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "yeast.xml: sha256 mismatch" in err


def test_datasets_needs_an_action(capsys):
    with pytest.raises(SystemExit):
        main(["datasets"])


def test_info_reads_a_registry_name(capsys, yeast_mirror):
    assert main(["info", "mulan-yeast:test", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["n_samples"], stats["n_features"], stats["n_labels"]) == (917, 103, 14)
    assert stats["meta"]["dataset"] == "mulan-yeast" and stats["meta"]["split"] == "test"
