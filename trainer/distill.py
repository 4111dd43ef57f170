"""The paper's knowledge-distillation loss.

L = λ·H(softmax(z/T), softmax(v/T)) + (1−λ)·H(y, softmax(v)), with z the teacher's and v the student's logits,
T the temperature and H the cross-entropy. λ = 0 is plain training on labels; λ = 1 learns from the teacher only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(target_probs: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of H(p, softmax(logits)) = -Σ p log q."""
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def distillation_term(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """H(softmax(z/T), softmax(v/T)), the teacher's part of the loss."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return soft_cross_entropy(F.softmax(teacher_logits / temperature, dim=1), student_logits / temperature)


def mix(teacher_term: torch.Tensor, label_term: torch.Tensor, kd_lambda: float) -> torch.Tensor:
    """λ·teacher term + (1−λ)·label term."""
    if not 0.0 <= kd_lambda <= 1.0:
        raise ValueError(f"kd_lambda must be in [0, 1], got {kd_lambda}")
    return kd_lambda * teacher_term + (1.0 - kd_lambda) * label_term


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    kd_lambda: float = 0.5,
) -> torch.Tensor:
    teacher_term = distillation_term(student_logits, teacher_logits, temperature)
    return mix(teacher_term, F.cross_entropy(student_logits, labels), kd_lambda)
