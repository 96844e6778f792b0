"""The export's quality gate: int8 or fp32 (run by :mod:`slimbert.export.bundle`).

Its data (labelled validation texts, or scored sentence pairs for an embedder), the
behavioural suite on both graphs, the decision per task, and the statistics behind it: what
one changed prediction is worth in macro-F1, the paired bootstrap behind "distinguishable
from noise", and the verdict text, with what the chosen variant leaves of a Lambda zip.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slimbert.errors import DataError
from slimbert.export.convert import OnnxRunner, Source
from slimbert.metrics import cosine_similarities, cosine_spearman

if TYPE_CHECKING:
    from slimbert.export.options import ExportOptions

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


# -- running the gate: its data, the int8 graph's scores, the verdict's figures ----------------


@dataclasses.dataclass
class GateData:
    texts: list[str]
    labels: list[int] | None = None
    scores: list[float] | None = None  # pairs: texts = first sentences + second sentences


def load_gate_data(options: ExportOptions, source: Source) -> GateData:
    from slimbert.data.load import load_texts

    assert options.validation is not None
    if source.task == "embedding":
        pairs = _pair_spec(options.validation, options.encoding, options.gate_rows)
        if pairs is None:
            pairs = read_pairs(options.validation, options.encoding, options.gate_rows)
        if pairs is not None:
            return pairs
    data = load_texts(
        options.validation,
        text_column=options.text_column,
        label_column=options.label_column if source.task == "classification" else None,
        labels=source.labels,
        encoding=options.encoding,
        require_labels=source.task == "classification",
    )
    if len(data) == 0:
        raise DataError("no rows for the quality gate", path=options.validation)
    data = data.subset(range(min(len(data), options.gate_rows)))
    return GateData(texts=data.texts, labels=data.labels)


def _pair_spec(spec: str, encoding: str, limit: int) -> GateData | None:
    """Scored pairs named the way every similarity stage names them (stsb:validation, ...)."""
    from slimbert.data.pairs import is_pair_spec, load_pairs

    if not is_pair_spec(spec):
        return None
    pairs = load_pairs(spec, encoding=encoding, limit=limit)
    return GateData(texts=pairs.first + pairs.second, scores=pairs.require_scores())


def read_pairs(spec: str, encoding: str, limit: int) -> GateData | None:
    """Scored sentence pairs (STS-b style) from a CSV/TSV, with or without a header."""
    from slimbert.data.pairs import read_scored_csv

    pairs = read_scored_csv(Path(spec), encoding, limit)
    if pairs is None:
        return None
    return GateData(texts=pairs.first + pairs.second, scores=pairs.require_scores())


def classification_gate(
    options: ExportOptions,
    source: Source,
    data: GateData | None,
    fp32: np.ndarray,
    qint8: np.ndarray | None,
    diff: float,
) -> dict[str, Any]:
    from slimbert.metrics import classification_report

    assert source.labels is not None
    gate: dict[str, Any] = {
        "data": options.validation,
        "rows": 0 if data is None else len(data.texts),
        "fp32": {"max_abs_logit_diff": diff, "macro_f1": None},
        "qint8": None,
        "threshold_points": options.max_f1_drop,
        "passed": None,
        "chosen": "fp32",
    }
    if data is None or data.labels is None:
        return gate
    f1_fp32 = classification_report(data.labels, fp32.argmax(1), source.labels)["macro_f1"]
    gate["fp32"]["macro_f1"] = f1_fp32
    if qint8 is None:
        return gate
    f1_int8 = classification_report(data.labels, qint8.argmax(1), source.labels)["macro_f1"]
    drop = 100 * (f1_fp32 - f1_int8)
    truth, p32, p8 = np.asarray(data.labels), fp32.argmax(1), qint8.argmax(1)
    k = len(source.labels)
    gate["one_row_points"] = one_row_points(truth, p32, k)
    confidence = gate["confidence"] = options.gate_confidence
    # Confidence 0 is the old rule (the drop alone): no bootstrap to run.
    low = (
        float(np.quantile(bootstrap_drops(truth, p32, p8, k), 1 - confidence))
        if confidence
        else drop
    )
    gate["qint8"] = {
        "label_agreement": float(np.mean(p8 == p32)),
        "macro_f1": f1_int8,
        "macro_f1_drop_points": drop,
        # McNemar's discordant rows: int8 wrong where fp32 is right, and the other way round.
        "worse_rows": int(np.sum((p32 == truth) & (p8 != truth))),
        "better_rows": int(np.sum((p32 != truth) & (p8 == truth))),
        "drop_low_points": low,
        "distinguishable": bool(low > 0),
    }
    over = drop > options.max_f1_drop
    # A negative threshold forces fp32; otherwise a drop within noise does not refuse int8.
    refused = over and (options.max_f1_drop < 0 or low > 0)
    return _decide(gate, not refused)


def behaviour_results(
    source: Source, graphs: list[Path], tokenizer: Any, pad_id: int
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The behavioural suite's results for the fp32 and the int8 graph (3-class sentiment)."""
    from slimbert.models import behaviour
    from slimbert.models.scoring import softmax

    if source.labels is None or not behaviour.applies_to(source.labels):
        return None
    cases = behaviour.load_suite()
    results = []
    for graph in graphs:
        runner = OnnxRunner(graph, tokenizer, pad_id)

        def probabilities(texts: list[str], runner: OnnxRunner = runner) -> np.ndarray:
            return softmax(runner.run(texts))

        results.append(behaviour.run_suite(probabilities, source.labels, cases))
    return results[0], results[1]


def behaviour_gate(
    options: ExportOptions, gate: dict[str, Any], fp32: dict[str, Any], qint8: dict[str, Any]
) -> dict[str, Any]:
    """int8 must also keep the behavioural pass rate within ``max_behaviour_drop`` points."""
    drop = 100 * (fp32["pass_rate"] - qint8["pass_rate"])
    gate["behaviour"] = {
        "cases": fp32["cases"],
        "fp32_pass_rate": fp32["pass_rate"],
        "qint8_pass_rate": qint8["pass_rate"],
        "drop_points": drop,
        "threshold_points": options.max_behaviour_drop,
    }
    if gate.get("passed") and drop > options.max_behaviour_drop:
        return _decide(gate, False)
    return gate


def embedding_gate(
    options: ExportOptions,
    data: GateData | None,
    fp32: np.ndarray,
    qint8: np.ndarray | None,
    diff: float,
) -> dict[str, Any]:
    pairs = data is not None and data.scores is not None
    gate: dict[str, Any] = {
        "data": options.validation,
        "rows": 0 if data is None else len(data.scores or data.texts),
        "pairs": pairs,
        "fp32": {"max_abs_embedding_diff": diff, "spearman": None},
        "qint8": None,
        "metric": "spearman_drop_points" if pairs else "cosine_mean",
        "threshold_points": options.max_spearman_drop if pairs else None,
        "threshold_cosine": None if pairs else MIN_MEAN_COSINE,
        "passed": None,
        "chosen": "fp32",
    }
    if data is None:
        return gate
    if data.scores is not None:
        gate["fp32"]["spearman"] = _spearman(fp32, data.scores)
    if qint8 is None:
        return gate
    cosine = cosine_similarities(fp32, qint8)
    gate["qint8"] = {"cosine_mean": float(cosine.mean()), "cosine_min": float(cosine.min())}
    if data.scores is None:
        return _decide(gate, float(cosine.mean()) >= MIN_MEAN_COSINE)
    rho = _spearman(qint8, data.scores)
    drop = 100 * (gate["fp32"]["spearman"] - rho)
    gate["qint8"].update({"spearman": rho, "spearman_drop_points": drop})
    return _decide(gate, drop <= options.max_spearman_drop)


def _spearman(vectors: np.ndarray, scores: list[float]) -> float:
    """The pairs' cosine-Spearman; ``vectors`` holds every pair's first texts, then seconds."""
    half = len(scores)
    return cosine_spearman(vectors[:half], vectors[half:], scores)


def _decide(gate: dict[str, Any], passed: bool) -> dict[str, Any]:
    gate["passed"] = passed
    gate["chosen"] = "qint8" if passed else "fp32"
    return gate


def model_sizes(model: Path) -> dict[str, int]:
    """A model file's bytes, and its bytes deflated as the package's zip stores it."""
    import zlib

    packer = zlib.compressobj(6)
    zipped = 0
    with open(model, "rb") as fh:
        while chunk := fh.read(1 << 22):
            zipped += len(packer.compress(chunk))
    zipped += len(packer.flush())
    return {"bytes": model.stat().st_size, "zipped_bytes": zipped}
