"""AugSBERT: BM25 mining, the cross-encoder, resumable scoring and score-bin balancing."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from slimbert.data.pairs import load_pairs
from slimbert.errors import ConfigError, DataError, ModelError, SlimbertError
from slimbert.train.augment import (
    AugmentOptions,
    CrossEncoderOptions,
    augment,
    balance,
    load_cross_encoder,
    mine_candidates,
    prepare_pool,
    read_scores,
    read_sentences,
    train_cross_encoder,
)


def overlap(pairs: list[tuple[str, str]]) -> np.ndarray:
    """A deterministic stand-in cross-encoder: word Jaccard overlap, in [0, 1]."""
    out = []
    for a, b in pairs:
        x, y = set(a.lower().split()), set(b.lower().split())
        out.append(len(x & y) / len(x | y))
    return np.asarray(out, dtype=np.float32)


class Counting:
    """Counts scored pairs; raises KeyboardInterrupt once ``stop_after`` pairs were scored."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.pairs = 0
        self.stop_after = stop_after

    def __call__(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        if self.stop_after is not None and self.pairs >= self.stop_after:
            raise KeyboardInterrupt
        self.pairs += len(pairs)
        return overlap(pairs)


@pytest.fixture
def fake_ce(tmp_path: Path) -> Path:
    folder = tmp_path / "ce"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def pool_csv(tiny_pairs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train sentences, plus every validation/test sentence (which mining must drop)."""
    sentences: list[str] = []
    for split in ("train", "validation", "test"):
        pairs = load_pairs(tiny_pairs[split])
        sentences += pairs.first + pairs.second
    path = tmp_path_factory.mktemp("pool") / "pool.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text"])
        writer.writerows([s] for s in sentences)
    return path


def _options(ce: Path, pool: Path, out: Path, tiny_pairs: dict[str, Path], **kw: Any) -> Any:
    base: dict[str, Any] = {
        "exclude": (str(tiny_pairs["validation"]), str(tiny_pairs["test"])),
        "shard_size": 16,
        "batch_size": 8,
        "min_per_bin": 0,
    }
    base.update(kw)
    return AugmentOptions(cross_encoder=ce, pool=str(pool), out=out, **base)


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


# -- mining ---------------------------------------------------------------------------------------
def test_prepare_pool_dedupes_and_excludes() -> None:
    pool, stats = prepare_pool(
        ["A cat sat.", "a  cat SAT.", "", "dogs bark", "the test sentence", "dogs bark"],
        exclude=["The test  sentence"],
    )
    assert pool == ["A cat sat.", "dogs bark"]
    assert stats == {"read": 6, "empty": 1, "duplicates": 2, "excluded": 1}


def test_mining_gives_unordered_unique_neighbour_pairs() -> None:
    texts = [
        "the cat sat on the mat",
        "a cat is sitting on a mat",
        "cats like mats",
        "the stock market fell sharply",
        "stock prices fell on monday",
        "of the and",  # stopwords only: no neighbour
    ]
    pairs, bm25 = mine_candidates(texts, top_k=2)
    as_tuples = [tuple(p) for p in pairs.tolist()]
    assert all(i < j for i, j in as_tuples), "pairs are (i, j) with i < j, no self-match"
    assert len(set(as_tuples)) == len(as_tuples), "each unordered pair once"
    assert as_tuples == sorted(as_tuples)
    assert (0, 1) in as_tuples and (3, 4) in as_tuples
    assert not [p for p in as_tuples if 5 in p]
    assert (bm25 > 0).all() and len(bm25) == len(pairs)
    # At most top_k neighbours per sentence as a query, so at most n * k pairs.
    assert len(pairs) <= len(texts) * 2


def test_mining_needs_two_sentences() -> None:
    with pytest.raises(DataError, match="at least 2"):
        mine_candidates(["only one"], top_k=5)


def test_read_sentences_from_pair_files_and_text_files(
    tiny_pairs: dict[str, Path], tmp_path: Path
) -> None:
    pairs = load_pairs(tiny_pairs["validation"])
    got = read_sentences(str(tiny_pairs["validation"]))
    assert got[:4] == [pairs.first[0], pairs.second[0], pairs.first[1], pairs.second[1]]
    text = tmp_path / "pool.txt"
    text.write_text("one line\nanother line\n", encoding="utf-8")
    assert read_sentences(str(text)) == ["one line", "another line"]
    with pytest.raises(DataError):
        read_sentences(str(tmp_path / "missing.csv"))


# -- augment: mine, score, balance ----------------------------------------------------------------
def test_augment_excludes_eval_sentences_and_writes_silver(
    fake_ce: Path, pool_csv: Path, tiny_pairs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "augment"
    options = _options(fake_ce, pool_csv, out, tiny_pairs)
    report = augment(options, scorer=overlap)

    banned = load_pairs(tiny_pairs["validation"]).sentences()
    banned |= load_pairs(tiny_pairs["test"]).sentences()
    candidates = pq.read_table(out / "candidates.parquet").to_pylist()
    assert len(candidates) == report["candidates"] > 0
    keys = [frozenset((c["sentence1"], c["sentence2"])) for c in candidates]
    assert len(set(keys)) == len(keys), "unordered pairs are deduplicated"
    assert all(c["sentence1"] != c["sentence2"] for c in candidates)
    used = {c["sentence1"] for c in candidates} | {c["sentence2"] for c in candidates}
    assert not used & banned, "a validation/test sentence was mined"
    assert report["pool"]["excluded"] > 0

    silver = load_pairs(out / "silver.parquet")
    assert len(silver) == report["silver"] == sum(b["after"] for b in report["bins"])
    assert sum(b["before"] for b in report["bins"]) == report["candidates"]
    expected = overlap(list(zip(silver.first, silver.second, strict=True)))
    assert np.allclose(silver.require_scores(), expected, atol=1e-6)
    assert report["score_quantiles"]["0.5"] == pytest.approx(report["score_median"])
    saved = json.loads((out / "augment_report.json").read_text(encoding="utf-8"))
    assert saved["silver"] == report["silver"] and saved["seconds"]["total"] > 0


def test_interrupted_run_resumes_where_it_stopped(
    fake_ce: Path, pool_csv: Path, tiny_pairs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "augment"
    options = _options(fake_ce, pool_csv, out, tiny_pairs)
    with pytest.raises(KeyboardInterrupt):
        augment(options, scorer=Counting(stop_after=24))  # one shard and half of the next
    manifest = _manifest(out)
    assert not manifest["complete"] and list(manifest["done"]) == ["part-00000.parquet"]
    assert not (out / "silver.parquet").exists()
    shard = out / "part-00000.parquet"
    stamp = shard.stat().st_mtime_ns

    rest = Counting()
    report = augment(options, scorer=rest)
    assert report["resumed_shards"] == 1
    assert rest.pairs == report["candidates"] - 16, "only the unfinished shards were scored"
    assert shard.stat().st_mtime_ns == stamp

    reference = augment(options.replace(out=tmp_path / "reference"), scorer=overlap)
    assert np.array_equal(read_scores(out), read_scores(tmp_path / "reference"))
    assert reference["bins"] == report["bins"]
    same = pq.read_table(out / "silver.parquet").equals(
        pq.read_table(tmp_path / "reference" / "silver.parquet")
    )
    assert same, "a resumed run must give the same silver pairs"


def test_damaged_shard_is_detected_and_rescored(
    fake_ce: Path, pool_csv: Path, tiny_pairs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "augment"
    options = _options(fake_ce, pool_csv, out, tiny_pairs)
    report = augment(options, scorer=overlap)
    shard = out / "part-00001.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(SlimbertError, match="damaged"):
        read_scores(out)

    again = Counting()
    rerun = augment(options, scorer=again)
    assert again.pairs == 16, "exactly the damaged shard is scored again"
    assert rerun["resumed_shards"] == report["shards"] - 1
    assert rerun["bins"] == report["bins"]


def test_other_plan_and_foreign_folder_are_refused(
    fake_ce: Path, pool_csv: Path, tiny_pairs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "augment"
    augment(_options(fake_ce, pool_csv, out, tiny_pairs), scorer=overlap)
    before = (out / "candidates.parquet").read_bytes()
    with pytest.raises(SlimbertError, match="top_k"):
        augment(_options(fake_ce, pool_csv, out, tiny_pairs, top_k=2), scorer=overlap)
    assert (out / "candidates.parquet").read_bytes() == before, "refused runs write nothing"

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(SlimbertError, match="not an augment folder"):
        augment(_options(fake_ce, pool_csv, foreign, tiny_pairs), scorer=overlap)


def test_balancing_options_reuse_the_scores(
    fake_ce: Path, pool_csv: Path, tiny_pairs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "augment"
    augment(_options(fake_ce, pool_csv, out, tiny_pairs), scorer=overlap)
    none = Counting()
    report = augment(_options(fake_ce, pool_csv, out, tiny_pairs, silver_size=10), scorer=none)
    assert none.pairs == 0
    assert report["silver"] == 10 == len(load_pairs(out / "silver.parquet"))


def test_bad_scores_and_missing_cross_encoder(
    fake_ce: Path, pool_csv: Path, tiny_pairs: dict[str, Path], tmp_path: Path
) -> None:
    def logits(pairs: list[tuple[str, str]]) -> np.ndarray:
        return np.full(len(pairs), 3.5, dtype=np.float32)

    with pytest.raises(ModelError, match=r"outside \[0, 1\]"):
        augment(_options(fake_ce, pool_csv, tmp_path / "a", tiny_pairs), scorer=logits)
    with pytest.raises(ModelError, match="slimbert cross-encoder"):
        augment(_options(tmp_path / "nowhere", pool_csv, tmp_path / "b", tiny_pairs))
    with pytest.raises(DataError):
        augment(_options(fake_ce, tmp_path / "missing.csv", tmp_path / "c", tiny_pairs))


def test_balance_caps_bins() -> None:
    scores = np.array([0.05] * 50 + [0.3] * 20 + [0.5] * 4 + [0.95] * 6)
    edges = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    keep, bins = balance(scores, edges, bin_factor=2.0, seed=1)
    assert [b["before"] for b in bins] == [50, 20, 4, 0, 6]
    assert [b["after"] for b in bins] == [8, 8, 4, 0, 6]  # 2 × the smallest non-empty bin (4)
    assert list(keep) == sorted(set(keep.tolist())) and len(keep) == 26
    assert (scores[keep][:8] < 0.2).all()

    again, _ = balance(scores, edges, bin_factor=2.0, seed=1)
    assert np.array_equal(keep, again), "seeded"
    _, bins = balance(scores, edges, bin_factor=2.0, min_per_bin=15, seed=1)
    assert [b["after"] for b in bins] == [15, 15, 4, 0, 6]
    sized, bins = balance(scores, edges, silver_size=30, seed=1)
    assert [b["after"] for b in bins] == [10, 10, 4, 0, 6] and len(sized) == 30
    _, bins = balance(scores, edges, silver_size=31, seed=1)
    assert sorted(b["after"] for b in bins[:2]) == [10, 11]  # one cut bin gets the extra pair
    everything, _ = balance(scores, edges, silver_size=1000)
    assert len(everything) == len(scores)
    _, bins = balance(np.array([0.0, 1.0, 0.2]), edges, bin_factor=1.0)
    assert [b["before"] for b in bins] == [1, 1, 0, 0, 1]  # 1.0 falls in the last bin


def test_option_errors_are_config_errors(fake_ce: Path) -> None:
    with pytest.raises(ConfigError, match="bins"):
        AugmentOptions(cross_encoder=fake_ce, bins=(0.0, 0.5, 0.4, 1.0))
    with pytest.raises(ConfigError, match="bins"):
        AugmentOptions(cross_encoder=fake_ce, bins=(0.2, 1.0))
    with pytest.raises(ConfigError, match="shard_size"):
        AugmentOptions(cross_encoder=fake_ce, shard_size=8, batch_size=16)
    with pytest.raises(ConfigError, match="needs option 'cross_encoder'"):
        AugmentOptions.from_dict({"pool": "x.csv"})
    with pytest.raises(ConfigError, match="epochs"):
        CrossEncoderOptions(epochs=0)
    options = AugmentOptions.from_dict({"cross_encoder": str(fake_ce), "bins": "0,0.5,1"})
    assert options.bins == (0.0, 0.5, 1.0)
    assert AugmentOptions.from_dict(options.to_dict()) == options
    ce = CrossEncoderOptions.from_dict({"train": "stsb:train", "epochs": "2"})
    assert ce.train == ("stsb:train",) and ce.epochs == 2


# -- the cross-encoder ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_ce(
    tiny_model: Path, tiny_pairs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("ce") / "cross-encoder"
    options = CrossEncoderOptions(
        out=out,
        model=str(tiny_model),
        train=(str(tiny_pairs["train"]),),
        validation=str(tiny_pairs["validation"]),
        batch_size=16,
        lr=1e-3,
        evals_per_epoch=2,
        max_length=32,
    )
    return out, train_cross_encoder(options)


def test_cross_encoder_trains_and_saves_safetensors(tiny_ce: tuple[Path, dict[str, Any]]) -> None:
    out, report = tiny_ce
    files = {p.name for p in out.rglob("*") if p.is_file()}
    assert "model.safetensors" in files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl", ".pth"))], files
    assert report["train_pairs"] == 120 and report["steps"] == 8
    assert [h["step"] for h in report["history"]] == [4, 8]
    best = max(h["val_spearman"] for h in report["history"])
    assert report["best_val_spearman"] == best
    ce = load_cross_encoder(out, max_length=32)
    scores = ce.predict([("a cat", "a cat"), ("a dog", "the senate")], show_progress_bar=False)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_augment_with_a_real_cross_encoder(
    tiny_ce: tuple[Path, dict[str, Any]],
    pool_csv: Path,
    tiny_pairs: dict[str, Path],
    tmp_path: Path,
) -> None:
    out = tmp_path / "augment"
    report = augment(_options(tiny_ce[0], pool_csv, out, tiny_pairs, max_length=32))
    silver = load_pairs(out / "silver.parquet")
    assert len(silver) == report["silver"] > 0
    ce = load_cross_encoder(tiny_ce[0], max_length=32)
    direct = ce.predict(list(zip(silver.first, silver.second, strict=True)))
    assert np.allclose(silver.require_scores(), direct, atol=1e-4)


def test_cross_encoder_of_wrong_shape_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    from sentence_transformers import CrossEncoder

    three = CrossEncoder(str(tiny_model), num_labels=3, device="cpu")
    three.save(str(tmp_path / "nli"), safe_serialization=True)
    with pytest.raises(ModelError, match="3 outputs"):
        load_cross_encoder(tmp_path / "nli")
    with pytest.raises(ModelError, match=r"no config\.json"):
        load_cross_encoder(tmp_path)


@pytest.mark.slow
def test_minilm_cross_encoder_learns_stsb(tmp_path: Path) -> None:
    options = CrossEncoderOptions(
        out=tmp_path / "ce",
        train=("stsb:train",),
        validation="stsb:validation",
        limit=800,
        validation_limit=300,
        lr=5e-5,
        evals_per_epoch=1,
    )
    report = train_cross_encoder(options)
    assert report["best_val_spearman"] > 0.4


def test_commands_and_pipeline_stages(
    tiny_model: Path,
    tiny_ce: tuple[Path, dict[str, Any]],
    pool_csv: Path,
    tiny_pairs: dict[str, Path],
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from slimbert.cli import app
    from slimbert.pipeline import stages

    known = stages()
    assert known["augment"].options is AugmentOptions
    assert known["cross-encoder"].options is CrossEncoderOptions
    runner = CliRunner()
    result = runner.invoke(app, ["augment", "--pool", str(pool_csv)])
    assert result.exit_code == 2 and "needs option 'cross_encoder'" in result.output
    out = tmp_path / "augment"
    args = ["augment", "--cross-encoder", str(tiny_ce[0]), "--pool", str(pool_csv)]
    args += ["--exclude", f"{tiny_pairs['validation']},{tiny_pairs['test']}"]
    args += ["--out", str(out), "--silver-size", "12", "--max-length", "32"]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "12 silver pairs" in result.output
    assert len(load_pairs(out / "silver.parquet")) == 12

    ce_out = tmp_path / "ce"
    args = ["cross-encoder", "--model", str(tiny_model), "--out", str(ce_out)]
    args += ["--train", str(tiny_pairs["train"]), "--validation", str(tiny_pairs["validation"])]
    args += ["--max-length", "32", "--evals-per-epoch", "1", "--limit", "32"]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "at step 2 of 2" in result.output and (ce_out / "model.safetensors").is_file()


# -- the command path: a one-step pipeline run with force, as `slimbert augment` runs it ------
def _as_the_command_runs(options: AugmentOptions, *, overwrite: bool = False) -> dict[str, Any]:
    from slimbert.pipeline import Step, overwrite_outputs, run_pipeline

    with overwrite_outputs(overwrite):
        summary = run_pipeline(
            [Step("augment", "augment", options)],
            force=True,
            hooks={"augment": lambda step: {"scorer": overlap}},
        )
    result: dict[str, Any] = summary[0]["result"]
    return result


def _shards(out: Path) -> dict[str, tuple[int, int, bytes]]:
    return {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(out.glob("part-*.parquet"))
    }


def test_command_rerun_resumes_every_shard_and_refuses_another_plan(
    fake_ce: Path, pool_csv: Path, tiny_pairs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "augment"
    first = _as_the_command_runs(_options(fake_ce, pool_csv, out, tiny_pairs))
    assert first["resumed_shards"] == 0 and first["shards"] >= 3
    shards = _shards(out)
    assert len(shards) == first["shards"]

    again = _as_the_command_runs(_options(fake_ce, pool_csv, out, tiny_pairs))
    assert again["resumed_shards"] == again["shards"] == first["shards"]
    assert again["scored_now"] == 0 and _shards(out) == shards

    other = _options(fake_ce, pool_csv, out, tiny_pairs, shard_size=32)
    with pytest.raises(SlimbertError, match=r"different scoring \(it differs in: shard_size") as e:
        _as_the_command_runs(other)
    assert e.value.hint is not None and "--overwrite" in e.value.hint
    assert _shards(out) == shards

    replaced = _as_the_command_runs(other, overwrite=True)
    assert replaced["resumed_shards"] == 0 and _manifest(out)["plan"]["shard_size"] == 32
    assert replaced["silver_file"] == str(out / "silver.parquet")
    assert np.allclose(read_scores(out), read_scores_from(shards, first))
    assert not (tmp_path / ".augment.next").exists()


def read_scores_from(shards: dict[str, tuple[int, int, bytes]], report: dict[str, Any]) -> Any:
    """The scores the first run's shards held (by candidate), to compare with the new plan's."""
    import io

    scores = np.full(report["candidates"], np.nan, dtype=np.float32)
    for _, _, data in shards.values():
        table = pq.read_table(io.BytesIO(data), columns=["pair", "score"])
        scores[table.column("pair").to_numpy()] = table.column("score").to_numpy()
    return scores
