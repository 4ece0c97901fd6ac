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
