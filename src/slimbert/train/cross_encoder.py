"""AugSBERT step 1 (``slimbert cross-encoder``): the cross-encoder that labels silver pairs.

A sentence-transformers ``CrossEncoder`` with one sigmoid output (from MiniLM) is fine-tuned on
scored pairs (STSb train + the target gold train), keeping the checkpoint with the best
validation Spearman. Any one-score cross-encoder folder can be used instead: step 2
(:mod:`slimbert.train.augment`) loads it with :func:`load_cross_encoder` and scores mined pairs
through :func:`pair_scorer`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from slimbert.config import Options, check
from slimbert.data.pairs import PairSet, load_pairs
from slimbert.errors import ModelError
from slimbert.io import atomic_dir, write_json
from slimbert.metrics import spearman

log = logging.getLogger(__name__)

CROSS_ENCODER_REPORT = "cross_encoder_report.json"
# A scorer takes sentence pairs and returns one similarity in [0, 1] per pair.
PairScorer = Callable[[list[tuple[str, str]]], Any]


@dataclasses.dataclass(frozen=True)
class CrossEncoderOptions(Options):
    """Options of ``slimbert cross-encoder``: the AugSBERT labeller, trained on gold pairs."""

    stage: ClassVar[str] = "cross-encoder"

    out: Path = Path("runs/cross-encoder")
    model: str = "all-MiniLM-L6-v2"
    train: tuple[str, ...] = ("stsb:train", "mrpc-target:train")
    validation: str = "mrpc-target:validation"
    epochs: int = 1
    batch_size: int = 16
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 128
    evals_per_epoch: int = 4
    patience: int = 2
    seed: int = 13
    limit: int | None = None
    validation_limit: int | None = None

    def validate(self) -> None:
        check(bool(self.train), "cross-encoder.train is empty", hint="e.g. stsb:train")
        check(self.lr > 0, f"cross-encoder.lr must be positive, got {self.lr}")
        check(0 <= self.warmup_ratio < 1, "cross-encoder.warmup_ratio must be in [0, 1)")
        check(self.weight_decay >= 0, "cross-encoder.weight_decay must be >= 0")
        check(self.max_length >= 8, f"cross-encoder.max_length must be >= 8, got {self.max_length}")
        for name in ("epochs", "batch_size", "evals_per_epoch", "patience"):
            value = getattr(self, name)
            check(value >= 1, f"cross-encoder.{name} must be at least 1, got {value}")
        for name in ("limit", "validation_limit"):
            value = getattr(self, name)
            check(value is None or value >= 1, f"cross-encoder.{name} must be >= 1, got {value}")
        check(str(self.out) != str(self.model), "cross-encoder.out must not be the model folder")


def train_cross_encoder(options: CrossEncoderOptions, reporter: Any = None) -> dict[str, Any]:
    """Fine-tune a one-output cross-encoder on scored pairs; the best checkpoint is kept.

    Loss: binary cross-entropy on the logit against the [0, 1] score (the AugSBERT recipe);
    AdamW with linear warm-up and decay; Spearman on ``validation`` ``evals_per_epoch`` times
    per epoch with early stopping. Our own loop, as in :mod:`slimbert.train.sbert`: the Trainer's
    checkpoints would pickle optimiser state.
    """
    import torch
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import get_linear_schedule_with_warmup

    from slimbert.train.loop import make_optimizer, optimizer_step, train_with_evals

    started = time.perf_counter()
    parts = [load_pairs(spec, limit=options.limit) for spec in options.train]
    first = [s for p in parts for s in p.first]
    second = [s for p in parts for s in p.second]
    targets = [float(x) for p in parts for x in p.require_scores()]
    validation = load_pairs(options.validation, limit=options.validation_limit)
    validation.require_scores()

    torch.manual_seed(options.seed)
    ce = _new_cross_encoder(options.model, options.max_length)
    loss = BinaryCrossEntropyLoss(ce)
    steps_per_epoch = max(1, math.ceil(len(first) / options.batch_size))
    total = steps_per_epoch * options.epochs
    optimizer = make_optimizer(ce, options.lr, options.weight_decay)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(options.warmup_ratio * total), total
    )
    rng = random.Random(options.seed)
    order = list(range(len(first)))

    def batches(epoch: int) -> list[list[int]]:
        rng.shuffle(order)
        return [order[i : i + options.batch_size] for i in range(0, len(order), options.batch_size)]

    def step(idx: list[int]) -> float:
        ce.train()
        value = loss(
            [[first[i] for i in idx], [second[i] for i in idx]],
            torch.tensor([targets[i] for i in idx], dtype=torch.float32),
        )
        return optimizer_step(value, ce.parameters(), optimizer, scheduler)

    def evaluate() -> float:
        rho = cross_encoder_spearman(ce, validation, options.batch_size * 4)
        log.info("cross-encoder: validation Spearman %.4f", rho)
        return rho

    def save() -> None:
        with atomic_dir(options.out, kind="cross-encoder") as tmp:
            ce.save(str(tmp), safe_serialization=True)

    result = train_with_evals(
        batches,
        step,
        evaluate,
        save,
        epochs=options.epochs,
        steps_per_epoch=steps_per_epoch,
        evals_per_epoch=options.evals_per_epoch,
        patience=options.patience,
        reporter=reporter,
    )
    report = {
        "stage": options.stage,
        "options": options.to_dict(),
        "train_pairs": len(first),
        "validation_pairs": len(validation),
        "best_val_spearman": result.best,
        "best_step": result.best_step,
        "steps": result.steps,
        "stopped_early": result.stopped_early,
        "seconds": time.perf_counter() - started,
        "history": result.history,
    }
    write_json(options.out / CROSS_ENCODER_REPORT, report)
    return report


def _new_cross_encoder(model: str, max_length: int) -> Any:
    from sentence_transformers import CrossEncoder

    from slimbert.models.load import resolve_model

    path = resolve_model(model)
    # A fresh one-output head on the encoder; never trust_remote_code.
    return CrossEncoder(path, num_labels=1, max_length=max_length, device="cpu")


def load_cross_encoder(path: Path, max_length: int = 128) -> Any:
    """A saved one-score cross-encoder folder (local files only, never remote code)."""
    from sentence_transformers import CrossEncoder

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelError(
            f"cross-encoder {path} is not a model folder (no config.json)",
            hint="train one with `slimbert cross-encoder`, or pass a cross-encoder folder",
        )
    ce = CrossEncoder(str(path), max_length=max_length, device="cpu", local_files_only=True)
    if ce.num_labels != 1:
        raise ModelError(
            f"cross-encoder {path} has {ce.num_labels} outputs; AugSBERT needs one score",
            hint="use a similarity (STS-style) cross-encoder",
        )
    return ce


def cross_encoder_spearman(ce: Any, pairs: PairSet, batch_size: int = 64) -> float:
    """Spearman correlation (not ×100) of the cross-encoder's scores with the gold scores."""
    ce.eval()
    scores = predict_scores(ce, list(zip(pairs.first, pairs.second, strict=True)), batch_size)
    return spearman(scores, pairs.require_scores())


def predict_scores(ce: Any, pairs: list[tuple[str, str]], batch_size: int) -> np.ndarray:
    """The cross-encoder's score of each pair, float32, in input order."""
    out = ce.predict(pairs, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
    return np.asarray(out, dtype=np.float32).reshape(-1)


def pair_scorer(ce: Any) -> PairScorer:
    """``ce`` as a :data:`PairScorer` (one batch per call: the caller has batched already)."""

    def score(pairs: list[tuple[str, str]]) -> np.ndarray:
        return predict_scores(ce, pairs, len(pairs))

    return score
