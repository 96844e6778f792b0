"""The one place that creates onnxruntime sessions, and how many CPUs they may really use.

Every knob is set explicitly rather than left to onnxruntime's defaults: its default thread
count is the machine's core count, which inside a container or a Lambda sandbox is the host's
cores, not the share this process is given; oversubscribing a 1-vCPU quota with 16 threads
makes every prediction slower.

onnxruntime is imported when the first session is made, not with this module: its import
starts a thread, and a process that forks after it (gunicorn's master, which imports the
Cloud Run entry point before forking its workers) leaves each child a copy of that thread's
state that the child's exit then waits on forever or aborts on (``terminate called after
throwing std::system_error``). Importing the runtime must stay free of threads.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from slimbert.errors import ConfigError

log = logging.getLogger(__name__)

THREADS_ENV = "SLIMBERT_THREADS"

# Module attributes (not constants inlined below) so tests can point them at temporary files.
CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")

PROVIDERS = ["CPUExecutionProvider"]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cpus_from_quota(quota: int, period: int) -> int | None:
    if quota <= 0 or period <= 0:  # -1 (v1) means "no limit"
        return None
    return max(1, math.ceil(quota / period))


def _own_cgroup(controller: str | None) -> str | None:
    """This process's cgroup path for a v1 controller (or v2 when ``None``), e.g. ``/a/b``.

    In a container the cgroup namespace makes it ``/`` and the root files above are the
    process's own; on a host (the local serverless lab) the process sits deeper.
    """
    text = _read(PROC_SELF_CGROUP)
    for line in (text or "").splitlines():
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        names = controllers.split(",") if controllers else []
        if (controller is None and controllers == "") or (controller in names):
            return path if path not in ("", "/") else None
    return None


def _nested(root_file: Path, controller: str | None) -> Path:
    own = _own_cgroup(controller)
    if own is None:
        return root_file
    nested = root_file.parent / own.lstrip("/") / root_file.name
    return nested if nested.exists() else root_file


def cgroup_cpu_limit() -> int | None:
    """CPUs allowed by the cgroup CPU quota (v2 first, then v1); None when there is no quota."""
    text = _read(_nested(CGROUP_V2_CPU_MAX, None))
    if text is not None:
        parts = text.split()
        # cgroup v2 writes "<quota> <period>", with the quota "max" when unlimited.
        if len(parts) == 2 and parts[0] != "max":
            try:
                return _cpus_from_quota(int(parts[0]), int(parts[1]))
            except ValueError:
                log.debug("unreadable %s: %r", CGROUP_V2_CPU_MAX, text)
        return None
    quota = _read(_nested(CGROUP_V1_QUOTA, "cpu"))
    period = _read(_nested(CGROUP_V1_PERIOD, "cpu"))
    if quota is None or period is None:
        return None
    try:
        return _cpus_from_quota(int(quota), int(period))
    except ValueError:
        log.debug("unreadable cgroup v1 quota %r / period %r", quota, period)
        return None


def available_cpus() -> int:
    """The CPUs this process may really use: its affinity mask, capped by the cgroup quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity API
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, limit)
    return max(1, cpus)


def resolve_threads(threads: int | None = None) -> int:
    """Threads for one session: the argument, else ``SLIMBERT_THREADS``, else available CPUs."""
    if threads is None:
        raw = os.environ.get(THREADS_ENV, "").strip()
        if not raw:
            return available_cpus()
        try:
            threads = int(raw)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ConfigError(
                f"{THREADS_ENV} must be a positive integer, got {raw!r}",
                hint=f"unset {THREADS_ENV} to use every CPU this process may use",
            )
        return threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")
    return threads


def session_options(threads: int | None = None, *, optimized: bool = False) -> Any:
    """``onnxruntime.SessionOptions`` with every setting that matters for latency made explicit.

    ``optimized``: the graph was optimised when it was exported and saved so (the bundle's
    ``graph_optimization``, docs/bundle.md), so the session runs it as it is instead of
    optimising it again at every cold start.
    """
    import onnxruntime as ort  # here, not at module level: see the module docstring

    options = ort.SessionOptions()
    options.intra_op_num_threads = resolve_threads(threads)
    # One request is one graph run: a second pool for parallel branches only adds threads.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if optimized
        else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    return options


def create_session(
    model_path: str | Path, threads: int | None = None, *, optimized: bool = False
) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU; the only place the runtime makes one."""
    import onnxruntime as ort

    options = session_options(threads, optimized=optimized)
    log.debug("onnx session for %s with %d threads", model_path, options.intra_op_num_threads)
    return ort.InferenceSession(str(model_path), sess_options=options, providers=PROVIDERS)
