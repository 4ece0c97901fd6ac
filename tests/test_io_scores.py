import json

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise import DataFormatError, LabelSpace
from labelwise.io.scores import read_scores, write_scores

LABELS = LabelSpace(["sports", "politics", "tech"])


def test_jsonl_by_order_and_by_id(tmp_path):
    p = tmp_path / "s.jsonl"
    lines = [
        {"id": "b", "labels": [{"label": "tech", "score": 0.5}]},
        {"id": "a", "labels": [{"label": "sports", "score": 0.9}, {"label": 1, "score": -1.5}]},
    ]
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    S = read_scores(p, LABELS)
    np.testing.assert_allclose(S.toarray(), [[0, 0, 0.5], [0.9, -1.5, 0]])
    S2 = read_scores(p, LABELS, ids=["a", "b"])
    np.testing.assert_allclose(S2.toarray(), [[0.9, -1.5, 0], [0, 0, 0.5]])
    assert S2.nnz == 3  # unlisted labels are not stored
    with pytest.raises(DataFormatError, match="no scores for item id 'c'"):
        read_scores(p, LABELS, ids=["a", "c"])
    with pytest.raises(DataFormatError, match="has scores for 2 items, expected 3"):
        read_scores(p, LABELS, n_rows=3)


def test_xc_text_with_header(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("3 3\n2:0.25 0:1e-3\n\n1:7\n")
    S = read_scores(p, LABELS)
    np.testing.assert_allclose(S.toarray(), [[1e-3, 0, 0.25], [0, 0, 0], [0, 7, 0]], rtol=1e-6)
    bad = tmp_path / "h.txt"
    bad.write_text("1 4\n0:1\n")
    with pytest.raises(DataFormatError, match="h.txt:1: header says 4 labels"):
        read_scores(bad, LABELS)


@pytest.mark.parametrize(
    "content, message",
    [
        ("0:1 0:2\n", "s.txt:1: label id 0 listed twice"),
        ("0:1\n5:1\n", "s.txt:2: label id 5 >= n_labels 3"),
        ("0:nan\n", "s.txt:1: score: score nan is not a finite number"),
        ("0:x\n", "s.txt:1: score 'x' is not a number"),
        ("a:1\n", "s.txt:1: label id 'a' is not a non-negative integer"),
        ("0-1\n", "s.txt:1: expected label_id:score"),
    ],
)
def test_xc_errors_name_the_line(tmp_path, content, message):
    p = tmp_path / "s.txt"
    p.write_text(content)
    with pytest.raises(DataFormatError) as e:
        read_scores(p, LABELS)
    assert str(e.value).endswith(message) or message in str(e.value)


@pytest.mark.parametrize(
    "line, message",
    [
        ("{nope", "s.jsonl:2: not valid JSON"),
        ('{"labels": 3}', 's.jsonl:2: labels: expected an object with a "labels" list'),
        ('{"labels": [{"label": "cooking", "score": 1}]}', "s.jsonl:2: label: unknown label 'cooking'"),
        ('{"labels": [{"label": "tech"}]}', "s.jsonl:2: labels: expected"),
        ('{"labels": [{"label": "tech", "score": "high"}]}', "s.jsonl:2: score: score 'high' is not a finite number"),
        ("", "s.jsonl:2: empty line"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, line, message):
    p = tmp_path / "s.jsonl"
    p.write_text('{"labels": []}\n' + line + "\n")
    with pytest.raises(DataFormatError) as e:
        read_scores(p, LABELS)
    assert message in str(e.value)


@pytest.mark.parametrize("suffix", [".jsonl", ".txt"])
def test_write_read_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(0)
    S = sp.random(20, 3, density=0.5, format="csr", random_state=1, dtype=np.float32)
    S.data = rng.normal(size=S.nnz).astype(np.float32)
    p = tmp_path / f"out{suffix}"
    ids = [f"d{i}" for i in range(20)]
    write_scores(p, S, LABELS, ids=ids)
    back = read_scores(p, LABELS, ids=ids)
    np.testing.assert_array_equal(back.toarray(), S.toarray())
    np.testing.assert_array_equal(np.diff(back.indptr), np.diff(S.indptr))
