"""``slimbert cost``: measured latencies turned into dollars per million predictions and per month.

Benešová et al. (NAACL 2021 industry) estimated about $2 per 1M predictions of 100 ms at 1 GB on
AWS Lambda against $8 a month for the cheapest VM. This module redoes that arithmetic from a
function's measured billed durations per memory size, for each platform in the price table
(:mod:`slimbert.prices`):

1. each duration is rounded up to the platform's billing granularity (1 ms on Lambda, 100 ms
   on Google) and never below its minimum;
2. memory (GB-seconds), CPU where billed apart (GHz- or vCPU-seconds) and requests are priced;
   a ``cold_start_rate`` share of requests also bills its INIT time where the platform does;
3. free tiers are subtracted only when asked (they are per account, not per function);
4. the monthly cost is compared with an always-on VM, and the request rate at which both cost
   the same is solved exactly (the monthly cost is piecewise linear in the request count).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from slimbert.config import Options, check
from slimbert.errors import ConfigError, DataError
from slimbert.io import atomic_open, read_json, write_json
from slimbert.prices import Platform, PriceTable, load_prices

log = logging.getLogger(__name__)

HOURS_PER_MONTH = 730  # what AWS, Google and Azure use for monthly prices
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
# Quantile-only results are expanded to this many evenly spaced quantiles.
_APPROX_POINTS = 1000
_QUANTILE_KEY = re.compile(r"^p(\d+(?:\.\d+)?)(?:_ms)?$")


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


# -- billing arithmetic ---------------------------------------------------------------------


def billed_ms(durations_ms: Any, granularity_ms: float, minimum_ms: float = 0.0) -> np.ndarray:
    """Durations rounded up to a multiple of ``granularity_ms``, and at least ``minimum_ms``."""
    if granularity_ms <= 0:
        raise ConfigError(f"billing granularity must be positive, got {granularity_ms}")
    d = np.atleast_1d(np.asarray(durations_ms, dtype=float))
    if d.size == 0 or not np.all(np.isfinite(d)) or np.any(d < 0):
        raise ConfigError("durations must be a non-empty set of finite values >= 0 ms")
    # A duration a hair above a multiple (300.00000000000006 from float sums) is that multiple:
    # without the tolerance Google would bill it as 400 ms.
    units = np.ceil(d / granularity_ms - 1e-9)
    return np.maximum(units * granularity_ms, minimum_ms)


def _platform(platform: str | Platform, prices: PriceTable | None) -> Platform:
    if isinstance(platform, Platform):
        return platform
    return (prices or load_prices()).platform(platform)


def _bill(
    p: Platform,
    memory_mb: int,
    durations_ms: Any,
    n_requests: float,
    *,
    cold_start_rate: float,
    init_ms: float | None,
    free_tier: bool,
) -> dict[str, Any]:
    """The bill for ``n_requests`` with durations like ``durations_ms`` (a sample, or one value)."""
    if not 0.0 <= cold_start_rate <= 1.0:
        raise ConfigError(f"cold_start_rate must be in [0, 1], got {cold_start_rate}")
    if n_requests < 0:
        raise ConfigError(f"the request count must be >= 0, got {n_requests}")
    if cold_start_rate > 0 and init_ms is None:
        raise ConfigError("a cold_start_rate needs init_ms", hint="--init-ms or results' init_ms")
    memory = p.billed_memory_mb(int(memory_mb))
    gb = memory / 1024
    cpu_units = p.cpu.units_for(memory) if p.cpu else 0.0
    cpu_price = p.cpu.per_second if p.cpu else 0.0
    mean_ms = float(billed_ms(durations_ms, p.granularity_ms, p.min_billed_ms).mean())
    init_billed = 0.0
    if cold_start_rate > 0 and p.init_billed:
        assert init_ms is not None
        init_billed = float(billed_ms(init_ms, p.granularity_ms)[0])
    run_s = n_requests * mean_ms / 1000
    init_s = n_requests * cold_start_rate * init_billed / 1000
    gb_s, cpu_s = (run_s + init_s) * gb, (run_s + init_s) * cpu_units
    bill = {
        "compute_usd": run_s * gb * p.gb_second,
        "cpu_usd": run_s * cpu_units * cpu_price,
        "requests_usd": n_requests / 1e6 * p.requests_per_million,
        "init_usd": init_s * (gb * p.gb_second + cpu_units * cpu_price),
        "free_tier_usd": 0.0,
    }
    if free_tier:
        # The grant covers usage, invocation and INIT alike, and can only take a bill to zero.
        ft = p.free_tier
        bill["free_tier_usd"] = -(
            min(gb_s, ft.gb_seconds) * p.gb_second
            + min(cpu_s, ft.cpu_seconds) * cpu_price
            + min(n_requests, ft.requests) / 1e6 * p.requests_per_million
        )
    total = max(0.0, sum(bill.values()))
    return {
        "platform": p.key,
        "memory_mb": int(memory_mb),
        "billed_memory_mb": memory,
        "mean_billed_ms": mean_ms,
        "init_billed_ms": init_billed,
        "cold_start_rate": cold_start_rate,
        "requests": n_requests,
        "gb_seconds": gb_s,
        "cpu_seconds": cpu_s,
        "cpu_unit": p.cpu.unit if p.cpu else None,
        **bill,
        "total_usd": total,
        "free_tier": free_tier,
    }


def monthly_cost(
    platform: str | Platform,
    memory_mb: int,
    durations_ms: Any,
    requests_per_month: float,
    *,
    cold_start_rate: float = 0.0,
    init_ms: float | None = None,
    free_tier: bool = False,
    prices: PriceTable | None = None,
) -> dict[str, Any]:
    """The month's bill, broken down (``compute_usd``, ``cpu_usd``, ..., ``total_usd``)."""
    p = _platform(platform, prices)
    return _bill(
        p,
        memory_mb,
        durations_ms,
        requests_per_month,
        cold_start_rate=cold_start_rate,
        init_ms=init_ms,
        free_tier=free_tier,
    )


def cost_per_million(
    platform: str | Platform,
    memory_mb: int,
    durations_ms: Any,
    *,
    cold_start_rate: float = 0.0,
    init_ms: float | None = None,
    free_tier: bool = False,
    requests_per_month: float = 1e6,
    prices: PriceTable | None = None,
) -> dict[str, Any]:
    """Dollars per 1M requests, broken down; with ``free_tier`` the grant is spread over the
    month's ``requests_per_month`` (without it, the volume does not matter)."""
    if requests_per_month <= 0:
        raise ConfigError(f"requests_per_month must be positive, got {requests_per_month}")
    month = monthly_cost(
        platform,
        memory_mb,
        durations_ms,
        requests_per_month,
        cold_start_rate=cold_start_rate,
        init_ms=init_ms,
        free_tier=free_tier,
        prices=prices,
    )
    scale = 1e6 / requests_per_month
    scaled = {"requests", "gb_seconds", "cpu_seconds", "compute_usd", "cpu_usd", "requests_usd"}
    scaled |= {"init_usd", "free_tier_usd", "total_usd"}
    return {
        **{k: (v * scale if k in scaled else v) for k, v in month.items()},
        "requests_per_month": requests_per_month,
    }


def break_even_rps(
    platform: str | Platform,
    memory_mb: int,
    durations_ms: Any,
    *,
    vm: str | float | None = None,
    cold_start_rate: float = 0.0,
    init_ms: float | None = None,
    free_tier: bool = False,
    prices: PriceTable | None = None,
) -> float:
    """Requests per second (steady, over a 730-hour month) at which the function costs as much
    as the VM: below it the function is cheaper. ``vm`` is a VM key, a monthly price in
    dollars, or None for the table's reference VM."""
    if isinstance(vm, int | float):
        vm_usd = float(vm)
    else:
        vm_usd = (prices or load_prices()).vm(vm).monthly_usd
    p = _platform(platform, prices)
    # The bill for one request without free tier gives each meter's usage per request.
    unit = monthly_cost(
        p, memory_mb, durations_ms, 1.0, cold_start_rate=cold_start_rate, init_ms=init_ms
    )
    cpu_price = p.cpu.per_second if p.cpu else 0.0
    ft = p.free_tier if free_tier else None
    # (dollars per request, free grant in requests) per meter; the month's cost is the sum of
    # price * max(0, R - grant), a piecewise linear and increasing function of R.
    meters = [(unit["requests_usd"], ft.requests if ft else 0.0)]
    for usage, price, grant in (
        (unit["gb_seconds"], p.gb_second, ft.gb_seconds if ft else 0.0),
        (unit["cpu_seconds"], cpu_price, ft.cpu_seconds if ft else 0.0),
    ):
        if usage > 0:
            meters.append((usage * price, grant / usage))
    if vm_usd <= 0:
        return 0.0
    cost_at = 0.0
    starts = sorted({0.0, *(grant for _, grant in meters)})
    for i, start in enumerate(starts):
        slope = sum(rate for rate, grant in meters if grant <= start)
        end = starts[i + 1] if i + 1 < len(starts) else math.inf
        if slope > 0 and cost_at + slope * (end - start) >= vm_usd:
            return (start + (vm_usd - cost_at) / slope) / SECONDS_PER_MONTH
        if end < math.inf:
            cost_at += slope * (end - start)
    return math.inf


def cheapest_memory(
    results_by_memory: Mapping[int, Mapping[str, Any]],
    platform: str | Platform,
    p99_target_ms: float,
    *,
    cold_start_rate: float = 0.0,
    init_ms: float | None = None,
    free_tier: bool = False,
    requests_per_month: float = 1e6,
    prices: PriceTable | None = None,
) -> dict[str, Any]:
    """The memory size with the lowest cost per 1M requests whose measured p99 meets the target.

    ``results_by_memory`` maps MB to ``{"p99_ms": ..., "durations_ms": [...]}`` (``init_ms``
    optional). Returns ``memory_mb`` and ``cost_per_million_usd`` (None with a ``reason`` when
    no size qualifies) and every size considered under ``candidates``.
    """
    p = _platform(platform, prices)
    candidates = []
    for mb in sorted(results_by_memory):
        entry = results_by_memory[mb]
        durations = np.asarray(entry["durations_ms"], dtype=float)
        p99 = float(entry["p99_ms"]) if entry.get("p99_ms") is not None else _p99(durations)
        row: dict[str, Any] = {"memory_mb": int(mb), "p99_ms": p99, "meets": p99 <= p99_target_ms}
        candidates.append(row)
        unavailable = _unavailable(p, int(mb))
        if unavailable:
            row.update(meets=False, cost_per_million_usd=None, skipped=unavailable)
            continue
        cost = cost_per_million(
            p,
            int(mb),
            durations,
            cold_start_rate=cold_start_rate,
            init_ms=init_ms if init_ms is not None else entry.get("init_ms"),
            free_tier=free_tier,
            requests_per_month=requests_per_month,
        )
        row["cost_per_million_usd"] = cost["total_usd"]
    ok = [c for c in candidates if c["meets"]]
    if not ok:
        measured = [c for c in candidates if "skipped" not in c]
        if measured:
            best = min(measured, key=lambda c: c["p99_ms"])
            why = f"best is {best['memory_mb']} MB at {best['p99_ms']:.1f} ms"
        else:
            why = f"{p.key} offers none of the measured sizes"
        reason = f"no memory size meets p99 <= {p99_target_ms:g} ms ({why})"
        return {"memory_mb": None, "cost_per_million_usd": None, "p99_ms": None,
                "reason": reason, "candidates": candidates}  # fmt: skip
    # Ties go to the smaller size (sorted order, and min keeps the first).
    best = min(ok, key=lambda c: c["cost_per_million_usd"])
    return {**best, "reason": None, "candidates": candidates}


def _p99(durations: np.ndarray) -> float:
    return float(np.percentile(durations, 99))


def _unavailable(p: Platform, memory_mb: int) -> str | None:
    """Why ``p`` has no such memory size, or None when it has."""
    try:
        p.billed_memory_mb(memory_mb)
    except ConfigError as exc:
        return exc.message
    return None


# -- benchmark results ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One memory size's latencies as read from a results file."""

    memory_mb: int
    durations_ms: np.ndarray
    p99_ms: float
    init_ms: float | None
    notes: tuple[str, ...] = ()  # what was approximated, and how


@dataclasses.dataclass(frozen=True)
class Results:
    path: str
    platform: str | None  # "aws-lambda-x86_64" from {"platform": "aws-lambda", "arch": ...}
    memory: Mapping[int, Measurement]


def read_results(path: str | Path) -> Results:
    """Read a benchmark results file: ``{"memory": {"1024": {...}}, "platform", "arch"}``.

    Each memory entry needs ``durations_ms`` (a list) or quantiles (``p50_ms``, ``p99_ms``, or
    ``durations_ms`` as ``{"p50": ...}``); from quantiles alone the distribution is rebuilt by
    interpolation and the entry's notes say so. INIT comes from ``init_ms`` (a number or
    ``{"mean"|"p50": ...}``), else from ``cold_start_ms`` less the warm median.
    """
    where = str(path)
    try:
        doc = read_json(path)
    except FileNotFoundError as exc:
        raise DataError("no such results file", path=where) from exc
    except (OSError, ValueError) as exc:
        raise DataError(f"not a readable JSON file ({exc})", path=where) from exc
    entries = doc.get("memory") if isinstance(doc, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise DataError('expected {"memory": {"1024": {"durations_ms": [...]}, ...}}', path=where)
    memory = {}
    for key, entry in entries.items():
        if not str(key).isdigit() or int(key) <= 0:
            raise DataError(f"memory key {key!r} is not a size in MB", path=where)
        if not isinstance(entry, dict):
            raise DataError(f"memory.{key} must be a mapping", path=where)
        memory[int(key)] = _measurement(int(key), entry, where)
    platform = doc.get("platform")
    arch = doc.get("arch")
    key = f"{platform}-{arch}" if platform and arch else platform
    return Results(where, str(key) if key else None, memory)


def _measurement(mb: int, entry: Mapping[str, Any], where: str) -> Measurement:
    raw = entry.get("durations_ms")
    quantiles = _quantiles(entry, f"memory.{mb}", where)
    if isinstance(raw, dict):
        quantiles.update(_quantiles(raw, f"memory.{mb}.durations_ms", where))
    notes: list[str] = []
    if isinstance(raw, list) and raw:
        durations = np.asarray([_ms(v, f"memory.{mb}.durations_ms", where) for v in raw])
    elif quantiles:
        ps = sorted(quantiles)
        # Quantiles must not decrease; rounding in the writer can make neighbours cross.
        values = np.maximum.accumulate([quantiles[q] for q in ps])
        grid = (np.arange(_APPROX_POINTS) + 0.5) / _APPROX_POINTS * 100
        durations = np.interp(grid, ps, values)  # flat beyond the first and last quantile
        names = ", ".join(f"p{q:g}" for q in ps)
        notes.append(f"{mb} MB: durations approximated from quantiles {names} (no raw list)")
    else:
        raise DataError(
            f"memory.{mb} has neither durations_ms nor quantiles", path=where, hint="p50_ms, p99_ms"
        )
    p99 = quantiles.get(99.0, float(np.percentile(durations, 99)))
    warm_p50 = quantiles.get(50.0, float(np.median(durations)))
    init_ms, init_note = _init(entry, warm_p50, mb, where)
    if init_note:
        notes.append(init_note)
    return Measurement(mb, durations, float(p99), init_ms, tuple(notes))


def _ms(value: Any, field: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise DataError(f"{field}: {value!r} is not a duration in ms", path=where)
    return float(value)


def _quantiles(data: Mapping[str, Any], field: str, where: str) -> dict[float, float]:
    found = {}
    for key, value in data.items():
        match = _QUANTILE_KEY.match(str(key))
        if match and 0 <= float(match.group(1)) <= 100:
            found[float(match.group(1))] = _ms(value, f"{field}.{key}", where)
    return found


def _init(
    entry: Mapping[str, Any], warm_p50: float, mb: int, where: str
) -> tuple[float | None, str | None]:
    for field, note in (("init_ms", None), ("cold_start_ms", "cold-start latency less warm p50")):
        value = entry.get(field)
        if value is None:
            continue
        stat = "value"
        if isinstance(value, dict):
            # The mean is what a bill adds up; the median is the fallback.
            stat = "mean" if "mean" in value else "p50"
            value = value.get(stat)
            if value is None:
                continue
        ms = _ms(value, f"memory.{mb}.{field}", where)
        if note:
            return max(0.0, ms - warm_p50), f"{mb} MB: INIT taken as {note} ({stat})"
        return ms, (None if stat != "p50" else f"{mb} MB: INIT is the median (no mean given)")
    return None, None


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
    if options.duration_ms is not None:
        notes.append(f"every request takes the fixed {options.duration_ms:g} ms (not measured)")
    platforms: dict[str, dict[str, Any]] = {}
    for key in keys:
        p = table.platform(key)
        rows = [_row(p, mb, measured[mb], options, vm.monthly_usd) for mb in sizes]
        best = cheapest_memory(
            measured,
            p,
            options.p99_target_ms,
            cold_start_rate=options.cold_start_rate,
            free_tier=options.free_tier,
            requests_per_month=options.requests_per_month,
        )
        best.pop("candidates")
        if options.cold_start_rate > 0 and not p.init_billed:
            notes.append(f"{key} does not bill INIT: cold starts add nothing there")
        platforms[key] = {
            "name": p.name, "source": p.source, "as_of": p.as_of, "region": p.region,
            "overridden_by": p.overridden_by, "notes": p.notes, "rows": rows, "cheapest": best,
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


def _row(
    p: Platform,
    mb: int,
    m: Mapping[str, Any],
    options: CostOptions,
    vm_usd: float,
) -> dict[str, Any]:
    costs: dict[str, Any] = {
        "cold_start_rate": options.cold_start_rate,
        "init_ms": m["init_ms"],
        "free_tier": options.free_tier,
    }
    unavailable = _unavailable(p, mb)
    if unavailable:
        return {"memory_mb": mb, "skipped": unavailable}
    per_m = cost_per_million(
        p, mb, m["durations_ms"], requests_per_month=options.requests_per_month, **costs
    )
    monthly = per_m["total_usd"] * options.requests_per_month / 1e6
    rps = break_even_rps(p, mb, m["durations_ms"], vm=vm_usd, **costs)
    return {
        **per_m,
        "p99_ms": m["p99_ms"],
        "meets_p99": m["p99_ms"] <= options.p99_target_ms,
        "monthly_usd": monthly,
        "vs_vm": monthly / vm_usd if vm_usd > 0 else None,
        "break_even_rps": rps if math.isfinite(rps) else None,  # None: never (JSON has no inf)
    }


def _times(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}×"


def _usd(x: float) -> str:
    return f"${x:,.2f}" if abs(x) >= 0.01 or x == 0 else f"${x:.4f}"


def markdown_report(result: Mapping[str, Any]) -> str:
    """The report as Markdown: one table per platform."""
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
        f"Compared with {vm['name']}: {_usd(vm['monthly_usd'])} a month "
        f"(as of {vm['as_of']}, {vm['source']}).",
    ]
    for key, entry in result["platforms"].items():
        lines += [
            "",
            f"## {entry['name']} — `{key}`",
            "",
            f"Prices as of {entry['as_of']} from {entry['source']}"
            + (f", overridden by `{entry['overridden_by']}`" if entry["overridden_by"] else "")
            + ".",
            "",
            f"| memory MB | billed MB | mean billed ms | p99 ms | $ per 1M | $ a month at {n:,.0f} "
            "| vs VM | break-even req/s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in entry["rows"]:
            if "skipped" in row:
                lines.append(f"| {row['memory_mb']} | – | – | – | – | – | – | {row['skipped']} |")
                continue
            mark = "" if row["meets_p99"] else " ✗"
            rps = row["break_even_rps"]
            lines.append(
                f"| {row['memory_mb']} | {row['billed_memory_mb']} | {row['mean_billed_ms']:.1f} "
                f"| {row['p99_ms']:.1f}{mark} | {_usd(row['total_usd'])} "
                f"| {_usd(row['monthly_usd'])} | {_times(row['vs_vm'])} "
                f"| {'never' if rps is None else f'{rps:.3g}'} |"
            )
        best = entry["cheapest"]
        lines.append("")
        if best["memory_mb"] is None:
            lines.append(f"No size qualifies: {best['reason']}.")
        else:
            lines.append(
                f"Cheapest meeting p99 ≤ {result['p99_target_ms']:g} ms: {best['memory_mb']} MB "
                f"at {_usd(best['cost_per_million_usd'])} per 1M requests."
            )
        if entry["notes"]:
            lines.append(f"Note: {entry['notes']}")
    if result["notes"]:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in result["notes"]]
    lines += [
        "",
        "✗: p99 above the target. Break-even: the steady request rate at which the function "
        "costs as much as the VM over a 730-hour month; below it the function is cheaper.",
    ]
    return "\n".join(lines) + "\n"
