"""fastText reader: hand-written files for each rule and error, and cooking.stackexchange."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from conftest import shared_dataset_dir
from labelwise.errors import DataFormatError, LabelError
from labelwise.io import detect_format, read
from labelwise.io.fasttext import read_fasttext


def write(tmp_path, content: str | bytes, name: str = "data.txt"):
    p = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    p.write_bytes(content)
    return p


def rows(d):
    return [(d.X[i], d.label_names(i)) for i in range(d.n_samples)]


def test_labels_first_text_kept_as_written(tmp_path):
    p = write(
        tmp_path,
        "__label__b __label__a  How much  starch?\n__label__c\tTabs\there \n__label__a x\n",
    )
    d = read_fasttext(p)
    assert list(d.labels) == ["b", "a", "c"]  # first-seen order
    assert rows(d) == [("How much  starch?", ["b", "a"]), ("Tabs\there", ["c"]), ("x", ["a"])]
    assert d.Y.dtype == np.float32 and d.Y.indices.dtype.itemsize >= 4
    assert d.x_kind == "text" and d.meta["format"] == "fasttext"


def test_labels_anywhere_removed_with_following_space(tmp_path):
    p = write(
        tmp_path, "hello __label__a world __label__b\n__label__c  tail  spaces   __label__d end\n"
    )
    d = read_fasttext(p)
    assert rows(d) == [("hello world", ["a", "b"]), ("tail  spaces   end", ["c", "d"])]


def test_no_labels_and_no_text_are_rows(tmp_path):
    p = write(tmp_path, "just a text\n__label__a\n__label__b   \n")
    d = read_fasttext(p)
    assert rows(d) == [("just a text", []), ("", ["a"]), ("", ["b"])]
    assert d.stats()["rows_without_labels"] == 1


def test_given_labels_fix_order_and_refuse_unknown(tmp_path):
    p = write(tmp_path, "__label__a one\n__label__b two\n")
    d = read_fasttext(p, labels=["b", "z", "a"])
    assert list(d.labels) == ["b", "z", "a"]
    assert d.Y.toarray().tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(DataFormatError) as e:
        read_fasttext(p, labels=["a"])
    assert e.value.line == 2 and e.value.path == str(p)
    assert str(e.value).startswith(f"{p}:2: labels: label 'b'")


def test_repeated_and_empty_labels_are_errors(tmp_path):
    with pytest.raises(DataFormatError, match=r":2: labels: label 'a' listed more than once"):
        read_fasttext(write(tmp_path, "__label__a x\n__label__a __label__a y\n"))
    with pytest.raises(DataFormatError, match=r":1: labels: .*empty name"):
        read_fasttext(write(tmp_path, "__label__ x\n"))


def test_invalid_utf8_names_the_line(tmp_path):
    p = write(tmp_path, b"__label__a ok\n__label__b caf\xe9\n")
    with pytest.raises(DataFormatError, match=r"data.txt:2: not valid UTF-8") as e:
        read_fasttext(p)
    assert e.value.line == 2


def test_blank_lines_skipped_with_a_count(tmp_path):
    p = write(tmp_path, "__label__a x\n\n   \n__label__b y\n")
    with pytest.warns(UserWarning, match="skipped 2 blank line"):
        d = read_fasttext(p)
    assert rows(d) == [("x", ["a"]), ("y", ["b"])]


def test_crlf_bom_gzip_and_custom_prefix(tmp_path):
    p = write(tmp_path, "\ufeff#a #b first\r\n#c second\r\n")
    d = read_fasttext(p, label_prefix="#")
    assert rows(d) == [("first", ["a", "b"]), ("second", ["c"])]
    gz = tmp_path / "data.txt.gz"
    gz.write_bytes(gzip.compress(b"__label__x hi\n"))
    assert rows(read_fasttext(gz)) == [("hi", ["x"])]
    gz.write_bytes(b"not gzip at all")
    with pytest.raises(DataFormatError, match="cannot read"):
        read_fasttext(gz)


def test_bad_options_and_missing_file(tmp_path):
    p = write(tmp_path, "__label__a x\n")
    for bad in ("", " __l"):
        with pytest.raises(DataFormatError, match="label_prefix"):
            read_fasttext(p, label_prefix=bad)
    with pytest.raises(DataFormatError, match="cannot open"):
        read_fasttext(tmp_path / "absent.txt")
    with pytest.raises(LabelError):
        read_fasttext(p, labels=["a", "a"])


def test_empty_file_gives_empty_dataset(tmp_path):
    d = read_fasttext(write(tmp_path, ""))
    assert d.n_samples == 0 and d.n_labels == 0 and d.X == []


def test_dispatch_through_read(tmp_path):
    p = write(tmp_path, "__label__a hello\n", name="data.ft")
    assert detect_format(p)[0] == "fasttext"
    q = write(tmp_path, "__label__a hello\n", name="data.unknown")
    assert detect_format(q)[0] == "fasttext"
    assert rows(read(q)) == [("hello", ["a"])]


@pytest.mark.datasets
def test_cooking_stackexchange():
    path = shared_dataset_dir("cooking-stackexchange") / "extracted" / "cooking.stackexchange.txt"
    d = read_fasttext(path)
    assert d.n_samples == 15404
    assert d.n_labels == 736
    assert abs(d.stats()["label_cardinality"] - 2.31) < 0.005
    assert int(np.count_nonzero(np.diff(d.Y.indptr) > 1)) == 11626
    assert d.X[0] == "How much does potato starch affect a cheese sauce recipe?"
    assert d.label_names(0) == ["sauce", "cheese"]
    assert not any("__label__" in t for t in d.X)
    # A slow, obviously-correct re-parse of every line agrees.
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            toks = line.split()
            labels = [t[9:] for t in toks if t.startswith("__label__")]
            assert sorted(d.label_names(i)) == sorted(labels)
            assert d.X[i].split() == [t for t in toks if not t.startswith("__label__")]
