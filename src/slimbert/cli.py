"""The ``slimbert`` command: a thin layer over the Python API.

Every stage command is generated from that stage's options dataclass, so a field
``student_layers`` is ``--student-layers`` here, ``student_layers:`` in YAML and
``DistillOptions(student_layers=...)`` in Python. User errors print one line,
``slimbert: error: ...`` with a hint, and exit with status 2; no traceback.

This module holds the command tree, the global options, the commands written by hand (``run``,
``predict``, ``data``, ``index query``) and :func:`main`. The commands made from options
dataclasses and what they print are :mod:`slimbert.cli_stages`; what every command shares
(user errors, ``--json``, the consoles) is :mod:`slimbert.cli_commands`; progress bars are
:mod:`slimbert.cli_progress`.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from slimbert.cli_commands import (
    PROG,
    STATE,
    build_options,
    error_line,
    help_hint,
    out,
    user_errors,
)
from slimbert.cli_help import STAGE_HELP
from slimbert.cli_progress import progress_bars, quiet_libraries, stage_hooks
from slimbert.cli_stages import deploy_command, pipeline_summary, register_stages
from slimbert.errors import ConfigError, SlimbertError

try:  # typer vendors click as typer._click since 0.2x; older typers use click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - depends on the typer version
    from click import exceptions as click_errors  # type: ignore[no-redef]

# Imported by tests and docs from here, where they were before the split.
__all__ = ["STAGE_HELP", "app", "build_options", "deploy_command", "main", "pipeline_summary"]

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="From labelled data to a tiny, fast, cheap serverless BERT function.",
)
data_app = typer.Typer(no_args_is_help=True, help="Built-in datasets; splitting your own.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks (results under bench/results/).")
sbert_app = typer.Typer(no_args_is_help=True, help="Sentence-BERT students (similarity).")
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")
index_app = typer.Typer(no_args_is_help=True, help="Duplicate-text index: build, query, calibrate.")
app.add_typer(index_app, name="index")
app.add_typer(sbert_app, name="sbert")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _show_version(value: bool) -> None:
    if value:
        import slimbert

        typer.echo(f"{PROG} {slimbert.__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_show_version,
        is_eager=True,
        help="Print slimbert's version and exit.",
    ),
    quiet: bool = typer.Option(
        False,
        "--quiet",
        "-q",
        help="Errors only on stderr: no progress, no warnings (log level ERROR). Results are "
        "still printed on stdout.",
    ),
    verbose: int = typer.Option(
        0,
        "--verbose",
        "-v",
        count=True,
        help="More log lines on stderr: -v INFO, -vv DEBUG. Without -q/-v the level is "
        "$SLIMBERT_LOG (DEBUG, INFO, WARNING, ERROR), default WARNING.",
    ),
) -> None:
    """From labelled data to a tiny, fast, cheap serverless BERT function."""
    if quiet and verbose:
        raise ConfigError("--quiet and --verbose contradict each other", hint="give one")
    STATE["quiet"] = quiet
    if quiet or verbose:
        level = logging.ERROR if quiet else logging.INFO if verbose == 1 else logging.DEBUG
        logging.getLogger().setLevel(level)


@app.command("run")
@user_errors
def run(
    pipeline: str = typer.Argument(
        ...,
        help="Pipeline YAML file, or a built-in: sentiment, sentiment-paper, sentiment-mpnet, "
        "sbert, sbert-paper, own-data (--set data=DIR).",
    ),
    quick: bool = typer.Option(False, "--quick", help="Apply the pipeline's quick profile."),
    force: bool = typer.Option(False, "--force", help="Run every step even if current."),
    set_: list[str] = typer.Option([], "--set", help="Override a pipeline variable: key=value."),
    only: str = typer.Option(
        "", "--only", help="Run only these steps (comma-separated names); inputs used as they are."
    ),
) -> None:
    """Run a pipeline's steps in order, skipping steps whose output is current."""
    from slimbert.pipeline import read_pipeline, run_pipeline

    quiet_libraries()
    overrides = {}
    for item in set_:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} is not key=value")
        overrides[key] = value
    steps = read_pipeline(pipeline, profile="quick" if quick else None, overrides=overrides)
    if only:
        wanted = [name.strip() for name in only.split(",") if name.strip()]
        known = [s.name for s in steps]
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise ConfigError(
                f"pipeline has no step {unknown[0]!r}", hint=f"steps: {', '.join(known)}"
            )
        steps = [s for s in steps if s.name in wanted]
    with progress_bars() as progress:
        summary = run_pipeline(
            steps,
            force=force,
            hooks=stage_hooks(progress),
            on_step=lambda s, status: progress.console.print(
                f"[bold]{s.name}[/] ({s.stage}): {status}"
            ),
        )
    table = Table("step", "stage", "status", "seconds")
    for row in summary:
        table.add_row(row["step"], row["stage"], row["status"], f"{row.get('seconds', 0):.0f}")
    out.print(table)
    out.print(pipeline_summary(steps), soft_wrap=True, highlight=False)


@data_app.command("prepare")
@user_errors
def data_prepare(
    name: str = typer.Argument(
        "tweets3", help="Built-in dataset: tweets3, sst3, sentiment3 or a -quick profile."
    ),
    cache_dir: Path | None = typer.Option(None, help="Where to write (default ~/.cache/slimbert)."),
) -> None:
    """Clean, deduplicate and split a built-in dataset (deterministic)."""
    from slimbert.data.domains import BUILTINS as DOMAINS
    from slimbert.data.domains import sst_file
    from slimbert.data.tweets3 import prepare_builtin

    if name in DOMAINS:
        # Read on demand from the shared data folder: nothing to prepare, but say where from.
        out.print(f"{name}: {DOMAINS[name]}; read from {sst_file('train').parent}")
        if name.startswith("sentiment3"):
            prepare_builtin("tweets3-quick" if name.endswith("-quick") else "tweets3", cache_dir)
        return
    folder = prepare_builtin(name, cache_dir)
    out.print(f"{name} → {folder}")
    out.print((folder / "manifest.json").read_text())


@data_app.command("split")
@user_errors
def data_split(
    data: str = typer.Argument(..., help="Your labelled file: CSV, TSV, JSONL or Parquet."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for the splits (written atomically)."),
    train_share: float | None = typer.Option(None, help="Share for train.csv \\[default: 0.6]."),
    validation_share: float | None = typer.Option(
        None, help="Share for validation.csv (early stopping, the export gate) \\[default: 0.1]."
    ),
    test_share: float | None = typer.Option(None, help="Share for test.csv \\[default: 0.15]."),
    pool_share: float | None = typer.Option(
        None, help="Share for pool.csv, labels withheld (the teacher labels it) \\[default: 0.15]."
    ),
    min_per_split: int | None = typer.Option(
        None, help="Rows of every class each labelled split needs \\[default: 2]."
    ),
    seed: int | None = typer.Option(None, help="Shuffling seed \\[default: 13]."),
    text_column: str | None = typer.Option(None, help="Text column \\[default: text]."),
    label_column: str | None = typer.Option(None, help="Label column \\[default: label]."),
    encoding: str | None = typer.Option(None, help="The file's encoding \\[default: utf-8]."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a split folder slimbert wrote (never other folders)."
    ),
) -> None:
    """Split your labelled file: stratified, seeded, duplicates kept in one split."""
    given = {k: v for k, v in locals().items() if k not in ("out_dir", "overwrite")}
    from slimbert.data.split import SplitOptions, split_data

    options = SplitOptions.from_dict(
        {**{k: v for k, v in given.items() if v is not None}, "out": out_dir}
    )
    report = split_data(options, overwrite=overwrite)
    counts = ", ".join(f"{name} {s['rows']:,}" for name, s in report["splits"].items())
    dup = report["duplicates"]
    out.print(f"{report['rows']:,} rows → {out_dir}: {counts}", highlight=False)
    if dup["groups"]:
        out.print(
            f"  {dup['extra_rows']:,} duplicate row(s) of {dup['groups']:,} text(s), each kept "
            f"in one split; {dup['conflicting_groups']:,} with conflicting labels "
            f"(see {out_dir / 'split_report.json'})",
            highlight=False,
        )


@index_app.command("query")
@user_errors
def index_query(
    index: Path = typer.Argument(..., help="Index folder from `slimbert index build`."),
    texts: list[str] = typer.Argument(..., help="One or more query texts."),
    bundle: Path | None = typer.Option(None, help="Embedding bundle (default: the index's)."),
    top_k: int = typer.Option(5, "--top-k", help="Neighbours per text."),
    backend: str | None = typer.Option(None, help="exact or usearch (default: the index's)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Nearest stored texts, with cosine scores, for one or more query texts."""
    from slimbert.index.build import query_index

    results = query_index(index, texts, bundle=bundle, top_k=top_k, backend=backend)
    if as_json:
        out.print_json(data=results)
        return
    table = Table("query", "rank", "id", "score", "text", "duplicate")
    for result in results:
        for rank, n in enumerate(result["neighbours"], start=1):
            dup = "" if result["is_duplicate"] is None or rank > 1 else str(result["is_duplicate"])
            table.add_row(result["text"], str(rank), n["id"], f"{n['score']:.4f}", n["text"], dup)
    out.print(table)


@app.command("predict")
@user_errors
def predict(
    texts: list[str] | None = typer.Argument(None, help="Texts to score (or --data FILE)."),
    bundle: Path = typer.Option(..., help="Bundle folder from `slimbert export`."),
    data: str | None = typer.Option(
        None, help="A CSV/TSV/JSONL/Parquet file of texts (needs --out)."
    ),
    out_file: Path | None = typer.Option(
        None, "--out", help="Write predictions here (.csv or .jsonl), atomically."
    ),
    text_column: str = typer.Option("text", help="Column of --data holding the texts."),
    id_column: str | None = typer.Option(None, help="Column of --data with row ids."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (the function's answer)."),
) -> None:
    """Score texts with an exported bundle in this process, as the deployed function would."""
    from slimbert.deploy.predict import format_answer, predict_file, predict_texts

    if data is not None:
        if texts:
            raise ConfigError("give texts or --data, not both")
        if out_file is None:
            raise ConfigError("--data needs --out", hint="e.g. --out predictions.csv")
        summary = predict_file(bundle, data, out_file, text_column=text_column, id_column=id_column)
        if as_json:
            out.print_json(data=summary)
        else:
            out.print(f"{summary['rows']:,} texts → {summary['out']} ({summary['model']})")
        return
    if out_file is not None:
        raise ConfigError("--out writes the predictions of --data", hint="add --data FILE")
    answer = predict_texts(bundle, texts or [])
    if as_json:
        out.print_json(data=answer)
    else:
        out.print(format_answer(answer), soft_wrap=True, highlight=False, markup=False)


register_stages(app, bench=bench_app, index=index_app, sbert=sbert_app)


# click < 8.2 prints the help itself when a group is called without a command.
_NO_ARGS: type[click_errors.UsageError] = getattr(
    click_errors, "NoArgsIsHelpError", click_errors.UsageError
)


def _command_path(argv: list[str] | None) -> str:
    """``slimbert index query`` from the command line, for errors raised without a context."""
    command: Any = typer.main.get_command(app)
    path = [PROG]
    for arg in sys.argv[1:] if argv is None else argv:
        command = getattr(command, "commands", {}).get(arg)
        if command is None:
            break
        path.append(arg)
    return " ".join(path)


def main(argv: list[str] | None = None) -> None:
    """The ``slimbert`` console script: user and usage errors are one line and exit 2."""
    level = os.environ.get("SLIMBERT_LOG", "WARNING").strip().upper() or "WARNING"
    if level not in LOG_LEVELS:
        sys.stderr.write(
            error_line(f"SLIMBERT_LOG={level} is not a log level", ", ".join(LOG_LEVELS)) + "\n"
        )
        sys.exit(2)
    logging.basicConfig(level=level, format="%(message)s")
    try:
        code = app(args=argv, prog_name=PROG, standalone_mode=False)
    except _NO_ARGS as exc:  # `slimbert data`: the help (rich help is printed already)
        if exc.format_message().strip():
            typer.echo(exc.format_message())
        sys.exit(2)
    except click_errors.UsageError as exc:  # unknown option, missing value, bad value type
        path = exc.ctx.command_path if exc.ctx is not None else _command_path(argv)
        sys.stderr.write(error_line(exc.format_message(), help_hint(path)) + "\n")
        sys.exit(2)
    except click_errors.ClickException as exc:
        sys.stderr.write(error_line(exc.format_message(), help_hint(PROG)) + "\n")
        sys.exit(2)
    except typer.Abort:
        sys.stderr.write(f"{PROG}: aborted\n")
        sys.exit(130)
    except SlimbertError as exc:  # raised while building commands
        sys.stderr.write(error_line(exc.message, exc.hint or help_hint(PROG)) + "\n")
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
