import numpy as np
import pytest
import scipy.sparse as sp

from labelwise import DataFormatError, Dataset, LabelError, LabelSpace
from labelwise.dataset import as_label_matrix


def small():
    X = sp.csr_matrix(np.array([[1, 0, 2], [0, 0, 0], [0, 3, 0], [4, 0, 0]], dtype=np.float64))
    Y = [[0, 2], [], [2], [2, 0]]
    return Dataset(X, Y, ["a", "b", "c"], groups=["g1", "g1", "g2", "g3"], ids=[10, 11, 12, 13])


def test_shapes_and_dtypes():
    ds = small()
    assert (ds.n_samples, ds.n_features, ds.n_labels) == (4, 3, 3)
    assert ds.X.dtype == np.float32 and ds.Y.dtype == np.float32
    assert ds.Y.indices.dtype.itemsize >= 4
    assert ds.x_kind == "sparse"
    assert ds.label_names(3) == ["a", "c"]
    assert len(ds) == 4


def test_stats_hand_computed():
    s = small().stats()
    assert s["n_samples"] == 4 and s["n_labels"] == 3 and s["n_features"] == 3
    assert s["label_cardinality"] == pytest.approx(5 / 4)
    assert s["label_density"] == pytest.approx(5 / 12)
    assert s["rows_without_labels"] == 1
    assert s["labels_without_positives"] == 1  # 'b'
    assert s["distinct_labelsets"] == 3  # {a,c}, {}, {c}
    # label counts: a=2, b=0, c=3 -> median 2, min 0, max 3
    q = s["label_frequency_quantiles"]
    assert q["0"] == 0 and q["0.5"] == 2 and q["1"] == 3
    assert s["n_groups"] == 3
    assert s["feature_density"] == pytest.approx(4 / 12)


def test_subset_keeps_everything():
    ds = small().subset([3, 0])
    assert ds.ids.tolist() == [13, 10]
    assert ds.groups.tolist() == ["g3", "g1"]
    assert ds.X.toarray().tolist() == [[4, 0, 0], [1, 0, 2]]
    assert ds.labels == LabelSpace(["a", "b", "c"])
    mask = np.array([False, True, False, False])
    assert small().subset(mask).n_samples == 1


def test_text_and_dense_inputs():
    ds = Dataset(["one", "two"], np.array([[1, 0], [1, 1]]), ["x", "y"])
    assert ds.x_kind == "text" and ds.n_features == 0
    d2 = Dataset(np.ones((2, 4), dtype=np.float64), [[0], [1]])
    assert d2.X.dtype == np.float32 and d2.labels.names == ("0", "1")


def test_bad_inputs_refused():
    with pytest.raises(DataFormatError, match="X has 3 rows but Y has 2"):
        Dataset(np.zeros((3, 2)), [[0], [1]])
    with pytest.raises(DataFormatError, match="only 0 and 1, found 2"):
        Dataset(np.zeros((1, 2)), np.array([[2, 0]]))
    with pytest.raises(LabelError, match="label id 5 outside 0..2"):
        Dataset(np.zeros((1, 2)), [[5]], ["a", "b", "c"])
    with pytest.raises(LabelError, match="row 1 lists a label more than once"):
        as_label_matrix([[0], [1, 1]], 2)
    with pytest.raises(DataFormatError, match="Y has 2 columns, expected 3"):
        Dataset(np.zeros((1, 2)), np.array([[1, 0]]), ["a", "b", "c"])
    with pytest.raises(DataFormatError, match=r"X\[1\]: expected a text"):
        Dataset(["a", 3], [[0], [0]])
    with pytest.raises(DataFormatError, match="groups must have one entry per row"):
        Dataset(np.zeros((2, 2)), [[0], [0]], groups=[1])
    with pytest.raises(DataFormatError, match="numeric"):
        Dataset(np.array([["a"], ["b"]]), [[0], [0]])


def test_many_labels_keep_identity():
    # Label ids never pass through small integer dtypes: 300 labels keep their columns.
    n_labels = 300
    Y = [[j] for j in range(n_labels)]
    ds = Dataset(np.eye(n_labels, dtype=np.float32), Y, [f"l{j}" for j in range(n_labels)])
    assert ds.Y.indices.dtype.itemsize >= 4
    np.testing.assert_array_equal(ds.Y.indices, np.arange(n_labels))
    assert ds.label_names(299) == ["l299"]


def test_clean_csr_shared_and_unclean_not_mutated():
    clean = sp.csr_matrix(np.array([[1, 0], [0, 1]], dtype=np.float32))
    assert np.shares_memory(as_label_matrix(clean).data, clean.data)
    dup = sp.csr_matrix((np.array([1, 1], np.float32), np.array([1, 0]), np.array([0, 2])), shape=(1, 2))
    M = as_label_matrix(dup)
    assert dup.indices.tolist() == [1, 0]  # the caller's matrix is left as it was
    assert M.indices.tolist() == [0, 1]
    with pytest.raises(DataFormatError):
        as_label_matrix(sp.csr_matrix(np.array([[3.0, 0]])))
