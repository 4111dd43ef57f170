"""``python -m model_store``: commands, output and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import add_detector
from onnx_fixtures import publish_tiny, tiny_classifier, tiny_draft

from model_store.cli import main
from model_store.store import ModelStore

NAME = "microexpnet_xxs"


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    store = ModelStore(tmp_path / "models", create=True)
    add_detector(store.root)
    for seed in range(2):
        publish_tiny(store, tmp_path / "work", seed=seed)
    return store


def run(store: Path, *args: str) -> int:
    return main(["--store", str(store), *args])


def assert_one_line_error(capsys: pytest.CaptureFixture[str], code: int, *fragments: str) -> None:
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err


def test_publish_onnx_then_list_show_and_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "fresh"
    model = tiny_classifier(tmp_path / "exported.onnx")
    draft = tmp_path / "draft.json"
    draft.write_text(tiny_draft(size="s").model_dump_json())

    assert run(root, "publish-onnx", str(model), "--metadata", str(draft)) == 0
    assert "published microexpnet_s version 1" in capsys.readouterr().out
    assert run(root, "list") == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:3] == ["MODEL", "VERSION", "SERVED"]
    assert listing[1].split()[:3] == ["microexpnet_s", "1", "*"]
    assert run(root, "show", "S") == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["name"], shown["version"], shown["labels"]) == ("microexpnet_s", 1, tiny_draft().labels)
    # A new store lacks the face detector the service needs until it is copied in.
    assert run(root, "verify") == 1
    assert "face_detection_yunet_2023mar.onnx: not found" in capsys.readouterr().out
    add_detector(root)
    assert run(root, "verify") == 0
    assert capsys.readouterr().out.startswith("ok: 1 version(s) of 1 model(s) and the face detector")


def test_another_stores_metadata_json_republishes(
    store: ModelStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    version_dir = store.root / NAME / "1"
    target = tmp_path / "other"

    code = run(
        target, "publish-onnx", str(version_dir / "model.onnx"), "--metadata", str(version_dir / "metadata.json")
    )

    assert code == 0, capsys.readouterr().err
    assert ModelStore(target).metadata(NAME, 1).sha256 == store.metadata(NAME, 1).sha256


def test_promote_rollback_and_remove(store: ModelStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(store.root, "promote", "xxs", "1") == 0
    assert store.served_version(NAME) == 1
    assert run(store.root, "rollback", "XXS") == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{NAME}: serving version 2"
    assert run(store.root, "remove", "XXS", "1") == 0
    assert store.versions(NAME) == [2]


def test_publish_with_promote_serves_the_new_version(
    store: ModelStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.promote(NAME, 1)
    draft = tmp_path / "draft.json"
    draft.write_text(tiny_draft().model_dump_json())
    model = tiny_classifier(tmp_path / "new.onnx", seed=3)

    assert run(store.root, "publish-onnx", str(model), "--metadata", str(draft), "--promote") == 0
    assert "version 3; serving version 3" in capsys.readouterr().out
    assert store.served_version(NAME) == 3


def test_a_size_means_the_model_the_service_answers_it_with_unless_a_family_is_named(
    store: ModelStore, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    better = tiny_draft().model_copy(update={"family": "dsvgg", "architecture": "dsvgg_xxs"})
    better = better.model_copy(update={"metrics": better.metrics.model_copy(update={"val_accuracy": 0.6})})
    for seed in range(2):
        store.publish(tiny_classifier(tmp_path / f"dsvgg-{seed}.onnx", seed=seed), better)

    assert run(store.root, "promote", "XXS", "1") == 0
    assert capsys.readouterr().out == "dsvgg_xxs: serving version 1\n"
    assert (store.served_version("dsvgg_xxs"), store.served_version(NAME)) == (1, 2)
    assert run(store.root, "promote", "XXS", "1", "--family", "microexpnet") == 0
    assert store.served_version(NAME) == 1
    monkeypatch.setenv("MICROEXP_FAMILY", "microexpnet")  # the service's setting, which the store CLI follows too
    assert run(store.root, "rollback", "XXS") == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{NAME}: serving version 2"


def test_show_a_given_version(store: ModelStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(store.root, "show", "xxs", "1") == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1


def test_store_option_after_the_command(store: ModelStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", "elsewhere", "show", "--store", str(store.root), "xxs"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 2


def test_default_records_the_sizes_model_and_why(store: ModelStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(store.root, "default", "xxs", NAME, "--why", "measured on photographs") == 0
    assert capsys.readouterr().out.strip() == f"XXS → {NAME}"
    assert store.defaults().sizes["XXS"].why == "measured on photographs"
    assert run(store.root, "verify") == 0


def test_verify_exits_1_and_names_the_corrupted_file(store: ModelStore, capsys: pytest.CaptureFixture[str]) -> None:
    model = store.root / NAME / "1" / "model.onnx"
    model.write_bytes(model.read_bytes()[:-1])

    assert run(store.root, "verify") == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{model}: ")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["show", "XL"], ["unknown size 'XL'", "M, S, XS, XXS"]),
        (["show", "../../etc"], ["unknown size"]),
        (["show", "M"], ["no M model in"]),
        (["show", "M", "--family", "microexpnet"], ["unknown model 'microexpnet_m'"]),
        (["show", "XXS", "7"], ["no version 7", "versions: 1, 2"]),
        (["show", "XXS", "--family", "../x"], ["invalid model family '../x'"]),
        (["promote", "XXS", "9"], ["no version 9"]),
        (["remove", "XXS", "2"], ["served version"]),
        (["publish-onnx", "missing.onnx", "--metadata", "missing.json"], ["missing.json"]),
        (["default", "M", NAME, "--why", "x"], ["not a M model"]),
        (["default", "XXL", NAME, "--why", "x"], ["unknown size 'XXL'"]),
    ],
)
def test_user_errors_are_one_line_with_status_2(
    store: ModelStore, capsys: pytest.CaptureFixture[str], args: list[str], fragments: list[str]
) -> None:
    assert_one_line_error(capsys, run(store.root, *args), *fragments)


def test_a_path_that_is_not_a_store_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(capsys, run(tmp_path / "nowhere", "list"), "not a model store", "does not exist")
    (tmp_path / "file").write_text("x")
    assert_one_line_error(capsys, run(tmp_path / "file", "verify"), "not a directory")


def test_a_bad_draft_or_model_is_an_error(
    store: ModelStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_classifier(tmp_path / "five.onnx", classes=5)
    not_json = tmp_path / "not.json"
    not_json.write_text("{")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**tiny_draft().model_dump(mode="json"), "labels": ["happy", "sad"]}))
    good = tmp_path / "good.json"
    good.write_text(tiny_draft().model_dump_json())

    code = run(store.root, "publish-onnx", str(model), "--metadata", str(not_json))
    assert_one_line_error(capsys, code, "not.json: not a model draft")
    code = run(store.root, "publish-onnx", str(model), "--metadata", str(wrong))
    assert_one_line_error(capsys, code, "wrong.json: not a model draft", "labels")
    code = run(store.root, "publish-onnx", str(model), "--metadata", str(good))
    assert_one_line_error(capsys, code, "five.onnx", "does not match")
    assert store.versions(NAME) == [1, 2]


def test_module_entry_point_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "model_store", "--store", str(tmp_path / "nowhere"), "show", "XXS"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
