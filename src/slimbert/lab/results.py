"""Benchmark results on disk: finding the newest of each kind, and reading them back.

``slimbert report`` and ``slimbert cost`` both start here, so a results file is read one way:

1. :func:`find_results` picks the newest file of each kind under the roots given
   (``sampler.json``, ``serving.json``, ``lambda.json`` per platform and arch, ``*.sizes.json``
   per package, ``eval.json``, ``invoke.json``); a ``lambda.json`` counts only when its run is
   complete (:func:`lambda_gaps`), unless its folder or the file itself was named.
2. :func:`results_from_doc` is the one reader of a ``lambda.json``'s ``memory`` block: each
   size's durations (raw, or rebuilt from quantiles), p99 and INIT, as :class:`Measurement`.
   :func:`read_results` (``slimbert cost --results``) and :func:`read_lambda` (the report, every
   function in the file) both use it.
3. Small readers of the other kinds: :func:`size_parts` (package sizes by component) and
   :func:`quality_points` (quality against latency from ``eval.json``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slimbert.errors import DataError
from slimbert.io import read_json
from slimbert.lab.lambda_options import BenchLambdaOptions

log = logging.getLogger(__name__)

# Each kind of results file: its name, a key every such file has (a file of that name holding
# something else is skipped), and the command that writes it.
KINDS = {
    "sampler": ("sampler.json", "variants", "slimbert bench sampler"),
    "serving": ("serving.json", "cold_start", "slimbert bench serving"),
    "lambda": ("lambda.json", "memory", "slimbert bench lambda"),
    "sizes": ("*.sizes.json", "components", "slimbert package"),
    "eval": ("eval.json", "models", "slimbert eval"),
    "invoke": ("invoke.json", "cold_start_ms", "slimbert invoke"),
}
_STAMP = re.compile(r"^\d{8}T\d{6}Z$")  # benchmarks.results_dir
_BASELINE_KEYS = ("teacher", "torch_teacher", "baseline")  # hand-made lambda.json files
SIZE_PARTS = ("numpy", "onnxruntime", "tokenizers", "other libraries", "model", "code")
# The sizes `slimbert bench lambda` measures by default: a run that measured fewer is a
# partial re-measurement.
BENCH_MEMORY_MB: tuple[int, ...] = BenchLambdaOptions.memory_mb
# Quantile-only results are expanded to this many evenly spaced quantiles.
_APPROX_POINTS = 1000
_QUANTILE_KEY = re.compile(r"^p(\d+(?:\.\d+)?)(?:_ms)?$")


@dataclasses.dataclass(frozen=True)
class Source:
    """One results file: its kind, where it is, what it says and when it was made."""

    kind: str
    path: Path
    doc: dict[str, Any]
    when: dt.datetime

    @property
    def date(self) -> str:
        return f"{self.when:%Y-%m-%d}"

    @property
    def machine(self) -> str | None:
        m = self.doc.get("machine")
        if isinstance(m, dict):
            cpus = m.get("cpus_usable")
            return ", ".join(x for x in (m.get("processor"), f"{cpus} CPUs" if cpus else None) if x)
        if self.kind != "lambda":
            return None
        # A hand-made lambda.json may only say where it ran.
        where = " ".join(
            str(self.doc[k]) for k in ("platform", "arch", "region") if self.doc.get(k)
        )
        return where or None

    def cite(self) -> str:
        machine = f", {self.machine}" if self.machine else ""
        return f"`{self.path}` ({self.when:%Y-%m-%d %H:%M} UTC{machine})"


# -- finding the latest results ---------------------------------------------------------------


def find_results(
    roots: Iterable[Path],
    *,
    memory_mb: Sequence[int] = BENCH_MEMORY_MB,
    notes: list[str] | None = None,
) -> dict[str, list[Source]]:
    """The newest file of each kind under ``roots`` (for ``lambda``: per platform and arch;
    for ``sizes``: per package name).

    A ``lambda.json`` must be complete (:func:`lambda_gaps` finds nothing missing against
    ``memory_mb``) unless it lies in a root that names one run (a ``<timestamp>`` folder or the
    file itself); when no run of a platform is complete, the newest is used. Why a newer run was
    passed over, or an incomplete one used, is appended to ``notes``.
    """
    candidates: dict[str, dict[str, list[Source]]] = {kind: {} for kind in KINDS}
    pinned: set[Path] = set()
    for root in roots:
        root = Path(root)
        for kind, (pattern, _, _) in KINDS.items():
            if root.is_file():
                paths = [root] if fnmatch.fnmatch(root.name, pattern) else []
            else:
                paths = sorted(root.rglob(pattern)) if root.is_dir() else []
            for path in paths:
                source = _load(kind, path)
                if source is None:
                    continue
                candidates[kind].setdefault(_group(source), []).append(source)
                if root.is_file() or _STAMP.match(root.name):
                    pinned.add(path)
    latest: dict[str, list[Source]] = {}
    for kind, groups in candidates.items():
        chosen = []
        for group in sorted(groups):
            newest_first = sorted(
                {s.path: s for s in groups[group]}.values(),
                key=lambda s: (s.when, str(s.path)),
                reverse=True,
            )
            if kind == "lambda":
                chosen.append(_complete_run(newest_first, memory_mb, pinned, notes))
            else:
                chosen.append(newest_first[0])
        latest[kind] = chosen
    return latest


def lambda_gaps(doc: Mapping[str, Any], memory_mb: Sequence[int] = BENCH_MEMORY_MB) -> list[str]:
    """What keeps a ``lambda.json`` from being a complete run: each function's sizes that it
    asked for (``options.memory_mb``) or ``memory_mb`` names but that have no result. A size
    that ran out of memory is a result; one that failed otherwise is not. [] when complete."""
    options = doc.get("options")
    asked = options.get("memory_mb") if isinstance(options, dict) else None
    functions = doc["functions"] if isinstance(doc.get("functions"), dict) else {}
    blocks: dict[str, Any] = {str(k): v for k, v in functions.items()}
    if not blocks:
        blocks = {"student": doc.get("memory")}
        blocks.update({k: doc[k] for k in _BASELINE_KEYS if isinstance(doc.get(k), dict)})
    gaps = []
    for name, block in blocks.items():
        entries: dict[str, dict[int, dict[str, Any]]] = {}
        _add_model(entries, name, block)
        sizes = entries.get(name, {})
        wanted = set(memory_mb) | set(asked if isinstance(asked, list) else sizes)
        missing = sorted(
            mb
            for mb in wanted
            if mb not in sizes or (sizes[mb].get("error") and not sizes[mb].get("oom"))
        )
        if missing:
            measured = sorted(set(sizes) - set(missing))
            gaps.append(
                f"{name} has no result at {', '.join(map(str, missing))} MB (measured: "
                f"{', '.join(map(str, measured)) or 'none'})"
            )
    return gaps


def _complete_run(
    newest_first: Sequence[Source],
    memory_mb: Sequence[int],
    pinned: set[Path],
    notes: list[str] | None,
) -> Source:
    """The newest complete (or named) run of one platform, noting the runs passed over."""
    skipped: list[str] = []
    chosen = None
    for source in newest_first:
        gaps = lambda_gaps(source.doc, memory_mb)
        if not gaps:
            chosen = source
            break
        if source.path in pinned:
            chosen = source
            skipped.append(f"{source.path} is used as named but is incomplete: {'; '.join(gaps)}")
            break
        skipped.append(f"{source.path} passed over as incomplete: {'; '.join(gaps)}")
    if chosen is None:  # nothing complete: the newest, said to be partial
        chosen = newest_first[0]
        skipped.append(
            f"no complete lambda run for {_group(chosen)}; using the newest, {chosen.path}"
        )
    if notes is not None:
        notes.extend(skipped)
    for line in skipped:
        log.warning("report: %s", line)
    return chosen


def _load(kind: str, path: Path) -> Source | None:
    try:
        doc = read_json(path)
    except (OSError, ValueError) as exc:
        log.warning("skipping %s: not a readable JSON file (%s)", path, exc)
        return None
    key = KINDS[kind][1]
    if not isinstance(doc, dict) or key not in doc:
        log.warning("skipping %s: no %r key, so not a %s results file", path, key, kind)
        return None
    return Source(kind, path, doc, _when(path, doc))


def _when(path: Path, doc: Mapping[str, Any]) -> dt.datetime:
    """The run's time: the file's ``created``, else its ``<timestamp>`` folder, else mtime."""
    created = doc.get("created")
    if isinstance(created, str):
        try:
            when = dt.datetime.fromisoformat(created)
            return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        except ValueError:
            pass
    for folder in path.parents:
        if _STAMP.match(folder.name):
            return dt.datetime.strptime(folder.name, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)


def _group(source: Source) -> str:
    if source.kind == "lambda":
        return "-".join(str(source.doc[k]) for k in ("platform", "arch") if source.doc.get(k))
    if source.kind == "eval":
        # One evaluation per run folder: the demo's (runs/sentiment) and a run that extends it
        # (runs/sentiment/mpnet) compare different models, and neither replaces the other.
        return str(source.path.parent)
    return source.path.name if source.kind == "sizes" else source.kind


# -- benchmark results ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One memory size's latencies as read from a results file."""

    memory_mb: int
    durations_ms: np.ndarray
    p99_ms: float
    init_ms: float | None
    notes: tuple[str, ...] = ()  # what was approximated, and how
    # Requests of k texts each, by k (``batched`` in the results; empty in older files).
    batched: Mapping[int, Batch] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Batch:
    """One batch size measured at one memory size: ``memory.<MB>.batched.<k>`` of a results file.

    ``durations_ms`` is the function's duration per request rebuilt from its quantiles (the
    benchmark keeps no raw list); ``billed_ms_mean`` is the mean duration Lambda bills per
    request (Duration rounded up to 1 ms, from the emulator's REPORT lines), None where the
    platform's own rounding must be applied to ``durations_ms``.
    """

    texts_per_request: int
    requests: int
    errors: int
    durations_ms: np.ndarray
    p99_ms: float  # the function's duration per request
    client_p99_ms: float | None  # the round trip at the client
    billed_ms_mean: float | None
    duration_source: str | None = None  # "emulator-report" or "handler", as the benchmark says


@dataclasses.dataclass(frozen=True)
class Results:
    path: str
    platform: str | None  # "aws-lambda-x86_64" from {"platform": "aws-lambda", "arch": ...}
    memory: Mapping[int, Measurement]


def read_results(path: str | Path) -> Results:
    """Read a benchmark results file: ``{"memory": {"1024": {...}}, "platform", "arch"}``
    (:func:`results_from_doc` says what each entry may hold)."""
    where = str(path)
    try:
        doc = read_json(path)
    except FileNotFoundError as exc:
        raise DataError("no such results file", path=where) from exc
    except (OSError, ValueError) as exc:
        raise DataError(f"not a readable JSON file ({exc})", path=where) from exc
    return results_from_doc(doc, where)


def results_from_doc(doc: Any, where: str) -> Results:
    """The ``memory`` block of a results document read from ``where``.

    Each memory entry needs ``durations_ms`` (a list) or quantiles (``p50_ms``, ``p99_ms``, or
    ``durations_ms`` as ``{"p50": ...}``); from quantiles alone the distribution is rebuilt by
    interpolation and the entry's notes say so. INIT comes from ``init_ms`` (a number or
    ``{"mean"|"p50": ...}``), else from ``cold_start_ms`` less the warm median.
    """
    entries = doc.get("memory") if isinstance(doc, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise DataError('expected {"memory": {"1024": {"durations_ms": [...]}, ...}}', path=where)
    memory = {}
    for key, entry in entries.items():
        if not str(key).isdigit() or int(key) <= 0:
            raise DataError(f"memory key {key!r} is not a size in MB", path=where)
        if not isinstance(entry, dict):
            raise DataError(f"memory.{key} must be a mapping", path=where)
        memory[int(key)] = measurement(int(key), entry, where)
    platform = doc.get("platform")
    arch = doc.get("arch")
    key = f"{platform}-{arch}" if platform and arch else platform
    return Results(where, str(key) if key else None, memory)


def measurement(mb: int, entry: Mapping[str, Any], where: str) -> Measurement:
    """One memory size's entry of a results file read from ``where``; DataError names the
    field that is not a duration."""
    raw = entry.get("durations_ms")
    quantiles = _quantiles(entry, f"memory.{mb}", where)
    if isinstance(raw, dict):
        quantiles.update(_quantiles(raw, f"memory.{mb}.durations_ms", where))
    notes: list[str] = []
    if isinstance(raw, list) and raw:
        durations = np.asarray([_duration(v, f"memory.{mb}.durations_ms", where) for v in raw])
    elif quantiles:
        durations = _from_quantiles(quantiles)
        names = ", ".join(f"p{q:g}" for q in sorted(quantiles))
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
    batched = _batches(mb, entry.get("batched"), where, notes)
    return Measurement(mb, durations, float(p99), init_ms, tuple(notes), batched)


def _from_quantiles(quantiles: Mapping[float, float]) -> np.ndarray:
    """A sample of :data:`_APPROX_POINTS` durations with the given quantiles (percent -> ms)."""
    ps = sorted(quantiles)
    # Quantiles must not decrease; rounding in the writer can make neighbours cross.
    values = np.maximum.accumulate([quantiles[q] for q in ps])
    grid = (np.arange(_APPROX_POINTS) + 0.5) / _APPROX_POINTS * 100
    return np.interp(grid, ps, values)  # flat beyond the first and last quantile


def _batches(mb: int, block: Any, where: str, notes: list[str]) -> dict[int, Batch]:
    """The ``batched`` block of one memory size. A batch size the benchmark could not measure
    (skipped, no answered request) is left out with a note: it is a result, not a broken file;
    a value of the wrong type is a DataError naming its field."""
    if block is None:
        return {}
    field = f"memory.{mb}.batched"
    if not isinstance(block, dict):
        raise DataError(f"{field} must map texts per request to a block", path=where)
    found: dict[int, Batch] = {}
    for key, entry in block.items():
        if not str(key).isdigit() or int(key) < 1:
            raise DataError(f"{field}: {key!r} is not a number of texts per request", path=where)
        k, at = int(key), f"{field}.{key}"
        if not isinstance(entry, dict):
            raise DataError(f"{at} must be a mapping", path=where)
        if entry.get("texts_per_request", k) != k:
            raise DataError(f"{at}.texts_per_request is not {k}", path=where)
        requests, errors = _count(entry, "requests", at, where), _count(entry, "errors", at, where)
        raw = entry.get("duration_ms")
        quantiles = _quantiles(raw, f"{at}.duration_ms", where) if isinstance(raw, dict) else {}
        if errors:
            notes.append(f"{mb} MB, {k} texts per request: {errors} of the requests failed")
        if requests == 0 or not quantiles:
            why = entry.get("skipped") or entry.get("error") or "no request answered"
            notes.append(f"{mb} MB, {k} texts per request: not measured ({why})")
            continue
        client = entry.get("client_ms")
        client_p99 = client.get("p99") if isinstance(client, dict) else None
        billed = entry.get("billed_ms_mean")
        found[k] = Batch(
            texts_per_request=k,
            requests=requests,
            errors=errors,
            durations_ms=_from_quantiles(quantiles),
            p99_ms=quantiles.get(99.0, max(quantiles.values())),
            client_p99_ms=None
            if client_p99 is None
            else _duration(client_p99, f"{at}.client_ms.p99", where),
            billed_ms_mean=None
            if billed is None
            else _duration(billed, f"{at}.billed_ms_mean", where),
            duration_source=str(entry["duration_source"]) if entry.get("duration_source") else None,
        )
    return dict(sorted(found.items()))


def _count(entry: Mapping[str, Any], key: str, at: str, where: str) -> int:
    value = entry.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(f"{at}.{key}: {value!r} is not a count", path=where)
    return value


def _duration(value: Any, field: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise DataError(f"{field}: {value!r} is not a duration in ms", path=where)
    return float(value)


def _quantiles(data: Mapping[str, Any], field: str, where: str) -> dict[float, float]:
    found = {}
    for key, value in data.items():
        match = _QUANTILE_KEY.match(str(key))
        if match and 0 <= float(match.group(1)) <= 100:
            found[float(match.group(1))] = _duration(value, f"{field}.{key}", where)
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
        ms = _duration(value, f"memory.{mb}.{field}", where)
        if note:
            return max(0.0, ms - warm_p50), f"{mb} MB: INIT taken as {note} ({stat})"
        return ms, (None if stat != "p50" else f"{mb} MB: INIT is the median (no mean given)")
    return None, None


# -- reading lambda.json ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LambdaRun:
    """One lambda.json: raw entries per model and memory size, and the usable durations."""

    source: Source
    platform: str | None  # price-table key, "aws-lambda-x86_64"
    entries: dict[str, dict[int, dict[str, Any]]]  # model -> MB -> entry
    measured: dict[str, dict[int, Measurement]]  # without OOM sizes and unreadable entries
    notes: tuple[str, ...]


def read_lambda(source: Source) -> LambdaRun:
    """Every function of a ``slimbert bench lambda`` file (``functions``; ``measured`` names the
    student, whose answered sizes ``memory`` repeats for :func:`read_results`).
    A file with only ``memory`` and a ``teacher``/``baseline`` of the same shape works too.
    Sizes that ran out of memory, failed or cannot be read are left out with a note."""
    doc, where = source.doc, str(source.path)
    functions = doc["functions"] if isinstance(doc.get("functions"), dict) else {}
    primary = doc.get("measured")
    entries: dict[str, dict[int, dict[str, Any]]] = {}
    # The function's own block keeps the sizes that failed, which ``memory`` leaves out.
    _add_model(entries, "student", functions.get(primary) or doc.get("memory"))
    for name, value in functions.items():
        if name != primary:
            _add_model(entries, str(name), value)
    for key in _BASELINE_KEYS:
        _add_model(entries, key.replace("_", " "), doc.get(key))
    notes = [f"{source.path.name}: {n}" for n in doc.get("notes", []) if isinstance(n, str)]
    student: Mapping[int, Measurement] = {}
    try:
        results = results_from_doc(doc, where)
        platform, student = results.platform, results.memory
    except DataError as exc:
        # One unreadable size should not hide the others.
        platform = _group(source) or None
        notes.append(f"{exc.message}; reading its sizes one by one")
    measured: dict[str, dict[int, Measurement]] = {}
    for model, sizes in entries.items():
        measured[model] = {}
        for mb, entry in sorted(sizes.items()):
            if entry.get("oom") or entry.get("error"):
                why = "ran out of memory" if entry.get("oom") else f"failed ({entry['error']})"
                notes.append(f"{model} {why} at {mb} MB")
            elif model == "student" and mb in student:
                measured[model][mb] = student[mb]
            else:
                try:
                    measured[model][mb] = measurement(mb, entry, where)
                except DataError as exc:
                    notes.append(f"{model} at {mb} MB left out: {exc.message}")
    notes += [n for by_mb in measured.values() for m in by_mb.values() for n in m.notes]
    return LambdaRun(source, platform, entries, measured, tuple(dict.fromkeys(notes)))


def _add_model(entries: dict[str, dict[int, dict[str, Any]]], name: str, value: Any) -> None:
    if isinstance(value, dict) and isinstance(value.get("memory"), dict):
        value = value["memory"]
    if name in entries or not isinstance(value, dict) or not value:
        return
    sizes = {int(k): v for k, v in value.items() if str(k).isdigit() and isinstance(v, dict)}
    if sizes and len(sizes) == len(value):
        entries[name] = sizes


def quantile_of(entry: Mapping[str, Any], q: int) -> float | None:
    """The ``q``-th percentile of a memory entry: its ``p<q>_ms``, else its quantile dict, else
    computed from its raw durations; None when it holds none of these."""
    value = entry.get(f"p{q}_ms")
    if isinstance(value, int | float):
        return float(value)
    durations = entry.get("durations_ms")
    if isinstance(durations, dict) and isinstance(durations.get(f"p{q}"), int | float):
        return float(durations[f"p{q}"])
    if isinstance(durations, list) and durations:
        return float(np.percentile(np.asarray(durations, dtype=float), q))
    return None


def failure_of(entry: Mapping[str, Any]) -> str:
    """How a memory entry failed, for a table column: OOM, error or no."""
    return "OOM" if entry.get("oom") else "error" if entry.get("error") else "no"


def stat(value: Any, key: str) -> float | None:
    """``value[key]`` for a quantile dict, the value itself for a number."""
    if isinstance(value, dict):
        value = value.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def quality_points(
    doc: Mapping[str, Any],
) -> tuple[str, list[tuple[str, float, float, float]], list[str]]:
    """(quality label, [(model, p50 ms, quality, weights MB)], models left out and why) of an
    eval.json: macro-F1 for classifiers, mean Spearman ×100 over the pair sets for embedders."""
    models = [m for m in doc.get("models", []) if isinstance(m, dict)]
    classifiers = any(isinstance(m.get("macro_f1"), int | float) for m in models)
    label = "macro-F1" if classifiers else "Spearman ×100 (mean over the pair sets)"
    points, left_out = [], []
    for m in models:
        name = str(m.get("name") or m.get("model"))
        name = f"{Path(name).name or name} ({m['kind']})" if m.get("kind") else Path(name).name
        if classifiers:
            quality = stat(m.get("macro_f1"), "")
        else:
            rhos = [v for v in (m.get("spearman") or {}).values() if isinstance(v, int | float)]
            quality = float(np.mean(rhos)) if rhos else None
        p50, size = stat(m.get("latency_ms"), "p50"), stat(m.get("size_mb"), "")
        if quality is None or p50 is None or p50 <= 0:
            why = "no quality score" if quality is None else "no latency measured"
            left_out.append(f"{name}: {why}")
            continue
        points.append((name, p50, quality, size or 0.0))
    return label, points, left_out


def size_parts(doc: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    parts: dict[str, dict[str, int]] = {}
    for row in doc.get("components", []):
        kind, name = row.get("component"), row.get("name")
        part = kind if kind in ("model", "code") else name
        part = part if part in SIZE_PARTS else "other libraries"
        slot = parts.setdefault(part, {"zipped_bytes": 0, "unzipped_bytes": 0})
        for key in slot:
            slot[key] += int(row.get(key, 0))
    return parts
