"""Every config.pbtxt the store writes is a valid Triton model config for the ONNX Runtime backend.

Checked with Triton's own protobuf message (``inference.ModelConfig`` as shipped in tritonclient) parsed by
protobuf's text format, independently of the store's parser, against the ONNX graph of every version Triton
would load: platform, names, data types and dims (with Triton's implicit batch dimension).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import REPO
from google.protobuf import text_format
from onnx_fixtures import onnx, tiny_classifier, tiny_draft

from model_store.store import ModelStore

pytest_plugins = ["server_fixture"]

ONNX_RUNTIME = {"platform": "onnxruntime_onnx", "backend": "onnxruntime"}
DEFAULT_MODEL_FILENAME = "model.onnx"  # what the ONNX Runtime backend loads unless the config names another file
# ONNX element types whose Triton name is not simply TYPE_<ONNX name> (Triton's onnxruntime backend, onnx_utils.cc).
_RENAMED_TYPES = {"FLOAT": "TYPE_FP32", "FLOAT16": "TYPE_FP16", "DOUBLE": "TYPE_FP64", "BFLOAT16": "TYPE_BF16"}


def triton_model_config() -> ModuleType:
    """``model_config_pb2`` from tritonclient, loaded from its file.

    Importing it as ``tritonclient.grpc.model_config_pb2`` runs ``tritonclient.grpc``'s ``__init__``, which
    insists on grpcio (the ``grpc`` extra, which also pins an older protobuf); the message module itself needs
    only protobuf.
    """
    package = importlib.util.find_spec("tritonclient")
    if package is None or not package.submodule_search_locations:
        pytest.skip("needs tritonclient (the dev extra) for Triton's model_config.proto", allow_module_level=True)
    path = Path(package.submodule_search_locations[0]) / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    assert spec is not None and spec.loader is not None, f"tritonclient has no {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODEL_CONFIG = triton_model_config()


def triton_type(elem_type: int) -> str:
    name = onnx.TensorProto.DataType.Name(elem_type)
    return _RENAMED_TYPES.get(name, f"TYPE_{name}")


def onnx_dims(value: onnx.ValueInfoProto) -> list[int]:
    return [dim.dim_value if dim.HasField("dim_value") else -1 for dim in value.type.tensor_type.shape.dim]


def loaded_versions(config: Any, folder: Path) -> list[int]:
    """The versions Triton loads under the config's version policy (default: the latest one)."""
    versions = sorted(int(child.name) for child in folder.iterdir() if child.is_dir() and child.name.isdecimal())
    policy = config.version_policy
    if policy.HasField("specific"):
        return sorted(policy.specific.versions)
    if policy.HasField("all"):
        return versions
    latest = policy.latest.num_versions if policy.HasField("latest") else 1
    return versions[-latest:]


def tensor_problems(
    kind: str, declared: list[Any], graph_values: list[onnx.ValueInfoProto], batched: bool
) -> list[str]:
    graph = {value.name: value for value in graph_values}
    problems = []
    if sorted(tensor.name for tensor in declared) != sorted(graph):
        problems.append(f"{kind} names {[t.name for t in declared]} != ONNX {sorted(graph)}")
    for tensor in declared:
        value = graph.get(tensor.name)
        if value is None:
            continue
        declared_type = MODEL_CONFIG.DataType.Name(tensor.data_type)
        graph_type = triton_type(value.type.tensor_type.elem_type)
        if declared_type != graph_type:
            problems.append(f"{kind} {tensor.name}: {declared_type} != ONNX {graph_type}")
        dims = onnx_dims(value)
        if batched:
            if not dims or dims[0] != -1:
                problems.append(
                    f"{kind} {tensor.name}: max_batch_size > 0 needs a dynamic first dimension, ONNX has {dims}"
                )
            dims = dims[1:]
        if list(tensor.dims) != dims:
            problems.append(f"{kind} {tensor.name}: dims {list(tensor.dims)} != ONNX {dims}")
    return problems


def config_problems(folder: Path) -> list[str]:
    """What Triton's ONNX Runtime backend would refuse in this model folder (empty: nothing)."""
    try:
        config = text_format.Parse((folder / "config.pbtxt").read_text(), MODEL_CONFIG.ModelConfig())
    except text_format.ParseError as error:
        return [f"not a Triton ModelConfig: {error}"]
    problems = []
    if config.name != folder.name:
        problems.append(f"name {config.name!r} != folder {folder.name!r}")
    if config.platform != ONNX_RUNTIME["platform"] and config.backend != ONNX_RUNTIME["backend"]:
        problems.append(f"platform {config.platform!r} / backend {config.backend!r} is not ONNX Runtime")
    if config.max_batch_size < 0:
        problems.append(f"max_batch_size {config.max_batch_size} < 0")
    filename = config.default_model_filename or DEFAULT_MODEL_FILENAME
    for version in loaded_versions(config, folder):
        model_path = folder / str(version) / filename
        if not model_path.is_file():
            problems.append(f"version {version}: {model_path.name} missing")
            continue
        graph = onnx.load(model_path).graph
        initializers = {initializer.name for initializer in graph.initializer}
        inputs = [value for value in graph.input if value.name not in initializers]
        batched = config.max_batch_size > 0
        problems += [f"version {version}: {p}" for p in tensor_problems("input", list(config.input), inputs, batched)]
        problems += [
            f"version {version}: {p}"
            for p in tensor_problems("output", list(config.output), list(graph.output), batched)
        ]
    return problems


def model_folders(root: Path) -> list[Path]:
    return [root / name for name in ModelStore(root).models()]


def assert_valid_for_triton(root: Path) -> None:
    folders = model_folders(root)
    assert folders, f"{root} holds no model"
    problems = {folder.name: config_problems(folder) for folder in folders}
    assert problems == {folder.name: [] for folder in folders}


def test_the_exported_store_is_valid_for_tritons_onnx_runtime_backend(model_store_root: Path) -> None:
    assert_valid_for_triton(model_store_root)


def test_configs_rewritten_by_publish_promote_and_rollback_stay_valid(store_copy: ModelStore, tmp_path: Path) -> None:
    name = "microexpnet_xxs"
    store_copy.publish(tiny_classifier(tmp_path / "v2.onnx", seed=2), tiny_draft(size="XXS"))
    store_copy.promote(name, 2)
    assert_valid_for_triton(store_copy.root)
    store_copy.rollback(name)
    assert_valid_for_triton(store_copy.root)


def test_a_fixed_batch_model_is_valid_for_triton(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models", create=True)
    store.publish(tiny_classifier(tmp_path / "fixed.onnx", batch=1), tiny_draft(batch=1))

    assert_valid_for_triton(store.root)


def test_the_repository_store_is_valid_for_triton() -> None:
    root = REPO / "models"
    if not root.is_dir() or not ModelStore(root).models():
        pytest.skip(f"{root} holds no model yet")
    assert_valid_for_triton(root)


@pytest.mark.parametrize(
    ("original", "broken", "problem"),
    [
        ('platform: "onnxruntime_onnx"', 'platform: "tensorrt_plan"', "is not ONNX Runtime"),
        ("dims: [ 1, 84, 84 ]", "dims: [ 84, 84 ]", "dims [84, 84] != ONNX [1, 84, 84]"),
        ("data_type: TYPE_FP32", "data_type: TYPE_FP16", "TYPE_FP16 != ONNX TYPE_FP32"),
        ('name: "logits"', 'name: "scores"', "output names ['scores'] != ONNX ['logits']"),
        ("max_batch_size: 64", "max_batch_sise: 64", "not a Triton ModelConfig"),
    ],
    ids=["platform", "dims", "data-type", "output-name", "unknown-field"],
)
def test_the_check_catches_what_triton_would_refuse(tmp_path: Path, original: str, broken: str, problem: str) -> None:
    store = ModelStore(tmp_path / "models", create=True)
    store.publish(tiny_classifier(tmp_path / "model.onnx"), tiny_draft())
    config = store.root / "microexpnet_xxs" / "config.pbtxt"
    text = config.read_text()
    assert original in text
    config.write_text(text.replace(original, broken, 1))

    assert any(problem in line for line in config_problems(config.parent))
