"""Stage ``distill``: train a small student on the teacher's silver labels (paper §4.1.2).

The paper trained students on the teacher's hard labels over a large unlabelled in-domain
pool; ``loss="soft"`` uses temperature-softened logits instead (Hinton et al.), ``"mix"`` both.
The silver set can be mixed with the gold set (gold rows always use their true labels).
The student is any HF encoder, or a layer subset of one (``student_layers=(0, 5)``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from slimbert.config import check
from slimbert.errors import DataError
from slimbert.io import write_json
from slimbert.train.common import (
    DEFAULT_MAX_LENGTH,
    REPORT_FILE,
    CommonOptions,
    load_split,
    masked,
)


@dataclasses.dataclass(frozen=True)
class DistillOptions(CommonOptions):
    stage: ClassVar[str] = "distill"

    silver: Path = Path("runs/silver")
    student: str = "all-MiniLM-L6-v2"
    student_layers: tuple[int, ...] | None = (0, 5)
    out: Path = Path("runs/student")
    gold: str | None = None
    loss: Literal["hard", "soft", "mix"] = "hard"
    temperature: float = 2.0
    alpha: float = 0.5
    lr: float = 2e-5
    batch_size: int = 64

    def validate(self) -> None:
        super().validate()
        check(self.lr > 0, f"lr must be positive, got {self.lr}")
        check(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        check(self.temperature > 0, f"temperature must be positive, got {self.temperature}")
        check(0 <= self.alpha <= 1, f"alpha must be in [0, 1], got {self.alpha}")


def distill(options: DistillOptions, reporter: Any = None) -> dict[str, Any]:
    from slimbert.data.load import TextSet
    from slimbert.models.load import TorchClassifier
    from slimbert.train.label import read_silver
    from slimbert.train.loop import FitSettings, evaluate, fit

    silver, logits = read_silver(options.silver)
    if options.limit is not None and len(silver) > options.limit:
        silver, logits = silver.subset(range(options.limit)), logits[: options.limit]
    options, record = _with_teacher_defaults(options)
    assert options.validation is not None and options.max_length is not None
    data_options = options.replace(
        text_column=record["text_column"],
        label_column=record["label_column"],
        encoding=record["encoding"],
    )
    validation = load_split(options.validation, data_options, labels=silver.label_names)
    train: TextSet = silver
    teacher_logits = logits
    gold_rows = 0
    if options.gold:
        gold = load_split(options.gold, options, labels=silver.label_names)
        if gold.label_names != silver.label_names:
            raise DataError(
                f"gold labels {gold.label_names} differ from the silver labels {silver.label_names}"
            )
        assert gold.labels is not None and silver.labels is not None
        gold_rows = len(gold)
        train = TextSet(
            texts=silver.texts + gold.texts,
            labels=silver.labels + gold.labels,
            label_names=silver.label_names,
            ids=silver.ids + [f"gold:{i}" for i in gold.ids],
            source=f"{silver.source}+{gold.source}",
        )
        # NaN marks "no teacher logits": those rows train on their gold label.
        teacher_logits = np.concatenate(
            [logits, np.full((len(gold), logits.shape[1]), np.nan, dtype=np.float32)]
        )
    train = masked(train, options)
    clf = TorchClassifier.build(
        options.student,
        silver.label_names,
        layers=options.student_layers,
        max_length=options.max_length,
        seed=options.seed,
    )
    # Saved into tokenizer_config.json: plain transformers truncates as the model was trained.
    clf.tokenizer.model_max_length = options.max_length
    settings = FitSettings.from_options(options)
    result = fit(
        clf,
        train,
        validation,
        settings,
        Path(options.out),
        teacher_logits=teacher_logits,
        reporter=reporter,
    )
    best = TorchClassifier.load(options.out)
    report = {
        "stage": options.stage,
        "options": options.to_dict(),
        "data": record,
        "silver_rows": len(silver),
        "gold_rows": gold_rows,
        "silver_label_counts": silver.label_counts(),
        "parameters": best.num_parameters(),
        "validation": evaluate(best, validation),
        **result.to_dict(),
    }
    write_json(Path(options.out) / REPORT_FILE, report)
    return report


def _with_teacher_defaults(options: DistillOptions) -> tuple[DistillOptions, dict[str, Any]]:
    """``options`` with validation and max_length taken from the silver set's teacher when
    not given, and the data record the student keeps (the teacher's test set carries over)."""
    from slimbert.data import owndata

    teacher = owndata.silver_teacher(options.silver)
    recorded = owndata.recorded_data(teacher) if teacher is not None else None
    record: dict[str, Any] = {
        "train": f"silver:{options.silver}",
        "validation": options.validation,
        "test": (recorded or {}).get("test"),
        "validation_from": "given",
        "text_column": options.text_column,
        "label_column": options.label_column,
        "encoding": options.encoding,
    }
    if options.validation is None:
        if recorded is None or not recorded.get("validation"):
            raise owndata.no_data_error(
                "distill", teacher or options.silver, "--validation", "validation"
            )
        record.update(
            validation=recorded["validation"],
            validation_from="teacher",
            text_column=recorded.get("text_column", "text"),
            label_column=recorded.get("label_column", "label"),
            encoding=recorded.get("encoding", "utf-8"),
        )
        options = options.replace(validation=recorded["validation"])
    if options.max_length is None:
        found = owndata.recorded_max_length(teacher) if teacher is not None else None
        options = options.replace(max_length=found or DEFAULT_MAX_LENGTH)
    return options, record
