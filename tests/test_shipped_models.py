"""The models shipped in the repository's store: intact, described truthfully by their metadata, and as accurate
as their metadata says when their ONNX files are run on their dataset's test split (FER2013 PrivateTest, or FER+
test by its majority protocol) through the shared preprocessing."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import REPO, SHARED, need

from model_store.preprocess import face_input, to_tensor
from model_store.store import ModelStore, yunet_file
from model_store.vocabulary import SIZES, split_model_name
from trainer.models import count_parameters, create_model
from trainer.models.fusion import fold_batchnorm

STORE = ModelStore(REPO / "models")
MODELS = STORE.models()  # every family's served models, MicroExpNet and the others


def _resolve(name: str):
    family, size = split_model_name(name)
    return STORE.resolve(size, family=family)  # checks sha256 and size against metadata


def test_store_verifies_and_holds_every_size_of_microexpnet():
    assert STORE.verify() == []
    assert {f"microexpnet_{s.lower()}" for s in SIZES} <= set(MODELS)


def test_the_face_detector_ships_with_its_licence_as_files_no_reader_takes_for_a_model():
    detector = yunet_file(STORE.root)
    assert "MIT License" in detector.with_suffix(".LICENSE").read_text()
    # Triton loads every folder of a model repository as a model and passes over its files; verify (above) checked
    # the detector's sha256.
    assert sorted(path.name for path in STORE.root.iterdir() if path.is_dir()) == MODELS


# The shared folder of each dataset kind a shipped model was trained on.
DATA_FOLDERS = {"fer2013": "fer2013", "ferplus": "ferplus"}


def _test_split(dataset: str | None):
    from trainer.data import open_dataset

    kind = (dataset or "").partition(":")[0]
    return open_dataset(f"{kind}:{need(SHARED / 'datasets' / DATA_FOLDERS[kind])}", fer_splits=("test",))["test"]


@pytest.fixture(scope="module")
def test_splits():
    return {}


@pytest.mark.parametrize("name", MODELS)
def test_metadata_matches_the_file(name, test_splits):
    resolved = _resolve(name)
    meta = resolved.metadata
    test = test_splits.setdefault(meta.provenance.dataset, _test_split(meta.provenance.dataset))
    assert meta.labels == list(test.classes)
    graph = onnx.load(str(resolved.onnx_path)).graph
    weights = [init for init in graph.initializer if init.data_type == onnx.TensorProto.FLOAT]  # not shape constants
    model = create_model(meta.architecture, num_classes=len(meta.labels))
    assert count_parameters(model) == meta.parameters  # the trained network's count, the size budget's unit
    # the export folds batch norm into the convolutions before it: the file holds that network's weights
    assert sum(int(np.prod(init.dims)) for init in weights) == count_parameters(fold_batchnorm(model))
    assert meta.metrics.test_accuracy is not None and meta.metrics.confusion_matrix is not None
    assert sum(map(sum, meta.metrics.confusion_matrix)) == len(test)


@pytest.mark.parametrize("name", MODELS)
def test_recorded_test_accuracy_is_reproduced_by_the_onnx_file(name, test_splits):
    resolved = _resolve(name)
    dataset = resolved.metadata.provenance.dataset
    fer_test = test_splits.setdefault(dataset, _test_split(dataset))
    spec = resolved.metadata.preprocess
    session = ort.InferenceSession(str(resolved.onnx_path), providers=["CPUExecutionProvider"])
    batch = to_tensor(np.stack([face_input(face, spec) for face in fer_test.images]), spec)
    logits = session.run(None, {"input": batch})[0]
    assert list(fer_test.classes) == resolved.metadata.labels
    accuracy = float((logits.argmax(1) == fer_test.labels).mean())
    assert accuracy == pytest.approx(resolved.metadata.metrics.test_accuracy, abs=1e-3)


def test_model_card_describes_the_served_versions():
    card = (REPO / "models" / "MODEL_CARD.md").read_text()
    for name in STORE.models():
        assert f"## {name} (size {STORE.metadata(name, STORE.served_version(name)).size}, version " \
               f"{STORE.served_version(name)})" in card  # fmt: skip
    assert "Out of scope" in card
