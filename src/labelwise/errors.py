"""The exceptions labelwise raises.

Every error labelwise raises on purpose derives from one root, so callers (and the CLI and
server edges) can catch them all with one clause::

    LabelwiseError
    ├── DataFormatError        bad input data; names the file, line and field
    ├── LabelError             label-space trouble
    │   └── UnknownLabelError  a label name or id that the label space does not hold
    ├── DatasetError           registry trouble: unknown name, failed download, bad checksum
    ├── MissingDependencyError an optional extra is not installed (carries the pip hint)
    ├── NotFittedError         a model or policy used before fit
    ├── ResourceLimitError     a job refused because its estimated memory exceeds the limit
    ├── OutputExistsError      an output path holding what must not be replaced
    └── ClusterError           the Dask cluster failed the job (labelwise.distributed)

The CLI prints ``error: <message>`` and exits with status 2 for any of these.
"""

from __future__ import annotations

__all__ = [
    "LabelwiseError",
    "DataFormatError",
    "LabelError",
    "UnknownLabelError",
    "DatasetError",
    "MissingDependencyError",
    "NotFittedError",
    "ResourceLimitError",
    "OutputExistsError",
    "ClusterError",
]


class LabelwiseError(Exception):
    """Root of every error labelwise raises on purpose."""


class DataFormatError(LabelwiseError, ValueError):
    """Input data that does not follow its format.

    The message names the place: ``path:line: field: what was expected``. ``path``, ``line``
    (1-based) and ``field`` are kept as attributes for programs that want them.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.reason = message
        place = ""
        if self.path is not None:
            place = self.path
            if line is not None:
                place += f":{line}"
        elif line is not None:
            place = f"line {line}"
        parts = [p for p in (place, field) if p]
        super().__init__(": ".join([*parts, message]))


class LabelError(LabelwiseError, ValueError):
    """A label space that is inconsistent (duplicate names, cycles, bad parents)."""


class UnknownLabelError(LabelError, KeyError):
    """A label name or id that the label space does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DatasetError(LabelwiseError):
    """Dataset registry trouble: unknown name or split, failed download, checksum mismatch."""


class MissingDependencyError(LabelwiseError, ImportError):
    """An optional dependency is missing; the message carries the install hint."""

    def __init__(self, package: str, extra: str, purpose: str = "") -> None:
        what = f" for {purpose}" if purpose else ""
        super().__init__(
            f"{package} is needed{what} but is not installed: pip install 'labelwise[{extra}]'"
        )
        self.package = package
        self.extra = extra


class NotFittedError(LabelwiseError, AttributeError):
    """A model, featurizer or decision policy used before ``fit``."""


class ResourceLimitError(LabelwiseError, MemoryError):
    """A job refused up front because its estimated peak memory exceeds the limit."""


class OutputExistsError(LabelwiseError, FileExistsError):
    """An output path that holds what labelwise must not replace: a user's folder or file,
    or an input of the same command."""


class ClusterError(LabelwiseError):
    """The Dask cluster failed the job: scheduler unreachable or lost, tasks that kept
    killing workers. Nothing was saved. (Also importable from labelwise.distributed.)"""
