"""The stack floor zip of `slimbert bench lambda` (slimbert.lab.coldfloor)."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest

from slimbert.lab.coldfloor import FLOOR_HANDLER, FLOOR_MODULE, floor_zip
from slimbert.lab.lambda_instances import Target


def _package(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("bootstrap.sh", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o755 << 16
        zf.writestr(info, "#!/bin/sh\n")
        zf.writestr("slimbert/runtime/handler.py", "x = 1\n")
        zf.writestr("bundle/manifest.json", "{}")
    return path


def test_the_floor_zip_is_the_package_plus_one_module(tmp_path: Path) -> None:
    package = _package(tmp_path / "fn.zip")
    (tmp_path / "fn.template.yaml").write_text("Resources: {}\n", encoding="utf-8")
    dst = floor_zip(package, tmp_path / "floor" / "fn.zip")
    # The function's environment comes from the template beside the zip: the floor's too.
    assert (tmp_path / "floor" / "fn.template.yaml").read_text() == "Resources: {}\n"
    with zipfile.ZipFile(package) as a, zipfile.ZipFile(dst) as b:
        names = {i.filename: i for i in b.infolist()}
        assert set(names) == {i.filename for i in a.infolist()} | {f"{FLOOR_MODULE}.py"}
        for info in a.infolist():  # every entry as it was, its mode included
            assert b.read(info.filename) == a.read(info.filename)
            assert names[info.filename].external_attr == info.external_attr
    assert not list(dst.parent.glob("*.partial"))
    # Made twice: the same zip, one floor module.
    again = floor_zip(dst, tmp_path / "again.zip")
    with zipfile.ZipFile(again) as zf:
        assert [n for n in zf.namelist() if n.startswith(FLOOR_MODULE)] == [f"{FLOOR_MODULE}.py"]


def test_the_floor_imports_the_stack_and_answers_what_the_bench_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dst = floor_zip(_package(tmp_path / "fn.zip"), tmp_path / "floor.zip")
    with zipfile.ZipFile(dst) as zf:
        zf.extractall(tmp_path / "task")
    monkeypatch.syspath_prepend(str(tmp_path / "task"))
    monkeypatch.delitem(sys.modules, FLOOR_MODULE, raising=False)
    module = __import__(FLOOR_MODULE)
    for name in ("numpy", "onnxruntime", "tokenizers"):
        assert name in sys.modules and hasattr(module, name)
    answer = module.lambda_handler({"body": "{}"}, None)
    body = json.loads(answer["body"])
    assert answer["statusCode"] == 200 and len(body["predictions"]) == 1
    assert body["timing_ms"]["total"] == 0.0
    assert FLOOR_HANDLER.split(".") == [FLOOR_MODULE, "lambda_handler"]


def test_a_lambda_target_makes_its_floor(tmp_path: Path) -> None:
    target = Target("student-lambda", "lambda", tmp_path / "fn.zip")
    floor = target.floor(tmp_path / "floor.zip")
    assert floor.name == "student-lambda-floor" and floor.handler == FLOOR_HANDLER
    assert floor.source == tmp_path / "floor.zip" and floor.kind == "lambda"
    fn = floor.make(1024, 1, [], tmp_path / "work")
    assert fn.handler == FLOOR_HANDLER  # type: ignore[attr-defined]
    assert target.make(1024, 1, [], tmp_path / "w2").handler != FLOOR_HANDLER  # type: ignore[attr-defined]


def test_the_floor_starts_with_the_functions_environment(tmp_path: Path) -> None:
    package = _package(tmp_path / "fn.zip")
    (tmp_path / "fn.template.yaml").write_text(
        "Resources:\n  Function:\n    Properties:\n      MemorySize: 1024\n"
        "      Environment:\n        Variables:\n          OPENBLAS_NUM_THREADS: '1'\n",
        encoding="utf-8",
    )
    target = Target("student-lambda", "lambda", package)
    floor = target.floor(floor_zip(package, tmp_path / "floor" / "fn.zip"))
    own = target.make(1024, 1, [], tmp_path / "a")
    theirs = floor.make(1024, 1, [], tmp_path / "b")
    assert own.template_env == theirs.template_env == {"OPENBLAS_NUM_THREADS": "1"}  # type: ignore[attr-defined]
