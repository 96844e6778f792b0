from __future__ import annotations

from pathlib import Path

import pytest

from slimbert.errors import ConfigError


def test_options_coerce_from_yaml_like_values() -> None:
    from slimbert.train.distill import DistillOptions

    opts = DistillOptions.from_dict(
        {"student_layers": "0,2,4", "out": "runs/x", "epochs": "3", "lr": "1e-4", "gold": None}
    )
    assert opts.student_layers == (0, 2, 4)
    assert opts.out == Path("runs/x")
    assert opts.epochs == 3 and opts.lr == pytest.approx(1e-4)
    assert DistillOptions.from_dict(opts.to_dict()) == opts


def test_unknown_option_suggests_the_closest_name() -> None:
    from slimbert.train.distill import DistillOptions

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
    from slimbert.train.distill import DistillOptions

    with pytest.raises(ConfigError, match=message):
        DistillOptions.from_dict(changes)


def test_options_are_frozen() -> None:
    from slimbert.train.finetune import TrainOptions

    opts = TrainOptions()
    with pytest.raises(AttributeError):
        opts.lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.yaml", None, "does not exist"),
        ("bad.yaml", "epochs: [1, 2\nlr: : :\n", "is not valid YAML at line 2, column 3"),
        ("latin1.yaml", "# caf\xe9\nepochs: 2\n".encode("latin-1"), "is not UTF-8 text (byte 0xe9"),
        ("binary.yaml", bytes(range(256)), "is not UTF-8 text"),
        ("nul.yaml", b"epochs: 2\x00\n", "holds NUL bytes"),
        ("list.yaml", "- 1\n- 2\n", "holds a YAML list, not a mapping"),
    ],
)
def test_options_files_fail_in_one_line_with_a_hint(
    tmp_path: Path, name: str, content: str | bytes | None, message: str
) -> None:
    from slimbert.config import read_options_file

    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        read_options_file(path)
    assert message in exc.value.message and str(path) in exc.value.message
    assert exc.value.hint and "\n" not in exc.value.message


def test_options_file_empty_gives_no_options(tmp_path: Path) -> None:
    from slimbert.config import read_options_file

    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "opts.yaml").write_text("epochs: 3\n")
    assert read_options_file(tmp_path / "empty.yaml") == {}
    assert read_options_file(tmp_path / "opts.yaml") == {"epochs": 3}


def test_out_under_a_regular_file_fails_when_options_are_built(tmp_path: Path) -> None:
    from slimbert.train.finetune import TrainOptions

    (tmp_path / "notes.txt").write_text("a file\n")
    with pytest.raises(ConfigError, match=r"notes\.txt, which is a file, not a folder") as exc:
        TrainOptions(out=tmp_path / "notes.txt" / "deeper" / "model")
    assert exc.value.hint
    assert TrainOptions(out=tmp_path / "new" / "model").out == tmp_path / "new" / "model"
