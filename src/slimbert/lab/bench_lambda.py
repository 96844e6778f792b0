"""``slimbert bench lambda``: a packaged function measured as its platform runs it, on this machine.

Benešová et al. measured their function on AWS Lambda and Google Cloud Functions: q50/q95/q99
over 5,000 real examples after a warm-up, at several memory sizes. This benchmark repeats that
protocol without a cloud account, in four steps:

1. Every function instance runs as its platform runs it (the Lambda zip unpacked into a clean
   folder under the AWS Lambda Runtime Interface Emulator + awslambdaric, the Google folder
   under functions-framework: :mod:`slimbert.deploy.local`) inside its own cgroup, whose memory
   limit is the memory size and whose CPU quota is what the platform allots that size
   (:mod:`slimbert.lab.cgroups`). Without cgroups it pins CPUs instead and the results say so.
2. For each memory size: a warm-up, then ``requests`` real texts one at a time, as one
   execution environment serves them (client latency and the handler's own
   ``timing_ms.total``), the cgroup's peak memory, and ``cold_starts`` fresh starts (process
   start to first answer; INIT is that less the warm median). An out-of-memory kill is a
   result for that size (``"oom": true``), not a crash of the benchmark.
3. Concurrency: K instances, each in its own cgroup and serving one request at a time (Lambda
   scales by instances), driven by K client threads: throughput and tail latency against K.
4. The torch + transformers teacher, which cannot be a Lambda zip, runs as a plain local HTTP
   function (``python -m slimbert.lab.bench_lambda serve-teacher``) in the same limits and harness;
   student/teacher ratios are reported side by side.

Results go to ``bench/results/<timestamp>/lambda.json`` and ``lambda.md``; the JSON's
``memory`` block is what ``slimbert cost --results`` reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import http.server
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from slimbert.config import Options, check
from slimbert.deploy.local import (
    AWSLAMBDARIC_PIN,
    SAM_CLI_PIN,
    LocalGcp,
    LocalLambda,
    _LocalFunction,
    find_python312,
    free_port,
    function_url_event,
    host_arch,
)
from slimbert.errors import SlimbertError
from slimbert.lab import cgroups
from slimbert.lab.benchmarks import machine_info, save_results
from slimbert.metrics import quantiles

log = logging.getLogger(__name__)

PAPER_REQUESTS = 5000
PAPER_WARMUP = 100
PAPER_COLD_STARTS = 10
MAX_INSTANCES = 16  # K emulators at once: a bound on what one machine is asked to host
TEACHER_TIMEOUT_S = 300.0  # the first answer includes importing torch at a fraction of a CPU
TEACHER_MAX_BODY = 256 * 1024
_REPORT_DURATION = re.compile(
    r"^REPORT RequestId: \S+\s+(?:Init Duration: [\d.]+ ms\s+)?Duration: ([\d.]+) ms", re.MULTILINE
)


@dataclasses.dataclass(frozen=True)
class BenchLambdaOptions(Options):
    stage: ClassVar[str] = "bench-lambda"

    package: Path | None = Path("runs/package/slimbert-aws-lambda-x86_64.zip")
    gcp: Path | None = None  # a gcp-function folder from `slimbert package --target gcp-function`
    teacher: Path | None = None  # a torch classifier folder: the baseline
    data: str = "tweets3:test"
    text_column: str = "text"
    memory_mb: tuple[int, ...] = (512, 1024, 1769, 3008)
    requests: int = PAPER_REQUESTS
    warmup: int = PAPER_WARMUP
    cold_starts: int = PAPER_COLD_STARTS
    concurrency: tuple[int, ...] = (1, 2, 4)
    concurrency_requests: int = 500
    concurrency_memory_mb: int | None = None  # None: 1769 when measured, else the largest size
    platform: Literal["aws", "gcp-gen1", "gcp-gen2"] = "aws"
    gcp_cpu: float | None = None  # gen2's --cpu; None: Google's default for the memory size
    time_limit_s: float = 900.0  # per function and memory size (and per concurrency level)
    # The window in which the CPU share is enforced (cpu.cfs_period_us; the quota keeps the
    # share). 10 ms, not the kernel's 100 ms: see docs/design.md, "CPU share and CFS period".
    cfs_period_ms: float = 10.0
    results: Path = Path("bench/results")
    quick: bool = False  # smoke profile: 1 size, 50 requests, 2 cold starts, K=1,2 x 40

    def validate(self) -> None:
        check(
            self.package is not None or self.gcp is not None,
            "nothing to measure",
            hint="pass --package <lambda zip> and/or --gcp <gcp-function folder>",
        )
        check(len(self.memory_mb) > 0, "memory_mb needs at least one size")
        for mb in (*self.memory_mb, self.concurrency_memory_mb or 1024):
            check(128 <= mb <= 10240, f"memory size {mb} MB is outside 128..10240")
        check(self.requests >= 10, "requests must be at least 10")
        check(
            self.quick or self.warmup >= PAPER_WARMUP,
            f"warmup must be at least {PAPER_WARMUP} requests",
            hint="use --quick for a smoke run",
        )
        check(self.cold_starts >= 1, "cold_starts must be at least 1")
        for k in self.concurrency:
            check(1 <= k <= MAX_INSTANCES, f"concurrency {k} is outside 1..{MAX_INSTANCES}")
        check(self.concurrency_requests >= 1, "concurrency_requests must be at least 1")
        check(self.gcp_cpu is None or self.gcp_cpu > 0, "gcp_cpu must be positive")
        check(self.time_limit_s > 0, "time_limit_s must be positive")
        check(1.0 <= self.cfs_period_ms <= 1000.0, "cfs_period_ms must be 1..1000 ms")

    def profile(self) -> BenchLambdaOptions:
        """The settings actually run: these options, or the smoke profile when ``quick``."""
        if not self.quick:
            return self
        sizes = self.memory_mb
        if len(sizes) > 1:
            sizes = (1024,) if 1024 in sizes else sizes[:1]
        return self.replace(
            memory_mb=sizes,
            requests=50,
            warmup=10,
            cold_starts=2,
            concurrency=(1, 2),
            concurrency_requests=40,
            concurrency_memory_mb=sizes[0],
        )


# -- the functions under test -----------------------------------------------------------------


class _Function(Protocol):
    cold_start_s: float | None
    log_path: Path | None

    @property
    def pid(self) -> int | None: ...

    def start(self) -> float: ...

    def stop(self) -> None: ...

    def invoke(self, payload: Any) -> tuple[Any, float]: ...

    def log_tail(self, lines: int = 20) -> str: ...


class _Prefixed(_LocalFunction):
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
            "slimbert.lab.bench_lambda",
            "serve-teacher",
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
class _Target:
    """One function under test and how to start an instance of it."""

    name: str  # "student-lambda", "student-gcp", "teacher"
    kind: Literal["lambda", "gcp", "teacher"]
    source: Path
    python: Path | None = None  # Python 3.12 for the packaged functions

    def make(self, memory_mb: int, threads: int, prefix: list[str], workdir: Path) -> _Function:
        fn: _Lambda | _Gcp | LocalTeacher
        env = {"SLIMBERT_THREADS": str(threads)}
        if self.kind == "lambda":
            fn = _Lambda(
                self.source, env=env, workdir=workdir, memory_mb=memory_mb, python=self.python
            )
        elif self.kind == "gcp":
            fn = _Gcp(self.source, env=env, python=self.python)
        else:
            fn = LocalTeacher(self.source, threads=threads, workdir=workdir)
        fn.prefix = tuple(prefix)
        return fn

    def payload(self, text: str) -> Any:
        # Lambda gets what a function URL delivers; the others a plain JSON POST body.
        return function_url_event({"text": text}) if self.kind == "lambda" else {"text": text}


class _Failed(Exception):
    """An instance that died or answered an error: a result for its size, not a crash."""

    def __init__(self, message: str, log_tail: str) -> None:
        super().__init__(message)
        self.message = message
        self.log_tail = log_tail


def _start(fn: _Function) -> None:
    try:
        fn.start()
    except SlimbertError as exc:
        raise _Failed(exc.message, fn.log_tail()) from exc


def _call(fn: _Function, target: _Target, text: str) -> tuple[float, float]:
    """One request: (client ms, the function's own ``timing_ms.total``)."""
    try:
        answer, ms = fn.invoke(target.payload(text))
    except SlimbertError as exc:
        raise _Failed(exc.message, fn.log_tail()) from exc
    status = answer.get("statusCode") if isinstance(answer, dict) else None
    total = None
    with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
        total = float(json.loads(answer["body"])["timing_ms"]["total"])
    if status != 200 or total is None:
        raise _Failed(f"the function answered {status}: {str(answer)[:300]}", fn.log_tail())
    return ms, total


# -- measuring ----------------------------------------------------------------------------------


def _throttling(before: dict[str, int], after: dict[str, int]) -> dict[str, Any] | None:
    """CFS throttling over the measured requests, from two reads of ``cpu.stat``."""
    keys = ("nr_periods", "nr_throttled", "throttled_time")
    if not all(k in before and k in after for k in keys):
        return None
    periods, throttled = (after[k] - before[k] for k in keys[:2])
    return {
        "periods": periods,
        "throttled_periods": throttled,
        "throttled_fraction": throttled / periods if periods else 0.0,
        "throttled_ms": (after["throttled_time"] - before["throttled_time"]) / 1e6,
    }


def emulator_durations(log_text: str) -> list[float]:
    """The ``Duration`` of each REPORT line the Lambda emulator logged, in order (ms)."""
    return [float(m) for m in _REPORT_DURATION.findall(log_text)]


def _cpu(opts: BenchLambdaOptions, memory_mb: int) -> dict[str, Any]:
    requested = cgroups.platform_cpu(memory_mb, opts.platform, opts.gcp_cpu)
    vcpus, capped = cgroups.effective_cpu(requested)
    if opts.platform == "aws":
        from slimbert.deploy.package import lambda_threads

        threads = lambda_threads(memory_mb)  # what the packaged template sets for this size
    else:
        threads = int(requested + 1e-9)
    return {
        "cpu_requested_vcpus": round(requested, 4),
        "cpu_quota_vcpus": round(vcpus, 4),
        "cpu_quota_capped": capped,
        "threads": max(1, min(threads, cgroups.host_cpus())),
    }


@dataclasses.dataclass
class _Run:
    opts: BenchLambdaOptions
    texts: list[str]
    work: Path
    use_cgroups: bool

    def text(self, i: int) -> str:
        return self.texts[i % len(self.texts)]  # cycle when the data is shorter

    def limits(self, label: str, memory_mb: int, vcpus: float, index: int = 0) -> cgroups.Limits:
        name = f"{os.getpid()}-{label}"
        period_us = round(self.opts.cfs_period_ms * 1000)
        return cgroups.Limits(
            name, memory_mb, vcpus, use_cgroups=self.use_cgroups, index=index, period_us=period_us
        )

    def failure(self, block: dict[str, Any], exc: _Failed, limits: list[cgroups.Limits]) -> None:
        kills = sum(lim.oom_kills() for lim in limits)
        # Without a cgroup counter, a runtime killed by a signal is the OOM killer's mark.
        oom = kills > 0 or "signal: killed" in exc.log_tail
        block.update(oom=oom, oom_kills=kills, error=exc.message)
        block["log_tail"] = exc.log_tail.splitlines()[-5:]
        if limits and limits[0].cgroup is not None:
            block["peak_memory_mb"] = limits[0].peak_memory_mb()
        log.warning("%s: %s", "out of memory" if oom else "failed", exc.message)

    def measure_size(self, target: _Target, memory_mb: int) -> dict[str, Any]:
        """Warm quantiles, peak memory and cold starts of ``target`` at ``memory_mb``."""
        opts = self.opts
        block: dict[str, Any] = {"oom": False, **_cpu(opts, memory_mb)}
        deadline = time.monotonic() + opts.time_limit_s
        label = f"{target.name}-{memory_mb}"
        with self.limits(label, memory_mb, block["cpu_quota_vcpus"]) as limits:
            block["limits"] = limits.mode
            if limits.pinned_cpus is not None:  # what is enforced: whole CPUs
                block["cpu_quota_vcpus"] = float(limits.pinned_cpus)
            try:
                block.update(self._warm(target, memory_mb, block["threads"], limits, deadline))
                colds = [block.pop("cold_ms")]
                for i in range(opts.cold_starts - 1):
                    if time.monotonic() > deadline:
                        block["stopped_early"] = f"time limit: {len(colds)} cold starts"
                        break
                    colds.append(self._cold(target, memory_mb, block["threads"], limits, i))
            except _Failed as exc:
                block.pop("cold_ms", None)
                block.pop("client_ms_values", None)
                self.failure(block, exc, [limits])
                return block
        warm_p50 = float(np.median(block["client_ms_values"]))
        block.pop("client_ms_values")
        block["cold_start_ms"] = {**quantiles(colds), "values": colds}
        # INIT: process start to first answer, less what a warm request takes.
        inits = [max(0.0, c - warm_p50) for c in colds]
        block["init_ms"] = {"p50": float(np.median(inits)), "mean": float(np.mean(inits))}
        return block

    def _instance(
        self, target: _Target, memory_mb: int, threads: int, limits: cgroups.Limits, tag: str
    ) -> _Function:
        limits.settle()
        workdir = self.work / f"{target.name}-{memory_mb}-{tag}"
        fn = target.make(memory_mb, threads, limits.prefix, workdir)
        return fn

    def _warm(
        self,
        target: _Target,
        memory_mb: int,
        threads: int,
        limits: cgroups.Limits,
        deadline: float,
    ) -> dict[str, Any]:
        opts = self.opts
        fn = self._instance(target, memory_mb, threads, limits, "warm")
        limits.reset_peak()
        client: list[float] = []
        function: list[float] = []
        warmed = 0
        stopped = None
        _start(fn)
        try:
            _call(fn, target, self.text(0))
            cold_ms = (fn.cold_start_s or 0.0) * 1e3
            for i in range(opts.warmup):
                if time.monotonic() > deadline:
                    break
                _call(fn, target, self.text(opts.requests + i))
                warmed += 1
            before = limits.cpu_stat()
            for i in range(opts.requests):
                if time.monotonic() > deadline:
                    stopped = f"time limit {opts.time_limit_s:g} s after {i} requests"
                    break
                ms, total = _call(fn, target, self.text(i))
                client.append(ms)
                function.append(total)
            if not function:
                raise _Failed(f"no request measured within {opts.time_limit_s:g} s", "")
            from slimbert.deploy.invoke import peak_rss_mb

            rss = peak_rss_mb(fn.pid) if fn.pid else None
            peak = limits.peak_memory_mb()
            throttling = _throttling(before, limits.cpu_stat())
        finally:
            fn.stop()
        block: dict[str, Any] = {
            "requests": len(function),
            "warmup": warmed,
            "durations_ms": [round(d, 3) for d in function],
            **{f"{k}_ms": v for k, v in quantiles(function).items() if k != "n"},
            "client_ms": quantiles(client),
            "client_ms_values": client,
            "cold_ms": cold_ms,
            "peak_memory_mb": peak,
            "peak_rss_mb": rss,
        }
        if throttling is not None:
            block["throttling"] = throttling
        if stopped:
            block["stopped_early"] = stopped
        if target.kind == "lambda" and fn.log_path is not None and fn.log_path.is_file():
            # The emulator's REPORT Duration spans the runtime client's own work too, which
            # Lambda bills: a bound on the billed duration above the handler's own timing.
            reported = emulator_durations(fn.log_path.read_text(errors="replace"))
            measured = reported[1 + warmed : 1 + warmed + len(function)]
            if measured:
                block["emulator_duration_ms"] = quantiles(measured)
        self._clean(fn, target)
        return block

    def _cold(
        self, target: _Target, memory_mb: int, threads: int, limits: cgroups.Limits, i: int
    ) -> float:
        fn = self._instance(target, memory_mb, threads, limits, f"cold{i}")
        _start(fn)
        try:
            _call(fn, target, self.text(i + 1))
        finally:
            fn.stop()
        self._clean(fn, target)
        return (fn.cold_start_s or 0.0) * 1e3

    def _clean(self, fn: _Function, target: _Target) -> None:
        # Each Lambda start unpacks the whole zip (about 100 MB): keep the disk from filling.
        if target.kind == "gcp" and fn.log_path is not None:
            fn.log_path.unlink(missing_ok=True)
        elif fn.log_path is not None:
            shutil.rmtree(fn.log_path.parent, ignore_errors=True)

    def measure_concurrency(self, target: _Target, k: int, memory_mb: int) -> dict[str, Any]:
        """K instances, one request at a time each, K client threads over a bounded total."""
        opts = self.opts
        block: dict[str, Any] = {"instances": k, "memory_mb": memory_mb, **_cpu(opts, memory_mb)}
        vcpus = block["cpu_quota_vcpus"]
        block["limits"] = "cgroup-v1" if self.use_cgroups else "affinity"
        if not self.use_cgroups:  # what is enforced: whole CPUs
            vcpus = block["cpu_quota_vcpus"] = float(cgroups.pin_command(vcpus)[1])
        block["total_vcpus"] = round(vcpus * k, 4)
        block["oversubscribed"] = block["total_vcpus"] > cgroups.host_cpus()
        deadline = time.monotonic() + opts.time_limit_s
        total = opts.concurrency_requests
        limits: list[cgroups.Limits] = []
        with contextlib.ExitStack() as stack:
            try:
                fns: list[_Function] = []
                for i in range(k):
                    lim = stack.enter_context(
                        self.limits(f"{target.name}-k{k}-{i}", memory_mb, vcpus, index=i)
                    )
                    limits.append(lim)
                    fn = self._instance(target, memory_mb, block["threads"], lim, f"k{k}-{i}")
                    stack.callback(self._clean, fn, target)
                    stack.callback(fn.stop)  # registered first: a failed start still stops
                    _start(fn)
                    fns.append(fn)
                for i, fn in enumerate(fns):  # every instance warm before the clock starts
                    for j in range(min(10, opts.warmup)):
                        _call(fn, target, self.text(i * 10 + j))
                block.update(self._drive(target, fns, total, deadline))
            except _Failed as exc:
                self.failure(block, exc, limits)
                return block
            block["peak_memory_mb"] = [lim.peak_memory_mb() for lim in limits]
        return block

    def _drive(
        self, target: _Target, fns: list[_Function], total: int, deadline: float
    ) -> dict[str, Any]:
        lock = threading.Lock()
        issued = [0]
        failed = threading.Event()

        def worker(fn: _Function) -> list[float]:
            done: list[float] = []
            while time.monotonic() < deadline and not failed.is_set():
                with lock:
                    if issued[0] >= total:
                        break
                    j = issued[0]
                    issued[0] += 1
                try:
                    done.append(_call(fn, target, self.text(j))[0])
                except _Failed:
                    failed.set()
                    raise
            return done

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(fns), thread_name_prefix="bench-client") as pool:
            per_instance = list(pool.map(worker, fns))
        seconds = time.perf_counter() - started
        latencies = [ms for done in per_instance for ms in done]
        block: dict[str, Any] = {
            "requests": len(latencies),
            "seconds": seconds,
            "throughput_rps": len(latencies) / seconds,
            "latency_ms": quantiles(latencies),
            "per_instance_requests": [len(done) for done in per_instance],
        }
        if len(latencies) < total:
            block["stopped_early"] = f"time limit after {len(latencies)} of {total} requests"
        return block


# -- the benchmark ------------------------------------------------------------------------------


def _targets(opts: BenchLambdaOptions) -> list[_Target]:
    targets = []
    python = find_python312() if (opts.package or opts.gcp) else None
    if opts.package is not None:
        if not opts.package.is_file():
            raise SlimbertError(
                f"no Lambda package at {opts.package}", hint="build one with `slimbert package`"
            )
        targets.append(_Target("student-lambda", "lambda", opts.package, python))
    if opts.gcp is not None:
        if not (opts.gcp / "main.py").is_file():
            raise SlimbertError(f"{opts.gcp} is not a gcp-function folder (no main.py)")
        targets.append(_Target("student-gcp", "gcp", opts.gcp, python))
    if opts.teacher is not None:
        if not (opts.teacher / "config.json").is_file():
            raise SlimbertError(f"{opts.teacher} is not a transformers model folder")
        targets.append(_Target("teacher", "teacher", opts.teacher))
    return targets


def _primary(opts: BenchLambdaOptions, functions: dict[str, Any]) -> str:
    if opts.platform != "aws" and "student-gcp" in functions:
        return "student-gcp"
    return "student-lambda" if "student-lambda" in functions else "student-gcp"


def _platform_fields(opts: BenchLambdaOptions) -> dict[str, Any]:
    """``platform`` and ``arch`` as ``slimbert.lab.cost`` keys its price table by."""
    if opts.platform == "aws":
        return {"platform": "aws-lambda", "arch": host_arch()}
    return {"platform": f"gcp-functions-{opts.platform.removeprefix('gcp-')}", "arch": None}


def _ratios(functions: dict[str, Any]) -> dict[str, Any]:
    teacher = functions.get("teacher")
    if teacher is None:
        return {}

    def ratio(a: Any, b: Any) -> float | None:
        return float(a) / float(b) if a is not None and b else None

    out: dict[str, Any] = {}
    for name, student in functions.items():
        if not name.startswith("student"):
            continue
        by_size: dict[str, Any] = {}
        for mb, s in student["memory"].items():
            t = teacher["memory"].get(mb, {})
            row: dict[str, Any] = {"teacher_oom": bool(t.get("oom")), "student_oom": s["oom"]}
            if "durations_ms" in s and "durations_ms" in t:
                row |= {
                    "p50_ms_teacher_over_student": ratio(t["p50_ms"], s["p50_ms"]),
                    "p99_ms_teacher_over_student": ratio(t["p99_ms"], s["p99_ms"]),
                    "client_p50_teacher_over_student": ratio(
                        t["client_ms"]["p50"], s["client_ms"]["p50"]
                    ),
                    "cold_start_p50_teacher_over_student": ratio(
                        t["cold_start_ms"]["p50"], s["cold_start_ms"]["p50"]
                    ),
                    "peak_memory_teacher_over_student": ratio(
                        t.get("peak_memory_mb"), s.get("peak_memory_mb")
                    ),
                }
            by_size[mb] = row
        levels = teacher["concurrency"]["instances"]
        throughput = {
            k: ratio(c.get("throughput_rps"), levels.get(k, {}).get("throughput_rps"))
            for k, c in student["concurrency"]["instances"].items()
        }
        out[name] = {"memory": by_size, "throughput_student_over_teacher": throughput}
    return out


def _notes(opts: BenchLambdaOptions, limits: dict[str, Any], load: list[float]) -> list[str]:
    notes = []
    if not limits["cgroups"]:
        notes.append(
            f"no cgroups ({limits['reason']}): instances were pinned to whole CPUs instead, "
            "memory was not limited and no OOM can show; treat the CPU share as approximate"
        )
    run = (opts.requests, opts.warmup, opts.cold_starts)
    paper = (PAPER_REQUESTS, PAPER_WARMUP, PAPER_COLD_STARTS)
    if any(have < want for have, want in zip(run, paper, strict=True)):
        notes.append(
            f"below the paper's protocol ({PAPER_REQUESTS:,} requests after {PAPER_WARMUP} "
            f"warm-up, {PAPER_COLD_STARTS} cold starts): a smoke run, not a result to quote"
        )
    host = cgroups.host_cpus()
    capped = [mb for mb in opts.memory_mb if _cpu(opts, mb)["cpu_quota_capped"]]
    if capped:
        notes.append(
            f"this host has {host} CPUs: the quota for {', '.join(map(str, capped))} MB was "
            f"capped at {host} vCPUs (cpu_quota_capped)"
        )
    if max(load) > host / 2:
        notes.append(
            f"the host was busy (1-minute load up to {max(load):.1f} on {host} CPUs): other work "
            "shares the CPUs, so tails are wider than on an idle machine"
        )
    if limits["cgroups"]:
        notes.append(
            f"CPU share enforced per {opts.cfs_period_ms:g} ms CFS period (quota = share x "
            "period; the kernel's default is 100 ms): the emulator, the runtime client and the "
            "handler share it, as the whole execution environment does on Lambda. throttling: "
            "how many periods of the measured requests ran out of quota (docs/design.md)"
        )
    notes.append(
        "durations_ms is the handler's own timing_ms.total; Lambda bills from the runtime's "
        "view (emulator_duration_ms), which also counts the runtime client's work"
    )
    if limits["cgroups"]:
        notes.append(
            "peak_memory_mb is the cgroup's charge: anonymous memory plus the file pages the "
            "function read first; code pages already cached (the unpacked zip, written by this "
            "benchmark; torch's libraries) are charged elsewhere, so it can be below "
            "peak_rss_mb. Clean file pages are reclaimable, so the OOM point is set by "
            "anonymous memory either way"
        )
    return notes


def run_lambda_bench(options: BenchLambdaOptions) -> dict[str, Any]:
    """Run the benchmark; write ``lambda.json`` and ``lambda.md``; return the report."""
    from slimbert.data.load import load_texts

    opts = options.profile()
    texts = load_texts(opts.data, text_column=opts.text_column, label_column=None).texts
    if not texts:
        raise SlimbertError(f"{opts.data} has no texts")
    targets = _targets(opts)
    use_cgroups, reason = cgroups.cgroups_available()
    if not use_cgroups:
        log.warning("cgroups unavailable (%s): pinning CPUs instead", reason)
    load = [os.getloadavg()[0]]
    created = dt.datetime.now(dt.UTC).isoformat()
    functions: dict[str, Any] = {}
    conc_mb = opts.concurrency_memory_mb or (
        1769 if 1769 in opts.memory_mb else max(opts.memory_mb)
    )
    with tempfile.TemporaryDirectory(prefix="slimbert-bench-lambda-") as tmp:
        run = _Run(opts, texts, Path(tmp), use_cgroups)
        for target in targets:
            sizes: dict[str, Any] = {}
            for mb in opts.memory_mb:
                log.info("%s at %d MB", target.name, mb)
                sizes[str(mb)] = run.measure_size(target, mb)
            levels: dict[str, Any] = {}
            for k in opts.concurrency:
                if sizes.get(str(conc_mb), {}).get("oom"):
                    skipped = "one instance already runs out of memory"
                    levels[str(k)] = {
                        "instances": k,
                        "memory_mb": conc_mb,
                        "oom": True,
                        "skipped": skipped,
                    }
                    continue
                log.info("%s: %d instances at %d MB", target.name, k, conc_mb)
                levels[str(k)] = run.measure_concurrency(target, k, conc_mb)
            functions[target.name] = {
                "kind": target.kind,
                "source": str(target.source),
                "memory": sizes,
                "concurrency": {"memory_mb": conc_mb, "instances": levels},
            }
            load.append(os.getloadavg()[0])
    primary = _primary(opts, functions)
    measured = {mb: b for mb, b in functions[primary]["memory"].items() if "durations_ms" in b}
    limits = {
        "cgroups": use_cgroups,
        "reason": reason,
        "mode": "cgroup-v1" if use_cgroups else "affinity",
        "memory_limited": use_cgroups,
        "cfs_period_us": round(opts.cfs_period_ms * 1000) if use_cgroups else None,
    }
    report: dict[str, Any] = {
        "benchmark": "lambda",
        "created": created,
        **_platform_fields(opts),
        "measured": primary,
        # What `slimbert cost --results` reads: the primary function's sizes that answered.
        "memory": measured,
        "oom_sizes": [int(mb) for mb, b in functions[primary]["memory"].items() if b["oom"]],
        "functions": functions,
        "ratios": _ratios(functions),
        "cpu_mapping": {
            "platform": opts.platform,
            "rule": _MAPPING_RULES[opts.platform],
            "host_cpus": cgroups.host_cpus(),
            "by_memory_mb": {str(mb): _cpu(opts, mb) for mb in sorted({*opts.memory_mb, conc_mb})},
        },
        "limits": limits,
        "machine": machine_info() | {"load_1min": load},
        "function_runtime": {
            "lambda_emulator": f"aws-lambda-rie from aws-sam-cli {SAM_CLI_PIN}",
            "awslambdaric": AWSLAMBDARIC_PIN,
            "python_packaged": str(targets[0].python) if targets[0].python else None,
            "python_teacher": sys.version.split()[0],
        },
        "dataset": {"spec": opts.data, "texts": len(texts)},
        "options": options.to_dict(),
        "profile": opts.to_dict(),
        "notes": _notes(opts, limits, load),
    }
    out = save_results(opts.results, "lambda", report, lambda_markdown(report))
    if not measured:
        # Out of memory everywhere is a result; failing everywhere for another reason is not.
        errors = {mb: b.get("error") for mb, b in functions[primary]["memory"].items()}
        if not all(b["oom"] for b in functions[primary]["memory"].values()):
            raise SlimbertError(f"{primary} answered at no memory size: {errors}", hint=str(out))
        log.warning("%s ran out of memory at every size: %s", primary, errors)
    return report


_MAPPING_RULES = {
    "aws": "memory / 1769 MB vCPUs, at most 6 (AWS Lambda)",
    "gcp-gen1": "Google 1st gen clock per tier (128 MB 0.2 GHz ... 2048 MB 2.4 GHz), "
    "2.4 GHz = 1 vCPU; a size between tiers gets the next tier up",
    "gcp-gen2": "gcp_cpu when set, else Google's default vCPU per memory tier",
}


def _f(value: Any, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


def lambda_markdown(r: dict[str, Any]) -> str:
    """The report as Markdown: per function and size, concurrency, ratios, notes."""
    p = r["profile"]
    lines = [
        "# Serverless function benchmark (local emulation)",
        "",
        f"{r['platform']} CPU mapping `{r['cpu_mapping']['platform']}` "
        f"({r['cpu_mapping']['rule']}); limits: {r['limits']['mode']}; "
        f"{r['cpu_mapping']['host_cpus']} host CPUs. {p['requests']:,} requests after "
        f"{p['warmup']} warm-up, {p['cold_starts']} cold starts, data `{p['data']}`.",
        "",
        "| function | MB | vCPU | fn p50 | fn p95 | fn p99 | client p50 | client p99 "
        "| cold p50 | cold p90 | INIT p50 | peak MB | throttled |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, fn in r["functions"].items():
        for mb, b in fn["memory"].items():
            cpu = f"{b['cpu_quota_vcpus']:.2f}" + ("*" if b["cpu_quota_capped"] else "")
            if "durations_ms" not in b:
                what = "OOM" if b["oom"] else f"error: {b.get('error', '')[:60]}"
                lines.append(f"| {name} | {mb} | {cpu} | {what} |" + " |" * 9)
                continue
            c, cold = b["client_ms"], b["cold_start_ms"]
            fraction = (b.get("throttling") or {}).get("throttled_fraction")
            throttled = "–" if fraction is None else f"{fraction:.0%}"
            lines.append(
                f"| {name} | {mb} | {cpu} | {b['p50_ms']:.2f} | {b['p95_ms']:.2f} "
                f"| {b['p99_ms']:.2f} | {c['p50']:.2f} | {c['p99']:.2f} | {cold['p50']:.0f} "
                f"| {cold['p90']:.0f} | {b['init_ms']['p50']:.0f} | {_f(b['peak_memory_mb'])} "
                f"| {throttled} |"
            )
    lines += [
        "",
        "ms throughout; fn: the handler's own timing; client: round trip through the emulator "
        "or server; * quota capped at the host's CPUs; throttled: share of the CFS periods "
        f"({_f(r['limits'].get('cfs_period_us'), ',')} us) of the measured requests whose "
        "quota ran out.",
        "",
        "## Concurrency",
        "",
        "| function | K | MB | req/s | p50 ms | p95 ms | p99 ms | vCPU total |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, fn in r["functions"].items():
        for k, c in fn["concurrency"]["instances"].items():
            if "latency_ms" not in c:
                what = "OOM" if c.get("oom") else f"error: {c.get('error', '')[:60]}"
                lines.append(f"| {name} | {k} | {c['memory_mb']} | {what} |" + " |" * 4)
                continue
            q = c["latency_ms"]
            over = " (over host)" if c["oversubscribed"] else ""
            lines.append(
                f"| {name} | {k} | {c['memory_mb']} | {c['throughput_rps']:.1f} | {q['p50']:.2f} "
                f"| {q['p95']:.2f} | {q['p99']:.2f} | {c['total_vcpus']:.2f}{over} |"
            )
    for name, ratios in r["ratios"].items():
        lines += [
            "",
            f"## Teacher over {name}",
            "",
            "| MB | fn p50 | fn p99 | client p50 | cold start p50 | peak memory |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for mb, row in ratios["memory"].items():
            if row["teacher_oom"] or row["student_oom"]:
                who = "teacher" if row["teacher_oom"] else "student"
                lines.append(f"| {mb} | {who} OOM | | | | |")
                continue
            keys = ("p50_ms", "p99_ms", "client_p50", "cold_start_p50", "peak_memory")
            cells = [_f(row.get(f"{k}_teacher_over_student"), ".1f") + "×" for k in keys]
            lines.append(f"| {mb} | " + " | ".join(cells) + " |")
        throughput = ratios["throughput_student_over_teacher"].items()
        tp = ", ".join(f"K={k}: {_f(v, '.1f')}×" for k, v in throughput)
        lines.append(f"\nThroughput, student over teacher: {tp}.")
    if r["notes"]:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in r["notes"]]
    return "\n".join(lines) + "\n"


# -- the teacher as a local HTTP function -------------------------------------------------------


Predict = Callable[[list[str]], tuple[list[dict[str, Any]], dict[str, float]]]


def _teacher_predictor(folder: Path, threads: int) -> tuple[Predict, str]:
    """The standard way: torch + transformers, batch as given, softmax over the labels."""
    import torch

    torch.set_num_threads(threads)
    encode: Callable[[list[str]], dict[str, Any]]
    forward: Callable[[dict[str, Any]], Any]
    if (folder / "slimbert.json").is_file():  # a slimbert teacher: its own head and max_length
        from slimbert.models.load import TorchClassifier

        clf = TorchClassifier.load(folder)
        labels = [str(name) for name in clf.label_names]

        def encode(texts: list[str]) -> dict[str, Any]:
            return clf.collate(clf.encode(texts), range(len(texts)))

        forward = clf.forward
    else:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        labels = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
        max_length = min(int(tokenizer.model_max_length or 512), 512)

        def encode(texts: list[str]) -> dict[str, Any]:
            return dict(
                tokenizer(
                    texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
                )
            )

        def forward(batch: dict[str, Any]) -> Any:
            return model(**batch).logits

    def predict(texts: list[str]) -> tuple[list[dict[str, Any]], dict[str, float]]:
        t0 = time.perf_counter()
        batch = encode(texts)
        t1 = time.perf_counter()
        with torch.inference_mode():
            probs = forward(batch).float().softmax(-1).numpy()
        t2 = time.perf_counter()
        predictions = [
            {
                "label": labels[int(row.argmax())],
                "probabilities": {n: round(float(v), 6) for n, v in zip(labels, row, strict=True)},
            }
            for row in probs
        ]
        return predictions, {"tokenize": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3}

    return predict, folder.name


class _TeacherServer(http.server.HTTPServer):
    predict: Predict | None = None
    model_id = ""


class _TeacherHandler(http.server.BaseHTTPRequestHandler):
    def _send(self, status: int, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        started = time.perf_counter()
        server = self.server
        assert isinstance(server, _TeacherServer) and server.predict is not None
        length = int(self.headers.get("Content-Length") or 0)
        if length > TEACHER_MAX_BODY:
            self._send(413, {"error": f"the body has {length} bytes; the limit is 262144"})
            return
        try:
            payload = json.loads(self.rfile.read(length))
            texts = [payload["text"]] if "text" in payload else list(payload["texts"])
            if not texts or not all(isinstance(t, str) for t in texts):
                raise TypeError("texts must be strings")
        except (ValueError, KeyError, TypeError) as exc:
            self._send(400, {"error": f'send {{"text": "..."}} or {{"texts": [...]}} ({exc})'})
            return
        predictions, timing = server.predict(texts)
        timing = {k: round(v, 3) for k, v in timing.items()}
        timing["total"] = round((time.perf_counter() - started) * 1e3, 3)
        self._send(200, {"model": server.model_id, "predictions": predictions, "timing_ms": timing})


def serve_teacher(folder: Path, port: int, threads: int) -> None:
    """Serve the teacher on 127.0.0.1:``port`` until stopped.

    The port listens before the model loads, as the Lambda emulator listens before its runtime
    starts: the first request then waits through INIT, and cold starts compare like for like.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = _TeacherServer(("127.0.0.1", port), _TeacherHandler)
    log.info("listening on 127.0.0.1:%d; loading %s", port, folder)
    started = time.perf_counter()
    server.predict, server.model_id = _teacher_predictor(folder, threads)
    log.info(
        "loaded teacher %s with %d threads in %.0f ms",
        folder,
        threads,
        (time.perf_counter() - started) * 1e3,
    )
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4 or args[0] != "serve-teacher":
        raise SystemExit(
            "usage: python -m slimbert.lab.bench_lambda serve-teacher FOLDER PORT THREADS"
        )
    serve_teacher(Path(args[1]), int(args[2]), int(args[3]))


if __name__ == "__main__":
    main()
