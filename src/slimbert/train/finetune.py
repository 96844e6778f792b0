"""Stage ``train``: fine-tune a classifier on a gold set (the teacher, paper §4.1.1).

The same stage trains a small student on gold only (``layers=(0, 5)``), the baseline a
distilled student has to beat.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, ClassVar, Literal

from slimbert.config import check
from slimbert.data import owndata
from slimbert.io import write_json
from slimbert.train.common import (
    DEFAULT_MAX_LENGTH,
    REPORT_FILE,
    CommonOptions,
    load_split,
    masked,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainOptions(CommonOptions):
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
