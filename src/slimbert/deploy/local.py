"""Run a packaged function on this machine the way its platform runs it, without Docker.

``LocalLambda`` unzips a package from ``slimbert package`` into a clean folder and serves it
with the AWS Lambda Runtime Interface Emulator (the binary AWS ships inside the aws-sam-cli
wheel) in front of ``awslambdaric`` (the runtime interface client of the Lambda Python base
image) on a Python 3.12 interpreter, over HTTP on 127.0.0.1. The emulator starts the runtime
lazily, so the first invoke is a cold start: process start, imports, bundle load, answer.
A zip for the other architecture (arm64 on x86_64) runs under qemu-user: the arm64 emulator
binary and an arm64 Python 3.12 (``$SLIMBERT_PYTHON312_ARM64``) are each started through
``qemu-aarch64-static`` as a Graviton2 core (see :func:`emulator`); its answers count, its
timings do not.

``LocalGcp`` serves a ``gcp-function`` folder with ``functions-framework`` in a Python 3.12
virtual environment holding the folder's pinned requirements, as Cloud Run functions does.

Tools and environments are fetched once into ``~/.cache/slimbert`` (``$SLIMBERT_CACHE``) and
reused offline afterwards. Used by the tests, ``make demo`` and the serving benchmark.
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
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from slimbert.cache import cache_root
from slimbert.deploy.package import GCP_ENTRY_POINT, LAMBDA_HANDLER, default_wheel_cache
from slimbert.errors import SlimbertError
from slimbert.io import sha256_file

log = logging.getLogger(__name__)

# aws-sam-cli is fetched only for the emulator binary inside it; the hash pins that binary.
SAM_CLI_PIN = "1.170.0"
SAM_CLI_WHEEL_SHA256 = "24ebaf5ecba38dc1758089968cb89ab61e124b84e92a344fc7a2771a47f4d0bf"
AWSLAMBDARIC_PIN = "4.2.2"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
START_TIMEOUT_S = 60.0


def host_arch() -> str:
    """This machine as a Lambda architecture name: ``x86_64`` or ``arm64``."""
    machine = platform.machine().lower()
    return "arm64" if machine in ("aarch64", "arm64") else machine


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- Python 3.12 and the cached tools ---------------------------------------------------------


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


# qemu-user's name for each Lambda architecture, and the C library root that Debian's cross
# packages install for it (libc6-arm64-cross, libstdc++6-arm64-cross, libgcc-s1-arm64-cross).
_QEMU_ARCH = {"arm64": "aarch64", "x86_64": "x86_64"}
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
    name = _QEMU_ARCH.get(arch)
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
    machine = _QEMU_ARCH[arch or host_arch()]
    options = ["--target", purelib, "--implementation", "cp", "--python-version", major + minor]
    for tag in ("manylinux_2_28", "manylinux_2_17", "manylinux2014"):
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


def function_url_event(body: Any, *, method: str = "POST") -> dict[str, Any]:
    """A Lambda function URL (payload 2.0) event carrying ``body`` (JSON-encoded unless str)."""
    text = body if isinstance(body, str) else json.dumps(body)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": method, "path": "/", "sourceIp": "127.0.0.1"}},
        "body": text,
        "isBase64Encoded": False,
    }


# -- the running function ---------------------------------------------------------------------


class _LocalFunction:
    """A child process serving HTTP on 127.0.0.1, in its own process group."""

    def __init__(self, *, port: int | None, env: Mapping[str, str] | None) -> None:
        self.port = port
        self.extra_env = dict(env or {})
        self.log_path: Path | None = None
        self.started_at: float | None = None
        self.cold_start_s: float | None = None  # process start -> first answer
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _spawn(self, command: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> float:
        if self._process is not None:
            raise SlimbertError("the function is already running")
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        started = time.perf_counter()
        self._process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends the whole tree
        )
        self.started_at, self.cold_start_s = started, None
        assert self.port is not None
        deadline = started + START_TIMEOUT_S
        while time.perf_counter() < deadline:
            if self._process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise SlimbertError(f"the function exited at start: {tail}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return time.perf_counter() - started
            time.sleep(0.02)
        self.stop()
        raise SlimbertError(f"the function did not listen on port {self.port} within 60 s")

    def _post(self, url: str, data: bytes, timeout: float) -> tuple[int, dict[str, str], bytes]:
        if self._process is None or self._process.poll() is not None:
            raise SlimbertError(f"the function is not running: {self.log_tail()}")
        request = urllib.request.Request(
            url, data=data, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, headers, body = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:  # a 4xx/5xx still carries the answer
            status, headers, body = exc.code, dict(exc.headers), exc.read()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise SlimbertError(f"invoke failed ({exc}): {self.log_tail()}") from exc
        if self.cold_start_s is None and self.started_at is not None:
            self.cold_start_s = time.perf_counter() - self.started_at
        return status, headers, body

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return "(no log)"
        text = self.log_path.read_text(encoding="utf-8", errors="replace").strip()
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def start(self) -> float:
        raise NotImplementedError

    def __enter__(self) -> Self:
        if self._process is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _zip_arch(package_zip: Path) -> str | None:
    with zipfile.ZipFile(package_zip) as zf:
        for name in zf.namelist():
            if name.endswith("-aarch64-linux-gnu.so"):
                return "arm64"
            if name.endswith("-x86_64-linux-gnu.so"):
                return "x86_64"
    return None


def _template_settings(package_zip: Path) -> dict[str, Any]:
    """MemorySize, Timeout and environment from the SAM template written beside the zip.

    Values are what a deploy with the template's defaults would give: a ``{"Ref": P}`` to a
    template parameter becomes ``P``'s ``Default``; a value that only a deploy can resolve (a
    Ref without a default, another intrinsic function) is left out, and logged.
    """
    template = package_zip.with_name(package_zip.stem + ".template.yaml")
    if not template.is_file():
        return {}
    import yaml

    try:
        doc = yaml.safe_load(template.read_text(encoding="utf-8"))
        props = doc["Resources"]["Function"]["Properties"]
    except (yaml.YAMLError, UnicodeDecodeError, KeyError, TypeError):
        return {}
    parameters = doc.get("Parameters") or {}
    variables = (props.get("Environment") or {}).get("Variables") or {}
    env: dict[str, str] = {}
    for key, value in variables.items():
        resolved = _template_value(value, parameters)
        if resolved is None:
            log.info("%s: %s=%r is resolved at deploy only; left out", template, key, value)
        else:
            env[str(key)] = resolved
    memory, timeout = (_template_value(props.get(k), parameters) for k in ("MemorySize", "Timeout"))
    return {
        "memory_mb": int(memory) if memory and memory.isdigit() else None,
        "timeout_s": int(timeout) if timeout and timeout.isdigit() else None,
        "env": env,
    }


def _template_value(value: Any, parameters: Any) -> str | None:
    """A template value as the string Lambda would see; None when only a deploy knows it."""
    if isinstance(value, dict):
        if set(value) != {"Ref"}:
            return None  # Fn::Sub, Fn::GetAtt, ...: nothing to evaluate them with here
        parameter = parameters.get(value["Ref"]) if isinstance(parameters, dict) else None
        if not isinstance(parameter, dict) or "Default" not in parameter:
            return None
        value = parameter["Default"]
    if value is None or isinstance(value, list | dict):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"  # as CloudFormation writes a YAML boolean
    return str(value)


class LocalLambda(_LocalFunction):
    """A packaged Lambda zip served by the real emulator and runtime client on 127.0.0.1."""

    def __init__(
        self,
        package_zip: Path,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        workdir: Path | None = None,
        memory_mb: int | None = None,
        timeout_s: int | None = None,
        python: Path | None = None,
        arch: str | None = None,
    ) -> None:
        super().__init__(port=port, env=env)
        self.package_zip = Path(package_zip)
        self.arch = arch  # checked against the zip's; None: whatever it was built for
        self.emulated = False  # set by start(): True when it runs under qemu
        self.workdir = Path(workdir) if workdir is not None else None
        settings = _template_settings(self.package_zip)
        self.memory_mb = memory_mb or settings.get("memory_mb") or 1024
        self.timeout_s = timeout_s or settings.get("timeout_s") or 30
        self.template_env: dict[str, str] = settings.get("env", {})
        self.python = python
        self._own_workdir: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{INVOKE_PATH}"

    def start(self) -> float:
        """Unzip into a clean ``<workdir>/task`` and start the emulator; returns seconds."""
        arch = _zip_arch(self.package_zip) or host_arch()
        if self.arch is not None and self.arch != arch:
            raise SlimbertError(
                f"{self.package_zip.name} is built for {arch}, not {self.arch}",
                hint=f"package it with --arch {self.arch}, or leave --arch out",
            )
        try:
            prefix = emulator(arch)  # [] on a machine of the zip's architecture
            python = lambda_python(self.python, arch)
        except SlimbertError as exc:
            raise SlimbertError(
                f"{self.package_zip.name} is built for {arch}; this machine is {host_arch()}, "
                f"so it runs under emulation, and: {exc.message}",
                hint=exc.hint or f"or package with --arch {host_arch()} to run it natively",
            ) from exc
        self.emulated = bool(prefix)
        if self.emulated:
            self.timeout_s *= EMULATED_TIMEOUT_FACTOR
            log.warning("running the %s function under %s: timings mean nothing", arch, prefix[0])
        rie = rie_binary(arch)
        if self.workdir is None:
            self._own_workdir = Path(tempfile.mkdtemp(prefix="slimbert-lambda-"))
        workdir = self.workdir or self._own_workdir
        assert workdir is not None
        task = workdir / "task"
        shutil.rmtree(task, ignore_errors=True)
        task.mkdir(parents=True)
        with zipfile.ZipFile(self.package_zip) as zf:
            for info in zf.infolist():
                path = Path(zf.extract(info, task))
                mode = (info.external_attr >> 16) & 0o777
                if mode and not info.is_dir():
                    path.chmod(mode)
        self.port = self.port or free_port()
        command = [
            *prefix, str(rie),
            "--log-level", "error",
            "--runtime-interface-emulator-address", f"127.0.0.1:{self.port}",
            # Its default 127.0.0.1:9001 would clash between two emulators on one machine.
            "--runtime-api-address", f"127.0.0.1:{free_port()}",
            # Under qemu the emulator's child is started through qemu too (no binfmt_misc).
            *prefix, str(python), "-m", "awslambdaric", LAMBDA_HANDLER,
        ]  # fmt: skip
        seconds = self._spawn(command, task, self._environment(task), workdir / "function.log")
        log.info("Lambda emulator for %s on port %d (pid %s)", task, self.port, self.pid)
        return seconds

    def _environment(self, task: Path) -> dict[str, str]:
        # What the Lambda Python runtime sets; the host's environment stays out, as in Lambda.
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": str(task),
            "LAMBDA_RUNTIME_DIR": str(task),
            "PYTHONPATH": str(task),
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",  # /var/task is read-only in Lambda
            "_HANDLER": LAMBDA_HANDLER,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_LAMBDA_FUNCTION_NAME": self.package_zip.stem,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(self.timeout_s),
        }
        return {**env, **self.template_env, **self.extra_env}

    def invoke(self, payload: Any) -> tuple[Any, float]:
        """Invoke with ``payload`` as the event; returns (the function's JSON answer, client ms)."""
        started = time.perf_counter()
        status, _, body = self._post(self.url, json.dumps(payload).encode(), self.timeout_s + 30)
        ms = (time.perf_counter() - started) * 1000
        try:
            return json.loads(body), ms
        except ValueError:
            return {"statusCode": status, "body": body.decode("utf-8", "replace")}, ms

    def stop(self) -> None:
        """Stop the emulator and runtime (the whole process group); remove a temporary workdir."""
        super().stop()
        if self._own_workdir is not None:
            shutil.rmtree(self._own_workdir, ignore_errors=True)
            self._own_workdir = None


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


class LocalGcp(_LocalFunction):
    """A ``gcp-function`` folder served by functions-framework on 127.0.0.1."""

    def __init__(
        self,
        folder: Path,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        python: Path | None = None,
    ) -> None:
        super().__init__(port=port, env=env)
        self.folder = Path(folder)
        self.python = python

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> float:
        """Start functions-framework on the folder; returns seconds until the port accepts."""
        if not (self.folder / "main.py").is_file():
            raise SlimbertError(f"{self.folder} has no main.py; is it a gcp-function package?")
        python = gcp_python(self.folder / "requirements.txt", self.python)
        self.port = self.port or free_port()
        command = [
            str(python.parent / "functions-framework"),
            "--target", GCP_ENTRY_POINT,
            "--source", "main.py",
            "--host", "127.0.0.1",
            "--port", str(self.port),
        ]  # fmt: skip
        env = {
            "PATH": f"{python.parent}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "PYTHONPATH": str(self.folder.resolve()),
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "FUNCTION_TARGET": GCP_ENTRY_POINT,
            "K_SERVICE": self.folder.name,
            **self.extra_env,
        }
        log_dir = Path(tempfile.gettempdir())
        log_path = log_dir / f"slimbert-gcp-{self.folder.name}-{self.port}.log"
        log_path.unlink(missing_ok=True)
        return self._spawn(command, self.folder, env, log_path)

    def invoke(self, payload: Any) -> tuple[dict[str, Any], float]:
        """POST ``payload`` as JSON; returns ({statusCode, headers, body}, client ms).

        The answer is shaped like a Lambda HTTP response so callers treat both alike.
        """
        started = time.perf_counter()
        status, headers, body = self._post(self.url, json.dumps(payload).encode(), 60.0)
        ms = (time.perf_counter() - started) * 1000
        return {"statusCode": status, "headers": headers, "body": body.decode("utf-8")}, ms
