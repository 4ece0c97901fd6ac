"""Every split of every registered dataset loads through the registry, with the mirror set to
../shared/datasets (a local folder: verified and read in place), and matches the sizes that
folder's README.txt states. Skipped where ../shared/datasets is absent.

EXPECTED is transcribed from the READMEs (not from the registry), so a registry typo fails
here too; where a README gives no number the source of the figure is named.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import labelwise.datasets as lds
from conftest import shared_dataset_dir
from labelwise.datasets import registry

pytestmark = pytest.mark.datasets

# name -> ({split: n_samples}, n_features, n_labels)
EXPECTED: dict[str, tuple[dict[str, int], int, int]] = {
    "mulan-emotions": ({"train": 391, "test": 202, "all": 593}, 72, 6),
    "mulan-scene": ({"train": 1211, "test": 1196}, 294, 6),
    "mulan-yeast": ({"train": 1500, "test": 917, "all": 2417}, 103, 14),
    "mulan-enron": ({"train": 1123, "test": 579, "all": 1702}, 1001, 53),
    "mulan-medical": ({"train": 333, "test": 645, "all": 978}, 1449, 45),
    "mulan-bibtex": ({"train": 4880, "test": 2515, "all": 7395}, 1836, 159),
    "mulan-delicious": ({"train": 12920, "test": 3185, "all": 16105}, 500, 983),
    "mulan-corel5k": ({"train": 4500, "test": 500, "all": 5000, "test-dense": 500}, 499, 374),
    "mulan-tmc2007": ({"train": 21519, "test": 7077, "all": 28596}, 500, 22),
    "goemotions": ({"train": 43410, "dev": 5426, "test": 5427}, 0, 28),
    "goemotions-ekman": ({"train": 43410, "dev": 5426, "test": 5427}, 0, 7),
    "goemotions-group": ({"train": 43410, "dev": 5426, "test": 5427}, 0, 4),
    # R90: the README's 7,775 train docs with a topic lose 5 whose topics are all outside R90
    # (documented in labelwise.io.reuters); 3,019 test. train-all/test-all: TOPICS=YES docs.
    "reuters21578": ({"train": 7770, "test": 3019, "train-all": 9603, "test-all": 3299}, 0, 90),
    "cooking-stackexchange": ({"train": 12404, "test": 3000, "all": 15404}, 0, 736),
    "enron-berkeley-annotated": ({"all": 1702}, 0, 53),
    "annif-archaeology-fi": ({"all": 6404, "fulltext": 28}, 0, 126),
    "libsvm-yeast-napkinxc": ({"train": 1500, "test": 917}, 103, 14),
    "hmc-clus-cellcycle-fun": ({"train": 1628, "valid": 848, "test": 1281}, 77, 499),
    "hmc-clus-church-fun": ({"train": 1630, "valid": 844, "test": 1281}, 27, 499),
    "hmc-clus-derisi-fun": ({"train": 1608, "valid": 842, "test": 1275}, 63, 499),
    "hmc-clus-eisen-fun": ({"train": 1058, "valid": 529, "test": 837}, 79, 461),
    "hmc-clus-expr-fun": ({"valid": 849, "test": 1291}, 551, 499),
    "hmc-clus-gasch1-fun": ({"train": 1634, "valid": 846, "test": 1284}, 173, 499),
    "hmc-clus-gasch2-fun": ({"train": 1639, "valid": 849, "test": 1291}, 52, 499),
    "hmc-clus-pheno-fun": ({"train": 656, "valid": 353, "test": 582}, 69, 455),
    "hmc-clus-seq-fun": ({"train": 1701, "valid": 879, "test": 1339}, 478, 499),
    "hmc-clus-spo-fun": ({"train": 1600, "valid": 837, "test": 1266}, 80, 499),
}
#: splits whose label space differs from the dataset's
SPLIT_LABELS = {
    ("reuters21578", "train-all"): 120,  # every topic in the 22 files (labelwise.io.reuters)
    ("reuters21578", "test-all"): 120,
    ("annif-archaeology-fi", "fulltext"): 202,  # 125 subjects + 77 URIs of the full texts
}
#: label cardinality from the READMEs: name -> (splits pooled, value, decimals)
CARDINALITY = {
    "mulan-emotions": (("all",), 1.868, 3),
    "mulan-scene": (("train", "test"), 1.074, 3),
    "mulan-yeast": (("all",), 4.237, 3),
    "mulan-enron": (("all",), 3.378, 3),
    "mulan-medical": (("all",), 1.245, 3),
    "mulan-bibtex": (("all",), 2.402, 3),
    "mulan-delicious": (("all",), 19.02, 2),
    "mulan-corel5k": (("all",), 3.522, 3),
    "mulan-tmc2007": (("all",), 2.158, 3),
    "libsvm-yeast-napkinxc": (("train",), 4.228, 3),
    "cooking-stackexchange": (("all",), 2.31, 2),
    "enron-berkeley-annotated": (("all",), 3.38, 2),
    "annif-archaeology-fi": (("all",), 1.42, 2),
}
#: rows with more than one label, from the READMEs
MULTI_LABEL_ROWS = {
    ("goemotions", "train"): 7102,
    ("goemotions-ekman", "train"): 3855,
    ("goemotions-group", "train"): 3380,
    ("reuters21578", "train-all"): 1223,
    ("cooking-stackexchange", "all"): 11626,
    ("annif-archaeology-fi", "all"): 1644,
}
_CACHE: dict[tuple[str, str], object] = {}


@pytest.fixture(autouse=True)
def _mirror_is_shared_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LABELWISE_DATASETS_MIRROR", str(shared_dataset_dir()))
    monkeypatch.setenv("LABELWISE_DATA_HOME", str(tmp_path / "home"))


def loaded(name: str, split: str):
    if (name, split) not in _CACHE:
        shared_dataset_dir(registry.get(name).folder)
        if name == "reuters21578":
            with pytest.warns(UserWarning, match="list a topic twice"):
                _CACHE[name, split] = lds.load(name, split=split)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                _CACHE[name, split] = lds.load(name, split=split)
    return _CACHE[name, split]


def _params():
    out = []
    for name, info in registry.REGISTRY.items():
        for split in info.splits:
            out.append(pytest.param(name, split, id=f"{name}:{split}"))
    return out


def test_expected_table_covers_the_registry():
    assert set(EXPECTED) == set(registry.REGISTRY)
    for name, (splits, n_features, n_labels) in EXPECTED.items():
        info = registry.get(name)
        assert {s: sp.n_samples for s, sp in info.splits.items()} == splits, name
        assert (info.n_features, info.n_labels) == (n_features, n_labels), name


@pytest.mark.parametrize(("name", "split"), _params())
def test_split_matches_readme(name, split):
    ds = loaded(name, split)
    splits, n_features, n_labels = EXPECTED[name]
    assert ds.n_samples == splits[split]
    assert ds.n_features == n_features
    assert ds.n_labels == SPLIT_LABELS.get((name, split), n_labels)
    assert ds.n_labels == registry.get(name).labels_in(split)
    assert ds.meta["dataset"] == name and ds.meta["split"] == split
    if n_features == 0:
        assert ds.x_kind == "text" and all(isinstance(t, str) for t in ds.X[:50])
    if (name, split) in MULTI_LABEL_ROWS:
        assert int(np.count_nonzero(np.diff(ds.Y.indptr) > 1)) == MULTI_LABEL_ROWS[name, split]


@pytest.mark.parametrize("name", sorted(CARDINALITY))
def test_label_cardinality_matches_readme(name):
    splits, value, decimals = CARDINALITY[name]
    parts = [loaded(name, s) for s in splits]
    card = sum(p.Y.nnz for p in parts) / sum(p.n_samples for p in parts)
    assert round(card, decimals) == value


def test_shared_label_spaces_across_splits():
    for name in ("mulan-yeast", "goemotions-ekman", "cooking-stackexchange", "reuters21578"):
        assert loaded(name, "train").labels == loaded(name, "test").labels, name


def test_cooking_split_is_the_fasttext_head_and_tail():
    lines = (shared_dataset_dir("cooking-stackexchange") / "extracted" / "cooking.stackexchange.txt")
    lines = lines.read_text(encoding="utf-8").splitlines()
    train, test = loaded("cooking-stackexchange", "train"), loaded("cooking-stackexchange", "test")
    for ds, line in ((train, lines[0]), (train, lines[12403]), (test, lines[12404]), (test, lines[-1])):
        row = 0 if line in (lines[0], lines[12404]) else ds.n_samples - 1
        tags = sorted(t.removeprefix("__label__") for t in line.split() if t.startswith("__label__"))
        assert sorted(ds.label_names(row)) == tags
        assert line.endswith(ds.X[row])


def test_enron_berkeley_labels_groups_and_text():
    ds = loaded("enron-berkeley-annotated", "all")
    assert ds.labels.names[:3] == ("1.1", "1.2", "1.3") and ds.labels.names[-1] == "4.19"
    assert ds.labels.descriptions[ds.labels.index("3.6")] == (
        "Primary topics: california energy crisis / california politics")
    i = list(ds.ids).index("3/52201")
    assert ds.label_names(i) == ["1.3", "3.5", "4.19"]  # 3/52201.cats: 1,3 / 3,5 / 4,19
    # X-Origin spellings (KEAN-S 924, Kean-S 66, ...; 78 raw, some with CR) fold to 60 owners
    groups = list(ds.groups)
    assert groups.count("Kean-S") == 924 + 66
    assert "KEAN-S" not in groups and len(set(groups)) == 60
    j = list(ds.ids).index("3/174517")
    assert ds.X[j].startswith("Message-ID: <2358747.1075846182085.JavaMail.evans@thyme>\r\n")
    assert "\r\nDate: Mon, 17 Sep 2001" in ds.X[i]  # CRLF kept as written
    body = lds.load("enron-berkeley-annotated", text="body")
    assert body.X[j].startswith("print\n----- Forwarded by Steven J Kean")
    assert not body.X[i].startswith(("Message-ID", "\r", "\n")) and len(body.X[i]) > 100


def test_annif_labels_descriptions_and_hierarchy():
    ds = loaded("annif-archaeology-fi", "all")
    names = ds.labels.names
    assert names[0] == "http://www.yso.fi/onto/yso/p10073"
    assert ds.labels.descriptions[0] == "mykeneläinen kulttuuri"
    assert names[-1] == "http://example.org/dummy_subject"  # used by 2 titles, not in subjects.tsv
    assert ds.labels.descriptions[-1] is None
    assert ds.labels.is_hierarchical
    # yso-archaeology.ttl: yso:p2557 (ristiretkiaika) skos:broader yso:p2558
    child = ds.labels.index("http://www.yso.fi/onto/yso/p2557")
    parent = ds.labels.index("http://www.yso.fi/onto/yso/p2558")
    assert parent in ds.labels.ancestors(child)
    assert ds.meta["broader_links_outside"] == 1  # 51 broader statements, 50 between labels
    assert ds.label_names(0) == ["http://www.yso.fi/onto/yso/p2557"]
    full = loaded("annif-archaeology-fi", "fulltext")
    assert full.ids[0] == "385445"
    assert full.labels.descriptions[full.labels.index("http://www.yso.fi/onto/yso/p627")] == "ihmeet"
    assert sorted(full.label_names(0)) == sorted(
        "http://www.yso.fi/onto/yso/" + p for p in ("p3973", "p18569", "p4120", "p627", "p5340"))


def test_libsvm_yeast_is_mulan_yeast():
    """Same data in two formats: X identical, Y identical up to a fixed label permutation
    (LIBSVM label j is MULAN Class<PERM[j] + 1>, found by matching columns)."""
    perm = [0, 1, 2, 4, 7, 3, 8, 9, 10, 5, 6, 11, 12, 13]
    for split in ("train", "test"):
        a, b = loaded("libsvm-yeast-napkinxc", split), loaded("mulan-yeast", split)
        assert np.array_equal(a.X.toarray(), b.X)
        assert np.array_equal(a.Y.toarray(), b.Y.toarray()[:, perm])
