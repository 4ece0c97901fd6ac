"""Property tests for the ARFF reader.

- Generated valid files (dense, sparse or mixed rows, quoted names, comments, nominal
  features, missing values) read back to exactly the X and Y they were written from.
- Corrupted files (byte flips, deletions, insertions, truncation) and random text either
  read or raise a LabelwiseError whose message names ``file:line`` (or, for whole-file
  problems, says what is missing); never another exception, never a hang.
"""

from __future__ import annotations

import re
import time

import numpy as np
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelwise.errors import DataFormatError, LabelwiseError
from labelwise.io.arff import read_arff

FILE_LEVEL = (
    "without an @data line",
    "cannot tell which attributes are labels",
    "does not fit",
)
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def arff_files(draw):
    """(text, X expected, Y expected, n_labels) for a small valid MEKA-style file."""
    n_num = draw(st.integers(0, 4))
    cats = draw(st.lists(st.sampled_from(["a", "b c", "d'e", "f,g", "h"]), unique=True, max_size=3))
    n_lab = draw(st.integers(1, 3))
    n_rows = draw(st.integers(0, 8))
    lines = ["% generated", f"@RELATION 'gen: -C {n_lab}'", ""]
    kinds = []
    for j in range(n_lab):
        lines.append(f"@attribute 'lab\\'{j}' {{0,1}}")
        kinds.append("label")
    for j in range(n_num):
        lines.append(
            f'@ATTRIBUTE "num {j}" {draw(st.sampled_from(["numeric", "REAL", "Integer"]))}'
        )
        kinds.append("num")
    if cats:
        quoted = ",".join("'" + c.replace("'", "\\'") + "'" for c in cats)
        lines.append(f"@attribute nom {{{quoted}}}")
        kinds.append("nom")
    lines.append("@data")
    n_feat = n_num + (1 if cats else 0)
    X = np.zeros((n_rows, n_feat), dtype=np.float32)
    Y = np.zeros((n_rows, n_lab), dtype=np.float32)
    any_sparse = False
    for r in range(n_rows):
        vals = []
        for j, kind in enumerate(kinds):
            if kind == "label":
                v = draw(st.integers(0, 1))
                Y[r, j] = v
                vals.append((str(v), float(v)))
            elif kind == "num":
                if draw(st.integers(0, 9)) == 0:
                    X[r, j - n_lab] = np.nan
                    vals.append(("?", np.nan))
                else:
                    x = draw(st.integers(-40, 40)) / 4
                    X[r, j - n_lab] = x
                    vals.append((repr(x), x))
            else:
                k = draw(st.integers(0, len(cats) - 1))
                X[r, n_feat - 1] = k
                vals.append(("'" + cats[k].replace("'", "\\'") + "'", float(k)))
        if draw(st.booleans()):
            any_sparse = True
            body = ",".join(f"{j} {t}" for j, (t, x) in enumerate(vals) if x != 0)
            lines.append("{" + body + "}")
        else:
            sep = draw(st.sampled_from([",", ", ", " ,"]))
            lines.append(sep.join(t for t, _ in vals))
        if draw(st.integers(0, 4)) == 0:
            lines.append(draw(st.sampled_from(["", "% comment", "   "])))
    return "\n".join(lines) + "\n", X, Y, any_sparse


@SETTINGS
@given(arff_files())
def test_generated_files_read_back_exactly(tmp_path, case):
    text, X, Y, any_sparse = case
    p = tmp_path / "gen.arff"
    p.write_text(text, encoding="utf-8")
    ds = read_arff(p)
    assert ds.x_kind == ("sparse" if any_sparse else "dense")
    got = ds.X.toarray() if sp.issparse(ds.X) else ds.X
    np.testing.assert_array_equal(got, X)
    np.testing.assert_array_equal(ds.Y.toarray(), Y)
    assert ds.meta["missing_values"] == int(np.isnan(X).sum())
    assert ds.labels.names[0] == "lab'0"


def check_outcome(path, reader=read_arff):
    t0 = time.perf_counter()
    try:
        reader(path)
    except LabelwiseError as e:
        msg = str(e)
        located = re.match(re.escape(str(path)) + r":\d+: ", msg) is not None
        assert located or any(k in msg for k in FILE_LEVEL), msg
        if isinstance(e, DataFormatError) and e.line is not None:
            assert e.line >= 1
    assert time.perf_counter() - t0 < 10


NASTY = [
    b",",
    b"{",
    b"}",
    b"'",
    b'"',
    b"%",
    b"\n",
    b"?",
    b"@",
    b"\\",
    b" ",
    b"0",
    b"1",
    b"9",
    b"e",
    b"-",
    b".",
    b"/",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"@data\n",
    b"{0 1}",
    b"nan",
    b"1e99",
]


@st.composite
def corrupted(draw):
    text, *_ = draw(arff_files())
    data = bytearray(text.encode("utf-8"))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 8))]
        elif op == "insert":
            data[i:i] = draw(st.sampled_from(NASTY))
        else:
            del data[i:]
    return bytes(data)


@SETTINGS
@given(corrupted())
def test_corrupted_files_fail_cleanly(tmp_path, data):
    p = tmp_path / "bad.arff"
    p.write_bytes(data)
    check_outcome(p)


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=400),
        st.text(max_size=400),
        st.lists(
            st.sampled_from(
                [
                    "@relation r",
                    "@relation 'r: -C 1'",
                    "@attribute a numeric",
                    "@attribute b {0,1}",
                    "@attribute c hierarchical x,x/y",
                    "@attribute d hierarchical root/p,p/q",
                    "@data",
                    "1,0",
                    "{0 1}",
                    "{1 1,0 2}",
                    "x/y",
                    "1,x/y@q",
                    "?,?",
                    "'",
                    "%",
                    "",
                ]
            ),
            max_size=12,
        ).map(lambda ls: "\n".join(ls).encode()),
    )
)
def test_random_text_fails_cleanly(tmp_path, data):
    p = tmp_path / "rand.arff"
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    check_outcome(p)


def outcome(path, *, slow):
    """The parse result (or error message) with the fast paths on or off."""
    from labelwise.io import arff_rows

    saved = arff_rows.RowParser._dense_fast, arff_rows.RowParser._sparse_fast
    if slow:
        arff_rows.RowParser._dense_fast = lambda self, rows: False
        arff_rows.RowParser._sparse_fast = lambda self, rows: False
    try:
        ds = read_arff(path)
    except LabelwiseError as e:
        return ("error", str(e))
    finally:
        arff_rows.RowParser._dense_fast, arff_rows.RowParser._sparse_fast = saved
    X = ds.X.toarray() if sp.issparse(ds.X) else ds.X
    return ("ok", ds.x_kind, X.tobytes(), ds.Y.toarray().tobytes(), ds.labels, ds.meta)


@SETTINGS
@given(st.one_of(corrupted(), arff_files().map(lambda c: c[0].encode())))
def test_fast_path_equals_line_by_line_path(tmp_path, data):
    p = tmp_path / "same.arff"
    p.write_bytes(data)
    assert outcome(p, slow=False) == outcome(p, slow=True)
