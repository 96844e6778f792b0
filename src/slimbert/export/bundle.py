"""Stage ``export``: turn a classifier or a sentence embedder into a serving bundle (ONNX).

Step 1: load the torch model (a slimbert classifier folder, or a sentence-transformers folder
for an embedder). Step 2: export it with the TorchScript exporter, every input's batch and
sequence axes dynamic; an embedder's mean pooling and L2 normalisation are inside the graph.
Step 3: fuse attention, LayerNorm and GELU with the onnxruntime transformer optimiser and check
that the fp32 graph reproduces torch. Step 4: quantise the weights to int8 and let a quality
gate on validation data decide between int8 and fp32. Step 5: write the bundle of
``docs/bundle.md`` atomically, and an export report beside it.

Choices, and why:

* ``dynamo=False``: the TorchScript exporter's BERT graph is the one the onnxruntime
  optimiser recognises (the dynamo exporter also needs onnxscript). Attention is exported
  with transformers' ``eager`` implementation: the ``sdpa`` graph defeats the attention and
  embedding fusions.
* Optimiser ``opt_level=1``: onnxruntime's basic, hardware-independent rewrites plus the
  Python fusions (``Attention``, ``EmbedLayerNormalization``, ``SkipLayerNormalization``,
  ``BiasGelu``: contrib operators every CPU build of onnxruntime runs, x86_64 and arm64
  alike). Level 99 may serialise layout transforms (NCHWc) for the exporting machine's
  instruction set only. Hardware-specific rewrites happen at load time, in memory, instead.
* int8: dynamic quantisation, int8 weights ``per_channel`` (on all-MiniLM-L6-v2 it raises the
  fp32/int8 cosine from 0.967 to 0.993) with ``reduce_range`` (7-bit weights): x86 CPUs
  without VNNI saturate 8-bit u8s8 products, so with a full range the gate's evidence,
  measured here, would not hold everywhere the bundle runs; it costs ~0.001 cosine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from slimbert.config import Options, check
from slimbert.errors import ConfigError, DataError, ModelError
from slimbert.export.gate import MIN_MEAN_COSINE, bootstrap_drops, gate_verdict, one_row_points
from slimbert.io import atomic_dir, read_json, sha256_file, write_json, write_report

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "slimbert-bundle/1"
MANIFEST_FILE = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"
FP32_FILE = "model_fp32.onnx"
QINT8_FILE = "model_qint8.onnx"
INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")
# The TorchScript exporter's highest opset (torch.onnx._constants).
_MAX_OPSET = 20
_GATE_BATCH = 32
AUTO = "auto"
# Always part of the fp32 parity check, so it runs without validation data too: an empty
# text, a short one and one longer than any max_length (truncation).
_PROBES = ("", "ok", "the flight was delayed but the crew was lovely", " ".join(["word"] * 600))


@dataclasses.dataclass(frozen=True)
class ExportOptions(Options):
    stage: ClassVar[str] = "export"

    model: Path
    out: Path = Path("runs/bundle")
    task: Literal["auto", "classification", "embedding"] = "auto"
    # "auto": the validation set recorded with the model (slimbert.data.owndata; refused when there
    # is none); None (or "none" on the command line): no gate, fp32 is kept.
    validation: str | None = AUTO
    text_column: str = "text"
    label_column: str = "label"
    encoding: str = "utf-8"
    gate_rows: int = 2000
    max_length: int | None = None
    opset: int = 17
    optimize: bool = True
    quantize: bool = True
    max_f1_drop: float = 1.0
    # int8 is refused for a macro-F1 drop over max_f1_drop only when a paired bootstrap over
    # the validation rows tells the drop from noise at this confidence; 0: the threshold alone.
    gate_confidence: float = 0.95
    max_behaviour_drop: float = 2.0
    max_spearman_drop: float = 0.5
    max_fp32_diff: float = 1e-3
    normalize: bool | None = None

    def validate(self) -> None:
        if self.validation is not None and self.validation.strip().lower() in ("", "none"):
            # How a CLI flag says "no gate" (YAML can also write null).
            object.__setattr__(self, "validation", None)
        check(
            17 <= self.opset <= _MAX_OPSET,
            f"opset must be between 17 and {_MAX_OPSET}, got {self.opset}",
            hint="17 runs on every onnxruntime >= 1.14",
        )
        check(self.gate_rows >= 1, f"gate_rows must be at least 1, got {self.gate_rows}")
        check(
            0 <= self.gate_confidence < 1,
            f"gate_confidence must be in [0, 1), got {self.gate_confidence}",
            hint="0.95 (the default), or 0 to gate on --max-f1-drop alone",
        )
        check(
            self.max_length is None or self.max_length >= 8,
            f"max_length must be at least 8, got {self.max_length}",
        )
        check(self.max_fp32_diff > 0, f"max_fp32_diff must be positive, got {self.max_fp32_diff}")
        for name in ("max_f1_drop", "max_spearman_drop", "max_behaviour_drop"):
            # Negative thresholds are allowed: they force fp32 (int8 can never pass).
            check(math.isfinite(getattr(self, name)), f"{name} must be a finite number")
        check(self.out != self.model, "out must not be the model folder", hint="--out runs/bundle")


@dataclasses.dataclass
class _Source:
    """The torch side of an export: the module to trace and how to compute its reference."""

    task: str
    graph: Any  # nn.Module taking the inputs positionally, in ``inputs`` order
    tokenizer: Any  # the HF (fast) tokenizer the model was trained with
    inputs: list[str]
    max_length: int
    num_heads: int
    hidden_size: int
    reference: Callable[[list[str]], np.ndarray]
    labels: tuple[str, ...] | None = None
    normalize: bool = False
    dim: int | None = None


@dataclasses.dataclass
class _GateData:
    texts: list[str]
    labels: list[int] | None = None
    scores: list[float] | None = None  # pairs: texts = first sentences + second sentences


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
    source = _load_source(options)
    options = _with_recorded_validation(options)
    gate_data = _load_gate_data(options, source) if options.validation is not None else None
    timings["load_s"] = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.work-", dir=out.parent) as tmp:
        work = Path(tmp)
        from tokenizers import Tokenizer

        _write_tokenizer(source, work / TOKENIZER_FILE)
        tokenizer = Tokenizer.from_file(str(work / TOKENIZER_FILE))
        pad_id = int(source.tokenizer.pad_token_id or 0)

        tick = time.perf_counter()
        say("exporting to ONNX")
        raw = work / "model_raw.onnx"
        _export_onnx(source, raw, options.opset)
        timings["export_s"] = time.perf_counter() - tick
        tick = time.perf_counter()
        say("optimising the graph" if options.optimize else "pruning the graph")
        fp32 = work / FP32_FILE
        fused = _optimize(raw, fp32, source) if options.optimize else _prune(raw, fp32)
        timings["optimize_s"] = time.perf_counter() - tick

        gate_texts = gate_data.texts if gate_data is not None else []
        texts = list(_PROBES) + gate_texts
        tick = time.perf_counter()
        say(f"checking fp32 against torch on {len(texts):,} texts")
        reference = source.reference(texts)
        timings["torch_s"] = time.perf_counter() - tick
        tick = time.perf_counter()
        fp32_out = _OnnxRunner(fp32, tokenizer, pad_id).run(texts)
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
            _quantize(fp32, work / QINT8_FILE)
            timings["quantize_s"] = time.perf_counter() - tick
            tick = time.perf_counter()
            say(f"quality gate: int8 on {len(gate_texts):,} validation texts")
            qint8_out = _OnnxRunner(work / QINT8_FILE, tokenizer, pad_id).run(gate_texts)
            timings["qint8_gate_s"] = time.perf_counter() - tick
        elif options.quantize:
            log.info("no validation data: int8 cannot be gated, keeping fp32")
        fp32_gate = fp32_out[len(_PROBES) :]
        if source.task == "classification":
            suite = None
            if qint8_out is not None:
                tick = time.perf_counter()
                say("quality gate: behavioural suite")
                suite = _behaviour(source, [fp32, work / QINT8_FILE], tokenizer, pad_id)
                timings["behaviour_s"] = time.perf_counter() - tick
            gate = _classification_gate(options, source, gate_data, fp32_gate, qint8_out, diff)
            if suite is not None:
                gate = _behaviour_gate(options, gate, *suite)
        else:
            gate = _embedding_gate(options, gate_data, fp32_gate, qint8_out, diff)
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
        sizes = {"fp32": _sizes(fp32)}
        if qint8_out is not None:
            sizes["qint8"] = _sizes(work / QINT8_FILE)
        gate["verdict"] = gate_verdict(gate, sizes, options.quantize)
        (log.info if gate["chosen"] == "qint8" or qint8_out is None else log.warning)(
            "%s", gate["verdict"]
        )
        manifest = _write_bundle(out, work / chosen, work / TOKENIZER_FILE, source, options, gate)
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
    log.info("bundle %s: %s, %d bytes", out, chosen, manifest["files"][chosen]["bytes"])
    return manifest


# -- step 1: the torch model ---------------------------------------------------------------
def _load_source(options: ExportOptions) -> _Source:
    from slimbert.models.load import META_FILE, resolve_model

    path = Path(options.model)
    if not path.is_dir():
        path = Path(resolve_model(str(options.model)))  # the MiniLM alias; else ModelError
        if not path.is_dir():
            raise ModelError(f"{options.model} is not a model folder", hint="pass a local folder")
    is_classifier = (path / META_FILE).is_file()
    is_embedder = (path / "modules.json").is_file()
    task: str = options.task
    if task == "auto":
        task = "classification" if is_classifier else "embedding" if is_embedder else "none"
    if task == "classification" and is_classifier:
        return _load_classifier(path, options)
    if task == "embedding" and is_embedder:
        return _load_embedder(path, options)
    kinds = {
        "classification": f"a slimbert classifier (no {META_FILE})",
        "embedding": "a sentence-transformers embedder (no modules.json)",
    }
    raise ModelError(
        f"{path} is not {kinds.get(task, ' nor '.join(kinds.values()))}",
        hint="export a folder written by `slimbert train`/`slimbert distill`, or a "
        "sentence-transformers folder",
    )


def _load_classifier(path: Path, options: ExportOptions) -> _Source:
    from slimbert.models.load import TorchClassifier, predict_logits

    clf = TorchClassifier.load(path)
    if clf.meta.head != "linear":
        raise ModelError(
            f"{path}: the {clf.meta.head!r} head is not exportable yet",
            hint="export a classifier trained with --head linear",
        )
    config: Any = clf.module.config
    clf.max_length = _max_length(options.max_length or clf.meta.max_length, config, path)
    inputs = _graph_inputs(clf.tokenizer, clf.module)
    _eager_attention(clf.module)

    def reference(texts: list[str]) -> np.ndarray:
        return predict_logits(clf, texts, batch_size=_GATE_BATCH)

    return _Source(
        task="classification",
        graph=_graph_module(clf.module, inputs, "classification", normalize=False),
        tokenizer=clf.tokenizer,
        inputs=inputs,
        max_length=clf.max_length,
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
        reference=reference,
        labels=clf.label_names,
    )


def _load_embedder(path: Path, options: ExportOptions) -> _Source:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(path), device="cpu")  # never trust_remote_code
    kinds = [type(module).__name__ for module in st]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise ModelError(
            f"{path}: only Transformer → Pooling(mean) → [Normalize] embedders are exportable, "
            f"this one has {' → '.join(kinds)}"
        )
    pooling: dict[str, Any] = st[1].get_config_dict()  # type: ignore[operator]
    other_modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True]
    if pooling.get("pooling_mode", "mean") != "mean" or (
        "pooling_mode_mean_tokens" in pooling and other_modes != ["pooling_mode_mean_tokens"]
    ):
        raise ModelError(f"{path}: only mean pooling is exportable, got {pooling}")
    transformer: Any = st[0]
    encoder: Any = getattr(transformer, "auto_model", None) or transformer.model
    config: Any = encoder.config
    normalize = kinds[-1] == "Normalize" if options.normalize is None else options.normalize
    own = st.max_seq_length or config.max_position_embeddings
    max_length = _max_length(options.max_length or int(own), config, path)
    from sentence_transformers.models import Normalize

    # The reference is sentence-transformers itself, with the normalisation the graph gets.
    reference_st = SentenceTransformer(
        modules=[transformer, st[1]] + ([Normalize()] if normalize else []), device="cpu"
    )
    reference_st.max_seq_length = max_length
    reference_st.eval()

    def reference(texts: list[str]) -> np.ndarray:
        vectors = reference_st.encode(
            texts, batch_size=_GATE_BATCH, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    tokenizer = transformer.tokenizer
    inputs = _graph_inputs(tokenizer, encoder)
    _eager_attention(encoder)
    return _Source(
        task="embedding",
        graph=_graph_module(encoder, inputs, "embedding", normalize=normalize),
        tokenizer=tokenizer,
        inputs=inputs,
        max_length=max_length,
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
        reference=reference,
        normalize=normalize,
        dim=int(config.hidden_size),
    )


def _max_length(max_length: int, config: Any, path: Path) -> int:
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and max_length > int(positions):
        raise ConfigError(
            f"max_length {max_length} exceeds the {positions} positions of {path}",
            hint=f"--max-length {positions} or less",
        )
    return max_length


def _graph_inputs(tokenizer: Any, module: Any) -> list[str]:
    import inspect

    accepted = inspect.signature(module.forward).parameters
    produced = set(tokenizer.model_input_names)
    inputs = [name for name in INPUT_ORDER if name in produced and name in accepted]
    if inputs[:2] != ["input_ids", "attention_mask"]:
        raise ModelError(f"the model needs input_ids and attention_mask, it takes {inputs}")
    return inputs


def _eager_attention(module: Any) -> None:
    # The optimiser fuses the eager attention pattern; sdpa's exported graph stays unfused.
    if hasattr(module, "set_attn_implementation"):
        module.set_attn_implementation("eager")
    else:  # pragma: no cover - older transformers
        module.config._attn_implementation = "eager"
    module.eval()


def _graph_module(inner: Any, inputs: list[str], task: str, normalize: bool) -> Any:
    import torch
    from torch import nn

    class Graph(nn.Module):
        """Positional inputs in ``inputs`` order → logits, or pooled (normalised) vectors."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            batch = dict(zip(inputs, tensors, strict=True))
            if task == "classification":
                return self.inner(**batch).logits
            states = self.inner(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            # Same clamp as sentence-transformers' mean pooling.
            vectors = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            if normalize:
                vectors = nn.functional.normalize(vectors, p=2.0, dim=1)
            return vectors

    return Graph().eval()


# -- steps 2-4: export, optimise, quantise ---------------------------------------------------
@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence exporter, optimiser and quantiser chatter for the duration of a call.

    Tracer warnings; the optimiser's per-fusion INFO lines; the quantiser's advice to
    pre-process, which it logs as a WARNING on the root logger (a logger's filter sees only
    records logged on that logger, so other loggers' warnings still pass).
    """

    def drop(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR

    root = logging.getLogger()
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    root.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.removeFilter(drop)
        logging.disable(previous)


def _export_onnx(source: _Source, path: Path, opset: int) -> None:
    import torch

    # Two texts of different lengths, so the traced graph sees real padding.
    sample = source.tokenizer(
        list(_PROBES[1:3]),
        padding=True,
        truncation=True,
        max_length=source.max_length,
        return_tensors="pt",
    )
    args = tuple(sample[name].to(torch.int64) for name in source.inputs)
    output = "logits" if source.task == "classification" else "embeddings"
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "sequence"} for name in source.inputs}
    axes[output] = {0: "batch"}
    log.info("exporting %s (opset %d, inputs %s)", source.task, opset, source.inputs)
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            source.graph,
            args,
            str(path),
            input_names=source.inputs,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )


def _optimize(raw: Path, dst: Path, source: _Source) -> dict[str, int]:
    from onnxruntime.transformers.optimizer import optimize_model

    # "bert" for every encoder, MPNet included: measured on MPNet (onnxruntime 1.32) it fuses
    # SkipLayerNormalization and BiasGelu only and the graph matches torch to ~1e-7. Its
    # Attention pattern has the relative position bias as a second Add before the mask Add
    # (Softmax <- Add <- Add <- Div <- MatMul), which no "bert" path matches, and its
    # positions come from input_ids (RoBERTa-style, no token types), so Attention and
    # EmbedLayerNormalization stay unfused rather than fused wrongly. "tnlr" (the type
    # built for relative position bias) fuses exactly the same nodes, so it buys nothing.
    with _quiet():
        optimizer = optimize_model(
            str(raw),
            model_type="bert",
            num_heads=source.num_heads,
            hidden_size=source.hidden_size,
            opt_level=1,  # portable: see the module docstring
            use_gpu=False,
        )
    fused = {k: int(v) for k, v in optimizer.get_fused_operator_statistics().items() if v}
    log.info("fused operators: %s", fused or "none")
    _prune_opsets(optimizer.model)
    optimizer.save_model_to_file(str(dst), use_external_data_format=False)
    return fused


def _prune(raw: Path, dst: Path) -> dict[str, int]:
    import onnx

    model = onnx.load(str(raw))
    _prune_opsets(model)
    onnx.save_model(model, str(dst))
    return {}


def _prune_opsets(model: Any) -> None:
    # onnxruntime declares every domain it knows (training, nchwc, aten) in models it saves;
    # keep the ones the nodes use, so the graph states what a runtime must provide.
    used = {node.domain for node in model.graph.node} | {""}
    keep = [op for op in model.opset_import if op.domain in used or op.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def _quantize(fp32: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(
            str(fp32),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            # Shape inference cannot type the fused contrib ops' outputs; they are float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    log.info("int8: %d bytes (fp32 %d)", dst.stat().st_size, fp32.stat().st_size)


class _OnnxRunner:
    """Runs a graph as the runtime will: declared inputs only, length-sorted padded batches."""

    def __init__(self, path: Path, tokenizer: Any, pad_id: int, threads: int = 2) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # In memory only, so hardware-specific rewrites are fine here.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        unknown = [name for name in self.inputs if name not in INPUT_ORDER]
        if unknown:
            raise ModelError(f"{path.name} declares inputs slimbert cannot feed: {unknown}")
        self.tokenizer = tokenizer
        self.pad_id = pad_id

    def run(self, texts: Sequence[str], batch_size: int = _GATE_BATCH) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        results: list[np.ndarray] = []
        for start in range(0, len(order), batch_size):
            batch = [encodings[i] for i in order[start : start + batch_size]]
            width = max(len(e.ids) for e in batch)
            arrays = {
                "input_ids": np.full((len(batch), width), self.pad_id, dtype=np.int64),
                "attention_mask": np.zeros((len(batch), width), dtype=np.int64),
                "token_type_ids": np.zeros((len(batch), width), dtype=np.int64),
            }
            for row, enc in enumerate(batch):
                arrays["input_ids"][row, : len(enc.ids)] = enc.ids
                arrays["attention_mask"][row, : len(enc.ids)] = enc.attention_mask
                arrays["token_type_ids"][row, : len(enc.ids)] = enc.type_ids
            feed = {name: arrays[name] for name in self.inputs}
            results.append(self.session.run(None, feed)[0])
        if not results:
            return np.zeros((0, 0), dtype=np.float32)
        out = np.empty((len(texts), results[0].shape[1]), dtype=np.float32)
        out[order] = np.concatenate(results)
        return out


# -- step 4: the quality gate ----------------------------------------------------------------
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


def _load_gate_data(options: ExportOptions, source: _Source) -> _GateData:
    from slimbert.data.load import load_texts

    assert options.validation is not None
    if source.task == "embedding":
        pairs = _pair_spec(options.validation, options.encoding, options.gate_rows)
        if pairs is None:
            pairs = _read_pairs(options.validation, options.encoding, options.gate_rows)
        if pairs is not None:
            return pairs
    data = load_texts(
        options.validation,
        text_column=options.text_column,
        label_column=options.label_column if source.task == "classification" else None,
        labels=source.labels,
        encoding=options.encoding,
        require_labels=source.task == "classification",
    )
    if len(data) == 0:
        raise DataError("no rows for the quality gate", path=options.validation)
    data = data.subset(range(min(len(data), options.gate_rows)))
    return _GateData(texts=data.texts, labels=data.labels)


def _pair_spec(spec: str, encoding: str, limit: int) -> _GateData | None:
    """Scored pairs named the way every similarity stage names them (stsb:validation, ...)."""
    from slimbert.data.pairs import is_pair_spec, load_pairs

    if not is_pair_spec(spec):
        return None
    pairs = load_pairs(spec, encoding=encoding, limit=limit)
    return _GateData(texts=pairs.first + pairs.second, scores=pairs.require_scores())


def _read_pairs(spec: str, encoding: str, limit: int) -> _GateData | None:
    """Scored sentence pairs (STS-b style) from a CSV/TSV, with or without a header."""
    import csv

    path = Path(spec)
    if path.suffix.lower() not in {".csv", ".tsv"} or not path.is_file():
        return None
    with open(path, encoding=encoding, newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    if not rows:
        return None
    names = [c.strip().lower() for c in rows[0]]
    header = {"sentence1", "sentence2", "score"} <= set(names)
    if header:
        columns = (names.index("sentence1"), names.index("sentence2"), names.index("score"))
    elif len(rows[0]) == 3 and _is_number(rows[0][2]):
        columns = (0, 1, 2)
    else:
        return None
    first, second, scores = [], [], []
    skip = 1 if header else 0
    for line, row in enumerate(rows[skip : skip + limit], start=1 + skip):
        try:
            scores.append(float(row[columns[2]]))
            first.append(row[columns[0]])
            second.append(row[columns[1]])
        except (IndexError, ValueError) as exc:
            raise DataError(f"not a scored sentence pair ({exc})", path=spec, line=line) from exc
    if not scores:
        raise DataError("no sentence pairs for the quality gate", path=spec)
    return _GateData(texts=first + second, scores=scores)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _classification_gate(
    options: ExportOptions,
    source: _Source,
    data: _GateData | None,
    fp32: np.ndarray,
    qint8: np.ndarray | None,
    diff: float,
) -> dict[str, Any]:
    from slimbert.metrics import classification_report

    assert source.labels is not None
    gate: dict[str, Any] = {
        "data": options.validation,
        "rows": 0 if data is None else len(data.texts),
        "fp32": {"max_abs_logit_diff": diff, "macro_f1": None},
        "qint8": None,
        "threshold_points": options.max_f1_drop,
        "passed": None,
        "chosen": "fp32",
    }
    if data is None or data.labels is None:
        return gate
    f1_fp32 = classification_report(data.labels, fp32.argmax(1), source.labels)["macro_f1"]
    gate["fp32"]["macro_f1"] = f1_fp32
    if qint8 is None:
        return gate
    f1_int8 = classification_report(data.labels, qint8.argmax(1), source.labels)["macro_f1"]
    drop = 100 * (f1_fp32 - f1_int8)
    truth, p32, p8 = np.asarray(data.labels), fp32.argmax(1), qint8.argmax(1)
    k = len(source.labels)
    gate["one_row_points"] = one_row_points(truth, p32, k)
    confidence = gate["confidence"] = options.gate_confidence
    # Confidence 0 is the old rule (the drop alone): no bootstrap to run.
    low = (
        float(np.quantile(bootstrap_drops(truth, p32, p8, k), 1 - confidence))
        if confidence
        else drop
    )
    gate["qint8"] = {
        "label_agreement": float(np.mean(p8 == p32)),
        "macro_f1": f1_int8,
        "macro_f1_drop_points": drop,
        # McNemar's discordant rows: int8 wrong where fp32 is right, and the other way round.
        "worse_rows": int(np.sum((p32 == truth) & (p8 != truth))),
        "better_rows": int(np.sum((p32 != truth) & (p8 == truth))),
        "drop_low_points": low,
        "distinguishable": bool(low > 0),
    }
    over = drop > options.max_f1_drop
    # A negative threshold forces fp32; otherwise a drop within noise does not refuse int8.
    refused = over and (options.max_f1_drop < 0 or low > 0)
    return _decide(gate, not refused)


def _behaviour(
    source: _Source, graphs: list[Path], tokenizer: Any, pad_id: int
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The behavioural suite's results for the fp32 and the int8 graph (3-class sentiment)."""
    from slimbert.models import behaviour
    from slimbert.models.scoring import softmax

    if source.labels is None or not behaviour.applies_to(source.labels):
        return None
    cases = behaviour.load_suite()
    results = []
    for graph in graphs:
        runner = _OnnxRunner(graph, tokenizer, pad_id)

        def probabilities(texts: list[str], runner: _OnnxRunner = runner) -> np.ndarray:
            return softmax(runner.run(texts))

        results.append(behaviour.run_suite(probabilities, source.labels, cases))
    return results[0], results[1]


def _behaviour_gate(
    options: ExportOptions, gate: dict[str, Any], fp32: dict[str, Any], qint8: dict[str, Any]
) -> dict[str, Any]:
    """int8 must also keep the behavioural pass rate within ``max_behaviour_drop`` points."""
    drop = 100 * (fp32["pass_rate"] - qint8["pass_rate"])
    gate["behaviour"] = {
        "cases": fp32["cases"],
        "fp32_pass_rate": fp32["pass_rate"],
        "qint8_pass_rate": qint8["pass_rate"],
        "drop_points": drop,
        "threshold_points": options.max_behaviour_drop,
    }
    if gate.get("passed") and drop > options.max_behaviour_drop:
        return _decide(gate, False)
    return gate


def _embedding_gate(
    options: ExportOptions,
    data: _GateData | None,
    fp32: np.ndarray,
    qint8: np.ndarray | None,
    diff: float,
) -> dict[str, Any]:
    pairs = data is not None and data.scores is not None
    gate: dict[str, Any] = {
        "data": options.validation,
        "rows": 0 if data is None else len(data.scores or data.texts),
        "pairs": pairs,
        "fp32": {"max_abs_embedding_diff": diff, "spearman": None},
        "qint8": None,
        "metric": "spearman_drop_points" if pairs else "cosine_mean",
        "threshold_points": options.max_spearman_drop if pairs else None,
        "threshold_cosine": None if pairs else MIN_MEAN_COSINE,
        "passed": None,
        "chosen": "fp32",
    }
    if data is None:
        return gate
    if data.scores is not None:
        gate["fp32"]["spearman"] = _spearman(fp32, data.scores)
    if qint8 is None:
        return gate
    cosine = np.sum(_unit(fp32) * _unit(qint8), axis=1)
    gate["qint8"] = {"cosine_mean": float(cosine.mean()), "cosine_min": float(cosine.min())}
    if data.scores is None:
        return _decide(gate, float(cosine.mean()) >= MIN_MEAN_COSINE)
    rho = _spearman(qint8, data.scores)
    drop = 100 * (gate["fp32"]["spearman"] - rho)
    gate["qint8"].update({"spearman": rho, "spearman_drop_points": drop})
    return _decide(gate, drop <= options.max_spearman_drop)


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _spearman(vectors: np.ndarray, scores: list[float]) -> float:
    from scipy.stats import spearmanr

    half = len(scores)
    similarity = np.sum(_unit(vectors[:half]) * _unit(vectors[half:]), axis=1)
    return float(spearmanr(similarity, scores).statistic)


def _decide(gate: dict[str, Any], passed: bool) -> dict[str, Any]:
    gate["passed"] = passed
    gate["chosen"] = "qint8" if passed else "fp32"
    return gate


def _sizes(model: Path) -> dict[str, int]:
    """A model file's bytes, and its bytes deflated as the package's zip stores it."""
    import zlib

    packer = zlib.compressobj(6)
    zipped = 0
    with open(model, "rb") as fh:
        while chunk := fh.read(1 << 22):
            zipped += len(packer.compress(chunk))
    zipped += len(packer.flush())
    return {"bytes": model.stat().st_size, "zipped_bytes": zipped}


# -- step 5: the bundle ----------------------------------------------------------------------
def _write_tokenizer(source: _Source, path: Path) -> None:
    from tokenizers import Tokenizer

    # A copy of the backend the model was trained with (not the folder's tokenizer.json,
    # which transformers may adjust on load); the runtime pads each batch itself.
    tokenizer = Tokenizer.from_str(source.tokenizer.backend_tokenizer.to_str())
    tokenizer.no_padding()
    tokenizer.enable_truncation(
        source.max_length, stride=0, strategy="longest_first", direction="right"
    )
    tokenizer.save(str(path))


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
    source: _Source,
    options: ExportOptions,
    gate: dict[str, Any],
) -> dict[str, Any]:
    import onnx

    import slimbert

    graph = onnx.load(str(model), load_external_data=False)
    initializers = {t.name for t in graph.graph.initializer}
    opset = next(op.version for op in graph.opset_import if op.domain in ("", "ai.onnx"))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out, kind="bundle") as tmp:
        os.replace(model, tmp / model.name)
        shutil.copyfile(tokenizer, tmp / TOKENIZER_FILE)
        files = {
            name: {"sha256": sha256_file(tmp / name), "bytes": (tmp / name).stat().st_size}
            for name in (model.name, TOKENIZER_FILE)
        }
        variant = (
            "qint8" if model.name == QINT8_FILE else "fp32-opt" if options.optimize else "fp32"
        )
        manifest = {
            "format": BUNDLE_FORMAT,
            "task": source.task,
            "model_file": model.name,
            "variant": variant,
            "labels": list(source.labels) if source.labels is not None else None,
            "max_length": source.max_length,
            "pooling": "mean" if source.task == "embedding" else None,
            "normalize": source.normalize,
            "dim": source.dim,
            "inputs": [i.name for i in graph.graph.input if i.name not in initializers],
            "outputs": [o.name for o in graph.graph.output],
            "opset": int(opset),
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
