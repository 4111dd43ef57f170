"""A published model (``models/<name>/<version>``) as a teacher: its ONNX graph on onnxruntime, inference only.

The graph is the model the service answers with, and onnxruntime runs these depthwise-separable networks about
seven times faster than torch's eager CPU kernels (dsvgg5 M, 512 faces, one thread: 1.1 s against 8.1 s), which
matters when a teacher labels every training face. Fine-tuning from a published model goes the other way, back
into torch (``trainer.warm_start``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort
import torch
from torch import nn

from model_store.metadata import ModelMetadata
from model_store.preprocess import PreprocessSpec


class PublishedModel(nn.Module):
    def __init__(self, version_dir: Path) -> None:
        super().__init__()
        self.metadata = ModelMetadata.model_validate_json((version_dir / "metadata.json").read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self._session = ort.InferenceSession(str(version_dir / "model.onnx"), options, ["CPUExecutionProvider"])

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        (logits,) = self._session.run([self.metadata.output.name], {self.metadata.input.name: faces.cpu().numpy()})
        return torch.from_numpy(logits)


@dataclass(frozen=True)
class PublishedTeacher:
    """What a teacher needs of a published model, as a checkpoint gives it (``trainer.checkpoint``)."""

    version_dir: Path
    labels: list[str]
    preprocess: PreprocessSpec

    @classmethod
    def load(cls, version_dir: Path) -> PublishedTeacher:
        metadata = ModelMetadata.model_validate_json((version_dir / "metadata.json").read_text())
        return cls(version_dir, list(metadata.labels), metadata.preprocess)

    def build_model(self) -> nn.Module:
        return PublishedModel(self.version_dir).eval()
