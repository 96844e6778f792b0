"""A package's bytes and what they weigh: the reproducible zip and the size report's rows.

:func:`write_zip` writes entries into a zip that is the same bytes on every build (sorted
names, one fixed date, Unix permissions). :func:`components` adds up the sizes per component
(each runtime library, the model, our code); :func:`check_limits` refuses a package over the
platform's limits naming its biggest component, and :func:`size_table` prints the report as
Markdown.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

from slimbert.deploy.contents import Entry
from slimbert.errors import SlimbertError

MIB = 1 << 20
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold: builds compare equal
_SO = re.compile(r"\.so(\.[0-9.]+)?$")


def _zip_info(arcname: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE)
    info.create_system = 3  # Unix, so that unzip and Lambda honour the permission bits
    if arcname.endswith("/"):
        info.external_attr = (0o40755 << 16) | 0x10
    else:
        mode = 0o755 if _SO.search(arcname) else 0o644
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
    return info


def write_zip(path: Path, entries: list[Entry]) -> dict[str, tuple[int, int]]:
    """Write ``entries`` (sorted) with their parent folders; return {arcname: (size, zipped)}."""
    folders = sorted({p for e in entries for p in _parents(e.arcname)})
    names = sorted([*folders, *(e.arcname for e in entries)])
    by_name = {e.arcname: e for e in entries}
    open_wheels: dict[Path, zipfile.ZipFile] = {}
    try:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for name in names:
                entry = by_name.get(name)
                if entry is None:
                    zf.writestr(_zip_info(name), b"")
                    continue
                if entry.wheel is not None and entry.member is not None:
                    whl = open_wheels.get(entry.wheel)
                    if whl is None:
                        whl = open_wheels[entry.wheel] = zipfile.ZipFile(entry.wheel)
                    data = whl.read(entry.member)
                else:
                    data = entry.read()
                zf.writestr(_zip_info(name), data, compresslevel=9)
            return {i.filename: (i.file_size, i.compress_size) for i in zf.infolist()}
    finally:
        for whl in open_wheels.values():
            whl.close()


def _parents(arcname: str) -> list[str]:
    """The folder entries above ``arcname``: ``a/`` and ``a/b/`` for ``a/b/c.py``."""
    parts = arcname.split("/")[:-1]
    return ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]


def components(sizes: dict[str, tuple[int, int]], entries: list[Entry]) -> list[dict[str, Any]]:
    """One row per component (files, unzipped and zipped bytes) from ``{arcname: sizes}``."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in entries:
        row = rows.setdefault(
            (entry.component, entry.name),
            {
                "component": entry.component,
                "name": entry.name,
                "files": 0,
                "unzipped_bytes": 0,
                "zipped_bytes": 0,
            },
        )
        size, zipped = sizes[entry.arcname]
        row["files"] += 1
        row["unzipped_bytes"] += size
        row["zipped_bytes"] += zipped
    order = {"library": 0, "model": 1, "code": 2}
    return sorted(rows.values(), key=lambda r: (order[r["component"]], r["name"]))


def biggest(rows: list[dict[str, Any]], zipped: int) -> str:
    """The largest of the :func:`components` rows (zipped or unzipped), for an error message."""
    key = "zipped_bytes" if zipped else "unzipped_bytes"
    top = max(rows, key=lambda r: r[key])
    return f"{top['name']} ({top['component']}, {top[key] / MIB:.1f} MiB)"


def check_limits(report: dict[str, Any]) -> None:
    """Refuse a size report over either of its limits, naming the biggest component."""
    limits = report["limits"]
    if not limits["zip_ok"]:
        raise SlimbertError(
            f"{report['package']} is {report['package_bytes'] / MIB:.1f} MiB zipped, over the "
            f"{limits['max_zip_bytes'] / MIB:g} MiB limit; biggest component: "
            f"{biggest(report['components'], 1)}",
            hint="deploy through S3 (no zipped limit) and raise max_zip_mb, or ship int8",
        )
    if not limits["unzipped_ok"]:
        raise SlimbertError(
            f"{report['package']} is {report['total']['unzipped_bytes'] / MIB:.1f} MiB "
            f"unzipped, over the {limits['max_unzipped_bytes'] / MIB:g} MiB limit; "
            f"biggest component: {biggest(report['components'], 0)}",
            hint="ship a smaller or int8 bundle, or raise max_unzipped_mb",
        )


def size_table(report: dict[str, Any]) -> str:
    """The size report as a Markdown table (MiB)."""

    def mib(n: int) -> str:
        return f"{n / MIB:.2f}"

    lines = [
        f"# {Path(report['package']).name}: {report['target']} {report['arch']} "
        f"Python {report['python']}",
        "",
        "| component | kind | files | unzipped MiB | zipped MiB |",
        "|---|---|---:|---:|---:|",
    ]
    for row in report["components"]:
        lines.append(
            f"| {row['name']} | {row['component']} | {row['files']} | "
            f"{mib(row['unzipped_bytes'])} | {mib(row['zipped_bytes'])} |"
        )
    total, limits = report["total"], report["limits"]
    lines += [
        f"| zip overhead | | | | {mib(report['overhead_bytes'])} |",
        f"| **total** | | {total['files']} | {mib(total['unzipped_bytes'])} | "
        f"{mib(report['package_bytes'])} |",
        f"| limit | | | {mib(limits['max_unzipped_bytes'])} | {mib(limits['max_zip_bytes'])} |",
        "",
    ]
    compiled = report.get("bytecode")
    if compiled:
        lines += [
            f"Bytecode: {compiled['files']} `.pyc` files compiled by CPython {compiled['python']} "
            f"({compiled['invalidation']}), counted in their libraries and the code.",
            "",
        ]
    return "\n".join(lines)


__all__ = ["MIB", "biggest", "check_limits", "components", "size_table", "write_zip"]
