"""Partitioned (federated) training on Dask (labelwise.federated): one partition gives the
centralised model bit for bit (OneVsRest for any number of rounds, LabelTree), the rounds
lower the centralised objective towards its optimum, and no task carries a row, in either
direction, across rounds. One LocalCluster of 2 single-threaded worker processes serves the
module."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

distributed = pytest.importorskip("distributed")

from dask_support import arrays_in as _arrays_in  # noqa: E402
from dask_support import local_cluster, tiny_data  # noqa: E402
from labelwise.models import LabelTree, OneVsRest  # noqa: E402

pytestmark = pytest.mark.timeout(300)



@pytest.fixture(scope="module")
def cluster():
    with local_cluster(2) as pair:
        yield pair


def _names(L: int) -> list[str]:
    return [f"l{j}" for j in range(L)]


def _same_state(a, b, X) -> None:
    sa, _ = a._get_state()
    sb, _ = b._get_state()
    assert sorted(sa) == sorted(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and np.array_equal(sa[key], sb[key]), key
    Sa, Sb = a.decision_function(X, k=5), b.decision_function(X, k=5)
    assert np.array_equal(Sa.indptr, Sb.indptr) and np.array_equal(Sa.indices, Sb.indices)
    assert np.array_equal(Sa.data, Sb.data)
    assert list(a.labels_.names) == list(b.labels_.names)


@pytest.mark.parametrize("kind,rounds", [("ovr", 1), ("ovr", 3), ("tree", 1), ("tree", 3)])
def test_one_partition_gives_exactly_the_centralised_model(cluster, kind, rounds):
    from labelwise.federated import fit_partitioned, scatter_partitions

    _, client = cluster
    X, Y = tiny_data(4)
    names = _names(Y.shape[1])
    if kind == "ovr":
        kw = dict(n_threads=1, random_state=2, memory_limit=None, max_iter=50)
        make = OneVsRest
    else:  # small leaves and branching: a real tree (inner nodes, several levels), 2 trees
        kw = dict(n_trees=2, branching=3, max_leaf_size=4, n_threads=2, random_state=5,
                  memory_limit=None)
        make = LabelTree
    with pytest.warns(UserWarning, match="no positive"):
        central = make(**kw).fit(X, Y, labels=names)
    parts = scatter_partitions(client, [(X, Y, names)])
    with pytest.warns(UserWarning, match="no positive"):
        fed = fit_partitioned(make(**kw), parts, client=client, rounds=rounds)
    _same_state(central, fed, X)


def test_combination_by_hand():
    from labelwise.federated import combination_weights, combine_weights

    # label 0: partition 0 has 1 pos / 3 neg (c = 1.5), partition 1 has 2 / 2 (c = 2)
    # label 1: no partition sees a positive: averaged by rows (4 and 4)
    r0 = {"coef": sp.csr_matrix(np.array([[1.0, 2.0]], np.float32)),
          "intercept": np.array([1.0, 0.0], np.float32), "n_iter": np.array([3, 1], np.int32),
          "positives": np.array([1, 0]), "rows": 4}
    r1 = {"coef": sp.csr_matrix(np.array([[-1.0, 4.0]], np.float32)),
          "intercept": np.array([0.0, 2.0], np.float32), "n_iter": np.array([2, 5], np.int32),
          "positives": np.array([2, 0]), "rows": 4}
    W, b, it, pos = combine_weights([r0, r1])
    a0 = 1.5 / 3.5
    assert W.toarray() == pytest.approx(np.array([[a0 - (1 - a0), 3.0]]), abs=1e-6)
    assert b == pytest.approx([a0, 1.0], abs=1e-6)
    assert it.tolist() == [3, 5] and pos.tolist() == [3, 0]
    # rows per partition and classifier (a tree node): a node no partition reaches is averaged
    a = combination_weights(np.array([[1, 0, 0], [2, 0, 0]]), np.array([[4, 3, 0], [4, 1, 0]]))
    assert a[:, 0] == pytest.approx([a0, 1 - a0])
    assert a[:, 1] == pytest.approx([0.75, 0.25]) and a[:, 2] == pytest.approx([0.5, 0.5])
    assert combination_weights(np.array([[3, 0]]), np.array([5])).tolist() == [[1.0, 1.0]]


@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
def test_warm_start_solves_the_proximal_problem(loss):
    """fit_linear_from from a centre c reaches argmin 0.5 |w - c|^2 + C sum loss (checked
    against scipy's L-BFGS on the primal); with c = 0 it is fit_linear, bit for bit."""
    from scipy.optimize import minimize

    from labelwise.models.ovr import fit_linear, fit_linear_from

    X, Y = tiny_data(8, n=80, d=10, L=3)
    Y = Y[:, :-1]
    rng = np.random.default_rng(1)
    centre = sp.csr_matrix(rng.standard_normal((10, 2)))
    cb = rng.standard_normal(2)
    C = np.array([0.7, 2.0])
    W, b, _ = fit_linear_from(X, Y, centre, cb, C, loss=loss, tol=1e-10, max_iter=100000,
                              prune_threshold=0.0, n_threads=2)
    Xd = np.c_[X.toarray().astype(np.float64), np.ones(X.shape[0])]
    for j in range(2):
        y = 2.0 * Y[:, j].toarray().ravel() - 1.0
        c = np.r_[centre[:, j].toarray().ravel(), cb[j]]

        def f(w, y=y, c=c, Cj=C[j]):
            m = y * (Xd @ w)
            if loss == "logistic":
                return 0.5 * (w - c) @ (w - c) + Cj * np.logaddexp(0, -m).sum(), \
                    (w - c) - Cj * Xd.T @ (y * np.exp(-np.logaddexp(0, m)))
            h = np.maximum(0, 1 - m)
            return 0.5 * (w - c) @ (w - c) + Cj * (h ** 2).sum(), \
                (w - c) - 2 * Cj * Xd.T @ (y * h)

        ref = minimize(f, c, jac=True, method="L-BFGS-B", options={"gtol": 1e-10}).x
        got = np.r_[W[:, j].toarray().ravel(), b[j]]
        assert got == pytest.approx(ref, abs=2e-4)
    plain = fit_linear(X, Y, loss=loss, C=0.7, seed=4, max_iter=50)
    zero = fit_linear_from(X, Y, sp.csr_matrix((10, 2)), np.zeros(2), np.full(2, 0.7),
                           loss=loss, seed=4, max_iter=50)
    assert all(np.array_equal(p.toarray() if sp.issparse(p) else p,
                              z.toarray() if sp.issparse(z) else z) for p, z in zip(plain, zero))


def _objective_reference(X, Y, W, wb, C, bias=1.0):
    """Per label, 0.5 |w|^2 + C sum_i max(0, 1 - y_i (x_i.w + bias wb))^2, by loops over rows."""
    from labelwise.models._tree_build import l2_normalize_rows

    Xn = l2_normalize_rows(X).toarray().astype(np.float64)
    Yd = Y.toarray()
    W = W.toarray() if sp.issparse(W) else W
    out = []
    for j in range(Yd.shape[1]):
        total = 0.5 * (float(W[:, j] @ W[:, j]) + wb[j] ** 2)
        for i in range(Xn.shape[0]):
            y = 1.0 if Yd[i, j] else -1.0
            total += C * max(0.0, 1.0 - y * (float(Xn[i] @ W[:, j]) + bias * wb[j])) ** 2
        out.append(total)
    return np.array(out)


def test_loss_sums_against_loops():
    from labelwise.distributed.federated import loss_sums
    from labelwise.models._tree_build import l2_normalize_rows

    X, Y = tiny_data(6, n=50, d=12, L=5)
    rng = np.random.default_rng(0)
    Z = sp.random(12, 5, density=0.5, format="csr", random_state=rng)
    zb = rng.standard_normal(5)
    got = loss_sums(l2_normalize_rows(X), Y, Z, zb, bias=1.0, loss="squared_hinge",
                    block_bytes=800)  # two label blocks
    ref = _objective_reference(X, Y, Z, zb, 1.0) - 0.5 * (
        np.asarray(Z.multiply(Z).sum(axis=0)).ravel() + zb ** 2)
    assert got == pytest.approx(ref, rel=1e-9)
    lg = loss_sums(l2_normalize_rows(X), Y, Z, zb, bias=1.0, loss="logistic")
    M = l2_normalize_rows(X).toarray().astype(np.float64) @ Z.toarray() + zb
    assert lg == pytest.approx(np.log1p(np.exp(-(2 * Y.toarray() - 1) * M)).sum(axis=0))


def test_rounds_lower_the_objective_towards_the_centralised_optimum(cluster):
    from labelwise.federated import fit_partitioned, scatter_partitions
    from labelwise.models._tree_build import l2_normalize_rows
    from labelwise.models.ovr import fit_linear

    _, client = cluster
    X, Y = tiny_data(7, n=300, d=40, L=7)
    Y = Y[:, :-1]
    names = _names(Y.shape[1])
    # label-skewed partitions: by the row's first label (rows without one: partition 2)
    first = np.array([Y.indices[Y.indptr[i]] if Y.indptr[i + 1] > Y.indptr[i] else -1
                      for i in range(Y.shape[0])])
    part = np.where(first < 0, 2, first % 3)
    parts = scatter_partitions(client, [(X[part == k], Y[part == k], names) for k in range(3)])
    C = 0.5
    kw = dict(C=C, n_threads=1, random_state=0, memory_limit=None, prune_threshold=0.0)
    model = fit_partitioned(OneVsRest(**kw), parts, client=client, rounds=6,
                            transfer_prune=0.0)
    F = model.round_objective_  # (rounds, labels): the exact centralised objective
    assert F.shape == (6, Y.shape[1])
    coef, intercept, _ = fit_linear(l2_normalize_rows(X), Y, C=C, tol=1e-8, max_iter=100000,
                                    prune_threshold=0.0)
    F_opt = _objective_reference(X, Y, coef, intercept.astype(np.float64), C)
    assert np.all(F >= F_opt - 1e-6 * F_opt)  # nothing beats the optimum
    gap = F.sum(axis=1) - F_opt.sum()
    assert gap[-1] < 0.25 * gap[0]  # the rounds close most of round 1's gap
    assert np.all(np.diff(F.sum(axis=1)) < 0)  # here every round improves
    # the model is each label's best round, whose objective is as reported
    final = _objective_reference(X, Y, model.coef_, model.intercept_.astype(np.float64), C)
    assert final == pytest.approx(F.min(axis=0), rel=1e-5)
    assert np.all(final <= F[0] * (1 + 1e-5))
    assert model.round_chosen_.tolist() == np.argmin(F, axis=0).tolist()


def test_partitioned_training_moves_no_rows(cluster, tmp_path, monkeypatch):
    from distributed.diagnostics.plugin import SchedulerPlugin

    from labelwise import Dataset
    from labelwise.federated import fit_partitioned, load_partitions
    from labelwise.io import write

    lc, client = cluster
    X, Y = tiny_data(5, n=186, d=41, L=13)
    Y = Y[:, :-1]
    names = _names(Y.shape[1])
    sizes = (97, 89)  # row counts unlike any other dimension here
    paths = []
    for k, (a, b) in enumerate([(0, sizes[0]), (sizes[0], sum(sizes))]):
        paths.append(tmp_path / f"part{k}.xc")
        write(Dataset(X[a:b], Y[a:b], names), paths[-1])

    class Recorder(SchedulerPlugin):
        def __init__(self):
            self.specs = {}

        def update_graph(self, scheduler, *, keys=(), **kwargs):
            for key in keys:
                ts = scheduler.tasks.get(key)
                if ts is not None:
                    self.specs[key] = ts.run_spec

    came_back = []
    gather = client.gather

    def recording_gather(futures, *args, **kw):
        out = gather(futures, *args, **kw)
        came_back.append(out)
        return out

    monkeypatch.setattr(client, "gather", recording_gather)
    rec = Recorder()
    lc.scheduler.add_plugin(rec, name="labelwise-recorder")
    try:
        workers = sorted(client.scheduler_info()["workers"])
        parts = load_partitions(client, [str(p) for p in paths], workers)
        ovr = fit_partitioned(OneVsRest(random_state=0, memory_limit=None, n_threads=1),
                              parts, client=client, rounds=3)
        tree = fit_partitioned(LabelTree(branching=2, max_leaf_size=3, random_state=0,
                                         memory_limit=None, n_threads=1), parts, client=client,
                               rounds=2)
        placed = {w for fut, w in parts for w in client.who_has([fut])[fut.key]}
    finally:
        lc.scheduler.remove_plugin(name="labelwise-recorder")
    assert placed == set(workers)
    # reads (2), OVR: statistics, 3 rounds, the last evaluation (2 each); tree: statistics,
    # node counts, 2 rounds, the last evaluation
    assert len(rec.specs) == 2 + 2 * 5 + 2 * 5
    assert len(came_back) == 5 + 5
    found = []
    for spec in rec.specs.values():
        _arrays_in(spec, found)
    _arrays_in(came_back, found)
    assert len(found) > 50
    assert all(sizes[0] not in a.shape and sizes[1] not in a.shape for a in found)
    assert ovr.coef_.shape == (41, 12) and ovr.coef_.nnz > 0
    assert ovr.round_objective_.shape == (3, 12)
    assert tree.decision_function(X, k=3).nnz == 3 * X.shape[0]
    assert tree.round_objective_.shape == (2, tree.intercept_.shape[0])
    # the recorder itself can fail: a task that does carry rows is seen
    carried = []
    rec2 = Recorder()
    lc.scheduler.add_plugin(rec2, name="labelwise-recorder2")
    try:
        client.submit(sp.csr_matrix.sum, X[:sizes[0]], pure=False).result()
    finally:
        lc.scheduler.remove_plugin(name="labelwise-recorder2")
    for spec in rec2.specs.values():
        _arrays_in(spec, carried)
    assert any(sizes[0] in a.shape for a in carried)


def test_bad_arguments(cluster):
    from labelwise.federated import fit_partitioned

    _, client = cluster
    with pytest.raises(ValueError, match="rounds must be an int >= 1"):
        fit_partitioned(OneVsRest(), [object()], client=client, rounds=0)
    with pytest.raises(ValueError, match="label_features must be 'pifa'"):
        fit_partitioned(LabelTree(label_features="given"), [object()], client=client)
    with pytest.raises(ValueError, match="rho must be"):
        fit_partitioned(OneVsRest(), [object()], client=client, rho=0.0)
    with pytest.raises(Exception, match="no partitions"):
        fit_partitioned(OneVsRest(), [], client=client)
