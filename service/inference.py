"""One model version as an onnxruntime session, classifying a batch of faces in one run."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from model_store.metadata import ModelMetadata
from model_store.preprocess import PreprocessSpec, to_tensor
from model_store.store import ResolvedModel


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class LoadedModel:
    metadata: ModelMetadata
    session: ort.InferenceSession

    @property
    def spec(self) -> PreprocessSpec:
        return self.metadata.preprocess

    def logits(self, tensor: np.ndarray) -> np.ndarray:
        """Logits [N, labels] for a preprocessed tensor shaped and typed as the model's input."""
        (logits,) = self.session.run([self.metadata.output.name], {self.metadata.input.name: tensor})
        return logits

    def classify(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities [N, labels] for uint8 faces [N, input_size, input_size]."""
        return softmax(self.logits(to_tensor(faces, self.spec)))


def load_model(resolved: ResolvedModel, threads: int) -> LoadedModel:
    """A session for a verified model version, warmed up so the first request does not pay for allocation."""
    session = ort.InferenceSession(
        str(resolved.onnx_path), session_options(threads), providers=["CPUExecutionProvider"]
    )
    model = LoadedModel(resolved.metadata, session)
    side = model.spec.input_size
    model.classify(np.zeros((1, side, side), np.uint8))
    return model
