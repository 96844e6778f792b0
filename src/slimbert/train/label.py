"""Step 2 of the method: the fine-tuned teacher labels a large unlabelled pool (the silver set).

Paper §4.1.2: a teacher fine-tuned on the gold set labels a large in-domain pool; the student
is then distilled on these "silver" labels and logits. Labelling a big pool takes hours, so it
is resumable:

* rows are ordered by (token length, row index), so each batch holds texts of similar length
  and little padding is wasted, then cut into shards of ``shard_size`` rows;
* each shard is written atomically as ``part-NNNNN.parquet`` (columns ``row``, ``id``,
  ``text``, ``label``, ``label_id``, ``probs``, ``logits``) and only then recorded in
  ``manifest.json``, so a kill at any moment loses at most the shard in progress;
* a rerun with the same plan (data, teacher, label names, shard size, row order) verifies the
  finished shards by sha256 and labels only the rest; a damaged shard is relabelled; a folder
  holding a different plan is refused rather than overwritten, or with ``overwrite`` replaced
  once the new set is complete (the folder mechanics are :mod:`slimbert.data.shards`, shared with
  `augment`).

:func:`read_silver` gives the set back in source row order for distillation.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from slimbert.config import Options, check
from slimbert.data.load import TextSet, load_texts
from slimbert.data.shards import ShardFolder, digest_strings, folder_fingerprint, shard_name
from slimbert.errors import DataError, ModelError, SlimbertError
from slimbert.io import atomic_path
from slimbert.models.scoring import Scorer, softmax

log = logging.getLogger(__name__)

FORMAT = "slimbert-silver/1"
COLUMNS = ("row", "id", "text", "label", "label_id", "probs", "logits")
# Token lengths are computed in chunks so a tokenizer never holds the whole pool's encodings.
_LENGTH_CHUNK = 16384
# Plan keys grouped into the words an error message uses for them.
_PLAN_WORDS = {
    "source": "data source",
    "rows": "texts",
    "texts_sha256": "texts",
    "ids_sha256": "row ids",
    "teacher": "teacher path",
    "teacher_fingerprint": "teacher files",
    "backend": "backend",
    "max_length": "max_length",
    "label_names": "label names",
    "shard_size": "shard_size",
    "order_sha256": "row order (token lengths)",
}


@dataclass(frozen=True)
class LabelOptions(Options):
    """Options of ``slimbert label``: which teacher labels which pool into which folder."""

    stage: ClassVar[str] = "label"

    teacher: Path
    data: str
    out: Path
    text_column: str = "text"
    id_column: str | None = None
    encoding: str = "utf-8"
    backend: Literal["torch", "onnx"] = "torch"
    batch_size: int = 128
    shard_size: int = 4096
    # None: the teacher's own (its slimbert.json or bundle manifest), as it was trained.
    max_length: int | None = None
    limit: int | None = None
    # local: this process; ray: a Ray Data actor pool (slimbert.train.ray_engine). Same folder.
    engine: Literal["local", "ray"] = "local"
    address: str | None = None  # ray: join this cluster ("auto", "ray://head:10001")
    actors: int | None = None  # ray: actor count (None: the cluster's CPUs)
    # Export the torch teacher to ONNX first and label with the bundle (int8 behind the gate).
    export_teacher: Literal["none", "fp32", "int8"] = "none"
    agreement_rows: int = 1000  # rows labelled by torch too, to report the bundle's agreement

    def validate(self) -> None:
        check(
            bool(self.data.strip()),
            "label.data is empty",
            hint="give a dataset spec such as 'tweets3:pool' or a CSV path",
        )
        check(bool(self.text_column), "label.text_column is empty")
        check(self.batch_size > 0, f"label.batch_size must be positive, got {self.batch_size}")
        check(self.shard_size > 0, f"label.shard_size must be positive, got {self.shard_size}")
        check(
            self.shard_size >= self.batch_size,
            f"label.shard_size ({self.shard_size}) is smaller than label.batch_size "
            f"({self.batch_size})",
            hint="a shard is labelled in batches: raise shard_size or lower batch_size",
        )
        check(
            self.max_length is None or self.max_length > 0,
            f"label.max_length must be positive, got {self.max_length}",
        )
        check(
            self.limit is None or self.limit > 0,
            f"label.limit must be positive, got {self.limit}",
            hint="leave it out to label every row",
        )
        check(
            self.out != self.teacher,
            f"label.out is the teacher folder ({self.teacher})",
            hint="write the silver set to a folder of its own",
        )
        check(
            self.engine == "ray" or (self.address is None and self.actors is None),
            "label.address and label.actors are options of the Ray engine",
            hint="add --engine ray",
        )
        check(
            self.actors is None or self.actors > 0,
            f"label.actors must be positive, got {self.actors}",
        )
        check(
            self.export_teacher == "none" or self.backend == "torch",
            "label.export_teacher needs a torch teacher (--backend torch)",
            hint="a bundle is already ONNX: leave --export-teacher out",
        )
        check(
            self.agreement_rows >= 0,
            f"label.agreement_rows must be >= 0, got {self.agreement_rows}",
        )


@dataclass(frozen=True)
class LabelResult:
    """What :func:`label_corpus` did. ``rows``/``shards`` describe the whole silver set."""

    out: Path
    rows: int
    shards: int
    resumed_shards: int  # finished shards found, verified and kept from an earlier run
    seconds: float  # wall time of this call, loading and token lengths included
    # rows labelled in this call (resumed rows excluded) / seconds, less the teacher's export
    # and agreement sample (export_teacher)
    rows_per_second: float
    label_counts: dict[str, int]
    engine: str = "local"
    # export_teacher: the bundle labelled with, and its agreement with the torch teacher.
    agreement: dict[str, Any] | None = None


def label_corpus(
    options: LabelOptions,
    *,
    scorer: Scorer | None = None,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
    teacher_factory: Callable[[], Scorer] | None = None,
) -> LabelResult:
    """Label ``options.data`` with the teacher into Parquet shards under ``options.out``.

    Resumes a run that was stopped, as long as the plan is the same; ``progress(done, total)``
    is called once at the start (with the rows of resumed shards) and after every batch. A
    folder of another plan is refused, or with ``overwrite`` replaced once the new set is
    complete (labelled beside it, see :meth:`ShardFolder.for_plan`).

    With ``engine="ray"`` the batches are scored by actors that each build their scorer with
    ``teacher_factory`` (picklable; default: load ``options.teacher``); ``scorer`` still gives
    the token lengths and label names here. With ``export_teacher`` the torch teacher is
    exported to an ONNX bundle beside ``out`` first (reused while the teacher is unchanged)
    and the bundle labels; the agreement with torch on ``agreement_rows`` rows is reported.
    """
    started = time.perf_counter()
    if options.max_length is None:
        from slimbert.data.owndata import recorded_max_length

        options = options.replace(max_length=recorded_max_length(options.teacher))
    torch_teacher = None
    # Seconds spent exporting the teacher and measuring its agreement: not labelling, so left
    # out of rows_per_second (they stay in seconds).
    export_seconds = 0.0
    if options.export_teacher != "none":
        from slimbert.export.teacher import exported_teacher

        torch_teacher = options
        export_started = time.perf_counter()
        bundle = exported_teacher(
            options.teacher, options.out, options.export_teacher, options.max_length
        )
        export_seconds += time.perf_counter() - export_started
        # From here on the bundle is the teacher; the manifest keeps the options as given.
        options = options.replace(teacher=bundle, backend="onnx", export_teacher="none")
    out = options.out
    folder = _folder(out)
    folder.refuse_foreign()
    pool = _load_pool(options)
    n = len(pool.texts)
    plan = _plan(options, pool)
    # Refuse a folder of another labelling now, before the minutes of loading the teacher and
    # tokenising the pool; label names and row order are compared once they are known.
    existing = folder.read_manifest()
    if existing is not None and not overwrite:
        folder.refuse_other_plan(existing["plan"], plan, only_new_keys=True)
    if scorer is None:
        scorer = _load_teacher(options)
    label_names = tuple(scorer.label_names)
    if len(label_names) < 2:
        raise ModelError(f"the teacher has {len(label_names)} label(s); a classifier needs 2+")

    lengths = _token_lengths(scorer, pool.texts)
    # A stable sort keeps source order among equal lengths, so the order is (length, row).
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    plan["label_names"] = list(label_names)
    plan["order_sha256"] = hashlib.sha256(order.astype("<i8").tobytes()).hexdigest()
    n_shards = math.ceil(n / options.shard_size)
    agreement = None
    if torch_teacher is not None:
        from slimbert.export.teacher import agreement_with_torch

        agreement_started = time.perf_counter()
        agreement = _recorded_agreement(folder, plan) or agreement_with_torch(
            torch_teacher.teacher,
            torch_teacher.max_length,
            torch_teacher.agreement_rows,
            options.teacher,
            scorer,
            pool.texts,
        )
        export_seconds += time.perf_counter() - agreement_started

    with folder.writing(plan, overwrite=overwrite) as work:
        # Informational: the options of the latest run (batch_size may change between resumes).
        given = torch_teacher or options
        fields: dict[str, Any] = {"options": given.to_dict(), "engine": options.engine}
        if agreement is not None:
            fields["agreement"] = agreement
        manifest = work.start(plan, n_shards, **fields)
        done: dict[str, Any] = manifest["done"]
        resumed = len(done)
        finished = sum(int(entry["rows"]) for entry in done.values())
        log.info("labelling %d rows: %d shard(s) in %s, %d done before", n, n_shards, out, resumed)
        if progress is not None:
            progress(finished, n)

        def on_batch(rows: int) -> None:
            nonlocal finished
            finished += rows
            if progress is not None:
                progress(finished, n)

        labelled = 0
        pending = [
            (index, order[index * options.shard_size : (index + 1) * options.shard_size])
            for index in range(n_shards)
            if shard_name(index) not in done
        ]
        if options.engine == "ray":
            factory = teacher_factory or partial(
                load_teacher_scorer, str(options.teacher), options.backend, options.max_length
            )
            shards = _ray_shards(options, factory, pool, pending, len(label_names), on_batch)
        else:
            shards = _local_shards(scorer, pool, pending, len(label_names), options, on_batch)
        for index, rows, logits in shards:
            name = shard_name(index)
            shard_counts = _write_shard(pool, rows, logits, label_names, work.out / name)
            work.record(manifest, index, len(rows), label_counts=shard_counts)
            labelled += len(rows)
            log.debug("wrote %s (%d rows)", name, len(rows))

        counts = _sum_counts(done.values(), label_names)
        work.finish(manifest, label_counts=counts)
        work.publish(folder)

    seconds = time.perf_counter() - started
    labelling_seconds = seconds - export_seconds
    rate = labelled / labelling_seconds if labelled and labelling_seconds > 0 else 0.0
    log.info("silver set complete: %d rows, %d labelled now (%.0f rows/s)", n, labelled, rate)
    return LabelResult(
        out=out,
        rows=n,
        shards=n_shards,
        resumed_shards=resumed,
        seconds=seconds,
        rows_per_second=rate,
        label_counts=counts,
        engine=options.engine,
        agreement=agreement,
    )


def read_silver(out: Path) -> tuple[TextSet, np.ndarray]:
    """The finished silver set in source row order, and its teacher logits ``(n, k)`` float32.

    The TextSet's labels are the teacher's hard labels (argmax). Every shard is checked
    against its sha256, and every source row must appear exactly once.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    manifest, paths = _folder(out).finished()
    plan = manifest["plan"]
    n = int(plan["rows"])
    label_names = tuple(plan["label_names"])
    k = len(label_names)
    tables = [pq.read_table(path, columns=list(COLUMNS)) for path in paths]
    table = pa.concat_tables(tables)

    rows = table.column("row").to_numpy()
    unique = np.unique(rows)
    duplicated = len(rows) - len(unique)
    missing = n - int(np.count_nonzero((unique >= 0) & (unique < n)))
    if duplicated or missing or len(unique) != n:
        raise SlimbertError(
            f"silver set {out} has {duplicated} duplicated and {missing} missing row(s) of {n}",
            hint="delete the folder and run `slimbert label` again",
        )
    table = table.take(pa.array(np.argsort(rows, kind="stable")))

    label_ids = table.column("label_id").to_numpy().astype(np.int64)
    logits = table.column("logits").combine_chunks().flatten().to_numpy()
    if logits.size != n * k or label_ids.min() < 0 or label_ids.max() >= k:
        raise SlimbertError(
            f"silver set {out} does not match its {k} label names",
            hint="delete the folder and run `slimbert label` again",
        )
    silver = TextSet(
        texts=table.column("text").to_pylist(),
        labels=label_ids.tolist(),
        label_names=label_names,
        ids=table.column("id").to_pylist(),
        source=f"silver:{out}",
    )
    return silver, logits.astype(np.float32).reshape(n, k)


def silver_is_complete(out: Path) -> bool:
    """Whether ``out`` holds a finished silver set (cheap: file sizes, not checksums).

    It does not tell whether the set was made from the current teacher and data; rerunning
    :func:`label_corpus` checks that, and :func:`read_silver` verifies every checksum.
    """
    return _folder(out).is_complete()


# -- loading and planning ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Pool:
    """The texts to label, with an id per row."""

    texts: list[str]
    ids: list[str]


def _load_pool(options: LabelOptions) -> _Pool:
    # label_column=None: a pool's own label column (if any) is neither read nor validated,
    # the teacher labels every row.
    pool = load_texts(
        options.data,
        text_column=options.text_column,
        label_column=None,
        id_column=options.id_column,
        encoding=options.encoding,
        require_labels=False,
    )
    texts, ids = list(pool.texts), list(pool.ids)
    if options.limit is not None:
        texts, ids = texts[: options.limit], ids[: options.limit]
    if not texts:
        raise DataError(
            "no texts to label",
            path=options.data,
            hint="check the dataset spec and --text-column",
        )
    return _Pool(texts=texts, ids=ids)


def _load_teacher(options: LabelOptions) -> Scorer:
    # Imported here: it pulls in torch, which nothing else in this module needs.
    from slimbert.models.load import load_scorer

    if not options.teacher.exists():
        raise ModelError(
            f"teacher {options.teacher} does not exist",
            hint="fine-tune one with `slimbert train`, or pass --teacher",
        )
    scorer: Scorer = load_scorer(options.teacher, options.backend, max_length=options.max_length)
    return scorer


def _token_lengths(scorer: Scorer, texts: Sequence[str]) -> list[int]:
    lengths: list[int] = []
    for start in range(0, len(texts), _LENGTH_CHUNK):
        lengths.extend(int(x) for x in scorer.token_lengths(texts[start : start + _LENGTH_CHUNK]))
    if len(lengths) != len(texts):
        raise ModelError(f"the teacher gave {len(lengths)} token lengths for {len(texts)} texts")
    return lengths


def _plan(options: LabelOptions, pool: _Pool) -> dict[str, Any]:
    """What decides the content of the shards; a resumed run must match it.

    ``label_names`` and ``order_sha256`` (known once the teacher is loaded) are added by the
    caller.
    """
    return {
        "source": options.data,
        "rows": len(pool.texts),
        "texts_sha256": digest_strings(pool.texts),
        "ids_sha256": digest_strings(pool.ids),
        "teacher": str(options.teacher.resolve()),
        "teacher_fingerprint": folder_fingerprint(options.teacher),
        "backend": options.backend,
        "max_length": options.max_length,
        "shard_size": options.shard_size,
    }


def _folder(out: Path) -> ShardFolder:
    return ShardFolder(
        Path(out),
        FORMAT,
        kind="silver set",
        work="labelling",
        command="slimbert label",
        total_key="rows",
        plan_words=_PLAN_WORDS,
    )


# -- labelling shards: the engines, then one writer -------------------------------------------
_Shards = Iterator[tuple[int, np.ndarray, np.ndarray]]


def _local_shards(
    scorer: Scorer,
    pool: _Pool,
    pending: list[tuple[int, np.ndarray]],
    k: int,
    options: LabelOptions,
    on_batch: Callable[[int], None],
) -> _Shards:
    """Label the pending shards here, one after the other: ``(index, rows, logits)``."""
    for index, rows in pending:
        texts = [pool.texts[i] for i in rows]
        logits = np.empty((len(texts), k), dtype=np.float32)
        for start in range(0, len(texts), options.batch_size):
            batch = texts[start : start + options.batch_size]
            logits[start : start + len(batch)] = _checked_logits(
                scorer.logits(batch), len(batch), k
            )
            on_batch(len(batch))
        yield index, rows, logits


def _ray_shards(
    options: LabelOptions,
    factory: Callable[[], Scorer],
    pool: _Pool,
    pending: list[tuple[int, np.ndarray]],
    k: int,
    on_batch: Callable[[int], None],
) -> _Shards:
    """Label the pending shards on a Ray actor pool, cut into the very batches the local
    engine uses; a shard is yielded as soon as all its batches are back."""
    from slimbert.train.ray_engine import RaySettings, score_shards

    size = options.batch_size
    shards = [
        [{"texts": [pool.texts[i] for i in rows[s : s + size]]} for s in range(0, len(rows), size)]
        for _, rows in pending
    ]
    logits = [np.empty((len(rows), k), dtype=np.float32) for _, rows in pending]

    def put(position: int, number: int, scores: np.ndarray) -> None:
        n = len(shards[position][number]["texts"])
        start = number * size
        logits[position][start : start + n] = _checked_logits(scores, n, k)
        on_batch(n)

    settings = RaySettings(address=options.address, actors=options.actors)
    for position in score_shards(shards, partial(_batch_logits, factory), settings, put):
        index, rows = pending[position]
        yield index, rows, logits[position]
        logits[position] = np.empty((0, k), dtype=np.float32)  # written: free it


def load_teacher_scorer(teacher: str, backend: str, max_length: int | None) -> Scorer:
    """The teacher at ``teacher`` as a scorer: what each Ray actor calls to load it there
    (picklable by name; torch only where it is needed)."""
    from slimbert.models.load import load_scorer

    scorer: Scorer = load_scorer(Path(teacher), backend, max_length=max_length)
    return scorer


def _batch_logits(factory: Callable[[], Scorer]) -> Callable[[Any], np.ndarray]:
    scorer = factory()
    return lambda batch: scorer.logits(list(batch["texts"]))


def _recorded_agreement(folder: ShardFolder, plan: dict[str, Any]) -> dict[str, Any] | None:
    """The agreement an earlier run of the same plan measured (a resume does not redo it)."""
    try:
        manifest = folder.read_manifest()
    except SlimbertError:
        return None
    if manifest is None or folder.plan_differences(manifest["plan"], plan):
        return None
    recorded = manifest.get("agreement")
    return recorded if isinstance(recorded, dict) else None


def _write_shard(
    pool: _Pool,
    rows: np.ndarray,
    logits: np.ndarray,
    label_names: tuple[str, ...],
    path: Path,
) -> dict[str, int]:
    """Write one labelled shard (the same bytes whichever engine scored it); its counts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    k = len(label_names)
    texts = [pool.texts[i] for i in rows]
    probs = softmax(logits)
    label_ids = logits.argmax(axis=1).astype(np.int32)
    offsets = pa.array(np.arange(0, (len(texts) + 1) * k, k, dtype=np.int32))
    table = pa.table(
        {
            "row": pa.array(rows.astype(np.int64)),
            "id": pa.array([pool.ids[i] for i in rows], pa.string()),
            "text": pa.array(texts, pa.string()),
            "label": pa.array([label_names[i] for i in label_ids], pa.string()),
            "label_id": pa.array(label_ids),
            "probs": pa.ListArray.from_arrays(offsets, pa.array(probs.ravel())),
            "logits": pa.ListArray.from_arrays(offsets, pa.array(logits.ravel())),
        }
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    counts = np.bincount(label_ids, minlength=k)
    return {name: int(c) for name, c in zip(label_names, counts, strict=True)}


def _checked_logits(logits: Any, n: int, k: int) -> np.ndarray:
    array = np.asarray(logits, dtype=np.float32)
    if array.shape != (n, k):
        raise ModelError(f"the teacher returned logits of shape {array.shape}, expected {(n, k)}")
    if not np.isfinite(array).all():
        # NaN/inf would silently poison distillation; better to stop at the first bad batch.
        raise ModelError("the teacher returned non-finite logits", hint="check the teacher model")
    return array


def _sum_counts(entries: Any, label_names: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(label_names, 0)
    for entry in entries:
        for name, count in entry["label_counts"].items():
            counts[name] = counts.get(name, 0) + int(count)
    return counts
