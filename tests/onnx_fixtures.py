"""Small real ONNX classifiers and drafts for store tests (built with onnx.helper, run by onnxruntime)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_store.labels import CANONICAL_LABELS
from model_store.metadata import ModelDraft, Provenance, TensorSpec
from model_store.preprocess import PreprocessSpec
from model_store.store import ModelStore

onnx = pytest.importorskip("onnx", reason="building test models needs onnx (the train extra)")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

SEVEN_LABELS = [label for label in CANONICAL_LABELS if label != "contempt"]


def tiny_classifier(
    path: Path, *, classes: int = 7, input_size: int = 84, batch: int | str = "N", seed: int = 0
) -> Path:
    """input float32 [batch, 1, S, S] -> Flatten -> Gemm -> logits float32 [batch, classes]."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 0.01, (input_size * input_size, classes)).astype(np.float32)
    bias = rng.normal(0, 0.01, classes).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "weight", "bias"], ["logits"]),
        ],
        "tiny_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 1, input_size, input_size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])],
        initializer=[numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")],
    )
    # A fixed, modest opset and IR version that every onnxruntime we support can load.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def tiny_draft(
    *, size: str = "XXS", labels: list[str] | None = None, input_size: int = 84, batch: int = -1
) -> ModelDraft:
    labels = labels or SEVEN_LABELS
    return ModelDraft(
        size=size,
        architecture=f"microexpnet_{size.lower()}",
        parameters=input_size * input_size * len(labels) + len(labels),
        labels=labels,
        input=TensorSpec(name="input", shape=[batch, 1, input_size, input_size]),
        output=TensorSpec(name="logits", shape=[batch, len(labels)]),
        preprocess=PreprocessSpec(input_size=input_size, resize_size=max(96, input_size)),
        provenance=Provenance(dataset="synthetic", seed=0),
    )


def publish_tiny(store: ModelStore, work: Path, *, size: str = "XXS", seed: int = 0) -> int:
    """Publish a fresh tiny model of `size`; returns its version."""
    work.mkdir(parents=True, exist_ok=True)
    onnx_path = tiny_classifier(work / f"{size.lower()}-{seed}.onnx", seed=seed)
    return store.publish(onnx_path, tiny_draft(size=size))
