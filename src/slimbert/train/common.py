"""What the classifier-training stages share: their options, reading a split, masking.

``slimbert train`` (:mod:`slimbert.train.finetune`) and ``slimbert distill``
(:mod:`slimbert.train.distill`) take the same data and training options, read their labelled
splits the same way and write the same report file; that lives here, once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from slimbert.config import Options, check
from slimbert.data.owndata import REPORT_FILE

__all__ = ["DEFAULT_MAX_LENGTH", "REPORT_FILE", "CommonOptions", "load_split", "masked"]


@dataclasses.dataclass(frozen=True)
class CommonOptions(Options):
    """Options every training stage shares (names identical in YAML, CLI and Python)."""

    # None: the data recorded for it (see slimbert.data.owndata): train decides by --train, distill
    # takes the teacher's; never a built-in corpus the user did not name.
    validation: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    labels: tuple[str, ...] | None = None
    encoding: str = "utf-8"
    # None: train uses 128; distill the teacher's (its slimbert.json).
    max_length: int | None = None
    epochs: int = 8
    patience: int = 2
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    micro_batch_size: int | None = None
    balance: bool = True
    bucket: bool = True
    seed: int = 13
    limit: int | None = None
    # Topic-leakage controls for the training text (slimbert.train.masking): mentions, hashtags,
    # urls, brands. Validation and test text stay as written.
    mask: tuple[str, ...] = ()
    # Keep the pre-trained encoder's generality: layer-wise learning-rate decay (1: off) and
    # frozen bottom (embeddings + the first freeze_layers - 1 transformer layers; 0: none).
    layer_decay: float = 1.0
    freeze_layers: int = 0
    # Robustness to misspelt input (slimbert.train.noise): the share of training words given a
    # fresh random typo every epoch (0: off).
    typos: float = 0.0

    def validate(self) -> None:
        from slimbert.train.masking import check_kinds

        check_kinds(self.mask)
        check(0 < self.layer_decay <= 1, f"layer_decay must be in (0, 1], got {self.layer_decay}")
        check(self.freeze_layers >= 0, "freeze_layers must be >= 0")
        check(0 <= self.typos < 1, f"typos must be in [0, 1), got {self.typos}")
        check(
            self.max_length is None or self.max_length >= 8,
            f"max_length must be at least 8, got {self.max_length}",
        )
        check(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}")
        check(self.patience >= 1, f"patience must be at least 1, got {self.patience}")
        check(0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)")
        check(self.weight_decay >= 0, "weight_decay must be >= 0")
        check(self.limit is None or self.limit > 0, "limit must be positive")
        if self.micro_batch_size is not None:
            check(self.micro_batch_size >= 1, "micro_batch_size must be at least 1")


DEFAULT_MAX_LENGTH = 128


def load_split(spec: str, opts: CommonOptions, *, labels: tuple[str, ...] | None = None) -> Any:
    """The labelled set ``spec``, read with the options' columns (first ``limit`` rows)."""
    from slimbert.data.load import load_texts

    data = load_texts(
        spec,
        text_column=opts.text_column,
        label_column=opts.label_column,
        labels=labels if labels is not None else opts.labels,
        encoding=opts.encoding,
        require_labels=True,
    )
    if opts.limit is not None and len(data) > opts.limit:
        data = data.subset(range(opts.limit))
    return data


def masked(data: Any, opts: CommonOptions) -> Any:
    """``data`` with the topic carriers of ``opts.mask`` masked (training text only)."""
    from slimbert.train.masking import mask_texts

    if not opts.mask:
        return data
    return dataclasses.replace(data, texts=mask_texts(data.texts, opts.mask))
