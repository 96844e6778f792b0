"""AugSBERT (paper §4.2.2): a cross-encoder labels BM25-mined pairs, the silver pairs.

Augmented SBERT (Thakur et al., NAACL 2021), as the seed paper uses it for its small
similarity students:

* Step 1 (``slimbert cross-encoder``, :mod:`slimbert.train.cross_encoder`): fine-tune a
  cross-encoder (sentence-transformers ``CrossEncoder`` with one sigmoid output, from MiniLM) on
  STSb train + the target gold train, keeping the checkpoint with the best validation Spearman.
  Any one-score cross-encoder folder can be used instead.
* Step 2 (``slimbert augment``, this module): mine candidate pairs from an unlabelled pool
  with BM25 (top-k neighbours per sentence; self-matches, duplicates and every validation/test
  sentence removed), let the cross-encoder score them into resumable Parquet shards,
  under-sample the score bins and write ``silver.parquet`` (``sentence1``, ``sentence2``,
  ``score``) for ``sbert-train`` (silver first, then gold).

The ``augment`` folder holds ``candidates.parquet`` (the mined pairs and their BM25 score),
``part-NNNNN.parquet`` shards (``pair``, ``sentence1``, ``sentence2``, ``bm25``, ``score``)
named in ``manifest.json`` only once complete, ``silver.parquet`` and ``augment_report.json``.
A rerun with the same plan verifies finished shards by sha256 and scores only the rest.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from slimbert.config import Options, check
from slimbert.data.pairs import PairSet, is_pair_spec, load_pairs
from slimbert.data.shards import ShardFolder, digest_strings, folder_fingerprint, shard_name
from slimbert.errors import DataError, ModelError, SlimbertError
from slimbert.io import atomic_path, write_json
from slimbert.train.cross_encoder import (
    CROSS_ENCODER_REPORT,
    CrossEncoderOptions,
    PairScorer,
    cross_encoder_spearman,
    load_cross_encoder,
    pair_scorer,
    train_cross_encoder,
)

# Step 1 lives in slimbert.train.cross_encoder; its names stay importable from here, where the
# CLI, the pipeline and docs/augment.md import both steps.
__all__ = [
    "CANDIDATES",
    "CROSS_ENCODER_REPORT",
    "FORMAT",
    "REPORT",
    "SILVER",
    "AugmentOptions",
    "CrossEncoderOptions",
    "PairScorer",
    "augment",
    "balance",
    "cross_encoder_spearman",
    "load_cross_encoder",
    "mine_candidates",
    "prepare_pool",
    "read_scores",
    "read_sentences",
    "train_cross_encoder",
]

log = logging.getLogger(__name__)

FORMAT = "slimbert-augment/1"
CANDIDATES = "candidates.parquet"
SILVER = "silver.parquet"
REPORT = "augment_report.json"


@dataclasses.dataclass(frozen=True)
class AugmentOptions(Options):
    """Options of ``slimbert augment``: mine, score with a cross-encoder, balance."""

    stage: ClassVar[str] = "augment"

    cross_encoder: Path
    out: Path = Path("runs/augment")
    pool: str = "mrpc-target:train"
    text_column: str = "text"
    encoding: str = "utf-8"
    exclude: tuple[str, ...] = (
        "mrpc-target:validation",
        "mrpc-target:test",
        "stsb:validation",
        "stsb:test",
    )
    top_k: int = 5
    bins: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    bin_factor: float = 2.0
    min_per_bin: int = 500
    silver_size: int | None = None
    seed: int = 13
    batch_size: int = 64
    shard_size: int = 4096
    max_length: int = 128
    limit: int | None = None
    # local: this process; ray: a Ray Data actor pool (slimbert.train.ray_engine). Same folder.
    engine: Literal["local", "ray"] = "local"
    address: str | None = None  # ray: join this cluster ("auto", "ray://head:10001")
    actors: int | None = None  # ray: actor count (None: the cluster's CPUs)

    def validate(self) -> None:
        check(bool(self.pool.strip()), "augment.pool is empty", hint="e.g. mrpc-target:train")
        check(
            self.engine == "ray" or (self.address is None and self.actors is None),
            "augment.address and augment.actors are options of the Ray engine",
            hint="add --engine ray",
        )
        check(self.actors is None or self.actors > 0, "augment.actors must be positive")
        check(self.top_k >= 1, f"augment.top_k must be at least 1, got {self.top_k}")
        edges = self.bins
        check(
            len(edges) >= 2
            and all(a < b for a, b in itertools.pairwise(edges))
            and edges[0] <= 0.0
            and edges[-1] >= 1.0,
            f"augment.bins {list(edges)} must rise strictly from <= 0 to >= 1",
            hint="e.g. 0,0.2,0.4,0.6,0.8,1",
        )
        check(self.bin_factor > 0, f"augment.bin_factor must be positive, got {self.bin_factor}")
        check(self.min_per_bin >= 0, f"augment.min_per_bin must be >= 0, got {self.min_per_bin}")
        check(
            self.silver_size is None or self.silver_size >= 1,
            f"augment.silver_size must be at least 1, got {self.silver_size}",
            hint="leave it out to cap bins by bin_factor",
        )
        check(self.batch_size >= 1, f"augment.batch_size must be >= 1, got {self.batch_size}")
        check(
            self.shard_size >= self.batch_size,
            f"augment.shard_size ({self.shard_size}) is smaller than batch_size "
            f"({self.batch_size})",
            hint="raise shard_size or lower batch_size",
        )
        check(self.max_length >= 8, f"augment.max_length must be >= 8, got {self.max_length}")
        check(
            self.limit is None or self.limit >= 2,
            f"augment.limit must be at least 2 sentences, got {self.limit}",
        )
        check(self.out != self.cross_encoder, "augment.out is the cross-encoder folder")


# -- Step 2a: the pool and BM25 mining -----------------------------------------------------------
def read_sentences(spec: str, *, text_column: str = "text", encoding: str = "utf-8") -> list[str]:
    """The sentences a spec names: a pair spec or pair file (both sides), a text column, .txt."""
    from slimbert.data.load import load_texts

    path = Path(spec)
    if is_pair_spec(spec):
        return _interleave(load_pairs(spec))
    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise DataError("file not found", path=spec)
        return [line.strip() for line in path.read_text(encoding=encoding).splitlines()]
    try:
        texts = load_texts(spec, text_column=text_column, label_column=None, encoding=encoding)
        return list(texts.texts)
    except DataError as exc:
        try:  # a pair file: both sentence columns
            sides = [
                load_texts(spec, text_column=c, label_column=None, encoding=encoding).texts
                for c in ("sentence1", "sentence2")
            ]
        except SlimbertError:
            raise exc from None
        return [s for pair in zip(*sides, strict=True) for s in pair]


def _interleave(pairs: PairSet) -> list[str]:
    return [s for pair in zip(pairs.first, pairs.second, strict=True) for s in pair]


def _key(text: str) -> str:
    # Duplicates and excluded sentences are matched ignoring case and runs of whitespace.
    return " ".join(text.split()).casefold()


def prepare_pool(
    texts: Iterable[str], exclude: Iterable[str] = ()
) -> tuple[list[str], dict[str, int]]:
    """Distinct pool sentences in first-seen order, none of them in ``exclude``."""
    banned = {_key(s) for s in exclude}
    seen: set[str] = set()
    kept: list[str] = []
    stats = {"read": 0, "empty": 0, "duplicates": 0, "excluded": 0}
    for text in texts:
        stats["read"] += 1
        key = _key(text)
        if not key:
            stats["empty"] += 1
        elif key in banned:
            stats["excluded"] += 1
        elif key in seen:
            stats["duplicates"] += 1
        else:
            seen.add(key)
            kept.append(text.strip())
    return kept, stats


def mine_candidates(texts: Sequence[str], top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """BM25 top-``top_k`` neighbours of every sentence as unordered pairs.

    Returns ``pairs`` ``(n, 2)`` int64 with ``i < j``, sorted, each pair once, and the pair's
    BM25 score (the larger of its two directions). Self-matches and zero-score neighbours
    (no shared non-stopword) are dropped. The sentences must already be distinct.
    """
    import bm25s

    n = len(texts)
    if n < 2:
        raise DataError(
            f"the pool has {n} usable sentence(s) after exclusions; mining needs at least 2",
            hint="check --pool and --exclude",
        )
    tokens = bm25s.tokenize(list(texts), stopwords="en", show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(tokens, show_progress=False)
    k = min(top_k + 1, n)  # +1: a sentence usually finds itself first
    docs, scores = retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
    best: dict[tuple[int, int], float] = {}
    for i in range(n):
        taken = 0
        for j, score in zip(docs[i].tolist(), scores[i].tolist(), strict=True):
            if j == i or score <= 0 or taken >= top_k:
                continue
            taken += 1
            pair = (i, j) if i < j else (j, i)
            if score > best.get(pair, -1.0):
                best[pair] = float(score)
    order = sorted(best)
    pairs = np.asarray(order, dtype=np.int64).reshape(-1, 2)
    return pairs, np.asarray([best[p] for p in order], dtype=np.float32)


# -- Step 2b: scoring into resumable shards ------------------------------------------------------
def augment(
    options: AugmentOptions,
    *,
    scorer: PairScorer | None = None,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
    scorer_factory: Callable[[], PairScorer] | None = None,
) -> dict[str, Any]:
    """Mine, score (resumably) and balance; returns the report also written to the folder.

    With ``engine="ray"`` each Ray actor builds its scorer with ``scorer_factory``
    (picklable; default: load ``options.cross_encoder``) and scores the batches the local
    engine would; the shards are the same.

    A folder of another plan is refused, or with ``overwrite`` replaced once the new one is
    complete (built beside it, see :meth:`ShardFolder.for_plan`).
    """
    started = time.perf_counter()
    out = options.out
    folder = _folder(out)
    folder.refuse_foreign()
    pool_texts = read_sentences(
        options.pool, text_column=options.text_column, encoding=options.encoding
    )
    excluded: list[str] = []
    for spec in options.exclude:
        excluded.extend(read_sentences(spec, encoding=options.encoding))
    pool, pool_stats = prepare_pool(pool_texts, excluded)
    if options.limit is not None:
        pool = pool[: options.limit]
    pairs, bm25 = mine_candidates(pool, options.top_k)
    if not len(pairs):
        raise DataError(
            "BM25 found no candidate pairs (no two pool sentences share a word)",
            path=options.pool,
            hint="use a larger pool of in-domain sentences",
        )
    first = [pool[i] for i in pairs[:, 0]]
    second = [pool[j] for j in pairs[:, 1]]
    mined_at = time.perf_counter()
    log.info("mined %d candidate pairs from %d sentences", len(first), len(pool))

    plan = {
        "pool": options.pool,
        "pool_sha256": digest_strings(pool),
        "exclude": list(options.exclude),
        "top_k": options.top_k,
        "candidates": len(first),
        "candidates_sha256": digest_strings(
            [f"{a}\0{b}" for a, b in zip(first, second, strict=True)]
        ),
        "cross_encoder": str(options.cross_encoder.resolve()),
        "cross_encoder_fingerprint": folder_fingerprint(options.cross_encoder),
        "max_length": options.max_length,
        "shard_size": options.shard_size,
    }
    n, n_shards = len(first), math.ceil(len(first) / options.shard_size)
    with folder.writing(plan, overwrite=overwrite) as work:
        where = work.out  # options.out, or the sibling swapped in at the end
        manifest = work.start(plan, n_shards)
        _write_table(where / CANDIDATES, {"sentence1": first, "sentence2": second, "bm25": bm25})
        done: dict[str, Any] = manifest["done"]
        resumed = len(done)
        finished = sum(int(e["rows"]) for e in done.values())
        if progress is not None:
            progress(finished, n)
        scored_now = 0

        def on_batch(rows: int) -> None:
            nonlocal finished
            finished += rows
            if progress is not None:
                progress(finished, n)

        pending = [
            (index, index * options.shard_size, min(n, (index + 1) * options.shard_size))
            for index in range(n_shards)
            if shard_name(index) not in done
        ]
        if options.engine == "ray" and pending:
            factory = scorer_factory or partial(
                _load_pair_scorer, str(options.cross_encoder), options.max_length
            )
            shards = _ray_shards(options, factory, first, second, pending, on_batch)
        else:
            if scorer is None and pending:
                scorer = pair_scorer(load_cross_encoder(options.cross_encoder, options.max_length))
            shards = _local_shards(options, scorer, first, second, pending, on_batch)
        for index, lo, hi, scores in shards:
            name = shard_name(index)
            _write_table(
                where / name,
                {
                    "pair": np.arange(lo, hi, dtype=np.int64),
                    "sentence1": first[lo:hi],
                    "sentence2": second[lo:hi],
                    "bm25": bm25[lo:hi],
                    "score": scores,
                },
            )
            work.record(manifest, index, hi - lo)
            scored_now += hi - lo
        work.finish(manifest)
        scored_at = time.perf_counter()

        all_scores = read_scores(where)
        keep, bins = balance(
            all_scores,
            options.bins,
            bin_factor=options.bin_factor,
            min_per_bin=options.min_per_bin,
            silver_size=options.silver_size,
            seed=options.seed,
        )
        _write_table(
            where / SILVER,
            {
                "sentence1": [first[i] for i in keep],
                "sentence2": [second[i] for i in keep],
                "score": all_scores[keep],
            },
        )
        quantiles = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
        values = np.quantile(all_scores, quantiles)
        report = {
            "stage": options.stage,
            "options": options.to_dict(),
            "pool": {**pool_stats, "sentences": len(pool)},
            "candidates": n,
            "silver": len(keep),
            "score_mean": float(all_scores.mean()),
            "score_median": float(np.median(all_scores)),
            "score_quantiles": {f"{q:g}": float(v) for q, v in zip(quantiles, values, strict=True)},
            "bins": bins,
            "shards": n_shards,
            "resumed_shards": resumed,
            "scored_now": scored_now,
            "pairs_per_second": scored_now / (scored_at - mined_at) if scored_now else 0.0,
            "seconds": {
                "mine": mined_at - started,
                "score": scored_at - mined_at,
                "balance": time.perf_counter() - scored_at,
                "total": time.perf_counter() - started,
            },
            "silver_file": str(out / SILVER),
        }
        write_json(where / REPORT, report)
        work.publish(folder)
    log.info("silver pairs: %d of %d candidates → %s", len(keep), n, out / SILVER)
    return report


# Each shard: its longest pairs first (little padding per batch), scores put back in order.
def _pair_batches(
    first: Sequence[str], second: Sequence[str], lo: int, hi: int, batch_size: int
) -> list[list[int]]:
    order = sorted(range(lo, hi), key=lambda i: -(len(first[i]) + len(second[i])))
    return [order[b : b + batch_size] for b in range(0, len(order), batch_size)]


_Shards = Iterator[tuple[int, int, int, np.ndarray]]


def _local_shards(
    options: AugmentOptions,
    scorer: PairScorer | None,
    first: Sequence[str],
    second: Sequence[str],
    pending: list[tuple[int, int, int]],
    on_batch: Callable[[int], None],
) -> _Shards:
    """Score the pending shards here: ``(index, lo, hi, scores)`` each."""
    for index, lo, hi in pending:
        assert scorer is not None
        scores = np.empty(hi - lo, dtype=np.float32)
        for chunk in _pair_batches(first, second, lo, hi, options.batch_size):
            got = _checked(scorer([(first[i], second[i]) for i in chunk]), len(chunk))
            scores[np.asarray(chunk) - lo] = got
            on_batch(len(chunk))
        yield index, lo, hi, scores


def _ray_shards(
    options: AugmentOptions,
    factory: Callable[[], PairScorer],
    first: Sequence[str],
    second: Sequence[str],
    pending: list[tuple[int, int, int]],
    on_batch: Callable[[int], None],
) -> _Shards:
    """Score the pending shards' batches (the local engine's) on a Ray actor pool; a shard
    is yielded as soon as all its batches are back."""
    from slimbert.train.ray_engine import RaySettings, score_shards

    chunks = [_pair_batches(first, second, lo, hi, options.batch_size) for _, lo, hi in pending]
    shards = [
        [{"first": [first[i] for i in c], "second": [second[i] for i in c]} for c in shard]
        for shard in chunks
    ]
    scores = [np.empty(hi - lo, dtype=np.float32) for _, lo, hi in pending]

    def put(position: int, number: int, got: np.ndarray) -> None:
        chunk = chunks[position][number]
        scores[position][np.asarray(chunk) - pending[position][1]] = _checked(got, len(chunk))
        on_batch(len(chunk))

    settings = RaySettings(address=options.address, actors=options.actors)
    for position in score_shards(shards, partial(_batch_scores, factory), settings, put):
        index, lo, hi = pending[position]
        yield index, lo, hi, scores[position]


def _load_pair_scorer(cross_encoder: str, max_length: int) -> PairScorer:
    """Runs on each Ray actor: the cross-encoder, loaded there."""
    return pair_scorer(load_cross_encoder(Path(cross_encoder), max_length))


def _batch_scores(factory: Callable[[], PairScorer]) -> Callable[[Any], Any]:
    scorer = factory()
    return lambda batch: scorer(list(zip(batch["first"], batch["second"], strict=True)))


def _checked(scores: Any, n: int) -> np.ndarray:
    array = np.asarray(scores, dtype=np.float32).reshape(-1)
    if array.shape != (n,):
        raise ModelError(f"the cross-encoder returned {array.shape[0]} scores for {n} pairs")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ModelError(
            "the cross-encoder returned scores outside [0, 1]",
            hint="use a cross-encoder with a sigmoid output (as `slimbert cross-encoder` trains)",
        )
    return array


def _write_table(path: Path, columns: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            k: pa.array(v, pa.string()) if isinstance(v, list) else pa.array(np.asarray(v))
            for k, v in columns.items()
        }
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_scores(out: Path) -> np.ndarray:
    """The cross-encoder score of every candidate, in candidate order (checksums verified)."""
    import pyarrow.parquet as pq

    manifest, paths = _folder(Path(out)).finished()
    n = int(manifest["plan"]["candidates"])
    scores = np.full(n, np.nan, dtype=np.float32)
    for path in paths:
        table = pq.read_table(path, columns=["pair", "score"])
        scores[table.column("pair").to_numpy()] = table.column("score").to_numpy()
    if np.isnan(scores).any():
        raise SlimbertError(f"{out}: some candidates have no score", hint="delete the folder")
    return scores


def _folder(out: Path) -> ShardFolder:
    return ShardFolder(
        out,
        FORMAT,
        kind="augment folder",
        work="scoring",
        command="slimbert augment",
        total_key="candidates",
    )


# -- Step 2c: balancing --------------------------------------------------------------------------
def balance(
    scores: np.ndarray,
    edges: Sequence[float],
    *,
    bin_factor: float = 2.0,
    min_per_bin: int = 0,
    silver_size: int | None = None,
    seed: int = 13,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Under-sample score bins; returns the kept indices (sorted) and per-bin counts.

    Bins are ``[edges[i], edges[i+1])``, the last one closed. Without ``silver_size`` every
    bin keeps at most ``cap = max(ceil(bin_factor × smallest non-empty bin), min_per_bin)``
    pairs. With ``silver_size``, exactly ``silver_size`` pairs are kept (or all, if fewer):
    small bins whole, the larger ones cut to one common size (give or take one). Which pairs a
    cut bin keeps is a seeded random choice.
    """
    scores = np.asarray(scores, dtype=np.float64)
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    which = np.searchsorted(inner, scores, side="right")
    counts = np.bincount(which, minlength=len(edges) - 1)
    nonempty = counts[counts > 0]
    rng = np.random.default_rng(seed)
    if silver_size is None:
        smallest = int(nonempty.min()) if len(nonempty) else 0
        caps = np.full(len(counts), max(math.ceil(bin_factor * smallest), min_per_bin))
    else:
        caps = _water_level(counts, silver_size, rng)
    keep: list[np.ndarray] = []
    report = []
    for b, count in enumerate(counts.tolist()):
        members = np.flatnonzero(which == b)
        if count > caps[b]:
            members = rng.choice(members, size=int(caps[b]), replace=False)
        keep.append(members)
        report.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "before": count,
                "after": len(members),
            }
        )
    kept = np.sort(np.concatenate(keep)) if keep else np.empty(0, dtype=np.int64)
    return kept.astype(np.int64), report


def _water_level(counts: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Per-bin caps summing to ``min(size, total)``: one level ``c`` for all bins (the largest
    with ``sum(min(count, c)) <= size``), then ``c + 1`` for a seeded few of the cut bins."""
    low, high = 0, int(counts.max(initial=0))
    while low < high:
        mid = (low + high + 1) // 2
        if int(np.minimum(counts, mid).sum()) <= size:
            low = mid
        else:
            high = mid - 1
    caps = np.full(len(counts), low)
    left = size - int(np.minimum(counts, low).sum())
    cut = np.flatnonzero(counts > low)
    if left > 0 and len(cut):
        caps[rng.choice(cut, size=min(left, len(cut)), replace=False)] += 1
    return caps
