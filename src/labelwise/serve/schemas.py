"""Request and response bodies of the HTTP API (pydantic models: they are the OpenAPI schema).

Types are strict (``"1.5"`` is not a number, ``1`` is not a string), numbers finite; what
pydantic cannot check (feature ids against the model's ``n_features``, one input per item,
the item count against ``--max-items``) is checked by :mod:`labelwise.serve.inputs` with the
same field paths (``items[3].features.indices[7]``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict

Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
FeatureId = Annotated[int, Strict(), Field(ge=0, le=2**62)]
ItemId = Annotated[str, Strict()] | Annotated[int, Strict()]
Text = Annotated[str, Strict()]

#: most candidates per item a request may ask for
MAX_TOP_K = 1000


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Features(_Closed):
    """A sparse feature vector: feature ids and their values (same length, ids unique); a
    value null is missing (accepted by a model that fills missing values: ``fills_missing``
    in its info)."""

    indices: list[FeatureId]
    values: list[Number | None]


class Item(_Closed):
    """One item to label: ``text`` (text models), or ``features`` / ``vector`` (numeric
    models; null for a missing value, where the model fills them); exactly one of the
    three."""

    id: ItemId | None = None
    text: Text | None = None
    features: Features | None = None
    vector: list[Number | None] | None = None


class ThresholdPolicy(_Closed):
    """Choose each candidate whose probability >= threshold."""

    threshold: Annotated[float, Strict(), Field(ge=0.0, le=1.0)]


class PrecisionPolicy(_Closed):
    """Choose each candidate whose calibrated probability >= precision (pointwise)."""

    precision: Annotated[float, Strict(), Field(gt=0.0, le=1.0)]


Policy = Literal["tuned", "top_k"] | ThresholdPolicy | PrecisionPolicy


class PredictRequest(_Closed):
    items: list[Item] = Field(min_length=1)
    top_k: Annotated[int, Strict(), Field(ge=1, le=MAX_TOP_K)] = 10
    policy: Policy = "tuned"


class Candidate(BaseModel):
    label: str
    score: float
    probability: float


class PredictedItem(BaseModel):
    id: str | int | None = None
    labels: list[str]
    probabilities: dict[str, float]
    candidates: list[Candidate]


class PredictResponse(BaseModel):
    model: str
    version: str
    policy: Any
    items: list[PredictedItem]


class ModelInfo(BaseModel):
    name: str
    version: str
    family: str
    featurizer: str | None
    input: Literal["text", "features"]
    n_features: int | None
    #: whether a null feature value (missing) is filled (the training rows held missing values)
    fills_missing: bool
    n_labels: int
    n_open_labels: int
    calibrated: bool
    policy: dict[str, Any] | None
    tuning: dict[str, Any] | None
    loaded_at: str
    load_seconds: float


class ModelList(BaseModel):
    models: list[ModelInfo]


class LabelInfo(BaseModel):
    index: int
    name: str
    description: str | None
    kind: str
    examples: int | None
    threshold: float | None


class LabelPage(BaseModel):
    model: str
    version: str
    total: int
    offset: int
    limit: int
    labels: list[LabelInfo]


class NewLabel(_Closed):
    name: Annotated[str, Strict(), Field(min_length=1)]
    description: Annotated[str, Strict()] | None = None


class Example(_Closed):
    text: Annotated[str, Strict(), Field(min_length=1)]
    labels: list[Annotated[str, Strict(), Field(min_length=1)]] = Field(min_length=1)


class LearnRequest(_Closed):
    examples: list[Example] = Field(default_factory=list)
    labels: list[NewLabel] = Field(default_factory=list)


class LearnResponse(BaseModel):
    model: str
    version: str
    previous_version: str
    labels_added: list[str]
    examples: int
    warnings: list[str]


class ReloadResponse(BaseModel):
    model: str
    version: str
    previous_version: str | None
    changed: bool
    load_seconds: float


class Health(BaseModel):
    status: str
    models: list[str] = Field(default_factory=list)


class ProblemBody(BaseModel):
    type: str
    title: str
    status: int
    detail: str
