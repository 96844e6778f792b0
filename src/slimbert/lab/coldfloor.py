"""The stack floor of a cold start: the packaged zip with a handler that only imports.

A cold start of slimbert's function is the interpreter and the Lambda runtime client, the
imports of the serving stack the project prescribes (numpy, tokenizers, onnxruntime, the
standard modules the handler uses), then slimbert's own work: manifest, integrity check,
tokenizer, session, first request. ``slimbert bench lambda`` measures how far the second part
can still go by starting, beside every fresh start of the function, a fresh start of the
*floor*: the same zip, the same Python, the same runtime client and limits, with a handler
(:data:`FLOOR_HANDLER`) that imports what the real one imports before its first answer and
answers a fixed body. No implementation on this stack starts faster than its floor; the
report puts the two side by side ("above the floor" is what slimbert itself costs).
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

FLOOR_MODULE = "slimbert_stack_floor"
FLOOR_HANDLER = f"{FLOOR_MODULE}.lambda_handler"

# What the real handler imports before its first answer (slimbert.runtime.handler, bundle,
# session, phases): the third-party stack and the standard modules it adds to the
# interpreter's own. The body is what the bench's client accepts for one text.
FLOOR_SOURCE = '''"""slimbert bench lambda's stack floor: the stack imported, nothing loaded."""
import contextlib, json, logging, math, os, sys, threading, time  # noqa: E401
from collections.abc import Iterator, Sequence  # noqa: F401
from pathlib import Path  # noqa: F401
from typing import Any  # noqa: F401

import numpy  # noqa: F401
import onnxruntime  # noqa: F401
import tokenizers  # noqa: F401

_BODY = json.dumps({"predictions": [{}], "timing_ms": {"total": 0.0}})


def lambda_handler(event, context):
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": _BODY}
'''


def floor_zip(package: Path, dst: Path) -> Path:
    """A copy of the Lambda zip ``package`` at ``dst`` with the floor module added at its
    root (every entry kept as it is, modes included); returns ``dst``.

    The SAM template beside the zip is copied beside the copy: the function's environment
    (``OPENBLAS_NUM_THREADS`` above all: OpenBLAS starts one thread per CPU at numpy's
    import without it) is part of what the floor must share with the function.
    """
    package, dst = Path(package), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = dst.with_name(dst.name + ".partial")
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(partial, "w") as out:
        for info in src.infolist():
            if info.filename == f"{FLOOR_MODULE}.py":
                continue
            with src.open(info) as reader, out.open(info, "w") as writer:
                shutil.copyfileobj(reader, writer)
        entry = zipfile.ZipInfo(f"{FLOOR_MODULE}.py", date_time=(1980, 1, 1, 0, 0, 0))
        entry.external_attr = 0o644 << 16
        entry.compress_type = zipfile.ZIP_DEFLATED
        out.writestr(entry, FLOOR_SOURCE)
    partial.replace(dst)
    template = package.with_name(f"{package.stem}.template.yaml")
    if template.is_file():
        shutil.copyfile(template, dst.with_name(f"{dst.stem}.template.yaml"))
    return dst


__all__ = ["FLOOR_HANDLER", "FLOOR_MODULE", "FLOOR_SOURCE", "floor_zip"]
