"""Sentence pairs for the similarity work: STS benchmark, SNLI, the MRPC target set, user files.

Every pair set is a :class:`PairSet`: two aligned lists of sentences and either a similarity
score in [0, 1] (STS-style regression, the target domain, AugSBERT silver pairs) or an NLI label
(entailment / neutral / contradiction). Specs name where the pairs come from:

* ``stsb:train|validation|test``: STS benchmark; scores 0–5 scaled to 0–1.
* ``snli:train|validation``: SNLI. Only the published dev and test files are available offline,
  so ``train`` is dev + test (19.6K pairs) and ``validation`` is a seeded 1,000-pair slice of it
  that ``train`` leaves out. Nothing else in slimbert evaluates on SNLI, so no test set leaks.
* ``mrpc-target:train|validation|test``: the default target domain (the stand-in for the seed
  paper's private duplicate-question set), see :func:`mrpc_target`.
* a ``.csv``/``.tsv``/``.jsonl``/``.parquet`` file with columns ``sentence1``, ``sentence2`` and
  ``score`` (or ``label`` for NLI); column names are options.

The shared data folder is ``$SLIMBERT_DATA_DIR`` when set, else the first ``shared/data`` found
next to the working directory or the project (``../shared/data`` in our checkouts).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from slimbert.errors import DataError

NLI_LABELS = ("contradiction", "entailment", "neutral")
TARGET_SCORES = {"duplicate": 1.0, "related": 0.5, "unrelated": 0.0}
_SNLI_VALIDATION = 1000
_MRPC_VALIDATION = 0.1
_SEED = 13


@dataclasses.dataclass(frozen=True)
class PairSet:
    """Aligned sentence pairs with a score in [0, 1] or an NLI label per pair."""

    first: list[str]
    second: list[str]
    scores: list[float] | None = None
    labels: list[str] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        n = len(self.first)
        if len(self.second) != n:
            raise ValueError("first and second must have the same length")
        for field in (self.scores, self.labels):
            if field is not None and len(field) != n:
                raise ValueError("scores/labels must have one entry per pair")

    def __len__(self) -> int:
        return len(self.first)

    def subset(self, indices: Iterable[int]) -> PairSet:
        idx = list(indices)
        return PairSet(
            first=[self.first[i] for i in idx],
            second=[self.second[i] for i in idx],
            scores=None if self.scores is None else [self.scores[i] for i in idx],
            labels=None if self.labels is None else [self.labels[i] for i in idx],
            name=self.name,
        )

    def concat(self, other: PairSet) -> PairSet:
        """These pairs followed by ``other``'s; both scored, or both labelled."""
        if (self.scores is None) != (other.scores is None) or (self.labels is None) != (
            other.labels is None
        ):
            raise DataError(
                f"cannot train on {self.name or 'these pairs'} and {other.name or 'those'} "
                "together: one has similarity scores, the other NLI labels",
                hint="combine pair sets of the same kind",
            )
        return PairSet(
            first=self.first + other.first,
            second=self.second + other.second,
            scores=None if self.scores is None else self.scores + list(other.scores or []),
            labels=None if self.labels is None else self.labels + list(other.labels or []),
            name=f"{self.name}+{other.name}",
        )

    def head(self, limit: int | None) -> PairSet:
        return self if limit is None or len(self) <= limit else self.subset(range(limit))

    def sentences(self) -> set[str]:
        return set(self.first) | set(self.second)

    def require_scores(self) -> list[float]:
        if self.scores is None:
            raise DataError(
                f"{self.name or 'these pairs'} have no similarity scores",
                hint="use scored pairs (a score column in [0, 1]) for this stage",
            )
        return self.scores

    def require_labels(self) -> list[str]:
        if self.labels is None:
            raise DataError(
                f"{self.name or 'these pairs'} have no NLI labels",
                hint="use snli:train or a file with a label column",
            )
        return self.labels


BUILTIN = ("stsb", "snli", "mrpc-target")


def is_pair_spec(spec: str | Path) -> bool:
    """Whether ``spec`` names a built-in pair set (``stsb:test``, ``mrpc-target:train``, ...)."""
    name, sep, _ = str(spec).partition(":")
    return bool(sep) and name in BUILTIN and not Path(str(spec)).exists()


def distinct_sentences(spec: str | Path, limit: int | None = None) -> list[str]:
    """The distinct sentences of a pair set, in first-seen order (a corpus made of pairs)."""
    pairs = load_pairs(spec)
    seen: dict[str, None] = {}
    for a, b in zip(pairs.first, pairs.second, strict=True):
        seen.setdefault(a)
        seen.setdefault(b)
    sentences = list(seen)
    return sentences if limit is None else sentences[:limit]


def data_dir(required: bool = True) -> Path | None:
    """The shared data folder (``$SLIMBERT_DATA_DIR`` or a ``shared/data`` nearby)."""
    env = os.environ.get("SLIMBERT_DATA_DIR")
    if env:
        path = Path(env).expanduser()
        if path.is_dir():
            return path
        if required:
            raise DataError(f"SLIMBERT_DATA_DIR={env} is not a folder")
        return None
    here = Path(__file__).resolve()
    for base in (Path.cwd(), *Path.cwd().parents[:2], *here.parents[1:5]):
        candidate = base / "shared" / "data"
        if candidate.is_dir():
            return candidate
    if required:
        raise DataError(
            "the shared data folder (STS benchmark, SNLI, MRPC) was not found",
            hint="set SLIMBERT_DATA_DIR to the folder holding stsb/, snli/ and mrpc/",
        )
    return None


def _file(*parts: str) -> Path:
    root = data_dir()
    assert root is not None
    path = root.joinpath(*parts)
    if not path.is_file():
        raise DataError(f"{path} is missing", hint="check SLIMBERT_DATA_DIR")
    return path


def load_pairs(
    spec: str | Path,
    *,
    first_column: str = "sentence1",
    second_column: str = "sentence2",
    score_column: str = "score",
    label_column: str = "label",
    encoding: str = "utf-8",
    limit: int | None = None,
) -> PairSet:
    """Load the pairs a spec names (see the module docstring); ``limit`` keeps the first N."""
    text = str(spec)
    builtin, _, split = text.partition(":")
    loaders = {"stsb": stsb, "snli": snli, "mrpc-target": mrpc_target}
    if is_pair_spec(text):
        return loaders[builtin](split).head(limit)
    path = Path(text)
    if not path.is_file():
        raise DataError(
            f"no pair data at {text!r}",
            hint="a file, or one of stsb:train|validation|test, snli:train|validation, "
            "mrpc-target:train|validation|test",
        )
    columns = (first_column, second_column, score_column, label_column)
    return _read_file(path, columns, encoding).head(limit)


def stsb(split: str) -> PairSet:
    """STS benchmark; the 0–5 gold scores divided by 5."""
    files = {"train": "train", "validation": "dev", "dev": "dev", "test": "test"}
    if split not in files:
        raise DataError(f"stsb has no split {split!r}", hint="train, validation or test")
    path = _file("stsb", f"stsb-en-{files[split]}.csv")
    first, second, scores = [], [], []
    with open(path, encoding="utf-8", newline="") as fh:
        for line, row in enumerate(csv.reader(fh), start=1):
            if len(row) != 3:
                raise DataError("expected sentence1,sentence2,score", path=str(path), line=line)
            first.append(row[0])
            second.append(row[1])
            scores.append(_score(row[2], path, line, scale=5.0))
    return PairSet(first, second, scores=scores, name=f"stsb:{split}")


def snli(split: str) -> PairSet:
    """SNLI pairs with their labels (``-`` / unlabelled rows dropped)."""
    if split not in ("train", "validation"):
        raise DataError(f"snli has no split {split!r}", hint="train or validation")
    first: list[str] = []
    second: list[str] = []
    labels: list[str] = []
    for name in ("snli_1.0_dev.tsv", "snli_1.0_test.tsv"):
        path = _file("snli", name)
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:3]] != [
                "premise",
                "hypothesis",
                "label",
            ]:
                raise DataError("expected the header premise, hypothesis, label", path=str(path))
            for row in reader:
                if len(row) < 3 or row[2].strip() not in NLI_LABELS:
                    continue
                first.append(_detokenize(row[0]))
                second.append(_detokenize(row[1]))
                labels.append(row[2].strip())
    pairs = PairSet(first, second, labels=labels, name=f"snli:{split}")
    order = list(range(len(pairs)))
    random.Random(_SEED).shuffle(order)
    held = set(order[:_SNLI_VALIDATION])
    return pairs.subset(i for i in order if (i in held) == (split == "validation"))


def _detokenize(text: str) -> str:
    # SNLI's text is tokenised ("packages ." ); rejoin the punctuation so it reads like input
    # users send. WordPiece splits both forms the same way, so scores do not depend on it.
    out = text.strip()
    for mark in (" .", " ,", " !", " ?", " ;", " :", " 's", " n't", " '"):
        out = out.replace(mark, mark.lstrip())
    return out


def mrpc_pairs(split: str) -> list[tuple[str, str, int]]:
    """Raw MRPC rows (sentence1, sentence2, quality) from train or test."""
    path = _file("mrpc", f"msr_paraphrase_{split}.txt")
    rows = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for line, row in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if not row or (line == 1 and not row[0].strip().isdigit()):
                continue  # a header row, where a copy has one
            if len(row) != 5 or row[0].strip() not in ("0", "1"):
                raise DataError(
                    "expected quality, id1, id2, string1, string2", path=str(path), line=line
                )
            rows.append((row[3].strip(), row[4].strip(), int(row[0])))
    return rows


def mrpc_target(split: str) -> PairSet:
    """The default target domain built from MRPC (duplicate 1 / related 0.5 / unrelated 0).

    Paraphrase pairs are duplicates; non-paraphrase pairs (the same news story, a different
    meaning) are related; unrelated pairs join sentences of two different pairs, as many as
    there are original pairs. Train and validation come from MRPC train — split so that no
    sentence of validation appears in train — and test from MRPC test; never mixed, and no
    sentence of the test appears in train or validation.
    """
    if split not in ("train", "validation", "test"):
        raise DataError(f"mrpc-target has no split {split!r}", hint="train, validation or test")
    rng = random.Random(_SEED)
    if split == "test":
        rows = mrpc_pairs("test")
    else:
        # MRPC's own train and test share a few hundred sentences; pairs touching a test
        # sentence are left out of train and validation so the target test stays unseen.
        test_sentences = {s for r in mrpc_pairs("test") for s in r[:2]}
        rows = [r for r in mrpc_pairs("train") if not {r[0], r[1]} & test_sentences]
        order = list(range(len(rows)))
        rng.shuffle(order)
        held = order[: int(len(rows) * _MRPC_VALIDATION)]
        held_sentences = {s for i in held for s in rows[i][:2]}
        if split == "validation":
            rows = [rows[i] for i in sorted(held)]
        else:
            chosen = set(held)
            rows = [
                r
                for i, r in enumerate(rows)
                if i not in chosen and r[0] not in held_sentences and r[1] not in held_sentences
            ]
    first = [r[0] for r in rows]
    second = [r[1] for r in rows]
    scores = [TARGET_SCORES["duplicate"] if r[2] else TARGET_SCORES["related"] for r in rows]
    for a, b in _unrelated(rows, len(rows), rng):
        first.append(a)
        second.append(b)
        scores.append(TARGET_SCORES["unrelated"])
    # Seeded shuffle, so that the first N pairs (``limit``) hold all three kinds.
    order = list(range(len(first)))
    rng.shuffle(order)
    return PairSet(first, second, scores=scores, name=f"mrpc-target:{split}").subset(order)


def _unrelated(
    rows: Sequence[tuple[str, str, int]], count: int, rng: random.Random
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    seen: set[tuple[int, int]] = set()
    n = len(rows)
    if n < 2:
        return out
    while len(out) < count:
        i, j = rng.randrange(n), rng.randrange(n)
        if i == j or (i, j) in seen:
            continue
        seen.add((i, j))
        out.append((_side(rows[i], rng), _side(rows[j], rng)))
    return out


def _side(row: tuple[str, str, int], rng: random.Random) -> str:
    return row[0] if rng.randrange(2) == 0 else row[1]


def _score(value: Any, path: Path, line: int, scale: float = 1.0) -> float:
    try:
        score = float(value) / scale
    except (TypeError, ValueError) as exc:
        raise DataError(f"score {value!r} is not a number", path=str(path), line=line) from exc
    if not 0.0 <= score <= 1.0:
        raise DataError(
            f"score {value!r} is outside [0, {scale:g}]",
            path=str(path),
            line=line,
            hint="scale scores to 0-1 (or 0-5 for stsb files)",
        )
    return score


def _read_file(path: Path, columns: tuple[str, str, str, str], encoding: str) -> PairSet:
    first_col, second_col, score_col, label_col = columns
    suffix = path.suffix.lower()
    records: list[dict[str, Any]]
    if suffix in (".csv", ".tsv"):
        with open(path, encoding=encoding, newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            records = list(reader)
            names = reader.fieldnames or []
    elif suffix == ".jsonl":
        records = []
        with open(path, encoding=encoding) as fh:
            for line, raw in enumerate(fh, start=1):
                if raw.strip():
                    try:
                        records.append(json.loads(raw))
                    except json.JSONDecodeError as exc:
                        raise DataError(
                            f"invalid JSON ({exc.msg})", path=str(path), line=line
                        ) from exc
        names = sorted({k for r in records for k in r})
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        records = table.to_pylist()
        names = table.column_names
    else:
        raise DataError(
            f"unsupported pair file type {suffix!r}",
            path=str(path),
            hint=".csv .tsv .jsonl .parquet",
        )
    for col in (first_col, second_col):
        if col not in names:
            raise DataError(
                f"no column {col!r}", path=str(path), hint=f"columns: {', '.join(map(str, names))}"
            )
    has_score = score_col in names
    has_label = label_col in names
    if not (has_score or has_label):
        raise DataError(
            f"no {score_col!r} or {label_col!r} column",
            path=str(path),
            hint="pairs need a score or label",
        )
    first, second, scores, labels = [], [], [], []
    offset = 2 if suffix in (".csv", ".tsv") else 1
    for i, record in enumerate(records):
        line = i + offset
        a, b = record.get(first_col), record.get(second_col)
        if not isinstance(a, str) or not isinstance(b, str) or not a.strip() or not b.strip():
            raise DataError("empty or missing sentence", path=str(path), line=line)
        first.append(a)
        second.append(b)
        if has_score:
            scores.append(_score(record.get(score_col), path, line))
        if has_label:
            label = str(record.get(label_col, "")).strip()
            if label not in NLI_LABELS:
                raise DataError(
                    f"label {label!r} is not an NLI label",
                    path=str(path),
                    line=line,
                    hint=", ".join(NLI_LABELS),
                )
            labels.append(label)
    if not first:
        raise DataError("no pairs", path=str(path))
    return PairSet(
        first,
        second,
        scores=scores if has_score else None,
        labels=labels if has_label and not has_score else None,
        name=str(path),
    )


def read_scored_csv(path: Path, encoding: str, limit: int) -> PairSet | None:
    """Scored pairs from a CSV/TSV with a ``sentence1,sentence2,score`` header or none
    (three columns, the third a number); ``None`` when the file is not one.

    The export gate's reader: scores are kept as they are (any scale: only their ranks
    matter to Spearman), unlike :func:`load_pairs`, which trains on 0-1 scores.
    """
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".tsv"} or not path.is_file():
        return None
    with open(path, encoding=encoding, newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t" if suffix == ".tsv" else ","))
    if not rows:
        return None
    names = [c.strip().lower() for c in rows[0]]
    header = {"sentence1", "sentence2", "score"} <= set(names)
    if header:
        columns = (names.index("sentence1"), names.index("sentence2"), names.index("score"))
    elif len(rows[0]) == 3 and _is_number(rows[0][2]):
        columns = (0, 1, 2)
    else:
        return None
    first, second, scores = [], [], []
    skip = 1 if header else 0
    for line, row in enumerate(rows[skip : skip + limit], start=1 + skip):
        try:
            scores.append(float(row[columns[2]]))
            first.append(row[columns[0]])
            second.append(row[columns[1]])
        except (IndexError, ValueError) as exc:
            raise DataError(
                f"not a scored sentence pair ({exc})", path=str(path), line=line
            ) from exc
    if not scores:
        raise DataError("no sentence pairs for the quality gate", path=str(path))
    return PairSet(first, second, scores=scores, name=str(path))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_pairs(path: Path, pairs: PairSet) -> None:
    """Write scored/labelled pairs as CSV (atomically)."""
    from slimbert.io import atomic_open

    with atomic_open(path, "w") as fh:
        writer = csv.writer(fh)
        extra = ["score"] if pairs.scores is not None else ["label"] if pairs.labels else []
        writer.writerow(["sentence1", "sentence2", *extra])
        for i in range(len(pairs)):
            tail: list[Any] = []
            if pairs.scores is not None:
                tail = [f"{pairs.scores[i]:.6g}"]
            elif pairs.labels is not None:
                tail = [pairs.labels[i]]
            writer.writerow([pairs.first[i], pairs.second[i], *tail])
