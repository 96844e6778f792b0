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
   function (``python -m slimbert.lab.teacher_server``) in the same limits and harness;
   student/teacher ratios are reported side by side.

Results go to ``bench/results/<timestamp>/lambda.json`` and ``lambda.md``; the JSON's
``memory`` block is what ``slimbert cost --results`` reads.

The pieces: :mod:`slimbert.lab.lambda_options` (the options and the smoke profile),
:mod:`slimbert.lab.lambda_instances` (the functions under test),
:mod:`slimbert.lab.lambda_harness` (measuring a size, a concurrency level),
:mod:`slimbert.lab.lambda_markdown` (``lambda.md``) and :mod:`slimbert.lab.teacher_server`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from slimbert.deploy.platforms import AWS_MAX_VCPUS, AWS_MB_PER_VCPU
from slimbert.deploy.toolchain import AWSLAMBDARIC_PIN, SAM_CLI_PIN, find_python312, host_arch
from slimbert.errors import MissingDependencyError, SlimbertError
from slimbert.lab import cgroups
from slimbert.lab.benchmarks import machine_info, results_dir, save_results
from slimbert.lab.lambda_harness import Harness, size_cpu
from slimbert.lab.lambda_instances import Target
from slimbert.lab.lambda_markdown import lambda_markdown, phase_runs
from slimbert.lab.lambda_options import (
    PAPER_COLD_STARTS,
    PAPER_REQUESTS,
    PAPER_WARMUP,
    BenchLambdaOptions,
)

log = logging.getLogger(__name__)

__all__ = ["BenchLambdaOptions", "lambda_markdown", "run_lambda_bench"]


def _targets(opts: BenchLambdaOptions) -> list[Target]:
    targets = []
    python = find_python312() if (opts.package or opts.gcp) else None
    if opts.package is not None:
        if not opts.package.is_file():
            raise SlimbertError(
                f"no Lambda package at {opts.package}", hint="build one with `slimbert package`"
            )
        targets.append(Target("student-lambda", "lambda", opts.package, python))
    if opts.gcp is not None:
        if not (opts.gcp / "main.py").is_file():
            raise SlimbertError(f"{opts.gcp} is not a gcp-function folder (no main.py)")
        targets.append(Target("student-gcp", "gcp", opts.gcp, python))
    if opts.teacher is not None:
        if not (opts.teacher / "config.json").is_file():
            raise SlimbertError(f"{opts.teacher} is not a transformers model folder")
        targets.append(Target("teacher", "teacher", opts.teacher))
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
    capped = [mb for mb in opts.memory_mb if size_cpu(opts, mb)["cpu_quota_capped"]]
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
    if opts.batch_sizes:
        notes.append(
            "batched: requests of k texts in the warm instance after the single-text requests, "
            "one at a time; Duration and Billed Duration from the emulator's REPORT lines; the "
            "teacher is not batched"
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
        # The size with exactly one vCPU, when measured.
        AWS_MB_PER_VCPU if AWS_MB_PER_VCPU in opts.memory_mb else max(opts.memory_mb)
    )
    with tempfile.TemporaryDirectory(prefix="slimbert-bench-lambda-") as tmp:
        run = Harness(opts, texts, Path(tmp), use_cgroups)
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
            "by_memory_mb": {
                str(mb): size_cpu(opts, mb) for mb in sorted({*opts.memory_mb, conc_mb})
            },
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
    folder = results_dir(opts.results)
    report["plots"] = _plots(functions, folder)
    out = save_results(opts.results, "lambda", report, lambda_markdown(report), out=folder)
    if not measured:
        # Out of memory everywhere is a result; failing everywhere for another reason is not.
        errors = {mb: b.get("error") for mb, b in functions[primary]["memory"].items()}
        if not all(b["oom"] for b in functions[primary]["memory"].values()):
            raise SlimbertError(f"{primary} answered at no memory size: {errors}", hint=str(out))
        log.warning("%s ran out of memory at every size: %s", primary, errors)
    return report


def _plots(functions: dict[str, Any], folder: Path) -> dict[str, str]:
    """The stacked cold-start phases of every function and size, as a PNG in ``folder``."""
    runs = phase_runs(functions)
    if not runs:
        return {}
    from slimbert.lab.coldstart import plot_phases

    path = folder / "lambda-coldstart.png"
    try:
        plot_phases(runs, path, title="Cold start by phase (median over fresh starts)")
    except MissingDependencyError as exc:  # matplotlib is an extra; the table has the figures
        log.warning("no cold-start plot: %s", exc.message)
        return {}
    return {"cold_phases": path.name}


_MAPPING_RULES = {
    "aws": f"memory / {AWS_MB_PER_VCPU} MB vCPUs, at most {AWS_MAX_VCPUS:g} (AWS Lambda)",
    "gcp-gen1": "Google 1st gen clock per tier (128 MB 0.2 GHz ... 2048 MB 2.4 GHz), "
    "2.4 GHz = 1 vCPU; a size between tiers gets the next tier up",
    "gcp-gen2": "gcp_cpu when set, else Google's default vCPU per memory tier",
}
