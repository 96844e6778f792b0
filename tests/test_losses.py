from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from slimbert.train.losses import distill_loss, soft_kl  # noqa: E402


def test_hard_loss_is_cross_entropy_on_teacher_labels() -> None:
    student = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    labels = torch.tensor([0, 2])
    expected = torch.nn.functional.cross_entropy(student, labels)
    got = distill_loss(student, labels, torch.randn(2, 3), mode="hard")
    assert torch.isclose(got, expected)


def test_soft_loss_is_zero_when_student_matches_teacher() -> None:
    logits = torch.tensor([[1.0, -2.0, 0.5]])
    assert float(distill_loss(logits, torch.tensor([0]), logits, mode="soft")) == pytest.approx(0.0)


def test_soft_kl_matches_hand_computation_and_scales_with_t_squared() -> None:
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])  # p_teacher = (0.75, 0.25) at T=1
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert float(soft_kl(student, teacher, 1.0)) == pytest.approx(expected, rel=1e-5)
    # At T=2 the distributions soften; the T² factor is applied on top.
    p = torch.softmax(teacher / 2, dim=-1)[0]
    kl_t2 = float((p * (p.log() - math.log(0.5))).sum())
    assert float(soft_kl(student, teacher, 2.0)) == pytest.approx(4 * kl_t2, rel=1e-5)


def test_mix_interpolates_and_nan_rows_fall_back_to_gold_cross_entropy() -> None:
    student = torch.tensor([[1.0, 0.0, -1.0], [0.2, 0.1, 0.0]])
    teacher = torch.tensor([[0.0, 2.0, 0.0], [float("nan")] * 3])
    labels = torch.tensor([1, 2])
    hard = torch.nn.functional.cross_entropy(student, labels, reduction="none")
    soft = soft_kl(student[:1], teacher[:1], 2.0)
    got = distill_loss(student, labels, teacher, mode="mix", alpha=0.25, temperature=2.0)
    expected = ((0.25 * soft[0] + 0.75 * hard[0]) + hard[1]) / 2
    assert torch.isclose(got, expected)
    assert torch.isfinite(got)
