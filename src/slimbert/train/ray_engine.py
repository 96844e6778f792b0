"""Scoring batches on Ray Data: the ``--engine ray`` of `label` and `augment`.

The stages stay in charge of their folders (:mod:`slimbert.data.shards`): they plan, sort rows by
length, cut shards and batches, and write every shard with the same code as the local engine.
This module only moves the batches through a Ray Data pipeline and gives the scores back:

* each text batch the local engine would score becomes one dataset row (a block of its own,
  so the actor pool spreads them); the batches are the local engine's, so the model sees the
  same padding and gives the same numbers;
* ``map_batches`` runs a stateful scorer class on an actor pool
  (``compute=ray.data.ActorPoolStrategy(size=n)``): each actor loads the model once and uses
  ``cpus_per_actor`` threads; Ray Data restarts an actor that dies and retries its batches
  (``max_restarts``/``max_task_retries`` are unlimited for actor pools), so no batch is lost;
* results stream back to the driver in whatever order they finish; the caller writes a shard
  as soon as all its batches are in, so a killed driver loses only the shards in flight and a
  rerun (local or Ray) resumes from the finished ones.

``address`` joins a running cluster (``auto``, ``ray://head:10001``); without it a local Ray
starts on this machine's cores and stops when the run ends. ray is an optional dependency
(``pip install 'slimbert[scale]'``), imported only here and only when the engine is used.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from slimbert.errors import ConfigError, require

log = logging.getLogger(__name__)

# A batch's columns (e.g. {"texts": [...]}) → float32 scores, one row per item of the batch.
BatchScorer = Callable[[Mapping[str, list[str]]], np.ndarray]
# Run on each actor, once: loads the model and returns its batch scorer. Must be picklable
# (a module-level function, a functools.partial of one, or a class).
ScorerFactory = Callable[[], BatchScorer]


@dataclass(frozen=True)
class RaySettings:
    """Where and how wide a Ray run is: cluster address, actor count, threads per actor."""

    address: str | None = None
    actors: int | None = None  # None: the cluster's CPUs // cpus_per_actor
    cpus_per_actor: int = 1

    def __post_init__(self) -> None:
        if self.actors is not None and self.actors < 1:
            raise ConfigError(f"actors must be at least 1, got {self.actors}")
        if self.cpus_per_actor < 1:
            raise ConfigError(f"cpus_per_actor must be at least 1, got {self.cpus_per_actor}")


def local_cpus() -> int:
    """The cores this process may use (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


class _Actor:
    """The stateful class of ``map_batches``: one model per actor, loaded once."""

    def __init__(self, factory: ScorerFactory, threads: int) -> None:
        # Before the model loads: onnxruntime (slimbert.runtime) and OpenMP size their pools
        # from these; torch, when the model imported it, is told directly.
        os.environ["SLIMBERT_THREADS"] = str(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        self.score = factory()
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(threads)

    def __call__(self, table: Any) -> Any:
        import pyarrow as pa

        ids, flat, widths = [], [], []
        columns = [c for c in table.column_names if c != "batch"]
        for row in table.to_pylist():
            scores = np.asarray(self.score({c: row[c] for c in columns}), dtype=np.float32)
            ids.append(int(row["batch"]))
            widths.append(1 if scores.ndim == 1 else int(scores.shape[1]))
            flat.append(scores.ravel())
        return pa.table(
            {
                "batch": pa.array(ids, pa.int64()),
                "width": pa.array(widths, pa.int32()),
                "scores": pa.array([x.tolist() for x in flat], pa.list_(pa.float32())),
            }
        )


def score_batches(
    batches: Sequence[Mapping[str, list[str]]],
    factory: ScorerFactory,
    settings: RaySettings,
) -> Iterator[tuple[int, np.ndarray]]:
    """Score ``batches`` on a Ray actor pool; yields ``(batch index, scores)`` as they finish.

    ``scores`` has one row per item (shape ``(n,)`` or ``(n, k)`` as the scorer returns).
    Every batch is yielded exactly once, in no particular order.
    """
    if not batches:
        return
    import pyarrow as pa

    with _session(settings) as actors:
        data: Any = require("ray.data", "scale")
        context = data.DataContext.get_current()
        context.enable_progress_bars = False
        blocks = [
            pa.table({"batch": [i], **{k: [list(v)] for k, v in batch.items()}})
            for i, batch in enumerate(batches)
        ]
        dataset = data.from_arrow(blocks).map_batches(
            _Actor,
            fn_constructor_args=(factory, settings.cpus_per_actor),
            batch_size=1,
            batch_format="pyarrow",
            compute=data.ActorPoolStrategy(size=actors),
            num_cpus=settings.cpus_per_actor,
        )
        log.info("scoring %d batches on %d Ray actor(s)", len(batches), actors)
        seen: set[int] = set()
        for result in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            for index, width, scores in zip(
                result.column("batch").to_pylist(),
                result.column("width").to_pylist(),
                result.column("scores").to_pylist(),
                strict=True,
            ):
                if index in seen:  # pragma: no cover - Ray Data yields a block once
                    continue
                seen.add(index)
                array = np.asarray(scores, dtype=np.float32)
                yield index, array.reshape(-1, width) if width > 1 else array


def score_shards(
    shards: Sequence[Sequence[Mapping[str, list[str]]]],
    factory: ScorerFactory,
    settings: RaySettings,
    put: Callable[[int, int, np.ndarray], None],
) -> Iterator[int]:
    """Score every shard's batches with :func:`score_batches`; ``put(shard, batch, scores)``
    takes each batch's scores as they arrive (``batch``: its place in the shard), and a
    shard's position is yielded as soon as all its batches are back."""
    flat: list[Mapping[str, list[str]]] = []
    owner: list[tuple[int, int]] = []  # flat batch -> (shard position, batch in the shard)
    for position, batches in enumerate(shards):
        for number, batch in enumerate(batches):
            flat.append(batch)
            owner.append((position, number))
    missing = [len(batches) for batches in shards]
    for index, scores in score_batches(flat, factory, settings):
        position, number = owner[index]
        put(position, number, scores)
        missing[position] -= 1
        if missing[position] == 0:
            yield position


class _session:
    """Join ``settings.address`` or start a local Ray; yields the actor count to use."""

    def __init__(self, settings: RaySettings) -> None:
        self.settings = settings
        self.started = False

    def __enter__(self) -> int:
        ray: Any = require("ray", "scale")
        settings = self.settings
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if settings.address:
                ray.init(address=settings.address, **kwargs)
            else:
                ray.init(num_cpus=local_cpus(), **kwargs)
            self.started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        actors = settings.actors or max(1, cpus // settings.cpus_per_actor)
        if actors * settings.cpus_per_actor > cpus:
            log.warning(
                "%d actors x %d CPUs exceed the cluster's %d CPUs; some will wait",
                actors,
                settings.cpus_per_actor,
                cpus,
            )
        return actors

    def __exit__(self, *exc: object) -> None:
        if self.started:
            import ray

            ray.shutdown()


__all__ = [
    "BatchScorer",
    "RaySettings",
    "ScorerFactory",
    "local_cpus",
    "score_batches",
    "score_shards",
]
