"""Run a packaged function on this machine the way its platform runs it, without Docker.

``LocalLambda`` unzips a package from ``slimbert package`` into a clean folder and serves it
with the AWS Lambda Runtime Interface Emulator (the binary AWS ships inside the aws-sam-cli
wheel) in front of ``awslambdaric`` (the runtime interface client of the Lambda Python base
image) on a Python 3.12 interpreter, over HTTP on 127.0.0.1. The emulator starts the runtime
lazily, so the first invoke is a cold start: process start, imports, bundle load, answer.
A zip for the other architecture (arm64 on x86_64) runs under qemu-user: the arm64 emulator
binary and an arm64 Python 3.12 (``$SLIMBERT_PYTHON312_ARM64``) are each started through
``qemu-aarch64-static`` as a Graviton2 core (see :func:`slimbert.deploy.toolchain.emulator`);
its answers count, its timings do not.

``LocalGcp`` serves a ``gcp-function`` folder with ``functions-framework`` in a Python 3.12
virtual environment holding the folder's pinned requirements, as Cloud Run functions does.

The interpreters, environments and emulator binaries come from ``slimbert.deploy.toolchain``
(fetched once, cached). Used by the tests, ``make demo`` and the serving benchmark.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from slimbert.deploy.platforms import GCP_ENTRY_POINT, LAMBDA_HANDLER, LINUX_MACHINE
from slimbert.deploy.toolchain import (
    EMULATED_TIMEOUT_FACTOR,
    emulator,
    gcp_python,
    host_arch,
    lambda_python,
    rie_binary,
)
from slimbert.errors import SlimbertError

log = logging.getLogger(__name__)

INVOKE_PATH = "/2015-03-31/functions/function/invocations"
START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


class LocalFunction:
    """A child process serving HTTP on 127.0.0.1, in its own process group.

    The base of :class:`LocalLambda`, :class:`LocalGcp` and the Lambda benchmark's own
    functions: a subclass's ``start`` launches its command with ``_spawn`` and its ``invoke``
    sends with ``_post``.
    """

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
            for arch, machine in LINUX_MACHINE.items():
                if name.endswith(f"-{machine}-linux-gnu.so"):
                    return arch
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


class LocalLambda(LocalFunction):
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
        handler: str = LAMBDA_HANDLER,
    ) -> None:
        super().__init__(port=port, env=env)
        self.package_zip = Path(package_zip)
        self.handler = handler  # module.function inside the zip, as Lambda's Handler setting
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
            *prefix, str(python), "-m", "awslambdaric", self.handler,
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
            "_HANDLER": self.handler,
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


class LocalGcp(LocalFunction):
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
