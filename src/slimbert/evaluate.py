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


def _latency_ms(clf: Any, texts: list[str], samples: int, threads: int) -> dict[str, float]:
    import torch

    if samples == 0 or not texts:
        return {}
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for text in texts[:20]:  # warm-up: first calls allocate and pick kernels
            clf.logits([text])
        timings = []
        for i in range(samples):
            text = texts[i % len(texts)]
            start = time.perf_counter()
            clf.logits([text])
            timings.append((time.perf_counter() - start) * 1e3)
    finally:
        torch.set_num_threads(previous)
    return {
        "p50": float(np.percentile(timings, 50)),
        "p95": float(np.percentile(timings, 95)),
        "mean": float(np.mean(timings)),
    }


def evaluate_models(options: EvalOptions) -> dict[str, Any]:
    from slimbert.data import load_texts
    from slimbert.models import META_FILE, TorchClassifier, describe_folder
    from slimbert.train import evaluate

    rows = []
    data = None
    for model in options.models:
        path = Path(model)
        if not (path / META_FILE).is_file():
            raise ModelError(
                f"{path} is not a trained slimbert classifier",
                hint="pass folders written by `slimbert train` or `slimbert distill`",
            )
        clf = TorchClassifier.load(path)
        if data is None:
            data = load_texts(
                options.data,
                text_column=options.text_column,
                label_column=options.label_column,
                labels=clf.label_names,
                encoding=options.encoding,
                require_labels=True,
            )
            if options.limit is not None and len(data) > options.limit:
                data = data.subset(range(options.limit))
        report = evaluate(clf, data, options.batch_size)
        rows.append(
            {
                "model": str(path),
                "layers": len(clf.meta.layers) if clf.meta.layers else None,
                "parameters": clf.num_parameters(),
                "size_mb": describe_folder(path)["weights_mb"],
                "latency_ms": _latency_ms(
                    clf, data.texts, options.latency_samples, options.latency_threads
                ),
                **report,
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
        "| model | params (M) | weights (MB) | macro-F1 | accuracy | p50 ms | p95 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["models"]:
        lat = row["latency_ms"]
        lines.append(
            f"| {row['model']} | {row['parameters'] / 1e6:.1f} | {row['size_mb']:.1f} "
            f"| {row['macro_f1']:.4f} | {row['accuracy']:.4f} "
            f"| {lat.get('p50', float('nan')):.2f} | {lat.get('p95', float('nan')):.2f} |"
        )
    return "\n".join(lines) + "\n"
