import json

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise import LabelError, LabelSpace, UnknownLabelError


def test_ids_names_round_trip():
    ls = LabelSpace(["sports", "politics", "tech"])
    assert len(ls) == 3
    assert ls.index("tech") == 2
    assert ls.name(1) == "politics"
    assert ls[0] == "sports"
    assert ls.names_of([2, 0]) == ["tech", "sports"]
    ids = ls.indices(["tech", "sports"])
    assert ids.dtype == np.int64 and ids.tolist() == [2, 0]
    assert "tech" in ls and "cooking" not in ls


def test_duplicate_and_empty_names_refused():
    with pytest.raises(LabelError, match="duplicate label name 'a' \\(ids 0 and 2\\)"):
        LabelSpace(["a", "b", "a"])
    with pytest.raises(LabelError, match="empty"):
        LabelSpace(["a", ""])
    with pytest.raises(LabelError, match="must be a string"):
        LabelSpace(["a", 3])


def test_unknown_names_and_ids():
    ls = LabelSpace(["a", "b"])
    with pytest.raises(UnknownLabelError, match="unknown label 'c'"):
        ls.index("c")
    with pytest.raises(UnknownLabelError, match="label id 2 is not in 0..1"):
        ls.name(2)
    with pytest.raises(UnknownLabelError):
        ls.name(-1)
    with pytest.raises(UnknownLabelError):
        ls.name(True)


def test_hierarchy_and_closure():
    ls = LabelSpace(
        ["root", "a", "b", "a1", "ab"],
        parents={"a": "root", "b": "root", "a1": ["a"], "ab": ["a", "b"]},
    )
    assert ls.is_hierarchical
    assert ls.parents("ab") == (1, 2)
    assert ls.ancestors("ab") == {0, 1, 2}
    assert ls.ancestors("root") == frozenset()
    assert ls.roots() == [0]
    Y = sp.csr_matrix(np.array([[0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], np.float32))
    Z = ls.close_under_ancestors(Y).toarray()
    np.testing.assert_array_equal(Z, [[1, 1, 0, 1, 0], [1, 1, 1, 0, 1], [0, 0, 0, 0, 0]])
    assert Z.dtype == np.float32


def test_cycles_refused_with_path():
    with pytest.raises(LabelError, match="cycle: a -> b -> c -> a|cycle: b -> c -> a -> b|cycle: c -> a -> b -> c"):
        LabelSpace(["a", "b", "c"], parents={"a": "b", "b": "c", "c": "a"})
    with pytest.raises(LabelError, match="its own parent"):
        LabelSpace(["a"], parents={"a": "a"})
    with pytest.raises(UnknownLabelError, match="parent 'z' of label 'a'"):
        LabelSpace(["a"], parents={"a": "z"})
    with pytest.raises(UnknownLabelError, match="unknown label 'q'"):
        LabelSpace(["a"], parents={"q": "a"})


def test_long_chain_no_recursion_limit():
    n = 5000
    names = [f"n{i}" for i in range(n)]
    ls = LabelSpace(names, parents={f"n{i}": f"n{i - 1}" for i in range(1, n)})
    assert len(ls.ancestors(n - 1)) == n - 1


def test_json_round_trip_with_descriptions_and_parents():
    ls = LabelSpace(
        ["joy", "anger", "émotion"],
        descriptions={"joy": "feeling of happiness"},
        parents={"joy": "émotion", "anger": "émotion"},
    )
    text = ls.to_json()
    assert json.loads(text)["format"] == "labelwise.labelspace/1"
    back = LabelSpace.from_json(text)
    assert back == ls
    assert back.description("joy") == "feeling of happiness"
    assert back.description(1) is None
    plain = LabelSpace(["x", "y"])
    assert LabelSpace.from_json(plain.to_json()) == plain
    assert LabelSpace.from_json(plain.to_json()) != ls


def test_bad_json_and_descriptions():
    with pytest.raises(LabelError, match="malformed"):
        LabelSpace.from_json("{nope")
    with pytest.raises(LabelError, match="'names'"):
        LabelSpace.from_dict({"labels": []})
    with pytest.raises(LabelError, match="unsupported label space format"):
        LabelSpace.from_dict({"format": "other/9", "names": ["a"]})
    with pytest.raises(LabelError, match="2 descriptions given for 3 labels"):
        LabelSpace(["a", "b", "c"], descriptions=["x", "y"])
    with pytest.raises(UnknownLabelError):
        LabelSpace(["a"], descriptions={"b": "?"})
