"""Loading texts: every format, custom columns, and an exact message for each bad input."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slimbert.data.load import TextSet, load_texts, write_texts
from slimbert.errors import ConfigError, DataError, MissingDependencyError

ROWS = [("good flight", "positive"), ("lost my bag", "negative"), ("on time", "positive")]


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


TEXT_HINT = "fill in the text, or remove the row"


def message(exc: pytest.ExceptionInfo[BaseException]) -> str:
    return str(exc.value)


# -- formats -------------------------------------------------------------------------------
def test_csv_loads_texts_labels_and_row_ids(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\ngood flight,positive\nlost my bag,negative\n")
    data = load_texts(path)
    assert data.texts == ["good flight", "lost my bag"]
    assert data.label_names == ("negative", "positive")  # sorted when not given
    assert data.labels == [1, 0]
    assert data.ids == ["1", "2"]
    assert data.source == str(path)
    assert len(data) == 2


def test_tsv_loads(tmp_path: Path) -> None:
    path = write(tmp_path / "d.tsv", "text\tlabel\ngood, really\tpositive\nbad\tnegative\n")
    data = load_texts(path)
    assert data.texts == ["good, really", "bad"]
    assert data.label_counts() == {"negative": 1, "positive": 1}


def test_jsonl_loads_string_and_integer_labels(tmp_path: Path) -> None:
    lines = [{"text": "a", "label": 1}, {"text": "b", "label": 0}, {"text": "c", "label": 10}]
    lines.append({"text": "d", "label": 2})
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    data = load_texts(path)
    assert data.label_names == ("0", "1", "2", "10")  # integer names sort as numbers
    assert [data.label_names[y] for y in data.labels or []] == ["1", "0", "10", "2"]


def test_ndjson_suffix_and_format_override(tmp_path: Path) -> None:
    body = '{"text": "a", "label": "x"}\n'
    assert load_texts(write(tmp_path / "d.ndjson", body)).texts == ["a"]
    assert load_texts(write(tmp_path / "d.txt", body), format="jsonl").texts == ["a"]


def test_parquet_loads(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "label": [0, 1]}), path)
    data = load_texts(path)
    assert data.texts == ["a", "b"]
    assert data.label_names == ("0", "1")


def test_custom_columns_id_column_and_label_order(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.csv",
        "tweet_id,tweet,sentiment\nx9,good,pos\nx7,bad,neg\n",
    )
    data = load_texts(
        path,
        text_column="tweet",
        label_column="sentiment",
        id_column="tweet_id",
        labels=["pos", "neg"],
    )
    assert data.ids == ["x9", "x7"]
    assert data.label_names == ("pos", "neg")
    assert data.labels == [0, 1]


def test_latin1_file_with_encoding(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\ncafé crème,positive\n".encode("latin-1"))
    assert load_texts(path, encoding="latin-1").texts == ["café crème"]


def test_utf8_bom_is_not_part_of_the_header(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "\ufefftext,label\na,b\n".encode())
    assert load_texts(path).texts == ["a"]


def test_missing_label_column_loads_unlabelled(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "id,text\n1,hello\n")
    data = load_texts(path)
    assert data.labels is None
    assert data.label_names == ()
    assert data.label_counts() == {}
    named = load_texts(path, labels=["neg", "pos"])
    assert named.labels is None and named.label_names == ("neg", "pos")
    assert load_texts(path, label_column=None).labels is None


def test_missing_label_cell_loads_unlabelled_unless_labels_are_required(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "d.csv", "text,label\na,pos\nb,\nc,neg\n")
    with caplog.at_level(logging.WARNING, logger="slimbert.data.texts"):
        assert load_texts(path).labels is None
    assert "line 3" in caplog.text
    with pytest.raises(DataError) as exc:
        load_texts(path, require_labels=True)
    assert message(exc).startswith(f"{path}, line 3, column 'label': missing label")


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_write_texts_round_trips(tmp_path: Path, suffix: str) -> None:
    tricky = ['say "hi", ok', "two\nlines", "carriage\rreturn", "tab\there", "emoji 😂 “q”"]
    data = TextSet(
        texts=tricky,
        labels=[0, 1, 0, 1, 1],
        label_names=("neg", "pos"),
        ids=[f"r{i}" for i in range(5)],
        source="mem",
    )
    path = tmp_path / f"out{suffix}"
    write_texts(path, data)
    back = load_texts(path, id_column="id", labels=["neg", "pos"])
    assert back.texts == tricky
    assert back.labels == data.labels
    assert back.ids == data.ids
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_write_texts_unlabelled_has_no_label_column(tmp_path: Path) -> None:
    data = TextSet(texts=["a"], labels=None, label_names=(), ids=["x"], source="mem")
    write_texts(tmp_path / "p.csv", data)
    assert (tmp_path / "p.csv").read_text(encoding="utf-8") == "id,text\nx,a\n"


# -- TextSet -------------------------------------------------------------------------------
def test_textset_subset_counts_and_relabel() -> None:
    data = TextSet(["a", "b", "c"], [1, 0, 1], ("neg", "pos"), ["1", "2", "3"], "mem")
    part = data.subset([2, 0])
    assert part.texts == ["c", "a"] and part.labels == [1, 1] and part.ids == ["3", "1"]
    assert data.label_counts() == {"neg": 1, "pos": 2}
    relabelled = data.with_labels([0, 0, 2], ("a", "b", "c"))
    assert relabelled.label_counts() == {"a": 2, "b": 0, "c": 1}
    assert relabelled.texts is data.texts


def test_textset_rejects_inconsistent_lengths_and_indices() -> None:
    with pytest.raises(DataError, match="2 ids for 1 texts"):
        TextSet(["a"], None, (), ["1", "2"], "mem")
    with pytest.raises(DataError, match=r"label index 2 is outside 0\.\.1"):
        TextSet(["a"], [2], ("x", "y"), ["1"], "mem")


# -- bad input: each message names the file, line and column --------------------------------
def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError) as exc:
        load_texts(path)
    assert message(exc) == f"{path}: file not found (hint: check the path)"


def test_missing_text_column_lists_columns_found(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "id,tweet,label\n1,a,pos\n")
    with pytest.raises(DataError) as exc:
        load_texts(path)
    assert message(exc) == (
        f"{path}: no text column 'text' (hint: columns found: id, tweet, label)"
    )


def test_required_labels_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"text": "a", "stars": 5}\n')
    with pytest.raises(DataError) as exc:
        load_texts(path, label_column="sentiment", require_labels=True)
    assert "no label column 'sentiment'" in message(exc)
    assert "columns found: text, stars" in message(exc)
    assert message(exc).startswith(str(path))


def test_missing_id_column(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text\na\n")
    with pytest.raises(DataError, match=r"no id column 'uid' \(hint: columns found: text\)"):
        load_texts(path, id_column="uid")


def test_unknown_label_names_line_column_and_known_labels(tmp_path: Path) -> None:
    # The quoted newline in row 1 makes the bad row sit on physical line 4.
    path = write(tmp_path / "d.csv", 'text,label\n"two\nlines",positive\nbad,postive\n')
    with pytest.raises(DataError) as exc:
        load_texts(path, labels=["negative", "positive"])
    assert message(exc) == (
        f"{path}, line 4, column 'label': unknown label 'postive' "
        "(hint: known labels: negative, positive)"
    )
    assert exc.value.line == 4 and exc.value.column == "label"


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "d.csv", f"text,label\nfine,pos\n{text},neg\n")
    with pytest.raises(DataError) as exc:
        load_texts(path)
    assert message(exc) == f"{path}, line 3, column 'text': empty text (hint: {TEXT_HINT})"


def test_empty_text_in_jsonl_and_parquet(tmp_path: Path) -> None:
    jsonl = write(tmp_path / "d.jsonl", '{"text": "a"}\n\n{"text": null}\n')
    with pytest.raises(DataError) as exc:
        load_texts(jsonl)
    assert message(exc) == f"{jsonl}, line 3, column 'text': missing text (hint: {TEXT_HINT})"
    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a", "b", " "]}), parquet)
    with pytest.raises(DataError) as exc:
        load_texts(parquet)
    assert message(exc) == f"{parquet}, row 3, column 'text': empty text (hint: {TEXT_HINT})"
    assert exc.value.path == str(parquet)


def test_undecodable_bytes_report_the_physical_line(tmp_path: Path) -> None:
    content = 'text,label\n"multi\nline",pos\nfine,neg\ncaf\xe9,pos\n'.encode("latin-1")
    path = write(tmp_path / "d.csv", content)
    with pytest.raises(DataError) as exc:
        load_texts(path)
    assert message(exc) == (
        f"{path}, line 5: cannot decode byte 0xe9 as utf-8 (hint: pass --encoding (e.g. latin-1))"
    )


def test_bad_json_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"text": "a"}\n\n{"text": "b",}\n')
    with pytest.raises(DataError) as exc:
        load_texts(path)
    assert message(exc).startswith(f"{path}, line 3: invalid JSON: ")


def test_json_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '["a", "b"]\n')
    with pytest.raises(DataError, match="line 1: expected a JSON object, found list"):
        load_texts(path)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", "", "empty file"),
        ("blank.csv", "\n\n", "empty file"),
        ("header.csv", "text,label\n", "no data rows"),
        ("empty.jsonl", "\n", "empty file (no JSON records)"),
    ],
)
def test_empty_files(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(DataError) as exc:
        load_texts(path)
    assert exc.value.message == f"{path}: {expected}"
    assert exc.value.hint


def test_empty_parquet(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": pa.array([], type=pa.string())}), path)
    with pytest.raises(DataError, match="no data rows"):
        load_texts(path)


def test_not_a_parquet_file(tmp_path: Path) -> None:
    path = write(tmp_path / "d.parquet", "text\na\n")
    with pytest.raises(DataError, match=r"d\.parquet: cannot read as Parquet"):
        load_texts(path)


def test_wrong_field_count(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\nhello, world,pos\n")
    with pytest.raises(DataError) as exc:
        load_texts(path)
    assert message(exc).startswith(
        f"{path}, line 2: expected 2 fields (text, label), found 3 (hint: quote fields"
    )


def test_duplicate_id(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "id,text\na,x\nb,y\na,z\n")
    with pytest.raises(DataError) as exc:
        load_texts(path, id_column="id")
    assert exc.value.message == f"{path}, line 4, column 'id': duplicate id 'a' (also at line 2)"
    assert exc.value.hint == "give every row its own id, or leave out the id column"


def test_unknown_suffix_and_format(tmp_path: Path) -> None:
    path = write(tmp_path / "d.txt", "text\na\n")
    with pytest.raises(DataError, match=r"cannot tell the format from the suffix '\.txt'"):
        load_texts(path)
    with pytest.raises(ConfigError, match="unknown data format 'xml'"):
        load_texts(path, format="xml")


def test_bad_label_names_argument(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\na,x\n")
    with pytest.raises(ConfigError, match="duplicate label names: x"):
        load_texts(path, labels=["x", "x"])
    with pytest.raises(ConfigError, match="not one string"):
        load_texts(path, labels="x")


def test_unknown_builtin_looking_spec_hints_at_builtins(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_texts("tweets9:train")
    assert "file not found" in message(exc) and "tweets3:<split>" in message(exc)


# -- the hub -------------------------------------------------------------------------------
def test_hub_without_datasets_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(MissingDependencyError) as exc:
        load_texts("hf:some/dataset")
    assert exc.value.hint == "pip install 'slimbert[hub]'"


def test_hub_maps_class_labels_to_names(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    class FakeSplit:
        features: ClassVar[dict[str, Any]] = {
            "sentence": object(),
            "label": types.SimpleNamespace(names=["neg", "pos"]),
        }
        column_names: ClassVar[list[str]] = ["sentence", "label"]

        def __iter__(self) -> Any:
            return iter([{"sentence": "great", "label": 1}, {"sentence": "awful", "label": 0}])

    def load_dataset(dataset_id: str, split: str) -> FakeSplit:
        calls.append((dataset_id, split))
        return FakeSplit()

    fake = types.ModuleType("datasets")
    fake.load_dataset = load_dataset  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", fake)
    data = load_texts("hf:org/sst:validation", text_column="sentence")
    assert calls == [("org/sst", "validation")]
    assert data.label_names == ("neg", "pos") and data.labels == [1, 0]
    assert data.source == "hf:org/sst:validation"
    load_texts("hf:org/sst", text_column="sentence")
    assert calls[-1] == ("org/sst", "train")


def test_data_layer_imports_neither_torch_nor_pandas() -> None:
    code = (
        "import sys, slimbert.data.load, slimbert.data.tweets3; "
        "print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_nul_bytes_are_a_data_error_with_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "nul.csv", "text,label\ngood,pos\nba\x00d,neg\n")
    with pytest.raises(DataError) as exc:
        load_texts(path)
    assert (
        exc.value.message
        == f"{path}, line 3: NUL byte in the text: this looks like a binary or UTF-16 file"
    )
    assert exc.value.hint and "UTF-8" in exc.value.hint


def test_a_column_named_twice_in_the_header_is_a_data_error(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.csv", "id,text,text,label\n1,a,b,pos\n")
    with pytest.raises(DataError) as exc:
        load_texts(path)
    assert (
        exc.value.message == f"{path}, line 1: column 'text' appears more than once in the header"
    )
    assert exc.value.hint == "give every column a distinct name"
