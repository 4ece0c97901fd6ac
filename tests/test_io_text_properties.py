"""Property tests: random and corrupted fastText / CSV / TSV / JSONL input gives a Dataset or a
LabelwiseError (a DataFormatError names its line), never another exception and never a hang."""

from __future__ import annotations

import json
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelwise.dataset import Dataset
from labelwise.errors import DataFormatError, LabelwiseError
from labelwise.io.fasttext import read_fasttext
from labelwise.io.table import read_table, write_jsonl

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Characters that matter to the parsers, mixed with ordinary ones.
SPECIAL = st.sampled_from(
    list(',\t"\n\r |[]{}:_\\\x00\x0b\xa0\ufeffé') + ["__label__", "\r\n", '"", ']
)
TEXT = st.lists(st.one_of(SPECIAL, st.text(max_size=4)), max_size=40).map("".join)
RAW = st.one_of(TEXT.map(lambda s: s.encode("utf-8")), st.binary(max_size=200))


def mutate(data: bytes, draw) -> bytes:
    """Flip, drop or insert bytes somewhere in a valid file."""
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        if not b:
            b.extend(draw(st.binary(min_size=1, max_size=4)))
            continue
        i = draw(st.integers(0, len(b) - 1))
        op = draw(st.sampled_from(["flip", "drop", "insert", "truncate"]))
        if op == "flip":
            b[i] = draw(st.integers(0, 255))
        elif op == "drop":
            del b[i : i + draw(st.integers(1, 8))]
        elif op == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=6))
        else:
            del b[i:]
    return bytes(b)


def check(read, path) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # blank-line counts
            d = read(path)
    except DataFormatError as e:
        assert e.line is not None, f"no line number: {e}"
        assert f":{e.line}" in str(e)
    except LabelwiseError:
        pass
    else:
        assert isinstance(d, Dataset)
        assert d.Y.shape[0] == (len(d.X) if isinstance(d.X, list) else d.X.shape[0])


@pytest.fixture
def target(tmp_path):
    return tmp_path / "data"


VALID_FT = b'__label__a __label__b text one\n__label__c  two, "quoted"\nno labels\n'
VALID_CSV = b'text,labels\n"a, b",x|y\n"multi\nline",y\nplain,\n'
VALID_TSV = b'text\tlabels\n"q"\tx|y\nsay "hi\ty\n'
VALID_JSONL = (
    json.dumps({"text": "a", "labels": ["x", "y"], "id": 1})
    + "\n"
    + json.dumps({"text": "b\nc", "labels": [], "id": 2})
    + "\n"
).encode()


@SETTINGS
@given(data=RAW, prefix=st.sampled_from(["__label__", "#"]))
def test_fasttext_random(target, data, prefix):
    target.write_bytes(data)
    check(lambda p: read_fasttext(p, label_prefix=prefix), target)


@SETTINGS
@given(data=st.data())
def test_fasttext_mutated(target, data):
    target.write_bytes(mutate(VALID_FT, data.draw))
    labels = data.draw(st.sampled_from([None, ["a", "b", "c"]]))
    check(lambda p: read_fasttext(p, labels=labels), target)


TABLE_OPTIONS = st.fixed_dictionaries(
    {
        "header": st.booleans(),
        "quoting": st.sampled_from(["minimal", "none"]),
        "label_sep": st.sampled_from([None, ",", " ", "|"]),
    }
)


def table_reader(fmt, opts):
    def read(p):
        kw = dict(opts)
        if not kw["header"]:
            kw.update(text_column=0, labels_column=1)
        return read_table(p, format=fmt, **kw)

    return read


@SETTINGS
@given(data=RAW, fmt=st.sampled_from(["csv", "tsv"]), opts=TABLE_OPTIONS)
def test_csv_tsv_random(target, data, fmt, opts):
    target.write_bytes(data)
    check(table_reader(fmt, opts), target)


@SETTINGS
@given(data=st.data(), fmt=st.sampled_from(["csv", "tsv"]), opts=TABLE_OPTIONS)
def test_csv_tsv_mutated(target, data, fmt, opts):
    target.write_bytes(mutate(VALID_CSV if fmt == "csv" else VALID_TSV, data.draw))
    check(table_reader(fmt, {**opts, "header": True}), target)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["text", "labels", "id", "group", "features", "0", "x"]),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)


@SETTINGS
@given(rows=st.lists(JSON, max_size=6), label_sep=st.sampled_from([None, ","]))
def test_jsonl_random_values(target, rows, label_sep):
    target.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    check(lambda p: read_table(p, format="jsonl", label_sep=label_sep), target)


@SETTINGS
@given(data=st.data())
def test_jsonl_mutated_and_random(target, data):
    raw = data.draw(st.one_of(RAW, st.just(VALID_JSONL).map(lambda b: mutate(b, data.draw))))
    target.write_bytes(raw)
    check(lambda p: read_table(p, format="jsonl"), target)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",))), max_size=5),
    label_rows=st.lists(
        st.lists(st.sampled_from(["a", "b c", "ü", "[x]"]), unique=True), max_size=5
    ),
)
def test_jsonl_write_read_roundtrip(tmp_path, texts, label_rows):
    n = min(len(texts), len(label_rows))
    names = ["a", "b c", "ü", "[x]"]
    d = Dataset(texts[:n], [[names.index(x) for x in r] for r in label_rows[:n]], names)
    p = tmp_path / "r.jsonl"
    write_jsonl(d, p)
    back = read_table(p, format="jsonl")
    assert back.X == d.X and list(back.labels) == names and (back.Y != d.Y).nnz == 0
