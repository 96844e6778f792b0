"""``slimbert predict``: the runtime's answers in this process, for texts and for files; files
are written atomically and never over their input; no torch is imported."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runtime_fixtures import DIM, LABELS, build_bundle
from slimbert.cli import app
from slimbert.deploy.predict import format_answer, predict_file, predict_texts
from slimbert.errors import ConfigError, DataError
from slimbert.runtime import load_bundle

TEXTS = ["good great", "bad awful", "table chair"]
EXPECTED = ["positive", "negative", "neutral"]
runner = CliRunner()


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("predict") / "classifier")


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("predict") / "embedder", task="embedding")


def _texts_file(path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        writer.writerows([f"r{i}", t] for i, t in enumerate(TEXTS))
    return path


def test_texts_get_the_functions_answer(classifier: Path) -> None:
    answer = predict_texts(classifier, TEXTS)
    assert answer["task"] == "classification" and answer["labels"] == LABELS
    assert [p["label"] for p in answer["predictions"]] == EXPECTED
    assert [p["text"] for p in answer["predictions"]] == TEXTS
    bundle = load_bundle(classifier)
    for p, q in zip(answer["predictions"], bundle.predict(TEXTS), strict=True):
        assert p["probabilities"] == pytest.approx(q["probabilities"], abs=1e-6)
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    table = format_answer(answer)
    assert "| good great | positive |" in table and "negative | neutral | positive" in table


def test_an_embedder_gets_vectors_and_a_note(embedder: Path) -> None:
    answer = predict_texts(embedder, TEXTS[:2])
    assert answer["task"] == "embedding" and answer["dim"] == DIM
    assert len(answer["embeddings"]) == 2 and all(len(v) == DIM for v in answer["embeddings"])
    assert sum(v * v for v in answer["embeddings"][0]) == pytest.approx(1.0, abs=1e-5)
    assert "is an embedder" in format_answer(answer) and "(no label)" in format_answer(answer)


def test_bad_calls_are_refused(classifier: Path) -> None:
    with pytest.raises(ConfigError, match="single string"):
        predict_texts(classifier, "good")
    with pytest.raises(ConfigError, match="no texts"):
        predict_texts(classifier, [])


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_file_of_texts_becomes_a_file_of_predictions(
    classifier: Path, tmp_path: Path, suffix: str
) -> None:
    data = _texts_file(tmp_path / "texts.csv")
    out = tmp_path / f"predictions{suffix}"
    summary = predict_file(classifier, data, out, id_column="id")
    assert summary["rows"] == 3 and summary["label_counts"] == dict.fromkeys(LABELS, 1)
    if suffix == ".csv":
        with open(out, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert list(rows[0]) == ["id", "text", "label", *(f"p_{x}" for x in LABELS)]
        assert [r["label"] for r in rows] == EXPECTED and rows[0]["id"] == "r0"
    else:
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [r["label"] for r in rows] == EXPECTED and set(rows[0]["probabilities"]) == set(
            LABELS
        )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_embeddings_to_csv(embedder: Path, tmp_path: Path) -> None:
    out = tmp_path / "vectors.csv"
    predict_file(embedder, _texts_file(tmp_path / "texts.csv"), out)
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["id", "text", "embedding"]
    assert len(json.loads(rows[0]["embedding"])) == DIM


def test_never_over_the_input_and_never_half_written(classifier: Path, tmp_path: Path) -> None:
    data = _texts_file(tmp_path / "texts.csv")
    before = data.read_bytes()
    with pytest.raises(ConfigError, match="never written over"):
        predict_file(classifier, data, data)
    link = tmp_path / "same.csv"
    link.symlink_to(data)
    with pytest.raises(ConfigError, match="never written over"):
        predict_file(classifier, data, link)
    assert data.read_bytes() == before
    with pytest.raises(ConfigError, match=r"\.csv or \.jsonl"):
        predict_file(classifier, data, tmp_path / "out.txt")
    out = tmp_path / "out.csv"
    with pytest.raises(DataError):
        predict_file(classifier, data, out, text_column="missing")
    assert not out.exists()


def test_cli_texts_json_and_files(classifier: Path, embedder: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["predict", "--bundle", str(classifier), *TEXTS])
    assert result.exit_code == 0, result.output
    assert "| bad awful | negative |" in result.output
    result = runner.invoke(app, ["predict", "--bundle", str(classifier), "--json", "good great"])
    assert result.exit_code == 0 and json.loads(result.output)["predictions"][0]["label"] == (
        "positive"
    )
    result = runner.invoke(app, ["predict", "--bundle", str(embedder), "good"])
    assert result.exit_code == 0 and "is an embedder" in result.output
    data, out = _texts_file(tmp_path / "texts.csv"), tmp_path / "p.jsonl"
    args = ["predict", "--bundle", str(classifier), "--data", str(data)]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0 and "3 texts" in result.output and out.is_file()
    for extra, message in (([], "--data needs --out"), (["x", "--out", str(out)], "not both")):
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 2 and message in result.output
    result = runner.invoke(app, ["predict", "--bundle", str(tmp_path / "none"), "good"])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_predict_imports_no_torch(classifier: Path) -> None:
    code = (
        "import sys; from slimbert.deploy.predict import predict_texts; "
        f"predict_texts({str(classifier)!r}, ['good']); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
