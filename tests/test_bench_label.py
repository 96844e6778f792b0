"""`slimbert bench label`: options, the Markdown it writes, and a small run (slow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slimbert.errors import ConfigError
from slimbert.lab.bench_label import (
    LabelBenchOptions,
    encoder_flops,
    label_markdown,
    prefix_agreement,
    roofline_row,
    run_label_bench,
    sgemm_peak,
)


def _report() -> dict[str, Any]:
    row = {"rows": 100, "seconds": 1.0, "rows_per_second": 90.0, "max_abs_logit_diff": 0.0}
    return {
        "options": {"data": "tweets3:pool", "limit": 100, "teacher": "t", "batch_size": 64}
        | {"cores": [1]},
        "machine": {"processor": "x86_64", "cpus_usable": 2},
        "max_length": 128,
        "exports": {"fp32": {"chosen": "fp32-opt"}, "int8": {"chosen": "fp32-opt"}},
        "throughput": [
            row
            | {"variant": "torch", "cores": 1, "steady_rows_per_second": 100.0}
            | {"per_core": 100.0, "agreement_with_torch": 1.0}
            | {"gflops_per_core": 40.0, "share_of_peak": 0.5},
            row
            | {"variant": "fp32", "cores": 1, "steady_rows_per_second": 250.0}
            | {"per_core": 250.0, "agreement_with_torch": 1.0}
            | {"gflops_per_core": 100.0, "share_of_peak": 1.25},
            row
            | {"variant": "int8", "cores": 1, "steady_rows_per_second": 500.0}
            | {"per_core": 500.0, "agreement_with_torch": 0.99, "gflops_per_core": 200.0},
        ],
        "roofline": {"sgemm_gflops_one_thread": 80.0, "mean_tokens": 30.0, "gflop_per_row": 0.4},
        "ray": {
            "cores": 2,
            "actors": 2,
            "rows": 5000,
            "local": {"seconds": 2.0, "rows_per_second": 50.0, "steady_rows_per_second": 60.0},
            "ray": {"seconds": 3.0, "rows_per_second": 40.0, "steady_rows_per_second": 57.0},
            "steady_ratio": 0.95,
            "end_to_end_ratio": 0.8,
            "label_identity": 1.0,
            "max_abs_logit_diff": 0.0,
            "same_shard_checksums": True,
            "killed_actor": {"actor_killed": True, "rows": 100, "expected_rows": 100}
            | {"label_identity": 1.0, "read_silver": "ok"},
            "killed_driver": {"shards_done_at_kill": 1, "shards": 4, "resumed_shards": 1}
            | {"rows": 100, "read_silver": "ok"},
        },
    }


def test_markdown_states_ratios_and_faults() -> None:
    text = label_markdown(_report())
    assert "| fp32 | 1 | 250 | 250 |" in text
    assert "| torch | 1 | 100 | 100 | 90 | 100.00% | 40.0 | 50% |" in text
    assert "sgemm peak measured in this run: 80.0 GFLOP/s" in text
    assert "| int8 | 1 | 500 | 500 | 90 | 99.00% | 200.0 | – (int8) |" in text  # no fp32 share
    assert "fp32 / torch bound on this CPU: 2.00x." in text
    assert "fp32 teacher, 5,000 rows" in text
    assert "ONNX fp32 / torch on 1 core(s): 2.50x" in text
    assert "int8 was not measured: export's quality gate kept fp32." in text
    assert "Ray / local: 0.95x steady" in text and "same labels on 100.00% of rows" in text
    assert "Killed actor: killed True, 100 of 100 rows" in text
    assert "Killed driver: SIGKILL after 1 of 4 shards; the rerun resumed 1" in text


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="cores must be between 1"):
        LabelBenchOptions(cores=(0,))
    with pytest.raises(ConfigError, match="repeats"):
        LabelBenchOptions(repeats=0)
    with pytest.raises(ConfigError, match="ray_limit"):
        LabelBenchOptions(ray_limit=0)


def test_the_killed_run_is_compared_on_the_rows_both_labelled() -> None:
    # The Ray comparison may label more rows (--ray-limit) than the fault run (--limit).
    assert prefix_agreement([0, 1, 2], [0, 1, 2, 2, 2]) == 1.0
    assert prefix_agreement([0, 1, 2, 0], [0, 1]) == 1.0
    assert prefix_agreement([0, 1, 1, 0], [0, 1, 2, 0]) == 0.75
    assert prefix_agreement([], [1]) == 0.0


def test_encoder_flops_counts_dense_layers_and_attention() -> None:
    config = {"hidden_size": 4, "num_hidden_layers": 2, "intermediate_size": 8}
    # per layer: 2 * n * (4*16 + 2*32) dense + 4 * n^2 * 4 attention; n = 3
    assert encoder_flops(config, 3) == 2 * (2 * 3 * 128 + 4 * 9 * 4)
    assert sgemm_peak(size=64, seconds=0.05) > 0


@pytest.mark.slow
def test_small_run_writes_results(
    tmp_path: Path, tiny_model: Path, tiny_data: dict[str, Path]
) -> None:
    """A tiny classifier on 60 rows, one core, no Ray: every variant it can export is
    measured and the results land under a timestamped folder."""
    from slimbert.models.load import TorchClassifier

    clf = tmp_path / "clf"
    TorchClassifier.build(tiny_model, ("negative", "neutral", "positive"), max_length=32).save(clf)
    options = LabelBenchOptions(
        teacher=clf,
        data=str(tiny_data["validation"]),
        limit=60,
        batch_size=16,
        shard_size=32,
        cores=(1,),
        repeats=1,
        ray=False,
        results=tmp_path / "results",
    )
    report = run_label_bench(options)
    out = Path(report["out"])
    saved = json.loads((out / "label.json").read_text(encoding="utf-8"))
    variants = {row["variant"] for row in saved["throughput"]}
    assert {"torch", "fp32"} <= variants
    fp32 = next(row for row in saved["throughput"] if row["variant"] == "fp32")
    assert fp32["agreement_with_torch"] == 1.0 and fp32["rows"] == 60
    assert saved["roofline"]["sgemm_gflops_one_thread"] > 0 and fp32["gflops_per_core"] > 0
    assert (out / "label.md").read_text(encoding="utf-8").startswith("# Labelling throughput")


def test_roofline_shares_the_fp32_peak_with_fp32_engines_only() -> None:
    # 100 rows/s per core of 0.5 GFLOP = 50 GFLOP/s per core, against an 80 GFLOP/s peak.
    for variant in ("torch", "fp32"):
        row = {"variant": variant, "per_core": 100.0}
        assert roofline_row(row, 0.5e9, 80.0) == {"gflops_per_core": 50.0, "share_of_peak": 0.625}
    assert roofline_row({"variant": "int8", "per_core": 100.0}, 0.5e9, 80.0) == {
        "gflops_per_core": 50.0
    }
