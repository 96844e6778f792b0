"""Texts per model run inside the function: CPU per text and batch-mate dependence.

Measures what docs/serving.md ("Batched requests") quotes: for requests of 8, 32 and 64 texts
drawn from tweets3 test, the median time per request when the bundle runs them in chunks of
1, 4, 8, 16 or 32 (length-sorted), and how many labels change between a text sent alone and
the same text in one padded run of 32.

    python bench/chunking.py [BUNDLE] [THREADS]      # default runs/sentiment/bundle, 1
"""

from __future__ import annotations

import random
import statistics
import sys
import time

import numpy as np

from slimbert.data.load import load_texts
from slimbert.runtime import load_bundle


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "runs/sentiment/bundle"
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    texts = load_texts("tweets3:test").texts
    rng = random.Random(0)
    bundles = {b: load_bundle(path, threads=threads, batch_size=b) for b in (1, 4, 8, 16, 32)}
    print(f"| texts per request | chunk | ms per request | ms per text |  ({threads} thread(s))")
    print("|---:|---:|---:|---:|")
    for k in (8, 32, 64):
        requests = [rng.sample(texts, k) for _ in range(60)]
        for bundle in bundles.values():
            bundle.logits(requests[0])  # warm-up: first runs allocate
        for b, bundle in bundles.items():
            times = []
            for request in requests:
                start = time.perf_counter()
                bundle.logits(request)
                times.append((time.perf_counter() - start) * 1e3)
            median = statistics.median(times)
            print(f"| {k} | {b} | {median:.1f} | {median / k:.2f} |")
    batched, flips, worst = bundles[32], 0, 0.0
    for _ in range(30):
        request = rng.sample(texts, 32)
        together = batched.logits(request)
        alone = np.stack([batched.logits([t])[0] for t in request])
        worst = max(worst, float(np.abs(together - alone).max()))
        flips += int((together.argmax(1) != alone.argmax(1)).sum())
    print(f"\none padded run of 32 vs each text alone: {flips} of 960 labels differ, ", end="")
    print(f"largest logit change {worst:.3f}")


if __name__ == "__main__":
    main()
