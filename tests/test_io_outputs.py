"""`--out` never deletes what slimbert did not write; replacing an output leaves no gap.

Every command that writes an output folder (train, distill, export, sbert train, index build,
cross-encoder) is run against an ``--out`` holding a user's file, a user's folder and a
slimbert output of another kind: each is refused with exit status 2 and a hint, and every
byte is still there afterwards.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from slimbert import io
from slimbert.errors import SlimbertError
from slimbert.io import atomic_dir, claim_output, output_kind, replace_dir

runner = CliRunner()
LABELS = ("negative", "neutral", "positive")


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (or ``root`` itself) with the sha256 of its bytes."""
    if root.is_file():
        return {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.txt").write_text("three years of work\n", encoding="utf-8")
    (path / "data").mkdir()
    (path / "data" / "train.csv").write_text("id,text,label\nr0,good,positive\n", "utf-8")
    return path


def user_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id,text,label\nr0,good,positive\nr1,bad,negative\n", encoding="utf-8")
    return path


def other_kind(path: Path) -> Path:
    """A slimbert output of a kind none of the six commands writes to: a silver set."""
    path.mkdir(parents=True)
    io.write_json(path / "manifest.json", {"format": "slimbert-silver/1", "plan": {}})
    (path / "part-00000.parquet").write_bytes(b"PAR1 shard PAR1")
    return path


# -- the six commands ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(
    tiny_model: Path,
    tiny_data: dict[str, Path],
    tiny_pairs: dict[str, Path],
    tiny_sbert: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    """Real inputs for every command, so that a missing guard would really run (and delete)."""
    from runtime_fixtures import build_bundle
    from slimbert.models.load import TorchClassifier
    from slimbert.train.label import LabelOptions, label_corpus

    root = tmp_path_factory.mktemp("inputs")
    classifier = TorchClassifier.build(tiny_model, LABELS, max_length=32).save(root / "clf")
    silver = root / "silver"
    label_corpus(
        LabelOptions(teacher=classifier, data=str(tiny_data["pool"]), out=silver, shard_size=200),
        scorer=_label_worker().FakeScorer(),
    )
    return {
        "model": tiny_model,
        "classifier": classifier,
        "sbert": tiny_sbert,
        **{f"data_{k}": v for k, v in tiny_data.items()},
        **{f"pairs_{k}": v for k, v in tiny_pairs.items()},
        "bundle": build_bundle(root / "bundle", task="embedding"),
        "silver": silver,
    }


def _label_worker() -> Any:
    # Loaded by path, as tests/test_label.py does: its fake teacher labels the silver set.
    spec = importlib.util.spec_from_file_location(
        "_label_worker", Path(__file__).with_name("_label_worker.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def command_args(command: str, inputs: dict[str, Path], out: Path) -> list[str]:
    small = ["--max-length", "32", "--limit", "40"]
    train = ["--validation", str(inputs["data_validation"]), "--epochs", "1", *small]
    pairs = ["--train", str(inputs["pairs_train"]), "--validation", str(inputs["pairs_validation"])]
    return {
        "train": [
            "train",
            "--model",
            str(inputs["model"]),
            "--train",
            str(inputs["data_train"]),
            *train,
        ],
        "distill": [
            "distill",
            "--silver",
            str(inputs["silver"]),
            "--student",
            str(inputs["model"]),
            "--student-layers",
            "0,1",
            *train,
        ],
        "export": [
            "export",
            "--model",
            str(inputs["classifier"]),
            "--no-quantize",
            "--validation",
            str(inputs["data_validation"]),
        ],
        "sbert train": [
            "sbert",
            "train",
            "--model",
            str(inputs["sbert"]),
            *pairs,
            "--epochs",
            "1",
            "--limit",
            "16",
        ],
        "index build": [
            "index",
            "build",
            "--bundle",
            str(inputs["bundle"]),
            "--data",
            str(inputs["data_pool"]),
        ],
        "cross-encoder": ["cross-encoder", "--model", str(inputs["model"]), *pairs, *small],
    }[command] + ["--out", str(out)]


COMMANDS = ["train", "distill", "export", "sbert train", "index build", "cross-encoder"]
TARGETS = {
    "a user's file": (user_file, "is an existing file"),
    "a user's folder": (user_folder, "slimbert did not write"),
    "another kind of output": (other_kind, "holds a silver set written by slimbert"),
}


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("command", COMMANDS)
def test_out_never_deletes_what_slimbert_did_not_write(
    command: str, target: str, inputs: dict[str, Path], tmp_path: Path
) -> None:
    make, message = TARGETS[target]
    out = make(tmp_path / "work" / "out.csv" if target == "a user's file" else tmp_path / "out")
    before = snapshot(out)
    siblings = sorted(p.name for p in out.parent.iterdir())
    for flags in ([], ["--overwrite"]):  # --overwrite never applies to foreign content
        result = runner.invoke(app(), command_args(command, inputs, out) + flags)
        assert result.exit_code == 2, result.output
        text = " ".join(result.output.split())
        assert "slimbert: error:" in text and message in text, text
        assert "hint:" in text
        assert snapshot(out) == before, f"{command} changed {out}"
        assert sorted(p.name for p in out.parent.iterdir()) == siblings, "nothing left beside"
        assert not Path(f"{out}.step.json").exists()


def app() -> Any:
    from slimbert.cli import app as cli_app

    return cli_app


def test_train_uses_an_empty_folder_and_replaces_its_own_output_only_with_overwrite(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "teacher"
    out.mkdir()  # an empty folder may be used
    result = runner.invoke(app(), command_args("train", inputs, out))
    assert result.exit_code == 0, result.output
    assert output_kind(out) == "classifier" and (out / "train_report.json").is_file()
    first = snapshot(out)

    again = runner.invoke(app(), command_args("train", inputs, out))
    assert again.exit_code == 2
    assert "already holds a classifier written by slimbert" in again.output
    assert "--overwrite" in again.output
    assert snapshot(out) == first

    result = runner.invoke(app(), [*command_args("train", inputs, out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert output_kind(out) == "classifier"
    report = json.loads((out / "train_report.json").read_text(encoding="utf-8"))
    assert report["stage"] == "train"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".teacher.")]


def test_the_stage_itself_refuses_foreign_content_without_the_pipeline(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    """The swap in atomic_dir checks the target too: the Python API cannot delete either."""
    from slimbert.train.finetune import TrainOptions, train_classifier

    out = user_folder(tmp_path / "mine")
    before = snapshot(out)
    options = TrainOptions(
        model=str(inputs["model"]),
        train=str(inputs["data_train"]),
        validation=str(inputs["data_validation"]),
        out=out,
        epochs=1,
        limit=40,
        max_length=32,
    )
    with pytest.raises(SlimbertError, match="slimbert did not write"):
        train_classifier(options)
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


# -- claim_output, output_kind, replace_dir ---------------------------------------------------
def test_claim_output_allows_missing_and_empty_and_refuses_the_rest(tmp_path: Path) -> None:
    claim_output(tmp_path / "new", "classifier", replace=False)
    (tmp_path / "empty").mkdir()
    claim_output(tmp_path / "empty", "classifier", replace=False)
    mine = tmp_path / "clf"
    mine.mkdir()
    io.write_json(mine / "slimbert.json", {"head": "linear", "label_names": [], "max_length": 8})
    assert output_kind(mine) == "classifier"
    with pytest.raises(SlimbertError, match="already holds a classifier") as info:
        claim_output(mine, "classifier", replace=False)
    assert info.value.hint is not None and "--overwrite" in info.value.hint
    claim_output(mine, "classifier", replace=True)
    with pytest.raises(SlimbertError, match="holds a classifier written by slimbert, not a"):
        claim_output(mine, "bundle", replace=True)
    with pytest.raises(SlimbertError, match="slimbert did not write"):
        claim_output(user_folder(tmp_path / "user"), "classifier", replace=True)
    with pytest.raises(SlimbertError, match="existing file"):
        claim_output(user_file(tmp_path / "data.csv"), "classifier", replace=True)
    (tmp_path / "link").symlink_to(tmp_path / "empty")  # a swap would replace the link only
    with pytest.raises(SlimbertError, match="symbolic link"):
        claim_output(tmp_path / "link", "classifier", replace=True)


def test_every_kind_is_recognised_by_its_marker(tmp_path: Path) -> None:
    for kind, (name, fmt) in io.OUTPUT_KINDS.items():
        folder = tmp_path / kind.replace(" ", "-")
        folder.mkdir()
        payload = {"format": fmt} if fmt else {"head": "gru", "label_names": [], "max_length": 8}
        io.write_json(folder / name, payload)
        assert output_kind(folder) == kind
    legacy = tmp_path / "legacy-sbert"
    legacy.mkdir()
    io.write_json(legacy / "sbert_report.json", {"stage": "sbert-train"})
    assert output_kind(legacy) == "sentence-transformer"
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "manifest.json").write_text('{"format": "someone-else/1"}', encoding="utf-8")
    assert output_kind(plain) is None
    assert output_kind(user_file(tmp_path / "f.json")) is None


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_replacing_leaves_no_moment_without_an_output(
    exchange: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not exchange:
        monkeypatch.setattr(io, "_exchange", lambda a, b: False)
    target = tmp_path / "ce"
    with atomic_dir(target, kind="cross-encoder") as tmp:
        (tmp / "weights.bin").write_text("old", encoding="utf-8")
    assert json.loads((target / io.MARKER_FILE).read_text())["kind"] == "cross-encoder"

    real_rmtree = io.shutil.rmtree
    deleted: list[str] = []

    def rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
        # The old folder is only deleted once the new one is in place.
        if Path(path).exists() and (Path(path) / "weights.bin").is_file():
            assert (target / "weights.bin").read_text() == "new"
            deleted.append((Path(path) / "weights.bin").read_text())
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(io.shutil, "rmtree", rmtree)
    with atomic_dir(target, kind="cross-encoder") as tmp:
        assert (target / "weights.bin").read_text() == "old"  # still there while writing
        (tmp / "weights.bin").write_text("new", encoding="utf-8")
    assert deleted == ["old"]
    assert (target / "weights.bin").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ce"]


def test_a_failed_write_keeps_the_old_output(tmp_path: Path) -> None:
    target = tmp_path / "index"
    with atomic_dir(target, kind="index") as tmp:
        io.write_json(tmp / "manifest.json", {"format": "slimbert-index/1", "n": 1})
    before = snapshot(target)
    with pytest.raises(RuntimeError, match="boom"), atomic_dir(target, kind="index") as tmp:
        io.write_json(tmp / "manifest.json", {"format": "slimbert-index/1", "n": 2})
        raise RuntimeError("boom")
    assert snapshot(target) == before
    with (
        pytest.raises(RuntimeError, match="lacks the index marker"),
        atomic_dir(target, kind="index") as tmp,
    ):
        (tmp / "vectors.npy").write_bytes(b"no manifest")
    assert snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_replace_dir_puts_a_new_folder_in_place(tmp_path: Path) -> None:
    new, target = tmp_path / "new", tmp_path / "target"
    new.mkdir()
    (new / "a").write_text("1", encoding="utf-8")
    replace_dir(new, target)
    assert (target / "a").read_text() == "1" and not new.exists()


# -- report files: claim_report, write_report, and the commands that write them ---------------
def test_claim_report_replaces_only_a_report_of_its_kind_slimbert_wrote(tmp_path: Path) -> None:
    from slimbert.io import claim_report, report_kind, write_report

    report = tmp_path / "eval.json"
    claim_report(report, "evaluation", companions=[tmp_path / "eval.md"])  # nothing there
    write_report(report, {"models": [], "rows": 3}, "evaluation", markdown="# table\n")
    assert report_kind(report) == "evaluation" and (tmp_path / "eval.md").is_file()
    write_report(report, {"models": [1], "rows": 4}, "evaluation", markdown="# new\n")
    assert (tmp_path / "eval.md").read_text() == "# new\n"  # its own report: replaced

    with pytest.raises(SlimbertError, match="holds an evaluation written by slimbert, not a"):
        claim_report(report, "calibration")
    mine = user_file(tmp_path / "invoke.json")
    notes = tmp_path / "cal.md"
    notes.write_text("# my calibration notes\n", encoding="utf-8")
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "link.json").symlink_to(report)
    before = snapshot(tmp_path)
    refusals = [
        (lambda: claim_report(mine, "invoke report"), "is not an invoke report written by"),
        (
            lambda: write_report(tmp_path / "cal.json", {}, "calibration", markdown="x"),
            "lacks what marks",
        ),
        (
            lambda: claim_report(tmp_path / "cal.json", "calibration", companions=[notes]),
            "no cal.json beside it",
        ),
        (lambda: claim_report(tmp_path / "folder.json", "evaluation"), "is a folder"),
        (lambda: claim_report(tmp_path / "link.json", "evaluation"), "symbolic link"),
    ]
    for call, message in refusals:
        with pytest.raises((SlimbertError, RuntimeError), match=message) as info:
            call()
        if isinstance(info.value, SlimbertError):
            assert info.value.hint and "another --out" in info.value.hint
    assert snapshot(tmp_path) == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_every_report_kind_recognises_what_its_command_writes(tmp_path: Path) -> None:
    from slimbert.io import REPORT_KINDS, report_kind

    written = {
        "evaluation": {"data": "x", "rows": 9, "models": []},
        "calibration": {"bundle": {}, "threshold": 0.8, "validation": {}, "test": {}},
        "invoke report": {"package": "p.zip", "requests": 5, "bad_request_status": 400},
        "export report": {"stage": "export", "bundle": "b", "manifest": {}},
        "package report": {"package": "p.zip", "target": "t", "components": [], "package_bytes": 1},
    }
    assert set(written) == set(REPORT_KINDS)
    for kind, data in written.items():
        io.write_json(tmp_path / "r.json", data)
        assert report_kind(tmp_path / "r.json") == kind
    io.write_json(tmp_path / "r.json", {"embedding": "task", "models": []})
    assert report_kind(tmp_path / "r.json") is None


@pytest.mark.parametrize(
    "command", ["eval", "index calibrate", "invoke", "export"], ids=lambda c: c.replace(" ", "-")
)
def test_report_commands_keep_a_users_file_of_the_same_name(
    command: str, inputs: dict[str, Path], tmp_path: Path
) -> None:
    work = tmp_path / "work"
    out = work / "results"
    zip_path = work / "p.zip"
    args, mine = {
        "eval": (
            ["eval", "--models", str(inputs["classifier"]), "--data", str(inputs["data_test"])],
            [work / "results.json", work / "results.md"],
        ),
        "index calibrate": (
            [
                "index",
                "calibrate",
                "--bundle",
                str(inputs["bundle"]),
                "--validation",
                str(inputs["pairs_validation"]),
                "--test",
                str(inputs["pairs_test"]),
            ],
            [work / "results.json"],
        ),
        "invoke": (["invoke", "--package", str(zip_path)], [out]),
        "export": (
            ["export", "--model", str(inputs["classifier"]), "--no-quantize"],
            [work / "results.export.json"],
        ),
    }[command]
    for i, path in enumerate(mine):
        user_file(path)
        path.write_text(f"my {i} results\n", encoding="utf-8")
        before = snapshot(work)
        result = runner.invoke(app(), [*args, "--out", str(out)])
        assert result.exit_code == 2, result.output
        text = " ".join(result.output.split())
        assert "slimbert: error:" in text and "refusing to replace it" in text, text
        assert "hint:" in text
        assert snapshot(work) == before
        assert [p.name for p in work.iterdir()] == [path.name], "nothing else written"
        path.unlink()


def test_invoke_api_refuses_what_is_not_a_lambda_zip(tmp_path: Path) -> None:
    import zipfile

    from slimbert.deploy.invoke import InvokeOptions, check_package_zip, invoke_package

    text = tmp_path / "p.zip"
    text.write_text("not a zip", encoding="utf-8")
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("hello.txt", "hi")
    cases = {
        tmp_path / "missing.zip": "does not exist",
        text: "is not a zip file",
        other: "not a slimbert Lambda package",
        tmp_path: "is a folder, not a zip file",
    }
    for package, message in cases.items():
        options = InvokeOptions(package=package, out=tmp_path / "invoke.json")
        with pytest.raises(SlimbertError, match=message) as info:
            invoke_package(options)
        assert info.value.hint
    ours = tmp_path / "ours.zip"
    with zipfile.ZipFile(ours, "w") as zf:
        zf.writestr("slimbert/runtime/handler.py", "")
    check_package_zip(ours)
    mine = user_file(tmp_path / "invoke.json")
    before = snapshot(mine)
    with pytest.raises(SlimbertError, match="not an invoke report written by slimbert"):
        invoke_package(InvokeOptions(package=ours, out=mine))
    assert snapshot(mine) == before
