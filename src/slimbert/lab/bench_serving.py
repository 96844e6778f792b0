"""``slimbert bench serving``: cold start, warm latency and handler overhead, side by side.

The student bundle under onnxruntime (what the function runs) against the same job done the
standard way, with torch + transformers, measured in one run on one machine:

* cold start: a fresh Python process imports the runtime, loads the model and answers its
  first prediction (wall clock from spawn to answer, median and p90 over ``cold_runs``);
* warm latency: batch 1, ``threads`` threads, one tweet of about ``tweet_tokens`` tokens,
  after warm-up (p50/p95/p99 over ``warm_runs``);
* handler overhead: the Lambda handler on a function-URL event (JSON parsing, tokenising,
  validation, response JSON) against the bundle's own inference time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from slimbert.config import Options, check
from slimbert.errors import ModelError
from slimbert.lab.benchmarks import machine_info, save_results

_BUNDLE_COLD = """
import time, json, sys
t0 = time.perf_counter()
from slimbert.runtime import load_bundle
t1 = time.perf_counter()
b = load_bundle(sys.argv[1], threads={threads})
t2 = time.perf_counter()
b.predict([sys.argv[2]])
t3 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "load": t2 - t1, "first": t3 - t2,
  "heavy": [m for m in ("torch", "transformers") if m in sys.modules]}}))
"""

_TORCH_COLD = """
import time, json, sys
t0 = time.perf_counter()
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
torch.set_num_threads({threads})
t1 = time.perf_counter()
tok = AutoTokenizer.from_pretrained(sys.argv[1])
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1]).eval()
t2 = time.perf_counter()
with torch.inference_mode():
    model(**tok([sys.argv[2]], return_tensors="pt")).logits.softmax(-1)
t3 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "load": t2 - t1, "first": t3 - t2}}))
"""


@dataclasses.dataclass(frozen=True)
class ServingBenchOptions(Options):
    stage: ClassVar[str] = "bench-serving"

    bundle: Path = Path("runs/sentiment/bundle")
    teacher: Path = Path("runs/sentiment/teacher")
    data: str = "tweets3:test"
    tweet_tokens: int = 25
    threads: int = 1
    cold_runs: int = 10
    warm_runs: int = 500
    results: Path = Path("bench/results")

    def validate(self) -> None:
        check(self.cold_runs >= 1, "cold_runs must be at least 1")
        check(self.warm_runs >= 10, "warm_runs must be at least 10")
        check(self.threads >= 1, "threads must be at least 1")


def _quantiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)),
        "mean": float(a.mean()),
        "n": len(ms),
    }


def _cold(script: str, args: list[str], runs: int) -> dict[str, Any]:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    walls, parts = [], []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env
        )
        walls.append((time.perf_counter() - start) * 1e3)
        if done.returncode != 0:
            raise ModelError(f"cold-start probe failed: {done.stderr.strip().splitlines()[-1:]}")
        parts.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        "wall_ms": _quantiles(walls),
        "import_ms": float(np.median([p["import"] for p in parts]) * 1e3),
        "load_ms": float(np.median([p["load"] for p in parts]) * 1e3),
        "first_prediction_ms": float(np.median([p["first"] for p in parts]) * 1e3),
        "heavy_modules": sorted({m for p in parts for m in p.get("heavy", [])}),
    }


def _warm(call: Any, runs: int) -> dict[str, float]:
    for _ in range(min(50, runs)):
        call()
    ms = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        ms.append((time.perf_counter() - start) * 1e3)
    return _quantiles(ms)


def pick_tweet(texts: list[str], token_lengths: list[int], target: int) -> str:
    best = min(range(len(texts)), key=lambda i: (abs(token_lengths[i] - target), i))
    return texts[best]


def run_serving_bench(options: ServingBenchOptions) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from slimbert.data.load import load_texts
    from slimbert.runtime import handler, load_bundle

    bundle = load_bundle(options.bundle, threads=options.threads)
    texts = load_texts(options.data, label_column=None).texts[:2000]
    tweet = pick_tweet(texts, bundle.token_lengths(texts), options.tweet_tokens)
    tokens = bundle.token_lengths([tweet])[0]

    cold_bundle = _cold(
        _BUNDLE_COLD.format(threads=options.threads),
        [str(options.bundle), tweet],
        options.cold_runs,
    )
    cold_torch = _cold(
        _TORCH_COLD.format(threads=options.threads),
        [str(options.teacher), tweet],
        options.cold_runs,
    )

    warm_bundle = _warm(lambda: bundle.predict([tweet]), options.warm_runs)
    torch.set_num_threads(options.threads)
    tok = AutoTokenizer.from_pretrained(options.teacher)
    model = AutoModelForSequenceClassification.from_pretrained(options.teacher).eval()

    def torch_predict() -> None:
        with torch.inference_mode():
            model(**tok([tweet], return_tensors="pt")).logits.softmax(-1)

    warm_torch = _warm(torch_predict, options.warm_runs)

    # The handler as the platform calls it: a function-URL event with a JSON body.
    os.environ["SLIMBERT_THREADS"] = str(options.threads)
    handler.reload(options.bundle)
    event = {
        "version": "2.0",
        "requestContext": {"http": {"method": "POST"}},
        "body": json.dumps({"text": tweet}),
        "isBase64Encoded": False,
    }
    totals, inference = [], []
    for i in range(options.warm_runs + 50):
        start = time.perf_counter()
        response = handler.lambda_handler(event, None)
        elapsed = (time.perf_counter() - start) * 1e3
        if response["statusCode"] != 200:
            raise ModelError(f"handler answered {response['statusCode']}: {response['body']}")
        if i >= 50:
            totals.append(elapsed)
            inference.append(json.loads(response["body"])["timing_ms"]["inference"])
    handler_total = _quantiles(totals)
    overhead = 1 - float(np.median(inference)) / handler_total["p50"]

    report = {
        "benchmark": "serving",
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "machine": machine_info(),
        "options": options.to_dict(),
        "tweet": tweet,
        "tweet_tokens": tokens,
        "bundle_variant": bundle.manifest.get("variant"),
        "bundle_model_mb": bundle.manifest["files"][bundle.manifest["model_file"]]["bytes"] / 1e6,
        "cold_start": {"bundle": cold_bundle, "torch_teacher": cold_torch},
        "warm_ms": {"bundle": warm_bundle, "torch_teacher": warm_torch},
        "handler_ms": handler_total,
        "handler_overhead_fraction": overhead,
        "ratios": {
            "cold_start_teacher_over_bundle": cold_torch["wall_ms"]["p50"]
            / cold_bundle["wall_ms"]["p50"],
            "warm_p50_teacher_over_bundle": warm_torch["p50"] / warm_bundle["p50"],
        },
    }
    save_results(options.results, "serving", report, serving_markdown(report))
    return report


def serving_markdown(r: dict[str, Any]) -> str:
    cb, ct = r["cold_start"]["bundle"], r["cold_start"]["torch_teacher"]
    wb, wt = r["warm_ms"]["bundle"], r["warm_ms"]["torch_teacher"]
    o = r["options"]
    return "\n".join(
        [
            "# Serving benchmark",
            "",
            f"Bundle `{o['bundle']}` ({r['bundle_variant']}, {r['bundle_model_mb']:.1f} MB) "
            f"against the torch + transformers teacher `{o['teacher']}`; {o['threads']} thread(s); "
            f"a {r['tweet_tokens']}-token tweet; {r['machine']['cpus_usable']} CPUs.",
            "",
            "| | student bundle (onnxruntime) | teacher (torch + transformers) | ratio |",
            "|---|---:|---:|---:|",
            f"| cold start p50 (ms) | {cb['wall_ms']['p50']:.0f} | {ct['wall_ms']['p50']:.0f} "
            f"| {r['ratios']['cold_start_teacher_over_bundle']:.1f}x |",
            f"| cold start p90 (ms) | {cb['wall_ms']['p90']:.0f} | {ct['wall_ms']['p90']:.0f} | |",
            f"| of which import / load / first (ms) | {cb['import_ms']:.0f} / {cb['load_ms']:.0f}"
            f" / {cb['first_prediction_ms']:.0f} | {ct['import_ms']:.0f} / {ct['load_ms']:.0f} / "
            f"{ct['first_prediction_ms']:.0f} | |",
            f"| warm p50 (ms) | {wb['p50']:.2f} | {wt['p50']:.2f} "
            f"| {r['ratios']['warm_p50_teacher_over_bundle']:.1f}x |",
            f"| warm p99 (ms) | {wb['p99']:.2f} | {wt['p99']:.2f} | |",
            "",
            f"Handler (function-URL event, JSON in and out): p50 {r['handler_ms']['p50']:.2f} ms, "
            f"overhead beyond inference {r['handler_overhead_fraction']:.1%} of the total.",
            f"Cold-start processes imported torch/transformers: {cb['heavy_modules'] or 'none'}.",
            "",
        ]
    )
