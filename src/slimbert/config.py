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
            raise ConfigError(f"stage {cls.stage!r}: {exc}") from exc

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
        raise ConfigError(f"{where}: {value!r} is not a valid {_name(hint)}")
    if hint is Path:
        if isinstance(value, str | Path):
            return value if isinstance(value, Path) else Path(value)
        raise ConfigError(f"{where}: expected a path, got {value!r}")
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        coerced = tuple(_coerce(v, item, where) for v in value)
        return value if isinstance(value, tuple) and coerced == value else coerced
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value if isinstance(value, float) else float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        choices = ", ".join(repr(a) for a in args)
        raise ConfigError(f"{where}: {value!r} is not one of {choices}")
    return value


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def check(condition: bool, message: str, hint: str | None = None) -> None:
    """Validation helper for ``Options.validate``."""
    if not condition:
        raise ConfigError(message, hint=hint)
