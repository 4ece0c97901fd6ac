"""Helpers of tests/test_review_*.py (not a test module): a tiny certified text pipeline, its
data, and a throwaway PostgreSQL cluster (Debian's initdb + pg_ctl on a temporary folder and
a free port on 127.0.0.1, run as the ``postgres`` user when we are root; stopped after)."""

from __future__ import annotations

import contextlib
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sqlalchemy", reason="the review loop needs the [review] extra (SQLAlchemy)")
pytest.importorskip("alembic", reason="the review loop needs the [review] extra (Alembic)")

from labelwise import Dataset  # noqa: E402

NAMES = ["red", "green", "blue", "cyan", "plum"]


TARGET = 0.9


def texts(n: int, seed: int) -> tuple[list[str], list[list[int]]]:
    """Texts carrying their labels' words most of the time (some rows lack one): a model
    certain on most rows, unsure on some."""
    rng = np.random.default_rng(seed)
    filler = [f"w{i}" for i in range(40)]
    out, Y = [], []
    for _ in range(n):
        labs = sorted(rng.choice(len(NAMES), size=int(rng.integers(1, 3)), replace=False).tolist())
        toks = [NAMES[j] for j in labs if rng.random() < 0.75]
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


@contextlib.contextmanager
def postgres_cluster():
    """Yield a ``postgresql+psycopg://`` URL prefix (add a database name) of a fresh cluster
    (:func:`labelwise.review.pgcluster.throwaway_cluster`, shared with benchmarks/review.py);
    skipped with the install hint when PostgreSQL or psycopg is missing."""
    from labelwise.review.pgcluster import (
        PostgresUnavailableError,
        check_available,
        throwaway_cluster,
    )

    try:
        check_available()
    except PostgresUnavailableError as exc:
        pytest.skip(str(exc))
    with throwaway_cluster() as prefix:
        yield prefix


def create_database(prefix: str) -> str:
    """A new empty database in the cluster at ``prefix``; its URL."""
    from labelwise.review.pgcluster import create_database

    return create_database(prefix)
