"""Metrics: classification (scikit-learn) and latency quantiles as JSON-friendly dicts, and
the Spearman correlations the similarity work is judged by (cosine against gold scores)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def classification_report(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    label_names: Sequence[str],
) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(label_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "macro_f1": float(np.mean(f1)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "label_names": list(label_names),
        "n": len(y_true),
    }


def quantiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p90/p95/p99, mean and max of ``values`` (latencies in ms), and how many there were.

    The one summary every benchmark and evaluation writes, so their tables read alike.
    """
    a = np.asarray(values, dtype=float)
    qs = {f"p{q}": float(np.percentile(a, q)) for q in (50, 90, 95, 99)}
    return {**qs, "mean": float(a.mean()), "max": float(a.max()), "n": int(a.size)}


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation of ``a`` and ``b`` (not ×100).

    NaN when there are fewer than two values or either side is constant: scipy returns NaN
    there too, with a warning that would only repeat what the NaN says.
    """
    from scipy.stats import spearmanr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (a zero row stays zero)."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def cosine_similarities(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The cosine similarity of each row of ``first`` with the same row of ``second``."""
    return np.sum(unit_rows(first) * unit_rows(second), axis=1)


def cosine_spearman(
    first: np.ndarray, second: np.ndarray, scores: Sequence[float] | np.ndarray
) -> float:
    """Spearman (not ×100) of the pairs' cosine similarities against their gold ``scores``:
    the one measure of a sentence embedder (training, evaluation, the export gate)."""
    return spearman(cosine_similarities(first, second), scores)
