"""Behavioural tests of 3-class sentiment classifiers, after CheckList (Ribeiro et al., ACL 2020).

Held-out accuracy says how often a model is right; a behavioural suite says *where* it is wrong.
Each :class:`Case` tests one capability with one of three kinds of test:

* ``mft`` (minimum functionality): every text must be predicted as one of ``expected``
  ("The food was not good." → negative; "The food was not bad." → neutral or positive);
* ``inv`` (invariance): a text and its perturbations (another name, place, number, case,
  a mild typo, punctuation) must all get the same predicted label;
* ``dir`` (directional): appending a sentence must not move one class probability the wrong
  way: ``texts[0]`` is the original, every later text the original with a suffix, and the case
  fails when P(``direction.label``) rises (``must_not: increase``) or falls (``decrease``) by
  more than ``direction.tolerance`` (0.05 in the packaged suite, so noise of a few hundredths
  in a confident prediction is not counted as a failure).

The packaged suite (:data:`SUITE_FILE`, one JSON case a line) is generated from the templates
in :mod:`slimbert.models.behaviour_templates` and committed; a test keeps the two in step.
:func:`run_suite` needs nothing but a function from texts to class probabilities, so a torch
model, an ONNX bundle or a test's fake model are checked alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from slimbert.errors import ConfigError, DataError, ModelError
from slimbert.models.scoring import softmax

__all__ = [
    "KINDS",
    "LABELS",
    "SUITE_FILE",
    "Case",
    "Direction",
    "applies_to",
    "load_suite",
    "pass_rate_table",
    "run_suite",
    "softmax",
]

LABELS = ("negative", "neutral", "positive")
KINDS = ("mft", "inv", "dir")
SUITE_NAME = "sentiment3"
# Bump when the templates change what the suite tests (not for a reworded comment).
SUITE_VERSION = 1
SUITE_FILE = Path(str(resources.files("slimbert").joinpath("checks", f"{SUITE_NAME}.jsonl")))
FAILURE_EXAMPLES = 3
_FIELDS = ("id", "capability", "kind", "domain", "texts", "expected", "direction")
_LABEL_HINT = f"labels are {', '.join(LABELS)}"


@dataclasses.dataclass(frozen=True)
class Direction:
    """P(``label``) must not ``must_not`` (increase/decrease) by more than ``tolerance``."""

    label: str
    must_not: Literal["increase", "decrease"]
    tolerance: float

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ConfigError(f"unknown label {self.label!r} in the direction", hint=_LABEL_HINT)
        if self.must_not not in ("increase", "decrease"):
            raise ConfigError(f"must_not must be increase or decrease, not {self.must_not!r}")
        tolerance = self.tolerance
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
            raise ConfigError(f"tolerance must be a number, not {tolerance!r}")
        if not 0 <= tolerance < 1:
            raise ConfigError(f"tolerance must be in [0, 1), not {tolerance!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "must_not": self.must_not, "tolerance": self.tolerance}


@dataclasses.dataclass(frozen=True)
class Case:
    """One behavioural test: its texts and what a passing model predicts for them.

    Consistent on construction: an mft case has ``expected`` labels, a dir case a
    ``direction``, inv and dir cases an original and at least one perturbation.
    """

    id: str
    capability: str
    kind: Literal["mft", "inv", "dir"]
    domain: str
    texts: tuple[str, ...]
    expected: tuple[str, ...] | None = None
    direction: Direction | None = None

    def __post_init__(self) -> None:
        for name in ("id", "capability", "domain"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"{name!r} must be a non-empty string")
        if self.kind not in KINDS:
            raise ConfigError(f"unknown kind {self.kind!r}", hint=f"kinds are {', '.join(KINDS)}")
        if not self.texts or not all(isinstance(t, str) and t.strip() for t in self.texts):
            raise ConfigError("'texts' must be a non-empty list of non-empty strings")
        if self.kind != "mft" and len(self.texts) < 2:
            raise ConfigError(
                f"a {self.kind} case needs the original text and at least one perturbation"
            )
        if self.kind == "mft":
            if not self.expected:
                raise ConfigError(
                    "an mft case needs 'expected': a list of acceptable labels", hint=_LABEL_HINT
                )
            bad = [label for label in self.expected if label not in LABELS]
            if bad:
                raise ConfigError(f"unknown label {bad[0]!r} in 'expected'", hint=_LABEL_HINT)
        elif self.expected is not None:
            raise ConfigError(f"'expected' must be null for a {self.kind} case")
        if (self.kind == "dir") != (self.direction is not None):
            raise ConfigError(
                "a dir case needs 'direction'"
                if self.kind == "dir"
                else f"'direction' must be null for a {self.kind} case",
                hint='{"label": "positive", "must_not": "increase", "tolerance": 0.05}',
            )

    def to_dict(self) -> dict[str, Any]:
        """The JSONL form (keys in schema order)."""
        return {
            "id": self.id,
            "capability": self.capability,
            "kind": self.kind,
            "domain": self.domain,
            "texts": list(self.texts),
            "expected": list(self.expected) if self.expected is not None else None,
            "direction": self.direction.to_dict() if self.direction is not None else None,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


def applies_to(label_names: Sequence[str]) -> bool:
    """Whether a classifier with these labels can be checked: it must predict all of LABELS."""
    return set(LABELS) <= set(label_names)


def load_suite(path: str | Path | None = None) -> tuple[Case, ...]:
    """Read and validate a suite file (default: the packaged one), one JSON case per line."""
    source = Path(path) if path is not None else SUITE_FILE
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read the suite ({exc})", path=str(source)) from exc
    cases: list[Case] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        case = _parse_case(line, str(source), number)
        if case.id in seen:
            raise DataError(
                f"duplicate case id {case.id!r}",
                path=str(source),
                line=number,
                hint="every case needs its own id",
            )
        seen.add(case.id)
        cases.append(case)
    if not cases:
        raise DataError("the suite has no cases", path=str(source), hint="one JSON case a line")
    return tuple(cases)


def _parse_case(line: str, path: str, number: int) -> Case:
    def fail(message: str, hint: str | None = None) -> DataError:
        return DataError(message, path=path, line=number, hint=hint)

    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise fail(f"not valid JSON ({exc.msg})", hint="one JSON object per line") from exc
    if not isinstance(raw, dict):
        raise fail("a case must be a JSON object")
    missing = [key for key in _FIELDS if key not in raw]
    unknown = sorted(set(raw) - set(_FIELDS))
    if missing or unknown:
        raise fail(
            f"missing keys {missing}" if missing else f"unknown keys {unknown}",
            hint=f"a case has exactly the keys {', '.join(_FIELDS)}",
        )
    for key in ("texts", "expected"):
        if raw[key] is not None and not isinstance(raw[key], list):
            raise fail(f"{key!r} must be a list")
    direction = raw["direction"]
    if direction is not None and (
        not isinstance(direction, dict) or set(direction) != {"label", "must_not", "tolerance"}
    ):
        raise fail(
            "'direction' must be an object with label, must_not and tolerance",
            hint='{"label": "positive", "must_not": "increase", "tolerance": 0.05}',
        )
    try:
        return Case(
            id=raw["id"],
            capability=raw["capability"],
            kind=raw["kind"],
            domain=raw["domain"],
            texts=tuple(raw["texts"] or ()),
            expected=tuple(raw["expected"]) if raw["expected"] is not None else None,
            direction=Direction(**direction) if direction is not None else None,
        )
    except ConfigError as exc:
        raise fail(exc.message, hint=exc.hint) from exc


def suite_digest(cases: Sequence[Case]) -> str:
    """A short sha256 of the cases, so a result records exactly which suite it ran."""
    payload = "\n".join(case.to_json() for case in cases).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()[:12]


def run_suite(
    probabilities: Callable[[list[str]], np.ndarray],
    label_names: Sequence[str],
    cases: Sequence[Case] | None = None,
    *,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Run ``cases`` (default: the packaged suite) against a classifier.

    ``probabilities(texts)`` returns an array of shape (len(texts), len(label_names)) whose
    rows are class probabilities (apply :func:`softmax` to logits first). Every distinct text
    is scored once, in batches of ``batch_size``.
    """
    if not applies_to(label_names):
        raise ConfigError(
            f"the behaviour suite is for 3-class sentiment; this model predicts "
            f"{list(label_names)}",
            hint=f"it needs the labels {', '.join(LABELS)}; check applies_to(labels) first",
        )
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    packaged = cases is None
    suite = tuple(load_suite() if cases is None else cases)
    if not suite:
        raise ConfigError("no cases to run", hint="pass cases=None for the packaged suite")
    probs = _score(probabilities, suite, len(label_names), batch_size)
    names = list(label_names)
    column = {name: i for i, name in enumerate(names)}

    capabilities: dict[str, dict[str, Any]] = {}
    domains: dict[str, dict[str, Any]] = {}
    failures: dict[str, list[dict[str, Any]]] = {}
    passed_total = 0
    for case in suite:
        rows = np.stack([probs[text] for text in case.texts])
        predicted = [names[int(i)] for i in rows.argmax(axis=1)]
        ok = _passes(case, rows, predicted, column)
        passed_total += ok
        for table, key in ((capabilities, case.capability), (domains, case.domain)):
            entry = table.setdefault(key, {"cases": 0, "passed": 0})
            entry["cases"] += 1
            entry["passed"] += ok
        capabilities[case.capability].setdefault("kind", case.kind)
        if not ok:
            examples = failures.setdefault(case.capability, [])
            if len(examples) < FAILURE_EXAMPLES:
                examples.append(_failure(case, rows, predicted, column))
    for table in (capabilities, domains):
        for entry in table.values():
            entry["pass_rate"] = entry["passed"] / entry["cases"]
    return {
        "suite": f"{SUITE_NAME}/{SUITE_VERSION}" if packaged else "custom",
        "suite_digest": suite_digest(suite),
        "cases": len(suite),
        "passed": passed_total,
        "pass_rate": passed_total / len(suite),
        "capabilities": {
            name: {key: capabilities[name][key] for key in ("kind", "cases", "passed", "pass_rate")}
            for name in sorted(capabilities)
        },
        "domains": {name: domains[name] for name in sorted(domains)},
        "failures": {name: failures[name] for name in sorted(failures)},
    }


def _score(
    probabilities: Callable[[list[str]], np.ndarray],
    suite: Sequence[Case],
    n_labels: int,
    batch_size: int,
) -> dict[str, np.ndarray]:
    """Probabilities of every distinct text of the suite, each scored once."""
    texts = list(dict.fromkeys(text for case in suite for text in case.texts))
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        result = np.asarray(probabilities(batch), dtype=np.float64)
        if result.shape != (len(batch), n_labels):
            raise ModelError(
                f"probabilities returned shape {result.shape} for {len(batch)} texts, "
                f"expected ({len(batch)}, {n_labels})",
                hint="return one row of class probabilities per text, in label_names order",
            )
        if not np.all(np.isfinite(result)) or not np.allclose(result.sum(axis=1), 1.0, atol=1e-3):
            raise ModelError(
                "probabilities must be finite and each row must sum to 1",
                hint="apply slimbert.models.behaviour.softmax to logits",
            )
        out.update(zip(batch, result, strict=True))
    return out


def _passes(case: Case, rows: np.ndarray, predicted: list[str], column: dict[str, int]) -> bool:
    if case.kind == "mft":
        return all(label in (case.expected or ()) for label in predicted)
    if case.kind == "inv":
        return len(set(predicted)) == 1
    direction = case.direction
    return direction is not None and not _direction_violations(
        direction, rows[:, column[direction.label]]
    )


def _direction_violations(direction: Direction, p: np.ndarray) -> list[int]:
    """Indices of perturbed texts whose P(label) moved the forbidden way beyond tolerance."""
    change = p[1:] - p[0]
    if direction.must_not == "decrease":
        change = -change
    # A hair of slack so that a change of exactly the tolerance passes despite rounding.
    return [i + 1 for i, c in enumerate(change) if c > direction.tolerance + 1e-9]


def _failure(
    case: Case, rows: np.ndarray, predicted: list[str], column: dict[str, int]
) -> dict[str, Any]:
    example: dict[str, Any] = {
        "id": case.id,
        "texts": list(case.texts),
        "predicted": predicted,
    }
    if case.expected is not None:
        example["expected"] = list(case.expected)
    if case.direction is not None:
        p = rows[:, column[case.direction.label]]
        example["direction"] = case.direction.to_dict()
        example[f"p_{case.direction.label}"] = [round(float(x), 4) for x in p]
    return example


def pass_rate_table(result: dict[str, Any]) -> str:
    """A Markdown table of :func:`run_suite`'s result: one row per capability, then the total."""
    lines = [
        f"Behaviour suite `{result['suite']}` ({result['suite_digest']})",
        "",
        "| capability | kind | cases | passed | pass rate |",
        "|---|---|---:|---:|---:|",
    ]
    for name, entry in result["capabilities"].items():
        lines.append(
            f"| {name} | {entry['kind']} | {entry['cases']} | {entry['passed']} "
            f"| {_percent(entry['pass_rate'])} |"
        )
    lines.append(
        f"| **all** | | {result['cases']} | {result['passed']} | {_percent(result['pass_rate'])} |"
    )
    return "\n".join(lines) + "\n"


def _percent(rate: float) -> str:
    return f"{100 * rate:.1f}%"
