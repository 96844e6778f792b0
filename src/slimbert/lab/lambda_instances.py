"""The functions ``slimbert bench lambda`` measures, and one request to an instance of them.

A :class:`Target` is one function under test (the Lambda zip, the Google folder, the torch
teacher) and starts instances of it behind a prefix, the wrapper that joins a cgroup or pins
CPUs (:mod:`slimbert.lab.cgroups`): the Lambda zip under the AWS Lambda Runtime Interface
Emulator, the Google folder under functions-framework (:mod:`slimbert.deploy.local`), the
teacher as a plain local HTTP function (:mod:`slimbert.lab.teacher_server`).
:func:`call_instance` sends one request and checks the answer; an instance that dies or
answers an error raises :class:`InstanceFailed`, which the harness records as a result for
that memory size (out of memory, say) rather than a crash of the benchmark.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from slimbert.deploy.local import (
    LocalFunction,
    LocalGcp,
    LocalLambda,
    free_port,
    function_url_event,
)
from slimbert.deploy.platforms import LAMBDA_HANDLER
from slimbert.errors import SlimbertError

TEACHER_TIMEOUT_S = 300.0  # the first answer includes importing torch at a fraction of a CPU
_REPORT = re.compile(
    r"^REPORT RequestId: \S+\s+(?:Init Duration: [\d.]+ ms\s+)?Duration: ([\d.]+) ms"
    r"(?:\s+Billed Duration: (\d+)(?: ms)?)?",
    re.MULTILINE,
)


class Instance(Protocol):
    """A running function instance, as the harness drives it."""

    cold_start_s: float | None
    log_path: Path | None

    @property
    def pid(self) -> int | None: ...

    def start(self) -> float: ...

    def stop(self) -> None: ...

    def invoke(self, payload: Any) -> tuple[Any, float]: ...

    def log_tail(self, lines: int = 20) -> str: ...


class _Prefixed(LocalFunction):
    """Starts its command behind ``prefix``: the wrapper that joins a cgroup or pins CPUs."""

    prefix: tuple[str, ...] = ()

    def _spawn(self, command: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> float:
        return super()._spawn([*self.prefix, *command], cwd, env, log_path)


class _Lambda(_Prefixed, LocalLambda):
    pass


class _Gcp(_Prefixed, LocalGcp):
    pass


class LocalTeacher(_Prefixed):
    """The torch teacher as a plain local HTTP function on 127.0.0.1 (Python of this venv)."""

    def __init__(
        self, folder: Path, *, threads: int, workdir: Path, port: int | None = None
    ) -> None:
        super().__init__(port=port, env=None)
        self.folder = Path(folder).resolve()
        self.threads = threads
        self.workdir = workdir

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> float:
        self.port = self.port or free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "slimbert.lab.teacher_server",
            str(self.folder),
            str(self.port),
            str(self.threads),
        ]
        # As for the student, the host's environment stays out; only offline switches go in.
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "HOME": str(self.workdir),
            "HF_HOME": str(self.workdir / "hf"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": str(self.threads),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        return self._spawn(command, self.workdir, env, self.workdir / "teacher.log")

    def invoke(self, payload: Any) -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        status, _, body = self._post(self.url, json.dumps(payload).encode(), TEACHER_TIMEOUT_S)
        ms = (time.perf_counter() - started) * 1000
        return {"statusCode": status, "body": body.decode("utf-8", "replace")}, ms


@dataclasses.dataclass(frozen=True)
class Target:
    """One function under test and how to start an instance of it."""

    name: str  # "student-lambda", "student-gcp", "teacher"
    kind: Literal["lambda", "gcp", "teacher"]
    source: Path
    python: Path | None = None  # Python 3.12 for the packaged functions
    handler: str = LAMBDA_HANDLER  # a Lambda zip's entry point (the stack floor has its own)

    def floor(self, floor_zip: Path) -> Target:
        """The stack floor of this Lambda target (:mod:`slimbert.lab.coldfloor`)."""
        from slimbert.lab.coldfloor import FLOOR_HANDLER

        return dataclasses.replace(
            self, name=f"{self.name}-floor", source=floor_zip, handler=FLOOR_HANDLER
        )

    def make(self, memory_mb: int, threads: int, prefix: list[str], workdir: Path) -> Instance:
        fn: _Lambda | _Gcp | LocalTeacher
        env = {"SLIMBERT_THREADS": str(threads)}
        if self.kind == "lambda":
            fn = _Lambda(
                self.source,
                env=env,
                workdir=workdir,
                memory_mb=memory_mb,
                python=self.python,
                handler=self.handler,
            )
        elif self.kind == "gcp":
            fn = _Gcp(self.source, env=env, python=self.python)
        else:
            fn = LocalTeacher(self.source, threads=threads, workdir=workdir)
        fn.prefix = tuple(prefix)
        return fn

    def payload(self, text: str | Sequence[str]) -> Any:
        """One text as ``{"text": ...}``, a batch as ``{"texts": [...]}``.

        Lambda gets what a function URL delivers; the others a plain JSON POST body.
        """
        body = {"text": text} if isinstance(text, str) else {"texts": list(text)}
        return function_url_event(body) if self.kind == "lambda" else body


class InstanceFailed(Exception):
    """An instance that died or answered an error: a result for its size, not a crash."""

    def __init__(self, message: str, log_tail: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.log_tail = log_tail
        self.status = status  # the HTTP status it answered; None: no answer (it died)


def start_instance(fn: Instance) -> None:
    try:
        fn.start()
    except SlimbertError as exc:
        raise InstanceFailed(exc.message, fn.log_tail()) from exc


def call_instance(
    fn: Instance,
    target: Target,
    text: str | Sequence[str],
    timings: dict[str, float] | None = None,
) -> tuple[float, float]:
    """One request of one text or a batch: (client ms, the function's own ``timing_ms.total``).

    A batch must come back with one prediction per text: an answer that drops texts would
    make a larger batch look cheaper than it is. ``timings``, when given, receives the rest
    of the answer's ``timing_ms`` (``tokenize``, ``inference``: the model's own share).
    """
    try:
        answer, ms = fn.invoke(target.payload(text))
    except SlimbertError as exc:
        raise InstanceFailed(exc.message, fn.log_tail()) from exc
    status = answer.get("statusCode") if isinstance(answer, dict) else None
    total = None
    answers = None
    with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
        body = json.loads(answer["body"])
        # A classifier answers predictions; an embedding bundle, embeddings.
        answers = len(body["predictions"] if "predictions" in body else body["embeddings"])
        total = float(body["timing_ms"]["total"])
        if timings is not None:
            timings.update(
                (k, float(v)) for k, v in body["timing_ms"].items() if isinstance(v, int | float)
            )
    if status != 200 or total is None:
        raise InstanceFailed(
            f"the function answered {status}: {str(answer)[:300]}", fn.log_tail(), status
        )
    if not isinstance(text, str) and answers != len(text):
        raise InstanceFailed(
            f"{len(text)} texts sent, {answers} predictions answered", fn.log_tail(), status
        )
    return ms, total


def emulator_reports(log_text: str) -> list[tuple[float, float]]:
    """(``Duration``, ``Billed Duration``) of each REPORT line the Lambda emulator logged, in
    order (ms). Without a Billed Duration on the line, Duration rounded up to 1 ms: Lambda's
    billing granularity."""
    return [
        (float(duration), float(billed) if billed else float(math.ceil(float(duration))))
        for duration, billed in _REPORT.findall(log_text)
    ]


def emulator_durations(log_text: str) -> list[float]:
    """The ``Duration`` of each REPORT line the Lambda emulator logged, in order (ms)."""
    return [duration for duration, _ in emulator_reports(log_text)]
