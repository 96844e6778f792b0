"""Short texts in files: :class:`TextSet`, the file formats, reading and writing one file.

:func:`read_texts` reads ``.csv``, ``.tsv``, ``.jsonl``/``.ndjson`` or ``.parquet`` (``format``
overrides the suffix; CSV and TSV need a header row and use standard quoting). A bad file fails
with a :class:`~slimbert.errors.DataError` naming the file, the physical line (or Parquet row)
and the column, never a traceback from deep inside a training loop.

This is the bottom of :mod:`slimbert.data`: the built-in datasets write and read their prepared
files with it, and :func:`slimbert.data.load.load_texts` (the one door for files, built-in sets
and the hub) builds on it. Free of torch and pandas so that it is cheap to import.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimbert.errors import ConfigError, DataError
from slimbert.io import atomic_open, atomic_path

log = logging.getLogger(__name__)

FORMATS = ("csv", "tsv", "jsonl", "parquet")
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_DELIMITERS = {"csv": ",", "tsv": "\t"}


@dataclass(frozen=True)
class TextSet:
    """Short texts with optional labels; ``labels[i]`` indexes ``label_names``."""

    texts: list[str]
    labels: list[int] | None
    label_names: tuple[str, ...]
    ids: list[str]
    source: str

    def __post_init__(self) -> None:
        n = len(self.texts)
        if len(self.ids) != n:
            raise DataError(f"{self.source}: {len(self.ids)} ids for {n} texts")
        if self.labels is not None:
            if len(self.labels) != n:
                raise DataError(f"{self.source}: {len(self.labels)} labels for {n} texts")
            k = len(self.label_names)
            bad = next((y for y in self.labels if not 0 <= y < k), None)
            if bad is not None:
                raise DataError(f"{self.source}: label index {bad} is outside 0..{k - 1}")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> TextSet:
        idx = list(indices)
        return TextSet(
            texts=[self.texts[i] for i in idx],
            labels=None if self.labels is None else [self.labels[i] for i in idx],
            label_names=self.label_names,
            ids=[self.ids[i] for i in idx],
            source=self.source,
        )

    def label_counts(self) -> dict[str, int]:
        """Rows per label name, every name present (0 when unused); ``{}`` when unlabelled."""
        if self.labels is None:
            return {}
        counts = Counter(self.labels)
        return {name: counts.get(i, 0) for i, name in enumerate(self.label_names)}

    def with_labels(self, labels: list[int], label_names: tuple[str, ...]) -> TextSet:
        return TextSet(
            texts=self.texts,
            labels=list(labels),
            label_names=tuple(label_names),
            ids=self.ids,
            source=self.source,
        )


@dataclass(frozen=True)
class Where:
    """The position of a record: a physical line (text formats) or a 1-based row (Parquet)."""

    path: str
    line: int | None = None
    row: int | None = None

    def error(self, message: str, column: str | None = None, hint: str | None = None) -> DataError:
        if self.row is None:
            return DataError(message, path=self.path, line=self.line, column=column, hint=hint)
        # DataError only knows "line N"; Parquet has rows, so the row goes into the prefix
        # and ``path`` is put back so callers still see the plain file name.
        err = DataError(message, path=f"{self.path}, row {self.row}", column=column, hint=hint)
        err.path = self.path
        return err


def read_texts(
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str | None = "label",
    id_column: str | None = None,
    labels: Sequence[str] | None = None,
    encoding: str = "utf-8",
    format: str | None = None,
    require_labels: bool = False,
    not_found_hint: str | None = None,
) -> TextSet:
    """Read texts (and labels, when the label column is present) from the data file ``path``.

    ``labels`` fixes the allowed label names and their order; without it the names are the
    sorted distinct values (numerically when all are integers). ``not_found_hint`` is the hint
    given when nothing exists at ``path`` (the door names the built-in datasets there).
    """
    allowed = check_label_names(labels)
    path = Path(path)
    if format is not None:
        _format_of(path, format)
    if not path.is_file():
        hint = "pass a data file, not a folder" if path.is_dir() else "check the path"
        if not_found_hint is not None and not path.exists():
            hint = not_found_hint
        what = "is a directory, not a file" if path.is_dir() else "file not found"
        raise DataError(what, path=str(path), hint=hint)
    fmt = _format_of(path, format)
    if fmt == "parquet":
        columns, records = _read_parquet(path)
    else:
        text = _decode(path, encoding)
        if fmt == "jsonl":
            columns, records = _read_jsonl(path, text)
        else:
            columns, records = _read_delimited(path, text, _DELIMITERS[fmt])
    return from_records(
        records,
        columns,
        source=str(path),
        text_column=text_column,
        label_column=label_column,
        id_column=id_column,
        allowed=allowed,
        require_labels=require_labels,
    )


def write_texts(path: Path, data: TextSet) -> None:
    """Write ``data`` atomically as ``id,text[,label]`` (label as its name); format by suffix."""
    path = Path(path)
    fmt = _format_of(path, None)
    header = ["id", "text"] if data.labels is None else ["id", "text", "label"]
    rows = list(_rows(data))
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {c: pa.array([row[i] for row in rows], type=pa.string()) for i, c in enumerate(header)}
        )
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return
    if fmt == "jsonl":
        with atomic_open(path) as fh:
            for row in rows:
                fh.write(json.dumps(dict(zip(header, row, strict=True)), ensure_ascii=False))
                fh.write("\n")
        return
    write_csv(path, header, rows, delimiter=_DELIMITERS[fmt])


def write_csv(
    path: Path,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
) -> None:
    """A delimited file with a header, written atomically (rows with a lone CR fully quoted)."""
    with atomic_open(path, encoding=encoding) as fh:
        minimal = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        # With a "\n" terminator csv leaves a lone "\r" unquoted, and readers would split the
        # row there; such rows are written fully quoted instead.
        quoted = csv.writer(fh, delimiter=delimiter, lineterminator="\n", quoting=csv.QUOTE_ALL)
        minimal.writerow(columns)
        for row in rows:
            (quoted if any("\r" in field for field in row) else minimal).writerow(row)


def _rows(data: TextSet) -> Iterator[list[str]]:
    for i, (row_id, text) in enumerate(zip(data.ids, data.texts, strict=True)):
        if data.labels is None:
            yield [row_id, text]
        else:
            yield [row_id, text, data.label_names[data.labels[i]]]


# -- label names and formats ---------------------------------------------------------------
def check_label_names(labels: Sequence[str] | None) -> tuple[str, ...] | None:
    """``labels`` as a tuple of stripped, distinct, non-empty names (None stays None)."""
    if labels is None:
        return None
    if isinstance(labels, str):
        raise ConfigError("labels must be a list of names, not one string", hint=f"[{labels!r}]")
    names = tuple(str(name).strip() for name in labels)
    if not names or any(not name for name in names):
        raise ConfigError(
            f"labels must be non-empty names, got {list(labels)!r}",
            hint="e.g. --labels negative,neutral,positive",
        )
    duplicated = sorted(name for name, n in Counter(names).items() if n > 1)
    if duplicated:
        raise ConfigError(
            f"duplicate label names: {', '.join(duplicated)}",
            hint="name each label once, e.g. --labels negative,neutral,positive",
        )
    return names


def _format_of(path: Path, format: str | None) -> str:
    if format is not None:
        fmt = format.lower().lstrip(".")
        fmt = {"ndjson": "jsonl", "pq": "parquet", "tab": "tsv"}.get(fmt, fmt)
        if fmt not in FORMATS:
            raise ConfigError(f"unknown data format {format!r}", hint=f"use one of {FORMATS}")
        return fmt
    inferred = _SUFFIXES.get(path.suffix.lower())
    if inferred is None:
        raise DataError(
            f"cannot tell the format from the suffix {path.suffix or '(none)'!r}",
            path=str(path),
            hint=f"use {', '.join(sorted(_SUFFIXES))} or pass format= (one of {FORMATS})",
        )
    return inferred


# -- readers: (columns, [(where, record)]) --------------------------------------------------
_JSONL_HINT = 'JSON Lines holds one JSON object per line, e.g. {"text": "...", "label": "..."}'
_TEXT_HINT = "fill in the text, or remove the row"
_ID_HINT = "give every row an id, or leave out the id column"
_LABEL_HINT = "write labels as names (positive) or integers (2)"


def _decode(path: Path, encoding: str) -> str:
    try:
        codec = codecs.lookup(encoding)
    except LookupError as exc:
        raise ConfigError(f"unknown encoding {encoding!r}", hint="e.g. utf-8, latin-1") from exc
    raw = path.read_bytes()
    try:
        text = raw.decode(codec.name)
    except UnicodeDecodeError as exc:
        # Decoding the whole file at once makes exc.start a file offset, so the line is exact.
        line = raw.count(b"\n", 0, exc.start) + 1
        byte = raw[exc.start : exc.start + 1].hex()
        raise DataError(
            f"cannot decode byte 0x{byte} as {encoding}",
            path=str(path),
            line=line,
            hint="pass --encoding (e.g. latin-1)",
        ) from exc
    nul = text.find("\x00")
    if nul >= 0:
        raise DataError(
            "NUL byte in the text: this looks like a binary or UTF-16 file",
            path=str(path),
            line=text.count("\n", 0, nul) + 1,
            hint="save it as UTF-8 text, or pass --encoding utf-16 if it is UTF-16",
        )
    return text[1:] if text.startswith("\ufeff") else text


def _read_delimited(
    path: Path, text: str, delimiter: str
) -> tuple[list[str], list[tuple[Where, dict[str, Any]]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    name = str(path)
    columns: list[str] | None = None
    records: list[tuple[Where, dict[str, Any]]] = []
    start = 1
    try:
        for row in reader:
            where = Where(name, line=start)
            start = reader.line_num + 1
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if columns is None:
                columns = [c.strip() for c in row]
                doubled = sorted(c for c, n in Counter(columns).items() if n > 1)
                if doubled:
                    raise where.error(
                        f"column {doubled[0]!r} appears more than once in the header",
                        hint="give every column a distinct name",
                    )
                continue
            if len(row) != len(columns):
                raise where.error(
                    f"expected {len(columns)} fields ({', '.join(columns)}), found {len(row)}",
                    hint="quote fields that contain the delimiter, a quote or a newline",
                )
            records.append((where, dict(zip(columns, row, strict=True))))
    except csv.Error as exc:
        raise DataError(
            f"malformed {'TSV' if delimiter == chr(9) else 'CSV'}: {exc}",
            path=name,
            line=reader.line_num,
            hint="check the quotes on that line: a quote inside a field is written twice",
        ) from exc
    if columns is None or not records:
        raise DataError(
            "no data rows" if columns else "empty file",
            path=name,
            hint="a data file needs a header row (e.g. id,text,label) and rows below it",
        )
    return columns, records


def _read_jsonl(path: Path, text: str) -> tuple[list[str], list[tuple[Where, dict[str, Any]]]]:
    name = str(path)
    columns: dict[str, None] = {}
    records: list[tuple[Where, dict[str, Any]]] = []
    # Split on "\n" only: str.splitlines would also split inside strings at U+2028 and friends.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = Where(name, line=number)
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise where.error(
                f"invalid JSON: {exc.msg} (at character {exc.colno})", hint=_JSONL_HINT
            ) from exc
        if not isinstance(record, dict):
            raise where.error(
                f"expected a JSON object, found {type(record).__name__}", hint=_JSONL_HINT
            )
        columns.update(dict.fromkeys(record))
        records.append((where, record))
    if not records:
        raise DataError("empty file (no JSON records)", path=name, hint=_JSONL_HINT)
    return list(columns), records


def _read_parquet(path: Path) -> tuple[list[str], list[tuple[Where, dict[str, Any]]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = str(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"cannot read as Parquet: {exc}",
            path=name,
            hint="check that it is a Parquet file, or give it the suffix of its real format",
        ) from exc
    if table.num_rows == 0:
        raise DataError("no data rows", path=name, hint="pass a file with at least one row")
    rows = table.to_pylist()
    return list(table.column_names), [(Where(name, row=i), r) for i, r in enumerate(rows, 1)]


# -- validation -----------------------------------------------------------------------------
def from_records(
    records: list[tuple[Where, dict[str, Any]]],
    columns: list[str],
    *,
    source: str,
    text_column: str,
    label_column: str | None,
    id_column: str | None,
    allowed: tuple[str, ...] | None,
    require_labels: bool,
) -> TextSet:
    """A :class:`TextSet` from ``(where, record)`` pairs, each value checked where it stands.

    Every reader (the file formats here, the hub in :mod:`slimbert.data.load`) ends here, so
    a missing text, a duplicate id or an unknown label reads the same whatever the source.
    """
    first = records[0][0]
    file_where = Where(first.path)
    found = f"columns found: {', '.join(columns) or '(none)'}"
    for column, role in ((text_column, "text"), (id_column, "id")):
        if column is not None and column not in columns:
            raise file_where.error(f"no {role} column {column!r}", hint=found)
    labelled = label_column is not None and label_column in columns
    if require_labels and not labelled:
        what = f"no label column {label_column!r}" if label_column else "labels are required"
        raise file_where.error(what, hint=found)

    texts: list[str] = []
    ids: list[str] = []
    raw_labels: list[str | None] = []
    seen_ids: dict[str, Where] = {}
    for data_row, (where, record) in enumerate(records, start=1):
        texts.append(_text_value(record.get(text_column), where, text_column))
        if id_column is not None:
            row_id = _id_value(record.get(id_column), where, id_column)
            if row_id in seen_ids:
                raise where.error(
                    f"duplicate id {row_id!r} (also at {_place(seen_ids[row_id])})",
                    id_column,
                    hint="give every row its own id, or leave out the id column",
                )
            seen_ids[row_id] = where
        else:
            row_id = str(data_row)
        ids.append(row_id)
        if labelled:
            assert label_column is not None
            raw_labels.append(_label_value(record.get(label_column), where, label_column))

    missing = [where for (where, _), v in zip(records, raw_labels, strict=False) if v is None]
    if missing:
        assert label_column is not None
        if require_labels:
            raise missing[0].error(
                "missing label", label_column, hint="fill in the label, or remove the row"
            )
        # Rows cannot be half labelled; without a demand for labels the set loads unlabelled.
        log.warning(
            "%s: %d row(s) have no %r value (first at %s); loading without labels",
            source,
            len(missing),
            label_column,
            _place(missing[0]),
        )
        labelled = False
    if not labelled:
        return TextSet(texts, None, allowed or (), ids, source)
    assert label_column is not None
    values = [v for v in raw_labels if v is not None]
    names = allowed if allowed is not None else _sorted_names(set(values))
    index = {name: i for i, name in enumerate(names)}
    label_ids: list[int] = []
    for (where, _), value in zip(records, values, strict=True):
        if value not in index:
            raise where.error(
                f"unknown label {value!r}", label_column, hint=f"known labels: {', '.join(names)}"
            )
        label_ids.append(index[value])
    log.debug("loaded %d rows from %s", len(texts), source)
    return TextSet(texts, label_ids, names, ids, source)


def _place(where: Where) -> str:
    return f"row {where.row}" if where.row is not None else f"line {where.line}"


def _text_value(value: Any, where: Where, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise where.error("missing text", column, hint=_TEXT_HINT)
    if not isinstance(value, str):
        raise where.error(
            f"text must be a string, found {type(value).__name__}", column, hint=_TEXT_HINT
        )
    if not value.strip():
        raise where.error("empty text", column, hint=_TEXT_HINT)
    return value


def _id_value(value: Any, where: Where, column: str) -> str:
    if isinstance(value, bool) or value is None or (isinstance(value, float) and math.isnan(value)):
        raise where.error("missing id", column, hint=_ID_HINT)
    text = str(value).strip()
    if not text:
        raise where.error("empty id", column, hint=_ID_HINT)
    return text


def _label_value(value: Any, where: Where, column: str) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        raise where.error(
            f"label must be a string or an integer, found {value!r}", column, hint=_LABEL_HINT
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        # Integer labels come back as floats from Parquet columns that contain nulls.
        return str(int(value))
    if not isinstance(value, str):
        raise where.error(
            f"label must be a string or an integer, found {type(value).__name__}",
            column,
            hint=_LABEL_HINT,
        )
    return value.strip() or None


def _sorted_names(values: set[str]) -> tuple[str, ...]:
    # Integer labels sort as numbers so "10" comes after "2".
    if values and all(v.lstrip("-").isdigit() for v in values):
        return tuple(sorted(values, key=int))
    return tuple(sorted(values))
