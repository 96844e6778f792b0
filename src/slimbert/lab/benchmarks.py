"""Benchmarks that hold performance claims (never timed tests): ``slimbert bench ...``.

Each benchmark writes ``bench/results/<timestamp>/<name>.json`` and ``.md`` with the machine,
library versions and every setting, and quotes ratios measured side by side in one run.

``sampler``: the paper's batch sampler (§4.1.1) against plain shuffled batches — training
time per epoch and validation macro-F1 with and without class balancing and length
bucketing, on the same data, model and seed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from slimbert.config import Options, check
from slimbert.io import atomic_open, write_json

VARIANTS = {
    "plain": {"balance": False, "bucket": False},
    "bucket": {"balance": False, "bucket": True},
    "balance": {"balance": True, "bucket": False},
    "balance+bucket": {"balance": True, "bucket": True},
}


@dataclasses.dataclass(frozen=True)
class SamplerBenchOptions(Options):
    stage: ClassVar[str] = "bench-sampler"

    model: str = "all-MiniLM-L6-v2"
    layers: tuple[int, ...] | None = None
    train: str = "tweets3:train"
    validation: str = "tweets3:validation"
    epochs: int = 2
    batch_size: int = 128
    lr: float = 3e-5
    max_length: int = 128
    limit: int | None = None
    seed: int = 13
    results: Path = Path("bench/results")

    def validate(self) -> None:
        check(self.epochs >= 1, "epochs must be at least 1")
        check(self.batch_size >= 3, "batch_size must be at least 3")


def machine_info() -> dict[str, Any]:
    import importlib.metadata as md

    versions = {}
    for pkg in ("slimbert", "torch", "transformers", "numpy", "onnxruntime", "tokenizers"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "versions": versions,
    }


def results_dir(root: Path) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(root) / stamp
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_results(
    root: Path, name: str, report: dict[str, Any], markdown: str, *, out: Path | None = None
) -> Path:
    """Write ``<root>/<timestamp>/<name>.json`` and ``.md``; record the folder in ``report``.

    ``out``: a folder :func:`results_dir` made already (a benchmark that wrote plots into it
    first, so the Markdown can link them); left out, a new one.
    """
    out = out if out is not None else results_dir(root)
    write_json(out / f"{name}.json", report)
    with atomic_open(out / f"{name}.md") as fh:
        fh.write(markdown)
    report["out"] = str(out)
    return out


def run_sampler_bench(options: SamplerBenchOptions, reporter: Any = None) -> dict[str, Any]:
    import torch

    from slimbert.models.load import TorchClassifier
    from slimbert.train.common import load_split
    from slimbert.train.finetune import TrainOptions
    from slimbert.train.loop import FitSettings, fit

    base = TrainOptions(limit=options.limit, max_length=options.max_length)
    train = load_split(options.train, base)
    validation = load_split(options.validation, base, labels=train.label_names)
    rows: dict[str, Any] = {}
    for name, switches in VARIANTS.items():
        clf = TorchClassifier.build(
            options.model,
            train.label_names,
            layers=options.layers,
            max_length=options.max_length,
            seed=options.seed,
        )
        settings = FitSettings.from_options(
            options,
            patience=options.epochs,  # no early stop: every variant trains as long
            balance=switches["balance"],
            bucket=switches["bucket"],
        )
        with tempfile.TemporaryDirectory() as tmp:
            result = fit(clf, train, validation, settings, Path(tmp) / "m", reporter=reporter)
        hist = result.history
        seconds = sum(h["train_seconds"] for h in hist)
        examples = sum(h["train_examples"] for h in hist)
        rows[name] = {
            **switches,
            "epoch_seconds": seconds / len(hist),
            "examples_per_epoch": examples / len(hist),
            "ms_per_example": 1e3 * seconds / max(examples, 1),
            "padding_waste": sum(h["padding_waste"] for h in hist) / len(hist),
            "val_macro_f1_last": hist[-1]["val_macro_f1"],
            "val_macro_f1_best": result.best_val_macro_f1,
            "history": hist,
        }
    plain = rows["plain"]
    for row in rows.values():
        row["epoch_time_ratio_vs_plain"] = plain["epoch_seconds"] / row["epoch_seconds"]
        row["per_example_speedup_vs_plain"] = plain["ms_per_example"] / row["ms_per_example"]
    report = {
        "benchmark": "sampler",
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "machine": machine_info(),
        "torch_threads": torch.get_num_threads(),
        "options": options.to_dict(),
        "train_rows": len(train),
        "train_label_counts": train.label_counts(),
        "validation_rows": len(validation),
        "variants": rows,
    }
    save_results(options.results, "sampler", report, sampler_markdown(report))
    return report


def sampler_markdown(report: dict[str, Any]) -> str:
    o = report["options"]
    lines = [
        "# Sampler benchmark",
        "",
        f"{o['model']} (layers {o['layers'] or 'all'}), {report['train_rows']} gold rows "
        f"{report['train_label_counts']}, batch {o['batch_size']}, {o['epochs']} epochs, "
        f"{report['torch_threads']} torch threads on {report['machine']['cpus_usable']} CPUs.",
        "",
        "| variant | epoch s | examples/epoch | ms/example | padding waste | val macro-F1 "
        "| epoch time ×faster | per-example ×faster |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["variants"].items():
        lines.append(
            f"| {name} | {r['epoch_seconds']:.1f} | {r['examples_per_epoch']:.0f} "
            f"| {r['ms_per_example']:.2f} | {r['padding_waste']:.1%} "
            f"| {r['val_macro_f1_last']:.4f} | {r['epoch_time_ratio_vs_plain']:.2f} "
            f"| {r['per_example_speedup_vs_plain']:.2f} |"
        )
    lines += [
        "",
        "Ratios are against `plain` (shuffled batches, no balancing, no bucketing), measured in "
        "the same process one after another.",
    ]
    return "\n".join(lines) + "\n"
