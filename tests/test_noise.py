"""Typo noise for training text (slimbert.train.noise)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slimbert.errors import ConfigError
from slimbert.train.finetune import TrainOptions
from slimbert.train.noise import MIN_LENGTH, typo, typo_noise


def test_zero_rate_is_identity() -> None:
    texts = ["The food was cold.", "Great service!"]
    assert typo_noise(texts, 0.0, seed=1) == texts


def test_same_seed_same_noise_other_seed_other_noise() -> None:
    texts = ["The waiter was incredibly rude and the dessert was disappointing."] * 20
    assert typo_noise(texts, 0.5, seed=3) == typo_noise(texts, 0.5, seed=3)
    assert typo_noise(texts, 0.5, seed=3) != typo_noise(texts, 0.5, seed=4)


def test_rate_is_roughly_the_share_of_long_words_changed() -> None:
    words = ["wonderful", "terrible", "service", "delivery"] * 500
    noisy = typo_noise([" ".join(words)], 0.2, seed=0)[0].split(" ")
    changed = sum(a != b for a, b in zip(words, noisy, strict=True)) / len(words)
    # A swap of two equal letters is not drawn, so nearly every chosen word changes.
    assert 0.15 < changed < 0.25


def test_short_words_and_punctuation_are_kept() -> None:
    text = "It is not bad, I am ok!"
    assert typo_noise([text], 0.99, seed=0) == [text]


@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC", min_size=MIN_LENGTH, max_size=15),
    st.integers(0, 10**6),
)
def test_typo_keeps_first_and_last_letter_and_length_within_one(word: str, seed: int) -> None:
    out = typo(word, random.Random(seed))
    assert out[0] == word[0] and out[-1] == word[-1]
    assert abs(len(out) - len(word)) <= 1


@given(st.text(max_size=80), st.floats(0, 0.99), st.integers(0, 1000))
def test_any_text_keeps_its_non_letters(text: str, rate: float, seed: int) -> None:
    (out,) = typo_noise([text], rate, seed)
    strip = lambda s: [c for c in s if not ("a" <= c.lower() <= "z")]  # noqa: E731
    assert strip(out) == strip(text)


def test_option_is_validated() -> None:
    with pytest.raises(ConfigError):
        TrainOptions(typos=1.0)
    assert TrainOptions(typos=0.1).typos == 0.1


def test_fit_trains_on_fresh_noise_each_epoch(tiny_model: Path, tmp_path: Path) -> None:
    from slimbert.data.load import TextSet
    from slimbert.models.load import TorchClassifier
    from slimbert.train.loop import FitSettings, fit

    texts = [
        f"wonderful delivery number {i}" if i % 2 else f"terrible service again {i}"
        for i in range(16)
    ]
    data = TextSet(
        texts=texts,
        labels=[i % 2 for i in range(16)],
        label_names=("a", "b"),
        ids=[str(i) for i in range(16)],
        source="test",
    )
    clf = TorchClassifier.build(tiny_model, ("a", "b"), max_length=16)
    seen: list[list[str]] = []
    encode = clf.encode

    def spy(batch: list[str]) -> dict[str, list[list[int]]]:
        seen.append(list(batch))
        return encode(batch)

    clf.encode = spy  # type: ignore[method-assign]
    settings = FitSettings(lr=1e-3, batch_size=8, epochs=2, patience=5, typos=0.5)
    fit(clf, data, data, settings, tmp_path / "m")
    training = [s for s in seen if len(s) == 16 and s != texts]  # validation stays clean
    assert len(training) == 2 and training[0] != training[1]
    assert any(s == texts for s in seen)
