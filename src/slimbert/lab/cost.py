"""``slimbert cost``: measured latencies turned into dollars per million predictions and per month.

The stage reads a benchmark's durations per memory size (:func:`slimbert.lab.results.read_results`),
or takes a fixed duration, and prices them on each platform of the price table with the
arithmetic of :mod:`slimbert.lab.billing`: a table per platform of cost per 1M, cost a month,
the ratio to an always-on VM and the break-even request rate, and the cheapest memory size
meeting a p99 target. :func:`price_runs` does the same for ``slimbert report``, per function of
each ``lambda.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from slimbert.config import Options, check
from slimbert.errors import ConfigError
from slimbert.io import atomic_open, write_json
from slimbert.lab.billing import (
    PRICED_BESIDE,
    break_even_rps,
    cheapest_memory,
    cost_per_million,
    monthly_cost,
    why_unavailable,
)
from slimbert.lab.cost_batches import batch_inputs, price_batches
from slimbert.lab.cost_markdown import markdown_report
from slimbert.lab.results import LambdaRun, Measurement, Results, read_results
from slimbert.prices import Platform, PriceTable, load_prices

__all__ = ["CostOptions", "PlatformCost", "price_runs", "run_cost"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CostOptions(Options):
    stage: ClassVar[str] = "cost"

    results: Path | None = None
    platform: str | None = None  # a price-table key, "all", or None: the results' platform
    memory_mb: tuple[int, ...] | None = None
    duration_ms: float | None = None
    cold_start_rate: float = 0.0
    init_ms: float | None = None
    requests_per_month: float = 1e6
    p99_target_ms: float = 100.0
    free_tier: bool = False
    prices: Path | None = None
    vm: str | None = None  # the VM to compare with; None: the table's reference_vm
    # Texts per request to price per prediction; None: every batch size the results measured.
    batch: int | None = None
    out: Path | None = None

    def validate(self) -> None:
        check(0.0 <= self.cold_start_rate <= 1.0, "cold_start_rate must be in [0, 1]")
        check(self.requests_per_month > 0, "requests_per_month must be positive")
        check(self.p99_target_ms > 0, "p99_target_ms must be positive")
        check(self.duration_ms is None or self.duration_ms >= 0, "duration_ms must be >= 0")
        check(self.init_ms is None or self.init_ms >= 0, "init_ms must be >= 0")
        check(
            self.results is not None or self.duration_ms is not None,
            "cost needs measured durations or a fixed duration",
            hint="pass --results bench.json or --duration-ms 100",
        )
        for mb in self.memory_mb or ():
            check(mb > 0, f"memory_mb must be positive, got {mb}")
        check(
            self.batch is None or self.batch >= 1,
            f"batch must be at least 1 text per request, got {self.batch}",
        )


# -- the stage ------------------------------------------------------------------------------


def run_cost(options: CostOptions) -> dict[str, Any]:
    """Price every (platform, memory size); write ``<out>.json`` and ``<out>.md`` when ``out``."""
    table = load_prices(options.prices)
    vm = table.vm(options.vm)
    results = read_results(options.results) if options.results is not None else None
    notes: list[str] = []
    keys = _platform_keys(options.platform, results, table, notes)
    sizes = options.memory_mb or (tuple(sorted(results.memory)) if results else (1024,))
    measured: dict[int, dict[str, Any]] = {}
    by_size: dict[int, Measurement | None] = {}
    for mb in sizes:
        m = results.memory.get(mb) if results else None
        if options.duration_ms is not None:
            durations, p99 = np.array([options.duration_ms]), options.duration_ms
        elif m is None:
            assert results is not None  # validate() asks for results or duration_ms
            raise ConfigError(
                f"{results.path} has no measurements for {mb} MB",
                hint=f"measured: {', '.join(map(str, sorted(results.memory)))}",
            )
        else:
            durations, p99 = m.durations_ms, m.p99_ms
            notes.extend(m.notes)
        init = options.init_ms if options.init_ms is not None else (m.init_ms if m else None)
        if options.cold_start_rate > 0 and init is None:
            raise ConfigError(
                f"cold_start_rate {options.cold_start_rate:g} needs an INIT duration for {mb} MB",
                hint="pass --init-ms, or give init_ms in the results",
            )
        measured[mb] = {"durations_ms": durations, "p99_ms": float(p99), "init_ms": init}
        by_size[mb] = m
    if options.duration_ms is not None:
        notes.append(f"every request takes the fixed {options.duration_ms:g} ms (not measured)")
    batches = batch_inputs(
        by_size,
        batch=options.batch,
        fixed_ms=options.duration_ms,
        init_ms={mb: m["init_ms"] for mb, m in measured.items()},
        where=results.path if results else None,
        notes=notes,
    )
    platforms: dict[str, dict[str, Any]] = {}
    for key in keys:
        p = table.platform(key)
        beside = table.platform(PRICED_BESIDE[key]) if key in PRICED_BESIDE else None
        rows = [_row(p, mb, measured[mb], options, vm.monthly_usd, beside) for mb in sizes]
        best = cheapest_memory(
            measured,
            p,
            options.p99_target_ms,
            cold_start_rate=options.cold_start_rate,
            free_tier=options.free_tier,
            requests_per_month=options.requests_per_month,
        )
        best.pop("candidates")
        if beside is not None and best["memory_mb"] is not None:
            # The same size: at the same durations and request fee, a lower GB-s price keeps
            # the order of the sizes.
            row = next(r for r in rows if r["memory_mb"] == best["memory_mb"])
            best["beside_cost_per_million_usd"] = row["beside_total_usd"]
        if options.cold_start_rate > 0 and not p.init_billed:
            notes.append(f"{key} does not bill INIT: cold starts add nothing there")
        platforms[key] = {
            "name": p.name, "source": p.source, "as_of": p.as_of, "region": p.region,
            "overridden_by": p.overridden_by, "notes": p.notes, "rows": rows, "cheapest": best,
            "beside": _beside_entry(beside, key, results.platform if results else None, notes),
            "batches": price_batches(
                p,
                beside,
                batches,
                p99_target_ms=options.p99_target_ms,
                cold_start_rate=options.cold_start_rate,
            )
            if batches
            else None,
        }  # fmt: skip
    if options.free_tier:
        notes.append("free tiers are per account and month, shared by every function there")
    result: dict[str, Any] = {
        "results": results.path if results else None,
        "measured_on": results.platform if results else None,
        "requests_per_month": options.requests_per_month,
        "p99_target_ms": options.p99_target_ms,
        "vm": dataclasses.asdict(vm),
        "vms": {k: dataclasses.asdict(v) for k, v in table.vms.items()},
        "price_files": list(table.files),
        "platforms": platforms,
        "notes": list(dict.fromkeys(notes)),
        "options": options.to_dict(),
    }
    for key, entry in platforms.items():
        c = entry["cheapest"]
        if c["memory_mb"] is None:
            log.info("%s: %s", key, c["reason"])
        else:
            log.info("%s: %d MB at $%.2f per 1M", key, c["memory_mb"], c["cost_per_million_usd"])
    if options.out is not None:
        out = Path(options.out)
        write_json(out.with_suffix(".json"), result)
        with atomic_open(out.with_suffix(".md")) as fh:
            fh.write(markdown_report(result))
    return result


def _platform_keys(
    choice: str | None, results: Results | None, table: PriceTable, notes: list[str]
) -> list[str]:
    measured_on = results.platform if results else None
    if choice is None and measured_on in table.platforms:
        keys = [str(measured_on)]
    elif choice is None or choice == "all":
        keys = list(table.platforms)
    else:
        keys = [table.platform(choice).key]
    if measured_on and any(key != measured_on for key in keys):
        notes.append(
            f"durations were measured on {measured_on}; other platforms are priced as if the "
            "function ran as fast there, which their different CPU per memory size does not "
            "promise"
        )
    return keys


def _beside_entry(
    beside: Platform | None, key: str, measured_on: str | None, notes: list[str]
) -> dict[str, Any] | None:
    """The platform priced beside ``key`` (arm64 beside x86_64), and the note that says its
    speed was not measured."""
    if beside is None:
        return None
    durations = f"the {measured_on} durations" if measured_on else "the same durations"
    notes.append(
        f"{beside.key} is priced beside {key} at {durations}: arm64 speed is not measured "
        f"here (Graviton's own durations would change its figures); prices as of {beside.as_of}."
    )
    return {"platform": beside.key, "name": beside.name, "as_of": beside.as_of,
            "source": beside.source}  # fmt: skip


def _row(
    p: Platform,
    mb: int,
    m: Mapping[str, Any],
    options: CostOptions,
    vm_usd: float,
    beside: Platform | None = None,
) -> dict[str, Any]:
    costs: dict[str, Any] = {
        "cold_start_rate": options.cold_start_rate,
        "init_ms": m["init_ms"],
        "free_tier": options.free_tier,
    }
    unavailable = why_unavailable(p, mb)
    if unavailable:
        return {"memory_mb": mb, "skipped": unavailable}
    per_m = cost_per_million(
        p, mb, m["durations_ms"], requests_per_month=options.requests_per_month, **costs
    )
    monthly = per_m["total_usd"] * options.requests_per_month / 1e6
    rps = break_even_rps(p, mb, m["durations_ms"], vm=vm_usd, **costs)
    extra: dict[str, Any] = {}
    if beside is not None and not why_unavailable(beside, mb):
        twin = cost_per_million(
            beside, mb, m["durations_ms"], requests_per_month=options.requests_per_month, **costs
        )
        extra = {
            "beside_total_usd": twin["total_usd"],
            "beside_monthly_usd": twin["total_usd"] * options.requests_per_month / 1e6,
        }
    return {
        **per_m,
        **extra,
        "p99_ms": m["p99_ms"],
        "meets_p99": m["p99_ms"] <= options.p99_target_ms,
        "monthly_usd": monthly,
        "vs_vm": monthly / vm_usd if vm_usd > 0 else None,
        "break_even_rps": rps if math.isfinite(rps) else None,  # None: never (JSON has no inf)
    }


# -- the report's pricing -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PlatformCost:
    """One platform's prices for the report: per model and memory size, and per month."""

    platform: str
    measured_on: str  # which lambda.json's durations were priced
    per_million: dict[str, dict[int, float]]  # model -> MB -> $ per 1M
    cheapest: dict[str, Any]  # cost.cheapest_memory for the student
    monthly: dict[float, float]  # requests a month -> $ at the cheapest (or fastest) size
    monthly_memory_mb: int | None
    break_even_rps: float | None  # steady requests/s at which the VM costs as much
    # The student's cost per prediction by texts per request (cost_batches.price_batches);
    # None when its run measured no batched requests.
    batches: dict[str, Any] | None = None


def price_runs(
    runs: Sequence[LambdaRun],
    table: PriceTable,
    *,
    platforms: Sequence[str] | None,
    p99_target_ms: float,
    requests_per_month: Sequence[float],
) -> tuple[list[PlatformCost], list[str]]:
    """Each platform (``platforms``, None: all in ``table``, and arm64 beside x86_64 always)
    priced with the durations measured on it, else those of the first run; the monthly figures
    at each ``requests_per_month``; the student's batched requests per prediction."""
    notes: list[str] = []
    keys: list[str] = []
    for key in platforms or table.platforms:
        keys += [k for k in (key, PRICED_BESIDE.get(key)) if k and k not in keys]
    vm_usd = table.vm().monthly_usd
    by_platform = {run.platform: run for run in runs if run.measured.get("student")}
    if not by_platform:
        return [], notes
    first = next(iter(by_platform.values()))
    batch_notes: list[str] = []
    batches = {
        id(run): batch_inputs(
            run.measured["student"],
            batch=None,
            fixed_ms=None,
            init_ms={},
            where=str(run.source.path),
            notes=batch_notes,
        )
        for run in by_platform.values()
    }
    costs = []
    borrowed: dict[str, list[str]] = {}  # measured on -> platforms priced with its durations
    for key in keys:
        p = table.platform(key)
        run = by_platform.get(key, first)
        if run.platform != key and PRICED_BESIDE.get(str(run.platform)) == key:
            notes.append(
                f"{key} priced at the durations measured on {run.platform}: arm64 speed is not "
                "measured here"
            )
        elif run.platform != key:
            borrowed.setdefault(str(run.platform), []).append(key)
        per_million: dict[str, dict[int, float]] = {}
        for model, sizes in run.measured.items():
            per_million[model] = {}
            for mb, m in sizes.items():
                try:
                    bill = cost_per_million(p, mb, m.durations_ms)
                except ConfigError:  # the platform has no such size
                    continue
                per_million[model][mb] = bill["total_usd"]
        student = run.measured["student"]
        best = cheapest_memory(
            {mb: {"durations_ms": m.durations_ms, "p99_ms": m.p99_ms} for mb, m in student.items()},
            p,
            p99_target_ms,
        )
        chosen: int | None = best["memory_mb"]
        if chosen is None:
            # Nothing meets the target: the monthly curve uses the fastest size it can price.
            priced = [c for c in best["candidates"] if "skipped" not in c]
            chosen = min(priced, key=lambda c: c["p99_ms"])["memory_mb"] if priced else None
        monthly: dict[float, float] = {}
        rps = None
        if chosen is not None:
            durations = student[chosen].durations_ms
            for n in requests_per_month:
                monthly[n] = monthly_cost(p, chosen, durations, n)["total_usd"]
            rps = break_even_rps(p, chosen, durations, vm=vm_usd)
        rps = rps if rps is not None and math.isfinite(rps) else None
        inputs = batches[id(run)]
        priced_batches = (
            price_batches(p, None, inputs, p99_target_ms=p99_target_ms) if inputs else None
        )
        costs.append(
            PlatformCost(
                key, str(run.platform), per_million, best, monthly, chosen, rps, priced_batches
            )
        )
    for measured_on, priced_keys in borrowed.items():
        notes.append(
            f"{', '.join(priced_keys)} priced with durations measured on {measured_on}: "
            "their CPU per memory size differs, so treat those figures as estimates"
        )
    return costs, notes + batch_notes
