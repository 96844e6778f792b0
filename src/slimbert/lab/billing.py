"""The billing arithmetic: durations and a price table in, dollars out.

Benešová et al. (NAACL 2021 industry) estimated about $2 per 1M predictions of 100 ms at 1 GB on
AWS Lambda against $8 a month for the cheapest VM. These functions redo that arithmetic for each
platform in the price table (:mod:`slimbert.prices`):

1. each duration is rounded up to the platform's billing granularity (1 ms on Lambda, 100 ms
   on Google) and never below its minimum;
2. memory (GB-seconds), CPU where billed apart (GHz- or vCPU-seconds) and requests are priced;
   a ``cold_start_rate`` share of requests also bills its INIT time where the platform does;
3. free tiers are subtracted only when asked (they are per account, not per function);
4. the monthly cost is compared with an always-on VM, and the request rate at which both cost
   the same is solved exactly (the monthly cost is piecewise linear in the request count).

Nothing here reads files: :mod:`slimbert.lab.cost` feeds it measured durations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from slimbert.errors import ConfigError
from slimbert.prices import Platform, PriceTable, load_prices

HOURS_PER_MONTH = 730  # what AWS, Google and Azure use for monthly prices
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
# Platforms priced beside another in every cost table, at that one's measured durations: the
# same Lambda zip built for Graviton (``slimbert package --arch arm64``) bills less per GB-s at
# the same request fee, and this lab does not measure arm64 speed (an x86_64 host runs arm64
# under qemu, far slower than Graviton), so its column answers "what if it ran as fast".
PRICED_BESIDE = {"aws-lambda-x86_64": "aws-lambda-arm64"}


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
    billed_mean_ms: float | None = None,
) -> dict[str, Any]:
    """The bill for ``n_requests`` with durations like ``durations_ms`` (a sample, or one value);
    ``billed_mean_ms``, where given, is the mean billed duration already rounded by the platform
    (measured), used as it is."""
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
    if billed_mean_ms is not None:
        mean_ms = max(float(billed_mean_ms), p.min_billed_ms)
    else:
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


def cost_per_prediction(
    platform: str | Platform,
    memory_mb: int,
    durations_ms: Any,
    texts_per_request: int,
    *,
    billed_mean_ms: float | None = None,
    cold_start_rate: float = 0.0,
    init_ms: float | None = None,
    prices: PriceTable | None = None,
) -> dict[str, Any]:
    """Dollars per 1M predictions when each request carries ``texts_per_request`` texts and
    takes ``durations_ms``: the bill of 1M / k requests, broken down as :func:`monthly_cost`.

    ``billed_mean_ms`` is the mean duration a platform billed per request, measured (Lambda's
    Billed Duration): it is used as it is on a platform that also bills to the millisecond, and
    ignored where the platform rounds coarser, which rounds ``durations_ms`` itself. No free
    tier: it is per account, and a share of it per prediction says nothing about batching.
    ``fee_share`` is the request fee's part of the total.
    """
    if isinstance(texts_per_request, bool) or int(texts_per_request) != texts_per_request:
        raise ConfigError(f"texts per request must be a whole number, got {texts_per_request}")
    if texts_per_request < 1:
        raise ConfigError(f"texts per request must be at least 1, got {texts_per_request}")
    p = _platform(platform, prices)
    exact = billed_mean_ms is not None and p.granularity_ms <= 1
    bill = _bill(
        p,
        memory_mb,
        durations_ms,
        1e6 / texts_per_request,
        cold_start_rate=cold_start_rate,
        init_ms=init_ms,
        free_tier=False,
        billed_mean_ms=billed_mean_ms if exact else None,
    )
    total = bill["total_usd"]
    return {
        **bill,
        "texts_per_request": int(texts_per_request),
        "predictions": 1e6,
        "billed_from": "measured billed duration" if exact else "durations rounded up",
        "fee_share": bill["requests_usd"] / total if total > 0 else None,
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
        unavailable = why_unavailable(p, int(mb))
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


def why_unavailable(p: Platform, memory_mb: int) -> str | None:
    """Why ``p`` has no such memory size, or None when it has."""
    try:
        p.billed_memory_mb(memory_mb)
    except ConfigError as exc:
        return exc.message
    return None
