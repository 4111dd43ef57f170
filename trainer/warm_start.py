"""Start a run from a published model: the store's ONNX weights back in a trainable torch model.

The store holds graphs whose batch norms were folded into the convolutions before them (``trainer.export``), so
each folded pair is unfolded again: the convolution takes the folded weights and its batch norm is set, from the
statistics of the convolution's output on real faces, so that it computes (x - μ)/σ·σ + μ + b, the folded
function in eval mode and, for batches like those faces, in training mode too. A fine-tune then starts where the
published model stands instead of from batch norms that would rescale every layer at its first step.

The classifier's rows are matched by label name, so a 7-class FER2013 model starts an 8-class FER+ model: the
classes it knew keep their rows and a new class (contempt) starts from the layer's own initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn

from model_store.metadata import ModelMetadata
from model_store.preprocess import PreprocessSpec, centre_crop
from trainer.augment import scale
from trainer.models.fusion import foldable_pairs

# Largest difference allowed between the published graph's logits and the unfolded model's, on the calibration
# faces, for the classes both predict (float32 rounding through a dozen layers stays far below it).
PARITY_TOLERANCE = 1e-3
# Training faces whose centre crops calibrate a published model's batch norms.
CALIBRATION_FACES = 2048


class WarmStartError(ValueError):
    """A published model that cannot start this run (another architecture, or weights that do not reproduce it)."""


def _folded_pairs(model: nn.Module) -> list[tuple[str, str, nn.Conv2d, nn.BatchNorm2d]]:
    """(convolution name, batch norm name, convolution, batch norm) for every pair the export folds."""
    return [
        (
            pair.qualified(pair.conv_name),
            pair.qualified(pair.bn_name),
            getattr(pair.parent, pair.conv_name),
            getattr(pair.parent, pair.bn_name),
        )
        for pair in foldable_pairs(model)
    ]


def _classifier(model: nn.Module) -> tuple[str, nn.Linear]:
    name, layer = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    return name, layer


def calibration_faces(grids: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    """Model inputs [N, 1, S, S] that calibrate a published model's batch norms: the first faces' centre crops."""
    return scale(centre_crop(grids[:CALIBRATION_FACES], spec).contiguous(), spec)


@torch.no_grad()
def load_published(model: nn.Module, version_dir: Path, labels: Sequence[str], faces: torch.Tensor) -> str:
    """Load the published model in ``version_dir`` (``models/<name>/<version>``) into ``model``, whose outputs are
    ``labels``; ``faces`` [N, 1, S, S] are model inputs that calibrate the batch norms and check the result.
    Returns the published model's identity for provenance."""
    metadata = ModelMetadata.model_validate_json((version_dir / "metadata.json").read_text())
    graph = onnx.load(str(version_dir / "model.onnx"))
    weights = {item.name: torch.from_numpy(numpy_helper.to_array(item).copy()) for item in graph.graph.initializer}
    head_name, head = _classifier(model)
    pairs = _folded_pairs(model)
    state = model.state_dict()
    heads = {f"{head_name}.weight", f"{head_name}.bias"}
    for key, value in weights.items():
        if key in state and key not in heads and state[key].shape != value.shape:
            raise WarmStartError(f"{version_dir}: {key} is {tuple(value.shape)} there, {tuple(state[key].shape)} here")
    folded = {k for _, bn_name, _, _ in pairs for k in state if k.startswith(bn_name + ".")}
    missing = [k for k in state if k not in weights.keys() | heads | folded and not k.endswith("num_batches_tracked")]
    if missing:
        raise WarmStartError(f"{version_dir} ({metadata.architecture}) lacks {', '.join(missing[:5])}")
    model.load_state_dict({k: v for k, v in weights.items() if k in state and k not in heads}, strict=False)

    # Folded bias b: the convolution gives W·x, its batch norm adds b (for now an identity otherwise).
    biases = {}
    for name, _, conv, bn in pairs:
        biases[name] = weights[f"{name}.bias"]
        if conv.bias is not None:
            conv.bias.zero_()
        bn.weight.fill_(1.0)
        bn.bias.copy_(biases[name])
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)

    index = {label: i for i, label in enumerate(metadata.labels)}
    for row, label in enumerate(labels):
        if label in index:
            head.weight[row] = weights[f"{head_name}.weight"][index[label]]
            head.bias[row] = weights[f"{head_name}.bias"][index[label]]

    model.eval()
    outputs: dict[str, torch.Tensor] = {}
    hooks = [
        bn.register_forward_hook(lambda _m, inputs, _o, name=name: outputs.__setitem__(name, inputs[0]))
        for name, _, _, bn in pairs
    ]
    model(faces)
    for hook in hooks:
        hook.remove()
    for name, _, _, bn in pairs:
        mean, var = outputs[name].mean(dim=(0, 2, 3)), outputs[name].var(dim=(0, 2, 3), unbiased=False)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.copy_(torch.sqrt(var + bn.eps))
        bn.bias.copy_(biases[name] + mean)
    _check(model, version_dir, metadata.labels, labels, faces)
    return published_identity(metadata)


def published_identity(metadata: ModelMetadata) -> str:
    """What names a published model on any machine (provenance): name, version and the start of its SHA-256."""
    return f"{metadata.name} v{metadata.version} sha256:{metadata.sha256[:16]}"


def _check(
    model: nn.Module, version_dir: Path, published: Sequence[str], labels: Sequence[str], faces: torch.Tensor
) -> None:
    session = ort.InferenceSession(str(version_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: faces.numpy()})[0]
    got = model(faces).numpy()
    shared = [label for label in labels if label in published]
    ours = [list(labels).index(label) for label in shared]
    theirs = [list(published).index(label) for label in shared]
    worst = float(np.abs(got[:, ours] - expected[:, theirs]).max())
    if worst > PARITY_TOLERANCE:
        raise WarmStartError(f"{version_dir}: unfolded weights differ from the graph by {worst:.2e}")
