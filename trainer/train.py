"""The training loop: vanilla (labels only) or knowledge distillation from cached teacher logits.

Every epoch writes ``last.pt`` (exact resume: model, optimizer, scheduler, RNG states, history) and, when validation
accuracy improves, ``best.pt``. Re-running the same command on the same run directory continues where it stopped.

With ``config.ema`` the run also keeps an exponential moving average of the weights (and batch-norm statistics),
updated after every step; that average is what is validated and saved as ``best.pt``, and the trained weights' own
validation accuracy is logged beside it. It leaves the training trajectory unchanged and costs nothing at inference.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from model_store.preprocess import PreprocessSpec
from trainer.augment import augment_batch
from trainer.checkpoint import ModelCheckpoint
from trainer.config import TrainConfig
from trainer.data import FaceDataset
from trainer.distill import distillation_term, mix
from trainer.evaluate import predict_logits, prepare_grids
from trainer.label_targets import label_loss, vote_targets
from trainer.models import create_model
from trainer.records import METRICS, EpochRecord, TrainingLog, write_atomically
from trainer.warm_start import calibration_faces, load_published


class ResumeError(ValueError):
    """A run directory whose saved configuration differs from the one asked for."""


def _optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def _saved_config(path: Path) -> TrainConfig | None:
    # Read back through the dataclass so a field added since the run started compares at its default value.
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except (TypeError, ValueError, KeyError):
        return None


def _init_from(model: nn.Module, path: Path, train: FaceDataset, grids: torch.Tensor, spec: PreprocessSpec) -> None:
    """Start from another run's weights, e.g. a teacher pretrained on FER2013 fine-tuned on CK+ with a new head, or
    from a published model's folder in the store."""
    if path.is_dir():
        load_published(model, path, train.classes, calibration_faces(grids, spec))
        return
    own = model.state_dict()
    source = ModelCheckpoint.load(path).state_dict
    usable = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ValueError(f"{path} shares no layer with this architecture")
    model.load_state_dict(usable, strict=False)


def _warmed_up_ema(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """An EMA whose decay after n steps is min(decay, (1 + n) / (10 + n)), as TensorFlow's and timm's warm-up.

    With the fixed decay alone the average keeps decay^n of where it started, and batch-norm variances fall ~100-fold
    in the first steps: at 0.9995 on FER2013 (449 steps an epoch) the start still weighs 0.17 after 8 epochs, and the
    averaged dsvgg5_xxs answered one class for all 8 epochs it was left to run. With the warm-up the start weighs
    2e-12 after 100 steps."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = int(num_averaged)
        get_ema_multi_avg_fn(min(decay, (1 + n) / (10 + n)))(averaged, current, num_averaged)

    return update


def _weight_average(config: TrainConfig, model: nn.Module) -> AveragedModel | None:
    if config.ema is None:
        return None
    return AveragedModel(model, multi_avg_fn=_warmed_up_ema(config.ema), use_buffers=True)


def _accuracy(model: nn.Module, grids: torch.Tensor, dataset: FaceDataset, spec: PreprocessSpec) -> float:
    return float((predict_logits(model, grids, spec).argmax(1).numpy() == dataset.labels).mean())


@dataclass
class _Progress:
    """Where a run stands; ``last.pt`` keeps it as a plain dict under "state"."""

    epoch: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    best_val: float = -1.0
    best_epoch: int = 0
    stale: int = 0  # epochs since validation accuracy last improved

    def to_state(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"history": [h.model_dump(exclude_none=True) for h in self.history]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Progress:
        return cls(**state | {"history": [EpochRecord(**h) for h in state["history"]]})

    def log(self) -> TrainingLog:
        return TrainingLog(history=self.history, best_epoch=self.best_epoch, best_val_accuracy=self.best_val)


@dataclass
class _Session:
    """A run's model and everything that changes with it from step to step."""

    model: nn.Module
    ema: AveragedModel | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    memory_format: torch.memory_format

    @property
    def kept(self) -> nn.Module:
        """The model validated and saved: the weight average when there is one."""
        return self.model if self.ema is None else self.ema.module


@dataclass(frozen=True)
class _Targets:
    """What each training face is compared with: its label, its votes (FER+), its teacher's logits (KD)."""

    labels: torch.Tensor
    votes: torch.Tensor | None
    teacher: torch.Tensor | None


def _claim(run_dir: Path, config: TrainConfig) -> None:
    """Make ``run_dir`` this configuration's: refuse a folder holding another, record this one."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    saved = _saved_config(config_path) if config_path.exists() else config
    # The recipe says where a configuration comes from, not what it trains: a run started by hand (or before runs
    # named their recipe) goes on under the recipe whose command it is.
    if saved is None or dataclasses.replace(saved, recipe=config.recipe) != config:
        raise ResumeError(f"{run_dir} holds a run with another configuration; use a new --run-dir")
    write_atomically(config_path, json.dumps(config.to_dict(), indent=2))


def _session(
    config: TrainConfig, train: FaceDataset, train_grids: torch.Tensor, device: str, resuming: bool
) -> _Session:
    torch.manual_seed(config.seed)
    model = create_model(config.arch, num_classes=len(train.classes), **config.model_kwargs)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    # A resumed run's weights come from last.pt: starting weights would be loaded (and a published model's
    # calibrated and checked) only to be overwritten.
    if config.init_from and not resuming:
        _init_from(model, Path(config.init_from), train, train_grids, config.preprocess)
    model = model.to(device)  # before the optimizer, so that its (resumed) state lives beside the parameters
    optimizer = _optimizer(config, model)
    return _Session(
        model=model,
        ema=_weight_average(config, model),
        optimizer=optimizer,
        scheduler=_scheduler(config, optimizer),
        generator=torch.Generator().manual_seed(config.seed),
        memory_format=memory_format,
    )


def _resume(session: _Session, last: Path) -> _Progress:
    """The progress saved in ``last.pt``, with the session put back where it was; a fresh start without it."""
    if not last.exists():
        return _Progress()
    saved = torch.load(last, map_location="cpu", weights_only=False)
    session.model.load_state_dict(saved["model"])
    session.optimizer.load_state_dict(saved["optimizer"])
    session.scheduler.load_state_dict(saved["scheduler"])
    session.generator.set_state(saved["generator"])
    torch.set_rng_state(saved["torch_rng"])
    if session.ema is not None:
        session.ema.load_state_dict(saved["ema"])
    return _Progress.from_state(saved["state"])


def _save_last(session: _Session, progress: _Progress, last: Path) -> None:
    tmp = last.with_suffix(".tmp")
    torch.save(
        {
            "model": session.model.state_dict(),
            "optimizer": session.optimizer.state_dict(),
            "scheduler": session.scheduler.state_dict(),
            "generator": session.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "state": progress.to_state(),
            **({} if session.ema is None else {"ema": session.ema.state_dict()}),
        },
        tmp,
    )
    tmp.replace(last)


def _save_best(session: _Session, config: TrainConfig, train: FaceDataset, epoch: int, val: float, path: Path) -> None:
    ModelCheckpoint(
        arch=config.arch,
        model_kwargs=config.model_kwargs,
        state_dict={k: v.detach().cpu().contiguous() for k, v in session.kept.state_dict().items()},
        labels=list(train.classes),
        preprocess=config.preprocess,
        provenance={
            "dataset": config.dataset or train.name,
            "split": train.name,
            "epochs": epoch,
            "seed": config.seed,
            "teacher": config.kd.teacher if config.kd else None,
            "temperature": config.kd.temperature if config.kd else None,
            "kd_lambda": config.kd.kd_lambda if config.kd else None,
            "config": config.to_dict(),
        },
        metrics={"val_accuracy": val},
    ).save(path)


def _train_epoch(
    session: _Session, config: TrainConfig, grids: torch.Tensor, targets: _Targets, description: str, progress: bool
) -> tuple[float, int]:
    """One pass over the training faces in a fresh order; returns the summed loss and the correct answers."""
    session.model.train()
    device = targets.labels.device
    order = torch.randperm(len(grids), generator=session.generator)
    # Summed on the device: reading them every batch would stall an accelerator once per step.
    total_loss, correct = torch.zeros((), device=device), torch.zeros((), dtype=torch.long, device=device)
    for start in tqdm(range(0, len(order), config.batch_size), desc=description, disable=not progress, leave=False):
        index = order[start : start + config.batch_size]
        x, flipped = augment_batch(grids[index], config.preprocess, config.augment, session.generator)
        logits = session.model(x.to(device).contiguous(memory_format=session.memory_format))
        index, flipped = index.to(device), flipped.to(device)
        y = targets.labels[index]
        votes = None if targets.votes is None else targets.votes[index.cpu()].to(device)
        loss = label_loss(logits, y, votes, config.label_mode, session.generator, config.label_smoothing)
        if config.kd is not None and targets.teacher is not None:
            teacher = targets.teacher[index, flipped.long()]
            loss = mix(distillation_term(logits, teacher, config.kd.temperature), loss, config.kd.kd_lambda)
        session.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        session.optimizer.step()
        if session.ema is not None:
            session.ema.update_parameters(session.model)
        total_loss += loss.detach() * len(index)
        correct += (logits.argmax(1) == y).sum()
    return total_loss.item(), int(correct)


def fit(
    config: TrainConfig,
    train: FaceDataset,
    val: FaceDataset,
    run_dir: Path,
    teacher_logits: torch.Tensor | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> None:
    """Train (or resume) a model; ``run_dir`` receives its checkpoints and ``metrics.json`` (see the module doc).
    ``teacher_logits`` [N, 2, C] are the teacher's logits for each training face, unflipped and flipped, required
    when ``config.kd`` is set.

    ``device`` (``cpu``, ``cuda``, ``cuda:1``) runs the model there; augmentation stays on the CPU with the run's
    generator, so the views a run sees do not depend on the device; ``best.pt`` holds CPU tensors and ``last.pt`` is
    read onto the CPU first, so a run started on a GPU resumes on a CPU and the other way round."""
    if (config.kd is None) != (teacher_logits is None):
        raise ValueError("teacher logits are needed exactly when the config asks for knowledge distillation")
    if teacher_logits is not None and teacher_logits.shape[:2] != (len(train), 2):
        raise ValueError(f"teacher logits {tuple(teacher_logits.shape)} do not match {len(train)} training faces")
    _claim(run_dir, config)
    spec = config.preprocess
    train_grids, val_grids = prepare_grids(train, spec), prepare_grids(val, spec)
    last = run_dir / "last.pt"
    session = _session(config, train, train_grids, device, resuming=last.exists())
    state = _resume(session, last)
    targets = _Targets(
        labels=torch.from_numpy(train.labels).to(device),
        votes=vote_targets(train.votes, config.label_mode),
        teacher=None if teacher_logits is None else teacher_logits.to(device),
    )
    while state.epoch < config.epochs and (config.patience is None or state.stale < config.patience):
        epoch = state.epoch + 1
        started = time.perf_counter()
        description = f"{run_dir.name} epoch {epoch}/{config.epochs}"
        total_loss, correct = _train_epoch(session, config, train_grids, targets, description, progress)
        session.scheduler.step()
        val_acc = _accuracy(session.kept, val_grids, val, spec)
        trained_val = None if session.ema is None else _accuracy(session.model, val_grids, val, spec)
        state.history.append(EpochRecord(
            epoch=epoch, train_loss=total_loss / len(train), train_accuracy=correct / len(train),
            val_accuracy=val_acc, trained_val_accuracy=trained_val, lr=session.optimizer.param_groups[0]["lr"],
            seconds=time.perf_counter() - started,
        ))  # fmt: skip
        state.epoch = epoch
        if val_acc > state.best_val:
            state.best_val, state.best_epoch, state.stale = val_acc, epoch, 0
            _save_best(session, config, train, epoch, val_acc, run_dir / "best.pt")
        else:
            state.stale += 1
        _save_last(session, state, run_dir / "last.pt")
        state.log().write(run_dir / METRICS)
        if progress:
            print(
                f"{run_dir.name} epoch {epoch}: loss {total_loss / len(train):.4f} "
                f"train {correct / len(train):.4f} val {val_acc:.4f} ({state.history[-1].seconds:.0f}s)",
                flush=True,
            )
