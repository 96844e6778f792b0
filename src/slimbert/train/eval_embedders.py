"""Sentence embedders in ``slimbert eval``: Spearman ×100 of cosine similarity against gold.

A sentence-transformers folder or an embedding bundle is scored on each pair set given
(default: the STS benchmark test set and the MRPC target-domain test set), with its layers,
size, single-thread batch-1 latency and, given a teacher, its agreement with the teacher's
embeddings. :func:`spearman_x100` is the metric alone, for any function that embeds texts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slimbert.errors import ModelError
from slimbert.train.eval_common import (
    CLASSIFIER_DATA,
    EMBEDDER_PAIRS,
    EvalOptions,
    latency_ms,
    model_path,
    ms_cell,
)

if TYPE_CHECKING:
    from slimbert.data.pairs import PairSet


def pair_similarities(
    embed: Callable[[list[str]], np.ndarray], pairs: PairSet, *, batch_size: int = 256
) -> np.ndarray:
    """Cosine similarity of each pair: each distinct sentence embedded once, in batches.

    Sentences go to ``embed`` sorted by length, ``batch_size`` at a time (little padding); the
    vectors are L2-normalised here, so ``embed`` may return raw or normalised vectors.
    """
    from slimbert.metrics import cosine_similarities

    return cosine_similarities(*_pair_vectors(embed, pairs, batch_size))


def spearman_x100(
    embed: Callable[[list[str]], np.ndarray], pairs: PairSet, *, batch_size: int = 256
) -> float:
    """Spearman ×100 of the pairs' cosine similarities against their gold scores.

    ``embed`` maps a list of texts to a ``(len(texts), dim)`` array (a bundle's ``embed``, or
    ``lambda t: model.encode(t)`` for sentence-transformers). NaN when either side is
    constant. Raises :class:`~slimbert.errors.DataError` when the pairs have no scores.
    """
    from slimbert.metrics import cosine_spearman

    scores = pairs.require_scores()
    return 100 * cosine_spearman(*_pair_vectors(embed, pairs, batch_size), scores)


def _pair_vectors(
    embed: Callable[[list[str]], np.ndarray], pairs: PairSet, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The vectors of each pair's first and of its second sentence, as ``embed`` returns them."""
    unique = sorted(pairs.sentences(), key=lambda s: (len(s), s))
    if not unique:
        empty = np.zeros((0, 0), dtype=np.float32)
        return empty, empty
    chunks = [
        np.asarray(embed(unique[start : start + batch_size]), dtype=np.float32)
        for start in range(0, len(unique), batch_size)
    ]
    vectors = np.concatenate(chunks)
    if vectors.ndim != 2 or len(vectors) != len(unique):
        raise ModelError(
            f"the embedding function returned shape {vectors.shape} for {len(unique)} sentences"
        )
    where = {sentence: i for i, sentence in enumerate(unique)}
    return vectors[[where[s] for s in pairs.first]], vectors[[where[s] for s in pairs.second]]


class _TorchEmbedder:
    """A sentence-transformers folder behind the ``embed`` interface a bundle has."""

    def __init__(self, path: Path) -> None:
        from slimbert.errors import require

        require("sentence_transformers", "train")
        from sentence_transformers import SentenceTransformer

        try:
            self.module = SentenceTransformer(str(path), device="cpu")  # never remote code
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot load the sentence-transformers folder {path}: {exc}") from exc
        self.module.eval()

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = self.module.encode(
            list(texts),
            batch_size=max(1, len(texts)),  # callers batch already
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def facts(self, path: Path) -> dict[str, Any]:
        from slimbert.models.load import weights_mb

        config = getattr(getattr(self.module[0], "auto_model", None), "config", None)
        layers = getattr(config, "num_hidden_layers", None)
        return {
            "kind": "torch",
            "layers": int(layers) if layers is not None else None,
            "parameters": sum(p.numel() for p in self.module.parameters()),
            "size_mb": weights_mb(path),
            "dim": _dimension(self.module),
        }


def _dimension(model: Any) -> int | None:
    # sentence-transformers renamed get_sentence_embedding_dimension; accept either.
    method = getattr(model, "get_embedding_dimension", None)
    return (method or model.get_sentence_embedding_dimension)()


def _load_embedder(path: Path, threads: int, batch_size: int) -> tuple[Any, dict[str, Any]]:
    """An object with ``embed(texts)`` for an embedder folder or bundle, and its table facts."""
    from slimbert.runtime.bundle import is_bundle, model_bytes

    if is_bundle(path):
        from slimbert.runtime import load_bundle

        bundle = load_bundle(path, threads=threads, batch_size=batch_size)
        model_file = bundle.manifest["model_file"]
        return bundle, {
            "kind": f"onnx-{bundle.manifest.get('variant', '?')}",
            "layers": _onnx_layers(path / model_file),
            "parameters": None,
            "size_mb": model_bytes(bundle.manifest) / 1e6,  # graph and weights file
            "dim": bundle.dim,
        }
    embedder = _TorchEmbedder(path)
    return embedder, embedder.facts(path)


def _onnx_layers(path: Path) -> int | None:
    """Transformer layers of an exported graph: its attention nodes (fused or not)."""
    try:
        import onnx
    except ImportError:
        return None
    graph = onnx.load(str(path), load_external_data=False).graph
    fused = sum(n.op_type in ("Attention", "QAttention", "MultiHeadAttention") for n in graph.node)
    if fused:
        return int(fused)
    # Unfused graphs keep the torch module path in node names: /encoder/layer.3/attention/...
    found = {m.group(1) for n in graph.node if (m := re.search(r"layer\.(\d+)/", n.name))}
    return len(found) or None


def _pair_specs(options: EvalOptions) -> tuple[str, ...]:
    """The pair sets to score: ``pairs``; a ``data`` other than the classifier default joins."""
    if options.data is None or options.data == CLASSIFIER_DATA:
        return options.pairs
    if options.pairs == EMBEDDER_PAIRS:
        return (options.data,)
    return options.pairs if options.data in options.pairs else (*options.pairs, options.data)


def _row_names(options: EvalOptions) -> list[str]:
    if options.names:
        return list(options.names)
    names = [Path(m).name or str(m) for m in options.models]
    # Folder names label rows unless two models share one (runs/a/student, runs/b/student).
    return names if len(set(names)) == len(names) else [str(m) for m in options.models]


def evaluate_embedders(options: EvalOptions) -> dict[str, Any]:
    """Spearman ×100 on each pair set, size, layers and latency of sentence embedders."""
    from slimbert.data.pairs import load_pairs
    from slimbert.train.sbert_distill import agreement

    pair_sets = {}
    for spec in _pair_specs(options):
        pairs = load_pairs(spec, encoding=options.encoding, limit=options.limit)
        pairs.require_scores()
        pair_sets[spec] = pairs
    # Latency is measured on real sentences: the first pair set's, in file order.
    first = next(iter(pair_sets.values()))
    sentences = list(dict.fromkeys(first.first + first.second))
    reference = _teacher_embeddings(options, sentences)
    rows = []
    for model, name in zip(options.models, _row_names(options), strict=True):
        path = model_path(model)  # a folder, or an alias: the teacher as it ships
        embedder, facts = _load_embedder(path, options.latency_threads, options.batch_size)
        spearman = {
            spec: spearman_x100(embedder.embed, pairs, batch_size=options.batch_size)
            for spec, pairs in pair_sets.items()
        }
        if reference is not None:
            vectors = _embed_all(embedder, sentences, options.batch_size)
            facts["agreement"] = agreement(vectors, reference)  # None: other widths
        latency = latency_ms(
            embedder,
            sentences,
            options.latency_samples,
            options.latency_threads,
            call=embedder.embed,
        )
        rows.append(
            {"model": str(path), "name": name, **facts, "latency_ms": latency, "spearman": spearman}
        )
    return {
        "task": "embedding",
        "metric": "spearman_x100",
        "teacher": options.teacher,
        "agreement_sentences": len(sentences) if reference is not None else None,
        "pairs": {spec: len(pairs) for spec, pairs in pair_sets.items()},
        "latency_threads": options.latency_threads,
        "models": rows,
    }


def _embed_all(embedder: Any, texts: list[str], batch_size: int) -> np.ndarray:
    parts = [embedder.embed(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    return np.concatenate(parts).astype(np.float32)


def _teacher_embeddings(options: EvalOptions, sentences: list[str]) -> np.ndarray | None:
    if options.teacher is None:
        return None
    teacher, _ = _load_embedder(model_path(options.teacher), 1, options.batch_size)
    return _embed_all(teacher, sentences, options.batch_size)


def embedder_table(result: dict[str, Any]) -> str:
    """The result of :func:`evaluate_embedders` as a Markdown table (a line of context first)."""
    specs = list(result["pairs"])
    threads = result.get("latency_threads", 1)
    sets = ", ".join(f"`{spec}` ({n} pairs)" for spec, n in result["pairs"].items())
    teacher = result.get("teacher")
    agreement = (
        f"; agreement: mean cosine with {teacher}'s embeddings of the first set's "
        f"{result['agreement_sentences']} sentences"
        if teacher
        else ""
    )
    lines = [
        f"Spearman ×100 of cosine similarity against gold scores on {sets}; latency: batch 1 "
        f"(one sentence), {'single thread' if threads == 1 else f'{threads} threads'}, "
        f"after warm-up{agreement}.",
        "",
        "| model | kind | layers | params (M) | weights (MB) | "
        + " | ".join(specs)
        + (" | agreement" if teacher else "")
        + " | p50 ms | p95 ms |",
        "|---|---|---:|---:|---:|"
        + "---:|" * len(specs)
        + ("---:|" if teacher else "")
        + "---:|---:|",
    ]
    for row in result["models"]:
        lat = row["latency_ms"]
        params = f"{row['parameters'] / 1e6:.1f}" if row["parameters"] else "–"
        layers = row["layers"] if row["layers"] is not None else "–"
        scores = " | ".join(f"{row['spearman'][spec]:.2f}" for spec in specs)
        if teacher:
            value = row.get("agreement")
            scores += f" | {value:.4f}" if value is not None else " | –"
        lines.append(
            f"| {row['name']} | {row['kind']} | {layers} | {params} | {row['size_mb']:.1f} "
            f"| {scores} | {ms_cell(lat, 'p50')} | {ms_cell(lat, 'p95')} |"
        )
    return "\n".join(lines) + "\n"
