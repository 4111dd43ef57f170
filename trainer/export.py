"""Checkpoint → ONNX (dynamic batch axis), checked before anything is published.

Batch norm is folded into the convolutions first (the served graph is smaller and faster; the parameter count
recorded is the trained model's). The exported graph is validated with ``onnx.checker`` and run with onnxruntime
beside the unfolded PyTorch model on the same real faces; an export whose logits differ by more than
``PARITY_TOLERANCE`` is refused, so a wrong fold cannot be published.
"""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from model_store.metadata import Metrics, ModelDraft, ModelMetadata, Provenance, TensorSpec
from model_store.preprocess import PreprocessSpec, face_input, to_tensor
from model_store.vocabulary import split_model_name
from trainer.checkpoint import ModelCheckpoint, checkpoint_identity
from trainer.config import TrainConfig
from trainer.data import PIXEL_SOURCES, DatasetError, open_dataset
from trainer.models import count_parameters
from trainer.models.fusion import fold_batchnorm
from trainer.warm_start import published_identity

PARITY_TOLERANCE = 1e-4
OPSET = 18
INPUT_NAME, OUTPUT_NAME = "input", "logits"


class ExportError(RuntimeError):
    """The exported model is invalid or does not compute what the checkpoint computes."""


def export_onnx(model: nn.Module, spec: PreprocessSpec, path: Path) -> None:
    model = model.eval()
    example = torch.zeros(2, 1, spec.input_size, spec.input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's chatter about its own internals
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}},
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def check_parity(model: nn.Module, path: Path, inputs: np.ndarray) -> float:
    """Max absolute logit difference between torch and onnxruntime; raises ExportError above tolerance."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(inputs)).numpy()
    got = session.run([OUTPUT_NAME], {INPUT_NAME: inputs})[0]
    diff = float(np.abs(expected - got).max())
    if not diff <= PARITY_TOLERANCE:
        raise ExportError(f"onnxruntime and torch differ by {diff:.2e} (> {PARITY_TOLERANCE:g}) on {path}")
    return diff


def parity_faces(checkpoint: ModelCheckpoint, count: int = 64) -> np.ndarray:
    """Real faces for the parity check: the validation split of the dataset the model was trained on, when it is
    readable here; otherwise deterministic synthetic faces (smooth random fields) with a warning."""
    dataset = str(checkpoint.provenance.get("dataset") or "")
    try:
        splits = open_dataset(dataset, fer_splits=("val",))
        faces = (splits.get("val") or next(iter(splits.values()))).images[:count]
    except DatasetError:
        warnings.warn(f"training data {dataset!r} not readable: parity checked on synthetic images", stacklevel=2)
        rng = np.random.default_rng(0)
        faces = np.stack([np.kron(rng.integers(0, 256, (6, 6)), np.ones((8, 8))) for _ in range(count)])
        faces = faces.astype(np.uint8)
    return np.stack([face_input(face, checkpoint.preprocess) for face in faces])


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _portable_dataset(described: str | None) -> str | None:
    """``kind:/home/me/data/fer2013`` → ``kind:fer2013``: the published metadata names no folder of this machine."""
    if not described or ":" not in described:
        return described
    kind, _, path = described.partition(":")
    return f"{kind}:{Path(path).name}"


def _portable_teacher(described: str | None) -> str | None:
    """Teacher checkpoint paths (``a/best.pt, b/best.pt`` for an ensemble) → architecture and checksum of each, and
    published teachers' folders → name, version and checksum, which name the teacher on any machine; a member no
    longer on disk keeps its path."""
    if not described:
        return described
    members = [Path(member) for member in described.split(", ")]
    return ", ".join(_teacher_identity(member) for member in members)


def _teacher_identity(member: Path) -> str:
    if member.is_file():
        return checkpoint_identity(member)
    if (member / "metadata.json").is_file():
        return published_identity(ModelMetadata.model_validate_json((member / "metadata.json").read_text()))
    return str(member)


# Datasets whose models are published under their architecture family's bare name (``dsvgg5_m``); a model trained on
# any other dataset kind carries it in its family (``dsvgg5-ferplus_m``), so models of one architecture trained on
# different data (and label sets) sit side by side in the store and are asked for by name.
BARE_FAMILY_DATASETS = ("fer2013", "fer2013-csv")


def published_family(family: str, dataset: str | None) -> str:
    """``family``, or ``family-<kind>`` for a model trained on a dataset ``KIND:PATH`` of another known kind."""
    kind, colon, _ = (dataset or "").partition(":")
    return f"{family}-{kind}" if colon and kind in PIXEL_SOURCES and kind not in BARE_FAMILY_DATASETS else family


def export_checkpoint(checkpoint_path: Path, out_dir: Path, faces: np.ndarray | None = None) -> tuple[Path, ModelDraft]:
    """Export a student's ``best.pt`` into ``out_dir/model.onnx``; returns it with the draft metadata to publish."""
    checkpoint = ModelCheckpoint.load(checkpoint_path)
    try:
        family, size = split_model_name(checkpoint.arch)
    except ValueError as exc:
        raise ExportError(f"{exc}: only a size tier of a student family is published") from None
    model = checkpoint.build_model()
    spec = checkpoint.preprocess
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.onnx"
    export_onnx(fold_batchnorm(model), spec, path)
    inputs = to_tensor(faces if faces is not None else parity_faces(checkpoint), spec)
    check_parity(model, path, inputs)
    provenance = checkpoint.provenance
    config = TrainConfig.from_dict(provenance["config"]) if provenance.get("config") else None
    draft = ModelDraft(
        family=published_family(family, provenance.get("dataset")),
        size=size,
        architecture=checkpoint.arch,
        parameters=count_parameters(model),
        labels=checkpoint.labels,
        input=TensorSpec(name=INPUT_NAME, shape=[-1, 1, spec.input_size, spec.input_size]),
        output=TensorSpec(name=OUTPUT_NAME, shape=[-1, len(checkpoint.labels)]),
        preprocess=spec,
        provenance=Provenance(
            **{k: provenance.get(k) for k in ("split", "temperature", "kd_lambda", "epochs", "seed")},
            dataset=_portable_dataset(provenance.get("dataset")),
            pixels=PIXEL_SOURCES.get((provenance.get("dataset") or "").partition(":")[0]),
            teacher=_portable_teacher(provenance.get("teacher")),
            recipe=config.describe() if config else None,
            recipe_name=(config.recipe or None) if config else None,
            git_commit=_git_commit(),
        ),
        metrics=Metrics(**{k: v for k, v in checkpoint.metrics.items() if k in Metrics.model_fields}),
    )
    return path, draft
