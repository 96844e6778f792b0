"""Export steps 1 to 3: a torch model becomes an ONNX graph, fused, and quantised to int8.

Step 1: load the torch model (a slimbert classifier folder, or a sentence-transformers folder
for an embedder). Step 2: export it with the TorchScript exporter, every input's batch and
sequence axes dynamic; an embedder's mean pooling and L2 normalisation are inside the graph.
Step 3: fuse attention, LayerNorm and GELU with the onnxruntime transformer optimiser (the
caller checks that the fp32 graph reproduces torch), and quantise the weights to int8.
:class:`OnnxRunner` runs a graph as the runtime will, for those checks and the quality gate
(:mod:`slimbert.export.gate`). Last, :func:`runtime_graph` saves the chosen graph as the
function loads it for a short cold start: weights in a file beside it, onnxruntime's portable
rewrites done (docs/bundle.md). The bundle stage (:mod:`slimbert.export.bundle`) chains them.

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
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slimbert.errors import ConfigError, ModelError
from slimbert.runtime.bundle import FEEDABLE_INPUTS as INPUT_ORDER

if TYPE_CHECKING:
    from slimbert.export.options import ExportOptions

log = logging.getLogger(__name__)

GATE_BATCH = 32
# Always part of the fp32 parity check, so it runs without validation data too: an empty
# text, a short one and one longer than any max_length (truncation).
PROBES = ("", "ok", "the flight was delayed but the crew was lovely", " ".join(["word"] * 600))


@dataclasses.dataclass
class Source:
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


def load_source(options: ExportOptions) -> Source:
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


def _load_classifier(path: Path, options: ExportOptions) -> Source:
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
        return predict_logits(clf, texts, batch_size=GATE_BATCH)

    return Source(
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


def _load_embedder(path: Path, options: ExportOptions) -> Source:
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
            texts, batch_size=GATE_BATCH, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    tokenizer = transformer.tokenizer
    inputs = _graph_inputs(tokenizer, encoder)
    _eager_attention(encoder)
    return Source(
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


@contextlib.contextmanager
def quiet() -> Iterator[None]:
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


def export_onnx(source: Source, path: Path, opset: int) -> None:
    import torch

    # Two texts of different lengths, so the traced graph sees real padding.
    sample = source.tokenizer(
        list(PROBES[1:3]),
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
    with quiet(), torch.no_grad():
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


def fuse_graph(raw: Path, dst: Path, source: Source) -> dict[str, int]:
    from onnxruntime.transformers.optimizer import optimize_model

    # "bert" for every encoder, MPNet included: measured on MPNet (onnxruntime 1.32) it fuses
    # SkipLayerNormalization and BiasGelu only and the graph matches torch to ~1e-7. Its
    # Attention pattern has the relative position bias as a second Add before the mask Add
    # (Softmax <- Add <- Add <- Div <- MatMul), which no "bert" path matches, and its
    # positions come from input_ids (RoBERTa-style, no token types), so Attention and
    # EmbedLayerNormalization stay unfused rather than fused wrongly. "tnlr" (the type
    # built for relative position bias) fuses exactly the same nodes, so it buys nothing.
    with quiet():
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


def prune_graph(raw: Path, dst: Path) -> dict[str, int]:
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


def quantize_int8(fp32: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet():
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


class OnnxRunner:
    """Runs a graph as the runtime will: declared inputs only, length-sorted padded batches."""

    def __init__(
        self, path: Path, tokenizer: Any, pad_id: int, threads: int = 2, *, optimized: bool = False
    ) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # In memory only, so hardware-specific rewrites are fine here; a graph optimised by
        # runtime_graph runs as it is, as the runtime runs it.
        opts.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            if optimized
            else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        unknown = [name for name in self.inputs if name not in INPUT_ORDER]
        if unknown:
            raise ModelError(f"{path.name} declares inputs slimbert cannot feed: {unknown}")
        self.tokenizer = tokenizer
        self.pad_id = pad_id

    def run(self, texts: Sequence[str], batch_size: int = GATE_BATCH) -> np.ndarray:
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


def write_tokenizer(source: Source, path: Path) -> None:
    from tokenizers import Tokenizer

    # A copy of the backend the model was trained with (not the folder's tokenizer.json,
    # which transformers may adjust on load); the runtime pads each batch itself.
    tokenizer = Tokenizer.from_str(source.tokenizer.backend_tokenizer.to_str())
    tokenizer.no_padding()
    tokenizer.enable_truncation(
        source.max_length, stride=0, strategy="longest_first", direction="right"
    )
    tokenizer.save(str(path))


# -- step 6: the graph as the function loads it ------------------------------------------------
# onnxruntime's own rewrites up to this level are saved by the export, so the function runs
# the graph with optimisations off. "extended" is the highest level onnxruntime calls portable:
# it fuses into contrib operators every CPU build runs (x86_64 and arm64); "all" adds layout
# transforms for the exporting CPU (onnxruntime warns when such a graph is saved).
RUNTIME_LEVEL = "extended"
# Weights in a file of their own (ONNX external data): onnxruntime maps it instead of parsing
# and copying 16 MB of protobuf, which was most of the session's creation time.
DATA_SUFFIX = ".data"
# The graph file names the sha256 of its weights file, so the graph's digest (what the
# manifest and an index record as the model's) changes whenever a weight does.
WEIGHTS_SHA256_KEY = "slimbert.weights_sha256"


def runtime_graph(
    model: Path, dst: Path, *, optimize: bool = True, size_threshold: int = 1024
) -> dict[str, Any] | None:
    """Save ``model`` as the function loads it: the graph in ``dst``, its weights in ``dst`` +
    ``.data``, and with ``optimize`` onnxruntime's rewrites up to :data:`RUNTIME_LEVEL` done.

    Tensors under ``size_threshold`` bytes stay in the graph (a graph with none over it gets
    no weights file). Returns the manifest's ``graph_optimization`` record (``None`` without
    ``optimize``). The
    caller checks that the result answers as ``model`` does (:class:`OnnxRunner` with
    ``optimized=True``).
    """
    import onnx
    import onnxruntime as ort

    from slimbert.io import current_umask, sha256_file

    if optimize:
        saved = dst.with_name(f".opt-{dst.name}")  # .onnx: a .ort name means ORT format
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = str(saved)
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        graph = onnx.load(str(saved))
        saved.unlink()
    else:
        graph = onnx.load(str(model))
    _prune_opsets(graph)
    data = dst.with_name(dst.name + DATA_SUFFIX)
    data.unlink(missing_ok=True)  # external data is appended to an existing file
    onnx.save_model(
        graph,
        str(dst),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data.name,
        size_threshold=size_threshold,
    )
    if data.is_file():
        graph = onnx.load(str(dst), load_external_data=False)
        props = {p.key: p.value for p in graph.metadata_props}
        onnx.helper.set_model_props(graph, {**props, WEIGHTS_SHA256_KEY: sha256_file(data)})
        onnx.save_model(graph, str(dst))  # the graph only: its tensors still point at data
        data.chmod(0o666 & ~current_umask())  # onnx may write it 0600, as a temporary file
        log.info("runtime graph: %s + %s (%d bytes)", dst.name, data.name, data.stat().st_size)
    dst.chmod(0o666 & ~current_umask())
    return {"level": RUNTIME_LEVEL, "onnxruntime": ort.__version__} if optimize else None
