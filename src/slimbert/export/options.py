"""The options of stage ``export`` (``slimbert export``, ``export:`` in a pipeline file).

Their own module so that the steps (:mod:`slimbert.export.convert`) and the gate
(:mod:`slimbert.export.gate`) can name them without importing the stage that chains them.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import ClassVar, Literal

from slimbert.config import Options, check

# The TorchScript exporter's highest opset (torch.onnx._constants).
MAX_OPSET = 20
AUTO = "auto"


@dataclasses.dataclass(frozen=True)
class ExportOptions(Options):
    stage: ClassVar[str] = "export"

    model: Path
    out: Path = Path("runs/bundle")
    task: Literal["auto", "classification", "embedding"] = "auto"
    # "auto": the validation set recorded with the model (slimbert.data.owndata; refused when there
    # is none); None (or "none" on the command line): no gate, fp32 is kept.
    validation: str | None = AUTO
    text_column: str = "text"
    label_column: str = "label"
    encoding: str = "utf-8"
    gate_rows: int = 2000
    max_length: int | None = None
    opset: int = 17
    optimize: bool = True
    quantize: bool = True
    max_f1_drop: float = 1.0
    # int8 is refused for a macro-F1 drop over max_f1_drop only when a paired bootstrap over
    # the validation rows tells the drop from noise at this confidence; 0: the threshold alone.
    gate_confidence: float = 0.95
    max_behaviour_drop: float = 2.0
    max_spearman_drop: float = 0.5
    max_fp32_diff: float = 1e-3
    normalize: bool | None = None

    def validate(self) -> None:
        if self.validation is not None and self.validation.strip().lower() in ("", "none"):
            # How a CLI flag says "no gate" (YAML can also write null).
            object.__setattr__(self, "validation", None)
        check(
            17 <= self.opset <= MAX_OPSET,
            f"opset must be between 17 and {MAX_OPSET}, got {self.opset}",
            hint="17 runs on every onnxruntime >= 1.14",
        )
        check(self.gate_rows >= 1, f"gate_rows must be at least 1, got {self.gate_rows}")
        check(
            0 <= self.gate_confidence < 1,
            f"gate_confidence must be in [0, 1), got {self.gate_confidence}",
            hint="0.95 (the default), or 0 to gate on --max-f1-drop alone",
        )
        check(
            self.max_length is None or self.max_length >= 8,
            f"max_length must be at least 8, got {self.max_length}",
        )
        check(self.max_fp32_diff > 0, f"max_fp32_diff must be positive, got {self.max_fp32_diff}")
        for name in ("max_f1_drop", "max_spearman_drop", "max_behaviour_drop"):
            # Negative thresholds are allowed: they force fp32 (int8 can never pass).
            check(math.isfinite(getattr(self, name)), f"{name} must be a finite number")
        check(self.out != self.model, "out must not be the model folder", hint="--out runs/bundle")
