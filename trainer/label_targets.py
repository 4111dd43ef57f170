"""What a training face's label is, by FER+'s four protocols (Barsoum et al., ICMI 2016, section 3), and the loss
that goes with each.

- ``majority``: the most-voted class, plain cross-entropy (every dataset's only mode when it has no votes).
- ``probability``: the paper's probabilistic label drawing: each time a face is seen, one class drawn from its
  vote distribution is its label (the paper's best, 85.0% on FER+ test with VGG13).
- ``crossentropy``: the vote distribution itself as a soft target (the paper's 84.7%).
- ``multilabel``: every class with at least ``MULTILABEL_SHARE`` of the votes is an acceptable answer; the loss is
  -log of the most probable acceptable class (the paper's 84.0%).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F

from trainer.distill import soft_cross_entropy

LabelMode = Literal["majority", "probability", "crossentropy", "multilabel"]
LABEL_MODES: tuple[str, ...] = get_args(LabelMode)
# A class that at least 3 of FER+'s 10 taggers chose is an acceptable answer (the paper names no threshold).
MULTILABEL_SHARE = 0.3


def vote_targets(votes: np.ndarray | None, mode: LabelMode) -> torch.Tensor | None:
    """Per-face targets [N, C] for a vote-based mode: the vote distribution (probability, crossentropy) or the mask
    of acceptable classes (multilabel); None for majority. A vote-based mode needs votes (FER+)."""
    if mode == "majority":
        return None
    if votes is None:
        raise ValueError(f"label mode {mode!r} needs each face's votes (a ferplus dataset); use majority")
    distribution = torch.from_numpy(votes / votes.sum(axis=1, keepdims=True)).float()
    if mode == "multilabel":
        return (distribution >= MULTILABEL_SHARE).float()
    return distribution


def label_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor | None,
    mode: LabelMode,
    generator: torch.Generator,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """The label term of the loss for one batch; ``targets`` are the batch's rows of ``vote_targets``. Draws for
    ``probability`` come from the run's ``generator`` (on the CPU), so a resumed run draws what it would have."""
    if mode == "majority" or targets is None:
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    if mode == "probability":
        drawn = torch.multinomial(targets.cpu(), 1, generator=generator).squeeze(1).to(logits.device)
        return F.cross_entropy(logits, drawn, label_smoothing=label_smoothing)
    if mode == "crossentropy":
        return soft_cross_entropy(targets, logits)
    acceptable = F.log_softmax(logits, dim=1).masked_fill(targets == 0, float("-inf"))
    return -acceptable.max(dim=1).values.mean()
