"""The packaged function, run as its platform runs it: the real Lambda emulator + awslambdaric,
and functions-framework for the GCP folder, both over HTTP on 127.0.0.1 under Python 3.12.

The first run fetches the emulator (inside the aws-sam-cli wheel) and builds two small Python
3.12 environments in ``~/.cache/slimbert``; later runs are offline. Skips without Python 3.12.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime_fixtures import LABELS
from slimbert.deploy import local as lambda_local
from slimbert.deploy.local import LocalGcp, LocalLambda, function_url_event
from slimbert.deploy.toolchain import find_python312, host_arch, rie_binary
from slimbert.errors import SlimbertError
from test_package import (  # noqa: F401 - session fixtures shared with the package tests
    gcp_package,
    lambda_package,
    tiny_bundle,
    wheel_cache,
)

TEXTS = ["good great", "bad awful", "table chair"]
EXPECTED = ["positive", "negative", "neutral"]


@pytest.fixture(scope="session")
def python312() -> Path:
    try:
        return find_python312()
    except SlimbertError as exc:
        pytest.skip(f"Python 3.12 is missing: {exc}")


def _labels(answer: dict[str, Any]) -> list[str]:
    return [p["label"] for p in answer["predictions"]]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def local_lambda(
    python312: Path,  # first: skip before building anything when 3.12 is missing
    lambda_package: tuple[Path, dict[str, Any]],  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalLambda]:
    zip_path, _ = lambda_package
    try:
        rie_binary(host_arch())
    except SlimbertError as exc:
        pytest.skip(f"the Lambda emulator is unavailable: {exc}")
    workdir = tmp_path_factory.mktemp("lambda")
    # INFO: the runtime's "loaded bundle" line is checked below (its default is WARNING).
    env = {"SLIMBERT_LOG_LEVEL": "INFO"}
    function = LocalLambda(zip_path, workdir=workdir, python=python312, env=env)
    function.start()
    try:
        yield function
    finally:
        function.stop()


def test_lambda_answers_through_the_emulator(local_lambda: LocalLambda) -> None:
    answer, ms = local_lambda.invoke({"texts": TEXTS})  # direct invoke: the event is the body
    assert _labels(answer) == EXPECTED, local_lambda.log_tail()
    assert set(answer["predictions"][0]["probabilities"]) == set(LABELS)
    assert ms > 0 and local_lambda.cold_start_s is not None
    # Function URL events get an HTTP response; the body is the same JSON.
    response, _ = local_lambda.invoke(function_url_event({"text": "good"}))
    assert response["statusCode"] == 200
    assert _labels(json.loads(response["body"])) == ["positive"]
    health, _ = local_lambda.invoke(function_url_event("", method="GET"))
    assert health["statusCode"] == 200 and json.loads(health["body"])["labels"] == LABELS


def test_lambda_bad_request_is_400_and_it_keeps_serving(local_lambda: LocalLambda) -> None:
    bad, _ = local_lambda.invoke(function_url_event("this is not json"))
    assert bad["statusCode"] == 400 and "not valid JSON" in json.loads(bad["body"])["error"]
    wrong, _ = local_lambda.invoke({"texts": 3})
    assert wrong["statusCode"] == 400 and "texts" in wrong["error"]
    pid = local_lambda.pid
    answer, _ = local_lambda.invoke({"texts": TEXTS})
    assert _labels(answer) == EXPECTED and local_lambda.pid == pid


def test_lambda_runs_from_a_clean_read_only_style_task_folder(local_lambda: LocalLambda) -> None:
    assert local_lambda.workdir is not None
    task = local_lambda.workdir / "task"
    assert (task / "bundle" / "manifest.json").is_file()
    # Nothing written beside the code, as in Lambda: the files are the zip's (its bytecode too).
    with zipfile.ZipFile(local_lambda.package_zip) as zf:
        shipped = {n for n in zf.namelist() if not n.endswith("/")}
    assert {p.relative_to(task).as_posix() for p in task.rglob("*") if p.is_file()} == shipped
    assert "loaded bundle" in local_lambda.log_tail(200)
    assert "Traceback" not in local_lambda.log_tail(200)


def test_lambda_stop_ends_the_process_group(
    python312: Path,
    lambda_package: tuple[Path, dict[str, Any]],  # noqa: F811
) -> None:
    zip_path, _ = lambda_package
    with LocalLambda(zip_path, python=python312, env={"SLIMBERT_THREADS": "1"}) as function:
        answer, _ = function.invoke({"text": "bad"})
        assert _labels(answer) == ["negative"]
        pgid = function.pid
        workdir = function._own_workdir
    assert pgid is not None and not _group_alive(pgid)  # emulator and runtime both gone
    assert workdir is not None and not workdir.exists()


def test_lambda_for_another_architecture_needs_the_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = "aarch64" if host_arch() == "x86_64" else "x86_64"
    fake = tmp_path / "other.zip"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr(f"numpy/_core/_m.cpython-312-{other}-linux-gnu.so", b"")
    with pytest.raises(SlimbertError, match=rf"built for \w+, not {host_arch()}"):
        LocalLambda(fake, arch=host_arch()).start()  # an --arch that is not the zip's

    def no_qemu(arch: str) -> list[str]:
        raise SlimbertError("a function built for it needs qemu-user", hint="apt-get install")

    monkeypatch.setattr(lambda_local, "emulator", no_qemu)
    with pytest.raises(SlimbertError, match=r"runs under emulation, and: .*qemu-user") as caught:
        LocalLambda(fake).start()
    assert caught.value.hint == "apt-get install"


def test_gcp_folder_under_functions_framework(
    python312: Path,
    gcp_package: Path,  # noqa: F811
) -> None:
    try:
        function = LocalGcp(gcp_package, python=python312)
        function.start()
    except SlimbertError as exc:
        pytest.skip(f"functions-framework environment unavailable: {exc}")
    with function:
        response, _ = function.invoke({"texts": TEXTS})
        assert response["statusCode"] == 200, function.log_tail()
        assert _labels(json.loads(response["body"])) == EXPECTED
        bad, _ = function.invoke({"texts": "good"})
        assert bad["statusCode"] == 400 and "texts" in json.loads(bad["body"])["error"]
        again, _ = function.invoke({"text": "bad awful"})
        assert again["statusCode"] == 200
        assert _labels(json.loads(again["body"])) == ["negative"]
        pgid = function.pid
    assert pgid is not None and not _group_alive(pgid)


def test_template_settings_resolve_refs_to_parameter_defaults(tmp_path: Path) -> None:
    """The emulator gets what a deploy with the template's defaults gives: LogLevel's Default,
    not the text of the Ref; what only a deploy can resolve is left out."""
    import yaml

    from slimbert.deploy.package import PackageOptions, sam_template

    options = PackageOptions(memory_mb=2048, timeout_s=12)
    zip_path = tmp_path / f"{options.stem}.zip"
    text = sam_template(options, zip_path.name, manifest_sha256="ab" * 32)
    template = zip_path.with_name(f"{options.stem}.template.yaml")
    template.write_text(text, encoding="utf-8")
    settings = lambda_local._template_settings(zip_path)
    assert settings["env"]["SLIMBERT_LOG_LEVEL"] == "WARNING"
    assert settings["env"]["SLIMBERT_THREADS"] == "1"
    assert settings["env"]["SLIMBERT_MANIFEST_SHA256"] == "ab" * 32
    assert (settings["memory_mb"], settings["timeout_s"]) == (2048, 12)
    assert not any("Ref" in value or "{" in value for value in settings["env"].values())

    doc = yaml.safe_load(text)
    variables = doc["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    variables["FROM_ATTR"] = {"Fn::GetAtt": ["FunctionLogGroup", "Arn"]}
    variables["NO_DEFAULT"] = {"Ref": "AWS::Region"}
    variables["FLAG"] = True
    doc["Parameters"]["LogLevel"]["Default"] = "INFO"
    doc["Resources"]["Function"]["Properties"]["MemorySize"] = {"Ref": "Memory"}
    doc["Parameters"]["Memory"] = {"Type": "Number", "Default": 512}
    template.write_text(yaml.safe_dump(doc), encoding="utf-8")
    settings = lambda_local._template_settings(zip_path)
    assert settings["env"]["SLIMBERT_LOG_LEVEL"] == "INFO"
    assert settings["env"]["FLAG"] == "true"
    assert "FROM_ATTR" not in settings["env"] and "NO_DEFAULT" not in settings["env"]
    assert settings["memory_mb"] == 512
    function = LocalLambda(zip_path)  # what start() would hand the runtime
    assert function.template_env["SLIMBERT_LOG_LEVEL"] == "INFO" and function.memory_mb == 512
