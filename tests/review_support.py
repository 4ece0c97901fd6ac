"""Helpers of tests/test_review_*.py (not a test module): a tiny certified text pipeline, its
data, and a throwaway PostgreSQL cluster (Debian's initdb + pg_ctl on a temporary folder and
a free port on 127.0.0.1, run as the ``postgres`` user when we are root; stopped after)."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sqlalchemy", reason="the review loop needs the [review] extra (SQLAlchemy)")
pytest.importorskip("alembic", reason="the review loop needs the [review] extra (Alembic)")

from labelwise import Dataset  # noqa: E402
from net_support import free_port  # noqa: E402

NAMES = ["red", "green", "blue", "cyan", "plum"]


def _pg_bin() -> Path:
    """$LABELWISE_PG_BIN, else the newest /usr/lib/postgresql/N/bin (Debian's layout)."""
    if os.environ.get("LABELWISE_PG_BIN"):
        return Path(os.environ["LABELWISE_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
TARGET = 0.9


def texts(n: int, seed: int) -> tuple[list[str], list[list[int]]]:
    """Texts carrying their labels' words most of the time (some rows lack one): a model
    certain on most rows, unsure on some."""
    rng = np.random.default_rng(seed)
    filler = [f"w{i}" for i in range(40)]
    out, Y = [], []
    for _ in range(n):
        labs = sorted(rng.choice(len(NAMES), size=int(rng.integers(1, 3)), replace=False).tolist())
        toks = [NAMES[j] for j in labs if rng.random() < 0.9]
        toks += rng.choice(filler, 5).tolist()
        rng.shuffle(toks)
        out.append(" ".join(toks))
        Y.append(labs)
    return out, Y


def dataset(n: int, seed: int, prefix: str) -> Dataset:
    t, Y = texts(n, seed)
    return Dataset(t, Y, NAMES, ids=[f"{prefix}{i}" for i in range(n)])


@functools.lru_cache(maxsize=1)
def workdir() -> Path:
    import atexit

    d = Path(tempfile.mkdtemp(prefix="labelwise-review-tests-"))
    atexit.register(shutil.rmtree, d, True)
    return d


@functools.lru_cache(maxsize=1)
def pipeline_dir() -> Path:
    """A tf-idf + OneVsRest pipeline tuned for precision=0.9 (certified): workdir/colors."""
    from labelwise.features import Tfidf
    from labelwise.models import OneVsRest
    from labelwise.pipeline import Pipeline

    train = dataset(500, 1, "train")
    pipe = Pipeline(Tfidf(), OneVsRest(n_threads=1, random_state=0))
    pipe.fit(train).tune(train, objective=f"precision={TARGET}", cv=3, k=5)
    out = workdir() / "colors"
    pipe.save(out)
    return out


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    return [runuser, "-u", "postgres", "--", *cmd] if runuser else ["su", "postgres", "-c",
                                                                     " ".join(cmd)]


@contextlib.contextmanager
def postgres_cluster():
    """Yield a ``postgresql+psycopg://`` URL prefix (add a database name) of a fresh cluster."""
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
        pytest.skip(f"PostgreSQL binaries absent ({PG_BIN}/initdb, pg_ctl): apt-get install "
                    "postgresql (make test does when root)")
    pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg 3 ([review] extra)")
    base = Path(tempfile.mkdtemp(prefix="labelwise-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        base.chmod(0o700)
    port = free_port()
    env = {**os.environ, "LC_ALL": "C"}
    subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U",
                                 "postgres", "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True, env=env, timeout=120)
    opts = (f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=60")
    subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                                 str(base / "log"), "-w", "-t", "60", "start"]),
                   check=True, capture_output=True, env=env, timeout=120)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                     "-w", "stop"]), capture_output=True, env=env, timeout=120)
        shutil.rmtree(base, ignore_errors=True)


def create_database(prefix: str) -> str:
    """A new empty database in the cluster at ``prefix``; its URL."""
    import psycopg

    name = "t" + uuid.uuid4().hex[:12]
    with psycopg.connect(prefix.replace("postgresql+psycopg", "postgresql") + "/postgres",
                         autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{prefix}/{name}"
