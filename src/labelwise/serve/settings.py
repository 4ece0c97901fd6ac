"""The server's settings, parsed once at the edge (the CLI) into one typed object."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from labelwise.errors import LabelwiseError

__all__ = ["ServeSettings", "parse_size"]

#: default --max-body: 8 MiB
MAX_BODY = 8 * 1024 * 1024
MAX_ITEMS = 1000
MAX_BATCH = 256
BATCH_WAIT_MS = 0.0


@dataclass(frozen=True)
class ServeSettings:
    """``models``: served name -> model or pipeline directory. ``token_file``: the bearer
    token of the write routes (None: they answer 403). ``allow_learn``: the models that
    ``/learn`` may change. ``max_items`` per predict request, ``max_body`` bytes per request.
    ``batching`` groups concurrent requests to one model into one model call
    (:mod:`labelwise.serve.batching`); ``batch_wait_ms`` (0: take only what is already
    queued, never wait) and ``max_batch`` (items) shape the batches.
    ``state_dir``: a folder the workers of one server share, where a reload or learn tells
    the other workers about the new version (None with one worker)."""

    models: dict[str, str]
    token_file: str | None = None
    allow_learn: tuple[str, ...] = ()
    max_items: int = MAX_ITEMS
    max_body: int = MAX_BODY
    batching: bool = True
    batch_wait_ms: float = BATCH_WAIT_MS
    max_batch: int = MAX_BATCH
    state_dir: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.models:
            raise LabelwiseError("no model to serve")
        unknown = sorted(set(self.allow_learn) - set(self.models))
        if unknown:
            raise LabelwiseError(f"--allow-learn: no served model named {', '.join(unknown)} "
                                 f"(served: {', '.join(self.models)})")
        for key, low in (("max_items", 1), ("max_body", 1), ("max_batch", 1)):
            if getattr(self, key) < low:
                raise LabelwiseError(f"--{key.replace('_', '-')} must be >= {low}, got "
                                     f"{getattr(self, key)}")
        if not self.batch_wait_ms >= 0:
            raise LabelwiseError(f"--batch-wait-ms must be >= 0, got {self.batch_wait_ms}")

    def read_token(self) -> str | None:
        if self.token_file is None:
            return None
        text = Path(self.token_file).read_text(encoding="utf-8").strip()
        if not text:
            raise LabelwiseError(f"{self.token_file}: the token file is empty")
        return text

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        d = json.loads(text)
        d["allow_learn"] = tuple(d.get("allow_learn", ()))
        return cls(**d)


def parse_size(text: str) -> int:
    """``8MiB``, ``512KiB``, ``1GB``, ``1000`` -> bytes."""
    units = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2,
             "gb": 1000**3, "gib": 1024**3, "k": 1024, "m": 1024**2, "g": 1024**3}
    s = text.strip().lower()
    num = s.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = s[len(num):].strip()
    try:
        value = float(num)
    except ValueError:
        value = -1.0
    if unit not in units or not value > 0:
        raise LabelwiseError(f"--max-body: {text!r} is not a size (e.g. 8MiB, 512KiB, 1000000)")
    return int(value * units[unit])
