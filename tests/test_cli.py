"""The CLI is a thin layer: option names match the dataclasses; user errors are one line."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slimbert.cli import app

runner = CliRunner()


def _flags(command: str) -> str:
    result = runner.invoke(app, [*command.split(), "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(
    ("command", "module", "cls"),
    [
        ("train", "slimbert.train.finetune", "TrainOptions"),
        ("distill", "slimbert.train.distill", "DistillOptions"),
        ("label", "slimbert.train.label", "LabelOptions"),
        ("eval", "slimbert.train.evaluate", "EvalOptions"),
        ("bench sampler", "slimbert.lab.benchmarks", "SamplerBenchOptions"),
    ],
)
def test_every_option_field_is_a_flag_with_the_same_name(
    command: str, module: str, cls: str
) -> None:
    import importlib

    options = getattr(importlib.import_module(module), cls)
    text = _flags(command)
    for field in dataclasses.fields(options):
        assert "--" + field.name.replace("_", "-") in text, field.name


def _run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slimbert", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_user_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text,label\n1,hello,positive\n2,,negative\n")
    result = _run_cli("distill", "--student-layers", "5,0", "--lr", "-1")
    assert result.returncode == 2
    assert result.stderr.startswith("slimbert: error: ")
    assert "Traceback" not in result.stderr
    result = _run_cli(
        "train", "--train", str(bad), "--validation", str(bad), "--out", str(tmp_path / "t")
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "bad.csv" in result.stderr and "line 3" in result.stderr
    assert not (tmp_path / "t").exists(), "a failed run leaves no half-written model"


def test_config_file_and_flags_merge(tmp_path: Path) -> None:
    from slimbert.cli import build_options
    from slimbert.train.distill import DistillOptions

    config = tmp_path / "opts.yaml"
    config.write_text("student_layers: [0, 2, 4]\nepochs: 3\n")
    opts = build_options(DistillOptions, config, {"epochs": 5, "lr": None})
    assert opts == DistillOptions(student_layers=(0, 2, 4), epochs=5)


def test_run_unknown_pipeline_is_a_user_error() -> None:
    result = runner.invoke(app, ["run", "nonexistent-pipeline"])
    assert result.exit_code == 2
    assert "slimbert: error: pipeline 'nonexistent-pipeline'" in result.output


def test_run_only_names_existing_steps() -> None:
    result = runner.invoke(app, ["run", "sbert-paper", "--only", "nli,no-such-step"])
    assert result.exit_code == 2
    assert "no step 'no-such-step'" in result.output and "cross-encoder" in result.output
