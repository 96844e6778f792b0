from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from slimbert.errors import ConfigError, DataError, ModelError
from slimbert.export.bundle import ExportOptions, export_model
from slimbert.io import read_json, sha256_file
from slimbert.models.load import TorchClassifier

LABELS = ("negative", "neutral", "positive")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "bundle.md"
STSB_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "stsb" / "stsb-en-dev.csv"
TEXTS = [
    "good",
    "the flight was delayed but the crew was lovely",
    "hate it",
    "a chair by the window on a monday, nothing else to say about it really",
    "so happy today",
]


def run_onnx(model: Path, tokenizer_file: Path, texts: list[str]) -> np.ndarray:
    """Run a bundle's graph as a runtime would: its tokenizer, its declared inputs, one batch."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    encodings = tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in encodings)
    arrays = {k: np.zeros((len(texts), width), dtype=np.int64) for k in ("ids", "mask", "types")}
    for row, enc in enumerate(encodings):
        arrays["ids"][row, : len(enc.ids)] = enc.ids
        arrays["mask"][row, : len(enc.ids)] = enc.attention_mask
        arrays["types"][row, : len(enc.ids)] = enc.type_ids
    names = {"input_ids": "ids", "attention_mask": "mask", "token_type_ids": "types"}
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    feed = {i.name: arrays[names[i.name]] for i in session.get_inputs()}
    return session.run(None, feed)[0]


def graph_inputs(model: Path) -> list[str]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return [i.name for i in session.get_inputs()]


def documented_manifest() -> dict[str, Any]:
    """The example manifest of docs/bundle.md, its // comments removed."""
    block = re.search(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert block is not None
    return json.loads(re.sub(r"\s*//[^\n]*", "", block.group(1)))


@pytest.fixture(scope="module")
def classifier(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clf") / "clf"
    TorchClassifier.build(tiny_model, LABELS, max_length=32).save(out)
    return out


@pytest.fixture(scope="module")
def bundle(
    classifier: Path, tiny_data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("export") / "bundle"
    options = ExportOptions(model=classifier, out=out, validation=str(tiny_data["validation"]))
    return out, export_model(options)


@pytest.fixture(scope="module")
def fp32_bundle(
    classifier: Path, tiny_data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """int8 held to an impossible standard (-1 points): the gate must keep fp32."""
    out = tmp_path_factory.mktemp("export-fp32") / "bundle"
    options = ExportOptions(
        model=classifier, out=out, validation=str(tiny_data["validation"]), max_f1_drop=-1
    )
    return out, export_model(options)


def test_fp32_graph_matches_torch_at_any_batch_and_length(
    classifier: Path, fp32_bundle: tuple[Path, dict[str, Any]]
) -> None:
    from tokenizers import Tokenizer

    out, manifest = fp32_bundle
    clf = TorchClassifier.load(classifier)
    model, tokenizer = out / manifest["model_file"], out / "tokenizer.json"
    for batch in ([TEXTS[1]], TEXTS, TEXTS[::-1]):  # batch sizes 1 and 5, padded differently
        np.testing.assert_allclose(run_onnx(model, tokenizer, batch), clf.logits(batch), atol=1e-4)
    # The bundle's tokenizer is the one the classifier was trained with.
    ids = [e.ids for e in Tokenizer.from_file(str(tokenizer)).encode_batch(TEXTS)]
    assert ids == clf.encode(TEXTS)["input_ids"]


def test_runtime_graph_answers_as_the_graph_the_gate_measured(
    classifier: Path,
    bundle: tuple[Path, dict[str, Any]],
    fp32_bundle: tuple[Path, dict[str, Any]],
) -> None:
    """The graph saved for the function (weights apart, onnxruntime's rewrites done, loaded
    with optimisations off) gives the logits of the unoptimised graph within 1e-4."""
    import onnx
    import onnxruntime as ort

    from slimbert.export.convert import WEIGHTS_SHA256_KEY
    from slimbert.runtime import load_bundle

    clf = TorchClassifier.load(classifier)
    for out, manifest in (fp32_bundle, bundle):
        graph = manifest["graph_optimization"]
        assert graph["level"] == "extended" and graph["onnxruntime"] == ort.__version__
        assert 0 <= graph["max_abs_diff"] <= 1e-4
        data = manifest["model_data_file"]
        assert data == manifest["model_file"] + ".data" and data in manifest["files"]
        # The graph's digest pins its weights: the graph names the weights file's sha256.
        props = onnx.load(str(out / manifest["model_file"]), load_external_data=False)
        weights = {p.key: p.value for p in props.metadata_props}[WEIGHTS_SHA256_KEY]
        assert weights == manifest["files"][data]["sha256"] == sha256_file(out / data)
        served = load_bundle(out, threads=1)
        level = served._session.get_session_options().graph_optimization_level
        assert level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        logits = served.logits(TEXTS)
        # The same graph re-optimised in memory at load, as every bundle was served before.
        np.testing.assert_allclose(
            logits, run_onnx(out / manifest["model_file"], out / "tokenizer.json", TEXTS), atol=1e-4
        )
        if manifest["variant"] != "qint8":
            np.testing.assert_allclose(logits, clf.logits(TEXTS), atol=1e-4)  # torch itself


def test_manifest_follows_docs_and_checksums(bundle: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = bundle
    documented = documented_manifest()
    assert set(manifest) == set(documented)
    assert set(manifest["gate"]) == set(documented["gate"])
    assert set(manifest["gate"]["fp32"]) == set(documented["gate"]["fp32"])
    assert set(manifest["gate"]["qint8"]) == set(documented["gate"]["qint8"])
    assert read_json(out / "manifest.json") == manifest
    assert manifest["format"] == "slimbert-bundle/1" and manifest["task"] == "classification"
    assert manifest["labels"] == list(LABELS) and manifest["max_length"] == 32
    assert manifest["outputs"] == ["logits"] and manifest["opset"] >= 17
    assert sorted(p.name for p in out.iterdir()) == sorted([*manifest["files"], "manifest.json"])
    for name, entry in manifest["files"].items():
        assert entry == {"sha256": sha256_file(out / name), "bytes": (out / name).stat().st_size}
    model = out / manifest["model_file"]
    assert manifest["inputs"] == graph_inputs(model)
    assert manifest["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", manifest["created"])
    assert not list(out.parent.glob(".bundle*")), "no temporary folders left behind"


def test_bundle_gate_runs_the_behavioural_suite_on_both_graphs(
    bundle: tuple[Path, dict[str, Any]],
) -> None:
    from slimbert.models.behaviour import load_suite

    behaviour = bundle[1]["gate"]["behaviour"]
    assert behaviour["cases"] == len(load_suite())
    assert 0 <= behaviour["qint8_pass_rate"] <= 1 and 0 <= behaviour["fp32_pass_rate"] <= 1
    drop = 100 * (behaviour["fp32_pass_rate"] - behaviour["qint8_pass_rate"])
    assert behaviour["drop_points"] == pytest.approx(drop)


@pytest.mark.parametrize(("qint8_rate", "chosen"), [(0.89, "qint8"), (0.87, "fp32")])
def test_behaviour_drop_over_the_threshold_keeps_fp32(qint8_rate: float, chosen: str) -> None:
    from slimbert.export.gate import behaviour_gate

    options = ExportOptions(model=Path("m"), max_behaviour_drop=2.0)
    gate = {"passed": True, "chosen": "qint8"}
    result = behaviour_gate(
        options, gate, {"cases": 100, "pass_rate": 0.90}, {"cases": 100, "pass_rate": qint8_rate}
    )
    assert result["chosen"] == chosen and result["passed"] is (chosen == "qint8")
    assert result["behaviour"]["threshold_points"] == 2.0


def test_tokenizer_is_unpadded_and_truncates(bundle: tuple[Path, dict[str, Any]]) -> None:
    from tokenizers import Tokenizer

    out, manifest = bundle
    saved = read_json(out / "tokenizer.json")
    assert saved["padding"] is None
    assert saved["truncation"] == {
        "max_length": 32,
        "strategy": "LongestFirst",
        "direction": "Right",
        "stride": 0,
    }
    long_text = " ".join(["wonderful"] * 300)
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    assert len(tokenizer.encode(long_text).ids) == 32
    assert len(tokenizer.encode("good").ids) == 3  # [CLS] good [SEP]: no padding
    logits = run_onnx(out / manifest["model_file"], out / "tokenizer.json", [long_text, "ok"])
    assert logits.shape == (2, 3) and np.isfinite(logits).all()


def test_int8_is_smaller_and_gated(bundle: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = bundle
    report = read_json(out.parent / "bundle.export.json")
    assert report["variants"]["qint8"]["bytes"] < report["variants"]["fp32"]["bytes"] / 2
    assert report["variants"]["fp32"]["fused_ops"]["Attention"] == 4
    assert {"export_s", "optimize_s", "quantize_s", "total_s"} <= set(report["timings"])
    gate = manifest["gate"]
    assert gate["rows"] == 90 and gate["threshold_points"] == 1.0
    assert 0 <= gate["qint8"]["label_agreement"] <= 1
    assert gate["fp32"]["max_abs_logit_diff"] <= 1e-3
    drop = 100 * (gate["fp32"]["macro_f1"] - gate["qint8"]["macro_f1"])
    assert gate["qint8"]["macro_f1_drop_points"] == pytest.approx(drop)
    # Over the threshold, int8 is refused only for a drop told from noise (paired bootstrap).
    assert gate["passed"] == (drop <= 1.0 or not gate["qint8"]["distinguishable"])
    assert gate["one_row_points"] > 0 and gate["confidence"] == 0.95
    assert "90 validation rows" in gate["verdict"] and "--max-f1-drop 1" in gate["verdict"]
    chosen = "qint8" if gate["passed"] else "fp32"
    assert gate["chosen"] == chosen and manifest["model_file"] == f"model_{chosen}.onnx"


def test_graphs_use_only_portable_operator_domains(
    bundle: tuple[Path, dict[str, Any]], fp32_bundle: tuple[Path, dict[str, Any]]
) -> None:
    import onnx

    # Standard ONNX plus onnxruntime's contrib ops (CPU kernels on x86_64 and arm64 alike);
    # no layout-specific (nchwc) nodes and no leftover domain declarations.
    for out, manifest in (bundle, fp32_bundle):
        graph = onnx.load(str(out / manifest["model_file"]))
        assert {op.domain for op in graph.opset_import} <= {"", "ai.onnx", "com.microsoft"}
        assert {node.domain for node in graph.graph.node} <= {"", "com.microsoft"}
    ops = {n.op_type for n in onnx.load(str(fp32_bundle[0] / "model_fp32.onnx")).graph.node}
    assert {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization"} <= ops


def test_impossible_gate_keeps_fp32(fp32_bundle: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = fp32_bundle
    gate = manifest["gate"]
    assert gate["passed"] is False and gate["chosen"] == "fp32"
    assert manifest["model_file"] == "model_fp32.onnx" and manifest["variant"] == "fp32-opt"
    assert sorted(manifest["files"]) == [
        "model_fp32.onnx",
        "model_fp32.onnx.data",
        "tokenizer.json",
    ]
    assert not (out / "model_qint8.onnx").exists()


def test_failed_gate_is_logged(
    classifier: Path, tiny_data: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = ExportOptions(
        model=classifier,
        out=tmp_path / "b",
        validation=str(tiny_data["validation"]),
        max_f1_drop=-1,
        gate_rows=8,
        optimize=False,
    )
    with caplog.at_level(logging.WARNING, logger="slimbert.export.bundle"):
        first = export_model(options)
    assert first["variant"] == "fp32" and first["gate"]["rows"] == 8
    assert any("int8 fails the quality gate" in r.getMessage() for r in caplog.records)
    again = export_model(options.replace(max_f1_drop=100.0))  # replaces the bundle in place
    assert again["model_file"] == "model_qint8.onnx" and again["gate"]["passed"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "b.export.json"]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "manifest.json",
        "model_qint8.onnx",
        "model_qint8.onnx.data",
        "tokenizer.json",
    ]


def _gate(truth: list[int], fp32: list[int], qint8: list[int], **options: Any) -> dict[str, Any]:
    """The classification gate on given predictions (logits one-hot), without a model."""
    from types import SimpleNamespace

    from slimbert.export.gate import GateData, classification_gate

    eye = np.eye(len(LABELS), dtype=np.float32)
    data = GateData(texts=["t"] * len(truth), labels=truth)
    source: Any = SimpleNamespace(labels=LABELS)
    opts = ExportOptions(model=Path("m"), validation="v.csv", **options)
    return classification_gate(opts, source, data, eye[fp32], eye[qint8], 0.0)


def _rows(n: int, wrong: int) -> tuple[list[int], list[int]]:
    """n rows in three classes; fp32 right on all but ``wrong`` of them."""
    truth = [i % 3 for i in range(n)]
    fp32 = [(t + 1) % 3 if i < wrong else t for i, t in enumerate(truth)]
    return truth, fp32


def test_one_row_is_worth_what_a_flipped_prediction_can_move() -> None:
    from slimbert.export.gate import one_row_points
    from slimbert.metrics import classification_report

    truth, fp32 = _rows(50, 10)
    worth = one_row_points(np.array(truth), np.array(fp32), 3)
    base = classification_report(truth, fp32, LABELS)["macro_f1"]
    brute = 0.0
    for i in range(50):
        for q in range(3):
            moved = [*fp32[:i], q, *fp32[i + 1 :]]
            brute = max(brute, abs(classification_report(truth, moved, LABELS)["macro_f1"] - base))
    assert worth == pytest.approx(100 * brute)
    assert 1.5 < worth < 4  # ~100/n per row on 50 rows: more than the 1-point threshold


def test_small_validation_set_does_not_refuse_int8_over_one_row() -> None:
    truth, fp32 = _rows(50, 5)
    qint8 = list(fp32)
    qint8[10] = (truth[10] + 1) % 3  # int8 wrong on one row fp32 gets right
    gate = _gate(truth, fp32, qint8)
    q = gate["qint8"]
    assert q["macro_f1_drop_points"] > 1.0 and (q["worse_rows"], q["better_rows"]) == (1, 0)
    assert q["distinguishable"] is False and q["drop_low_points"] <= 0
    assert gate["passed"] is True and gate["chosen"] == "qint8"
    from slimbert.export.gate import gate_verdict

    sizes = {
        v: {"bytes": b, "zipped_bytes": b} for v, b in (("fp32", 90 << 20), ("qint8", 15 << 20))
    }
    text = gate_verdict(gate, sizes, True)
    assert "int8 passes the quality gate on 50 validation rows" in text
    assert "not distinguishable from noise" in text and "--gate-confidence 0" in text
    assert "a single row outweighs the threshold" in text
    assert "int8 15.0 MiB" in text and "Lambda zip may hold 50 MiB" in text
    # --gate-confidence 0: the threshold alone, as before (one row refuses int8).
    strict = _gate(truth, fp32, qint8, gate_confidence=0)
    assert strict["passed"] is False and strict["chosen"] == "fp32"
    text = gate_verdict(strict, sizes, True)
    assert text.startswith("int8 fails the quality gate") and "--max-f1-drop 2.1" in text
    assert "the bundled fp32 will not fit (int8 would)" in text


def test_large_validation_set_refuses_a_real_drop() -> None:
    truth, fp32 = _rows(2000, 300)
    qint8 = list(fp32)
    for i in range(300, 340):  # int8 wrong on 40 rows fp32 gets right: 2 % accuracy
        qint8[i] = (truth[i] + 2) % 3
    gate = _gate(truth, fp32, qint8)
    q = gate["qint8"]
    assert q["macro_f1_drop_points"] > 1.0 and q["distinguishable"] is True
    assert q["drop_low_points"] > 0 and gate["passed"] is False
    assert gate["one_row_points"] < 0.1
    # A drop within the threshold passes whatever the statistics say.
    assert _gate(truth, fp32, fp32)["passed"] is True


def test_negative_threshold_still_forces_fp32() -> None:
    truth, fp32 = _rows(30, 3)
    gate = _gate(truth, fp32, fp32, max_f1_drop=-1)
    assert gate["qint8"]["macro_f1_drop_points"] == 0 and gate["passed"] is False


def test_bootstrap_is_paired_and_seeded() -> None:
    from slimbert.export.gate import bootstrap_drops

    truth, fp32 = _rows(200, 20)
    t, f = np.array(truth), np.array(fp32)
    assert not bootstrap_drops(t, f, f, 3).any()  # same predictions: no drop in any resample
    q = f.copy()
    q[:5] = t[:5]  # int8 better on 5 rows
    drops = bootstrap_drops(t, f, q, 3)
    assert (drops <= 0).all() and np.array_equal(drops, bootstrap_drops(t, f, q, 3))
    with pytest.raises(ConfigError, match="gate_confidence"):
        ExportOptions(model=Path("m"), gate_confidence=1.0)


def test_cli_prints_the_verdict_and_json(
    classifier: Path, tiny_data: dict[str, Path], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from slimbert.cli import app

    args = ["export", "--model", str(classifier), "--validation", str(tiny_data["validation"])]
    args += ["--gate-rows", "20", "--no-optimize"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a"), "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)  # stdout holds the manifest and nothing else
    assert manifest["gate"]["rows"] == 20 and manifest["gate"]["verdict"].startswith("int8 ")
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "quality gate on 20 validation rows" in result.stdout and "MiB zipped" in result.stdout


@pytest.fixture(scope="module")
def embedder(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sentence_transformers import SentenceTransformer, models

    transformer = models.Transformer(str(tiny_model), max_seq_length=64)
    pooling = models.Pooling(32, pooling_mode="mean")
    st = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
    out = tmp_path_factory.mktemp("st") / "embedder"
    st.save(str(out))
    return out


def test_embedding_export_matches_sentence_transformers(embedder: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    options = ExportOptions(model=embedder, out=tmp_path / "emb", validation=None)
    manifest = export_model(options)
    assert manifest["task"] == "embedding" and manifest["outputs"] == ["embeddings"]
    assert manifest["pooling"] == "mean" and manifest["normalize"] is True
    assert manifest["dim"] == 32 and manifest["max_length"] == 64 and manifest["labels"] is None
    assert manifest["gate"]["chosen"] == "fp32" and manifest["gate"]["passed"] is None
    model = tmp_path / "emb" / manifest["model_file"]
    texts = [*TEXTS, " ".join(["great"] * 300)]
    vectors = run_onnx(model, tmp_path / "emb" / "tokenizer.json", texts)
    expected = SentenceTransformer(str(embedder), device="cpu").encode(texts)
    np.testing.assert_allclose(vectors, expected, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_embedding_normalisation_can_be_switched_off(embedder: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    options = ExportOptions(model=embedder, out=tmp_path / "raw", validation=None, normalize=False)
    manifest = export_model(options)
    assert manifest["normalize"] is False and manifest["variant"] == "fp32-opt"
    vectors = run_onnx(
        tmp_path / "raw" / manifest["model_file"], tmp_path / "raw" / "tokenizer.json", TEXTS
    )
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    assert not np.allclose(norms, 1.0, atol=1e-3)
    expected = SentenceTransformer(str(embedder), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(vectors / norms, expected, atol=1e-4)


def test_embedding_gate_uses_scored_pairs(embedder: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"  # STS-b layout: no header, sentence1,sentence2,score
    with open(pairs, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        for i, (a, b) in enumerate(zip(TEXTS * 4, TEXTS[1:] * 4 + TEXTS[:1] * 4, strict=True)):
            writer.writerow([a, f"{b}, again", f"{(i * 7) % 6:.1f}"])
    options = ExportOptions(model=embedder, out=tmp_path / "emb", validation=str(pairs))
    gate = export_model(options)["gate"]
    assert gate["pairs"] is True and gate["rows"] == 20 and gate["metric"] == "spearman_drop_points"
    assert gate["qint8"]["cosine_mean"] > 0.99 and -1 <= gate["qint8"]["spearman"] <= 1
    assert gate["qint8"]["spearman_drop_points"] == pytest.approx(
        100 * (gate["fp32"]["spearman"] - gate["qint8"]["spearman"])
    )


def test_scored_pairs_are_read_with_or_without_header(tmp_path: Path) -> None:
    from slimbert.export.gate import read_pairs

    (tmp_path / "h.csv").write_text("score,sentence1,sentence2\n4.5,a b,a c\n1,x,y\n")
    (tmp_path / "n.csv").write_text('"a, b",a c,4.5\nx,y,1.0\n')
    (tmp_path / "bad.csv").write_text("a,b,1\nx,y,high\n")
    for name in ("h.csv", "n.csv"):
        pairs = read_pairs(str(tmp_path / name), "utf-8", limit=10)
        assert pairs is not None and pairs.scores == [4.5, 1.0]
        assert pairs.texts[1:] == ["x", "a c", "y"]
    first = read_pairs(str(tmp_path / "n.csv"), "utf-8", limit=1)
    assert first is not None and first.texts == ["a, b", "a c"]
    with pytest.raises(DataError, match="line 2"):
        read_pairs(str(tmp_path / "bad.csv"), "utf-8", limit=10)
    (tmp_path / "t.csv").write_text("id,text,label\nr0,good,positive\n")
    assert read_pairs(str(tmp_path / "t.csv"), "utf-8", limit=10) is None


def test_bad_inputs_are_refused(classifier: Path, tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        export_model(ExportOptions(model=tmp_path / "missing", out=tmp_path / "b"))
    with pytest.raises(ModelError, match="not a"):
        export_model(ExportOptions(model=tiny_model, out=tmp_path / "b"))  # plain HF folder
    with pytest.raises(ModelError, match="sentence-transformers embedder"):
        export_model(ExportOptions(model=classifier, out=tmp_path / "b", task="embedding"))
    with pytest.raises(ConfigError, match="opset"):
        ExportOptions(model=classifier, opset=11)
    with pytest.raises(ConfigError, match="max_length"):
        export_model(ExportOptions(model=classifier, out=tmp_path / "b", max_length=4096))
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="refusing"):
        export_model(ExportOptions(model=classifier, out=tmp_path / "precious"))
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def test_gru_head_is_not_exportable_yet(tiny_model: Path, tmp_path: Path) -> None:
    TorchClassifier.build(tiny_model, LABELS, head="gru").save(tmp_path / "gru")
    with pytest.raises(ModelError, match="not exportable yet"):
        export_model(ExportOptions(model=tmp_path / "gru", out=tmp_path / "b", validation=None))


def test_options_round_trip() -> None:
    options = ExportOptions(model=Path("m"), validation=None, max_length=64)
    assert ExportOptions.from_dict(options.to_dict()) == options
    assert ExportOptions.from_dict({"model": "m", "opset": "18"}).opset == 18
    assert ExportOptions(model=Path("m"), validation="none").validation is None


@pytest.mark.slow
def test_minilm_embedder_exports_faithfully(tiny_data: dict[str, Path], tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from slimbert.models.load import resolve_model

    path = Path(resolve_model("all-MiniLM-L6-v2"))
    validation = str(STSB_DEV if STSB_DEV.is_file() else tiny_data["validation"])
    texts = [*TEXTS, " ".join(["wonderful"] * 300)]
    expected = SentenceTransformer(str(path), device="cpu").encode(texts)

    fp32 = export_model(ExportOptions(model=path, out=tmp_path / "fp32", validation=None))
    bundle = tmp_path / "fp32"
    vectors = run_onnx(bundle / fp32["model_file"], bundle / "tokenizer.json", texts)
    np.testing.assert_allclose(vectors, expected, atol=1e-4)

    options = ExportOptions(model=path, out=tmp_path / "int8", validation=validation, gate_rows=300)
    manifest = export_model(options)
    assert manifest["dim"] == 384 and manifest["max_length"] == 256
    assert manifest["gate"]["qint8"]["cosine_mean"] >= 0.98
    int8 = tmp_path / "int8" / "model_qint8.onnx"
    report = read_json(tmp_path / "int8.export.json")
    assert report["variants"]["qint8"]["bytes"] < report["variants"]["fp32"]["bytes"] / 3
    if manifest["model_file"] == int8.name:
        vectors = run_onnx(int8, tmp_path / "int8" / "tokenizer.json", texts)
        cosine = np.sum(vectors * expected, axis=1)  # both unit-norm
        assert cosine.mean() >= 0.98
