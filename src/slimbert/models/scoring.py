"""What a classifier offers to the stages that only need its outputs (labelling, evaluation).

Both the torch classifier (``slimbert.models.load.TorchClassifier``) and an exported ONNX bundle
implement :class:`Scorer`, so ``label`` and ``eval`` work the same on either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Scorer(Protocol):
    label_names: tuple[str, ...]

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Return float32 logits of shape (len(texts), len(label_names)) for one batch."""
        ...

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Number of tokens each text becomes (after truncation): used to sort into batches."""
        ...


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise float32 probabilities of ``logits / temperature``.

    The serving runtime's softmax (one implementation for the function and the stages, so a
    bundle and its evaluation agree to the bit); the temperature is applied here, in float64,
    before it. Imported on use: the runtime module loads ``tokenizers``.
    """
    from slimbert.runtime.bundle import softmax as runtime_softmax

    return runtime_softmax(np.asarray(logits, dtype=np.float64) / temperature)
