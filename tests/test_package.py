"""``slimbert package``: deterministic, stripped zips within Lambda's limits; SAM and GCP outputs.

The runtime wheels are downloaded once into the wheel cache (``SLIMBERT_WHEEL_CACHE``, else
``~/.cache/slimbert/wheels``); without a registry and an empty cache these tests skip. The
fixtures here are session-scoped and reused by ``test_lambda_local.py``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime_fixtures import build_bundle
from slimbert.deploy import archive, toolchain, wheels
from slimbert.deploy import package as pkg
from slimbert.deploy.package import PackageOptions, build_package
from slimbert.deploy.wheels import RUNTIME_PINS, WheelDownloadError, ensure_wheels, read_lock
from slimbert.errors import ConfigError, SlimbertError


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# test_lambda_local.py imports these fixtures, and pytest then holds a second session-scoped
# copy of each; building through this memo keeps it to one build per session.
_BUILT: dict[str, Any] = {}


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "bundle" not in _BUILT:
        _BUILT["bundle"] = build_bundle(tmp_path_factory.mktemp("package-bundle") / "bundle")
    return Path(_BUILT["bundle"])


@pytest.fixture(scope="session")
def wheel_cache() -> Path:
    cache = toolchain.default_wheel_cache()
    try:
        ensure_wheels("x86_64", cache)
    except WheelDownloadError as exc:
        pytest.skip(f"runtime wheels unavailable (no registry and no cache): {exc}")
    return cache


@pytest.fixture(scope="session")
def lambda_package(
    tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path, wheel_cache: Path
) -> tuple[Path, dict[str, Any]]:
    """The x86_64 Lambda zip of the tiny bundle and its size report."""
    if "lambda" not in _BUILT:
        out = tmp_path_factory.mktemp("package-out")
        options = PackageOptions(bundle=tiny_bundle, out=out, wheel_cache=wheel_cache)
        report = build_package(options)
        _BUILT["lambda"] = (out / "slimbert-aws-lambda-x86_64.zip", report)
    built: tuple[Path, dict[str, Any]] = _BUILT["lambda"]
    return built


def test_options_validate() -> None:
    with pytest.raises(ConfigError, match="x86_64 only"):
        PackageOptions(target="gcp-function", arch="arm64")
    with pytest.raises(ConfigError, match="not supported"):
        PackageOptions(python="3.11")
    with pytest.raises(ConfigError, match="memory_mb"):
        PackageOptions(memory_mb=64)
    options = PackageOptions.from_dict({"arch": "arm64", "memory_mb": "2048", "out": "x"})
    assert options.stem == "slimbert-aws-lambda-arm64" and options.memory_mb == 2048


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_locks_pin_runtime_with_hashes(arch: str) -> None:
    lock = read_lock(arch)
    assert {name: version for name, (version, _) in lock.items()} == RUNTIME_PINS
    for _, hashes in lock.values():
        assert hashes and all(len(h) == 64 for h in hashes)


def test_cached_wheel_with_wrong_hash_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cp312-manylinux-x86_64"
    cache.mkdir()
    fake = cache / "numpy-2.4.6-cp312-cp312-manylinux_2_28_x86_64.whl"
    fake.write_bytes(b"not the wheel the lock names")
    calls: list[list[str]] = []

    def offline(arch: str, dest: Path, args: list[str]) -> None:
        calls.append(args)
        raise WheelDownloadError("offline")

    monkeypatch.setattr(wheels, "_pip_download", offline)
    with pytest.raises(WheelDownloadError):
        ensure_wheels("x86_64", tmp_path)
    assert not fake.exists()  # dropped, and fetched again through pip's own hash check
    assert "--require-hashes" in calls[0]


def test_zip_is_deterministic(
    lambda_package: tuple[Path, dict[str, Any]], tiny_bundle: Path, tmp_path: Path
) -> None:
    zip_path, report = lambda_package
    options = PackageOptions(
        bundle=tiny_bundle, out=tmp_path, wheel_cache=toolchain.default_wheel_cache()
    )
    again = build_package(options)
    assert again["sha256"] == report["sha256"] == sha256(zip_path)
    assert sha256(tmp_path / zip_path.name) == sha256(zip_path)
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    for info in infos:
        mode = (info.external_attr >> 16) & 0o777
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        if info.is_dir() or archive._SO.search(info.filename):
            assert mode == 0o755, info.filename
        else:
            assert mode == 0o644 and info.compress_type == zipfile.ZIP_DEFLATED, info.filename


def test_zip_is_stripped(lambda_package: tuple[Path, dict[str, Any]]) -> None:
    zip_path, report = lambda_package
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    files = [n for n in names if not n.endswith("/")]
    for gone in ("/tests/", "/include/", "numpy/f2py/", "numpy/testing/"):
        assert not [n for n in names if gone in f"/{n}" and "/licenses/" not in n], gone
    for gone in ("transformers", "tools", "quantization", "datasets", "training", "backend"):
        assert not [n for n in names if n.startswith(f"onnxruntime/{gone}/")], gone
    assert not [n for n in files if n.endswith((".pyi", ".pxd", ".h", ".a"))]
    # The only bytecode is ours: cpython-312 files beside a shipped source (none from wheels).
    sources = {n for n in files if n.endswith(".py")}
    for pyc in [n for n in files if "__pycache__" in n or n.endswith(".pyc")]:
        folder, _, name = pyc.rpartition("/__pycache__/")
        assert name.endswith(".cpython-312.pyc"), pyc
        assert f"{folder}/{name.split('.')[0]}.py".lstrip("/") in sources, pyc
    assert not [n for n in files if "libonnxruntime.so" in n or "_multiarray_tests" in n]
    metadata = [n.split("/", 1)[1] for n in files if ".dist-info/" in n]
    assert metadata and all(
        n in ("METADATA", "RECORD", "WHEEL")
        or n.startswith(("licenses/", "sboms/"))
        or "LICEN" in n
        for n in metadata
    )
    expected = {
        "slimbert/__init__.py",
        "slimbert/errors.py",
        "slimbert/runtime/handler.py",
        "bundle/manifest.json",
        "bundle/model_fp32.onnx",
        "bundle/tokenizer.json",
        "onnxruntime/__init__.py",
        "tokenizers/__init__.py",
        "numpy/__init__.py",
    }
    assert expected <= set(files)
    assert any(n.startswith("onnxruntime/capi/onnxruntime_pybind11_state") for n in files)
    assert any(n.startswith("numpy.libs/libscipy_openblas") for n in files)
    code = [n for n in files if n.startswith("slimbert/")]
    assert all(n.endswith((".py", ".cpython-312.pyc")) for n in code)
    assert {n.split("/")[1] for n in code} <= {"__init__.py", "errors.py", "runtime", "__pycache__"}
    assert report["stripped"]["onnxruntime"]["bytes"] > 30_000_000


def test_zip_ships_checked_hash_bytecode_for_python312(
    lambda_package: tuple[Path, dict[str, Any]],
) -> None:
    zip_path, report = lambda_package
    if report["bytecode"] is None:
        pytest.skip("no Python 3.12 here: the zip ships source only")
    assert report["bytecode"]["python"].startswith("3.12.")
    assert report["bytecode"]["invalidation"] == "checked-hash"
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        handler_pyc = zf.read("slimbert/runtime/__pycache__/handler.cpython-312.pyc")
    sources = [n for n in names if n.endswith(".py")]
    pycs = [n for n in names if n.endswith(".pyc")]
    assert len(pycs) == report["bytecode"]["files"] == len(sources)
    assert "numpy/__pycache__/__init__.cpython-312.pyc" in names
    # Flags 0b11: hash-based and checked against the source, so never stale; no mtime inside.
    assert int.from_bytes(handler_pyc[4:8], "little") == 0b11


def test_size_report_adds_up(
    lambda_package: tuple[Path, dict[str, Any]], tiny_bundle: Path
) -> None:
    zip_path, report = lambda_package
    with zipfile.ZipFile(zip_path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
    components = {row["name"]: row for row in report["components"]}
    assert set(RUNTIME_PINS) | {"bundle", "slimbert"} == set(components)
    assert {components[n]["component"] for n in RUNTIME_PINS} == {"library"}
    assert components["bundle"]["component"] == "model"
    assert components["slimbert"]["component"] == "code"
    total = report["total"]
    for key in ("files", "unzipped_bytes", "zipped_bytes"):
        assert total[key] == sum(row[key] for row in report["components"])
    assert total["files"] == len(infos)
    assert total["unzipped_bytes"] == sum(i.file_size for i in infos)
    assert total["zipped_bytes"] == sum(i.compress_size for i in infos)
    assert report["package_bytes"] == zip_path.stat().st_size
    assert total["zipped_bytes"] + report["overhead_bytes"] == report["package_bytes"]
    bundle_files = [p for p in tiny_bundle.iterdir() if p.is_file()]
    assert components["bundle"]["files"] == len(bundle_files) == 3
    assert components["bundle"]["unzipped_bytes"] == sum(p.stat().st_size for p in bundle_files)
    assert report["limits"]["zip_ok"] and report["limits"]["unzipped_ok"]
    assert report["package_bytes"] < 50 * 2**20 and total["unzipped_bytes"] < 250 * 2**20
    stem = zip_path.with_suffix("")
    assert json.loads(stem.with_name(stem.name + ".sizes.json").read_text()) == report
    table = stem.with_name(stem.name + ".sizes.md").read_text()
    assert "| onnxruntime | library |" in table and "**total**" in table


def test_over_the_limit_names_the_biggest_component(
    lambda_package: tuple[Path, dict[str, Any]], tiny_bundle: Path, tmp_path: Path
) -> None:
    # Unzipped: refused before any compression, so no zip is written.
    options = PackageOptions(bundle=tiny_bundle, out=tmp_path, max_unzipped_mb=10)
    with pytest.raises(SlimbertError, match=r"over the 10 MiB limit.*biggest component: numpy"):
        build_package(options)
    assert not list(tmp_path.glob("*.zip"))
    # Zipped: the same check the build runs after compressing, on the real report.
    _, report = lambda_package
    tiny = {**report, "limits": {**report["limits"], "zip_ok": False, "max_zip_bytes": 1000}}
    biggest = max(report["components"], key=lambda row: row["zipped_bytes"])["name"]
    with pytest.raises(SlimbertError, match=rf"zipped, over the .* limit; biggest .*: {biggest}"):
        archive.check_limits(tiny)


def test_bundle_with_changed_file_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    broken = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, broken)
    (broken / "tokenizer.json").write_text("{}")
    with pytest.raises(SlimbertError, match=r"tokenizer\.json has 2 bytes"):
        build_package(PackageOptions(bundle=broken, out=tmp_path / "out"))
    (broken / "tokenizer.json").write_bytes(b"x" * (tiny_bundle / "tokenizer.json").stat().st_size)
    with pytest.raises(SlimbertError, match="does not match its sha256"):
        build_package(PackageOptions(bundle=broken, out=tmp_path / "out"))
    with pytest.raises(SlimbertError, match=r"manifest\.json is missing"):
        build_package(PackageOptions(bundle=tmp_path, out=tmp_path / "out"))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def _edited_bundle(tiny_bundle: Path, tmp_path: Path, edit: Any) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    edit(manifest, bundle)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def _list_secret(manifest: dict[str, Any], bundle: Path) -> None:
    secret = bundle.parent / "secret.txt"
    secret.write_text("password")
    manifest["files"]["../secret.txt"] = {"sha256": sha256(secret), "bytes": 8}


def _list_symlink(manifest: dict[str, Any], bundle: Path) -> None:
    secret = bundle.parent / "secret.txt"
    secret.write_text("password")
    (bundle / "notes.txt").symlink_to(secret)
    manifest["files"]["notes.txt"] = {"sha256": sha256(secret), "bytes": 8}


def _list_absolute(manifest: dict[str, Any], bundle: Path) -> None:
    manifest["files"]["/etc/hostname"] = {"sha256": "0" * 64, "bytes": 1}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(_list_secret, r"'\.\./secret\.txt' is not a path inside", id="dotdot"),
        pytest.param(_list_absolute, r"'/etc/hostname' is not a path inside", id="absolute"),
        pytest.param(_list_symlink, "notes.txt is not a file inside", id="symlink-out"),
    ],
)
@pytest.mark.parametrize("target", ["aws-lambda", "gcp-function"])
def test_manifest_cannot_ship_files_outside_the_bundle(
    tiny_bundle: Path, tmp_path: Path, edit: Any, message: str, target: str
) -> None:
    bundle = _edited_bundle(tiny_bundle, tmp_path, edit)
    out = tmp_path / "out"
    options = PackageOptions(bundle=bundle, out=out, target=target)  # type: ignore[arg-type]
    with pytest.raises(SlimbertError, match=message):
        build_package(options)
    # Refused while reading the bundle: no zip, folder or report was written.
    assert not out.exists() or not list(out.iterdir())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"format": "slimbert-bundle/1", "files": []}', "files must map each file name"),
        ('{"format": "other/9", "files": {}}', "has format 'other/9'"),
        ("[" * 100_000, "is not valid JSON"),
        (b"\xff\xfe{}", "is not valid JSON"),
    ],
)
def test_malformed_manifest_is_a_one_line_error(
    tiny_bundle: Path, tmp_path: Path, text: str | bytes, message: str
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    path = bundle / "manifest.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(SlimbertError, match=message) as caught:
        build_package(PackageOptions(bundle=bundle, out=tmp_path / "out"))
    assert "\n" not in str(caught.value)
    # The CLI shows it as one line with exit status 1, never a traceback.
    from typer.testing import CliRunner

    from slimbert.cli import app

    result = CliRunner().invoke(
        app, ["package", "--bundle", str(bundle), "--out", str(tmp_path / "cli-out")]
    )
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("slimbert: error:"), result.output
    assert message.split("'")[0] in lines[0]


def test_sam_template(lambda_package: tuple[Path, dict[str, Any]]) -> None:
    zip_path, report = lambda_package
    path = zip_path.with_name("slimbert-aws-lambda-x86_64.template.yaml")
    template = yaml.safe_load(path.read_text())
    function = template["Resources"]["Function"]
    props = function["Properties"]
    assert function["Type"] == "AWS::Serverless::Function"
    assert props["Handler"] == "slimbert.runtime.handler.lambda_handler"
    assert props["Runtime"] == "python3.12" and props["Architectures"] == ["x86_64"]
    assert props["CodeUri"] == zip_path.name
    assert (props["MemorySize"], props["Timeout"]) == (1024, 30)
    assert props["FunctionUrlConfig"] == {"AuthType": "AWS_IAM"}
    variables = props["Environment"]["Variables"]
    assert variables["SLIMBERT_THREADS"] == "1"
    assert variables["OPENBLAS_NUM_THREADS"] == "1"
    # The manifest's digest, read from the zip: the runtime checks it at init.
    with zipfile.ZipFile(zip_path) as zf:
        manifest_bytes = zf.read("bundle/manifest.json")
    assert variables["SLIMBERT_MANIFEST_SHA256"] == hashlib.sha256(manifest_bytes).hexdigest()
    # Per-request INFO lines are an option; WARNING by default.
    assert variables["SLIMBERT_LOG_LEVEL"] == {"Ref": "LogLevel"}
    parameters = template["Parameters"]
    assert parameters["LogLevel"]["Default"] == "WARNING"
    assert set(parameters["LogLevel"]["AllowedValues"]) == {"WARNING", "INFO"}
    assert parameters["ReservedConcurrency"]["Default"] == -1
    assert props["ReservedConcurrentExecutions"] == {
        "Fn::If": [
            "HasReservedConcurrency",
            {"Ref": "ReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    # Alarms: Lambda's Errors and Throttles, and the handler's own 5xx metric (EMF).
    from slimbert.runtime import handler

    alarms = {
        name: r["Properties"]
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    watched = {(a["Namespace"], a["MetricName"]) for a in alarms.values()}
    assert watched == {
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        (handler.METRIC_NAMESPACE, handler.SERVER_ERRORS_METRIC),
    }
    for alarm in alarms.values():
        assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "Function"}}]
        assert alarm["Threshold"] == 1 and alarm["TreatMissingData"] == "notBreaching"
    role = template["Resources"]["FunctionRole"]["Properties"]
    (statement,) = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statement["Resource"] == {"Fn::GetAtt": ["FunctionLogGroup", "Arn"]}
    assert template["Resources"]["FunctionLogGroup"]["Type"] == "AWS::Logs::LogGroup"
    assert report["sha256"] in template["Description"]
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which(
        "cfn-lint"
    )
    if cfn_lint is None:
        pytest.skip("cfn-lint is not installed (pip install cfn-lint)")
    result = subprocess.run([cfn_lint, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_arm64_package(tiny_bundle: Path, wheel_cache: Path, tmp_path: Path) -> None:
    try:
        ensure_wheels("arm64", wheel_cache)
    except WheelDownloadError as exc:
        pytest.skip(f"arm64 wheels unavailable: {exc}")
    options = PackageOptions(bundle=tiny_bundle, out=tmp_path, arch="arm64", memory_mb=3538)
    report = build_package(options)
    with zipfile.ZipFile(tmp_path / "slimbert-aws-lambda-arm64.zip") as zf:
        natives = [n for n in zf.namelist() if n.endswith("-linux-gnu.so")]
    assert natives and all("aarch64" in n for n in natives)
    assert report["limits"]["zip_ok"] and report["arch"] == "arm64"
    template = yaml.safe_load((tmp_path / "slimbert-aws-lambda-arm64.template.yaml").read_text())
    props = template["Resources"]["Function"]["Properties"]
    assert props["Architectures"] == ["arm64"]
    assert props["Environment"]["Variables"]["SLIMBERT_THREADS"] == "2"


@pytest.fixture(scope="session")
def gcp_package(tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path) -> Path:
    if "gcp" not in _BUILT:
        out = tmp_path_factory.mktemp("gcp-out")
        build_package(PackageOptions(bundle=tiny_bundle, out=out, target="gcp-function"))
        _BUILT["gcp"] = out / "slimbert-gcp-function"
    return Path(_BUILT["gcp"])


def test_gcp_folder(gcp_package: Path, tiny_bundle: Path) -> None:
    main = (gcp_package / "main.py").read_text()
    assert "from slimbert.runtime.handler import gcp_handler" in main
    digest = sha256(gcp_package / "bundle" / "manifest.json")
    assert f'os.environ.setdefault("SLIMBERT_MANIFEST_SHA256", "{digest}")' in main
    assert "def predict(request)" in main and "return gcp_handler(request)" in main
    compile(main, "main.py", "exec")
    requirements = (gcp_package / "requirements.txt").read_text()
    assert requirements == wheels.gcp_lock_path().read_text()  # pins and hashes: see below
    for name in ("manifest.json", "model_fp32.onnx", "tokenizer.json"):
        assert sha256(gcp_package / "bundle" / name) == sha256(tiny_bundle / name)
    assert (gcp_package / "slimbert" / "runtime" / "handler.py").is_file()
    assert not list(gcp_package.rglob("__pycache__"))
    report = json.loads((gcp_package.parent / "slimbert-gcp-function.sizes.json").read_text())
    assert {row["name"] for row in report["components"]} == {"bundle", "slimbert", "entry point"}
    # Rebuilding replaces the folder in one step and leaves no temporary folder behind.
    build_package(PackageOptions(bundle=tiny_bundle, out=gcp_package.parent, target="gcp-function"))
    assert sorted(p.name for p in gcp_package.parent.iterdir() if p.name.startswith(".")) == []


# -- supply chain: what a scanner finds -------------------------------------------------------


def test_zip_lists_metadata_for_every_vendored_distribution(
    lambda_package: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    zip_path, _ = lambda_package
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(tmp_path)
    found = {
        d.metadata["Name"].lower(): d
        for d in importlib.metadata.distributions(path=[str(tmp_path)])
    }
    assert {n: d.version for n, d in found.items()} == RUNTIME_PINS
    for dist in found.values():
        assert dist.read_text("RECORD") and dist.read_text("WHEEL")
        assert dist.files and any(str(f).endswith(".py") for f in dist.files)
    # Licence texts ship, those that sit under a stripped include/ folder too.
    libdivide = "numpy-2.4.6.dist-info/licenses/numpy/_core/include/numpy/libdivide/LICENSE.txt"
    assert (tmp_path / libdivide).is_file()
    assert list(tmp_path.glob("tokenizers-*.dist-info/sboms/*.json"))  # its Rust crates
    assert not list(tmp_path.glob("*.dist-info/entry_points.txt"))


def test_sbom_names_each_distribution_with_version_and_hash(
    lambda_package: tuple[Path, dict[str, Any]],
) -> None:
    zip_path, report = lambda_package
    bom = json.loads(zip_path.with_name("slimbert-aws-lambda-x86_64.cdx.json").read_text())
    assert (bom["bomFormat"], bom["specVersion"], bom["version"]) == ("CycloneDX", "1.5", 1)
    assert re.fullmatch(
        r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        bom["serialNumber"],
    )
    app = bom["metadata"]["component"]
    assert app["hashes"] == [{"alg": "SHA-256", "content": report["sha256"]}]
    libraries = {c["name"].lower(): c for c in bom["components"] if c["type"] == "library"}
    lock = read_lock("x86_64")
    for name, version in RUNTIME_PINS.items():
        component = libraries[name]
        assert component["version"] == version
        assert component["purl"].startswith(f"pkg:pypi/{name}@{version}?file_name={name}-")
        (digest,) = component["hashes"]
        assert digest["alg"] == "SHA-256" and digest["content"] in lock[name][1]
        assert component.get("licenses"), name
    assert libraries["slimbert"]["version"]
    (model,) = [c for c in bom["components"] if c["type"] == "machine-learning-model"]
    assert re.fullmatch(r"[0-9a-f]{64}", model["hashes"][0]["content"])
    refs = [c["bom-ref"] for c in bom["components"]]
    assert len(set(refs)) == len(refs)
    assert {d["ref"] for d in bom["dependencies"]} == {*refs, app["bom-ref"]}


def test_gcp_requirements_pin_the_whole_closure_with_hashes(
    gcp_package: Path, wheel_cache: Path
) -> None:
    text = (gcp_package / "requirements.txt").read_text().replace("\\\n", " ")
    lines = [line.split("#", 1)[0].split() for line in text.splitlines()]
    pinned: dict[str, str] = {}
    for requirement, *options in [line for line in lines if line]:
        name, equals, version = requirement.partition("==")
        assert equals and re.fullmatch(r"[a-z0-9.-]+", name) and version, requirement
        assert options and all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", o) for o in options)
        pinned[name] = version
    assert {n: pinned.get(n) for n in wheels.gcp_pins()} == wheels.gcp_pins()
    # Closed under dependencies, judged offline for the runtime wheels in the cache: each one
    # a Python 3.12 on Linux needs is pinned (pip --require-hashes refuses anything unpinned).
    from packaging.requirements import Requirement

    where = {
        "python_version": "3.12",
        "python_full_version": "3.12.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "extra": "",
    }
    for wheel in ensure_wheels("x86_64", wheel_cache):
        for line in wheels.wheel_metadata(wheel).get_all("Requires-Dist") or []:
            need = Requirement(line)
            if need.marker is None or need.marker.evaluate(where):
                assert need.name.lower().replace("_", "-") in pinned, (wheel.name, line)
    assert {"flask", "werkzeug", "huggingface-hub", "protobuf", "packaging"} <= set(pinned)


def test_lock_lines_must_be_hashed_pins(tmp_path: Path) -> None:
    for bad in (
        "numpy==2.4.6\n",
        "numpy>=2 --hash=sha256:" + "0" * 64 + "\n",
        "numpy==2.4.6 --hash=sha256:abc\n",
    ):
        path = tmp_path / "bad.lock"
        path.write_text(bad)
        with pytest.raises(SlimbertError, match="not an ==pin with sha256"):
            wheels._parse_lock(path)


def test_update_gcp_lock_writes_one_hashed_pin_per_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"{n.replace('-', '_')}-{v}-py3-none-any.whl" for n, v in wheels.gcp_pins().items()]
    names.append("typing_extensions-4.16.0-py3-none-any.whl")
    calls: list[dict[str, Any]] = []

    def fake_download(arch: str, dest: Path, args: list[str], **kwargs: Any) -> None:
        calls.append({"arch": arch, "args": args, **kwargs})
        for name in names:
            (dest / name).write_bytes(name.encode())

    lock = tmp_path / "requirements-gcp-function.lock"
    monkeypatch.setattr(wheels, "_pip_download", fake_download)
    monkeypatch.setattr(wheels, "gcp_lock_path", lambda: lock)
    assert wheels.update_gcp_lock(python=Path(sys.executable)) == lock
    assert calls[0]["deps"] is True and calls[0]["arch"] == "x86_64"
    parsed = wheels._parse_lock(lock)
    assert parsed["typing-extensions"] == (
        "4.16.0",
        {hashlib.sha256(names[-1].encode()).hexdigest()},
    )
    assert set(wheels.read_gcp_lock()) == {*wheels.gcp_pins(), "typing-extensions"}


def test_lambda_init_fails_when_the_manifest_digest_differs(
    lambda_package: tuple[Path, dict[str, Any]],
) -> None:
    """In the Lambda emulator: a manifest that is not the packaged one fails the init."""
    from slimbert.deploy.local import LocalLambda
    from slimbert.deploy.toolchain import find_python312, host_arch, rie_binary

    zip_path, _ = lambda_package
    try:
        python = find_python312()
        rie_binary(host_arch())
    except SlimbertError as exc:
        pytest.skip(f"the Lambda emulator or Python 3.12 is unavailable: {exc}")
    wrong = {"SLIMBERT_MANIFEST_SHA256": "0" * 64}
    with LocalLambda(zip_path, env=wrong, python=python) as function:
        answer, _ = function.invoke({"texts": ["good great"]})
        log = function.log_tail(40)
    assert "predictions" not in answer
    assert answer.get("errorType") == "ModelLoadError", answer
    assert "does not match the sha256 recorded when it was packaged" in answer["errorMessage"]
    assert "Init failed" in log


# -- never replacing what slimbert did not write ----------------------------------------------


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256(p) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("target", "name", "message"),
    [
        ("gcp-function", "slimbert-gcp-function/thesis.txt", "cannot tell that it wrote"),
        ("gcp-function", "slimbert-gcp-function.sizes.json", "not a package report"),
        ("gcp-function", "slimbert-gcp-function.sizes.md", "no slimbert-gcp-function.sizes"),
        ("aws-lambda", "slimbert-aws-lambda-x86_64.zip", "no slimbert-aws-lambda-x86_64.sizes"),
        ("aws-lambda", "slimbert-aws-lambda-x86_64.template.yaml", "cannot tell that it wrote"),
        ("aws-lambda", "slimbert-aws-lambda-x86_64.cdx.json", "cannot tell that it wrote"),
        ("aws-lambda", "slimbert-aws-lambda-x86_64.sizes.json", "not a package report"),
    ],
)
def test_package_never_replaces_a_users_file_or_folder(
    target: str, name: str, message: str, tiny_bundle: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from slimbert.cli import app

    out = tmp_path / "out"
    mine = out / name
    mine.parent.mkdir(parents=True)
    mine.write_text("three years of work\n", encoding="utf-8")
    (out / "notes.txt").write_text("other files in --out are left alone\n", encoding="utf-8")
    before = _tree(out)
    args = ["package", "--bundle", str(tiny_bundle), "--out", str(out), "--target", target]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "slimbert: error:" in text and message in text and "hint:" in text, text
    assert _tree(out) == before
    assert sorted(p.name for p in out.iterdir()) == sorted({name.split("/")[0], "notes.txt"})
    with pytest.raises(SlimbertError, match="refusing to replace it"):  # the Python API too
        build_package(PackageOptions(bundle=tiny_bundle, out=out, target=target))  # type: ignore[arg-type]
    assert _tree(out) == before


def test_gcp_folder_is_swapped_only_while_it_is_ours(tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    options = PackageOptions(bundle=tiny_bundle, out=out, target="gcp-function")
    build_package(options)
    folder = out / options.stem
    build_package(options)  # its own folder: replaced, nothing left beside
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [options.stem, f"{options.stem}.sizes.json", f"{options.stem}.sizes.md"]
    )
    shutil.rmtree(folder)
    folder.mkdir()
    (folder / "main.py").write_text("print('my own function')\n", encoding="utf-8")
    with pytest.raises(SlimbertError, match="not a gcp-function folder slimbert wrote"):
        build_package(options)
    assert (folder / "main.py").read_text(encoding="utf-8") == "print('my own function')\n"
    shutil.rmtree(folder)
    folder.write_text("a file", encoding="utf-8")
    with pytest.raises(SlimbertError, match="not a gcp-function folder slimbert wrote"):
        build_package(options)
    folder.unlink()
    (out / "file").write_text("x", encoding="utf-8")
    with pytest.raises(SlimbertError, match="is a file"):
        build_package(options.replace(out=out / "file"))


def test_a_foreign_zip_beside_a_slimbert_report_is_refused(
    lambda_package: tuple[Path, dict[str, Any]], tiny_bundle: Path, tmp_path: Path
) -> None:
    """The report vouches for the files beside it; the zip must hold the runtime as well."""
    zip_path, _ = lambda_package
    out = tmp_path / "out"
    shutil.copytree(zip_path.parent, out)
    mine = out / zip_path.name
    with zipfile.ZipFile(mine, "w") as zf:
        zf.writestr("photos/holiday.jpg", b"\xff\xd8")
    before = _tree(out)
    with pytest.raises(SlimbertError, match="not a Lambda zip slimbert wrote"):
        build_package(PackageOptions(bundle=tiny_bundle, out=out))
    assert _tree(out) == before
    pkg.claim_package_outputs(PackageOptions(bundle=tiny_bundle, out=zip_path.parent))  # ours


def test_a_missing_bundle_is_said_to_be_missing(tmp_path: Path) -> None:
    options = PackageOptions(bundle=tmp_path / "nowhere", out=tmp_path / "out")
    with pytest.raises(SlimbertError, match=r"bundle .*nowhere does not exist") as info:
        build_package(options)
    assert info.value.hint and "slimbert export" in info.value.hint
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(SlimbertError, match="is a file, not a bundle folder"):
        build_package(options.replace(bundle=tmp_path / "file"))
