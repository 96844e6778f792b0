"""Generated requests against both entry points: every answer is a 200, 400 or 405, never a 5xx,
never an exception, never a traceback in the log.

* ``test_lambda_handler_property`` and ``test_gcp_handler_property`` (hypothesis, default suite):
  JSON values of every kind (lone surrogates included), bodies that are not strings, base64,
  odd methods, chunked and declared bodies.
* ``test_ten_thousand_generated_events`` (slow): a seeded mix of 10,000 events over the direct
  invoke, API Gateway v1 and v2, function URL and GCP shapes plus edge cases; it prints the
  counts per path and status (``pytest -m slow tests/test_handler_fuzz.py -s``).
"""

from __future__ import annotations

import base64
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from runtime_fixtures import CUES, FILLER, LABELS, build_bundle  # noqa: E402

MAX_TEXTS, MAX_CHARS, MAX_BODY = 8, 200, 4000
ALLOWED = {200, 400, 405}


@pytest.fixture(scope="module")
def handler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    bundle = build_bundle(tmp_path_factory.mktemp("fuzz") / "bundle")
    patch = pytest.MonkeyPatch()
    patch.setenv("SLIMBERT_BUNDLE", str(bundle))
    patch.setenv("SLIMBERT_THREADS", "1")
    patch.setenv("SLIMBERT_MAX_TEXTS", str(MAX_TEXTS))
    patch.setenv("SLIMBERT_MAX_CHARS", str(MAX_CHARS))
    patch.setenv("SLIMBERT_MAX_BODY_BYTES", str(MAX_BODY))
    patch.delenv("SLIMBERT_MANIFEST_SHA256", raising=False)
    import slimbert.runtime.handler as module

    assert module.reload() is not None
    yield module
    patch.undo()
    module.reload()


class Stream:
    """A WSGI input as flask hands it over: reads return at most what is asked, often less."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.position, self.step = data, 0, max(1, step)

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else min(len(self.data), self.position + min(n, self.step))
        chunk, self.position = self.data[self.position : end], end
        return chunk


class FlaskLike:
    def __init__(self, body: bytes, method: str, chunked: bool, step: int) -> None:
        self.method = method
        self.headers = {"Function-Execution-Id": "fuzz"}
        self.content_length = None if chunked else len(body)
        self.stream = Stream(body, step)


def check_lambda(handler: ModuleType, event: Any) -> int:
    """Call lambda_handler; assert the answer's shape; return its status."""
    out = handler.lambda_handler(event, None)
    assert isinstance(out, dict)
    if "body" in out and "statusCode" in out and "headers" in out:  # an HTTP event
        status = out["statusCode"]
        data = json.loads(out["body"])
    else:
        status, data = out.get("statusCode", 200), out
        json.dumps(data)  # what Lambda will serialise
    assert status in ALLOWED, data
    assert data["request_id"]
    if status == 200 and "predictions" in data:
        assert all(p["label"] in LABELS for p in data["predictions"])
    elif status != 200:
        assert isinstance(data["error"], str) and data["error"]
    return int(status)


def check_gcp(handler: ModuleType, request: FlaskLike) -> int:
    body, status, headers = handler.gcp_handler(request)
    text = body if isinstance(body, str) else "".join(body)
    data = json.loads(text)
    assert status in ALLOWED, data
    assert headers["content-type"] == "application/json"
    # Never more than the limit + 1 byte of the body is read, declared or chunked.
    assert request.stream.position <= MAX_BODY + 1
    if not isinstance(body, str):
        assert headers["content-length"] == str(len(text.encode()))
    return int(status)


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    traced = [r.getMessage() for r in caplog.records if r.exc_info]
    assert not traced, traced


# -- hypothesis: the default suite ----------------------------------------------------------

# Every code point, lone surrogates included (hypothesis leaves category Cs out by default).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
words = st.lists(st.sampled_from(FILLER + [w for ws in CUES.values() for w in ws]), max_size=6)
good_text = words.map(" ".join)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
)
json_value = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
texts_value = st.lists(st.one_of(good_text, any_text, scalar), max_size=MAX_TEXTS + 2)
request_object = st.one_of(
    st.fixed_dictionaries({"texts": st.lists(good_text, min_size=1, max_size=MAX_TEXTS)}),
    st.fixed_dictionaries({"texts": texts_value}),
    st.fixed_dictionaries({"text": st.one_of(good_text, any_text, json_value)}),
    st.fixed_dictionaries(
        {"texts": texts_value},
        optional={"text": json_value, "duplicates": json_value, "top_k": json_value},
    ),
    json_value,
)
method = st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "post", "", "OPTIONS"])


def _encode(payload: Any, how: str) -> Any:
    if how == "json":
        return json.dumps(payload)
    if how == "raw-utf8":
        return json.dumps(payload, ensure_ascii=False)
    if how == "base64":
        return base64.b64encode(json.dumps(payload).encode()).decode()
    return payload  # "value": the object itself as the body, as hand-made events do


@st.composite
def lambda_event(draw: st.DrawFn) -> Any:
    payload = draw(request_object)
    shape = draw(st.sampled_from(["direct", "v1", "v2", "url"]))
    if shape == "direct":
        return payload
    how = draw(st.sampled_from(["json", "json", "raw-utf8", "base64", "value"]))
    body = _encode(payload, how)
    if draw(st.booleans()) and how != "value":
        body = draw(st.one_of(any_text, st.just(body[: len(body) // 2])))  # broken bodies
    flagged = how == "base64" or draw(st.integers(0, 9)) == 0
    if shape == "v1":
        return {
            "httpMethod": draw(method),
            "body": body,
            "isBase64Encoded": flagged,
            "requestContext": draw(st.one_of(st.just({"stage": "prod"}), json_value)),
        }
    return {
        "version": "2.0",
        "requestContext": {"http": {"method": draw(method)}, "domainName": "x"},
        "body": body,
        "isBase64Encoded": flagged,
        **({"routeKey": "$default"} if shape == "url" else {}),
    }


@st.composite
def gcp_request(draw: st.DrawFn) -> FlaskLike:
    payload = draw(request_object)
    how = draw(st.sampled_from(["json", "raw-utf8", "bytes"]))
    if how == "bytes":
        body = draw(st.binary(max_size=64))
    else:
        body = _encode(payload, how).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        body += b" " * MAX_BODY  # over the limit
    return FlaskLike(body, draw(method), draw(st.booleans()), draw(st.integers(1, 5000)))


FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the default suite stays reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(event=lambda_event())
def test_lambda_handler_property(
    handler: ModuleType, caplog: pytest.LogCaptureFixture, event: Any
) -> None:
    with caplog.at_level(logging.WARNING, logger="slimbert.runtime"):
        hypothesis.event(f"status {check_lambda(handler, event)}")
    no_tracebacks(caplog)


@FUZZ
@given(request=gcp_request())
def test_gcp_handler_property(
    handler: ModuleType, caplog: pytest.LogCaptureFixture, request: FlaskLike
) -> None:
    with caplog.at_level(logging.WARNING, logger="slimbert.runtime"):
        hypothesis.event(f"status {check_gcp(handler, request)}")
    no_tracebacks(caplog)


# -- 10,000 seeded events (slow) --------------------------------------------------------------

EDGE_TEXTS = [
    "\ud800",
    "good \udfff",
    "great \ud83d",
    "\ud83d\ude00 good",
    "",
    " ",
    "\x00",
    "bad\x00awful",
    "\u202egood\u202c",
    "e\u0301" * 40,
    "ｇｏｏｄ",
    "好" * 150,
    "good " * 39,
    "x" * (MAX_CHARS + 1),
    "\ufeffgood",
    "\U0010ffff",
    "\r\n\t",
]
EDGE_BODIES: list[Any] = [
    {"texts": ["a"]},
    5,
    1.5,
    True,
    ["good"],
    None,
    "",
    "{",
    "[" * 5000,
    '{"texts": ["\\ud800"]}',
    '{"texts": ["good"], "texts": 3}',
    '{"text": NaN}',
    "\ud800",
    "null",
    '"good"',
    '{"texts": []}',
]


def _text(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.6:
        return " ".join(rng.choice(FILLER + CUES[rng.choice(LABELS)]) for _ in range(8))
    if roll < 0.9:
        return rng.choice(EDGE_TEXTS)
    if roll < 0.95:
        return "".join(chr(rng.randrange(0x110000)) for _ in range(rng.randrange(1, 20)))
    return rng.choice([None, 3, 2.5, [], {}, True])


def _payload(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.55:
        return {"texts": [_text(rng) for _ in range(rng.randrange(1, MAX_TEXTS + 1))]}
    if roll < 0.7:
        return {"text": _text(rng)}
    if roll < 0.75:
        return {"texts": [_text(rng)] * (MAX_TEXTS + 1)}
    if roll < 0.8:
        return {"texts": ["good"], "pad": "é" * rng.randrange(MAX_BODY // 3, MAX_BODY)}
    if roll < 0.85:
        return {"texts": ["good"], "duplicates": rng.choice([True, 1, "x"]), "top_k": 2}
    if roll < 0.9:
        return {"texts": ["a"], "text": "b"}
    return rng.choice([[], "good", 3, None, {"texts": "good"}, {"other": 1}])


def generated_events(n: int, seed: int = 11) -> Iterator[tuple[str, Any]]:
    """``(path, event)`` pairs: direct, v1, v2, url, gcp and edge shapes, reproducibly."""
    rng = random.Random(seed)
    for _ in range(n):
        path = rng.choice(["direct", "v1", "v2", "url", "gcp", "edge"])
        payload = _payload(rng)
        methods = ["POST"] * 8 + ["GET", "DELETE"]
        if path == "direct":
            yield path, payload
            continue
        text = json.dumps(payload, ensure_ascii=rng.random() < 0.5)
        if path == "gcp":
            data = text.encode("utf-8", "surrogatepass")
            if rng.random() < 0.05:
                data = b'{"texts": ["' + b"a" * rng.randrange(MAX_BODY, 40 * MAX_BODY) + b'"]}'
            chunked, step = rng.random() < 0.5, rng.randrange(1, 9000)
            yield path, FlaskLike(data, rng.choice(methods), chunked, step)
            continue
        b64 = rng.random() < 0.15
        body: Any = (
            base64.b64encode(text.encode("utf-8", "surrogatepass")).decode() if b64 else text
        )
        if path == "edge":
            body, b64 = rng.choice(EDGE_BODIES), rng.random() < 0.1
        if path in ("v1", "edge"):
            yield path, {"httpMethod": rng.choice(methods), "body": body, "isBase64Encoded": b64}
        else:
            context = {"http": {"method": rng.choice(methods)}}
            event = {"version": "2.0", "requestContext": context, "body": body}
            yield path, {**event, "isBase64Encoded": b64, "rawPath": "/"}


@pytest.mark.slow
def test_ten_thousand_generated_events(
    handler: ModuleType, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    counts: Counter[tuple[str, int]] = Counter()
    escaped: list[str] = []
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="slimbert.runtime"):
        for path, event in generated_events(10_000):
            try:
                if path == "gcp":
                    status = check_gcp(handler, event)
                else:
                    status = check_lambda(handler, event)
            except AssertionError:
                raise
            except Exception as exc:  # counted, then the test fails below
                escaped.append(f"{path}: {type(exc).__name__}: {exc}")
                continue
            counts[path, status] += 1
    seconds = time.perf_counter() - started
    summary = {
        "events": sum(counts.values()) + len(escaped),
        "seconds": round(seconds, 2),
        "by_status": dict(Counter({s: n for (_, s), n in counts.items()} or {})),
        "by_path": {
            p: {str(s): n for (q, s), n in sorted(counts.items()) if q == p}
            for p in sorted({p for p, _ in counts})
        },
        "server_errors": sum(n for (_, s), n in counts.items() if s >= 500),
        "escaped_exceptions": len(escaped),
        "tracebacks_logged": sum(1 for r in caplog.records if r.exc_info),
    }
    totals: Counter[int] = Counter()
    for (_, status), n in counts.items():
        totals[status] += n
    summary["by_status"] = {str(s): n for s, n in sorted(totals.items())}
    print(json.dumps(summary, indent=1))
    (tmp_path / "fuzz-summary.json").write_text(json.dumps(summary))
    assert summary["events"] == 10_000
    assert escaped == []
    assert summary["server_errors"] == 0 and summary["tracebacks_logged"] == 0
    # The mix reaches the model, not only the refusals.
    assert totals[200] > 2000 and totals[400] > 2000
