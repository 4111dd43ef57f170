"""``python -m trainer``: train teachers and students, sweep temperatures, cross-validate, evaluate, report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from model_store.preprocess import PreprocessSpec
from trainer.augment import AugmentConfig
from trainer.checkpoint import CheckpointError, ModelCheckpoint
from trainer.config import STUDENT_SPEC, TEACHER_SPEC, KDConfig, TrainConfig, spec_for
from trainer.data import DatasetError, FaceDataset, open_dataset
from trainer.models.microexpnet import POOLINGS, SIZES
from trainer.train import ResumeError, fit

TEMPERATURES = (2.0, 4.0, 8.0, 16.0, 20.0, 32.0, 64.0)


class CLIError(Exception):
    pass


def _add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        required=True,
        help="KIND:PATH with KIND fer2013 (folder of train/val/test), fer2013-csv, ckplus (<class>/S*_*_*.png), "
        "ckplus-original (cohn-kanade-images + Emotion) or folder (<class>/<image>)",
    )
    parser.add_argument("--subject-pattern", help="regex whose first group is the subject id in a file name")


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
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    group.add_argument("--quiet", action="store_true", help="no progress bar")


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
        patience=args.patience,
        seed=args.seed,
        dataset=args.data,
        **extra,  # type: ignore[arg-type]
    )


def _train_val(args: argparse.Namespace) -> tuple[FaceDataset, FaceDataset]:
    splits = open_dataset(args.data, args.subject_pattern)
    if "train" not in splits:
        raise CLIError(f"{args.data} has no train/val split; use `cv` for single-folder datasets")
    return splits["train"], splits["val"]


def cmd_teacher(args: argparse.Namespace) -> None:
    train, val = _train_val(args)
    spec = spec_for(args.input_size)
    config = _config(args, args.arch, spec, channels_last=True)
    result = fit(config, train, val, args.run_dir, progress=not args.quiet)
    print(json.dumps({"run_dir": str(result.run_dir), "best_val_accuracy": result.best_val_accuracy}))


def _sizes(value: str) -> list[str]:
    return list(SIZES) if value.lower() == "all" else [value.upper()]


def cmd_student(args: argparse.Namespace) -> None:
    train, val = _train_val(args)
    logits = None
    if args.teacher is not None:
        from trainer.teacher_logits import teacher_logits

        logits = teacher_logits(args.teacher, train)
    for size in _sizes(args.size):
        kd = None if logits is None else KDConfig(args.temperature, args.kd_lambda, str(args.teacher))
        config = _config(
            args, f"microexpnet_{size.lower()}", STUDENT_SPEC, model_kwargs={"pooling": args.pooling}, kd=kd
        )
        run_dir = args.run_dir / size.lower() if args.size.lower() == "all" else args.run_dir
        result = fit(config, train, val, run_dir, logits, progress=not args.quiet)
        print(json.dumps({"size": size, "run_dir": str(run_dir), "best_val_accuracy": result.best_val_accuracy}))


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
    print(json.dumps(metrics.to_dict(), indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    teacher = commands.add_parser("teacher", help="train a teacher network on a dataset with train/val splits")
    _add_data(teacher)
    teacher.add_argument("--arch", default="fer_vgg", help="registered teacher architecture (fer_vgg, inception_v3)")
    teacher.add_argument("--input-size", type=int, default=TEACHER_SPEC.input_size)
    _add_training(teacher, epochs=30, lr=1e-3)
    teacher.set_defaults(handler=cmd_teacher)

    student = commands.add_parser("student", help="train MicroExpNet students, vanilla or by KD from a teacher")
    _add_data(student)
    student.add_argument("--size", default="all", help="M, S, XS, XXS or all")
    student.add_argument("--pooling", choices=POOLINGS, default="p12")
    student.add_argument("--teacher", type=Path, help="teacher best.pt; without it the student trains on labels")
    student.add_argument("--temperature", type=float, default=8.0)
    student.add_argument("--kd-lambda", type=float, default=0.5)
    _add_training(student, epochs=50, lr=1e-4)
    student.set_defaults(handler=cmd_student)

    evaluate = commands.add_parser("evaluate", help="accuracy, per-class precision/recall, confusion matrix")
    evaluate.add_argument("checkpoint", type=Path)
    _add_data(evaluate)
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--views", choices=("centre", "eight"), default="centre")
    evaluate.add_argument("--threads", type=int, default=None)
    evaluate.set_defaults(handler=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        args.handler(args)
    except (CLIError, DatasetError, CheckpointError, ResumeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
