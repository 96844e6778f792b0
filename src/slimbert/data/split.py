"""``slimbert data split``: one labelled file of your own → train / validation / test / pool.

Step 0 of the method for a user's data (README, "Your own data"): the splits every later step
reads, made once, seeded and checked:

* stratified: each class is shared out by the shares asked for (largest remainder), with at
  least ``min_per_split`` rows of every class in every labelled split (a class too small is
  refused, see :func:`slimbert.data.owndata.stratified_assign`); the labels are checked first
  (two classes at least, nothing that looks multi-label);
* exact duplicates (the same text up to surrounding white space) are reported and kept
  together in one split, so no text is ever in two splits; the written splits are checked for
  that leakage again before the folder is published;
* ``pool.csv`` holds the pool share's texts without their labels: the unlabelled texts the
  teacher labels (append more of your own unlabelled texts to it);
* the folder is written atomically with ``split_report.json`` (counts per split and class,
  duplicates, the seed and shares); an existing ``--out`` is replaced only when it is a split
  folder slimbert wrote and ``overwrite`` is given, never a folder of anything else.

Training on ``DIR/train.csv`` validates on ``DIR/validation.csv`` and records ``DIR/test.csv``
as the model's test set, so ``export`` and ``eval`` need no data options.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from slimbert.config import Options, check
from slimbert.data import owndata
from slimbert.errors import SlimbertError
from slimbert.io import OUTPUT_KINDS, atomic_dir, claim_output, sha256_file, write_json

log = logging.getLogger(__name__)

KIND = "data split"
SPLITS = ("train", "validation", "test", "pool")
# The output kind's marker (slimbert.io): split_report.json with this format. Registered here,
# beside the only writer of such folders.
OUTPUT_KINDS.setdefault(KIND, (owndata.SPLIT_REPORT, owndata.SPLIT_FORMAT))


@dataclasses.dataclass(frozen=True)
class SplitOptions(Options):
    stage: ClassVar[str] = "split"

    data: str
    out: Path
    train_share: float = 0.6
    validation_share: float = 0.1
    test_share: float = 0.15
    pool_share: float = 0.15
    min_per_split: int = 2
    seed: int = 13
    text_column: str = "text"
    label_column: str = "label"
    encoding: str = "utf-8"

    def shares(self) -> dict[str, float]:
        return {name: float(getattr(self, f"{name}_share")) for name in SPLITS}

    def validate(self) -> None:
        for name, share in self.shares().items():
            check(
                0 <= share < 1 and math.isfinite(share),
                f"{name}_share must be in [0, 1), got {share}",
            )
        total = sum(self.shares().values())
        check(
            abs(total - 1) < 1e-6,
            f"the shares must add up to 1, got {total:g} "
            f"({', '.join(f'{k} {v:g}' for k, v in self.shares().items())})",
            hint="e.g. --train-share 0.7 --validation-share 0.1 --test-share 0.2 --pool-share 0",
        )
        check(self.train_share > 0, "train_share must be above 0")
        check(
            self.min_per_split >= 1, f"min_per_split must be at least 1, got {self.min_per_split}"
        )
        check(
            Path(self.out) != Path(self.data),
            "out must be a folder of its own, not the data file",
            hint="--out data/split",
        )


def split_data(options: SplitOptions, *, overwrite: bool = False) -> dict[str, Any]:
    """Split ``options.data`` into ``options.out``; returns the report it also writes."""
    from slimbert.data.load import load_texts, write_csv

    out = Path(options.out)
    claim_output(out, KIND, replace=overwrite)
    data = load_texts(
        options.data,
        text_column=options.text_column,
        label_column=options.label_column,
        encoding=options.encoding,
        require_labels=True,
    )
    assert data.labels is not None
    labels = [data.label_names[y] for y in data.labels]
    owndata.check_labels(owndata.label_counts(labels), options.data)

    keys = [owndata.duplicate_key(text) for text in data.texts]
    group_ids: dict[str, int] = {}
    groups = [group_ids.setdefault(key, len(group_ids)) for key in keys]
    assignment = owndata.stratified_assign(
        labels,
        options.shares(),
        seed=options.seed,
        min_per_split=options.min_per_split,
        where=options.data,
        groups=groups,
    )
    _check_no_leakage(keys, assignment)

    rows: dict[str, list[int]] = {name: [] for name in SPLITS}
    for i, split in enumerate(assignment):
        rows[split].append(i)
    columns = [options.text_column, options.label_column]
    report: dict[str, Any] = {
        "format": owndata.SPLIT_FORMAT,
        "source": str(options.data),
        "source_sha256": _sha256(options.data),
        "rows": len(data),
        "options": options.to_dict(),
        "label_names": list(data.label_names),
        "splits": {},
        "duplicates": _duplicates(data.texts, keys, labels, data.ids),
        "leakage": {"texts_in_two_splits": 0},
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    with atomic_dir(out, kind=KIND) as tmp:
        for name in SPLITS:
            if options.shares()[name] == 0:
                continue
            idx = rows[name]
            if name == "pool":  # the teacher labels these: their gold labels are withheld
                body = [[data.texts[i]] for i in idx]
                write_csv(tmp / "pool.csv", columns[:1], body, encoding=options.encoding)
            else:
                body = [[data.texts[i], labels[i]] for i in idx]
                write_csv(tmp / f"{name}.csv", columns, body, encoding=options.encoding)
            report["splits"][name] = {
                "file": f"{name}.csv",
                "rows": len(idx),
                "label_counts": owndata.label_counts([labels[i] for i in idx]),
            }
        write_json(tmp / owndata.SPLIT_REPORT, report)
    log.info(
        "split %s → %s: %s",
        options.data,
        out,
        ", ".join(f"{k} {v['rows']}" for k, v in report["splits"].items()),
    )
    return report


def _check_no_leakage(keys: list[str], assignment: list[str]) -> None:
    seen: dict[str, str] = {}
    for key, split in zip(keys, assignment, strict=True):
        if seen.setdefault(key, split) != split:
            raise SlimbertError(
                f"internal error: the text {key[:60]!r} was put in {seen[key]} and {split}",
                hint="please report this with your command line",
            )


def _duplicates(
    texts: list[str], keys: list[str], labels: list[str], ids: list[str]
) -> dict[str, Any]:
    """Exact duplicates, each kept whole in one split: how many, and those with two labels."""
    by_key: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        by_key.setdefault(key, []).append(i)
    repeated = [rows for rows in by_key.values() if len(rows) > 1]
    conflicting = [rows for rows in repeated if len({labels[i] for i in rows}) > 1]
    if conflicting:
        log.warning(
            "%d text(s) appear with different labels, e.g. %r (%s); kept as they are",
            len(conflicting),
            texts[conflicting[0][0]][:60],
            ", ".join(sorted({labels[i] for i in conflicting[0]})),
        )
    return {
        "groups": len(repeated),
        "extra_rows": sum(len(rows) - 1 for rows in repeated),
        "conflicting_groups": len(conflicting),
        "conflicting_examples": [
            {
                "text": texts[rows[0]],
                "rows": [ids[i] for i in rows],
                "labels": dict(Counter(labels[i] for i in rows)),
            }
            for rows in conflicting[:5]
        ],
        "policy": "every copy of a text is kept, all in the same split",
    }


def _sha256(spec: str) -> str | None:
    return sha256_file(spec) if Path(spec).is_file() else None
