"""`labelwise train/predict --dask` against a real cluster: `dask scheduler` and `dask worker`
processes started here (127.0.0.1 only), as a user would start them on several machines."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

distributed = pytest.importorskip("distributed")
pq = pytest.importorskip("pyarrow.parquet")

from labelwise import Dataset  # noqa: E402
from labelwise.cli.main import main  # noqa: E402
from labelwise.distributed import PREDICTIONS_MARKER, ClusterError, training_on  # noqa: E402
from labelwise.io import write  # noqa: E402
from labelwise.models import OneVsRest  # noqa: E402
from labelwise.pipeline import Pipeline  # noqa: E402

pytestmark = pytest.mark.timeout(300)
DASK = str(Path(sys.executable).with_name("dask"))


def _learnable(n=240, d=40, L=12, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d, L))
    X = sp.random(n, d, density=0.3, format="csr", random_state=seed, dtype=np.float32)
    Y = (X @ W > 0.4).astype(np.float32)
    return Dataset(X, sp.csr_matrix(Y), [f"topic {j}" for j in range(L)],
                   ids=[f"doc{i}" for i in range(n)])


@contextlib.contextmanager
def real_cluster(tmp: Path, n_workers: int):
    """(address, scheduler Popen, worker Popens)"""
    sched_file = tmp / "scheduler.json"
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sched = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                              "--no-dashboard", "--scheduler-file", str(sched_file)], **quiet)
    workers = [subprocess.Popen([DASK, "worker", "--nthreads", "1", "--no-dashboard",
                                 "--host", "127.0.0.1", "--no-nanny",
                                 "--scheduler-file", str(sched_file)], **quiet)
               for _ in range(n_workers)]
    try:
        deadline = time.monotonic() + 120
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        import json

        address = json.loads(sched_file.read_text())["address"]
        with quiet_client(address) as client:
            client.wait_for_workers(n_workers, timeout=120)
        yield address, sched, workers
    finally:
        for p in [*workers, sched]:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in [*workers, sched]:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@contextlib.contextmanager
def quiet_client(address: str, **kw):
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = distributed.Client(address, **kw)
    try:
        yield client
    finally:
        with warnings.catch_warnings(), contextlib.suppress(Exception):
            warnings.simplefilter("ignore")
            client.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with real_cluster(tmp_path_factory.mktemp("dask"), 2) as (address, _, _):
        yield address


@pytest.fixture
def files(tmp_path):
    ds = _learnable()
    train, test = tmp_path / "train.xc", tmp_path / "test.jsonl"
    write(ds.subset(np.arange(0, 180)), train)
    write(ds.subset(np.arange(180, 240)), test)
    return tmp_path, train, test


@pytest.mark.parametrize("model", ["ovr", "tree"])
def test_train_on_a_real_cluster_equals_local(cluster, files, model):
    tmp, train, _ = files
    common = ["train", str(train), "--model", model, "--seed", "3", "--threads", "1", "--quiet",
              "--set", "memory_limit=None"]
    if model == "tree":
        common += ["--set", "branching=2", "--set", "max_leaf_size=2"]
    assert main([*common, "--out", str(tmp / "local")]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # distributed's own notes (not the model's)
        assert main([*common, "--dask", cluster, "--out", str(tmp / "dask")]) == 0
    a, b = Pipeline.load(tmp / "local").model, Pipeline.load(tmp / "dask").model
    sa, sb = a._get_state()[0], b._get_state()[0]
    assert sorted(sa) == sorted(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and np.array_equal(sa[key], sb[key]), key


def test_predict_to_parquet_equals_local_prediction(cluster, files, capsys):
    tmp, train, test = files
    model_dir, out = tmp / "model", tmp / "pred"
    assert main(["train", str(train), "--model", "ovr", "--threads", "1", "--quiet",
                 "--out", str(model_dir)]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["predict", str(model_dir), str(test), "--dask", cluster, "-k", "3",
                     "--out", str(out), "--quiet"]) == 0
    parts = sorted(out.glob("part-*.parquet"))
    assert len(parts) == 4 and (out / PREDICTIONS_MARKER).is_file()  # 2 per worker
    rows = [r for p in parts for r in pq.read_table(p).to_pylist()]
    from labelwise import read

    data = read(test)
    expect = Pipeline.load(model_dir).predict_labels(data.X, k=3)
    assert len(rows) == len(expect) == 60
    for i, (r, e) in enumerate(zip(rows, expect, strict=True)):
        assert r["id"] == f"doc{180 + i}"
        assert r["labels"] == e["labels"]
        assert r["probabilities"] == [e["probabilities"][lab] for lab in e["labels"]]
        assert r["topk_labels"] == [c["label"] for c in e["candidates"]]
        assert r["topk_scores"] == [c["score"] for c in e["candidates"]]
        assert r["topk_probabilities"] == [c["probability"] for c in e["candidates"]]
    assert any(r["labels"] for r in rows)
    # each worker loaded the model once (4 partitions on 2 workers), from its own path
    from labelwise.distributed import _tasks

    with quiet_client(cluster) as client:
        loads = client.run(lambda: _tasks.loads[0])
    assert sorted(loads.values()) == [1, 1]
    # a folder of the user's files is never replaced
    user = tmp / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep")
    capsys.readouterr()
    assert main(["predict", str(model_dir), str(test), "--dask", cluster, "--out", str(user),
                 "--quiet"]) != 0
    assert (user / "notes.txt").read_text() == "keep"


def test_unreachable_scheduler_is_one_line_and_no_model(files, capsys):
    tmp, train, _ = files
    import dask

    with warnings.catch_warnings(), dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        warnings.simplefilter("ignore")
        assert main(["train", str(train), "--model", "ovr", "--quiet", "--dask",
                     "tcp://127.0.0.1:9", "--out", str(tmp / "m")]) != 0
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler" in err
    assert not (tmp / "m").exists()


def test_scheduler_killed_mid_fit_is_a_clear_error_and_nothing_saved(tmp_path):
    ds = _learnable(seed=1)
    out = tmp_path / "model"
    with real_cluster(tmp_path, 1) as (address, sched, _):
        with quiet_client(address, timeout="2s") as client:
            model = OneVsRest(random_state=0, memory_limit=None)

            def kill_scheduler(futures):
                os.kill(sched.pid, signal.SIGKILL)

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with pytest.raises(ClusterError, match="lost the Dask scheduler"), \
                        training_on(model, client, _after_submit=kill_scheduler):
                    model.fit(ds.X, ds.Y)
                    model.save(out)
    assert not out.exists() and not hasattr(model, "coef_")
