"""The ``slimbert`` command: a thin layer over the Python API.

Every stage command is generated from that stage's options dataclass, so a field
``student_layers`` is ``--student-layers`` here, ``student_layers:`` in YAML and
``DistillOptions(student_layers=...)`` in Python. User errors print one line,
``slimbert: error: ...`` with a hint, and exit with status 2; no traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import logging
import os
import sys
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from slimbert.cli_help import ALIASES, HELP, STAGE_HELP
from slimbert.config import Options, read_options_file
from slimbert.errors import ConfigError, SlimbertError

try:  # typer vendors click as typer._click since 0.2x; older typers use click itself
    from typer._click import exceptions as click_errors
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - depends on the typer version
    from click import exceptions as click_errors  # type: ignore[no-redef]
    from click import get_current_context  # type: ignore[no-redef]

PROG = "slimbert"
console = Console(stderr=True)
out = Console()
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

# What the global options set for this run: --quiet hides progress, --json prints results.
_STATE: dict[str, Any] = {"quiet": False}
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
    _STATE["quiet"] = quiet
    if quiet or verbose:
        level = logging.ERROR if quiet else logging.INFO if verbose == 1 else logging.DEBUG
        logging.getLogger().setLevel(level)


def option_help(stage: str, name: str, default: Any, is_bool: bool = False) -> str:
    """An option's help: what it means in this stage, and its default when it has one.

    Escaped for rich, whose markup would read ``[default: 1]`` as a tag and drop it."""
    from rich.markup import escape

    text = STAGE_HELP.get(stage, {}).get(name) or HELP.get(name, "")
    if isinstance(default, tuple):
        default = ",".join(map(str, default))
    if is_bool and default is not None:
        default = ("--" if default else "--no-") + name.replace("_", "-")
    if default is None or default == "":
        return escape(text)
    return escape(f"{text} [default: {default}]")


def _cli_type(hint: Any) -> Any:
    """The type typer parses; lists and literals arrive as strings, coerced by the dataclass."""
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _cli_type(args[0])
    if hint in (bool, int, float, str, Path):
        return hint
    return str


def _help_hint(command_path: str | None = None) -> str:
    """``try 'slimbert <command> --help'`` for the command being run (or the top level)."""
    if command_path is None:
        ctx = get_current_context(silent=True)
        command_path = ctx.command_path if ctx is not None else PROG
    return f"try '{command_path} --help'"


def error_line(message: str, hint: str | None) -> str:
    """The one line a user error is shown as: ``slimbert: error: ... (hint: ...)``."""
    text = " ".join(str(message).split())  # YAML and OS messages may span lines
    hint = " ".join(str(hint or "").split()) or _help_hint()
    return f"{PROG}: error: {text} (hint: {hint})"


def _fail(exc: BaseException) -> typing.NoReturn:
    if isinstance(exc, SlimbertError):
        line = error_line(exc.message, exc.hint)
    else:
        line = error_line(str(exc), None)
    # Plain stderr, not rich: a rich console wraps long lines at the terminal's width.
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    raise typer.Exit(2)


_OS_HINTS: dict[type[OSError], str] = {
    FileNotFoundError: "check the path",
    PermissionError: "check the file's permissions",
    IsADirectoryError: "pass a file here, not a folder",
    NotADirectoryError: "a part of the path is a regular file, not a folder: choose another path",
    FileExistsError: "a file is in the way: choose another path",
}


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SlimbertError as exc:
            _fail(exc)
        except tuple(_OS_HINTS) as exc:
            hint = next(h for kind, h in _OS_HINTS.items() if isinstance(exc, kind))
            _fail(SlimbertError(f"{exc.strerror}: {exc.filename}", hint=hint))
        except UnicodeDecodeError as exc:  # a user file read as UTF-8 outside slimbert's readers
            _fail(SlimbertError(f"a file is not UTF-8 text ({exc})", hint="save it as UTF-8"))
        except KeyboardInterrupt:
            console.print("slimbert: interrupted; finished work is kept, run again to resume")
            raise typer.Exit(130) from None

    return wrapper


def build_options(cls: type[Options], config: Path | None, given: dict[str, Any]) -> Options:
    values: dict[str, Any] = {}
    if config is not None:
        values.update(read_options_file(config))
    values.update({k: v for k, v in given.items() if v is not None})
    return cls.from_dict(values)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def print_json(result: Any) -> None:
    """A command's result as JSON on stdout, one document (plain: never wrapped or coloured)."""
    import json

    sys.stdout.write(json.dumps(result, indent=2, default=_jsonable, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def _json_output(enabled: bool) -> Iterator[None]:
    """With --json, nothing but the result reaches stdout: the human output is silenced and
    stray prints (libraries) go to stderr."""
    if not enabled:
        yield
        return
    quiet = out.quiet
    out.quiet = True
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        out.quiet = quiet


def stage_command(
    cls: type[Options],
    name: str,
    help_text: str,
    group: typer.Typer = app,
    json_output: bool = False,
) -> Callable[..., Any]:
    """Register a command whose options are the fields of ``cls``.

    With ``json_output`` the command takes ``--json``: it prints what ``run`` returns as JSON
    on stdout instead of its human output."""

    def decorator(run: Callable[[Options], Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(cls)
        params = [
            inspect.Parameter(
                "config",
                inspect.Parameter.KEYWORD_ONLY,
                default=typer.Option(None, "--config", help="YAML file of options (flags win)."),
                annotation=Optional[Path],  # noqa: UP045 - typer needs a runtime type
            )
        ]
        for field in dataclasses.fields(cls):
            default = None if field.default is dataclasses.MISSING else field.default
            flag = "--" + field.name.replace("_", "-")
            is_bool = hints[field.name] is bool
            decls = [f"{flag}/--no-{flag[2:]}"] if is_bool else [flag]
            decls += ALIASES.get(field.name, [])
            text = option_help(cls.stage, field.name, default, is_bool)
            params.append(
                inspect.Parameter(
                    field.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=typer.Option(None, *decls, help=text),
                    annotation=Optional[_cli_type(hints[field.name])],  # noqa: UP045
                )
            )

        from slimbert.pipeline import OUTPUT_KINDS, overwrite_outputs

        if cls.stage in OUTPUT_KINDS:  # a stage that writes an output folder: --overwrite
            params.append(
                inspect.Parameter(
                    "overwrite",
                    inspect.Parameter.KEYWORD_ONLY,
                    default=typer.Option(
                        False,
                        "--overwrite",
                        help="Replace an existing --out of the same kind that slimbert wrote "
                        "(kept until the new one is complete). Never replaces other files.",
                    ),
                    annotation=bool,
                )
            )

        if json_output:
            params.append(
                inspect.Parameter(
                    "as_json",
                    inspect.Parameter.KEYWORD_ONLY,
                    default=typer.Option(
                        False,
                        "--json",
                        help="Print the result as JSON on stdout, and nothing else there.",
                    ),
                    annotation=bool,
                )
            )

        @user_errors
        def command(**kwargs: Any) -> None:
            config = kwargs.pop("config")
            as_json = bool(kwargs.pop("as_json", False))
            overwrite = bool(kwargs.pop("overwrite", False))
            with overwrite_outputs(overwrite), _json_output(as_json):
                result = run(build_options(cls, config, kwargs))
            if as_json:
                print_json(result)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__name__ = name
        command.__doc__ = help_text
        command.options_class = cls  # type: ignore[attr-defined]  # read by the help tests
        group.command(name, help=help_text)(command)
        return run

    return decorator


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass


class _Progress(Progress):
    """Progress bars that leave no empty line behind when no bar was ever shown (a run that
    stops on a user error before its first bar keeps stderr to the one error line)."""

    def stop(self) -> None:
        if any(task.visible for task in self.tasks) or self.disable:
            super().stop()
            return
        # rich prints an empty line after a non-interactive run and the final empty render
        # on a terminal; with no bar there is nothing to keep.
        self.live.transient = True
        self.live.stop()


def _progress() -> Progress:
    return _Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=bool(_STATE["quiet"]),
    )


def _step_progress(progress: Progress, title: str) -> Callable[[str], None]:
    """A stage without a row count (export): one pulsing bar, its description the current
    step; shown on a terminal only (a log gets the stage's own lines)."""
    state: dict[str, Any] = {}

    def update(step: str) -> None:
        if "task" not in state:
            visible = progress.console.is_terminal
            state["task"] = progress.add_task(title, total=None, rate="", visible=visible)
        progress.update(state["task"], description=f"{title}: {step}")

    return update


def _label_progress(progress: Progress, title: str) -> Callable[[int, int], None]:
    import time

    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        now = time.perf_counter()
        if "task" not in state:
            state.update(task=progress.add_task(title, total=total, rate=""), t0=now, d0=done)
        elapsed = now - state["t0"]
        rate = (done - state["d0"]) / elapsed if elapsed > 0 else 0.0
        progress.update(state["task"], completed=done, rate=f"{rate:,.0f} rows/s")

    return update


def _hooks(progress: Progress) -> dict[str, Callable[[Any], dict[str, Any]]]:
    return {
        "train": lambda step: {"reporter": _TrainReporter(progress, step.name)},
        "distill": lambda step: {"reporter": _TrainReporter(progress, step.name)},
        "label": lambda step: {"progress": _label_progress(progress, step.name)},
        "augment": lambda step: {"progress": _label_progress(progress, step.name)},
        "sbert-train": lambda step: {"reporter": _SpearmanReporter(progress, step.name)},
        "cross-encoder": lambda step: {"reporter": _SpearmanReporter(progress, step.name)},
        "export": lambda step: {"progress": _step_progress(progress, step.name)},
    }


def deploy_command(options: Any, report: dict[str, Any]) -> str:
    """The command that deploys what ``slimbert package`` just wrote (docs/deploy.md)."""
    from slimbert.deploy.package import GCP_ENTRY_POINT

    if options.target == "gcp-function":
        return (
            "Next, deploy it (docs/deploy.md):\n"
            f"  gcloud functions deploy {options.name} --gen2 --runtime python312 "
            f"--source {report['package']} --entry-point {GCP_ENTRY_POINT} --trigger-http "
            f"--no-allow-unauthenticated --memory {options.memory_mb}Mi "
            f"--timeout {options.timeout_s}s --region REGION"
        )
    template = Path(report["package"]).with_name(f"{options.stem}.template.yaml")
    return f"Next, deploy it (docs/deploy.md):\n  sam deploy --guided --template-file {template}"


class _TrainReporter:
    """Training progress: one bar per epoch, ending with its validation macro-F1."""

    def __init__(self, progress: Progress, title: str) -> None:
        self.progress = progress
        self.title = title
        self.task: Any = None
        self.epoch = 0

    def epoch_started(self, epoch: int, steps: int) -> None:
        self.epoch = epoch
        self.task = self.progress.add_task(f"{self.title} epoch {epoch}", total=steps, rate="")

    def step_done(self, loss: float) -> None:
        self.progress.update(self.task, advance=1, description=self._desc(f"loss {loss:.3f}"))

    def epoch_done(self, record: dict[str, Any]) -> None:
        f1 = record["val_macro_f1"]
        self.progress.update(self.task, description=self._desc(f"val macro-F1 {f1:.4f}"))
        # A line per epoch too, so a log of a non-interactive run shows the curve.
        self.progress.console.print(
            f"{self.title} epoch {record['epoch']}: train {record['train_seconds']:.0f} s, "
            f"loss {record['train_loss']:.4f}, val macro-F1 {f1:.4f}",
            highlight=False,
        )

    def _desc(self, tail: str) -> str:
        return f"{self.title} epoch {self.epoch}: {tail}"


class _SpearmanReporter(_TrainReporter):
    """SBERT training: a bar per epoch; a line per validation (Spearman of cosine)."""

    def epoch_done(self, record: dict[str, Any]) -> None:
        rho = 100 * record["val_spearman"]
        self.progress.update(self.task, description=self._desc(f"val Spearman {rho:.2f}"))
        self.progress.console.print(
            f"{self.title} step {record['step']} (epoch {record['epoch']}): "
            f"{record['train_seconds']:.0f} s, loss {record['train_loss']:.4f}, "
            f"val Spearman {rho:.2f}",
            highlight=False,
        )


def _run_stage(stage: str, options: Options, doing: str | None = None) -> Any:
    """Run one stage with the progress UI; ``doing`` names a pulsing bar shown meanwhile
    for stages that report no progress of their own (on a terminal only)."""
    from slimbert.pipeline import Step, run_pipeline

    _quiet_libraries()
    with _progress() as progress:
        if doing is not None:
            progress.add_task(doing, total=None, rate="", visible=progress.console.is_terminal)
        summary = run_pipeline([Step(stage, stage, options)], force=True, hooks=_hooks(progress))
    return summary[0]["result"]


def _print_fit(result: dict[str, Any]) -> None:
    out.print(
        f"best epoch {result['best_epoch']}: validation macro-F1 "
        f"{result['best_val_macro_f1']:.4f} → {result['out']} ({result['seconds']:.0f} s)"
    )


def _print_results(table: str, report: dict[str, Any], **print_kwargs: Any) -> dict[str, Any]:
    """Print a stage's markdown ``table``, then where its results went; return ``report``."""
    out.print(table, **print_kwargs)
    out.print(f"results → {report['out']}")
    return report


def _register_stages() -> None:
    from slimbert.deploy.invoke import InvokeOptions
    from slimbert.deploy.package import PackageOptions
    from slimbert.export.bundle import ExportOptions
    from slimbert.index.build import IndexBuildOptions
    from slimbert.index.calibrate import CalibrateOptions
    from slimbert.lab.bench_index import IndexBenchOptions
    from slimbert.lab.bench_label import LabelBenchOptions
    from slimbert.lab.bench_lambda import BenchLambdaOptions
    from slimbert.lab.bench_serving import ServingBenchOptions
    from slimbert.lab.benchmarks import SamplerBenchOptions
    from slimbert.lab.cost import CostOptions
    from slimbert.lab.report import ReportOptions
    from slimbert.train.augment import AugmentOptions, CrossEncoderOptions
    from slimbert.train.distill import DistillOptions
    from slimbert.train.evaluate import EvalOptions, markdown_table
    from slimbert.train.finetune import TrainOptions
    from slimbert.train.label import LabelOptions
    from slimbert.train.sbert import SbertTrainOptions

    @stage_command(TrainOptions, "train", "Fine-tune a classifier (the teacher) on a gold set.")
    def _train(options: Options) -> None:
        _print_fit(_run_stage("train", options))

    @stage_command(LabelOptions, "label", "Let the teacher label an unlabelled pool (silver).")
    def _label(options: Options) -> None:
        result = _run_stage("label", options)
        out.print(
            f"labelled {result.rows:,} rows in {result.shards} shards "
            f"({result.resumed_shards} resumed) at {result.rows_per_second:,.0f} rows/s "
            f"→ {result.out}; labels {result.label_counts}"
        )
        if result.agreement and result.agreement.get("rows"):
            a = result.agreement
            out.print(
                f"exported teacher ({a['variant']}) agrees with torch on {a['same_label']:,} of "
                f"{a['rows']:,} rows ({100 * a['agreement']:.2f}%), max |Δlogit| "
                f"{a['max_abs_logit_diff']:.1e}"
            )

    @stage_command(
        CrossEncoderOptions, "cross-encoder", "Train the AugSBERT cross-encoder on gold pairs."
    )
    def _cross_encoder(options: Options) -> None:
        r = _run_stage("cross-encoder", options)
        out.print(
            f"best validation Spearman {100 * r['best_val_spearman']:.2f} at step "
            f"{r['best_step']} of {r['steps']} ({r['seconds']:.0f} s) → {options.out}"  # type: ignore[attr-defined]
        )

    @stage_command(
        AugmentOptions, "augment", "AugSBERT silver pairs: BM25 mining, cross-encoder, balance."
    )
    def _augment(options: Options) -> None:
        r = _run_stage("augment", options)
        out.print(
            f"{r['silver']:,} silver pairs of {r['candidates']:,} candidates (median score "
            f"{r['score_median']:.2f}, {r['resumed_shards']} shard(s) resumed) → {r['silver_file']}"
        )

    @stage_command(DistillOptions, "distill", "Distill a small student on the silver set.")
    def _distill(options: Options) -> None:
        _print_fit(_run_stage("distill", options))

    @stage_command(
        SamplerBenchOptions,
        "sampler",
        "Epoch time and macro-F1 with/without the paper's sampler.",
        group=bench_app,
        json_output=True,
    )
    def _bench_sampler(options: Options) -> Any:
        from slimbert.lab.benchmarks import run_sampler_bench, sampler_markdown

        _quiet_libraries()
        with _progress() as progress:
            report = run_sampler_bench(
                options,  # type: ignore[arg-type]
                reporter=_TrainReporter(progress, "sampler"),
            )
        return _print_results(sampler_markdown(report), report)

    @stage_command(
        LabelBenchOptions,
        "label",
        "Labelling rows/s per core: torch vs ONNX fp32/int8 teacher; Ray vs local; faults.",
        group=bench_app,
        json_output=True,
    )
    def _bench_label(options: Options) -> Any:
        from slimbert.lab.bench_label import label_markdown, run_label_bench

        _quiet_libraries()
        report = run_label_bench(options)  # type: ignore[arg-type]
        return _print_results(label_markdown(report), report, soft_wrap=True)

    @stage_command(
        PackageOptions,
        "package",
        "Build an AWS Lambda zip or a Google function folder.",
        json_output=True,
    )
    def _package(options: Options) -> Any:
        from slimbert.deploy.package import size_table

        report = _run_stage("package", options, doing="package: wheels, code and bundle")
        out.print(size_table(report))
        out.print(deploy_command(options, report), soft_wrap=True, highlight=False, markup=False)
        return report

    @stage_command(
        CostOptions,
        "cost",
        "Cost per 1M predictions and per month, against a VM.",
        json_output=True,
    )
    def _cost(options: Options) -> Any:
        from slimbert.lab.cost import markdown_report, run_cost

        report = run_cost(options)  # type: ignore[arg-type]
        out.print(markdown_report(report), soft_wrap=True)
        return report

    @stage_command(
        ReportOptions, "report", "Report and plots from the latest results; refill the README."
    )
    def _report(options: Options) -> None:
        from slimbert.lab.report import build_report

        result = build_report(options)  # type: ignore[arg-type]
        for line in result["missing"]:
            console.print(line, highlight=False)
        out.print(f"report → {result['report']}")

    @stage_command(InvokeOptions, "invoke", "Invoke a Lambda zip through the local emulator.")
    def _invoke(options: Options) -> None:
        result = _run_stage("invoke", options)
        out.print_json(data=result)

    @stage_command(
        ServingBenchOptions,
        "serving",
        "Cold start, warm latency and handler overhead: bundle vs torch teacher.",
        group=bench_app,
        json_output=True,
    )
    def _bench_serving(options: Options) -> Any:
        from slimbert.lab.bench_serving import run_serving_bench, serving_markdown

        _quiet_libraries()
        report = run_serving_bench(options)  # type: ignore[arg-type]
        return _print_results(serving_markdown(report), report)

    @stage_command(
        BenchLambdaOptions,
        "lambda",
        "Latency, cold start, memory and concurrency of a packaged function under "
        "platform CPU/memory limits (local emulator + cgroups).",
        group=bench_app,
        json_output=True,
    )
    def _bench_lambda(options: Options) -> Any:
        from slimbert.lab.bench_lambda import lambda_markdown, run_lambda_bench

        _quiet_libraries()
        report = run_lambda_bench(options)  # type: ignore[arg-type]
        return _print_results(lambda_markdown(report), report, soft_wrap=True)

    @stage_command(
        ExportOptions,
        "export",
        "Export to ONNX, optimise, int8 behind a gate: a bundle.",
        json_output=True,
    )
    def _export(options: Options) -> Any:
        manifest = _run_stage("export", options)
        gate = manifest.get("gate") or {}
        size = manifest["files"][manifest["model_file"]]["bytes"] / 2**20
        out.print(
            f"bundle → {options.out} ({manifest['model_file']}, {size:.1f} MiB); "  # type: ignore[attr-defined]
            f"gate: {'passed' if gate.get('passed') else 'int8 not kept'}",
            highlight=False,
        )
        if gate.get("verdict"):  # rows, what one row is worth, the options, the sizes
            out.print(gate["verdict"], soft_wrap=True, highlight=False, markup=False)
        return manifest

    @stage_command(
        SbertTrainOptions,
        "train",
        "Train a Sentence-BERT student: --stage distill, nli, sts, then target.",
        group=sbert_app,
    )
    def _sbert_train(options: Options) -> None:
        report = _run_stage("sbert-train", options)
        out.print(
            f"{report['objective']}: validation Spearman {100 * report['val_spearman_start']:.2f}"
            f" → {100 * report['best_val_spearman']:.2f} (step {report['best_step']} of "
            f"{report['steps']}, {report['seconds']:.0f} s) → {options.out}"  # type: ignore[attr-defined]
        )

    @stage_command(
        IndexBuildOptions, "build", "Embed a corpus with a bundle into an index.", group=index_app
    )
    def _index_build(options: Options) -> None:
        manifest = _run_stage("index-build", options)
        out.print(
            f"index → {options.out} ({manifest['count']:,} texts, {manifest['dim']}-d "  # type: ignore[attr-defined]
            f"{manifest['dtype']}, backend {manifest['backend']})"
        )

    @stage_command(
        CalibrateOptions,
        "calibrate",
        "Duplicate threshold: best F1 on validation pairs, reported on test pairs.",
        group=index_app,
    )
    def _index_calibrate(options: Options) -> None:
        from slimbert.index.calibrate import calibration_markdown

        report = _run_stage("index-calibrate", options)
        _print_results(calibration_markdown(report), report, highlight=False)

    @stage_command(
        IndexBenchOptions,
        "index",
        "Duplicate index backends: exact numpy vs usearch (vs faiss when installed).",
        group=bench_app,
        json_output=True,
    )
    def _bench_index(options: Options) -> Any:
        from slimbert.lab.bench_index import index_markdown, run_index_bench

        report = run_index_bench(options)  # type: ignore[arg-type]
        return _print_results(index_markdown(report), report)

    @stage_command(
        EvalOptions,
        "eval",
        "Classifiers: macro-F1; embedders: Spearman; size and latency.",
        json_output=True,
    )
    def _eval(options: Options) -> Any:
        result = _run_stage("eval", options, doing="eval: scoring, then timing, each model")
        out.print(markdown_table(result), soft_wrap=True, highlight=False)
        return result


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

    _quiet_libraries()
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
    with _progress() as progress:
        summary = run_pipeline(
            steps,
            force=force,
            hooks=_hooks(progress),
            on_step=lambda s, status: progress.console.print(
                f"[bold]{s.name}[/] ({s.stage}): {status}"
            ),
        )
    table = Table("step", "stage", "status", "seconds")
    for row in summary:
        table.add_row(row["step"], row["stage"], row["status"], f"{row.get('seconds', 0):.0f}")
    out.print(table)
    out.print(pipeline_summary(steps), soft_wrap=True, highlight=False)


def pipeline_summary(steps: list[Any]) -> str:
    """One table of what a user judges a run by, read from the steps' outputs on disk."""
    from slimbert.io import read_json

    rows: list[tuple[str, str]] = []
    for step in steps:
        o = step.options
        try:
            if step.stage == "eval":
                for m in read_json(Path(o.out or "eval").with_suffix(".json"))["models"]:
                    if "spearman" in m:  # sentence embedders
                        for spec, rho in m["spearman"].items():
                            rows.append((f"Spearman ×100 · {spec} · {m['name']}", f"{rho:.2f}"))
                        continue
                    who = f"{m['model']} ({m['kind']})"
                    for spec, scores in (m.get("sets") or {"test": m}).items():
                        rows.append((f"macro-F1 · {spec} · {who}", f"{scores['macro_f1']:.4f}"))
                    if m.get("behaviour"):
                        rate = 100 * m["behaviour"]["pass_rate"]
                        rows.append((f"behavioural pass rate · {who}", f"{rate:.1f}%"))
            elif step.stage == "export":
                man = read_json(Path(o.out) / "manifest.json")
                size = man["files"][man["model_file"]]["bytes"] / 1e6
                gate = man.get("gate") or {}
                rows.append(("bundle model", f"{man['model_file']} {size:.1f} MB"))
                for variant in ("fp32", "qint8"):
                    if gate.get(variant) and "macro_f1" in gate[variant]:
                        rows.append(
                            (
                                f"validation macro-F1 · ONNX {variant}",
                                f"{gate[variant]['macro_f1']:.4f}",
                            )
                        )
            elif step.stage == "package":
                for sizes in sorted(Path(o.out).glob("*.sizes.json")):
                    rep = read_json(sizes)
                    rows.append(
                        (
                            f"package {sizes.name.removesuffix('.sizes.json')}",
                            f"{rep['package_bytes'] / 2**20:.1f} MiB zipped, "
                            f"{rep['total']['unzipped_bytes'] / 2**20:.1f} MiB unzipped",
                        )
                    )
            elif step.stage == "invoke":
                inv = read_json(o.out)
                rows.append(
                    ("emulator cold start (first answer)", f"{inv['cold_start_ms']:.0f} ms")
                )
                rows.append(
                    (
                        "emulator warm latency p50 / p99 (client)",
                        f"{inv['client_ms']['p50']:.1f} / {inv['client_ms']['p99']:.1f} ms",
                    )
                )
                if inv.get("peak_rss_mb"):
                    rows.append(("function peak RSS", f"{inv['peak_rss_mb']:.0f} MB"))
        except (OSError, KeyError, ValueError):
            continue
    width = max((len(k) for k, _ in rows), default=0)
    lines = ["", "Summary", *(f"  {k.ljust(width)}  {v}" for k, v in rows)]
    return "\n".join(lines) + "\n"


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


_register_stages()


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
        sys.stderr.write(error_line(exc.format_message(), _help_hint(path)) + "\n")
        sys.exit(2)
    except click_errors.ClickException as exc:
        sys.stderr.write(error_line(exc.format_message(), _help_hint(PROG)) + "\n")
        sys.exit(2)
    except typer.Abort:
        sys.stderr.write(f"{PROG}: aborted\n")
        sys.exit(130)
    except SlimbertError as exc:  # raised while building commands
        sys.stderr.write(error_line(exc.message, exc.hint or _help_hint(PROG)) + "\n")
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
