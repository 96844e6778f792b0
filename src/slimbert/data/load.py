"""The one door to labelled and unlabelled short texts: files, built-in datasets and the hub.

Every stage reads its data through :func:`load_texts`, so a bad file fails the same way
everywhere: a :class:`~slimbert.errors.DataError` naming the file, the physical line (or
Parquet row) and the column, never a traceback from deep inside a training loop.

Specs accepted by :func:`load_texts`:

- a file path: ``.csv``, ``.tsv``, ``.jsonl``/``.ndjson`` or ``.parquet`` (``format``
  overrides the suffix). CSV and TSV need a header row and use standard quoting (read by
  :mod:`slimbert.data.texts`);
- ``tweets3:<split>`` / ``tweets3-quick:<split>``: a built-in dataset (see
  :mod:`slimbert.data.tweets3`); ``sst3``, ``sentiment3`` and ``sentiment3-quick`` (see
  :mod:`slimbert.data.domains`);
- ``hf:<dataset_id>[:<split>]``: a Hugging Face hub dataset (needs ``slimbert[hub]``).

:class:`TextSet`, :func:`write_texts` and :func:`write_csv` live in :mod:`slimbert.data.texts`
and are importable from here too. This module stays free of torch and pandas so that it is
cheap to import.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slimbert.data import domains, tweets3
from slimbert.data.texts import (
    FORMATS,
    TextSet,
    Where,
    check_label_names,
    from_records,
    read_texts,
    write_csv,
    write_texts,
)
from slimbert.errors import ConfigError, DataError, MissingDependencyError

__all__ = [
    "FORMATS",
    "TextSet",
    "builtin_names",
    "load_texts",
    "read_texts",
    "write_csv",
    "write_texts",
]


def load_texts(
    spec: str | Path,
    *,
    text_column: str = "text",
    label_column: str | None = "label",
    id_column: str | None = None,
    labels: Sequence[str] | None = None,
    encoding: str = "utf-8",
    format: str | None = None,
    require_labels: bool = False,
    data_dir: Path | None = None,
) -> TextSet:
    """Load texts (and labels, when the label column is present) from ``spec``.

    ``labels`` fixes the allowed label names and their order; without it the names are the
    sorted distinct values (numerically when all are integers). ``data_dir`` is where
    built-in datasets are prepared and cached (default ``$SLIMBERT_CACHE`` or
    ``~/.cache/slimbert``).
    """
    allowed = check_label_names(labels)
    not_found_hint = None
    if isinstance(spec, str):
        if spec.startswith("hf:"):
            return _load_hub(spec, text_column, label_column, id_column, allowed, require_labels)
        builtin = _builtin_spec(spec)
        if builtin is not None:
            return _load_builtin(spec, builtin, allowed, require_labels, data_dir)
        if ":" in spec:  # likely a mistyped built-in name: say which ones there are
            not_found_hint = (
                f"built-in datasets are {', '.join(f'{n}:<split>' for n in builtin_names())}"
            )
    return read_texts(
        spec,
        text_column=text_column,
        label_column=label_column,
        id_column=id_column,
        labels=allowed,
        encoding=encoding,
        format=format,
        require_labels=require_labels,
        not_found_hint=not_found_hint,
    )


# -- specs ----------------------------------------------------------------------------------
def builtin_names() -> dict[str, str]:
    """Every built-in dataset, name → description (tweets3 and the multi-domain sets)."""
    return {**tweets3.BUILTINS, **domains.BUILTINS}


def _builtin_spec(spec: str) -> tuple[str, str] | None:
    name, sep, split = spec.partition(":")
    if not sep:
        return None
    return (name, split) if name in builtin_names() else None


def _load_builtin(
    spec: str,
    builtin: tuple[str, str],
    allowed: tuple[str, ...] | None,
    require_labels: bool,
    data_dir: Path | None,
) -> TextSet:
    load = tweets3.load_builtin if builtin[0] in tweets3.BUILTINS else domains.load_domain_builtin
    data = load(builtin[0], builtin[1], cache_dir=data_dir)
    if require_labels and data.labels is None:
        raise DataError(
            f"{spec} has no labels (its labels are withheld)",
            hint="use the train, validation or test split for labelled data",
        )
    if allowed is not None and data.labels is not None and allowed != data.label_names:
        data = _relabel(data, allowed)
    return data


def _relabel(data: TextSet, allowed: tuple[str, ...]) -> TextSet:
    assert data.labels is not None
    index = {name: i for i, name in enumerate(allowed)}
    unknown = sorted({data.label_names[y] for y in data.labels} - set(index))
    if unknown:
        raise DataError(
            f"unknown label {unknown[0]!r} in {data.source}",
            hint=f"known labels: {', '.join(allowed)}",
        )
    return data.with_labels([index[data.label_names[y]] for y in data.labels], allowed)


def _load_hub(
    spec: str,
    text_column: str,
    label_column: str | None,
    id_column: str | None,
    allowed: tuple[str, ...] | None,
    require_labels: bool,
) -> TextSet:
    rest = spec[len("hf:") :]
    dataset_id, _, split = rest.partition(":")
    split = split or "train"
    if not dataset_id:
        raise ConfigError(f"bad hub spec {spec!r}", hint="use hf:<dataset_id>[:<split>]")
    try:
        import datasets
    except ImportError as exc:
        raise MissingDependencyError(
            f"loading {spec} needs the `datasets` package ({exc})",
            hint="pip install 'slimbert[hub]'",
        ) from exc
    try:
        hub = datasets.load_dataset(dataset_id, split=split)
    except Exception as exc:  # the hub raises many types; the user needs the message
        raise DataError(f"cannot load {spec}: {exc}", path=spec) from exc
    features = hub.features
    columns = list(hub.column_names)
    class_names: list[str] | None = None
    if label_column is not None and label_column in features:
        names = getattr(features[label_column], "names", None)
        class_names = list(names) if names else None
    records: list[tuple[Where, dict[str, Any]]] = []
    for i, row in enumerate(hub, start=1):
        if class_names is not None and isinstance(row.get(label_column), int):
            # ClassLabel columns hold indices; their names are what people label with.
            row = {**row, label_column: class_names[row[label_column]]}
        records.append((Where(spec, row=i), row))
    return from_records(
        records,
        columns,
        source=spec,
        text_column=text_column,
        label_column=label_column,
        id_column=id_column,
        allowed=allowed if allowed is not None else (tuple(class_names) if class_names else None),
        require_labels=require_labels,
    )
