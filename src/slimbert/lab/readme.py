"""The README's results table: the key figures of the latest results, each citing its file.

:func:`key_figures` picks only figures some results file holds (quality student vs teacher,
bundle and zip size, cold start and warm latency, cost at the cheapest memory size, the sampler's
speed-up); :func:`readme_table` writes them as Markdown and :func:`update_readme` puts that
between the ``<!-- results:start -->`` and ``<!-- results:end -->`` markers, leaving the rest of
the README as it was (line endings included).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from slimbert.deploy.platforms import LAMBDA_ZIP_LIMIT_MIB
from slimbert.errors import DataError
from slimbert.io import atomic_open
from slimbert.lab import fmt
from slimbert.lab.billing import PRICED_BESIDE
from slimbert.lab.cost import PlatformCost
from slimbert.lab.results import (
    LambdaRun,
    Source,
    quantile_of,
    size_parts,
    stat,
)
from slimbert.prices import PriceTable

log = logging.getLogger(__name__)

# The batch size whose cost per prediction the README quotes: issue 16's target is priced at 32.
BATCH_FIGURE = 32
_UNMEASURED = "at the same durations (arm64 speed not measured)"
README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"


def _near(sizes: Iterable[int], target: int = 1024) -> int | None:
    """``target`` if measured, else the measured size closest to it on a log scale."""
    sizes = sorted(sizes)
    return min(sizes, key=lambda s: (abs(math.log2(s / target)), s)) if sizes else None


def _eval_pair(doc: Mapping[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(student, teacher) rows of an eval.json: the bundle (else a "student"), and the teacher
    of its folder (runs/sentiment/mpnet/bundle pairs with runs/sentiment/mpnet/teacher, not
    with the runs/sentiment/teacher evaluated beside it), else the first teacher."""
    models = [m for m in doc.get("models", []) if isinstance(m, dict)]
    student = next((m for m in models if str(m.get("kind", "")).startswith("onnx")), None)
    student = student or next((m for m in models if "student" in str(m.get("model", ""))), None)
    teachers = [m for m in models if "teacher" in str(m.get("model", ""))]
    home = Path(str(student["model"])).parent if student else None
    teacher = next((m for m in teachers if Path(str(m["model"])).parent == home), None)
    teacher = teacher or next(iter(teachers), None)
    teacher = teacher or next((m for m in models if m.get("kind") == "torch"), None)
    return (student if student is not teacher else None), teacher


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
            f1 = " vs ".join(fmt.num(m.get("macro_f1"), ".4f") for m in (student, teacher))
            data = s.doc.get("data")
            label = (
                f"macro-F1 on `{data}`, student vs teacher"
                if data
                else "macro-F1, student vs teacher"
            )
            figures = [(label, f1), *_domain_rows(s.doc, student, teacher)]
            # Several run folders: each figure says whose teacher it is (the folder's name).
            prefix = f"{s.path.parent.name}: " if len(found["eval"]) > 1 else ""
            rows.extend((prefix + figure, value, s) for figure, value in figures)
    # The x86_64 Lambda zip is the one the paper deploys; other packages are in the report.
    for r in sorted(found["sizes"], key=lambda r: "aws-lambda-x86_64" not in r.path.name)[:1]:
        model = fmt.mib(size_parts(r.doc).get("model", {}).get("unzipped_bytes"))
        zipped = f"{fmt.mib(r.doc.get('package_bytes'))} MiB (limit {LAMBDA_ZIP_LIMIT_MIB})"
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
            if (ms := stat(e.get("cold_start_ms"), "p50")) is not None:
                cold.append(f"{fmt.ms(ms)} ms ({name})")
            warm.append(f"{fmt.ms(quantile_of(e, 50))} / {fmt.ms(quantile_of(e, 99))} ms ({name})")
        if cold:
            rows.append(
                (f"cold start p50 ({run.platform}, {mb} MB)", " vs ".join(cold), run.source)
            )
        rows.append((f"warm p50 / p99 ({run.platform}, {mb} MB)", " vs ".join(warm), run.source))
    for s in found["serving"]:
        cb = s.doc["cold_start"].get("bundle", {}).get("wall_ms", {})
        ratio = s.doc.get("ratios", {}).get("cold_start_teacher_over_bundle")
        value = f"{fmt.ms(cb.get('p50'))} ms (bundle), teacher {fmt.num(ratio, '.1f')}× slower"
        rows.append(("cold start p50, local process", value, s))
        if run is None:
            wb = s.doc.get("warm_ms", {}).get("bundle", {})
            value = f"{fmt.ms(wb.get('p50'))} / {fmt.ms(wb.get('p99'))} ms (bundle)"
            rows.append(("warm p50 / p99, local batch 1", value, s))
    if run is not None and costs:
        rows += _cost_rows(run, costs, target_ms, table)
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
    text, start, end = read_readme(Path(readme))
    newline = "\r\n" if "\r\n" in text else "\n"
    body = newline.join(table_md.strip("\n").splitlines())
    new = text[: start + len(README_START)] + newline + body + newline + text[end:]
    if new == text:
        return False
    with atomic_open(readme) as fh:
        fh.write(new)
    log.info("updated the results in %s", readme)
    return True


def read_readme(readme: Path) -> tuple[str, int, int]:
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


def _cost_rows(
    run: LambdaRun, costs: Sequence[PlatformCost], target_ms: float, table: PriceTable
) -> list[tuple[str, str, Source]]:
    """$ per 1M requests at the cheapest size, and per 1M predictions at 32 texts per request
    where the run measured batches; arm64 beside x86_64 at the same durations."""
    c = next((c for c in costs if c.platform == run.platform), costs[0])
    twin = next((t for t in costs if t.platform == PRICED_BESIDE.get(c.platform)), None)
    as_of = table.platform(c.platform).as_of
    b = c.cheapest
    if b["memory_mb"] is None:
        value = str(b["reason"])
    else:
        also = twin.per_million.get("student", {}).get(b["memory_mb"]) if twin else None
        value = (
            f"{fmt.usd(b['cost_per_million_usd'])} at {b['memory_mb']} MB on {c.platform}"
            + (f", {twin.platform} {fmt.usd(also)} {_UNMEASURED}" if twin and also else "")
            + f"; prices as of {as_of}"
        )
    rows = [(f"$ per 1M at the cheapest memory with p99 ≤ {target_ms:g} ms", value, run.source)]
    k = BATCH_FIGURE
    best = c.batches["cheapest"].get(k) if c.batches else None
    if best is not None:
        if best["memory_mb"] is None:
            value = str(best["reason"])
        else:
            other = twin.batches["cheapest"].get(k) if twin and twin.batches else None
            value = (
                f"{fmt.usd3(best['total_usd'])} at {best['memory_mb']} MB on {c.platform}"
                + (
                    f", {twin.platform} {fmt.usd3(other['total_usd'])} {_UNMEASURED}"
                    if twin and other and other["memory_mb"] == best["memory_mb"]
                    else ""
                )
                + f"; prices as of {as_of}"
            )
        figure = f"$ per 1M predictions at {k} texts per request, cheapest memory with p99 ≤ "
        rows.append((f"{figure}{target_ms:g} ms per request", value, run.source))
    return rows
