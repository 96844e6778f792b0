"""Options shared by every stage: frozen dataclasses validated on construction.

Every stage has one ``*Options`` dataclass. The same field names are used by the Python API,
the pipeline YAML file and the CLI (``student_layers`` is ``--student-layers``), and the
options round-trip through plain dicts so a run can record exactly what it did.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import yaml

from slimbert.errors import ConfigError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Options:
    """Base class: subclasses add fields and override :meth:`validate`."""

    stage: ClassVar[str] = "options"

    def __post_init__(self) -> None:
        # Coerce YAML/CLI-friendly values (str paths, lists) into the declared types, so an
        # options object built from a dict equals one built in Python.
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            coerced = _coerce(value, hints[field.name], f"{self.stage}.{field.name}")
            if coerced is not value:
                object.__setattr__(self, field.name, coerced)
        _check_out(getattr(self, "out", None), f"{self.stage}.out")
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` with a helpful message when a value is wrong."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in data if k not in names]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(key, sorted(names), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(names))}"
            raise ConfigError(f"unknown option {key!r} for stage {cls.stage!r}", hint=hint)
        missing = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and data.get(f.name) is None
        ]
        if missing:
            flag = "--" + missing[0].replace("_", "-")
            raise ConfigError(
                f"stage {cls.stage!r} needs option {missing[0]!r}",
                hint=f"pass {flag} (or {missing[0]}: in YAML)",
            )
        try:
            return cls(**{k.replace("-", "_"): v for k, v in data.items()})
        except TypeError as exc:
            raise ConfigError(
                f"stage {cls.stage!r}: {exc}", hint="check the option names and values"
            ) from exc

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a valid {_name(hint)}", hint=_example(hint))
    if hint is Path:
        if isinstance(value, str | Path):
            return value if isinstance(value, Path) else Path(value)
        raise ConfigError(f"{where}: expected a path, got {value!r}", hint="e.g. runs/x")
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(
                f"{where}: expected a list, got {value!r}", hint="e.g. a,b or [a, b] in YAML"
            )
        item = args[0] if args else Any
        coerced = tuple(_coerce(v, item, where) for v in value)
        return value if isinstance(value, tuple) and coerced == value else coerced
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}", hint="true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}", hint="e.g. 3")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value if isinstance(value, float) else float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}", hint="e.g. 0.5 or 2e-5")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}", hint="quote it in YAML")
    if origin is typing.Literal:
        if value in args:
            return value
        choices = ", ".join(repr(a) for a in args)
        raise ConfigError(
            f"{where}: {value!r} is not one of {choices}", hint=f"use one of {choices}"
        )
    return value


def _check_out(out: Any, where: str) -> None:
    """An output path under a regular file (``--out notes.txt/model``) fails now, not after
    the work is done."""
    if not isinstance(out, Path):
        return
    for parent in out.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise ConfigError(
                    f"{where}: {out} is under {parent}, which is a file, not a folder",
                    hint="choose an output path inside a folder",
                )
            return


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def check(condition: bool, message: str, hint: str | None = None) -> None:
    """Validation helper for ``Options.validate``."""
    if not condition:
        raise ConfigError(message, hint=hint)


def read_yaml_file(path: str | Path, what: str = "options file") -> Any:
    """The parsed YAML of a user's file; a :class:`ConfigError` with a hint when it cannot be.

    Missing files, folders, text that is not UTF-8 (a latin-1 or binary file) and malformed
    YAML each fail with one line that names the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist", hint="check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a folder", hint="pass a YAML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start})",
            hint="save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read {what} {path}: {exc.strerror}", hint="check the path"
        ) from None
    if "\x00" in text:
        raise ConfigError(f"{what} {path} holds NUL bytes, not YAML text", hint="pass a YAML file")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "malformed"
        raise ConfigError(
            f"{what} {path} is not valid YAML{where}: {problem}",
            hint="check the indentation, colons and brackets there",
        ) from None


def read_options_file(path: str | Path) -> dict[str, Any]:
    """A stage's options from a YAML mapping (``--config``); an empty file gives no options."""
    loaded = read_yaml_file(path, "options file")
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"options file {path} holds a YAML {type(loaded).__name__}, not a mapping",
            hint="write one `name: value` line per option, e.g. `epochs: 3`",
        )
    return {str(k): v for k, v in loaded.items()}


_EXAMPLES = {
    int: "a whole number, e.g. 3",
    float: "a number, e.g. 0.5",
    bool: "true or false",
    str: "text",
    Path: "a path",
}


def _example(hint: Any) -> str:
    """What a value of an optional or union type may be, in words, for a hint."""
    kinds = []
    for arg in typing.get_args(hint) or (hint,):
        if arg is type(None):
            continue
        if typing.get_origin(arg) is tuple:
            item = (typing.get_args(arg) or (str,))[0]
            kinds.append("a comma-separated list, e.g. " + ("0,5" if item is int else "a,b"))
        else:
            kinds.append(_EXAMPLES.get(arg, _name(arg)))
    optional = type(None) in typing.get_args(hint)
    return "give " + " or ".join(kinds) + (", or leave it out" if optional else "")
