"""The floor every sentiment table shows: VADER, a lexicon with no training.

VADER (Hutto & Gilbert, ICWSM 2014; PyPI ``vaderSentiment``) scores a text's compound polarity
in [-1, 1] from a hand-built lexicon and rules (negation, intensifiers, "but", punctuation,
capitals). Its authors' 3-class reading is compound ≥ 0.05 positive, ≤ -0.05 negative, neutral
between. A trained model that does not beat it on a domain has learnt nothing about sentiment
there that a word list does not know.

:class:`VaderScorer` has the scorer interface of slimbert's classifiers (``label_names``,
``logits``, ``token_lengths``), so evaluation, the behavioural suite and tables treat it as
one more model named ``vader``. Its "logits" are ``(-c - 0.05, 0, c - 0.05) × 10`` for the
compound score ``c``: the arg-max is exactly the 3-class reading, and P(positive) rises with
``c``, which the behavioural suite's directional checks need.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from slimbert.errors import require

NAME = "vader"
LABEL_NAMES = ("negative", "neutral", "positive")
THRESHOLD = 0.05  # the compound cut-off VADER's authors give for 3 classes
_SCALE = 10.0


def is_baseline(model: str) -> bool:
    """True for the model names that mean a baseline, not a folder (``vader``)."""
    return str(model).strip().lower() == NAME


class VaderScorer:
    """VADER behind the scorer interface (see the module docstring)."""

    label_names = LABEL_NAMES
    max_length = 0

    def __init__(self) -> None:
        require("vaderSentiment", "train")
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer: Any = SentimentIntensityAnalyzer()

    def compound(self, texts: Sequence[str]) -> np.ndarray:
        return np.array(
            [self._analyzer.polarity_scores(t)["compound"] for t in texts], dtype=np.float32
        )

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        c = self.compound(texts)
        zero = np.zeros_like(c)
        return _SCALE * np.stack([-c - THRESHOLD, zero, c - THRESHOLD], axis=1)

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]


def facts() -> dict[str, Any]:
    """What an evaluation table shows for VADER beside the trained models."""
    return {"kind": "lexicon", "layers": None, "parameters": None, "size_mb": 0.0}
