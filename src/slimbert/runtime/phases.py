"""The cold-start budget, measured inside the function: one monotonic clock, one line per phase.

A cold start is the time from the process's start to its first answer. The function records
where that time goes, in order:

* ``interpreter``: process start to the handler module's first line (Python's own start-up,
  ``site``, and on Lambda the runtime interface client that imports the handler). Taken from
  the timestamp a launcher passes in ``SLIMBERT_LAUNCHED_AT`` (``time.time()`` just before it
  started this Python), else from the kernel's start time of the process
  (``/proc/self/stat``, clock ticks of 10 ms: the phase is then up to 10 ms too long);
* ``import_numpy``, ``import_tokenizers`` (each with the standard modules it loads),
  ``import_stdlib`` (the standard modules the runtime adds), ``import_runtime`` (the
  ``slimbert.runtime`` modules themselves), ``import_onnxruntime``;
* ``manifest`` (read and check ``manifest.json``, its pinned digest included), ``verify``
  (the bundle's files against the manifest), ``tokenizer``, ``session``, ``index`` (the
  duplicate index, when the function ships one);
* ``first_request``: the first request, from its arrival to its answer (parsing,
  tokenizing, the first inference, the response JSON).

Time the process spends waiting (for the first request after init, or between import and
the load on Cloud Run where the model loads at the first request) is not a phase: it is
``idle_ms``. ``total_ms`` is the sum of the phases, the function's own time to the answer.

Two lines on stderr publish it, each one JSON object after a fixed word:

    SLIMBERT_INIT {"phases_ms": {"interpreter": 41.2, ...}, "total_ms": 180.3, ...}
    SLIMBERT_FIRST {"phases_ms": {"first_request": 3.1}, "total_ms": 183.4, ...}

``SLIMBERT_INIT`` ends the load (once per process: a later reload prints nothing);
``SLIMBERT_FIRST`` follows the first answer. :func:`read_phase_lines` parses them out of a
captured log. This module imports only ``os``, ``sys`` and ``time`` (already loaded when
Python starts), so importing it costs nothing measurable.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing is not loaded yet when the handler imports this module
if TYPE_CHECKING:
    from typing import Any

INIT_WORD = "SLIMBERT_INIT"
FIRST_WORD = "SLIMBERT_FIRST"
LAUNCHED_AT_ENV = "SLIMBERT_LAUNCHED_AT"
# Every phase the function reports, in the order it happens; a phase it did not pass through
# (no index shipped) is reported as 0 so every line has the same columns.
INIT_PHASES = (
    "interpreter",
    "import_numpy",
    "import_tokenizers",
    "import_stdlib",
    "import_runtime",
    "import_onnxruntime",
    "manifest",
    "verify",
    "tokenizer",
    "session",
    "index",
)
FIRST_PHASES = ("first_request",)
PHASES = INIT_PHASES + FIRST_PHASES
DECIMALS = 3


def _process_age_s() -> tuple[float | None, str]:
    """Seconds since this process started, and where the figure comes from."""
    raw = os.environ.get(LAUNCHED_AT_ENV, "").strip()
    if raw:
        try:
            launched = float(raw)
        except ValueError:
            launched = -1.0
        age = time.time() - launched
        if 0 <= age < 3600:  # a stale or garbled stamp (inherited by a later process): ignore
            return age, "launcher"
    try:
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read()
        # Field 22, starttime, in clock ticks since boot; the name (field 2) may hold spaces.
        ticks = int(stat[stat.rindex(b")") + 2 :].split()[19])
        started = ticks / os.sysconf("SC_CLK_TCK")
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started), "proc"
    except (OSError, ValueError, IndexError, AttributeError):  # not Linux
        return None, "none"


class PhaseRecorder:
    """Milliseconds per phase on ``time.perf_counter``, from the moment it is made.

    ``mark(name)`` charges the time since the previous mark to ``name`` (imports: one mark
    after each); ``phase(name)`` charges exactly a block; ``idle()`` moves the clock on
    without charging a phase. Phases named twice add up.
    """

    def __init__(self, interpreter_s: float | None = None, source: str = "none") -> None:
        self.phases_ms: dict[str, float] = {}
        if interpreter_s is not None:
            self.phases_ms["interpreter"] = interpreter_s * 1000
        self.source = source
        self.idle_ms = 0.0
        self.init_ms: float | None = None  # set when the init line is written
        self.first_ms: float | None = None  # set when the first answer's line is written
        self._clock = time.perf_counter()
        self._init_end: float | None = None

    @classmethod
    def from_process_start(cls) -> PhaseRecorder:
        age, source = _process_age_s()
        return cls(age, source)

    def _add(self, name: str, seconds: float) -> None:
        self.phases_ms[name] = self.phases_ms.get(name, 0.0) + max(0.0, seconds) * 1000

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self._add(name, now - self._clock)
        self._clock = now

    def idle(self) -> None:
        now = time.perf_counter()
        self.idle_ms += max(0.0, now - self._clock) * 1000
        self._clock = now

    def phase(self, name: str) -> _Phase:
        """``with recorder.phase("session"): ...`` charges the block to ``session``."""
        return _Phase(self, name)

    def silence(self) -> None:
        """Write no line from this process: it drives the handler (a benchmark, a test) and
        its load is no cold start."""
        self.init_ms = self.init_ms if self.init_ms is not None else 0.0
        self.first_ms = self.first_ms if self.first_ms is not None else 0.0

    @property
    def init_done(self) -> bool:
        return self.init_ms is not None

    @property
    def first_done(self) -> bool:
        return self.first_ms is not None

    def _ordered(self, names: tuple[str, ...]) -> dict[str, float]:
        out = {name: round(self.phases_ms.get(name, 0.0), DECIMALS) for name in names}
        extra = [n for n in self.phases_ms if n not in PHASES]  # a caller's own phase
        out.update({n: round(self.phases_ms[n], DECIMALS) for n in extra})
        return out

    def init_record(self, ok: bool = True) -> dict[str, Any]:
        phases = self._ordered(INIT_PHASES)
        return {
            "phases_ms": phases,
            "total_ms": round(sum(phases.values()), DECIMALS),
            "idle_ms": round(self.idle_ms, DECIMALS),
            "interpreter_source": self.source,
            "ok": ok,
            "pid": os.getpid(),
        }

    def finish_init(self, ok: bool = True, stream: Any = None) -> dict[str, Any] | None:
        """Write the ``SLIMBERT_INIT`` line (the first time only); return its record."""
        if self.init_done:
            return None
        record = self.init_record(ok)
        self.init_ms = record["total_ms"]
        self._init_end = self._clock = time.perf_counter()
        _write(INIT_WORD, record, stream)
        return record

    def finish_first(
        self, started: float, status: int, stream: Any = None
    ) -> dict[str, Any] | None:
        """Write the ``SLIMBERT_FIRST`` line for a request that arrived at ``started``
        (``perf_counter``) and was just answered, once, after the init line."""
        if self.init_ms is None or self.first_done or self._init_end is None:
            return None
        now = time.perf_counter()
        # On Cloud Run the load runs inside the first request: only what follows it counts.
        begin = max(started, self._init_end)
        self.idle_ms += max(0.0, started - self._init_end) * 1000
        self._add("first_request", now - begin)
        self.first_ms = self.phases_ms["first_request"]
        phases = self._ordered(FIRST_PHASES)
        record = {
            "phases_ms": phases,
            "total_ms": round(self.init_ms + sum(phases.values()), DECIMALS),
            "idle_ms": round(self.idle_ms, DECIMALS),
            "status": status,
            "pid": os.getpid(),
        }
        _write(FIRST_WORD, record, stream)
        return record


class _Phase:
    """The context manager of :meth:`PhaseRecorder.phase` (contextlib is not loaded yet)."""

    def __init__(self, recorder: PhaseRecorder, name: str) -> None:
        self.recorder = recorder
        self.name = name
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.recorder._clock = now = time.perf_counter()
        self.recorder._add(self.name, now - self.started)


def _write(word: str, record: dict[str, Any], stream: Any) -> None:
    import json  # the handler has imported it by now

    out = stream if stream is not None else sys.stderr
    try:
        out.write(f"{word} {json.dumps(record, separators=(',', ':'))}\n")
        out.flush()
    except (OSError, ValueError):  # a closed stderr must never fail the function
        pass


def read_phase_lines(text: str) -> list[dict[str, Any]]:
    """The cold starts recorded in a captured log: one dict per ``SLIMBERT_INIT`` line.

    Each dict: ``phases_ms`` (every phase of :data:`PHASES` in order, with ``first_request``
    once its ``SLIMBERT_FIRST`` line is seen), ``init_ms`` (the init phases' sum),
    ``total_ms`` (the sum of ``phases_ms``: process start to first answer when
    ``answered``), ``answered``, ``idle_ms``, ``interpreter_source``, ``ok``, ``pid`` and
    ``status`` (the first answer's HTTP status, ``None`` before it). A line may carry a
    prefix (a timestamp, a log stream's name); a line that is not valid JSON is skipped.
    """
    import json

    runs: list[dict[str, Any]] = []
    for line in text.splitlines():
        for word in (INIT_WORD, FIRST_WORD):
            at = line.find(word + " {")
            if at >= 0:
                break
        else:
            continue
        try:
            record = json.loads(line[at + len(word) + 1 :])
        except ValueError:
            continue
        phases = record.get("phases_ms") if isinstance(record, dict) else None
        if not isinstance(phases, dict):
            continue
        phases = {str(k): float(v) for k, v in phases.items() if isinstance(v, int | float)}
        if word == INIT_WORD:
            runs.append(
                {
                    "phases_ms": phases,
                    "init_ms": float(record.get("total_ms", sum(phases.values()))),
                    "total_ms": float(sum(phases.values())),
                    "answered": False,
                    "idle_ms": float(record.get("idle_ms", 0.0)),
                    "interpreter_source": record.get("interpreter_source"),
                    "ok": bool(record.get("ok", True)),
                    "pid": record.get("pid"),
                    "status": None,
                }
            )
            continue
        # The first answer belongs to the latest cold start of the same process.
        owner = next(
            (
                run
                for run in reversed(runs)
                if not run["answered"] and run["pid"] == record.get("pid")
            ),
            None,
        )
        if owner is None:
            continue
        owner["phases_ms"].update(phases)
        owner["total_ms"] = float(sum(owner["phases_ms"].values()))
        owner["answered"] = True
        owner["idle_ms"] = float(record.get("idle_ms", owner["idle_ms"]))
        owner["status"] = record.get("status")
    return runs
