"""Smoke runs of the benchmarks on a tiny model: they run and report, they assert no speed."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from slimbert.io import read_json


def test_sampler_bench_reports_every_variant(tiny_model: Path, tiny_data, tmp_path: Path) -> None:
    from slimbert.lab.benchmarks import SamplerBenchOptions, run_sampler_bench

    report = run_sampler_bench(
        SamplerBenchOptions(
            model=str(tiny_model),
            train=str(tiny_data["train"]),
            validation=str(tiny_data["validation"]),
            epochs=1,
            batch_size=24,
            max_length=32,
            results=tmp_path,
        )
    )
    variants = report["variants"]
    assert set(variants) == {"plain", "bucket", "balance", "balance+bucket"}
    # Balancing under-samples: an epoch holds 3 × the smallest class (60 of 240 rows).
    assert variants["balance"]["examples_per_epoch"] == 180
    assert variants["plain"]["examples_per_epoch"] == 240
    # Bucketing cuts padding whatever the machine's speed.
    assert variants["bucket"]["padding_waste"] < variants["plain"]["padding_waste"]
    out = Path(report["out"])
    assert read_json(out / "sampler.json")["variants"].keys() == variants.keys()
    assert "| balance+bucket |" in (out / "sampler.md").read_text()


def test_serving_bench_compares_bundle_and_torch(tiny_model: Path, tiny_data, tmp_path) -> None:
    from slimbert.export.bundle import ExportOptions, export_model
    from slimbert.lab.bench_serving import ServingBenchOptions, run_serving_bench
    from slimbert.models.load import TorchClassifier

    clf = TorchClassifier.build(tiny_model, ("negative", "neutral", "positive"), max_length=32)
    clf.save(tmp_path / "teacher")
    export_model(
        ExportOptions(
            model=tmp_path / "teacher",
            out=tmp_path / "bundle",
            validation=str(tiny_data["validation"]),
        )
    )
    report = run_serving_bench(
        ServingBenchOptions(
            bundle=tmp_path / "bundle",
            teacher=tmp_path / "teacher",
            data=str(tiny_data["test"]),
            cold_runs=1,
            warm_runs=20,
            results=tmp_path / "results",
        )
    )
    assert report["cold_start"]["bundle"]["heavy_modules"] == []
    assert report["warm_ms"]["bundle"]["n"] == 20
    assert 0 <= report["handler_overhead_fraction"] < 1
    assert report["ratios"]["cold_start_teacher_over_bundle"] > 0
    assert (Path(report["out"]) / "serving.md").is_file()
    # The function's own cold-start budget: every phase, a table and a plot beside the JSON.
    from slimbert.runtime.phases import PHASES

    cold = report["cold_start"]["bundle"]
    assert list(cold["phases_ms"]) == list(PHASES)
    assert cold["phases_ms"]["session"] > 0 and cold["phases_ms"]["first_request"] > 0
    assert len(cold["runs"]) == 1 and cold["runs"][0]["interpreter_source"] == "launcher"
    assert cold["phases_total_ms"] <= cold["wall_ms"]["p50"] * 1.05  # inside the wall clock
    markdown = (Path(report["out"]) / "serving.md").read_text()
    assert "| session |" in markdown and "serving_coldstart.png" in markdown
    assert (Path(report["out"]) / "serving_coldstart.png").stat().st_size > 1000
