"""A user's own labelled data: label checks, a stratified hold-out, and the data a model records.

No built-in corpus is ever a silent default for a user's model:

* :func:`check_labels` refuses data a classifier cannot learn from as asked: fewer than two
  classes, or a label that looks multi-label (``positive|neutral``: known labels joined by
  ``|``, ``,`` or ``;``), which would otherwise silently become a class of its own;
* :func:`stratified_assign` shares rows out to splits (train / validation / test / pool)
  class by class, seeded, with a floor of rows per class in every labelled split, and refuses
  a class too small for the split asked for; ``slimbert data split`` (:mod:`slimbert.data.split`)
  and the training hold-out both use it;
* :func:`training_plan` decides what a training run validates on: the validation set given; the
  matching built-in split for built-in training data (``tweets3:train`` → ``tweets3:validation``);
  the sibling ``validation.csv`` of a ``slimbert data split`` folder; otherwise a stratified,
  seeded share held out of the training file itself;
* the data a model was trained, validated and can be tested on is recorded with it
  (``train_report.json``'s ``data``, copied into a bundle's manifest), and
  :func:`recorded_data` reads it back for ``distill``, ``export`` and ``eval``, which default to
  it and refuse with a hint when there is none. :func:`recorded_max_length` does the same for
  the teacher's max length (``label``, ``distill``).
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimbert.errors import ConfigError, DataError
from slimbert.io import read_json

log = logging.getLogger(__name__)

REPORT_FILE = "train_report.json"
SPLIT_REPORT = "split_report.json"
SPLIT_FORMAT = "slimbert-split/1"
HELD_OUT_FILE = "validation_heldout.csv"
LABELLED_SPLITS = ("train", "validation", "test")
# Where a label that joins known labels gives itself away as several labels in one cell.
_SEPARATORS = re.compile(r"\s*[|,;]\s*")


# -- label checks -----------------------------------------------------------------------------
def check_labels(label_counts: Mapping[str, int], where: str) -> None:
    """Refuse labels a single-label classifier must not train on (see the module docstring)."""
    present = {name: n for name, n in label_counts.items() if n > 0}
    if len(present) < 2:
        found = ", ".join(f"{k!r} ({v})" for k, v in present.items()) or "none"
        raise DataError(
            f"a classifier needs at least two classes; found {len(present)}: {found}",
            path=where,
            hint="add examples of the other class(es), or check --label-column",
        )
    names = set(present)
    for name, n in present.items():
        parts = [p for p in _SEPARATORS.split(name.strip()) if p]
        if len(parts) > 1 and any(p in names for p in parts):
            raise DataError(
                f"label {name!r} ({n} row(s)) looks like several labels in one cell",
                path=where,
                hint="slimbert trains single-label classifiers: give each row exactly one of "
                f"{', '.join(sorted(n for n in names if n != name))}",
            )


# -- stratified assignment --------------------------------------------------------------------
def stratified_assign(
    labels: Sequence[str],
    shares: Mapping[str, float],
    *,
    seed: int,
    min_per_split: int,
    where: str,
    groups: Sequence[int] | None = None,
) -> list[str]:
    """The split of each row: per class, shuffled (seeded) and cut by ``shares``.

    ``groups`` (one id per row) keeps rows of one group together (exact duplicates): a group
    is assigned as a unit, by its first row's label. Every labelled split with a share above
    zero gets at least ``min_per_split`` rows of each class; a class too small for that is
    refused, naming the class, its count and what the split needs.
    """
    group_of = list(groups) if groups is not None else list(range(len(labels)))
    members: dict[int, list[int]] = {}
    for row, group in enumerate(group_of):
        members.setdefault(group, []).append(row)
    by_label: dict[str, list[int]] = {}
    for group, rows in members.items():
        by_label.setdefault(labels[rows[0]], []).append(group)
    names = [name for name, share in shares.items() if share > 0]
    floors = {name: min_per_split if name in LABELLED_SPLITS else 0 for name in names}
    need = sum(floors.values())
    rng = random.Random(seed)
    assigned: dict[int, str] = {}
    for label in sorted(by_label):
        label_groups = sorted(by_label[label])
        n_rows = sum(len(members[g]) for g in label_groups)
        if len(label_groups) < need:
            asked = ", ".join(n for n in names if floors[n])
            raise DataError(
                f"class {label!r} has {n_rows} row(s) ({len(label_groups)} distinct); the split "
                f"asked for ({asked}) needs at least {need} ({min_per_split} per split)",
                path=where,
                hint=f"collect more examples of {label!r}, lower the shares' floor "
                "(--min-per-split), or leave the class out",
            )
        rng.shuffle(label_groups)
        counts = _apportion(len(label_groups), [shares[n] for n in names])
        counts = _with_floors(counts, [floors[n] for n in names])
        start = 0
        for name, count in zip(names, counts, strict=True):
            for group in label_groups[start : start + count]:
                assigned[group] = name
            start += count
    return [assigned[group] for group in group_of]


def _apportion(total: int, shares: Sequence[float]) -> list[int]:
    """``total`` items in proportion to ``shares`` (largest remainder, ties to the first)."""
    whole = sum(shares)
    exact = [total * s / whole for s in shares]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(shares)), key=lambda i: (counts[i] - exact[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _with_floors(counts: list[int], floors: Sequence[int]) -> list[int]:
    """Raise each count to its floor, taking from the split that has most above its own."""
    counts = list(counts)
    for i, floor in enumerate(floors):
        while counts[i] < floor:
            donor = max(range(len(counts)), key=lambda j: counts[j] - floors[j])
            if counts[donor] - floors[donor] <= 0:
                break
            counts[donor] -= 1
            counts[i] += 1
    return counts


# -- what a training run validates on -----------------------------------------------------------
@dataclass(frozen=True)
class TrainingPlan:
    """Where a training run's validation (and test) data come from."""

    validation: str | None  # None: held out of the training data
    test: str | None
    how: str  # "given", "built-in", "split folder" or "held out"


def builtin_split(spec: str, split: str) -> str | None:
    """``tweets3:validation`` for ``tweets3:train``; None for anything not built-in."""
    from slimbert.data.load import builtin_names

    name, sep, _ = spec.partition(":")
    return f"{name}:{split}" if sep and name in builtin_names() else None


def split_folder_of(spec: str) -> Path | None:
    """The ``slimbert data split`` folder ``spec`` is the train.csv of, or None."""
    path = Path(spec)
    report = path.parent / SPLIT_REPORT
    if path.name != "train.csv" or not report.is_file():
        return None
    try:
        data = read_json(report)
    except (OSError, ValueError):
        return None
    return path.parent if isinstance(data, dict) and data.get("format") == SPLIT_FORMAT else None


def training_plan(train: str, validation: str | None) -> TrainingPlan:
    """What ``train`` is validated on when ``validation`` is (or is not) given."""
    folder = split_folder_of(train)
    test = None
    if folder is not None and (folder / "test.csv").is_file():
        test = str(folder / "test.csv")
    elif builtin_split(train, "test") is not None:
        test = builtin_split(train, "test")
    if validation is not None:
        return TrainingPlan(validation, test, "given")
    builtin = builtin_split(train, "validation")
    if builtin is not None and not train.startswith("hf:"):
        return TrainingPlan(builtin, test, "built-in")
    if folder is not None and (folder / "validation.csv").is_file():
        return TrainingPlan(str(folder / "validation.csv"), test, "split folder")
    return TrainingPlan(None, test, "held out")


def held_out_indices(
    labels: Sequence[int], label_names: Sequence[str], share: float, seed: int, where: str
) -> tuple[list[int], list[int]]:
    """Row indices of (train, validation): ``share`` held out per class, seeded."""
    names = [label_names[y] for y in labels]
    splits = stratified_assign(
        names,
        {"train": 1 - share, "validation": share},
        seed=seed,
        min_per_split=1,
        where=where,
    )
    train = [i for i, s in enumerate(splits) if s == "train"]
    validation = [i for i, s in enumerate(splits) if s == "validation"]
    return train, validation


# -- what a model records -----------------------------------------------------------------------
def recorded_data(model: str | Path) -> dict[str, Any] | None:
    """The data recorded with a classifier folder or a bundle (or None when none is).

    Keys: ``train``, ``validation``, ``test`` (specs or None), ``text_column``,
    ``label_column``, ``encoding``. A bundle carries its model's record in its manifest
    (older bundles: read from the ``source_model`` folder when it still exists). A model
    trained before data were recorded gives its report's ``validation`` option.
    """
    path = Path(model)
    manifest = _read(path / "manifest.json")
    if manifest is not None:
        if isinstance(manifest.get("data"), dict):
            return dict(manifest["data"])
        source = manifest.get("source_model")
        if isinstance(source, str) and source and Path(source) != path:
            return recorded_data(source)
        return None
    for name in (REPORT_FILE, "sbert_report.json"):
        report = _read(path / name)
        if report is None:
            continue
        if isinstance(report.get("data"), dict):
            return dict(report["data"])
        options = report.get("options") or {}
        validation = options.get("validation") or (
            report.get("validation") if name != REPORT_FILE else None
        )
        if isinstance(validation, str) and validation:
            return {
                "train": options.get("train"),
                "validation": validation,
                "test": None,
                "text_column": options.get("text_column", "text"),
                "label_column": options.get("label_column", "label"),
                "encoding": options.get("encoding", "utf-8"),
            }
    return None


def recorded_max_length(model: str | Path) -> int | None:
    """The max length a classifier folder or bundle truncates at (its metadata), or None."""
    path = Path(model)
    for name in ("slimbert.json", "manifest.json"):
        meta = _read(path / name)
        if meta is not None and isinstance(meta.get("max_length"), int):
            return int(meta["max_length"])
    return None


def silver_teacher(silver: str | Path) -> Path | None:
    """The teacher a silver set was labelled by (its manifest's plan), or None."""
    manifest = _read(Path(silver) / "manifest.json")
    teacher = ((manifest or {}).get("plan") or {}).get("teacher")
    return Path(teacher) if isinstance(teacher, str) and teacher else None


def no_data_error(what: str, model: str | Path, flag: str, use: str) -> ConfigError:
    """The refusal of a stage that would otherwise have guessed a data set."""
    return ConfigError(
        f"{what}: {model} records no {use} data, and no {flag} was given",
        hint=f"pass {flag} FILE (a labelled CSV the model never trained on, e.g. the "
        "validation.csv or test.csv of `slimbert data split`), or retrain it with this "
        "version of slimbert",
    )


def _read(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def duplicate_key(text: str) -> str:
    """Exact duplicates: the same text up to surrounding white space."""
    return text.strip()


def label_counts(labels: Sequence[str]) -> dict[str, int]:
    return dict(sorted(Counter(labels).items()))
