from __future__ import annotations

from pathlib import Path

import pytest

from slimbert.errors import ConfigError


def test_options_coerce_from_yaml_like_values() -> None:
    from slimbert.distill import DistillOptions

    opts = DistillOptions.from_dict(
        {"student_layers": "0,2,4", "out": "runs/x", "epochs": "3", "lr": "1e-4", "gold": None}
    )
    assert opts.student_layers == (0, 2, 4)
    assert opts.out == Path("runs/x")
    assert opts.epochs == 3 and opts.lr == pytest.approx(1e-4)
    assert DistillOptions.from_dict(opts.to_dict()) == opts


def test_unknown_option_suggests_the_closest_name() -> None:
    from slimbert.distill import DistillOptions

    with pytest.raises(ConfigError, match="did you mean 'student_layers'"):
        DistillOptions.from_dict({"student_layer": [0, 5]})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lr": -1.0}, "lr must be positive"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"loss": "softer"}, "is not one of"),
        ({"alpha": 2.0}, "alpha must be in"),
        ({"batch_size": "many"}, "expected an integer"),
        ({"balance": "yes"}, "expected true or false"),
    ],
)
def test_bad_values_are_rejected_with_a_message(changes: dict, message: str) -> None:
    from slimbert.distill import DistillOptions

    with pytest.raises(ConfigError, match=message):
        DistillOptions.from_dict(changes)


def test_options_are_frozen() -> None:
    from slimbert.finetune import TrainOptions

    opts = TrainOptions()
    with pytest.raises(AttributeError):
        opts.lr = 1.0  # type: ignore[misc]
