"""ARFF reader: real MULAN and Clus files against their READMEs, hand-written files with
hand-computed X / Y, the fast (numpy) path against the line-by-line path, and error messages."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import shared_dataset_dir
from labelwise.errors import DataFormatError
from labelwise.io import arff as arff_module
from labelwise.io import arff_rows, read
from labelwise.io.arff import read_arff


def dense(X):
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def write(tmp_path, text, name="toy.arff"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture
def slow_only(monkeypatch):
    """Route every block through the line-by-line parser (the reference)."""
    monkeypatch.setattr(arff_rows.RowParser, "_dense_fast", lambda self, rows: False)
    monkeypatch.setattr(arff_rows.RowParser, "_sparse_fast", lambda self, rows: False)


def assert_same(a, b):
    assert type(a.X) is type(b.X)
    np.testing.assert_array_equal(dense(a.X), dense(b.X))
    assert (a.Y != b.Y).nnz == 0
    assert a.labels == b.labels
    assert a.meta == b.meta


# ------------------------------------------------------------------------------ MULAN
# (folder, file, n_samples, n_features, n_labels, x_kind, cardinality or None)
MULAN = [
    ("mulan-emotions", "emotions-train.arff", 391, 72, 6, "dense", None),
    ("mulan-emotions", "emotions-test.arff", 202, 72, 6, "dense", None),
    ("mulan-emotions", "emotions.arff", 593, 72, 6, "dense", 1.868),
    ("mulan-scene", "scene-train.arff", 1211, 294, 6, "dense", None),
    ("mulan-scene", "scene-test.arff", 1196, 294, 6, "dense", None),
    ("mulan-yeast", "yeast-train.arff", 1500, 103, 14, "dense", None),
    ("mulan-yeast", "yeast-test.arff", 917, 103, 14, "dense", None),
    ("mulan-yeast", "yeast.arff", 2417, 103, 14, "dense", 4.237),
    ("mulan-enron", "enron-train.arff", 1123, 1001, 53, "sparse", None),
    ("mulan-enron", "enron-test.arff", 579, 1001, 53, "sparse", None),
    ("mulan-enron", "enron.arff", 1702, 1001, 53, "sparse", 3.378),
    ("mulan-medical", "medical-train.arff", 333, 1449, 45, "sparse", None),
    ("mulan-medical", "medical-test.arff", 645, 1449, 45, "sparse", None),
    ("mulan-medical", "medical.arff", 978, 1449, 45, "sparse", 1.245),
    ("mulan-bibtex", "bibtex-train.arff", 4880, 1836, 159, "sparse", None),
    ("mulan-bibtex", "bibtex-test.arff", 2515, 1836, 159, "sparse", None),
    ("mulan-bibtex", "bibtex.arff", 7395, 1836, 159, "sparse", 2.402),
    ("mulan-delicious", "delicious-train.arff", 12920, 500, 983, "sparse", None),
    ("mulan-delicious", "delicious-test.arff", 3185, 500, 983, "sparse", None),
    ("mulan-delicious", "delicious.arff", 16105, 500, 983, "sparse", 19.02),
    ("mulan-corel5k", "Corel5k-train-sparse.arff", 4500, 499, 374, "sparse", None),
    ("mulan-corel5k", "Corel5k-test-sparse.arff", 500, 499, 374, "sparse", None),
    ("mulan-corel5k", "Corel5k-test.arff", 500, 499, 374, "dense", None),
    ("mulan-corel5k", "Corel5k-sparse.arff", 5000, 499, 374, "sparse", 3.522),
    ("mulan-tmc2007", "tmc2007-500-train.arff", 21519, 500, 22, "sparse", None),
    ("mulan-tmc2007", "tmc2007-500-test.arff", 7077, 500, 22, "sparse", None),
    ("mulan-tmc2007", "tmc2007-500.arff", 28596, 500, 22, "sparse", 2.158),
]
XML_OF = {
    "mulan-corel5k": "Corel5k.xml",
    "mulan-tmc2007": "tmc2007-500.xml",
}


@pytest.mark.datasets
@pytest.mark.parametrize("folder,name,n,d,q,kind,card", MULAN, ids=[m[1] for m in MULAN])
def test_mulan_sizes_match_readme(folder, name, n, d, q, kind, card):
    base = shared_dataset_dir(folder)
    ds = read_arff(base / name)
    assert (ds.n_samples, ds.n_features, ds.n_labels) == (n, d, q)
    assert ds.x_kind == kind
    assert ds.X.dtype == np.float32
    xml = base / XML_OF.get(folder, folder.split("-", 1)[1] + ".xml")
    assert ds.meta["label_source"] == "mulan-xml"
    assert ds.meta["label_xml"] == str(xml)
    assert ds.meta["missing_values"] == 0
    # label order is the XML's order
    names = re.findall(r'<label name="([^"]*)"', xml.read_text(encoding="utf-8"))
    assert list(ds.labels.names) == names
    if card is not None:
        assert round(ds.stats()["label_cardinality"], 3) == pytest.approx(card, abs=1e-9)


@pytest.mark.datasets
def test_scene_cardinality_over_train_and_test():
    base = shared_dataset_dir("mulan-scene")
    a, b = read_arff(base / "scene-train.arff"), read_arff(base / "scene-test.arff")
    card = (a.Y.nnz + b.Y.nnz) / (a.n_samples + b.n_samples)
    assert round(card, 3) == 1.074


@pytest.mark.datasets
def test_corel5k_dense_and_sparse_copies_agree():
    base = shared_dataset_dir("mulan-corel5k")
    a = read_arff(base / "Corel5k-test.arff")
    b = read_arff(base / "Corel5k-test-sparse.arff")
    assert a.x_kind == "dense" and b.x_kind == "sparse"
    np.testing.assert_array_equal(a.X, b.X.toarray())
    assert (a.Y != b.Y).nnz == 0 and a.labels == b.labels


@pytest.mark.datasets
def test_medical_xml_beats_stale_meka_relation():
    # medical's relation says "-C 45" but its labels are the last 45 attributes (per the XML)
    base = shared_dataset_dir("mulan-medical")
    ds = read_arff(base / "medical-train.arff")
    assert "-C 45" in ds.meta["relation"]
    assert ds.meta["label_source"] == "mulan-xml"
    assert ds.labels.names[0] == "Class-0-593_70"


@pytest.mark.datasets
def test_mulan_first_rows_by_hand():
    yeast = read_arff(shared_dataset_dir("mulan-yeast") / "yeast-train.arff")
    first = "0.0937,0.139771,0.062774,0.007698,0.083873,-0.119156,0.073305,0.00551,0.027523"
    np.testing.assert_array_equal(yeast.X[0, :9], np.array(first.split(","), dtype=np.float32))
    # read row 1's labels straight from the text
    text = (shared_dataset_dir("mulan-yeast") / "yeast-train.arff").read_text()
    row = text[text.lower().index("@data") :].splitlines()[1].split(",")
    # yeast.xml orders the labels Class1, Class2, Class3, Class6, Class4, ... (not attribute
    # order); the attributes are Class1..Class14 in order
    on = {f"Class{k + 1}" for k, v in enumerate(row[103:]) if v.strip() == "1"}
    assert on == {"Class3", "Class4"}
    assert yeast.labels.names[:5] == ("Class1", "Class2", "Class3", "Class6", "Class4")
    assert yeast.label_names(0) == [n for n in yeast.labels.names if n in on]
    # delicious holds an unquoted name with a backslash, kept literally (as in its XML)
    deli = read_arff(shared_dataset_dir("mulan-delicious") / "delicious-test.arff")
    assert "TAG_m\\'usica" in deli.labels


@pytest.mark.datasets
@pytest.mark.parametrize(
    "folder,name",
    [
        ("mulan-yeast", "yeast-test.arff"),
        ("mulan-medical", "medical.arff"),
        ("mulan-enron", "enron-test.arff"),
        ("mulan-corel5k", "Corel5k-test.arff"),
    ],
)
def test_fast_path_equals_line_by_line_path_on_real_files(folder, name, monkeypatch):
    path = shared_dataset_dir(folder) / name
    fast = read_arff(path)
    monkeypatch.setattr(arff_rows.RowParser, "_dense_fast", lambda self, rows: False)
    monkeypatch.setattr(arff_rows.RowParser, "_sparse_fast", lambda self, rows: False)
    assert_same(fast, read_arff(path))


# ------------------------------------------------------------------------------ Clus
CLUS = [
    ("church_FUN", (1630, 844, 1281), 27, 499),
    ("eisen_FUN", (1058, 529, 837), 79, 461),
    ("pheno_FUN", (656, 353, 582), 69, 455),
]


@pytest.mark.datasets
@pytest.mark.parametrize("name,rows,d,q", CLUS, ids=[c[0] for c in CLUS])
def test_clus_fun_sizes_match_readme(name, rows, d, q):
    base = shared_dataset_dir("hmc-clus") / "datasets_FUN" / name
    for split, n in zip(("train", "valid", "test"), rows):
        ds = read_arff(base / f"{name}.{split}.arff")
        # README's '#classes' counts every node of the hierarchy (all are labels)
        assert (ds.n_samples, ds.n_features, ds.n_labels) == (n, d, q)
        assert ds.labels.is_hierarchical
        assert ds.meta["label_source"] == "clus-hierarchical"
        assert ds.meta["hierarchy"] == "tree"
        # ancestor-closed: every positive label's parents are positive too
        for i in range(0, n, 97):
            got = set(ds.label_names(i))
            for lab in got:
                if "/" in lab:
                    assert lab.rsplit("/", 1)[0] in got
        assert (ds.labels.close_under_ancestors(ds.Y) != ds.Y).nnz == 0


@pytest.mark.datasets
def test_clus_church_first_row_by_hand():
    path = shared_dataset_dir("hmc-clus") / "datasets_FUN/church_FUN/church_FUN.train.arff"
    ds = read_arff(path)
    # B,21,0.1,3.67,...,1,?,1,1,5,2,5,0,30/05@34/11/03/07
    assert ds.meta["nominal_features"]["chip_affymetrix_chip"] == ["A", "B", "C", "D", "A-D"]
    np.testing.assert_array_equal(ds.X[0, :4], np.array([1, 21, 0.1, 3.67], dtype=np.float32))
    assert np.isnan(ds.X[0, 20]) and not np.isnan(ds.X[0, 19])
    assert sorted(ds.label_names(0)) == sorted(
        ["30", "30/05", "34", "34/11", "34/11/03", "34/11/03/07"]
    )
    assert ds.meta["missing_values"] == int(np.isnan(ds.X).sum()) > 0
    assert ds.labels.parents("34/11/03") == (ds.labels.index("34/11"),)


@pytest.mark.datasets
def test_clus_fast_path_equals_line_by_line(monkeypatch):
    path = shared_dataset_dir("hmc-clus") / "datasets_FUN/church_FUN/church_FUN.valid.arff"
    fast = read_arff(path)
    monkeypatch.setattr(arff_rows.RowParser, "_dense_fast", lambda self, rows: False)
    assert_same(fast, read_arff(path))


# ------------------------------------------------------------------------------ hand-written
MEKA_POS = """% a MEKA file
@relation 'Toy: -C 2 -split 1'

@attribute L1 {0,1}
@attribute L2 {0,1}
@attribute f1 numeric
@attribute f2 REAL
@data
1,0,0.5,2
0,0,-1,3e2
1,1,?,0
"""


def test_meka_positive_c(tmp_path):
    ds = read_arff(write(tmp_path, MEKA_POS))
    assert ds.labels.names == ("L1", "L2")
    np.testing.assert_array_equal(
        ds.X, np.array([[0.5, 2], [-1, 300], [np.nan, 0]], dtype=np.float32)
    )
    np.testing.assert_array_equal(ds.Y.toarray(), [[1, 0], [0, 0], [1, 1]])
    assert ds.meta["label_source"] == "meka-relation"
    assert ds.meta["missing_values"] == 1
    assert ds.x_kind == "dense"


def test_meka_negative_c_and_unquoted_relation(tmp_path):
    text = """@RELATION toy:-C -2
@ATTRIBUTE f1 INTEGER
@ATTRIBUTE L1 {0,1}
@ATTRIBUTE L2 {0,1}
@DATA
7,0,1
"""
    ds = read_arff(write(tmp_path, text))
    assert ds.labels.names == ("L1", "L2")
    np.testing.assert_array_equal(ds.X, [[7]])
    assert ds.label_names(0) == ["L2"]


def test_n_labels_and_labels_arguments(tmp_path):
    p = write(tmp_path, MEKA_POS)
    a = read_arff(p, n_labels=2)
    b = read_arff(p, n_labels=2, label_location="start")
    assert a.labels.names == b.labels.names == ("L1", "L2")
    d = read_arff(p, labels=["L2", "L1"])
    assert d.labels.names == ("L2", "L1")
    np.testing.assert_array_equal(d.Y.toarray(), [[0, 1], [0, 0], [1, 1]])
    assert d.meta["label_source"] == "labels-argument"
    # f2 as a numeric label: its first value 2 is refused, naming file:line and attribute
    with pytest.raises(DataFormatError, match=r"toy.arff:9: f2: label value '2' is not 0 or 1"):
        read_arff(p, n_labels=1, label_location="end")
    with pytest.raises(DataFormatError, match=r"toy.arff:9: f2: label value '2' is not 0 or 1"):
        read_arff(p, n_labels=-1)


QUOTED = r"""@relation birds
% comment line
@attribute "a b" numeric
@attribute 'x\'y, z' {lo,'mid hi',hi}
@attribute 'Swainson\'s Thrush' {0,1}
@attribute plain {0,1}   % trailing comment

@DATA
% a comment between rows
1.5, 'mid hi', 1, 0
 2 ,lo,0,1 % inline comment

3,"hi",1,1
"""


def test_quoted_names_nominal_codes_and_comments(tmp_path):
    p = write(tmp_path, QUOTED, "birds-train.arff")
    (tmp_path / "birds.xml").write_text(
        '<?xml version="1.0"?>\n<labels xmlns="http://mulan.sourceforge.net/labels">\n'
        '<label name="Swainson\'s Thrush"/>\n<label name="plain"/>\n</labels>\n'
    )
    ds = read_arff(p)
    assert ds.labels.names == ("Swainson's Thrush", "plain")
    assert ds.meta["label_xml"] == str(tmp_path / "birds.xml")
    assert ds.meta["nominal_features"] == {"x'y, z": ["lo", "mid hi", "hi"]}
    assert ds.meta["nominal_encoding"] == "ordinal"
    np.testing.assert_array_equal(ds.X, np.array([[1.5, 1], [2, 0], [3, 2]], dtype=np.float32))
    np.testing.assert_array_equal(ds.Y.toarray(), [[1, 0], [0, 1], [1, 1]])


def test_escaped_xml_name_matches_quoted_attribute(tmp_path):
    p = write(tmp_path, QUOTED)
    x = tmp_path / "labels.xml"
    x.write_text(
        '<labels xmlns="http://mulan.sourceforge.net/labels">'
        '<label name="plain"/><label name="Swainson\\\'s Thrush"/></labels>'
    )
    ds = read_arff(p, xml=x)
    assert ds.labels.names == ("plain", "Swainson's Thrush")


SPARSE = """@relation sp
@attribute w0 numeric
@attribute w1 numeric
@attribute w2 numeric
@attribute A {0,1}
@attribute B {0,1}
@data
{0 1.5,3 1}
{}
{1 2, 2 ?, 4 1}
{0 0,4 0}
"""


def test_sparse_rows_give_csr(tmp_path):
    ds = read_arff(write(tmp_path, SPARSE), n_labels=-2)
    assert ds.x_kind == "sparse" and ds.X.dtype == np.float32
    np.testing.assert_array_equal(
        ds.X.toarray(), np.array([[1.5, 0, 0], [0, 0, 0], [0, 2, np.nan], [0, 0, 0]], np.float32)
    )
    assert ds.X.nnz == 3  # explicit zeros are not stored
    np.testing.assert_array_equal(ds.Y.toarray(), [[1, 0], [0, 0], [0, 1], [0, 0]])
    assert ds.meta["sparse_rows"] == 4 and ds.meta["missing_values"] == 1


def test_mixed_dense_and_sparse_rows_give_csr(tmp_path):
    text = SPARSE + "1,2,3,1,1\n"
    ds = read_arff(write(tmp_path, text), n_labels=-2)
    assert ds.x_kind == "sparse"
    np.testing.assert_array_equal(ds.X.toarray()[4], [1, 2, 3])
    assert ds.meta["dense_rows"] == 1 and ds.meta["sparse_rows"] == 4


def test_sparse_nominal_feature_omitted_is_first_category(tmp_path):
    text = """@relation s
@attribute c {x,y,z}
@attribute n numeric
@attribute L {0,1}
@data
{0 z,2 1}
{1 4}
"""
    ds = read_arff(write(tmp_path, text), n_labels=-1)
    np.testing.assert_array_equal(ds.X.toarray(), [[2, 0], [0, 4]])


def test_hierarchy_tree_closes_under_ancestors(tmp_path):
    text = """@relation clus
@attribute f numeric
@attribute class hierarchical a,a/b,a/b/c,d,e/f
@data
1,a/b/c@d
2,?f
"""
    text = text.replace("2,?f", "2,e/f")
    ds = read_arff(write(tmp_path, text))
    # e/f's parent e is added as a label even though the spec does not list it
    assert ds.labels.names == ("a", "a/b", "a/b/c", "d", "e", "e/f")
    assert sorted(ds.label_names(0)) == ["a", "a/b", "a/b/c", "d"]
    assert sorted(ds.label_names(1)) == ["e", "e/f"]
    assert ds.meta["ancestor_labels_added"] == 3
    assert ds.labels.parents("a/b/c") == (ds.labels.index("a/b"),)


def test_hierarchy_dag(tmp_path):
    text = """@relation go
@attribute f numeric
@attribute class hierarchical root/A,A/B,root/C,C/B,B/D
@data
1,B
2,C@root
3,D
"""
    ds = read_arff(write(tmp_path, text))
    assert ds.meta["hierarchy"] == "dag" and "root" not in ds.labels
    assert set(ds.labels.names) == {"A", "B", "C", "D"}
    assert sorted(ds.label_names(0)) == ["A", "B", "C"]
    assert ds.label_names(1) == ["C"]
    assert sorted(ds.label_names(2)) == ["A", "B", "C", "D"]
    assert sorted(ds.labels.names_of(ds.labels.parents("B"))) == ["A", "C"]


def test_nested_xml_gives_hierarchy_and_stem_lookup(tmp_path):
    text = """@relation h
@attribute f numeric
@attribute P {0,1}
@attribute C {0,1}
@data
1,1,1
2,0,0
"""
    p = write(tmp_path, text, "hier-train-sparse.arff")
    (tmp_path / "hier.xml").write_text(
        '<labels xmlns="http://mulan.sourceforge.net/labels">'
        '<label name="P"><label name="C"></label></label></labels>'
    )
    ds = read_arff(p)
    assert ds.meta["label_xml"] == str(tmp_path / "hier.xml")
    assert ds.labels.parents("C") == (ds.labels.index("P"),)
    assert ds.meta["hierarchy"] == "xml"
    np.testing.assert_array_equal(ds.Y.toarray(), [[1, 1], [0, 0]])  # read as is


def test_gzip_and_read_dispatch(tmp_path):
    p = tmp_path / "toy.arff.gz"
    with gzip.open(p, "wt") as f:
        f.write(MEKA_POS)
    ds = read(p)
    assert ds.n_samples == 3 and ds.labels.names == ("L1", "L2")


def test_empty_data_section(tmp_path):
    ds = read_arff(
        write(tmp_path, "@relation 'x: -C 1'\n@attribute L {0,1}\n@attribute f numeric\n@data\n")
    )
    assert ds.n_samples == 0 and ds.X.shape == (0, 1)


def test_blocks_and_paths_agree(tmp_path, monkeypatch):
    """Many small blocks (fast path) == one block == line-by-line; errors keep line numbers."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(300):
        v = rng.integers(0, 3, size=6)
        if i % 3 == 0:
            rows.append("{" + ",".join(f"{j} {v[j] % 2}" for j in range(6) if v[j]) + "}")
        else:
            rows.append(",".join(str(x % 2) if j >= 4 else f"{x}.25" for j, x in enumerate(v)))
        if i % 17 == 0:
            rows.append("% note")
    head = "@relation 'r: -C -2'\n" + "".join(f"@attribute a{j} numeric\n" for j in range(4))
    head += "@attribute y0 {0,1}\n@attribute y1 {0,1}\n@data\n"
    p = write(tmp_path, head + "\n".join(rows) + "\n")
    one = read_arff(p)
    monkeypatch.setattr(arff_module, "_BLOCK_BYTES", 64)
    many = read_arff(p)
    assert_same(one, many)
    monkeypatch.setattr(arff_rows.RowParser, "_dense_fast", lambda self, rows: False)
    monkeypatch.setattr(arff_rows.RowParser, "_sparse_fast", lambda self, rows: False)
    assert_same(one, read_arff(p))
    bad = (head + "\n".join(rows) + "\n").splitlines()
    bad[250] = "1,2,3,4,5,2"
    p2 = write(tmp_path, "\n".join(bad) + "\n", "bad.arff")
    with pytest.raises(DataFormatError) as e:
        read_arff(p2)
    assert e.value.line == 251


# ------------------------------------------------------------------------------ errors
HEAD = "@relation 'e: -C -1'\n@attribute f numeric\n@attribute g {a,b}\n@attribute L {0,1}\n@data\n"

ERRORS = [
    ("@relation r\n@attribute f blob\n@data\n", 2, "f", "unknown attribute type 'blob'"),
    ("@relation r\n@attribute s string\n@data\n", 2, "s", "string attributes are not supported"),
    (HEAD + "1,a,0\n1,a\n", 7, None, "expected 3 values (one per attribute), found 2"),
    (HEAD + "x1,a,0\n", 6, "f", "expected a number, found 'x1'"),
    (HEAD + "1,c,0\n", 6, "g", "value 'c' is not one of {a,b}"),
    (HEAD + "1,a,2\n", 6, "L", "label value '2' is not one of {0,1}"),
    (HEAD + "1,a,?\n", 6, "L", "label value is missing"),
    (HEAD + "1,a,1\n{0 1,3 1}\n", 7, None, "sparse index 3 out of range (attributes 0..2)"),
    (HEAD + "{2 1,0 1}\n", 6, None, "sparse indices must increase (0 after 2)"),
    (HEAD + "{0 1,2 1\n", 6, None, "sparse row has no closing '}'"),
    (HEAD + "1,'a,0\n", 6, None, "unterminated quote (')"),
    (HEAD + "1,,0\n", 6, None, "empty value at position 2"),
    (HEAD + "1e39,a,0\n", 6, "f", "outside the float32 range"),
    ("@relation r\n@attribute f numeric\n", 2, None, "without an @data line"),
    ("@attribute f numeric\n@data\n", 1, None, "expected @relation"),
    ("@relation r\n@attribute f numeric\n1,2\n", 3, None, "expected @attribute or @data"),
    ("@relation r\n@attribute g {a,b\n@data\n", 2, None, "missing closing '}'"),
    (
        "@relation r\n@attribute f numeric\n@attribute class hierarchical a,a/b\n@data\n1,a/c\n",
        5,
        "class",
        "class 'a/c' is not in the hierarchy",
    ),
    (
        "@relation r\n@attribute f numeric\n@attribute class hierarchical root/a,a/b,b/a\n@data\n",
        3,
        None,
        "cycle",
    ),
    ("@relation 'r: -C 5'\n@attribute f numeric\n@data\n", None, "@relation", "-C 5 does not fit"),
]


@pytest.mark.parametrize("text,line,field,msg", ERRORS, ids=[e[3][:30] for e in ERRORS])
@pytest.mark.parametrize("path_kind", ["fast", "slow"])
def test_errors_name_file_line_and_field(tmp_path, request, text, line, field, msg, path_kind):
    if path_kind == "slow":
        request.getfixturevalue("slow_only")
    p = write(tmp_path, text)
    with pytest.raises(DataFormatError) as e:
        read_arff(p)
    err = e.value
    assert msg in str(err)
    assert err.path == str(p)
    assert err.line == line
    if field is not None:
        assert err.field == field
    if line is not None:
        assert str(err).startswith(f"{p}:{line}: ")


def test_label_source_errors(tmp_path):
    p = write(tmp_path, "@relation r\n@attribute f numeric\n@attribute L {0,1}\n@data\n1,0\n")
    with pytest.raises(DataFormatError, match="cannot tell which attributes are labels"):
        read_arff(p)
    x = tmp_path / "l.xml"
    x.write_text(
        '<labels xmlns="http://mulan.sourceforge.net/labels">\n<label name="L"/>\n'
        '<label name="Nope"/>\n</labels>\n'
    )
    with pytest.raises(DataFormatError) as e:
        read_arff(p, xml=x)
    assert (
        e.value.path == str(x)
        and e.value.line == 3
        and "'Nope' is not an attribute" in str(e.value)
    )
    x.write_text("<labels><label name='L'>")
    with pytest.raises(DataFormatError, match="malformed label XML") as e:
        read_arff(p, xml=x)
    assert e.value.path == str(x) and e.value.line is not None
    with pytest.raises(DataFormatError, match="label attribute must be nominal"):
        read_arff(write(tmp_path, "@relation 'r: -C 1'\n@attribute g {a,b}\n@data\n", "g.arff"))
    with pytest.raises(DataFormatError, match="labels= names 'zz'"):
        read_arff(p, labels=["zz"])


def test_undecodable_bytes_name_the_line(tmp_path):
    p = tmp_path / "bin.arff"
    p.write_bytes(MEKA_POS.encode() + b"1,0,\xff\xfe,1\n")
    with pytest.raises(DataFormatError) as e:
        read_arff(p)
    assert e.value.line == MEKA_POS.count("\n") + 1 and "utf-8" in str(e.value)
    with pytest.raises(DataFormatError, match="expected a number, found 'ÿþ'") as e:
        read_arff(p, encoding="latin-1")
    assert e.value.field == "f1"
