"""Helpers for tests/test_label.py: a fake teacher, a corpus writer, and a killable worker.

Run as a script, it labels a CSV with a deliberately slow fake teacher, so the test can
SIGKILL it half-way and check that the resumed run loses and repeats nothing.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

LABEL_NAMES = ("negative", "neutral", "positive")
_WORDS = ("good", "bad", "fine", "awful", "great", "meh", "ok", "lovely", "terrible", "plain")


class FakeScorer:
    """Deterministic logits from a hash of each text; token length = number of words."""

    label_names: tuple[str, ...] = LABEL_NAMES

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.batches: list[int] = []

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        if self.delay:
            time.sleep(self.delay)
        self.batches.append(len(texts))
        return np.stack([fake_logits(t) for t in texts]).astype(np.float32)


def fake_logits(text: str) -> np.ndarray:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return np.frombuffer(digest[:3], dtype=np.uint8).astype(np.float32) / 32.0 - 4.0


def write_corpus(path: Path, n: int, *, seed: int = 0, with_label: bool = True) -> list[str]:
    """A CSV of ``n`` texts of 1-30 words (some repeated); returns the texts in order."""
    rng = random.Random(seed)
    texts: list[str] = []
    for i in range(n):
        if i and i % 17 == 0:
            texts.append(texts[rng.randrange(i)])  # duplicates must stay separate rows
        else:
            texts.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 30))))
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "label"] if with_label else ["id", "text"])
        for i, text in enumerate(texts):
            row = [f"r{i}", text] + ([rng.choice(LABEL_NAMES)] if with_label else [])
            writer.writerow(row)
    return texts


def main(argv: list[str]) -> None:
    from slimbert.train.label import LabelOptions, label_corpus

    data, out, teacher, shard_size, batch_size, delay = argv
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    options = LabelOptions(
        teacher=Path(teacher),
        data=data,
        out=Path(out),
        id_column="id",
        shard_size=int(shard_size),
        batch_size=int(batch_size),
    )
    label_corpus(options, scorer=FakeScorer(delay=float(delay)))


if __name__ == "__main__":
    main(sys.argv[1:])
