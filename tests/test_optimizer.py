"""Layer-wise learning-rate decay and frozen lower layers (train.loop.make_optimizer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimbert.errors import ConfigError
from slimbert.models.load import TorchClassifier
from slimbert.train.finetune import TrainOptions
from slimbert.train.loop import encoder_depth, make_optimizer


def test_encoder_depth_orders_embeddings_layers_and_head() -> None:
    assert encoder_depth("bert.embeddings.word_embeddings.weight", 4) == 0
    assert encoder_depth("bert.encoder.layer.0.attention.self.query.weight", 4) == 1
    assert encoder_depth("mpnet.encoder.layer.3.output.dense.bias", 4) == 4
    assert encoder_depth("classifier.weight", 4) == 5


def test_layer_decay_and_freezing(tiny_model: Path) -> None:
    clf = TorchClassifier.build(tiny_model, ("a", "b"), max_length=16)  # 4 layers
    optimizer = make_optimizer(clf.module, 1.0, 0.01, layer_decay=0.5, freeze_layers=2)
    lrs = {}
    for group in optimizer.param_groups:
        for param in group["params"]:
            lrs[id(param)] = group["lr"]
    by_name = {n: lrs.get(id(p)) for n, p in clf.module.named_parameters()}
    # Embeddings and layer 0 are frozen: no gradient, not in the optimiser.
    frozen = [n for n, p in clf.module.named_parameters() if not p.requires_grad]
    assert frozen and all("embeddings" in n or ".layer.0." in n for n in frozen)
    assert all(by_name[n] is None for n in frozen)
    assert by_name["classifier.weight"] == 1.0
    assert by_name["bert.encoder.layer.3.output.dense.weight"] == 0.5
    assert by_name["bert.encoder.layer.1.output.dense.weight"] == 0.125
    # Without options every trainable parameter keeps the base rate (the old behaviour).
    plain = make_optimizer(TorchClassifier.build(tiny_model, ("a", "b")).module, 2e-5, 0.01)
    assert {g["lr"] for g in plain.param_groups} == {2e-5}


@pytest.mark.parametrize(("field", "value"), [("layer_decay", 0.0), ("freeze_layers", -1)])
def test_bad_values_are_refused(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        TrainOptions(**{field: value})
