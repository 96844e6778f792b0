"""The serverless function: one bundle, loaded once per process, answering JSON requests.

Entry points:

* ``lambda_handler(event, context)`` for AWS Lambda: a direct invoke (``{"texts": [...]}`` or
  ``{"text": "..."}`` as the event), API Gateway REST (v1 proxy), HTTP API (v2) and function
  URL events. HTTP events get ``{"statusCode", "headers", "body"}``; a direct invoke gets the
  JSON object itself, with ``statusCode`` added when it is an error.
* ``gcp_handler(request)`` for Google Cloud Functions (functions-framework): returns
  ``(body, status, headers)``.

``POST`` scores texts; ``GET`` is a health check (200 with the model's description, or 500 when
the model failed to load); any other method is 405.

Environment: ``SLIMBERT_BUNDLE`` (default: ``bundle/`` beside the ``slimbert`` package, i.e.
``/var/task/bundle`` in a Lambda zip), ``SLIMBERT_MANIFEST_SHA256`` (the digest of the bundle's
``manifest.json`` recorded by ``slimbert package``; checked at load when set),
``SLIMBERT_MAX_TEXTS`` (64), ``SLIMBERT_MAX_CHARS`` (5000, characters per text),
``SLIMBERT_MAX_BODY_BYTES`` (262144, UTF-8 bytes of the JSON body on every path),
``SLIMBERT_THREADS``, ``SLIMBERT_LOG_LEVEL`` (WARNING: refused and failed requests are logged
in one line, tracebacks only for unexpected errors; INFO adds one JSON line per request),
``SLIMBERT_INDEX`` (a duplicate index, default ``index/`` beside ``bundle/`` when present; see
``slimbert.runtime.index``) and ``SLIMBERT_MAX_TOP_K`` (20).

Text is Unicode: a text holding a lone UTF-16 surrogate (``"\\ud800"`` in JSON, which Python
parses but no tokenizer can encode) is refused with a 400 naming the text and position, never
silently replaced, so an answer always scores the text that was sent.

When the model loads:

* On AWS Lambda (``AWS_LAMBDA_FUNCTION_NAME`` is set) at import, so its cost falls in the init
  phase; a failed load raises, so Lambda reports an init error (and counts the invocations
  that hit it in its Errors metric) instead of a function that answers 500 forever.
* Elsewhere (functions-framework, tests) at the first request of each process, under a lock:
  gunicorn imports the entry point in its master and forks workers from it, and an
  onnxruntime session must never cross a fork (its thread pool does not survive it: the
  worker aborts at exit). A failed load there is logged once and the process answers every
  request with a 500 saying so (health check included), which Cloud Run counts as 5xx.

On Lambda every 5xx answer also writes one CloudWatch embedded-metric-format line
(namespace ``slimbert``, metric ``ServerErrors``, dimension ``FunctionName``), which the SAM
template's alarm watches: an answered 500 is a success for Lambda's own Errors metric.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slimbert.errors import ConfigError, SlimbertError
from slimbert.runtime.bundle import Bundle, load_bundle, softmax
from slimbert.runtime.index import (
    DuplicateRequestError,
    VectorIndex,
    answer_duplicates,
    load_deployed_index,
    wants_duplicates,
)

log = logging.getLogger(__name__)

BUNDLE_ENV = "SLIMBERT_BUNDLE"
MANIFEST_SHA256_ENV = "SLIMBERT_MANIFEST_SHA256"
LAMBDA_ENV = "AWS_LAMBDA_FUNCTION_NAME"  # set by Lambda (and its emulator) in every sandbox
METRIC_NAMESPACE = "slimbert"  # the embedded-metric-format namespace of ServerErrors
SERVER_ERRORS_METRIC = "ServerErrors"
# handler.py sits at <root>/slimbert/runtime/handler.py; the zip puts the bundle at <root>/bundle.
DEFAULT_BUNDLE = Path(__file__).resolve().parents[2] / "bundle"
DEFAULT_INDEX = DEFAULT_BUNDLE.parent / "index"
JSON_HEADERS = {"content-type": "application/json"}
ALLOWED_METHODS = "GET, POST"
DECIMALS = 6  # enough for probabilities and cosine similarities; halves the response size
# Up to this many logits (texts x labels) the softmax runs in plain Python: for a request of a
# few texts numpy's fixed cost per call (~1 us, ten calls) is most of the work.
SMALL_SOFTMAX = 64
NOT_FINITE = "the model returned NaN or infinite outputs"
MODEL_FAILED = "the model failed to load when the function started; see the function's logs"
INTERNAL_ERROR = "internal error while scoring the texts; quote the request_id when reporting it"
USAGE = 'send a JSON object such as {"texts": ["first text", "second text"]}'


@dataclass(frozen=True)
class Limits:
    """What one request may carry; read from the environment once, at load."""

    max_texts: int = 64
    max_chars: int = 5000
    max_body_bytes: int = 256 * 1024

    @classmethod
    def from_env(cls) -> Limits:
        values: dict[str, int] = {}
        for name, env in (
            ("max_texts", "SLIMBERT_MAX_TEXTS"),
            ("max_chars", "SLIMBERT_MAX_CHARS"),
            ("max_body_bytes", "SLIMBERT_MAX_BODY_BYTES"),
        ):
            raw = os.environ.get(env, "").strip()
            if not raw:
                continue
            try:
                values[name] = int(raw)
            except ValueError:
                values[name] = 0
            if values[name] < 1:
                raise ConfigError(f"{env} must be a positive integer, got {raw!r}")
        return cls(**values)


class RequestError(Exception):
    """A request the function refuses: its status and a message for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_NO_PAYLOAD: Any = object()
# A request id when the platform gives none: a random 64-bit prefix per process and a counter.
# Unique like a uuid4 for this purpose at a twelfth of its cost (no urandom call per request).
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """An id for a request the platform did not name (``<16 hex>-<8 hex>``, unique)."""
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):08x}"


@dataclass
class Request:
    """What every platform hands to :func:`respond`: the method and either a raw body or JSON."""

    platform: str
    request_id: str
    method: str = "POST"
    body: str | bytes | None = None
    base64: bool = False
    payload: Any = _NO_PAYLOAD  # a direct invoke's event, already parsed by Lambda
    # read_body(n): at most n bytes of a body not read yet (n is the limit + 1, so an
    # oversized body without a Content-Length is refused after limit + 1 bytes, not buffered).
    read_body: Callable[[int], bytes] | None = None
    declared_length: int | None = None  # Content-Length, checked before the body is read


BUNDLE: Bundle | None = None
LIMITS = Limits()
INDEX: VectorIndex | None = None  # the duplicate index, when the function ships one
LOAD_ERROR: str | None = None  # why the last load failed, for the logs and tests
_LOADED_PID: int | None = None  # the process that loaded BUNDLE (None: not loaded yet)
_LOAD_LOCK = threading.Lock()


def on_lambda() -> bool:
    """Whether this process is a Lambda sandbox (or the Lambda emulator's)."""
    return bool(os.environ.get(LAMBDA_ENV))


def _load(source: Path) -> tuple[Bundle, Limits, VectorIndex | None]:
    limits = Limits.from_env()
    expected = os.environ.get(MANIFEST_SHA256_ENV, "").strip() or None
    bundle = load_bundle(source, manifest_sha256=expected)
    return bundle, limits, load_deployed_index(bundle, DEFAULT_INDEX)


def reload(path: str | Path | None = None) -> Bundle | None:
    """(Re)load the bundle and limits now, in this process.

    On failure the reason is logged (with a traceback only when it is not a
    :class:`SlimbertError`, which already says what to do) and kept in ``LOAD_ERROR``, and the
    function answers 500 until the next successful load.
    """
    global BUNDLE, LIMITS, INDEX, LOAD_ERROR, _LOADED_PID
    source = Path(path or os.environ.get(BUNDLE_ENV) or DEFAULT_BUNDLE)
    try:
        bundle, limits, index = _load(source)
    except Exception as exc:
        log.error(
            "the model failed to load from %s: %s",
            source,
            exc,
            exc_info=not isinstance(exc, SlimbertError),
        )
        BUNDLE = INDEX = None
        LOAD_ERROR, _LOADED_PID = str(exc), os.getpid()
        return None
    BUNDLE, LIMITS, INDEX = bundle, limits, index
    LOAD_ERROR, _LOADED_PID = None, os.getpid()
    return bundle


def ensure_loaded() -> Bundle | None:
    """The bundle of this process, loading it on first use (and again in a forked child)."""
    if os.getpid() != _LOADED_PID:
        with _LOAD_LOCK:
            if os.getpid() != _LOADED_PID:
                reload()
    return BUNDLE


class ModelLoadError(SlimbertError):
    """The function's model did not load: raised at Lambda init so the platform sees it."""


def init_lambda() -> Bundle:
    """Load at import in a Lambda sandbox; raise :class:`ModelLoadError` when the load fails."""
    bundle = reload()
    if bundle is None:
        # ASCII only: awslambdaric posts the init error's message as a Latin-1 HTTP body, and
        # a character beyond it (a path, a quoted text) would lose the message it carries.
        reason = str(LOAD_ERROR).encode("ascii", "backslashreplace").decode("ascii")
        raise ModelLoadError(f"the model failed to load: {reason}")
    return bundle


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number" if isinstance(value, int | float) else "value")


def parse_payload(request: Request, limits: Limits) -> Any:
    """The request's JSON value, after the size, base64 and JSON checks."""
    limit = limits.max_body_bytes
    too_big = "the request body has {} bytes; the limit is {} (SLIMBERT_MAX_BODY_BYTES)"
    if request.payload is not _NO_PAYLOAD:
        size = payload_bytes(request.payload)
        if size > limit:
            raise RequestError(400, too_big.format(size, limit))
        return request.payload
    if request.declared_length is not None and request.declared_length > limit:
        raise RequestError(400, too_big.format(request.declared_length, limit))
    body = request.read_body(limit + 1) if request.read_body is not None else request.body
    if body is not None and not isinstance(body, str | bytes):
        # A hand-made or test event can carry the JSON object itself; HTTP bodies are text.
        raise RequestError(
            400,
            f"the HTTP event's body must be a string holding JSON, not {_json_type(body)}; {USAGE}",
        )
    if not body:
        raise RequestError(400, f"the request body is empty; {USAGE}")
    if request.base64:
        # Refuse before decoding: base64 is 4/3 of the payload, so this bounds the work.
        if len(body) > (limit + 2) // 3 * 4 + 4:
            raise RequestError(400, too_big.format(len(body) * 3 // 4, limit))
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(
                400, "the body is marked isBase64Encoded but is not valid base64"
            ) from None
    elif isinstance(body, str):
        try:
            raw = body.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates can arrive through an event's JSON
            raise RequestError(
                400,
                f"the request body holds a lone surrogate (U+{ord(body[exc.start]):04X}) at "
                f"character {exc.start}: it is not valid Unicode",
            ) from None
    else:
        raw = body
    if len(raw) > limit:
        # A body read from a stream stops at limit + 1 bytes: its size is not known.
        read = f"more than {limit}" if request.read_body is not None else str(len(raw))
        raise RequestError(400, too_big.format(read, limit))
    try:
        # A str body parses as it is; its bytes were only needed for the size.
        return json.loads(body if isinstance(body, str) and not request.base64 else raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        raise RequestError(400, f"the request body is not valid JSON ({exc}); {USAGE}") from None
    except RecursionError:
        raise RequestError(400, "the request body is JSON nested too deeply") from None


def payload_bytes(payload: Any) -> int:
    """The UTF-8 size of a parsed payload as compact JSON, as an HTTP client would send it.

    Non-ASCII characters count their UTF-8 bytes, not the six of a ``\\u`` escape, so a
    direct invoke and a function-URL request of the same texts meet the same limit.
    """
    try:
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    except RecursionError:
        raise RequestError(400, "the request body is JSON nested too deeply") from None
    except (TypeError, ValueError):  # not JSON at all: only a hand-made event can be
        raise RequestError(400, f"the event is not a JSON value; {USAGE}") from None
    # A lone surrogate has no UTF-8 form; counted as its 3 bytes here, refused in parse_texts.
    return len(text.encode("utf-8", "surrogatepass"))


def _check_unicode(text: str, where: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(
            400,
            f"{where} holds a lone surrogate (U+{ord(text[exc.start]):04X}) at character "
            f"{exc.start}: it is not valid Unicode; send whole characters (a UTF-16 pair was "
            "probably split)",
        ) from None


def parse_texts(payload: Any, limits: Limits) -> list[str]:
    """The texts of a request object, or a :class:`RequestError` naming what is wrong."""
    if not isinstance(payload, dict):
        raise RequestError(
            400, f"the JSON body must be an object, not {_json_type(payload)}; {USAGE}"
        )
    if "texts" in payload and "text" in payload:
        raise RequestError(400, 'give either "texts" (a list) or "text" (one string), not both')
    if "text" in payload:
        text = payload["text"]
        if not isinstance(text, str):
            raise RequestError(400, f'"text" must be a string, not {_json_type(text)}')
        if len(text) > limits.max_chars:
            raise RequestError(
                400,
                f'"text" has {len(text)} characters; the limit is {limits.max_chars} '
                "(SLIMBERT_MAX_CHARS)",
            )
        _check_unicode(text, '"text"')
        return [text]
    if "texts" not in payload:
        raise RequestError(400, f'missing "texts" (a list of strings) or "text"; {USAGE}')
    texts = payload["texts"]
    if not isinstance(texts, list):
        raise RequestError(400, f'"texts" must be a list of strings, not {_json_type(texts)}')
    if not texts:
        raise RequestError(400, '"texts" is empty; send at least one text')
    if len(texts) > limits.max_texts:
        raise RequestError(
            400,
            f'"texts" has {len(texts)} items; the limit is {limits.max_texts} '
            "(SLIMBERT_MAX_TEXTS): split the request",
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(400, f"texts[{i}] must be a string, not {_json_type(text)}")
        if len(text) > limits.max_chars:
            raise RequestError(
                400,
                f"texts[{i}] has {len(text)} characters; the limit is {limits.max_chars} "
                "(SLIMBERT_MAX_CHARS)",
            )
        _check_unicode(text, f"texts[{i}]")
    return texts


def _rounded(values: np.ndarray) -> Any:
    # float64 before rounding: a rounded float32 prints as 0.12345699965953827 in JSON.
    if values.dtype != np.float64:
        values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError(NOT_FINITE)
    return np.round(values, DECIMALS, out=values).tolist()


def _probabilities(logits: np.ndarray) -> tuple[list[int], list[list[float]]]:
    """Each row's best label index and its softmax probabilities rounded to DECIMALS."""
    if logits.size > SMALL_SOFTMAX:
        probabilities = softmax(logits, dtype=np.float64)
        best = probabilities.argmax(axis=-1).tolist()
        return best, _rounded(probabilities)  # rounded in place, after argmax
    best, rows = [], []
    for row in logits.tolist():  # float32 values, exact as Python floats
        if not all(map(math.isfinite, row)):
            raise ValueError(NOT_FINITE)
        top = max(row)
        exps = [math.exp(x - top) for x in row]
        total = sum(exps)
        best.append(row.index(top))
        rows.append([round(e / total, DECIMALS) for e in exps])
    return best, rows


def _score(bundle: Bundle, texts: list[str]) -> dict[str, Any]:
    timings: dict[str, float] = {}
    data: dict[str, Any] = {"model": bundle.model_id}
    if bundle.task == "classification":
        # From the logits straight to rounded float64 rows, with no float32 dicts in between
        # (Bundle.predict builds those).
        best, rows = _probabilities(bundle.logits(texts, timings=timings))
        labels = bundle.label_names
        data["predictions"] = [
            {"label": labels[i], "probabilities": dict(zip(labels, row, strict=True))}
            for i, row in zip(best, rows, strict=True)
        ]
    else:
        data["embeddings"] = _rounded(bundle.embed(texts, timings=timings))
    data["timing_ms"] = {
        "tokenize": round(timings.get("tokenize", 0.0), 3),
        "inference": round(timings.get("inference", 0.0), 3),
    }
    return data


def _health(bundle: Bundle, limits: Limits) -> dict[str, Any]:
    data: dict[str, Any] = {"status": "ok", "model": bundle.model_id, "task": bundle.task}
    if bundle.task == "classification":
        data["labels"] = list(bundle.label_names)
    else:
        data["dim"] = bundle.dim
    data["max_length"] = bundle.max_length
    data["limits"] = {
        "max_texts": limits.max_texts,
        "max_chars": limits.max_chars,
        "max_body_bytes": limits.max_body_bytes,
    }
    if INDEX is not None:
        data["index"] = {
            "count": len(INDEX),
            "backend": INDEX.backend,
            "threshold": INDEX.threshold,
        }
    return data


def _duplicates(bundle: Bundle, texts: list[str], payload: dict[str, Any]) -> dict[str, Any]:
    try:
        return answer_duplicates(bundle, INDEX, texts, payload)
    except DuplicateRequestError as exc:
        raise RequestError(400, str(exc)) from None


def respond(request: Request) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Validate and answer one request, on any platform: ``(status, json_object, headers)``.

    Never raises: a bad request is a 400 naming the problem, anything unexpected a 500 whose
    details stay in the log.
    """
    started = time.perf_counter()
    ensure_loaded()
    bundle, limits = BUNDLE, LIMITS  # one consistent view even if reload() runs meanwhile
    headers = dict(JSON_HEADERS)
    n_texts = 0
    error: str | None = None
    try:
        method = request.method.upper()
        if bundle is None:
            raise RequestError(500, MODEL_FAILED)
        if method == "GET":
            status, data = 200, _health(bundle, limits)
        elif method != "POST":
            headers["allow"] = ALLOWED_METHODS
            raise RequestError(405, f"method {method} is not supported; POST texts or GET health")
        else:
            payload = parse_payload(request, limits)
            texts = parse_texts(payload, limits)
            n_texts = len(texts)
            if wants_duplicates(payload):
                status, data = 200, _duplicates(bundle, texts, payload)
            else:
                status, data = 200, _score(bundle, texts)
    except RequestError as exc:
        status, data, error = exc.status, {"error": exc.message}, exc.message
    except Exception:
        log.exception("request %s failed", request.request_id)
        status, data, error = 500, {"error": INTERNAL_ERROR}, INTERNAL_ERROR
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    if "timing_ms" in data:
        data["timing_ms"]["total"] = duration_ms
    data["request_id"] = request.request_id
    # One JSON line per request at INFO (off by default: a log write is ~10% of a 2 ms
    # request; Lambda's own REPORT line already gives each duration); failures at WARNING.
    level = logging.INFO if status < 400 else logging.WARNING
    if not log.isEnabledFor(level):
        return status, data, headers
    record: dict[str, Any] = {
        "event": "request",
        "request_id": request.request_id,
        "platform": request.platform,
        "method": request.method,
        "status": status,
        "n_texts": n_texts,
        "duration_ms": duration_ms,
    }
    if error is not None:
        record["error"] = error
    log.log(level, json.dumps(record))
    return status, data, headers


def _lambda_request(event: Any, context: Any) -> Request:
    request_id = str(getattr(context, "aws_request_id", None) or new_request_id())
    if isinstance(event, dict):
        context_field = event.get("requestContext")
        http = context_field.get("http") if isinstance(context_field, dict) else None
        if isinstance(http, dict) or "httpMethod" in event:
            method = http.get("method") if isinstance(http, dict) else event.get("httpMethod")
            return Request(
                platform="aws-http",
                request_id=request_id,
                method=method if isinstance(method, str) and method else "POST",
                body=event.get("body"),
                base64=event.get("isBase64Encoded") is True,
            )
    return Request(platform="aws-direct", request_id=request_id, payload=event)


def server_error_metric(request: Request, status: int) -> str:
    """One CloudWatch embedded-metric-format line counting a 5xx answer (``ServerErrors``)."""
    function = os.environ.get(LAMBDA_ENV) or "unknown"
    return json.dumps(
        {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": METRIC_NAMESPACE,
                        "Dimensions": [["FunctionName"]],
                        "Metrics": [{"Name": SERVER_ERRORS_METRIC, "Unit": "Count"}],
                    }
                ],
            },
            "FunctionName": function,
            SERVER_ERRORS_METRIC: 1,
            "status": status,
            "request_id": request.request_id,
            "platform": request.platform,
        }
    )


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """AWS Lambda entry point (``slimbert.runtime.handler.lambda_handler``)."""
    try:
        request = _lambda_request(event, context)
    except Exception:  # an event shape nobody planned for must not kill the sandbox
        log.exception("cannot read the Lambda event")
        request = Request(platform="aws-direct", request_id=new_request_id(), payload=None)
    status, data, headers = respond(request)
    if status >= 500:
        # Its own line on stdout: CloudWatch reads EMF only from a log event that is one JSON
        # object, and the runtime's logging handler would prefix it.
        sys.stdout.write(server_error_metric(request, status) + "\n")
        sys.stdout.flush()
    if request.platform == "aws-http":
        return {
            "statusCode": status,
            "headers": headers,
            "body": json.dumps(data),
            "isBase64Encoded": False,
        }
    return data if status == 200 else {**data, "statusCode": status}


class _FlaskBody:
    """A flask request's body, read only as far as asked: ``read(n)`` gives at most n bytes.

    ``request.stream`` is the WSGI input, bounded by Content-Length when there is one and the
    chunked body as it arrives when there is none; ``get_data()`` would buffer all of it.
    """

    def __init__(self, request: Any) -> None:
        self.request = request
        stream = getattr(request, "stream", None)
        self.stream = stream if callable(getattr(stream, "read", None)) else None
        self.asked: int | None = None  # what read() was asked for, once called
        self.got = 0

    def read(self, n: int) -> bytes:
        self.asked = n
        if self.stream is None:  # not flask: a request object that only has get_data()
            data = bytes(self.request.get_data())
            self.got = len(data)
            return data
        chunks, left = [], n
        while left > 0:  # a read may return less than asked before the end
            chunk = self.stream.read(left)
            if not chunk:
                break
            chunks.append(bytes(chunk))
            left -= len(chunk)
        self.got = n - left
        return b"".join(chunks)

    def unread(self) -> bool:
        """Whether bytes of the body may be left in the connection, unread."""
        if self.stream is None:
            return False
        if self.asked is not None:
            return self.got >= self.asked  # stopped at the limit, not at the end
        length = getattr(self.request, "content_length", None)
        if isinstance(length, int):
            return length > 0
        try:  # no Content-Length and never read (a GET, a 405): one byte tells
            return bool(self.stream.read(1))
        except Exception:  # a client that went away: nothing more will be read either way
            return False


def gcp_handler(request: Any) -> tuple[str | Iterator[str], int, dict[str, str]]:
    """Google Cloud Functions entry point (functions-framework passes a flask ``Request``).

    Returns ``(body, status, headers)``. The body is a string, except when the request's body
    was refused unread (over ``SLIMBERT_MAX_BODY_BYTES``): then it is a one-item iterator with
    its Content-Length set. functions-framework reads the whole rest of a request after a plain
    response (``read_request``, to spare clients a reset connection), which would buffer a
    256 MiB body in memory after all; it skips that for a streamed response.
    """
    try:
        request_headers = getattr(request, "headers", None) or {}
        trace = str(request_headers.get("X-Cloud-Trace-Context") or "").split("/")[0]
        request_id = request_headers.get("Function-Execution-Id") or trace or new_request_id()
        length = getattr(request, "content_length", None)
        method = getattr(request, "method", None)
        reader = _FlaskBody(request)
        parsed = Request(
            platform="gcp",
            request_id=str(request_id),
            method=method if isinstance(method, str) and method else "POST",
            read_body=reader.read,
            declared_length=length if isinstance(length, int) else None,
        )
    except Exception:  # a request object unlike flask's must not take the worker down
        log.exception("cannot read the request")
        reader = None
        parsed = Request(platform="gcp", request_id=new_request_id(), payload=None)
    status, data, headers = respond(parsed)
    body = json.dumps(data)
    if reader is not None and reader.unread():
        headers["content-length"] = str(len(body.encode("utf-8")))
        return iter([body]), status, headers
    return body, status, headers


def _configure_logging() -> None:
    level = os.environ.get("SLIMBERT_LOG_LEVEL", "WARNING").upper()
    runtime_log = logging.getLogger("slimbert.runtime")
    runtime_log.setLevel(level if level in logging.getLevelNamesMapping() else "WARNING")
    # Lambda installs a root handler; functions-framework does not, and without one the
    # per-request INFO lines would be dropped.
    if not logging.getLogger().handlers and not runtime_log.handlers:
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        runtime_log.addHandler(stream)


_configure_logging()
if on_lambda():
    init_lambda()  # a model that cannot load fails the sandbox's init, where Lambda shows it
