"""Typo noise for training text: a model that only ever saw clean words fails on typed ones.

Users type their own sentences, and people misspell. A wordpiece tokenizer splits a misspelt
word ("rdue", "fantsatic") into pieces the model never learnt an opinion for, so a model
fine-tuned on edited text (film reviews) flips its label on one typo. Fresh noise in every
epoch's training text (Pruthi et al., ACL 2019, "Combating adversarial misspellings"; the
character operations of nlpaug) teaches the model to read through them. Four operations, one
drawn per noised word: swap two adjacent inner letters, drop an inner letter, double a letter,
replace a letter with a neighbour on a QWERTY keyboard. First and last letters stay (people
keep them, and readers rely on them), and words shorter than :data:`MIN_LENGTH` letters are
left alone.

Noise applies to training text only; validation, test and served text are as written.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

__all__ = ["MIN_LENGTH", "typo", "typo_noise"]

MIN_LENGTH = 4
_WORD = re.compile(r"[A-Za-z]+")
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {
    ch: "".join(row[j] for j in (i - 1, i + 1) if 0 <= j < len(row))
    for row in _ROWS
    for i, ch in enumerate(row)
}


def typo(word: str, rng: random.Random) -> str:
    """``word`` with one random typo inside it (first and last letters kept)."""
    if len(word) < MIN_LENGTH:
        return word
    i = rng.randrange(1, len(word) - 1)
    op = rng.randrange(4)
    if op == 0 and word[i] != word[i + 1] and i + 1 < len(word) - 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == 1:
        return word[:i] + word[i + 1 :]
    if op == 2:
        return word[: i + 1] + word[i] + word[i + 1 :]
    near = _NEIGHBOURS.get(word[i].lower())
    if near:
        sub = rng.choice(near)
        return word[:i] + (sub.upper() if word[i].isupper() else sub) + word[i + 1 :]
    return word[:i] + word[i + 1 :]


def typo_noise(texts: Sequence[str], rate: float, seed: int) -> list[str]:
    """``texts`` with each word of :data:`MIN_LENGTH`+ letters misspelt with probability
    ``rate`` (0 returns the texts unchanged); the same ``seed`` gives the same noise."""
    if rate <= 0:
        return list(texts)
    rng = random.Random(seed)

    def sub(match: re.Match[str]) -> str:
        word = match.group(0)
        return typo(word, rng) if len(word) >= MIN_LENGTH and rng.random() < rate else word

    return [_WORD.sub(sub, text) for text in texts]
