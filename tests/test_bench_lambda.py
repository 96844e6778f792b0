"""``slimbert bench lambda``: the smoke profile on the tiny bundle's Lambda zip, run through the
real emulator in cgroups (or pinned CPUs without them), and the results that ``slimbert cost``
reads. The full protocol (5,000 requests x 4 sizes) belongs in ``make bench``, not here.

Skips like ``test_lambda_local.py`` when Python 3.12, the emulator or the wheels are missing.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest

from runtime_fixtures import CUES, FILLER
from slimbert.deploy.toolchain import find_python312, host_arch, rie_binary
from slimbert.errors import ConfigError, SlimbertError
from slimbert.lab import cgroups
from slimbert.lab.bench_lambda import BenchLambdaOptions, _platform_fields, run_lambda_bench
from slimbert.lab.cost import CostOptions, run_cost
from slimbert.lab.lambda_batches import BATCH_WARMUP, measure_batches
from slimbert.lab.lambda_harness import Harness, cfs_throttling, cold_budget
from slimbert.lab.lambda_instances import (
    InstanceFailed,
    LocalTeacher,
    Target,
    emulator_durations,
    emulator_reports,
)
from slimbert.lab.lambda_markdown import batched_section, cold_section, phase_runs
from slimbert.lab.results import read_results
from slimbert.metrics import quantiles
from test_package import (  # noqa: F401 - session fixtures shared with the package tests
    gcp_package,
    lambda_package,
    tiny_bundle,
    wheel_cache,
)

SECTIONS = {"benchmark", "created", "platform", "arch", "measured", "memory", "oom_sizes",
            "functions", "ratios", "cpu_mapping", "limits", "machine", "function_runtime",
            "dataset", "options", "profile", "notes"}  # fmt: skip


@pytest.fixture(scope="module")
def texts_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 short texts: shorter than the 50 requests of the smoke profile, so they cycle."""
    path = tmp_path_factory.mktemp("bench-data") / "texts.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text"])
        for i in range(30):
            label = sorted(CUES)[i % 3]
            words = [FILLER[(i + j) % len(FILLER)] for j in range(i % 7)]
            writer.writerow([" ".join([*words, CUES[label][i % 6]])])
    return path


@pytest.fixture(scope="module")
def runnable_package(lambda_package: tuple[Path, dict[str, Any]]) -> Path:  # noqa: F811
    try:
        find_python312()
        rie_binary(host_arch())
    except SlimbertError as exc:
        pytest.skip(f"cannot run the Lambda package here: {exc}")
    return lambda_package[0]


def _ordered(q: dict[str, float]) -> bool:
    return q["p50"] <= q["p90"] <= q["p95"] <= q["p99"] <= q["max"]


def test_quick_smoke_run(runnable_package: Path, texts_csv: Path, tmp_path: Path) -> None:
    options = BenchLambdaOptions(
        package=runnable_package, data=str(texts_csv), quick=True, results=tmp_path / "results"
    )
    report = run_lambda_bench(options)
    out = Path(report["out"])
    doc = json.loads((out / "lambda.json").read_text())
    assert set(doc) >= SECTIONS
    assert "# Serverless function benchmark" in (out / "lambda.md").read_text()
    assert doc["platform"] == "aws-lambda" and doc["arch"] == host_arch()
    assert doc["profile"]["memory_mb"] == [1024] and doc["options"]["quick"] is True

    block = doc["memory"]["1024"]
    assert block["oom"] is False and doc["oom_sizes"] == []
    assert len(block["durations_ms"]) == block["requests"] == 50
    assert block["warmup"] == 10
    assert 0 < block["p50_ms"] <= block["p95_ms"] <= block["p99_ms"] <= block["max_ms"]
    assert _ordered(block["client_ms"]) and _ordered(block["emulator_duration_ms"])
    assert block["client_ms"]["p50"] >= block["p50_ms"]  # the round trip holds the handler
    cold = block["cold_start_ms"]
    assert cold["n"] == 2 and 0 < cold["p50"] <= cold["p90"]
    assert 0 <= block["init_ms"]["p50"] < cold["p90"]
    assert block["cpu_requested_vcpus"] == pytest.approx(1024 / 1769, abs=1e-3)
    # Batched requests: every batch size, 10 requests each in the smoke profile, billed as the
    # emulator's REPORT lines say.
    batched = block["batched"]
    assert list(batched) == ["1", "8", "32", "64"]
    for k, entry in batched.items():
        assert entry["texts_per_request"] == int(k) and entry["requests"] == 10
        assert entry["errors"] == 0 and entry["duration_source"] == "emulator-report"
        assert _ordered(entry["client_ms"]) and _ordered(entry["duration_ms"])
        assert entry["billed_ms_mean"] >= entry["duration_ms"]["mean"]
    assert "## Batched requests: student-lambda" in (out / "lambda.md").read_text()
    # The function's own cold-start budget, one per start (the warm instance's first included).
    phases = block["cold_phases"]
    assert phases["n"] == 2 and phases["without_lines"] == 0 and len(phases["runs"]) == 2
    assert all(run["answered"] and run["phases_ms"]["session"] > 0 for run in phases["runs"])
    assert 0 < phases["medians_ms"]["total"] < cold["p90"]  # the client's view holds the emulator
    assert "### Phases" in (out / "lambda.md").read_text()
    assert (out / doc["plots"]["cold_phases"]).is_file()  # the stacked bars, beside lambda.md
    # The stack floor: one fresh start of the import-only zip beside each of the function's.
    floor = block["floor_cold_start_ms"]
    assert floor["n"] == 2 and floor["p50"] > 0 and "floor_error" not in block
    assert "stack floor p50" in (out / "lambda.md").read_text()

    concurrency = doc["functions"]["student-lambda"]["concurrency"]["instances"]
    assert set(concurrency) == {"1", "2"}
    for k, level in concurrency.items():
        assert level["requests"] == 40 and level["throughput_rps"] > 0
        assert len(level["per_instance_requests"]) == int(k) and _ordered(level["latency_ms"])

    if doc["limits"]["cgroups"]:
        assert block["limits"] == "cgroup-v1"
        assert block["peak_memory_mb"] > 0 and block["cpu_quota_vcpus"] == pytest.approx(0.5789)
        assert doc["limits"]["cfs_period_us"] == 10_000
        throttling = block["throttling"]
        assert 0 <= throttling["throttled_periods"] <= throttling["periods"]
        assert throttling["throttled_ms"] >= 0
        # Every instance's cgroup is gone afterwards.
        for controller in cgroups.CONTROLLERS:
            base = cgroups._base(controller)
            assert not base.exists() or not any(base.glob(f"{os.getpid()}-*"))
    else:
        assert block["limits"] == "affinity" and any("no cgroups" in n for n in doc["notes"])

    # slimbert cost reads it as it is.
    results = read_results(out / "lambda.json")
    assert results.platform == f"aws-lambda-{host_arch()}"
    assert len(results.memory[1024].durations_ms) == 50
    assert results.memory[1024].init_ms == pytest.approx(block["init_ms"]["mean"])
    cost = run_cost(CostOptions(results=out / "lambda.json"))
    assert cost["platforms"][f"aws-lambda-{host_arch()}"]["rows"][0]["total_usd"] > 0


# -- pieces, without starting anything ---------------------------------------------------------


def test_options_validate_and_quick_profile() -> None:
    with pytest.raises(ConfigError, match="nothing to measure"):
        BenchLambdaOptions(package=None)
    with pytest.raises(ConfigError, match="warmup"):
        BenchLambdaOptions(warmup=10)
    with pytest.raises(ConfigError, match="concurrency"):
        BenchLambdaOptions(concurrency=(0,))
    with pytest.raises(ConfigError, match="outside"):
        BenchLambdaOptions(memory_mb=(64,))
    options = BenchLambdaOptions.from_dict({"memory_mb": "512,1024", "platform": "gcp-gen1"})
    assert options.memory_mb == (512, 1024) and options.profile() is options
    quick = BenchLambdaOptions(quick=True).profile()
    assert (quick.memory_mb, quick.requests, quick.warmup) == ((1024,), 50, 10)
    assert quick.cold_starts == 2
    assert (quick.concurrency, quick.concurrency_requests) == ((1, 2), 40)
    assert BenchLambdaOptions(quick=True, memory_mb=(2048,)).profile().memory_mb == (2048,)
    # The keys slimbert cost prices by.
    aws = _platform_fields(BenchLambdaOptions())
    assert aws == {"platform": "aws-lambda", "arch": host_arch()}
    gen1 = _platform_fields(BenchLambdaOptions(platform="gcp-gen1"))
    assert gen1 == {"platform": "gcp-functions-gen1", "arch": None}


def test_throttling_from_two_cpu_stat_reads() -> None:
    before = {"nr_periods": 100, "nr_throttled": 10, "throttled_time": 5_000_000}
    after = {"nr_periods": 300, "nr_throttled": 60, "throttled_time": 105_000_000}
    assert cfs_throttling(before, after) == {
        "periods": 200,
        "throttled_periods": 50,
        "throttled_fraction": 0.25,
        "throttled_ms": 100.0,
    }
    assert cfs_throttling({}, {}) is None  # no cgroup: nothing to read
    with pytest.raises(ConfigError, match="cfs_period_ms"):
        BenchLambdaOptions(cfs_period_ms=0.1)


def test_quantiles_and_emulator_report_lines() -> None:
    q = quantiles([float(v) for v in range(1, 101)])
    assert q["n"] == 100 and q["max"] == 100 and q["p50"] == pytest.approx(50.5)
    assert _ordered(q)
    log = (
        "START RequestId: a Version: $LATEST\n"
        "REPORT RequestId: a\tInit Duration: 0.07 ms\tDuration: 488.65 ms\tBilled Duration: 489\n"
        "[INFO] REPORT RequestId: not-a-report-line Duration: 9 ms\n"
        "REPORT RequestId: b\tDuration: 1.54 ms\tBilled Duration: 2 ms\tMemory Size: 1024 MB\n"
    )
    assert emulator_durations(log) == [488.65, 1.54]


def test_a_killed_runtime_is_an_oom_result(tmp_path: Path) -> None:
    run = Harness(BenchLambdaOptions(quick=True), ["x"], tmp_path, use_cgroups=False)
    limits = cgroups.CgroupLimits("t", 512, 0.3, use_cgroups=False)
    block: dict[str, Any] = {"oom": False}
    tail = "(rapid) Invoke failed error=Runtime exited with error: signal: killed"
    run.failure(block, InstanceFailed("the function answered 502", tail), [limits])
    assert block["oom"] is True and block["error"] == "the function answered 502"
    other: dict[str, Any] = {"oom": False}
    run.failure(other, InstanceFailed("answered 500", "Traceback ..."), [limits])
    assert other["oom"] is False and other["log_tail"] == ["Traceback ..."]


def test_teacher_serves_the_same_json(tiny_model: Path, tmp_path: Path) -> None:
    """The baseline's local HTTP function answers like the packaged handler does."""
    teacher = LocalTeacher(tiny_model, threads=1, workdir=tmp_path / "teacher")
    with teacher:
        answer, ms = teacher.invoke({"text": "good great"})
        assert answer["statusCode"] == 200, teacher.log_tail()
        body = json.loads(answer["body"])
        assert set(body["timing_ms"]) == {"tokenize", "inference", "total"}
        assert 0 < body["timing_ms"]["total"] < ms
        assert len(body["predictions"]) == 1 and "probabilities" in body["predictions"][0]
        assert teacher.cold_start_s is not None and teacher.cold_start_s * 1e3 >= ms
        bad, _ = teacher.invoke({"texts": 3})
        assert bad["statusCode"] == 400
        pid = teacher.pid
    assert pid is not None and teacher.pid is None


@pytest.mark.slow
def test_quick_run_with_gcp_and_teacher(
    runnable_package: Path,
    gcp_package: Path,  # noqa: F811
    tiny_model: Path,
    texts_csv: Path,
    tmp_path: Path,
) -> None:
    options = BenchLambdaOptions(
        package=runnable_package,
        gcp=gcp_package,
        teacher=tiny_model,
        data=str(texts_csv),
        quick=True,
        results=tmp_path,
    )
    doc = run_lambda_bench(options)
    assert set(doc["functions"]) == {"student-lambda", "student-gcp", "teacher"}
    for name in ("student-lambda", "student-gcp"):
        row = doc["ratios"][name]["memory"]["1024"]
        assert row["p50_ms_teacher_over_student"] > 0
        assert row["cold_start_p50_teacher_over_student"] > 0
        assert set(doc["ratios"][name]["throughput_student_over_teacher"]) == {"1", "2"}
    read_results(Path(doc["out"]) / "lambda.json")


# -- batched requests, against a fake function that logs REPORT lines as the emulator does ------


class FakeLambda:
    """A running Lambda instance without the emulator: answers and REPORT lines on demand."""

    cold_start_s: float | None = 0.1
    log_path: Path | None = None
    pid: int | None = None

    def __init__(self, *, drop_at: int | None = None, die_at: int | None = None) -> None:
        self.sent: list[list[str]] = []
        self.log = ["REPORT RequestId: warm\tDuration: 400.00 ms\tBilled Duration: 400 ms"]
        self.drop_at, self.die_at = drop_at, die_at

    def start(self) -> float:
        return 0.0

    def stop(self) -> None:
        pass

    def log_tail(self, lines: int = 20) -> str:
        return "Runtime exited with error: signal: killed" if self.die_at else ""

    def invoke(self, payload: Any) -> tuple[Any, float]:
        texts = (json.loads(payload["body"]) if "body" in payload else payload)["texts"]
        n = len(self.sent)
        self.sent.append(texts)
        if n == self.die_at:
            raise SlimbertError("invoke failed (connection reset)")
        # Duration grows with the request number: each request's REPORT line is identifiable.
        self.log.append(f"REPORT RequestId: r{n}\tDuration: {n}.25 ms\tBilled Duration: {n + 1} ms")
        answers = [{"label": "x"}] * (len(texts) - (n == self.drop_at))
        body = {"predictions": answers, "timing_ms": {"total": 0.5, "inference": 0.1 * len(texts)}}
        return {"statusCode": 200, "body": json.dumps(body)}, 2.0 + n


BATCH_KEYS = {"texts_per_request", "requests", "errors", "client_ms", "duration_ms",
              "billed_ms_mean", "duration_source", "handler_ms", "peak_memory_mb",
              "inference_ms"}  # fmt: skip


def test_batches_carry_k_texts_and_bill_from_the_report_lines() -> None:
    fn = FakeLambda()
    target = Target("student-lambda", "lambda", Path("fake.zip"))
    batches = measure_batches(
        fn, target, (8, 1), 4, lambda i: f"text {i}", first_position=1, deadline=float("inf")
    )
    batched = batches.finish("\n".join(fn.log))
    assert list(batched) == ["1", "8"]  # smallest first
    assert [len(t) for t in fn.sent] == [1] * (BATCH_WARMUP + 4) + [8] * (BATCH_WARMUP + 4)
    assert len({t for texts in fn.sent for t in texts}) == 7 + 7 * 8  # no text sent twice
    for k, entry in batched.items():
        assert set(entry) == BATCH_KEYS
        assert entry["texts_per_request"] == int(k) and entry["requests"] == 4
        assert entry["errors"] == 0 and entry["duration_source"] == "emulator-report"
        assert entry["client_ms"]["n"] == entry["duration_ms"]["n"] == 4
    # Request n (0-based, warm-ups included) logged Duration n.25 and billed n + 1: the
    # measured ones of batch size 1 are n = 3..6, of batch size 8 n = 10..13.
    assert batched["1"]["duration_ms"]["p50"] == pytest.approx(4.75)
    assert batched["1"]["billed_ms_mean"] == pytest.approx(5.5)
    assert batched["8"]["duration_ms"]["max"] == pytest.approx(13.25)
    assert batched["8"]["billed_ms_mean"] == pytest.approx(12.5)
    # The model's own time, from each answer's timing_ms.inference (0.1 ms a text here).
    assert batched["8"]["inference_ms"]["mean"] == pytest.approx(0.8)
    assert batched["1"]["inference_ms"]["n"] == 4
    assert json.loads(json.dumps(batched)) == batched  # JSON as it is


def test_a_batch_answered_short_is_an_error_and_a_dead_instance_ends_the_batches() -> None:
    target = Target("student-lambda", "lambda", Path("fake.zip"))
    short = FakeLambda(drop_at=BATCH_WARMUP + 1)  # the 2nd measured request of batch size 1
    batched = measure_batches(
        short, target, (1, 8), 4, str, first_position=1, deadline=float("inf")
    ).finish("\n".join(short.log))
    assert batched["1"]["errors"] == 1 and batched["1"]["requests"] == 3
    assert "1 texts sent, 0 predictions" in batched["1"]["error"]
    # It still answered, so its REPORT line is skipped and the others stay aligned.
    assert batched["8"]["duration_ms"]["p50"] == pytest.approx(11.75)  # n = 10..13

    dead = FakeLambda(die_at=BATCH_WARMUP + 4 + 2)  # the 3rd request of batch size 8
    batched = measure_batches(
        dead, target, (1, 8, 32), 4, str, first_position=1, deadline=float("inf"),
        oom=lambda tail: "signal: killed" in tail,
    ).finish("\n".join(dead.log))  # fmt: skip
    assert batched["1"]["requests"] == 4 and batched["1"]["billed_ms_mean"] is not None
    assert batched["8"]["oom"] is True and batched["8"]["requests"] == 0
    assert "client_ms" not in batched["8"] and batched["8"]["errors"] == 1
    assert batched["32"]["skipped"] == "the instance died at 8 texts per request"
    assert (
        "| 8 | 0 | 1 | OOM: "
        in batched_section(
            {"functions": {"student-lambda": {"memory": {"1024": {"batched": batched}}}}}
        )[5 + 1]
    )
    row = batched_section(
        {"functions": {"student-lambda": {"memory": {"1024": {"batched": batched}}}}}
    )[5]
    assert row.startswith("| 1024 | 1 | 4 | 0 |") and "| 0.100 |" in row  # model per text


def test_without_report_lines_the_handler_timing_stands_in() -> None:
    fn = FakeLambda()
    gcp = Target("student-gcp", "gcp", Path("folder"))
    batched = measure_batches(
        fn, gcp, (8,), 3, str, first_position=1, deadline=float("inf")
    ).finish(None)
    assert batched["8"]["duration_source"] == "handler" and batched["8"]["billed_ms_mean"] is None
    assert batched["8"]["duration_ms"] == batched["8"]["handler_ms"]


def test_report_lines_give_duration_and_billed_duration() -> None:
    log = (
        "REPORT RequestId: e9\tInit Duration: 0.03 ms\tDuration: 412.45 ms\tBilled Duration: "
        "413 ms\tMemory Size: 1024 MB\tMax Memory Used: 1024 MB\t\n"
        "REPORT RequestId: cf\tDuration: 4.60 ms\tBilled Duration: 5 ms\tMemory Size: 1024 MB\n"
        "REPORT RequestId: old\tDuration: 2.01 ms\n"  # no Billed Duration: rounded up to 1 ms
    )
    assert emulator_reports(log) == [(412.45, 413.0), (4.6, 5.0), (2.01, 3.0)]
    assert emulator_durations(log) == [412.45, 4.6, 2.01]
    with pytest.raises(ConfigError, match="batch size 65"):
        BenchLambdaOptions(batch_sizes=(1, 65))
    options = BenchLambdaOptions.from_dict({"batch_sizes": "1,32"})
    assert options.batch_sizes == (1, 32)
    assert BenchLambdaOptions(quick=True).profile().batch_requests == 10


# -- the cold-start budget the function prints (slimbert.runtime.phases), read per instance ----


def _budget_log(pid: int, scale: float, *, ok: bool = True, answered: bool = True) -> str:
    phases = {"interpreter": 40.0, "import_numpy": 60.0, "session": 70.0, "index": 0.0}
    init = {k: v * scale for k, v in phases.items()}
    lines = [
        f"START RequestId: {pid} Version: $LATEST",
        "SLIMBERT_INIT "
        + json.dumps(
            {
                "phases_ms": init,
                "total_ms": sum(init.values()),
                "idle_ms": 0.0,
                "interpreter_source": "proc",
                "ok": ok,
                "pid": pid,
            }
        ),
    ]
    if answered:
        first = {"phases_ms": {"first_request": 3.0}, "idle_ms": 1.0, "status": 200, "pid": pid}
        lines.append("SLIMBERT_FIRST " + json.dumps(first))
    lines.append(f"REPORT RequestId: {pid}\tDuration: 180.00 ms\tBilled Duration: 180 ms")
    return "\n".join(lines) + "\n"


def test_the_cold_budget_is_read_from_each_instance_log() -> None:
    budget = cold_budget(_budget_log(7, 1.0))
    assert budget is not None and budget["answered"] and budget["pid"] == 7
    assert budget["phases_ms"]["first_request"] == 3.0
    assert budget["total_ms"] == pytest.approx(173.0)
    # No lines (an older package, the teacher), a failed load, no first answer: no budget.
    assert cold_budget("START RequestId: a\nREPORT RequestId: a\tDuration: 1 ms\n") is None
    assert cold_budget(None) is None
    assert cold_budget(_budget_log(8, 1.0, ok=False)) is None
    assert cold_budget(_budget_log(9, 1.0, answered=False)) is None


def test_the_cold_section_stacks_phases_and_quotes_the_teacher() -> None:
    from slimbert.lab.coldstart import phase_medians

    logs = [_budget_log(pid, s) for pid, s in ((1, 1.0), (2, 2.0), (3, 1.5))]
    runs = [budget for budget in map(cold_budget, logs) if budget is not None]
    student = {
        "cold_start_ms": {"p50": 250.0, "p90": 300.0, "n": 3},
        "floor_cold_start_ms": {"p50": 180.0, "p90": 190.0, "n": 3},
        "cold_phases": {"n": 3, "medians_ms": phase_medians(runs), "runs": runs},
    }
    teacher = {"cold_start_ms": {"p50": 7500.0, "p90": 8000.0, "n": 3}}
    report = {
        "functions": {
            "student-lambda": {"memory": {"1024": student}},
            "teacher": {"memory": {"1024": teacher}},
        }
    }
    text = "\n".join(cold_section(report))
    # The function's own p50: the median of the totals (170 + 3, 255 + 3, 340 + 3); the teacher
    # 30x slower to its first answer.
    # The stack floor at 180 ms: 70 ms of the cold start are slimbert's own.
    assert "| student-lambda | 1024 | 250 | 300 | 3 | 258 | 180 | 70 | 7500 | 30.0× |" in text
    assert "session" in text and "first_request" in text
    assert list(phase_runs(report["functions"])) == ["student-lambda 1024 MB"]
