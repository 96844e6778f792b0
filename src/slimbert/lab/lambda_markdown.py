"""``lambda.md``: the report of ``slimbert bench lambda`` as Markdown tables.

Per function and memory size (handler, client, cold start, INIT, peak memory, throttling),
the cold start phase by phase as the function reports it, batched requests by batch size and
memory size, per concurrency level, and the teacher-over-student ratios measured in the same
run.
"""

from __future__ import annotations

from typing import Any


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
    ]
    lines += cold_section(r)
    lines += batched_section(r)
    lines += [
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


def batched_section(r: dict[str, Any]) -> list[str]:
    """One table per function: each memory size by each batch size (texts per request)."""
    lines: list[str] = []
    for name, fn in r["functions"].items():
        rows = [(mb, b["batched"]) for mb, b in fn["memory"].items() if b.get("batched")]
        if not rows:
            continue
        lines += [
            "",
            f"## Batched requests: {name}",
            "",
            "| MB | texts/request | requests | errors | client p50 | client p99 | Duration p50 "
            "| Duration p99 | billed mean | billed per text | model per text | peak MB |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        sources = set()
        for mb, batched in rows:
            for k, e in batched.items():
                if "client_ms" not in e:
                    why = (
                        e.get("skipped")
                        or ("OOM: " if e.get("oom") else "error: ") + str(e.get("error", ""))[:60]
                    )
                    lines.append(f"| {mb} | {k} | 0 | {e['errors']} | {why} |" + " |" * 7)
                    continue
                c, d, billed = e["client_ms"], e["duration_ms"], e["billed_ms_mean"]
                sources.add(e["duration_source"])
                per_text = None if billed is None else billed / e["texts_per_request"]
                model = e.get("inference_ms", {}).get("mean")
                model_per_text = None if model is None else model / e["texts_per_request"]
                lines.append(
                    f"| {mb} | {k} | {e['requests']} | {e['errors']} | {c['p50']:.2f} "
                    f"| {c['p99']:.2f} | {d['p50']:.2f} | {d['p99']:.2f} | {_f(billed, '.2f')} "
                    f"| {_f(per_text, '.3f')} | {_f(model_per_text, '.3f')} "
                    f"| {_f(e.get('peak_memory_mb'))} |"
                )
        duration = {
            "emulator-report": "the function's Duration from the emulator's REPORT lines; "
            "billed: its Billed Duration (1 ms steps)",
            "handler": "the handler's own timing (no REPORT lines: no billed duration)",
        }.get(
            "".join(sources),
            "from the REPORT lines where each request had one, else the handler's own timing",
        )
        lines += [
            "",
            f"ms throughout, one request at a time in the warm instance; Duration: {duration}; "
            "model per text: the mean of the answers' own `timing_ms.inference` (onnxruntime's "
            "run alone) over the texts, the part of the bill no handler change removes; "
            "peak MB: the cgroup's peak so far, the batch sizes run smallest first.",
        ]
    return lines


def phase_runs(functions: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """``{"student-lambda 1024 MB": [budget, ...], ...}``: every size that printed its
    cold-start budget, in the order measured (a column of the phase table each)."""
    return {
        f"{name} {mb} MB": b["cold_phases"]["runs"]
        for name, fn in functions.items()
        for mb, b in fn["memory"].items()
        if b.get("cold_phases")
    }


def cold_section(r: dict[str, Any]) -> list[str]:
    """Cold start to the first answer per size, the teacher's beside it, and the phases."""
    rows = []
    teacher = r["functions"].get("teacher", {}).get("memory", {})
    for name, fn in r["functions"].items():
        if name == "teacher":
            continue
        for mb, b in fn["memory"].items():
            if "cold_start_ms" not in b:
                continue
            cold, own = b["cold_start_ms"], (b.get("cold_phases") or {}).get("medians_ms", {})
            t = teacher.get(mb, {}).get("cold_start_ms", {}).get("p50")
            ratio = None if t is None else t / cold["p50"]
            floor = b.get("floor_cold_start_ms", {}).get("p50")
            above = None if floor is None else cold["p50"] - floor
            rows.append(
                f"| {name} | {mb} | {cold['p50']:.0f} | {cold['p90']:.0f} | {cold['n']} "
                f"| {_f(own.get('total'), '.0f')} | {_f(floor, '.0f')} | {_f(above, '.0f')} "
                f"| {_f(t, '.0f')} | {_f(ratio, '.1f')}{'×' if ratio is not None else ''} |"
            )
    if not rows:
        return []
    lines = [
        "",
        "## Cold start to the first answer",
        "",
        "| function | MB | p50 | p90 | n | function's own p50 | stack floor p50 "
        "| above the floor | teacher p50 | teacher over student |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "ms; p50/p90: process start to the first answer at the client (the emulator's start and "
        "the round trip included), over the fresh starts; function's own: process start to its "
        "answer as the function measures it (SLIMBERT_INIT/FIRST lines); stack floor: fresh "
        "starts, interleaved with the function's, of the same zip with a handler that only "
        "imports numpy, tokenizers and onnxruntime and answers a fixed body (no function on "
        "that stack starts faster; above the floor is slimbert's own share); teacher: the torch "
        "teacher measured in the same run under the same limits.",
    ]
    runs = phase_runs(r["functions"])
    if not runs:
        lines[-1] += (
            " No function printed its cold-start budget (a package built before the runtime "
            "had one): no phases."
        )
    else:
        from slimbert.lab.coldstart import phase_table

        lines += ["", "### Phases (median over the fresh starts, ms)", "", phase_table(runs)]
        if r.get("plots", {}).get("cold_phases"):
            lines += ["", f"![cold start by phase]({r['plots']['cold_phases']})"]
    return lines
