"""Stage ``export``: turn a classifier or a sentence embedder into a serving bundle (ONNX).

The stage chains the steps of :mod:`slimbert.export.convert` (load the torch model, export it
to ONNX, fuse, check the fp32 graph against torch, quantise to int8) and the quality gate of
:mod:`slimbert.export.gate` (int8 or fp32), saves the chosen graph as the function loads it
(checked against the graph the gate measured), then writes the bundle of ``docs/bundle.md``
atomically, and an export report beside it. Its file names are the runtime's
(:mod:`slimbert.runtime.bundle`): one home for what the function reads.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from slimbert.errors import ConfigError, ModelError
from slimbert.export.convert import (
    DATA_SUFFIX,
    PROBES,
    OnnxRunner,
    Source,
    export_onnx,
    fuse_graph,
    load_source,
    prune_graph,
    quantize_int8,
    runtime_graph,
    write_tokenizer,
)
from slimbert.export.gate import (
    behaviour_gate,
    behaviour_results,
    classification_gate,
    embedding_gate,
    gate_verdict,
    load_gate_data,
    model_sizes,
)
from slimbert.export.options import AUTO, ExportOptions
from slimbert.io import atomic_dir, read_json, sha256_file, write_json, write_report
from slimbert.runtime.bundle import FORMAT as BUNDLE_FORMAT
from slimbert.runtime.bundle import (
    FP32_FILE,
    MANIFEST_FILE,
    QINT8_FILE,
    TOKENIZER_FILE,
    model_bytes,
)

log = logging.getLogger(__name__)

__all__ = ["AUTO", "ExportOptions", "export_model"]  # the stage's names, options included

# The graph saved for the function must answer as the graph the gate measured: this close
# (logits or embedding components), on the probes and the first validation texts.
RUNTIME_GRAPH_TOLERANCE = 1e-4
RUNTIME_CHECK_TEXTS = 256


def export_model(
    options: ExportOptions, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Export ``options.model`` into a bundle at ``options.out``; return its manifest.

    ``progress(step)`` is told each step as it starts (the CLI shows it)."""
    say = progress or (lambda step: None)
    out = Path(options.out)
    _check_replaceable(out)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    say("loading the model")
    source = load_source(options)
    options = _with_recorded_validation(options)
    gate_data = load_gate_data(options, source) if options.validation is not None else None
    timings["load_s"] = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.work-", dir=out.parent) as tmp:
        work = Path(tmp)
        from tokenizers import Tokenizer

        write_tokenizer(source, work / TOKENIZER_FILE)
        tokenizer = Tokenizer.from_file(str(work / TOKENIZER_FILE))
        pad_id = int(source.tokenizer.pad_token_id or 0)

        tick = time.perf_counter()
        say("exporting to ONNX")
        raw = work / "model_raw.onnx"
        export_onnx(source, raw, options.opset)
        timings["export_s"] = time.perf_counter() - tick
        tick = time.perf_counter()
        say("optimising the graph" if options.optimize else "pruning the graph")
        fp32 = work / FP32_FILE
        fused = fuse_graph(raw, fp32, source) if options.optimize else prune_graph(raw, fp32)
        timings["optimize_s"] = time.perf_counter() - tick

        gate_texts = gate_data.texts if gate_data is not None else []
        texts = list(PROBES) + gate_texts
        tick = time.perf_counter()
        say(f"checking fp32 against torch on {len(texts):,} texts")
        reference = source.reference(texts)
        timings["torch_s"] = time.perf_counter() - tick
        tick = time.perf_counter()
        fp32_out = OnnxRunner(fp32, tokenizer, pad_id).run(texts)
        timings["fp32_gate_s"] = time.perf_counter() - tick
        diff = float(np.abs(fp32_out - reference).max())
        what = "logit" if source.task == "classification" else "embedding"
        if not diff <= options.max_fp32_diff:
            raise ModelError(
                f"the fp32 ONNX graph differs from torch by {diff:.2e} (max abs {what} diff, "
                f"allowed {options.max_fp32_diff:.0e})",
                hint="try --no-optimize; report the model type if plain export differs too",
            )
        log.info("fp32 ONNX matches torch: max abs %s diff %.2e", what, diff)

        qint8_out = None
        if options.quantize and gate_data is not None:
            tick = time.perf_counter()
            say("quantising to int8")
            quantize_int8(fp32, work / QINT8_FILE)
            timings["quantize_s"] = time.perf_counter() - tick
            tick = time.perf_counter()
            say(f"quality gate: int8 on {len(gate_texts):,} validation texts")
            qint8_out = OnnxRunner(work / QINT8_FILE, tokenizer, pad_id).run(gate_texts)
            timings["qint8_gate_s"] = time.perf_counter() - tick
        elif options.quantize:
            log.info("no validation data: int8 cannot be gated, keeping fp32")
        fp32_gate = fp32_out[len(PROBES) :]
        if source.task == "classification":
            suite = None
            if qint8_out is not None:
                tick = time.perf_counter()
                say("quality gate: behavioural suite")
                suite = behaviour_results(source, [fp32, work / QINT8_FILE], tokenizer, pad_id)
                timings["behaviour_s"] = time.perf_counter() - tick
            gate = classification_gate(options, source, gate_data, fp32_gate, qint8_out, diff)
            if suite is not None:
                gate = behaviour_gate(options, gate, *suite)
        else:
            gate = embedding_gate(options, gate_data, fp32_gate, qint8_out, diff)
        variants = {
            "fp32": {
                "bytes": fp32.stat().st_size,
                "unoptimized_bytes": raw.stat().st_size,
                "fused_ops": fused,
                "metrics": gate["fp32"],
            },
            "qint8": None
            if qint8_out is None
            else {"bytes": (work / QINT8_FILE).stat().st_size, "metrics": gate["qint8"]},
        }
        chosen = QINT8_FILE if gate["chosen"] == "qint8" else FP32_FILE
        say("writing the bundle")
        sizes = {"fp32": model_sizes(fp32)}
        if qint8_out is not None:
            sizes["qint8"] = model_sizes(work / QINT8_FILE)
        gate["verdict"] = gate_verdict(gate, sizes, options.quantize)
        (log.info if gate["chosen"] == "qint8" or qint8_out is None else log.warning)(
            "%s", gate["verdict"]
        )
        say("saving the graph as the function loads it")
        tick = time.perf_counter()
        model, graph_optimization = _runtime_graph(
            work / chosen, texts, tokenizer, pad_id, options.optimize
        )
        timings["runtime_graph_s"] = time.perf_counter() - tick
        manifest = _write_bundle(
            out, model, work / TOKENIZER_FILE, source, options, gate, graph_optimization
        )
    timings["total_s"] = time.perf_counter() - start
    report = {
        "stage": options.stage,
        "options": options.to_dict(),
        "bundle": str(out),
        "variants": variants,
        "gate": gate,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "manifest": manifest,
    }
    # Replaces only an export report slimbert wrote (a user's file of that name is kept).
    write_report(out.parent / f"{out.name}.export.json", report, "export report")
    log.info("bundle %s: %s, %d bytes", out, chosen, model_bytes(manifest))
    return manifest


def _runtime_graph(
    model: Path, texts: list[str], tokenizer: Any, pad_id: int, optimize: bool
) -> tuple[Path, dict[str, Any] | None]:
    """The chosen graph as the function loads it (:func:`convert.runtime_graph`), checked
    against the graph the gate measured, run as before (optimised in memory at load).

    Answers further apart than :data:`RUNTIME_GRAPH_TOLERANCE` keep the gate's graph as it is
    (one file, optimised at every load), with a warning: the bundle never serves other
    answers than the ones the gate passed.
    """
    final = model.parent / "runtime" / model.name
    final.parent.mkdir()
    graph_optimization = runtime_graph(model, final, optimize=optimize)
    sample = texts[:RUNTIME_CHECK_TEXTS]
    before = OnnxRunner(model, tokenizer, pad_id).run(sample)
    after = OnnxRunner(final, tokenizer, pad_id, optimized=graph_optimization is not None)
    diff = float(np.abs(after.run(sample) - before).max())
    if not diff <= RUNTIME_GRAPH_TOLERANCE:
        log.warning(
            "the graph saved for the runtime differs from the gate's by %.2e (allowed %.0e): "
            "keeping the gate's graph, optimised at every load",
            diff,
            RUNTIME_GRAPH_TOLERANCE,
        )
        return model, None
    log.info("runtime graph matches the gate's: max abs diff %.2e", diff)
    if graph_optimization is not None:
        graph_optimization["max_abs_diff"] = diff
    return final, graph_optimization


def _with_recorded_validation(options: ExportOptions) -> ExportOptions:
    """``validation: auto`` resolved to the data recorded with the model (slimbert.data.owndata),
    read with the recorded columns; refused with a hint when the model records none."""
    from slimbert.data.owndata import no_data_error, recorded_data

    if options.validation != AUTO:
        return options
    record = recorded_data(options.model)
    if record is None or not record.get("validation"):
        raise no_data_error("export", options.model, "--validation", "validation")
    log.info("quality gate on %s (recorded with %s)", record["validation"], options.model)
    return options.replace(
        validation=record["validation"],
        text_column=record.get("text_column") or options.text_column,
        label_column=record.get("label_column") or options.label_column,
        encoding=record.get("encoding") or options.encoding,
    )


def _check_replaceable(out: Path) -> None:
    if not out.exists():
        return
    manifest = out / MANIFEST_FILE
    is_bundle = manifest.is_file() and read_json(manifest).get("format") == BUNDLE_FORMAT
    if not out.is_dir() or (any(out.iterdir()) and not is_bundle):
        raise ConfigError(
            f"{out} exists and is not a slimbert bundle; refusing to replace it",
            hint="choose another --out",
        )


def _recorded(model: Path) -> dict[str, Any] | None:
    from slimbert.data.owndata import recorded_data

    return recorded_data(model)


def _write_bundle(
    out: Path,
    model: Path,
    tokenizer: Path,
    source: Source,
    options: ExportOptions,
    gate: dict[str, Any],
    graph_optimization: dict[str, Any] | None = None,
) -> dict[str, Any]:
    import onnx

    import slimbert

    graph = onnx.load(str(model), load_external_data=False)
    initializers = {t.name for t in graph.graph.initializer}
    opset = next(op.version for op in graph.opset_import if op.domain in ("", "ai.onnx"))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out, kind="bundle") as tmp:
        weights = model.with_name(model.name + DATA_SUFFIX)
        data_file = weights.name if weights.is_file() else None
        os.replace(model, tmp / model.name)
        if data_file is not None:
            os.replace(weights, tmp / data_file)
        shutil.copyfile(tokenizer, tmp / TOKENIZER_FILE)
        files = {
            name: {"sha256": sha256_file(tmp / name), "bytes": (tmp / name).stat().st_size}
            for name in (model.name, *([data_file] if data_file else []), TOKENIZER_FILE)
        }
        variant = (
            "qint8" if model.name == QINT8_FILE else "fp32-opt" if options.optimize else "fp32"
        )
        manifest = {
            "format": BUNDLE_FORMAT,
            "task": source.task,
            "model_file": model.name,
            # The weights, beside the graph (ONNX external data), when the export saved them so.
            **({"model_data_file": data_file} if data_file else {}),
            "variant": variant,
            "labels": list(source.labels) if source.labels is not None else None,
            "max_length": source.max_length,
            "pooling": "mean" if source.task == "embedding" else None,
            "normalize": source.normalize,
            "dim": source.dim,
            "inputs": [i.name for i in graph.graph.input if i.name not in initializers],
            "outputs": [o.name for o in graph.graph.output],
            "opset": int(opset),
            # onnxruntime's rewrites saved in the graph: the runtime loads it without them.
            **({"graph_optimization": graph_optimization} if graph_optimization else {}),
            "files": files,
            "source_model": str(options.model),
            # What eval of the bundle defaults to (slimbert.data.owndata.recorded_data).
            "data": _recorded(options.model),
            "gate": gate,
            "slimbert_version": slimbert.__version__,
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        write_json(tmp / MANIFEST_FILE, manifest)
    return manifest
