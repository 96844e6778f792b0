"""Cost per prediction against texts per request: what batching does to the bill.

At the cheapest Lambda size most of a single-text prediction's cost is the request fee
($0.20 per 1M requests), which only more texts per request can spread. ``slimbert bench lambda``
measures requests of k texts (1, 8, 32, 64 by default) at each memory size, and writes each
under ``memory.<MB>.batched.<k>``; this module prices them:

1. :func:`batch_inputs` says, for each (memory size, k), what is priced: the measured batch
   (its mean billed duration and duration quantiles), the single-text requests for k = 1 in
   older results without ``batched``, or a fixed duration the user gave with ``--batch``;
   a combination that was not measured is a row that says so, never an estimate.
2. :func:`price_batches` bills 1M / k requests per 1M predictions on a platform
   (:func:`slimbert.lab.billing.cost_per_prediction`), and the platform priced beside it
   (arm64 beside x86_64, at the same durations), and finds for each k the cheapest size whose
   p99 duration per request meets the target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from slimbert.errors import ConfigError
from slimbert.lab.billing import cost_per_prediction, why_unavailable
from slimbert.lab.results import Measurement
from slimbert.prices import Platform

# How the bench is asked for batches, quoted in hints.
BENCH_HINT = "run `slimbert bench lambda --batch-sizes 1,8,32,64`"


@dataclasses.dataclass(frozen=True)
class BatchInput:
    """What one (memory size, texts per request) is priced from."""

    memory_mb: int
    texts_per_request: int
    durations_ms: np.ndarray  # per request
    p99_ms: float  # the function's duration per request
    client_p99_ms: float | None
    billed_mean_ms: float | None  # measured mean billed duration per request (Lambda)
    init_ms: float | None
    requests: int | None  # requests measured; None for a fixed duration
    source: str  # "batched requests", "single-text requests" or "fixed duration"


def batch_inputs(
    by_size: Mapping[int, Measurement | None],
    *,
    batch: int | None,
    fixed_ms: float | None,
    init_ms: Mapping[int, float | None],
    where: str | None,
    notes: list[str],
) -> dict[tuple[int, int], BatchInput | str]:
    """(memory MB, k) -> what to price, or why it cannot be priced; {} when nothing is to be
    priced by batch (no ``batch`` asked and none measured). ``batch``: price only k = batch;
    ``fixed_ms``: every request of ``batch`` texts takes that long (a figure the user gave)."""
    if fixed_ms is not None:
        if batch is None:
            return {}
        notes.append(f"{batch} texts per request take the fixed {fixed_ms:g} ms (not measured)")
        fixed = np.array([fixed_ms])
        return {
            (mb, batch): BatchInput(
                mb, batch, fixed, fixed_ms, None, None, init_ms.get(mb), None, "fixed duration"
            )
            for mb in by_size
        }
    measured = sorted({k for m in by_size.values() if m for k in m.batched})
    if not measured and batch is None:
        notes.append(
            f"{where} has no batched requests (older results): the cost per prediction is the "
            f"cost per request; {BENCH_HINT} to price batching"
        )
        return {}
    ks = [batch] if batch is not None else measured
    if batch is not None and batch not in measured and not (batch == 1 and not measured):
        have = ", ".join(map(str, measured)) if measured else "1 (single-text requests only)"
        raise ConfigError(
            f"{where} has no requests of {batch} texts measured",
            hint=f"measured texts per request: {have}; {BENCH_HINT}",
        )
    found: dict[tuple[int, int], BatchInput | str] = {}
    for mb, m in by_size.items():
        for k in ks:
            b = m.batched.get(k) if m else None
            if m is not None and b is not None:
                found[mb, k] = BatchInput(
                    mb, k, b.durations_ms, b.p99_ms, b.client_p99_ms, b.billed_ms_mean,
                    init_ms.get(mb), b.requests, "batched requests",
                )  # fmt: skip
            elif m is not None and k == 1 and not m.batched:
                # Older results: one text per request is what their single-text run measured.
                found[mb, k] = BatchInput(
                    mb, 1, m.durations_ms, m.p99_ms, None, None, init_ms.get(mb), None,
                    "single-text requests",
                )  # fmt: skip
            else:
                found[mb, k] = "not measured"
    sources = {b.duration_source for m in by_size.values() if m for b in m.batched.values()}
    if "emulator-report" in sources:
        notes.append(
            f"{where}: batched requests bill the emulator's Billed Duration (its REPORT lines), "
            "which spans the runtime client's work as Lambda's does; the request table bills the "
            "handler's own timing, so its 1-text cost can be lower than the batched 1-text row"
        )
    if any(
        isinstance(v, BatchInput) and v.source == "single-text requests" for v in found.values()
    ):
        notes.append(
            f"{where}: 1 text per request priced from the single-text requests (no batched run)"
        )
    return found


def price_batches(
    p: Platform,
    beside: Platform | None,
    inputs: Mapping[tuple[int, int], BatchInput | str],
    *,
    p99_target_ms: float,
    cold_start_rate: float = 0.0,
) -> dict[str, Any]:
    """Cost per 1M predictions on ``p`` for each (memory size, k) of ``inputs``, with the
    ``beside`` platform's figure at the same durations; ``cheapest`` per k: the size with the
    lowest cost whose p99 duration per request meets ``p99_target_ms`` (ties: the smaller)."""
    rows = []
    for (mb, k), given in sorted(inputs.items(), key=lambda item: (item[0][1], item[0][0])):
        row: dict[str, Any] = {"memory_mb": mb, "texts_per_request": k}
        why = given if isinstance(given, str) else why_unavailable(p, mb)
        if why or not isinstance(given, BatchInput):
            rows.append({**row, "skipped": why})
            continue
        init = given.init_ms if cold_start_rate > 0 else None
        if cold_start_rate > 0 and init is None:
            raise ConfigError(
                f"cold_start_rate {cold_start_rate:g} needs an INIT duration for {mb} MB",
                hint="pass --init-ms, or give init_ms in the results",
            )
        bill = _per_prediction(p, given, cold_start_rate, init)
        row.update(
            source=given.source,
            requests=given.requests,
            p99_ms=given.p99_ms,
            client_p99_ms=given.client_p99_ms,
            meets_p99=given.p99_ms <= p99_target_ms,
            **{key: bill[key] for key in _BILL_KEYS},
        )
        if beside is not None and not why_unavailable(beside, mb):
            row["beside_total_usd"] = _per_prediction(beside, given, cold_start_rate, init)[
                "total_usd"
            ]
        rows.append(row)
    ks = sorted({k for _, k in inputs})
    cheapest = {k: _cheapest(rows, k, p99_target_ms) for k in ks}
    return {
        "texts_per_request": ks,
        "beside": beside.key if beside is not None else None,
        "rows": rows,
        "cheapest": cheapest,
    }


_BILL_KEYS = (
    "mean_billed_ms", "billed_from", "total_usd", "requests_usd", "compute_usd", "cpu_usd",
    "init_usd", "fee_share",
)  # fmt: skip


def _per_prediction(
    p: Platform, given: BatchInput, cold_start_rate: float, init_ms: float | None
) -> dict[str, Any]:
    return cost_per_prediction(
        p,
        given.memory_mb,
        given.durations_ms,
        given.texts_per_request,
        billed_mean_ms=given.billed_mean_ms,
        cold_start_rate=cold_start_rate,
        init_ms=init_ms,
    )


def _cheapest(rows: Sequence[Mapping[str, Any]], k: int, target_ms: float) -> dict[str, Any]:
    priced = [r for r in rows if r["texts_per_request"] == k and "skipped" not in r]
    ok = [r for r in priced if r["meets_p99"]]
    if not ok:
        if priced:
            best = min(priced, key=lambda r: r["p99_ms"])
            why = f"best is {best['memory_mb']} MB at {best['p99_ms']:.1f} ms"
        else:
            why = "none measured"
        return {
            "memory_mb": None,
            "total_usd": None,
            "beside_total_usd": None,
            "p99_ms": None,
            "reason": f"no memory size meets p99 <= {target_ms:g} ms at {k} texts ({why})",
        }
    best = min(ok, key=lambda r: (r["total_usd"], r["memory_mb"]))
    return {
        "memory_mb": best["memory_mb"],
        "total_usd": best["total_usd"],
        "beside_total_usd": best.get("beside_total_usd"),
        "p99_ms": best["p99_ms"],
        "reason": None,
    }
