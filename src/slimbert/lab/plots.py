"""The report's plots as PNG files, drawn with matplotlib's object API on an Agg canvas.

Latency quantiles and cost against memory size (log axes labelled in plain ms and dollars),
cold-start distributions, monthly cost against traffic beside an always-on VM, package size by
component against Lambda's limits, and quality against latency. Each function takes data that
:mod:`slimbert.lab.results` and :mod:`slimbert.lab.cost` already read and priced, writes one
file atomically and returns its path. matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slimbert.deploy.platforms import LAMBDA_UNZIPPED_LIMIT_MIB, LAMBDA_ZIP_LIMIT_MIB
from slimbert.errors import require
from slimbert.io import atomic_path
from slimbert.lab import fmt
from slimbert.lab.cost import PlatformCost
from slimbert.lab.results import (
    SIZE_PARTS,
    LambdaRun,
    Source,
    quantile_of,
    size_parts,
)
from slimbert.prices import PriceTable

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)


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


def _memory_axis(
    ax: Axes, sizes: Iterable[int], ylabel: str, xlabel: str = "memory size (MB)"
) -> None:
    from matplotlib.ticker import NullLocator

    ticks = sorted(set(sizes))
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(xlabel)
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
                points = [(mb, quantile_of(e, q)) for mb, e in sorted(entries.items())]
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
            *((timings_label(c), f"C{i}", "-o") for i, c in enumerate(costs)),
            *((m, "black", styles[j % len(styles)]) for j, m in enumerate(models)),
        ],
    )
    return _save(fig, path)


def timings_label(c: PlatformCost) -> str:
    """A cost line's legend entry: its platform and whose measured durations it prices."""
    if c.measured_on == c.platform:
        return f"{c.platform} (its own timings)"
    return f"{c.platform} (reuses {c.measured_on} timings)"


def plot_batches(
    own: PlatformCost, beside: PlatformCost | None, fee_per_million: float, path: Path
) -> Path:
    """Cost per 1M predictions against texts per request, one line per memory size on the
    measured platform (``own``), dashed for the platform priced beside it at the same
    durations, and the request fee alone as the floor that batching lowers."""
    assert own.batches is not None
    fig, (ax,) = _figure(width=8.0)
    rows = [r for r in own.batches["rows"] if "skipped" not in r]
    sizes = sorted({r["memory_mb"] for r in rows})
    shown = [(own, "-o")] + ([(beside, "--o")] if beside is not None and beside.batches else [])
    for c, style in shown:
        assert c.batches is not None
        for i, mb in enumerate(sizes):
            points = sorted(
                (r["texts_per_request"], r["total_usd"])
                for r in c.batches["rows"]
                if r["memory_mb"] == mb and "skipped" not in r
            )
            ax.plot(*zip(*points, strict=True), style.rstrip("o"), marker="o", color=f"C{i}")
    ks = own.batches["texts_per_request"]
    ax.plot(ks, [fee_per_million / k for k in ks], ":", color="black")
    _memory_axis(ax, ks, "$ per 1M predictions", xlabel="texts per request")
    ax.set_title(
        "Cost per 1M predictions against texts per request\n"
        f"(timings measured on {own.measured_on})",
        fontsize=9,
    )
    _legend(
        fig,
        [
            *((f"{mb} MB", f"C{i}", "-o") for i, mb in enumerate(sizes)),
            (own.platform, "black", "-"),
            *(
                [(f"{beside.platform} (its speed not measured)", "black", "--")]
                if beside is not None and beside.batches
                else []
            ),
            ("request fee alone", "black", ":"),
        ],
    )
    return _save(fig, path)


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
                    f"{timings_label(c)} at {c.monthly_memory_mb} MB, prices as of "
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
    parts = [size_parts(r.doc) for r in reports]
    limits = {"zipped_bytes": LAMBDA_ZIP_LIMIT_MIB, "unzipped_bytes": LAMBDA_UNZIPPED_LIMIT_MIB}
    for ax, (key, limit) in zip(axes, limits.items(), strict=True):
        bottom = np.zeros(len(reports))
        for i, part in enumerate(SIZE_PARTS):
            heights = np.array([p.get(part, {}).get(key, 0) / fmt.MIB for p in parts])
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
