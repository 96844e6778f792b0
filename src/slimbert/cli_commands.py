"""What every ``slimbert`` command shares: commands made from options dataclasses, user
errors as one line, ``--json`` output, and the two consoles.

A stage's options dataclass is its command (:func:`stage_command`): a field
``student_layers`` is ``--student-layers`` here, ``student_layers:`` in YAML and
``DistillOptions(student_layers=...)`` in Python. A user error (:func:`user_errors`) is one
line, ``slimbert: error: ...`` with a hint, and exit status 2; no traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import sys
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from slimbert.cli_help import ALIASES, HELP, STAGE_HELP
from slimbert.config import Options, read_options_file
from slimbert.errors import SlimbertError

try:  # typer vendors click as typer._click since 0.2x; older typers use click itself
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - depends on the typer version
    from click import get_current_context  # type: ignore[no-redef]

PROG = "slimbert"
# Progress, warnings and errors go to stderr; results to stdout (silenced under --json).
console = Console(stderr=True)
out = Console()
# What the global options set for this run: --quiet hides progress.
STATE: dict[str, Any] = {"quiet": False}


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


def help_hint(command_path: str | None = None) -> str:
    """``try 'slimbert <command> --help'`` for the command being run (or the top level)."""
    if command_path is None:
        ctx = get_current_context(silent=True)
        command_path = ctx.command_path if ctx is not None else PROG
    return f"try '{command_path} --help'"


def error_line(message: str, hint: str | None) -> str:
    """The one line a user error is shown as: ``slimbert: error: ... (hint: ...)``."""
    text = " ".join(str(message).split())  # YAML and OS messages may span lines
    hint = " ".join(str(hint or "").split()) or help_hint()
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
    """A command whose user errors (SlimbertError, a missing or unreadable file) end in one
    line and exit 2; Ctrl-C exits 130 and keeps finished work."""

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
    """``cls`` from the ``--config`` YAML file and the flags given (flags win)."""
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
    group: typer.Typer,
    *,
    json_output: bool = False,
    overwrite: bool = False,
) -> Callable[..., Any]:
    """Register a command of ``group`` whose options are the fields of ``cls``.

    With ``json_output`` the command takes ``--json``: it prints what ``run`` returns as JSON
    on stdout instead of its human output. With ``overwrite`` (a stage that writes an output
    folder) it takes ``--overwrite``: whether an output of the same kind may be replaced."""

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

        from slimbert.pipeline import overwrite_outputs

        if overwrite:
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
            allowed = bool(kwargs.pop("overwrite", False))
            with overwrite_outputs(allowed), _json_output(as_json):
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
