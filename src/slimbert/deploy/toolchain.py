"""The tools a packaged function runs with on this machine, fetched once and cached.

A Python 3.12 interpreter (the wheels and bytecode in a package are cp312), the virtual
environments the local emulators run in (``awslambdaric`` for Lambda, a gcp-function folder's
pinned requirements for functions-framework), the AWS Lambda Runtime Interface Emulator binary,
and qemu-user with a Graviton2 view of the machine for a function built for another
architecture (see :func:`emulator`). Tools and environments live under ``~/.cache/slimbert``
(``$SLIMBERT_CACHE``) and the downloaded wheels in :func:`default_wheel_cache`; after the first
run everything here works offline.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from slimbert.cache import cache_root, default_root
from slimbert.deploy.platforms import LINUX_MACHINE, MANYLINUX_TAGS
from slimbert.errors import SlimbertError
from slimbert.io import sha256_file

log = logging.getLogger(__name__)

# aws-sam-cli is fetched only for the emulator binary inside it; the hash pins that binary.
# aws-sam-cli is fetched only for the emulator binary inside it; the hash pins that binary.
SAM_CLI_PIN = "1.170.0"
SAM_CLI_WHEEL_SHA256 = "24ebaf5ecba38dc1758089968cb89ab61e124b84e92a344fc7a2771a47f4d0bf"
AWSLAMBDARIC_PIN = "4.2.2"


def host_arch() -> str:
    """This machine as a Lambda architecture name: ``x86_64`` or ``arm64``."""
    machine = platform.machine().lower()
    return "arm64" if machine in ("aarch64", "arm64") else machine


def default_wheel_cache() -> Path:
    """``$SLIMBERT_WHEEL_CACHE``, else ``~/.cache/slimbert/wheels``."""
    env = os.environ.get("SLIMBERT_WHEEL_CACHE")
    # Its own variable, not under $SLIMBERT_CACHE: tests point that at a temporary folder, and
    # the wheels (hundreds of MB, fetched once) must survive them.
    return Path(env).expanduser() if env else default_root() / "wheels"


# -- Python 3.12 and the emulator for another architecture ----------------------------------


def _python_version(python: Path, emulator: list[str] | None = None) -> tuple[int, int] | None:
    code = "import sys; print(*sys.version_info[:2])"
    try:
        out = subprocess.run(
            [*(emulator or []), str(python), "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
        return int(out[0]), int(out[1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None  # a pyenv shim for an uninstalled version fails here too


# The C library root that Debian's cross packages install for each Lambda architecture
# (libc6-arm64-cross, libstdc++6-arm64-cross, libgcc-s1-arm64-cross); qemu-user names the
# architecture as Linux does (platforms.LINUX_MACHINE).
_CROSS_SYSROOT = {"arm64": "/usr/aarch64-linux-gnu", "x86_64": "/usr/x86_64-linux-gnu"}
# The core Lambda's arm64 functions run on (Graviton2). Measured with the demo's int8 student:
# under qemu 7.2's default "max" core (SVE2, i8mm, ...) onnxruntime's arm64 kernels answered
# other labels than on x86_64 (probabilities up to 0.70 apart); as a Neoverse N1 they agree.
_QEMU_CPU = {"arm64": "neoverse-n1"}
# Under emulation every step is several times slower: the function's timeout is stretched so
# that a cold start (imports, bundle load) is not cut short. Timings there mean nothing.
EMULATED_TIMEOUT_FACTOR = 20


def emulator(arch: str) -> list[str]:
    """The command prefix that runs a Linux ``arch`` binary here: nothing on an ``arch`` machine.

    On another machine, qemu-user (``qemu-aarch64-static``) with ``-L`` pointing at a root
    holding that architecture's C and C++ libraries (``$SLIMBERT_SYSROOT_<ARCH>``, else the
    Debian cross packages' folder). No binfmt_misc registration is needed: every foreign binary
    is started through qemu explicitly, the emulator's child (the runtime) included.
    """
    if arch == host_arch():
        return []
    name = LINUX_MACHINE.get(arch)
    if name is None:
        raise SlimbertError(f"no emulator is known for {arch!r}")
    qemu = shutil.which(f"qemu-{name}-static") or shutil.which(f"qemu-{name}")
    if qemu is None:
        raise SlimbertError(
            f"a function built for {arch} needs qemu-user on this {host_arch()} machine",
            hint="apt-get install qemu-user-static",
        )
    variable = f"SLIMBERT_SYSROOT_{arch.upper()}"
    sysroot = Path(os.environ.get(variable) or _CROSS_SYSROOT[arch])
    deb = {"arm64": "arm64", "x86_64": "amd64"}[arch]  # Debian's names
    if not list(sysroot.glob("lib*/ld-linux-*.so*")):
        raise SlimbertError(
            f"no {arch} C library under {sysroot} for qemu to load the {arch} binaries with",
            hint=f"apt-get install libc6-{deb}-cross libstdc++6-{deb}-cross "
            f"libgcc-s1-{deb}-cross, or set {variable} to an {arch} root",
        )
    cpu = ["-cpu", _QEMU_CPU[arch]] if arch in _QEMU_CPU else []
    return [qemu, *cpu, "-L", str(_emulator_root(arch, sysroot))]


# What /proc/cpuinfo says on an AWS Graviton2 (Neoverse N1) for each processor. qemu 7.2 shows
# an emulated arm64 process this machine's x86 /proc/cpuinfo, and onnxruntime's cpuinfo
# library then dereferences NULL while importing (checked: SIGSEGV right after reading
# /sys/devices/system/cpu). qemu looks every absolute path up under its -L root first, so
# a proc/cpuinfo there is what the function reads.
_GRAVITON2_CPUINFO = """processor\t: {i}
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm \
lrcpc dcpop asimddp ssbs
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1

"""


def _emulator_root(arch: str, sysroot: Path) -> Path:
    """``sysroot`` seen through a cached folder of links to it, plus an arm64 proc/cpuinfo."""
    if arch != "arm64":
        return sysroot
    digest = hashlib.sha256(str(sysroot.resolve()).encode()).hexdigest()[:12]
    root = cache_root() / "qemu-root" / f"{arch}-{digest}"
    cpuinfo = root / "proc" / "cpuinfo"
    count = os.cpu_count() or 1
    text = "".join(_GRAVITON2_CPUINFO.format(i=i) for i in range(count))
    if cpuinfo.is_file() and cpuinfo.read_text(encoding="utf-8") == text:
        return root
    with _locked(root.with_name(root.name + ".lock")):
        cpuinfo.parent.mkdir(parents=True, exist_ok=True)
        for child in sysroot.iterdir():
            link = root / child.name
            if child.name != "proc" and not link.is_symlink():
                link.symlink_to(child.resolve())
        partial = cpuinfo.with_name("cpuinfo.part")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, cpuinfo)
    return root


def _foreign_python312(arch: str) -> Path:
    variable = f"SLIMBERT_PYTHON312_{arch.upper()}"
    env = os.environ.get(variable)
    if not env:
        # Checked 2026-12 for arm64: Debian ships python3.11 (bookworm) and 3.13+ (trixie, sid),
        # no 3.12; PyPI and npm carry no CPython interpreter (portable builds download theirs
        # from elsewhere at install time). The zip's wheels and bytecode are cp312: no other
        # minor version can load them.
        raise SlimbertError(
            f"no {arch} Python 3.12 to run the {arch} function under emulation",
            hint=f"set {variable} to a python3.12 built for {arch} (a relocatable build such "
            "as python-build-standalone's); no package registry reachable here carries one",
        )
    if _python_version(Path(env), emulator(arch)) != (3, 12):
        raise SlimbertError(f"{variable}={env} is not a working {arch} Python 3.12")
    return Path(env)


def find_python312(arch: str | None = None) -> Path:
    """A Python 3.12 interpreter: ``$SLIMBERT_PYTHON312``, ``python3.12`` on PATH, or pyenv.

    For another architecture than this machine's (``arch``), ``$SLIMBERT_PYTHON312_<ARCH>``:
    an interpreter built for it, run through :func:`emulator`.
    """
    if arch is not None and arch != host_arch():
        return _foreign_python312(arch)
    env = os.environ.get("SLIMBERT_PYTHON312")
    if env:
        if _python_version(Path(env)) != (3, 12):
            raise SlimbertError(f"SLIMBERT_PYTHON312={env} is not a working Python 3.12")
        return Path(env)
    candidates: list[Path] = []
    on_path = shutil.which("python3.12")
    if on_path:
        candidates.append(Path(on_path))

    def version_key(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parents[1].name))

    pyenv = Path.home() / ".pyenv" / "versions"
    candidates += sorted(pyenv.glob("3.12*/bin/python3.12"), key=version_key, reverse=True)
    for candidate in candidates:
        if _python_version(candidate) == (3, 12):
            return candidate
    raise SlimbertError(
        "Python 3.12 is needed to run the packaged function (its wheels are cp312)",
        hint="install it (e.g. `pyenv install 3.12`) or set SLIMBERT_PYTHON312=/path/to/python3.12",
    )


# -- cached environments and tools -----------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock file, so two processes never build the same cached tool at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise SlimbertError(
            f"{what} failed: {tail}", hint="check network access to PyPI for the first run"
        )


def _venv(kind: str, python: Path, requirements: list[str], arch: str | None = None) -> Path:
    """A cached virtual environment holding ``requirements``; returns its interpreter.

    For a foreign ``arch`` the interpreter runs under :func:`emulator`. Its venv is made
    without pip (ensurepip would start the foreign interpreter directly, which only
    binfmt_misc could do), and this machine's pip installs that architecture's wheels into it.
    """
    key = json.dumps([str(python.resolve()), requirements])
    root = cache_root() / "venvs" / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    ready = root / ".slimbert-ready"
    interpreter = root / "bin" / "python"
    if ready.is_file():
        return interpreter
    with _locked(root.with_name(root.name + ".lock")):
        if ready.is_file():
            return interpreter
        shutil.rmtree(root, ignore_errors=True)
        log.info("creating %s (once): %s", root, " ".join(requirements))
        run = emulator(arch) if arch else []
        venv = [*run, str(python), "-m", "venv", *(["--without-pip"] if run else []), str(root)]
        _run(venv, f"creating the {kind} environment")
        pip = [str(interpreter), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        if run:
            pip = [*_pip(), "install", "--quiet", *_foreign_pip_target(interpreter, run, arch)]
        _run([*pip, "--only-binary=:all:", *requirements], f"installing {kind} requirements")
        ready.write_text(key, encoding="utf-8")
    return interpreter


def _foreign_pip_target(interpreter: Path, run: list[str], arch: str | None) -> list[str]:
    """pip options that install ``arch`` wheels for ``interpreter`` into its site-packages."""
    code = "import sys, sysconfig; print(*sys.version_info[:2], sysconfig.get_path('purelib'))"
    done = subprocess.run(
        [*run, str(interpreter), "-c", code], capture_output=True, text=True, check=False
    )
    try:
        major, minor, purelib = done.stdout.split()
    except ValueError:
        raise SlimbertError(f"{interpreter} did not start under {run[0]}: {done.stderr}") from None
    machine = LINUX_MACHINE[arch or host_arch()]
    options = ["--target", purelib, "--implementation", "cp", "--python-version", major + minor]
    for tag in MANYLINUX_TAGS:
        options += ["--platform", f"{tag}_{machine}"]
    return options


def lambda_python(python: Path | None = None, arch: str | None = None) -> Path:
    """Python 3.12 with only ``awslambdaric`` installed, as in the Lambda base image.

    For another ``arch`` than this machine's, the interpreter is that architecture's (from
    :func:`find_python312`, unless ``python`` is given) and runs under :func:`emulator`.
    """
    arch = arch or host_arch()
    kind = "lambda-py312" if arch == host_arch() else f"lambda-py312-{arch}"
    python = python or find_python312(arch)
    foreign = arch if arch != host_arch() else None
    return _venv(kind, python, [f"awslambdaric=={AWSLAMBDARIC_PIN}"], foreign)


def gcp_python(requirements: Path, python: Path | None = None) -> Path:
    """Python 3.12 with a gcp-function folder's requirements, installed as the deploy does.

    The file pins the whole closure with sha256 hashes, so pip runs in hash-checking mode
    (``--require-hashes``): a package missing from it, or a wheel whose hash differs, fails.
    """
    digest = sha256_file(requirements)
    copy = cache_root() / "requirements" / f"gcp-{digest[:16]}.txt"  # a stable venv key
    if not copy.is_file():
        copy.parent.mkdir(parents=True, exist_ok=True)
        partial = copy.with_name(f"{copy.name}.{os.getpid()}.part")
        shutil.copyfile(requirements, partial)
        os.replace(partial, copy)
    return _venv("gcp-py312", python or find_python312(), ["--require-hashes", "-r", str(copy)])


def rie_binary(arch: str = "x86_64") -> Path:
    """The Lambda Runtime Interface Emulator for ``arch``, extracted once from aws-sam-cli."""
    target = cache_root() / "rie" / SAM_CLI_PIN / f"aws-lambda-rie-{arch}"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    member = f"samcli/local/rapid/aws-lambda-rie-{arch}"
    tools = default_wheel_cache() / "tools"
    tools.mkdir(parents=True, exist_ok=True)
    with _locked(target.with_name(target.name + ".lock")):
        wheels = [
            w
            for w in tools.glob(f"aws_sam_cli-{SAM_CLI_PIN}-*.whl")
            if sha256_file(w) == SAM_CLI_WHEEL_SHA256
        ]
        if not wheels:
            with tempfile.TemporaryDirectory(dir=tools) as tmp:
                pinned = Path(tmp) / "requirements.txt"
                pinned.write_text(
                    f"aws-sam-cli=={SAM_CLI_PIN} --hash=sha256:{SAM_CLI_WHEEL_SHA256}\n"
                )
                _run(
                    [
                        *_pip(),
                        "download",
                        "--no-deps",
                        "--only-binary=:all:",
                        "--require-hashes",
                        "-r",
                        str(pinned),
                        "--dest",
                        tmp,
                    ],
                    f"downloading aws-sam-cli {SAM_CLI_PIN} for the Lambda emulator",
                )
                for wheel in Path(tmp).glob("*.whl"):
                    wheels.append(Path(shutil.move(wheel, tools / wheel.name)))
        with zipfile.ZipFile(wheels[0]) as whl:
            if member not in whl.namelist():
                raise SlimbertError(f"{wheels[0].name} has no {member}")
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            partial.write_bytes(whl.read(member))
            partial.chmod(0o755)
            os.replace(partial, target)
    return target


def _pip() -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check"]
