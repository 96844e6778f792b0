"""The behaviour suite: the runner's verdicts on a keyword model, the packaged suite's shape and
freshness, the loader's messages for malformed lines, and pass-rate arithmetic (hypothesis)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimbert.errors import ConfigError, DataError, ModelError
from slimbert.models import behaviour_templates
from slimbert.models.behaviour import (
    LABELS,
    SUITE_FILE,
    Case,
    Direction,
    applies_to,
    load_suite,
    pass_rate_table,
    run_suite,
    softmax,
)
from slimbert.models.scoring import softmax as scoring_softmax

POSITIVE_WORDS = {"good", "great", "loved"}
NEGATIVE_WORDS = {"bad", "awful", "hated"}
# Rows in LABELS order (negative, neutral, positive).
ROWS = {-1: [0.8, 0.1, 0.1], 0: [0.2, 0.6, 0.2], 1: [0.1, 0.1, 0.8]}


def keyword_model(texts: list[str]) -> np.ndarray:
    """Counts positive minus negative keywords, case-insensitively; blind to negation and typos."""
    out = []
    for text in texts:
        words = re.findall(r"[a-z]+", text.lower())
        score = sum(w in POSITIVE_WORDS for w in words) - sum(w in NEGATIVE_WORDS for w in words)
        out.append(ROWS[int(np.sign(score))])
    return np.array(out)


def _line(id_: str, capability: str, kind: str, texts: list[str], **extra: Any) -> str:
    case = {
        "id": id_,
        "capability": capability,
        "kind": kind,
        "domain": "food",
        "texts": texts,
        "expected": extra.get("expected"),
        "direction": extra.get("direction"),
    }
    return json.dumps(case)


def _up(label: str, tolerance: float = 0.05) -> dict[str, Any]:
    return {"label": label, "must_not": "increase", "tolerance": tolerance}


TINY = [
    _line("a", "vocabulary_positive", "mft", ["The food was great."], expected=["positive"]),
    _line("b", "vocabulary_negative", "mft", ["The soup was awful."], expected=["negative"]),
    _line("c", "neutral_facts", "mft", ["The train leaves at 4."], expected=["neutral"]),
    _line("d", "negation_of_positive", "mft", ["The food was not good."], expected=["negative"]),
    _line(
        "e", "negation_of_negative", "mft", ["It was not bad."], expected=["neutral", "positive"]
    ),
    _line("f", "invariance_case", "inv", ["The food was great.", "THE FOOD WAS GREAT."]),
    _line("g", "invariance_typo", "inv", ["The food was great.", "The food was graet."]),
    _line(
        "h",
        "direction_negative_suffix",
        "dir",
        ["The food was great.", "The food was great. I hated it."],
        direction=_up("positive"),
    ),
    # "Not bad at all." is praise, but the keyword model hears "bad": P(negative) 0.1 → 0.2.
    _line(
        "i",
        "direction_positive_suffix",
        "dir",
        ["The food was good.", "The food was good. Not bad at all."],
        direction=_up("negative"),
    ),
    _line(
        "j",
        "direction_positive_suffix",
        "dir",
        ["The food was good.", "The food was good. Not bad at all."],
        direction=_up("negative", tolerance=0.15),
    ),
]


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Case, ...]:
    path = tmp_path / "tiny.jsonl"
    path.write_text("\n".join(TINY) + "\n", encoding="utf-8")
    return load_suite(path)


def test_keyword_model_passes_and_fails_what_it_should(tiny: tuple[Case, ...]) -> None:
    result = run_suite(keyword_model, LABELS, tiny)
    assert (result["cases"], result["passed"]) == (10, 6)
    assert result["pass_rate"] == pytest.approx(0.6)
    assert result["suite"] == "custom"
    counts = {name: (c["cases"], c["passed"]) for name, c in result["capabilities"].items()}
    assert counts == {
        "direction_negative_suffix": (1, 1),
        "direction_positive_suffix": (2, 1),  # fails at tolerance 0.05, passes at 0.15
        "invariance_case": (1, 1),
        "invariance_typo": (1, 0),
        "negation_of_negative": (1, 0),
        "negation_of_positive": (1, 0),
        "neutral_facts": (1, 1),
        "vocabulary_negative": (1, 1),
        "vocabulary_positive": (1, 1),
    }
    assert result["capabilities"]["invariance_typo"]["kind"] == "inv"
    assert result["domains"] == {"food": {"cases": 10, "passed": 6, "pass_rate": 0.6}}
    assert sorted(result["failures"]) == [
        "direction_positive_suffix",
        "invariance_typo",
        "negation_of_negative",
        "negation_of_positive",
    ]
    negation = result["failures"]["negation_of_positive"][0]
    assert negation["predicted"] == ["positive"] and negation["expected"] == ["negative"]
    direction = result["failures"]["direction_positive_suffix"][0]
    assert direction["id"] == "i" and direction["p_negative"] == [0.1, 0.2]


def test_label_order_does_not_matter(tiny: tuple[Case, ...]) -> None:
    order = ("positive", "negative", "neutral")
    columns = [LABELS.index(name) for name in order]
    permuted = run_suite(lambda texts: keyword_model(texts)[:, columns], order, tiny)
    assert permuted == run_suite(keyword_model, LABELS, tiny)


def test_every_distinct_text_is_scored_once_in_batches(tiny: tuple[Case, ...]) -> None:
    calls: list[list[str]] = []

    def probabilities(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return keyword_model(texts)

    run_suite(probabilities, LABELS, tiny, batch_size=3)
    scored = [text for batch in calls for text in batch]
    assert len(scored) == len(set(scored)) == len({t for case in tiny for t in case.texts})
    assert max(len(batch) for batch in calls) == 3


def test_only_three_class_sentiment_models_apply() -> None:
    assert applies_to(["negative", "neutral", "positive"])
    assert applies_to(["positive", "mixed", "negative", "neutral"])
    assert not applies_to(["negative", "positive"])
    with pytest.raises(ConfigError, match="3-class sentiment") as info:
        run_suite(keyword_model, ["neg", "neu", "pos"])
    assert info.value.hint and "applies_to" in info.value.hint


def test_probabilities_are_checked(tiny: tuple[Case, ...]) -> None:
    with pytest.raises(ModelError, match="shape"):
        run_suite(lambda texts: np.zeros((len(texts), 2)), LABELS, tiny)
    with pytest.raises(ModelError, match="sum to 1") as info:
        run_suite(lambda texts: 5 * keyword_model(texts), LABELS, tiny)  # logits, not softmax
    assert info.value.hint and "softmax" in info.value.hint
    with pytest.raises(ConfigError, match="batch_size"):
        run_suite(keyword_model, LABELS, tiny, batch_size=0)


def test_softmax_is_the_package_one() -> None:
    assert softmax is scoring_softmax


def test_pass_rate_table(tiny: tuple[Case, ...]) -> None:
    table = pass_rate_table(run_suite(keyword_model, LABELS, tiny))
    assert "| capability | kind | cases | passed | pass rate |" in table
    assert "| invariance_typo | inv | 1 | 0 | 0.0% |" in table
    assert "| direction_positive_suffix | dir | 2 | 1 | 50.0% |" in table
    assert "| **all** | | 10 | 6 | 60.0% |" in table


# --- the packaged suite -------------------------------------------------------------------


def test_packaged_suite_is_what_the_generator_writes() -> None:
    expected = behaviour_templates.render(behaviour_templates.generate())
    assert SUITE_FILE.read_text(encoding="utf-8") == expected, (
        "the templates changed: run `python -m slimbert.models.behaviour_templates`"
        " and commit the file"
    )


def test_generator_is_deterministic() -> None:
    assert behaviour_templates.generate() == behaviour_templates.generate()


def test_packaged_suite_shape() -> None:
    cases = load_suite()
    assert len(cases) >= 300
    ids = [case.id for case in cases]
    assert len(set(ids)) == len(ids) and ids == sorted(ids)
    per_capability = Counter(case.capability for case in cases)
    assert set(per_capability) == set(behaviour_templates.CAPABILITIES)
    assert min(per_capability.values()) >= 20, per_capability
    domains = {case.domain for case in cases}
    assert domains == {
        "products", "food", "films", "service", "travel", "finance", "everyday",
    }  # fmt: skip
    assert {case.kind for case in cases} == {"mft", "inv", "dir"}
    for case in cases:
        assert {case.kind} == {behaviour_templates.CAPABILITIES[case.capability][0]}
        assert all("{" not in t and "}" not in t and "  " not in t for t in case.texts), case
        assert case.texts[0][0].isupper(), case
        if case.capability == "direction_negative_suffix":
            assert case.direction == Direction("positive", "increase", 0.05)
        if case.capability == "direction_positive_suffix":
            assert case.direction == Direction("negative", "increase", 0.05)
        if case.capability == "negation_of_negative":
            assert case.expected == ("neutral", "positive")


def test_packaged_suite_runs_by_default() -> None:
    result = run_suite(keyword_model, LABELS)
    assert result["suite"] == "sentiment3/1"
    assert result["cases"] == len(load_suite())
    assert set(result["capabilities"]) == set(behaviour_templates.CAPABILITIES)
    assert sum(c["cases"] for c in result["domains"].values()) == result["cases"]
    assert json.loads(json.dumps(result)) == result  # plain JSON, ready for a results file


# --- malformed suite files ----------------------------------------------------------------

GOOD = _line("ok", "neutral_facts", "mft", ["The meeting is at 3pm."], expected=["neutral"])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "x", ', "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (_line("x", "c", "mtf", ["A."], expected=["neutral"]), "unknown kind 'mtf'"),
        (_line("x", "c", "mft", ["A."]), "mft case needs 'expected'"),
        (_line("x", "c", "mft", ["A."], expected=["happy"]), "unknown label 'happy'"),
        (_line("x", "c", "inv", ["Only one."]), "at least one perturbation"),
        (_line("x", "c", "dir", ["A.", "A. B."]), "dir case needs 'direction'"),
        (
            _line("x", "c", "dir", ["A.", "A. B."], direction=_up("positive", tolerance=2)),
            "tolerance",
        ),
        (_line("x", "c", "inv", ["A.", "a."], expected=["neutral"]), "'expected' must be null"),
        (_line("x", "c", "mft", [""], expected=["neutral"]), "non-empty strings"),
        (json.dumps({"id": "x", "kind": "mft"}), "missing keys"),
        (GOOD, "duplicate case id 'ok'"),
    ],
)
def test_malformed_lines_name_their_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(GOOD + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(message)) as info:
        load_suite(path)
    assert "line 2" in str(info.value)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="no cases"):
        load_suite(empty)
    with pytest.raises(DataError, match="cannot read"):
        load_suite(tmp_path / "absent.jsonl")


# --- pass-rate arithmetic -----------------------------------------------------------------

PACKAGED = load_suite()


@settings(max_examples=40, deadline=None)
@given(
    indices=st.lists(st.integers(0, len(PACKAGED) - 1), min_size=1, max_size=60, unique=True),
    seed=st.integers(0, 2**32 - 1),
    sharpness=st.sampled_from([0.05, 1.0, 20.0]),
    order=st.permutations(LABELS),
)
def test_pass_rate_is_passed_over_cases(
    indices: list[int], seed: int, sharpness: float, order: list[str]
) -> None:
    rng = np.random.default_rng(seed)

    def probabilities(texts: list[str]) -> np.ndarray:
        return rng.dirichlet([sharpness] * len(order), size=len(texts))

    cases = [PACKAGED[i] for i in indices]
    result = run_suite(probabilities, order, cases, batch_size=7)
    assert 0.0 <= result["pass_rate"] <= 1.0
    assert result["pass_rate"] == result["passed"] / result["cases"]
    assert result["cases"] == len(cases)
    capabilities = result["capabilities"].values()
    assert sum(c["cases"] for c in capabilities) == len(cases)
    assert sum(c["passed"] for c in capabilities) == result["passed"]
    for entry in capabilities:
        assert 0.0 <= entry["pass_rate"] <= 1.0
        assert entry["pass_rate"] == entry["passed"] / entry["cases"]
