"""Helpers of the tests/test_serve_*.py files: tiny models (built once per test process) and a
real uvicorn server on 127.0.0.1 in a thread."""

from __future__ import annotations

import contextlib
import functools
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("fastapi", reason="labelwise serve needs the [serve] extra (fastapi)")
pytest.importorskip("uvicorn", reason="labelwise serve needs the [serve] extra (uvicorn)")
pytest.importorskip("prometheus_client", reason="labelwise serve needs prometheus-client")
pytest.importorskip("httpx", reason="the server tests talk HTTP through httpx")

from labelwise import Dataset  # noqa: E402
from labelwise.io import write  # noqa: E402
from labelwise.pipeline import Pipeline  # noqa: E402
from net_support import free_port  # noqa: E402, F401  (serve_support.free_port, as before)
from test_pipeline import NAMES, _texts  # noqa: E402

TOKEN = "t0ken-for-tests"
N_FEATURES = 30


@functools.lru_cache(maxsize=1)
def workdir() -> Path:
    import atexit

    d = Path(tempfile.mkdtemp(prefix="labelwise-serve-tests-"))
    atexit.register(shutil.rmtree, d, True)
    (d / "token").write_text(TOKEN + "\n")
    return d


@functools.lru_cache(maxsize=1)
def text_data() -> tuple[Path, Path]:
    """(train.jsonl, test.jsonl) of the five-colour texts, with ids."""
    d = workdir()
    texts, Y = _texts(n=200, seed=11)
    ds = Dataset(texts, Y, NAMES, ids=[f"t{i}" for i in range(200)])
    write(ds.subset(np.arange(150)), d / "train.jsonl")
    write(ds.subset(np.arange(150, 200)), d / "test.jsonl")
    return d / "train.jsonl", d / "test.jsonl"


@functools.lru_cache(maxsize=1)
def text_pipeline() -> Path:
    """A tuned tf-idf + OneVsRest pipeline on texts: workdir/colors."""
    from labelwise.features import Tfidf
    from labelwise.io import read
    from labelwise.models import OneVsRest

    train = read(text_data()[0])
    pipe = Pipeline(Tfidf(), OneVsRest(n_threads=1, random_state=0))
    pipe.fit(train).tune(train, objective="micro-f1", cv=3, k=5)
    out = workdir() / "colors"
    pipe.save(out)
    return out


@functools.lru_cache(maxsize=1)
def numeric_model() -> Path:
    """A plain OneVsRest model directory on 30 sparse features, 4 labels: workdir/numbers."""
    from labelwise.models import OneVsRest

    rng = np.random.default_rng(0)
    X = sp.random(150, N_FEATURES, density=0.3, format="csr", random_state=0, dtype=np.float32)
    Y = sp.csr_matrix((X @ rng.normal(size=(N_FEATURES, 4)) > 0.3).astype(np.float32))
    model = OneVsRest(n_threads=1, random_state=0).fit(X, Y, labels=["a", "b", "c", "d"])
    out = workdir() / "numbers"
    model.save(out)
    return out


@contextlib.contextmanager
def live_server(app, *, timeout: float = 60.0) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 in a thread, on a socket bound here to a free
    port and handed over (no race for the port); yields the base URL once /health/ready
    answers 200, stops the server on exit."""
    import httpx
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="uvicorn-test", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    t_end = time.monotonic() + timeout
    try:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/health/ready", timeout=5).status_code == 200:
                    break
            if time.monotonic() > t_end or not thread.is_alive():
                raise RuntimeError(f"the test server did not get ready in {timeout:g} s")
            time.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
