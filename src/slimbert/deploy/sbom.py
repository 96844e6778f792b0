"""The CycloneDX SBOM written beside a Lambda zip (``<stem>.cdx.json``), for scanners.

Every vendored wheel is a component named by its package URL and hashed by the sha256 its lock
pins; our runtime source and the model bundle are components of their own. The zip itself keeps
each wheel's ``.dist-info`` metadata and licences (see ``slimbert.deploy.contents``), so a
scanner over the unzipped function finds the same distributions.
"""

from __future__ import annotations

import email.message
import uuid
from pathlib import Path
from typing import Any, Protocol

import slimbert
from slimbert.deploy.contents import Entry, entries_sha256
from slimbert.deploy.wheels import wheel_metadata
from slimbert.io import sha256_file


class Described(Protocol):
    """What the SBOM says of the function: its file stem, architecture and Python
    (a :class:`slimbert.deploy.package.PackageOptions`)."""

    @property
    def stem(self) -> str: ...

    @property
    def arch(self) -> str: ...

    @property
    def python(self) -> str: ...


def _sbom_licences(metadata: email.message.Message) -> list[dict[str, Any]]:
    """The licences a wheel's core metadata declares, as CycloneDX writes them."""
    expression = metadata.get("License-Expression")
    if expression:
        return [{"expression": str(expression)}]
    text = str(metadata.get("License") or "").strip()
    if text and len(text) <= 100 and "\n" not in text:  # a name, not a whole licence text
        return [{"license": {"name": text}}]
    prefix = "License :: OSI Approved :: "
    names = [c[len(prefix) :] for c in metadata.get_all("Classifier") or [] if c.startswith(prefix)]
    return [{"license": {"name": n}} for n in names]


def sbom(
    options: Described, wheels: list[Path], own: list[Entry], zip_sha256: str
) -> dict[str, Any]:
    """A CycloneDX 1.5 SBOM of a Lambda zip: every vendored wheel, our code and the model.

    Each wheel is a ``library`` component named by its package URL (with the wheel's file
    name) and hashed by the wheel's sha256, the one its lock file pins, so a scanner can match
    it to the public release. Deterministic: the serial number derives from the zip's sha256.
    """
    app_ref = f"{options.stem}.zip"
    components: list[dict[str, Any]] = []
    for wheel in sorted(wheels, key=lambda w: w.name):
        metadata = wheel_metadata(wheel)
        name, version = str(metadata["Name"]), str(metadata["Version"])
        purl = f"pkg:pypi/{name.lower().replace('_', '-')}@{version}?file_name={wheel.name}"
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": purl,
            "name": name,
            "version": version,
            "purl": purl,
            "hashes": [{"alg": "SHA-256", "content": sha256_file(wheel)}],
        }
        if metadata.get("Summary"):
            component["description"] = str(metadata["Summary"])
        licences = _sbom_licences(metadata)
        if licences:
            component["licenses"] = licences
        components.append(component)
    code = sorted((e for e in own if e.component == "code"), key=lambda e: e.arcname)
    components.append(
        {
            "type": "library",
            "bom-ref": "slimbert",
            "name": "slimbert",
            "version": slimbert.__version__,
            "description": "slimbert.runtime, the serving code (its source files)",
            "hashes": [{"alg": "SHA-256", "content": entries_sha256(code)}],
        }
    )
    model = sorted((e for e in own if e.component == "model"), key=lambda e: e.arcname)
    if model:
        components.append(
            {
                "type": "machine-learning-model",
                "bom-ref": "bundle",
                "name": "bundle",
                "description": "the exported model bundle; manifest.json holds each file's sha256",
                "hashes": [{"alg": "SHA-256", "content": entries_sha256(model)}],
                "properties": [{"name": "slimbert:files", "value": str(len(model))}],
            }
        )
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'sha256:' + zip_sha256)}",
        "version": 1,
        "metadata": {
            "tools": {
                "components": [
                    {"type": "application", "name": "slimbert", "version": slimbert.__version__}
                ]
            },
            "component": {
                "type": "application",
                "bom-ref": app_ref,
                "name": options.stem,
                "version": slimbert.__version__,
                "hashes": [{"alg": "SHA-256", "content": zip_sha256}],
                "properties": [
                    {"name": "aws:lambda:architecture", "value": options.arch},
                    {"name": "aws:lambda:runtime", "value": f"python{options.python}"},
                ],
            },
        },
        "components": components,
        "dependencies": [
            {"ref": app_ref, "dependsOn": [c["bom-ref"] for c in components]},
            *({"ref": c["bom-ref"], "dependsOn": []} for c in components),
        ],
    }


__all__ = ["Described", "sbom"]
