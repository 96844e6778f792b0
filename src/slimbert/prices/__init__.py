"""Serverless and VM price tables: the packaged ``prices.yaml``, optionally merged with a user file.

Prices are data, not code: every figure carries the URL of its public pricing page and the date
it was checked, and a user file with the same schema overrides entries by key (``--prices``).
:func:`load_prices` validates the merged table, so a typo fails with the key that holds it
instead of producing a wrong bill.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import difflib
import functools
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from slimbert.errors import ConfigError

BUILTIN = "slimbert/prices/prices.yaml"
_PLATFORM_FIELDS = {
    "name", "source", "as_of", "region", "notes", "gb_second", "requests_per_million",
    "granularity_ms", "min_billed_ms", "memory_mb", "cpu", "init_billed", "free_tier",
}  # fmt: skip
_VM_FIELDS = {"name", "source", "as_of", "region", "notes", "monthly_usd", "hourly_usd"}
_TOP_FIELDS = {"reference_vm", "platforms", "vms"}
_AS_OF = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")
# Tables replaced whole by an override: merging two size lists would describe neither.
_REPLACED = {"memory_mb", "by_memory_mb"}


@dataclasses.dataclass(frozen=True)
class CpuPrice:
    """CPU billed apart from memory (Google): ``per_second`` dollars per ``unit``-second."""

    unit: str
    per_second: float
    by_memory_mb: tuple[tuple[int, float], ...]  # sorted by memory

    def units_for(self, memory_mb: int) -> float:
        # A size between two listed ones gets the CPU of the next larger listed size.
        for size, units in self.by_memory_mb:
            if memory_mb <= size:
                return units
        return self.by_memory_mb[-1][1]


@dataclasses.dataclass(frozen=True)
class FreeTier:
    gb_seconds: float = 0.0
    cpu_seconds: float = 0.0
    requests: float = 0.0


@dataclasses.dataclass(frozen=True)
class Platform:
    key: str
    name: str
    source: str
    as_of: str
    gb_second: float
    requests_per_million: float
    granularity_ms: float
    init_billed: bool
    memory_min_mb: int
    memory_max_mb: int
    memory_sizes_mb: tuple[int, ...] | None = None
    min_billed_ms: float = 0.0
    cpu: CpuPrice | None = None
    free_tier: FreeTier = FreeTier()
    region: str = ""
    notes: str = ""
    overridden_by: str | None = None

    def billed_memory_mb(self, memory_mb: int) -> int:
        """The memory size billed for a requested size; ConfigError where the platform has none."""
        if not self.memory_min_mb <= memory_mb <= self.memory_max_mb:
            raise ConfigError(
                f"{self.key}: {memory_mb} MB is outside its range "
                f"{self.memory_min_mb}-{self.memory_max_mb} MB"
            )
        if self.memory_sizes_mb is None:
            return memory_mb
        return next(size for size in self.memory_sizes_mb if size >= memory_mb)


@dataclasses.dataclass(frozen=True)
class VM:
    key: str
    name: str
    source: str
    as_of: str
    monthly_usd: float
    hourly_usd: float | None = None
    region: str = ""
    notes: str = ""
    overridden_by: str | None = None


@dataclasses.dataclass(frozen=True)
class PriceTable:
    platforms: Mapping[str, Platform]
    vms: Mapping[str, VM]
    reference_vm: str
    files: tuple[str, ...]

    def platform(self, key: str) -> Platform:
        return _pick(self.platforms, key, "platform")

    def vm(self, key: str | None = None) -> VM:
        return _pick(self.vms, key or self.reference_vm, "VM")


def _pick(table: Mapping[str, Any], key: str, kind: str) -> Any:
    if key in table:
        return table[key]
    close = difflib.get_close_matches(key, list(table), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(table)}"
    raise ConfigError(f"unknown {kind} {key!r} in the price table", hint=hint)


def load_prices(user_file: str | Path | None = None) -> PriceTable:
    """The packaged price table, with ``user_file``'s entries merged over it by key."""
    doc = copy.deepcopy(_builtin())
    origin = {
        f"{section}.{key}": BUILTIN for section in ("platforms", "vms") for key in doc[section]
    }
    files = [BUILTIN]
    if user_file is not None:
        path = Path(user_file)
        try:
            user_text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read price file {path}: {exc.strerror or exc}") from exc
        user = _parse(user_text, str(path), partial=True)
        for section in ("platforms", "vms"):
            for key, entry in user.get(section, {}).items():
                base = doc[section].get(key, {})
                merged = _merge(base, entry)
                if base and not {"source", "as_of"} <= set(entry):
                    # The figures changed but the packaged source/date still show: say so.
                    merged["overridden_by"] = str(path)
                doc[section][key] = merged
                origin[f"{section}.{key}"] = str(path)
        if "reference_vm" in user:
            doc["reference_vm"] = user["reference_vm"]
        files.append(str(path))
    platforms = {
        key: _platform(key, entry, origin[f"platforms.{key}"])
        for key, entry in doc["platforms"].items()
    }
    vms = {key: _vm(key, entry, origin[f"vms.{key}"]) for key, entry in doc["vms"].items()}
    reference = doc.get("reference_vm")
    if not isinstance(reference, str) or reference not in vms:
        raise ConfigError(
            f"{files[-1]}: reference_vm {reference!r} is not one of the vms",
            hint=f"known: {', '.join(vms)}",
        )
    return PriceTable(platforms, vms, reference, tuple(files))


@functools.cache
def _builtin() -> dict[str, Any]:
    text = (resources.files("slimbert") / "prices" / "prices.yaml").read_text("utf-8")
    return _parse(text, BUILTIN)


def _parse(text: str, where: str, partial: bool = False) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from exc
    if doc is None and partial:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: a price file is a mapping with 'platforms:' and 'vms:'")
    for key in doc:
        if key not in _TOP_FIELDS:
            raise ConfigError(f"{where}: unknown key {key!r}", hint=_hint(str(key), _TOP_FIELDS))
    for section in ("platforms", "vms"):
        entries = doc.setdefault(section, {}) if not partial else doc.get(section, {})
        if not isinstance(entries, dict) or not all(isinstance(e, dict) for e in entries.values()):
            raise ConfigError(f"{where}: {section} must map each key to a mapping of fields")
    return doc


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, dict) and key not in _REPLACED:
            value = _merge(old, value)
        merged[key] = value
    return merged


def _hint(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known))}"


class _Entry:
    """Typed reads from one entry, with errors that name the file and the full key."""

    def __init__(
        self, data: Mapping[Any, Any], where: str, prefix: str, known: set[str] | None
    ) -> None:
        self.data, self.where, self.prefix = data, where, prefix
        if known is None:  # free-form keys (memory sizes)
            return
        for key in data:
            if key not in known and key != "overridden_by":
                raise self.error(str(key), "is not a known field", _hint(str(key), known))

    def error(self, field: str, problem: str, hint: str | None = None) -> ConfigError:
        return ConfigError(f"{self.where}: {self.prefix}.{field} {problem}", hint=hint)

    def number(self, field: str, default: float | None = None, positive: bool = False) -> float:
        value = self.data.get(field, default)
        if value is None:
            raise self.error(field, "is missing")
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        if not ok or (positive and value <= 0):
            raise self.error(
                field, f"must be a number {'> 0' if positive else '>= 0'}, got {value!r}"
            )
        return float(value)

    def text(self, field: str, default: str | None = None) -> str:
        value = self.data.get(field, default)
        if value is None:
            raise self.error(field, "is missing")
        if isinstance(value, dt.date):
            value = value.isoformat()
        if not isinstance(value, str):
            raise self.error(field, f"must be text, got {value!r}")
        return value.strip()

    def url_and_date(self) -> tuple[str, str]:
        source, as_of = self.text("source"), self.text("as_of")
        if not source.startswith(("https://", "http://")):
            raise self.error("source", f"must be the URL of the pricing page, got {source!r}")
        if not _AS_OF.match(as_of):
            raise self.error(
                "as_of", f"must be a date YYYY-MM-DD or a month YYYY-MM, got {as_of!r}"
            )
        return source, as_of

    def mapping(self, field: str, known: set[str] | None) -> _Entry | None:
        value = self.data.get(field)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(field, f"must be a mapping, got {value!r}")
        return _Entry(value, self.where, f"{self.prefix}.{field}", known)


def _platform(key: str, data: Mapping[str, Any], where: str) -> Platform:
    e = _Entry(data, where, f"platforms.{key}", _PLATFORM_FIELDS)
    source, as_of = e.url_and_date()
    init_billed = data.get("init_billed")
    if not isinstance(init_billed, bool):
        raise e.error("init_billed", f"must be true or false, got {init_billed!r}")
    memory = e.mapping("memory_mb", {"min", "max", "sizes"})
    if memory is None:
        raise e.error("memory_mb", "is missing", hint="{min: 128, max: 10240} or {sizes: [...]}")
    sizes: tuple[int, ...] | None = None
    if "sizes" in memory.data:
        raw = memory.data["sizes"]
        if not isinstance(raw, list) or not raw or not all(_is_mb(v) for v in raw):
            raise memory.error("sizes", f"must be a list of memory sizes in MB, got {raw!r}")
        sizes = tuple(sorted(raw))
        low, high = sizes[0], sizes[-1]
    else:
        low, high = int(memory.number("min", positive=True)), int(memory.number("max"))
        if high < low:
            raise memory.error("max", f"must be at least min ({low}), got {high}")
    cpu = e.mapping("cpu", {"unit", "per_second", "by_memory_mb"})
    cpu_price = None
    if cpu is not None:
        table = cpu.mapping("by_memory_mb", None)
        if table is None or not table.data:
            raise cpu.error("by_memory_mb", "is missing", hint="{128: 0.2, 256: 0.4, ...}")
        for size in table.data:
            if not _is_mb(size):
                raise table.error(str(size), "is not a memory size in MB")
        pairs = tuple(sorted((int(size), _cpu(table, size)) for size in table.data))
        cpu_price = CpuPrice(cpu.text("unit"), cpu.number("per_second"), pairs)
    free = e.mapping("free_tier", {"gb_seconds", "cpu_seconds", "requests"})
    free_tier = FreeTier()
    if free is not None:
        free_tier = FreeTier(
            free.number("gb_seconds", 0.0),
            free.number("cpu_seconds", 0.0),
            free.number("requests", 0.0),
        )
    return Platform(
        key=key,
        name=e.text("name"),
        source=source,
        as_of=as_of,
        gb_second=e.number("gb_second"),
        requests_per_million=e.number("requests_per_million"),
        granularity_ms=e.number("granularity_ms", positive=True),
        init_billed=init_billed,
        memory_min_mb=low,
        memory_max_mb=high,
        memory_sizes_mb=sizes,
        min_billed_ms=e.number("min_billed_ms", 0.0),
        cpu=cpu_price,
        free_tier=free_tier,
        region=e.text("region", ""),
        notes=e.text("notes", ""),
        overridden_by=data.get("overridden_by"),
    )


def _cpu(table: _Entry, size: Any) -> float:
    value = table.data[size]
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise table.error(str(size), f"must be a positive number of CPU units, got {value!r}")
    return float(value)


def _is_mb(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _vm(key: str, data: Mapping[str, Any], where: str) -> VM:
    e = _Entry(data, where, f"vms.{key}", _VM_FIELDS)
    source, as_of = e.url_and_date()
    hourly = e.number("hourly_usd") if "hourly_usd" in data else None
    return VM(
        key=key,
        name=e.text("name"),
        source=source,
        as_of=as_of,
        monthly_usd=e.number("monthly_usd"),
        hourly_usd=hourly,
        region=e.text("region", ""),
        notes=e.text("notes", ""),
        overridden_by=data.get("overridden_by"),
    )
