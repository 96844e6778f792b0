"""The export gate's statistics and its verdict for people (used by :mod:`slimbert.export.bundle`).

What one changed prediction is worth in macro-F1, the paired bootstrap behind "distinguishable
from noise", and the verdict text, with what the chosen variant leaves of a Lambda zip.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# Without scored pairs an embedder's int8 gate is the fp32/int8 agreement itself.
MIN_MEAN_COSINE = 0.99
# The paired bootstrap behind the gate's "distinguishable from noise" (seeded: same verdict on
# a rerun).
_BOOTSTRAP_ROUNDS = 2000
_BOOTSTRAP_SEED = 13
# What `slimbert package --target aws-lambda` checks (LAMBDA_ZIP_MIB), and what its runtime
# wheels took of it in the one zip measured for docs/results.md (x86_64, python3.12, with
# bytecode: numpy 14.4 + onnxruntime 13.1 + tokenizers 3.1 + code 0.06 MiB). A constant copied
# from that measurement, not measured at export time: other platforms or wheel versions differ,
# and `slimbert package` is what measures the real zip.
LAMBDA_ZIP_MIB = 50.0
RUNTIME_ZIPPED_MIB = 30.7
MIB = 2**20


def one_row_points(truth: np.ndarray, pred: np.ndarray, k: int) -> float:
    """The largest change of macro-F1, in points, that changing one prediction can make."""
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (truth, pred), 1)
    base = _macro_f1(np.diag(cm), cm.sum(0), cm.sum(1))
    worth = 0.0
    for t, p in zip(*np.nonzero(cm), strict=True):
        for q in range(k):
            if q != p:
                moved = cm.copy()
                moved[t, p] -= 1
                moved[t, q] += 1
                f1 = _macro_f1(np.diag(moved), moved.sum(0), moved.sum(1))
                worth = max(worth, abs(f1 - base))
    return 100 * float(worth)


def bootstrap_drops(
    truth: np.ndarray,
    fp32: np.ndarray,
    qint8: np.ndarray,
    k: int,
    rounds: int = _BOOTSTRAP_ROUNDS,
    seed: int = _BOOTSTRAP_SEED,
) -> np.ndarray:
    """Paired bootstrap: the macro-F1 drop (points) on ``rounds`` resamples of the rows,
    the same resampled rows for both variants."""
    n = len(truth)
    rng = np.random.default_rng(seed)
    onehot = np.eye(k, dtype=np.float64)
    true_k, pred32, pred8 = onehot[truth], onehot[fp32], onehot[qint8]
    hit32, hit8 = true_k * pred32, true_k * pred8
    drops = []
    for start in range(0, rounds, 250):  # 250 × n weights at a time
        weights = rng.multinomial(n, np.full(n, 1 / n), size=min(250, rounds - start))
        support = weights @ true_k
        f32 = _macro_f1(weights @ hit32, weights @ pred32, support)
        f8 = _macro_f1(weights @ hit8, weights @ pred8, support)
        drops.append(100 * (f32 - f8))
    return np.concatenate(drops)


def _macro_f1(tp: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> Any:
    """Macro-F1 from per-class counts (last axis), 0 for a class never true nor predicted
    (as ``slimbert.metrics``)."""
    denominator = predicted + support
    f1 = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
    return f1.mean(-1)


def gate_verdict(gate: dict[str, Any], sizes: dict[str, dict[str, int]], quantize: bool) -> str:
    """The gate's verdict for people: what was measured on how much data, what one row is
    worth, the option that moves the threshold, and what the choice does to the package."""
    if gate.get("qint8") is None:
        why = "--no-quantize" if not quantize else "no validation data (--validation)"
        return f"int8 not built or not gated ({why}): the bundle holds fp32. " + _size_line(
            gate, sizes
        )
    verb = "passes" if gate["passed"] else "fails"
    lines = [f"int8 {verb} the quality gate on {gate['rows']:,} validation rows ({gate['data']})."]
    q = gate["qint8"]
    if "macro_f1_drop_points" in q:
        threshold = gate["threshold_points"]
        lines.append(
            f"Macro-F1 {gate['fp32']['macro_f1']:.4f} (fp32) → {q['macro_f1']:.4f} (int8): "
            f"a drop of {q['macro_f1_drop_points']:.2f} points against --max-f1-drop "
            f"{threshold:g}. One changed prediction moves macro-F1 by up to "
            f"{gate['one_row_points']:.2f} points here (accuracy by {100 / gate['rows']:.2f})."
        )
        lines.append(
            f"int8 is wrong on {q['worse_rows']} row(s) where fp32 is right and right on "
            f"{q['better_rows']} where fp32 is wrong."
        )
        if q["macro_f1_drop_points"] > threshold >= 0 and gate.get("confidence"):
            told = "distinguishable" if q["distinguishable"] else "not distinguishable"
            lines.append(
                f"Paired bootstrap ({gate['confidence']:.0%}): the drop is at least "
                f"{q['drop_low_points']:.2f} points, {told} from noise"
                + ("." if q["distinguishable"] else ", so int8 is not refused for it.")
                + " --gate-confidence 0 gates on the threshold alone."
            )
        if gate["one_row_points"] > threshold > 0:
            needed = math.ceil(gate["rows"] * gate["one_row_points"] / threshold)
            lines.append(
                f"With {gate['rows']:,} rows a single row outweighs the threshold: about "
                f"{needed:,} rows make a {threshold:g}-point threshold meaningful."
            )
    elif "spearman_drop_points" in q:
        lines.append(
            f"Spearman ×100 drops {q['spearman_drop_points']:.2f} points against "
            f"--max-spearman-drop {gate['threshold_points']:g}."
        )
    else:
        lines.append(
            f"Mean fp32/int8 cosine {q['cosine_mean']:.4f} (at least {MIN_MEAN_COSINE} needed; "
            "give --validation scored pairs to gate on Spearman instead)."
        )
    suite = gate.get("behaviour")
    if suite:
        lines.append(
            f"Behavioural suite: pass rate {100 * suite['fp32_pass_rate']:.1f}% → "
            f"{100 * suite['qint8_pass_rate']:.1f}% over {suite['cases']} cases (one case "
            f"{100 / max(suite['cases'], 1):.2f} points), a drop of {suite['drop_points']:.2f} "
            f"against --max-behaviour-drop {suite['threshold_points']:g}."
        )
    if not gate["passed"]:
        option, drop = "--max-f1-drop", q.get("macro_f1_drop_points")
        if suite and suite["drop_points"] > suite["threshold_points"]:
            option, drop = "--max-behaviour-drop", suite["drop_points"]
        elif "spearman_drop_points" in q:
            option, drop = "--max-spearman-drop", q["spearman_drop_points"]
        if drop is not None:
            lines.append(f"To keep int8 anyway: {option} {math.ceil(drop * 10) / 10:g}.")
    lines.append(_size_line(gate, sizes))
    return " ".join(lines)


def _size_line(gate: dict[str, Any], sizes: dict[str, dict[str, int]]) -> str:
    def mib(variant: str) -> str:
        s = sizes[variant]
        return f"{s['bytes'] / MIB:.1f} MiB ({s['zipped_bytes'] / MIB:.1f} MiB zipped)"

    chosen = gate["chosen"]
    text = "Size: fp32 " + mib("fp32") + ("; int8 " + mib("qint8") if "qint8" in sizes else "")
    room = LAMBDA_ZIP_MIB - RUNTIME_ZIPPED_MIB
    zipped = sizes[chosen]["zipped_bytes"] / MIB
    text += (
        f". A Lambda zip may hold {LAMBDA_ZIP_MIB:g} MiB (`slimbert package` checks it); the "
        f"runtime took about {RUNTIME_ZIPPED_MIB:g} in the x86_64 zip measured for "
        f"docs/results.md (not measured here), leaving about {room:.0f} MiB for the "
        f"model: the bundled {'int8' if chosen == 'qint8' else chosen} "
    )
    if zipped <= room:
        return text + "fits."
    text += "will not fit"
    if chosen == "fp32" and "qint8" in sizes and sizes["qint8"]["zipped_bytes"] / MIB <= room:
        text += " (int8 would)"
    return text + ": deploy the zip through S3 or a container, or a smaller student."
