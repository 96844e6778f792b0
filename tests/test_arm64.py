"""arm64 for real: the arm64 Lambda zip served by the arm64 Runtime Interface Emulator and
awslambdaric, answering as the x86_64 build does. On an arm64 machine everything runs natively;
on x86_64 every arm64 binary runs under qemu-user (no binfmt_misc needed), which needs
``apt-get install qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross
libgcc-s1-arm64-cross`` and an arm64 Python:

- ``SLIMBERT_PYTHON312_ARM64``: an arm64 CPython 3.12, for the zip exactly as shipped. None can
  be had from the registries this project reaches (Debian ships 3.11 and 3.13+, PyPI and npm no
  interpreter), so there that test skips and says so.
- ``SLIMBERT_PYTHON_ARM64``: any other arm64 CPython 3, with ``SLIMBERT_SYSROOT_ARM64`` the
  root it was unpacked into (e.g. Debian bookworm's python3.11 and its libraries, unpacked with
  ``dpkg-deb -x``; docs/commands.md shows how). The zip's cp312 wheels are swapped for that
  version's: this proves the chain (emulator, runtime client, handler, the aarch64 onnxruntime,
  tokenizers and numpy on the model) but not the cp312 binaries themselves.

Speed under emulation means nothing: no timing is asserted or reported.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from slimbert.deploy import toolchain
from slimbert.deploy.archive import write_zip
from slimbert.deploy.contents import Entry, wheel_entries
from slimbert.deploy.invoke import InvokeOptions, invoke_package
from slimbert.deploy.local import LocalLambda, function_url_event
from slimbert.deploy.package import PackageOptions, build_package
from slimbert.deploy.toolchain import emulator, find_python312, host_arch, rie_binary
from slimbert.deploy.wheels import RUNTIME_PINS, WheelDownloadError, ensure_wheels
from slimbert.errors import SlimbertError
from slimbert.runtime import load_bundle
from test_package import tiny_bundle, wheel_cache  # noqa: F401 - shared session fixtures

TEXTS = ["good great", "bad awful", "table chair", "great good good", "awful"]
TOLERANCE = 1e-4  # the tiny bundle is fp32: the two builds of onnxruntime agree far closer
FOREIGN = host_arch() != "arm64"
needs_x86_host = pytest.mark.skipif(host_arch() != "x86_64", reason="checks emulating arm64")


# -- the emulator's command line (fast) -------------------------------------------------------


def test_no_emulator_for_this_machines_architecture() -> None:
    assert emulator(host_arch()) == []


@needs_x86_host
def test_emulator_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toolchain.shutil, "which", lambda name: None)
    with pytest.raises(SlimbertError, match="qemu-user") as caught:
        emulator("arm64")
    assert "apt-get install qemu-user-static" in str(caught.value.hint)
    monkeypatch.setattr(toolchain.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setenv("SLIMBERT_SYSROOT_ARM64", "/nonexistent")
    with pytest.raises(SlimbertError, match="no arm64 C library") as caught:
        emulator("arm64")
    assert "libc6-arm64-cross" in str(caught.value.hint)


@needs_x86_host
def test_emulator_runs_a_graviton2_core_with_its_cpuinfo(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sysroot = tmp_path / "sysroot"
    (sysroot / "lib").mkdir(parents=True)
    (sysroot / "lib" / "ld-linux-aarch64.so.1").write_bytes(b"")
    monkeypatch.setenv("SLIMBERT_SYSROOT_ARM64", str(sysroot))
    monkeypatch.setenv("SLIMBERT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(toolchain.shutil, "which", lambda name: f"/usr/bin/{name}")
    prefix = emulator("arm64")
    assert prefix[:3] == ["/usr/bin/qemu-aarch64-static", "-cpu", "neoverse-n1"]
    root = Path(prefix[4])
    assert prefix[3] == "-L" and (root / "lib" / "ld-linux-aarch64.so.1").exists()
    cpuinfo = (root / "proc" / "cpuinfo").read_text()
    assert cpuinfo.count("processor\t:") == (os.cpu_count() or 1)
    assert "CPU part\t: 0xd0c" in cpuinfo and "asimdrdm lrcpc" in cpuinfo
    assert emulator("arm64") == prefix  # cached, and the same


@needs_x86_host
def test_without_an_arm64_python312_the_reason_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLIMBERT_PYTHON312_ARM64", raising=False)
    with pytest.raises(SlimbertError, match=r"no arm64 Python 3\.12") as caught:
        find_python312("arm64")
    assert "SLIMBERT_PYTHON312_ARM64" in str(caught.value.hint)


# -- the arm64 zip answering (slow: emulated imports take a while) ---------------------------


@pytest.fixture(scope="module")
def chain() -> None:
    """Skip unless qemu (where needed) and the arm64 emulator binary are at hand."""
    try:
        emulator("arm64")
        rie_binary("arm64")
    except SlimbertError as exc:
        pytest.skip(f"the arm64 chain is unavailable here: {exc}")


@pytest.fixture(scope="module")
def arm64_zip(
    tiny_bundle: Path,  # noqa: F811
    wheel_cache: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    try:
        ensure_wheels("arm64", wheel_cache)
    except WheelDownloadError as exc:
        pytest.skip(f"arm64 wheels unavailable: {exc}")
    out = tmp_path_factory.mktemp("arm64")
    build_package(
        PackageOptions(bundle=tiny_bundle, out=out, arch="arm64", wheel_cache=wheel_cache)
    )
    return out / "slimbert-aws-lambda-arm64.zip"


def _answers_like_x86_64(zip_path: Path, bundle_dir: Path, tmp_path: Path) -> None:
    """Same labels and probabilities as the bundle in this (x86_64) process; 400 on bad input;
    and ``slimbert invoke --arch arm64`` over the same zip agrees."""
    bundle = load_bundle(bundle_dir)
    with LocalLambda(zip_path, arch="arm64", workdir=tmp_path / "fn") as fn:
        assert fn.emulated == FOREIGN
        for text in TEXTS:
            answer, _ = fn.invoke(function_url_event({"text": text}))
            assert answer["statusCode"] == 200, fn.log_tail()
            (got,) = json.loads(answer["body"])["predictions"]
            (want,) = bundle.predict([text])
            assert got["label"] == want["label"], text
            for label, p in want["probabilities"].items():
                assert abs(got["probabilities"][label] - p) <= TOLERANCE, (text, label)
        bad, _ = fn.invoke(function_url_event("{not json"))
        assert bad["statusCode"] == 400 and "error" in json.loads(bad["body"])
        again, _ = fn.invoke(function_url_event({"text": TEXTS[0]}))
        assert again["statusCode"] == 200
    data = tmp_path / "texts.csv"
    with open(data, "w", newline="") as fh:
        csv.writer(fh).writerows([["text"], *([t] for t in TEXTS)])
    options = InvokeOptions(
        package=zip_path,
        bundle=bundle_dir,
        data=str(data),
        requests=len(TEXTS),
        out=tmp_path / "invoke.json",
        arch="arm64",
    )
    result = invoke_package(options)
    assert result["agreement_with_bundle"] == 1.0
    assert result["max_probability_diff_with_bundle"] <= TOLERANCE
    assert result["bad_request_status"] == 400 and result["serves_after_bad_request"]
    if FOREIGN:  # the emulator's speed is not the function's: not reported
        assert result["emulated"] is True and result["client_ms"] is None


@pytest.fixture(scope="module")
def python312_arm64(chain: None) -> Path:
    try:
        return find_python312("arm64")
    except SlimbertError as exc:
        pytest.skip(f"{exc.message}: {exc.hint}")


@pytest.mark.slow
def test_arm64_zip_answers_like_x86_64(
    python312_arm64: Path,  # first: skip before building anything
    arm64_zip: Path,
    tiny_bundle: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    _answers_like_x86_64(arm64_zip, tiny_bundle, tmp_path)


def _with_wheels_for(zip_path: Path, minor: str, dest: Path) -> Path:
    """``zip_path`` with its version-specific (non-abi3) wheels swapped for CPython 3.``minor``'s
    aarch64 builds of the same pins, and without the cpython-312 bytecode."""
    wheels = dest / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(zip_path) as zf:
        records = [n for n in zf.namelist() if n.endswith(".dist-info/WHEEL")]
        tags = {n.split("-")[0]: zf.read(n).decode() for n in records}
    swapped = sorted(n for n, text in tags.items() if "abi3" not in text)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    command += ["--only-binary=:all:", "--implementation", "cp", "--python-version", f"3.{minor}"]
    for tag in ("manylinux_2_28", "manylinux_2_17", "manylinux2014"):
        command += ["--platform", f"{tag}_aarch64"]
    command += ["--dest", str(wheels), *(f"{n}=={RUNTIME_PINS[n]}" for n in swapped)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cp3{minor} aarch64 wheels unavailable: {done.stderr.strip()[-300:]}")
    pattern = re.compile(rf"^({'|'.join(swapped)})([-.]|/)")
    kept = []
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            name = info.filename
            if info.is_dir() or "__pycache__/" in name or pattern.match(name):
                continue
            kept.append(Entry(name, "code", "kept", data=zf.read(name)))
    libraries, _ = wheel_entries(sorted(wheels.glob("*.whl")))
    out = dest / f"slimbert-aws-lambda-arm64-cp3{minor}.zip"
    write_zip(out, sorted(kept + libraries, key=lambda e: e.arcname))
    template = zip_path.with_name(zip_path.stem + ".template.yaml")
    shutil.copyfile(template, out.with_name(out.stem + ".template.yaml"))
    return out


@pytest.fixture(scope="module")
def other_python_arm64(chain: None) -> tuple[Path, int]:
    env = os.environ.get("SLIMBERT_PYTHON_ARM64")
    if not env:
        pytest.skip("SLIMBERT_PYTHON_ARM64 is not set (an arm64 CPython 3 of any version)")
    version = toolchain._python_version(Path(env), emulator("arm64"))
    if version is None or version[0] != 3:
        pytest.skip(f"SLIMBERT_PYTHON_ARM64={env} does not run here")
    return Path(env), version[1]


@pytest.mark.slow
def test_arm64_chain_under_another_python(
    other_python_arm64: tuple[Path, int],  # first: skip before building anything
    arm64_zip: Path,
    tiny_bundle: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    python, minor = other_python_arm64
    variant = _with_wheels_for(arm64_zip, str(minor), tmp_path)
    # Everything else as for 3.12: the venv with awslambdaric, the emulator, the handler.
    monkeypatch.setattr(toolchain, "find_python312", lambda arch=None: python)
    _answers_like_x86_64(variant, tiny_bundle, tmp_path)
