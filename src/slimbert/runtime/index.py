"""Load a duplicate-detection index (docs/index.md) and find the nearest stored texts.

An index folder holds L2-normalised vectors (``vectors.npy``, float16 or float32, read with
``allow_pickle=False``), the texts and their ids (JSON), optionally a usearch HNSW graph, and
``manifest.json`` with the sha256 of every file, the embedding bundle it was built with and
the calibrated duplicate threshold. Scores are cosine similarities.

Only numpy is needed: exact search is one matrix product. usearch is imported lazily, and only
for an index built with the ``usearch`` backend; where it is not installed (the Lambda zip does
not ship it) the same index is searched exactly over ``vectors.npy``.

This module also answers the function's duplicate requests (``{"text": ..., "duplicates":
true}`` or ``{"texts": [...], "top_k": 3}``) so that the handler only routes to it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slimbert.errors import ModelError
from slimbert.runtime.bundle import file_sha256, read_folder_manifest, verify_listed

log = logging.getLogger(__name__)

FORMAT = "slimbert-index/1"
MANIFEST_FILE = "manifest.json"
VECTORS_FILE = "vectors.npy"
IDS_FILE = "ids.json"
TEXTS_FILE = "texts.json"
USEARCH_FILE = "hnsw.usearch"
BACKENDS = ("exact", "usearch")
DTYPES = ("float16", "float32")
DEFAULT_MAX_TOP_K = 20
SMALL_BATCH = 16  # up to this many queries, exact search avoids BLAS (see exact_search)
INDEX_ENV = "SLIMBERT_INDEX"
MAX_TOP_K_ENV = "SLIMBERT_MAX_TOP_K"
REBUILD_HINT = "rebuild the index with `slimbert index build` (or copy the whole folder again)"


class VectorIndexError(ModelError):
    """An index that cannot be loaded or used: bad manifest, changed file, other bundle."""


def _fail(message: str, hint: str | None = REBUILD_HINT) -> VectorIndexError:
    return VectorIndexError(message, hint=hint)


def file_entry(path: Path) -> dict[str, Any]:
    """``{"sha256", "bytes"}`` of a file, as the manifest records it."""
    with open(path, "rb") as fh:
        digest = file_sha256(fh)
    return {"sha256": digest, "bytes": path.stat().st_size}


def read_index_manifest(root: Path) -> dict[str, Any]:
    """The checked ``manifest.json`` of the index folder ``root``."""
    manifest = read_folder_manifest(root, FORMAT, "index", _fail, made_by="index build")
    path = root / MANIFEST_FILE
    if manifest.get("backend") not in BACKENDS:
        raise _fail(f"{path}: backend must be one of {list(BACKENDS)}")
    for key in ("dim", "count"):
        value = manifest.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _fail(f"{path}: {key} must be a non-negative integer, got {value!r}")
    files = manifest["files"]
    needed = [VECTORS_FILE, IDS_FILE, TEXTS_FILE]
    needed += [USEARCH_FILE] if manifest["backend"] == "usearch" else []
    missing = [n for n in needed if n not in files]
    if missing:
        raise _fail(f"{path} does not list {', '.join(missing)} in files")
    threshold = manifest.get("threshold")
    if threshold is not None and not _valid_threshold(threshold):
        raise _fail(
            f"{path}: threshold must be null or {{'value': a number in [-1, 1], ...}}",
            hint="run `slimbert index calibrate --index` again",
        )
    return manifest


def _valid_threshold(threshold: Any) -> bool:
    if not isinstance(threshold, dict):
        return False
    value = threshold.get("value")
    return isinstance(value, int | float) and not isinstance(value, bool) and -1 <= value <= 1


def verify_index_files(root: Path, manifest: dict[str, Any]) -> None:
    """Every listed file present, of its recorded size and sha256; else a clear error."""
    verify_listed(root, manifest["files"], "index", _fail)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Float32 rows scaled to unit length (zero rows stay zero), so a dot product is cosine."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def usearch_available() -> bool:
    try:
        import usearch.index  # noqa: F401
    except ImportError:
        return False
    return True


class VectorIndex:
    """Stored texts and their unit vectors; :meth:`search` returns the nearest by cosine.

    Safe to share between threads after loading: nothing is mutated.
    """

    def __init__(
        self,
        root: Path | None,
        manifest: dict[str, Any],
        vectors: np.ndarray,
        ids: list[str],
        texts: list[str],
        graph: Any = None,
    ) -> None:
        if vectors.ndim != 2 or vectors.shape[0] != len(ids) or len(ids) != len(texts):
            raise _fail(
                f"index {root}: {vectors.shape} vectors for {len(ids)} ids and {len(texts)} texts"
            )
        self.path = root
        self.manifest = manifest
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.ids = ids
        self.texts = texts
        self.dim = int(vectors.shape[1])
        self._graph = graph
        self.backend = "usearch" if graph is not None else "exact"
        self.max_top_k = DEFAULT_MAX_TOP_K  # the function sets it from SLIMBERT_MAX_TOP_K
        threshold = manifest.get("threshold")
        self.threshold: float | None = float(threshold["value"]) if threshold else None

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"VectorIndex({str(self.path)!r}, count={len(self)}, backend={self.backend!r})"

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and cosine scores of the ``k`` nearest stored vectors per query, best first.

        ``queries`` is ``(n, dim)``; it is normalised here. Both results are ``(n, min(k,
        count))``; a usearch graph may return fewer true neighbours, padded with row -1.
        """
        queries = normalize(np.atleast_2d(queries))
        if queries.shape[1] != self.dim:
            raise _fail(
                f"queries have {queries.shape[1]} dimensions, the index {self.dim}",
                hint="query with the bundle the index was built with",
            )
        k = min(int(k), len(self))
        if k < 1 or len(queries) == 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.int64), empty.astype(np.float32)
        if self._graph is not None:
            return self._search_graph(queries, k)
        return exact_search(self.vectors, queries, k)

    def _search_graph(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        found = self._graph.search(queries, k)
        keys = np.atleast_2d(np.asarray(found.keys, dtype=np.int64))
        distances = np.atleast_2d(np.asarray(found.distances, dtype=np.float32))
        counts = np.atleast_1d(np.asarray(found.counts))
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        for i, count in enumerate(counts.tolist()):
            rows[i, :count] = keys[i, :count]
            scores[i, :count] = 1.0 - distances[i, :count]  # usearch "cos" distance = 1 - cos
        return rows, scores

    def neighbours(self, queries: np.ndarray, k: int) -> list[list[dict[str, Any]]]:
        """Per query, up to ``k`` ``{"id", "text", "score"}`` dicts, best first."""
        rows, scores = self.search(queries, k)
        return [
            [
                {"id": self.ids[r], "text": self.texts[r], "score": round(float(s), 6)}
                for r, s in zip(row.tolist(), score.tolist(), strict=True)
                if r >= 0
            ]
            for row, score in zip(rows, scores, strict=True)
        ]


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` rows of ``vectors`` by dot product with each query, best first.

    Ties go to the lower row, so results are deterministic.
    """
    if len(queries) <= SMALL_BATCH:
        # numpy's own single-threaded loop, not BLAS: a multi-threaded BLAS gemv spins worker
        # threads that fight the model's for the CPU (measured on 2 busy cores: 16 ms p50 over
        # 10,000 vectors with 2 BLAS threads against 0.6 ms this way).
        scores = np.einsum("ij,kj->ik", queries, vectors)
    else:
        scores = queries @ vectors.T
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(scores.shape[1]), (len(scores), 1))
    top = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -top), axis=1)
    rows = np.take_along_axis(part, order, axis=1)
    return rows.astype(np.int64), np.take_along_axis(top, order, axis=1).astype(np.float32)


def _read_strings(path: Path) -> list[str]:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read {path}: {exc}") from None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _fail(f"{path} must hold a JSON list of strings")
    return values


def load_index(path: str | Path, *, verify: bool = True, backend: str | None = None) -> VectorIndex:
    """Load the index folder ``path``: manifest, integrity check, vectors, ids and texts.

    ``backend`` ``None`` uses what the manifest says, falling back to exact search when
    usearch is not installed; ``"exact"`` always searches exactly; ``"usearch"`` insists.
    """
    started = time.perf_counter()
    root = Path(path).expanduser()
    manifest = read_index_manifest(root)
    if backend not in (None, *BACKENDS):
        raise _fail(f"backend must be one of {list(BACKENDS)}, got {backend!r}", hint=None)
    if verify:
        verify_index_files(root, manifest)
    try:
        vectors = np.load(root / VECTORS_FILE, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read {root / VECTORS_FILE}: {exc}") from None
    if vectors.ndim != 2 or vectors.shape != (manifest["count"], manifest["dim"]):
        raise _fail(
            f"{root / VECTORS_FILE} has shape {vectors.shape}; the manifest says "
            f"({manifest['count']}, {manifest['dim']})"
        )
    ids = _read_strings(root / IDS_FILE)
    texts = _read_strings(root / TEXTS_FILE)
    graph = None
    wanted = backend or manifest["backend"]
    if wanted == "usearch":
        if manifest["backend"] != "usearch":
            raise _fail(f"index {root} has no usearch graph", hint="build it with usearch")
        if backend is None and not usearch_available():
            log.warning("usearch is not installed: searching index %s exactly", root)
        else:
            graph = _load_graph(root / USEARCH_FILE)
    index = VectorIndex(root, manifest, vectors, ids, texts, graph)
    log.info(
        "loaded index %s (%d texts, %s) in %.0f ms",
        root,
        len(index),
        index.backend,
        (time.perf_counter() - started) * 1000,
    )
    return index


def _load_graph(path: Path) -> Any:
    try:
        from usearch.index import Index
    except ImportError:
        raise VectorIndexError(
            "this index uses usearch, which is not installed",
            hint="pip install 'slimbert[index]', or load it with backend='exact'",
        ) from None
    graph = Index.restore(str(path), view=False)
    if graph is None:
        raise _fail(f"usearch cannot read {path}")
    return graph


def check_bundle(index: VectorIndex, bundle: Any) -> None:
    """Refuse a bundle other than the one the index was built with: its vectors mean nothing."""
    if getattr(bundle, "task", None) != "embedding":
        raise _fail(
            f"the index {index.path} needs an embedding bundle, not {bundle.task!r}",
            hint="deploy the embedding bundle the index was built with",
        )
    built = (index.manifest.get("bundle") or {}).get("model_sha256")
    files = bundle.manifest.get("files") or {}
    have = (files.get(bundle.manifest.get("model_file")) or {}).get("sha256")
    if built and have and built != have:
        raise _fail(
            f"the index {index.path} was built with another model ({built[:12]}...) than the "
            f"bundle {bundle.path} ({have[:12]}...)",
            hint="rebuild the index with this bundle, or use the bundle it was built with",
        )
    if bundle.dim is not None and bundle.dim != index.dim:
        raise _fail(f"the bundle makes {bundle.dim}-d vectors, the index holds {index.dim}-d")


# -- the function's duplicate requests --------------------------------------------------------


class DuplicateRequestError(ValueError):
    """A duplicate request the function refuses with a 400 and this message."""


def max_top_k() -> int:
    raw = os.environ.get(MAX_TOP_K_ENV, "").strip()
    try:
        value = int(raw) if raw else DEFAULT_MAX_TOP_K
    except ValueError:
        value = 0
    if value < 1:
        raise VectorIndexError(f"{MAX_TOP_K_ENV} must be a positive integer, got {raw!r}")
    return value


def wants_duplicates(payload: Any) -> bool:
    """Whether a request object asks for duplicates (``"duplicates": true`` or ``"top_k"``).

    Two dict lookups: a plain prediction request pays nothing more.
    """
    if not isinstance(payload, dict):
        return False
    return "top_k" in payload or payload.get("duplicates", False) is not False


def parse_top_k(payload: dict[str, Any], limit: int) -> int:
    flag = payload.get("duplicates", True)
    if not isinstance(flag, bool):
        raise DuplicateRequestError('"duplicates" must be true or false')
    if not flag:
        raise DuplicateRequestError('"top_k" asks for duplicates; drop it or "duplicates": false')
    top_k = payload.get("top_k", 1)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= limit:
        raise DuplicateRequestError(
            f'"top_k" must be an integer from 1 to {limit} ({MAX_TOP_K_ENV}), got {top_k!r}'
        )
    return top_k


def answer_duplicates(
    bundle: Any,
    index: VectorIndex | None,
    texts: Sequence[str],
    payload: dict[str, Any],
) -> dict[str, Any]:
    """The function's answer: nearest stored texts and ``is_duplicate`` per text."""
    if index is None:
        raise DuplicateRequestError(
            "this function has no duplicate index; deploy one with `slimbert package --index`"
        )
    top_k = parse_top_k(payload, index.max_top_k)
    timings: dict[str, float] = {}
    vectors = bundle.embed(list(texts), timings=timings)
    started = time.perf_counter()
    found = index.neighbours(vectors, top_k)
    search_ms = (time.perf_counter() - started) * 1000
    threshold = index.threshold
    results = [
        {
            "is_duplicate": None
            if threshold is None
            else bool(items and items[0]["score"] >= threshold),
            "neighbours": items,
        }
        for items in found
    ]
    return {
        "model": bundle.model_id,
        "threshold": threshold,
        "index": {"count": len(index), "backend": index.backend},
        "results": results,
        "timing_ms": {
            "tokenize": round(timings.get("tokenize", 0.0), 3),
            "inference": round(timings.get("inference", 0.0), 3),
            "search": round(search_ms, 3),
        },
    }


def load_deployed_index(bundle: Any, default: Path) -> VectorIndex | None:
    """The function's index: ``$SLIMBERT_INDEX`` (must exist) or ``default`` when present."""
    env = os.environ.get(INDEX_ENV, "").strip()
    if not env and not (default / MANIFEST_FILE).is_file():
        return None
    index = load_index(Path(env) if env else default)
    check_bundle(index, bundle)
    index.max_top_k = max_top_k()
    return index


__all__ = [
    "FORMAT",
    "DuplicateRequestError",
    "VectorIndex",
    "VectorIndexError",
    "answer_duplicates",
    "check_bundle",
    "exact_search",
    "load_deployed_index",
    "load_index",
    "normalize",
    "wants_duplicates",
]
