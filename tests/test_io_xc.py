"""XC / LIBSVM sparse text: hand-written files, errors, round trips, the real yeast files,
and the numba parser against a slow pure-Python reference parser."""

from __future__ import annotations

import gzip
import random
import re

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import shared_dataset_dir
from labelwise import io as lio
from labelwise.dataset import Dataset
from labelwise.errors import DataFormatError
from labelwise.io import xc
from labelwise.io.xc import read_libsvm, read_xc, write_xc
from labelwise.labels import LabelSpace


# ---------------------------------------------------------------------- reference parser
class RefError(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


_VALUE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


def ref_parse(text: str, *, first_line: int = 1):
    """Obviously-correct slow parser: list of (sorted label ids, sorted [(index, float32)])."""
    rows = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for k, line in enumerate(lines):
        no = first_line + k
        tokens = line.replace("\t", " ").replace("\r", " ").split(" ")
        labels: list[int] = []
        if tokens and tokens[0] != "" and ":" not in tokens[0]:
            for t in tokens.pop(0).split(","):
                if not (t.isascii() and t.isdigit()):
                    raise RefError(no)
                labels.append(int(t))
        feats = []
        for t in tokens:
            if t == "":
                continue
            idx, sep, val = t.partition(":")
            if not sep or not (idx.isascii() and idx.isdigit()) or not _VALUE.match(val):
                raise RefError(no)
            with np.errstate(over="ignore"):
                f = np.float32(float(val))
            if not np.isfinite(f):
                raise RefError(no)
            feats.append((int(idx), f))
        if len(set(labels)) != len(labels) or len({i for i, _ in feats}) != len(feats):
            raise RefError(no)
        rows.append((sorted(labels), sorted(feats)))
    return rows


def rows_of(ds: Dataset, base: int = 0):
    out = []
    X, Y = ds.X, ds.Y
    for r in range(ds.n_samples):
        labs = Y.indices[Y.indptr[r] : Y.indptr[r + 1]].tolist()
        s, e = X.indptr[r], X.indptr[r + 1]
        feats = [(int(i) + base, np.float32(v)) for i, v in zip(X.indices[s:e], X.data[s:e])]
        out.append((labs, feats))
    return out


def random_value(rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:
        return str(rng.randrange(-1000, 1000))
    if kind == 1:
        return f"{rng.uniform(-1, 1):.6f}"
    if kind == 2:
        return f"{rng.uniform(-1e3, 1e3):.9g}"
    if kind == 3:
        return f"{rng.uniform(1, 10):.{rng.randrange(1, 10)}f}e{rng.randrange(-40, 38)}"
    if kind == 4:
        return rng.choice(["+", "-", ""]) + "." + str(rng.randrange(10**6))
    if kind == 5:
        return f"{np.float32(rng.lognormvariate(0, 10)):.9g}"
    if kind == 6:
        return rng.choice(["0", "-0", "0.0", "1.", "1E5", "+2.5e-3", "1e-05", "007"])
    return repr(rng.random() * 10 ** rng.randrange(-20, 20))


def random_file(rng: random.Random, n_rows: int, n_features: int, n_labels: int, header: bool):
    lines = [f"{n_rows} {n_features} {n_labels}"] if header else []
    for _ in range(n_rows):
        labs = rng.sample(range(n_labels), rng.randrange(0, min(4, n_labels) + 1))
        feats = rng.sample(range(n_features), rng.randrange(0, min(8, n_features) + 1))
        sep = rng.choice([" ", "  ", "\t"])
        parts = [f"{i}:{random_value(rng)}" for i in feats]
        lab = ",".join(map(str, labs))
        if parts:
            line = (lab + sep if lab else rng.choice(["", " "])) + sep.join(parts)
        else:
            line = lab
        lines.append(line + rng.choice(["", "", " ", "\r"]))
    return "\n".join(lines) + rng.choice(["\n", ""])


# ---------------------------------------------------------------------- hand-written files
def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def test_xc_zero_based_by_hand(tmp_path):
    p = write(tmp_path, "a.txt", "4 5 3\n0,2 0:1.5 4:-2\n 1:0.25\n1\n\n")
    ds = read_xc(p)
    assert ds.X.dtype == np.float32 and ds.Y.dtype == np.float32
    np.testing.assert_array_equal(
        ds.X.toarray(),
        [[1.5, 0, 0, 0, -2], [0, 0.25, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
    )
    np.testing.assert_array_equal(ds.Y.toarray(), [[1, 0, 1], [0, 0, 0], [0, 1, 0], [0, 0, 0]])
    assert ds.labels.names == ("0", "1", "2")
    assert ds.meta["format"] == "xc" and ds.meta["index_base"] == 0
    assert ds.meta["index_base_detected"] == "index 0 seen (line 2)"


def test_xc_one_based_detected_from_n_features(tmp_path):
    p = write(tmp_path, "b.txt", "2 3 2\n1 1:1 3:2\n0 2:3\n")
    ds = read_xc(p)
    assert ds.meta["index_base"] == 1
    assert "index 3 == n_features" in ds.meta["index_base_detected"]
    np.testing.assert_array_equal(ds.X.toarray(), [[1, 0, 2], [0, 3, 0]])


def test_xc_ambiguous_base_warns_and_takes_zero(tmp_path):
    p = write(tmp_path, "c.txt", "1 4 1\n0 1:1 2:2\n")
    with pytest.warns(UserWarning, match="ambiguous"):
        ds = read_xc(p)
    assert ds.meta["index_base"] == 0
    np.testing.assert_array_equal(ds.X.toarray(), [[0, 1, 2, 0]])
    ds1 = read_xc(p, index_base=1)
    assert ds1.meta["index_base_detected"] == "given"
    np.testing.assert_array_equal(ds1.X.toarray(), [[1, 2, 0, 0]])


def test_xc_both_zero_and_n_features_is_an_error(tmp_path):
    p = write(tmp_path, "d.txt", "2 3 1\n0 0:1\n0 3:1\n")
    with pytest.raises(DataFormatError, match=r"d.txt:3: .*neither 0-based nor 1-based"):
        read_xc(p)


def test_xc_given_base_checks(tmp_path):
    p = write(tmp_path, "e.txt", "2 3 1\n0 1:1\n0 0:1\n")
    with pytest.raises(DataFormatError, match=r"e.txt:3: feature index 0 in a file read with index_base=1"):
        read_xc(p, index_base=1)
    q = write(tmp_path, "f.txt", "2 3 1\n0 1:1\n0 3:1\n")
    with pytest.raises(DataFormatError, match=r"f.txt:3: feature index 3 >= n_features 3"):
        read_xc(q, index_base=0)
    with pytest.raises(DataFormatError, match="index_base must be"):
        read_xc(q, index_base=2)


def test_libsvm_detection_and_n_features(tmp_path):
    p = write(tmp_path, "g.svm", "0,3 1:1 7:2\n2 3:0.5\n")
    ds = read_libsvm(p)
    assert ds.meta["index_base"] == 1
    assert ds.meta["index_base_detected"] == "no index 0 seen; max index 7"
    assert ds.X.shape == (2, 7) and ds.Y.shape == (2, 4)
    np.testing.assert_array_equal(ds.X.toarray()[0], [1, 0, 0, 0, 0, 0, 2])
    ds0 = read_libsvm(write(tmp_path, "h.svm", "1 0:1 2:2\n"))
    assert ds0.meta["index_base"] == 0 and ds0.X.shape == (1, 3)
    assert read_libsvm(p, n_features=10).X.shape == (2, 10)
    with pytest.raises(DataFormatError, match=r"g.svm:1: feature index 7 >= n_features 5"):
        read_libsvm(p, n_features=5)
    assert read_libsvm(p, index_base=0).X.shape == (2, 8)


def test_gzip_is_transparent(tmp_path):
    text = "3 4 2\n0 0:1 3:2.5\n1 2:-1e-3\n\n"
    plain = read_xc(write(tmp_path, "p.txt", text))
    gz = read_xc(write(tmp_path, "p.txt.gz", gzip.compress(text.encode())))
    assert (plain.X != gz.X).nnz == 0 and (plain.Y != gz.Y).nnz == 0
    assert gz.meta["compression"] == "gzip"
    with pytest.raises(DataFormatError, match="corrupt gzip"):
        read_xc(write(tmp_path, "bad.gz", gzip.compress(text.encode())[:-12]))


def test_crlf_and_tabs(tmp_path):
    ds = read_xc(write(tmp_path, "w.txt", "2 2 2\r\n0\t0:1\t1:2\r\n1 1:3\r\n"))
    np.testing.assert_array_equal(ds.X.toarray(), [[1, 2], [0, 3]])


def test_unsorted_rows_are_sorted(tmp_path):
    ds = read_xc(write(tmp_path, "u.txt", "1 5 4\n3,0,2 4:4 0:0.5 2:2\n"))
    assert ds.X.indices.tolist() == [0, 2, 4] and ds.X.data.tolist() == [0.5, 2, 4]
    assert ds.Y.indices.tolist() == [0, 2, 3]
    assert ds.X.has_sorted_indices


def test_label_id_beyond_header(tmp_path):
    p = write(tmp_path, "train.txt", "3 2 4\n0 0:1\n1 1:1\n5,1 0:1\n")
    with pytest.raises(DataFormatError) as e:
        read_xc(p)
    assert str(e.value) == f"{p}:4: label id 5 >= n_labels 4"
    assert e.value.line == 4 and e.value.path == str(p)


@pytest.mark.parametrize(
    "body, line, pattern",
    [
        ("0 1:x\n", 2, "expected a number"),
        ("0 1:1\n0 1\n", 3, "expected 'index:value'"),
        ("0 a:1\n", 2, "expected 'index:value'"),
        ("0 -1:1\n", 2, "negative feature index"),
        ("-1:1\n", 2, "negative feature index"),
        ("-1 1:1\n", 2, "negative label id"),
        ("0 1:1 1:2\n", 2, "feature index 1 appears more than once"),
        ("1,1 1:1\n", 2, "label id 1 appears more than once"),
        ("0 1:nan\n", 2, "not finite"),
        ("0 1:-inf\n", 2, "not finite"),
        ("0 1:1e39\n", 2, "not finite"),
        ("0 1:1e999\n", 2, "not finite"),
        ("0 1:1.5abc\n", 2, "unexpected text after the value"),
        ("0 1:1:2\n", 2, "unexpected text after the value"),
        ("0,,1 1:1\n", 2, "label ids"),
        ("0, 1:1\n", 2, "label ids"),
        ("a 1:1\n", 2, "label ids"),
        ("0.5 1:1\n", 2, "label ids"),
        ("0 1:\n", 2, "expected a number"),
        ("0 1:1e\n", 2, "expected a number"),
        ("0 99999999999:1\n", 2, "too large"),
    ],
)
def test_errors_name_file_and_line(tmp_path, body, line, pattern):
    n_rows = body.count("\n")
    p = write(tmp_path, "bad.txt", f"{n_rows} 5 3\n" + body)
    with pytest.raises(DataFormatError, match=pattern) as e:
        read_xc(p, index_base=0)
    assert e.value.line == line
    assert str(e.value).startswith(f"{p}:{line}: ")


@pytest.mark.parametrize(
    "text, line, pattern",
    [
        ("", 1, "empty"),
        ("1 2\n0 0:1\n", 1, "header"),
        ("a b c\n", 1, "header"),
        ("1 2 -3\n", 1, "header"),
        ("1 2 3 4\n", 1, "header"),
        ("2 2 2\n0 0:1\n", 3, "ends after 1 rows"),
        ("1 2 2\n0 0:1\n1 1:1\n", 3, "has 2 rows"),
        ("1 2 2\n0 5:1\n", 2, "out of range"),
    ],
)
def test_header_and_row_count_errors(tmp_path, text, line, pattern):
    p = write(tmp_path, "h.txt", text)
    with pytest.raises(DataFormatError, match=pattern) as e:
        read_xc(p)
    assert e.value.line == line


def test_header_only_and_empty_libsvm(tmp_path):
    ds = read_xc(write(tmp_path, "e.txt", "0 7 3\n"))
    assert ds.X.shape == (0, 7) and ds.Y.shape == (0, 3)
    assert read_xc(write(tmp_path, "e2.txt", "0 7 3")).X.shape == (0, 7)
    empty = read_libsvm(write(tmp_path, "e.svm", ""))
    assert empty.X.shape == (0, 0) and empty.n_labels == 0


def test_float_parsing_matches_python_float(tmp_path):
    rng = random.Random(7)
    values = [random_value(rng) for _ in range(3000)]
    values += ["1e-05", "-1e-05", ".5", "-.5", "+.5", "5.", "1E+2", "3.4028234e38", "1e-45",
               "0.1", "0.3", "123456789012345678", "0.000000000000000000001", "1.17549435e-38",
               "9007199254740993", "4.9406564584124654e-324", "2.5e-50"]
    text = f"{len(values)} 1 1\n" + "".join(f"0 0:{v}\n" for v in values)
    with pytest.warns(UserWarning, match="too small for float32"):
        ds = read_xc(write(tmp_path, "f.txt", text), index_base=0)
    want = np.array([np.float32(float(v)) for v in values], dtype=np.float32)
    assert np.all(np.diff(ds.X.indptr) == 1)
    got = ds.X.data  # not toarray(): it adds into zeros and loses -0.0
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))


def test_underflow_warns_with_count(tmp_path):
    p = write(tmp_path, "uf.txt", "2 1 1\n0 0:1e-60\n0 0:-1e-50\n")
    with pytest.warns(UserWarning, match="2 nonzero values are too small"):
        ds = read_xc(p, index_base=0)
    assert ds.X.nnz == 2 and np.all(ds.X.data == 0)


# ---------------------------------------------------------------------- chunking
@pytest.mark.parametrize("chunk", [16, 37, 1 << 12])
def test_small_chunks_equal_one_chunk(tmp_path, monkeypatch, chunk):
    rng = random.Random(chunk)
    text = random_file(rng, 200, 50, 9, header=True)
    p = write(tmp_path, "c.txt", text)
    whole = read_xc(p, index_base=0)
    monkeypatch.setattr(xc, "CHUNK_BYTES", chunk)
    small = read_xc(p, index_base=0)
    assert rows_of(small) == rows_of(whole)
    # gzip data is not counted first: its arrays grow chunk by chunk
    g = write(tmp_path, "c.txt.gz", gzip.compress(text.encode()))
    assert rows_of(read_xc(g, index_base=0)) == rows_of(whole)
    # a line far longer than the buffer, and an error past several chunk boundaries
    long_line = "0 " + " ".join(f"{i}:{i}.5" for i in range(300)) + "\n"
    q = write(tmp_path, "l.txt", f"3 300 1\n{long_line}{long_line}0 1:1 1:2\n")
    with pytest.raises(DataFormatError, match="appears more than once") as e:
        read_xc(q)
    assert e.value.line == 4


def test_arrays_too_small_raise_instead_of_overflowing(tmp_path, monkeypatch):
    """The kernel checks its output capacity (a file that grows between the counting pass
    and the parsing pass must not write past the arrays)."""
    from labelwise.io import _xc_kernels as K

    p = write(tmp_path, "grow.txt", "2 3 2\n0,1 0:1 1:2\n1 2:3\n")
    real_scan = K.scan
    monkeypatch.setattr(K, "scan", lambda buf, s, e: (real_scan(buf, s, e)[0], 0, 0, 0))
    with pytest.raises(DataFormatError, match="changed while it was being read"):
        read_xc(p)


# ---------------------------------------------------------------------- differential
@pytest.mark.parametrize("seed", range(12))
def test_numba_parser_equals_reference(tmp_path, seed):
    rng = random.Random(seed)
    text = random_file(rng, rng.randrange(0, 60), rng.randrange(1, 40), rng.randrange(1, 12), header=False)
    p = write(tmp_path, "r.svm", text)
    want = ref_parse(text)
    got = rows_of(read_libsvm(p, index_base=0, n_features=40, labels=[str(i) for i in range(12)]))
    assert got == want


@pytest.mark.parametrize("seed", range(40))
def test_numba_parser_errors_at_reference_line(tmp_path, seed):
    rng = random.Random(1000 + seed)
    text = random_file(rng, 20, 30, 6, header=False)
    lines = text.split("\n")
    k = rng.randrange(len(lines))
    junk = rng.choice([":", ",", "x", "-", "1:", ":1", ",,", "1:1", "e", ".", "1:nan", "\x00", "é"])
    pos = rng.randrange(len(lines[k]) + 1)
    lines[k] = lines[k][:pos] + junk + lines[k][pos:]
    text = "\n".join(lines)
    p = write(tmp_path, "e.svm", text)
    try:
        ref = ref_parse(text)
    except RefError as e:
        with pytest.raises(DataFormatError) as got:
            read_libsvm(p, index_base=0, n_features=10**6, labels=[str(i) for i in range(100)])
        assert got.value.line == e.line
    else:
        ds = read_libsvm(p, index_base=0, n_features=10**6, labels=[str(i) for i in range(100)])
        assert rows_of(ds) == ref


# ---------------------------------------------------------------------- writing
def _random_dataset(seed: int, names=None) -> Dataset:
    rng = np.random.default_rng(seed)
    X = sp.random(30, 17, density=0.3, format="csr", dtype=np.float32, random_state=rng)
    X.data = (X.data - 0.5) * 10.0 ** rng.integers(-30, 30, X.nnz)
    X.data[:3] = 0.0  # explicit zeros are kept
    Y = sp.random(30, 6, density=0.3, format="csr", random_state=rng)
    Y.data[:] = 1
    return Dataset(X, Y, names)


@pytest.mark.parametrize("base", [0, 1])
def test_write_read_identity(tmp_path, base):
    ds = _random_dataset(base, ["cat", "dog", "a b", "ünï", "x", "0"])
    p = tmp_path / "rt.xc"
    write_xc(ds, p, index_base=base)
    assert (tmp_path / "rt.xc.labels").read_text(encoding="utf-8").splitlines()[3] == "ünï"
    back = read_xc(p, index_base=base)
    assert back.labels == ds.labels
    for a, b in ((ds.X, back.X), (ds.Y, back.Y)):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.data.view(np.int32), b.data.view(np.int32))
    assert back.meta["label_names"] == "sidecar rt.xc.labels"


def test_write_default_names_removes_stale_sidecar_and_gz(tmp_path):
    p = tmp_path / "d.xc.gz"
    write_xc(_random_dataset(1, list("abcdef")), p)
    assert (tmp_path / "d.xc.gz.labels").exists()
    ds = _random_dataset(2)
    write_xc(ds, p)
    assert not (tmp_path / "d.xc.gz.labels").exists()
    assert gzip.open(p, "rt").readline() == "30 17 6\n"
    back = read_xc(p, index_base=0)
    assert (back.X != ds.X).nnz == 0 and back.labels.names == tuple("012345")


def test_labels_argument_and_sidecar_conflict(tmp_path):
    p = write(tmp_path, "n.txt", "1 2 2\n1 0:1\n")
    ds = read_xc(p, labels=LabelSpace(["x", "y"], descriptions=["ex", "why"]))
    assert ds.labels.names == ("x", "y") and ds.labels.description("y") == "why"
    assert ds.meta["label_names"] == "labels argument"
    with pytest.raises(DataFormatError, match="3 label names"):
        read_xc(p, labels=["a", "b", "c"])
    (tmp_path / "n.txt.labels").write_text("p\nq\n", encoding="utf-8")
    assert read_xc(p).labels.names == ("p", "q")
    with pytest.raises(DataFormatError, match="differs from the sidecar"):
        read_xc(p, labels=["x", "y"])
    (tmp_path / "n.txt.labels").write_text("p\n\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"n.txt.labels:2: empty label name"):
        read_xc(p)


def test_write_refuses_what_the_format_cannot_hold(tmp_path):
    with pytest.raises(DataFormatError, match="texts"):
        write_xc(Dataset(["a b", "c"], [[0], [1]]), tmp_path / "t.xc")
    bad = Dataset(sp.csr_matrix(np.array([[np.nan, 1.0]])), [[0]])
    with pytest.raises(DataFormatError, match="non-finite"):
        write_xc(bad, tmp_path / "t.xc")
    with pytest.raises(DataFormatError, match="line break"):
        write_xc(Dataset(sp.csr_matrix(np.ones((1, 1))), [[0]], ["a\nb"]), tmp_path / "t.xc")
    assert not (tmp_path / "t.xc").exists()


def test_registry_dispatch(tmp_path):
    p = tmp_path / "r.xc"
    ds = _random_dataset(3)
    lio.write(ds, p, format="xc")
    back = lio.read(p, index_base=0)
    assert back.meta["format"] == "xc" and (back.X != ds.X).nnz == 0


# ---------------------------------------------------------------------- real data
@pytest.mark.parametrize("name, n_rows, card", [("yeast_train.txt", 1500, 4.228), ("yeast_test.txt", 917, 4.252)])
def test_real_yeast_equals_sklearn(name, n_rows, card):
    from sklearn.datasets import load_svmlight_file

    path = shared_dataset_dir("libsvm-yeast-napkinxc") / name
    ds = read_libsvm(path)
    assert ds.meta["index_base"] == 1
    assert (ds.n_samples, ds.n_features, ds.n_labels) == (n_rows, 103, 14)
    assert round(ds.stats()["label_cardinality"], 3) == card
    X, y = load_svmlight_file(str(path), multilabel=True, zero_based=False)
    Xs = sp.csr_matrix(X.astype(np.float32))
    Xs.sort_indices()
    np.testing.assert_array_equal(ds.X.indptr, Xs.indptr)
    np.testing.assert_array_equal(ds.X.indices, Xs.indices)
    np.testing.assert_array_equal(ds.X.data, Xs.data)
    assert [sorted(int(v) for v in r) for r in y] == [ds.Y.indices[a:b].tolist() for a, b in zip(ds.Y.indptr[:-1], ds.Y.indptr[1:])]
