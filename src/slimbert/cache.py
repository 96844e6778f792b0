"""Where slimbert keeps what it can rebuild: prepared datasets, tools, wheels, teacher targets.

One home for the folder: ``$SLIMBERT_CACHE``, else ``~/.cache/slimbert``. Everything under it
is slimbert's own and safe to delete (it is rebuilt on demand).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SLIMBERT_CACHE"


def default_root() -> Path:
    """``~/.cache/slimbert``: the cache when ``$SLIMBERT_CACHE`` is not set."""
    return Path.home() / ".cache" / "slimbert"


def cache_root() -> Path:
    """``$SLIMBERT_CACHE``, else ``~/.cache/slimbert``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else default_root()
