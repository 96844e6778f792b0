"""``slimbert package``: turn a bundle into a deployable serverless function.

``aws-lambda`` writes one deterministic zip (the runtime wheels for Python 3.12 stripped to what
the function loads, the torch-free ``slimbert.runtime`` source and the bundle), a size report
per component checked against Lambda's limits, and an AWS SAM template. ``gcp-function`` writes
a source folder for Cloud Run functions (``main.py``, pinned ``requirements.txt``, the runtime
source and the bundle); Google installs the libraries at deploy time.

Wheels are fetched with ``pip download`` once into a cache and checked against the sha256 lock
files in ``slimbert/templates`` on every build, so a build is offline and reproducible after
the first one (``slimbert.deploy.wheels``). For scanners, the zip keeps each wheel's
``.dist-info`` METADATA, RECORD and licences, and a CycloneDX SBOM (``<stem>.cdx.json``,
``slimbert.deploy.sbom``) is written beside it; the GCP ``requirements.txt`` is its lock: the
whole closure, each package pinned with its sha256. What goes into a package is gathered in
``slimbert.deploy.contents``, the zip written and weighed in ``slimbert.deploy.archive``;
this module is the stage: options, outputs, the two builds and the SAM template.

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
import logging
import re
import shutil
import string
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, ClassVar, Literal

import slimbert
from slimbert.config import Options, check
from slimbert.deploy.archive import (
    MIB,
    biggest,
    check_limits,
    components,
    size_table,
    write_zip,
)
from slimbert.deploy.contents import (
    Entry,
    bundle_entries,
    bytecode_entries,
    code_entries,
    index_entries,
    packaged_manifest_digest,
    reject_duplicates,
    wheel_entries,
)
from slimbert.deploy.platforms import (
    GCP_ENTRY_POINT,
    HANDLER_MEMBER,
    LAMBDA_HANDLER,
    LAMBDA_MEMORY_MB,
    LAMBDA_TIMEOUT_S,
    LAMBDA_UNZIPPED_LIMIT_MIB,
    LAMBDA_ZIP_LIMIT_MIB,
    SUPPORTED_PYTHONS,
    lambda_threads,
    templates_dir,
)
from slimbert.deploy.sbom import sbom
from slimbert.deploy.wheels import (
    RUNTIME_PINS,
    WheelDownloadError,
    ensure_wheels,
    gcp_lock_path,
    read_gcp_lock,
    update_gcp_lock,
    update_lock,
)
from slimbert.errors import SlimbertError
from slimbert.io import (
    atomic_open,
    atomic_path,
    claim_report,
    replace_dir,
    sha256_file,
    write_json,
    write_report,
)
from slimbert.runtime.request import MANIFEST_SHA256_ENV, METRIC_NAMESPACE, SERVER_ERRORS_METRIC

log = logging.getLogger(__name__)

# Names slimbert.runtime.handler reads or writes (importing it here could load a model).
# What marks a gcp-function folder slimbert wrote: the first line of its main.py (a Lambda
# zip is marked by the runtime it holds, platforms.HANDLER_MEMBER).
_GCP_MAIN_FIRST_LINE = '"""Cloud Run functions entry point written by `slimbert package`."""'


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
    max_zip_mb: float = float(LAMBDA_ZIP_LIMIT_MIB)
    max_unzipped_mb: float = float(LAMBDA_UNZIPPED_LIMIT_MIB)
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
        (low_mb, high_mb), (low_s, high_s) = LAMBDA_MEMORY_MB, LAMBDA_TIMEOUT_S
        check(
            low_mb <= self.memory_mb <= high_mb,
            f"memory_mb must be between {low_mb} and {high_mb}",
        )
        check(
            low_s <= self.timeout_s <= high_s,
            f"timeout_s must be between {low_s} and {high_s} seconds",
        )
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


def build_package(options: PackageOptions, *, code_root: Path | None = None) -> dict[str, Any]:
    """Build the package that ``options`` describe and return its size report.

    The report is also written as ``<stem>.sizes.json`` and ``.sizes.md`` beside the package.
    Over a size limit it is still written, the package is not, and :class:`SlimbertError`
    names the biggest component. ``code_root`` is the folder holding the ``slimbert`` package
    whose runtime source is shipped; it defaults to the installed package.
    """
    root = Path(code_root) if code_root is not None else Path(slimbert.__file__).parent.parent
    claim_package_outputs(options)  # before any work: a user's file there is never replaced
    code = code_entries(root)
    model = bundle_entries(Path(options.bundle))
    if options.index is not None:
        model += index_entries(Path(options.index), Path(options.bundle))
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
            ours = HANDLER_MEMBER in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        ours = False
    if not ours:
        raise SlimbertError(
            f"{package} is not a Lambda zip slimbert wrote (no {HANDLER_MEMBER}); refusing "
            "to replace it",
            hint=hint,
        )


def _build_lambda(options: PackageOptions, own: list[Entry], out: Path) -> dict[str, Any]:
    wheels = ensure_wheels(options.arch, options.wheel_cache)
    libraries, stripped = wheel_entries(wheels)
    bytecode, compiled = bytecode_entries(libraries + own) if options.bytecode else ([], None)
    entries = sorted(libraries + own + bytecode, key=lambda e: e.arcname)
    reject_duplicates(entries)
    zip_path = out / f"{options.stem}.zip"
    # Fail before compressing (the slow part) when the files cannot fit unzipped anyway.
    unzipped = sum(e.size() for e in entries)
    if unzipped > options.max_unzipped_mb * MIB:
        sizes = components({e.arcname: (e.size(), 0) for e in entries}, entries)
        raise SlimbertError(
            f"the package would be {unzipped / MIB:.1f} MiB unzipped, over the "
            f"{options.max_unzipped_mb:g} MiB limit; biggest component: {biggest(sizes, 0)}",
            hint="ship a smaller or int8 bundle, or raise max_unzipped_mb",
        )
    log.info("writing %s (%d files)", zip_path, len(entries))
    with atomic_path(zip_path) as tmp:
        sizes_by_name = write_zip(tmp, entries)
        zip_bytes = tmp.stat().st_size
        report = _report(options, zip_path, entries, sizes_by_name, zip_bytes, stripped)
        report["bytecode"] = compiled
        report["sha256"] = sha256_file(tmp)
        _write_report(out, options, report)
        check_limits(report)
    with atomic_open(out / f"{options.stem}.template.yaml") as fh:
        # The digest of the manifest bytes in the zip, not a second read of the folder's file.
        digest = packaged_manifest_digest(own)
        fh.write(sam_template(options, zip_path.name, report["sha256"], manifest_sha256=digest))
    write_json(out / f"{options.stem}.cdx.json", sbom(options, wheels, own, report["sha256"]))
    return report


def _build_gcp(options: PackageOptions, own: list[Entry], out: Path) -> dict[str, Any]:
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
        f'os.environ.setdefault("{MANIFEST_SHA256_ENV}", "{packaged_manifest_digest(own)}")\n\n'
        "from slimbert.runtime.handler import gcp_handler  # noqa: E402\n\n\n"
        f"def {GCP_ENTRY_POINT}(request):  # noqa: ANN001, ANN201 - a flask.Request\n"
        "    return gcp_handler(request)\n"
    )
    generated = [
        Entry("main.py", "code", "entry point", data=main.encode()),
        Entry("requirements.txt", "code", "entry point", data=requirements.encode()),
        Entry(".gcloudignore", "code", "entry point", data=b"__pycache__/\n*.pyc\n"),
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
        check_limits(report)
        claim_package_outputs(options)  # the folder is still ours (or absent) at the swap
        replace_dir(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _report(
    options: PackageOptions,
    package: Path,
    entries: list[Entry],
    sizes: dict[str, tuple[int, int]],
    package_bytes: int,
    stripped: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """The size report: each component, the total, the zip's overhead, the limits checked."""
    rows = components(sizes, entries)
    total = {k: sum(r[k] for r in rows) for k in ("files", "unzipped_bytes", "zipped_bytes")}
    return {
        "package": str(package),
        "target": options.target,
        "arch": options.arch,
        "python": options.python,
        "pins": dict(RUNTIME_PINS),
        "components": rows,
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


def _write_report(out: Path, options: PackageOptions, report: dict[str, Any]) -> None:
    """The size report, the first file of a build written into ``out``: the outputs are
    claimed again here (they may have changed since the build began)."""
    claim_package_outputs(options)
    report_path = package_outputs(options)[0]
    write_report(report_path, report, "package report", markdown=size_table(report))


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
    ``bundle_entries`` checked) becomes ``SLIMBERT_MANIFEST_SHA256``, checked at init.
    """
    from slimbert.runtime.bundle import manifest_digest

    if manifest_sha256 is None:
        manifest_sha256 = manifest_digest(Path(options.bundle))
    text = (templates_dir() / "sam-template.yaml").read_text(encoding="utf-8")
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


# The stage's public names; the lock functions, the SBOM and the size table live in wheels,
# sbom and archive and stay importable from here, where they were first (docs/commands.md).
__all__ = [
    "RUNTIME_PINS",
    "PackageOptions",
    "WheelDownloadError",
    "build_package",
    "claim_package_outputs",
    "ensure_wheels",
    "package_outputs",
    "read_gcp_lock",
    "sam_template",
    "sbom",
    "size_table",
    "update_gcp_lock",
    "update_lock",
]
