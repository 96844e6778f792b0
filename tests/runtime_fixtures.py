"""A tiny, hand-built bundle for the runtime and handler tests (no exporter, no torch).

The classifier is an ONNX graph made with ``onnx.helper``: token embeddings gathered by
``input_ids``, mean-pooled over ``attention_mask``, projected to three logits. Cue words get
one-hot embeddings, so "good great" is positive and "bad awful" negative, and the expected
labels are known without training. The tokenizer is a WordLevel ``tokenizer.json`` whose file
pads every input to 64 tokens, as copied model tokenizers do: the runtime must switch that off.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

LABELS = ["negative", "neutral", "positive"]
CUES = {
    "negative": ["bad", "awful", "hate", "sad", "terrible", "horrible"],
    "neutral": ["table", "chair", "window", "paper", "street", "monday"],
    "positive": ["good", "great", "love", "happy", "excellent", "wonderful"],
}
FILLER = ["the", "a", "this", "my", "today", "flight", "service", "was", "is", "so"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
VOCAB = SPECIAL + FILLER + [w for label in LABELS for w in CUES[label]]
DIM = 4  # embedding width of the toy model


def build_tokenizer(path: Path, *, pad_length: int = 64) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {token: i for i, token in enumerate(VOCAB)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    # Deliberately wrong settings: the runtime must override both.
    tokenizer.enable_padding(length=pad_length, pad_id=0, pad_token="[PAD]")
    tokenizer.enable_truncation(max_length=512)
    tokenizer.save(str(path))
    return path


def _embeddings(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    table = rng.normal(0, 0.05, size=(len(VOCAB), DIM)).astype(np.float32)
    table[: len(SPECIAL)] = 0.0
    for column, label in enumerate(LABELS):
        for word in CUES[label]:
            table[VOCAB.index(word)] = 0.0
            table[VOCAB.index(word), column] = 1.0
    return table


def build_model(
    path: Path,
    *,
    task: str = "classification",
    token_type_ids: bool = False,
    normalize: bool = True,
) -> Path:
    """Save the toy graph: ``logits [batch, 3]`` or ``embeddings [batch, DIM]``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
    ]
    initializers = [
        numpy_helper.from_array(_embeddings(), "word_embeddings"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "axis_last"),
        numpy_helper.from_array(np.array([1e-9], dtype=np.float32), "eps"),
    ]
    nodes = [helper.make_node("Gather", ["word_embeddings", "input_ids"], ["tokens"])]
    hidden = "tokens"
    if token_type_ids:
        inputs.append(
            helper.make_tensor_value_info(
                "token_type_ids", TensorProto.INT64, ["batch", "sequence"]
            )
        )
        # Type 0 adds nothing, so results match the model without the input.
        types = np.zeros((2, DIM), dtype=np.float32)
        types[1] = 5.0
        initializers.append(numpy_helper.from_array(types, "type_embeddings"))
        nodes += [
            helper.make_node("Gather", ["type_embeddings", "token_type_ids"], ["typed"]),
            helper.make_node("Add", ["tokens", "typed"], ["hidden"]),
        ]
        hidden = "hidden"
    nodes += [
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis_last"], ["mask3"]),
        helper.make_node("Mul", [hidden, "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask_f", "axis1"], ["count"], keepdims=1),
        helper.make_node("Max", ["count", "eps"], ["count_safe"]),
        helper.make_node("Div", ["summed", "count_safe"], ["pooled"]),
    ]
    if task == "classification":
        weights = np.zeros((DIM, len(LABELS)), dtype=np.float32)
        weights[: len(LABELS), : len(LABELS)] = 8.0 * np.eye(len(LABELS))
        bias = np.array([0.0, 0.1, 0.0], dtype=np.float32)
        initializers += [
            numpy_helper.from_array(weights, "classifier_w"),
            numpy_helper.from_array(bias, "classifier_b"),
        ]
        nodes += [
            helper.make_node("MatMul", ["pooled", "classifier_w"], ["projected"]),
            helper.make_node("Add", ["projected", "classifier_b"], ["logits"]),
        ]
        output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(LABELS)])
    else:
        if normalize:
            nodes += [
                helper.make_node("LpNormalization", ["pooled"], ["embeddings"], axis=-1, p=2),
            ]
        else:
            nodes.append(helper.make_node("Identity", ["pooled"], ["embeddings"]))
        output = helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", DIM])
    graph = helper.make_graph(nodes, "toy", inputs, [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime the runtime supports
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def file_entry(path: Path) -> dict[str, object]:
    data = path.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def write_manifest(root: Path, **overrides: object) -> Path:
    """manifest.json per docs/bundle.md, with real sha256s of the files already in ``root``."""
    model_file = str(overrides.get("model_file", "model_fp32.onnx"))
    task = str(overrides.get("task", "classification"))
    names = [model_file, "tokenizer.json"]
    manifest: dict[str, object] = {
        "format": "slimbert-bundle/1",
        "task": task,
        "model_file": model_file,
        "variant": "fp32",
        "labels": LABELS if task == "classification" else None,
        "max_length": 16,
        "pooling": "mean" if task == "embedding" else None,
        "normalize": task == "embedding",
        "dim": DIM if task == "embedding" else None,
        "inputs": ["input_ids", "attention_mask"],
        "outputs": ["logits" if task == "classification" else "embeddings"],
        "opset": 17,
        "files": {name: file_entry(root / name) for name in names if (root / name).exists()},
        "source_model": "toy/sentiment",
        "slimbert_version": "0.1.0",
        "created": "2026-01-01T00:00:00Z",
    }
    manifest.update(overrides)
    path = root / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return path


def build_bundle(
    root: Path,
    *,
    task: str = "classification",
    token_type_ids: bool = False,
    **overrides: object,
) -> Path:
    """A complete bundle folder at ``root``; ``overrides`` replace manifest fields."""
    root.mkdir(parents=True, exist_ok=True)
    build_model(root / "model_fp32.onnx", task=task, token_type_ids=token_type_ids)
    build_tokenizer(root / "tokenizer.json")
    inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_type_ids else [])
    write_manifest(root, task=task, inputs=inputs, **overrides)
    return root
