"""Objective ``distill`` of stage ``sbert-train``: a student learns its teacher's embeddings.

A student made by keeping 3 of all-MiniLM-L6-v2's 6 layers and trained on labelled pairs only
never learns to reproduce the 6-layer model's sentence embeddings: what the teacher learnt
from a billion pairs is partly lost, and the student is worse than the teacher on similarity
data it was not trained on. Embedding distillation (Reimers & Gurevych, EMNLP 2020, "Making
monolingual sentence embeddings multilingual using knowledge distillation"; the
sentence-transformers ``MSELoss`` recipe) trains the student to map each sentence to the
teacher's embedding of it, on many unlabelled sentences, before any labelled training.

* **Sentences** (:data:`POOL`, the default ``train``): the distinct sentences of SNLI, STSb,
  MRPC, SST-5 and tweets3 (train splits and the unlabelled tweet pool), minus every sentence
  of any validation or test split (:data:`HELD_OUT`), drawn round-robin from the sources so
  that ``limit`` keeps every domain. Any other spec (a pair set, a text set, a CSV) works too.
* **Targets**: the teacher's normalised embeddings, computed once and cached as safetensors
  under ``$SLIMBERT_CACHE/distill/`` (keyed by teacher, sentences and length), so a rerun or a
  second student skips the teacher. When the widths differ (all-mpnet-base-v2 768 → MiniLM
  384) the targets are the teacher's embeddings projected onto their first principal
  components (a PCA fitted on the targets themselves, as the recipe does), renormalised.
* **Early stopping**: Spearman on STSb validation (zero-shot: no STS training yet), as the
  other objectives; the report adds the agreement with the teacher, the mean cosine between
  student and teacher embeddings on held-out sentences (STSb test).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slimbert.errors import DataError

log = logging.getLogger(__name__)

# Sentences → their L2-normalised embeddings, one row each (the student's or the teacher's).
Embed = Callable[[Sequence[str]], np.ndarray]

__all__ = [
    "HELD_OUT",
    "POOL",
    "SOURCES",
    "Embed",
    "agreement",
    "held_out_sentences",
    "load_sentences",
    "project",
    "teacher_targets",
]

POOL = "sentences"
# The train splits distilled on, in the round-robin order ``limit`` draws them.
SOURCES = (
    "stsb:train",
    "mrpc-target:train",
    "snli:train",
    "sst3:train",
    "tweets3:train",
    "tweets3:pool",
)
# Every split a score is reported on or a model is chosen on: none of their sentences is
# distilled on.
HELD_OUT = (
    "stsb:validation",
    "stsb:test",
    "mrpc-target:validation",
    "mrpc-target:test",
    "snli:validation",
    "sst3:validation",
    "sst3:test",
    "tweets3:validation",
    "tweets3:test",
)
AGREEMENT_SET = "stsb:test"


def _spec_sentences(spec: str) -> list[str]:
    """The distinct texts of a spec: a pair set's sentences or a text set's texts."""
    from slimbert.data.load import load_texts
    from slimbert.data.pairs import distinct_sentences, is_pair_spec

    if is_pair_spec(spec):
        return distinct_sentences(spec)
    texts = load_texts(spec, label_column=None).texts
    return list(dict.fromkeys(t for t in texts if t.strip()))


def held_out_sentences() -> set[str]:
    """Every sentence of :data:`HELD_OUT` (the sets that are missing are skipped)."""
    held: set[str] = set()
    for spec in HELD_OUT:
        try:
            held.update(_spec_sentences(spec))
        except DataError as exc:  # e.g. a data folder without MRPC: nothing to keep out
            log.info("held-out set %s not read: %s", spec, exc)
    return held


def load_sentences(specs: Sequence[str], limit: int | None, seed: int) -> list[str]:
    """The distinct sentences of ``specs`` (:data:`POOL` expands to :data:`SOURCES`) minus the
    held-out sentences, each source shuffled with ``seed`` and drawn round-robin."""
    expanded: list[str] = []
    for spec in specs:
        expanded.extend(SOURCES if spec == POOL else [spec])
    held = held_out_sentences()
    rng = random.Random(seed)
    queues: list[list[str]] = []
    for spec in expanded:
        texts = [t for t in _spec_sentences(spec) if t not in held]
        rng.shuffle(texts)
        queues.append(texts)
        log.info("distillation sentences from %s: %d", spec, len(texts))
    seen: dict[str, None] = {}
    depth = max((len(q) for q in queues), default=0)
    for i in range(depth):
        for queue in queues:
            if i < len(queue):
                seen.setdefault(queue[i])
        if limit is not None and len(seen) >= limit:
            break
    sentences = list(seen)
    sentences = sentences if limit is None else sentences[:limit]
    if not sentences:
        raise DataError(f"no sentences to distill on in {', '.join(specs)}")
    return sentences


def _cache_dir() -> Path:
    from slimbert.data.tweets3 import default_cache_dir

    return default_cache_dir() / "distill"


def _teacher_identity(teacher: Any, name: str) -> str:
    """What makes two teachers the same: the name and a digest of all their weights (two
    fine-tunes of one base can share the embedding matrix and differ only above it)."""
    digest = hashlib.sha256()
    for param in teacher.parameters():
        digest.update(param.detach().cpu().numpy().tobytes())
    return f"{name}:{digest.hexdigest()[:16]}"


def teacher_targets(
    teacher: Any, name: str, embed: Embed, sentences: Sequence[str], dim: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The teacher's normalised embeddings (``embed``) of ``sentences`` in ``dim`` dimensions
    (PCA when the teacher is wider), cached by the teacher's weights, length and sentences;
    returns them, the PCA components (empty when the widths match) and what the report says."""
    from safetensors.numpy import load_file, save_file

    from slimbert.io import atomic_path

    key = hashlib.sha256(
        json.dumps(
            [_teacher_identity(teacher, name), teacher.max_seq_length, dim, list(sentences)]
        ).encode()
    ).hexdigest()[:24]
    path = _cache_dir() / f"{key}.safetensors"
    info: dict[str, Any] = {"teacher": name, "cache": str(path), "dim": dim}
    if path.is_file():
        tensors = load_file(str(path))
        targets = tensors["targets"]
        if targets.shape == (len(sentences), dim):
            info.update(cached=True, explained_variance=float(tensors["explained"][0]))
            return targets, tensors["components"], info
    vectors = embed(sentences)
    explained = 1.0
    components = np.zeros((0, vectors.shape[1]), dtype=np.float32)
    if vectors.shape[1] != dim:
        if vectors.shape[1] < dim:
            raise DataError(
                f"the teacher's embeddings ({vectors.shape[1]}) are narrower than the "
                f"student's ({dim})",
                hint="distill from a teacher at least as wide as the student",
            )
        from sklearn.decomposition import PCA

        pca = PCA(n_components=dim, random_state=0).fit(vectors)
        explained = float(pca.explained_variance_ratio_.sum())
        components = pca.components_.astype(np.float32)
        vectors = project(vectors, components)
    targets = np.ascontiguousarray(vectors, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        arrays = {
            "targets": targets,
            "components": np.ascontiguousarray(components),
            "explained": np.array([explained], dtype=np.float64),
        }
        save_file(arrays, str(tmp))
    info.update(cached=False, explained_variance=explained)
    return targets, components, info


def project(vectors: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Teacher embeddings onto the PCA ``components`` (none: unchanged), renormalised.

    Not centred, as the recipe's bias-free Dense layer: the student's space is not either."""
    if len(components) == 0:
        return vectors
    out = vectors @ components.T
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def agreement(
    student: np.ndarray, teacher: np.ndarray, components: np.ndarray | None = None
) -> float | None:
    """Mean cosine between a student's and its teacher's embeddings of the same sentences, one
    row each (the teacher's projected onto ``components`` when it is wider); None when the
    widths still differ."""
    if components is not None:
        teacher = project(teacher, components)
    if student.shape != teacher.shape:
        return None

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    return float(np.mean(np.sum(unit(student) * unit(teacher), axis=1)))
