"""What the store records about each model version (``metadata.json``) and what an export hands to publish."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from model_store.preprocess import PreprocessSpec
from model_store.vocabulary import CANONICAL_LABELS, DEFAULT_FAMILY, Size, check_family, model_name, parse_size
from model_store.vocabulary import SIZES as SIZES  # imported from here by code written before the vocabulary

DType = Literal["float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool"]


def validation_summary(error: ValidationError) -> str:
    """A pydantic error as one line: the first problem, and how many more there are."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where + ': ' if where else ''}{first['msg']}{more}"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TensorSpec(_Frozen):
    """One ONNX graph input or output; -1 marks a dynamic dimension (the batch)."""

    name: str = Field(min_length=1, max_length=128)
    shape: list[int] = Field(min_length=1)
    dtype: DType = "float32"

    @field_validator("shape")
    @classmethod
    def _dims(cls, shape: list[int]) -> list[int]:
        if any(dim == 0 or dim < -1 for dim in shape):
            raise ValueError(f"dimensions must be positive or -1 (dynamic), got {shape}")
        return shape


class Provenance(_Frozen):
    """How the model was trained; every field optional so models exported elsewhere can be published."""

    dataset: str | None = None
    pixels: str | None = Field(None, description="what the training faces' pixels were, e.g. FER2013's original ones")
    split: str | None = None
    teacher: str | None = None
    temperature: float | None = None
    kd_lambda: float | None = None
    epochs: int | None = Field(None, description="epochs trained when these weights were saved (the best on val)")
    seed: int | None = None
    recipe: str | None = Field(None, description="optimizer, schedule, batch and augmentation, in words")
    recipe_name: str | None = Field(
        None, description="the trainer recipe that trains it (trainer/recipes/NAME.toml: python -m trainer run NAME)"
    )
    git_commit: str | None = None


class ClassMetrics(_Frozen):
    precision: float = Field(ge=0, le=1)
    recall: float = Field(ge=0, le=1)


class Metrics(_Frozen):
    val_accuracy: float | None = Field(None, ge=0, le=1)
    test_accuracy: float | None = Field(None, ge=0, le=1)
    test_accuracy_8crop: float | None = Field(None, ge=0, le=1)
    per_class: dict[str, ClassMetrics] | None = None
    confusion_matrix: list[list[int]] | None = Field(
        None, description="rows: true label, columns: predicted label, both in the model's label order"
    )


class ModelDraft(_Frozen):
    """An exported model's description before publishing; the store adds identity and integrity fields."""

    family: str = DEFAULT_FAMILY
    size: Size
    architecture: str = Field(min_length=1, description="the trainer's registered model name")
    parameters: int = Field(ge=0)
    labels: list[str] = Field(min_length=2, description="canonical labels in output order")
    input: TensorSpec
    output: TensorSpec
    preprocess: PreprocessSpec
    provenance: Provenance = Provenance()
    metrics: Metrics = Metrics()

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        return parse_size(value) if isinstance(value, str) else value

    @field_validator("family")
    @classmethod
    def _family(cls, family: str) -> str:
        return check_family(family)

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str]) -> list[str]:
        unknown = [label for label in labels if label not in CANONICAL_LABELS]
        if unknown:
            raise ValueError(f"labels {unknown} are not canonical; use: {', '.join(CANONICAL_LABELS)}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels repeat: {labels}")
        return labels

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        side = self.preprocess.input_size
        expected_input = [1 if self.preprocess.grayscale else 3, side, side]
        if len(self.input.shape) != 4 or self.input.shape[1:] != expected_input:
            raise ValueError(f"input shape {self.input.shape} does not match preprocess: [N, *{expected_input}]")
        classes = len(self.labels)
        if len(self.output.shape) != 2 or self.output.shape[1] != classes:
            raise ValueError(f"output shape {self.output.shape} does not match {classes} labels: [N, {classes}]")
        matrix = self.metrics.confusion_matrix
        if matrix is not None and (len(matrix) != classes or any(len(row) != classes for row in matrix)):
            raise ValueError(f"confusion matrix must be {classes} x {classes}")
        extra = set(self.metrics.per_class or {}) - set(self.labels)
        if extra:
            raise ValueError(f"per-class metrics for labels the model does not predict: {sorted(extra)}")
        return self


class ModelMetadata(ModelDraft):
    """``metadata.json`` of one published, immutable version."""

    name: str
    version: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of model.onnx")
    file_bytes: int = Field(ge=1, description="size of model.onnx")
    created_at: datetime

    @model_validator(mode="after")
    def _name_matches(self) -> Self:
        expected = model_name(self.family, self.size)
        if self.name != expected:
            raise ValueError(f"name {self.name!r} does not match family and size ({expected!r})")
        return self

    def to_json(self) -> str:
        """The metadata.json text, identity and integrity fields first for people reading it."""
        data = self.model_dump(mode="json")
        first = {key: data.pop(key) for key in ("name", "version", "sha256", "file_bytes", "created_at")}
        return json.dumps({**first, **data}, indent=2) + "\n"

    @classmethod
    def from_draft(
        cls, draft: ModelDraft, *, version: int, sha256: str, file_bytes: int, created_at: datetime
    ) -> ModelMetadata:
        return cls(
            **draft.model_dump(),
            name=model_name(draft.family, draft.size),
            version=version,
            sha256=sha256,
            file_bytes=file_bytes,
            created_at=created_at,
        )


def draft_from_json(text: str | bytes) -> ModelDraft:
    """A draft from JSON; a published version's metadata.json works too (the store's own fields are dropped)."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("a draft is a JSON object")
    store_fields = ModelMetadata.model_fields.keys() - ModelDraft.model_fields.keys()
    return ModelDraft.model_validate({key: value for key, value in data.items() if key not in store_fields})
