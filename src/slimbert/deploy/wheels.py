"""The runtime wheels a Lambda zip vendors: pinned, locked by sha256, fetched once.

``RUNTIME_PINS`` is what the function imports. Each architecture's lock file in
``slimbert/templates`` pins those wheels by sha256; :func:`ensure_wheels` fills the wheel cache
from PyPI with ``pip download`` the first time and checks every cached wheel against the lock
on every build, so a build is offline and reproducible after the first one. The gcp-function
folder ships its own lock as ``requirements.txt``: the whole closure of :func:`gcp_pins`, each
package pinned with its sha256, which Google's build installs with ``--require-hashes``.
Maintainers regenerate the locks with :func:`update_lock` and :func:`update_gcp_lock`.
"""

from __future__ import annotations

import email
import email.message
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from slimbert.deploy.platforms import (
    LINUX_MACHINE,
    MANYLINUX_TAGS,
    SUPPORTED_PYTHONS,
    templates_dir,
)
from slimbert.deploy.toolchain import default_wheel_cache, find_python312
from slimbert.errors import SlimbertError
from slimbert.io import atomic_open, sha256_file

log = logging.getLogger(__name__)

# The serving runtime, pinned. A cp312 manylinux wheel exists for x86_64 and aarch64 for each;
# their hashes live in templates/requirements-<arch>.lock (regenerate with ``update_lock``).
# Nothing else is shipped: importing onnxruntime and running an InferenceSession loads none of
# its declared dependencies (flatbuffers, packaging, protobuf are only used by its tools), and
# tokenizers never imports huggingface_hub unless ``Tokenizer.from_pretrained`` is called.
RUNTIME_PINS: dict[str, str] = {"numpy": "2.4.6", "onnxruntime": "1.32.0", "tokenizers": "0.23.3"}
# Cloud Run functions installs requirements.txt itself; the framework is pinned too so a
# redeploy months later serves with the same code.
FUNCTIONS_FRAMEWORK_PIN = "3.10.2"


class WheelDownloadError(SlimbertError):
    """pip could not fetch a pinned wheel (no network, no registry, or a hash mismatch)."""


def wheel_dist(wheel: Path) -> str:
    """The distribution a wheel file holds, as its file name spells it (``onnxruntime``)."""
    return wheel.name.split("-", 1)[0].lower()


def wheel_metadata(wheel: Path) -> email.message.Message:
    """The ``.dist-info/METADATA`` of ``wheel``, parsed (core metadata is an email header)."""
    with zipfile.ZipFile(wheel) as whl:
        member = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(whl.read(member))


# -- the Lambda zip's locks and the wheel cache -----------------------------------------------


def lock_path(arch: str) -> Path:
    """The lock file shipped with slimbert for ``arch``."""
    return templates_dir() / f"requirements-{arch}.lock"


def _parse_lock(path: Path) -> dict[str, tuple[str, set[str]]]:
    """``{name: (version, {sha256, ...})}`` from a pip ``--require-hashes`` requirements file.

    Every line must be an exact ``name==version`` pin with at least one sha256, as pip's
    hash-checking mode demands of every requirement.
    """
    if not path.is_file():
        raise SlimbertError(f"no lock file {path}", hint="regenerate it with update_lock")
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    lock: dict[str, tuple[str, set[str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split()
        name, _, version = requirement.partition("==")
        hashes = {o.split("sha256:", 1)[1] for o in options if "sha256:" in o}
        if not (version and hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes)):
            raise SlimbertError(f"{path}: {requirement!r} is not an ==pin with sha256 hashes")
        lock[name.lower().replace("_", "-")] = (version, hashes)
    return lock


def read_lock(arch: str) -> dict[str, tuple[str, set[str]]]:
    """``{name: (version, {sha256, ...})}``: the locked runtime wheels of the Lambda zip."""
    path = lock_path(arch)
    lock = _parse_lock(path)
    if {n: v for n, (v, _) in lock.items()} != RUNTIME_PINS:
        raise SlimbertError(
            f"{path} does not match RUNTIME_PINS {RUNTIME_PINS}",
            hint="regenerate it with slimbert.deploy.wheels.update_lock",
        )
    return lock


def _pip_download(
    arch: str, dest: Path, args: list[str], *, deps: bool = False, python: Path | None = None
) -> None:
    platform = LINUX_MACHINE[arch]
    command = [str(python or sys.executable), "-m", "pip", "download"]
    command += ["--disable-pip-version-check", "--only-binary=:all:", "--implementation", "cp"]
    command += [] if deps else ["--no-deps"]
    command += ["--python-version", SUPPORTED_PYTHONS[0], "--dest", str(dest)]
    for tag in MANYLINUX_TAGS:
        command += ["--platform", f"{tag}_{platform}"]
    log.info("downloading runtime wheels for %s: %s", arch, " ".join(args))
    result = subprocess.run(command + args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise WheelDownloadError(
            f"pip could not download the {arch} runtime wheels: {' | '.join(tail)}",
            hint="check network access to PyPI, or point SLIMBERT_WHEEL_CACHE at a filled cache",
        )


def ensure_wheels(arch: str, wheel_cache: Path | None = None) -> list[Path]:
    """The pinned wheels for ``arch``, downloaded once and sha256-checked on every call."""
    lock = read_lock(arch)
    cache = Path(wheel_cache or default_wheel_cache()) / f"cp312-manylinux-{arch}"
    cache.mkdir(parents=True, exist_ok=True)

    def cached() -> tuple[list[Path], list[str]]:
        found, missing = [], []
        for name, (version, hashes) in sorted(lock.items()):
            candidates = sorted(cache.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
            good = [w for w in candidates if sha256_file(w) in hashes]
            for bad in set(candidates) - set(good):
                log.warning("%s does not match its locked sha256; downloading it again", bad)
                bad.unlink()
            if good:
                found.append(good[0])
            else:
                missing.append(name)
        return found, missing

    wheels, missing = cached()
    if missing:
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            # pip checks the hashes itself in --require-hashes mode; ours is the second check.
            requirements = Path(tmp) / "requirements.txt"
            requirements.write_text(
                "".join(
                    f"{n}=={lock[n][0]} "
                    + " ".join(f"--hash=sha256:{h}" for h in lock[n][1])
                    + "\n"
                    for n in missing
                )
            )
            _pip_download(arch, Path(tmp), ["--require-hashes", "-r", str(requirements)])
            for wheel in Path(tmp).glob("*.whl"):
                os.replace(wheel, cache / wheel.name)
        wheels, missing = cached()
        if missing:
            raise WheelDownloadError(f"no wheel matching the lock for {', '.join(missing)}")
    return wheels


def update_lock(arch: str, wheel_cache: Path | None = None) -> Path:
    """Maintainers: download ``RUNTIME_PINS`` for ``arch`` and rewrite its lock file."""
    cache = Path(wheel_cache or default_wheel_cache()) / f"cp312-manylinux-{arch}"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        _pip_download(arch, Path(tmp), [f"{n}=={v}" for n, v in sorted(RUNTIME_PINS.items())])
        lines = [
            f"# slimbert serving runtime: CPython {SUPPORTED_PYTHONS[0]}, manylinux {arch}.",
            "# Written by slimbert.deploy.wheels.update_lock; checked by `slimbert package`.",
            *_lock_lines(sorted(Path(tmp).glob("*.whl"))),
        ]
        for wheel in Path(tmp).glob("*.whl"):
            os.replace(wheel, cache / wheel.name)
    path = lock_path(arch)
    with atomic_open(path) as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def _lock_lines(wheels: list[Path]) -> list[str]:
    """``name==version --hash=sha256:...`` for each wheel, in pip's requirements syntax."""
    lines = []
    for wheel in sorted(wheels, key=lambda w: wheel_dist(w)):
        name, version = wheel_dist(wheel).replace("_", "-"), wheel.name.split("-")[1]
        lines += [f"{name}=={version} \\", f"    --hash=sha256:{sha256_file(wheel)}"]
        lines.append(f"    # {wheel.name}")
    return lines


# -- the gcp-function lock --------------------------------------------------------------------


def gcp_lock_path() -> Path:
    """The lock of the gcp-function folder: its whole closure, pinned and hashed."""
    return templates_dir() / "requirements-gcp-function.lock"


def gcp_pins() -> dict[str, str]:
    """What the gcp-function folder asks for: the runtime and the functions framework."""
    return {**RUNTIME_PINS, "functions-framework": FUNCTIONS_FRAMEWORK_PIN}


def read_gcp_lock() -> dict[str, tuple[str, set[str]]]:
    """The gcp-function lock, checked to pin :func:`gcp_pins` at their versions."""
    path = gcp_lock_path()
    lock = _parse_lock(path)
    wrong = {n: v for n, v in gcp_pins().items() if lock.get(n, ("", set()))[0] != v}
    if wrong:
        raise SlimbertError(
            f"{path} does not pin {wrong}",
            hint="regenerate it with slimbert.deploy.wheels.update_gcp_lock",
        )
    return lock


def update_gcp_lock(python: Path | None = None) -> Path:
    """Maintainers: resolve :func:`gcp_pins` with every dependency and rewrite the GCP lock.

    pip resolves for CPython 3.12 on manylinux x86_64 (what Cloud Run functions builds on),
    preferably run by a Python 3.12 so that environment markers are judged as there; each
    package is pinned to the one wheel pip chose, by its sha256. The folder's requirements.txt
    is this lock, so the deploy installs exactly it with ``pip install --require-hashes``.
    """
    if python is None:
        try:
            python = find_python312()
        except SlimbertError:
            log.warning("no Python 3.12 here: markers are judged for %s", sys.version_info[:2])
    pins = [f"{n}=={v}" for n, v in sorted(gcp_pins().items())]
    with tempfile.TemporaryDirectory(prefix="slimbert-gcp-lock-") as tmp:
        _pip_download("x86_64", Path(tmp), pins, deps=True, python=python)
        lines = [
            f"# slimbert gcp-function: CPython {SUPPORTED_PYTHONS[0]}, manylinux x86_64; the "
            "whole closure of",
            f"# {' '.join(pins)}.",
            "# Written by slimbert.deploy.wheels.update_gcp_lock; shipped as requirements.txt,"
            " which",
            "# `pip install --require-hashes -r requirements.txt` installs exactly.",
            *_lock_lines(sorted(Path(tmp).glob("*.whl"))),
        ]
    path = gcp_lock_path()
    with atomic_open(path) as fh:
        fh.write("\n".join(lines) + "\n")
    return path


__all__ = [
    "FUNCTIONS_FRAMEWORK_PIN",
    "RUNTIME_PINS",
    "WheelDownloadError",
    "ensure_wheels",
    "gcp_lock_path",
    "gcp_pins",
    "lock_path",
    "read_gcp_lock",
    "read_lock",
    "update_gcp_lock",
    "update_lock",
    "wheel_dist",
    "wheel_metadata",
]
