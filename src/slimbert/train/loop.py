"""The training loop shared by teacher fine-tuning and student distillation.

AdamW with weight decay (no decay on biases and LayerNorm), linear warm-up then linear decay,
the paper's class-balanced length-bucketed batches, gradient accumulation when a batch does
not fit, evaluation on the validation set after every epoch, early stopping on validation
macro-F1 with patience, and the best checkpoint kept (written atomically).
Distillation only changes the loss (see ``slimbert.train.losses``), so it reuses this loop.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from slimbert.data.load import TextSet
from slimbert.metrics import classification_report
from slimbert.models.load import TorchClassifier, predict_logits
from slimbert.train.losses import LossMode, distill_loss
from slimbert.train.noise import typo_noise
from slimbert.train.sampler import BalancedBucketSampler, padding_waste

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSettings:
    lr: float
    batch_size: int
    epochs: int
    patience: int
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    micro_batch_size: int | None = None
    balance: bool = True
    bucket: bool = True
    seed: int = 13
    eval_batch_size: int = 256
    loss: LossMode = "hard"
    temperature: float = 2.0
    alpha: float = 0.5
    layer_decay: float = 1.0
    freeze_layers: int = 0
    typos: float = 0.0

    @classmethod
    def from_options(cls, options: Any, **overrides: Any) -> FitSettings:
        """Take every setting a stage's options share with the loop, by name."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {n: getattr(options, n) for n in names if hasattr(options, n)}
        return cls(**{**values, **overrides})


class Reporter(Protocol):
    def epoch_started(self, epoch: int, steps: int) -> None: ...
    def step_done(self, loss: float) -> None: ...
    def epoch_done(self, record: dict[str, Any]) -> None: ...


class LogReporter:
    def epoch_started(self, epoch: int, steps: int) -> None:
        log.info("epoch %d: %d steps", epoch, steps)

    def step_done(self, loss: float) -> None:
        pass

    def epoch_done(self, record: dict[str, Any]) -> None:
        log.info("epoch %(epoch)d: val macro-F1 %(val_macro_f1).4f", record)


@dataclass
class FitResult:
    out: Path
    best_epoch: int
    best_val_macro_f1: float
    stopped_early: bool
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        return data


def evaluate(clf: TorchClassifier, data: TextSet, batch_size: int = 256) -> dict[str, Any]:
    if data.labels is None:
        raise ValueError("evaluation needs labelled data")
    preds = predict_logits(clf, data.texts, batch_size).argmax(axis=1)
    return classification_report(data.labels, preds, clf.label_names)


_LAYER = re.compile(r"\.layers?\.(\d+)\.")


def encoder_depth(name: str, num_layers: int) -> int:
    """Where a parameter sits: 0 embeddings, 1..N transformer layer, N + 1 above (pooler, head)."""
    if "embeddings" in name:
        return 0
    match = _LAYER.search(name)
    return int(match.group(1)) + 1 if match else num_layers + 1


def make_optimizer(
    module: torch.nn.Module,
    lr: float,
    weight_decay: float,
    *,
    layer_decay: float = 1.0,
    freeze_layers: int = 0,
) -> torch.optim.Optimizer:
    """AdamW; biases and LayerNorm weights are not decayed (BERT's original recipe).

    ``layer_decay`` < 1 is layer-wise learning-rate decay (Howard & Ruder 2018; Sun et al.
    2019): the head keeps ``lr``, layer k below it gets ``lr × layer_decay^k``, so the lower
    layers, which hold general language, move least. ``freeze_layers`` = k freezes the
    embeddings and the first k - 1 transformer layers outright (1: embeddings only).
    """
    names = [name for name, _ in module.named_parameters()]
    num_layers = max((int(m.group(1)) + 1 for n in names if (m := _LAYER.search(n))), default=0)
    groups: dict[tuple[int, bool], list[torch.nn.Parameter]] = {}
    for name, param in module.named_parameters():
        depth = encoder_depth(name, num_layers)
        if depth < freeze_layers:
            param.requires_grad_(False)
        if not param.requires_grad:
            continue
        groups.setdefault((depth, param.ndim < 2 or "LayerNorm" in name), []).append(param)
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr": lr * layer_decay ** (num_layers + 1 - depth),
            }
            for (depth, no_decay), params in sorted(groups.items())
        ],
        lr=lr,
    )


def optimizer_step(
    value: torch.Tensor,
    parameters: Iterable[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> float:
    """One batch's update for the SBERT stages and the cross-encoder: backward, clip the
    gradient norm at 1, an optimiser and a scheduler step; returns the loss as a float.
    (:func:`fit` keeps its own: it accumulates gradients over chunks of a batch.)"""
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    torch.nn.utils.clip_grad_norm_(parameters, 1.0)
    optimizer.step()
    scheduler.step()
    return float(value.detach())


def fit(
    clf: TorchClassifier,
    train: TextSet,
    validation: TextSet,
    settings: FitSettings,
    out: Path,
    *,
    teacher_logits: np.ndarray | None = None,
    reporter: Reporter | None = None,
) -> FitResult:
    """Train ``clf`` on ``train``; keep the checkpoint with the best validation macro-F1."""
    from transformers import get_linear_schedule_with_warmup

    if train.labels is None:
        raise ValueError("training needs labels (gold, or the teacher's silver labels)")
    reporter = reporter or LogReporter()
    torch.manual_seed(settings.seed)
    features = clf.encode(train.texts)
    lengths = [len(ids) for ids in features["input_ids"]]
    sampler = BalancedBucketSampler(
        lengths,
        train.labels,
        settings.batch_size,
        balance=settings.balance,
        bucket=settings.bucket,
        shuffle=True,
        seed=settings.seed,
    )
    labels = torch.tensor(train.labels, dtype=torch.long)
    teacher = (
        torch.from_numpy(teacher_logits.astype(np.float32)) if teacher_logits is not None else None
    )
    micro = settings.micro_batch_size or settings.batch_size

    optimizer = make_optimizer(
        clf.module,
        settings.lr,
        settings.weight_decay,
        layer_decay=settings.layer_decay,
        freeze_layers=settings.freeze_layers,
    )
    total_steps = max(1, len(sampler) * settings.epochs)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(settings.warmup_ratio * total_steps), total_steps
    )
    best_f1, best_epoch, bad_epochs = -1.0, 0, 0
    history: list[dict[str, Any]] = []
    started = time.perf_counter()
    stopped_early = False
    for epoch in range(1, settings.epochs + 1):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        if settings.typos > 0:
            # Fresh misspellings every epoch; the buckets keep the clean lengths (a typo
            # moves a text's length by a token or two).
            noisy = typo_noise(train.texts, settings.typos, seed=settings.seed * 1000 + epoch)
            features = clf.encode(noisy)
        reporter.epoch_started(epoch, len(batches))
        clf.module.train()
        epoch_start = time.perf_counter()
        losses: list[float] = []
        for batch_idx in batches:
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            # Gradient accumulation: the optimiser sees the whole batch, memory one chunk.
            for start in range(0, len(batch_idx), micro):
                chunk = batch_idx[start : start + micro]
                logits = clf.forward(clf.collate(features, chunk))
                loss = distill_loss(
                    logits,
                    labels[chunk],
                    teacher[chunk] if teacher is not None else None,
                    mode=settings.loss,
                    temperature=settings.temperature,
                    alpha=settings.alpha,
                ) * (len(chunk) / len(batch_idx))
                loss.backward()
                total += float(loss.detach())
            torch.nn.utils.clip_grad_norm_(clf.module.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(total)
            reporter.step_done(total)
        train_seconds = time.perf_counter() - epoch_start
        report = evaluate(clf, validation, settings.eval_batch_size)
        record = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)) if losses else math.nan,
            "train_seconds": train_seconds,
            "train_examples": sum(len(b) for b in batches),
            "padding_waste": padding_waste(batches, lengths),
            "val_macro_f1": report["macro_f1"],
            "val_accuracy": report["accuracy"],
        }
        history.append(record)
        reporter.epoch_done(record)
        if report["macro_f1"] > best_f1:
            best_f1, best_epoch, bad_epochs = report["macro_f1"], epoch, 0
            clf.save(out)
        else:
            bad_epochs += 1
            if bad_epochs >= settings.patience:
                stopped_early = epoch < settings.epochs
                break
    return FitResult(
        out=out,
        best_epoch=best_epoch,
        best_val_macro_f1=best_f1,
        stopped_early=stopped_early,
        seconds=time.perf_counter() - started,
        history=history,
    )


@dataclass
class EvalLoopResult:
    best: float
    best_step: int
    steps: int
    stopped_early: bool
    history: list[dict[str, Any]]


def train_with_evals(
    batches: Callable[[int], list[list[int]]],
    step: Callable[[list[int]], float | None],
    evaluate: Callable[[], float],
    save: Callable[[], None],
    *,
    epochs: int,
    steps_per_epoch: int,
    evals_per_epoch: int,
    patience: int,
    best: float = -math.inf,
    history: list[dict[str, Any]] | None = None,
    reporter: Reporter | None = None,
) -> EvalLoopResult:
    """The step loop of the pair trainers (SBERT stages, the cross-encoder).

    ``batches(epoch)`` gives the epoch's batches of indices; ``step(batch)`` trains on one and
    returns its loss (None: the batch was skipped); ``evaluate()`` scores the model on
    validation ``evals_per_epoch`` times per epoch and after an epoch's last batch; ``save()``
    keeps the model whenever the score beats ``best``; ``patience`` evaluations without a
    gain stop training.
    """
    eval_every = max(1, steps_per_epoch // evals_per_epoch)
    history = history if history is not None else []
    best_step, bad, steps = 0, 0, 0
    losses: list[float] = []
    segment = time.perf_counter()
    for epoch in range(1, epochs + 1):
        epoch_batches = batches(epoch)
        if reporter is not None:
            reporter.epoch_started(epoch, len(epoch_batches))
        for number, batch in enumerate(epoch_batches, start=1):
            loss = step(batch)
            if loss is None:
                continue
            steps += 1
            losses.append(loss)
            if reporter is not None:
                reporter.step_done(loss)
            if steps % eval_every and number < len(epoch_batches):
                continue
            score = evaluate()
            record = {
                "step": steps,
                "epoch": epoch,
                "train_loss": float(np.mean(losses)) if losses else math.nan,
                "train_seconds": time.perf_counter() - segment,
                "val_spearman": score,
            }
            history.append(record)
            if reporter is not None:
                reporter.epoch_done(record)
            losses, segment = [], time.perf_counter()
            if score > best:
                best, best_step, bad = score, steps, 0
                save()
            else:
                bad += 1
                if bad >= patience:
                    return EvalLoopResult(best, best_step, steps, True, history)
    return EvalLoopResult(best, best_step, steps, False, history)
