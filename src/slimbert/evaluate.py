"""Stage ``eval``: quality, size and CPU latency of classifiers, side by side.

For each model: macro-F1, per-class precision/recall/F1, accuracy and confusion matrix on a
labelled set; parameters and weight size; single-thread batch-1 latency (after a warm-up,
median and p95 over real texts) — the setting a serverless function runs in.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from slimbert.config import Options, check
from slimbert.errors import ModelError
from slimbert.io import atomic_open, write_json


@dataclasses.dataclass(frozen=True)
class EvalOptions(Options):
    stage: ClassVar[str] = "eval"

    models: tuple[str, ...] = ("runs/teacher",)
    data: str = "tweets3:test"
    out: Path | None = None
    text_column: str = "text"
    label_column: str = "label"
    encoding: str = "utf-8"
    batch_size: int = 256
    latency_samples: int = 200
    latency_threads: int = 1
    limit: int | None = None

    def validate(self) -> None:
        check(len(self.models) > 0, "eval needs at least one model", hint="--models a,b")
        check(self.batch_size >= 1, "batch_size must be at least 1")
        check(self.latency_samples >= 0, "latency_samples must be >= 0")
        check(self.latency_threads >= 1, "latency_threads must be at least 1")


def _latency_ms(scorer: Any, texts: list[str], samples: int, threads: int) -> dict[str, float]:
    if samples == 0 or not texts:
        return {}
    if hasattr(scorer, "module"):  # a torch model: its thread count is a process-wide setting
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return _time_calls(scorer.logits, texts, samples)
        finally:
            torch.set_num_threads(previous)
    return _time_calls(scorer.logits, texts, samples)


def _time_calls(logits: Any, texts: list[str], samples: int) -> dict[str, float]:
    for text in texts[:20]:  # warm-up: first calls allocate and pick kernels
        logits([text])
    timings = []
    for i in range(samples):
        text = texts[i % len(texts)]
        start = time.perf_counter()
        logits([text])
        timings.append((time.perf_counter() - start) * 1e3)
    return {
        "p50": float(np.percentile(timings, 50)),
        "p95": float(np.percentile(timings, 95)),
        "mean": float(np.mean(timings)),
    }


def _load(path: Path, threads: int) -> tuple[Any, dict[str, Any]]:
    """A scorer for a torch classifier folder or an ONNX bundle, and facts for the table."""
    from slimbert.models import META_FILE

    if (path / "manifest.json").is_file():
        from slimbert.runtime import load_bundle

        bundle = load_bundle(path, threads=threads)
        if bundle.task != "classification":
            raise ModelError(f"{path} is an {bundle.task} bundle; eval compares classifiers")
        files = bundle.manifest["files"]
        model_file = bundle.manifest["model_file"]
        return bundle, {
            "kind": f"onnx-{bundle.manifest.get('variant', '?')}",
            "layers": None,
            "parameters": None,
            "size_mb": files[model_file]["bytes"] / 1e6,
        }
    if (path / META_FILE).is_file():
        from slimbert.models import TorchClassifier, weights_mb

        clf = TorchClassifier.load(path)
        return clf, {
            "kind": "torch",
            "layers": len(clf.meta.layers) if clf.meta.layers else None,
            "parameters": clf.num_parameters(),
            "size_mb": weights_mb(path),
        }
    raise ModelError(
        f"{path} is neither a trained slimbert classifier nor an exported bundle",
        hint="pass folders written by `slimbert train`, `slimbert distill` or `slimbert export`",
    )


def _predict(scorer: Any, texts: list[str], batch_size: int) -> np.ndarray:
    """Logits in input order, in length-sorted batches (little padding)."""
    lengths = scorer.token_lengths(texts)
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(texts), len(scorer.label_names)), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        out[idx] = scorer.logits([texts[i] for i in idx])
    return out


def evaluate_models(options: EvalOptions) -> dict[str, Any]:
    from slimbert.data import load_texts
    from slimbert.metrics import classification_report

    rows = []
    data = None
    for model in options.models:
        path = Path(model)
        scorer, facts = _load(path, options.latency_threads)
        if data is None:
            data = load_texts(
                options.data,
                text_column=options.text_column,
                label_column=options.label_column,
                labels=scorer.label_names,
                encoding=options.encoding,
                require_labels=True,
            )
            if options.limit is not None and len(data) > options.limit:
                data = data.subset(range(options.limit))
        if tuple(scorer.label_names) != tuple(data.label_names):
            raise ModelError(
                f"{path} predicts {scorer.label_names}, the data has {data.label_names}"
            )
        assert data.labels is not None
        preds = _predict(scorer, data.texts, options.batch_size).argmax(axis=1)
        rows.append(
            {
                "model": str(path),
                **facts,
                "latency_ms": _latency_ms(
                    scorer, data.texts, options.latency_samples, options.latency_threads
                ),
                **classification_report(data.labels, preds, data.label_names),
            }
        )
    result = {"data": options.data, "rows": len(data) if data else 0, "models": rows}
    if options.out is not None:
        out = Path(options.out)
        write_json(out.with_suffix(".json"), result)
        with atomic_open(out.with_suffix(".md")) as fh:
            fh.write(markdown_table(result))
    return result


def markdown_table(result: dict[str, Any]) -> str:
    lines = [
        f"Evaluated on `{result['data']}` ({result['rows']} rows); latency: batch 1, "
        "single thread, after warm-up.",
        "",
        "| model | kind | params (M) | weights (MB) | macro-F1 | accuracy | p50 ms | p95 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["models"]:
        lat = row["latency_ms"]
        params = f"{row['parameters'] / 1e6:.1f}" if row["parameters"] else "–"
        lines.append(
            f"| {row['model']} | {row['kind']} | {params} | {row['size_mb']:.1f} "
            f"| {row['macro_f1']:.4f} | {row['accuracy']:.4f} "
            f"| {lat.get('p50', float('nan')):.2f} | {lat.get('p95', float('nan')):.2f} |"
        )
    return "\n".join(lines) + "\n"
