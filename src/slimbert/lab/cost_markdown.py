"""``slimbert cost`` as Markdown: per platform, the cost by memory size, then by texts per request.

Reads only the dict :func:`slimbert.lab.cost.run_cost` returns (also its JSON file), so a saved
result renders the same. Where a platform is priced beside another (arm64 beside x86_64), its
figures are a column of the same table, headed with whose durations they use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slimbert.lab import fmt


def markdown_report(result: Mapping[str, Any]) -> str:
    """The report as Markdown: one section per platform."""
    vm = result["vm"]
    n = result["requests_per_month"]
    opts = result["options"]
    source = f"`{result['results']}`" if result["results"] else "a fixed duration"
    if result["measured_on"]:
        source += f" (measured on {result['measured_on']})"
    cold = opts["cold_start_rate"]
    lines = [
        "# Serverless cost",
        "",
        f"Durations from {source}. {n:,.0f} requests a month; cold starts "
        + (f"{cold:.2%} of requests, billing INIT where the platform does" if cold else "ignored")
        + f"; free tier {'applied' if opts['free_tier'] else 'off'}.",
        f"Compared with {vm['name']}: {fmt.usd(vm['monthly_usd'])} a month "
        f"(as of {vm['as_of']}, {vm['source']}).",
    ]
    for key, entry in result["platforms"].items():
        lines += _platform(key, entry, result)
    if result["notes"]:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in result["notes"]]
    lines += [
        "",
        "✗: p99 above the target. Break-even: the steady request rate at which the function "
        "costs as much as the VM over a 730-hour month; below it the function is cheaper.",
    ]
    return "\n".join(lines) + "\n"


def beside_header(beside: str, unit: str, measured_on: str | None) -> str:
    """The column head of a platform priced at another's durations: it says so."""
    whose = f"{measured_on} durations" if measured_on else "the same durations"
    return f"{beside} {unit} at {whose} (its speed not measured)"


def _platform(key: str, entry: Mapping[str, Any], result: Mapping[str, Any]) -> list[str]:
    n = result["requests_per_month"]
    target = result["p99_target_ms"]
    beside = entry.get("beside")
    on = result["measured_on"]
    twin = [beside_header(beside["platform"], "$ per 1M", on)] if beside else []
    lines = [
        "",
        f"## {entry['name']} — `{key}`",
        "",
        f"Prices as of {entry['as_of']} from {entry['source']}"
        + (f", overridden by `{entry['overridden_by']}`" if entry["overridden_by"] else "")
        + (
            f"; {beside['platform']} as of {beside['as_of']} from {beside['source']}"
            if beside
            else ""
        )
        + ".",
        "",
        _head(
            "memory MB",
            "billed MB",
            "mean billed ms",
            "p99 ms",
            "$ per 1M",
            f"$ a month at {n:,.0f}",
            "vs VM",
            "break-even req/s",
            *twin,
        ),
    ]
    for row in entry["rows"]:
        if "skipped" in row:
            cells = ["–"] * (6 + len(twin))
            lines.append(f"| {row['memory_mb']} | " + " | ".join(cells) + f" | {row['skipped']} |")
            continue
        mark = "" if row["meets_p99"] else " ✗"
        rps = row["break_even_rps"]
        cells = [
            str(row["memory_mb"]), str(row["billed_memory_mb"]), f"{row['mean_billed_ms']:.1f}",
            f"{row['p99_ms']:.1f}{mark}", fmt.usd(row["total_usd"]), fmt.usd(row["monthly_usd"]),
            fmt.times(row["vs_vm"]), "never" if rps is None else f"{rps:.3g}",
        ]  # fmt: skip
        if beside:
            cells.append(fmt.usd(row.get("beside_total_usd")))
        lines.append("| " + " | ".join(cells) + " |")
    best = entry["cheapest"]
    lines.append("")
    if best["memory_mb"] is None:
        lines.append(f"No size qualifies: {best['reason']}.")
    else:
        also = best.get("beside_cost_per_million_usd")
        lines.append(
            f"Cheapest meeting p99 ≤ {target:g} ms: {best['memory_mb']} MB "
            f"at {fmt.usd(best['cost_per_million_usd'])} per 1M requests"
            + (
                f" ({beside['platform']}: {fmt.usd(also)}, its speed not measured)."
                if beside and also is not None
                else "."
            )
        )
    if entry["notes"]:
        lines.append(f"Note: {entry['notes']}")
    if entry.get("batches"):
        twin = [beside_header(beside["platform"], "$ per 1M predictions", on)] if beside else []
        lines += _batches(entry["batches"], target, twin)
    return lines


def _batches(b: Mapping[str, Any], target: float, twin: list[str]) -> list[str]:
    """Cost per 1M predictions by memory size and texts per request, and the cheapest per k."""
    lines = [
        "",
        "### Per prediction, by texts per request",
        "",
        "p99: the function's duration per request of k texts (the cheapest size must meet "
        f"≤ {target:g} ms); client p99: the round trip at the client. No free tier.",
        "",
        _head(
            "memory MB",
            "texts / request",
            "p99 ms",
            "client p99 ms",
            "mean billed ms",
            "$ per 1M predictions",
            "request fee share",
            *twin,
        ),
    ]
    for row in b["rows"]:
        head = f"| {row['memory_mb']} | {row['texts_per_request']} | "
        if "skipped" in row:
            lines.append(head + " | ".join(["–"] * (4 + len(twin))) + f" | {row['skipped']} |")
            continue
        mark = "" if row["meets_p99"] else " ✗"
        share = row["fee_share"]
        cells = [
            f"{fmt.ms(row['p99_ms'])}{mark}", fmt.ms(row["client_p99_ms"]),
            f"{row['mean_billed_ms']:.1f}", fmt.usd3(row["total_usd"]),
            "–" if share is None else f"{share:.0%}",
        ]  # fmt: skip
        if twin:
            cells.append(fmt.usd3(row.get("beside_total_usd")))
        lines.append(head + " | ".join(cells) + " |")
    lines.append("")
    for k, best in b["cheapest"].items():
        if best["memory_mb"] is None:
            lines.append(f"- {_texts(k)} per request: {best['reason']}.")
            continue
        also = best.get("beside_total_usd")
        lines.append(
            f"- {_texts(k)} per request: {best['memory_mb']} MB at {fmt.usd3(best['total_usd'])} "
            "per 1M predictions"
            + (f" ({b['beside']}: {fmt.usd3(also)})" if b["beside"] and also is not None else "")
            + f", p99 {fmt.ms(best['p99_ms'])} ms per request."
        )
    sources = sorted({row["source"] for row in b["rows"] if "source" in row})
    if sources:
        lines.append(f"- Priced from: {', '.join(sources)}.")
    return lines


def _texts(k: int) -> str:
    return "1 text" if k == 1 else f"{k} texts"


def _head(*columns: str) -> str:
    return "| " + " | ".join(columns) + " |\n|" + "---:|" * len(columns)
