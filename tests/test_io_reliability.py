"""Issue 18 section 5, data side: sizes checked before allocating, no silent coercion of
numbers, typed errors for broken compressed files and unknown reader options, a data file and
its ``.labels`` sidecar kept consistent across a kill, and ``.jsonl.gz`` written as JSON Lines.
Each test failed on the code before these fixes (a hang, inf, a duplicate entry, a traceback,
or old rows read with new names)."""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import labelwise as lw
from labelwise import Dataset
from labelwise.errors import DataFormatError


def _ds(names, seed=0, n=6):
    rng = np.random.default_rng(seed)
    X = sp.random(n, 5, density=0.5, format="csr", random_state=seed, dtype=np.float32)
    Y = [sorted(rng.choice(len(names), size=2, replace=False).tolist()) for _ in range(n)]
    return Dataset(X, Y, names)


# ------------------------------------------------------------------ 3. sizes before allocating
@pytest.mark.parametrize("name, text, line, field", [
    ("a.txt", "2147483646 1:1\n", 1, "labels"),            # LIBSVM: max label id + 1 names
    ("b.xc", "1 1 2147483646\n0 0:1\n", 1, "header"),       # XC header's n_labels
    ("c.svm", "0 1:1\n5 1:1\n3000000000000 1:1\n", 3, None),  # id beyond int32: the kernel's error
])
def test_declared_label_count_checked_against_the_file(tmp_path, name, text, line, field):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(DataFormatError) as e:
        lw.read(p)
    assert e.value.line == line and f"{name}:{line}" in str(e.value)
    if field is not None:
        assert e.value.field == field and "without names" in str(e.value)


def test_unnamed_label_limit_leaves_ordinary_files_and_named_labels_alone(tmp_path, monkeypatch):
    from labelwise.io import xc

    assert xc.MAX_UNNAMED_LABELS == 1 << 22  # above the XC repository's largest (2.8M labels)
    monkeypatch.setattr(xc, "MAX_UNNAMED_LABELS", 1000)
    p = tmp_path / "ok.xc"
    p.write_text("1 2 1000\n0 0:1\n")  # at the limit: read (names built)
    assert lw.read(p).n_labels == 1000
    p.write_text("1 2 1001\n0 0:1\n")
    with pytest.raises(DataFormatError, match="1001 labels without names"):
        lw.read(p)
    p.write_text("1 2 1001\n0 0:1\n" + " " * 1001)  # a file that large may declare them
    with pytest.raises(DataFormatError, match="n_points 1 but the file has 2 rows"):
        lw.read(p)
    p.write_text("1 2 1001\n0 0:1" + " " * 1001 + "\n")
    assert lw.read(p).n_labels == 1001
    q = tmp_path / "named.xc"
    q.write_text("1 2 3\n2 0:1\n")
    assert lw.read(q, labels=["a", "b", "c"]).labels.names == ("a", "b", "c")


def test_cli_info_on_the_15_byte_file_is_one_error_line(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"2147483646 1:1\n")
    out = subprocess.run([sys.executable, "-m", "labelwise", "info", str(p)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"error: {p}:1: labels:")


# ------------------------------------------------------------------ 4. no silent coercion
@pytest.mark.parametrize("name, text, options, where, what", [
    ("a.csv", "f1,f2,labels\n1,2,a\n1e39,2,a\n", {}, ("a.csv:3", "f1"), "float32 range"),
    ("b.csv", "f1,f2,labels\n1_000,2,a\n", {}, ("b.csv:2", "f1"), "expected a number"),
    ("c.csv", "f1,f2,labels\n\u0661\u0662,2,a\n", {}, ("c.csv:2", "f1"), "expected a number"),
    ("d.csv", "f1,f2,labels\n1,\uff13,a\n", {}, ("d.csv:2", "f2"), "expected a number"),
    ("e.jsonl", '{"features": [1e39, 2], "labels": ["a"]}\n', {}, ("e.jsonl:1", "features"),
     "float32 range"),
    ("f.jsonl", '{"features": {"1": 1.0, "01": 2.0}, "labels": ["a"]}\n', {},
     ("f.jsonl:1", "features"), "feature index 1 given twice"),
    ("g.jsonl", '{"features": {"1": ' + "7" * 400 + '}, "labels": ["a"]}\n', {},
     ("g.jsonl:1", "features"), "float32 range"),
    ("h.jsonl", '{"features": [1e400], "labels": ["a"]}\n', {}, ("h.jsonl:1", "features"),
     "finite"),
])
def test_table_numbers_are_never_coerced(tmp_path, name, text, options, where, what):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    if name.endswith(".csv"):
        options = {"feature_columns": [0, 1], "labels_column": 2, "label_sep": ","}
    with pytest.raises(DataFormatError, match=what) as e:
        lw.read(p, **options)
    assert str(e.value).startswith(f"{tmp_path / where[0]}: {where[1]}: ")


def test_table_numbers_that_fit_are_read_exactly(tmp_path):
    p = tmp_path / "ok.csv"
    p.write_text("f1,f2,labels\n 1.5e3 ,-.25,a\n3.4028235e38,1E-3,a\n")
    ds = lw.read(p, feature_columns=[0, 1], labels_column=2, label_sep=",")
    np.testing.assert_array_equal(
        ds.X, np.array([[1500, -0.25], [3.4028235e38, 1e-3]], dtype=np.float32))


ARFF_HEAD = "@relation 'r: -C -1'\n@attribute f numeric\n@attribute l {0,1}\n@data\n"


def _ok(p, sparse):
    q = p.with_name("ok.arff")
    q.write_text(ARFF_HEAD + ("{0 0.5,1 1}\n" if sparse else "0.5,1\n") * 3)
    return q


@pytest.mark.parametrize("row, what", [
    ("1e400,1", "float32 range"),          # numpy's fast path read it as inf
    ("inf,1", "finite"),
    ("nan,0", "finite"),
    ("\u0661,1", "expected a number"),
])
@pytest.mark.parametrize("sparse", [False, True])
def test_arff_numbers_are_never_coerced(tmp_path, row, what, sparse):
    v, lab = row.split(",")
    body = f"{{0 {v},1 {lab}}}\n" if sparse else f"{row}\n"
    p = tmp_path / "x.arff"
    p.write_text(ARFF_HEAD + "0.5,1\n" * 3 + body if not sparse else
                 ARFF_HEAD + "{0 0.5,1 1}\n" * 3 + body, encoding="utf-8")
    assert lw.read(_ok(p, sparse)).n_samples == 3  # the same file without the bad row reads
    with pytest.raises(DataFormatError, match=what) as e:
        lw.read(p)
    assert e.value.line == 8 and e.value.field == "f"


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                 st.integers(-10**60, 10**60).map(str),
                 st.text(alphabet="0123456789.eE+-_ \u0660\u0661\uff10x", max_size=12)))
def test_text_number_is_float_or_a_clear_refusal(text):
    """Property: what the strict parser accepts, Python's float() reads identically and
    float32 holds; everything else is a ValueError saying what was expected."""
    from labelwise.io._lines import FLOAT32_OVERFLOW, text_number

    try:
        x = text_number(text)
    except ValueError as e:
        assert str(e).startswith(("expected a number", "expected a finite number", "value "))
        return
    assert x == float(text) and abs(x) < FLOAT32_OVERFLOW and np.isfinite(np.float32(x))
    assert text.strip(" \t").isascii() and "_" not in text


# ------------------------------------------------------------------ 5. typed errors
def _gz_with_bad_crc(data: bytes) -> bytes:
    g = bytearray(gzip.compress(data))
    g[-8] ^= 1  # the CRC32 of the trailer
    return bytes(g)


@pytest.mark.parametrize("name, make", [
    ("t.arff.gz", lambda: gzip.compress((ARFF_HEAD + "0.5,1\n" * 4000).encode())[:-200]),
    ("crc.arff.gz", lambda: _gz_with_bad_crc((ARFF_HEAD + "0.5,1\n").encode())),
    ("crc.txt.gz", lambda: _gz_with_bad_crc(b"0 0:1\n0 1:1\n")),
    ("crc.xc.gz", lambda: _gz_with_bad_crc(b"2 2 1\n0 0:1\n0 1:1\n")),
    ("crc.jsonl.gz", lambda: _gz_with_bad_crc(b'{"text": "a", "labels": ["x"]}\n')),
    ("bad.txt.gz", lambda: gzip.compress(b"0 0:1\n0 1:1\n" * 100)[:20] + b"\xff" * 20),
    ("notgz.txt.gz", lambda: b"0 0:1\n"),
])
def test_broken_gzip_is_a_data_format_error_naming_the_file(tmp_path, name, make):
    p = tmp_path / name
    p.write_bytes(make())
    with pytest.raises(DataFormatError) as e:
        lw.read(p)
    assert e.value.path == str(p) and "gzip" in str(e.value)


def test_huge_json_integer_is_a_data_format_error(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"features": [' + "9" * 400 + '], "labels": ["a"]}\n')
    with pytest.raises(DataFormatError, match="float32 range") as e:
        lw.read(p)
    assert e.value.line == 1


def test_unknown_reader_option_lists_the_valid_ones(tmp_path):
    p = tmp_path / "f.xc"
    p.write_text("2 2 1\n0 0:1\n0 1:1\n")
    with pytest.raises(DataFormatError, match=r"unknown reader option bogus for xc data; "
                                              r"valid options: index_base, labels") as e:
        lw.read(p, bogus=1)
    assert e.value.path == str(p)
    q = tmp_path / "t.jsonl"
    q.write_text('{"text": "a", "labels": ["x"]}\n')
    with pytest.raises(DataFormatError, match="text_column"):
        lw.read(q, text_colum="text")
    out = subprocess.run([sys.executable, "-m", "labelwise", "info", str(p), "-o", "bogus=1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith(f"error: {p}: unknown reader option bogus")


# ------------------------------------------------------------------ 2. data + sidecar pair
def test_xc_sidecar_records_the_rows_it_belongs_to(tmp_path):
    p = tmp_path / "d.xc"
    lw.write(_ds(["a", "b", "c"]), p)
    lines = (tmp_path / "d.xc.labels").read_text().split("\n")
    assert lines[:4] == ["a", "b", "c", ""] and lines[4].startswith("sha256 ")
    assert lw.read(p).labels.names == ("a", "b", "c")
    # rows replaced behind the names' back (what a kill between the two renames leaves)
    lw.write(_ds(["0", "1", "2"], seed=1), tmp_path / "other.xc")
    (tmp_path / "other.xc").replace(p)
    with pytest.raises(DataFormatError, match="written for another version of d.xc") as e:
        lw.read(p)
    assert e.value.path == str(tmp_path / "d.xc.labels")


def test_xc_sidecar_without_record_still_reads(tmp_path):
    p = tmp_path / "old.xc"
    p.write_text("2 2 2\n0 0:1\n1 1:1\n")
    (tmp_path / "old.xc.labels").write_text("x\ny\n")
    assert lw.read(p).labels.names == ("x", "y")
    (tmp_path / "old.xc.labels").write_text("x\ny\n\nnot a record\n")
    with pytest.raises(DataFormatError, match="old.xc.labels:3: empty label name"):
        lw.read(p)
    (tmp_path / "old.xc.labels").write_text("x\ny\n\nsha256 abc\n")
    with pytest.raises(DataFormatError, match="old.xc.labels:4: expected one last line 'sha256"):
        lw.read(p)


_KILL_WRITER = textwrap.dedent("""
    import os, sys, signal
    import numpy as np, scipy.sparse as sp
    import labelwise as lw
    from labelwise.io import xc
    path, stage = sys.argv[1], sys.argv[2]
    n = 40
    X = sp.random(n, 5, density=0.5, format="csr", random_state=1, dtype=np.float32)
    ds = lw.Dataset(X, [[i % 3] for i in range(n)], ["new-a", "new-b", "new-c"])
    real = xc.atomic_write
    def dying(target, *a, **k):
        # die (SIGKILL, no clean-up) right after the sidecar's rename, before the rows' rename
        cm = real(target, *a, **k)
        if stage == "after-sidecar" and str(target).endswith(".labels"):
            class Wrap:
                def __enter__(s):
                    return cm.__enter__()
                def __exit__(s, *exc):
                    cm.__exit__(*exc)
                    os.kill(os.getpid(), signal.SIGKILL)
            return Wrap()
        return cm
    xc.atomic_write = dying
    lw.write(ds, path)
""")


def test_kill_between_sidecar_and_rows_is_detected_on_read(tmp_path):
    """A real SIGKILL of a writer after the new names are in place and before the new rows
    are: read refuses the pair instead of giving the old rows the new names; a later write
    makes the pair whole and removes the killed writer's temporary file."""
    p = tmp_path / "d.xc"
    old = _ds(["old-a", "old-b", "old-c"], n=7)
    lw.write(old, p)
    proc = subprocess.run([sys.executable, "-c", _KILL_WRITER, str(p), "after-sidecar"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert (tmp_path / "d.xc.labels").read_text().startswith("new-a\n")
    with pytest.raises(DataFormatError, match="another version of d.xc"):
        lw.read(p)
    assert [f.name for f in tmp_path.iterdir() if f.name.endswith(".lwtmp")]  # left by the kill
    # a later save (a new process, as a later command is) cleans up and makes the pair whole
    again = subprocess.run([sys.executable, "-c", _KILL_WRITER.replace("new-", "old-"), str(p),
                            "none"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    back = lw.read(p)
    assert back.labels.names == ("old-a", "old-b", "old-c") and back.n_samples == 40
    assert sorted(f.name for f in tmp_path.iterdir()) == ["d.xc", "d.xc.labels"]


def test_default_names_after_named_ones_remove_the_sidecar(tmp_path):
    p = tmp_path / "d.xc"
    lw.write(_ds(["a", "b", "c"]), p)
    lw.write(_ds(["0", "1", "2"]), p)
    assert not (tmp_path / "d.xc.labels").exists()
    assert lw.read(p).labels.names == ("0", "1", "2")


# ------------------------------------------------------------------ 6. output format from the name
def test_jsonl_gz_is_written_as_gzipped_json_lines(tmp_path):
    ds = Dataset(["one text", "two"], [[0], [0, 1]], ["x", "y"])
    p = tmp_path / "x.jsonl.gz"
    lw.write(ds, p)
    first = gzip.decompress(p.read_bytes()).decode().split("\n")[0]
    assert first.startswith("{") and '"one text"' in first
    back = lw.read(p)
    assert back.X == ds.X and back.labels.names == ("x", "y")
    with pytest.raises(DataFormatError, match="cannot tell the output format"):
        lw.write(ds, tmp_path / "x.csv.gz")
    assert not (tmp_path / "x.csv.gz").exists()


def test_jsonl_sidecars_record_the_rows_they_belong_to(tmp_path):
    """The same pair rule for JSON Lines: .labels (label order) and .meta.json (n_features)."""
    p = tmp_path / "d.jsonl"
    X = sp.csr_matrix(np.array([[0, 1.5, 0, 0], [2, 0, 0, 0]], np.float32))
    lw.write(Dataset(X, [[1], [1]], ["p", "q", "r"]), p)  # unused labels: .labels needed
    assert (tmp_path / "d.jsonl.labels").read_text().split("\n")[4].startswith("sha256 ")
    assert lw.read(p).labels.names == ("p", "q", "r") and lw.read(p).n_features == 4
    rows = p.read_bytes()
    p.write_bytes(rows.replace(b'"q"', b'"r"'))  # other rows behind the sidecars' back
    with pytest.raises(DataFormatError, match="another version of d.jsonl") as e:
        lw.read(p)
    assert e.value.path == str(tmp_path / "d.jsonl.meta.json")
    (tmp_path / "d.jsonl.meta.json").unlink()
    with pytest.raises(DataFormatError, match="another version of d.jsonl") as e:
        lw.read(p)
    assert e.value.path == str(tmp_path / "d.jsonl.labels") and e.value.line == 5
    # files written before the record existed still read
    (tmp_path / "d.jsonl.labels").write_text("p\nq\nr\n")
    assert lw.read(p).labels.names == ("p", "q", "r")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["", "a", "b", " c", "sha256 ", "sha256 " + "0" * 64,
                                           "\r", "é"]),
                          st.text(max_size=6)), max_size=8))
def test_any_sidecar_gives_a_dataset_or_a_data_format_error(tmp_path_factory, lines):
    """Fuzz: whatever a .labels sidecar holds, read_xc returns a Dataset whose label count
    is the header's, or raises DataFormatError naming a file; nothing else escapes."""
    d = tmp_path_factory.mktemp("side")
    p = d / "d.xc"
    p.write_text("2 2 2\n0 0:1\n1 1:1\n")
    (d / "d.xc.labels").write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
    try:
        ds = lw.read(p)
    except DataFormatError as e:
        assert e.path is not None and e.path.startswith(str(d))
    else:
        assert ds.n_labels == 2
