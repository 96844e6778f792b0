"""The cold-start budget as a stacked table and a stacked bar plot (bench serving, bench lambda).

The runs are what :func:`slimbert.runtime.phases.read_phase_lines` reads from a function's
log, one per cold start: ``{"phases_ms": {phase: ms, ...}, "total_ms": ms, ...}``. Either a
list of runs (one column, with each phase's share and the running sum) or a mapping of label
to runs (one column or bar per label: a memory size, a variant, before and after).

Each phase is the median over the runs; ``total`` is the median of the runs' totals, which is
not the sum of the medians (the table says so when they differ by more than a rounding).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from slimbert.errors import require
from slimbert.io import atomic_path
from slimbert.runtime.phases import PHASES

Runs = Sequence[Mapping[str, Any]]

# One colour per phase group: start-up and imports in greys/blues, the load in greens/oranges,
# the first answer in red, so a plot reads "Python / imports / model / answer" at a glance.
_COLOURS = {
    "interpreter": "#9e9e9e",
    "import_stdlib": "#c6dbef",
    "import_numpy": "#9ecae1",
    "import_tokenizers": "#6baed6",
    "import_runtime": "#4292c6",
    "import_onnxruntime": "#2171b5",
    "manifest": "#c7e9c0",
    "verify": "#74c476",
    "tokenizer": "#fdae6b",
    "session": "#e6550d",
    "index": "#a1d99b",
    "first_request": "#cb181d",
}


def phase_names(runs: Runs) -> list[str]:
    """The phases the runs hold: the runtime's order first, then any others as they come."""
    seen = [n for n in PHASES if any(n in r.get("phases_ms", {}) for r in runs)]
    for run in runs:
        seen += [n for n in run.get("phases_ms", {}) if n not in seen]
    return seen


def phase_medians(runs: Runs) -> dict[str, float]:
    """Median ms of each phase over ``runs`` (a phase a run lacks counts 0), and ``total``."""
    if not runs:
        return {}
    out = {
        name: float(statistics.median(float(r["phases_ms"].get(name, 0.0)) for r in runs))
        for name in phase_names(runs)
    }
    out["total"] = float(
        statistics.median(float(r.get("total_ms", sum(r["phases_ms"].values()))) for r in runs)
    )
    return out


def _columns(runs: Runs | Mapping[str, Runs], single: str = "median ms") -> dict[str, Runs]:
    if isinstance(runs, Mapping):
        return {str(k): list(v) for k, v in runs.items()}
    return {single: list(runs)}


def phase_table(runs: Runs | Mapping[str, Runs]) -> str:
    """A Markdown table of the median ms per phase (rows) for each column of runs."""
    columns = _columns(runs)
    medians = {label: phase_medians(r) for label, r in columns.items()}
    names = phase_names([run for r in columns.values() for run in r])
    single = not isinstance(runs, Mapping)
    head = ["phase", *columns]
    if single:
        head += ["share", "cumulative ms"]
    lines = [
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    cumulative = 0.0
    for name in names:
        cells = [f"{medians[label].get(name, 0.0):.1f}" for label in columns]
        if single:
            m = next(iter(medians.values()))
            value = m.get(name, 0.0)
            cumulative += value
            share = value / m["total"] if m.get("total") else 0.0
            cells += [f"{share:.0%}", f"{cumulative:.1f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    totals = [f"**{medians[label].get('total', 0.0):.1f}**" for label in columns]
    lines.append(
        "| **total** (median of the runs' totals) | "
        + " | ".join(totals)
        + (" | | |" if single else " |")
    )
    if single:
        counts = f"Cold starts: {len(next(iter(columns.values())))}"
    else:
        counts = "Cold starts per column: " + ", ".join(
            f"{label}: {len(r)}" for label, r in columns.items()
        )
    lines += ["", f"{counts}; each phase is its median over them."]
    return "\n".join(lines) + "\n"


def plot_phases(runs: Runs | Mapping[str, Runs], path: Path, title: str | None = None) -> Path:
    """A stacked horizontal bar per column of runs (median ms per phase), written as PNG."""
    require("matplotlib", "bench")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = _columns(runs, single="cold start")
    medians = {label: phase_medians(r) for label, r in columns.items()}
    names = phase_names([run for r in columns.values() for run in r])
    fig = Figure(figsize=(8.0, 1.2 + 0.55 * len(columns)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    labels = list(columns)
    left = [0.0] * len(labels)
    for i, name in enumerate(names):
        widths = [medians[label].get(name, 0.0) for label in labels]
        colour = _COLOURS.get(name, f"C{i % 10}")
        ax.barh(labels, widths, left=left, color=colour, label=name, edgecolor="white", lw=0.5)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for y, label in enumerate(labels):
        ax.text(
            left[y], y, f" {medians[label].get('total', left[y]):.0f} ms", va="center", fontsize=8
        )
    ax.invert_yaxis()
    ax.set_xlabel("ms, median per phase over the cold starts")
    ax.set_xlim(0, max([*left, 1.0]) * 1.15)
    if title:
        ax.set_title(title, fontsize=10)
    fig.legend(loc="outside lower center", ncols=6, fontsize=7, frameon=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
