"""Every user error, usage errors included, is one line on stderr with a hint, and exit 2.

A table of bad inputs run through the real entry point (``python -m slimbert``, the same
``slimbert.cli:main`` the console script runs): missing, empty, binary and latin-1 data files,
wrong columns, bad config and pipeline files, bad bundles and packages, model paths that do
not exist, ``--out`` under a regular file, and click's usage errors. For each: exit status 2,
exactly one non-empty line on stderr that starts with ``slimbert: error:`` and carries a
hint, and no traceback anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = "id,text,label\n1,good day,positive\n2,bad day,negative\n3,a table,neutral\n"
BUNDLE_FILES = {"model.onnx": {"sha256": "0" * 64, "bytes": 1}}


def _write(root: Path, name: str, content: str | bytes) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of bad (and a few good) inputs shared by every case."""
    d = tmp_path_factory.mktemp("bad-inputs")
    files: dict[str, str | bytes] = {
        "good.csv": GOOD,
        "empty.csv": "",
        "header-only.csv": "id,text,label\n",
        "binary.csv": bytes(range(256)) * 4,
        "latin1.csv": "id,text,label\n1,caf\xe9 cr\xe8me,positive\n".encode("latin-1"),
        "nul.csv": "id,text,label\n1,he\x00llo,positive\n",
        "dup-header.csv": "id,text,text,label\n1,a,b,positive\n",
        "no-text.csv": "id,body,label\n1,hello,positive\n",
        "no-label.csv": "id,text\n1,hello\n",
        "empty-text.csv": "id,text,label\n1,hello,positive\n2,,negative\n",
        "missing-label.csv": "id,text,label\n1,hello,positive\n2,world,\n",
        "bad-quotes.csv": 'id,text,label\n1,"unclosed,positive\n',
        "ragged.csv": "id,text,label\n1,hello,positive,extra,more\n",
        "bad.jsonl": '{"text": "a", "label": "x"}\n{"text": \n',
        "list.jsonl": '["a", "b"]\n',
        "empty.jsonl": "",
        "data.xyz": "whatever\n",
        "fake.parquet": "not parquet at all\n",
        "regular.txt": "I am a file, not a folder\n",
        "bad.yaml": "epochs: [1, 2\nlr: : :\n",
        "latin1.yaml": "# caf\xe9\nepochs: 2\n".encode("latin-1"),
        "binary.yaml": bytes(range(256)),
        "list.yaml": "- 1\n- 2\n",
        "unknown-key.yaml": "epoch: 3\n",
        "wrong-type.yaml": "epochs: many\n",
        "pipe-latin1.yaml": "# caf\xe9\nsteps:\n  - stage: train\n".encode("latin-1"),
        "pipe-binary.yaml": b"\xff\xfe\x00\x01" * 64,
        "pipe-bad.yaml": "steps: [\n",
        "pipe-nosteps.yaml": "vars: {a: 1}\n",
        "pipe-stage.yaml": "steps:\n  - name: x\n    stage: teleport\n",
        "pipe-option.yaml": "steps:\n  - name: t\n    stage: train\n    epoch: 3\n",
        "pipe-value.yaml": "steps:\n  - name: t\n    stage: train\n    epochs: -1\n",
        "pipe-var.yaml": "steps:\n  - name: t\n    stage: train\n    out: ${nowhere}/t\n",
        "not-a-zip.zip": "this is not a zip file\n",
        "bundle-badjson/manifest.json": '{"format": 1, "files": {',
        "bundle-empty/manifest.json": "{}",
        "bundle-list/manifest.json": "[1, 2, 3]",
        "bundle-nofiles/manifest.json": json.dumps({"format": "slimbert-bundle/1"}),
        "bundle-notask/manifest.json": json.dumps(
            {"format": "slimbert-bundle/1", "files": BUNDLE_FILES}
        ),
    }
    for name, content in files.items():
        _write(d, name, content)
    (d / "bundle-nomanifest").mkdir()
    (d / "a-folder.csv").mkdir()
    return d


def _train(data: str, *extra: str) -> list[str]:
    # The bad file is both training and validation set, so the error is about it.
    return ["train", "--train", data, "--validation", data, "--out", "{o}", *extra]


def _good(*extra: str) -> list[str]:
    return _train("{d}/good.csv", *extra)


def _package(bundle: str) -> list[str]:
    return ["package", "--bundle", bundle, "--out", "{o}"]


# name -> (arguments, a phrase the error line must contain); {d}: the inputs, {o}: an output.
CASES: dict[str, tuple[list[str], str]] = {
    # Data files.
    "data-missing": (_train("{d}/no-such.csv"), "no-such.csv: file not found"),
    "data-empty": (_train("{d}/empty.csv"), "empty.csv: empty file"),
    "data-header-only": (_train("{d}/header-only.csv"), "header-only.csv: no data rows"),
    "data-binary": (_train("{d}/binary.csv"), "binary.csv"),
    "data-latin1": (_train("{d}/latin1.csv"), "cannot decode byte 0xe9"),
    "data-nul-bytes": (_train("{d}/nul.csv"), "nul.csv, line 2: NUL byte"),
    "data-duplicated-header": (_train("{d}/dup-header.csv"), "'text' appears more than once"),
    "data-no-text-column": (_train("{d}/no-text.csv"), "no text column 'text'"),
    "data-no-label-column": (_train("{d}/no-label.csv"), "no label column 'label'"),
    "data-empty-text": (_train("{d}/empty-text.csv"), "line 3, column 'text': empty text"),
    "data-missing-label": (_train("{d}/missing-label.csv"), "line 3, column 'label'"),
    "data-unclosed-quote": (_train("{d}/bad-quotes.csv"), "malformed CSV"),
    "data-ragged-row": (_train("{d}/ragged.csv"), "expected 3 fields"),
    "data-jsonl-invalid": (_train("{d}/bad.jsonl"), "bad.jsonl, line 2: invalid JSON"),
    "data-jsonl-not-object": (_train("{d}/list.jsonl"), "expected a JSON object"),
    "data-jsonl-empty": (_train("{d}/empty.jsonl"), "empty.jsonl: empty file"),
    "data-unknown-suffix": (_train("{d}/data.xyz"), "cannot tell the format"),
    "data-fake-parquet": (_train("{d}/fake.parquet"), "cannot read as Parquet"),
    "data-is-a-folder": (_train("{d}/a-folder.csv"), "is a directory"),
    "data-unknown-builtin": (_train("tweets9:train"), "built-in datasets are"),
    "data-unknown-split": (_train("tweets3:nosplit"), "unknown split 'nosplit'"),
    "data-bad-hub-spec": (_train("hf:"), "bad hub spec"),
    "data-wrong-text-column": (_good("--text-column", "body"), "no text column 'body'"),
    "data-unknown-encoding": (_good("--encoding", "klingon-8"), "unknown encoding"),
    "data-duplicate-labels": (_good("--labels", "a,a"), "duplicate label names"),
    # Option files (--config).
    "config-missing": (["train", "--config", "{d}/no-such.yaml"], "does not exist"),
    "config-bad-yaml": (["train", "--config", "{d}/bad.yaml"], "not valid YAML at line 2"),
    "config-latin1": (["train", "--config", "{d}/latin1.yaml"], "is not UTF-8 text"),
    "config-binary": (["train", "--config", "{d}/binary.yaml"], "is not UTF-8 text"),
    "config-not-mapping": (["train", "--config", "{d}/list.yaml"], "not a mapping"),
    "config-unknown-key": (["train", "--config", "{d}/unknown-key.yaml"], "'epochs'"),
    "config-wrong-type": (["train", "--config", "{d}/wrong-type.yaml"], "expected an integer"),
    "config-is-a-folder": (["train", "--config", "{d}"], "is a folder"),
    # Pipeline files.
    "pipeline-unknown-name": (["run", "no-such-pipeline"], "built-in: "),
    "pipeline-latin1": (["run", "{d}/pipe-latin1.yaml"], "is not UTF-8 text"),
    "pipeline-binary": (["run", "{d}/pipe-binary.yaml"], "is not UTF-8 text"),
    "pipeline-bad-yaml": (["run", "{d}/pipe-bad.yaml"], "not valid YAML"),
    "pipeline-no-steps": (["run", "{d}/pipe-nosteps.yaml"], "needs a 'steps:' list"),
    "pipeline-unknown-stage": (["run", "{d}/pipe-stage.yaml"], "unknown stage 'teleport'"),
    "pipeline-unknown-stage-option": (["run", "{d}/pipe-option.yaml"], "unknown option 'epoch'"),
    "pipeline-bad-stage-value": (["run", "{d}/pipe-value.yaml"], "epochs must be at least 1"),
    "pipeline-unknown-variable": (["run", "{d}/pipe-var.yaml"], "unknown variable"),
    "pipeline-set-not-key-value": (["run", "sentiment", "--set", "novalue"], "key=value"),
    "pipeline-unknown-only-step": (["run", "sentiment", "--only", "nope"], "no step 'nope'"),
    "pipeline-unknown-profile": (["run", "{d}/pipe-stage.yaml", "--quick"], "no profile"),
    # Bundles and packages.
    "bundle-missing": (_package("{d}/no-such-bundle"), "no-such-bundle"),
    "bundle-no-manifest": (_package("{d}/bundle-nomanifest"), "manifest.json is missing"),
    "bundle-malformed-json": (_package("{d}/bundle-badjson"), "is not valid JSON"),
    "bundle-empty-manifest": (_package("{d}/bundle-empty"), "has format None"),
    "bundle-manifest-list": (_package("{d}/bundle-list"), "must hold a JSON object"),
    "bundle-manifest-no-files": (_package("{d}/bundle-nofiles"), "files must map"),
    "bundle-manifest-no-task": (_package("{d}/bundle-notask"), "task must be one of"),
    "invoke-not-a-zip": (
        ["invoke", "--package", "{d}/not-a-zip.zip", "--data", "{d}/good.csv", "--out", "{o}"],
        "is not a zip file",
    ),
    "invoke-missing-zip": (
        ["invoke", "--package", "{d}/no-such.zip", "--data", "{d}/good.csv", "--out", "{o}"],
        "does not exist",
    ),
    "index-query-missing": (["index", "query", "{d}/no-such-index", "hello"], "does not exist"),
    # Models.
    "model-path-missing": (_good("--model", "{d}/no/such/model"), "does not exist"),
    "model-relative-path-missing": (_good("--model", "./no-such-dir/model"), "does not exist"),
    "model-hub-id-offline": (_good("--model", "no-such-org/no-such-model"), "local hub cache"),
    "model-unknown-name": (_good("--model", "no-such-model"), "neither a folder nor"),
    "model-is-a-file": (_good("--model", "{d}/regular.txt"), "is a file, not a model folder"),
    "teacher-missing": (
        ["label", "--teacher", "{d}/no-such-teacher", "--data", "{d}/good.csv", "--out", "{o}"],
        "does not exist",
    ),
    "eval-model-missing": (
        ["eval", "--models", "{d}/no-such-model", "--data", "{d}/good.csv"],
        "no-such-model",
    ),
    "export-model-missing": (
        ["export", "--model", "{d}/no-such-model", "--validation", "{d}/good.csv", "--out", "{o}"],
        "does not exist",
    ),
    # Outputs.
    "out-under-a-file": (
        _good("--out", "{d}/regular.txt/model"),
        "regular.txt, which is a file, not a folder",
    ),
    "out-under-a-file-eval": (
        ["eval", "--models", "vader", "--data", "{d}/good.csv", "--out", "{d}/regular.txt/x.json"],
        "which is a file, not a folder",
    ),
    # Usage errors and bad values.
    "unknown-option": (["train", "--no-such-option"], "No such option"),
    "unknown-command": (["trian"], "No such command 'trian'"),
    "unknown-subcommand": (["index", "serch"], "slimbert index --help"),
    "missing-option-value": (["train", "--epochs"], "requires an argument"),
    "missing-argument": (["index", "query"], "Missing argument"),
    "missing-required-option": (["label", "--data", "{d}/good.csv"], "needs option 'teacher'"),
    "string-for-a-number": (["train", "--epochs", "many"], "'--epochs'"),
    "string-for-a-float": (["train", "--lr", "fast"], "'--lr'"),
    "negative-epochs": (["train", "--epochs", "-1"], "epochs must be at least 1"),
    "zero-lr": (["train", "--lr", "0"], "lr must be positive"),
    "bad-choice": (["distill", "--loss", "softer"], "is not one of"),
    "bool-flag-with-value": (["train", "--balance=yes"], "does not take a value"),
    "bad-layers": (["distill", "--student-layers", "5,x"], "student_layers"),
    "unknown-builtin-dataset": (["data", "prepare", "no-such-dataset"], "unknown built-in"),
}


def _run(args: list[str], root: Path, out: Path) -> subprocess.CompletedProcess[str]:
    argv = [a.format(d=root, o=out) for a in args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "slimbert", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=root,
    )


@pytest.mark.parametrize(("args", "phrase"), list(CASES.values()), ids=list(CASES))
def test_user_error_is_one_line_with_a_hint(
    args: list[str], phrase: str, bad: Path, tmp_path: Path
) -> None:
    result = _run(args, bad, tmp_path / "out")
    shown = f"exit {result.returncode}\nstderr:\n{result.stderr}\nstdout:\n{result.stdout}"
    assert "Traceback" not in result.stderr + result.stdout, shown
    assert result.returncode == 2, shown
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, shown
    assert result.stderr == lines[0] + "\n", "no blank lines either: " + shown
    assert lines[0].startswith("slimbert: error: "), shown
    assert "(hint: " in lines[0], shown
    assert phrase in lines[0], shown
    assert not (tmp_path / "out").exists(), "a failed run leaves no output behind"


def test_the_table_is_at_least_46_cases() -> None:
    assert len(CASES) >= 46


def test_the_console_script_is_the_same_entry_point(bad: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "slimbert"
    if not script.is_file():
        pytest.skip("the slimbert console script is not installed beside this Python")
    result = subprocess.run(
        [str(script), "train", "--epochs", "many"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.startswith("slimbert: error: Invalid value for '--epochs'")
    assert result.stderr.count("\n") == 1 and "(hint: try 'slimbert train --help')" in result.stderr


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["train", "--epochs"],
            "slimbert: error: Option '--epochs' requires an argument. "
            "(hint: try 'slimbert train --help')",
        ),
        (
            ["index", "query"],
            "slimbert: error: Missing argument 'index'. (hint: try 'slimbert index query --help')",
        ),
        (
            ["train", "--balance=yes"],
            "slimbert: error: Option '--balance' does not take a value. "
            "(hint: try 'slimbert train --help')",
        ),
    ],
)
def test_usage_errors_in_process(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from slimbert.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err == line + "\n"


def test_help_still_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    from slimbert.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    assert "--epochs" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("{d}/no/such/model", "model folder '{d}/no/such/model' does not exist"),
        ("./no-such-dir/model", "model folder './no-such-dir/model' does not exist"),
        ("../no-such", "model folder '../no-such' does not exist"),
        ("no-such-org/no-such-model", "is neither a local folder nor in the local hub cache"),
        ("{d}/regular.txt", "is a file, not a model folder"),
        ("no-such-model", "is neither a folder nor a known model"),
    ],
)
def test_model_names_that_name_nothing_fail_before_loading(
    name: str, message: str, bad: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from slimbert.errors import ModelError
    from slimbert.models.load import resolve_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as exc:
        resolve_model(name.format(d=bad))
    assert message.format(d=bad) in exc.value.message
    assert exc.value.hint


def test_a_local_folder_with_a_hub_like_name_still_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from slimbert.models.load import resolve_model

    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert resolve_model("org/name") == "org/name"
