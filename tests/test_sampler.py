"""Property tests of the balanced, length-bucketed batch sampler over many random datasets."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections import Counter
from typing import Any

import numpy as np
import pytest

from slimbert.errors import ConfigError
from slimbert.train.sampler import BalancedBucketSampler, padding_waste

SEEDS = range(6)


def make_data(seed: int, n: int = 500, n_classes: int = 3) -> tuple[list[int], list[int]]:
    rng = np.random.default_rng(1000 + seed)
    lengths = rng.integers(4, 257, size=n).tolist()
    # Deliberately imbalanced, so under-sampling has something to do.
    weights = np.arange(1, n_classes + 1, dtype=float)
    labels = rng.choice(n_classes, size=n, p=weights / weights.sum()).tolist()
    return lengths, labels


def epoch_batches(sampler: BalancedBucketSampler, epoch: int = 0) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def spread(batches: list[list[int]], lengths: list[int]) -> float:
    lens = np.asarray(lengths)
    return float(np.mean([lens[b].max() - lens[b].min() for b in batches]))


# --- balance -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("batch_size", [12, 32, 7, 3])
@pytest.mark.parametrize("bucket", [True, False])
def test_balanced_batches(seed: int, batch_size: int, bucket: bool) -> None:
    lengths, labels = make_data(seed)
    sampler = BalancedBucketSampler(lengths, labels, batch_size, bucket=bucket, seed=seed)
    batches = epoch_batches(sampler, epoch=seed)
    smallest = min(Counter(labels).values())

    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat)) == 3 * smallest == sampler.epoch_size
    assert len(batches) == len(sampler)
    assert Counter(labels[i] for i in flat) == {0: smallest, 1: smallest, 2: smallest}
    # Every batch is full except at most one partial batch.
    assert sum(len(b) != batch_size for b in batches) == (1 if len(flat) % batch_size else 0)
    for batch in batches:
        counts = Counter(labels[i] for i in batch)
        per_class = [counts.get(c, 0) for c in range(3)]
        assert max(per_class) - min(per_class) <= 1
        if batch_size % 3 == 0:
            assert len(set(per_class)) == 1


@pytest.mark.parametrize("seed", SEEDS)
def test_balance_drop_last(seed: int) -> None:
    lengths, labels = make_data(seed)
    sampler = BalancedBucketSampler(lengths, labels, 10, seed=seed, drop_last=True)
    batches = epoch_batches(sampler)
    smallest = min(Counter(labels).values())
    assert all(len(b) == 10 for b in batches)
    assert len(batches) == len(sampler) == (3 * smallest) // 10
    assert sampler.epoch_size == 10 * len(batches)


def test_undersample_fresh_each_epoch_and_reproducible() -> None:
    lengths, labels = make_data(0)
    sampler = BalancedBucketSampler(lengths, labels, 16, seed=7)
    drawn = [frozenset(i for b in epoch_batches(sampler, e) for i in b) for e in range(4)]
    assert len(set(drawn)) == 4
    # Over several epochs more of the largest class is seen than in one.
    biggest = max(set(labels), key=labels.count)
    seen = {i for d in drawn for i in d if labels[i] == biggest}
    assert len(seen) > len([i for i in drawn[0] if labels[i] == biggest])

    again = BalancedBucketSampler(lengths, labels, 16, seed=7)
    assert epoch_batches(again, 2) == epoch_batches(sampler, 2)
    other_seed = BalancedBucketSampler(lengths, labels, 16, seed=8)
    assert epoch_batches(other_seed, 2) != epoch_batches(sampler, 2)


def test_missing_class_ids_are_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    lengths = [5, 6, 7, 8, 9, 10]
    labels = [0, 0, 2, 2, 2, 0]
    with caplog.at_level(logging.WARNING, logger="slimbert.train.sampler"):
        sampler = BalancedBucketSampler(lengths, labels, 2, seed=0)
    assert "[1]" in caplog.text
    assert sampler.n_classes == 2
    batches = list(sampler)
    assert all(sorted(labels[i] for i in b) == [0, 2] for b in batches)


# --- bucketing -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("balance", [True, False])
def test_bucketing_groups_similar_lengths(seed: int, balance: bool) -> None:
    lengths, labels = make_data(seed, n=2000)
    kwargs: dict[str, Any] = {"balance": balance, "seed": seed}
    bucketed = epoch_batches(BalancedBucketSampler(lengths, labels, 30, **kwargs))
    mixed = epoch_batches(BalancedBucketSampler(lengths, labels, 30, bucket=False, **kwargs))
    assert spread(bucketed, lengths) < 0.25 * spread(mixed, lengths)
    assert padding_waste(bucketed, lengths) < 0.25 * padding_waste(mixed, lengths)


def test_jitter_varies_unbalanced_buckets_across_epochs() -> None:
    lengths = list(range(100, 400))  # all distinct: without jitter no tie can vary
    plain = BalancedBucketSampler(lengths, None, 10, balance=False, shuffle=False)
    assert epoch_batches(plain, 0) == epoch_batches(plain, 1)
    jittered = BalancedBucketSampler(lengths, None, 10, balance=False, shuffle=False, jitter=0.1)
    first, second = epoch_batches(jittered, 0), epoch_batches(jittered, 1)
    assert first != second
    assert spread(first, lengths) < 0.2 * spread(
        epoch_batches(BalancedBucketSampler(lengths, None, 10, balance=False, bucket=False)),
        lengths,
    )


def test_no_shuffle_bucketed_is_shortest_first() -> None:
    lengths, labels = make_data(3)
    for balance in (True, False):
        sampler = BalancedBucketSampler(lengths, labels, 16, balance=balance, shuffle=False)
        maxima = [max(lengths[i] for i in b) for b in sampler]
        assert maxima == sorted(maxima)


def test_padding_waste() -> None:
    lengths = [2, 4, 4, 4]
    assert padding_waste([[0, 1], [2, 3]], lengths) == pytest.approx(2 / 16)
    assert padding_waste([[1, 2, 3]], lengths) == 0.0
    assert padding_waste([], lengths) == 0.0


# --- coverage without balancing ------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bucket", [True, False])
@pytest.mark.parametrize("n", [1, 64, 101])
def test_every_index_once_without_balance(seed: int, bucket: bool, n: int) -> None:
    lengths = np.random.default_rng(seed).integers(1, 128, size=n).tolist()
    sampler = BalancedBucketSampler(lengths, None, 16, balance=False, bucket=bucket, seed=seed)
    batches = epoch_batches(sampler, seed)
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert len(batches) == len(sampler) == -(-n // 16)
    assert sampler.epoch_size == n


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bucket", [True, False])
def test_drop_last_without_balance(seed: int, bucket: bool) -> None:
    lengths = np.random.default_rng(seed).integers(1, 128, size=101).tolist()
    kwargs: dict[str, Any] = {"balance": False, "bucket": bucket, "seed": seed}
    kept = epoch_batches(BalancedBucketSampler(lengths, None, 16, **kwargs))
    dropped = BalancedBucketSampler(lengths, None, 16, drop_last=True, **kwargs)
    full = epoch_batches(dropped)
    assert len(full) == len(dropped) == 6 and dropped.epoch_size == 96
    assert all(len(b) == 16 for b in full)
    flat = [i for b in full for i in b]
    assert len(set(flat)) == 96
    # drop_last only removes the partial batch; the full batches are the same.
    assert sorted(map(tuple, full)) == sorted(tuple(b) for b in kept if len(b) == 16)


def test_drop_last_does_not_always_drop_the_longest() -> None:
    lengths = list(range(1000, 1101))
    sampler = BalancedBucketSampler(lengths, None, 16, balance=False, drop_last=True)
    dropped_max = set()
    for epoch in range(20):
        kept = {i for b in epoch_batches(sampler, epoch) for i in b}
        dropped_max.add(max(set(range(101)) - kept))
    assert len(dropped_max) > 1


# --- shuffle, len, epochs ------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("balance", [True, False])
@pytest.mark.parametrize("bucket", [True, False])
def test_shuffle_changes_order_not_batches(seed: int, balance: bool, bucket: bool) -> None:
    lengths, labels = make_data(seed)
    kwargs: dict[str, Any] = {"balance": balance, "bucket": bucket, "seed": seed}
    ordered = epoch_batches(BalancedBucketSampler(lengths, labels, 8, shuffle=False, **kwargs), 3)
    shuffled = epoch_batches(BalancedBucketSampler(lengths, labels, 8, shuffle=True, **kwargs), 3)
    assert ordered != shuffled
    assert sorted(map(tuple, ordered)) == sorted(map(tuple, shuffled))


def test_set_epoch_determinism() -> None:
    lengths, labels = make_data(1)
    sampler = BalancedBucketSampler(lengths, labels, 8, seed=3)
    first = epoch_batches(sampler, 5)
    epoch_batches(sampler, 6)
    assert epoch_batches(sampler, 5) == first
    assert list(sampler) == first  # iterating again in the same epoch repeats it
    assert epoch_batches(sampler, 6) != first


def test_yields_plain_int_lists_and_describe() -> None:
    lengths, labels = make_data(2)
    sampler = BalancedBucketSampler(np.asarray(lengths), np.asarray(labels), 9)
    batch = next(iter(sampler))
    assert isinstance(batch, list) and all(type(i) is int for i in batch)
    info = sampler.describe()
    smallest = min(Counter(labels).values())
    assert info["epoch_size"] == 3 * smallest
    assert info["n_batches"] == len(sampler)
    assert info["class_counts"] == dict(Counter(labels))
    assert info["per_class_per_epoch"] == smallest


def test_does_not_import_torch() -> None:
    code = "import sys, slimbert.train.sampler; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lengths", "labels", "batch_size", "kwargs", "match"),
    [
        ([1, 2, 3], None, 2, {}, "needs the labels"),
        ([1, 2, 3], [0, 1], 2, {}, "3 lengths but 2 labels"),
        ([], [], 2, {}, "empty"),
        ([1, 2], [0, 1], 0, {}, "positive"),
        ([1, 2], [0, 1], -4, {}, "positive"),
        ([1, 2, 3], [0, 1, 2], 2, {}, "smaller than the 3 classes"),
        ([1, 2], [0, -100], 2, {}, "non-negative class ids"),
        ([1, -2], [0, 1], 2, {}, "non-negative token counts"),
        ([1, 2], ["a", "b"], 2, {}, "integers"),
        ([1, 2], [0, 1], 2, {"seed": -1}, "seed"),
        ([1, 2], [0, 1], 2, {"jitter": 1.5}, "jitter"),
        ([1, 2], [0, 1], 2.0, {}, "integer"),
    ],
)
def test_bad_arguments(
    lengths: list[int],
    labels: list[int] | None,
    batch_size: int,
    kwargs: dict[str, object],
    match: str,
) -> None:
    with pytest.raises(ConfigError, match=match):
        BalancedBucketSampler(lengths, labels, batch_size, **kwargs)  # type: ignore[arg-type]


def test_missing_labels_error_has_a_hint() -> None:
    with pytest.raises(ConfigError) as info:
        BalancedBucketSampler([1, 2], None, 2)
    assert info.value.hint and "balance=False" in info.value.hint


def test_bad_epoch() -> None:
    sampler = BalancedBucketSampler([1, 2], None, 2, balance=False)
    with pytest.raises(ConfigError):
        sampler.set_epoch(-1)
