"""Property tests for the XC reader/writer: random valid datasets round-trip exactly; random
corruptions of a valid file raise only DataFormatError carrying a line number."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelwise.dataset import Dataset
from labelwise.errors import DataFormatError
from labelwise.io.xc import read_libsvm, read_xc, write_xc

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def datasets(draw):
    n = draw(st.integers(0, 12))
    n_features = draw(st.integers(0, 9))
    n_labels = draw(st.integers(0, 6))
    rows_x, rows_y = [], []
    for _ in range(n):
        feats = draw(st.lists(st.integers(0, n_features - 1), unique=True)) if n_features else []
        rows_x.append([(j, draw(finite32)) for j in feats])
        rows_y.append(draw(st.lists(st.integers(0, n_labels - 1), unique=True)) if n_labels else [])
    indptr = np.cumsum([0] + [len(r) for r in rows_x])
    ind = np.array([j for r in rows_x for j, _ in r], dtype=np.int32)
    val = np.array([v for r in rows_x for _, v in r], dtype=np.float32)
    X = sp.csr_matrix((val, ind, indptr), shape=(n, n_features))
    X.sort_indices()
    names = None
    if n_labels and draw(st.booleans()):
        names = draw(
            st.lists(
                st.text(st.characters(exclude_characters="\n\r", exclude_categories=["Cs"]), min_size=1),
                min_size=n_labels, max_size=n_labels, unique=True,
            )
        )
    return Dataset(X, rows_y if n else sp.csr_matrix((0, n_labels)), names)


def _same(a, b):
    assert a.shape == b.shape
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data.view(np.int32), b.data.view(np.int32))


@SETTINGS
@given(ds=datasets(), base=st.sampled_from([0, 1]), gz=st.booleans())
def test_random_datasets_round_trip(tmp_path_factory, ds, base, gz):
    path = tmp_path_factory.mktemp("rt") / ("d.xc.gz" if gz else "d.xc")
    write_xc(ds, path, index_base=base)
    back = read_xc(path, index_base=base)
    _same(ds.X, back.X)
    _same(ds.Y, back.Y)
    assert back.labels.names == ds.labels.names


VALID = (
    "6 12 5\n"
    "0,2 0:1.5 4:-2 11:3e-5\n"
    " 1:0.25 7:.5\n"
    "1\n"
    "\n"
    "3,4,1 2:1e10 3:-0.0001 10:7\n"
    "2:4.25 5:-1E-3\n"
)


@st.composite
def corruptions(draw):
    data = bytearray(VALID.encode())
    lo = draw(st.sampled_from([0, VALID.index("\n") + 1]))  # half the time spare the header
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "random"]))
        if kind == "random":
            return draw(st.binary(max_size=200))
        if len(data) <= lo:
            break
        pos = draw(st.integers(lo, len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 3))]
        elif kind == "insert":
            chars = draw(st.binary(min_size=1, max_size=3) | st.sampled_from(
                [b":", b",", b" ", b"\n", b"-", b".", b"e", b"9", b"nan", b"\t", b"\r"]
            ))
            data[pos:pos] = chars
        else:
            del data[pos:]
    return bytes(data)


@SETTINGS
@given(blob=corruptions(), fmt=st.sampled_from(["xc", "libsvm"]),
       base=st.sampled_from([None, 0, 1]))
def test_corruptions_raise_only_located_data_format_errors(tmp_path_factory, blob, fmt, base):
    path = tmp_path_factory.mktemp("bad") / "c.txt"
    path.write_bytes(blob)
    reader = read_xc if fmt == "xc" else read_libsvm
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = reader(path, index_base=base)
        except DataFormatError as e:
            assert e.line is not None and e.line >= 1, str(e)
            assert e.path == str(path)
            assert str(e).startswith(f"{path}:{e.line}: ")
            return
    # a corruption may leave a valid file: then the result is a well-formed Dataset
    assert all(issubclass(w.category, UserWarning) and str(path) in str(w.message) for w in caught)
    assert ds.X.dtype == np.float32 and np.isfinite(ds.X.data).all()
    assert ds.X.has_sorted_indices and ds.Y.has_sorted_indices
    assert ds.Y.nnz == 0 or set(np.unique(ds.Y.data)) == {1.0}
    assert ds.meta["index_base"] in (0, 1)
