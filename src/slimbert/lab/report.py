"""``slimbert report``: the latest benchmark results as one Markdown report with plots.

For each benchmark the newest results file under a results root is used (``sampler.json``,
``serving.json``, ``lambda.json`` per platform), with package size reports (``*.sizes.json``),
``eval.json`` and ``invoke.json`` found there or under ``inputs``. A ``lambda.json`` counts only
when its run is complete: it measured every memory size it asked for and every size the report
needs (``memory_mb``, by default the sizes ``slimbert bench lambda`` measures), so a newer
one-size re-measurement never replaces the full sweep behind the plots and the README. A
``<timestamp>`` folder or file named in ``results`` or ``inputs`` is used as it is, complete or
not, with a note. The report (``report.md`` and PNG plots, written atomically) holds:

1. latency quantiles against memory size per model and platform (the paper's Figure 3);
2. cold-start distributions per memory size and model;
3. cost per 1M predictions against memory size per platform (:mod:`slimbert.lab.cost`);
4. monthly cost against traffic next to the always-on VM;
5. the package size by component against Lambda's limits;
6. tables for the sampler, serving, Lambda and cost results and the models' quality, with a
   plot of every evaluated model's quality against its latency and size.

Every table cites the file it came from, its date and machine; a section whose input is
missing says which command to run. :func:`update_readme` puts the key figures between the
``<!-- results:start -->`` and ``<!-- results:end -->`` markers of a README.
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
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from slimbert.config import Options, check
from slimbert.errors import ConfigError, DataError, require
from slimbert.io import atomic_open, atomic_path, read_json
from slimbert.lab.bench_lambda import BenchLambdaOptions
from slimbert.lab.cost import (
    Measurement,
    _measurement,
    break_even_rps,
    cheapest_memory,
    cost_per_million,
    monthly_cost,
    read_results,
)
from slimbert.prices import PriceTable, load_prices

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"
MIB = 1 << 20
LAMBDA_ZIP_LIMIT_MIB = 50
LAMBDA_UNZIPPED_LIMIT_MIB = 250
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


@dataclasses.dataclass(frozen=True)
class ReportOptions(Options):
    """What :func:`build_report` reads, where it writes, and the traffic and target it prices."""

    stage: ClassVar[str] = "report"

    results: Path = Path("bench/results")  # a results root, or one <timestamp> folder
    out: Path | None = None  # None: <latest results folder>/report
    readme: Path | None = None  # a README whose results markers are refilled
    requests_per_month: tuple[float, ...] = (1e5, 1e6, 1e7, 1e8)
    platforms: tuple[str, ...] | None = None  # price-table keys; None: every platform
    inputs: tuple[Path, ...] = ()  # more files or folders (eval.json, *.sizes.json, invoke.json)
    p99_target_ms: float = 100.0
    prices: Path | None = None
    # Memory sizes a lambda.json must have measured to be used; () : BENCH_MEMORY_MB.
    memory_mb: tuple[int, ...] = ()

    def validate(self) -> None:
        check(all(mb > 0 for mb in self.memory_mb), "memory_mb sizes must be positive")
        check(len(self.requests_per_month) > 0, "requests_per_month needs at least one value")
        check(all(r > 0 for r in self.requests_per_month), "requests_per_month must be positive")
        check(self.p99_target_ms > 0, "p99_target_ms must be positive")


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
    return source.path.name if source.kind == "sizes" else source.kind


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
    student, whose answered sizes ``memory`` repeats for :func:`slimbert.lab.cost.read_results`).
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
        results = read_results(source.path)
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
                    measured[model][mb] = _measurement(mb, entry, where)
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


def _quantile(entry: Mapping[str, Any], q: int) -> float | None:
    value = entry.get(f"p{q}_ms")
    if isinstance(value, int | float):
        return float(value)
    durations = entry.get("durations_ms")
    if isinstance(durations, dict) and isinstance(durations.get(f"p{q}"), int | float):
        return float(durations[f"p{q}"])
    if isinstance(durations, list) and durations:
        return float(np.percentile(np.asarray(durations, dtype=float), q))
    return None


def _failure(entry: Mapping[str, Any]) -> str:
    return "OOM" if entry.get("oom") else "error" if entry.get("error") else "no"


def _stat(value: Any, key: str) -> float | None:
    """``value[key]`` for a quantile dict, the value itself for a number."""
    if isinstance(value, dict):
        value = value.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# -- cost ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PlatformCost:
    platform: str
    measured_on: str  # which lambda.json's durations were priced
    per_million: dict[str, dict[int, float]]  # model -> MB -> $ per 1M
    cheapest: dict[str, Any]  # cost.cheapest_memory for the student
    monthly: dict[float, float]  # requests a month -> $ at the cheapest (or fastest) size
    monthly_memory_mb: int | None
    break_even_rps: float | None  # steady requests/s at which the VM costs as much


def price_runs(
    runs: Sequence[LambdaRun], options: ReportOptions, table: PriceTable
) -> tuple[list[PlatformCost], list[str]]:
    """Each platform priced with the durations measured on it, else those of the first run."""
    notes: list[str] = []
    keys = list(options.platforms or table.platforms)
    vm_usd = table.vm().monthly_usd
    by_platform = {run.platform: run for run in runs if run.measured.get("student")}
    if not by_platform:
        return [], notes
    first = next(iter(by_platform.values()))
    costs = []
    borrowed: dict[str, list[str]] = {}  # measured on -> platforms priced with its durations
    for key in keys:
        p = table.platform(key)
        run = by_platform.get(key, first)
        if run.platform != key:
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
            options.p99_target_ms,
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
            for n in options.requests_per_month:
                monthly[n] = monthly_cost(p, chosen, durations, n)["total_usd"]
            rps = break_even_rps(p, chosen, durations, vm=vm_usd)
        rps = rps if rps is not None and math.isfinite(rps) else None
        costs.append(PlatformCost(key, str(run.platform), per_million, best, monthly, chosen, rps))
    for measured_on, priced_keys in borrowed.items():
        notes.append(
            f"{', '.join(priced_keys)} priced with durations measured on {measured_on}: "
            "their CPU per memory size differs, so treat those figures as estimates"
        )
    return costs, notes


# -- plots --------------------------------------------------------------------------------------


def _figure(width: float = 7.0, height: float = 4.5, ncols: int = 1) -> tuple[Figure, Any]:
    require("matplotlib", "bench")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # The object API on an Agg canvas: no pyplot, so no global backend switch for the caller.
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _save(fig: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    log.info("wrote %s", path)
    return path


def _log(axis: Any) -> None:
    """Label a log axis 20, 50, 100 rather than 2×10¹: these are read as ms and dollars."""
    from matplotlib.ticker import LogFormatter

    class Plain(LogFormatter):
        # LogFormatter picks which ticks get a label; the label itself is the plain number.
        def __call__(self, x: float, pos: int | None = None) -> str:
            return f"{x:g}" if super().__call__(x, pos) else ""

    axis.set_major_formatter(Plain())
    axis.set_minor_formatter(Plain(labelOnlyBase=False))


def _memory_axis(ax: Axes, sizes: Iterable[int], ylabel: str) -> None:
    from matplotlib.ticker import NullLocator

    ticks = sorted(set(sizes))
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("memory size (MB)")
    ax.set_yscale("log")
    _log(ax.yaxis)
    ax.set_ylabel(ylabel)


def _legend(fig: Figure, entries: Iterable[tuple[str, str, str]]) -> None:
    """One legend beside the plots from (label, colour, style) entries: "--o" is a dashed line
    with dots."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=c, ls=style.rstrip("o"), marker="o" * style.endswith("o"), label=label)
        for label, c, style in entries
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize=7)


def plot_latency(runs: Sequence[LambdaRun], target_ms: float, path: Path) -> Path:
    fig, axes = _figure(ncols=len(runs))
    styles = {50: "-", 95: "--", 99: ":"}
    models = list(dict.fromkeys(m for run in runs for m in run.entries))
    for ax, run in zip(axes, runs, strict=True):
        sizes = [mb for entries in run.entries.values() for mb in entries]
        for model, entries in run.entries.items():
            for q, style in styles.items():
                points = [(mb, _quantile(e, q)) for mb, e in sorted(entries.items())]
                xs = [mb for mb, v in points if v is not None and not entries[mb].get("oom")]
                ys = [v for mb, v in points if v is not None and not entries[mb].get("oom")]
                ax.plot(xs, ys, style, marker="o", color=f"C{models.index(model)}")
        ax.axhline(target_ms, color="grey", lw=0.8)
        _memory_axis(ax, sizes, "warm latency (ms)")
        ax.set_title(f"{run.platform}: latency quantiles", fontsize=10)
    _legend(
        fig,
        [
            *((m, f"C{i}", "-o") for i, m in enumerate(models)),
            *((f"q{q}", "black", ls) for q, ls in styles.items()),
            (f"p99 target {target_ms:g} ms", "grey", "-"),
        ],
    )
    return _save(fig, path)


def plot_cold_starts(
    groups: Sequence[tuple[str, list[float], dict[str, float]]], path: Path
) -> Path:
    """Single cold starts as points; where only quantiles were kept, a bar from p50 up."""
    fig, (ax,) = _figure(width=max(6.0, 0.6 * len(groups)))
    kinds = list(dict.fromkeys(label.split()[0] for label, _, _ in groups))
    for i, (label, values, quantiles) in enumerate(groups):
        color = f"C{kinds.index(label.split()[0])}"
        if values:
            offsets = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
            ax.scatter(i + offsets, values, s=12, color=color, alpha=0.7)
            ax.plot([i - 0.25, i + 0.25], [np.median(values)] * 2, color="black", lw=2)
        else:
            top = max(v for k, v in quantiles.items() if k.startswith("p"))
            ax.plot([i, i], [quantiles["p50"], top], color=color, lw=8)
            ax.plot([i - 0.25, i + 0.25], [quantiles["p50"]] * 2, color="black", lw=2)
    ax.set_xticks(range(len(groups)), [g[0] for g in groups], rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    _log(ax.yaxis)
    ax.set_ylabel("cold start (ms)")
    ax.set_title("Cold starts", fontsize=10)
    return _save(fig, path)


def plot_cost(costs: Sequence[PlatformCost], path: Path) -> Path:
    fig, (ax,) = _figure(width=10.0)
    models = list(dict.fromkeys(m for c in costs for m in c.per_million))
    styles = ["-", "--", "-.", ":"]
    for i, c in enumerate(costs):
        for model, points in c.per_million.items():
            xs = sorted(points)
            style = styles[models.index(model) % len(styles)]
            ax.plot(xs, [points[x] for x in xs], style, marker="o", color=f"C{i}")
        if c.cheapest["memory_mb"] is not None:
            best = c.cheapest
            ax.plot([best["memory_mb"]], [best["cost_per_million_usd"]], "*", ms=14, color=f"C{i}")
    _memory_axis(ax, [mb for c in costs for p in c.per_million.values() for mb in p], "$ per 1M")
    ax.set_title(
        "Cost per 1M predictions (star: cheapest meeting the p99 target);\n"
        "each platform's prices are applied to the timings its legend entry names",
        fontsize=9,
    )
    _legend(
        fig,
        [
            *((_timings_label(c), f"C{i}", "-o") for i, c in enumerate(costs)),
            *((m, "black", styles[j % len(styles)]) for j, m in enumerate(models)),
        ],
    )
    return _save(fig, path)


def _timings_label(c: PlatformCost) -> str:
    """A cost line's legend entry: its platform and whose measured durations it prices."""
    if c.measured_on == c.platform:
        return f"{c.platform} (its own timings)"
    return f"{c.platform} (reuses {c.measured_on} timings)"


def plot_monthly(costs: Sequence[PlatformCost], table: PriceTable, path: Path) -> Path:
    """Monthly cost per platform against traffic, and the always-on VM as a dated line."""
    vm = table.vm()
    fig, (ax,) = _figure(width=10.0)
    for i, c in enumerate(costs):
        xs = sorted(c.monthly)
        ax.plot(xs, [c.monthly[x] for x in xs], marker="o", color=f"C{i}")
    ax.axhline(vm.monthly_usd, color="black", ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _log(ax.yaxis)
    ax.set_xlabel("requests per month")
    ax.set_ylabel("$ per month")
    ax.set_title("Monthly cost against traffic, next to an always-on VM", fontsize=10)
    _legend(
        fig,
        [
            *(
                (
                    f"{_timings_label(c)} at {c.monthly_memory_mb} MB, prices as of "
                    f"{table.platform(c.platform).as_of}",
                    f"C{i}",
                    "-o",
                )
                for i, c in enumerate(costs)
            ),
            (f"VM {vm.key}: ${vm.monthly_usd:,.2f}/month, price as of {vm.as_of}", "black", "--"),
        ],
    )
    return _save(fig, path)


def plot_sizes(reports: Sequence[Source], path: Path) -> Path:
    fig, axes = _figure(width=4.0, ncols=2)
    names = [r.path.name.removesuffix(".sizes.json") for r in reports]
    parts = [_size_parts(r.doc) for r in reports]
    limits = {"zipped_bytes": LAMBDA_ZIP_LIMIT_MIB, "unzipped_bytes": LAMBDA_UNZIPPED_LIMIT_MIB}
    for ax, (key, limit) in zip(axes, limits.items(), strict=True):
        bottom = np.zeros(len(reports))
        for i, part in enumerate(SIZE_PARTS):
            heights = np.array([p.get(part, {}).get(key, 0) / MIB for p in parts])
            if heights.any():
                ax.bar(names, heights, bottom=bottom, color=f"C{i}", label=part)
                bottom += heights
        ax.axhline(limit, color="black", ls="--")
        ax.set_ylabel("MiB")
        ax.set_title(f"{key.removesuffix('_bytes')} (Lambda limit {limit} MiB)", fontsize=10)
        ax.tick_params(axis="x", labelsize=7, rotation=15)
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles[::-1], labels[::-1], loc="outside right upper", fontsize=7)
    return _save(fig, path)


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
            quality = _stat(m.get("macro_f1"), "")
        else:
            rhos = [v for v in (m.get("spearman") or {}).values() if isinstance(v, int | float)]
            quality = float(np.mean(rhos)) if rhos else None
        p50, size = _stat(m.get("latency_ms"), "p50"), _stat(m.get("size_mb"), "")
        if quality is None or p50 is None or p50 <= 0:
            why = "no quality score" if quality is None else "no latency measured"
            left_out.append(f"{name}: {why}")
            continue
        points.append((name, p50, quality, size or 0.0))
    return label, points, left_out


def plot_quality(label: str, points: Sequence[tuple[str, float, float, float]], path: Path) -> Path:
    """Quality against p50 latency, one labelled point per model, its area by weights MB."""
    fig, (ax,) = _figure()
    largest = max(size for *_, size in points) or 1.0
    for i, (name, p50, quality, size) in enumerate(points):
        ax.scatter([p50], [quality], s=30 + 600 * size / largest, color=f"C{i}", alpha=0.6)
        ax.annotate(
            f"{name}, {size:.1f} MB",
            (p50, quality),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=7,
        )
    ax.set_xscale("log")
    _log(ax.xaxis)
    ax.set_xlabel("p50 latency per text (ms, 1 thread)")
    ax.set_ylabel(label)
    ax.set_title("Quality against latency; marker area: weights MB", fontsize=10)
    ax.margins(0.2)
    return _save(fig, path)


def _size_parts(doc: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    parts: dict[str, dict[str, int]] = {}
    for row in doc.get("components", []):
        kind, name = row.get("component"), row.get("name")
        part = kind if kind in ("model", "code") else name
        part = part if part in SIZE_PARTS else "other libraries"
        slot = parts.setdefault(part, {"zipped_bytes": 0, "unzipped_bytes": 0})
        for key in slot:
            slot[key] += int(row.get(key, 0))
    return parts


# -- the report ---------------------------------------------------------------------------------


def _ms(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _usd(x: float | None) -> str:
    if x is None:
        return "–"
    return f"${x:,.2f}" if abs(x) >= 0.01 or x == 0 else f"${x:.4f}"


def _mib(n: float | None) -> str:
    return "–" if n is None else f"{n / MIB:.1f}"


def _f(x: Any, fmt: str) -> str:
    return format(x, fmt) if isinstance(x, int | float) and not isinstance(x, bool) else "–"


def _near(sizes: Iterable[int], target: int = 1024) -> int | None:
    """``target`` if measured, else the measured size closest to it on a log scale."""
    sizes = sorted(sizes)
    return min(sizes, key=lambda s: (abs(math.log2(s / target)), s)) if sizes else None


class _Writer:
    """Markdown lines, plots and the "run ..." lines of missing inputs, collected in order."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.lines: list[str] = []
        self.plots: list[Path] = []
        self.missing: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def section(self, title: str) -> None:
        self.add("", f"## {title}", "")

    def lacking(self, kind: str, elsewhere: bool = False) -> None:
        label = "package size" if kind == "sizes" else kind
        line = f"no {label} results: run `{KINDS[kind][2]}`"
        if elsewhere:  # these files live beside the model, not under bench/results
            line += " and pass its output folder in `inputs`"
        log.info("report: %s", line)
        if line not in self.missing:
            self.missing.append(line)
        self.add(f"_{line[0].upper()}{line[1:]}._", "")

    def table(self, header: str, rows: Iterable[str], left: int = 1) -> None:
        """A Markdown table from "a | b" strings; the first ``left`` columns are text."""
        n = header.count("|") + 1
        self.add(
            f"| {header} |", "|" + "|".join("---" if i < left else "---:" for i in range(n)) + "|"
        )
        self.add(*(f"| {row} |" for row in rows), "")

    def cite(self, sources: Iterable[Source]) -> None:
        self.add("Source: " + "; ".join(s.cite() for s in sources) + ".", "")

    def plot(self, path: Path, alt: str) -> None:
        self.plots.append(path)
        self.add(f"![{alt}]({path.name})", "")


def _latency_section(w: _Writer, runs: Sequence[LambdaRun], target_ms: float) -> None:
    w.section("1. Latency against memory size (Figure 3)")
    runs = [run for run in runs if run.entries]
    if not runs:
        w.lacking("lambda")
        return
    w.plot(plot_latency(runs, target_ms, w.out / "latency.png"), "latency quantiles")
    for run in runs:
        rows = []
        for model, entries in run.entries.items():
            for mb, e in sorted(entries.items()):
                cold, init = e.get("cold_start_ms"), e.get("init_ms")
                rows.append(
                    f"{model} | {mb} | {' | '.join(_ms(_quantile(e, q)) for q in (50, 95, 99))} | "
                    f"{_ms(_stat(cold, 'p50'))} | {_ms(_stat(cold, 'p90'))} | "
                    f"{_ms(_stat(init, 'p50'))} | {_f(e.get('peak_memory_mb'), '.0f')} | "
                    f"{_f(e.get('cpu_quota_vcpus'), '.2f')} | {_failure(e)}"
                )
        w.add(f"**{run.platform}**", "")
        w.table(
            "model | memory MB | p50 ms | p95 ms | p99 ms | cold start p50 ms | cold start p90 ms "
            "| INIT p50 ms | peak MB | vCPUs | failed",
            rows,
        )
        w.cite([run.source])


_Cold = tuple[str, list[float], dict[str, float]]  # label, single runs, or quantiles


def _cold_groups(
    runs: Sequence[LambdaRun], found: Mapping[str, list[Source]]
) -> tuple[list[_Cold], list[Source]]:
    groups: list[_Cold] = []
    sources: list[Source] = []

    def add(label: str, value: Any) -> bool:
        if isinstance(value, dict) and isinstance(value.get("values"), list):
            value = value["values"]  # bench_lambda keeps every cold start beside its quantiles
        if isinstance(value, dict):
            qs = {k: float(v) for k, v in value.items() if re.fullmatch(r"p\d+|n", str(k))}
            if "p50" in qs:
                groups.append((label, [], qs))
        elif isinstance(value, list | int | float) and not isinstance(value, bool):
            values = [float(v) for v in (value if isinstance(value, list) else [value])]
            if values:
                groups.append((label, values, {}))
        return bool(groups) and groups[-1][0] == label

    for run in runs:
        used = [
            add(f"{model} {mb} MB", e.get("cold_starts_ms", e.get("cold_start_ms")))
            for model, entries in run.entries.items()
            for mb, e in sorted(entries.items())
        ]
        if any(used):
            sources.append(run.source)
    for s in found["serving"]:
        cold = s.doc["cold_start"]
        used = [add(f"local {k.replace('_', ' ')}", cold.get(k, {}).get("wall_ms")) for k in cold]
        if any(used):
            sources.append(s)
    for s in found["invoke"]:
        if add("emulator zip", s.doc.get("cold_start_ms")):
            sources.append(s)
    return groups, sources


def _cold_section(w: _Writer, runs: Sequence[LambdaRun], found: Mapping[str, list[Source]]) -> None:
    w.section("2. Cold starts")
    if not any(run.entries for run in runs):
        w.lacking("lambda")
    if not found["serving"]:
        w.lacking("serving")
    groups, sources = _cold_groups(runs, found)
    if not groups:
        return
    w.plot(plot_cold_starts(groups, w.out / "cold_start.png"), "cold-start distribution")
    w.add(
        "Points are single cold starts with a black median; where only quantiles were kept, a bar "
        "runs from p50 (black) to the highest quantile recorded.",
        "",
    )
    rows = []
    for label, values, qs in groups:
        if values:
            p50, p90 = float(np.median(values)), float(np.percentile(values, 90))
            rows.append(f"{label} | {len(values)} | {_ms(p50)} | {_ms(p90)}")
        else:
            rows.append(
                f"{label} | {_f(qs.get('n'), '.0f')} | {_ms(qs['p50'])} | {_ms(qs.get('p90'))}"
            )
    w.table("where / model | runs | p50 ms | p90 ms", rows)
    w.cite(sources)


def _cost_sections(
    w: _Writer,
    runs: Sequence[LambdaRun],
    costs: Sequence[PlatformCost],
    options: ReportOptions,
    table: PriceTable,
) -> None:
    w.section("3. Cost per 1M predictions")
    if not costs:
        w.lacking("lambda")
        w.section("4. Monthly cost against traffic")
        w.lacking("lambda")
        return
    w.plot(plot_cost(costs, w.out / "cost_per_million.png"), "cost per 1M predictions")
    rows = []
    for c in costs:
        b = c.cheapest
        cheapest = (
            f"{b['memory_mb']} | {_ms(b['p99_ms'])}" if b["memory_mb"] else f"{b['reason']} | –"
        )
        rows.append(
            f"{c.platform} | {c.measured_on} | {cheapest} | {_usd(b['cost_per_million_usd'])}"
        )
    w.table(
        f"platform | durations measured on | cheapest MB with p99 ≤ {options.p99_target_ms:g} ms "
        "| its p99 ms | $ per 1M",
        rows,
        left=3,
    )
    sizes = sorted({mb for c in costs for mb in c.per_million.get("student", {})})
    w.add(
        "$ per 1M predictions of the student by memory size (no cold starts, no free tier):",
        "",
    )
    w.table(
        "memory MB | " + " | ".join(c.platform for c in costs),
        (
            f"{mb} | " + " | ".join(_usd(c.per_million["student"].get(mb)) for c in costs)
            for mb in sizes
        ),
    )
    w.cite(run.source for run in runs if run.measured.get("student"))
    prices = [table.platform(c.platform) for c in costs]
    w.add("Prices: " + "; ".join(f"{p.key} as of {p.as_of} ({p.source})" for p in prices) + ".", "")

    w.section("4. Monthly cost against traffic")
    vm = table.vm()
    w.plot(plot_monthly(costs, table, w.out / "monthly_cost.png"), "monthly cost")
    traffic = list(options.requests_per_month)
    rows = [
        f"{c.platform} at {c.monthly_memory_mb} MB | "
        + " | ".join(_usd(c.monthly.get(n)) for n in traffic)
        + f" | {_f(c.break_even_rps, '.2f')}"
        for c in costs
    ]
    rows.append(f"VM {vm.key} | " + " | ".join(_usd(vm.monthly_usd) for _ in traffic) + " | ")
    w.table(
        "$ a month | " + " | ".join(f"{n:,.0f} requests" for n in traffic) + " | break-even req/s",
        rows,
    )
    w.add(
        f"The VM is {vm.name}: {_usd(vm.monthly_usd)} a month (as of {vm.as_of}, {vm.source}). "
        "Each platform runs the cheapest size meeting the p99 target (else its fastest).",
        "",
    )


def _sizes_section(w: _Writer, reports: Sequence[Source]) -> None:
    w.section("5. Package size")
    if not reports:
        w.lacking("sizes", elsewhere=True)
        return
    w.plot(plot_sizes(reports, w.out / "package_size.png"), "package size by component")
    rows = []
    for r in reports:
        parts = _size_parts(r.doc)
        rows.append(
            r.path.name.removesuffix(".sizes.json")
            + " | "
            + " | ".join(_mib(parts.get(p, {}).get("unzipped_bytes")) for p in SIZE_PARTS)
            + f" | {_mib(r.doc.get('total', {}).get('unzipped_bytes'))}"
            + f" | {_mib(r.doc.get('package_bytes'))}"
        )
    w.table("unzipped MiB | " + " | ".join(SIZE_PARTS) + " | total | zip MiB", rows)
    w.add(
        f"Lambda limits: {LAMBDA_ZIP_LIMIT_MIB} MiB zipped (direct upload), "
        f"{LAMBDA_UNZIPPED_LIMIT_MIB} MiB unzipped.",
        "",
    )
    w.cite(reports)


def _sampler_section(w: _Writer, found: Sequence[Source]) -> None:
    w.section("6. Sampler benchmark")
    if not found:
        w.lacking("sampler")
        return
    s = found[0]
    w.table(
        "variant | epoch s | ms/example | padding waste | val macro-F1 | epoch time ×faster "
        "| per-example ×faster",
        (
            f"{name} | {_f(v.get('epoch_seconds'), '.1f')} | {_f(v.get('ms_per_example'), '.2f')} "
            f"| {_f(v.get('padding_waste'), '.1%')} | {_f(v.get('val_macro_f1_last'), '.4f')} "
            f"| {_f(v.get('epoch_time_ratio_vs_plain'), '.2f')} "
            f"| {_f(v.get('per_example_speedup_vs_plain'), '.2f')}"
            for name, v in s.doc["variants"].items()
        ),
    )
    w.add("Ratios are against `plain` (shuffled batches), measured in the same run.", "")
    w.cite([s])


def _serving_section(w: _Writer, found: Sequence[Source], invoke: Sequence[Source]) -> None:
    w.section("7. Serving benchmark")
    if not found:
        w.lacking("serving")
    for s in found:
        cold, warm, ratio = s.doc["cold_start"], s.doc.get("warm_ms", {}), s.doc.get("ratios", {})
        cb, ct = (cold.get(k, {}).get("wall_ms", {}) for k in ("bundle", "torch_teacher"))
        wb, wt = (warm.get(k, {}) for k in ("bundle", "torch_teacher"))
        cold_x = _f(ratio.get("cold_start_teacher_over_bundle"), ".1f")
        warm_x = _f(ratio.get("warm_p50_teacher_over_bundle"), ".1f")
        w.table(
            " | student bundle (onnxruntime) | teacher (torch) | teacher ÷ bundle",
            [
                f"cold start p50 ms | {_ms(cb.get('p50'))} | {_ms(ct.get('p50'))} | {cold_x}×",
                f"cold start p90 ms | {_ms(cb.get('p90'))} | {_ms(ct.get('p90'))} | ",
                f"warm p50 ms | {_ms(wb.get('p50'))} | {_ms(wt.get('p50'))} | {warm_x}×",
                f"warm p99 ms | {_ms(wb.get('p99'))} | {_ms(wt.get('p99'))} | ",
            ],
        )
        overhead = _f(s.doc.get("handler_overhead_fraction"), ".1%")
        w.add(f"Handler overhead beyond inference: {overhead} of its time.", "")
        w.cite([s])
    for s in invoke:
        fn, cold = s.doc.get("function_ms", {}), _stat(s.doc["cold_start_ms"], "")
        agree = _stat(s.doc.get("agreement_with_bundle"), "")
        w.add(
            f"The zip through the Lambda emulator: cold start {_ms(cold)}"
            f" ms, function p50 {_ms(fn.get('p50'))} ms, p99 {_ms(fn.get('p99'))} ms"
            + (f"; answers agree with the bundle: {agree:.1%}." if agree is not None else "."),
            "",
        )
        w.cite([s])


def _eval_pair(doc: Mapping[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(student, teacher) rows of an eval.json: the bundle (else a "student"), the teacher."""
    models = [m for m in doc.get("models", []) if isinstance(m, dict)]
    teacher = next((m for m in models if "teacher" in str(m.get("model", ""))), None)
    teacher = teacher or next((m for m in models if m.get("kind") == "torch"), None)
    student = next((m for m in models if str(m.get("kind", "")).startswith("onnx")), None)
    student = student or next((m for m in models if "student" in str(m.get("model", ""))), None)
    return (student if student is not teacher else None), teacher


def _eval_section(w: _Writer, found: Sequence[Source]) -> None:
    w.section("8. Quality")
    if not found:
        w.lacking("eval", elsewhere=True)
        return
    s = found[0]
    w.table(
        "model | kind | weights MB | macro-F1 | accuracy | p50 ms (1 thread)",
        (
            f"{m.get('model')} | {m.get('kind')} | {_f(m.get('size_mb'), '.1f')} "
            f"| {_f(m.get('macro_f1'), '.4f')} | {_f(m.get('accuracy'), '.4f')} "
            f"| {_ms(_stat(m.get('latency_ms'), 'p50'))}"
            for m in s.doc["models"]
        ),
        left=2,
    )
    w.add(f"On `{s.doc.get('data')}` ({s.doc.get('rows')} rows).", "")
    label, points, left_out = quality_points(s.doc)
    if points:
        w.plot(plot_quality(label, points, w.out / "quality.png"), "quality, latency and size")
        if left_out:
            w.add("Not in the plot: " + "; ".join(left_out) + ".", "")
    w.cite([s])


# -- key figures and the README -----------------------------------------------------------------


def _domain_rows(
    doc: Mapping[str, Any], student: Mapping[str, Any], teacher: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """Per-domain macro-F1 and the behavioural pass rate, student vs teacher vs VADER."""
    vader = next((m for m in doc.get("models", []) if m.get("kind") == "lexicon"), None)
    trio = [("student", student), ("teacher", teacher), ("VADER", vader)]
    rows = []
    for spec in doc.get("sets") or {}:
        if spec == doc.get("data"):
            continue  # the headline row above
        values = [
            (who, m["sets"][spec]["macro_f1"])
            for who, m in trio
            if m and spec in (m.get("sets") or {})
        ]
        if len(values) > 1:
            rows.append(
                (
                    f"macro-F1 on `{spec}`, " + " vs ".join(who for who, _ in values),
                    " vs ".join(f"{v:.4f}" for _, v in values),
                )
            )
    rates = [(who, m["behaviour"]["pass_rate"]) for who, m in trio if m and m.get("behaviour")]
    if len(rates) > 1:
        rows.append(
            (
                "behavioural pass rate, " + " vs ".join(who for who, _ in rates),
                " vs ".join(f"{100 * r:.1f}%" for _, r in rates),
            )
        )
    return rows


def key_figures(
    found: Mapping[str, list[Source]],
    runs: Sequence[LambdaRun],
    costs: Sequence[PlatformCost],
    target_ms: float,
    table: PriceTable,
) -> list[tuple[str, str, Source]]:
    """(figure, value, source) rows for the README: only figures some file holds."""
    rows: list[tuple[str, str, Source]] = []
    for s in found["eval"]:
        student, teacher = _eval_pair(s.doc)
        if student and teacher:
            f1 = f"{_f(student.get('macro_f1'), '.4f')} vs {_f(teacher.get('macro_f1'), '.4f')}"
            data = s.doc.get("data")
            label = (
                f"macro-F1 on `{data}`, student vs teacher"
                if data
                else "macro-F1, student vs teacher"
            )
            rows.append((label, f1, s))
            rows.extend(
                (figure, value, s) for figure, value in _domain_rows(s.doc, student, teacher)
            )
    # The x86_64 Lambda zip is the one the paper deploys; other packages are in the report.
    for r in sorted(found["sizes"], key=lambda r: "aws-lambda-x86_64" not in r.path.name)[:1]:
        model = _mib(_size_parts(r.doc).get("model", {}).get("unzipped_bytes"))
        zipped = f"{_mib(r.doc.get('package_bytes'))} MiB (limit {LAMBDA_ZIP_LIMIT_MIB})"
        rows.append(("bundle / zip size", f"{model} MiB / {zipped}", r))
    run = next((run for run in runs if run.entries.get("student")), None)
    if run is not None:
        mb = _near(run.entries["student"])
        baseline = next((m for m in run.entries if m != "student"), "")
        cold, warm = [], []
        for name in ("student", baseline):
            e = run.entries.get(name, {}).get(mb or 0)
            if e is None or e.get("oom"):
                continue
            if (ms := _stat(e.get("cold_start_ms"), "p50")) is not None:
                cold.append(f"{_ms(ms)} ms ({name})")
            warm.append(f"{_ms(_quantile(e, 50))} / {_ms(_quantile(e, 99))} ms ({name})")
        if cold:
            rows.append(
                (f"cold start p50 ({run.platform}, {mb} MB)", " vs ".join(cold), run.source)
            )
        rows.append((f"warm p50 / p99 ({run.platform}, {mb} MB)", " vs ".join(warm), run.source))
    for s in found["serving"]:
        cb = s.doc["cold_start"].get("bundle", {}).get("wall_ms", {})
        ratio = s.doc.get("ratios", {}).get("cold_start_teacher_over_bundle")
        value = f"{_ms(cb.get('p50'))} ms (bundle), teacher {_f(ratio, '.1f')}× slower"
        rows.append(("cold start p50, local process", value, s))
        if run is None:
            wb = s.doc.get("warm_ms", {}).get("bundle", {})
            value = f"{_ms(wb.get('p50'))} / {_ms(wb.get('p99'))} ms (bundle)"
            rows.append(("warm p50 / p99, local batch 1", value, s))
    if run is not None and costs:
        c = next((c for c in costs if c.platform == run.platform), costs[0])
        b = c.cheapest
        as_of = table.platform(c.platform).as_of
        value = (
            f"{_usd(b['cost_per_million_usd'])} at {b['memory_mb']} MB on {c.platform} "
            f"(prices as of {as_of})"
            if b["memory_mb"] is not None
            else b["reason"]
        )
        rows.append(
            (f"$ per 1M at the cheapest memory with p99 ≤ {target_ms:g} ms", value, run.source)
        )
    for s in found["sampler"]:
        v = s.doc["variants"].get("balance+bucket", {})
        if (speedup := v.get("per_example_speedup_vs_plain")) is not None:
            rows.append(
                ("sampler speed-up per example, balance+bucket vs plain", f"{speedup:.2f}×", s)
            )
    return rows


def readme_table(rows: Sequence[tuple[str, str, Source]]) -> str:
    """The key figures as Markdown, each with its source file and date."""
    lines = ["Filled by `slimbert report` from the latest results; do not edit by hand.", ""]
    if not rows:
        return "\n".join([*lines, "No results yet: run `make bench`, then `slimbert report`."])
    lines += ["| figure | value | source |", "|---|---|---|"]
    lines += [f"| {fig} | {value} | `{s.path}` ({s.date}) |" for fig, value, s in rows]
    return "\n".join(lines)


def update_readme(readme: Path, table_md: str) -> bool:
    """Replace the text between the results markers of ``readme``; True when it changed."""
    text, start, end = _read_readme(Path(readme))
    newline = "\r\n" if "\r\n" in text else "\n"
    body = newline.join(table_md.strip("\n").splitlines())
    new = text[: start + len(README_START)] + newline + body + newline + text[end:]
    if new == text:
        return False
    with atomic_open(readme) as fh:
        fh.write(new)
    log.info("updated the results in %s", readme)
    return True


def _read_readme(readme: Path) -> tuple[str, int, int]:
    """The README's text (line endings kept) and where its two markers start."""
    try:
        with open(readme, encoding="utf-8", newline="") as fh:
            text = fh.read()
    except OSError as exc:
        raise DataError(f"cannot read it ({exc.strerror or exc})", path=str(readme)) from exc
    start, end = text.find(README_START), text.find(README_END)
    if text.count(README_START) != 1 or text.count(README_END) != 1 or end < start:
        raise DataError(
            f"needs exactly one {README_START} followed by one {README_END}",
            path=str(readme),
            hint="put both markers on their own lines where the results table goes",
        )
    return text, start, end


def _default_out(results: Path, found: Mapping[str, list[Source]]) -> Path:
    benchmarks = [s for kind in ("sampler", "serving", "lambda") for s in found[kind]]
    if benchmarks:
        return max(benchmarks, key=lambda s: (s.when, str(s.path))).path.parent / "report"
    return (results if results.is_dir() else results.parent) / "report"


def build_report(options: ReportOptions) -> dict[str, Any]:
    """Write ``report.md`` and its plots from the latest results; update the README if asked."""
    found_notes: list[str] = []
    found = find_results(
        [options.results, *options.inputs],
        memory_mb=options.memory_mb or BENCH_MEMORY_MB,
        notes=found_notes,
    )
    if not any(found.values()):
        raise DataError(
            "no benchmark results found",
            path=str(options.results),
            hint="run `make bench` (slimbert bench sampler / serving / lambda), or pass --results",
        )
    if options.readme is not None:
        _read_readme(options.readme)  # a README without markers fails before any work
    table = load_prices(options.prices)
    for key in options.platforms or ():
        table.platform(key)  # an unknown key fails here, with the known ones as a hint
    out = Path(options.out) if options.out is not None else _default_out(options.results, found)
    runs = [read_lambda(s) for s in found["lambda"]]
    costs, notes = price_runs(runs, options, table)
    notes = found_notes + [n for run in runs for n in run.notes] + notes
    figures = key_figures(found, runs, costs, options.p99_target_ms, table)
    key_md = readme_table(figures)

    w = _Writer(out)
    w.add("# Benchmark report", "")
    w.add(
        f"From the latest results under `{options.results}`"
        + "".join(f", `{p}`" for p in options.inputs)
        + "; written by `slimbert report`."
    )
    w.section("Key figures")
    w.add(key_md, "")
    _latency_section(w, runs, options.p99_target_ms)
    _cold_section(w, runs, found)
    _cost_sections(w, runs, costs, options, table)
    _sizes_section(w, found["sizes"])
    _sampler_section(w, found["sampler"])
    _serving_section(w, found["serving"], found["invoke"])
    _eval_section(w, found["eval"])
    if notes:
        w.section("Notes")
        w.add(*(f"- {n}" for n in dict.fromkeys(notes)))
    report = out / "report.md"
    with atomic_open(report) as fh:
        fh.write("\n".join(w.lines).rstrip("\n") + "\n")
    log.info("wrote %s with %d plots", report, len(w.plots))
    changed = update_readme(options.readme, key_md) if options.readme is not None else None
    return {
        "out": str(out),
        "report": str(report),
        "plots": [str(p) for p in w.plots],
        "sources": {kind: [str(s.path) for s in sources] for kind, sources in found.items()},
        "missing": w.missing,
        "notes": list(dict.fromkeys(notes)),
        "key_figures": key_md,
        "readme": str(options.readme) if options.readme is not None else None,
        "readme_changed": changed,
    }
