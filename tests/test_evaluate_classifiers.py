"""`slimbert eval` on classifiers: several sets, the behavioural suite and the VADER floor."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimbert.models.load import TorchClassifier
from slimbert.train.evaluate import EvalOptions, evaluate_models, markdown_table

LABELS = ("negative", "neutral", "positive")


@pytest.fixture(scope="module")
def classifier(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clf") / "clf"
    TorchClassifier.build(tiny_model, LABELS, max_length=32).save(out)
    return out


def test_every_set_is_scored_on_its_own_with_vader_first(
    classifier: Path, tiny_data: dict[str, Path], tmp_path: Path
) -> None:
    pytest.importorskip("vaderSentiment")
    from slimbert.models.behaviour import load_suite

    data, other = str(tiny_data["test"]), str(tiny_data["validation"])
    result = evaluate_models(
        EvalOptions(
            models=(str(classifier),),
            data=data,
            sets=(other,),
            latency_samples=0,
            out=tmp_path / "eval.json",
        )
    )
    assert [m["model"] for m in result["models"]] == ["vader", str(classifier)]
    assert result["sets"] == {data: 90, other: 90}
    vader, model = result["models"]
    assert vader["kind"] == "lexicon" and vader["latency_ms"] == {}
    for row in (vader, model):
        assert set(row["sets"]) == {data, other}
        # The primary set's full report stays at the top level (README and report read it).
        assert row["sets"][data]["macro_f1"] == row["macro_f1"]
        assert row["behaviour"]["cases"] == len(load_suite())
        assert 0 <= row["behaviour"]["pass_rate"] <= 1
    # The synthetic sets' cue words ("awful", "wonderful") are in VADER's lexicon.
    assert vader["sets"][data]["macro_f1"] > 0.6
    table = (tmp_path / "eval.md").read_text()
    assert table == markdown_table(result)
    assert "| vader | lexicon |" in table and "| negation_of_positive (" in table


def test_baseline_and_suite_can_be_switched_off(
    classifier: Path, tiny_data: dict[str, Path]
) -> None:
    result = evaluate_models(
        EvalOptions(
            models=(str(classifier),),
            data=str(tiny_data["test"]),
            latency_samples=0,
            baseline=False,
            behaviour=False,
        )
    )
    (row,) = result["models"]
    assert "behaviour" not in row and row["model"] == str(classifier)
    assert "behaviour" not in markdown_table(result)


def test_other_labels_get_neither_suite_nor_vader(tiny_model: Path, tmp_path: Path) -> None:
    clf = tmp_path / "clf2"
    TorchClassifier.build(tiny_model, ("bad", "good"), max_length=32).save(clf)
    data = tmp_path / "d.csv"
    data.write_text("text,label\ngood film,good\nbad film,bad\n" * 1, encoding="utf-8")
    result = evaluate_models(EvalOptions(models=(str(clf),), data=str(data), latency_samples=0))
    (row,) = result["models"]
    assert "behaviour" not in row and row["model"] == str(clf)


def test_overlapping_sets_score_each_text_once(
    tiny_data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A set inside another (tweets3:test inside sentiment3:test) costs no second pass, and
    its scores are those of scoring it alone."""
    pytest.importorskip("vaderSentiment")
    from slimbert.models import baselines

    whole = tiny_data["test"]
    lines = whole.read_text(encoding="utf-8").splitlines()
    part = tmp_path / "part.csv"
    part.write_text("\n".join([lines[0], *lines[1:31]]) + "\n", encoding="utf-8")
    scored: list[str] = []
    logits = baselines.VaderScorer.logits

    def counting(self: baselines.VaderScorer, texts: list[str]) -> object:
        scored.extend(texts)
        return logits(self, texts)

    monkeypatch.setattr(baselines.VaderScorer, "logits", counting)
    common = {"models": ("vader",), "latency_samples": 0, "behaviour": False}
    both = evaluate_models(EvalOptions(data=str(whole), sets=(str(part),), **common))
    unique = len(set(scored))
    assert len(scored) == unique  # nothing scored twice
    alone = evaluate_models(EvalOptions(data=str(part), **common))
    (row,), (row_alone,) = both["models"], alone["models"]
    assert both["sets"] == {str(whole): 90, str(part): 30}
    assert row["sets"][str(part)] == row_alone["sets"][str(part)]
    assert row["sets"][str(part)]["macro_f1"] == row_alone["macro_f1"]
