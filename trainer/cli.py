"""``python -m trainer``: train teachers and students, sweep temperatures, cross-validate, evaluate, import the
paper authors' weights, run recipes and publish checkpoints into a model store. Every training command resumes when
run again with the same --run-dir."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from pydantic import ValidationError

from model_store.cli import publish_file
from model_store.metadata import ModelMetadata, validation_summary
from model_store.preprocess import PreprocessSpec
from model_store.store import ModelStore, StoreError, first_line
from model_store.vocabulary import CANONICAL_LABELS, FAMILIES, SIZES, parse_sizes
from trainer.augment import AugmentConfig
from trainer.checkpoint import CheckpointError, ModelCheckpoint
from trainer.config import DROPOUT_FAMILIES, STUDENT_INPUT_SIZES, KDConfig, TrainConfig, spec_for
from trainer.data import DatasetError, FaceDataset, open_dataset
from trainer.experiments import cross_validate, sweep_temperatures, train_run
from trainer.label_targets import LABEL_MODES
from trainer.models.microexpnet import POOLINGS
from trainer.recipe import RecipeError, load_recipe, recipe_names
from trainer.records import RunResult
from trainer.train import ResumeError
from trainer.warm_start import WarmStartError

TEMPERATURES = (2.0, 4.0, 8.0, 16.0, 20.0, 32.0, 64.0)
DEFAULT_TEMPERATURE = 8.0


class CLIError(Exception):
    pass


def _add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        required=True,
        help="KIND:PATH with KIND fer2013 (folder of train/val/test), fer2013-csv, ferplus (FER2013Train|Valid|Test "
        "with label.csv), ferplus-fer2013 (FER+ pixels, FER2013's labels), ckplus (<class>/S*_*_*.png), "
        "ckplus-original (cohn-kanade-images + Emotion) or folder (<class>/<image>)",
    )
    parser.add_argument("--subject-pattern", help="regex whose first group is the subject id in a file name")


def _device(value: str) -> str:
    try:
        device = torch.device(value)
    except RuntimeError as exc:
        raise argparse.ArgumentTypeError(f"not a torch device: {value!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError("--device cuda: this torch build or machine has no CUDA GPU")
    return value


def _dropout(value: str) -> float:
    rate = float(value)
    if not 0.0 <= rate < 1.0:
        raise argparse.ArgumentTypeError(f"a dropout rate is in [0, 1), not {value}")
    return rate


def _ema_decay(value: str) -> float:
    decay = float(value)
    if not 0.0 < decay < 1.0:
        raise argparse.ArgumentTypeError(f"an EMA decay is in (0, 1), e.g. 0.999, not {value}")
    return decay


def _add_training(parser: argparse.ArgumentParser, epochs: int, lr: float) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--run-dir", type=Path, required=True, help="where checkpoints, metrics and plots go")
    group.add_argument("--epochs", type=int, default=epochs)
    group.add_argument("--batch-size", type=int, default=64)
    group.add_argument("--lr", type=float, default=lr)
    group.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    group.add_argument("--weight-decay", type=float, default=0.0)
    group.add_argument("--schedule", choices=("constant", "cosine"), default="constant")
    group.add_argument("--patience", type=int, default=None, help="early stopping: epochs without val improvement")
    group.add_argument("--augment", choices=("paper", "strong"), default="paper", help="paper: 8 crops + flips")
    group.add_argument("--label-smoothing", type=float, default=0.0)
    group.add_argument(
        "--label-mode",
        choices=LABEL_MODES,
        default="majority",
        help="FER+ protocol: majority label, probability (a label drawn from the votes), crossentropy (the vote "
        "distribution as target) or multilabel; the last three need a ferplus dataset",
    )
    group.add_argument(
        "--init-from",
        type=Path,
        help="start from these weights: a checkpoint, or a published model's folder (models/<name>/<version>)",
    )
    group.add_argument(
        "--ema",
        type=_ema_decay,
        metavar="DECAY",
        help="keep an exponential moving average of the weights (e.g. 0.999) and validate, save and export it",
    )
    group.add_argument("--seed", type=int, default=0)
    # Only `trainer run` names the recipe a run comes from (no flag), so provenance never names one that was not run.
    parser.set_defaults(recipe="")
    group.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    group.add_argument("--device", type=_device, default="cpu", help="where the model trains: cpu, cuda, cuda:N")
    group.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_student(parser: argparse.ArgumentParser, kd_required: bool = False) -> None:
    parser.add_argument("--size", default="all", help=f"{', '.join(SIZES)} or all")
    parser.add_argument("--family", choices=FAMILIES, default="microexpnet", help="student architecture family")
    parser.add_argument("--input-size", type=int, help="input side in pixels (default: the family's)")
    parser.add_argument(
        "--pooling", choices=POOLINGS, help="MicroExpNet only: the paper's Table II variants (default: p12)"
    )
    parser.add_argument(
        "--dropout",
        type=_dropout,
        help=f"dropout before the last layer (default: the family's); {', '.join(DROPOUT_FAMILIES)} only",
    )
    parser.add_argument(
        "--teacher",
        type=Path,
        nargs="+",
        required=kd_required,
        help="teacher best.pt or published model folder (models/NAME/VERSION), or several: an ensemble (mean logits); "
        "without it the student learns from labels",
    )
    parser.add_argument("--temperature", type=float, help=f"KD only (default: {DEFAULT_TEMPERATURE:g})")
    parser.add_argument("--kd-lambda", type=float, help="KD only: the teacher term's weight (default: 0.5)")


def _conflicts(args: argparse.Namespace) -> list[str]:
    """Options of a training command that cannot apply together (each would be dropped without a word)."""
    problems = []
    if args.label_smoothing and args.label_mode not in ("majority", "probability"):
        problems.append(f"--label-smoothing smooths one label; --label-mode {args.label_mode} has a distribution")
    if args.command == "teacher":
        return problems
    if args.pooling is not None and args.family != "microexpnet":
        problems.append(f"--pooling chooses MicroExpNet's pooling; {args.family} has none")
    if args.dropout is not None and args.family not in DROPOUT_FAMILIES:
        problems.append(f"{args.family} has no dropout layer; --dropout applies to {', '.join(DROPOUT_FAMILIES)}")
    kd = args.kd if args.command == "cv" else args.teacher is not None
    if not kd and (args.temperature is not None or args.kd_lambda is not None):
        problems.append("--temperature and --kd-lambda apply to knowledge distillation (--teacher, or cv --kd)")
    if args.command == "sweep" and args.temperature is not None:
        problems.append("a sweep trains at each of --temperatures; --temperature has no place in it")
    if args.command == "cv" and args.teacher is not None:
        problems.append("cv trains a teacher on each fold (--kd, --teacher-arch, --teacher-init), not from --teacher")
    if args.command == "cv" and not args.kd and args.teacher_init is not None:
        problems.append("--teacher-init starts the fold teachers of cv --kd")
    return problems


def _check(args: argparse.Namespace) -> None:
    """Refuse, before any data is read, what a training command cannot do as asked."""
    if problems := _conflicts(args):
        raise CLIError("; ".join(problems))
    archs = [args.arch] if args.command == "teacher" else [f"{args.family}_{s.lower()}" for s in _sizes(args.size)]
    for arch in archs:
        _check_init_from(args, arch)


def _check_votes(args: argparse.Namespace, dataset: FaceDataset) -> None:
    if args.label_mode != "majority" and dataset.votes is None:
        raise CLIError(f"--label-mode {args.label_mode} needs each face's votes (FER+ has them); {args.data} has none")


def _check_init_from(args: argparse.Namespace, arch: str) -> None:
    """A published model starts only a run of its own architecture (a checkpoint shares the layers that fit)."""
    if args.init_from is None or not args.init_from.is_dir():
        return
    try:
        published = ModelMetadata.model_validate_json((args.init_from / "metadata.json").read_bytes())
    except (OSError, ValidationError) as error:
        raise CLIError(f"--init-from {args.init_from}: not a published model's folder ({first_line(error)})") from None
    if published.architecture != arch:
        raise CLIError(f"--init-from {args.init_from} is a {published.architecture}; this run trains a {arch}")


def _pooling(args: argparse.Namespace) -> str:
    """MicroExpNet's pooling variant; p12, both pools, is the network's own."""
    return args.pooling or "p12"


def _kd(args: argparse.Namespace, teacher: str) -> KDConfig:
    temperature = DEFAULT_TEMPERATURE if args.temperature is None else args.temperature
    return KDConfig(temperature, teacher=teacher, **({} if args.kd_lambda is None else {"kd_lambda": args.kd_lambda}))


def _config(args: argparse.Namespace, arch: str, spec: PreprocessSpec, **extra: object) -> TrainConfig:
    return TrainConfig(
        arch=arch,
        preprocess=spec,
        augment=AugmentConfig.strong() if args.augment == "strong" else AugmentConfig.paper(),
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        label_smoothing=args.label_smoothing,
        label_mode=args.label_mode,
        init_from=str(args.init_from) if args.init_from else None,
        ema=args.ema,
        patience=args.patience,
        seed=args.seed,
        dataset=args.data,
        recipe=args.recipe,
        **extra,  # type: ignore[arg-type]
    )


def _student_config(args: argparse.Namespace, size: str, kd: KDConfig | None) -> TrainConfig:
    spec = spec_for(args.input_size or STUDENT_INPUT_SIZES[args.family])
    kwargs: dict[str, object] = {"pooling": _pooling(args)} if args.family == "microexpnet" else {}
    if args.dropout is not None:
        kwargs["dropout"] = args.dropout
    return _config(args, f"{args.family}_{size.lower()}", spec, model_kwargs=kwargs, kd=kd)


def _splits(args: argparse.Namespace) -> tuple[FaceDataset, FaceDataset, FaceDataset | None]:
    splits = open_dataset(args.data, args.subject_pattern)
    if "train" not in splits:
        raise CLIError(f"{args.data} has no train/val split; use `cv` for single-folder datasets")
    return splits["train"], splits["val"], splits.get("test")


def _training_splits(args: argparse.Namespace) -> tuple[FaceDataset, FaceDataset, FaceDataset | None]:
    """A training command's splits, once its options are known to apply together."""
    _check(args)
    train, val, test = _splits(args)
    _check_votes(args, train)
    return train, val, test


def _sizes(value: str) -> list[str]:
    try:
        return list(parse_sizes(value))
    except ValueError as exc:
        raise CLIError(f"{exc} or all") from None


def _size_dir(args: argparse.Namespace, size: str) -> Path:
    return args.run_dir / size.lower() if args.size.lower() == "all" else args.run_dir


def _teacher_logits(args: argparse.Namespace, train: FaceDataset) -> torch.Tensor | None:
    if args.teacher is None:
        return None
    from trainer.teacher_logits import ensemble_logits

    try:
        return ensemble_logits(args.teacher, train)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc


def _teacher_name(args: argparse.Namespace) -> str:
    return ", ".join(str(path) for path in args.teacher)


def _print(data: object) -> None:
    print(json.dumps(data, indent=2))


def _summary(result: RunResult) -> dict[str, object]:
    """A run's result without its per-class test metrics, for the terminal."""
    return result.model_dump(exclude={"test"}, exclude_none=True)


def cmd_teacher(args: argparse.Namespace) -> None:
    train, val, test = _training_splits(args)
    config = _config(args, args.arch, spec_for(args.input_size), channels_last=True)
    result = train_run(config, train, val, args.run_dir, test=test, progress=not args.quiet, device=args.device)
    _print(_summary(result))


def cmd_student(args: argparse.Namespace) -> None:
    train, val, test = _training_splits(args)
    logits = _teacher_logits(args, train)
    kd = None if logits is None else _kd(args, _teacher_name(args))
    for size in _sizes(args.size):
        config = _student_config(args, size, kd)
        result = train_run(
            config, train, val, _size_dir(args, size), logits=logits, test=test, progress=not args.quiet,
            device=args.device,
        )  # fmt: skip
        _print({"size": size} | _summary(result))


def cmd_sweep(args: argparse.Namespace) -> None:
    train, val, test = _training_splits(args)
    logits = _teacher_logits(args, train)
    for size in _sizes(args.size):
        base = _student_config(args, size, _kd(args, _teacher_name(args)))
        sweep = sweep_temperatures(
            base, args.temperatures, train, val, logits, _size_dir(args, size), test=test, progress=not args.quiet,
            device=args.device,
        )  # fmt: skip
        accuracies = {t: r.val_accuracy for t, r in sweep.results.items()}
        _print({"size": size, "best_temperature": sweep.best_temperature, "val_accuracy": accuracies})


def cmd_cv(args: argparse.Namespace) -> None:
    _check(args)
    splits = open_dataset(args.data, args.subject_pattern)
    dataset = splits.get("all") or next(iter(splits.values()))
    _check_votes(args, dataset)
    teacher = None
    if args.kd:
        teacher = replace(
            _config(args, args.teacher_arch, spec_for(48), channels_last=True),
            epochs=args.teacher_epochs,
            lr=args.teacher_lr,
            init_from=str(args.teacher_init) if args.teacher_init else None,
        )
    for size in _sizes(args.size):
        kd = _kd(args, f"{args.teacher_arch} per fold") if args.kd else None
        variant = _pooling(args) if args.family == "microexpnet" else args.family
        name = f"{size.lower()}-{variant}-{'kd-T' + format(args.temperature, 'g') if args.kd else 'vanilla'}"
        try:
            cv = cross_validate(
                dataset,
                _student_config(args, size, kd),
                args.run_dir / name,
                folds=args.folds,
                mode=args.mode,
                teacher=teacher,
                progress=not args.quiet,
                device=args.device,
            )
        except ValueError as exc:
            raise CLIError(str(exc)) from exc
        _print({"size": size, "mode": args.mode, "folds": args.folds, "mean": cv.mean, "std": cv.std})


def cmd_conclude(args: argparse.Namespace) -> None:
    from trainer.experiments import conclude_run

    _, _, test = _splits(args)
    for run_dir in args.run_dirs:
        if not (run_dir / "best.pt").exists():
            raise CLIError(f"{run_dir} holds no trained epoch (no best.pt)")
        result = conclude_run(run_dir, test, finished=False)
        _print({"run": str(run_dir)} | _summary(result))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from trainer.evaluate import evaluate

    checkpoint = ModelCheckpoint.load(args.checkpoint)
    splits = open_dataset(args.data, args.subject_pattern)
    if args.split not in splits:
        raise CLIError(f"{args.data} has no split {args.split!r}; it has {', '.join(splits)}")
    dataset = splits[args.split]
    if list(dataset.classes) != checkpoint.labels:
        raise CLIError(f"checkpoint predicts {checkpoint.labels}, the dataset has {list(dataset.classes)}")
    metrics = evaluate(checkpoint.build_model(), dataset, checkpoint.preprocess, args.views, args.views == "eight")
    _print(metrics.model_dump())


def cmd_ensemble(args: argparse.Namespace) -> None:
    from trainer.experiments import ensemble_run

    _, val, test = _splits(args)
    result = ensemble_run(args.checkpoints, val, test, args.run_dir, recipe=args.recipe)
    _print(_summary(result))


def cmd_import_official(args: argparse.Namespace) -> None:
    """The authors' released CK+/Oulu-CASIA weights as a checkpoint of ours (raw 0..255 input, plain resize)."""
    from trainer.models import create_model
    from trainer.models.microexpnet import load_tf_weights

    model = load_tf_weights(create_model("microexpnet_xxs", num_classes=8), dict(np.load(args.weights)))
    spec = PreprocessSpec(input_size=84, resize_size=84, native_size=None, scale=1.0)
    provenance = {"dataset": f"official weights {args.weights.name}", "teacher": "Inception-v3 (authors)"}
    ModelCheckpoint("microexpnet_xxs", {}, model.state_dict(), list(CANONICAL_LABELS), spec, provenance).save(args.out)
    _print({"checkpoint": str(args.out)})


def _positional(command: str) -> set[str]:
    """The command's arguments given without a flag (ensemble's checkpoints)."""
    parser = _subparsers(build_parser())[command]
    return {action.dest for action in parser._actions if not action.option_strings}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices)


def _only(value: str) -> tuple[str, str]:
    flag, sep, wanted = value.partition("=")
    if not sep or not flag:
        raise argparse.ArgumentTypeError(f"--only takes FLAG=VALUE, e.g. size=xxs, not {value!r}")
    return flag.replace("-", "_"), wanted


def cmd_run(args: argparse.Namespace) -> None:
    recipe = load_recipe(args.recipe_name)
    positional = _positional(recipe.command)
    runs = recipe.plan(args.seed, args.device, dict(args.only))
    if not runs:
        raise CLIError(f"recipe {recipe.name} has no run with {' '.join(f'{k}={v}' for k, v in args.only)}")
    # Every command line is parsed before the first run starts, so a recipe that cannot run fails at once.
    parsed = [build_parser().parse_args(run.argv(positional)) for run in runs]
    for run, run_args in zip(runs, parsed, strict=True):
        run_args.recipe = recipe.name
        Path(run.run_dir).mkdir(parents=True, exist_ok=True)
        sharing = [other for other in recipe.plan(args.seed, args.device) if other.run_dir == run.run_dir]
        (Path(run.run_dir) / "recipe.json").write_text(recipe.run_record(sharing, positional))
        if getattr(run_args, "threads", None):
            torch.set_num_threads(run_args.threads)
        run_args.handler(run_args)


def _published_by_recipe(store_root: Path) -> dict[str, list[str]]:
    """recipe name → the store's versions whose metadata names it, e.g. ``dsvgg5_xxs v1``."""
    published: dict[str, list[str]] = {}
    if not store_root.is_dir():
        return published
    store = ModelStore(store_root)
    for name in store.models():
        for version in store.versions(name):
            recipe = store.metadata(name, version).provenance.recipe_name
            published.setdefault(recipe or "", []).append(f"{name} v{version}")
    return published


def cmd_recipes(args: argparse.Namespace) -> None:
    if args.recipe_name is not None:
        recipe = load_recipe(args.recipe_name)
        positional = _positional(recipe.command)
        print(textwrap.fill(f"{recipe.name}: {' '.join(recipe.description.split())}", 120))
        for run in recipe.plan():
            print("    python -m trainer " + " ".join(run.argv(positional)))
        return
    published = _published_by_recipe(args.store)
    for name in recipe_names():
        recipe = load_recipe(name)
        print(name)
        text = f"{recipe.command}: {' '.join(recipe.description.split())}"
        print(textwrap.fill(text, 120, initial_indent="    ", subsequent_indent="    "))
        if name in published:
            print(textwrap.fill("published: " + ", ".join(published[name]), 120, initial_indent="    ",
                                subsequent_indent="    "))  # fmt: skip


def cmd_publish(args: argparse.Namespace) -> None:
    from trainer.export import ExportError, export_checkpoint

    store = ModelStore(args.store, create=True)
    if not args.checkpoint.is_file():
        raise CLIError(f"{args.checkpoint}: no such checkpoint file")
    with tempfile.TemporaryDirectory(prefix="microexp-export-") as out_dir:
        try:
            onnx_path, draft = export_checkpoint(args.checkpoint, Path(out_dir))
        except ValidationError as error:
            raise CLIError(f"cannot publish {args.checkpoint}: {validation_summary(error)}") from None
        except (ExportError, ValueError) as error:  # checkpoint errors are ValueErrors
            raise CLIError(f"cannot publish {args.checkpoint}: {first_line(error)}") from None
        publish_file(store, onnx_path, draft, promote=args.promote)


def cmd_report(args: argparse.Namespace) -> None:
    from trainer.report import report

    print(report(args.runs, args.plots))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    teacher = commands.add_parser("teacher", help="train a teacher on a dataset with train/val(/test) splits")
    _add_data(teacher)
    teacher.add_argument("--arch", default="fer_vgg", help="registered teacher architecture (fer_vgg, inception_v3)")
    teacher.add_argument("--input-size", type=int, default=48)
    _add_training(teacher, epochs=30, lr=1e-3)
    teacher.set_defaults(handler=cmd_teacher)

    student = commands.add_parser("student", help="train students (MicroExpNet by default), vanilla or by KD")
    _add_data(student)
    _add_student(student)
    _add_training(student, epochs=50, lr=1e-4)
    student.set_defaults(handler=cmd_student)

    sweep = commands.add_parser("sweep", help="KD students at several temperatures; validation accuracy picks T")
    _add_data(sweep)
    _add_student(sweep, kd_required=True)
    sweep.add_argument("--temperatures", type=lambda s: [float(t) for t in s.split(",")], default=list(TEMPERATURES))
    _add_training(sweep, epochs=50, lr=1e-4)
    sweep.set_defaults(handler=cmd_sweep)

    cv = commands.add_parser("cv", help="k-fold cross-validation (subject-independent or random) of students")
    _add_data(cv)
    _add_student(cv)
    cv.add_argument("--folds", type=int, default=10)
    cv.add_argument("--mode", choices=("subject", "random"), default="subject")
    cv.add_argument("--kd", action="store_true", help="distil from a teacher trained on each fold")
    cv.add_argument("--teacher-arch", default="fer_vgg")
    cv.add_argument("--teacher-epochs", type=int, default=30)
    cv.add_argument("--teacher-lr", type=float, default=1e-3)
    cv.add_argument("--teacher-init", type=Path, help="checkpoint to start each fold's teacher from (new head)")
    _add_training(cv, epochs=100, lr=1e-4)
    cv.set_defaults(handler=cmd_cv)

    evaluate = commands.add_parser("evaluate", help="accuracy, per-class precision/recall, confusion matrix")
    evaluate.add_argument("checkpoint", type=Path)
    _add_data(evaluate)
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--views", choices=("centre", "eight"), default="centre")
    evaluate.add_argument("--threads", type=int, default=None)
    evaluate.set_defaults(handler=cmd_evaluate)

    conclude = commands.add_parser(
        "conclude",
        help="report unfinished runs as they stand (best checkpoint on test, result.json); training them again "
        "with their own command resumes them",
    )
    conclude.add_argument("run_dirs", type=Path, nargs="+")
    _add_data(conclude)
    conclude.add_argument("--threads", type=int, default=None)
    conclude.set_defaults(handler=cmd_conclude)

    ensemble = commands.add_parser(
        "ensemble", help="evaluate several checkpoints as one model (mean logits), e.g. a teacher ensemble"
    )
    ensemble.add_argument("checkpoints", type=Path, nargs="+")
    _add_data(ensemble)
    ensemble.add_argument("--run-dir", type=Path, required=True, help="where result.json and the plot go")
    ensemble.set_defaults(recipe="")
    ensemble.add_argument("--threads", type=int, default=None)
    ensemble.set_defaults(handler=cmd_ensemble)

    official = commands.add_parser("import-official", help="the paper authors' released weights as a checkpoint")
    official.add_argument("weights", type=Path, help="ck.npz or oulucasia.npz (wc1, bc1, ..., wo, bo)")
    official.add_argument("--out", type=Path, required=True)
    official.set_defaults(handler=cmd_import_official)

    run = commands.add_parser("run", help="run a recipe (trainer/recipes/NAME.toml); resumes like every command")
    run.add_argument("recipe_name", metavar="RECIPE", help="a name from `python -m trainer recipes`, or a .toml path")
    run.add_argument("--seed", type=int, help="another seed: the runs go to <run_dir>-seedN")
    run.add_argument("--device", type=_device, help="where the model trains (cpu, cuda, cuda:N)")
    run.add_argument(
        "--only",
        type=_only,
        action="append",
        default=[],
        metavar="FLAG=VALUE",
        help="only the recipe's runs with this value of a flag, e.g. --only size=xxs (repeatable)",
    )
    run.set_defaults(handler=cmd_run)

    recipes = commands.add_parser("recipes", help="list the recipes in trainer/recipes/, or show one's command lines")
    recipes.add_argument("recipe_name", metavar="RECIPE", nargs="?", help="show this recipe's runs")
    recipes.add_argument(
        "--store", type=Path, default=Path("models"), help="list the versions of this store each recipe made"
    )
    recipes.set_defaults(handler=cmd_recipes)

    publish = commands.add_parser(
        "publish", help="export a student's checkpoint to ONNX (batch norm folded, parity-checked) and publish it"
    )
    publish.add_argument("checkpoint", metavar="CHECKPOINT", type=Path, help="a run's best.pt")
    publish.add_argument("--store", type=Path, default=Path("models"), help="the model store (default: models)")
    publish.add_argument("--promote", action="store_true", help="serve the new version by default")
    publish.set_defaults(handler=cmd_publish)

    report = commands.add_parser("report", help="paper-style markdown tables from a runs folder's results")
    report.add_argument("runs", type=Path, help="runs root holding fer2013/ and ckplus/ (see trainer/report.py)")
    report.add_argument("--plots", type=Path, help="folder for the PNG figures")
    report.set_defaults(handler=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        args.handler(args)
    except (CLIError, DatasetError, CheckpointError, ResumeError, RecipeError, StoreError, WarmStartError) as exc:
        print(f"error: {first_line(exc)}", file=sys.stderr)
        return 2
    return 0
