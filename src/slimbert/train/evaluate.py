"""Stage ``eval``: quality, size and CPU latency of classifiers or sentence embedders.

The models' kind is detected from their folders, and one run compares models of one kind:

* classifiers (a ``slimbert train``/``distill`` folder, a classification bundle, or ``vader``,
  the lexicon baseline): macro-F1, per-class precision/recall/F1, accuracy and confusion
  matrix on a labelled set (``data``) and on each further set (``sets``: other domains, scored
  one by one); for 3-class sentiment also the pass rate of the behavioural suite by capability
  (:mod:`slimbert.models.behaviour`), and VADER as a baseline row (``baseline``). That is here;
* sentence embedders (a sentence-transformers folder, or an embedding bundle): Spearman ×100
  of the cosine similarity of each pair against its gold score, on each pair set given
  (default: the STS benchmark test set and the MRPC target-domain test set), in
  :mod:`slimbert.train.eval_embedders`.

Both report parameters (where known), weight size and single-thread batch-1 latency (after a
warm-up, median and p95 over real texts) — the setting a serverless function runs in
(:mod:`slimbert.train.eval_common`, with the options). :func:`spearman_x100` is the metric
alone, for any function that embeds texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slimbert.errors import ConfigError, ModelError
from slimbert.io import atomic_open, write_json
from slimbert.train.eval_common import (
    CLASSIFIER_DATA,
    EMBEDDER_PAIRS,
    EvalOptions,
    latency_ms,
    model_kind,
    model_path,
    ms_cell,
)
from slimbert.train.eval_embedders import (
    embedder_table,
    evaluate_embedders,
    pair_similarities,
    spearman_x100,
)

# The options and the embedder metric keep this import path (the CLI, the pipeline, docs).
__all__ = [
    "CLASSIFIER_DATA",
    "EMBEDDER_PAIRS",
    "EvalOptions",
    "evaluate_embedders",
    "evaluate_models",
    "markdown_table",
    "pair_similarities",
    "spearman_x100",
]


def _load(path: Path, threads: int) -> tuple[Any, dict[str, Any]]:
    """A scorer for a torch classifier folder, an ONNX bundle or ``vader``, and table facts."""
    from slimbert.models import baselines
    from slimbert.models.load import META_FILE

    if baselines.is_baseline(str(path)):
        return baselines.VaderScorer(), baselines.facts()

    from slimbert.runtime.bundle import is_bundle, model_bytes

    if is_bundle(path):
        from slimbert.runtime import load_bundle

        bundle = load_bundle(path, threads=threads)
        if bundle.task != "classification":
            raise ModelError(f"{path} is an {bundle.task} bundle; eval compares classifiers")
        return bundle, {
            "kind": f"onnx-{bundle.manifest.get('variant', '?')}",
            "layers": None,
            "parameters": None,
            "size_mb": model_bytes(bundle.manifest) / 1e6,  # graph and weights file
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
    kinds = [model_kind(model_path(model)) for model in options.models]
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
        # The sets may overlap (sentiment3:test holds tweets3:test and sst3:test): each text is
        # scored once, so a slow teacher pays for the union, and a text gets one label everywhere.
        texts = list(dict.fromkeys(t for data in sets.values() for t in data.texts))
        at = {text: i for i, text in enumerate(texts)}
        labels = _predict(scorer, texts, options.batch_size).argmax(axis=1)
        scores = {}
        for spec, data in sets.items():
            preds = labels[[at[t] for t in data.texts]]
            scores[spec] = classification_report(data.labels, preds, data.label_names)
        row = {
            "model": str(path),
            **facts,
            "latency_ms": latency_ms(
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
        return embedder_table(result)
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
            f"| {ms_cell(lat, 'p50')} | {ms_cell(lat, 'p95')} |"
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
