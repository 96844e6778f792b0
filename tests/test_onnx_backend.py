"""The exported bundle stands in for the torch model: labelling and evaluation agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")


def test_label_and_eval_with_the_onnx_bundle_match_torch(
    tiny_model: Path, tiny_data: dict[str, Path], tmp_path: Path
) -> None:
    from slimbert.export.bundle import ExportOptions, export_model
    from slimbert.train.evaluate import EvalOptions, evaluate_models
    from slimbert.train.finetune import TrainOptions, train_classifier
    from slimbert.train.label import LabelOptions, label_corpus, read_silver

    train_classifier(
        TrainOptions(
            model=str(tiny_model),
            train=str(tiny_data["train"]),
            validation=str(tiny_data["validation"]),
            out=tmp_path / "teacher",
            epochs=6,
            patience=6,
            batch_size=16,
            lr=3e-3,
            max_length=32,
        )
    )
    export_model(
        ExportOptions(
            model=tmp_path / "teacher",
            out=tmp_path / "bundle",
            validation=str(tiny_data["validation"]),
            quantize=False,
        )
    )
    for backend, teacher in (("torch", "teacher"), ("onnx", "bundle")):
        label_corpus(
            LabelOptions(
                teacher=tmp_path / teacher,
                data=str(tiny_data["pool"]),
                out=tmp_path / f"silver-{backend}",
                backend=backend,  # type: ignore[arg-type]
                shard_size=128,
                batch_size=64,
                max_length=32,
            )
        )
    torch_silver, torch_logits = read_silver(tmp_path / "silver-torch")
    onnx_silver, onnx_logits = read_silver(tmp_path / "silver-onnx")
    assert onnx_silver.labels == torch_silver.labels
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-4)

    result = evaluate_models(
        EvalOptions(
            models=(str(tmp_path / "teacher"), str(tmp_path / "bundle")),
            data=str(tiny_data["test"]),
            latency_samples=5,
        )
    )
    vader_row, torch_row, onnx_row = result["models"]  # VADER heads 3-class sentiment tables
    assert vader_row["model"] == "vader"
    assert onnx_row["kind"].startswith("onnx-fp32")
    assert onnx_row["macro_f1"] == pytest.approx(torch_row["macro_f1"], abs=1e-9)
    assert onnx_row["confusion_matrix"] == torch_row["confusion_matrix"]
