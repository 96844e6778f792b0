"""Atomic file writes and checksums: an artefact is either complete or absent, never half.

Output folders are also *owned*: :func:`output_kind` recognises a folder slimbert wrote by
one marker per kind (a JSON file inside it, see ``OUTPUT_KINDS``), :func:`claim_output`
refuses an ``--out`` that holds anything else (a file, a user's folder, another kind), and
:func:`atomic_dir` swaps a finished folder in without a moment with no output, deleting the
old one only once the new one is in place.

Report files written with ``--out`` (eval, index calibrate, invoke, export's
``<out>.export.json``, package's ``<stem>.sizes.json``) are owned the same way:
:func:`claim_report` lets a run replace only a report of its own kind that slimbert wrote
(recognised by the keys it always holds, ``REPORT_KINDS``); a file slimbert did not write, a
folder or another kind of report is refused, never replaced. Files written beside a report
(its ``.md`` table, a package's zip and template) are replaced only when that report is
slimbert's; :func:`write_report` checks and writes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from slimbert.errors import SlimbertError

log = logging.getLogger(__name__)

# The marker that says "slimbert wrote this folder, and it is a K": a JSON file inside the
# folder (file name, and the value of its "format" key; None: any JSON object with the keys
# listed). Most kinds already write such a file; sentence-transformers folders get
# MARKER_FILE from atomic_dir. Legacy: reports written before MARKER_FILE existed.
MARKER_FILE = "slimbert_output.json"
OUTPUT_KINDS: dict[str, tuple[str, str | None]] = {
    "classifier": ("slimbert.json", None),  # TorchClassifier's meta, written with every save
    "bundle": ("manifest.json", "slimbert-bundle/1"),
    "index": ("manifest.json", "slimbert-index/1"),
    "silver set": ("manifest.json", "slimbert-silver/1"),
    "augment folder": ("manifest.json", "slimbert-augment/1"),
    "sentence-transformer": (MARKER_FILE, "slimbert-sentence-transformer/1"),
    "cross-encoder": (MARKER_FILE, "slimbert-cross-encoder/1"),
}
_CLASSIFIER_KEYS = ("head", "label_names", "max_length")
# Reports: a JSON object written with --out, recognised by the keys every version of it holds.
REPORT_KINDS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "evaluation": lambda d: isinstance(d.get("models"), list) and ("rows" in d or "pairs" in d),
    "calibration": lambda d: all(k in d for k in ("threshold", "validation", "test", "bundle")),
    "invoke report": lambda d: all(k in d for k in ("package", "requests", "bad_request_status")),
    "export report": lambda d: d.get("stage") == "export" and "manifest" in d,
    "package report": lambda d: all(
        k in d for k in ("package", "target", "components", "package_bytes")
    ),
}
_LEGACY_REPORTS = {
    "sentence-transformer": ("sbert_report.json", "sbert-train"),
    "cross-encoder": ("cross_encoder_report.json", "cross-encoder"),
}


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    For writers that want a file name (``pyarrow.parquet.write_table``, ``save_file``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; artefacts should get the usual permissions (umask).
    tmp_path.chmod(0o666 & ~current_umask())
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(
    path: str | Path, mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; it replaces ``path`` only if the block succeeds."""
    with atomic_path(path) as tmp:
        kwargs: dict[str, Any] = {} if "b" in mode else {"encoding": encoding, "newline": ""}
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_temp_dir(target: Path) -> Path:
    """A temporary folder beside ``target`` (same file system, so renaming is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700 folders
    return tmp


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def output_kind(path: str | Path) -> str | None:
    """The kind of slimbert output ``path`` holds (a key of ``OUTPUT_KINDS``), or None."""
    path = Path(path)
    if not path.is_dir():
        return None
    for kind, (name, fmt) in OUTPUT_KINDS.items():
        data = _read_marker(path / name)
        if data is None:
            continue
        if fmt is None and all(key in data for key in _CLASSIFIER_KEYS):
            return kind
        if fmt is not None and data.get("format") == fmt:
            return kind
    for kind, (name, stage) in _LEGACY_REPORTS.items():
        data = _read_marker(path / name)
        if data is not None and data.get("stage") == stage:
            return kind
    return None


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def claim_output(out: str | Path, kind: str, *, replace: bool) -> None:
    """Refuse an ``--out`` a run of ``kind`` must not write to; return if it may.

    Allowed: a missing path, an empty folder, and (only with ``replace``) a folder holding a
    slimbert output of the same kind. Refused, whatever ``replace`` says: a file, a folder
    slimbert did not write, an output of another kind.
    """
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir() or out.is_symlink():
        what = "a symbolic link" if out.is_symlink() else "an existing file"
        raise SlimbertError(
            f"--out {out} is {what}; slimbert writes {_a(kind)} folder there and never "
            "replaces a file",
            hint="pass a new --out (a folder that does not exist yet, or an empty one)",
        )
    if _is_empty_dir(out):
        return
    found = output_kind(out)
    if found == kind:
        if replace:
            return
        raise SlimbertError(
            f"--out {out} already holds {_a(kind)} written by slimbert",
            hint="pass --overwrite to replace it (the old one stays until the new one is "
            "complete), or a new --out",
        )
    if found is not None:
        raise SlimbertError(
            f"--out {out} holds {_a(found)} written by slimbert, not {_a(kind)}; "
            "refusing to replace it",
            hint="pass a new --out (--overwrite only replaces an output of the same kind)",
        )
    first = sorted(p.name for p in out.iterdir())[0]
    raise SlimbertError(
        f"--out {out} is a folder slimbert did not write (it holds {first!r}); refusing to "
        "replace it",
        hint="pass a new --out, or an empty folder (--overwrite never replaces such a folder)",
    )


def report_kind(path: str | Path) -> str | None:
    """The kind of slimbert report the file ``path`` holds (a key of ``REPORT_KINDS``), or None."""
    path = Path(path)
    if not path.is_file() or path.is_symlink():
        return None
    data = _read_marker(path)
    if data is None:
        return None
    return next((kind for kind, holds in REPORT_KINDS.items() if holds(data)), None)


def claim_report(path: str | Path, kind: str, *, companions: Iterable[str | Path] = ()) -> None:
    """Refuse to write the report ``path`` of ``kind`` where that would replace a user's file.

    ``path`` may be missing or a ``kind`` report slimbert wrote (then it is replaced, as a
    rerun of the command always did). A file slimbert did not write, a report of another
    kind, a folder or a symbolic link is refused. ``companions`` are written beside the
    report (its Markdown table, a package's zip): each may exist only when ``path`` is
    slimbert's report, the one thing that says the set is ours.
    """
    path = Path(path)
    hint = "pass another --out, or move that away: slimbert replaces only files it wrote"
    if path.is_symlink() or path.is_dir():
        what = "a symbolic link" if path.is_symlink() else "a folder"
        raise SlimbertError(
            f"{path} is {what}; slimbert writes {_a(kind)} file there and never replaces one",
            hint=hint,
        )
    ours = False
    if path.exists():
        found = report_kind(path)
        if found is not None and found != kind:
            raise SlimbertError(
                f"{path} holds {_a(found)} written by slimbert, not {_a(kind)}; refusing to "
                "replace it",
                hint=hint,
            )
        if found is None:
            raise SlimbertError(
                f"{path} exists and is not {_a(kind)} written by slimbert; refusing to replace it",
                hint=hint,
            )
        ours = True
    for companion in map(Path, companions):
        if not companion.exists() and not companion.is_symlink():
            continue
        if companion.is_symlink() or not ours:
            why = "a symbolic link" if companion.is_symlink() else f"no {path.name} beside it"
            raise SlimbertError(
                f"{companion} exists and slimbert cannot tell that it wrote it ({why}); "
                "refusing to replace it",
                hint=hint,
            )


def write_report(path: str | Path, data: Any, kind: str, *, markdown: str | None = None) -> None:
    """Write the report ``path`` (and ``markdown`` as its ``.md`` table), each atomically;
    refused by :func:`claim_report` where it would replace a file slimbert did not write."""
    path = Path(path)
    if not REPORT_KINDS[kind](data):
        raise RuntimeError(f"{path}: the report lacks what marks {_a(kind)}")
    md = path.with_suffix(".md")
    claim_report(path, kind, companions=[md] if markdown is not None else [])
    write_json(path, data)
    if markdown is not None:
        with atomic_open(md) as fh:
            fh.write(markdown)


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2); False where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(
        at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), ctypes.c_uint(_RENAME_EXCHANGE)
    )
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False  # old kernel or a file system without RENAME_EXCHANGE
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(new: str | Path, target: str | Path) -> None:
    """Put the folder ``new`` at ``target``; an old ``target`` is deleted only afterwards.

    Where the kernel can swap two folders atomically (Linux renameat2) there is no moment
    without a ``target``; elsewhere the gap is two renames long and the old folder is
    renamed back if the second one fails. ``new`` and ``target`` must share a file system.
    """
    new, target = Path(new), Path(target)
    if not target.exists():
        new.rename(target)
        return
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # now the old output
        return
    old = target.with_name(f".{target.name}.old-{time.time_ns()}")
    target.rename(old)
    try:
        new.rename(target)
    except OSError:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(target: str | Path, kind: str | None = None) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``target`` (the old one is removed
    once the new one is in place).

    With ``kind`` (a key of ``OUTPUT_KINDS``), ``target`` must be missing, empty or an output
    of that kind (anything else is refused, never replaced), and the new folder must carry the
    kind's marker (written here for the kinds whose marker is ``MARKER_FILE``). A crash at any
    point leaves either the previous ``target`` or the new one, never a mix.
    """
    target = Path(target)
    if kind is not None:
        claim_output(target, kind, replace=True)
    tmp = make_temp_dir(target)
    try:
        yield tmp
        if kind is not None:
            name, fmt = OUTPUT_KINDS[kind]
            if name == MARKER_FILE:
                write_json(tmp / MARKER_FILE, {"format": fmt, "kind": kind})
            if output_kind(tmp) != kind:
                raise RuntimeError(f"{target}: the new folder lacks the {kind} marker {name}")
            claim_output(target, kind, replace=True)  # checked again: it may have changed
        replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, data: Any) -> None:
    with atomic_open(path) as fh:
        json.dump(data, fh, indent=2, sort_keys=False, ensure_ascii=False)
        fh.write("\n")


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def dir_size(path: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
