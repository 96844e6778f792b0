"""Stage ``train``: fine-tune a classifier on a gold set (the teacher, paper §4.1.1).

The same stage trains a small student on gold only (``layers=(0, 5)``), the baseline a
distilled student has to beat.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, ClassVar, Literal

from slimbert.config import Options, check
from slimbert.data import owndata
from slimbert.io import write_json

log = logging.getLogger(__name__)

REPORT_FILE = "train_report.json"


@dataclasses.dataclass(frozen=True)
class _Common(Options):
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


@dataclasses.dataclass(frozen=True)
class TrainOptions(_Common):
    stage: ClassVar[str] = "train"

    model: str = "all-MiniLM-L6-v2"
    train: str = "tweets3:train"
    out: Path = Path("runs/teacher")
    head: Literal["linear", "gru"] = "linear"
    layers: tuple[int, ...] | None = None
    lr: float = 3e-5
    batch_size: int = 128
    # Without --validation, a user's training file gives this share (per class, seeded) to
    # validation; built-in training data and `slimbert data split` folders have their own.
    validation_share: float = 0.1

    def validate(self) -> None:
        super().validate()
        check(
            0 < self.validation_share < 1,
            f"validation_share must be in (0, 1), got {self.validation_share}",
        )
        check(self.lr > 0, f"lr must be positive, got {self.lr}")
        check(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")


DEFAULT_MAX_LENGTH = 128


def load_split(spec: str, opts: _Common, *, labels: tuple[str, ...] | None = None) -> Any:
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


def masked(data: Any, opts: _Common) -> Any:
    """``data`` with the topic carriers of ``opts.mask`` masked (training text only)."""
    import dataclasses

    from slimbert.train.masking import mask_texts

    if not opts.mask:
        return data
    return dataclasses.replace(data, texts=mask_texts(data.texts, opts.mask))


def train_classifier(options: TrainOptions, reporter: Any = None) -> dict[str, Any]:
    """Fine-tune ``options.model`` on ``options.train``; returns the report it also saves."""
    from slimbert.models.load import TorchClassifier
    from slimbert.train.loop import FitSettings, evaluate, fit

    plan = owndata.training_plan(options.train, options.validation)
    gold = load_split(options.train, options)
    owndata.check_labels(gold.label_counts(), options.train)
    if plan.validation is None:
        keep, held = owndata.held_out_indices(
            gold.labels, gold.label_names, options.validation_share, options.seed, options.train
        )
        train, validation = gold.subset(keep), gold.subset(held)
        log.info(
            "no --validation: %d of %d rows of %s held out for validation (seed %d)",
            len(held),
            len(gold),
            options.train,
            options.seed,
        )
    else:
        train = gold
        validation = load_split(plan.validation, options, labels=train.label_names)
    train = masked(train, options)
    max_length = options.max_length or DEFAULT_MAX_LENGTH
    clf = TorchClassifier.build(
        options.model,
        train.label_names,
        head=options.head,
        layers=options.layers,
        max_length=max_length,
        seed=options.seed,
    )
    # Saved into tokenizer_config.json: plain transformers truncates as the model was trained.
    clf.tokenizer.model_max_length = max_length
    settings = FitSettings.from_options(options)
    result = fit(clf, train, validation, settings, options.out, reporter=reporter)
    best = TorchClassifier.load(options.out)
    out = Path(options.out)
    record: dict[str, Any] = {
        "train": options.train,
        "validation": plan.validation,
        "test": plan.test,
        "validation_from": plan.how,
        "text_column": options.text_column,
        "label_column": options.label_column,
        "encoding": options.encoding,
    }
    if plan.validation is None:
        held_file = out / owndata.HELD_OUT_FILE
        from slimbert.data.load import write_csv

        write_csv(
            held_file,
            [options.text_column, options.label_column],
            [
                [text, validation.label_names[y]]
                for text, y in zip(validation.texts, validation.labels, strict=True)
            ],
            encoding=options.encoding,
        )
        record["validation"] = str(held_file)
        record["held_out"] = {
            "share": options.validation_share,
            "seed": options.seed,
            "rows": len(validation),
            "label_counts": validation.label_counts(),
        }
    report = {
        "stage": options.stage,
        "options": options.to_dict(),
        "data": record,
        "train_rows": len(train),
        "train_label_counts": train.label_counts(),
        "parameters": best.num_parameters(),
        "validation": evaluate(best, validation),
        **result.to_dict(),
    }
    write_json(Path(options.out) / REPORT_FILE, report)
    return report
