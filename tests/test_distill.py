import math

import pytest
import torch

from trainer.distill import kd_loss


def _hand(student, teacher, label, T, lam):
    def softmax(v, t=1.0):
        e = [math.exp(x / t) for x in v]
        return [x / sum(e) for x in e]

    p_t, q_soft, q = softmax(teacher, T), softmax(student, T), softmax(student)
    soft = -sum(p * math.log(s) for p, s in zip(p_t, q_soft, strict=True))
    hard = -math.log(q[label])
    return lam * soft + (1 - lam) * hard


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0, 0.3])
@pytest.mark.parametrize("T", [1.0, 4.0, 20.0])
def test_kd_loss_matches_a_hand_computation(lam, T):
    student = [[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]
    teacher = [[2.0, 0.0, -1.0], [-1.0, 1.5, 0.5]]
    labels = [0, 1]
    expected = sum(_hand(s, t, y, T, lam) for s, t, y in zip(student, teacher, labels, strict=True)) / 2
    got = kd_loss(torch.tensor(student), torch.tensor(teacher), torch.tensor(labels), T, lam)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_lambda_zero_ignores_the_teacher_and_lambda_one_ignores_the_labels():
    student = torch.randn(4, 7)
    labels = torch.tensor([0, 1, 2, 3])
    a = kd_loss(student, torch.randn(4, 7), labels, 4.0, 0.0)
    b = kd_loss(student, torch.randn(4, 7), labels, 4.0, 0.0)
    assert a.item() == pytest.approx(b.item())
    teacher = torch.randn(4, 7)
    c = kd_loss(student, teacher, labels, 4.0, 1.0)
    d = kd_loss(student, teacher, torch.tensor([6, 5, 4, 3]), 4.0, 1.0)
    assert c.item() == pytest.approx(d.item())


def test_invalid_lambda_and_temperature_are_refused():
    s, t, y = torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, dtype=torch.long)
    with pytest.raises(ValueError):
        kd_loss(s, t, y, 4.0, 1.5)
    with pytest.raises(ValueError):
        kd_loss(s, t, y, 0.0, 0.5)
