"""The exported teacher: `label --export-teacher` labels with an ONNX bundle of the teacher.

Labelling is the teacher's forward pass over a large pool, and an fp32 ONNX graph with
onnxruntime's fused attention runs it faster per core than torch (``slimbert bench label``
measures by how much). This module:

* exports the torch teacher with :func:`slimbert.export.bundle.export_model` into a bundle
  beside the
  silver folder (``<out>.teacher-fp32`` or ``<out>.teacher-int8``); fp32 is exported without a
  gate (the export's own parity check against torch still runs), int8 only behind export's
  quality gate on the teacher's recorded validation set (fp32 is kept when int8 fails it);
  the bundle is reused while the teacher folder is unchanged (a stamp beside it);
* measures the bundle's agreement with the torch teacher on an evenly spaced sample of the
  pool (share of rows with the same label, largest logit difference), which the silver
  manifest and the label result report.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slimbert.data.shards import folder_fingerprint
from slimbert.io import read_json, write_json

if TYPE_CHECKING:
    from slimbert.models.scoring import Scorer

log = logging.getLogger(__name__)

# The share of rows on which an fp32 bundle must agree with torch (issue 15's bar).
FP32_AGREEMENT = 0.999
_AGREEMENT_BATCH = 32


def teacher_bundle_path(out: Path, variant: str) -> Path:
    """Where the exported teacher of silver folder ``out`` lives (beside it, not inside)."""
    out = Path(out)
    return out.with_name(f"{out.name}.teacher-{variant}")


def exported_teacher(teacher: Path, out: Path, variant: str, max_length: int | None) -> Path:
    """The teacher exported to a bundle (``variant`` fp32 or int8); exported when missing or
    made from other teacher files, else reused."""
    from slimbert.export.bundle import AUTO, ExportOptions, export_model

    bundle = teacher_bundle_path(out, variant)
    stamp_path = bundle.with_name(f"{bundle.name}.source.json")
    stamp = {
        "teacher": str(Path(teacher).resolve()),
        "fingerprint": folder_fingerprint(Path(teacher)),
        "variant": variant,
        "max_length": max_length,
    }
    if (bundle / "manifest.json").is_file() and stamp_path.is_file():
        try:
            if read_json(stamp_path) == stamp:
                log.info("reusing the exported teacher %s", bundle)
                return bundle
        except (OSError, ValueError):
            pass
    log.info("exporting the teacher %s to %s (%s)", teacher, bundle, variant)
    int8 = variant == "int8"
    export_model(
        ExportOptions(
            model=Path(teacher),
            out=bundle,
            task="classification",
            # int8 only behind the gate on the teacher's recorded validation set.
            validation=AUTO if int8 else None,
            quantize=int8,
            max_length=max_length,
        )
    )
    write_json(stamp_path, stamp)
    return bundle


def agreement_with_torch(
    teacher: Path,
    max_length: int | None,
    rows: int,
    bundle_path: Path,
    bundle: Scorer,
    texts: list[str],
) -> dict[str, Any]:
    """Label an evenly spaced sample of ``rows`` of ``texts`` with the torch ``teacher`` and
    with ``bundle`` (loaded from ``bundle_path``): the share of equal labels and the largest
    logit difference."""
    from slimbert.models.load import load_scorer

    n = min(rows, len(texts))
    variant = _variant(bundle_path)
    if n == 0:
        return {"rows": 0, "bundle": str(bundle_path), "variant": variant}
    sample = np.unique(np.linspace(0, len(texts) - 1, n).round().astype(np.int64))
    chosen = [texts[i] for i in sample]
    torch_scorer = load_scorer(teacher, "torch", max_length=max_length)
    a = _logits(torch_scorer, chosen)
    b = _logits(bundle, chosen)
    agree = int((a.argmax(axis=1) == b.argmax(axis=1)).sum())
    share = agree / len(chosen)
    diff = float(np.abs(a - b).max())
    result: dict[str, Any] = {
        "rows": len(chosen),
        "same_label": agree,
        "agreement": share,
        "max_abs_logit_diff": diff,
        "torch_teacher": str(teacher),
        "bundle": str(bundle_path),
        "variant": variant,
    }
    if str(variant).startswith("fp32") and share < FP32_AGREEMENT:
        log.warning(
            "the fp32 teacher bundle agrees with torch on only %.2f%% of rows (expected >= %.1f%%)",
            100 * share,
            100 * FP32_AGREEMENT,
        )
    log.info(
        "exported teacher agrees with torch on %d of %d rows (%.2f%%), max |Δlogit| %.1e",
        agree,
        len(chosen),
        100 * share,
        diff,
    )
    return result


def _variant(bundle_path: Path) -> str | None:
    try:
        variant = read_json(Path(bundle_path) / "manifest.json").get("variant")
    except (OSError, ValueError):
        return None
    return str(variant) if variant is not None else None


def _logits(scorer: Scorer, texts: list[str]) -> np.ndarray:
    parts = [
        np.asarray(scorer.logits(texts[i : i + _AGREEMENT_BATCH]), dtype=np.float32)
        for i in range(0, len(texts), _AGREEMENT_BATCH)
    ]
    return np.concatenate(parts)


__all__ = ["FP32_AGREEMENT", "agreement_with_torch", "exported_teacher", "teacher_bundle_path"]
