"""Progress on stderr while a stage runs: bars per epoch or per row, training curves.

:func:`run_stage` runs one stage of the method (:func:`slimbert.pipeline.stages`) as a forced
one-step pipeline with these bars; ``slimbert run`` passes :func:`stage_hooks` to the whole
pipeline. ``--quiet`` (:data:`slimbert.cli_commands.STATE`) switches them off.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from slimbert.cli_commands import STATE, console
from slimbert.config import Options


def quiet_libraries() -> None:
    """Offline hub, no tokenizer fork warnings, no transformers bars: the CLI shows its own."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass


class _Progress(Progress):
    """Progress bars that leave no empty line behind when no bar was ever shown (a run that
    stops on a user error before its first bar keeps stderr to the one error line)."""

    def stop(self) -> None:
        if any(task.visible for task in self.tasks) or self.disable:
            super().stop()
            return
        # rich prints an empty line after a non-interactive run and the final empty render
        # on a terminal; with no bar there is nothing to keep.
        self.live.transient = True
        self.live.stop()


def progress_bars() -> Progress:
    return _Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=bool(STATE["quiet"]),
    )


def _step_progress(progress: Progress, title: str) -> Callable[[str], None]:
    """A stage without a row count (export): one pulsing bar, its description the current
    step; shown on a terminal only (a log gets the stage's own lines)."""
    state: dict[str, Any] = {}

    def update(step: str) -> None:
        if "task" not in state:
            visible = progress.console.is_terminal
            state["task"] = progress.add_task(title, total=None, rate="", visible=visible)
        progress.update(state["task"], description=f"{title}: {step}")

    return update


def _label_progress(progress: Progress, title: str) -> Callable[[int, int], None]:
    import time

    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        now = time.perf_counter()
        if "task" not in state:
            state.update(task=progress.add_task(title, total=total, rate=""), t0=now, d0=done)
        elapsed = now - state["t0"]
        rate = (done - state["d0"]) / elapsed if elapsed > 0 else 0.0
        progress.update(state["task"], completed=done, rate=f"{rate:,.0f} rows/s")

    return update


def stage_hooks(progress: Progress) -> dict[str, Callable[[Any], dict[str, Any]]]:
    """Per stage name, the progress keyword its ``run`` takes (``hooks`` of run_pipeline)."""
    return {
        "train": lambda step: {"reporter": TrainReporter(progress, step.name)},
        "distill": lambda step: {"reporter": TrainReporter(progress, step.name)},
        "label": lambda step: {"progress": _label_progress(progress, step.name)},
        "augment": lambda step: {"progress": _label_progress(progress, step.name)},
        "sbert-train": lambda step: {"reporter": SpearmanReporter(progress, step.name)},
        "cross-encoder": lambda step: {"reporter": SpearmanReporter(progress, step.name)},
        "export": lambda step: {"progress": _step_progress(progress, step.name)},
    }


class TrainReporter:
    """Training progress: one bar per epoch, ending with its validation macro-F1."""

    def __init__(self, progress: Progress, title: str) -> None:
        self.progress = progress
        self.title = title
        self.task: Any = None
        self.epoch = 0

    def epoch_started(self, epoch: int, steps: int) -> None:
        self.epoch = epoch
        self.task = self.progress.add_task(f"{self.title} epoch {epoch}", total=steps, rate="")

    def step_done(self, loss: float) -> None:
        self.progress.update(self.task, advance=1, description=self._desc(f"loss {loss:.3f}"))

    def epoch_done(self, record: dict[str, Any]) -> None:
        f1 = record["val_macro_f1"]
        self.progress.update(self.task, description=self._desc(f"val macro-F1 {f1:.4f}"))
        # A line per epoch too, so a log of a non-interactive run shows the curve.
        self.progress.console.print(
            f"{self.title} epoch {record['epoch']}: train {record['train_seconds']:.0f} s, "
            f"loss {record['train_loss']:.4f}, val macro-F1 {f1:.4f}",
            highlight=False,
        )

    def _desc(self, tail: str) -> str:
        return f"{self.title} epoch {self.epoch}: {tail}"


class SpearmanReporter(TrainReporter):
    """SBERT training: a bar per epoch; a line per validation (Spearman of cosine)."""

    def epoch_done(self, record: dict[str, Any]) -> None:
        rho = 100 * record["val_spearman"]
        self.progress.update(self.task, description=self._desc(f"val Spearman {rho:.2f}"))
        self.progress.console.print(
            f"{self.title} step {record['step']} (epoch {record['epoch']}): "
            f"{record['train_seconds']:.0f} s, loss {record['train_loss']:.4f}, "
            f"val Spearman {rho:.2f}",
            highlight=False,
        )


def run_stage(stage: str, options: Options, doing: str | None = None) -> Any:
    """Run one stage with the progress UI; ``doing`` names a pulsing bar shown meanwhile
    for stages that report no progress of their own (on a terminal only)."""
    from slimbert.pipeline import Step, run_pipeline

    quiet_libraries()
    with progress_bars() as progress:
        if doing is not None:
            progress.add_task(doing, total=None, rate="", visible=progress.console.is_terminal)
        summary = run_pipeline(
            [Step(stage, stage, options)], force=True, hooks=stage_hooks(progress)
        )
    return summary[0]["result"]
