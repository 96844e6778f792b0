"""`slimbert data split`: stratified, seeded, no text in two splits, atomic, owned folders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slimbert.cli import app
from slimbert.data.split import SplitOptions, split_data
from slimbert.errors import ConfigError, DataError, SlimbertError
from test_own_data import write as _write

runner = CliRunner()


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _rows(n: int, labels: tuple[str, ...]) -> list[tuple[str, str]]:
    return [
        (f"text number {i} about {labels[i % len(labels)]}", labels[i % len(labels)])
        for i in range(n)
    ]


def test_split_is_stratified_seeded_and_complete(tmp_path: Path) -> None:
    rows = _rows(200, ("pos", "neg")) + _rows(40, ("meh",))[:40]
    src = _write(tmp_path / "all.csv", [(f"{t} #{i}", y) for i, (t, y) in enumerate(rows)])
    report = split_data(SplitOptions(data=str(src), out=tmp_path / "split"))
    out = tmp_path / "split"
    assert sorted(p.name for p in out.iterdir()) == [
        "pool.csv",
        "split_report.json",
        "test.csv",
        "train.csv",
        "validation.csv",
    ]
    assert sum(s["rows"] for s in report["splits"].values()) == 240
    for name, share in (("train", 0.6), ("validation", 0.1), ("test", 0.15)):
        counts = report["splits"][name]["label_counts"]
        assert counts == {
            k: round(v * share) for k, v in {"meh": 40, "neg": 100, "pos": 100}.items()
        }
    assert list(_read(out / "pool.csv")[0]) == ["text"]  # labels withheld
    assert list(_read(out / "train.csv")[0]) == ["text", "label"]
    again = split_data(SplitOptions(data=str(src), out=tmp_path / "again"))
    assert (tmp_path / "again" / "train.csv").read_bytes() == (out / "train.csv").read_bytes()
    assert again["splits"] == report["splits"]
    other = split_data(SplitOptions(data=str(src), out=tmp_path / "other", seed=7))
    assert (tmp_path / "other" / "train.csv").read_bytes() != (out / "train.csv").read_bytes()
    assert other["splits"]["train"]["label_counts"] == report["splits"]["train"]["label_counts"]


def test_duplicates_stay_in_one_split_and_are_reported(tmp_path: Path) -> None:
    rows = _rows(100, ("pos", "neg"))
    rows += [("the very same text", "pos")] * 5 + [("  the very same text ", "pos")]
    rows += [("a text with two labels", "pos"), ("a text with two labels", "neg")]
    src = _write(tmp_path / "dups.csv", rows)
    report = split_data(SplitOptions(data=str(src), out=tmp_path / "s"))
    where: dict[str, set[str]] = {}
    for name in ("train", "validation", "test", "pool"):
        for row in _read(tmp_path / "s" / f"{name}.csv"):
            where.setdefault(row["text"].strip(), set()).add(name)
    assert all(len(splits) == 1 for splits in where.values())
    dup = report["duplicates"]
    assert dup["groups"] == 2 and dup["extra_rows"] == 6 and dup["conflicting_groups"] == 1
    assert dup["conflicting_examples"][0]["labels"] == {"pos": 1, "neg": 1}
    assert report["leakage"] == {"texts_in_two_splits": 0}


def test_zero_share_writes_no_file_and_shares_must_add_up(tmp_path: Path) -> None:
    src = _write(tmp_path / "a.csv", _rows(60, ("a", "b")))
    report = split_data(
        SplitOptions(data=str(src), out=tmp_path / "s", train_share=0.7, pool_share=0.05)
    )
    assert set(report["splits"]) == {"train", "validation", "test", "pool"}
    split_data(
        SplitOptions(
            data=str(src), out=tmp_path / "np", train_share=0.75, test_share=0.15, pool_share=0
        )
    )
    assert not (tmp_path / "np" / "pool.csv").exists()
    with pytest.raises(ConfigError, match="add up to 1"):
        SplitOptions(data=str(src), out=tmp_path / "x", train_share=0.9)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([(f"t{i}", "pos") for i in range(30)], "at least two classes"),
        (
            [(f"t{i}", ["pos", "neg"][i % 2]) for i in range(40)] + [("both", "pos|neg")],
            "several labels in one cell",
        ),
        (
            [(f"t{i}", ["pos", "neg"][i % 2]) for i in range(40)] + [("x", "neg; pos")] * 3,
            "several labels in one cell",
        ),
        (
            [(f"t{i}", ["pos", "neg"][i % 2]) for i in range(40)]
            + [(f"r{i}", "rare") for i in range(4)],
            "class 'rare' has 4 row",
        ),
    ],
)
def test_refusals(tmp_path: Path, rows: list[tuple[str, str]], message: str) -> None:
    src = _write(tmp_path / "bad.csv", rows)
    with pytest.raises(DataError, match=message):
        split_data(SplitOptions(data=str(src), out=tmp_path / "s"))
    assert not (tmp_path / "s").exists()


def test_refuses_a_folder_it_did_not_write_and_overwrites_its_own(tmp_path: Path) -> None:
    src = _write(tmp_path / "a.csv", _rows(60, ("a", "b")))
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    with pytest.raises(SlimbertError, match="did not write"):
        split_data(SplitOptions(data=str(src), out=user))
    assert (user / "notes.txt").read_text() == "keep me"
    out = tmp_path / "s"
    split_data(SplitOptions(data=str(src), out=out))
    with pytest.raises(SlimbertError, match="--overwrite"):
        split_data(SplitOptions(data=str(src), out=out, seed=2))
    split_data(SplitOptions(data=str(src), out=out, seed=2), overwrite=True)
    assert json.loads((out / "split_report.json").read_text())["options"]["seed"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_cli_split_and_its_refusal_exit_2(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "a.csv", [(t, y) for t, y in _rows(60, ("a", "b"))], ("review", "stars")
    )
    args = ["data", "split", str(src), "--out", str(tmp_path / "s")]
    args += ["--text-column", "review", "--label-column", "stars", "--test-share", "0.2"]
    args += ["--pool-share", "0.1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "60 rows" in result.output
    assert list(_read(tmp_path / "s" / "test.csv")[0]) == ["review", "stars"]
    one = _write(tmp_path / "one.csv", [(f"t{i}", "pos") for i in range(20)])
    result = runner.invoke(app, ["data", "split", str(one), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "at least two classes" in result.output
