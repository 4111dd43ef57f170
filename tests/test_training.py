"""Training loop, resume, cross-validation folds and the CLI end to end on small real subsets."""

import dataclasses
import hashlib
import json
import math

import numpy as np
import pytest
import torch
from conftest import REPO
from fer_subset import fer_subset

from model_store.store import ModelStore
from trainer.augment import AugmentConfig, augment_batch
from trainer.checkpoint import ModelCheckpoint
from trainer.cli import main
from trainer.config import STUDENT_SPEC, TrainConfig
from trainer.crossval import make_folds
from trainer.data import load_ckplus_folder, load_fer2013_folder
from trainer.export import export_checkpoint
from trainer.train import ResumeError, _weight_average, fit


@pytest.fixture(scope="module")
def small_fer(fer2013_dir, tmp_path_factory):
    return fer_subset(fer2013_dir, tmp_path_factory.mktemp("fer") / "fer2013", per_class=12)


def _states_equal(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("ema", [None, 0.9], ids=["plain", "weight-average"])
def test_resume_reproduces_an_uninterrupted_run(small_fer, tmp_path, ema):
    splits = load_fer2013_folder(small_fer)
    config = TrainConfig(arch="microexpnet_xxs", preprocess=STUDENT_SPEC, epochs=3, lr=1e-3, seed=3, ema=ema)
    fit(config, splits["train"], splits["val"], tmp_path / "straight", progress=False)
    interrupted = TrainConfig(**{**config.__dict__, "epochs": 1})
    fit(interrupted, splits["train"], splits["val"], tmp_path / "resumed", progress=False)
    # the run is "continued" with the full epoch budget: rewrite its config as the longer run's
    (tmp_path / "resumed" / "config.json").write_text(json.dumps(config.to_dict()))
    fit(config, splits["train"], splits["val"], tmp_path / "resumed", progress=False)
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)
    assert _states_equal(a["model"], b["model"])
    assert a["state"]["history"][-1]["val_accuracy"] == b["state"]["history"][-1]["val_accuracy"]
    assert len(b["state"]["history"]) == 3
    if ema is not None:
        assert _states_equal(a["ema"], b["ema"]) and int(b["ema"]["n_averaged"]) == 3 * math.ceil(
            len(splits["train"]) / 64
        )


def test_a_weight_averaged_run_validates_and_keeps_the_average_not_the_trained_weights(small_fer, tmp_path, capsys):
    args = ["student", "--data", f"fer2013:{small_fer}", "--size", "XXS", "--family", "dsvgg", "--epochs", "1"]
    assert main([*args, "--quiet", "--lr", "1e-2", "--ema", "0.5", "--run-dir", str(tmp_path / "run")]) == 0
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    averaged = {k.removeprefix("module."): v for k, v in last["ema"].items() if k.startswith("module.")}
    best = ModelCheckpoint.load(tmp_path / "run" / "best.pt")
    assert _states_equal(best.state_dict, averaged) and not _states_equal(best.state_dict, last["model"])
    epoch = last["state"]["history"][0]
    assert {"val_accuracy", "trained_val_accuracy"} <= epoch.keys()
    _, draft = export_checkpoint(tmp_path / "run" / "best.pt", tmp_path / "export")
    assert draft.provenance.recipe.endswith(", weights averaged (EMA 0.5)")
    with pytest.raises(SystemExit):
        main([*args, "--ema", "1", "--run-dir", str(tmp_path / "bad")])
    assert "an EMA decay is in (0, 1)" in capsys.readouterr().err


def test_the_weight_average_forgets_where_training_started_within_a_few_hundred_steps():
    # Batch-norm variances fall ~100-fold in the first steps: an average still holding its start answers one class.
    model = torch.nn.BatchNorm2d(4)
    average = _weight_average(TrainConfig(arch="dsvgg_xxs", ema=0.9995), model)
    average.update_parameters(model)  # the start: running_var 1
    model.running_var.fill_(0.01)
    for _ in range(200):
        average.update_parameters(model)
    assert torch.allclose(average.module.running_var, torch.full((4,), 0.01), rtol=1e-6)


def test_a_run_directory_refuses_another_configuration(small_fer, tmp_path):
    splits = load_fer2013_folder(small_fer)
    config = TrainConfig(arch="microexpnet_xxs", preprocess=STUDENT_SPEC, epochs=1)
    fit(config, splits["train"], splits["val"], tmp_path, progress=False)
    with pytest.raises(ResumeError):
        fit(TrainConfig(**{**config.__dict__, "lr": 0.5}), splits["train"], splits["val"], tmp_path, progress=False)
    # The same training under a recipe's name is the same run: the name says where a configuration comes from.
    fit(dataclasses.replace(config, recipe="fer2013-vanilla"), splits["train"], splits["val"], tmp_path, progress=False)
    assert json.loads((tmp_path / "config.json").read_text())["recipe"] == "fer2013-vanilla"


def test_eight_crop_augmentation_picks_only_the_papers_crops():
    grids = torch.arange(96 * 96, dtype=torch.int64).reshape(1, 96, 96).repeat(64, 1, 1)
    grids = (grids % 251).to(torch.uint8)
    x, flipped = augment_batch(grids, STUDENT_SPEC, AugmentConfig(flip=True), torch.Generator().manual_seed(0))
    assert x.shape == (64, 1, 84, 84) and x.dtype == torch.float32
    allowed = []
    for top, left in [(0, 0), (0, 12), (12, 0), (12, 12), (0, 6), (6, 0), (6, 12), (12, 6)]:
        crop = grids[0, top : top + 84, left : left + 84].float() / 255
        allowed += [crop, crop.flip(-1)]
    for view, was_flipped in zip(x[:, 0], flipped, strict=True):
        matches = [i for i, a in enumerate(allowed) if torch.allclose(view, a)]
        assert matches and (matches[0] % 2 == 1) == bool(was_flipped)
    assert 0 < flipped.sum() < 64


@pytest.mark.parametrize("mode", ["subject", "random"])
def test_folds_cover_everything_once_and_subject_folds_never_share_a_subject(ckplus_dir, mode):
    data = load_ckplus_folder(ckplus_dir)
    folds = make_folds(data, 10, mode, seed=0)
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(len(data)))
    for fold in folds:
        assert len(np.intersect1d(fold.train, fold.test)) == 0
        assert len(fold.train) + len(fold.test) == len(data)
        shared = set(data.subjects[fold.train]) & set(data.subjects[fold.test])
        if mode == "subject":
            assert not shared
    if mode == "random":  # random folds do mix subjects, which is why the paper avoids them
        assert any(set(data.subjects[f.train]) & set(data.subjects[f.test]) for f in folds)


def test_teacher_to_kd_student_to_store_end_to_end(small_fer, tmp_path):
    data = f"fer2013:{small_fer}"
    common = ["--data", data, "--epochs", "2", "--quiet", "--batch-size", "32"]
    assert main(["teacher", *common, "--run-dir", str(tmp_path / "teacher"), "--lr", "0.01", "--optimizer", "sgd"]) == 0
    teacher = tmp_path / "teacher" / "best.pt"
    assert teacher.exists() and (tmp_path / "teacher" / "confusion_matrix.png").exists()
    args = ["student", *common, "--size", "XXS", "--teacher", str(teacher), "--temperature", "4"]
    assert main([*args, "--run-dir", str(tmp_path / "xxs"), "--lr", "1e-3", "--augment", "strong"]) == 0
    result = json.loads((tmp_path / "xxs" / "result.json").read_text())
    assert result["temperature"] == 4.0 and 0 <= result["test_accuracy"] <= 1
    assert list(tmp_path.joinpath("teacher").glob("teacher_logits_*.pt")), "teacher logits are cached"
    _, draft = export_checkpoint(tmp_path / "xxs" / "best.pt", tmp_path / "export")
    assert draft.provenance.temperature == 4.0 and draft.size == "XXS"
    assert draft.provenance.recipe.startswith(
        "adam lr 0.001, constant rate over 2 epochs, batch 32, strong augmentation"
    )
    # Published metadata names the teacher by architecture and checksum and no folder of this machine.
    assert draft.provenance.teacher == f"fer_vgg sha256:{hashlib.sha256(teacher.read_bytes()).hexdigest()[:16]}"
    assert draft.provenance.dataset == f"fer2013:{small_fer.name}"
    assert draft.metrics.test_accuracy == result["test_accuracy"]
    assert draft.metrics.confusion_matrix == result["test"]["confusion_matrix"]
    store = tmp_path / "store"
    assert main(["publish", str(tmp_path / "xxs" / "best.pt"), "--store", str(store), "--promote"]) == 0
    assert ModelStore(store).resolve("xxs").metadata.labels == draft.labels


def test_a_dsresnet_student_distils_at_its_own_input_size_and_exports_without_batch_norm(small_fer, tmp_path):
    teacher = tmp_path / "teacher"
    common = ["--data", f"fer2013:{small_fer}", "--epochs", "1", "--quiet", "--batch-size", "32"]
    assert main(["teacher", *common, "--run-dir", str(teacher)]) == 0
    args = ["student", *common, "--family", "dsresnet", "--size", "XS", "--teacher", str(teacher / "best.pt")]
    assert main([*args, "--run-dir", str(tmp_path / "xs")]) == 0
    _, draft = export_checkpoint(tmp_path / "xs" / "best.pt", tmp_path / "export")
    assert (draft.family, draft.size, draft.architecture) == ("dsresnet", "XS", "dsresnet_xs")
    assert draft.input.shape == [-1, 1, 48, 48] and draft.preprocess.input_size == 48
    assert draft.provenance.temperature == 8.0


def test_an_unfinished_run_is_reported_as_it_stands_and_its_own_command_then_finishes_it(small_fer, tmp_path):
    run = tmp_path / "xxs"
    args = ["student", "--data", f"fer2013:{small_fer}", "--size", "XXS", "--quiet", "--run-dir", str(run)]
    assert main([*args, "--epochs", "1"]) == 0
    # As if the run had been planned for 2 epochs and stopped after the first (a GPU lease ending, say).
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(config | {"epochs": 2}))
    (run / "result.json").unlink()

    assert main(["conclude", str(run), "--data", f"fer2013:{small_fer}"]) == 0
    stopped = json.loads((run / "result.json").read_text())
    assert (stopped["finished"], stopped["epochs_run"], stopped["epochs_planned"]) == (False, 1, 2)
    assert 0 <= stopped["test_accuracy"] <= 1
    assert ModelCheckpoint.load(run / "best.pt").metrics["test_accuracy"] == stopped["test_accuracy"]

    assert main([*args, "--epochs", "2"]) == 0
    finished = json.loads((run / "result.json").read_text())
    assert (finished["finished"], finished["epochs_run"]) == (True, 2)


def test_conclude_refuses_a_run_without_a_trained_epoch(small_fer, tmp_path, capsys):
    assert main(["conclude", str(tmp_path), "--data", f"fer2013:{small_fer}"]) == 2
    assert "no trained epoch" in capsys.readouterr().err


def test_cli_reports_clear_errors(tmp_path, capsys):
    assert main(["student", "--data", f"fer2013:{tmp_path}", "--run-dir", str(tmp_path / "r")]) == 2
    assert "not a FER2013 folder" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert main(["evaluate", str(tmp_path / "junk.pt"), "--data", f"fer2013:{tmp_path}"]) == 2
    assert "not a readable torch checkpoint" in capsys.readouterr().err
    assert main(["publish", str(tmp_path / "missing.pt"), "--store", str(tmp_path / "store")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing.pt'}: no such checkpoint file\n"
    assert main(["publish", str(tmp_path / "junk.pt"), "--store", str(tmp_path / "store")]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot publish {tmp_path / 'junk.pt'}: ")


def test_dropout_is_set_where_the_family_has_a_dropout_layer_and_refused_where_it_has_none(small_fer, tmp_path, capsys):
    args = ["student", "--data", f"fer2013:{small_fer}", "--size", "XXS", "--epochs", "1", "--quiet"]
    assert main([*args, "--family", "dsvgg", "--dropout", "0", "--run-dir", str(tmp_path / "dsvgg")]) == 0
    model = ModelCheckpoint.load(tmp_path / "dsvgg" / "best.pt").build_model()
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [0.0]
    _, draft = export_checkpoint(tmp_path / "dsvgg" / "best.pt", tmp_path / "export")
    assert draft.provenance.recipe.endswith(", dropout 0")
    assert main([*args, "--family", "dsresnet", "--dropout", "0", "--run-dir", str(tmp_path / "dsresnet")]) == 2
    assert "dsresnet has no dropout layer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--dropout", "1", "--run-dir", str(tmp_path / "xxs")])
    assert "a dropout rate is in [0, 1)" in capsys.readouterr().err


SHIPPED_XXS = REPO / "models" / "dsvgg5_xxs" / "1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["student", "--label-smoothing", "0.1", "--label-mode", "crossentropy"], "--label-smoothing smooths one"),
        (["student", "--family", "dsvgg", "--pooling", "p1"], "--pooling chooses MicroExpNet's pooling; dsvgg has"),
        (["student", "--family", "dsresnet", "--dropout", "0"], "dsresnet has no dropout layer"),
        (["student", "--temperature", "4"], "apply to knowledge distillation"),
        (["cv", "--kd-lambda", "0.3"], "apply to knowledge distillation"),
        (["sweep", "--teacher", "t.pt", "--temperature", "4"], "a sweep trains at each of --temperatures"),
        (["cv", "--kd", "--teacher", "t.pt"], "not from --teacher"),
        (["cv", "--teacher-init", "t.pt"], "--teacher-init starts the fold teachers of cv --kd"),
        (["student", "--size", "xxs", "--init-from", str(SHIPPED_XXS)], "is a dsvgg5_xxs; this run trains a micro"),
        (["student", "--family", "dsvgg5", "--init-from", str(SHIPPED_XXS)], "this run trains a dsvgg5_m"),
        (["teacher", "--init-from", str(SHIPPED_XXS)], "is a dsvgg5_xxs; this run trains a fer_vgg"),
    ],
)
def test_options_that_cannot_apply_together_are_refused_before_any_data_is_read(tmp_path, capsys, args, message):
    assert main([*args, "--data", f"fer2013:{tmp_path / 'none'}", "--run-dir", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_label_mode_that_needs_votes_is_refused_on_data_without_them(small_fer, tmp_path, capsys):
    args = ["student", "--data", f"fer2013:{small_fer}", "--label-mode", "probability", "--run-dir", str(tmp_path)]
    assert main(args) == 2
    assert "--label-mode probability needs each face's votes" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("tpu9", "not a torch device"),
        pytest.param(
            "cuda",
            "no CUDA GPU",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU"),
        ),
    ],
)
def test_a_device_that_cannot_train_is_refused_before_any_data_is_read(tmp_path, capsys, device, message):
    with pytest.raises(SystemExit) as exit_:
        main(["student", "--data", f"fer2013:{tmp_path}", "--run-dir", str(tmp_path / "r"), "--device", device])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_checkpoint_whose_weights_do_not_fit_its_architecture_is_refused(tmp_path):
    from trainer.checkpoint import CheckpointError, ModelCheckpoint
    from trainer.models import create_model

    weights = create_model("microexpnet_s", num_classes=7).state_dict()
    ModelCheckpoint("microexpnet_xxs", {}, weights, [f"c{i}" for i in range(7)], STUDENT_SPEC).save(tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="do not fit microexpnet_xxs"):
        ModelCheckpoint.load(tmp_path / "x.pt").build_model()


def test_inception_teacher_builds_with_torchvision_or_says_what_it_needs():
    from trainer.models import create_model

    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="needs torchvision"):
            create_model("inception_v3", num_classes=7)
        return
    model = create_model("inception_v3", num_classes=7).eval()
    assert model(torch.zeros(1, 1, 299, 299)).shape == (1, 7)


def test_a_published_model_teaches_a_student_from_the_store_without_writing_into_it(small_fer, tmp_path, monkeypatch):
    import onnxruntime as ort

    from model_store.metadata import ModelMetadata
    from model_store.preprocess import centre_crop
    from trainer.augment import scale
    from trainer.evaluate import prepare_grids

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    before = sorted((p, p.stat().st_mtime_ns) for p in SHIPPED_XXS.parent.rglob("*"))
    common = ["--data", f"fer2013:{small_fer}", "--epochs", "1", "--quiet", "--batch-size", "32"]
    student = tmp_path / "xxs"
    assert main(["student", *common, "--size", "XXS", "--teacher", str(SHIPPED_XXS), "--run-dir", str(student)]) == 0
    assert sorted((p, p.stat().st_mtime_ns) for p in SHIPPED_XXS.parent.rglob("*")) == before
    (cache,) = (tmp_path / "cache" / "microexp" / "teacher-logits").glob("teacher_logits_*.pt")

    # The distilled-from logits are the published graph's own, on the centre crop of each face and of its mirror.
    metadata = ModelMetadata.model_validate_json((SHIPPED_XXS / "metadata.json").read_text())
    spec = metadata.preprocess
    grids = prepare_grids(load_fer2013_folder(small_fer)["train"], spec)
    session = ort.InferenceSession(str(SHIPPED_XXS / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = torch.load(cache, weights_only=True)
    for view, faces in enumerate((grids, grids.flip(-1))):
        batch = scale(centre_crop(faces, spec).contiguous(), spec)
        expected = session.run(None, {metadata.input.name: batch.numpy()})[0]
        assert np.abs(logits[:, view].numpy() - expected).max() < 1e-3

    _, draft = export_checkpoint(student / "best.pt", tmp_path / "export")
    assert draft.provenance.teacher == f"dsvgg5_xxs v1 sha256:{metadata.sha256[:16]}"


def test_a_teacher_ensemble_is_evaluated_and_distilled_from_as_one_model(small_fer, tmp_path):
    from trainer.ensemble import build_ensemble, load_members
    from trainer.evaluate import predict_logits, prepare_grids
    from trainer.teacher_logits import ensemble_logits, teacher_logits

    common = ["--data", f"fer2013:{small_fer}", "--epochs", "1", "--quiet", "--batch-size", "32"]
    teachers = [tmp_path / f"teacher{seed}" / "best.pt" for seed in (0, 1)]
    for seed, path in enumerate(teachers):
        assert main(["teacher", *common, "--run-dir", str(path.parent), "--seed", str(seed)]) == 0
    data = load_fer2013_folder(small_fer)
    members = load_members(teachers)
    ensemble, spec = build_ensemble(members), members[0].preprocess
    mean = ensemble_logits(teachers, data["train"])
    assert torch.allclose(mean[:, 0], predict_logits(ensemble, prepare_grids(data["train"], spec), spec), atol=1e-5)
    assert not torch.allclose(mean, teacher_logits(teachers[0], data["train"]))  # the second member counts
    # The same faces under other class names: refused although logits for these images and labels are cached.
    renamed = dataclasses.replace(data["train"], classes=(*data["train"].classes[:-1], "contempt"))
    with pytest.raises(ValueError, match="teacher predicts"):
        teacher_logits(teachers[0], renamed)

    args = ["ensemble", *map(str, teachers), "--data", f"fer2013:{small_fer}", "--run-dir", str(tmp_path / "e")]
    assert main(args) == 0
    result = json.loads((tmp_path / "e" / "result.json").read_text())
    assert result["arch"] == "fer_vgg + fer_vgg" and result["members"] == [str(t) for t in teachers]
    assert result["parameters"] == 2 * json.loads((teachers[0].parent / "result.json").read_text())["parameters"]
    assert result["test"]["count"] == len(data["test"]) and 0 <= result["test_accuracy"] <= 1

    args = ["student", *common, "--size", "XXS", "--teacher", *map(str, teachers), "--run-dir", str(tmp_path / "s")]
    assert main(args) == 0
    best = torch.load(tmp_path / "s" / "best.pt", weights_only=True)
    assert best["provenance"]["teacher"] == f"{teachers[0]}, {teachers[1]}"


def test_an_ensemble_of_models_that_see_different_inputs_is_refused(small_fer, tmp_path, capsys):
    common = ["--data", f"fer2013:{small_fer}", "--epochs", "1", "--quiet", "--batch-size", "32"]
    assert main(["teacher", *common, "--run-dir", str(tmp_path / "a")]) == 0
    assert main(["teacher", *common, "--run-dir", str(tmp_path / "b"), "--input-size", "40"]) == 0
    paths = [str(tmp_path / name / "best.pt") for name in "ab"]
    assert main(["ensemble", *paths, "--data", f"fer2013:{small_fer}", "--run-dir", str(tmp_path / "e")]) == 2
    assert "preprocesses its input differently" in capsys.readouterr().err
    assert not (tmp_path / "e" / "result.json").exists()
