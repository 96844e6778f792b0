"""The training batch sampler: class-balanced, length-bucketed, shuffled batches of indices.

This is the sampler of Benešová et al., "Cost-effective Deployment of BERT Models in a
Serverless Environment" (NAACL 2021, industry track), §4.1.1:

1. Balance: each epoch, every class is under-sampled to the size of the smallest class, with
   a fresh draw per epoch so that over several epochs more of the large classes is seen.
2. Bucket: examples of similar token length share a batch, so little compute goes to padding.
3. Shuffle: the order of the batches (not their membership) is shuffled.

Each part can be switched off. The sampler yields lists of dataset indices and imports only
numpy, so it works as ``torch.utils.data.DataLoader(dataset, batch_sampler=sampler)`` without
this module depending on torch.

How the batches are cut (the remainder rules):

* The epoch is laid out as one stream of indices. With balancing, the stream takes the classes
  round-robin in a per-epoch random class order (rank 0 of every class, then rank 1, ...), where
  each class's chosen indices are ordered by length when bucketing and randomly otherwise.
* The stream is cut into consecutive batches of exactly ``batch_size``, except one partial
  batch of ``epoch examples % batch_size`` when that is non-zero. The partial batch sits at a
  random position of the stream (drawn per epoch), so with ``drop_last`` the examples dropped
  are a random length band rather than always the longest ones.
* Any contiguous piece of a round-robin stream holds every class floor(n / n_classes) or
  ceil(n / n_classes) times. So when ``batch_size`` is not a multiple of the number of classes,
  batches keep their full size and per-class counts differ by at most one, the classes that get
  the extra example rotating from batch to batch; over the epoch every class contributes exactly
  the smallest class count. When ``batch_size`` is a multiple, every batch (the partial one too)
  holds exactly the same number of each class.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

from slimbert.errors import ConfigError

logger = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]


class BalancedBucketSampler:
    """Yield batches of dataset indices, balanced by class and grouped by token length.

    Args:
        lengths: token length of every example (after truncation).
        labels: class id (a non-negative integer) of every example; needed when ``balance``.
        batch_size: examples per batch (the partial batch may be smaller, see the module doc).
        balance: under-sample every class to the smallest class count each epoch.
        bucket: put examples of similar length in the same batch.
        shuffle: shuffle the order of the batches; off gives shortest-first when bucketing.
        seed: with the epoch (see :meth:`set_epoch`), fixes every random choice.
        drop_last: drop the partial batch.
        jitter: relative noise on the lengths before sorting (``0.1`` = up to ±10%), so that
            bucketed batches mix differently from epoch to epoch; 0 sorts strictly by length.

    Call :meth:`set_epoch` at the start of each epoch: the under-sample and the batches are a
    function of ``(seed, epoch)`` only, so iterating twice in one epoch repeats the batches.
    """

    def __init__(
        self,
        lengths: Sequence[int] | npt.NDArray[np.integer],
        labels: Sequence[int] | npt.NDArray[np.integer] | None,
        batch_size: int,
        *,
        balance: bool = True,
        bucket: bool = True,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        jitter: float = 0.0,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
            raise ConfigError(f"batch_size must be an integer, got {batch_size!r}")
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        if not 0.0 <= jitter < 1.0:
            raise ConfigError(f"jitter must be in [0, 1), got {jitter!r}", hint="try 0.1")

        self.lengths = _as_int_array(lengths, "lengths")
        if self.lengths.size == 0:
            raise ConfigError("cannot sample batches from an empty dataset")
        if (self.lengths < 0).any():
            raise ConfigError("lengths must be non-negative token counts")

        label_ids: IntArray | None = None
        if labels is not None:
            label_ids = _as_int_array(labels, "labels")
            if label_ids.size != self.lengths.size:
                raise ConfigError(
                    f"got {self.lengths.size} lengths but {label_ids.size} labels",
                    hint="pass one length and one label per example",
                )
            if (label_ids < 0).any():
                raise ConfigError(
                    "labels must be non-negative class ids",
                    hint="drop unlabelled rows (e.g. label -100) before sampling",
                )
        self.labels = label_ids
        if balance and label_ids is None:
            raise ConfigError(
                "balance=True needs the labels of the examples",
                hint="pass labels, or balance=False to sample without class balancing",
            )

        self.batch_size = int(batch_size)
        self.balance = balance
        self.bucket = bucket
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.jitter = float(jitter)
        self.epoch = 0
        self._iterated_epoch: int | None = None
        self._warned_repeat = False

        # Per-class index lists are fixed for the sampler's life; only the draws vary by epoch.
        self.classes: tuple[int, ...] = ()
        self._class_indices: list[IntArray] = []
        self.per_class = 0
        if balance and label_ids is not None:
            present, counts = np.unique(label_ids, return_counts=True)
            missing = sorted(set(range(int(present.max()) + 1)) - set(present.tolist()))
            if missing:
                logger.warning(
                    "class ids %s have no examples and are ignored; balancing over the %d "
                    "classes present",
                    missing,
                    present.size,
                )
            self.classes = tuple(int(c) for c in present)
            self._class_indices = [np.flatnonzero(label_ids == c) for c in present]
            self.per_class = int(counts.min())
            if self.batch_size < len(self.classes):
                raise ConfigError(
                    f"batch_size {self.batch_size} is smaller than the {len(self.classes)} "
                    "classes, so a batch cannot hold every class",
                    hint=f"use batch_size >= {len(self.classes)}, or balance=False",
                )
            if len(self.classes) == 1:
                logger.warning(
                    "only one class (%d) in the labels: balancing has no effect", self.classes[0]
                )

        if len(self) == 0:
            logger.warning(
                "drop_last with %d examples per epoch and batch_size %d yields no batches",
                self.epoch_size_before_drop,
                self.batch_size,
            )

    @property
    def n_classes(self) -> int:
        """Number of classes balanced over (0 when not balancing)."""
        return len(self.classes)

    @property
    def epoch_size_before_drop(self) -> int:
        """Examples one epoch draws: all of them, or n_classes × the smallest class count."""
        return self.n_classes * self.per_class if self.balance else int(self.lengths.size)

    @property
    def epoch_size(self) -> int:
        """Number of examples one epoch yields (after ``drop_last``)."""
        drawn = self.epoch_size_before_drop
        return drawn - drawn % self.batch_size if self.drop_last else drawn

    def __len__(self) -> int:
        drawn = self.epoch_size_before_drop
        if self.drop_last:
            return drawn // self.batch_size
        return math.ceil(drawn / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose under-sample and batch order :meth:`__iter__` yields."""
        if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
            raise ConfigError(f"epoch must be a non-negative integer, got {epoch!r}")
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        if self._iterated_epoch == self.epoch and not self._warned_repeat:
            # The usual mistake is a training loop that never calls set_epoch, which silently
            # trains on the same under-sample every epoch and defeats the fresh draws.
            logger.warning(
                "iterating epoch %d again: call set_epoch(epoch) each epoch for a fresh "
                "under-sample and batch order",
                self.epoch,
            )
            self._warned_repeat = True
        self._iterated_epoch = self.epoch
        for batch in self._plan(self.epoch):
            yield batch.tolist()

    def _plan(self, epoch: int) -> list[IntArray]:
        # One generator per (seed, epoch) so any epoch can be reproduced without replaying
        # earlier ones (resuming training, or several workers agreeing on the batches).
        rng = np.random.default_rng([self.seed, epoch])
        stream = (
            self._balanced_stream(rng)
            if self.balance
            else self._order(rng.permutation(self.lengths.size), rng)
        )
        batches = _cut(stream, self.batch_size, rng, self.drop_last)
        # The shuffle is the last draw, so the batches themselves do not depend on `shuffle`.
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _balanced_stream(self, rng: np.random.Generator) -> IntArray:
        columns = []
        for indices in self._class_indices:
            chosen = rng.permutation(indices)[: self.per_class]
            columns.append(self._order(chosen, rng))
        # A random class order per epoch rotates which classes get the extra example when
        # batch_size is not a multiple of n_classes, instead of always favouring class 0.
        order = rng.permutation(len(columns))
        grid = np.stack([columns[i] for i in order], axis=1)
        return grid.reshape(-1)

    def _order(self, shuffled: IntArray, rng: np.random.Generator) -> IntArray:
        """Sort already-shuffled indices by length when bucketing; ties keep the random order."""
        if not self.bucket:
            return shuffled
        keys = self.lengths[shuffled].astype(np.float64)
        if self.jitter > 0:
            keys *= 1.0 + rng.uniform(-self.jitter, self.jitter, size=keys.size)
        return shuffled[np.argsort(keys, kind="stable")]

    def describe(self) -> dict[str, object]:
        """Settings and per-epoch counts, for the training log."""
        info: dict[str, object] = {
            "batch_size": self.batch_size,
            "balance": self.balance,
            "bucket": self.bucket,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "seed": self.seed,
            "jitter": self.jitter,
            "epoch": self.epoch,
            "n_examples": int(self.lengths.size),
            "epoch_size": self.epoch_size,
            "n_batches": len(self),
            "unused_per_epoch": int(self.lengths.size) - self.epoch_size,
        }
        if self.balance:
            info["class_counts"] = {
                c: int(idx.size) for c, idx in zip(self.classes, self._class_indices, strict=True)
            }
            info["per_class_per_epoch"] = self.per_class
            info["per_class_per_batch"] = self.batch_size / self.n_classes
        return info


def padding_waste(batches: Iterable[Sequence[int]], lengths: Sequence[int]) -> float:
    """Fraction of token slots that are padding when each batch is padded to its longest member.

    ``sum(max_len * len(batch) - sum(lengths)) / sum(max_len * len(batch))`` over the batches;
    0.0 when there are no token slots at all.
    """
    lens = np.asarray(lengths, dtype=np.int64)
    slots = 0
    used = 0
    for batch in batches:
        if len(batch) == 0:
            continue
        members = lens[np.asarray(batch, dtype=np.int64)]
        slots += int(members.max()) * int(members.size)
        used += int(members.sum())
    return (slots - used) / slots if slots else 0.0


def _cut(
    stream: IntArray, batch_size: int, rng: np.random.Generator, drop_last: bool
) -> list[IntArray]:
    n_full, rest = divmod(int(stream.size), batch_size)
    sizes = [batch_size] * n_full
    if rest:
        # Drawn even when it is dropped, so drop_last does not change the other batches.
        sizes.insert(int(rng.integers(0, n_full + 1)), rest)
    batches = []
    start = 0
    for size in sizes:
        if size == batch_size or not drop_last:
            batches.append(stream[start : start + size])
        start += size
    return batches


def _as_int_array(values: object, name: str) -> IntArray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ConfigError(f"{name} must be a flat sequence, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ConfigError(
            f"{name} must be integers, got {array.dtype}",
            hint="map string labels to class ids first" if name == "labels" else None,
        )
    return array.astype(np.int64, copy=False)
