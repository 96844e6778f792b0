"""``slimbert index calibrate``: the cosine threshold above which two texts are duplicates.

The threshold maximises F1 on the target validation pairs (duplicate = score 1; related 0.5
and unrelated 0 are not duplicates) and is then judged, unchanged, on the target test pairs:
precision, recall and F1 from scikit-learn. With ``--index`` it is written into the index
manifest, where ``slimbert index query`` and the serverless function read it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from slimbert.config import Options, check
from slimbert.errors import DataError, require
from slimbert.io import claim_report, write_report

log = logging.getLogger(__name__)
DUPLICATE_SCORE = 1.0


@dataclasses.dataclass(frozen=True)
class CalibrateOptions(Options):
    stage: ClassVar[str] = "index-calibrate"

    bundle: Path = Path("runs/sbert/bundle")
    validation: str = "mrpc-target:validation"
    test: str = "mrpc-target:test"
    index: Path | None = None
    out: Path = Path("runs/calibration.json")
    limit: int | None = None
    batch_size: int = 64

    def validate(self) -> None:
        check(self.limit is None or self.limit >= 2, "limit must be at least 2")
        check(self.batch_size >= 1, "batch_size must be at least 1")


def pair_scores(bundle: Any, first: list[str], second: list[str], batch_size: int = 64) -> Any:
    """Cosine similarity of each pair, each distinct sentence embedded once."""
    from slimbert.index.build import embed_texts

    unique = sorted(set(first) | set(second))
    row = {text: i for i, text in enumerate(unique)}
    vectors = embed_texts(bundle, unique, batch_size)
    a = vectors[[row[t] for t in first]]
    b = vectors[[row[t] for t in second]]
    return np.einsum("ij,ij->i", a, b)


def pick_threshold(scores: Any, duplicate: Any) -> dict[str, float]:
    """The threshold ``t`` (predict duplicate when score ≥ t) with the highest F1.

    Ties go to the higher threshold (fewer false alarms at the same F1). Returned with the
    precision, recall and F1 it reaches on these pairs.
    """
    metrics = require("sklearn.metrics", "train")
    y = np.asarray(duplicate, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.all() or not y.any():
        raise DataError(
            "calibration needs both duplicate and non-duplicate pairs",
            hint="use pairs scored 1 (duplicate) and below 1 (not)",
        )
    precision, recall, thresholds = metrics.precision_recall_curve(y, s)  # type: ignore[attr-defined]
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
    best = int(np.flatnonzero(f1 == f1.max())[-1])  # thresholds ascend: last = highest
    return {
        "threshold": float(thresholds[best]),
        "precision": float(precision[best]),
        "recall": float(recall[best]),
        "f1": float(f1[best]),
    }


def evaluate_threshold(scores: Any, duplicate: Any, threshold: float) -> dict[str, Any]:
    """Precision, recall, F1 and counts of ``score ≥ threshold`` against the truth."""
    metrics = require("sklearn.metrics", "train")
    y = np.asarray(duplicate, dtype=bool)
    predicted = np.asarray(scores) >= threshold
    p, r, f, _ = metrics.precision_recall_fscore_support(  # type: ignore[attr-defined]
        y, predicted, average="binary", zero_division=0
    )
    return {
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
        "accuracy": float((predicted == y).mean()),
        "pairs": len(y),
        "duplicates": int(y.sum()),
        "predicted_duplicates": int(predicted.sum()),
    }


def calibrate(options: CalibrateOptions) -> dict[str, Any]:
    """Pick the threshold on ``validation``, report it on ``test``; write JSON and Markdown."""
    from slimbert.data.pairs import load_pairs
    from slimbert.index.build import bundle_facts, set_threshold
    from slimbert.runtime.bundle import load_bundle

    out = Path(options.out).with_suffix(".json")
    # Before the work and the index's manifest: a user's file of that name is never replaced.
    claim_report(out, "calibration", companions=[out.with_suffix(".md")])
    bundle = load_bundle(options.bundle)
    report: dict[str, Any] = {"bundle": bundle_facts(bundle)}
    splits: dict[str, tuple[Any, Any]] = {}
    for name, spec in (("validation", options.validation), ("test", options.test)):
        pairs = load_pairs(spec, limit=options.limit)
        truth = np.asarray(pairs.require_scores()) >= DUPLICATE_SCORE
        scores = pair_scores(bundle, pairs.first, pairs.second, options.batch_size)
        splits[name] = (scores, truth)
        report[f"{name}_data"] = spec
    chosen = pick_threshold(*splits["validation"])
    threshold = round(chosen["threshold"], 6)
    report["threshold"] = threshold
    report["validation"] = evaluate_threshold(*splits["validation"], threshold)
    report["test"] = evaluate_threshold(*splits["test"], threshold)
    report["created"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    report["out"] = str(out)
    if options.index is not None:
        set_threshold(
            options.index,
            {
                "value": threshold,
                "calibrated_on": options.validation,
                "validation_f1": report["validation"]["f1"],
                "test": {k: report["test"][k] for k in ("precision", "recall", "f1")},
                "bundle_model_sha256": report["bundle"]["model_sha256"],
                "report": str(out),
            },
        )
        report["index"] = str(options.index)
    write_report(out, report, "calibration", markdown=calibration_markdown(report))
    return report


def calibration_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Duplicate threshold: {report['bundle']['model_id']}",
        "",
        f"Cosine threshold **{report['threshold']:.4f}** (score ≥ threshold = duplicate), "
        f"chosen for the highest F1 on `{report['validation_data']}`; duplicate = pair score 1.",
        "",
        "| split | pairs | duplicates | predicted | precision | recall | F1 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for split in ("validation", "test"):
        m = report[split]
        name = f"{split} (`{report[f'{split}_data']}`)"
        lines.append(
            f"| {name} | {m['pairs']} | {m['duplicates']} | {m['predicted_duplicates']} | "
            f"{m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} |"
        )
    return "\n".join(lines) + "\n"


__all__ = [
    "CalibrateOptions",
    "calibrate",
    "calibration_markdown",
    "evaluate_threshold",
    "pick_threshold",
]
