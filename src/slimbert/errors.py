"""The errors slimbert raises for people: one line of what went wrong, and a hint."""

from __future__ import annotations


class SlimbertError(Exception):
    """An error caused by the user's input or environment, shown without a traceback."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class ConfigError(SlimbertError):
    """Invalid options: a wrong value, an unknown key, a malformed pipeline file."""


class DataError(SlimbertError):
    """A data file that cannot be read as asked; names the file, line and column."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message, hint)
        self.path = path
        self.line = line
        self.column = column


class ModelError(SlimbertError):
    """A model folder or bundle that is missing, incomplete or of the wrong kind."""


class MissingDependencyError(SlimbertError):
    """An optional dependency is not installed."""


def require(module: str, extra: str) -> object:
    """Import an optional module, or fail with the pip command that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{module} is not installed ({exc})",
            hint=f"pip install 'slimbert[{extra}]'",
        ) from exc
