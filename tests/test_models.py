from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from slimbert.errors import ConfigError, ModelError
from slimbert.models.load import TorchClassifier, resolve_model

LABELS = ("negative", "neutral", "positive")


def test_layer_subset_student_keeps_the_chosen_layers(tiny_model: Path, tmp_path: Path) -> None:
    import transformers

    full = transformers.AutoModel.from_pretrained(tiny_model)
    student = TorchClassifier.build(tiny_model, LABELS, layers=(0, 3))
    kept = student.module.base_model.encoder.layer  # type: ignore[union-attr]
    assert len(kept) == 2
    # Layer 3 of the student's source is the new layer 1: same weights.
    src = full.encoder.layer[3].attention.self.query.weight
    assert np.allclose(kept[1].attention.self.query.weight.detach(), src.detach())
    student.save(tmp_path / "s")
    again = TorchClassifier.load(tmp_path / "s")
    assert again.module.config.num_hidden_layers == 2  # type: ignore[union-attr]
    assert again.label_names == LABELS
    texts = ["a good day", "the chair is by the window today"]
    assert np.allclose(student.logits(texts), again.logits(texts), atol=1e-5)
    assert (tmp_path / "s" / "model.safetensors").is_file()
    assert not list((tmp_path / "s").glob("*.bin")), "no pickled weights"


@pytest.mark.parametrize("layers", [(), (3, 0), (0, 4), (1, 1)])
def test_bad_layer_subsets_are_rejected(tiny_model: Path, layers: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match="layers"):
        TorchClassifier.build(tiny_model, LABELS, layers=layers)


def test_gru_head_freezes_the_encoder_and_round_trips(tiny_model: Path, tmp_path: Path) -> None:
    clf = TorchClassifier.build(tiny_model, LABELS, head="gru")
    trainable = {n for n, p in clf.module.named_parameters() if p.requires_grad}
    assert trainable and all(not n.startswith("encoder.") for n in trainable)
    assert clf.module.gru.hidden_size == 128 and clf.module.gru.bidirectional  # type: ignore[union-attr]
    texts = ["good", "a much longer text that is padded differently from the first"]
    before = clf.logits(texts)
    # Padding must not change a text's logits (packed sequences ignore pad positions).
    alone = clf.logits(texts[:1])
    assert np.allclose(before[:1], alone, atol=1e-5)
    clf.save(tmp_path / "g")
    assert np.allclose(TorchClassifier.load(tmp_path / "g").logits(texts), before, atol=1e-5)


def test_save_replaces_atomically_and_leaves_no_temp(tiny_model: Path, tmp_path: Path) -> None:
    clf = TorchClassifier.build(tiny_model, LABELS)
    clf.save(tmp_path / "m")
    clf.save(tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_unknown_model_and_non_slimbert_folder_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="neither a folder nor a known model"):
        resolve_model("no-such-model")
    with pytest.raises(ModelError, match="not a slimbert classifier"):
        TorchClassifier.load(tmp_path)
