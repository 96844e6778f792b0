"""Stage ``invoke``: prove a Lambda zip works by invoking it as Lambda would, on this machine.

The zip is unzipped into a clean folder and served by the AWS Lambda Runtime Interface
Emulator + ``awslambdaric`` on Python 3.12 (``slimbert.deploy.local``). The first request is
the cold start; then ``requests`` real texts are sent one at a time as function-URL events,
and a malformed request checks that the function answers 400 and keeps serving. The answers
are compared with the bundle's own predictions in this process.

A zip built for another architecture than this machine's (``--arch arm64`` on x86_64) runs
under qemu-user (see ``slimbert.deploy.toolchain.emulator``): its answers are checked, its
timings and memory are not reported, as they would measure the emulator.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from slimbert.config import Options, check

# Every zip `slimbert package --target aws-lambda` writes holds the serving entry point.
from slimbert.deploy.platforms import HANDLER_MEMBER
from slimbert.errors import SlimbertError
from slimbert.io import claim_report, write_report


@dataclasses.dataclass(frozen=True)
class InvokeOptions(Options):
    stage: ClassVar[str] = "invoke"

    package: Path = Path("runs/package/slimbert-aws-lambda-x86_64.zip")
    bundle: Path | None = None  # when given, answers are checked against it
    data: str = "tweets3:test"
    text_column: str = "text"
    requests: int = 50
    out: Path = Path("runs/invoke.json")
    arch: Literal["x86_64", "arm64"] | None = None  # the zip's; checked; None: read from it

    def validate(self) -> None:
        check(self.requests >= 1, "requests must be at least 1")


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of ``pid``'s process tree's largest member, in MB."""
    peak = None
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            # A child belongs to the thread that forked it: read every thread's list.
            children = [
                c
                for t in Path(f"/proc/{current}/task").iterdir()
                for c in (t / "children").read_text().split()
            ]
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                kb = int(line.split()[1])
                peak = max(peak or 0.0, kb / 1024)
        stack.extend(int(c) for c in children)
    return peak


def check_package_zip(package: Path) -> None:
    """Fail in one line, with a hint, on a ``package`` that is not a Lambda zip slimbert wrote."""
    import zipfile

    package = Path(package)
    hint = "pass the .zip that `slimbert package --target aws-lambda` wrote"
    if package.is_dir():
        raise SlimbertError(f"package {package} is a folder, not a zip file", hint=hint)
    if not package.is_file():
        raise SlimbertError(
            f"package {package} does not exist", hint="build it with `slimbert package`"
        )
    if not zipfile.is_zipfile(package):
        raise SlimbertError(f"package {package} is not a zip file", hint=hint)
    try:
        with zipfile.ZipFile(package) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise SlimbertError(
            f"package {package} cannot be read as a zip: {exc}", hint=hint
        ) from None
    if HANDLER_MEMBER not in names:
        raise SlimbertError(
            f"package {package} is a zip without {HANDLER_MEMBER}: not a slimbert Lambda package",
            hint=hint,
        )


def invoke_package(options: InvokeOptions) -> dict[str, Any]:
    """Invoke the zip ``options.package`` through the local emulator; write ``options.out``.

    Checked before anything starts: the package is a slimbert Lambda zip, and ``out`` is
    missing or an invoke report slimbert wrote (a user's file of that name is never replaced).
    """
    from slimbert.data.load import load_texts
    from slimbert.data.pairs import distinct_sentences, is_pair_spec
    from slimbert.deploy.local import LocalLambda, function_url_event

    check_package_zip(options.package)
    claim_report(options.out, "invoke report")
    if is_pair_spec(options.data):  # an embedder's data: the sentences of a pair set
        texts = distinct_sentences(options.data, limit=options.requests)
    else:
        texts = load_texts(options.data, text_column=options.text_column, label_column=None).texts
    texts = texts[: options.requests]
    answers: list[Any] = []  # labels (classifiers) or vectors (embedders)
    probabilities: list[dict[str, float]] = []
    client_ms: list[float] = []
    function_ms: list[float] = []
    with LocalLambda(options.package, arch=options.arch) as fn:
        first, cold_ms = fn.invoke(function_url_event({"text": texts[0]}))
        if first.get("statusCode") != 200:
            raise SlimbertError(f"the function's first answer was {first}", hint=fn.log_tail())
        for text in texts:
            answer, ms = fn.invoke(function_url_event({"text": text}))
            body = json.loads(answer["body"])
            if "predictions" in body:
                answers.append(body["predictions"][0]["label"])
                probabilities.append(body["predictions"][0].get("probabilities") or {})
            else:
                answers.append(body["embeddings"][0])
            client_ms.append(ms)
            function_ms.append(body["timing_ms"]["total"])
        bad, _ = fn.invoke(function_url_event("{not json"))
        after_bad, _ = fn.invoke(function_url_event({"text": texts[0]}))
        rss = peak_rss_mb(fn.pid) if fn.pid else None
        emulated = fn.emulated
    result: dict[str, Any] = {
        "package": str(options.package),
        "package_mb": options.package.stat().st_size / 1e6,
        "requests": len(texts),
        "cold_start_ms": cold_ms,
        "cold_start_process_ms": (fn.cold_start_s or 0) * 1e3,
        "client_ms": _q(client_ms),
        "function_ms": _q(function_ms),
        "bad_request_status": bad.get("statusCode"),
        "serves_after_bad_request": after_bad.get("statusCode") == 200,
        "peak_rss_mb": rss,
    }
    if emulated:  # the emulator's speed and memory, not the function's: left out
        for key in ("cold_start_ms", "cold_start_process_ms", "client_ms", "function_ms"):
            result[key] = None
        result["peak_rss_mb"] = None
        result["emulated"] = True
    if options.bundle is not None:
        from slimbert.runtime import load_bundle

        bundle = load_bundle(options.bundle)
        if bundle.task == "embedding":
            # The function rounds its JSON numbers; equal up to that rounding is agreement.
            got = np.asarray(answers, dtype=np.float64)
            # One text at a time, as the function was asked: dynamic int8 quantisation scales
            # activations per batch, so a padded batch of 20 gives slightly different vectors.
            want = np.vstack([bundle.embed([t]) for t in texts]).astype(np.float64)
            cosine = np.sum(got * want, axis=1) / (
                np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1)
            )
            result["min_cosine_with_bundle"] = float(cosine.min())
            result["agreement_with_bundle"] = float(np.mean(cosine > 0.9999))
        else:
            # One text at a time, as the function was asked (int8 scales per batch).
            wanted = [bundle.predict([t])[0] for t in texts]
            result["agreement_with_bundle"] = float(
                np.mean([a == w["label"] for a, w in zip(answers, wanted, strict=True)])
            )
            result["max_probability_diff_with_bundle"] = max(
                abs(got[label] - p)
                for got, w in zip(probabilities, wanted, strict=True)
                for label, p in w["probabilities"].items()
            )
    write_report(options.out, result, "invoke report")
    return result


def _q(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {f"p{q}": float(np.percentile(a, q)) for q in (50, 95, 99)} | {"mean": float(a.mean())}
