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
``SLIMBERT_VERIFY`` (how the bundle's files are checked at load: ``full``, sizes and sha256,
the default without a pinned manifest; ``sizes``, the default with one: see
docs/serving.md, "Integrity"),
``SLIMBERT_MAX_TEXTS`` (64), ``SLIMBERT_MAX_CHARS`` (5000, characters per text),
``SLIMBERT_MAX_BODY_BYTES`` (262144, UTF-8 bytes of the JSON body on every path),
``SLIMBERT_THREADS``, ``SLIMBERT_BATCH_SIZE`` (1: texts per model run; each text runs alone,
so its answer never depends on the texts sent with it), ``SLIMBERT_LOG_LEVEL`` (WARNING:
refused and failed requests are logged in one line, tracebacks only for unexpected errors;
INFO adds one JSON line per request),
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

Each process reports its cold start on stderr: a ``SLIMBERT_INIT`` line when the model has
loaded and a ``SLIMBERT_FIRST`` line after its first answer, with the milliseconds of each
phase (:mod:`slimbert.runtime.phases`).

On Lambda every 5xx answer also writes one CloudWatch embedded-metric-format line
(namespace ``slimbert``, metric ``ServerErrors``, dimension ``FunctionName``), which the SAM
template's alarm watches: an answered 500 is a success for Lambda's own Errors metric.
"""

from __future__ import annotations

from slimbert.runtime.phases import PhaseRecorder

# The cold-start clock (docs/serving.md, "Cold start"): the interpreter phase ends here, and
# each group of imports below is a phase of its own, so they come after it on purpose: numpy
# and tokenizers first (with the standard modules they load), then what the runtime adds.
PHASES = PhaseRecorder.from_process_start()

import numpy as np  # noqa: E402

PHASES.mark("import_numpy")
import tokenizers  # noqa: E402, F401 - slimbert.runtime.bundle's; imported here to time it

PHASES.mark("import_tokenizers")
import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

PHASES.mark("import_stdlib")
from slimbert.errors import ConfigError, SlimbertError  # noqa: E402
from slimbert.runtime.bundle import Bundle, load_bundle, softmax  # noqa: E402
from slimbert.runtime.index import (  # noqa: E402
    DuplicateRequestError,
    VectorIndex,
    answer_duplicates,
    load_deployed_index,
    wants_duplicates,
)
from slimbert.runtime.request import (  # noqa: E402, F401 - the names tests and callers use here
    MANIFEST_SHA256_ENV,
    METRIC_NAMESPACE,
    SERVER_ERRORS_METRIC,
    USAGE,
    FlaskBody,
    Limits,
    Request,
    RequestError,
    batch_size_from_env,
    new_request_id,
    parse_payload,
    parse_texts,
    payload_bytes,
)

log = logging.getLogger(__name__)

BUNDLE_ENV = "SLIMBERT_BUNDLE"
VERIFY_ENV = "SLIMBERT_VERIFY"
LAMBDA_ENV = "AWS_LAMBDA_FUNCTION_NAME"  # set by Lambda (and its emulator) in every sandbox
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


BUNDLE: Bundle | None = None
LIMITS = Limits()
INDEX: VectorIndex | None = None  # the duplicate index, when the function ships one
LOAD_ERROR: str | None = None  # why the last load failed, for the logs and tests
_LOADED_PID: int | None = None  # the process that loaded BUNDLE (None: not loaded yet)
_LOAD_LOCK = threading.Lock()


def on_lambda() -> bool:
    """Whether this process is a Lambda sandbox (or the Lambda emulator's)."""
    return bool(os.environ.get(LAMBDA_ENV))


def verify_mode(*, pinned: bool) -> str:
    """How the bundle's files are checked at load: ``SLIMBERT_VERIFY`` (``full``: sizes and
    sha256; ``sizes``), by default ``sizes`` when ``SLIMBERT_MANIFEST_SHA256`` pins the
    manifest (a packaged function, whose files ``slimbert package`` hashed) and ``full``
    otherwise. docs/serving.md, "Integrity", gives the reasoning."""
    raw = os.environ.get(VERIFY_ENV, "").strip().lower()
    if not raw:
        return "sizes" if pinned else "full"
    if raw not in ("full", "sizes"):
        raise ConfigError(f"{VERIFY_ENV} must be full or sizes, got {raw!r}")
    return raw


def _load(source: Path, phases: PhaseRecorder | None) -> tuple[Bundle, Limits, VectorIndex | None]:
    limits = Limits.from_env()
    expected = os.environ.get(MANIFEST_SHA256_ENV, "").strip() or None
    verify = verify_mode(pinned=expected is not None)
    if phases is not None:
        phases.idle()  # Cloud Run loads at the first request: the wait for it is no phase
        with phases.phase("import_onnxruntime"), contextlib.suppress(ImportError):
            # The session's own import, timed on its own; when it fails, creating the
            # session says so as it always did.
            import onnxruntime  # noqa: F401
    bundle = load_bundle(
        source,
        manifest_sha256=expected,
        verify=verify,
        phases=phases,
        batch_size=batch_size_from_env(),
    )
    if phases is None:
        return bundle, limits, load_deployed_index(bundle, DEFAULT_INDEX)
    with phases.phase("index"):
        return bundle, limits, load_deployed_index(bundle, DEFAULT_INDEX)


def reload(path: str | Path | None = None) -> Bundle | None:
    """(Re)load the bundle and limits now, in this process.

    On failure the reason is logged (with a traceback only when it is not a
    :class:`SlimbertError`, which already says what to do) and kept in ``LOAD_ERROR``, and the
    function answers 500 until the next successful load. The process's first load ends its
    cold-start record: the ``SLIMBERT_INIT`` line on stderr (:mod:`slimbert.runtime.phases`).
    """
    global BUNDLE, LIMITS, INDEX, LOAD_ERROR, _LOADED_PID
    source = Path(path or os.environ.get(BUNDLE_ENV) or DEFAULT_BUNDLE)
    phases = None if PHASES.init_done else PHASES
    try:
        bundle, limits, index = _load(source, phases)
    except Exception as exc:
        log.error(
            "the model failed to load from %s: %s",
            source,
            exc,
            exc_info=not isinstance(exc, SlimbertError),
        )
        BUNDLE = INDEX = None
        LOAD_ERROR, _LOADED_PID = str(exc), os.getpid()
        if phases is not None:
            phases.finish_init(ok=False)
        return None
    BUNDLE, LIMITS, INDEX = bundle, limits, index
    LOAD_ERROR, _LOADED_PID = None, os.getpid()
    if phases is not None:
        phases.finish_init(ok=True)
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
    if not PHASES.first_done:
        PHASES.finish_first(started, status)  # the cold start's last phase: its first answer
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
        reader = FlaskBody(request)
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
PHASES.mark("import_runtime")
if on_lambda():
    init_lambda()  # a model that cannot load fails the sandbox's init, where Lambda shows it
