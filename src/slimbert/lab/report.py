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
missing says which command to run. Finding and reading the results is
:mod:`slimbert.lab.results`, the plots :mod:`slimbert.lab.plots`, and the README's key figures
:mod:`slimbert.lab.readme` (:func:`update_readme` puts them between the README's markers).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from slimbert.config import Options, check
from slimbert.deploy.platforms import LAMBDA_UNZIPPED_LIMIT_MIB, LAMBDA_ZIP_LIMIT_MIB
from slimbert.errors import DataError
from slimbert.io import atomic_open
from slimbert.lab import fmt
from slimbert.lab.billing import PRICED_BESIDE
from slimbert.lab.cost import PlatformCost, price_runs
from slimbert.lab.cost_batches import BENCH_HINT
from slimbert.lab.plots import (
    plot_batches,
    plot_cold_starts,
    plot_cost,
    plot_latency,
    plot_monthly,
    plot_quality,
    plot_sizes,
)
from slimbert.lab.readme import (
    key_figures,
    read_readme,
    readme_table,
    update_readme,
)
from slimbert.lab.results import (
    BENCH_MEMORY_MB,
    KINDS,
    SIZE_PARTS,
    LambdaRun,
    Source,
    failure_of,
    find_results,
    quality_points,
    quantile_of,
    read_lambda,
    size_parts,
    stat,
)
from slimbert.prices import PriceTable, load_prices

__all__ = ["ReportOptions", "build_report"]

log = logging.getLogger(__name__)


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


# -- the report ---------------------------------------------------------------------------------


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
        self.lacking_line(line)

    def lacking_line(self, line: str) -> None:
        """Say in the report, the log and ``missing`` what to run for an absent input."""
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
                    f"{model} | {mb} | "
                    + " | ".join(fmt.ms(quantile_of(e, q)) for q in (50, 95, 99))
                    + " | "
                    f"{fmt.ms(stat(cold, 'p50'))} | {fmt.ms(stat(cold, 'p90'))} | "
                    f"{fmt.ms(stat(init, 'p50'))} | {fmt.num(e.get('peak_memory_mb'), '.0f')} | "
                    f"{fmt.num(e.get('cpu_quota_vcpus'), '.2f')} | {failure_of(e)}"
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
            rows.append(f"{label} | {len(values)} | {fmt.ms(p50)} | {fmt.ms(p90)}")
        else:
            rows.append(
                f"{label} | {fmt.num(qs.get('n'), '.0f')} | {fmt.ms(qs['p50'])} "
                f"| {fmt.ms(qs.get('p90'))}"
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
            f"{b['memory_mb']} | {fmt.ms(b['p99_ms'])}" if b["memory_mb"] else f"{b['reason']} | –"
        )
        rows.append(
            f"{c.platform} | {c.measured_on} | {cheapest} | {fmt.usd(b['cost_per_million_usd'])}"
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
            f"{mb} | " + " | ".join(fmt.usd(c.per_million["student"].get(mb)) for c in costs)
            for mb in sizes
        ),
    )
    w.cite(run.source for run in runs if run.measured.get("student"))
    prices = [table.platform(c.platform) for c in costs]
    w.add("Prices: " + "; ".join(f"{p.key} as of {p.as_of} ({p.source})" for p in prices) + ".", "")
    _batch_tables(w, costs, options.p99_target_ms, table)

    w.section("4. Monthly cost against traffic")
    vm = table.vm()
    w.plot(plot_monthly(costs, table, w.out / "monthly_cost.png"), "monthly cost")
    traffic = list(options.requests_per_month)
    rows = [
        f"{c.platform} at {c.monthly_memory_mb} MB | "
        + " | ".join(fmt.usd(c.monthly.get(n)) for n in traffic)
        + f" | {fmt.num(c.break_even_rps, '.2f')}"
        for c in costs
    ]
    rows.append(f"VM {vm.key} | " + " | ".join(fmt.usd(vm.monthly_usd) for _ in traffic) + " | ")
    w.table(
        "$ a month | " + " | ".join(f"{n:,.0f} requests" for n in traffic) + " | break-even req/s",
        rows,
    )
    w.add(
        f"The VM is {vm.name}: {fmt.usd(vm.monthly_usd)} a month (as of {vm.as_of}, {vm.source}). "
        "Each platform runs the cheapest size meeting the p99 target (else its fastest).",
        "",
    )


def _batch_tables(
    w: _Writer, costs: Sequence[PlatformCost], target_ms: float, table: PriceTable
) -> None:
    """The student's cost per prediction against texts per request, on every priced platform."""
    w.add("### Per prediction, by texts per request", "")
    priced = [c for c in costs if c.batches]
    if not priced:
        w.lacking_line(f"no batched requests in the lambda results: {BENCH_HINT}")
        return
    own = next((c for c in priced if c.platform == c.measured_on), priced[0])
    beside = next((c for c in priced if c.platform == PRICED_BESIDE.get(own.platform)), None)
    fee = table.platform(own.platform).requests_per_million
    path = plot_batches(own, beside, fee, w.out / "cost_per_prediction.png")
    w.plot(path, "cost per prediction against texts per request")
    assert own.batches is not None
    by_key = {
        c.platform: {(r["memory_mb"], r["texts_per_request"]): r for r in c.batches["rows"]}
        for c in priced
        if c.batches
    }
    rows = []
    for r in own.batches["rows"]:
        mb, k = r["memory_mb"], r["texts_per_request"]
        if "skipped" in r:
            rows.append(f"{mb} | {k} | – | – | {r['skipped']} | " + " | ".join("–" for _ in priced))
            continue
        share = "–" if r["fee_share"] is None else f"{r['fee_share']:.0%}"
        rows.append(
            f"{mb} | {k} | {fmt.ms(r['p99_ms'])}{'' if r['meets_p99'] else ' ✗'} "
            f"| {fmt.ms(r['client_p99_ms'])} | {share} | "
            + " | ".join(
                fmt.usd3(by_key[c.platform].get((mb, k), {}).get("total_usd")) for c in priced
            )
        )
    w.table(
        "memory MB | texts / request | p99 ms | client p99 ms "
        f"| request fee share on {own.platform} | "
        + " | ".join(f"{c.platform} $ per 1M predictions" for c in priced),
        rows,
    )
    ks = own.batches["texts_per_request"]

    def cheapest(c: PlatformCost, k: int) -> str:
        best = c.batches["cheapest"][k] if c.batches else {}
        return (
            f"{best['memory_mb']} MB: {fmt.usd3(best['total_usd'])}"
            if best.get("memory_mb")
            else "none"
        )

    w.table(
        f"cheapest with p99 ≤ {target_ms:g} ms per request | "
        + " | ".join(f"{k} text{'s' if k > 1 else ''} per request" for k in ks),
        (f"{c.platform} | " + " | ".join(cheapest(c, k) for k in ks) for c in priced),
    )
    w.add(
        "p99: the function's duration per request of k texts; client p99: the round trip at the "
        "client; ✗: p99 above the target. No cold starts, no free tier."
        + (
            f" {beside.platform} is priced at the {own.measured_on} durations: arm64 speed is not "
            "measured here."
            if beside is not None
            else ""
        ),
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
        parts = size_parts(r.doc)
        rows.append(
            r.path.name.removesuffix(".sizes.json")
            + " | "
            + " | ".join(fmt.mib(parts.get(p, {}).get("unzipped_bytes")) for p in SIZE_PARTS)
            + f" | {fmt.mib(r.doc.get('total', {}).get('unzipped_bytes'))}"
            + f" | {fmt.mib(r.doc.get('package_bytes'))}"
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
            f"{name} | {fmt.num(v.get('epoch_seconds'), '.1f')} "
            f"| {fmt.num(v.get('ms_per_example'), '.2f')} "
            f"| {fmt.num(v.get('padding_waste'), '.1%')} "
            f"| {fmt.num(v.get('val_macro_f1_last'), '.4f')} "
            f"| {fmt.num(v.get('epoch_time_ratio_vs_plain'), '.2f')} "
            f"| {fmt.num(v.get('per_example_speedup_vs_plain'), '.2f')}"
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
        cold_x = fmt.num(ratio.get("cold_start_teacher_over_bundle"), ".1f")
        warm_x = fmt.num(ratio.get("warm_p50_teacher_over_bundle"), ".1f")
        w.table(
            " | student bundle (onnxruntime) | teacher (torch) | teacher ÷ bundle",
            [
                f"cold start p50 ms | {fmt.ms(cb.get('p50'))} | {fmt.ms(ct.get('p50'))} "
                f"| {cold_x}×",
                f"cold start p90 ms | {fmt.ms(cb.get('p90'))} | {fmt.ms(ct.get('p90'))} | ",
                f"warm p50 ms | {fmt.ms(wb.get('p50'))} | {fmt.ms(wt.get('p50'))} | {warm_x}×",
                f"warm p99 ms | {fmt.ms(wb.get('p99'))} | {fmt.ms(wt.get('p99'))} | ",
            ],
        )
        overhead = fmt.num(s.doc.get("handler_overhead_fraction"), ".1%")
        w.add(f"Handler overhead beyond inference: {overhead} of its time.", "")
        w.cite([s])
    for s in invoke:
        fn, cold = s.doc.get("function_ms", {}), stat(s.doc["cold_start_ms"], "")
        agree = stat(s.doc.get("agreement_with_bundle"), "")
        w.add(
            f"The zip through the Lambda emulator: cold start {fmt.ms(cold)}"
            f" ms, function p50 {fmt.ms(fn.get('p50'))} ms, p99 {fmt.ms(fn.get('p99'))} ms"
            + (f"; answers agree with the bundle: {agree:.1%}." if agree is not None else "."),
            "",
        )
        w.cite([s])


def _eval_section(w: _Writer, found: Sequence[Source]) -> None:
    w.section("8. Quality")
    if not found:
        w.lacking("eval", elsewhere=True)
        return
    s = found[0]
    _eval_table(w, s)
    label, points, left_out = quality_points(s.doc)
    if points:
        w.plot(plot_quality(label, points, w.out / "quality.png"), "quality, latency and size")
        if left_out:
            w.add("Not in the plot: " + "; ".join(left_out) + ".", "")
    w.cite([s])
    for s in found[1:]:  # further run folders (runs/sentiment/mpnet): their table only
        _eval_table(w, s)
        w.cite([s])


def _eval_table(w: _Writer, s: Source) -> None:
    w.table(
        "model | kind | weights MB | macro-F1 | accuracy | p50 ms (1 thread)",
        (
            f"{m.get('model')} | {m.get('kind')} | {fmt.num(m.get('size_mb'), '.1f')} "
            f"| {fmt.num(m.get('macro_f1'), '.4f')} | {fmt.num(m.get('accuracy'), '.4f')} "
            f"| {fmt.ms(stat(m.get('latency_ms'), 'p50'))}"
            for m in s.doc["models"]
        ),
        left=2,
    )
    w.add(f"On `{s.doc.get('data')}` ({s.doc.get('rows')} rows).", "")


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
        read_readme(options.readme)  # a README without markers fails before any work
    table = load_prices(options.prices)
    for key in options.platforms or ():
        table.platform(key)  # an unknown key fails here, with the known ones as a hint
    out = Path(options.out) if options.out is not None else _default_out(options.results, found)
    runs = [read_lambda(s) for s in found["lambda"]]
    costs, notes = price_runs(
        runs,
        table,
        platforms=options.platforms,
        p99_target_ms=options.p99_target_ms,
        requests_per_month=options.requests_per_month,
    )
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
