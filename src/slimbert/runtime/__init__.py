"""The serving runtime: load an exported bundle and score texts without torch.

This package is copied into the serverless zip with only numpy, onnxruntime and tokenizers
beside it. It imports the standard library, those three packages and ``slimbert.errors``;
nothing else from slimbert, so a test keeps torch and transformers out of ``sys.modules``.

The names below are loaded on first use (PEP 562), not with the package: the function's
handler starts its cold-start clock on its first line, and importing the package must not
have imported numpy and tokenizers before it (docs/serving.md, "Cold start").
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing here would count before the clock
if TYPE_CHECKING:
    from typing import Any

    from slimbert.runtime.bundle import Bundle, BundleError, load_bundle
    from slimbert.runtime.session import available_cpus, session_options

__all__ = ["Bundle", "BundleError", "available_cpus", "load_bundle", "session_options"]

_HOMES = {
    "Bundle": "slimbert.runtime.bundle",
    "BundleError": "slimbert.runtime.bundle",
    "load_bundle": "slimbert.runtime.bundle",
    "available_cpus": "slimbert.runtime.session",
    "session_options": "slimbert.runtime.session",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
