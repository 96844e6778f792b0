"""``slimbert package``: turn a bundle into a deployable serverless function.

``aws-lambda`` writes one deterministic zip (the runtime wheels for Python 3.12 stripped to what
the function loads, the torch-free ``slimbert.runtime`` source and the bundle), a size report
per component checked against Lambda's limits, and an AWS SAM template. ``gcp-function`` writes
a source folder for Cloud Run functions (``main.py``, pinned ``requirements.txt``, the runtime
source and the bundle); Google installs the libraries at deploy time.

Wheels are fetched with ``pip download`` once into a cache and checked against the sha256 lock
files in ``slimbert/templates`` on every build, so a build is offline and reproducible after
the first one. For scanners, the zip keeps each wheel's ``.dist-info`` METADATA, RECORD and
licences, and a CycloneDX SBOM (``<stem>.cdx.json``) is written beside it; the GCP
``requirements.txt`` is its lock: the whole closure, each package pinned with its sha256.

``--out`` is a folder that may hold other things; a build writes only its own files there,
named ``<stem>.*`` (``<stem>/`` for gcp-function), and replaces them only when they are
slimbert's: the size report ``<stem>.sizes.json`` must be a package report slimbert wrote (it
vouches for the template, SBOM and Markdown table beside it), the zip must hold the slimbert
runtime, the gcp-function folder our ``main.py``. Anything else of those names is refused
before the build, never replaced; see :func:`claim_package_outputs`. Replacing is atomic: the
zip is renamed over the old one, the folder swapped in (``slimbert.io.replace_dir``).
"""

from __future__ import annotations

import dataclasses
import email
import email.message
import hashlib
import importlib.resources
import itertools
import logging
import os
import re
import shutil
import string
import subprocess
import sys
import tempfile
import uuid
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal

import slimbert
from slimbert.cache import default_root
from slimbert.config import Options, check
from slimbert.errors import SlimbertError
from slimbert.io import (
    atomic_open,
    atomic_path,
    claim_report,
    read_json,
    replace_dir,
    sha256_file,
    write_json,
    write_report,
)

log = logging.getLogger(__name__)

# The serving runtime, pinned. A cp312 manylinux wheel exists for x86_64 and aarch64 for each;
# their hashes live in templates/requirements-<arch>.lock (regenerate with ``update_lock``).
# Nothing else is shipped: importing onnxruntime and running an InferenceSession loads none of
# its declared dependencies (flatbuffers, packaging, protobuf are only used by its tools), and
# tokenizers never imports huggingface_hub unless ``Tokenizer.from_pretrained`` is called.
RUNTIME_PINS: dict[str, str] = {"numpy": "2.4.6", "onnxruntime": "1.32.0", "tokenizers": "0.23.3"}
# Cloud Run functions installs requirements.txt itself; the framework is pinned too so a
# redeploy months later serves with the same code.
FUNCTIONS_FRAMEWORK_PIN = "3.10.2"
SUPPORTED_PYTHONS = ("3.12",)
LAMBDA_HANDLER = "slimbert.runtime.handler.lambda_handler"
GCP_ENTRY_POINT = "predict"
# Names slimbert.runtime.handler reads or writes (importing it here could load a model).
MANIFEST_SHA256_ENV = "SLIMBERT_MANIFEST_SHA256"
METRIC_NAMESPACE = "slimbert"
SERVER_ERRORS_METRIC = "ServerErrors"
MIB = 1 << 20
_PIP_PLATFORM = {"x86_64": "x86_64", "arm64": "aarch64"}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold: builds compare equal
_SO = re.compile(r"\.so(\.[0-9.]+)?$")
# Bytecode for the python3.12 runtime. Lambda unpacks the zip into the read-only /var/task, so
# Python cannot cache what it compiles there: without these files every cold start compiles
# every module it imports (numpy alone is ~150 files), about 40% of the student's cold start.
BYTECODE_TAG = "cpython-312"
BYTECODE_INVALIDATION = "checked-hash"
TASK_ROOT = "/var/task"  # the file names recorded in the bytecode (Python fixes them at import)
# What marks a package slimbert wrote: the runtime in a Lambda zip, and the first line of a
# gcp-function folder's main.py.
_HANDLER_MEMBER = "slimbert/runtime/handler.py"
_GCP_MAIN_FIRST_LINE = '"""Cloud Run functions entry point written by `slimbert package`."""'

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


class WheelDownloadError(SlimbertError):
    """pip could not fetch a pinned wheel (no network, no registry, or a hash mismatch)."""


@dataclasses.dataclass(frozen=True)
class PackageOptions(Options):
    stage: ClassVar[str] = "package"

    bundle: Path = Path("runs/bundle")
    out: Path = Path("runs/package")
    target: Literal["aws-lambda", "gcp-function"] = "aws-lambda"
    arch: Literal["x86_64", "arm64"] = "x86_64"
    python: str = "3.12"
    name: str = "slimbert"
    memory_mb: int = 1024
    timeout_s: int = 30
    wheel_cache: Path | None = None
    max_zip_mb: float = 50.0
    max_unzipped_mb: float = 250.0
    index: Path | None = None  # a duplicate index (`slimbert index build`), shipped as index/
    bytecode: bool = True  # ship __pycache__/*.cpython-312.pyc (needs a Python 3.12 here)

    def validate(self) -> None:
        check(
            self.python in SUPPORTED_PYTHONS,
            f"python {self.python!r} is not supported",
            hint=f"the runtime wheels are locked for {', '.join(SUPPORTED_PYTHONS)}",
        )
        check(
            re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", self.name) is not None,
            f"name {self.name!r} must be 1-40 lower-case letters, digits or '-'",
        )
        check(128 <= self.memory_mb <= 10240, "memory_mb must be between 128 and 10240")
        check(1 <= self.timeout_s <= 900, "timeout_s must be between 1 and 900 seconds")
        check(self.max_zip_mb > 0 and self.max_unzipped_mb > 0, "size limits must be positive")
        check(
            self.target != "gcp-function" or self.arch == "x86_64",
            "gcp-function runs on x86_64 only",
            hint="leave arch at its default for --target gcp-function",
        )

    @property
    def stem(self) -> str:
        """File name stem of every output: ``<name>-<target>[-<arch>]``."""
        if self.target == "gcp-function":
            return f"{self.name}-{self.target}"
        return f"{self.name}-{self.target}-{self.arch}"


@dataclasses.dataclass(frozen=True)
class _Entry:
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
        assert self.wheel is not None and self.member is not None  # set by _wheel_entries
        with zipfile.ZipFile(self.wheel) as whl:
            return whl.read(self.member)


def default_wheel_cache() -> Path:
    """``$SLIMBERT_WHEEL_CACHE``, else ``~/.cache/slimbert/wheels``."""
    env = os.environ.get("SLIMBERT_WHEEL_CACHE")
    # Its own variable, not under $SLIMBERT_CACHE: tests point that at a temporary folder, and
    # the wheels (hundreds of MB, fetched once) must survive them.
    return Path(env).expanduser() if env else default_root() / "wheels"


def build_package(options: PackageOptions, *, code_root: Path | None = None) -> dict[str, Any]:
    """Build the package that ``options`` describe and return its size report.

    The report is also written as ``<stem>.sizes.json`` and ``.sizes.md`` beside the package.
    Over a size limit it is still written, the package is not, and :class:`SlimbertError`
    names the biggest component. ``code_root`` is the folder holding the ``slimbert`` package
    whose runtime source is shipped; it defaults to the installed package.
    """
    root = Path(code_root) if code_root is not None else Path(slimbert.__file__).parent.parent
    claim_package_outputs(options)  # before any work: a user's file there is never replaced
    code = _code_entries(root)
    model = _bundle_entries(Path(options.bundle))
    if options.index is not None:
        model += _index_entries(Path(options.index), Path(options.bundle))
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    if options.target == "gcp-function":
        return _build_gcp(options, code + model, out)
    return _build_lambda(options, code + model, out)


def package_outputs(options: PackageOptions) -> tuple[Path, list[Path]]:
    """The size report a build writes into ``options.out``, and the files it writes beside it
    (the zip or gcp-function folder first)."""
    out, stem = Path(options.out), options.stem
    if options.target == "gcp-function":
        beside = [out / stem]
    else:
        beside = [out / f"{stem}.zip", out / f"{stem}.template.yaml", out / f"{stem}.cdx.json"]
    return out / f"{stem}.sizes.json", [*beside, out / f"{stem}.sizes.md"]


def claim_package_outputs(options: PackageOptions) -> None:
    """Refuse a build that would replace anything slimbert did not write; return if it may.

    ``--out`` must be a folder (or missing). Its ``<stem>.*`` files may be replaced only when
    ``<stem>.sizes.json`` is a package report slimbert wrote (:func:`slimbert.io.claim_report`);
    on top of that the zip must be a zip holding the slimbert runtime, and the gcp-function
    folder a real folder whose ``main.py`` slimbert wrote.
    """
    out = Path(options.out)
    if out.exists() and not out.is_dir():
        raise SlimbertError(
            f"--out {out} is a file; slimbert package writes its files into a folder",
            hint="pass a folder (it may hold other files: only <name>-<target>* are written)",
        )
    report, beside = package_outputs(options)
    claim_report(report, "package report", companions=beside)
    package = beside[0]
    if not package.exists() and not package.is_symlink():
        return
    hint = "pass another --out, or move it away: slimbert replaces only packages it wrote"
    if options.target == "gcp-function":
        main = package / "main.py"
        try:
            first = main.read_text(encoding="utf-8").split("\n", 1)[0]
        except (OSError, UnicodeDecodeError):
            first = ""
        if package.is_symlink() or not package.is_dir() or first != _GCP_MAIN_FIRST_LINE:
            raise SlimbertError(
                f"{package} is not a gcp-function folder slimbert wrote (no main.py of ours); "
                "refusing to replace it",
                hint=hint,
            )
        return
    try:
        with zipfile.ZipFile(package) as zf:
            ours = _HANDLER_MEMBER in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        ours = False
    if not ours:
        raise SlimbertError(
            f"{package} is not a Lambda zip slimbert wrote (no {_HANDLER_MEMBER}); refusing "
            "to replace it",
            hint=hint,
        )


def _build_lambda(options: PackageOptions, own: list[_Entry], out: Path) -> dict[str, Any]:
    wheels = ensure_wheels(options.arch, options.wheel_cache)
    libraries, stripped = _wheel_entries(wheels)
    bytecode, compiled = _bytecode_entries(libraries + own) if options.bytecode else ([], None)
    entries = sorted(libraries + own + bytecode, key=lambda e: e.arcname)
    _reject_duplicates(entries)
    zip_path = out / f"{options.stem}.zip"
    # Fail before compressing (the slow part) when the files cannot fit unzipped anyway.
    unzipped = sum(_size(e) for e in entries)
    if unzipped > options.max_unzipped_mb * MIB:
        sizes = _components({e.arcname: (_size(e), 0) for e in entries}, entries)
        raise SlimbertError(
            f"the package would be {unzipped / MIB:.1f} MiB unzipped, over the "
            f"{options.max_unzipped_mb:g} MiB limit; biggest component: {_biggest(sizes, 0)}",
            hint="ship a smaller or int8 bundle, or raise max_unzipped_mb",
        )
    log.info("writing %s (%d files)", zip_path, len(entries))
    with atomic_path(zip_path) as tmp:
        sizes_by_name = _write_zip(tmp, entries)
        zip_bytes = tmp.stat().st_size
        report = _report(options, zip_path, entries, sizes_by_name, zip_bytes, stripped)
        report["bytecode"] = compiled
        report["sha256"] = sha256_file(tmp)
        _write_report(out, options, report)
        _check_limits(report)
    with atomic_open(out / f"{options.stem}.template.yaml") as fh:
        # The digest of the manifest bytes in the zip, not a second read of the folder's file.
        digest = _manifest_digest(own)
        fh.write(sam_template(options, zip_path.name, report["sha256"], manifest_sha256=digest))
    write_json(out / f"{options.stem}.cdx.json", sbom(options, wheels, own, report["sha256"]))
    return report


def _build_gcp(options: PackageOptions, own: list[_Entry], out: Path) -> dict[str, Any]:
    # The whole closure, each package pinned by version and sha256 (pip then installs in
    # hash-checking mode): checked against gcp_pins() first.
    read_gcp_lock()
    requirements = gcp_lock_path().read_text(encoding="utf-8")
    # The manifest's digest lives in main.py, outside the bundle it vouches for; a deploy may
    # still override it with --set-env-vars. The model loads in each worker at its first
    # request (never in gunicorn's master), so importing the handler here costs little.
    main = (
        f"{_GCP_MAIN_FIRST_LINE}\n\n"
        "import os\n\n"
        f'os.environ.setdefault("{MANIFEST_SHA256_ENV}", "{_manifest_digest(own)}")\n\n'
        "from slimbert.runtime.handler import gcp_handler  # noqa: E402\n\n\n"
        f"def {GCP_ENTRY_POINT}(request):  # noqa: ANN001, ANN201 - a flask.Request\n"
        "    return gcp_handler(request)\n"
    )
    generated = [
        _Entry("main.py", "code", "entry point", data=main.encode()),
        _Entry("requirements.txt", "code", "entry point", data=requirements.encode()),
        _Entry(".gcloudignore", "code", "entry point", data=b"__pycache__/\n*.pyc\n"),
    ]
    entries = sorted(own + generated, key=lambda e: e.arcname)
    folder = out / options.stem
    # Atomic for a folder: fill a sibling, then swap it in (the old one is deleted after).
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=out))
    try:
        sizes: dict[str, tuple[int, int]] = {}
        for entry in entries:
            data = entry.read()
            target = tmp / entry.arcname
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            # What the deploy upload (a zip of the folder) costs; level 9 like the Lambda zip.
            sizes[entry.arcname] = (len(data), len(zlib.compress(data, 9)) - 6)
        for path in [tmp, *tmp.rglob("*")]:  # mkdtemp makes 0700; the folder is published
            path.chmod(0o755 if path.is_dir() else 0o644)
        zipped = sum(z for _, z in sizes.values())
        report = _report(options, folder, entries, sizes, zipped, {})
        report["libraries_note"] = "installed by Cloud Build from requirements.txt at deploy"
        _write_report(out, options, report)
        _check_limits(report)
        claim_package_outputs(options)  # the folder is still ours (or absent) at the swap
        replace_dir(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


# -- sources: code, bundle, wheels ------------------------------------------------------------


def _code_entries(root: Path) -> list[_Entry]:
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
        _Entry(p.relative_to(root).as_posix(), "code", "slimbert", path=p) for p in sorted(files)
    ]


def _bundle_entries(bundle: Path) -> list[_Entry]:
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
    entries = [_Entry("bundle/manifest.json", "model", "bundle", data=raw)]
    for rel in sorted(files):
        entries.append(_Entry(f"bundle/{rel}", "model", "bundle", path=bundle / rel))
    listed = {bundle / rel for rel in files} | {manifest_path}
    extra = [p.name for p in bundle.rglob("*") if p.is_file() and p not in listed]
    if extra:
        log.warning("left out of the package (not in manifest.json): %s", ", ".join(extra))
    return entries


def _index_entries(index: Path, bundle: Path) -> list[_Entry]:
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
    return [_Entry(f"index/{n}", "model", "index", path=index / n) for n in names]


def _wheel_dist(wheel: Path) -> str:
    return wheel.name.split("-", 1)[0].lower()


def _stripped(member: str) -> bool:
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


def _wheel_entries(wheels: Iterable[Path]) -> tuple[list[_Entry], dict[str, dict[str, int]]]:
    entries: list[_Entry] = []
    stripped: dict[str, dict[str, int]] = {}
    for wheel in wheels:
        dist = _wheel_dist(wheel)
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
                    _Entry(
                        info.filename,
                        "library",
                        dist,
                        wheel=wheel,
                        member=info.filename,
                        wheel_size=info.file_size,
                    )
                )
    return entries, stripped


def _wheel_metadata(wheel: Path) -> email.message.Message:
    """The ``.dist-info/METADATA`` of ``wheel``, parsed (core metadata is an email header)."""
    with zipfile.ZipFile(wheel) as whl:
        member = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(whl.read(member))


def _sbom_licences(metadata: email.message.Message) -> list[dict[str, Any]]:
    expression = metadata.get("License-Expression")
    if expression:
        return [{"expression": str(expression)}]
    text = str(metadata.get("License") or "").strip()
    if text and len(text) <= 100 and "\n" not in text:  # a name, not a whole licence text
        return [{"license": {"name": text}}]
    prefix = "License :: OSI Approved :: "
    names = [c[len(prefix) :] for c in metadata.get_all("Classifier") or [] if c.startswith(prefix)]
    return [{"license": {"name": n}} for n in names]


def sbom(
    options: PackageOptions, wheels: list[Path], own: list[_Entry], zip_sha256: str
) -> dict[str, Any]:
    """A CycloneDX 1.5 SBOM of a Lambda zip: every vendored wheel, our code and the model.

    Each wheel is a ``library`` component named by its package URL (with the wheel's file
    name) and hashed by the wheel's sha256, the one its lock file pins, so a scanner can match
    it to the public release. Deterministic: the serial number derives from the zip's sha256.
    """
    app_ref = f"{options.stem}.zip"
    components: list[dict[str, Any]] = []
    for wheel in sorted(wheels, key=lambda w: w.name):
        metadata = _wheel_metadata(wheel)
        name, version = str(metadata["Name"]), str(metadata["Version"])
        purl = f"pkg:pypi/{name.lower().replace('_', '-')}@{version}?file_name={wheel.name}"
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": purl,
            "name": name,
            "version": version,
            "purl": purl,
            "hashes": [{"alg": "SHA-256", "content": sha256_file(wheel)}],
        }
        if metadata.get("Summary"):
            component["description"] = str(metadata["Summary"])
        licences = _sbom_licences(metadata)
        if licences:
            component["licenses"] = licences
        components.append(component)
    code = sorted((e for e in own if e.component == "code"), key=lambda e: e.arcname)
    components.append(
        {
            "type": "library",
            "bom-ref": "slimbert",
            "name": "slimbert",
            "version": slimbert.__version__,
            "description": "slimbert.runtime, the serving code (its source files)",
            "hashes": [{"alg": "SHA-256", "content": _entries_sha256(code)}],
        }
    )
    model = sorted((e for e in own if e.component == "model"), key=lambda e: e.arcname)
    if model:
        components.append(
            {
                "type": "machine-learning-model",
                "bom-ref": "bundle",
                "name": "bundle",
                "description": "the exported model bundle; manifest.json holds each file's sha256",
                "hashes": [{"alg": "SHA-256", "content": _entries_sha256(model)}],
                "properties": [{"name": "slimbert:files", "value": str(len(model))}],
            }
        )
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'sha256:' + zip_sha256)}",
        "version": 1,
        "metadata": {
            "tools": {
                "components": [
                    {"type": "application", "name": "slimbert", "version": slimbert.__version__}
                ]
            },
            "component": {
                "type": "application",
                "bom-ref": app_ref,
                "name": options.stem,
                "version": slimbert.__version__,
                "hashes": [{"alg": "SHA-256", "content": zip_sha256}],
                "properties": [
                    {"name": "aws:lambda:architecture", "value": options.arch},
                    {"name": "aws:lambda:runtime", "value": f"python{options.python}"},
                ],
            },
        },
        "components": components,
        "dependencies": [
            {"ref": app_ref, "dependsOn": [c["bom-ref"] for c in components]},
            *({"ref": c["bom-ref"], "dependsOn": []} for c in components),
        ],
    }


def _entries_sha256(entries: list[_Entry]) -> str:
    """One sha256 over several files: ``<sha256>  <arcname>`` lines, as sha256sum prints."""
    lines = [f"{hashlib.sha256(e.read()).hexdigest()}  {e.arcname}\n" for e in entries]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _bytecode_entries(entries: list[_Entry]) -> tuple[list[_Entry], dict[str, Any] | None]:
    """``__pycache__/<name>.cpython-312.pyc`` beside every ``.py`` of ``entries``, and how.

    Compiled by a Python 3.12 (the format changes with the minor version) with checked-hash
    invalidation: a pyc records its source's hash, not its mtime, so it stays valid however
    the zip is unpacked, and Python ignores it if the source beside it was changed. The output
    is the same bytes on every build. Without a Python 3.12 the zip ships source only (a
    warning, and ``bytecode: null`` in the size report).
    """
    from slimbert.deploy.local import find_python312

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
                compiled.append(_Entry(arcname, entry.component, entry.name, data=data))
    version = subprocess.run(
        [str(python), "-I", "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    facts = {"python": version, "invalidation": BYTECODE_INVALIDATION, "files": len(compiled)}
    return compiled, facts


def _size(entry: _Entry) -> int:
    if entry.data is not None:
        return len(entry.data)
    if entry.path is not None:
        return entry.path.stat().st_size
    return entry.wheel_size


def _reject_duplicates(entries: list[_Entry]) -> None:
    for a, b in itertools.pairwise(entries):
        if a.arcname == b.arcname:
            raise SlimbertError(f"two sources write {a.arcname} ({a.name} and {b.name})")


# -- the wheel cache and its lock files ------------------------------------------------------


def _templates() -> Path:
    return Path(str(importlib.resources.files("slimbert") / "templates"))


def lock_path(arch: str) -> Path:
    """The lock file shipped with slimbert for ``arch``."""
    return _templates() / f"requirements-{arch}.lock"


def _parse_lock(path: Path) -> dict[str, tuple[str, set[str]]]:
    """``{name: (version, {sha256, ...})}`` from a pip ``--require-hashes`` requirements file.

    Every line must be an exact ``name==version`` pin with at least one sha256, as pip's
    hash-checking mode demands of every requirement.
    """
    if not path.is_file():
        raise SlimbertError(f"no lock file {path}", hint="regenerate it with update_lock")
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    lock: dict[str, tuple[str, set[str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split()
        name, _, version = requirement.partition("==")
        hashes = {o.split("sha256:", 1)[1] for o in options if "sha256:" in o}
        if not (version and hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes)):
            raise SlimbertError(f"{path}: {requirement!r} is not an ==pin with sha256 hashes")
        lock[name.lower().replace("_", "-")] = (version, hashes)
    return lock


def read_lock(arch: str) -> dict[str, tuple[str, set[str]]]:
    """``{name: (version, {sha256, ...})}``: the locked runtime wheels of the Lambda zip."""
    path = lock_path(arch)
    lock = _parse_lock(path)
    if {n: v for n, (v, _) in lock.items()} != RUNTIME_PINS:
        raise SlimbertError(
            f"{path} does not match RUNTIME_PINS {RUNTIME_PINS}",
            hint="regenerate it with slimbert.deploy.package.update_lock",
        )
    return lock


def _pip_download(
    arch: str, dest: Path, args: list[str], *, deps: bool = False, python: Path | None = None
) -> None:
    platform = _PIP_PLATFORM[arch]
    command = [str(python or sys.executable), "-m", "pip", "download"]
    command += ["--disable-pip-version-check", "--only-binary=:all:", "--implementation", "cp"]
    command += [] if deps else ["--no-deps"]
    command += ["--python-version", SUPPORTED_PYTHONS[0], "--dest", str(dest)]
    for tag in ("manylinux_2_28", "manylinux_2_17", "manylinux2014"):
        command += ["--platform", f"{tag}_{platform}"]
    log.info("downloading runtime wheels for %s: %s", arch, " ".join(args))
    result = subprocess.run(command + args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise WheelDownloadError(
            f"pip could not download the {arch} runtime wheels: {' | '.join(tail)}",
            hint="check network access to PyPI, or point SLIMBERT_WHEEL_CACHE at a filled cache",
        )


def ensure_wheels(arch: str, wheel_cache: Path | None = None) -> list[Path]:
    """The pinned wheels for ``arch``, downloaded once and sha256-checked on every call."""
    lock = read_lock(arch)
    cache = Path(wheel_cache or default_wheel_cache()) / f"cp312-manylinux-{arch}"
    cache.mkdir(parents=True, exist_ok=True)

    def cached() -> tuple[list[Path], list[str]]:
        found, missing = [], []
        for name, (version, hashes) in sorted(lock.items()):
            candidates = sorted(cache.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
            good = [w for w in candidates if sha256_file(w) in hashes]
            for bad in set(candidates) - set(good):
                log.warning("%s does not match its locked sha256; downloading it again", bad)
                bad.unlink()
            if good:
                found.append(good[0])
            else:
                missing.append(name)
        return found, missing

    wheels, missing = cached()
    if missing:
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            # pip checks the hashes itself in --require-hashes mode; ours is the second check.
            requirements = Path(tmp) / "requirements.txt"
            requirements.write_text(
                "".join(
                    f"{n}=={lock[n][0]} "
                    + " ".join(f"--hash=sha256:{h}" for h in lock[n][1])
                    + "\n"
                    for n in missing
                )
            )
            _pip_download(arch, Path(tmp), ["--require-hashes", "-r", str(requirements)])
            for wheel in Path(tmp).glob("*.whl"):
                os.replace(wheel, cache / wheel.name)
        wheels, missing = cached()
        if missing:
            raise WheelDownloadError(f"no wheel matching the lock for {', '.join(missing)}")
    return wheels


def update_lock(arch: str, wheel_cache: Path | None = None) -> Path:
    """Maintainers: download ``RUNTIME_PINS`` for ``arch`` and rewrite its lock file."""
    cache = Path(wheel_cache or default_wheel_cache()) / f"cp312-manylinux-{arch}"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        _pip_download(arch, Path(tmp), [f"{n}=={v}" for n, v in sorted(RUNTIME_PINS.items())])
        lines = [
            f"# slimbert serving runtime: CPython {SUPPORTED_PYTHONS[0]}, manylinux {arch}.",
            "# Written by slimbert.deploy.package.update_lock; checked by `slimbert package`.",
            *_lock_lines(sorted(Path(tmp).glob("*.whl"))),
        ]
        for wheel in Path(tmp).glob("*.whl"):
            os.replace(wheel, cache / wheel.name)
    path = lock_path(arch)
    with atomic_open(path) as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def _lock_lines(wheels: list[Path]) -> list[str]:
    """``name==version --hash=sha256:...`` for each wheel, in pip's requirements syntax."""
    lines = []
    for wheel in sorted(wheels, key=lambda w: _wheel_dist(w)):
        name, version = _wheel_dist(wheel).replace("_", "-"), wheel.name.split("-")[1]
        lines += [f"{name}=={version} \\", f"    --hash=sha256:{sha256_file(wheel)}"]
        lines.append(f"    # {wheel.name}")
    return lines


def gcp_lock_path() -> Path:
    """The lock of the gcp-function folder: its whole closure, pinned and hashed."""
    return _templates() / "requirements-gcp-function.lock"


def gcp_pins() -> dict[str, str]:
    """What the gcp-function folder asks for: the runtime and the functions framework."""
    return {**RUNTIME_PINS, "functions-framework": FUNCTIONS_FRAMEWORK_PIN}


def read_gcp_lock() -> dict[str, tuple[str, set[str]]]:
    """The gcp-function lock, checked to pin :func:`gcp_pins` at their versions."""
    path = gcp_lock_path()
    lock = _parse_lock(path)
    wrong = {n: v for n, v in gcp_pins().items() if lock.get(n, ("", set()))[0] != v}
    if wrong:
        raise SlimbertError(
            f"{path} does not pin {wrong}",
            hint="regenerate it with slimbert.deploy.package.update_gcp_lock",
        )
    return lock


def update_gcp_lock(python: Path | None = None) -> Path:
    """Maintainers: resolve :func:`gcp_pins` with every dependency and rewrite the GCP lock.

    pip resolves for CPython 3.12 on manylinux x86_64 (what Cloud Run functions builds on),
    preferably run by a Python 3.12 so that environment markers are judged as there; each
    package is pinned to the one wheel pip chose, by its sha256. The folder's requirements.txt
    is this lock, so the deploy installs exactly it with ``pip install --require-hashes``.
    """
    from slimbert.deploy.local import find_python312

    if python is None:
        try:
            python = find_python312()
        except SlimbertError:
            log.warning("no Python 3.12 here: markers are judged for %s", sys.version_info[:2])
    pins = [f"{n}=={v}" for n, v in sorted(gcp_pins().items())]
    with tempfile.TemporaryDirectory(prefix="slimbert-gcp-lock-") as tmp:
        _pip_download("x86_64", Path(tmp), pins, deps=True, python=python)
        lines = [
            f"# slimbert gcp-function: CPython {SUPPORTED_PYTHONS[0]}, manylinux x86_64; the "
            "whole closure of",
            f"# {' '.join(pins)}.",
            "# Written by slimbert.deploy.package.update_gcp_lock; shipped as requirements.txt,"
            " which",
            "# `pip install --require-hashes -r requirements.txt` installs exactly.",
            *_lock_lines(sorted(Path(tmp).glob("*.whl"))),
        ]
    path = gcp_lock_path()
    with atomic_open(path) as fh:
        fh.write("\n".join(lines) + "\n")
    return path


# -- the zip, the report, the template -------------------------------------------------------


def _zip_info(arcname: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE)
    info.create_system = 3  # Unix, so that unzip and Lambda honour the permission bits
    if arcname.endswith("/"):
        info.external_attr = (0o40755 << 16) | 0x10
    else:
        mode = 0o755 if _SO.search(arcname) else 0o644
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _write_zip(path: Path, entries: list[_Entry]) -> dict[str, tuple[int, int]]:
    """Write ``entries`` (sorted) with their parent folders; return {arcname: (size, zipped)}."""
    folders = sorted({p for e in entries for p in _parents(e.arcname)})
    names = sorted([*folders, *(e.arcname for e in entries)])
    by_name = {e.arcname: e for e in entries}
    open_wheels: dict[Path, zipfile.ZipFile] = {}
    try:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for name in names:
                entry = by_name.get(name)
                if entry is None:
                    zf.writestr(_zip_info(name), b"")
                    continue
                if entry.wheel is not None and entry.member is not None:
                    whl = open_wheels.get(entry.wheel)
                    if whl is None:
                        whl = open_wheels[entry.wheel] = zipfile.ZipFile(entry.wheel)
                    data = whl.read(entry.member)
                else:
                    data = entry.read()
                zf.writestr(_zip_info(name), data, compresslevel=9)
            return {i.filename: (i.file_size, i.compress_size) for i in zf.infolist()}
    finally:
        for whl in open_wheels.values():
            whl.close()


def _parents(arcname: str) -> list[str]:
    parts = arcname.split("/")[:-1]
    return ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]


def _components(sizes: dict[str, tuple[int, int]], entries: list[_Entry]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in entries:
        row = rows.setdefault(
            (entry.component, entry.name),
            {
                "component": entry.component,
                "name": entry.name,
                "files": 0,
                "unzipped_bytes": 0,
                "zipped_bytes": 0,
            },
        )
        size, zipped = sizes[entry.arcname]
        row["files"] += 1
        row["unzipped_bytes"] += size
        row["zipped_bytes"] += zipped
    order = {"library": 0, "model": 1, "code": 2}
    return sorted(rows.values(), key=lambda r: (order[r["component"]], r["name"]))


def _biggest(components: list[dict[str, Any]], zipped: int) -> str:
    key = "zipped_bytes" if zipped else "unzipped_bytes"
    top = max(components, key=lambda r: r[key])
    return f"{top['name']} ({top['component']}, {top[key] / MIB:.1f} MiB)"


def _report(
    options: PackageOptions,
    package: Path,
    entries: list[_Entry],
    sizes: dict[str, tuple[int, int]],
    package_bytes: int,
    stripped: dict[str, dict[str, int]],
) -> dict[str, Any]:
    components = _components(sizes, entries)
    total = {k: sum(r[k] for r in components) for k in ("files", "unzipped_bytes", "zipped_bytes")}
    return {
        "package": str(package),
        "target": options.target,
        "arch": options.arch,
        "python": options.python,
        "pins": dict(RUNTIME_PINS),
        "components": components,
        "total": total,
        # Local headers, folder entries and the central directory: zip = total + overhead.
        "package_bytes": package_bytes,
        "overhead_bytes": package_bytes - total["zipped_bytes"],
        "limits": {
            "max_zip_bytes": int(options.max_zip_mb * MIB),
            "max_unzipped_bytes": int(options.max_unzipped_mb * MIB),
            "zip_ok": package_bytes <= options.max_zip_mb * MIB,
            "unzipped_ok": total["unzipped_bytes"] <= options.max_unzipped_mb * MIB,
        },
        "stripped": stripped,
    }


def _check_limits(report: dict[str, Any]) -> None:
    limits = report["limits"]
    if not limits["zip_ok"]:
        raise SlimbertError(
            f"{report['package']} is {report['package_bytes'] / MIB:.1f} MiB zipped, over the "
            f"{limits['max_zip_bytes'] / MIB:g} MiB limit; biggest component: "
            f"{_biggest(report['components'], 1)}",
            hint="deploy through S3 (no zipped limit) and raise max_zip_mb, or ship int8",
        )
    if not limits["unzipped_ok"]:
        raise SlimbertError(
            f"{report['package']} is {report['total']['unzipped_bytes'] / MIB:.1f} MiB "
            f"unzipped, over the {limits['max_unzipped_bytes'] / MIB:g} MiB limit; "
            f"biggest component: {_biggest(report['components'], 0)}",
            hint="ship a smaller or int8 bundle, or raise max_unzipped_mb",
        )


def size_table(report: dict[str, Any]) -> str:
    """The size report as a Markdown table (MiB)."""

    def mib(n: int) -> str:
        return f"{n / MIB:.2f}"

    lines = [
        f"# {Path(report['package']).name}: {report['target']} {report['arch']} "
        f"Python {report['python']}",
        "",
        "| component | kind | files | unzipped MiB | zipped MiB |",
        "|---|---|---:|---:|---:|",
    ]
    for row in report["components"]:
        lines.append(
            f"| {row['name']} | {row['component']} | {row['files']} | "
            f"{mib(row['unzipped_bytes'])} | {mib(row['zipped_bytes'])} |"
        )
    total, limits = report["total"], report["limits"]
    lines += [
        f"| zip overhead | | | | {mib(report['overhead_bytes'])} |",
        f"| **total** | | {total['files']} | {mib(total['unzipped_bytes'])} | "
        f"{mib(report['package_bytes'])} |",
        f"| limit | | | {mib(limits['max_unzipped_bytes'])} | {mib(limits['max_zip_bytes'])} |",
        "",
    ]
    compiled = report.get("bytecode")
    if compiled:
        lines += [
            f"Bytecode: {compiled['files']} `.pyc` files compiled by CPython {compiled['python']} "
            f"({compiled['invalidation']}), counted in their libraries and the code.",
            "",
        ]
    return "\n".join(lines)


def _write_report(out: Path, options: PackageOptions, report: dict[str, Any]) -> None:
    """The size report, the first file of a build written into ``out``: the outputs are
    claimed again here (they may have changed since the build began)."""
    claim_package_outputs(options)
    report_path = package_outputs(options)[0]
    write_report(report_path, report, "package report", markdown=size_table(report))


def lambda_threads(memory_mb: int) -> int:
    """onnxruntime threads for a Lambda size: it gets one vCPU per 1769 MB, at most six."""
    return max(1, min(6, memory_mb // 1769))


def _manifest_digest(entries: list[_Entry]) -> str:
    """The sha256 of the ``bundle/manifest.json`` that goes into the package."""
    (manifest,) = [e for e in entries if e.arcname == "bundle/manifest.json"]
    return hashlib.sha256(manifest.read()).hexdigest()


def sam_template(
    options: PackageOptions,
    zip_name: str,
    sha256: str = "n/a",
    *,
    manifest_sha256: str | None = None,
) -> str:
    """The AWS SAM template (``templates/sam-template.yaml``) filled in for ``options``.

    The function, its URL with IAM auth, a log group with retention, a role that may only
    write to that log group, and alarms on Errors, Throttles and the handler's ServerErrors
    metric. ``manifest_sha256`` (default: the digest of ``options.bundle``'s manifest, which
    ``_bundle_entries`` checked) becomes ``SLIMBERT_MANIFEST_SHA256``, checked at init.
    """
    from slimbert.runtime.bundle import manifest_digest

    if manifest_sha256 is None:
        manifest_sha256 = manifest_digest(Path(options.bundle))
    text = (_templates() / "sam-template.yaml").read_text(encoding="utf-8")
    return string.Template(text).substitute(
        manifest_sha256=manifest_sha256,
        metric_namespace=METRIC_NAMESPACE,
        server_errors_metric=SERVER_ERRORS_METRIC,
        zip_name=zip_name,
        template_name=Path(zip_name).stem + ".template.yaml",
        name=options.name,
        arch=options.arch,
        version=slimbert.__version__,
        sha256=sha256,
        handler=LAMBDA_HANDLER,
        python=options.python,
        memory_mb=options.memory_mb,
        timeout_s=options.timeout_s,
        threads=lambda_threads(options.memory_mb),
    )


__all__ = [
    "RUNTIME_PINS",
    "PackageOptions",
    "WheelDownloadError",
    "build_package",
    "ensure_wheels",
    "read_gcp_lock",
    "sam_template",
    "sbom",
    "size_table",
    "update_gcp_lock",
    "update_lock",
]
