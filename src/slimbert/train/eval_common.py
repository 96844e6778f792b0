"""What every ``slimbert eval`` run shares: its options, the models it accepts, latency.

:class:`EvalOptions` is the stage's options; :func:`model_path` and :func:`model_kind` say
which folder a model names and whether it is a classifier or a sentence embedder (nothing is
loaded); :func:`latency_ms` is the single-thread batch-1 latency both kinds report (after a
warm-up, median and p95 over real texts), the setting a serverless function runs in.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from slimbert.config import Options, check
from slimbert.errors import ModelError
from slimbert.metrics import quantiles

CLASSIFIER_DATA = "tweets3:test"
EMBEDDER_PAIRS = ("stsb:test", "mrpc-target:test")


@dataclasses.dataclass(frozen=True)
class EvalOptions(Options):
    stage: ClassVar[str] = "eval"

    models: tuple[str, ...] = ("runs/teacher",)
    # None: classifiers are scored on the test set recorded with the first model (else its
    # validation set; slimbert.data.owndata), refused when it records none; embedders use pairs.
    data: str | None = None
    pairs: tuple[str, ...] = EMBEDDER_PAIRS
    names: tuple[str, ...] = ()
    out: Path | None = None
    text_column: str = "text"
    label_column: str = "label"
    encoding: str = "utf-8"
    batch_size: int = 256
    latency_samples: int = 200
    latency_threads: int = 1
    limit: int | None = None
    sets: tuple[str, ...] = ()
    behaviour: bool = True
    baseline: bool = True
    # Embedders: the model they were distilled from; each row gains its agreement with it (the
    # mean cosine between their embeddings of the first pair set's sentences).
    teacher: str | None = None

    def validate(self) -> None:
        check(len(self.models) > 0, "eval needs at least one model", hint="--models a,b")
        check(self.batch_size >= 1, "batch_size must be at least 1")
        check(self.latency_samples >= 0, "latency_samples must be >= 0")
        check(self.latency_threads >= 1, "latency_threads must be at least 1")
        check(
            len(self.pairs) > 0, "pairs must name at least one pair set", hint="--pairs stsb:test"
        )
        check(
            not self.names or len(self.names) == len(self.models),
            f"names must label each of the {len(self.models)} models, got {len(self.names)}",
            hint="--names a,b with one name per --models entry, in the same order",
        )


def latency_ms(
    scorer: Any,
    texts: list[str],
    samples: int,
    threads: int,
    call: Callable[[list[str]], Any] | None = None,
) -> dict[str, float]:
    """Batch-1 latency of ``call`` (default ``scorer.logits``) over ``texts``."""
    if samples == 0 or not texts:
        return {}
    call = call or scorer.logits
    if hasattr(scorer, "module"):  # a torch model: its thread count is a process-wide setting
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return _time_calls(call, texts, samples)
        finally:
            torch.set_num_threads(previous)
    return _time_calls(call, texts, samples)


def _time_calls(logits: Any, texts: list[str], samples: int) -> dict[str, float]:
    for text in texts[:20]:  # warm-up: first calls allocate and pick kernels
        logits([text])
    timings = []
    for i in range(samples):
        text = texts[i % len(texts)]
        start = time.perf_counter()
        logits([text])
        timings.append((time.perf_counter() - start) * 1e3)
    summary = quantiles(timings)
    # The eval JSON has always held these three of the shared summary.
    return {key: summary[key] for key in ("p50", "p95", "mean")}


def ms_cell(latency: dict[str, float], key: str) -> str:
    """A latency table cell: milliseconds with two decimals, or – when not measured."""
    # An empty latency dict means it was not measured (latency_samples 0), not "NaN ms".
    return f"{latency[key]:.2f}" if key in latency else "–"


def model_path(model: str) -> Path:
    """A model folder as given, or the folder a model alias names (all-MiniLM-L6-v2, mpnet)."""
    from slimbert.models.baselines import is_baseline
    from slimbert.models.load import resolve_model

    if Path(model).exists() or is_baseline(model):
        return Path(model)
    return Path(resolve_model(model))


def model_kind(path: Path) -> str:
    """``classifier`` or ``embedder``, from the files a model folder holds (nothing is loaded)."""
    from slimbert.models.baselines import is_baseline
    from slimbert.models.load import META_FILE

    if is_baseline(str(path)):
        return "classifier"

    from slimbert.runtime.bundle import is_bundle, read_manifest

    if is_bundle(path):
        return "embedder" if read_manifest(path)["task"] == "embedding" else "classifier"
    if (path / META_FILE).is_file():
        return "classifier"
    if (path / "modules.json").is_file():
        return "embedder"
    raise ModelError(
        f"{path} is neither a trained slimbert classifier, a sentence-transformers embedder "
        "nor an exported bundle",
        hint="pass folders written by `slimbert train`, `slimbert distill`, "
        "`slimbert sbert train` or `slimbert export`",
    )
