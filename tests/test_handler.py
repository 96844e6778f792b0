"""slimbert.runtime.handler: every event shape, every refusal, failures that never escape."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from runtime_fixtures import LABELS, build_bundle
from slimbert.errors import SlimbertError


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("handler") / "bundle")


@pytest.fixture(scope="module")
def embedding_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("handler") / "embedding", task="embedding")


@pytest.fixture
def handler(bundle_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The handler module serving the toy classifier with small limits; reset afterwards."""
    monkeypatch.setenv("SLIMBERT_BUNDLE", str(bundle_dir))
    monkeypatch.setenv("SLIMBERT_THREADS", "1")
    monkeypatch.setenv("SLIMBERT_MAX_TEXTS", "4")
    monkeypatch.setenv("SLIMBERT_MAX_CHARS", "50")
    monkeypatch.setenv("SLIMBERT_MAX_BODY_BYTES", "1000")
    import slimbert.runtime.handler as module

    assert module.reload() is not None
    yield module
    monkeypatch.undo()
    module.reload()  # back to whatever the environment says (usually: no bundle)


CONTEXT = SimpleNamespace(aws_request_id="req-123")
GOOD = {"texts": ["good great", "bad awful", "table chair"]}
WANT = ["positive", "negative", "neutral"]


def v1_event(body: str | None, *, method: str = "POST", b64: bool = False) -> dict[str, Any]:
    return {
        "resource": "/predict",
        "path": "/predict",
        "httpMethod": method,
        "headers": {"content-type": "application/json"},
        "requestContext": {"requestId": "apigw-1", "stage": "prod"},
        "body": body,
        "isBase64Encoded": b64,
    }


def v2_event(body: str | None, *, method: str = "POST", b64: bool = False, url: bool = False):
    return {
        "version": "2.0",
        "routeKey": "$default" if url else "POST /predict",
        "rawPath": "/",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "domainName": "abc.lambda-url.eu-west-1.on.aws" if url else "abc.execute-api.aws",
            "http": {"method": method, "path": "/", "protocol": "HTTP/1.1"},
            "requestId": "rc-1",
        },
        "body": body,
        "isBase64Encoded": b64,
    }


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def http_json(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    assert response["headers"]["content-type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def labels_of(data: dict[str, Any]) -> list[str]:
    return [p["label"] for p in data["predictions"]]


# -- event shapes ---------------------------------------------------------------------------


def test_direct_invoke_texts(handler: ModuleType) -> None:
    out = handler.lambda_handler(GOOD, CONTEXT)
    assert "statusCode" not in out
    assert labels_of(out) == WANT
    assert out["model"] == "toy/sentiment:fp32"
    assert out["request_id"] == "req-123"
    assert set(out["timing_ms"]) == {"tokenize", "inference", "total"}
    probabilities = out["predictions"][0]["probabilities"]
    assert list(probabilities) == LABELS
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_direct_invoke_single_text(handler: ModuleType) -> None:
    out = handler.lambda_handler({"text": "i love this"}, None)
    assert labels_of(out) == ["positive"]
    assert out["request_id"]  # generated when there is no Lambda context


def test_generated_request_ids_are_distinct(handler: ModuleType) -> None:
    ids = [handler.lambda_handler({"text": "good"}, None)["request_id"] for _ in range(3)]
    status, data = http_json(handler.lambda_handler(v2_event(json.dumps(GOOD)), None))
    ids.append(data["request_id"])
    assert status == 200 and len(set(ids)) == 4 and all(ids)


def test_probabilities_are_the_bundles_rounded(handler: ModuleType) -> None:
    # The handler computes them from the logits; they must agree with Bundle.predict.
    out = handler.lambda_handler(GOOD, CONTEXT)
    want = handler.BUNDLE.predict(GOOD["texts"])
    for got, expected in zip(out["predictions"], want, strict=True):
        assert got["label"] == expected["label"]
        assert list(got["probabilities"]) == LABELS
        for name in LABELS:
            value = got["probabilities"][name]
            assert type(value) is float and value == round(value, 6)
            assert value == pytest.approx(expected["probabilities"][name], abs=1e-6)


def test_small_and_large_softmax_paths_agree(handler: ModuleType) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(40, 3)) * 8).astype(np.float32)  # 120 > SMALL_SOFTMAX
    logits[0] = [50.0, 50.0, -50.0]  # a tie: the first label, both ways
    large_best, large = handler._probabilities(logits)
    small = [handler._probabilities(logits[i : i + 1]) for i in range(len(logits))]
    assert large_best == [b[0] for b, _ in small] and large_best[0] == 0
    np.testing.assert_allclose([r[0] for _, r in small], large, atol=1.01e-6)
    for bad in (np.nan, np.inf):
        broken = logits[:2].copy()
        broken[1, 2] = bad
        for rows in (broken, np.repeat(broken, 40, axis=0)):
            with pytest.raises(ValueError, match="NaN or infinite"), np.errstate(invalid="ignore"):
                handler._probabilities(rows)


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(v1_event(json.dumps(GOOD)), id="rest-v1"),
        pytest.param(v1_event(b64(json.dumps(GOOD)), b64=True), id="rest-v1-base64"),
        pytest.param(v2_event(json.dumps(GOOD)), id="http-v2"),
        pytest.param(v2_event(b64(json.dumps(GOOD)), b64=True), id="http-v2-base64"),
        pytest.param(v2_event(json.dumps(GOOD), url=True), id="function-url"),
    ],
)
def test_http_events(handler: ModuleType, event: dict[str, Any]) -> None:
    response = handler.lambda_handler(event, CONTEXT)
    status, data = http_json(response)
    assert status == 200, data
    assert labels_of(data) == WANT
    assert data["request_id"] == "req-123"


def test_get_is_a_health_check(handler: ModuleType) -> None:
    status, data = http_json(handler.lambda_handler(v2_event(None, method="GET"), CONTEXT))
    assert status == 200
    assert data["status"] == "ok" and data["labels"] == LABELS
    assert data["limits"]["max_texts"] == 4


def test_embedding_bundle(handler: ModuleType, embedding_dir: Path) -> None:
    handler.reload(embedding_dir)
    out = handler.lambda_handler({"texts": ["good", "bad"]}, None)
    assert len(out["embeddings"]) == 2 and len(out["embeddings"][0]) == 4
    assert "predictions" not in out


# -- refusals --------------------------------------------------------------------------------

BAD_BODIES = [
    ("{not json", "not valid JSON"),
    ("", "body is empty"),
    ('["good"]', "must be an object, not array"),
    ('"good"', "must be an object, not string"),
    ("{}", 'missing "texts"'),
    ('{"texts": ["a"], "text": "b"}', "not both"),
    ('{"texts": "good"}', '"texts" must be a list of strings, not string'),
    ('{"text": ["good"]}', '"text" must be a string, not array'),
    ('{"texts": []}', '"texts" is empty'),
    ('{"texts": ["a", "b", "c", "d", "e"]}', "5 items; the limit is 4 (SLIMBERT_MAX_TEXTS)"),
    ('{"texts": ["a", "b", 3]}', "texts[2] must be a string, not number"),
    ('{"texts": ["a", null]}', "texts[1] must be a string, not null"),
    (json.dumps({"texts": ["a", "x" * 51]}), "texts[1] has 51 characters; the limit is 50"),
    (json.dumps({"text": "x" * 51}), '"text" has 51 characters'),
    (json.dumps({"texts": ["a"], "pad": "x" * 1000}), "limit is 1000 (SLIMBERT_MAX_BODY_BYTES)"),
    ("[" * 5 + "]" * 5, "must be an object"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
def test_bad_http_bodies_are_400(handler: ModuleType, body: str, message: str) -> None:
    status, data = http_json(handler.lambda_handler(v1_event(body), CONTEXT))
    assert status == 400
    assert message in data["error"]
    assert data["request_id"] == "req-123"


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (["good"], "must be an object, not array"),
        ({"texts": ["a", 1]}, "texts[1] must be a string"),
        ({"texts": ["good"] * 5}, "limit is 4"),
        ({"texts": ["a"], "pad": "x" * 1000}, "SLIMBERT_MAX_BODY_BYTES"),
    ],
)
def test_bad_direct_invokes_are_400(handler: ModuleType, event: Any, message: str) -> None:
    out = handler.lambda_handler(event, CONTEXT)
    assert out["statusCode"] == 400
    assert message in out["error"]


def test_invalid_base64_is_400(handler: ModuleType) -> None:
    status, data = http_json(handler.lambda_handler(v2_event("not base64!!", b64=True), None))
    assert status == 400 and "not valid base64" in data["error"]


def test_oversized_base64_is_refused_before_decoding(handler: ModuleType) -> None:
    status, data = http_json(handler.lambda_handler(v1_event("A" * 4000, b64=True), None))
    assert status == 400 and "SLIMBERT_MAX_BODY_BYTES" in data["error"]


def test_deeply_nested_json_is_400(handler: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler, "LIMITS", handler.Limits(max_body_bytes=1_000_000))
    status, data = http_json(handler.lambda_handler(v1_event("[" * 200_000), None))
    assert status == 400 and "nested too deeply" in data["error"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(handler: ModuleType, method: str) -> None:
    response = handler.lambda_handler(v2_event(json.dumps(GOOD), method=method), None)
    status, data = http_json(response)
    assert status == 405 and method in data["error"]
    assert response["headers"]["allow"] == "GET, POST"


# -- failures --------------------------------------------------------------------------------


def test_unexpected_error_is_a_500_without_details(
    handler: ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret connection string xyz")

    monkeypatch.setattr(handler.BUNDLE, "logits", explode)
    with caplog.at_level(logging.INFO, logger="slimbert.runtime.handler"):
        status, data = http_json(handler.lambda_handler(v1_event(json.dumps(GOOD)), CONTEXT))
        direct = handler.lambda_handler(GOOD, CONTEXT)
    assert status == 500
    assert "secret" not in json.dumps(data) and "RuntimeError" not in json.dumps(data)
    assert data["request_id"] == "req-123"
    assert direct["statusCode"] == 500 and "secret" not in json.dumps(direct)
    assert "secret connection string xyz" in caplog.text  # the trace stays in the log
    # The process still answers after the failure.
    monkeypatch.undo()
    assert labels_of(handler.lambda_handler(GOOD, CONTEXT)) == WANT


def test_failed_load_answers_500(handler: ModuleType, tmp_path: Path) -> None:
    assert handler.reload(tmp_path / "missing") is None
    assert handler.BUNDLE is None
    status, data = http_json(handler.lambda_handler(v2_event(json.dumps(GOOD)), CONTEXT))
    assert status == 500 and "model failed to load" in data["error"]
    out = handler.lambda_handler(GOOD, CONTEXT)
    assert out["statusCode"] == 500 and "model failed to load" in out["error"]


def test_bad_limit_setting_fails_the_load(
    handler: ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SLIMBERT_MAX_TEXTS", "lots")
    with caplog.at_level(logging.ERROR):
        assert handler.reload() is None
    assert "SLIMBERT_MAX_TEXTS must be a positive integer" in caplog.text


def test_default_bundle_path_is_beside_the_package(handler: ModuleType) -> None:
    # /var/task/slimbert/runtime/handler.py -> /var/task/bundle
    assert Path(handler.__file__).resolve().parents[2] / "bundle" == handler.DEFAULT_BUNDLE


def test_one_json_log_line_per_request(
    handler: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="slimbert.runtime.handler"):
        handler.lambda_handler(GOOD, CONTEXT)
        handler.lambda_handler({"texts": []}, CONTEXT)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith("{")]
    assert [(x["status"], x["n_texts"]) for x in lines] == [(200, 3), (400, 0)]
    assert all(x["request_id"] == "req-123" and x["duration_ms"] >= 0 for x in lines)
    assert '"texts" is empty' in lines[1]["error"]


def test_by_default_only_failed_requests_are_logged(
    handler: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="slimbert.runtime.handler"):
        handler.lambda_handler(GOOD, CONTEXT)
        handler.lambda_handler({"texts": []}, CONTEXT)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith("{")]
    assert [x["status"] for x in lines] == [400]


# -- Google Cloud Functions ------------------------------------------------------------------


class FakeFlaskRequest:
    def __init__(self, body: bytes, method: str = "POST", headers: dict[str, str] | None = None):
        self._body = body
        self.method = method
        self.headers = headers or {}
        self.content_length = len(body)
        self.reads = 0

    def get_data(self) -> bytes:
        self.reads += 1
        return self._body


def test_gcp_handler(handler: ModuleType) -> None:
    request = FakeFlaskRequest(
        json.dumps(GOOD).encode(), headers={"Function-Execution-Id": "gcp-7"}
    )
    body, status, headers = handler.gcp_handler(request)
    assert status == 200 and headers["content-type"] == "application/json"
    data = json.loads(body)
    assert labels_of(data) == WANT and data["request_id"] == "gcp-7"


def test_gcp_handler_refusals(handler: ModuleType) -> None:
    body, status, _ = handler.gcp_handler(FakeFlaskRequest(b'{"texts": [1]}'))
    assert status == 400 and "texts[0] must be a string" in json.loads(body)["error"]
    big = FakeFlaskRequest(b"x" * 2000)
    body, status, _ = handler.gcp_handler(big)
    assert status == 400 and "SLIMBERT_MAX_BODY_BYTES" in json.loads(body)["error"]
    assert big.reads == 0  # refused on Content-Length, never buffered
    body, status, _ = handler.gcp_handler(FakeFlaskRequest(b"", method="GET"))
    assert status == 200 and json.loads(body)["status"] == "ok"
    _, status, headers = handler.gcp_handler(FakeFlaskRequest(b"", method="DELETE"))
    assert status == 405 and headers["allow"] == "GET, POST"


class StreamRequest(FakeFlaskRequest):
    """Like flask's: a ``stream`` read as asked, and ``content_length`` None when chunked."""

    def __init__(self, body: bytes, *, chunked: bool = False, **kwargs: Any) -> None:
        super().__init__(body, **kwargs)
        self.content_length = None if chunked else len(body)
        self.stream = CountingStream(body)


class CountingStream:
    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else min(len(self.data), self.position + min(n, 7))
        chunk, self.position = self.data[self.position : end], end  # short reads, like a socket
        return chunk


def test_gcp_reads_at_most_the_limit_plus_one_byte(handler: ModuleType) -> None:
    huge = b'{"texts": ["' + b"a" * 10_000_000 + b'"]}'
    request = StreamRequest(huge, chunked=True)  # no Content-Length to refuse it by
    body, status, headers = handler.gcp_handler(request)
    assert status == 400 and request.reads == 0
    assert request.stream.position == 1001  # SLIMBERT_MAX_BODY_BYTES + 1, never the rest
    # The answer is streamed, so functions-framework does not read the rest into memory.
    text = "".join(body)
    assert "has more than 1000 bytes; the limit is 1000" in json.loads(text)["error"]
    assert headers["content-length"] == str(len(text.encode()))
    # Declared too big: refused unread, streamed too.
    declared = StreamRequest(huge)
    body, status, _ = handler.gcp_handler(declared)
    assert status == 400 and declared.stream.position == 0 and not isinstance(body, str)
    # A body that fits is read to its end and answered as a plain string.
    fits = StreamRequest(json.dumps(GOOD).encode(), chunked=True)
    body, status, _ = handler.gcp_handler(fits)
    assert status == 200 and isinstance(body, str) and labels_of(json.loads(body)) == WANT


# -- text that is not Unicode, bodies that are not text, sizes in UTF-8 ----------------------


def _status_and_data(handler: ModuleType, path: str, payload: Any) -> tuple[int, dict[str, Any]]:
    """One request through ``path``: direct, url (function URL), v1 (REST) or gcp."""
    if path == "direct":
        out = handler.lambda_handler(payload, CONTEXT)
        return out.get("statusCode", 200), out
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    if path == "gcp":
        body, status, _ = handler.gcp_handler(
            StreamRequest(raw.encode("utf-8", "surrogatepass"), chunked=True)
        )
        return status, json.loads("".join(body))
    event = v2_event(raw, url=True) if path == "url" else v1_event(raw)
    return http_json(handler.lambda_handler(event, CONTEXT))


PATHS = ["direct", "url", "v1", "gcp"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"texts": ["\ud800"]}, "texts[0]"),
        ({"texts": ["good", "bad \udfff awful"]}, "texts[1]"),
        ({"text": "great \ud83d"}, '"text"'),  # the first half of an emoji's UTF-16 pair
    ],
)
def test_lone_surrogates_are_400_naming_the_text(
    handler: ModuleType,
    caplog: pytest.LogCaptureFixture,
    path: str,
    payload: dict[str, Any],
    where: str,
) -> None:
    with caplog.at_level(logging.INFO, logger="slimbert.runtime"):
        status, data = _status_and_data(handler, path, payload)
    if path in ("url", "v1"):  # the event's body string itself holds the surrogate
        assert status == 400, data
        assert data["error"].startswith("the request body holds a lone surrogate (U+D")
    else:
        assert status == 400, data
        assert data["error"].startswith(f"{where} holds a lone surrogate (U+D")
        assert "not valid Unicode" in data["error"]
    assert not [r for r in caplog.records if r.exc_info]  # a refusal, not a traceback


@pytest.mark.parametrize("path", ["url", "v1", "gcp"])
def test_a_surrogate_escape_in_a_json_body_is_400(handler: ModuleType, path: str) -> None:
    raw = '{"texts": ["good", "\\ud800 x"]}'  # valid JSON text, not valid Unicode
    if path == "gcp":
        body, status, _ = handler.gcp_handler(StreamRequest(raw.encode()))
        data = json.loads("".join(body))
    else:
        event = v2_event(raw, url=True) if path == "url" else v1_event(raw)
        status, data = http_json(handler.lambda_handler(event, CONTEXT))
    assert status == 400 and data["error"].startswith("texts[1] holds a lone surrogate (U+D800)")
    # Paired surrogates are one character: scored like the emoji they spell.
    raw = '{"texts": ["good \\ud83d\\ude00"]}'
    status, data = http_json(handler.lambda_handler(v1_event(raw), CONTEXT))
    assert status == 200 and labels_of(data) == ["positive"]


@pytest.mark.parametrize("body", [{"texts": ["good"]}, 5, 1.5, True, ["good"], {}])
@pytest.mark.parametrize("shape", ["v1", "v2"])
def test_non_string_http_body_is_400(handler: ModuleType, body: Any, shape: str) -> None:
    event = v1_event(None) if shape == "v1" else v2_event(None)
    event["body"] = body
    status, data = http_json(handler.lambda_handler(event, CONTEXT))
    assert status == 400
    assert data["error"].startswith("the HTTP event's body must be a string holding JSON")


@pytest.mark.parametrize(
    "event",
    [
        {"requestContext": "text", "texts": ["good"]},
        {"requestContext": {"http": "POST"}, "texts": ["good"]},
        {"httpMethod": 7, "body": json.dumps(GOOD)},
        {"httpMethod": "POST", "body": json.dumps(GOOD), "isBase64Encoded": "false"},
    ],
)
def test_odd_event_shapes_are_read_without_an_exception(
    handler: ModuleType, caplog: pytest.LogCaptureFixture, event: dict[str, Any]
) -> None:
    with caplog.at_level(logging.INFO, logger="slimbert.runtime"):
        out = handler.lambda_handler(event, CONTEXT)
    status = out.get("statusCode", 200)
    assert status == 200, out
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("path", PATHS)
def test_body_size_is_utf8_bytes_on_every_path(handler: ModuleType, path: str) -> None:
    # 4 texts of 50 accented letters: 423 bytes of UTF-8, 1223 with \u00e9 escapes.
    fits = {"texts": ["é" * 50] * 4}
    assert len(json.dumps(fits, separators=(",", ":"))) > 1000  # what used to be counted
    status, data = _status_and_data(handler, path, fits)
    assert status == 200, data
    # 300 more (600 bytes): over on every path, by the same count.
    over = {**fits, "pad": "é" * 300}
    size = len(json.dumps(over, ensure_ascii=False, separators=(",", ":")).encode())
    status, data = _status_and_data(handler, path, over)
    if path == "gcp":  # chunked: read up to the limit + 1 byte, so the size is not known
        size = "more than 1000"  # type: ignore[assignment]
    assert status == 400 and f"has {size} bytes; the limit is 1000" in data["error"]


# -- failures the platform sees ---------------------------------------------------------------


def test_5xx_writes_one_embedded_metric_line(
    handler: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn-test")

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    capsys.readouterr()
    handler.lambda_handler(GOOD, CONTEXT)
    handler.lambda_handler({"texts": []}, CONTEXT)  # a 400 is the caller's: no metric
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(handler.BUNDLE, "logits", explode)
    handler.lambda_handler(GOOD, CONTEXT)
    http_json(handler.lambda_handler(v2_event(json.dumps(GOOD)), CONTEXT))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line in lines:
        record = json.loads(line)
        (directive,) = record["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == handler.METRIC_NAMESPACE == "slimbert"
        assert directive["Dimensions"] == [["FunctionName"]]
        assert directive["Metrics"] == [{"Name": "ServerErrors", "Unit": "Count"}]
        assert isinstance(record["_aws"]["Timestamp"], int)
        assert record["FunctionName"] == "fn-test" and record["ServerErrors"] == 1
        assert record["status"] == 500 and record["request_id"] == "req-123"


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLIMBERT_"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "SLIMBERT_THREADS": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_model_that_fails_to_load_fails_the_lambda_init(bundle_dir: Path, tmp_path: Path) -> None:
    # In a Lambda sandbox the import is the init: awslambdaric reports what it raises.
    code = "import slimbert.runtime.handler"
    failed = _python(code, {"AWS_LAMBDA_FUNCTION_NAME": "f", "SLIMBERT_BUNDLE": str(tmp_path)})
    assert failed.returncode != 0
    assert "ModelLoadError: the model failed to load:" in failed.stderr
    assert "is missing" in failed.stderr
    # The message reaches Lambda as a Latin-1 HTTP body: kept ASCII, whatever the path holds.
    accented = _python(
        "import slimbert.runtime.handler",
        {"AWS_LAMBDA_FUNCTION_NAME": "f", "SLIMBERT_BUNDLE": str(tmp_path / "bündle…")},
    )
    (line,) = [x for x in accented.stderr.splitlines() if x.startswith("slimbert.runtime")]
    assert line.isascii() and "b\\xfcndle\\u2026" in line, line
    good = _python(
        code + "; import sys; assert slimbert.runtime.handler.BUNDLE is not None",
        {"AWS_LAMBDA_FUNCTION_NAME": "f", "SLIMBERT_BUNDLE": str(bundle_dir)},
    )
    assert good.returncode == 0, good.stderr


def test_elsewhere_the_model_loads_at_the_first_request(bundle_dir: Path) -> None:
    # gunicorn imports the entry point in its master, then forks: nothing may load there, not
    # even onnxruntime (its import starts a thread that a forked child's exit then waits on).
    done = _python(
        "import os, sys, slimbert.runtime.handler as h\n"
        "assert h.BUNDLE is None and 'onnxruntime' not in sys.modules\n"
        "assert len(os.listdir('/proc/self/task')) <= 2  # main and OpenBLAS, no more\n"
        "out = h.lambda_handler({'texts': ['good great']}, None)\n"
        "assert out['predictions'][0]['label'] == 'positive', out\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    before = h.BUNDLE\n"
        "    out = h.lambda_handler({'texts': ['bad awful']}, None)\n"
        "    ok = out['predictions'][0]['label'] == 'negative' and h.BUNDLE is not before\n"
        "    os._exit(0 if ok else 3)\n"
        "assert os.waitpid(pid, 0)[1] == 0\n",
        {"SLIMBERT_BUNDLE": str(bundle_dir)},
    )
    assert done.returncode == 0, done.stderr


# -- the manifest's own digest ----------------------------------------------------------------


def _reversed_labels(bundle_dir: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy whose manifest lists the labels reversed, and the original manifest's sha256."""
    import hashlib
    import shutil

    copy = tmp_path / "edited"
    shutil.copytree(bundle_dir, copy)
    original = (copy / "manifest.json").read_bytes()
    manifest = json.loads(original)
    manifest["labels"] = manifest["labels"][::-1]
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return copy, hashlib.sha256(original).hexdigest()


def test_an_edited_manifest_never_answers(
    handler: ModuleType, bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edited, digest = _reversed_labels(bundle_dir, tmp_path)
    # Why the digest is needed: every file the manifest lists still matches it.
    monkeypatch.delenv("SLIMBERT_MANIFEST_SHA256", raising=False)
    assert handler.reload(edited) is not None
    assert labels_of(handler.lambda_handler(GOOD, CONTEXT)) == ["negative", "positive", "neutral"]
    # With the digest the package recorded, the load fails and nothing is scored.
    monkeypatch.setenv("SLIMBERT_MANIFEST_SHA256", digest)
    assert handler.reload(edited) is None
    assert "does not match the sha256 recorded when it was packaged" in handler.LOAD_ERROR
    out = handler.lambda_handler(GOOD, CONTEXT)
    assert out["statusCode"] == 500 and "predictions" not in out
    # The untouched bundle matches it (upper case is accepted too).
    monkeypatch.setenv("SLIMBERT_MANIFEST_SHA256", digest.upper())
    assert handler.reload(bundle_dir) is not None
    assert labels_of(handler.lambda_handler(GOOD, CONTEXT)) == WANT


def test_an_edited_manifest_fails_the_lambda_init(bundle_dir: Path, tmp_path: Path) -> None:
    edited, digest = _reversed_labels(bundle_dir, tmp_path)
    failed = _python(
        "import slimbert.runtime.handler",
        {
            "AWS_LAMBDA_FUNCTION_NAME": "f",
            "SLIMBERT_BUNDLE": str(edited),
            "SLIMBERT_MANIFEST_SHA256": digest,
        },
    )
    assert failed.returncode != 0
    assert "does not match the sha256 recorded when it was packaged" in failed.stderr


# -- the GCP folder served by functions-framework (gunicorn: a master that forks a worker) --


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Any]:
    from slimbert.deploy.local import LocalGcp
    from slimbert.deploy.toolchain import find_python312
    from test_package import _BUILT

    try:
        python = find_python312()
    except SlimbertError as exc:
        pytest.skip(f"Python 3.12 is missing: {exc}")
    if "gcp" not in _BUILT:
        from slimbert.deploy.package import PackageOptions, build_package

        bundle = build_bundle(tmp_path / "bundle")
        build_package(PackageOptions(bundle=bundle, out=tmp_path / "out", target="gcp-function"))
        _BUILT["gcp"] = tmp_path / "out" / "slimbert-gcp-function"
    function = LocalGcp(Path(_BUILT["gcp"]), python=python, env={"SLIMBERT_THREADS": "1"})
    try:
        function.start()
    except SlimbertError as exc:
        pytest.skip(f"functions-framework environment unavailable: {exc}")
    try:
        yield function
    finally:
        function.stop()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _loaded(pid: int, library: str) -> bool:
    return library in Path(f"/proc/{pid}/maps").read_text()


def test_gcp_worker_loads_the_model_and_stops_within_a_second(served: Any) -> None:
    import os
    import signal

    response, _ = served.invoke({"texts": ["good great"]})
    assert response["statusCode"] == 200, served.log_tail()
    master = served.pid
    (worker,) = _children(master)
    # The session lives in the worker; the master never even imports onnxruntime (its
    # import starts a thread, and a forked child's exit then hangs or aborts on its copy).
    assert _loaded(worker, "onnxruntime_pybind11_state")
    assert not _loaded(master, "onnxruntime_pybind11_state")
    # Cloud Run stops an instance with SIGTERM to PID 1, gunicorn's master, which passes it on.
    started = time.perf_counter()
    os.kill(master, signal.SIGTERM)
    while _alive(worker) and time.perf_counter() - started < 10:
        time.sleep(0.01)
    worker_s = time.perf_counter() - started
    process = served._process
    process.wait(timeout=10)
    master_s = time.perf_counter() - started
    log = served.log_tail(200)
    assert worker_s < 1.0, (worker_s, log)
    assert master_s < 2.0 and process.returncode == 0, (master_s, process.returncode, log)
    assert "terminate called" not in log and "system_error" not in log, log


def _chunked_post(port: int, mib: int) -> tuple[int, dict[str, Any], float]:
    """POST a JSON body of ``mib`` MiB with Transfer-Encoding: chunked (no Content-Length)."""
    import socket
    import threading

    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    sock.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b"a" * (1 << 20)

    def send() -> None:
        try:
            start = b'{"texts": ["'
            sock.sendall(b"%x\r\n%s\r\n" % (len(start), start))
            for _ in range(mib):
                sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            sock.sendall(b'3\r\n"]}\r\n0\r\n\r\n')
        except OSError:  # the server answered and closed: the rest is never sent
            pass

    started = time.perf_counter()
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    reader = sock.makefile("rb")
    status = int(reader.readline().split()[1])
    length = 0
    while (line := reader.readline().strip()) != b"":
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    data = json.loads(reader.read(length))
    seconds = time.perf_counter() - started
    sock.close()
    sender.join(timeout=30)
    return status, data, seconds


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_gcp_chunked_body_is_refused_without_buffering_it(served: Any) -> None:
    response, _ = served.invoke({"texts": ["good"]})
    assert response["statusCode"] == 200, served.log_tail()
    (worker,) = _children(served.pid)
    before = _peak_rss_mib(worker)
    status, data, seconds = _chunked_post(served.port, 256)
    assert status == 400, data
    assert data["error"].startswith("the request body has more than 262144 bytes")
    # Neither the handler nor functions-framework's read_request buffered the 256 MiB.
    assert _peak_rss_mib(worker) - before < 16, (before, _peak_rss_mib(worker))
    assert seconds < 5, seconds
    # The worker goes on serving.
    again, _ = served.invoke({"texts": ["bad awful"]})
    assert again["statusCode"] == 200
    assert [p["label"] for p in json.loads(again["body"])["predictions"]] == ["negative"]


def test_a_text_gets_the_same_answer_alone_or_in_a_batch(handler: ModuleType) -> None:
    # Texts of one request run one at a time (SLIMBERT_BATCH_SIZE, default 1), so batching
    # is only a saving on the request fee: never a different answer.
    texts = ["good great", "bad awful bad awful bad", "table", "great chair good table good"]
    assert handler.BUNDLE.batch_size == 1
    batched = handler.lambda_handler({"texts": texts}, CONTEXT)["predictions"]
    alone = [handler.lambda_handler({"texts": [t]}, CONTEXT)["predictions"][0] for t in texts]
    assert batched == alone


def test_serving_batch_size_comes_from_the_environment(
    handler: ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SLIMBERT_BATCH_SIZE", "4")
    assert handler.reload() is not None and handler.BUNDLE.batch_size == 4
    monkeypatch.setenv("SLIMBERT_BATCH_SIZE", "0")
    with caplog.at_level(logging.ERROR):
        assert handler.reload() is None
    assert "SLIMBERT_BATCH_SIZE must be a positive integer" in caplog.text
