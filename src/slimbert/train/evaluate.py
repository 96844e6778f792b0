"""Stage ``eval``: quality, size and CPU latency of classifiers or sentence embedders.

The models' kind is detected from their folders, and one run compares models of one kind:

* classifiers (a ``slimbert train``/``distill`` folder, a classification bundle, or ``vader``,
  the lexicon baseline): macro-F1, per-class precision/recall/F1, accuracy and confusion
  matrix on a labelled set (``data``) and on each further set (``sets``: other domains, scored
  one by one); for 3-class sentiment also the pass rate of the behavioural suite by capability
  (:mod:`slimbert.models.behaviour`), and VADER as a baseline row (``baseline``);
* sentence embedders (a sentence-transformers folder, or an embedding bundle): Spearman ×100
  of the cosine similarity of each pair against its gold score, on each pair set given
  (default: the STS benchmark test set and the MRPC target-domain test set).

Both report parameters (where known), weight size and single-thread batch-1 latency (after a
warm-up, median and p95 over real texts) — the setting a serverless function runs in.
:func:`spearman_x100` is the metric alone, for any function that embeds texts.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from slimbert.config import Options, check
from slimbert.errors import ConfigError, ModelError
from slimbert.io import atomic_open, write_json

if TYPE_CHECKING:
    from slimbert.data.pairs import PairSet

CLASSIFIER_DATA = "tweets3:test"
EMBEDDER_PAIRS = ("stsb:test", "mrpc-target:test")


@dataclasses.dataclass(frozen=True)
class EvalOptions(Options):
    stage: ClassVar[str] = "eval"

    models: tuple[str, ...] = ("runs/teacher",)
    # None: classifiers are scored on the test set recorded with the first model (else its
    # validation set; slimbert.data.owndata), refused when it records none; embedders use pairs.
    data: str | None = None
    pairs: tuple[str, ...] = EMBEDDER_PAIRS
    names: tuple[str, ...] = ()
    out: Path | None = None
    text_column: str = "text"
    label_column: str = "label"
    encoding: str = "utf-8"
    batch_size: int = 256
    latency_samples: int = 200
    latency_threads: int = 1
    limit: int | None = None
    sets: tuple[str, ...] = ()
    behaviour: bool = True
    baseline: bool = True
    # Embedders: the model they were distilled from; each row gains its agreement with it (the
    # mean cosine between their embeddings of the first pair set's sentences).
    teacher: str | None = None

    def validate(self) -> None:
        check(len(self.models) > 0, "eval needs at least one model", hint="--models a,b")
        check(self.batch_size >= 1, "batch_size must be at least 1")
        check(self.latency_samples >= 0, "latency_samples must be >= 0")
        check(self.latency_threads >= 1, "latency_threads must be at least 1")
        check(
            len(self.pairs) > 0, "pairs must name at least one pair set", hint="--pairs stsb:test"
        )
        check(
            not self.names or len(self.names) == len(self.models),
            f"names must label each of the {len(self.models)} models, got {len(self.names)}",
            hint="--names a,b with one name per --models entry, in the same order",
        )


def _latency_ms(
    scorer: Any,
    texts: list[str],
    samples: int,
    threads: int,
    call: Callable[[list[str]], Any] | None = None,
) -> dict[str, float]:
    """Batch-1 latency of ``call`` (default ``scorer.logits``) over ``texts``."""
    if samples == 0 or not texts:
        return {}
    call = call or scorer.logits
    if hasattr(scorer, "module"):  # a torch model: its thread count is a process-wide setting
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return _time_calls(call, texts, samples)
        finally:
            torch.set_num_threads(previous)
    return _time_calls(call, texts, samples)


def _time_calls(logits: Any, texts: list[str], samples: int) -> dict[str, float]:
    for text in texts[:20]:  # warm-up: first calls allocate and pick kernels
        logits([text])
    timings = []
    for i in range(samples):
        text = texts[i % len(texts)]
        start = time.perf_counter()
        logits([text])
        timings.append((time.perf_counter() - start) * 1e3)
    return {
        "p50": float(np.percentile(timings, 50)),
        "p95": float(np.percentile(timings, 95)),
        "mean": float(np.mean(timings)),
    }


def _load(path: Path, threads: int) -> tuple[Any, dict[str, Any]]:
    """A scorer for a torch classifier folder, an ONNX bundle or ``vader``, and table facts."""
    from slimbert.models import baselines
    from slimbert.models.load import META_FILE

    if baselines.is_baseline(str(path)):
        return baselines.VaderScorer(), baselines.facts()

    if (path / "manifest.json").is_file():
        from slimbert.runtime import load_bundle

        bundle = load_bundle(path, threads=threads)
        if bundle.task != "classification":
            raise ModelError(f"{path} is an {bundle.task} bundle; eval compares classifiers")
        files = bundle.manifest["files"]
        model_file = bundle.manifest["model_file"]
        return bundle, {
            "kind": f"onnx-{bundle.manifest.get('variant', '?')}",
            "layers": None,
            "parameters": None,
            "size_mb": files[model_file]["bytes"] / 1e6,
        }
    if (path / META_FILE).is_file():
        from slimbert.models.load import TorchClassifier, weights_mb

        clf = TorchClassifier.load(path)
        return clf, {
            "kind": "torch",
            "layers": len(clf.meta.layers) if clf.meta.layers else None,
            "parameters": clf.num_parameters(),
            "size_mb": weights_mb(path),
        }
    raise ModelError(
        f"{path} is neither a trained slimbert classifier nor an exported bundle",
        hint="pass folders written by `slimbert train`, `slimbert distill` or `slimbert export`",
    )


def _predict(scorer: Any, texts: list[str], batch_size: int) -> np.ndarray:
    """Logits in input order, in length-sorted batches (little padding)."""
    lengths = scorer.token_lengths(texts)
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(texts), len(scorer.label_names)), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        out[idx] = scorer.logits([texts[i] for i in idx])
    return out


def evaluate_models(options: EvalOptions) -> dict[str, Any]:
    """Evaluate ``options.models`` (all classifiers, or all embedders); write ``out`` if set."""
    kinds = [_model_kind(_model_path(model)) for model in options.models]
    if "embedder" in kinds:
        if "classifier" in kinds:
            _mixed(options.models, kinds)
        return _save(options, evaluate_embedders(options))
    if options.names:
        raise ConfigError(
            "names label the rows of sentence embedders; classifier rows show their folder",
            hint="drop --names when evaluating classifiers",
        )
    return _save(options, _evaluate_classifiers(options))


def _save(options: EvalOptions, result: dict[str, Any]) -> dict[str, Any]:
    if options.out is not None:
        from slimbert.io import claim_report

        out = Path(options.out)
        # A file of that name is replaced only when it is an evaluation slimbert wrote.
        claim_report(out.with_suffix(".json"), "evaluation", companions=[out.with_suffix(".md")])
        write_json(out.with_suffix(".json"), result)
        with atomic_open(out.with_suffix(".md")) as fh:
            fh.write(markdown_table(result))
    return result


def _labelled(options: EvalOptions, spec: str, label_names: Sequence[str]) -> Any:
    from slimbert.data.load import load_texts

    data = load_texts(
        spec,
        text_column=options.text_column,
        label_column=options.label_column,
        labels=label_names,
        encoding=options.encoding,
        require_labels=True,
    )
    if options.limit is not None and len(data) > options.limit:
        data = data.subset(range(options.limit))
    return data


def _with_recorded_data(options: EvalOptions) -> EvalOptions:
    """``data`` left out: the first model's recorded test set (else its validation set), read
    with the recorded columns; refused with a hint when no model records one."""
    import logging

    from slimbert.data.owndata import no_data_error, recorded_data
    from slimbert.models import baselines

    if options.data is not None:
        return options
    models = [m for m in options.models if not baselines.is_baseline(m)]
    for model in models:
        record = recorded_data(model)
        spec = (record or {}).get("test") or (record or {}).get("validation")
        if record is None or not spec:
            continue
        if not record.get("test"):
            logging.getLogger(__name__).warning(
                "%s records no test set: scoring on its validation set %s (optimistic: early "
                "stopping chose the model on it; `slimbert data split` makes a test set)",
                model,
                spec,
            )
        return options.replace(
            data=spec,
            text_column=record.get("text_column") or options.text_column,
            label_column=record.get("label_column") or options.label_column,
            encoding=record.get("encoding") or options.encoding,
        )
    raise no_data_error("eval", models[0] if models else "vader", "--data", "test")


def _evaluate_classifiers(options: EvalOptions) -> dict[str, Any]:
    from slimbert.metrics import classification_report
    from slimbert.models import baselines, behaviour
    from slimbert.models.scoring import softmax

    options = _with_recorded_data(options)
    assert options.data is not None
    models = list(dict.fromkeys(options.models))
    rows = []
    sets: dict[str, Any] = {}
    suite = None
    queue = [(model, _load(Path(model), options.latency_threads)) for model in models[:1]]
    names = tuple(queue[0][1][0].label_names)
    for spec in dict.fromkeys((options.data, *options.sets)):
        sets[spec] = _labelled(options, spec, names)
    primary = sets[options.data]
    if options.behaviour and behaviour.applies_to(names):
        suite = behaviour.load_suite()
    if (
        options.baseline
        and names == baselines.LABEL_NAMES
        and not any(baselines.is_baseline(m) for m in models)
    ):
        models.insert(0, baselines.NAME)  # the floor, listed first
    for model in models:
        path = Path(model)
        if queue and queue[0][0] == model:
            scorer, facts = queue.pop()[1]
        else:
            scorer, facts = _load(path, options.latency_threads)
        if tuple(scorer.label_names) != tuple(primary.label_names):
            raise ModelError(f"{path} predicts {scorer.label_names}, the data has {names}")
        scores = {}
        for spec, data in sets.items():
            preds = _predict(scorer, data.texts, options.batch_size).argmax(axis=1)
            scores[spec] = classification_report(data.labels, preds, data.label_names)
        row = {
            "model": str(path),
            **facts,
            "latency_ms": _latency_ms(
                scorer, primary.texts, options.latency_samples, options.latency_threads
            )
            if not baselines.is_baseline(str(path))
            else {},
            **scores[options.data],
            "sets": {spec: _brief(report) for spec, report in scores.items()},
        }
        if suite is not None:

            def probabilities(texts: list[str], scorer: Any = scorer) -> np.ndarray:
                return softmax(_predict(scorer, texts, options.batch_size))

            row["behaviour"] = behaviour.run_suite(probabilities, scorer.label_names, suite)
        rows.append(row)
    return {
        "data": options.data,
        "rows": len(primary),
        "sets": {spec: len(data) for spec, data in sets.items()},
        "models": rows,
    }


def _brief(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report[k] for k in ("macro_f1", "accuracy") if k in report}


def markdown_table(result: dict[str, Any]) -> str:
    """The result of :func:`evaluate_models` as a Markdown table (a line of context first)."""
    if result.get("task") == "embedding":
        return _embedder_table(result)
    specs = list(result.get("sets") or {result["data"]: result["rows"]})
    sets = ", ".join(f"`{spec}` ({n} rows)" for spec, n in (result.get("sets") or {}).items())
    has_suite = any("behaviour" in row for row in result["models"])
    sets = sets or f"`{result['data']}` ({result['rows']} rows)"
    lines = [
        f"Macro-F1 on {sets}"
        + ("; behaviour: pass rate of the behavioural suite" if has_suite else "")
        + "; latency: batch 1, single thread, after warm-up.",
        "",
        "| model | kind | params (M) | weights (MB) | "
        + " | ".join(specs)
        + (" | behaviour" if has_suite else "")
        + " | accuracy | p50 ms | p95 ms |",
        "|---|---|---:|---:|"
        + "---:|" * len(specs)
        + ("---:|" if has_suite else "")
        + "---:|---:|---:|",
    ]
    for row in result["models"]:
        lat = row["latency_ms"]
        params = f"{row['parameters'] / 1e6:.1f}" if row["parameters"] else "–"
        per_set = row.get("sets") or {result["data"]: row}
        f1 = " | ".join(f"{per_set[spec]['macro_f1']:.4f}" for spec in specs)
        suite = ""
        if has_suite:
            b = row.get("behaviour")
            suite = f" | {100 * b['pass_rate']:.1f}%" if b else " | –"
        lines.append(
            f"| {row['model']} | {row['kind']} | {params} | {row['size_mb']:.1f} "
            f"| {f1}{suite} | {row['accuracy']:.4f} "
            f"| {_ms(lat, 'p50')} | {_ms(lat, 'p95')} |"
        )
    capabilities = _capability_table(result["models"])
    return "\n".join(lines) + "\n" + (f"\n{capabilities}" if capabilities else "")


def _capability_table(models: list[dict[str, Any]]) -> str:
    """Pass rate per behavioural capability (rows) for each model (columns)."""
    scored = [m for m in models if m.get("behaviour")]
    if not scored:
        return ""
    caps = list(scored[0]["behaviour"]["capabilities"])
    lines = [
        "Behavioural suite: pass rate by capability (cases in brackets).",
        "",
        "| capability | " + " | ".join(Path(m["model"]).name or m["model"] for m in scored) + " |",
        "|---|" + "---:|" * len(scored),
    ]
    for cap in caps:
        n = scored[0]["behaviour"]["capabilities"][cap]["cases"]
        cells = " | ".join(
            f"{100 * m['behaviour']['capabilities'][cap]['pass_rate']:.1f}%" for m in scored
        )
        lines.append(f"| {cap} ({n}) | {cells} |")
    return "\n".join(lines) + "\n"


def _ms(latency: dict[str, float], key: str) -> str:
    # An empty latency dict means it was not measured (latency_samples 0), not "NaN ms".
    return f"{latency[key]:.2f}" if key in latency else "–"


# -- sentence embedders ------------------------------------------------------------------------
def _model_path(model: str) -> Path:
    """A model folder as given, or the folder a model alias names (all-MiniLM-L6-v2, mpnet)."""
    from slimbert.models.baselines import is_baseline
    from slimbert.models.load import resolve_model

    if Path(model).exists() or is_baseline(model):
        return Path(model)
    return Path(resolve_model(model))


def _model_kind(path: Path) -> str:
    """``classifier`` or ``embedder``, from the files a model folder holds (nothing is loaded)."""
    from slimbert.models.baselines import is_baseline
    from slimbert.models.load import META_FILE

    if is_baseline(str(path)):
        return "classifier"

    if (path / "manifest.json").is_file():
        from slimbert.runtime.bundle import read_manifest

        return "embedder" if read_manifest(path)["task"] == "embedding" else "classifier"
    if (path / META_FILE).is_file():
        return "classifier"
    if (path / "modules.json").is_file():
        return "embedder"
    raise ModelError(
        f"{path} is neither a trained slimbert classifier, a sentence-transformers embedder "
        "nor an exported bundle",
        hint="pass folders written by `slimbert train`, `slimbert distill`, "
        "`slimbert sbert train` or `slimbert export`",
    )


def _mixed(models: Sequence[str], kinds: list[str]) -> None:
    def listed(kind: str) -> str:
        return ", ".join(m for m, k in zip(models, kinds, strict=True) if k == kind)

    raise ConfigError(
        f"eval compares models of one kind, but {listed('classifier')} "
        f"{'is a classifier' if kinds.count('classifier') == 1 else 'are classifiers'} and "
        f"{listed('embedder')} "
        f"{'is a sentence embedder' if kinds.count('embedder') == 1 else 'are sentence embedders'}",
        hint="run `slimbert eval` once for the classifiers and once for the embedders",
    )


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
    if (path / "manifest.json").is_file():
        from slimbert.runtime import load_bundle

        bundle = load_bundle(path, threads=threads, batch_size=batch_size)
        model_file = bundle.manifest["model_file"]
        return bundle, {
            "kind": f"onnx-{bundle.manifest.get('variant', '?')}",
            "layers": _onnx_layers(path / model_file),
            "parameters": None,
            "size_mb": bundle.manifest["files"][model_file]["bytes"] / 1e6,
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
        path = _model_path(model)  # a folder, or an alias: the teacher as it ships
        embedder, facts = _load_embedder(path, options.latency_threads, options.batch_size)
        spearman = {
            spec: spearman_x100(embedder.embed, pairs, batch_size=options.batch_size)
            for spec, pairs in pair_sets.items()
        }
        if reference is not None:
            vectors = _embed_all(embedder, sentences, options.batch_size)
            facts["agreement"] = agreement(vectors, reference)  # None: other widths
        latency = _latency_ms(
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
    teacher, _ = _load_embedder(_model_path(options.teacher), 1, options.batch_size)
    return _embed_all(teacher, sentences, options.batch_size)


def _embedder_table(result: dict[str, Any]) -> str:
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
            f"| {scores} | {_ms(lat, 'p50')} | {_ms(lat, 'p95')} |"
        )
    return "\n".join(lines) + "\n"
