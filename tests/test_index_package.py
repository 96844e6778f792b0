"""``slimbert package --index``: the index ships as ``index/`` and the packaged function answers
duplicate requests through the real Lambda emulator (skips without Python 3.12 or the wheels,
like test_lambda_local.py)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from runtime_fixtures import build_bundle
from slimbert.deploy.local import LocalGcp, LocalLambda
from slimbert.deploy.package import PackageOptions, build_package
from slimbert.deploy.toolchain import find_python312, host_arch, rie_binary
from slimbert.errors import SlimbertError
from slimbert.index.build import bundle_facts, write_index
from slimbert.runtime.bundle import load_bundle
from test_package import wheel_cache  # noqa: F401 - session fixture shared with the package tests

# The toy embedder's axes (runtime_fixtures): negative cues → 0, neutral → 1, positive → 2.
IDS = ["pos", "neg", "neu"]
TEXTS = ["good great", "bad awful", "table chair"]


@pytest.fixture(scope="module")
def embedder_with_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("index-package")
    bundle = build_bundle(root / "bundle", task="embedding")
    loaded = load_bundle(bundle, threads=1)
    write_index(
        root / "index",
        loaded.embed(TEXTS),
        IDS,
        TEXTS,
        bundle=bundle_facts(loaded),
        threshold={"value": 0.9},
    )
    return bundle, root / "index"


@pytest.fixture(scope="module")
def lambda_zip(
    embedder_with_index: tuple[Path, Path],
    wheel_cache: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, Any]]:
    bundle, index = embedder_with_index
    out = tmp_path_factory.mktemp("index-package-out")
    report = build_package(
        PackageOptions(bundle=bundle, index=index, out=out, wheel_cache=wheel_cache)
    )
    return out / "slimbert-aws-lambda-x86_64.zip", report


def test_zip_ships_the_index(
    lambda_zip: tuple[Path, dict[str, Any]], embedder_with_index: tuple[Path, Path]
) -> None:
    zip_path, report = lambda_zip
    _, index = embedder_with_index
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        assert zf.read("index/vectors.npy") == (index / "vectors.npy").read_bytes()
    assert {f"index/{n}" for n in ("manifest.json", "vectors.npy", "ids.json", "texts.json")} <= (
        names
    )
    assert any(row["name"] == "index" for row in report["components"])
    assert not any(n.startswith("usearch/") for n in names)  # exact search needs numpy only


def test_gcp_folder_ships_the_index_and_answers_duplicates(
    embedder_with_index: tuple[Path, Path], tmp_path: Path
) -> None:
    bundle, index = embedder_with_index
    build_package(PackageOptions(bundle=bundle, index=index, out=tmp_path, target="gcp-function"))
    folder = tmp_path / "slimbert-gcp-function"
    assert (folder / "index" / "texts.json").read_bytes() == (index / "texts.json").read_bytes()
    try:
        function = LocalGcp(folder, python=find_python312())
        function.start()
    except SlimbertError as exc:
        pytest.skip(f"functions-framework environment unavailable: {exc}")
    with function:
        response, _ = function.invoke({"text": "great love", "duplicates": True})
        assert response["statusCode"] == 200, function.log_tail()
        (result,) = json.loads(response["body"])["results"]
        assert result["is_duplicate"] is True and result["neighbours"][0]["id"] == "pos"
        bad, _ = function.invoke({"text": "good", "top_k": 0})
        assert bad["statusCode"] == 400 and "top_k" in json.loads(bad["body"])["error"]


def test_index_of_another_model_is_refused(
    embedder_with_index: tuple[Path, Path], tmp_path: Path
) -> None:
    _, index = embedder_with_index
    other = build_bundle(tmp_path / "other", task="embedding")
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["files"]["model_fp32.onnx"]["sha256"] = "0" * 64  # as if another model
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SlimbertError):
        build_package(PackageOptions(bundle=other, index=index, out=tmp_path / "o"))


def test_packaged_function_answers_duplicates(
    lambda_zip: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    try:
        python = find_python312()
        rie_binary(host_arch())
    except SlimbertError as exc:
        pytest.skip(f"Python 3.12 or the Lambda emulator is missing: {exc}")
    zip_path, _ = lambda_zip
    with LocalLambda(zip_path, python=python, workdir=tmp_path) as function:
        answer, _ = function.invoke({"texts": ["great love", "good bad"], "top_k": 2})
        assert "results" in answer, function.log_tail()
        first, second = answer["results"]
        assert first["is_duplicate"] is True and first["neighbours"][0]["id"] == "pos"
        assert second["is_duplicate"] is False and len(second["neighbours"]) == 2
        bad, _ = function.invoke({"text": "good", "top_k": 0})
        assert bad["statusCode"] == 400 and "top_k" in bad["error"]
        plain, _ = function.invoke({"text": "good"})
        assert np.asarray(plain["embeddings"]).shape == (1, 4)
        assert "Traceback" not in function.log_tail(200)
