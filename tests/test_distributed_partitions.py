"""Partitioned training: rows read, featurised and kept on Dask workers, never gathered
(labelwise.distributed.partitions). One LocalCluster of worker processes (the fixture of
test_distributed) serves the module."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

distributed = pytest.importorskip("distributed")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from dask_support import arrays_in as _arrays_in  # noqa: E402
from dask_support import local_cluster, tiny_data  # noqa: E402
from dask_support import workers as _workers  # noqa: E402
from labelwise import Dataset  # noqa: E402
from labelwise.distributed import partitions as P  # noqa: E402
from labelwise.errors import ResourceLimitError  # noqa: E402
from labelwise.features import Tfidf  # noqa: E402
from labelwise.io import read, write  # noqa: E402
from labelwise.models import LabelTree, OneVsRest  # noqa: E402

pytestmark = pytest.mark.timeout(300)

@pytest.fixture(scope="module")
def cluster():
    with local_cluster(2) as pair:
        yield pair


WORDS = [f"w{i}" for i in range(40)] + ["alpha", "beta", "gamma", "delta"]


def _texts(seed: int, n: int) -> tuple[list[str], list[list[str]]]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        k = int(rng.integers(3, 12))
        words = rng.choice(WORDS, size=k, p=np.linspace(2, 1, len(WORDS)) / np.linspace(
            2, 1, len(WORDS)).sum())
        texts.append(" ".join(words) + (" Alpha beta" if rng.random() < 0.3 else ""))
        labs = sorted({f"t{int(w[1:]) % 5}" for w in words if w.startswith("w")})
        labels.append(labs[:2])
    return texts, labels


def _parquet_parts(tmp_path, sizes=(23, 31, 17)):
    """Text partitions ``part-k.parquet`` and the same rows in one table, for the local fit."""
    folder = tmp_path / "parts"
    folder.mkdir()
    all_t, all_l = [], []
    for k, n in enumerate(sizes):
        t, lab = _texts(k, n)
        pq.write_table(pa.table({"text": t, "labels": lab}), folder / f"part-{k}.parquet")
        all_t += t
        all_l += lab
    pq.write_table(pa.table({"text": all_t, "labels": all_l}), tmp_path / "all.parquet")
    return folder, tmp_path / "all.parquet"


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # labels without positives in a tiny set
        yield


@pytest.mark.parametrize("params", [{}, {"ngram_range": (1, 2), "min_df": 2, "max_df": 0.5,
                                         "max_features": 30, "sublinear_tf": False},
                                    {"char_ngram_range": (2, 3), "min_df": 2}])
def test_two_pass_vocabulary_equals_one_process(cluster, tmp_path, params):
    _, client = cluster
    folder, whole = _parquet_parts(tmp_path)
    parts = P.open_partitions(client, folder, featurizer=Tfidf(**params))
    local_data = read(whole)
    local = Tfidf(**params).fit(local_data.X)
    mine = parts.featurizer
    assert mine.char_ngram_range_ == local.char_ngram_range_
    assert mine.feature_names() == local.feature_names()
    for name, v in local.vectorizers_.items():
        idf = mine.vectorizers_[name].idf_
        assert np.array_equal(np.float64(idf), np.float64(v.idf_))  # float32 values
    A, B = mine.transform(local_data.X), local.transform(local_data.X)
    assert np.array_equal(A.indptr, B.indptr) and np.array_equal(A.indices, B.indices)
    assert np.array_equal(A.data, B.data)
    assert parts.labels == list(local_data.labels.names)  # first-seen order, as one file
    assert parts.n_samples == local_data.n_samples


def test_counts_limits_by_hand():
    """min_df / max_df / max_features and the idf formula on counts worked out by hand."""
    f = Tfidf(ngram_range=(1, 1), min_df=2, max_df=3, max_features=2)
    counts = [{"word": ({"a": 2, "b": 1, "c": 3, "d": 1}, {"a": 5, "b": 1, "c": 3, "d": 1})},
              {"word": ({"b": 1, "c": 1, "e": 2}, {"b": 4, "c": 1, "e": 2})}]
    P.tfidf_from_counts(f, 5, counts)
    # df: a2 b2 c4 d1 e2 -> c over max_df, d under min_df; tf: a5 b5 e2 -> a, b
    assert f.feature_names() == ["a", "b"]
    want = np.log(np.float32(6) / np.float32([3, 3])) + np.float32(1)
    assert np.array_equal(f.vectorizers_["word"].idf_, want.astype(np.float32))


def _xc_file(tmp_path, seed=0, n=240, d=60, L=37):
    X, Y = tiny_data(seed, n=n, d=d, L=L)
    path = tmp_path / "train.xc"
    write(Dataset(X, Y), path, format="xc")
    return path


@pytest.mark.parametrize("fmt", ["xc", "libsvm"])
def test_byte_ranges_hold_exactly_the_file_rows(cluster, tmp_path, fmt):
    """Ranges cut mid-line: every row lands in exactly one partition, in file order."""
    _, client = cluster
    X, Y = tiny_data(7, n=53, d=19, L=6)
    path = tmp_path / "rows.xc"
    write(Dataset(X, Y), path, format="xc")
    if fmt == "libsvm":  # the same rows without the header
        lines = path.read_bytes().split(b"\n", 1)[1]
        path = tmp_path / "rows.svm"
        path.write_bytes(lines)
    parts = P.open_partitions(client, path, byte_ranges=5)
    parts.load(None)
    got = client.gather(parts.futures)  # the test gathers the rows to compare them
    local = read(path)
    assert [s["rows"] for s in parts.stats] == [g.Xn.shape[0] for g in got]
    Xg, Yg = sp.vstack([g.Xn for g in got]).tocsr(), sp.vstack([g.Y for g in got]).tocsr()
    assert Xg.shape == local.X.shape and Yg.shape == local.Y.shape
    assert (Xg != local.X).nnz == 0 and (Yg != local.Y).nnz == 0
    assert parts.labels == list(local.labels.names)
    assert parts.index_base == local.meta["index_base"]


def test_ovr_on_byte_ranges_matches_local_and_worker_count(cluster, tmp_path, monkeypatch):
    _, client = cluster
    path = _xc_file(tmp_path)
    models = []
    monkeypatch.setattr(P, "MAX_BLOCK_LABELS", 8)  # 37 labels: 5 blocks
    with _quiet():
        for k, batch in ((1, 8), (2, 24)):  # one block at a time; 3 blocks side by side
            monkeypatch.setattr(P, "MAX_BATCH_LABELS", batch)
            parts = P.open_partitions(client, path, byte_ranges=3, workers=_workers(client, k),
                                      _tasks=[])
            models.append(P.fit(OneVsRest(prune_threshold=0.0), parts, eps=1e-7))
            models[-1].trips = sum(n == "label_sums" for n, _ in parts.tasks)
        local = OneVsRest(prune_threshold=0.0, tol=1e-7, max_iter=10**5).fit(read(path))
    one, two = models
    assert (one.trips, two.trips) == (5 * 3, 2 * 3)  # a solve per batch, a task per range
    # the same partitions on 1 or 2 workers, with the blocks solved one by one or side by
    # side: the same bits (sums in partition order, each block's arithmetic its own)
    for name in ("data", "indices", "indptr"):
        assert np.array_equal(getattr(one.coef_, name), getattr(two.coef_, name))
    assert np.array_equal(one.intercept_, two.intercept_)
    # against the local dual solver, both run to tight tolerances: the same optimum
    diff = abs(one.coef_ - local.coef_).max()
    assert diff < 1e-4, diff
    assert np.abs(one.intercept_ - local.intercept_).max() < 1e-4
    assert np.array_equal(one.labels_without_positives_, local.labels_without_positives_)


def test_tree_on_files_matches_local(cluster, tmp_path):
    _, client = cluster
    X, Y = tiny_data(3, n=150, d=40, L=13)
    files = []
    for k, (a, b) in enumerate([(0, 61), (61, 150)]):
        files.append(tmp_path / f"p{k}.xc")
        write(Dataset(X[a:b], Y[a:b]), files[-1], format="xc")
    write(Dataset(X, Y), tmp_path / "all.xc", format="xc")
    kw = dict(branching=3, max_leaf_size=5, prune_threshold=0.0)
    with _quiet():
        parts = P.open_partitions(client, [str(f) for f in files])
        tree = P.fit(LabelTree(**kw), parts, eps=1e-7)
        local = LabelTree(tol=1e-7, max_iter=10**5, **kw).fit(read(tmp_path / "all.xc"))
    assert np.array_equal(tree.node_clf_start_, local.node_clf_start_)
    assert np.array_equal(tree.clf_child_, local.clf_child_)
    assert np.abs(tree.intercept_ - local.intercept_).max() < 1e-4
    Sa, Sb = tree.decision_function(X, k=5), local.decision_function(X, k=5)
    assert np.array_equal(Sa.indices, Sb.indices)
    assert np.abs(Sa.data - Sb.data).max() < 1e-4


def test_memory_estimate_refuses_before_loading(cluster, tmp_path):
    _, client = cluster
    path = _xc_file(tmp_path)
    parts = P.open_partitions(client, path, byte_ranges=2)
    model = OneVsRest()
    est = P.estimate_peak(parts.stats[:1], n_features=60, width=37)
    assert est > 60 * 37 * 24  # at least the weights of one block
    with pytest.raises(ResourceLimitError) as e:
        P.fit(model, parts, memory_limit=1024)
    msg = str(e.value)
    assert "MiB on worker" in msg and "memory limit is 0.0 MiB" in msg
    assert "MiB in use now + 64 MiB allowance (WORKER_OVERHEAD) +" in msg and "estimate_peak" in msg
    assert parts.futures == [] and not hasattr(model, "coef_")
    # the rule by hand: one partition, 10 rows, 50 entries, 20 label entries, width 2
    s = {"rows": 10, "nnz": 50, "label_nnz": 20, "load": 100}
    held = 16 * 50 + 8 * 10 + 16 * 20 + 16 * 10 + 16 * 10 * 2
    work = max(100 + 12 * 50 + 16 * 10 + 8 * 20, 12 * 50 + 8 * 10 + 32 * 10 * 2 + 24 * 8 * 2)
    assert P.estimate_peak([s], n_features=7, width=2) == held + work


def test_memory_check_reads_each_workers_dask_limit():
    """Without memory_limit=, each worker's own Dask limit and its memory in use count."""

    class Info:
        def scheduler_info(self, n_workers=-1):
            return {"workers": {"a": {"memory_limit": 10_000 + P.WORKER_OVERHEAD, "nthreads": 1,
                                      "metrics": {"memory": 6_000}},
                                "b": {"memory_limit": 0, "nthreads": 2,
                                      "metrics": {"memory": 9_000}}}}

    s = {"rows": 10, "nnz": 50, "label_nnz": 20, "load": 100}
    one = P.estimate_peak([s], n_features=7, width=2)
    parts = P.Partitions(Info(), "xc", [("f", 0, 1, True)] * 2, ["a", "b"], n_features=7,
                         stats=[s, s])
    got = parts.check_memory(width=2)  # a: 6000 + one <= 10000; b has no limit
    extra = P.WORKER_OVERHEAD
    assert got == {"a": 6_000 + extra + one,
                   "b": 9_000 + extra + P.estimate_peak([s], n_features=7, width=2, threads=2)}
    with pytest.raises(ResourceLimitError, match=r"on worker a .* for partitions \[0, 1\]"):
        P.Partitions(Info(), "xc", [("f", 0, 1, True)] * 2, ["a", "a"], n_features=7,
                     stats=[s, s]).check_memory(width=2 + 10_000 // (16 * 10))


def test_no_task_carries_rows(cluster, tmp_path):
    """Every task's arguments and every gathered result: no array with a partition's row
    count among its dimensions; each partition's rows live only on its own worker."""
    from distributed.diagnostics.plugin import SchedulerPlugin

    lc, client = cluster
    X, Y = tiny_data(5, n=186, d=41, L=13)
    sizes = (97, 89)  # row counts unlike any other dimension here
    files = []
    for k, (a, b) in enumerate([(0, 97), (97, 186)]):
        files.append(str(tmp_path / f"part{k}.xc"))
        write(Dataset(X[a:b], Y[a:b]), files[-1], format="xc")

    class Recorder(SchedulerPlugin):
        def __init__(self):
            self.specs = {}

        def update_graph(self, scheduler, *, keys=(), **kwargs):
            for key in keys:
                ts = scheduler.tasks.get(key)
                if ts is not None:
                    self.specs[key] = ts.run_spec

    rec = Recorder()
    gathered = []
    real_gather = client.gather

    def spy(futures, *a, **kw):
        out = real_gather(futures, *a, **kw)
        gathered.append(out)
        return out

    lc.scheduler.add_plugin(rec, name="labelwise-rows-recorder")
    client.gather = spy
    try:
        with _quiet():
            parts = P.open_partitions(client, files, workers=_workers(client, 2), _tasks=[])
            model = P.fit(LabelTree(branching=3, max_leaf_size=5), parts)
        where = [client.who_has([f])[f.key] for f in parts.futures]
    finally:
        del client.gather
        lc.scheduler.remove_plugin(name="labelwise-rows-recorder")
    assert [set(w) for w in where] == [{parts.workers[0]}, {parts.workers[1]}]
    assert parts.workers[0] != parts.workers[1]
    assert len(rec.specs) >= 10 and gathered
    found = []
    for spec in rec.specs.values():
        _arrays_in(spec, found)
    _arrays_in(gathered, found)
    assert found  # the weights and sums are seen
    assert all(n not in a.shape for a in found for n in sizes)
    assert {name for name, _ in parts.tasks} >= {"scan_xc", "load_xc", "eval_sums", "hv_sums"}
    assert model.clf_child_.size > 13


def test_cli_trains_on_a_parquet_folder(cluster, tmp_path, capsys):
    from labelwise.cli.main import main
    from labelwise.pipeline import load_any

    lc, client = cluster
    folder, whole = _parquet_parts(tmp_path)
    out = tmp_path / "model"
    rc = main(["train", str(folder), "--model", "ovr", "--dask", lc.scheduler_address,
               "--worker-memory", "1KiB", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc != 0 and "memory limit is 0.0 MiB" in err and not out.exists()
    with _quiet():
        rc = main(["train", str(folder / "*.parquet"), "--model", "ovr", "--dask",
                   lc.scheduler_address, "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    pipe = load_any(out)
    with _quiet():
        parts = P.open_partitions(client, folder, featurizer=Tfidf())
        model = P.fit(OneVsRest(), parts)
    texts = read(whole).X
    assert np.array_equal(pipe.decision_function(texts, k=3).toarray(),
                          model.decision_function(parts.featurizer.transform(texts),
                                                  k=3).toarray())
    assert list(pipe.labels_.names) == parts.labels
    assert sp.issparse(pipe.transform(texts))


# ------------------------------------------------------------------ the solver, no cluster
def _reference_sums(X, y, W, loss, bias):
    """Row-by-row loss, gradient and curvature (slow, obviously correct)."""
    n, m = y.shape
    value = np.zeros(m)
    grad = np.zeros((X.shape[1] + 1, m))
    D = np.zeros((n, m))
    Xd = X.toarray()
    for i in range(n):
        xt = np.append(Xd[i], bias)
        for j in range(m):
            z = xt @ W[:, j]
            yz = y[i, j] * z
            if loss == 0:
                value[j] += max(0.0, 1 - yz) ** 2
                grad[:, j] += -2 * y[i, j] * max(0.0, 1 - yz) * xt
                D[i, j] = 2.0 if yz < 1 else 0.0
            else:
                value[j] += np.log1p(np.exp(-yz))
                s = 1 / (1 + np.exp(yz))
                grad[:, j] += -y[i, j] * s * xt
                D[i, j] = s * (1 - s)
    return value, grad, D


@pytest.mark.parametrize("loss", [0, 1])
def test_worker_sums_against_row_loops(loss):
    from labelwise.distributed import _rows

    rng = np.random.default_rng(loss)
    X = sp.random(30, 7, density=0.4, format="csr", random_state=rng)
    y = np.where(rng.random((30, 3)) < 0.3, 1.0, -1.0)
    W = rng.standard_normal((8, 3))
    V = rng.standard_normal((8, 3))
    prob = _rows.Problem(X, y)
    [(value, grad)] = _rows.eval_sums([prob], [W], loss, 0.7)
    rv, rg, rD = _reference_sums(X, y, W, loss, 0.7)
    assert np.allclose(value, rv) and np.allclose(grad, rg) and np.allclose(prob.D, rD)
    [hv] = _rows.hv_sums([prob], [V], 0.7)
    Xt = np.hstack([X.toarray(), np.full((30, 1), 0.7)])
    ref = np.stack([Xt.T @ (rD[:, j] * (Xt @ V[:, j])) for j in range(3)], axis=1)
    assert np.allclose(hv, ref)


class _InProcess(P.Pinned):
    """The solver's rounds run in this process: the same sums, no cluster."""

    def __init__(self, parts):
        super().__init__(None, [(p, "here") for p in parts], "test")

    def submit(self, fn, args_per_part, *, mutates=False):
        return [fn(*args) for args in args_per_part]

    def gather(self, futures):
        return futures

    def share(self, value):
        return value


@pytest.mark.parametrize("loss", ["logistic", "squared_hinge"])
def test_newton_reaches_the_local_optimum(loss):
    from labelwise.distributed import _rows
    from labelwise.models.ovr import LOSSES

    X, Y = tiny_data(11, n=90, d=25, L=4)
    halves = [(0, 41), (41, 90)]
    parts = [_rows.prepare(_rows.RowPart(X[a:b], Y[a:b]), "l2") for a, b in halves]
    targets = [np.array([j]) for j in range(3)]
    feats, [W], _, [rows] = P._newton.solve(_InProcess(parts), [(None, targets)], [0.5],
                                            loss=LOSSES[loss], bias=1.0, eps=1e-8,
                                            max_iter=100)
    local = OneVsRest(loss=loss, C=0.5, tol=1e-8, max_iter=10**5,
                      prune_threshold=0.0).fit(X, Y[:, :3])
    dense = np.zeros((25, 3))
    dense[feats[0]] = W[:-1]
    assert rows == 90
    assert np.abs(dense - local.coef_.toarray()).max() < 1e-5
    assert np.abs(W[-1] - local.intercept_).max() < 1e-5


def test_feature_parquet_partitions_hold_the_table_rows(cluster, tmp_path):
    """Parquet files with a numeric ``features`` column (list cells, read_table's Parquet
    form; mostly zeros): the CSR rows and labels of one read of the concatenation."""
    _, client = cluster
    rng = np.random.default_rng(4)
    folder = tmp_path / "numeric"
    folder.mkdir()
    cells, labels = [], []
    for k, n in enumerate((9, 14)):
        c = [[float(v) for v in np.where(rng.random(8) < 0.3, rng.integers(1, 9, 8) / 4, 0)]
             for _ in range(n)]
        lab = [[f"c{int(rng.integers(0, 4))}"] for _ in range(n)]
        pq.write_table(pa.table({"features": c, "labels": lab}), folder / f"p{k}.parquet")
        cells += c
        labels += lab
    pq.write_table(pa.table({"features": cells, "labels": labels}), tmp_path / "all.parquet")
    parts = P.open_partitions(client, folder)
    parts.load(None)
    got = client.gather(parts.futures)  # the test gathers the rows to compare them
    local = read(tmp_path / "all.parquet")
    assert parts.labels == list(local.labels.names) and parts.n_features == local.X.shape[1]
    Xg, Yg = sp.vstack([g.Xn for g in got]).tocsr(), sp.vstack([g.Y for g in got]).tocsr()
    assert sp.issparse(got[0].Xn) and Xg.nnz == np.count_nonzero(local.X)
    assert (Xg != sp.csr_matrix(local.X)).nnz == 0 and (Yg != local.Y).nnz == 0


def test_lost_worker_partitions_are_read_again_elsewhere(cluster, tmp_path):
    """SIGKILL a worker in the middle of the Newton rounds: the partitions it held are read
    again from their byte ranges on the surviving worker (their solver state rebuilt there),
    and the model is the same bits as a fit without the fault."""
    import os
    import signal

    _, client = cluster
    path = _xc_file(tmp_path)
    with _quiet():
        ref = P.fit(OneVsRest(), P.open_partitions(client, path, byte_ranges=4,
                                                    workers=_workers(client, 2)))
    killed = []

    class KillMidway(list):
        """The task recorder; kills the worker of the 5th CG round's 2nd partition as that
        task is submitted."""

        def append(self, item):
            super().append(item)
            name, w = item
            if not killed and name == "hv_sums" and sum(n == name for n, _ in self) == 18:
                os.kill(client.run(os.getpid, workers=[w])[w], signal.SIGKILL)
                killed.append(w)

    parts = P.open_partitions(client, path, byte_ranges=4, workers=_workers(client, 2),
                              _tasks=KillMidway())
    first = list(parts.workers)
    with _quiet():
        model = P.fit(OneVsRest(), parts)
    assert killed, "the solver ran fewer rounds than the test expects"
    [victim] = killed
    moved = [k for k, w in enumerate(first) if w == victim]
    assert moved and victim not in parts.workers
    assert {parts.workers[k] for k in moved} == set(first) - {victim}
    reads = [w for name, w in parts.tasks if name == "load_xc"]
    assert reads[:4] == first and reads[4:] == [parts.workers[k] for k in moved]
    for name in ("data", "indices", "indptr"):
        assert np.array_equal(getattr(ref.coef_, name), getattr(model.coef_, name))
    assert np.array_equal(ref.intercept_, model.intercept_)
    assert np.array_equal(ref.n_iter_, model.n_iter_)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests


def test_ovr_batch_halves_until_the_estimate_fits(cluster, tmp_path, monkeypatch):
    """OneVsRest solves the widest batch of blocks whose memory estimate fits, halving it
    down to one block (refused only then: test_memory_estimate_refuses_before_loading)."""
    _, client = cluster
    path = _xc_file(tmp_path, n=80, d=20, L=13)
    monkeypatch.setattr(P, "MAX_BLOCK_LABELS", 4)  # 13 labels: 4 blocks
    monkeypatch.setattr(P, "MAX_BATCH_LABELS", 16)
    tried = []
    real = P.Partitions.check_memory

    def check(self, *, width, **kw):
        tried.append(width)
        if width > 8:
            raise ResourceLimitError("too wide")
        return real(self, width=width, **kw)

    monkeypatch.setattr(P.Partitions, "check_memory", check)
    parts = P.open_partitions(client, path, _tasks=[])
    with _quiet():
        P.fit(OneVsRest(), parts)
    assert tried == [13, 8]  # 16 labels cut to the 13 there are, then halved
    assert sum(n == "label_sums" for n, _ in parts.tasks) == 2  # 2 batches of 2 blocks
