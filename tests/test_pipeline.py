"""End to end on a tiny random model: train → label → distill → eval, and the pipeline file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from slimbert.errors import ConfigError
from slimbert.pipeline import plan, read_pipeline, run_pipeline

FAST: dict[str, Any] = {"epochs": 6, "patience": 6, "batch_size": 16, "lr": 3e-3, "max_length": 32}


def _pipeline(tmp: Path, model: Path, data: dict[str, Path], distill_loss: str = "hard") -> Path:
    text = f"""
vars:
  work: {tmp}/run
steps:
  - name: teacher
    stage: train
    model: {model}
    train: {data["train"]}
    validation: {data["validation"]}
    out: ${{work}}/teacher
    epochs: 6
    patience: 6
    batch_size: 16
    lr: 0.003
    max_length: 32
  - name: silver
    stage: label
    teacher: ${{work}}/teacher
    data: {data["pool"]}
    out: ${{work}}/silver
    batch_size: 64
    shard_size: 128
  - name: student
    stage: distill
    silver: ${{work}}/silver
    student: {model}
    student_layers: [0, 3]
    validation: {data["validation"]}
    out: ${{work}}/student
    loss: {distill_loss}
    epochs: 6
    patience: 6
    batch_size: 16
    lr: 0.003
    max_length: 32
  - name: eval
    stage: eval
    models: ["${{work}}/teacher", "${{work}}/student"]
    data: {data["test"]}
    out: ${{work}}/eval.json
    latency_samples: 5
profiles:
  quick:
    steps:
      teacher: {{epochs: 1}}
"""
    path = tmp / "pipeline.yaml"
    path.write_text(text)
    return path


def test_pipeline_runs_end_to_end_then_skips_current_steps(
    tmp_path: Path, tiny_model: Path, tiny_data: dict[str, Path]
) -> None:
    steps = read_pipeline(_pipeline(tmp_path, tiny_model, tiny_data))
    summary = run_pipeline(steps)
    assert [s["status"] for s in summary] == ["ran"] * 4
    teacher = summary[0]["result"]
    # The cue words make the task easy: the tiny teacher must learn it.
    assert teacher["validation"]["macro_f1"] > 0.8
    silver_counts = summary[1]["result"].label_counts
    assert set(silver_counts) == {"negative", "neutral", "positive"}
    evaluation = summary[3]["result"]
    # VADER, the lexicon baseline, heads every 3-class sentiment table.
    assert [m["model"] for m in evaluation["models"]] == [
        "vader",
        f"{tmp_path}/run/teacher",
        f"{tmp_path}/run/student",
    ]
    student = evaluation["models"][2]
    # Distilled on the teacher's silver labels, the 2-layer student learns the task too.
    assert student["macro_f1"] > 0.6
    assert student["parameters"] < evaluation["models"][1]["parameters"]
    assert set(student["per_class"]) == {"negative", "neutral", "positive"}
    assert (tmp_path / "run" / "eval.json").is_file() and (tmp_path / "run" / "eval.md").is_file()

    # Everything is current now: a second run skips every step.
    again = run_pipeline(read_pipeline(_pipeline(tmp_path, tiny_model, tiny_data)))
    assert [s["status"] for s in again] == ["skipped"] * 4

    # Changing the student's loss makes the student and eval stale, not the teacher.
    changed = read_pipeline(_pipeline(tmp_path, tiny_model, tiny_data, distill_loss="soft"))
    assert plan(changed) == [True, True, False, False]


def test_profile_overrides_and_bad_pipelines(tmp_path: Path, tiny_model: Path, tiny_data) -> None:
    path = _pipeline(tmp_path, tiny_model, tiny_data)
    steps = read_pipeline(path, profile="quick")
    assert steps[0].options.epochs == 1  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="no profile"):
        read_pipeline(path, profile="slow")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - stage: train\n    epoch: 3\n")
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        read_pipeline(bad)
    bad.write_text("steps:\n  - stage: teach\n")
    with pytest.raises(ConfigError, match="unknown stage 'teach'"):
        read_pipeline(bad)
    with pytest.raises(ConfigError, match="neither a file nor a built-in"):
        read_pipeline(tmp_path / "missing.yaml")


def test_builtin_sentiment_pipeline_parses_with_both_profiles() -> None:
    steps = read_pipeline("sentiment")
    assert [s.stage for s in steps] == [
        "train",
        "label",
        "distill",
        "export",
        "eval",
        "package",
        "invoke",
    ]
    assert steps[2].options.student_layers == (0, 5)  # type: ignore[attr-defined]
    quick = read_pipeline("sentiment", profile="quick")
    assert str(quick[0].options.train).startswith("sentiment3-quick:")  # type: ignore[attr-defined]


@pytest.mark.parametrize("loss", ["soft", "mix"])
def test_distill_with_soft_targets_and_gold_mix(
    tmp_path: Path, tiny_model: Path, tiny_data: dict[str, Path], loss: str
) -> None:
    from slimbert.train.distill import DistillOptions, distill
    from slimbert.train.finetune import TrainOptions, train_classifier
    from slimbert.train.label import LabelOptions, label_corpus

    train_classifier(
        TrainOptions(
            model=str(tiny_model),
            train=str(tiny_data["train"]),
            validation=str(tiny_data["validation"]),
            out=tmp_path / "t",
            **FAST,
        )
    )
    label_corpus(
        LabelOptions(
            teacher=tmp_path / "t",
            data=str(tiny_data["pool"]),
            out=tmp_path / "s",
            batch_size=64,
            shard_size=128,
        )
    )
    report = distill(
        DistillOptions(
            silver=tmp_path / "s",
            student=str(tiny_model),
            student_layers=(0,),
            validation=str(tiny_data["validation"]),
            gold=str(tiny_data["train"]),
            out=tmp_path / "st",
            loss=loss,  # type: ignore[arg-type]
            **FAST,
        )
    )
    assert report["gold_rows"] == 240 and report["silver_rows"] == 400
    assert report["parameters"] > 0 and len(report["history"]) >= 1
    assert (tmp_path / "st" / "train_report.json").is_file()


def test_builtin_similarity_pipelines_parse_and_share_steps() -> None:
    default = read_pipeline("sbert")
    assert [s.stage for s in default][:5] == ["sbert-train"] * 4 + ["export"]
    objectives = [s.options.objective for s in default[:4]]  # type: ignore[attr-defined]
    assert objectives == ["distill", "nli", "sts", "target"]
    assert default[0].options.layers == (0, 2, 5)  # type: ignore[attr-defined]
    assert default[0].options.teacher == "all-MiniLM-L6-v2"  # type: ignore[attr-defined]
    paper = {s.name: s for s in read_pipeline("sbert-paper")}
    # The paper pipeline repeats the default path's steps exactly, so their outputs are reused.
    for step in default[:5]:
        assert paper[step.name].options == step.options
    assert paper["augsbert-2l"].options.lr == 2e-6  # type: ignore[attr-defined]
    assert paper["augsbert-2l"].options.batch_size == 16  # type: ignore[attr-defined]
    joint = paper["augsbert-joint-2l"].options
    assert joint.extra_train == ("runs/sbert/augment/silver.parquet",)  # type: ignore[attr-defined]
    assert joint.model == paper["target-2l"].options.model  # type: ignore[attr-defined]
    # Every width runs the whole path: 6 layers NLI -> STSb -> target, each row evaluated.
    six = paper["target-6l"].options
    assert six.model == str(paper["sts-6l"].options.out)  # type: ignore[attr-defined]
    evaluation = paper["eval"].options
    assert len(evaluation.models) == len(evaluation.names) == 13  # type: ignore[attr-defined]
    assert str(six.out) in map(str, evaluation.models)  # type: ignore[attr-defined]
    quick = read_pipeline("sbert", profile="quick")
    assert quick[0].options.limit == 800  # type: ignore[attr-defined]


def test_builtin_mpnet_pipeline_extends_the_demo() -> None:
    steps = read_pipeline("sentiment-mpnet")
    assert [s.stage for s in steps] == ["train", "label", "distill", "export", "eval"]
    teacher, _, student, _, evaluation = steps
    assert teacher.options.model == "all-mpnet-base-v2"  # type: ignore[attr-defined]
    assert student.options.student_layers == (0, 5)  # type: ignore[attr-defined]
    # The comparison reads the MiniLM teacher and student the `sentiment` pipeline wrote.
    demo = {str(s.options.out) for s in read_pipeline("sentiment")}  # type: ignore[attr-defined]
    assert {"runs/sentiment/teacher", "runs/sentiment/student-2l"} <= demo
    assert set(evaluation.options.models[:2]) <= demo  # type: ignore[attr-defined]


def _fake_teacher() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_label_worker", Path(__file__).with_name("_label_worker.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pipeline_never_deletes_a_finished_shard_folder_or_a_users_folder(
    tmp_path: Path,
) -> None:
    from slimbert.errors import SlimbertError
    from slimbert.pipeline import Step
    from slimbert.train.label import LabelOptions

    worker = _fake_teacher()
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "config.json").write_text("{}", encoding="utf-8")
    data = tmp_path / "pool.csv"
    worker.write_corpus(data, 300)
    hooks = {"label": lambda step: {"scorer": worker.FakeScorer()}}

    def step(shard_size: int, out: Path = tmp_path / "silver") -> Step:
        options = LabelOptions(
            teacher=teacher, data=str(data), out=out, shard_size=shard_size, batch_size=50
        )
        return Step("silver", "label", options)

    first = run_pipeline([step(150)], hooks=hooks)[0]["result"]
    assert (first.shards, first.resumed_shards) == (2, 0)
    forced = run_pipeline([step(150)], force=True, hooks=hooks)[0]["result"]
    assert (forced.shards, forced.resumed_shards) == (2, 2), "--force keeps finished shards"

    # Another plan: refused where overwriting is not allowed; a pipeline run remakes the
    # stale step, building the new set beside the old one and swapping it in when complete.
    with pytest.raises(SlimbertError, match="differs in: shard_size"):
        run_pipeline([step(100)], hooks=hooks, overwrite=False)
    remade = run_pipeline([step(100)], hooks=hooks)[0]["result"]
    assert (remade.shards, remade.resumed_shards) == (3, 0)
    assert not (tmp_path / ".silver.next").exists()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(SlimbertError, match="slimbert did not write"):
        run_pipeline([step(100, out=mine)], hooks=hooks, overwrite=True)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "keep me"


def test_pipeline_file_errors_name_the_file_and_step_with_hints(tmp_path: Path) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("# café\nsteps:\n  - stage: train\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8") as info:
        read_pipeline(latin)
    assert info.value.hint is not None and "iconv" in info.value.hint

    bad = tmp_path / "sentiment.yaml"
    bad.write_text("steps:\n  - name: teacher\n    stage: train\n    epochs: -1\n")
    with pytest.raises(ConfigError) as info:
        read_pipeline(bad)
    assert info.value.message == (f"step 'teacher' in {bad}: epochs must be at least 1, got -1")
    bad.write_text("steps:\n  - name: teacher\n    stage: train\n    epoch: 3\n")
    with pytest.raises(ConfigError, match=r"step 'teacher' in .*unknown option 'epoch'") as info:
        read_pipeline(bad)
    assert info.value.hint == "did you mean 'epochs'?"

    cases = {
        "vars: {}\n": "needs a 'steps:' list",
        "steps:\n  - train: x\n": "step 1 needs a 'stage:'",
        "steps:\n  - stage: train\n    out: ${nowhere}/t\n": "unknown variable ${nowhere}",
        "steps:\n  - stage: train\n    out: runs/$\n": "not a valid ${name} substitution",
        "vars: [a]\nsteps: []\n": "vars must be a mapping",
        "steps:\n  - {stage: train, name: a}\n  - {stage: train, name: a}\n": "'a' is used twice",
        "[unclosed\n": "is not valid YAML",
    }
    for text, message in cases.items():
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            read_pipeline(bad)
        assert message in info.value.message and str(bad) in info.value.message, text
        assert info.value.hint, f"no hint for {text!r}"
    bad.write_text("steps: []\nprofiles:\n  quick: [1]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="profile 'quick' must be a mapping"):
        read_pipeline(bad, profile="quick")


def test_a_step_never_replaces_a_users_file_named_like_its_report(tmp_path: Path) -> None:
    """eval, index calibrate, invoke and export write report files: a user's file of that
    name is refused before the step runs (bytes kept), whatever the overwrite setting."""
    import hashlib

    from slimbert.deploy.invoke import InvokeOptions
    from slimbert.errors import SlimbertError
    from slimbert.export.bundle import ExportOptions
    from slimbert.index.calibrate import CalibrateOptions
    from slimbert.pipeline import Step
    from slimbert.train.evaluate import EvalOptions

    work = tmp_path / "work"
    work.mkdir()
    mine = {
        "eval": work / "results.json",
        "calibrate": work / "cal.md",  # no cal.json beside it
        "invoke": work / "invoke.json",
        "export": work / "bundle.export.json",
    }
    for path in mine.values():
        path.write_text('{"mine": true}\n', encoding="utf-8")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in mine.values()}
    steps = [
        Step("eval", "eval", EvalOptions(models=("missing",), data="x.csv", out=work / "results")),
        Step("cal", "index-calibrate", CalibrateOptions(bundle=work, out=work / "cal")),
        Step("invoke", "invoke", InvokeOptions(package=work / "p.zip", out=work / "invoke.json")),
        Step("export", "export", ExportOptions(model=work / "model", out=work / "bundle")),
    ]
    for step in steps:
        for overwrite in (None, True):
            with pytest.raises(SlimbertError, match="refusing to replace") as info:
                run_pipeline([step], overwrite=overwrite)
            assert info.value.hint and "another --out" in info.value.hint
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in mine.values()} == before
    assert sorted(p.name for p in work.iterdir()) == sorted(p.name for p in mine.values())
