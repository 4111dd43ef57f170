"""Triton Inference Server ``config.pbtxt``: rendered from a version's metadata, parsed back to check it.

The store keeps each model folder a valid Triton model (platform ``onnxruntime_onnx``), so the same
directory can be served by Triton or KServe. The parser reads the protobuf text format generically (both
``input [ {...} ]`` and repeated ``input {...}`` spellings, comments, ``<...>`` messages), so a config
edited by hand or written by another tool is read the way Triton reads it.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from model_store.metadata import ModelMetadata, TensorSpec

PLATFORM = "onnxruntime_onnx"
MAX_BATCH_SIZE = 64

TRITON_TYPES: dict[str, str] = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "float64": "TYPE_FP64",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "int8": "TYPE_INT8",
    "uint8": "TYPE_UINT8",
    "bool": "TYPE_BOOL",
}


class TritonConfigError(ValueError):
    """A config.pbtxt that is not valid text format or lacks what a Triton ONNX model needs."""


@dataclass(frozen=True)
class TritonTensor:
    name: str
    data_type: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class TritonConfig:
    name: str | None
    platform: str | None
    max_batch_size: int
    inputs: tuple[TritonTensor, ...]
    outputs: tuple[TritonTensor, ...]
    versions: tuple[int, ...] | None  # a `specific` version policy; None for Triton's other policies


def config_for(metadata: ModelMetadata, served_version: int, max_batch_size: int = MAX_BATCH_SIZE) -> TritonConfig:
    """The config that serves `served_version` of a model described by `metadata`."""
    # Triton's batching convention: with max_batch_size > 0 the batch dimension is implicit in `dims`.
    batched = metadata.input.shape[0] == -1 and metadata.output.shape[0] == -1

    def tensor(spec: TensorSpec) -> TritonTensor:
        dims = spec.shape[1:] if batched else spec.shape
        return TritonTensor(name=spec.name, data_type=TRITON_TYPES[spec.dtype], dims=tuple(dims))

    return TritonConfig(
        name=metadata.name,
        platform=PLATFORM,
        max_batch_size=max_batch_size if batched else 0,
        inputs=(tensor(metadata.input),),
        outputs=(tensor(metadata.output),),
        versions=(served_version,),
    )


def render(config: TritonConfig) -> str:
    lines = [
        "# Written by the microexp model store; promote and rollback rewrite version_policy.",
        f"name: {json.dumps(config.name)}",
        f"platform: {json.dumps(config.platform)}",
        f"max_batch_size: {config.max_batch_size}",
    ]
    if config.versions is not None:
        versions = ", ".join(str(version) for version in config.versions)
        lines.append(f"version_policy: {{ specific: {{ versions: [ {versions} ] }} }}")
    for field, tensors in (("input", config.inputs), ("output", config.outputs)):
        lines.append(f"{field} [")
        blocks = [
            f"  {{\n    name: {json.dumps(t.name)}\n    data_type: {t.data_type}\n"
            f"    dims: [ {', '.join(str(dim) for dim in t.dims)} ]\n  }}"
            for t in tensors
        ]
        lines.append(",\n".join(blocks))
        lines.append("]")
    return "\n".join(lines) + "\n"


def parse(text: str) -> TritonConfig:
    fields = _Parser(text).document()
    try:
        return TritonConfig(
            name=_scalar(fields, "name", str, None),
            platform=_scalar(fields, "platform", str, None),
            max_batch_size=_scalar(fields, "max_batch_size", int, 0),
            inputs=tuple(_tensor(message) for message in _messages(fields, "input")),
            outputs=tuple(_tensor(message) for message in _messages(fields, "output")),
            versions=_specific_versions(fields),
        )
    except (KeyError, TypeError) as error:
        raise TritonConfigError(f"config does not describe a model: {error}") from None


Fields = dict[str, list[Any]]  # every text-format field may repeat, so each maps to all its values


def _scalar(fields: Fields, key: str, kind: type, default: Any) -> Any:
    values = fields.get(key, [])
    if not values:
        return default
    if len(values) > 1 or not isinstance(values[0], kind) or isinstance(values[0], bool):
        raise TypeError(f"{key} must be a single {kind.__name__}, got {values}")
    return values[0]


def _messages(fields: Fields, key: str) -> list[Fields]:
    values = fields.get(key, [])
    if not all(isinstance(value, dict) for value in values):
        raise TypeError(f"{key} must hold messages")
    return values


def _tensor(fields: Fields) -> TritonTensor:
    name = _scalar(fields, "name", str, None)
    data_type = _scalar(fields, "data_type", str, None)
    dims = fields.get("dims", [])
    if name is None or data_type is None or not all(isinstance(dim, int) for dim in dims):
        raise TypeError(f"a tensor needs name, data_type and integer dims, got {fields}")
    return TritonTensor(name=name, data_type=data_type, dims=tuple(dims))


def _specific_versions(fields: Fields) -> tuple[int, ...] | None:
    policies = _messages(fields, "version_policy")
    if not policies:
        return None
    specific = _messages(policies[-1], "specific")
    if not specific:
        return None
    return tuple(specific[-1].get("versions", []))


# Text format tokens. Strings keep their quotes (decoded later), numbers and identifiers are bare.
_TOKEN = re.compile(
    r"""(?P<space>\s+|\#[^\n]*)
    |(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    |(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
    |(?P<punct>[{}\[\]<>:,;])
    |(?P<bad>.)""",
    re.VERBOSE,
)
_CLOSING = {"{": "}", "<": ">"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    line: int


def _tokens(text: str) -> Iterator[_Token]:
    line = 1
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "bad"
        if kind == "bad":
            raise TritonConfigError(f"line {line}: unexpected character {match.group()!r}")
        if kind != "space":
            yield _Token(kind, match.group(), line)
        line += match.group().count("\n")


class _Parser:
    def __init__(self, text: str) -> None:
        self._tokens = list(_tokens(text))
        self._pos = 0

    def document(self) -> Fields:
        return self._message(closing=None)

    def _peek(self) -> _Token | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _next(self, expected: str) -> _Token:
        token = self._peek()
        if token is None:
            raise TritonConfigError(f"unexpected end of config, expected {expected}")
        self._pos += 1
        return token

    def _accept(self, punct: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == "punct" and token.text == punct:
            self._pos += 1
            return True
        return False

    def _message(self, closing: str | None) -> Fields:
        fields: Fields = {}
        while True:
            token = self._peek()
            if token is None:
                if closing is not None:
                    raise TritonConfigError(f"unexpected end of config, expected {closing!r}")
                return fields
            if closing is not None and self._accept(closing):
                return fields
            if self._accept(",") or self._accept(";"):
                continue
            name = self._next("a field name")
            if name.kind != "ident":
                raise TritonConfigError(f"line {name.line}: expected a field name, got {name.text!r}")
            has_colon = self._accept(":")
            fields.setdefault(name.text, []).extend(self._values(name, has_colon))

    def _values(self, field: _Token, has_colon: bool) -> list[Any]:
        if self._accept("["):
            values: list[Any] = []
            while not self._accept("]"):
                if values and not self._accept(","):
                    token = self._next("',' or ']'")
                    raise TritonConfigError(f"line {token.line}: expected ',' or ']', got {token.text!r}")
                values.append(self._value(field, has_colon))
            return values
        return [self._value(field, has_colon)]

    def _value(self, field: _Token, has_colon: bool) -> Any:
        token = self._next(f"a value for {field.text}")
        if token.kind == "punct" and token.text in _CLOSING:
            return self._message(_CLOSING[token.text])
        if not has_colon:
            raise TritonConfigError(f"line {field.line}: expected ':' after {field.text}")
        if token.kind == "string":
            return ast.literal_eval(token.text)
        if token.kind == "number":
            return int(token.text) if re.fullmatch(r"[-+]?\d+", token.text) else float(token.text)
        if token.kind == "ident":
            return token.text
        raise TritonConfigError(f"line {token.line}: expected a value for {field.text}, got {token.text!r}")
