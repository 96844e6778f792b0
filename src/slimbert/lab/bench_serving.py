"""``slimbert bench serving``: cold start, warm latency and handler overhead, side by side.

The student bundle under onnxruntime (what the function runs) against the same job done the
standard way, with torch + transformers, measured in one run on one machine:

* cold start: a fresh Python process imports the function's handler, which loads the model,
  and answers its first request (wall clock from spawn to answer, median and p90 over
  ``cold_runs``), with the function's own budget by phase (:mod:`slimbert.runtime.phases`)
  as a table and a stacked bar plot (:mod:`slimbert.lab.coldstart`);
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
from slimbert.lab.benchmarks import machine_info, results_dir, save_results
from slimbert.lab.coldstart import phase_medians, phase_table, plot_phases
from slimbert.metrics import quantiles
from slimbert.runtime.bundle import model_bytes
from slimbert.runtime.phases import LAUNCHED_AT_ENV, read_phase_lines

# The phases of loading the model once the imports are done (imports are import_ms).
LOAD_PHASES = ("manifest", "verify", "tokenizer", "session", "index")
COLD_PLOT = "serving_coldstart.png"

# The function's cold start, as Lambda runs it: a fresh Python imports the handler, which loads
# the bundle at import (AWS_LAMBDA_FUNCTION_NAME is set), and answers one function-URL event.
# The handler reports its phases on stderr (slimbert.runtime.phases); the answer line on stdout
# ends the wall clock.
_BUNDLE_COLD = """
import json, sys
import slimbert.runtime.handler as h
event = {{"version": "2.0", "requestContext": {{"http": {{"method": "POST"}}}},
          "body": json.dumps({{"text": sys.argv[1]}}), "isBase64Encoded": False}}
out = h.lambda_handler(event, None)
assert out["statusCode"] == 200, out
print(json.dumps({{"heavy": [m for m in ("torch", "transformers") if m in sys.modules]}}),
      flush=True)
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
print(json.dumps({{"import": t1 - t0, "load": t2 - t1, "first": t3 - t2}}), flush=True)
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


def _function_env(bundle: Path, threads: int) -> dict[str, str]:
    """The cold probe's environment: the function's, as `slimbert package` configures it."""
    from slimbert.runtime.bundle import manifest_digest

    return {
        "AWS_LAMBDA_FUNCTION_NAME": "slimbert-bench-serving",  # load at import, as in INIT
        "SLIMBERT_BUNDLE": str(bundle),
        "SLIMBERT_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        # The template pins the manifest's digest; the function then checks the file sizes.
        "SLIMBERT_MANIFEST_SHA256": manifest_digest(bundle),
    }


def _cold(
    script: str, args: list[str], runs: int, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """``runs`` fresh processes of ``script``: wall clock from spawn to its answer line (the
    last line it prints), and, for the function, the phases it reports on stderr."""
    base = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    walls, parts, phases = [], [], []
    for _ in range(runs):
        run_env = {**base, **(env or {})}
        start = time.perf_counter()
        if env is not None:
            run_env[LAUNCHED_AT_ENV] = repr(time.time())  # the interpreter phase's start
        child = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=run_env,
        )
        assert child.stdout is not None
        answer = child.stdout.readline()  # printed once the answer is there
        wall = (time.perf_counter() - start) * 1e3
        _, stderr = child.communicate()
        if child.returncode != 0 or not answer.strip():
            raise ModelError(f"cold-start probe failed: {stderr.strip().splitlines()[-1:]}")
        walls.append(wall)
        parts.append(json.loads(answer))
        phases += read_phase_lines(stderr)[:1]
    result: dict[str, Any] = {"wall_ms": quantiles(walls)}
    if phases:
        medians = phase_medians(phases)
        result.update(
            {
                "import_ms": sum(v for k, v in medians.items() if k.startswith("import_")),
                "load_ms": sum(medians.get(k, 0.0) for k in LOAD_PHASES),
                "first_prediction_ms": medians.get("first_request", 0.0),
                "phases_ms": {k: v for k, v in medians.items() if k != "total"},
                "phases_total_ms": medians["total"],
                "runs": phases,
            }
        )
    else:
        for key, part in (("import_ms", "import"), ("load_ms", "load")):
            result[key] = float(np.median([p[part] for p in parts]) * 1e3)
        result["first_prediction_ms"] = float(np.median([p["first"] for p in parts]) * 1e3)
    result["heavy_modules"] = sorted({m for p in parts for m in p.get("heavy", [])})
    return result


def _warm(call: Any, runs: int) -> dict[str, float]:
    for _ in range(min(50, runs)):
        call()
    ms = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        ms.append((time.perf_counter() - start) * 1e3)
    return quantiles(ms)


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
        _BUNDLE_COLD.format(),
        [tweet],
        options.cold_runs,
        env=_function_env(options.bundle, options.threads),
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
    handler.PHASES.silence()  # this process is no cold start: no phase lines from it
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
    handler_total = quantiles(totals)
    overhead = 1 - float(np.median(inference)) / handler_total["p50"]

    report = {
        "benchmark": "serving",
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "machine": machine_info(),
        "options": options.to_dict(),
        "tweet": tweet,
        "tweet_tokens": tokens,
        "bundle_variant": bundle.manifest.get("variant"),
        "bundle_model_mb": model_bytes(bundle.manifest) / 1e6,
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
    out = results_dir(options.results)
    if cold_bundle.get("runs"):
        title = f"{options.bundle}: cold start by phase, median of {options.cold_runs}"
        plot_phases(cold_bundle["runs"], out / COLD_PLOT, title=title)
        cold_bundle["plot"] = COLD_PLOT
    save_results(options.results, "serving", report, serving_markdown(report), out=out)
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
            *_phase_section(cb),
        ]
    )


def _phase_section(cold: dict[str, Any]) -> list[str]:
    """The function's cold start by phase, as it reported it (slimbert.runtime.phases)."""
    if not cold.get("runs"):
        return []
    lines = [
        "## Cold start by phase (the function's own account)",
        "",
        "Each cold start is a fresh Python running the Lambda handler with the packaged "
        "function's environment (the model loads at import, the manifest's digest pinned); "
        "the handler reports each phase on stderr (`SLIMBERT_INIT` / `SLIMBERT_FIRST`). The "
        f"phases add up to {cold['phases_total_ms']:.0f} ms (median); the wall clock from "
        f"spawn to answer is {cold['wall_ms']['p50']:.0f} ms.",
        "",
        phase_table(cold["runs"]),
    ]
    if cold.get("plot"):
        lines += [f"![cold start by phase]({cold['plot']})", ""]
    return lines
