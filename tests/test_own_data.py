"""Your own data, first try (issue 14): no built-in corpus is ever a silent default.

One CSV → `data split` → train → label → distill → export → eval, for 2 and 5 classes, with
the built-in corpora made unreadable; the hold-out of a user's training file; refusals of
data a classifier cannot learn from; the teacher's max length flowing downstream.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest

from slimbert.data.owndata import recorded_data, training_plan
from slimbert.errors import DataError

CUES = {
    "awful": ["awful", "horrible", "terrible"],
    "bad": ["bad", "poor", "sad"],
    "meh": ["table", "chair", "monday"],
    "good": ["good", "nice", "fine"],
    "great": ["great", "excellent", "wonderful"],
}
FILLER = ["the", "a", "this", "my", "today", "flight", "service", "was", "is", "so"]


def own_rows(n: int, labels: list[str], seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 10))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(CUES[label]))
        rows.append((f"{' '.join(words)} {i}", label))
    return rows


def write(
    path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")
) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def no_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any read of tweets3 (or SST, or sentiment3) fails the test."""
    import slimbert.data.domains
    import slimbert.data.tweets3

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a built-in corpus was read: {args}")

    for name in ("source_file", "prepare_builtin", "load_builtin", "load_pool_labels"):
        monkeypatch.setattr(slimbert.data.tweets3, name, refuse)
    for name in ("load_sst3", "load_domain_builtin", "sst_file"):
        monkeypatch.setattr(slimbert.data.domains, name, refuse)


FAST = {"epochs": 1, "batch_size": 16, "max_length": 32, "patience": 1}


def test_a_user_file_gets_a_held_out_validation_share(
    tiny_model: Path, tmp_path: Path, no_builtins: None
) -> None:
    from slimbert.train.finetune import TrainOptions, train_classifier

    data = write(tmp_path / "mine.csv", own_rows(200, ["bad", "good"]))
    out = tmp_path / "teacher"
    report = train_classifier(TrainOptions(model=str(tiny_model), train=str(data), out=out, **FAST))
    record = report["data"]
    assert record["validation_from"] == "held out"
    assert record["held_out"]["rows"] == 20 and record["held_out"]["seed"] == 13
    assert record["held_out"]["label_counts"] == {"bad": 10, "good": 10}
    assert report["train_rows"] == 180
    assert record["validation"] == str(out / "validation_heldout.csv")
    with open(out / "validation_heldout.csv", newline="", encoding="utf-8") as fh:
        held = {row["text"] for row in csv.DictReader(fh)}
    assert len(held) == 20
    assert json.loads((out / "train_report.json").read_text())["data"] == record
    assert recorded_data(out) == record
    # The tokenizer saved with the model truncates as it was trained.
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 32
    assert json.loads((out / "slimbert.json").read_text())["max_length"] == 32


def test_built_in_training_data_keeps_its_built_in_validation() -> None:
    assert training_plan("tweets3:train", None).validation == "tweets3:validation"
    assert training_plan("sentiment3:train", None).validation == "sentiment3:validation"
    assert training_plan("sentiment3-quick:train", None).test == "sentiment3-quick:test"
    assert training_plan("data/mine.csv", None).validation is None  # held out
    assert training_plan("data/mine.csv", "data/val.csv").validation == "data/val.csv"


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["good"], "at least two classes"),
        (["good", "bad", "good|meh", "meh"], "several labels in one cell"),
        (["good", "bad", "bad, good"], "several labels in one cell"),
    ],
)
def test_training_refuses_data_it_cannot_learn(
    tmp_path: Path, labels: list[str], message: str
) -> None:
    from slimbert.train.finetune import TrainOptions, train_classifier

    rows = [(f"text {i}", labels[i % len(labels)]) for i in range(40)]
    data = write(tmp_path / "bad.csv", rows)
    with pytest.raises(DataError, match=message):
        train_classifier(TrainOptions(train=str(data), out=tmp_path / "t"))


def test_cli_refusals_exit_2(tiny_model: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from slimbert.cli import app
    from slimbert.models.load import TorchClassifier

    data = write(tmp_path / "one.csv", [(f"text {i}", "good") for i in range(30)])
    result = CliRunner().invoke(app, ["train", "--train", str(data), "--out", str(tmp_path / "t")])
    assert result.exit_code == 2
    assert "at least two classes" in result.output
    model = tmp_path / "unrecorded"  # a classifier that records no data (no train_report)
    TorchClassifier.build(tiny_model, ("bad", "good"), max_length=32).save(model)
    result = CliRunner().invoke(
        app, ["export", "--model", str(model), "--out", str(tmp_path / "b")]
    )
    assert result.exit_code == 2
    assert "records no validation data" in result.output and "--validation" in result.output
    result = CliRunner().invoke(app, ["eval", "--models", str(model)])
    assert result.exit_code == 2
    assert "records no test data" in result.output and "--data" in result.output


@pytest.mark.parametrize("labels", [["bad", "good"], list(CUES)], ids=["2-class", "5-class"])
def test_one_csv_to_a_bundle_without_reading_tweets3(
    tiny_model: Path, tmp_path: Path, no_builtins: None, labels: list[str]
) -> None:
    from slimbert.data.split import SplitOptions, split_data
    from slimbert.export.bundle import ExportOptions, export_model
    from slimbert.train.distill import DistillOptions, distill
    from slimbert.train.evaluate import EvalOptions, evaluate_models
    from slimbert.train.finetune import TrainOptions, train_classifier
    from slimbert.train.label import LabelOptions, label_corpus

    data = write(tmp_path / "reviews.csv", own_rows(60 * len(labels), labels), ("review", "stars"))
    columns = {"text_column": "review", "label_column": "stars"}
    split = tmp_path / "split"
    split_data(SplitOptions(data=str(data), out=split, **columns))
    teacher = tmp_path / "teacher"
    report = train_classifier(
        TrainOptions(
            model=str(tiny_model), train=str(split / "train.csv"), out=teacher, **columns, **FAST
        )
    )
    assert report["data"]["validation"] == str(split / "validation.csv")
    assert report["data"]["test"] == str(split / "test.csv")
    silver = tmp_path / "silver"
    label_corpus(
        LabelOptions(
            teacher=teacher, data=str(split / "pool.csv"), out=silver, text_column="review"
        )
    )
    assert json.loads((silver / "manifest.json").read_text())["plan"]["max_length"] == 32
    student = tmp_path / "student"
    distilled = distill(
        DistillOptions(
            silver=silver,
            student=str(tiny_model),
            student_layers=(0, 1),
            gold=str(split / "train.csv"),
            out=student,
            epochs=1,
            batch_size=16,
            **columns,
        )
    )
    assert distilled["data"]["validation"] == str(split / "validation.csv")
    assert json.loads((student / "slimbert.json").read_text())["max_length"] == 32
    assert json.loads((student / "tokenizer_config.json").read_text())["model_max_length"] == 32
    bundle = tmp_path / "bundle"
    manifest = export_model(ExportOptions(model=student, out=bundle, gate_rows=50))
    assert manifest["max_length"] == 32
    assert manifest["gate"]["data"] == str(split / "validation.csv")
    assert manifest["data"]["test"] == str(split / "test.csv")
    result = evaluate_models(EvalOptions(models=(str(teacher), str(bundle)), latency_samples=0))
    assert result["data"] == str(split / "test.csv")
    assert [m["model"] for m in result["models"]] == [str(teacher), str(bundle)]
    assert all(0 <= m["macro_f1"] <= 1 for m in result["models"])


def test_the_own_data_pipeline_template_runs_on_a_split_folder(
    tiny_model: Path, tmp_path: Path, no_builtins: None
) -> None:
    from slimbert.data.split import SplitOptions, split_data
    from slimbert.pipeline import read_pipeline, run_pipeline

    data = write(tmp_path / "mine.csv", own_rows(160, ["bad", "good"]))
    split_data(SplitOptions(data=str(data), out=tmp_path / "split"))
    steps = read_pipeline(
        "own-data",
        profile="quick",
        overrides={
            "data": str(tmp_path / "split"),
            "workdir": str(tmp_path / "run"),
            "model": str(tiny_model),
            "layers": "0,1",
        },
    )
    names = ["teacher", "silver", "student", "bundle", "eval", "package", "invoke"]
    assert [s.name for s in steps] == names
    summary = run_pipeline([s for s in steps if s.stage not in ("package", "invoke")])
    assert [row["status"] for row in summary] == ["ran"] * 5
    evaluation = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert evaluation["data"] == str(tmp_path / "split" / "test.csv")
    manifest = json.loads((tmp_path / "run" / "bundle" / "manifest.json").read_text())
    assert manifest["gate"]["data"] == str(tmp_path / "split" / "validation.csv")
    assert manifest["max_length"] == 64  # the teacher's, through label and distill


def test_recorded_data_of_older_models_and_bundles(tmp_path: Path) -> None:
    old = tmp_path / "old-teacher"  # trained before `data` was recorded: its options say
    old.mkdir()
    options = {"train": "tweets3:train", "validation": "tweets3:validation"}
    (old / "train_report.json").write_text(json.dumps({"options": options}))
    assert recorded_data(old)["validation"] == "tweets3:validation"  # type: ignore[index]
    bundle = tmp_path / "bundle"  # an older bundle: follows source_model
    bundle.mkdir()
    manifest = {"format": "slimbert-bundle/1", "source_model": str(old)}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert recorded_data(bundle)["train"] == "tweets3:train"  # type: ignore[index]
    (tmp_path / "bare").mkdir()
    assert recorded_data(tmp_path / "bare") is None
