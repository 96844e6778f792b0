"""The package's shape (issue 13): modules stay short, and moved import paths keep working."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import slimbert

PACKAGE = Path(slimbert.__file__).parent
MAX_LINES = 600  # docs/design.md: a module that grows past this is split where it reads naturally


def test_no_module_is_over_600_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_module_says_what_it_is_for() -> None:
    import ast

    silent = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "__main__.py" and not ast.get_docstring(ast.parse(p.read_text("utf-8")))
    ]
    assert silent == []


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ("slimbert.finetune", "slimbert.train.finetune", ["TrainOptions", "train_classifier"]),
        ("slimbert.label", "slimbert.train.label", ["LabelOptions", "label_corpus"]),
        ("slimbert.distill", "slimbert.train.distill", ["DistillOptions", "distill"]),
    ],
)
def test_the_readme_s_old_import_paths_still_work(old: str, new: str, names: list[str]) -> None:
    # Code written against the flat layout (the README before the wings) keeps running.
    before, after = importlib.import_module(old), importlib.import_module(new)
    for name in names:
        assert getattr(before, name) is getattr(after, name)
