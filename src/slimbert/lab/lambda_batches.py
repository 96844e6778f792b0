"""Batched requests in ``slimbert bench lambda``: k texts per request, per memory size.

The request fee is most of what a prediction costs at the cheapest memory size, so the price
of a prediction falls with the texts each request carries, as far as the duration lets it.
For each batch size k (``batch_sizes``, at most the function's 64 texts), the warm instance
of a memory size serves ``batch_requests`` requests of k real texts each, one at a time, after
the single-text requests; each answer must hold k predictions. Per k this records the client
round trip, the function's Duration and Billed Duration from the emulator's REPORT lines (what
Lambda bills), and the handler's own ``timing_ms.total``.

The block it writes, under ``batched`` of each memory size, is the schema agreed with the cost
model (/tmp/notes/batch-interface.md, docs/commands.md)::

    "batched": {"8": {"texts_per_request": 8, "requests": N, "errors": 0,
                      "client_ms": {p50, p90, p95, p99, mean, max, n},
                      "duration_ms": {...}, "billed_ms_mean": float,
                      "duration_source": "emulator-report" | "handler",
                      "handler_ms": {...}, "peak_memory_mb": float | None}, ...}

Without REPORT lines (a Google function: no emulator), ``duration_ms`` is the handler's own
timing and ``billed_ms_mean`` is None: Google bills in its own granularity, which the cost
model applies to the duration.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from slimbert.lab.lambda_instances import (
    Instance,
    InstanceFailed,
    Target,
    call_instance,
    emulator_reports,
)
from slimbert.metrics import quantiles

# Requests per batch size before the clock starts: the first run of a new input shape
# allocates its buffers, which a warm execution environment has long done.
BATCH_WARMUP = 3


@dataclasses.dataclass
class Batches:
    """What :func:`measure_batches` sent: the blocks so far, and for each batch size the
    position (in the instance's request order) of every measured request, to find its REPORT
    line once the instance has stopped and its log is complete."""

    entries: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    positions: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    handler_ms: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    # The model's own time per request (the answer's timing_ms.inference): what no handler
    # change can take away from the billed duration.
    inference_ms: dict[str, list[float]] = dataclasses.field(default_factory=dict)

    def finish(self, log_text: str | None) -> dict[str, dict[str, Any]]:
        """The ``batched`` block: durations from the REPORT lines of ``log_text`` (the
        emulator's log; None without one), else the handler's own timing."""
        reports = emulator_reports(log_text) if log_text else []
        for k, entry in self.entries.items():
            handler = self.handler_ms.get(k, [])
            if not handler:
                continue
            entry["handler_ms"] = quantiles(handler)
            inference = self.inference_ms.get(k, [])
            if len(inference) == len(handler):
                entry["inference_ms"] = quantiles(inference)
            found = [reports[p] for p in self.positions[k] if p < len(reports)]
            if reports and len(found) == len(handler):
                entry["duration_ms"] = quantiles([duration for duration, _ in found])
                entry["billed_ms_mean"] = float(np.mean([billed for _, billed in found]))
                entry["duration_source"] = "emulator-report"
            else:
                entry["duration_ms"] = entry["handler_ms"]
                entry["billed_ms_mean"] = None
                entry["duration_source"] = "handler"
        return self.entries


def measure_batches(
    fn: Instance,
    target: Target,
    sizes: Sequence[int],
    requests: int,
    text_at: Callable[[int], str],
    *,
    first_position: int,
    deadline: float,
    peak_memory_mb: Callable[[], float | None] = lambda: None,
    oom: Callable[[str], bool] = lambda tail: False,
) -> Batches:
    """Send ``requests`` requests of k texts for each k of ``sizes`` (smallest first) to the
    running instance ``fn``, after :data:`BATCH_WARMUP` unmeasured ones.

    ``first_position``: how many requests the instance has answered before (its REPORT lines
    come first in the log). An answer other than 200, or fewer predictions than texts, is an
    error of that batch size and the next request follows; an instance that dies ends the
    batches (``oom`` tells from its log tail whether the OOM killer did it).
    ``peak_memory_mb`` reads the instance's peak memory so far: smallest batch first, so each
    size's figure is the peak up to and including its own requests.
    """
    out = Batches()
    position = first_position
    used = 0  # texts drawn so far: consecutive batches carry different texts
    for k in sorted(sizes):
        key = str(k)
        entry: dict[str, Any] = {"texts_per_request": k, "requests": 0, "errors": 0}
        out.entries[key] = entry
        out.positions[key] = []
        client: list[float] = []
        handler = out.handler_ms.setdefault(key, [])
        inference = out.inference_ms.setdefault(key, [])
        for i in range(BATCH_WARMUP + requests):
            if time.monotonic() > deadline:
                entry["stopped_early"] = f"time limit after {len(client)} requests"
                break
            texts = [text_at(used + j) for j in range(k)]
            used += k
            timings: dict[str, float] = {}
            try:
                ms, total = call_instance(fn, target, texts, timings)
            except InstanceFailed as exc:
                entry["errors"] += 1
                entry["error"] = exc.message
                if exc.status is None:  # no answer: the instance is gone
                    entry["oom"] = oom(exc.log_tail)
                    entry["log_tail"] = exc.log_tail.splitlines()[-5:]
                    break
                position += 1  # it answered, so the emulator logged a REPORT line for it
                continue
            if i >= BATCH_WARMUP:
                client.append(ms)
                handler.append(total)
                if "inference" in timings:
                    inference.append(timings["inference"])
                out.positions[key].append(position)
            position += 1
        entry["requests"] = len(client)
        if client:
            entry["client_ms"] = quantiles(client)
        entry["peak_memory_mb"] = peak_memory_mb()
        if "log_tail" in entry:
            for later in sorted(sizes):
                if later > k:
                    out.entries[str(later)] = {
                        "texts_per_request": later,
                        "requests": 0,
                        "errors": 0,
                        "skipped": f"the instance died at {k} texts per request",
                    }
            break
    return out
