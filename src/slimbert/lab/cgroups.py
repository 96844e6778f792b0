"""Give one function instance the memory and CPU its platform would, with Linux cgroups (v1).

A Lambda function with 1,769 MB gets one vCPU and is killed beyond 1,769 MB; a Google
function gets the CPU of its memory tier. :class:`Cgroup` imitates that for a local process
tree: it creates ``<root>/{cpu,memory}/<parent>/slimbert/<name>``, writes the CFS quota and
the memory limit, and reads back the peak memory and whether the OOM killer struck.

``<parent>`` is the cgroup this process already runs in (``/`` on a plain host), so the
function's cgroup nests inside whatever limits a supervisor put the benchmark under instead of
escaping them. :data:`CGROUP_ROOT` and :data:`PARENT` are module attributes so tests can point
them at a fake tree.

:func:`platform_cpu` is the CPU each platform allots to a memory size:

* ``aws``: memory / 1,769 MB vCPUs, at most 6 (Lambda's documented proportional share);
* ``gcp-gen1``: Google's fixed clock per memory tier (128 MB: 0.2 GHz ... 2,048 MB: 2.4 GHz),
  with 2.4 GHz taken as one vCPU; a size between tiers gets the next tier up, as it is billed;
* ``gcp-gen2``: the CPU configured with ``--cpu``, else Google's default per memory tier.

The share is enforced by the CFS bandwidth controller: ``quota`` microseconds of CPU per
``period``. The kernel's default period, 100 ms, turns a 0.58-vCPU share into "run for 58 ms,
then wait up to 42 ms" whenever the function is busy for longer than its quota: that stall is
a property of the window the harness picked, not of the platform, which documents a share and
not a window. :class:`Cgroup` therefore takes the period as a parameter (``slimbert bench
lambda`` uses 10 ms; see docs/design.md) and keeps ``quota / period`` equal to the share.
:meth:`Cgroup.cpu_stat` reads back how often the quota ran out (``nr_throttled``) and for how
long (``throttled_time``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import signal
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from slimbert.deploy.platforms import AWS_MAX_VCPUS, AWS_MB_PER_VCPU
from slimbert.errors import SlimbertError

log = logging.getLogger(__name__)

PlatformName = Literal["aws", "gcp-gen1", "gcp-gen2"]
PLATFORMS: tuple[str, ...] = ("aws", "gcp-gen1", "gcp-gen2")

CGROUP_ROOT = Path("/sys/fs/cgroup")
# The cgroup the function cgroups nest under, per controller; None: this process's own.
PARENT: str | None = None
CONTROLLERS = ("cpu", "memory")
CFS_PERIOD_US = 100_000  # the kernel's default
MIN_QUOTA_US = 1_000  # the kernel refuses a smaller cpu.cfs_quota_us
MAX_PERIOD_US = 1_000_000  # ... and a longer cpu.cfs_period_us
MIB = 1 << 20

GCP_GHZ_PER_VCPU = 2.4
# https://cloud.google.com/functions/1stgendocs/configuring/memory (GHz per memory tier)
GCP_GEN1_GHZ = {128: 0.2, 256: 0.4, 512: 0.8, 1024: 1.4, 2048: 2.4, 4096: 4.8, 8192: 4.8}
# https://cloud.google.com/functions/docs/configuring/memory (default vCPU per memory tier)
GCP_GEN2_VCPU = {
    128: 0.083, 256: 0.167, 512: 0.333, 1024: 0.583, 2048: 1.0,
    4096: 2.0, 8192: 2.0, 16384: 4.0, 32768: 8.0,
}  # fmt: skip


def _tier(table: dict[int, float], memory_mb: int) -> float:
    """The value of the smallest tier at or above ``memory_mb`` (the largest tier beyond)."""
    for size in sorted(table):
        if memory_mb <= size:
            return table[size]
    return table[max(table)]


def platform_cpu(memory_mb: int, platform: str = "aws", gcp_cpu: float | None = None) -> float:
    """vCPUs that ``platform`` gives a function of ``memory_mb`` MB (``gcp_cpu``: gen2's --cpu)."""
    if memory_mb <= 0:
        raise SlimbertError(f"memory_mb must be positive, got {memory_mb}")
    if platform == "aws":
        return min(AWS_MAX_VCPUS, memory_mb / AWS_MB_PER_VCPU)
    if platform == "gcp-gen1":
        return _tier(GCP_GEN1_GHZ, memory_mb) / GCP_GHZ_PER_VCPU
    if platform == "gcp-gen2":
        return float(gcp_cpu) if gcp_cpu is not None else _tier(GCP_GEN2_VCPU, memory_mb)
    raise SlimbertError(f"unknown platform {platform!r}", hint=f"one of {', '.join(PLATFORMS)}")


def host_cpus() -> int:
    """CPUs this process may run on (its affinity set, not the machine's count)."""
    return len(os.sched_getaffinity(0))


def effective_cpu(requested: float) -> tuple[float, bool]:
    """(the quota this host can honour, whether it was capped): at most the host's CPUs."""
    cpus = float(host_cpus())
    return (min(requested, cpus), requested > cpus)


def own_cgroup(controller: str, proc_cgroup: Path = Path("/proc/self/cgroup")) -> str:
    """This process's cgroup path in a v1 ``controller`` hierarchy (``/`` when not listed)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return "/"
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and controller in parts[1].split(","):
            return parts[2] or "/"
    return "/"


def _base(controller: str, root: Path | None = None, parent: str | None = None) -> Path:
    """``<root>/<controller>/<parent>/slimbert``."""
    where = parent if parent is not None else (PARENT or own_cgroup(controller))
    return (root or CGROUP_ROOT) / controller / where.strip("/") / "slimbert"


def cgroups_available() -> tuple[bool, str]:
    """Whether :class:`Cgroup` can work here, and why not (or what it will use)."""
    for controller, probe in (("cpu", "cpu.cfs_quota_us"), ("memory", "memory.limit_in_bytes")):
        mount = CGROUP_ROOT / controller
        if not (mount / probe).is_file():
            if (CGROUP_ROOT / "cgroup.controllers").is_file():
                return False, f"{CGROUP_ROOT} is cgroup v2 only; slimbert drives the v1 layout"
            return False, f"the cgroup v1 {controller} controller is not mounted at {mount}"
    for controller in CONTROLLERS:
        base = _base(controller)
        # Create and remove a probe: write access to a cgroup tree is only known by trying.
        probe_dir = base / f".probe-{os.getpid()}"
        try:
            probe_dir.mkdir(parents=True, exist_ok=True)
            _rmdir(probe_dir)
        except OSError as exc:
            who = "not root" if os.geteuid() != 0 else "root"
            return False, f"cannot create a cgroup under {base} ({who}: {exc.strerror})"
    return True, f"cgroup v1 under {_base('cpu').parent} and {_base('memory').parent}"


def _rmdir(path: Path) -> None:
    try:
        os.rmdir(path)
    except OSError as exc:
        if exc.errno != errno.ENOTEMPTY:
            raise
        # A real cgroup directory is removable with its control files in it; a fake tree on
        # an ordinary file system (tests) needs them removed first.
        for child in path.iterdir():
            if child.is_file():
                child.unlink()
        os.rmdir(path)


class Cgroup:
    """One function instance's cgroup: ``with Cgroup("aws-1024", 1024, 0.58) as cg: ...``.

    Entering creates it and writes the limits; :meth:`add` (or :meth:`procs_files` for a
    process that adds itself before ``exec``) puts a process in it, and its children follow.
    Leaving moves any process still inside to the parent and removes the cgroup.
    """

    def __init__(
        self,
        name: str,
        memory_mb: int,
        cpu_vcpus: float,
        *,
        root: Path | None = None,
        parent: str | None = None,
        period_us: int = CFS_PERIOD_US,
    ) -> None:
        if not name or "/" in name or name.startswith("."):
            raise SlimbertError(f"bad cgroup name {name!r}")
        if memory_mb <= 0 or cpu_vcpus <= 0:
            raise SlimbertError("a cgroup needs a positive memory size and CPU quota")
        if not MIN_QUOTA_US <= period_us <= MAX_PERIOD_US:
            raise SlimbertError(
                f"the CFS period must be {MIN_QUOTA_US}..{MAX_PERIOD_US} us, got {period_us}"
            )
        self.name = name
        self.memory_mb = int(memory_mb)
        self.cpu_vcpus = float(cpu_vcpus)
        self.requested_period_us = int(period_us)
        self.paths = {c: _base(c, root, parent) / name for c in CONTROLLERS}
        self.created = False

    @property
    def period_us(self) -> int:
        """The requested period, lengthened when the share's quota would be under 1 ms.

        The kernel refuses a quota under 1 ms; a longer period keeps ``quota / period`` at the
        share (0.07 vCPU at 10 ms would otherwise become 0.1 vCPU).
        """
        needed = math.ceil(MIN_QUOTA_US / self.cpu_vcpus)
        return min(MAX_PERIOD_US, max(self.requested_period_us, needed))

    @property
    def quota_us(self) -> int:
        return max(MIN_QUOTA_US, round(self.cpu_vcpus * self.period_us))

    def _write(self, controller: str, file: str, value: str | int) -> None:
        (self.paths[controller] / file).write_text(f"{value}\n")

    def _read(self, controller: str, file: str) -> str | None:
        try:
            return (self.paths[controller] / file).read_text()
        except OSError:
            return None

    def create(self) -> Self:
        for path in self.paths.values():
            path.mkdir(parents=True, exist_ok=True)
        self.created = True
        # Unlimited first: a reused cgroup's old quota over a shorter period could briefly
        # ask for more than a parent cgroup's limit, which the kernel refuses.
        self._write("cpu", "cpu.cfs_quota_us", -1)
        self._write("cpu", "cpu.cfs_period_us", self.period_us)
        self._write("cpu", "cpu.cfs_quota_us", self.quota_us)
        limit = self.memory_mb * MIB
        self._write("memory", "memory.limit_in_bytes", limit)
        # Without a swap limit too, a swapping host would page the function out instead of
        # killing it, and an out-of-memory size would look merely slow. memsw must be set
        # after (and be at least) memory.limit_in_bytes.
        if (self.paths["memory"] / "memory.memsw.limit_in_bytes").exists():
            self._write("memory", "memory.memsw.limit_in_bytes", limit)
        log.debug("cgroup %s: %d MB, %.3f vCPU", self.name, self.memory_mb, self.cpu_vcpus)
        return self

    def procs_files(self) -> list[Path]:
        """The ``cgroup.procs`` files a process writes its pid to, to join this cgroup."""
        return [path / "cgroup.procs" for path in self.paths.values()]

    def add(self, pid: int) -> None:
        """Move ``pid`` into this cgroup (children it forks later are in it too)."""
        for procs in self.procs_files():
            # cgroup.procs takes one pid per write(); appending keeps a fake file readable.
            with open(procs, "a") as fh:
                fh.write(f"{pid}\n")

    def pids(self) -> list[int]:
        found: set[int] = set()
        for controller in CONTROLLERS:
            text = self._read(controller, "cgroup.procs") or ""
            found.update(int(p) for p in text.split() if p.isdigit())
        return sorted(found)

    def wait_empty(self, timeout_s: float = 5.0) -> bool:
        """Wait until no process is left inside (a stopped function's children exit late)."""
        deadline = time.monotonic() + timeout_s
        while self.pids():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def _counter(self, file: str, key: str | None = None) -> int | None:
        text = self._read("memory", file)
        if text is None:
            return None
        if key is None:
            return int(text.split()[0]) if text.split() else None
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == key:
                return int(parts[1])
        return None

    def cpu_stat(self) -> dict[str, int]:
        """The CFS counters of ``cpu.stat``: ``nr_periods``, ``nr_throttled``, ``throttled_time``
        (ns) and whatever else the kernel lists; empty when unreadable."""
        text = self._read("cpu", "cpu.stat") or ""
        counters = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                counters[parts[0]] = int(parts[1])
        return counters

    def peak_memory_mb(self) -> float | None:
        """The most memory the cgroup has held since creation or :meth:`reset_peak` (MiB).

        Counts what the kernel charges the function: anonymous memory and the page cache its
        processes brought in, as the platform's memory limit does.
        """
        peak = self._counter("memory.max_usage_in_bytes")
        return None if peak is None else peak / MIB

    def reset_peak(self) -> None:
        with contextlib.suppress(OSError):
            self._write("memory", "memory.max_usage_in_bytes", 0)

    def oom_kills(self) -> int:
        """Processes the OOM killer ended in this cgroup (``oom_kill`` of memory.oom_control)."""
        kills = self._counter("memory.oom_control", "oom_kill")
        if kills is not None:
            return kills
        # Kernels before 4.13 have no counter: a process at the limit with the OOM killer busy
        # is the best sign left.
        return int(bool(self._counter("memory.oom_control", "under_oom")))

    def oom_killed(self) -> bool:
        return self.oom_kills() > 0

    def failcnt(self) -> int:
        """How often the limit was hit (the kernel reclaimed or killed); 0 when unknown."""
        return self._counter("memory.failcnt") or 0

    def remove(self) -> None:
        """Move processes still inside to the parent cgroup, then remove the directories."""
        if not self.created:
            return
        for controller, path in self.paths.items():
            if not path.exists():
                continue
            parent_procs = path.parent.parent / "cgroup.procs"
            for pid in (self._read(controller, "cgroup.procs") or "").split():
                with contextlib.suppress(OSError), open(parent_procs, "a") as fh:
                    fh.write(f"{pid}\n")
            try:
                _rmdir(path)
            except OSError as exc:
                log.warning("could not remove cgroup %s: %s", path, exc)
            with contextlib.suppress(OSError):
                os.rmdir(path.parent)  # the shared slimbert/ folder, once nothing else uses it
        self.created = False

    def __enter__(self) -> Self:
        return self.create()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.remove()


class CgroupLimits:
    """What one process tree may use: a :class:`Cgroup`, or pinned CPUs without cgroups.

    ``prefix`` goes before the command that starts the process (:func:`join_command` or
    :func:`pin_command`); ``index`` spreads pinned instances over the host's CPUs.
    """

    def __init__(
        self,
        name: str,
        memory_mb: int,
        vcpus: float,
        *,
        use_cgroups: bool,
        index: int = 0,
        period_us: int = CFS_PERIOD_US,
    ) -> None:
        self.cgroup = Cgroup(name, memory_mb, vcpus, period_us=period_us) if use_cgroups else None
        self.pinned_cpus: int | None = None
        if self.cgroup is not None:
            self.prefix = join_command(self.cgroup)
        else:
            self.prefix, self.pinned_cpus = pin_command(vcpus, offset=index)

    @property
    def mode(self) -> str:
        return "cgroup-v1" if self.cgroup is not None else "affinity"

    def peak_memory_mb(self) -> float | None:
        return self.cgroup.peak_memory_mb() if self.cgroup is not None else None

    def reset_peak(self) -> None:
        if self.cgroup is not None:
            self.cgroup.reset_peak()

    def oom_kills(self) -> int:
        return self.cgroup.oom_kills() if self.cgroup is not None else 0

    def cpu_stat(self) -> dict[str, int]:
        return self.cgroup.cpu_stat() if self.cgroup is not None else {}

    def settle(self, timeout_s: float = 5.0) -> None:
        """Wait for a stopped process tree to leave the cgroup; kill what outlives it."""
        if self.cgroup is None or self.cgroup.wait_empty(timeout_s):
            return
        for pid in self.cgroup.pids():  # only processes started into this cgroup are here
            log.warning("process %d outlived its function instance; killing it", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.cgroup.wait_empty(timeout_s)

    def __enter__(self) -> Self:
        if self.cgroup is not None:
            self.cgroup.create()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.cgroup is not None:
            self.settle()
            self.cgroup.remove()


def join_command(cgroup: Cgroup) -> list[str]:
    """A prefix that puts the command it starts into ``cgroup`` before ``exec``.

    ``sh`` writes its own pid to each ``cgroup.procs`` and then becomes the command, so the
    command and everything it forks start inside the limits, with no window outside them.
    """
    files = [str(p) for p in cgroup.procs_files()]
    script = (
        'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 97; shift; n=$((n-1)); '
        'done; exec "$@"'
    )
    return ["/bin/sh", "-c", script, "slimbert-cgroup", str(len(files)), *files]


def pin_command(vcpus: float, offset: int = 0) -> tuple[list[str], int]:
    """A prefix that pins the command to ``ceil(vcpus)`` CPUs (the fallback without cgroups).

    Returns (prefix, CPUs pinned). ``offset`` rotates the CPUs chosen, so K instances spread
    over the host instead of sharing its first CPU. Pinning gives whole CPUs only, so a
    fractional share becomes a whole CPU: results measured this way are marked as such.
    """
    allowed = sorted(os.sched_getaffinity(0))
    n = max(1, min(len(allowed), math.ceil(vcpus - 1e-9)))
    start = offset % len(allowed)
    rotated = allowed[start:] + allowed[:start]
    cpus = ",".join(str(c) for c in sorted(rotated[:n]))
    script = (
        "import os, sys; os.sched_setaffinity(0, [int(c) for c in sys.argv[1].split(',')]); "
        "os.execvp(sys.argv[2], sys.argv[2:])"
    )
    return [sys.executable, "-I", "-S", "-c", script, cpus], n
