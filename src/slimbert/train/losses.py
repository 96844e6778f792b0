"""Distillation losses (paper §4.1.2 and Hinton et al. 2015).

``hard``: cross-entropy on the teacher's argmax labels — what the paper did.
``soft``: KL divergence between temperature-softened teacher and student distributions,
scaled by T² so its gradients keep the same magnitude as T changes.
``mix``: ``alpha * soft + (1 - alpha) * hard``.
Rows without teacher logits (gold rows mixed into the silver set, marked by NaN) always use
the cross-entropy on their gold label.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

LossMode = Literal["hard", "soft", "mix"]


def soft_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-row KL(teacher_T || student_T) · T²."""
    log_p_student = F.log_softmax(student / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1)
    return kl * temperature**2


def distill_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    *,
    mode: LossMode = "hard",
    temperature: float = 2.0,
    alpha: float = 0.5,
) -> torch.Tensor:
    hard = F.cross_entropy(student_logits, labels, reduction="none")
    if mode == "hard" or teacher_logits is None:
        return hard.mean()
    has_teacher = ~torch.isnan(teacher_logits).any(dim=-1)
    safe_teacher = torch.where(has_teacher[:, None], teacher_logits, student_logits.detach())
    soft = soft_kl(student_logits, safe_teacher, temperature)
    per_row = soft if mode == "soft" else alpha * soft + (1.0 - alpha) * hard
    return torch.where(has_teacher, per_row, hard).mean()
