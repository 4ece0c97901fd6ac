"""Dask training and prediction equal the local ones, bit for bit (labelwise.distributed).

One LocalCluster of 4 single-threaded worker processes serves the module; the 1- and 2-worker
runs restrict the scattered data and every task to the first 1 or 2 workers (the runner's
``workers=``), so their label blocks and subtrees really run on that many processes."""

from __future__ import annotations

import os
import signal
import time
import warnings

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from dask_support import local_cluster, tiny_data  # noqa: E402
from dask_support import workers as _workers  # noqa: E402
from labelwise.distributed import ClusterError, connect, fit, top_and_heads, training_on  # noqa: E402
from labelwise.models import (  # noqa: E402
    LabelTree,
    OneVsRest,
    _tree_build,  # noqa: E402
)

pytestmark = pytest.mark.timeout(300)



@pytest.fixture(scope="module")
def cluster():
    with local_cluster(4) as pair:
        yield pair



def _same_ovr(a: OneVsRest, b: OneVsRest) -> None:
    for name in ("data", "indices", "indptr"):
        x, y = getattr(a.coef_, name), getattr(b.coef_, name)
        assert x.dtype == y.dtype and np.array_equal(x, y)
    assert np.array_equal(a.intercept_, b.intercept_)
    assert np.array_equal(a.n_iter_, b.n_iter_)
    assert np.array_equal(a.labels_without_positives_, b.labels_without_positives_)


def _same_tree(a: LabelTree, b: LabelTree) -> None:
    sa, _ = a._get_state()
    sb, _ = b._get_state()
    assert sorted(sa) == sorted(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and np.array_equal(sa[key], sb[key]), key


def _same_scores(a, b, X) -> None:
    Sa, Sb = a.decision_function(X, k=5), b.decision_function(X, k=5)
    assert np.array_equal(Sa.indptr, Sb.indptr) and np.array_equal(Sa.indices, Sb.indices)
    assert np.array_equal(Sa.data, Sb.data)


@pytest.mark.parametrize("n_workers", [1, 2, 4])
def test_ovr_on_dask_is_bit_identical(cluster, n_workers):
    _, client = cluster
    X, Y = tiny_data()
    kw = dict(n_threads=2, random_state=3, memory_limit=None, max_iter=50)
    with pytest.warns(UserWarning, match="no positive"):
        local = OneVsRest(**kw).fit(X, Y)
    remote = OneVsRest(**kw)
    with pytest.warns(UserWarning, match="no positive"):
        if n_workers == 4:  # the documented entry point, every worker
            fit(remote, X, Y, client=client)
        else:
            with training_on(remote, client, workers=_workers(client, n_workers)):
                remote.fit(X, Y)
    _same_ovr(local, remote)
    _same_scores(local, remote, X)
    assert not hasattr(remote, "_task_runner")


def test_ovr_on_dense_features_is_one_newton_task_and_bit_identical(cluster):
    _, client = cluster
    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 12))
    Y = (X @ rng.standard_normal((12, 9)) > 0.4).astype(np.float32)
    kw = dict(n_threads=2, memory_limit=None)
    local = OneVsRest(**kw).fit(X, Y)
    remote = OneVsRest(**kw)
    stats: dict = {}
    with training_on(remote, client, stats=stats):
        remote.fit(X, Y)
    assert stats["tasks"] == 1  # the Newton solver: one block of all labels
    _same_ovr(local, remote)
    _same_scores(local, remote, X)


@pytest.mark.parametrize("n_workers", [1, 2, 4])
def test_tree_on_dask_is_bit_identical(cluster, n_workers):
    _, client = cluster
    X, Y = tiny_data(1, L=60)
    Y = Y[:, :-1]  # every label has positives
    # small leaves and branching so that the roots have inner children (real subtrees)
    kw = dict(n_trees=2, branching=3, max_leaf_size=4, n_threads=2, random_state=5,
              memory_limit=None)
    local = LabelTree(**kw).fit(X, Y)
    used = _workers(client, n_workers)
    seen, stats = [], {}
    model = LabelTree(**kw)
    with training_on(model, client, workers=used, stats=stats, _after_submit=seen.extend):
        model.fit(X, Y)
    # the top nodes' and every subtree's clustering and training ran in tasks: one task per
    # top node and per subtree head, and a 2-means task per split of a top node
    shape = _tree_build.tree_shape(Y.shape[1], branching=3, max_leaf_size=4)
    top, heads = top_and_heads(shape, 4 * n_workers)
    assert len(heads) >= 3 and len(seen) == 2 * (len(top) + len(heads))
    splits = sum(shape.parts(v) - 1 for v in top)
    assert stats["tasks"] == len(seen) + 2 * splits  # the trainings and the splits
    assert stats["task_cpu_s"] > 0 and 0 < stats["serial_share"] < 1
    _same_tree(local, model)
    _same_scores(local, model, X)


def test_tree_on_dask_keeps_row_length_C_scaling(cluster):
    """Long rows (about 150 features each): C_row_scaling multiplies every node's C; the
    Dask runner must train with the same C as the local fit (it once used the unscaled C)."""
    from labelwise.models import _tree_build

    _, client = cluster
    X, Y = tiny_data(2, n=120, d=600, L=12)
    Y = Y[:, :-1]
    assert _tree_build.row_length_C_scale(X) > 1.5
    kw = dict(branching=2, max_leaf_size=4, n_threads=1, random_state=1, memory_limit=None)
    local = LabelTree(**kw).fit(X, Y)
    model = LabelTree(**kw)
    with training_on(model, client, workers=_workers(client, 1)):
        model.fit(X, Y)
    _same_tree(local, model)
    _same_scores(local, model, X)


def _data_actions(dask_scheduler) -> list[str]:
    return [ev["action"] for _, ev in dask_scheduler.get_events("all")
            if isinstance(ev, dict) and ev.get("action") in ("scatter", "gather")]


def _through_scheduler(client) -> list[str]:
    """The scatters and gathers the scheduler served itself (its event log): data that passed
    through the scheduler's process."""
    return client.run_on_scheduler(_data_actions)


def test_data_never_passes_through_the_scheduler(cluster):
    """X, Y and the label representations go from the client to a worker and from worker to
    worker; results come back from the workers directly: the scheduler never holds them."""
    _, client = cluster
    X, Y = tiny_data(1, L=60)
    Y = Y[:, :-1]
    before = len(_through_scheduler(client))
    tree = LabelTree(n_trees=2, branching=3, max_leaf_size=4, n_threads=1, random_state=5,
                     memory_limit=None)
    ovr = OneVsRest(n_threads=1, random_state=3, memory_limit=None, max_iter=50)
    for model in (tree, ovr):
        fit(model, X, Y, client=client)
    assert _through_scheduler(client)[before:] == []
    _same_tree(LabelTree(**tree.get_params()).fit(X, Y), tree)
    # the check sees data that does pass through the scheduler
    client.gather(client.scatter([np.ones(3)], direct=False), direct=False)
    assert _through_scheduler(client)[before:] == ["scatter", "gather"]


def test_killed_worker_tasks_rerun_and_model_identical(cluster):
    lc, client = cluster
    X, Y = tiny_data(2, n=400, L=48)
    Y = Y[:, :-1]
    kw = dict(n_threads=1, random_state=0, memory_limit=None, max_iter=200, tol=1e-4)
    local = OneVsRest(**kw).fit(X, Y)
    killed = []

    def kill_one(futures):
        # the worker with the most tasks assigned right after submission
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            proc = client.processing()
            busy = [w for w, keys in proc.items() if keys]
            if busy:
                break
            time.sleep(0.005)
        victim = max(busy, key=lambda w: len(proc[w])) if busy else next(iter(proc))
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)
        killed.append((victim, pid))

    model = OneVsRest(**kw)
    with training_on(model, client, blocks_per_worker=8, _after_submit=kill_one), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # distributed's notes on the lost worker
        model.fit(X, Y)
    assert killed
    _same_ovr(local, model)
    client.wait_for_workers(4, timeout=60)  # the nanny restarts it for the next tests


def test_unreachable_scheduler_and_bad_spec():
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with connect("tcp://127.0.0.1:9", timeout=1):
            pass
    with pytest.raises(ClusterError, match="local:N"):
        with connect("local:zero"):
            pass
    with pytest.raises(ClusterError, match="does not train on Dask"):
        with training_on(object(), None):
            pass


# partitioned (federated) training: tests/test_federated.py
