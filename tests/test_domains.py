"""The multi-domain built-ins (sst3, sentiment3) and the VADER baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from slimbert.data.domains import detokenize, interleave
from slimbert.data.load import TextSet, load_texts
from slimbert.errors import DataError

SST = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst5"
needs_sst = pytest.mark.skipif(not SST.is_dir(), reason=f"{SST} is absent (shared data)")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("they wo n't sit still , however .", "They won't sit still, however."),
        ("it 's a -lrb- very -rrb- good film !", "It's a (very) good film!"),
        ("`` great '' , he said", '"great", he said'),
        ("i did n't like it -- at all", "I didn't like it - at all"),
        ("costs $ 5 , or 10 %", "Costs $5, or 10%"),
    ],
)
def test_detokenize_reads_as_typed(raw: str, expected: str) -> None:
    assert detokenize(raw) == expected


@given(st.text(alphabet="abc ,.'!-n`()", max_size=40))
def test_detokenize_keeps_every_word_character(raw: str) -> None:
    # Only spaces and quote marks change: no letter is lost or invented, none moves.
    out = detokenize(raw)
    assert [c.lower() for c in out if c.isalnum()] == [c.lower() for c in raw if c.isalnum()]


def _set(texts: list[str], labels: list[int] | None, source: str) -> TextSet:
    return TextSet(
        texts=texts,
        labels=labels,
        label_names=("negative", "neutral", "positive"),
        ids=[f"{source}{i}" for i in range(len(texts))],
        source=source,
    )


def test_interleave_mixes_in_proportion_and_keeps_every_row() -> None:
    a = _set([f"a{i}" for i in range(6)], [0, 1, 2, 0, 1, 2], "a")
    b = _set(["b0", "b1", "b2"], [2, 2, 2], "b")
    joined = interleave(a, b, source="ab")
    assert sorted(joined.texts) == sorted(a.texts + b.texts)
    # Each text keeps its own label and id.
    for text, label, row_id in zip(joined.texts, joined.labels or [], joined.ids, strict=True):
        src = a if text.startswith("a") else b
        i = src.texts.index(text)
        assert (label, row_id) == ((src.labels or [])[i], src.ids[i])
    assert {t[0] for t in joined.texts[:3]} == {"a", "b"}  # the first rows hold both domains
    with pytest.raises(DataError, match="only one of them is labelled"):
        interleave(a, _set(["x"], None, "c"), source="ac")


@needs_sst
def test_sst3_splits_map_five_classes_to_three() -> None:
    train = load_texts("sst3:train")
    test = load_texts("sst3:test")
    # The treebank's repeated sentences are dropped from the earlier split (docstring).
    assert (len(train), len(load_texts("sst3:validation")), len(test)) == (8531, 1100, 2210)
    assert test.label_counts() == {"negative": 912, "neutral": 389, "positive": 909}
    assert train.ids[0] == "sst-train-1" and " n't" not in " ".join(train.texts)


@needs_sst
def test_sentiment3_joins_both_domains_and_keeps_tests_apart() -> None:
    train = load_texts("sentiment3:train")
    tweets = load_texts("tweets3:train")
    films = load_texts("sst3:train")
    assert len(train) == len(tweets) + len(films)
    assert set(train.ids) == set(tweets.ids) | set(films.ids)
    pool = load_texts("sentiment3:pool")
    assert pool.labels is None
    assert sum(i.startswith("sst-train-") for i in pool.ids) == len(films)
    # No test or validation sentence of either domain is in the gold or the pool.
    held = set(load_texts("sentiment3:test").texts) | set(load_texts("sentiment3:validation").texts)
    assert not held & set(train.texts)
    quick = load_texts("sentiment3-quick:train")
    assert {i[0] for i in quick.ids} == {"t", "s"} and len(quick) == 800


def test_vader_reads_compound_as_its_authors_do() -> None:
    pytest.importorskip("vaderSentiment")
    from slimbert.models.baselines import VaderScorer

    vader = VaderScorer()
    texts = ["This movie was terrible.", "The meeting is at 3pm.", "What a wonderful day!"]
    logits = vader.logits(texts)
    assert logits.shape == (3, 3)
    assert [vader.label_names[i] for i in logits.argmax(1)] == ["negative", "neutral", "positive"]
    # P(positive) rises with the compound score (the behavioural direction checks need it).
    c = vader.compound(texts)
    assert np.all(np.diff(logits[np.argsort(c), 2]) >= 0)


@needs_sst
def test_data_prepare_names_where_sst3_is_read_from() -> None:
    from typer.testing import CliRunner

    from slimbert.cli import app

    result = CliRunner().invoke(app, ["data", "prepare", "sst3"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "sst5" in result.output and "8,531" in result.output
