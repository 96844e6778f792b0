"""Help and habits: every option of every command is described, with its default shown.

Walks the whole command tree (typer.main.get_command) and renders each command's ``--help``
as a user sees it (rich), so markup that swallows ``[default: ...]`` is caught too. Also the
global options (--version, --quiet, --verbose, SLIMBERT_LOG) and ``--json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from slimbert.cli import STAGE_HELP, app

runner = CliRunner()
DOCS = Path(__file__).resolve().parents[1] / "docs" / "commands.md"


def commands() -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group, as (path, click command), the top level first."""

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, (*path, name))

    yield from walk(typer.main.get_command(app), ())


def stage_fields() -> dict[tuple[str, ...], dict[str, Any]]:
    """For each command generated from an options dataclass: flag → the field's default."""
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    for path, command in commands():
        callback = getattr(command, "callback", None)
        cls = getattr(callback, "options_class", None)
        if cls is None:
            continue
        hints = typing.get_type_hints(cls)
        found[path] = {
            "--" + f.name.replace("_", "-"): (
                None if f.default is dataclasses.MISSING else f.default,
                hints[f.name] is bool,
            )
            for f in dataclasses.fields(cls)
        }
    return found


def shown_default(default: Any, flag: str, is_bool: bool) -> str | None:
    if default is None or default in ("", ()):
        return None
    if is_bool:
        return flag if default else "--no-" + flag[2:]
    return ",".join(map(str, default)) if isinstance(default, tuple) else str(default)


def render(path: tuple[str, ...]) -> dict[str, str]:
    """``slimbert PATH --help`` as rendered for a wide terminal: option → its row's text."""
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    rows: dict[str, str] = {}
    current = None
    for line in result.output.splitlines():
        cells = line.strip("│ ").strip()
        match = re.match(r"(?:\*\s+)?((?:-\w, )?--[\w-]+|[a-z_]+\s)", cells)
        if match and line.lstrip().startswith("│"):
            names = re.findall(r"--[\w-]+", cells.split("  ")[0]) or [match.group(1).strip()]
            current = names[0]
            rows[current] = cells
        elif current and line.lstrip().startswith("│") and cells:
            rows[current] += " " + cells
        elif not line.lstrip().startswith("│"):
            current = None
    return rows


def test_every_option_of_every_command_is_described() -> None:
    undescribed = []
    total_commands = total_options = 0
    for path, command in commands():
        total_commands += 1
        for param in command.params:
            total_options += 1
            if not (getattr(param, "help", None) or "").strip():
                undescribed.append(f"{' '.join(path) or 'slimbert'} {param.opts[0]}")
    assert not undescribed, undescribed
    assert total_commands >= 29 and total_options >= 340


def test_every_default_is_shown_in_the_rendered_help() -> None:
    missing = []
    for path, fields in stage_fields().items():
        rows = render(path)
        for flag, (default, is_bool) in fields.items():
            assert flag in rows, (path, flag, sorted(rows))
            expected = shown_default(default, flag, is_bool)
            if expected is not None and f"[default: {expected}]" not in rows[flag]:
                missing.append(f"{' '.join(path)} {flag}: {rows[flag]}")
    assert not missing, "\n".join(missing)
    # Options typer declares itself (run, predict, data, index query) show theirs too.
    for path, command in commands():
        if path in stage_fields() or not path:
            continue
        rows = render(path)
        for param in command.params:
            default = param.default
            if param.param_type_name != "option" or param.required:
                continue
            if default is None or default is False or default in ("", [], ()):
                continue  # nothing to show: the help says what leaving it out means
            row = rows[param.opts[0]]
            assert "[default: " in row, (path, param.opts[0], row)
    assert "[default: 0.6]" in render(("data", "split"))["--train-share"]


def test_one_name_is_described_per_command_where_it_means_something_else() -> None:
    text = {path: render(path) for path in [("label",), ("index", "build"), ("cost",), ("export",)]}
    assert (
        "torch" in text[("label",)]["--backend"] and "usearch" not in text[("label",)]["--backend"]
    )
    assert "usearch" in text[("index", "build")]["--backend"]
    assert "aws-lambda-x86_64" in text[("cost",)]["--platform"]
    assert "Base encoder" not in text[("export",)]["--model"]
    assert "hard" not in render(("sbert", "train"))["--loss"]
    assert "sbert-paper" in render(("run",))["pipeline"]
    # The price-table keys named in cost --platform are the table's keys.
    from slimbert.prices import load_prices

    named = set(re.findall(r"\b[a-z0-9_]+(?:-[a-z0-9_]+)+\b", STAGE_HELP["cost"]["platform"]))
    assert named == set(load_prices(None).platforms)


def test_every_stage_command_is_in_the_docs() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    for path in stage_fields():
        assert f"`slimbert {' '.join(path)}" in docs, path
    for word in (
        "--version",
        "--quiet",
        "--verbose",
        "SLIMBERT_LOG",
        "--json",
        "--gate-confidence",
    ):
        assert word in docs, word


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "slimbert", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_version_and_log_levels() -> None:
    import slimbert

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"slimbert {slimbert.__version__}"
    root = logging.getLogger()
    level = root.level
    try:
        assert runner.invoke(app, ["-vv", "data", "prepare", "--help"]).exit_code == 0
        assert root.level == logging.DEBUG
        assert runner.invoke(app, ["--quiet", "data", "prepare", "--help"]).exit_code == 0
        assert root.level == logging.ERROR
    finally:
        root.setLevel(level)
        from slimbert.cli_commands import STATE

        STATE["quiet"] = False
    bad = _run("--version", env={"SLIMBERT_LOG": "LOUD"})
    assert bad.returncode == 2 and bad.stderr.startswith("slimbert: error: SLIMBERT_LOG=LOUD")
    both = _run("-q", "-v", "cost", "--duration-ms", "50")
    assert both.returncode == 2 and both.stderr.count("\n") == 1, both.stderr


def test_json_prints_the_result_and_nothing_else_on_stdout() -> None:
    args = ["cost", "--duration-ms", "50", "--platform", "aws-lambda-x86_64", "--memory-mb", "512"]
    result = _run(*args, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert report["requests_per_month"] == 1e6 and "aws-lambda-x86_64" in json.dumps(report)
    human = _run(*args)
    assert human.returncode == 0 and not human.stdout.lstrip().startswith("{")
    for path in (("eval",), ("cost",), ("package",), ("export",), ("bench", "lambda")):
        assert "--json" in render(path), path


@pytest.mark.parametrize("command", ["export", "package", "eval"])
def test_progress_is_wired_for_the_silent_stages(command: str) -> None:
    """export tells its steps; package and eval show a pulsing bar (terminal only)."""
    import inspect

    from slimbert import cli_progress, cli_stages

    if command == "export":
        from types import SimpleNamespace

        from slimbert.export.bundle import export_model

        assert "progress" in inspect.signature(export_model).parameters
        progress = cli_progress.progress_bars()
        hook = cli_progress.stage_hooks(progress)["export"](
            SimpleNamespace(name="export", options=None)
        )
        hook["progress"]("quantising to int8")
        assert progress.tasks[0].description == "export: quantising to int8"
        assert progress.tasks[0].visible is False  # not a terminal here
    else:
        source = inspect.getsource(cli_stages.register_stages)
        assert re.search(rf'@method_command\(\s*"{command}",[^@]*\bdoing="', source)
