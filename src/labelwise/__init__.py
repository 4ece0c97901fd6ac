"""labelwise: multi-label classification from 6 labels to millions.

Public names are imported lazily (PEP 562) so that ``import labelwise`` and the CLI's start-up
stay light: numpy, scipy and numba load only when a name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "LabelSpace": "labelwise.labels",
    "Dataset": "labelwise.dataset",
    "read": "labelwise.io",
    "write": "labelwise.io",
    "detect_format": "labelwise.io",
    "train_test_split": "labelwise.split",
    "evaluate": "labelwise.metrics",
    "LabelSets": "labelwise.metrics",
    "propensities": "labelwise.metrics",
    "OneVsRest": "labelwise.models",
    "LabelTree": "labelwise.models",
    "load_model": "labelwise.models",
    "cross_fit_scores": "labelwise.crossfit",
    "Pipeline": "labelwise.pipeline",
    "AutoModel": "labelwise.auto",
    "load_any": "labelwise.pipeline",
    "IterativeStratifiedKFold": "labelwise.split",
    "GroupIterativeStratifiedKFold": "labelwise.split",
    "split_report": "labelwise.split",
    "LabelwiseError": "labelwise.errors",
    "DataFormatError": "labelwise.errors",
    "LabelError": "labelwise.errors",
    "UnknownLabelError": "labelwise.errors",
    "DatasetError": "labelwise.errors",
    "MissingDependencyError": "labelwise.errors",
    "NotFittedError": "labelwise.errors",
    "ResourceLimitError": "labelwise.errors",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'labelwise' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
