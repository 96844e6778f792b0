"""Cgroups for function instances: the CPU each platform allots a memory size, the files a
cgroup gets (on a fake tree in tmp_path), and, where this runs as root with cgroup v1, a real
memory limit that the OOM killer enforces and a CPU quota that throttles."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from slimbert.errors import SlimbertError
from slimbert.lab import cgroups
from slimbert.lab.cgroups import Cgroup, effective_cpu, own_cgroup, platform_cpu


@pytest.mark.parametrize(
    ("memory_mb", "platform", "vcpus"),
    [
        (1769, "aws", 1.0),
        (3008, "aws", 1.70),
        (10240, "aws", 5.79),
        (128, "aws", 0.072),
        (1024, "gcp-gen1", 0.583),
        (2048, "gcp-gen1", 1.0),
        (1769, "gcp-gen1", 1.0),  # between tiers: the next tier up, as Google bills it
        (128, "gcp-gen1", 0.083),
        (16384, "gcp-gen1", 2.0),  # beyond the table: its largest tier (4.8 GHz)
        (1024, "gcp-gen2", 0.583),
        (3008, "gcp-gen2", 2.0),
    ],
)
def test_platform_cpu(memory_mb: int, platform: str, vcpus: float) -> None:
    assert platform_cpu(memory_mb, platform) == pytest.approx(vcpus, abs=0.005)


def test_platform_cpu_caps_and_overrides() -> None:
    assert platform_cpu(10240, "aws") < 6.0
    assert platform_cpu(20000, "aws") == 6.0  # Lambda's ceiling
    assert platform_cpu(512, "gcp-gen2", gcp_cpu=2.0) == 2.0  # gen2 with --cpu 2
    with pytest.raises(SlimbertError, match="unknown platform"):
        platform_cpu(1024, "azure")
    with pytest.raises(SlimbertError, match="positive"):
        platform_cpu(0, "aws")


def test_effective_cpu_is_capped_at_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups, "host_cpus", lambda: 2)
    assert effective_cpu(1.7) == (1.7, False)
    assert effective_cpu(5.79) == (2.0, True)


def test_own_cgroup_reads_proc(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/process_api/abc\n3:cpu,cpuacct:/\n0::/\n")
    assert own_cgroup("memory", proc) == "/process_api/abc"
    assert own_cgroup("cpu", proc) == "/"
    assert own_cgroup("pids", proc) == "/"
    assert own_cgroup("cpu", tmp_path / "missing") == "/"


@pytest.fixture
def fake_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A v1 layout with the memory hierarchy nested, as a supervisor might have put us."""
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(cgroups, "PARENT", "/sup/job1")
    for controller in cgroups.CONTROLLERS:
        (tmp_path / controller / "sup" / "job1").mkdir(parents=True)
        (tmp_path / controller / "sup" / "job1" / "cgroup.procs").write_text("")
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    return tmp_path


def test_cgroup_writes_quota_and_limits(fake_tree: Path) -> None:
    cpu_dir = fake_tree / "cpu" / "sup" / "job1" / "slimbert" / "aws-1769"
    mem_dir = fake_tree / "memory" / "sup" / "job1" / "slimbert" / "aws-1769"
    mem_dir.mkdir(parents=True)
    (mem_dir / "memory.memsw.limit_in_bytes").write_text("")  # present: swap gets limited too
    with Cgroup("aws-1769", 1769, platform_cpu(1769, "aws")) as cg:
        assert cg.paths == {"cpu": cpu_dir, "memory": mem_dir}
        assert (cpu_dir / "cpu.cfs_period_us").read_text() == "100000\n"
        assert (cpu_dir / "cpu.cfs_quota_us").read_text() == "100000\n"
        assert (mem_dir / "memory.limit_in_bytes").read_text() == f"{1769 << 20}\n"
        assert (mem_dir / "memory.memsw.limit_in_bytes").read_text() == f"{1769 << 20}\n"
        cg.add(4242)
        assert (cpu_dir / "cgroup.procs").read_text().split() == ["4242"]
        assert (mem_dir / "cgroup.procs").read_text().split() == ["4242"]
        assert cg.pids() == [4242]
        (mem_dir / "memory.max_usage_in_bytes").write_text(f"{300 << 20}\n")
        (mem_dir / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
        assert cg.peak_memory_mb() == 300.0
        assert cg.oom_kills() == 2 and cg.oom_killed()
    # On leaving, the process still inside goes back to the parent and the folders go.
    assert not cpu_dir.exists() and not mem_dir.exists()
    assert (fake_tree / "cpu" / "sup" / "job1" / "cgroup.procs").read_text().split() == ["4242"]


def test_cgroup_quota_floor_and_no_swap_file(fake_tree: Path) -> None:
    with Cgroup("tiny", 128, 0.001) as cg:
        cpu = cg.paths["cpu"]
        # The kernel's minimum quota (1 ms) over a period long enough to keep the share.
        assert (cpu / "cpu.cfs_quota_us").read_text() == "1000\n"
        assert (cpu / "cpu.cfs_period_us").read_text() == "1000000\n"
        assert not (cg.paths["memory"] / "memory.memsw.limit_in_bytes").exists()
        assert cg.peak_memory_mb() is None and cg.oom_kills() == 0
        assert cg.cpu_stat() == {}


def test_cgroup_period_keeps_the_share_and_reads_throttling(fake_tree: Path) -> None:
    with Cgroup("aws-1024", 1024, platform_cpu(1024, "aws"), period_us=10_000) as cg:
        cpu = cg.paths["cpu"]
        assert (cpu / "cpu.cfs_period_us").read_text() == "10000\n"
        assert (cpu / "cpu.cfs_quota_us").read_text() == "5789\n"  # 0.5789 vCPU
        (cpu / "cpu.stat").write_text("nr_periods 52\nnr_throttled 48\nthrottled_time 1449\n")
        assert cg.cpu_stat() == {"nr_periods": 52, "nr_throttled": 48, "throttled_time": 1449}
    # 128 MB (0.072 vCPU) needs a longer period than 10 ms for a quota of at least 1 ms.
    small = Cgroup("aws-128", 128, platform_cpu(128, "aws"), period_us=10_000)
    assert small.quota_us == 1000 and small.quota_us / small.period_us == pytest.approx(
        platform_cpu(128, "aws"), rel=1e-3
    )
    with pytest.raises(SlimbertError, match="CFS period"):
        Cgroup("x", 128, 1.0, period_us=500)


def test_cgroup_rejects_bad_arguments() -> None:
    with pytest.raises(SlimbertError, match="bad cgroup name"):
        Cgroup("../escape", 128, 1.0)
    with pytest.raises(SlimbertError, match="positive"):
        Cgroup("x", 0, 1.0)


def test_available_reports_why_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", tmp_path)
    ok, reason = cgroups.cgroups_available()
    assert not ok and "not mounted" in reason
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert "v2 only" in cgroups.cgroups_available()[1]


def test_available_on_a_fake_tree(fake_tree: Path) -> None:
    ok, reason = cgroups.cgroups_available()
    assert ok, reason
    assert not list((fake_tree / "cpu" / "sup" / "job1" / "slimbert").iterdir())  # probe gone


def test_join_and_pin_commands_run_the_command(tmp_path: Path) -> None:
    procs = [tmp_path / "a.procs", tmp_path / "b.procs"]

    class Fake(Cgroup):
        def procs_files(self) -> list[Path]:
            return procs

    prefix = cgroups.join_command(Fake("x", 128, 1.0, root=tmp_path))
    done = subprocess.run([*prefix, "/bin/sh", "-c", "echo $$"], capture_output=True, text=True)
    pid = done.stdout.strip()
    assert done.returncode == 0 and pid.isdigit()
    # sh wrote its own pid, then exec'd the command under the same pid.
    assert [p.read_text().strip() for p in procs] == [pid, pid]

    prefix, n = cgroups.pin_command(0.3)
    code = "import os; print(len(os.sched_getaffinity(0)))"
    done = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True)
    assert n == 1 and done.stdout.strip() == "1", done.stderr


# -- the real thing (root, cgroup v1) ---------------------------------------------------------


@pytest.fixture
def real_cgroups() -> None:
    ok, reason = cgroups.cgroups_available()
    if not ok:
        pytest.skip(f"cgroups unavailable: {reason}")


@pytest.mark.usefixtures("real_cgroups")
def test_real_memory_limit_kills_and_is_reported() -> None:
    hog = "b = bytearray(200 << 20); print('survived')"
    with Cgroup("test-oom", 64, 1.0) as cg:
        done = subprocess.run(
            [*cgroups.join_command(cg), sys.executable, "-c", hog],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == -9 and "survived" not in done.stdout
        assert cg.oom_killed()
        peak = cg.peak_memory_mb()
        assert peak is not None and 0 < peak <= 64.0
        paths = list(cg.paths.values())
    assert not any(p.exists() for p in paths)


@pytest.mark.usefixtures("real_cgroups")
def test_real_cpu_quota_throttles() -> None:
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.05: pass"
    with Cgroup("test-cpu", 256, 0.05) as cg:
        started = time.perf_counter()
        subprocess.run([*cgroups.join_command(cg), sys.executable, "-c", spin], timeout=60)
        wall = time.perf_counter() - started
        stat = (cg.paths["cpu"] / "cpu.stat").read_text()
        throttled = int(stat.split("nr_throttled")[1].split()[0])
        assert not cg.oom_killed()
    # Python's start-up plus 50 ms of spinning at 5% of a CPU cannot finish within 0.5 s.
    assert throttled > 0 and wall > 0.5


def test_limits_choose_cgroup_or_pinning(fake_tree: Path) -> None:
    with cgroups.CgroupLimits("lim", 512, 0.29, use_cgroups=True) as limits:
        assert limits.mode == "cgroup-v1" and limits.pinned_cpus is None
        assert limits.cgroup is not None and limits.cgroup.paths["cpu"].is_dir()
        assert limits.prefix[:2] == ["/bin/sh", "-c"]
        assert limits.peak_memory_mb() is None and limits.oom_kills() == 0
    assert not limits.cgroup.paths["cpu"].exists()
    with cgroups.CgroupLimits("pin", 512, 0.29, use_cgroups=False, index=1) as pinned:
        assert pinned.mode == "affinity" and pinned.pinned_cpus == 1 and pinned.cgroup is None
        assert pinned.peak_memory_mb() is None and pinned.oom_kills() == 0
