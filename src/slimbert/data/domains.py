"""Sentiment from more than one domain: ``sst3`` (films) and ``sentiment3`` (tweets + films).

A model trained on tweets alone learns the corpus's topics (``@united`` → negative) rather
than sentiment. Two built-ins fix what it is trained and judged on:

* ``sst3``: the Stanford Sentiment Treebank's sentence-level 5-class sets (Socher et al.
  2013; ``<shared data>/sst5``) mapped to 3 classes (0–1 negative, 2 neutral, 3–4 positive).
  Its text is lower-cased and tokenised (``wo n't``, ``film .``); it is detokenised here
  (:func:`detokenize`) so that the model never learns "tokenised text is a film review".
  Splits: ``train`` (8,531), ``validation`` (the treebank's dev, 1,100), ``test`` (2,210).
* ``sentiment3``: gold from both domains. ``train`` = tweets3 train + sst3 train;
  ``validation`` = both validations (early stopping sees both domains); ``test`` = both tests;
  ``pool`` = the tweets3 pool + the sst3 train sentences without labels (the student's transfer
  set holds film sentences too). Every source keeps its own validation and test splits
  (``tweets3:test``, ``sst3:test``), so each domain is evaluated on its own.
  ``sentiment3-quick`` takes the tweets3-quick splits and the first rows of sst3's.

Row ids say where a row came from: ``t<N>`` (tweets3, the source file's data row) and
``sst-<split>-<line>`` (the treebank file's 1-based line). Nothing is cached: the treebank is
small (measured: train 181 ms, which reads the later splits too to drop repeats; test 38 ms).
"""

from __future__ import annotations

import re
from pathlib import Path

from slimbert.data.texts import TextSet
from slimbert.errors import ConfigError, DataError

LABEL_NAMES = ("negative", "neutral", "positive")
SST_SPLITS = {"train": "sentiment-train", "validation": "sentiment-dev", "test": "sentiment-test"}
SST_LABELS = {0: "negative", 1: "negative", 2: "neutral", 3: "positive", 4: "positive"}
# sentiment3-quick: rows taken from the start of each sst3 split (tweets3-quick gives the rest).
_QUICK_SST = {"train": 400, "validation": 300, "test": 300, "pool": 600}

BUILTINS: dict[str, str] = {
    "sst3": "SST-5 sentences (films) mapped to 3 classes, detokenised: train 8,531, "
    "validation 1,100, test 2,210 (needs the shared data folder)",
    "sentiment3": "3-class gold from two domains: tweets3 + sst3 (train 12,531, validation "
    "3,100, test 6,210); pool = tweets3 pool + sst3 train texts",
    "sentiment3-quick": "small sentiment3 profile for smoke runs: tweets3-quick + the first "
    "rows of sst3 (train 800, validation 600, test 600, pool 1,800)",
}

_CONTRACTION = re.compile(r" (n't|'s|'re|'ve|'m|'ll|'d)\b", re.IGNORECASE)
_SPACE_BEFORE = re.compile(r" ([.,!?;:%)\]}])")
_SPACE_AFTER = re.compile(r"([(\[{$]) ")
_QUOTES = re.compile(r"``\s*|\s*''")
_BRACKETS = {"-lrb-": "(", "-rrb-": ")", "-lsb-": "[", "-rsb-": "]", "-lcb-": "{", "-rcb-": "}"}


def detokenize(text: str) -> str:
    """Undo the treebank's tokenisation: ``wo n't sit still , however .`` → ``won't sit still,
    however.``; the first letter is capitalised as a person would type it."""
    words = [_BRACKETS.get(w, w) for w in text.split()]
    out = " ".join(words)
    out = _CONTRACTION.sub(r"\1", out)
    out = _SPACE_BEFORE.sub(r"\1", out)
    out = _SPACE_AFTER.sub(r"\1", out)
    out = _QUOTES.sub('"', out)
    out = out.replace(" -- ", " - ")
    return out[:1].upper() + out[1:]


def sst_file(split: str) -> Path:
    from slimbert.data.pairs import data_dir

    root = data_dir()
    assert root is not None
    path = root / "sst5" / SST_SPLITS[split]
    if not path.is_file():
        raise DataError(
            f"{path} is missing",
            hint="set SLIMBERT_DATA_DIR to the folder holding sst5/ (see ../shared/data)",
        )
    return path


def load_sst3(split: str, *, labelled: bool = True) -> TextSet:
    """One split of ``sst3``: detokenised sentences and 3-class labels.

    The treebank repeats a few sentences across its files ("No..", "What's next?"): a train
    sentence found in validation or test, a validation sentence found in test, and a second
    copy within a split are dropped (13 train rows, 1 validation row), so no held-out
    sentence is ever trained on.
    """
    if split not in SST_SPLITS:
        raise ConfigError(
            f"unknown split {split!r} of sst3", hint=f"choose one of {', '.join(SST_SPLITS)}"
        )
    order = list(SST_SPLITS)
    held_out: set[str] = set()
    for later in order[order.index(split) + 1 :]:
        held_out.update(_key(t) for _, t, _ in _read_sst(later))
    texts, labels, ids = [], [], []
    for number, text, label in _read_sst(split):
        key = _key(text)
        if key in held_out:
            continue
        held_out.add(key)
        texts.append(text)
        labels.append(label)
        ids.append(f"sst-{split}-{number}")
    return TextSet(
        texts=texts,
        labels=labels if labelled else None,
        label_names=LABEL_NAMES,
        ids=ids,
        source=f"sst3:{split}",
    )


def _read_sst(split: str) -> list[tuple[int, str, int]]:
    path = sst_file(split)
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        code, _, text = line.strip().partition(" ")
        if not code.isdigit() or int(code) not in SST_LABELS or not text.strip():
            raise DataError("expected '<label 0-4> <sentence>'", path=str(path), line=number)
        rows.append((number, detokenize(text), LABEL_NAMES.index(SST_LABELS[int(code)])))
    return rows


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def load_domain_builtin(name: str, split: str, *, cache_dir: Path | None = None) -> TextSet:
    """``sst3:<split>``, ``sentiment3:<split>`` or ``sentiment3-quick:<split>``."""
    if name == "sst3":
        return load_sst3(split)
    if name not in ("sentiment3", "sentiment3-quick"):
        raise ConfigError(f"unknown built-in dataset {name!r}")
    from slimbert.data.tweets3 import SPLITS, load_builtin

    if split not in SPLITS:
        raise ConfigError(
            f"unknown split {split!r} of {name}", hint=f"choose one of {', '.join(SPLITS)}"
        )
    tweets = load_builtin(
        "tweets3" if name == "sentiment3" else "tweets3-quick", split, cache_dir=cache_dir
    )
    films = load_sst3("train" if split == "pool" else split, labelled=split != "pool")
    if name == "sentiment3-quick":
        films = films.subset(range(min(len(films), _QUICK_SST[split])))
    return interleave(tweets, films, source=f"{name}:{split}")


def interleave(a: TextSet, b: TextSet, *, source: str) -> TextSet:
    """Join two sets of the same labels, mixed evenly, so that the first N rows (``--limit``)
    hold both domains in proportion."""
    if a.label_names != b.label_names:
        raise DataError(f"{a.source} and {b.source} have different labels")
    if (a.labels is None) != (b.labels is None):
        raise DataError(f"{a.source} and {b.source}: only one of them is labelled")
    order = sorted(
        [(i / max(1, len(a)), 0, i) for i in range(len(a))]
        + [(i / max(1, len(b)), 1, i) for i in range(len(b))]
    )
    parts = (a, b)
    labels = None
    if a.labels is not None and b.labels is not None:
        labels = [(a.labels, b.labels)[k][i] for _, k, i in order]
    return TextSet(
        texts=[parts[k].texts[i] for _, k, i in order],
        labels=labels,
        label_names=a.label_names,
        ids=[parts[k].ids[i] for _, k, i in order],
        source=source,
    )
