"""The model store: layout, metadata, resolving, promote/rollback, removal, integrity and path safety."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import add_detector
from onnx_fixtures import SEVEN_LABELS, publish_tiny, tiny_classifier, tiny_draft
from pydantic import ValidationError

from model_store.card import model_card
from model_store.metadata import Metrics, ModelDraft, Provenance, draft_from_json
from model_store.store import (
    IntegrityError,
    InvalidModelError,
    ModelStore,
    NotAStoreError,
    ServedVersionError,
    StoreError,
    UnknownModelError,
    UnknownVersionError,
    yunet_file,
)

NAME = "microexpnet_xxs"


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    store = ModelStore(tmp_path / "models", create=True)
    add_detector(store.root)
    return store


@pytest.fixture
def three_versions(store: ModelStore, tmp_path: Path) -> ModelStore:
    for seed in range(3):
        publish_tiny(store, tmp_path / "work", seed=seed)
    return store


def test_publish_writes_a_versioned_folder_with_metadata(store: ModelStore, tmp_path: Path) -> None:
    source = tiny_classifier(tmp_path / "model.onnx")

    version = store.publish(source, tiny_draft())

    folder = store.root / NAME / "1"
    assert version == 1
    assert sorted(path.name for path in folder.iterdir()) == ["metadata.json", "model.onnx"]
    assert (store.root / NAME / "config.pbtxt").is_file()
    assert not [path for path in (store.root / NAME).iterdir() if path.name.startswith(".staging")]
    stored = json.loads((folder / "metadata.json").read_text())
    content = (folder / "model.onnx").read_bytes()
    assert content == source.read_bytes()
    assert stored["sha256"] == hashlib.sha256(content).hexdigest()
    assert stored["file_bytes"] == len(content)
    assert (stored["name"], stored["version"], stored["size"]) == (NAME, 1, "XXS")
    assert stored["labels"] == SEVEN_LABELS
    assert stored["input"] == {"name": "input", "shape": [-1, 1, 84, 84], "dtype": "float32"}
    assert stored["preprocess"]["input_size"] == 84
    assert stored["provenance"]["dataset"] == "synthetic"
    assert stored["created_at"].endswith("Z") or "+00:00" in stored["created_at"]


def test_versions_count_up_and_the_highest_serves_without_a_pointer(three_versions: ModelStore) -> None:
    assert three_versions.models() == [NAME]
    assert three_versions.versions(NAME) == [1, 2, 3]
    assert three_versions.served_version(NAME) == 3
    assert not (three_versions.root / NAME / "served").exists()


def test_resolve_returns_a_runnable_verified_model(three_versions: ModelStore) -> None:
    served = three_versions.resolve("xxs")
    pinned = three_versions.resolve("XXS", 1)

    assert (served.name, served.version) == (NAME, 3)
    assert (pinned.version, pinned.metadata.version) == (1, 1)
    session = ort.InferenceSession(str(pinned.onnx_path), providers=["CPUExecutionProvider"])
    batch = np.zeros((3, 1, 84, 84), np.float32)
    (logits,) = session.run(None, {pinned.metadata.input.name: batch})
    assert logits.shape == (3, len(pinned.metadata.labels))


def test_promote_and_rollback_follow_the_promotion_history(three_versions: ModelStore) -> None:
    store = three_versions
    store.promote(NAME, 1)
    assert store.served_version(NAME) == 1
    assert store.resolve("XXS").version == 1

    store.promote(NAME, 2)
    assert store.rollback(NAME) == 1
    assert store.rollback(NAME) == 3  # the highest served before the first promotion
    assert store.served_version(NAME) == 3


def test_publish_after_promote_keeps_serving_the_promoted_version(three_versions: ModelStore, tmp_path: Path) -> None:
    three_versions.promote(NAME, 2)

    assert publish_tiny(three_versions, tmp_path / "work", seed=9) == 4
    assert three_versions.served_version(NAME) == 2


def test_rollback_without_history_steps_down_to_the_next_lower_version(three_versions: ModelStore) -> None:
    assert three_versions.rollback(NAME) == 2
    assert three_versions.rollback(NAME) == 1
    with pytest.raises(StoreError, match="nothing to roll back"):
        three_versions.rollback(NAME)
    assert three_versions.served_version(NAME) == 1


def test_promoting_the_newest_version_without_a_pointer_remembers_the_one_below(three_versions: ModelStore) -> None:
    # Publish then promote, as `trainer publish --promote` does: before the publish, version 2 was the highest.
    three_versions.promote(NAME, 3)
    assert json.loads((three_versions.root / NAME / "served").read_text()) == {"version": 3, "history": [2]}
    assert three_versions.served_before(NAME) == [2]
    assert three_versions.rollback(NAME) == 2


def test_rollback_skips_removed_versions_in_the_history(three_versions: ModelStore) -> None:
    store = three_versions
    store.promote(NAME, 1)
    store.promote(NAME, 2)
    store.promote(NAME, 3)
    store.remove(NAME, 2)

    assert store.rollback(NAME) == 1


def test_pointer_is_written_as_json_with_history(three_versions: ModelStore) -> None:
    three_versions.promote(NAME, 1)
    three_versions.promote(NAME, 2)

    pointer = json.loads((three_versions.root / NAME / "served").read_text())
    assert pointer == {"version": 2, "history": [3, 1]}


def test_a_hand_written_pointer_is_honoured(three_versions: ModelStore) -> None:
    (three_versions.root / NAME / "served").write_text("2\n")

    assert three_versions.served_version(NAME) == 2


def test_remove_deletes_a_version_that_is_not_served(three_versions: ModelStore) -> None:
    three_versions.remove(NAME, 1)

    assert three_versions.versions(NAME) == [2, 3]
    assert not (three_versions.root / NAME / "1").exists()
    with pytest.raises(UnknownVersionError, match="no version 1"):
        three_versions.resolve("XXS", 1)


def test_remove_refuses_the_served_version(three_versions: ModelStore) -> None:
    with pytest.raises(ServedVersionError, match="served"):
        three_versions.remove(NAME, 3)
    three_versions.promote(NAME, 1)
    with pytest.raises(ServedVersionError):
        three_versions.remove(NAME, 1)
    assert three_versions.versions(NAME) == [1, 2, 3]


def test_a_removed_version_number_is_not_reused(three_versions: ModelStore, tmp_path: Path) -> None:
    three_versions.promote(NAME, 1)
    three_versions.remove(NAME, 3)

    assert publish_tiny(three_versions, tmp_path / "work", seed=7) == 4


def test_sizes_are_separate_models(store: ModelStore, tmp_path: Path) -> None:
    publish_tiny(store, tmp_path / "work", size="M")
    publish_tiny(store, tmp_path / "work", size="xs")

    assert store.models() == ["microexpnet_m", "microexpnet_xs"]
    assert store.resolve("m").metadata.size == "M"
    with pytest.raises(UnknownModelError, match="microexpnet_s"):
        store.resolve("S")


@pytest.mark.parametrize("corruption", ["flipped byte", "truncated", "deleted"])
def test_a_corrupted_model_file_is_detected_by_verify_and_on_load(three_versions: ModelStore, corruption: str) -> None:
    model = three_versions.root / NAME / "2" / "model.onnx"
    content = bytearray(model.read_bytes())
    if corruption == "flipped byte":
        content[len(content) // 2] ^= 0xFF
        model.write_bytes(bytes(content))
    elif corruption == "truncated":
        model.write_bytes(bytes(content[:-10]))
    else:
        model.unlink()

    problems = three_versions.verify()

    assert [problem.path for problem in problems] == [model]
    assert str(model) in str(problems[0])
    with pytest.raises(IntegrityError, match=r"2/model\.onnx") as error:
        three_versions.resolve("XXS", 2)
    assert error.value.path == model
    assert three_versions.resolve("XXS", 1).version == 1  # the others still load
    with pytest.raises(IntegrityError):
        three_versions.promote(NAME, 2)


def test_broken_metadata_and_pointer_are_named_not_crashed_on(three_versions: ModelStore) -> None:
    metadata = three_versions.root / NAME / "1" / "metadata.json"
    metadata.write_text("{not json")
    pointer = three_versions.root / NAME / "served"
    pointer.write_text(json.dumps({"version": 9, "history": []}))

    problems = {problem.path: problem.message for problem in three_versions.verify()}

    assert set(problems) == {metadata, pointer}
    assert "does not exist" in problems[pointer]
    with pytest.raises(IntegrityError, match=r"metadata\.json"):
        three_versions.resolve("XXS", 1)
    with pytest.raises(IntegrityError, match="served"):
        three_versions.resolve("XXS")
    three_versions.promote(NAME, 2)  # promote repairs a broken pointer
    assert three_versions.resolve("XXS").version == 2


def test_metadata_of_another_version_is_an_integrity_error(three_versions: ModelStore) -> None:
    folder = three_versions.root / NAME
    (folder / "1" / "metadata.json").write_bytes((folder / "2" / "metadata.json").read_bytes())

    with pytest.raises(IntegrityError, match="describes microexpnet_xxs version 2"):
        three_versions.metadata(NAME, 1)


def test_verify_finds_nothing_in_a_healthy_store(three_versions: ModelStore) -> None:
    three_versions.promote(NAME, 1)

    assert three_versions.verify() == []


def test_verify_reports_a_config_that_does_not_follow_the_served_version(three_versions: ModelStore) -> None:
    config = three_versions.root / NAME / "config.pbtxt"
    config.write_text(config.read_text().replace("versions: [ 3 ]", "versions: [ 1 ]"))

    assert [(problem.path, "version 3" in problem.message) for problem in three_versions.verify()] == [(config, True)]


@pytest.mark.parametrize(
    ("size", "family"),
    [
        ("../../etc", "microexpnet"),
        ("xxs/../../x", "microexpnet"),
        ("XXS", "../microexpnet"),
        ("XXS", "microexpnet/../../tmp"),
        ("", "microexpnet"),
        ("XXS", "/etc/passwd"),
    ],
)
def test_path_traversal_in_size_or_family_is_rejected(three_versions: ModelStore, size: str, family: str) -> None:
    with pytest.raises(UnknownModelError):
        three_versions.resolve(size, family=family)


@pytest.mark.parametrize("version", [0, -1, 4, 10**30, "1", "../1", "1/../../x", True, 1.0])
def test_versions_not_in_the_listing_are_rejected(three_versions: ModelStore, version: object) -> None:
    with pytest.raises(UnknownVersionError):
        three_versions.resolve("XXS", version)  # type: ignore[arg-type]
    with pytest.raises(UnknownVersionError):
        three_versions.promote(NAME, version)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["../models/microexpnet_xxs", "microexpnet_xxs/..", ".", "..", "/tmp", "other"])
def test_model_names_not_in_the_listing_are_rejected(three_versions: ModelStore, name: str) -> None:
    for call in (
        lambda: three_versions.versions(name),
        lambda: three_versions.metadata(name, 1),
        lambda: three_versions.promote(name, 1),
        lambda: three_versions.rollback(name),
        lambda: three_versions.remove(name, 1),
    ):
        with pytest.raises(UnknownModelError):
            call()
    assert three_versions.versions(NAME) == [1, 2, 3]


def test_a_path_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotAStoreError, match="does not exist"):
        ModelStore(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotAStoreError, match="not a directory"):
        ModelStore(tmp_path / "file")
    (tmp_path / "project" / "src").mkdir(parents=True)
    (tmp_path / "project" / "src" / "main.py").write_text("print()")
    with pytest.raises(NotAStoreError, match="src/ is not a model folder"):
        ModelStore(tmp_path / "project")


def test_an_empty_directory_is_an_empty_store_without_its_face_detector(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)

    assert store.models() == []
    (problem,) = store.verify()
    assert problem.path == yunet_file(tmp_path) and "not found" in problem.message
    with pytest.raises(UnknownModelError):
        store.resolve("XXS")


def test_publish_rejects_a_model_that_does_not_match_its_draft(store: ModelStore, tmp_path: Path) -> None:
    five_classes = tiny_classifier(tmp_path / "five.onnx", classes=5)

    with pytest.raises(InvalidModelError, match=r"five\.onnx.*logits"):
        store.publish(five_classes, tiny_draft())
    assert store.models() == []
    assert not (store.root / NAME).exists()


def test_publish_rejects_a_file_that_is_not_onnx(store: ModelStore, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not a model" * 100)

    with pytest.raises(InvalidModelError, match=r"garbage\.onnx: onnxruntime cannot load it"):
        store.publish(garbage, tiny_draft())
    with pytest.raises(InvalidModelError, match="no such file"):
        store.publish(tmp_path / "absent.onnx", tiny_draft())


def test_a_fixed_batch_model_publishes_with_its_batch_size(store: ModelStore, tmp_path: Path) -> None:
    fixed = tiny_classifier(tmp_path / "fixed.onnx", batch=1)

    assert store.publish(fixed, tiny_draft(batch=1)) == 1
    with pytest.raises(InvalidModelError, match="input"):
        store.publish(fixed, tiny_draft())  # the draft claims a dynamic batch


def test_fingerprint_changes_with_every_store_change_and_only_then(three_versions: ModelStore, tmp_path: Path) -> None:
    store = three_versions
    seen = [store.fingerprint()]
    assert store.fingerprint() == seen[-1]
    store.resolve("XXS")
    store.verify()
    assert store.fingerprint() == seen[-1]

    for change in (
        lambda: store.promote(NAME, 1),
        lambda: store.rollback(NAME),
        lambda: publish_tiny(store, tmp_path / "work", seed=5),
        lambda: store.remove(NAME, 2),
        lambda: publish_tiny(store, tmp_path / "work", size="S"),
    ):
        change()
        seen.append(store.fingerprint())
    assert len(set(seen)) == len(seen)


def test_draft_validation_catches_inconsistent_descriptions() -> None:
    draft = tiny_draft()
    fields = draft.model_dump()

    with pytest.raises(ValidationError, match="not canonical"):
        ModelDraft.model_validate({**fields, "labels": [*SEVEN_LABELS[:-1], "smirk"]})
    with pytest.raises(ValidationError, match="does not match 6 labels"):
        ModelDraft.model_validate({**fields, "labels": SEVEN_LABELS[:-1]})
    with pytest.raises(ValidationError, match="does not match preprocess"):
        ModelDraft.model_validate({**fields, "input": {**fields["input"], "shape": [-1, 1, 48, 48]}})
    with pytest.raises(ValidationError, match="confusion matrix"):
        ModelDraft.model_validate({**fields, "metrics": Metrics(confusion_matrix=[[1, 2], [3, 4]]).model_dump()})
    with pytest.raises(ValidationError, match="unknown size"):
        ModelDraft.model_validate({**fields, "size": "XL"})
    assert ModelDraft.model_validate({**fields, "size": "xs"}).size == "XS"


def test_a_published_metadata_json_can_serve_as_a_draft(three_versions: ModelStore) -> None:
    published = (three_versions.root / NAME / "1" / "metadata.json").read_bytes()

    assert draft_from_json(published) == tiny_draft()


def test_the_store_and_its_cli_import_without_torch_onnx_or_the_trainer() -> None:
    blocked = "import sys; sys.modules.update(dict.fromkeys(['torch', 'onnx', 'trainer', 'service']))"
    code = f"{blocked}; import model_store.store, model_store.cli, model_store.triton; print('ok')"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    assert result.stdout.strip() == "ok", result.stderr


def test_model_card_states_the_training_recipe_where_the_metadata_has_one(tmp_path):
    store = ModelStore(tmp_path / "store", create=True)
    recipe = "adam lr 0.001, cosine decay over 60 epochs, batch 64, strong augmentation (random crops, flips)"
    provenance = Provenance(dataset="synthetic", epochs=43, seed=0, recipe=recipe)
    store.publish(tiny_classifier(tmp_path / "xxs.onnx"), tiny_draft().model_copy(update={"provenance": provenance}))
    publish_tiny(store, tmp_path / "work", size="M")  # no recipe: no line for it
    card = model_card(store)
    assert card.count("- recipe: ") == 1 and f"- recipe: {recipe}" in card


@pytest.mark.parametrize("damage", ["deleted", "flipped byte", "a folder"])
def test_verify_names_a_missing_or_corrupted_face_detector(store: ModelStore, damage: str) -> None:
    detector = yunet_file(store.root)
    content = bytearray(detector.read_bytes())
    detector.unlink()
    if damage == "flipped byte":
        content[len(content) // 2] ^= 0xFF
        detector.write_bytes(bytes(content))
    elif damage == "a folder":
        detector.mkdir()

    (problem,) = store.verify()

    assert problem.path == detector
    assert {"deleted": "not found", "flipped byte": "sha256", "a folder": "unreadable"}[damage] in problem.message
    assert "models/" in problem.message  # where to get the right file


def test_a_sizes_default_names_a_model_of_that_size_in_the_store(store: ModelStore, tmp_path: Path) -> None:
    publish_tiny(store, tmp_path / "work")
    with pytest.raises(UnknownModelError, match="no model 'dsvgg_xxs'"):
        store.set_default("XXS", "dsvgg_xxs", why="x")
    with pytest.raises(UnknownModelError, match="not a M model"):
        store.set_default("m", NAME, why="x")
    before = store.fingerprint()
    store.set_default("xxs", NAME, why="measured")
    assert store.defaults().sizes["XXS"].model == NAME and store.default_name("XXS") == NAME
    assert store.fingerprint() != before, "a new decision reloads the service"
    assert store.verify() == []
    assert store.models() == [NAME], "the defaults file is not taken for a model"


def test_verify_reports_a_default_that_no_longer_exists(store: ModelStore, tmp_path: Path) -> None:
    publish_tiny(store, tmp_path / "work")
    store.set_default("XXS", NAME, why="measured")
    (store.root / "defaults.json").write_text((store.root / "defaults.json").read_text().replace(NAME, "dsvgg_xxs"))
    assert [problem.message for problem in store.verify()] == ["XXS: dsvgg_xxs is not a model in the store"]
