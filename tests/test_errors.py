import pytest

from labelwise import errors


def test_tree_and_messages():
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.LabelwiseError)
    e = errors.DataFormatError("label id 4000 >= n_labels 3993", path="train.txt", line=1832)
    assert str(e) == "train.txt:1832: label id 4000 >= n_labels 3993"
    assert (e.path, e.line, e.reason) == ("train.txt", 1832, "label id 4000 >= n_labels 3993")
    e2 = errors.DataFormatError("expected a number", path="a.csv", line=3, field="score")
    assert str(e2) == "a.csv:3: score: expected a number"
    assert str(errors.DataFormatError("bad", line=7)) == "line 7: bad"
    assert isinstance(e, ValueError)
    m = errors.MissingDependencyError("pyarrow", "tables", "Parquet files")
    assert str(m) == "pyarrow is needed for Parquet files but is not installed: pip install 'labelwise[tables]'"
    assert isinstance(m, ImportError)
    assert str(errors.UnknownLabelError("unknown label 'x'")) == "unknown label 'x'"


def test_one_clause_catches_all():
    with pytest.raises(errors.LabelwiseError):
        raise errors.ResourceLimitError("needs 40 GiB, limit 19 GiB")
