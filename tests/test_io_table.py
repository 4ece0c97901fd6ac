"""CSV/TSV/JSONL/Parquet reader and the JSONL writer: each option and error on tiny files,
write -> read identity, and the real GoEmotions and Annif archaeology tables."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import shared_dataset_dir
from labelwise.dataset import Dataset
from labelwise.errors import DataFormatError, LabelwiseError, MissingDependencyError
from labelwise.io import read, write
from labelwise.io.table import read_table, write_jsonl
from labelwise.labels import LabelSpace


def put(tmp_path, name: str, content: str | bytes):
    p = tmp_path / name
    p.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return p


def rows(d):
    return [(d.X[i], d.label_names(i)) for i in range(d.n_samples)]


# ---------------------------------------------------------------------------- CSV / TSV
def test_csv_header_quotes_and_multiline_fields(tmp_path):
    p = put(tmp_path, "t.csv", 'id,text,labels\n1,"a, b",x|y\n2,"two\nlines ""q""",y\n3,plain,\n')
    d = read_table(p, format="csv", label_sep="|")
    assert rows(d) == [("a, b", ["x", "y"]), ('two\nlines "q"', ["y"]), ("plain", [])]
    assert d.ids.tolist() == ["1", "2", "3"]  # 'id' column picked up by default
    assert d.groups is None
    bad = put(tmp_path, "bad.csv", 'text,labels\n"multi\nline",a\nshort\n')
    with pytest.raises(DataFormatError, match=r"bad.csv:4: 1 fields where the first row has 2"):
        read_table(bad, format="csv", label_sep=",")


def test_csv_strict_quote_error_names_line(tmp_path):
    p = put(tmp_path, "q.csv", 'text,labels\nok,a\n"bad"x,a\n')
    with pytest.raises(DataFormatError, match=r"q.csv:3: malformed CSV"):
        read_table(p, format="csv", label_sep=",")


def test_tsv_quoting_none_keeps_quotes(tmp_path):
    p = put(tmp_path, "g.tsv", '"Quoted" start\t0,2\tid1\nsay "hi\t1\tid2\n')
    with pytest.raises(DataFormatError, match=r"g.tsv:1: malformed TSV"):
        read_table(p, format="tsv", header=False, text_column=0, labels_column=1, label_sep=",")
    names = put(tmp_path, "labels.txt", "zero\none\ntwo\n")
    d = read_table(
        p,
        format="tsv",
        header=False,
        quoting="none",
        text_column=0,
        labels_column=1,
        id_column=2,
        label_sep=",",
        label_names=names,
    )
    assert rows(d) == [('"Quoted" start', ["zero", "two"]), ('say "hi', ["one"])]
    assert list(d.labels) == ["zero", "one", "two"] and d.ids.tolist() == ["id1", "id2"]
    with pytest.raises(DataFormatError, match="quoting must be"):
        read_table(p, format="tsv", header=False, quoting="all", text_column=0, labels_column=1)


def test_header_false_needs_indices(tmp_path):
    p = put(tmp_path, "n.tsv", "text\ta\n")
    with pytest.raises(DataFormatError, match="header=False: select columns by 0-based index"):
        read_table(p, format="tsv", header=False, text_column=0)
    with pytest.raises(DataFormatError, match="no 'text' or 'features' column"):
        read_table(p, format="tsv", header=False, labels_column=1, label_sep=",")
    with pytest.raises(DataFormatError, match="column index 5 outside 0..1"):
        read_table(p, format="tsv", header=False, text_column=5, labels_column=1)


def test_column_errors(tmp_path):
    p = put(tmp_path, "c.csv", "text,labels,text2\nx,a,y\n")
    with pytest.raises(DataFormatError, match=r"no column 'lab' \(columns: text, labels, text2\)"):
        read_table(p, format="csv", labels_column="lab")
    dup = put(tmp_path, "dup.csv", "text,labels,labels\nx,a,b\n")
    with pytest.raises(DataFormatError, match="appears twice"):
        read_table(dup, format="csv", label_sep=",")
    with pytest.raises(DataFormatError, match="file is empty"):
        read_table(put(tmp_path, "e.csv", ""), format="csv")
    with pytest.raises(DataFormatError, match="format must be one of"):
        read_table(p, format="xlsx")
    with pytest.raises(DataFormatError, match="not both"):
        read_table(p, format="csv", text_column="text", feature_columns=["text2"])


def test_label_cells(tmp_path):
    p = put(tmp_path, "l.csv", 'text,labels\nx,"[""a"", ""b""]"\ny,\nz,"a b"\n')
    with pytest.raises(
        DataFormatError, match=r"l.csv:4: labels: labels given as the string 'a b': pass label_sep="
    ):
        read_table(p, format="csv")
    d = read_table(p, format="csv", label_sep=" ")
    assert rows(d) == [("x", ['["a",', '"b"]']), ("y", []), ("z", ["a", "b"])]  # label_sep wins
    q = put(tmp_path, "l2.csv", 'text,labels\nx,"[""a"", ""b""]"\ny,\n')
    assert rows(read_table(q, format="csv")) == [("x", ["a", "b"]), ("y", [])]
    r = put(tmp_path, "l3.csv", 'text,labels\nx," a , b"\n')
    assert rows(read_table(r, format="csv", label_sep=",")) == [("x", ["a", "b"])]
    r = put(tmp_path, "l3.csv", 'text,labels\nx," a , b"\ny,"a,,b"\n')
    with pytest.raises(DataFormatError, match=r"l3.csv:3: labels: empty label name in 'a,,b'"):
        read_table(r, format="csv", label_sep=",")
    s = put(tmp_path, "l4.csv", "text,labels\nx,a  b\n")
    assert rows(read_table(s, format="csv", label_sep=" ")) == [("x", ["a", "b"])]
    t = put(tmp_path, "l5.csv", "text,labels\nx,a|a\n")
    with pytest.raises(DataFormatError, match="listed more than once"):
        read_table(t, format="csv", label_sep="|")


def test_given_labels_and_label_name_file(tmp_path):
    p = put(tmp_path, "g.csv", "text,labels\nx,a\ny,c\n")
    with pytest.raises(DataFormatError) as e:
        read_table(p, format="csv", label_sep=",", labels=["a", "b"])
    assert str(e.value) == f"{p}:3: labels: label 'c' is not among the 2 given labels"
    d = read_table(
        p,
        format="csv",
        label_sep=",",
        labels=LabelSpace(["c", "b", "a"], descriptions=["C", None, "A"]),
    )
    assert list(d.labels) == ["c", "b", "a"] and d.labels.description("a") == "A"
    names = put(tmp_path, "names.txt", "n0\nn1\n")
    ids = put(tmp_path, "ids.csv", "text,labels\nx,1\ny,2\n")
    with pytest.raises(DataFormatError, match=r"ids.csv:3: labels: label id 2 outside the 2 names"):
        read_table(ids, format="csv", label_sep=",", label_names=names)
    with pytest.raises(
        DataFormatError, match=r"g.csv:2: labels: expected an integer label id, got 'a'"
    ):
        read_table(p, format="csv", label_sep=",", label_names=names)
    with pytest.raises(DataFormatError, match="not both"):
        read_table(p, format="csv", label_sep=",", label_names=names, labels=["a"])
    with pytest.raises(DataFormatError, match="labels= must be a list"):
        read_table(p, format="csv", label_sep=",", labels="a,b")
    with pytest.raises(DataFormatError, match=r"names2.txt:2: label 'n0' repeats line 1"):
        read_table(
            ids, format="csv", label_sep=",", label_names=put(tmp_path, "names2.txt", "n0\nn0\n")
        )
    with pytest.raises(DataFormatError, match=r"names3.txt:2: blank line"):
        read_table(
            ids, format="csv", label_sep=",", label_names=put(tmp_path, "names3.txt", "n0\n\nn1\n")
        )


def test_labels_sidecar_is_used_unless_overridden(tmp_path):
    p = put(tmp_path, "s.csv", "text,labels\nx,b\n")
    put(tmp_path, "s.csv.labels", "a\nb\n")
    assert list(read_table(p, format="csv", label_sep=",").labels) == ["a", "b"]
    assert list(read_table(p, format="csv", label_sep=",", labels=["b"]).labels) == ["b"]
    put(tmp_path, "s.csv.labels", "a\n")
    with pytest.raises(DataFormatError, match="label 'b' is not among the 1 given labels"):
        read_table(p, format="csv", label_sep=",")


def test_feature_columns_dense(tmp_path):
    p = put(tmp_path, "f.csv", "f1,f2,labels,group\n1.5,-2,a,g1\n0,1e3,,g2\n")
    d = read_table(p, format="csv", feature_columns=["f1", 1], label_sep=",")
    assert d.x_kind == "dense" and d.X.dtype == np.float32
    np.testing.assert_array_equal(d.X, [[1.5, -2], [0, 1000]])
    assert d.groups.tolist() == ["g1", "g2"]
    assert (
        read_table(
            p, format="csv", feature_columns=["f1"], label_sep=",", group_column=False
        ).groups
        is None
    )
    bad = put(tmp_path, "fb.csv", "f1,labels\n1,a\nx,a\n")
    with pytest.raises(DataFormatError, match=r"fb.csv:3: f1: expected a number, got 'x'"):
        read_table(bad, format="csv", feature_columns=["f1"], label_sep=",")
    inf = put(tmp_path, "fn.csv", "f1,labels\ninf,a\n")
    with pytest.raises(DataFormatError, match=r"fn.csv:2: f1: expected a finite number"):
        read_table(inf, format="csv", feature_columns=["f1"], label_sep=",")
    # a missing value: an empty cell, NA, N/A, NaN, nan, null or ? is NaN, and counted
    gaps = put(tmp_path, "fg.csv", "f1,f2,labels\n,1,a\nNA,?,a\n2, nan ,a\n3,4,a\n")
    d = read_table(gaps, format="csv", feature_columns=["f1", "f2"], label_sep=",")
    np.testing.assert_array_equal(np.isnan(d.X), [[1, 0], [1, 1], [0, 1], [0, 0]])
    assert d.meta["missing_values"] == 4 and d.X[3].tolist() == [3, 4]
    assert "missing_values" not in read_table(p, format="csv", feature_columns=["f1"],
                                              label_sep=",").meta
    with pytest.raises(DataFormatError, match="feature_columns is empty"):
        read_table(p, format="csv", feature_columns=[], label_sep=",")


def test_blank_csv_rows_warn(tmp_path):
    p = put(tmp_path, "b.csv", "text,labels\nx,a\n\ny,b\n")
    with pytest.warns(UserWarning, match="skipped 1 blank line"):
        d = read_table(p, format="csv", label_sep=",")
    assert d.n_samples == 2


# ---------------------------------------------------------------------------- JSONL
def test_jsonl_values_and_errors(tmp_path):
    p = put(
        tmp_path,
        "d.jsonl",
        '{"text": "x", "labels": ["a"], "id": 7, "group": 1}\n'
        '{"text": "y", "labels": [], "id": 8, "group": 1, "extra": null}\n',
    )
    d = read_table(p, format="jsonl")
    assert rows(d) == [("x", ["a"]), ("y", [])]
    assert d.ids.dtype == np.int64 and d.ids.tolist() == [7, 8] and d.groups.tolist() == [1, 1]
    cases = {
        '{"text": "x", "labels": ["a"]}\n{"text": "y"}\n': r":2: labels: missing column 'labels'",
        '{"text": "x", "labels": ["a"]}\n[1, 2]\n': r":2: expected a JSON object, got list",
        '{"text": "x", "labels": ["a"]}\n{"text": "y", \n': r":2: malformed JSON",
        '{"text": 3, "labels": ["a"]}\n': r":1: text: expected a text, got int 3",
        '{"text": "x", "labels": "a"}\n': r":1: labels: labels given as the string 'a'",
        '{"text": "x", "labels": [1]}\n': r":1: labels: expected non-empty label names, got int 1",
        '{"text": "x", "labels": null}\n': r":1: labels: expected a list of labels, got null",
        '{"text": "x", "labels": ["a"], "labels": ["b"]}\n': r":1: malformed JSON: key 'labels' appears twice",
        '{"text": "x", "labels": [], "id": 1}\n{"text": "y", "labels": [], "id": "2"}\n': r":2: id: str '2' in a column of int values",
        '{"text": "x", "labels": [], "id": 1.5}\n': r":1: id: expected a string or a 64-bit integer",
        '{"text": "x", "labels": [], "id": 99999999999999999999}\n': r":1: id: expected a string or a 64-bit",
    }
    for content, message in cases.items():
        with pytest.raises(DataFormatError, match=message):
            read_table(put(tmp_path, "e.jsonl", content), format="jsonl")
    with pytest.raises(DataFormatError, match="chosen by name"):
        read_table(p, format="jsonl", text_column=0)


def test_jsonl_label_objects_and_ids(tmp_path):
    p = put(tmp_path, "o.jsonl", '{"text": "x", "subjects": [{"uri": "u1"}, {"uri": "u2"}]}\n')
    d = read_table(p, format="jsonl", labels_column="subjects", label_key="uri")
    assert rows(d) == [("x", ["u1", "u2"])]
    with pytest.raises(DataFormatError, match="label object without the key 'id'"):
        read_table(p, format="jsonl", labels_column="subjects", label_key="id")
    names = put(tmp_path, "n.txt", "a\nb\n")
    q = put(tmp_path, "i.jsonl", '{"text": "x", "labels": [1, 0]}\n{"text": "y", "labels": 1}\n')
    assert rows(read_table(q, format="jsonl", label_names=names)) == [
        ("x", ["a", "b"]),
        ("y", ["b"]),
    ]
    r = put(tmp_path, "i2.jsonl", '{"text": "x", "labels": [true]}\n')
    with pytest.raises(DataFormatError, match="expected integer label ids, got bool"):
        read_table(r, format="jsonl", label_names=names)


def test_jsonl_vectors(tmp_path):
    p = put(
        tmp_path,
        "v.jsonl",
        '{"features": {"3": 1.5, "0": 2}, "labels": ["a"]}\n{"features": {}, "labels": []}\n',
    )
    d = read_table(p, format="jsonl")
    assert d.x_kind == "sparse" and d.X.shape == (2, 4) and d.X.has_sorted_indices
    np.testing.assert_array_equal(d.X.toarray(), [[2, 0, 0, 1.5], [0, 0, 0, 0]])
    bad = {
        '{"features": {"a": 1}, "labels": []}\n': "feature index 'a' is not an integer",
        '{"features": {"1": 1}, "labels": []}\n{"features": [1], "labels": []}\n': ":2: features: a dense row",
        '{"features": [1, 2], "labels": []}\n{"features": [1], "labels": []}\n': ":2: features: 1 values where",
        '{"features": "1", "labels": []}\n': "expected a list or an {index: value} object",
        '{"features": [1, "2"], "labels": []}\n': "expected a number, got str '2'",
        '{"features": [1, true], "labels": []}\n': "expected a number, got bool",
    }
    for content, message in bad.items():
        with pytest.raises(DataFormatError, match=message):
            read_table(put(tmp_path, "b.jsonl", content), format="jsonl")
    csv_vec = put(tmp_path, "v.csv", 'vec,labels\n"[1, 2]",a\n')
    d = read_table(csv_vec, format="csv", feature_columns="vec", label_sep=",")
    np.testing.assert_array_equal(d.X, [[1, 2]])


def test_meta_sidecar_checked(tmp_path):
    p = put(tmp_path, "m.jsonl", '{"features": {"5": 1}, "labels": []}\n')
    put(
        tmp_path,
        "m.jsonl.meta.json",
        '{"format": "labelwise.jsonl/1", "x_kind": "sparse", "n_features": 3}',
    )
    with pytest.raises(DataFormatError, match="feature index 5 >= n_features 3"):
        read_table(p, format="jsonl")
    put(tmp_path, "m.jsonl.meta.json", '{"n_features": 3}')
    with pytest.raises(DataFormatError, match=r"m.jsonl.meta.json: expected"):
        read_table(p, format="jsonl")


# ---------------------------------------------------------------------------- write -> read
def _same(a: Dataset, b: Dataset) -> None:
    assert a.x_kind == b.x_kind
    if a.x_kind == "text":
        assert a.X == b.X
    elif a.x_kind == "sparse":
        assert a.X.shape == b.X.shape and (a.X != b.X).nnz == 0
    else:
        assert a.X.shape == b.X.shape and np.array_equal(a.X, b.X)
    assert list(a.labels) == list(b.labels)
    assert (a.Y != b.Y).nnz == 0 and a.Y.shape == b.Y.shape
    for x, y in ((a.ids, b.ids), (a.groups, b.groups)):
        assert (x is None) == (y is None)
        if x is not None:
            assert x.tolist() == y.tolist()


def test_write_read_identity_text(tmp_path):
    Y = [[2, 0], [], [1]]
    d = Dataset(
        ["héllo\nworld", "", 'q"uote'],
        Y,
        LabelSpace(["z", "y", "x", "unused"]),
        ids=np.array([10, 11, 12], dtype=np.int32),
        groups=np.array(["g", "h", "g"]),
    )
    p = tmp_path / "out.jsonl"
    write_jsonl(d, p)
    assert (tmp_path / "out.jsonl.labels").read_text().startswith("z\ny\nx\nunused\n\nsha256 ")
    first = json.loads(p.read_text(encoding="utf-8").splitlines()[0])
    assert first == {"id": 10, "text": "héllo\nworld", "labels": ["z", "x"], "group": "g"}
    _same(d, read_table(p, format="jsonl"))
    _same(d, read(p))  # dispatch by extension


def test_write_read_identity_features(tmp_path):
    X = sp.csr_matrix(np.array([[0, 1.25, 0, 0, 0], [3.0, 0, 0, 0, 0]], dtype=np.float32))
    d = Dataset(X, [[0], [0, 1]], ["a", "b"])
    p = tmp_path / "sp.jsonl"
    write(d, p)
    assert not (tmp_path / "sp.jsonl.labels").exists()  # first-seen order rebuilds a, b
    assert json.loads((tmp_path / "sp.jsonl.meta.json").read_text())["n_features"] == 5
    back = read_table(p, format="jsonl")
    _same(d, back)
    dense = Dataset(np.array([[0.1, -2.0], [3.5, 1e-30]], dtype=np.float32), [[], [1]], ["a", "b"])
    q = tmp_path / "dense.jsonl"
    write_jsonl(dense, q)
    _same(dense, read_table(q, format="jsonl"))
    empty = Dataset(np.zeros((0, 3), dtype=np.float32), sp.csr_matrix((0, 2)), ["a", "b"])
    write_jsonl(empty, q)
    _same(empty, read_table(q, format="jsonl"))


def test_writer_removes_stale_sidecars_and_custom_keys(tmp_path):
    p = tmp_path / "o.jsonl"
    write_jsonl(Dataset(np.ones((1, 2), dtype=np.float32), [[1]], ["a", "b"]), p)
    assert (tmp_path / "o.jsonl.labels").exists() and (tmp_path / "o.jsonl.meta.json").exists()
    d = Dataset(["t"], [[0]], ["only"])
    write_jsonl(d, p, text_key="body", labels_key="tags")
    assert (
        not (tmp_path / "o.jsonl.labels").exists() and not (tmp_path / "o.jsonl.meta.json").exists()
    )
    _same(d, read_table(p, format="jsonl", text_column="body", labels_column="tags"))


def test_writer_refuses_unwritable_values_and_keeps_old_file(tmp_path):
    p = tmp_path / "keep.jsonl"
    p.write_text("old\n")
    d = Dataset(["a"], [[0]], ["x"], ids=np.array([1.5]))
    with pytest.raises(DataFormatError, match=r"ids\[0\] is float 1.5"):
        write_jsonl(d, p)
    inf = Dataset(np.array([[np.inf]], dtype=np.float32), [[0]], ["x"])
    with pytest.raises(DataFormatError, match="infinite values, which JSON cannot carry"):
        write_jsonl(inf, p)
    with pytest.raises(DataFormatError, match="UTF-8"):
        write_jsonl(Dataset(["\ud800"], [[0]], ["x"]), p)
    assert p.read_text() == "old\n"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["keep.jsonl"]


# ---------------------------------------------------------------------------- Parquet
def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {"text": ["x", "y"], "labels": [["a", "b"], []], "tags": ["a|c", "b"], "f": [1.0, 2.5]}
    )
    p = tmp_path / "t.parquet"
    pq.write_table(table, p)
    assert rows(read_table(p, format="parquet")) == [("x", ["a", "b"]), ("y", [])]
    d = read_table(p, format="parquet", text_column=0, labels_column="tags", label_sep="|")
    assert rows(d) == [("x", ["a", "c"]), ("y", ["b"])]
    np.testing.assert_array_equal(
        read_table(p, format="parquet", feature_columns=["f"]).X, [[1.0], [2.5]]
    )
    with pytest.raises(DataFormatError, match=r"t.parquet:1: f: expected a text, got float 1.0"):
        read_table(p, format="parquet", text_column="f")
    with pytest.raises(DataFormatError, match="no column 'nope'"):
        read_table(p, format="parquet", labels_column="nope")
    junk = put(tmp_path, "j.parquet", b"PAR1 this is not parquet")
    with pytest.raises(DataFormatError, match="cannot read Parquet"):
        read_table(junk, format="parquet")
    assert rows(read(p)) == [("x", ["a", "b"]), ("y", [])]


def test_parquet_without_pyarrow(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'labelwise\[tables\]'"):
        read_table(put(tmp_path, "t.parquet", b""), format="parquet")


# ---------------------------------------------------------------------------- real data
@pytest.mark.datasets
def test_goemotions_original():
    root = shared_dataset_dir("goemotions") / "original"
    sizes = {"train": 43410, "dev": 5426, "test": 5427}
    names = (root / "labels.txt").read_text().split("\n")
    for split, n in sizes.items():
        d = read_table(
            root / f"{split}.tsv",
            format="tsv",
            header=False,
            quoting="none",
            text_column=0,
            labels_column=1,
            id_column=2,
            label_sep=",",
            label_names=root / "labels.txt",
        )
        assert d.n_samples == n and list(d.labels) == names and len(names) == 28
        assert len(set(d.ids.tolist())) == n
        if split == "train":
            assert int(np.count_nonzero(np.diff(d.Y.indptr) > 1)) == 7102
            assert (
                d.ids[0] == "eebbqej"
                and d.X[0] == "My favourite food is anything I didn't have to cook myself."
            )
            assert d.label_names(0) == ["neutral"]
        # obviously-correct re-parse
        with open(root / f"{split}.tsv", encoding="utf-8") as f:
            for i, line in enumerate(f):
                text, ids, cid = line.rstrip("\n").split("\t")
                assert d.X[i] == text and d.ids[i] == cid
                assert d.Y.indices[d.Y.indptr[i] : d.Y.indptr[i + 1]].tolist() == sorted(
                    map(int, ids.split(","))
                )


@pytest.mark.datasets
def test_annif_archaeology():
    root = shared_dataset_dir("annif-archaeology-fi") / "archaeology"
    opts = {
        "format": "tsv",
        "header": False,
        "text_column": 0,
        "labels_column": 1,
        "label_sep": " ",
    }
    with pytest.raises(DataFormatError, match=r"documents.tsv:33: malformed TSV"):
        read_table(root / "documents.tsv", **opts)  # the file has bare quotes: needs quoting="none"
    d = read_table(root / "documents.tsv", quoting="none", **opts)
    assert d.n_samples == 6404 and d.n_labels == 126
    assert int(np.count_nonzero(np.diff(d.Y.indptr) > 1)) == 1644
    assert round(d.stats()["label_cardinality"], 2) == 1.42
    assert d.label_names(0) == ["<http://www.yso.fi/onto/yso/p2557>"]
    # subjects.tsv holds 125 of the 126 URIs: the dummy subject is reported, never dropped
    subjects = [
        line.split("\t")[0]
        for line in (root / "subjects.tsv").read_text(encoding="utf-8-sig").splitlines()
    ]
    with pytest.raises(
        DataFormatError, match=r"label '<http://example.org/dummy_subject>' is not among the 125"
    ):
        read_table(root / "documents.tsv", quoting="none", labels=subjects, **opts)
    # the CSV and JSONL copies hold the same rows
    c = read_table(
        root / "documents.csv", format="csv", labels_column="subject_uris", label_sep=" "
    )
    j = read_table(
        root / "documents.jsonl", format="jsonl", labels_column="subjects", label_key="uri"
    )
    assert c.X == d.X == j.X and list(c.labels) == list(d.labels)
    assert [n.strip("<>") for n in d.labels] == list(j.labels)
    assert (c.Y != d.Y).nnz == 0 and (j.Y != d.Y).nnz == 0


def test_errors_share_one_root(tmp_path):
    with pytest.raises(LabelwiseError):
        read_table(tmp_path / "absent.csv", format="csv")
