"""SBERT training stages on the tiny embedder: options, objectives, early stopping, saving."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slimbert.data.pairs import PairSet, write_pairs
from slimbert.errors import ConfigError, DataError
from slimbert.train.sbert import SbertTrainOptions, build_embedder, spearman, train_sbert

pytest.importorskip("sentence_transformers")


def test_options_take_objective_defaults() -> None:
    nli = SbertTrainOptions(objective="nli")
    assert nli.resolved("loss") == "softmax"
    assert nli.resolved("batch_size") == 16
    assert nli.resolved("train") == "snli:train"
    target = SbertTrainOptions(objective="target", batch_size=8)
    assert target.resolved("batch_size") == 8
    assert target.resolved("validation") == "mrpc-target:validation"


def test_options_reject_nli_losses_for_scored_pairs() -> None:
    with pytest.raises(ConfigError, match="loss must be 'cosine'"):
        SbertTrainOptions(objective="sts", loss="softmax")
    with pytest.raises(ConfigError, match="objective"):
        SbertTrainOptions.from_dict({"objective": "paraphrase"})


def test_cosine_training_improves_validation_and_saves_safetensors(
    tiny_sbert: Path, tiny_pairs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "sts"
    options = SbertTrainOptions(
        objective="sts",
        model=str(tiny_sbert),
        out=out,
        train=str(tiny_pairs["train"]),
        validation=str(tiny_pairs["validation"]),
        batch_size=16,
        epochs=6,
        lr=5e-4,
        patience=6,
    )
    report = train_sbert(options)
    assert report["best_val_spearman"] > report["val_spearman_start"] + 0.05
    assert report["train_pairs"] == 120
    saved = json.loads((out / "sbert_report.json").read_text())
    assert saved["best_step"] == report["best_step"] > 0
    files = {p.name for p in out.rglob("*")}
    assert "model.safetensors" in files and "modules.json" in files
    assert not [p for p in out.rglob("*") if p.suffix in (".bin", ".pt", ".pkl", ".pth")]
    # The saved model is the best one: its validation Spearman is the reported best.
    from slimbert.data.pairs import load_pairs

    reloaded = build_embedder(out)
    rho = spearman(reloaded, load_pairs(tiny_pairs["validation"]))
    assert rho == pytest.approx(report["best_val_spearman"], abs=1e-4)


def test_layers_make_a_smaller_student(tiny_sbert: Path) -> None:
    st = build_embedder(tiny_sbert, layers=(0, 3))
    assert st[0].auto_model.config.num_hidden_layers == 2
    assert len(st[0].auto_model.encoder.layer) == 2
    with pytest.raises(ConfigError, match="layers"):
        build_embedder(tiny_sbert, layers=(2, 1))


def _nli_file(path: Path) -> Path:
    import csv

    rows = []
    for i in range(48):
        subject = ["a man", "a woman", "two kids", "the dog"][i % 4]
        rows.append((f"{subject} is running in the park", f"{subject} runs", "entailment"))
        rows.append((f"{subject} is running in the park", f"{subject} sleeps", "contradiction"))
        rows.append((f"{subject} is running in the park", f"{subject} is fast", "neutral"))
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sentence1", "sentence2", "label"])
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("loss", ["softmax", "mnrl"])
def test_nli_objectives_run_and_keep_the_best(
    loss: str, tiny_sbert: Path, tiny_pairs: dict[str, Path], tmp_path: Path
) -> None:
    options = SbertTrainOptions(
        objective="nli",
        loss=loss,
        model=str(tiny_sbert),
        out=tmp_path / loss,
        train=str(_nli_file(tmp_path / "nli.csv")),
        validation=str(tiny_pairs["validation"]),
        batch_size=16,
        evals_per_epoch=2,
    )
    report = train_sbert(options)
    assert report["loss"] == loss
    assert report["train_pairs"] == (48 if loss == "mnrl" else 144)
    # Start + two evaluations in the single epoch.
    assert [h["step"] for h in report["history"]][:1] == [0]
    assert len(report["history"]) == 3
    assert report["best_val_spearman"] >= report["val_spearman_start"]
    assert (tmp_path / loss / "modules.json").is_file()


def test_scored_objective_needs_scores(
    tiny_sbert: Path, tiny_pairs: dict[str, Path], tmp_path: Path
) -> None:
    options = SbertTrainOptions(
        objective="target",
        model=str(tiny_sbert),
        out=tmp_path / "t",
        train=str(_nli_file(tmp_path / "nli.csv")),
        validation=str(tiny_pairs["validation"]),
    )
    with pytest.raises(DataError, match="no similarity scores"):
        train_sbert(options)


def test_silver_parquet_is_a_training_set(
    tiny_sbert: Path, tiny_pairs: dict[str, Path], tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from slimbert.data.pairs import load_pairs

    gold = load_pairs(tiny_pairs["train"])
    table = pa.table({"sentence1": gold.first, "sentence2": gold.second, "score": gold.scores})
    pq.write_table(table, tmp_path / "silver.parquet")
    write_pairs(tmp_path / "copy.csv", PairSet(gold.first, gold.second, scores=gold.scores))
    assert load_pairs(tmp_path / "copy.csv").scores == pytest.approx(gold.scores)
    report = train_sbert(
        SbertTrainOptions(
            objective="target",
            model=str(tiny_sbert),
            out=tmp_path / "silver-model",
            train=str(tmp_path / "silver.parquet"),
            validation=str(tiny_pairs["validation"]),
            epochs=1,
        )
    )
    assert report["train_pairs"] == len(gold)


def test_extra_train_sets_are_trained_on_together(
    tiny_sbert: Path, tiny_pairs: dict[str, Path], tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from slimbert.data.pairs import load_pairs

    gold = load_pairs(tiny_pairs["train"])
    silver = gold.head(30)
    table = pa.table(
        {"sentence1": silver.first, "sentence2": silver.second, "score": silver.scores}
    )
    pq.write_table(table, tmp_path / "silver.parquet")
    options = SbertTrainOptions(
        objective="target",
        model=str(tiny_sbert),
        out=tmp_path / "joint",
        train=str(tiny_pairs["train"]),
        extra_train=(str(tmp_path / "silver.parquet"),),
        validation=str(tiny_pairs["validation"]),
        epochs=1,
    )
    assert SbertTrainOptions.from_dict(options.to_dict()) == options
    report = train_sbert(options)
    assert report["train_pairs"] == len(gold) + 30
    assert report["extra_train"] == [str(tmp_path / "silver.parquet")]

    nli = SbertTrainOptions(
        objective="target",
        model=str(tiny_sbert),
        out=tmp_path / "mixed",
        train=str(tiny_pairs["train"]),
        extra_train=(str(_nli_file(tmp_path / "nli.csv")),),
        validation=str(tiny_pairs["validation"]),
    )
    with pytest.raises(DataError, match="one has similarity scores, the other NLI labels"):
        train_sbert(nli)
