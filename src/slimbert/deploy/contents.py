"""What goes into a package: each file, where it comes from, and what it counts toward.

An :class:`Entry` is one file of the function: the torch-free runtime source, the bundle (read
through the runtime's own checks, as the function will read it), a duplicate index, a member
of a runtime wheel that survived stripping, or bytecode compiled for Python 3.12. Each belongs
to a component (``library``, ``model`` or ``code``) that the size report adds up. Wheels are
stripped to what the function loads, keeping the metadata and licences scanners read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
import re
import subprocess
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from slimbert.deploy.platforms import TASK_ROOT
from slimbert.deploy.toolchain import find_python312
from slimbert.deploy.wheels import wheel_dist
from slimbert.errors import SlimbertError
from slimbert.io import read_json

log = logging.getLogger(__name__)

# Bytecode for the python3.12 runtime. Lambda unpacks the zip into the read-only /var/task, so
# Python cannot cache what it compiles there: without these files every cold start compiles
# every module it imports (numpy alone is ~150 files), about 40% of the student's cold start.
BYTECODE_TAG = "cpython-312"
BYTECODE_INVALIDATION = "checked-hash"

# What the function never loads. Paths are relative to the site-packages root of the zip.
_STRIP_PARTS = {"tests", "__pycache__", "include"}
_KEPT_METADATA = {"METADATA", "RECORD", "WHEEL"}  # of each wheel's .dist-info, for scanners
_STRIP_SUFFIXES = (".pyi", ".pxd", ".h", ".hpp", ".c", ".a", ".pc", "py.typed")
_STRIP_PREFIXES = (
    "numpy/f2py/",
    "numpy/distutils/",
    "numpy/testing/",
    "numpy/_pyinstaller/",
    "numpy/_core/lib/",  # static npymath and pkg-config files for C extension builders
    "numpy/random/lib/",
    "numpy/random/_examples/",
    "numpy/conftest.py",
    # C extensions that only numpy's own test suite imports (numpy's PyInstaller hook says so).
    "numpy/_core/_multiarray_tests.",
    "numpy/_core/_umath_tests.",
    "numpy/_core/_rational_tests.",
    "numpy/_core/_struct_ufunc_tests.",
    "numpy/_core/_operand_flag_tests.",
    "numpy/_core/_simd.",
    "onnxruntime/training/",
    "onnxruntime/tools/",
    "onnxruntime/transformers/",
    "onnxruntime/quantization/",
    "onnxruntime/datasets/",
    "onnxruntime/backend/",  # the ONNX backend-test API; needs the onnx package anyway
    # The C API library (35 MB). The Python module links onnxruntime statically and never
    # dlopens it for the CPU provider (checked: a session runs with it removed).
    "onnxruntime/capi/libonnxruntime.so",
)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One file of the package: where it comes from and which component it counts toward."""

    arcname: str
    component: Literal["library", "model", "code"]
    name: str
    path: Path | None = None  # a file on disk ...
    wheel: Path | None = None  # ... or a member of a wheel
    member: str | None = None
    data: bytes | None = None  # ... or generated content
    wheel_size: int = 0  # a wheel member's size, known without reading it

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is not None:
            return self.path.read_bytes()
        assert self.wheel is not None and self.member is not None  # set by wheel_entries
        with zipfile.ZipFile(self.wheel) as whl:
            return whl.read(self.member)

    def size(self) -> int:
        """Its size unzipped, without reading a wheel member."""
        if self.data is not None:
            return len(self.data)
        if self.path is not None:
            return self.path.stat().st_size
        return self.wheel_size


def code_entries(root: Path) -> list[Entry]:
    """The serving code under ``root``: ``slimbert/__init__.py``, ``errors.py`` and ``runtime/``."""
    package = root / "slimbert"
    runtime = package / "runtime"
    if not (runtime / "handler.py").is_file():
        raise SlimbertError(
            f"{runtime / 'handler.py'} is missing: there is no serving runtime to package",
            hint="install a slimbert version that has slimbert.runtime",
        )
    files = [package / "__init__.py", package / "errors.py"]
    files += [p for p in runtime.rglob("*.py") if "__pycache__" not in p.parts]
    return [
        Entry(p.relative_to(root).as_posix(), "code", "slimbert", path=p) for p in sorted(files)
    ]


def bundle_entries(bundle: Path) -> list[Entry]:
    """The bundle as ``bundle/``, checked by the runtime's own reader as the function will.

    The manifest is data from outside: the runtime's checks refuse a malformed one with a
    one-line error and a file name that leaves the folder (``../secret.txt``, an absolute
    path, a symlink out), so nothing but the bundle's own files can reach the package. The
    manifest's bytes are read once: the zip carries exactly what was checked, and its sha256
    (``manifest_digest``) is what the template records.
    """
    from slimbert.runtime.bundle import read_manifest, verify_files

    manifest_path = bundle / "manifest.json"
    if not bundle.is_dir():
        what = "is a file, not a bundle folder" if bundle.exists() else "does not exist"
        raise SlimbertError(
            f"bundle {bundle} {what}",
            hint="run `slimbert export` first, or pass --bundle the folder it wrote",
        )
    if not manifest_path.is_file():
        raise SlimbertError(
            f"{bundle} is not a bundle: manifest.json is missing",
            hint="run `slimbert export` first, or pass --bundle",
        )
    raw = manifest_path.read_bytes()
    # The digest pins the bytes read above: a manifest changed meanwhile fails the read.
    manifest = read_manifest(bundle, sha256=hashlib.sha256(raw).hexdigest())
    verify_files(bundle, manifest)
    files: dict[str, Any] = manifest["files"]
    entries = [Entry("bundle/manifest.json", "model", "bundle", data=raw)]
    for rel in sorted(files):
        entries.append(Entry(f"bundle/{rel}", "model", "bundle", path=bundle / rel))
    listed = {bundle / rel for rel in files} | {manifest_path}
    extra = [p.name for p in bundle.rglob("*") if p.is_file() and p not in listed]
    if extra:
        log.warning("left out of the package (not in manifest.json): %s", ", ".join(extra))
    return entries


def index_entries(index: Path, bundle: Path) -> list[Entry]:
    """The index folder as ``index/``: checked now, as the function will check it at init."""
    from slimbert.runtime.index import read_index_manifest, verify_index_files

    manifest = read_index_manifest(index)
    verify_index_files(index, manifest)
    bundle_manifest = read_json(bundle / "manifest.json")
    model = (bundle_manifest.get("files") or {}).get(bundle_manifest.get("model_file")) or {}
    built = (manifest.get("bundle") or {}).get("model_sha256")
    if built and built != model.get("sha256"):
        raise SlimbertError(
            f"the index {index} was built with another model than the bundle {bundle}",
            hint="rebuild the index with this bundle (`slimbert index build --bundle`)",
        )
    if manifest["backend"] == "usearch":
        # usearch + numkong add ~12 MiB zipped (docs/index.md); numpy is already there.
        log.warning("usearch is not in the package: the function searches %s exactly", index)
    names = ["manifest.json", *sorted(manifest["files"])]
    return [Entry(f"index/{n}", "model", "index", path=index / n) for n in names]


def _stripped(member: str) -> bool:
    """Whether a wheel member is left out of the package (see the rules above)."""
    parts = member.split("/")
    if member.endswith("/"):
        return True
    if parts[0].endswith(".dist-info"):
        # Nothing reads package metadata at run time, but scanners do: METADATA (name, version,
        # licence), RECORD (the wheel's files and their hashes, as the wheel held them: stripped
        # files stay listed), WHEEL (its tags), the licence texts (shipping a library means
        # shipping its licence) and any SBOM the wheel carries (PEP 770, e.g. tokenizers' Rust
        # crates) stay, so that `importlib.metadata` or a scanner over the unzipped function
        # finds every vendored distribution. Entry points and top_level.txt go.
        kept = parts[-1] in _KEPT_METADATA or "licenses" in parts or "sboms" in parts
        return not (kept or re.match(r"(LICEN[CS]E|COPYING|NOTICE)", parts[-1]))
    if _STRIP_PARTS.intersection(parts[:-1]):  # after the licences, some of which sit in include/
        return True
    return member.endswith(_STRIP_SUFFIXES) or member.startswith(_STRIP_PREFIXES)


def wheel_entries(wheels: Iterable[Path]) -> tuple[list[Entry], dict[str, dict[str, int]]]:
    """The members of ``wheels`` the function keeps, and per distribution what was stripped."""
    entries: list[Entry] = []
    stripped: dict[str, dict[str, int]] = {}
    for wheel in wheels:
        dist = wheel_dist(wheel)
        gone = stripped.setdefault(dist, {"files": 0, "bytes": 0})
        with zipfile.ZipFile(wheel) as whl:
            for info in whl.infolist():
                if info.is_dir():
                    continue
                if _stripped(info.filename):
                    gone["files"] += 1
                    gone["bytes"] += info.file_size
                    continue
                entries.append(
                    Entry(
                        info.filename,
                        "library",
                        dist,
                        wheel=wheel,
                        member=info.filename,
                        wheel_size=info.file_size,
                    )
                )
    return entries, stripped


def bytecode_entries(entries: list[Entry]) -> tuple[list[Entry], dict[str, Any] | None]:
    """``__pycache__/<name>.cpython-312.pyc`` beside every ``.py`` of ``entries``, and how.

    Compiled by a Python 3.12 (the format changes with the minor version) with checked-hash
    invalidation: a pyc records its source's hash, not its mtime, so it stays valid however
    the zip is unpacked, and Python ignores it if the source beside it was changed. The output
    is the same bytes on every build. Without a Python 3.12 the zip ships source only (a
    warning, and ``bytecode: null`` in the size report).
    """
    sources = [e for e in entries if e.arcname.endswith(".py")]
    try:
        python = find_python312()
    except SlimbertError as exc:
        log.warning("shipping no bytecode (%s): every cold start compiles its imports", exc)
        return [], None
    with tempfile.TemporaryDirectory(prefix="slimbert-pyc-") as tmp:
        root = Path(tmp)
        for entry in sources:
            target = root / entry.arcname
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(entry.read())
        command = [str(python), "-I", "-m", "compileall", "-q"]
        command += ["--invalidation-mode", BYTECODE_INVALIDATION, "-s", tmp, "-p", TASK_ROOT, tmp]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:  # a file that does not compile is shipped as source only
            log.warning("compileall: %s", " | ".join(done.stdout.strip().splitlines()[-3:]))
        compiled = []
        for entry in sources:
            folder, _, stem = entry.arcname.rpartition("/")
            arcname = "/".join(
                filter(None, [folder, "__pycache__", f"{stem[:-3]}.{BYTECODE_TAG}.pyc"])
            )
            if (root / arcname).is_file():
                data = (root / arcname).read_bytes()
                compiled.append(Entry(arcname, entry.component, entry.name, data=data))
    version = subprocess.run(
        [str(python), "-I", "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    facts = {"python": version, "invalidation": BYTECODE_INVALIDATION, "files": len(compiled)}
    return compiled, facts


def entries_sha256(entries: list[Entry]) -> str:
    """One sha256 over several files: ``<sha256>  <arcname>`` lines, as sha256sum prints."""
    lines = [f"{hashlib.sha256(e.read()).hexdigest()}  {e.arcname}\n" for e in entries]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def packaged_manifest_digest(entries: list[Entry]) -> str:
    """The sha256 of the ``bundle/manifest.json`` that goes into the package."""
    (manifest,) = [e for e in entries if e.arcname == "bundle/manifest.json"]
    return hashlib.sha256(manifest.read()).hexdigest()


def reject_duplicates(entries: list[Entry]) -> None:
    """Refuse two entries (sorted by arcname) that would write the same file."""
    for a, b in itertools.pairwise(entries):
        if a.arcname == b.arcname:
            raise SlimbertError(f"two sources write {a.arcname} ({a.name} and {b.name})")


__all__ = [
    "BYTECODE_INVALIDATION",
    "BYTECODE_TAG",
    "Entry",
    "bundle_entries",
    "bytecode_entries",
    "code_entries",
    "entries_sha256",
    "index_entries",
    "packaged_manifest_digest",
    "reject_duplicates",
    "wheel_entries",
]
