"""The measuring of ``slimbert bench lambda``: one memory size, one concurrency level.

:class:`Harness` measures a :class:`~slimbert.lab.lambda_instances.Target` inside the limits
its platform gives a memory size (:mod:`slimbert.lab.cgroups`):

* :meth:`Harness.measure_size`: in one execution environment, a warm-up, then ``requests``
  real texts one at a time (client latency and the handler's own ``timing_ms.total``), the
  cgroup's peak memory and CFS throttling; then ``cold_starts`` fresh instances (process start
  to first answer; INIT is that less the warm median), each followed by a fresh start of
  the zip's stack floor (:mod:`slimbert.lab.coldfloor`) under the same limits;
* :meth:`Harness.measure_concurrency`: K instances, each in its own cgroup and serving one
  request at a time (Lambda scales by instances), driven by K client threads.

An instance that dies or answers an error is a result for its size (``"oom": true`` when the
OOM killer ended it), not a crash of the benchmark.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from slimbert.lab import cgroups
from slimbert.lab.lambda_batches import measure_batches
from slimbert.lab.lambda_instances import (
    Instance,
    InstanceFailed,
    Target,
    call_instance,
    emulator_durations,
    start_instance,
)
from slimbert.lab.lambda_options import BenchLambdaOptions
from slimbert.metrics import quantiles

log = logging.getLogger(__name__)


def cfs_throttling(before: dict[str, int], after: dict[str, int]) -> dict[str, Any] | None:
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


def _read_log(fn: Instance) -> str | None:
    if fn.log_path is None or not fn.log_path.is_file():
        return None
    return fn.log_path.read_text(errors="replace")


def cold_budget(log_text: str | None) -> dict[str, Any] | None:
    """The cold-start budget one instance printed (``SLIMBERT_INIT`` and ``SLIMBERT_FIRST``,
    :mod:`slimbert.runtime.phases`), or None: a runtime that prints none (an older package,
    the teacher), a failed load, or no first answer."""
    from slimbert.runtime.phases import read_phase_lines

    runs = read_phase_lines(log_text) if log_text else []
    # One process per instance's log, so its first record is the instance's cold start.
    if not runs or not runs[0]["ok"] or not runs[0]["answered"]:
        return None
    return runs[0]


def size_cpu(opts: BenchLambdaOptions, memory_mb: int) -> dict[str, Any]:
    requested = cgroups.platform_cpu(memory_mb, opts.platform, opts.gcp_cpu)
    vcpus, capped = cgroups.effective_cpu(requested)
    if opts.platform == "aws":
        from slimbert.deploy.platforms import lambda_threads

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
class Harness:
    """One benchmark run: its options, the texts it sends and its scratch folder."""

    opts: BenchLambdaOptions
    texts: list[str]
    work: Path
    use_cgroups: bool
    floors: dict[Path, Path] = dataclasses.field(default_factory=dict)  # zip -> its floor zip

    def text(self, i: int) -> str:
        return self.texts[i % len(self.texts)]  # cycle when the data is shorter

    def limits(
        self, label: str, memory_mb: int, vcpus: float, index: int = 0
    ) -> cgroups.CgroupLimits:
        name = f"{os.getpid()}-{label}"
        period_us = round(self.opts.cfs_period_ms * 1000)
        return cgroups.CgroupLimits(
            name, memory_mb, vcpus, use_cgroups=self.use_cgroups, index=index, period_us=period_us
        )

    def failure(
        self, block: dict[str, Any], exc: InstanceFailed, limits: list[cgroups.CgroupLimits]
    ) -> None:
        kills = sum(lim.oom_kills() for lim in limits)
        # Without a cgroup counter, a runtime killed by a signal is the OOM killer's mark.
        oom = kills > 0 or "signal: killed" in exc.log_tail
        block.update(oom=oom, oom_kills=kills, error=exc.message)
        block["log_tail"] = exc.log_tail.splitlines()[-5:]
        if limits and limits[0].cgroup is not None:
            block["peak_memory_mb"] = limits[0].peak_memory_mb()
        log.warning("%s: %s", "out of memory" if oom else "failed", exc.message)

    def measure_size(self, target: Target, memory_mb: int) -> dict[str, Any]:
        """Warm quantiles, peak memory and cold starts of ``target`` at ``memory_mb``."""
        opts = self.opts
        block: dict[str, Any] = {"oom": False, **size_cpu(opts, memory_mb)}
        deadline = time.monotonic() + opts.time_limit_s
        label = f"{target.name}-{memory_mb}"
        with self.limits(label, memory_mb, block["cpu_quota_vcpus"]) as limits:
            block["limits"] = limits.mode
            if limits.pinned_cpus is not None:  # what is enforced: whole CPUs
                block["cpu_quota_vcpus"] = float(limits.pinned_cpus)
            try:
                block.update(self._warm(target, memory_mb, block["threads"], limits, deadline))
                colds = [block.pop("cold_ms")]
                budgets = [block.pop("cold_budget")]
                floor = self._floor_target(target)
                floors: list[float] = []
                for i in range(opts.cold_starts):
                    # Interleaved, so that a busy spell slows both alike.
                    if floor is not None:
                        floor = self._floor_start(floor, memory_mb, block, limits, i, floors)
                    if i == opts.cold_starts - 1:
                        break
                    if time.monotonic() > deadline:
                        block["stopped_early"] = f"time limit: {len(colds)} cold starts"
                        break
                    ms, budget = self._cold(target, memory_mb, block["threads"], limits, i)
                    colds.append(ms)
                    budgets.append(budget)
                if floors:
                    block["floor_cold_start_ms"] = {**quantiles(floors), "values": floors}
            except InstanceFailed as exc:
                block.pop("cold_ms", None)
                block.pop("cold_budget", None)
                block.pop("client_ms_values", None)
                self.failure(block, exc, [limits])
                return block
        warm_p50 = float(np.median(block["client_ms_values"]))
        block.pop("client_ms_values")
        block["cold_start_ms"] = {**quantiles(colds), "values": colds}
        # INIT: process start to first answer, less what a warm request takes.
        inits = [max(0.0, c - warm_p50) for c in colds]
        block["init_ms"] = {"p50": float(np.median(inits)), "mean": float(np.mean(inits))}
        runs = [b for b in budgets if b is not None]
        if runs:
            from slimbert.lab.coldstart import phase_medians

            # The function's own account of each cold start (process start to its first
            # answer, phase by phase); the client's cold_start_ms above also holds the
            # emulator's start and the round trip.
            block["cold_phases"] = {
                "n": len(runs),
                "without_lines": len(budgets) - len(runs),
                "medians_ms": phase_medians(runs),
                "runs": runs,
            }
        return block

    def _floor_target(self, target: Target) -> Target | None:
        """The stack floor of a Lambda target (its zip copied once per run), else None."""
        if target.kind != "lambda" or not self.opts.floor:
            return None
        if target.source not in self.floors:
            from slimbert.lab.coldfloor import floor_zip

            dst = self.work / f"floor-{len(self.floors)}" / target.source.name
            self.floors[target.source] = floor_zip(target.source, dst)
        return target.floor(self.floors[target.source])

    def _floor_start(
        self,
        floor: Target,
        memory_mb: int,
        block: dict[str, Any],
        limits: cgroups.CgroupLimits,
        i: int,
        floors: list[float],
    ) -> Target | None:
        """One fresh start of the floor into ``floors``; None (no more) when it fails, which
        is recorded and does not fail the function's own measurement."""
        try:
            floors.append(self._cold(floor, memory_mb, block["threads"], limits, i)[0])
        except InstanceFailed as exc:
            block["floor_error"] = exc.message
            log.warning("the stack floor failed at %d MB: %s", memory_mb, exc.message)
            return None
        return floor

    def _instance(
        self, target: Target, memory_mb: int, threads: int, limits: cgroups.CgroupLimits, tag: str
    ) -> Instance:
        limits.settle()
        workdir = self.work / f"{target.name}-{memory_mb}-{tag}"
        fn = target.make(memory_mb, threads, limits.prefix, workdir)
        return fn

    def _warm(
        self,
        target: Target,
        memory_mb: int,
        threads: int,
        limits: cgroups.CgroupLimits,
        deadline: float,
    ) -> dict[str, Any]:
        opts = self.opts
        fn = self._instance(target, memory_mb, threads, limits, "warm")
        limits.reset_peak()
        client: list[float] = []
        function: list[float] = []
        warmed = 0
        stopped = None
        start_instance(fn)
        try:
            call_instance(fn, target, self.text(0))
            cold_ms = (fn.cold_start_s or 0.0) * 1e3
            for i in range(opts.warmup):
                if time.monotonic() > deadline:
                    break
                call_instance(fn, target, self.text(opts.requests + i))
                warmed += 1
            before = limits.cpu_stat()
            for i in range(opts.requests):
                if time.monotonic() > deadline:
                    stopped = f"time limit {opts.time_limit_s:g} s after {i} requests"
                    break
                ms, total = call_instance(fn, target, self.text(i))
                client.append(ms)
                function.append(total)
            if not function:
                raise InstanceFailed(f"no request measured within {opts.time_limit_s:g} s", "")
            from slimbert.deploy.invoke import peak_rss_mb

            rss = peak_rss_mb(fn.pid) if fn.pid else None
            peak = limits.peak_memory_mb()
            throttling = cfs_throttling(before, limits.cpu_stat())
            batches = None
            if opts.batch_sizes and target.kind != "teacher":
                batches = measure_batches(
                    fn,
                    target,
                    opts.batch_sizes,
                    opts.batch_requests,
                    self.text,
                    first_position=1 + warmed + len(function),
                    deadline=deadline,
                    peak_memory_mb=limits.peak_memory_mb,
                    oom=lambda tail: limits.oom_kills() > 0 or "signal: killed" in tail,
                )
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
        log_text = _read_log(fn)
        block["cold_budget"] = cold_budget(log_text)  # its first request was a cold start
        if target.kind == "lambda" and log_text is not None:
            # The emulator's REPORT Duration spans the runtime client's own work too, which
            # Lambda bills: a bound on the billed duration above the handler's own timing.
            reported = emulator_durations(log_text)
            measured = reported[1 + warmed : 1 + warmed + len(function)]
            if measured:
                block["emulator_duration_ms"] = quantiles(measured)
        if batches is not None:
            block["batched"] = batches.finish(log_text if target.kind == "lambda" else None)
        self._clean(fn, target)
        return block

    def _cold(
        self, target: Target, memory_mb: int, threads: int, limits: cgroups.CgroupLimits, i: int
    ) -> tuple[float, dict[str, Any] | None]:
        """One fresh instance to its first answer: (client ms, the function's phase budget)."""
        fn = self._instance(target, memory_mb, threads, limits, f"cold{i}")
        start_instance(fn)
        try:
            call_instance(fn, target, self.text(i + 1))
        finally:
            fn.stop()
        budget = cold_budget(_read_log(fn))
        self._clean(fn, target)
        return (fn.cold_start_s or 0.0) * 1e3, budget

    def _clean(self, fn: Instance, target: Target) -> None:
        # Each Lambda start unpacks the whole zip (about 100 MB): keep the disk from filling.
        if target.kind == "gcp" and fn.log_path is not None:
            fn.log_path.unlink(missing_ok=True)
        elif fn.log_path is not None:
            shutil.rmtree(fn.log_path.parent, ignore_errors=True)

    def measure_concurrency(self, target: Target, k: int, memory_mb: int) -> dict[str, Any]:
        """K instances, one request at a time each, K client threads over a bounded total."""
        opts = self.opts
        block: dict[str, Any] = {
            "instances": k,
            "memory_mb": memory_mb,
            **size_cpu(opts, memory_mb),
        }
        vcpus = block["cpu_quota_vcpus"]
        block["limits"] = "cgroup-v1" if self.use_cgroups else "affinity"
        if not self.use_cgroups:  # what is enforced: whole CPUs
            vcpus = block["cpu_quota_vcpus"] = float(cgroups.pin_command(vcpus)[1])
        block["total_vcpus"] = round(vcpus * k, 4)
        block["oversubscribed"] = block["total_vcpus"] > cgroups.host_cpus()
        deadline = time.monotonic() + opts.time_limit_s
        total = opts.concurrency_requests
        limits: list[cgroups.CgroupLimits] = []
        with contextlib.ExitStack() as stack:
            try:
                fns: list[Instance] = []
                for i in range(k):
                    lim = stack.enter_context(
                        self.limits(f"{target.name}-k{k}-{i}", memory_mb, vcpus, index=i)
                    )
                    limits.append(lim)
                    fn = self._instance(target, memory_mb, block["threads"], lim, f"k{k}-{i}")
                    stack.callback(self._clean, fn, target)
                    stack.callback(fn.stop)  # registered first: a failed start still stops
                    start_instance(fn)
                    fns.append(fn)
                for i, fn in enumerate(fns):  # every instance warm before the clock starts
                    for j in range(min(10, opts.warmup)):
                        call_instance(fn, target, self.text(i * 10 + j))
                block.update(self._drive(target, fns, total, deadline))
            except InstanceFailed as exc:
                self.failure(block, exc, limits)
                return block
            block["peak_memory_mb"] = [lim.peak_memory_mb() for lim in limits]
        return block

    def _drive(
        self, target: Target, fns: list[Instance], total: int, deadline: float
    ) -> dict[str, Any]:
        lock = threading.Lock()
        issued = [0]
        failed = threading.Event()

        def worker(fn: Instance) -> list[float]:
            done: list[float] = []
            while time.monotonic() < deadline and not failed.is_set():
                with lock:
                    if issued[0] >= total:
                        break
                    j = issued[0]
                    issued[0] += 1
                try:
                    done.append(call_instance(fn, target, self.text(j))[0])
                except InstanceFailed:
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
