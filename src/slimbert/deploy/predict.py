"""``slimbert predict``: score texts with an exported bundle in this process, as the function would.

Built on the serving runtime's in-process API (``slimbert.runtime.load_bundle(path)``, then
``Bundle.predict(texts)`` for a classifier and ``Bundle.embed(texts)`` for an embedder), so no
torch is imported and the answers are the deployed function's. The JSON of
:func:`predict_texts` has the shape of the function's answer (docs/serving.md): ``model`` and
``predictions`` (``label`` and ``probabilities`` per text) or ``embeddings``, with ``task`` and
each text added and probabilities rounded to the same 6 decimals.

:func:`predict_file` reads a CSV/TSV/JSONL/Parquet file of texts
(:func:`slimbert.data.load.load_texts`)
and writes a CSV or JSONL of predictions, atomically and never over its input.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from slimbert.errors import ConfigError, DataError
from slimbert.io import atomic_open
from slimbert.runtime import Bundle, load_bundle

log = logging.getLogger(__name__)

DECIMALS = 6  # as the function answers (slimbert.runtime.handler.DECIMALS)
OUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
CHUNK = 2048  # texts scored per call when predicting a file: bounded memory, full batches


def _round(values: Sequence[float]) -> list[float]:
    return [round(float(v), DECIMALS) for v in values]


def score(bundle: Bundle, texts: Sequence[str]) -> list[dict[str, Any]]:
    """One row per text: ``label`` and ``probabilities`` (classifier) or ``embedding``."""
    texts = list(texts)
    if bundle.task == "classification":
        return [
            {
                "label": p["label"],
                "probabilities": {
                    k: round(float(v), DECIMALS) for k, v in p["probabilities"].items()
                },
            }
            for p in bundle.predict(texts)
        ]
    return [{"embedding": _round(row)} for row in bundle.embed(texts).tolist()]


def predict_texts(bundle: Bundle | str | Path, texts: Sequence[str]) -> dict[str, Any]:
    """The function's answer for ``texts``, in this process: ``{"model", "task",
    "predictions": [{"text", "label", "probabilities"}]}`` for a classifier, ``{"model",
    "task", "dim", "embeddings": [[...]], "texts"}`` for an embedder."""
    if isinstance(texts, str):
        raise ConfigError("pass a list of texts, not a single string")
    if not texts:
        raise ConfigError("no texts to score", hint="pass one or more texts, or --data FILE")
    loaded = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    rows = score(loaded, texts)
    answer: dict[str, Any] = {"model": loaded.model_id, "task": loaded.task}
    if loaded.task == "classification":
        answer["labels"] = list(loaded.label_names)
        answer["predictions"] = [{"text": t, **r} for t, r in zip(texts, rows, strict=True)]
    else:
        answer["dim"] = len(rows[0]["embedding"]) if rows else loaded.dim
        answer["texts"] = list(texts)
        answer["embeddings"] = [r["embedding"] for r in rows]
    return answer


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_answer(answer: dict[str, Any], *, shown: int = 4) -> str:
    """:func:`predict_texts`'s answer as a Markdown table: label and probabilities per text,
    or, for an embedder, a note, the vector's norm and its first ``shown`` values."""
    if answer["task"] == "classification":
        labels = answer["labels"]
        lines = [
            "| text | label | " + " | ".join(labels) + " |",
            "|---|---|" + "---:|" * len(labels),
        ]
        for p in answer["predictions"]:
            probs = " | ".join(f"{p['probabilities'][name]:.4f}" for name in labels)
            lines.append(f"| {_cell(p['text'])} | {p['label']} | {probs} |")
        return "\n".join(lines)
    lines = [
        f"{answer['model']} is an embedder: each text becomes a {answer['dim']}-dimensional "
        "vector (no label). Use --json for the whole vectors, or --data FILE --out FILE.",
        "",
        "| text | norm | first values |",
        "|---|---:|---|",
    ]
    for text, vector in zip(answer["texts"], answer["embeddings"], strict=True):
        norm = sum(v * v for v in vector) ** 0.5
        head = ", ".join(f"{v:.4f}" for v in vector[:shown])
        lines.append(f"| {_cell(text)} | {norm:.4f} | {head}{', …' * (len(vector) > shown)} |")
    return "\n".join(lines)


def _out_format(out: Path) -> str:
    fmt = OUT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"--out {out}: cannot tell the format from {out.suffix or 'no suffix'!r}",
            hint="name the output .csv or .jsonl",
        )
    return fmt


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_paths(data: Path, out: Path) -> None:
    if out.resolve() == data.resolve() or _same_file(data, out):
        raise ConfigError(
            f"--out {out} is the input file {data}: predictions are never written over the texts",
            hint="name another file for --out",
        )
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder", hint="name a .csv or .jsonl file")


def _csv_rows(
    bundle: Bundle, ids: list[str], texts: list[str], rows: list[dict[str, Any]]
) -> Iterator[list[Any]]:
    for row_id, text, row in zip(ids, texts, rows, strict=True):
        if bundle.task == "classification":
            probs = row["probabilities"]
            yield [row_id, text, row["label"], *(probs[name] for name in bundle.label_names)]
        else:
            yield [row_id, text, json.dumps(row["embedding"])]


def _header(bundle: Bundle) -> list[str]:
    if bundle.task == "classification":
        return ["id", "text", "label", *(f"p_{name}" for name in bundle.label_names)]
    return ["id", "text", "embedding"]


def _write_chunk(
    fh: IO[Any], fmt: str, bundle: Bundle, writer: Any, ids: list[str], texts: list[str]
) -> list[dict[str, Any]]:
    rows = score(bundle, texts)
    if fmt == "csv":
        writer.writerows(_csv_rows(bundle, ids, texts, rows))
    else:
        for row_id, text, row in zip(ids, texts, rows, strict=True):
            fh.write(json.dumps({"id": row_id, "text": text, **row}, ensure_ascii=False) + "\n")
    return rows


def predict_file(
    bundle: Bundle | str | Path,
    data: str | Path,
    out: str | Path,
    *,
    text_column: str = "text",
    id_column: str | None = None,
) -> dict[str, Any]:
    """Score every text of ``data`` and write ``out`` (.csv or .jsonl, by its suffix).

    CSV columns: ``id, text, label, p_<label>...`` (classifier) or ``id, text, embedding``
    (the vector as a JSON list); JSONL: one ``{"id", "text", "label", "probabilities"}`` or
    ``{"id", "text", "embedding"}`` object a line. ``out`` appears only when complete and is
    never the input file. Returns a summary (rows, out, model, task, label counts).
    """
    from slimbert.data.load import load_texts

    data_path, out_path = Path(data), Path(out)
    fmt = _out_format(out_path)
    _check_paths(data_path, out_path)
    loaded = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    texts = load_texts(
        data if isinstance(data, str) else data_path,
        text_column=text_column,
        label_column=None,
        id_column=id_column,
    )
    if not len(texts):
        raise DataError("holds no texts", path=str(data_path), hint="check --text-column")
    counts = dict.fromkeys(loaded.label_names, 0)
    with atomic_open(out_path) as fh:
        writer = csv.writer(fh) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(_header(loaded))
        for start in range(0, len(texts), CHUNK):
            chunk = texts.texts[start : start + CHUNK]
            ids = texts.ids[start : start + CHUNK]
            for row in _write_chunk(fh, fmt, loaded, writer, ids, chunk):
                if "label" in row:
                    counts[row["label"]] += 1
            log.info("predict: %d of %d texts", min(start + CHUNK, len(texts)), len(texts))
    return {
        "rows": len(texts),
        "out": str(out_path),
        "model": loaded.model_id,
        "task": loaded.task,
        "label_counts": counts,
    }
