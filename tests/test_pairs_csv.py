"""The export gate's scored-pairs reader (data.pairs.read_scored_csv): one home, both forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimbert.data.pairs import read_scored_csv
from slimbert.errors import DataError
from slimbert.export.gate import read_pairs


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_header_and_headerless_files_read_alike(tmp_path: Path) -> None:
    header = write(tmp_path / "a.csv", "score,sentence1,sentence2\n4.5,a cat,a kitten\n0,x,y\n")
    bare = write(tmp_path / "b.csv", "a cat,a kitten,4.5\nx,y,0\n")
    for path in (header, bare):
        pairs = read_scored_csv(path, "utf-8", limit=10)
        assert pairs is not None
        assert (pairs.first, pairs.second, pairs.scores) == (
            ["a cat", "x"],
            ["a kitten", "y"],
            [4.5, 0.0],
        )
    # the gate's view: every first text, then every second one, scores kept on their scale
    gate = read_pairs(str(bare), "utf-8", limit=1)
    assert gate is not None and (gate.texts, gate.scores) == (["a cat", "a kitten"], [4.5])


def test_files_that_are_not_scored_pairs_are_none(tmp_path: Path) -> None:
    assert (
        read_scored_csv(write(tmp_path / "t.csv", "text,label\nhi,positive\n"), "utf-8", 5) is None
    )
    assert read_scored_csv(write(tmp_path / "t.jsonl", '{"a": 1}\n'), "utf-8", 5) is None
    assert read_scored_csv(tmp_path / "missing.csv", "utf-8", 5) is None


def test_a_bad_row_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "p.tsv", "sentence1\tsentence2\tscore\na\tb\t1\nc\td\tlots\n")
    with pytest.raises(DataError, match="not a scored sentence pair") as err:
        read_scored_csv(path, "utf-8", limit=10)
    assert "3" in str(err.value)
