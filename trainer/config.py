"""Run configuration: everything that determines a training run, saved as config.json in its run directory."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from model_store.preprocess import PreprocessSpec
from trainer.augment import AugmentConfig
from trainer.label_targets import LabelMode


@dataclass(frozen=True)
class KDConfig:
    temperature: float
    kd_lambda: float = 0.5
    teacher: str = ""  # teacher checkpoint path, for provenance


@dataclass(frozen=True)
class TrainConfig:
    arch: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    epochs: int = 50
    batch_size: int = 64
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    schedule: Literal["constant", "cosine"] = "constant"
    label_smoothing: float = 0.0
    label_mode: LabelMode = "majority"  # what a face's label is when the dataset has votes (trainer.label_targets)
    ema: float | None = None  # decay of an exponential moving average of the weights, the model kept; None: no average
    patience: int | None = None  # early stopping on validation accuracy; None trains every epoch
    seed: int = 0
    channels_last: bool = False
    kd: KDConfig | None = None
    # Weights that start the run: a checkpoint (layers whose shapes differ are skipped) or a published model's folder,
    # models/<name>/<version> (trainer.warm_start).
    init_from: str | None = None
    dataset: str = ""
    recipe: str = ""  # the recipe (trainer/recipes/) the run comes from

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["preprocess"] = self.preprocess.model_dump()
        return data

    def describe(self) -> str:
        """One line for a model's provenance: what a reader needs to train the same way again."""
        schedule = "cosine decay" if self.schedule == "cosine" else "constant rate"
        return (
            f"{self.optimizer} lr {self.lr:g}, {schedule} over {self.epochs} epochs, batch {self.batch_size}, "
            f"{self.augment.describe()}"
            + (f", labels by FER+ {self.label_mode} protocol" if self.label_mode != "majority" else "")
            + (f", label smoothing {self.label_smoothing:g}" if self.label_smoothing else "")
            + (f", started from {self.init_from}" if self.init_from else "")
            + (f", dropout {self.model_kwargs['dropout']:g}" if "dropout" in self.model_kwargs else "")
            + (f", weights averaged (EMA {self.ema:g})" if self.ema is not None else "")
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        data["preprocess"] = PreprocessSpec(**data["preprocess"])
        data["augment"] = AugmentConfig(**data["augment"])
        data["kd"] = KDConfig(**data["kd"]) if data.get("kd") else None
        return cls(**data)


def spec_for(input_size: int, native_size: int = 48) -> PreprocessSpec:
    """Input ``input_size``, cropped (8 crops in training, centre in use) from faces resized to 8/7 of it."""
    return PreprocessSpec(input_size=input_size, resize_size=round(input_size * 8 / 7), native_size=native_size)


STUDENT_SPEC = spec_for(84)  # the paper's 84x84 students
# Each student family's default input side: MicroExpNet's is the paper's; the batch-normalised families with global
# pooling are built for FER2013's native 48x48 (smaller inputs cost less; `--input-size` overrides).
STUDENT_INPUT_SIZES = {"microexpnet": 84, "dsresnet": 48, "dsvgg": 48, "dsvgg5": 48}
# The families whose head has a dropout layer (dsresnet's convolutional head has none), which `--dropout` can set.
DROPOUT_FAMILIES = ("microexpnet", "dsvgg", "dsvgg5")
