"""``slimbert index build`` and ``query``: a corpus embedded with a bundle, searchable by cosine.

The folder format is described in docs/index.md and read by :mod:`slimbert.runtime.index`
(numpy only), which is what the serverless function loads. Two backends: ``exact`` (one
matrix product over all vectors; the default up to :data:`AUTO_EXACT_MAX` texts) and
``usearch`` (an HNSW graph, ``pip install 'slimbert[index]'``) for larger corpora. The choice
of usearch over faiss, and the threshold, are measured by ``slimbert bench index``
(:mod:`slimbert.lab.bench_index`) and justified in docs/index.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

import slimbert
from slimbert.config import Options, check
from slimbert.errors import DataError, require
from slimbert.io import atomic_dir, write_json
from slimbert.runtime.index import (
    FORMAT,
    IDS_FILE,
    MANIFEST_FILE,
    TEXTS_FILE,
    USEARCH_FILE,
    VECTORS_FILE,
    VectorIndex,
    check_bundle,
    file_entry,
    load_index,
    normalize,
)

log = logging.getLogger(__name__)

# Up to this many texts ``backend: auto`` searches exactly. Measured by `slimbert bench
# index` on this 2-core machine, one thread (docs/index.md): one 384-d query costs 0.35 ms
# over 5,000 vectors, 0.70 ms over 10,000 and 1.5 ms over 20,000 with numpy (a warm request
# of the function costs ~2 ms in all), while HNSW stays at 0.1-0.4 ms; exact needs no library.
AUTO_EXACT_MAX = 10_000
USEARCH_DEFAULTS = {"connectivity": 16, "expansion_add": 128, "expansion_search": 64}


@dataclasses.dataclass(frozen=True)
class IndexBuildOptions(Options):
    stage: ClassVar[str] = "index-build"

    data: str = ""
    bundle: Path = Path("runs/sbert/bundle")
    out: Path = Path("runs/index")
    text_column: str = "text"
    id_column: str | None = None
    encoding: str = "utf-8"
    limit: int | None = None
    backend: Literal["auto", "exact", "usearch"] = "auto"
    exact_max: int = AUTO_EXACT_MAX
    dtype: Literal["float16", "float32"] = "float16"
    batch_size: int = 64
    connectivity: int = USEARCH_DEFAULTS["connectivity"]
    expansion_add: int = USEARCH_DEFAULTS["expansion_add"]
    expansion_search: int = USEARCH_DEFAULTS["expansion_search"]

    def validate(self) -> None:
        check(bool(self.data), "index build needs --data (the texts to index)")
        check(self.limit is None or self.limit >= 1, "limit must be at least 1")
        check(self.exact_max >= 0, "exact_max must not be negative")
        check(self.batch_size >= 1, "batch_size must be at least 1")
        check(
            min(self.connectivity, self.expansion_add, self.expansion_search) >= 2,
            "connectivity, expansion_add and expansion_search must be at least 2",
        )


def choose_backend(backend: str, count: int, exact_max: int = AUTO_EXACT_MAX) -> str:
    """``auto`` → ``exact`` up to ``exact_max`` texts, else ``usearch``."""
    if backend != "auto":
        return backend
    return "exact" if count <= exact_max else "usearch"


def embed_texts(
    bundle: Any,
    texts: Sequence[str],
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Unit vectors of ``texts`` from an embedding bundle, in chunks of ``batch_size``."""
    if bundle.task != "embedding":
        raise DataError(
            f"{bundle.path} is a {bundle.task} bundle; indexing needs an embedding bundle",
            hint="export a sentence-transformers model with `slimbert export`",
        )
    chunks = []
    for start in range(0, len(texts), batch_size):
        chunks.append(bundle.embed(list(texts[start : start + batch_size])))
        if progress is not None:
            progress(min(start + batch_size, len(texts)), len(texts))
    dim = bundle.dim or 0
    return normalize(np.concatenate(chunks) if chunks else np.zeros((0, dim)))


def bundle_facts(bundle: Any) -> dict[str, Any]:
    """What the index records of its bundle, so a different model is refused later."""
    manifest = bundle.manifest
    model = (manifest.get("files") or {}).get(manifest.get("model_file")) or {}
    return {
        "path": str(bundle.path),
        "model_id": bundle.model_id,
        "model_file": manifest.get("model_file"),
        "model_sha256": model.get("sha256"),
        "dim": bundle.dim,
        "normalize": manifest.get("normalize"),
    }


def write_index(
    out: Path,
    vectors: np.ndarray,
    ids: Sequence[str],
    texts: Sequence[str],
    *,
    backend: str = "exact",
    dtype: str = "float16",
    bundle: dict[str, Any] | None = None,
    source: str | None = None,
    usearch: dict[str, int] | None = None,
    threshold: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write an index folder atomically and return its manifest.

    ``vectors`` are normalised here; the texts and ids are stored as JSON lists and the
    vectors with ``np.save(..., allow_pickle=False)``: nothing in the folder is a pickle.
    """
    if len(ids) != len(texts) or len(ids) != len(vectors):
        raise DataError(f"{len(vectors)} vectors for {len(ids)} ids and {len(texts)} texts")
    if len(set(ids)) != len(ids):
        raise DataError("index ids must be unique", hint="pass an id column with unique ids")
    unit = normalize(vectors)
    stored = unit.astype(np.float16 if dtype == "float16" else np.float32)
    params = {**USEARCH_DEFAULTS, **(usearch or {})}
    with atomic_dir(out, kind="index") as tmp:
        with open(tmp / VECTORS_FILE, "wb") as fh:
            np.save(fh, stored, allow_pickle=False)
        write_json(tmp / IDS_FILE, list(ids))
        write_json(tmp / TEXTS_FILE, list(texts))
        names = [VECTORS_FILE, IDS_FILE, TEXTS_FILE]
        if backend == "usearch":
            build_usearch(stored, params).save(str(tmp / USEARCH_FILE))
            names.append(USEARCH_FILE)
        manifest = {
            "format": FORMAT,
            "backend": backend,
            "metric": "cos",
            "dim": int(unit.shape[1]) if unit.ndim == 2 else 0,
            "count": len(ids),
            "dtype": dtype,
            "usearch": params if backend == "usearch" else None,
            "bundle": bundle,
            "source": source,
            "threshold": threshold,
            "files": {name: file_entry(tmp / name) for name in names},
            "slimbert_version": slimbert.__version__,
            "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        write_json(tmp / MANIFEST_FILE, manifest)
    return manifest


def build_usearch(vectors: np.ndarray, params: dict[str, int], threads: int = 0) -> Any:
    """An HNSW graph over unit ``vectors`` (keys = row numbers), cosine metric."""
    usearch_index = require("usearch.index", "index")
    graph = usearch_index.Index(  # type: ignore[attr-defined]
        ndim=vectors.shape[1],
        metric="cos",
        dtype="f16" if vectors.dtype == np.float16 else "f32",
        connectivity=params["connectivity"],
        expansion_add=params["expansion_add"],
        expansion_search=params["expansion_search"],
    )
    if len(vectors):
        graph.add(np.arange(len(vectors)), vectors, threads=threads, log=False)
    return graph


def build_index(
    options: IndexBuildOptions, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Embed the texts of ``options.data`` with ``options.bundle`` and write the index."""
    from slimbert.data.load import TextSet, load_texts
    from slimbert.data.pairs import distinct_sentences, is_pair_spec
    from slimbert.runtime.bundle import load_bundle

    if is_pair_spec(options.data):
        # A corpus made of a pair set's sentences, e.g. mrpc-target:train ("already asked").
        sentences = distinct_sentences(options.data)
        ids = [f"s{i}" for i in range(len(sentences))]
        corpus = TextSet(sentences, None, (), ids, options.data)
    else:
        corpus = load_texts(
            options.data,
            text_column=options.text_column,
            label_column=None,
            id_column=options.id_column,
            encoding=options.encoding,
        )
    if options.limit is not None:
        corpus = corpus.subset(range(min(options.limit, len(corpus))))
    if not len(corpus):
        raise DataError(f"{options.data} has no texts to index")
    bundle = load_bundle(options.bundle)
    backend = choose_backend(options.backend, len(corpus), options.exact_max)
    if backend == "usearch":
        require("usearch.index", "index")  # fail before the slow embedding
    log.info("embedding %d texts with %s (%s backend)", len(corpus), bundle.model_id, backend)
    vectors = embed_texts(bundle, corpus.texts, options.batch_size, progress)
    params = {
        "connectivity": options.connectivity,
        "expansion_add": options.expansion_add,
        "expansion_search": options.expansion_search,
    }
    return write_index(
        Path(options.out),
        vectors,
        corpus.ids,
        corpus.texts,
        backend=backend,
        dtype=options.dtype,
        bundle=bundle_facts(bundle),
        source=options.data,
        usearch=params,
    )


def query_index(
    index: str | Path | VectorIndex,
    texts: Sequence[str],
    *,
    bundle: str | Path | Any | None = None,
    top_k: int = 5,
    backend: str | None = None,
) -> list[dict[str, Any]]:
    """Per query text: ``{"text", "is_duplicate", "neighbours": [{"id", "text", "score"}]}``.

    ``bundle`` defaults to the one recorded in the index manifest; ``is_duplicate`` is null
    until a threshold is calibrated into the index (``slimbert index calibrate --index``).
    """
    from slimbert.runtime.bundle import load_bundle

    if top_k < 1:
        raise DataError("top_k must be at least 1")
    loaded = index if isinstance(index, VectorIndex) else load_index(index, backend=backend)
    if bundle is None:
        bundle = (loaded.manifest.get("bundle") or {}).get("path")
        if not bundle:
            raise DataError("the index records no bundle", hint="pass --bundle")
    if isinstance(bundle, str | Path):
        bundle = load_bundle(bundle)
    check_bundle(loaded, bundle)
    found = loaded.neighbours(embed_texts(bundle, list(texts)), top_k)
    threshold = loaded.threshold
    return [
        {
            "text": text,
            "is_duplicate": None if threshold is None else bool(n and n[0]["score"] >= threshold),
            "neighbours": n,
        }
        for text, n in zip(texts, found, strict=True)
    ]


def set_threshold(index: Path, threshold: dict[str, Any]) -> dict[str, Any]:
    """Record a calibrated threshold in the index manifest (not a hashed file: stays valid)."""
    from slimbert.io import read_json
    from slimbert.runtime.index import read_index_manifest

    read_index_manifest(Path(index))  # refuse a folder that is no index
    manifest: dict[str, Any] = read_json(Path(index) / MANIFEST_FILE)
    built = (manifest.get("bundle") or {}).get("model_sha256")
    used = threshold.get("bundle_model_sha256")
    if built and used and built != used:
        raise DataError(
            f"the threshold was calibrated with another model than the index {index} holds",
            hint="calibrate with the bundle the index was built with",
        )
    manifest["threshold"] = threshold
    write_json(Path(index) / MANIFEST_FILE, manifest)
    return manifest


__all__ = [
    "AUTO_EXACT_MAX",
    "IndexBuildOptions",
    "build_index",
    "choose_backend",
    "embed_texts",
    "query_index",
    "set_threshold",
    "write_index",
]
