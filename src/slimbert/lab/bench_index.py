"""``slimbert bench index``: exact numpy search against usearch (HNSW) and, when installed, faiss.

For each corpus size it measures, in one process and on the same vectors: build time, the
latency of one query (p50/p99 over ``queries`` queries, after a warm-up), recall@k against
exact search, the bytes the index adds on disk, and what the library adds to a deployment
(its installed size, from the package's file list). Vectors are clustered unit vectors (a
stand-in for sentence embeddings; queries are perturbed stored vectors, as near-duplicate
questions are), so no model is needed and every run is reproducible from the seed.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
import io
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from slimbert.config import Options, check
from slimbert.metrics import quantiles
from slimbert.runtime.index import exact_search, normalize, usearch_available

# The wheels each backend adds to a function (numpy is there already).
LIBRARIES = {"usearch": ["usearch", "numkong", "tqdm"], "faiss": ["faiss-cpu", "packaging"]}


@dataclasses.dataclass(frozen=True)
class IndexBenchOptions(Options):
    stage: ClassVar[str] = "bench-index"

    sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    dim: int = 384
    queries: int = 200
    k: int = 10
    clusters: int = 500
    threads: int = 1
    seed: int = 13
    results: Path = Path("bench/results")

    def validate(self) -> None:
        check(bool(self.sizes) and min(self.sizes) >= 10, "sizes must be at least 10")
        check(self.dim >= 2 and self.queries >= 1 and self.k >= 1, "dim, queries, k too small")


def clustered_vectors(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    members = centres[rng.integers(0, clusters, size=n)]
    return normalize(members + 0.6 * rng.normal(size=(n, dim)).astype(np.float32))


def installed_mib(dists: list[str]) -> float | None:
    total = 0
    for dist in dists:
        try:
            files = md.distribution(dist).files or []
        except md.PackageNotFoundError:
            return None
        total += sum(f.size or 0 for f in files)
    return round(total / 2**20, 1)


def _latencies(search: Any, queries: np.ndarray) -> dict[str, float]:
    for q in queries[:10]:  # warm-up: caches, lazy allocations
        search(q[None, :])
    times = []
    for q in queries:
        started = time.perf_counter()
        search(q[None, :])
        times.append((time.perf_counter() - started) * 1000)
    # index.json has always kept p50 and p99 only, rounded: the one quantile dict, trimmed.
    q = quantiles(times)
    return {"p50": round(q["p50"], 4), "p99": round(q["p99"], 4)}


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return round(hits / truth.size, 4)


def _bench_size(n: int, options: IndexBenchOptions) -> list[dict[str, Any]]:
    vectors = clustered_vectors(n, options.dim, options.clusters, options.seed)
    rng = np.random.default_rng(options.seed + 1)
    picked = vectors[rng.integers(0, n, size=options.queries)]
    queries = normalize(picked + 0.1 * rng.normal(size=picked.shape).astype(np.float32))
    k = min(options.k, n)
    truth, _ = exact_search(vectors, queries, k)
    rows: list[dict[str, Any]] = []

    buffer = io.BytesIO()
    np.save(buffer, vectors.astype(np.float16), allow_pickle=False)
    rows.append(
        {
            "size": n,
            "backend": "exact (numpy)",
            "build_s": 0.0,
            "query_ms": _latencies(lambda q: exact_search(vectors, q, k), queries),
            "recall_at_k": 1.0,
            "index_mib": round(buffer.tell() / 2**20, 2),
            "library_mib": 0.0,
        }
    )
    if usearch_available():
        rows.append(_bench_usearch(n, vectors, queries, truth, k, options.threads))
    try:
        import faiss
    except ImportError:
        faiss = None
    if faiss is not None:
        faiss.omp_set_num_threads(options.threads)
        hnsw = faiss.IndexHNSWFlat(options.dim, 16, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 128
        hnsw.hnsw.efSearch = 64
        started = time.perf_counter()
        hnsw.add(vectors)
        build = time.perf_counter() - started
        _, found = hnsw.search(queries, k)
        rows.append(
            {
                "size": n,
                "backend": "faiss HNSWFlat (f32)",
                "build_s": round(build, 3),
                "query_ms": _latencies(lambda q: hnsw.search(q, k), queries),
                "recall_at_k": _recall(found, truth),
                "index_mib": round(faiss.serialize_index(hnsw).nbytes / 2**20, 2),
                "library_mib": installed_mib(LIBRARIES["faiss"]),
            }
        )
    return rows


def _bench_usearch(
    n: int, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int, threads: int
) -> dict[str, Any]:
    from usearch.index import Index

    from slimbert.index.build import USEARCH_DEFAULTS as P

    graph = Index(
        ndim=vectors.shape[1],
        metric="cos",
        dtype="f16",
        connectivity=P["connectivity"],
        expansion_add=P["expansion_add"],
        expansion_search=P["expansion_search"],
    )
    started = time.perf_counter()
    graph.add(np.arange(n), vectors.astype(np.float16), threads=threads)
    build = time.perf_counter() - started
    found = np.asarray(graph.search(queries, k, threads=threads).keys)
    return {
        "size": n,
        "backend": "usearch HNSW (f16)",
        "build_s": round(build, 3),
        "query_ms": _latencies(lambda q: graph.search(q, k), queries),
        "recall_at_k": _recall(found, truth),
        "index_mib": round(len(graph.save() or b"") / 2**20, 2),
        "library_mib": installed_mib(LIBRARIES["usearch"]),
    }


def run_index_bench(options: IndexBenchOptions, *, save: bool = True) -> dict[str, Any]:
    """Measure every backend at every size; write ``index.json`` and ``index.md``."""
    from slimbert.lab.benchmarks import machine_info, save_results

    rows = [row for n in options.sizes for row in _bench_size(n, options)]
    report: dict[str, Any] = {
        "benchmark": "index",
        "settings": {**options.to_dict(), "results": str(options.results)},
        "machine": machine_info(),
        "versions": {name: _version(name) for name in ("numpy", "usearch", "numkong", "faiss-cpu")},
        "rows": rows,
    }
    if save:
        save_results(Path(options.results), "index", report, index_markdown(report))
    return report


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def index_markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        "# Duplicate index: exact numpy vs usearch vs faiss",
        "",
        f"{s['dim']}-d clustered unit vectors, {s['queries']} near-duplicate queries one at a "
        f"time, k={s['k']}, {s['threads']} thread(s); recall@k against exact search. "
        "Library = installed size it adds to a function (numpy is there already).",
        "",
        "| texts | backend | build s | query p50 ms | query p99 ms | recall@k | index MiB | "
        "library MiB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lib = "n/a" if r["library_mib"] is None else f"{r['library_mib']:.1f}"
        lines.append(
            f"| {r['size']:,} | {r['backend']} | {r['build_s']:.2f} | {r['query_ms']['p50']:.3f}"
            f" | {r['query_ms']['p99']:.3f} | {r['recall_at_k']:.3f} | {r['index_mib']:.1f} | "
            f"{lib} |"
        )
    return "\n".join(lines) + "\n"


__all__ = ["IndexBenchOptions", "index_markdown", "run_index_bench"]
