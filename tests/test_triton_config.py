"""The store's folders are a valid Triton model repository: config.pbtxt matches each ONNX graph."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx_fixtures import onnx, publish_tiny, tiny_classifier, tiny_draft

from model_store import triton
from model_store.store import ModelStore
from model_store.vocabulary import SIZES

# Triton's data types for ONNX element types, written out independently of the store's own table.
_TRITON_TYPE_OF_ONNX = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.INT64: "TYPE_INT64"}


Signature = list[tuple[str, str, list[int]]]  # (name, Triton type, dims with -1 for a dynamic dimension)


def _graph_tensors(values: list[onnx.ValueInfoProto]) -> Signature:
    return [
        (
            value.name,
            _TRITON_TYPE_OF_ONNX[value.type.tensor_type.elem_type],
            [dim.dim_value if dim.HasField("dim_value") else -1 for dim in value.type.tensor_type.shape.dim],
        )
        for value in values
    ]


def _config_tensors(config: triton.TritonConfig, tensors: tuple[triton.TritonTensor, ...]) -> Signature:
    batch = [-1] if config.max_batch_size > 0 else []  # Triton leaves a batch dimension out of dims
    return [(tensor.name, tensor.data_type, [*batch, *tensor.dims]) for tensor in tensors]


def _assert_valid_triton_repository(root: Path) -> None:
    models = [folder for folder in root.iterdir() if folder.is_dir() and not folder.name.startswith(".")]
    assert models
    for folder in models:
        config = triton.parse((folder / "config.pbtxt").read_text())
        versions = sorted(int(child.name) for child in folder.iterdir() if child.name.isdecimal())
        assert config.name == folder.name
        assert config.platform == "onnxruntime_onnx"
        assert config.versions is not None and set(config.versions) <= set(versions)
        for version in versions:
            graph = onnx.load(folder / str(version) / "model.onnx").graph
            assert _config_tensors(config, config.inputs) == _graph_tensors(graph.input)
            assert _config_tensors(config, config.outputs) == _graph_tensors(graph.output)


def test_a_published_store_is_a_valid_triton_repository(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models", create=True)
    for size in SIZES:
        publish_tiny(store, tmp_path / "work", size=size)
    publish_tiny(store, tmp_path / "work", size="XXS", seed=1)

    _assert_valid_triton_repository(store.root)
    config = triton.parse((store.root / "microexpnet_xxs" / "config.pbtxt").read_text())
    assert config.max_batch_size == triton.MAX_BATCH_SIZE
    assert config.inputs == (triton.TritonTensor("input", "TYPE_FP32", (1, 84, 84)),)
    assert config.outputs == (triton.TritonTensor("logits", "TYPE_FP32", (7,)),)


def test_a_fixed_batch_model_gets_max_batch_size_zero_and_full_dims(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models", create=True)
    store.publish(tiny_classifier(tmp_path / "fixed.onnx", batch=1), tiny_draft(batch=1))

    _assert_valid_triton_repository(store.root)
    config = triton.parse((store.root / "microexpnet_xxs" / "config.pbtxt").read_text())
    assert config.max_batch_size == 0
    assert config.inputs[0].dims == (1, 1, 84, 84)


def test_the_version_policy_follows_promote_and_rollback(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models", create=True)
    for seed in range(3):
        publish_tiny(store, tmp_path / "work", seed=seed)
    config_path = store.root / "microexpnet_xxs" / "config.pbtxt"

    def served_by_triton() -> tuple[int, ...] | None:
        return triton.parse(config_path.read_text()).versions

    assert served_by_triton() == (3,)
    store.promote("microexpnet_xxs", 1)
    assert served_by_triton() == (1,)
    store.rollback("microexpnet_xxs")
    assert served_by_triton() == (3,)
    store.rollback("microexpnet_xxs")
    assert served_by_triton() == (2,)


# What protobuf's own text_format prints for a config of this shape (repeated fields spelled out).
PROTOBUF_PRINTED = """
name: "microexpnet_xxs"
platform: "onnxruntime_onnx"
version_policy {
  specific {
    versions: 1
    versions: 4
  }
}
max_batch_size: 8
input {
  name: "input"
  data_type: TYPE_FP32
  dims: 1
  dims: 84
  dims: 84
}
output {
  name: "logits"
  data_type: TYPE_FP32
  dims: 7
}
"""

# Spellings from Triton's documentation: comments, `:` before messages, `<...>`, `;` separators.
HAND_WRITTEN = """
# a hand-written config
name: 'microexpnet_xxs'  # single quotes
platform: "onnxruntime_onnx"
max_batch_size: 8
version_policy: < specific: { versions: [1, 4] } >
input: [ { name: "input", data_type: TYPE_FP32, dims: [ 1, 84, 84 ] } ];
output { name: "logits" data_type: TYPE_FP32 dims: [ 7 ] reshape: { shape: [ 7 ] } }
instance_group [ { count: 2, kind: KIND_CPU } ]
dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 100 }
parameters { key: "intra_op_thread_count" value: { string_value: "1" } }
"""


@pytest.mark.parametrize("text", [PROTOBUF_PRINTED, HAND_WRITTEN], ids=["protobuf-printed", "hand-written"])
def test_the_parser_reads_other_spellings_of_the_same_config(text: str) -> None:
    assert triton.parse(text) == triton.TritonConfig(
        name="microexpnet_xxs",
        platform="onnxruntime_onnx",
        max_batch_size=8,
        inputs=(triton.TritonTensor("input", "TYPE_FP32", (1, 84, 84)),),
        outputs=(triton.TritonTensor("logits", "TYPE_FP32", (7,)),),
        versions=(1, 4),
    )


def test_a_config_without_a_specific_policy_has_no_versions() -> None:
    text = PROTOBUF_PRINTED.replace("specific {\n    versions: 1\n    versions: 4\n  }", "latest { num_versions: 2 }")

    assert triton.parse(text).versions is None


@pytest.mark.parametrize(
    "text",
    [
        'name: "x" input [ { name: "a" }',  # unclosed
        'name "x"',  # scalar without ':'
        "name: }",
        'name: "x" @',
        'input [ { name: "a" data_type: TYPE_FP32 dims: [ 1 2 ] } ]',  # missing ','
        "input [ { data_type: TYPE_FP32 dims: [ 1 ] } ]",  # tensor without a name
        'max_batch_size: "eight"',
    ],
)
def test_malformed_configs_raise_a_config_error(text: str) -> None:
    with pytest.raises(triton.TritonConfigError):
        triton.parse(text)
