"""Metrics in JSON-friendly dicts: classification (scikit-learn) and latency quantiles."""

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
