"""Objective distill of stage sbert-train: a student learns its teacher's embeddings."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slimbert.errors import ConfigError
from slimbert.train.sbert import SbertTrainOptions, build_embedder, train_sbert
from slimbert.train.sbert_distill import load_sentences, project, teacher_targets

pytest.importorskip("sentence_transformers")

WORDS = ("the a cat dog man woman runs sleeps eats market rain park guitar car plane food").split()  # noqa: SIM905


def _sentences_file(path: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text"])
        for i in range(n):
            writer.writerow([" ".join(rng.choice(WORDS, size=4 + i % 5)) + f" {i}"])
    return path


def test_options_take_the_distill_defaults() -> None:
    options = SbertTrainOptions(objective="distill")
    assert options.resolved("loss") == "mse"
    assert options.resolved("lr") == 1e-4
    assert options.resolved("train") == "sentences"
    assert SbertTrainOptions(objective="sts").resolved("lr") == 2e-5
    with pytest.raises(ConfigError, match="mse"):
        SbertTrainOptions(objective="distill", loss="cosine")
    with pytest.raises(ConfigError, match="cosine"):
        SbertTrainOptions(objective="sts", loss="mse")


def test_distillation_brings_the_student_towards_its_teacher(
    tiny_sbert: Path, tiny_pairs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIMBERT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("slimbert.train.sbert_distill.HELD_OUT", ())
    sentences = _sentences_file(tmp_path / "sentences.csv", 300)
    options = SbertTrainOptions(
        objective="distill",
        model=str(tiny_sbert),
        teacher=str(tiny_sbert),
        layers=(0,),
        out=tmp_path / "student",
        train=str(sentences),
        validation=str(tiny_pairs["validation"]),
        epochs=2,
        batch_size=32,
        lr=1e-3,
        patience=10,
    )
    report = train_sbert(options)
    distill = report["distill"]
    assert distill["sentences"] == 300 and distill["cached"] is False
    assert -1 <= distill["agreement_start"] <= 1 and -1 <= distill["agreement"] <= 1
    # The loss is the squared distance to the teacher's embeddings: it falls as the 1-layer
    # student learns them (the saved model is the best on validation Spearman, as in every
    # SBERT stage; a random tiny model's Spearman is noise, so the loss is what shows it).
    losses = [r["train_loss"] for r in report["history"] if "train_loss" in r]
    assert len(losses) >= 2 and losses[-1] < 0.8 * losses[0]
    saved = json.loads((tmp_path / "student" / "sbert_report.json").read_text())
    assert saved["distill"]["agreement"] == pytest.approx(distill["agreement"])
    assert build_embedder(tmp_path / "student")[0].auto_model.config.num_hidden_layers == 1
    # The teacher's embeddings are cached (safetensors): a second run does not recompute them.
    assert list((tmp_path / "cache" / "distill").glob("*.safetensors"))
    again = train_sbert(
        SbertTrainOptions(**{**options.to_dict(), "out": tmp_path / "again", "epochs": 1})
    )
    assert again["distill"]["cached"] is True


class _FakeTeacher:
    """An 'embedder' of fixed random 8-d vectors, wider than a 4-d student."""

    max_seq_length = 16

    def __init__(self) -> None:
        import torch

        self.weight = torch.nn.Parameter(torch.ones(2))

    def parameters(self) -> Any:
        return iter([self.weight])

    def encode(self, sentences: list[str], **_: Any) -> np.ndarray:
        rng = np.random.default_rng(len(sentences))
        v = rng.normal(size=(len(sentences), 8)) * np.linspace(3, 0.1, 8)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_a_wider_teacher_is_projected_by_pca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIMBERT_CACHE", str(tmp_path))
    sentences = [f"s{i}" for i in range(50)]
    fake = _FakeTeacher()
    targets, components, info = teacher_targets(fake, "fake", fake.encode, sentences, 4)
    assert targets.shape == (50, 4) and components.shape == (4, 8)
    assert np.allclose(np.linalg.norm(targets, axis=1), 1, atol=1e-5)
    assert 0.5 < info["explained_variance"] < 1
    np.testing.assert_allclose(
        project(_FakeTeacher().encode(sentences), components), targets, atol=1e-5
    )
    cached, _, again = teacher_targets(fake, "fake", fake.encode, sentences, 4)
    assert again["cached"] is True and np.array_equal(cached, targets)


def test_sentences_are_drawn_round_robin_without_held_out_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _sentences_file(tmp_path / "a.csv", 100)
    b = tmp_path / "b.csv"
    b.write_text("text\nheld out one\nfresh one\nfresh two\n", encoding="utf-8")
    monkeypatch.setattr("slimbert.train.sbert_distill.held_out_sentences", lambda: {"held out one"})
    got = load_sentences([str(a), str(b)], limit=6, seed=1)
    assert len(got) == 6 and "held out one" not in got
    assert {"fresh one", "fresh two"} <= set(got)  # the small source is not crowded out
