"""What a request may carry and how its body is read and checked, on every platform.

:class:`Request` is what each platform's entry point (``slimbert.runtime.handler``) makes of
its event; :func:`parse_payload` and :func:`parse_texts` turn it into the texts to score or a
:class:`RequestError` (a status and a message for the caller), within the :class:`Limits`
read from the environment (``SLIMBERT_MAX_TEXTS``, ``SLIMBERT_MAX_CHARS``,
``SLIMBERT_MAX_BODY_BYTES``). Nothing here loads or runs the model.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from typing import Any

from slimbert.errors import ConfigError

# The function's configuration names that `slimbert package` writes into what it ships (the
# zip's entry point, the SAM template's alarm): defined once here, in a module that loads
# nothing, so the packager can import them without importing the handler.
MANIFEST_SHA256_ENV = "SLIMBERT_MANIFEST_SHA256"
METRIC_NAMESPACE = "slimbert"  # the embedded-metric-format namespace of ServerErrors
SERVER_ERRORS_METRIC = "ServerErrors"

USAGE = 'send a JSON object such as {"texts": ["first text", "second text"]}'


class Limits:
    """What one request may carry; read from the environment once, at load.

    A plain class, not a dataclass: ``dataclasses`` and building the class cost about a
    millisecond of every cold start (docs/serving.md, "Cold start"). Immutable all the same.
    """

    __slots__ = ("max_body_bytes", "max_chars", "max_texts")
    max_texts: int
    max_chars: int
    max_body_bytes: int

    def __init__(
        self, max_texts: int = 64, max_chars: int = 5000, max_body_bytes: int = 256 * 1024
    ) -> None:
        object.__setattr__(self, "max_texts", max_texts)
        object.__setattr__(self, "max_chars", max_chars)
        object.__setattr__(self, "max_body_bytes", max_body_bytes)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Limits is immutable: cannot set {name}")

    def _values(self) -> tuple[int, int, int]:
        return self.max_texts, self.max_chars, self.max_body_bytes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Limits) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return (
            f"Limits(max_texts={self.max_texts}, max_chars={self.max_chars}, "
            f"max_body_bytes={self.max_body_bytes})"
        )

    @classmethod
    def from_env(cls) -> Limits:
        values: dict[str, int] = {}
        for name, env in (
            ("max_texts", "SLIMBERT_MAX_TEXTS"),
            ("max_chars", "SLIMBERT_MAX_CHARS"),
            ("max_body_bytes", "SLIMBERT_MAX_BODY_BYTES"),
        ):
            value = positive_int_env(env)
            if value is not None:
                values[name] = value
        return cls(**values)


def positive_int_env(env: str, hint: str | None = None) -> int | None:
    """The positive integer in the environment variable ``env``; None when unset or blank."""
    raw = os.environ.get(env, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{env} must be a positive integer, got {raw!r}", hint=hint)
    return value


BATCH_SIZE_ENV = "SLIMBERT_BATCH_SIZE"
# Texts of one request run one at a time by default. With an int8 bundle (dynamic quantisation
# scales each run's activations by its own range) a text's answer otherwise depends on the
# texts sent with it: 6 of 960 labels flipped between alone and in requests of 32 (demo bundle,
# docs/serving.md). At one thread (every Lambda size under 3,538 MB) it is also the fastest:
# no padding, 1.24 against 2.09 ms per text for 32 tweets as one padded run.
SERVING_BATCH_SIZE = 1


def batch_size_from_env() -> int:
    """Texts per model run in the function: ``SLIMBERT_BATCH_SIZE``, else 1."""
    hint = f"unset {BATCH_SIZE_ENV}: each text then runs alone, as it would if sent alone"
    value = positive_int_env(BATCH_SIZE_ENV, hint)
    return SERVING_BATCH_SIZE if value is None else value


class RequestError(Exception):
    """A request the function refuses: its status and a message for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


NO_PAYLOAD: Any = object()
# A request id when the platform gives none: a random 64-bit prefix per process and a counter.
# Unique like a uuid4 for this purpose at a twelfth of its cost (no urandom call per request).
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """An id for a request the platform did not name (``<16 hex>-<8 hex>``, unique)."""
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):08x}"


class Request:
    """What every platform hands to :func:`respond`: the method and either a raw body or JSON.

    ``read_body(n)``: at most n bytes of a body not read yet (n is the limit + 1, so an
    oversized body without a Content-Length is refused after limit + 1 bytes, not buffered);
    ``declared_length``: the Content-Length, checked before the body is read; ``payload``: a
    direct invoke's event, already parsed by Lambda.
    """

    __slots__ = (
        "base64",
        "body",
        "declared_length",
        "method",
        "payload",
        "platform",
        "read_body",
        "request_id",
    )

    def __init__(
        self,
        platform: str,
        request_id: str,
        method: str = "POST",
        body: str | bytes | None = None,
        base64: bool = False,
        payload: Any = NO_PAYLOAD,
        read_body: Callable[[int], bytes] | None = None,
        declared_length: int | None = None,
    ) -> None:
        self.platform = platform
        self.request_id = request_id
        self.method = method
        self.body = body
        self.base64 = base64
        self.payload = payload
        self.read_body = read_body
        self.declared_length = declared_length

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Request({fields})"


def json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number" if isinstance(value, int | float) else "value")


def parse_payload(request: Request, limits: Limits) -> Any:
    """The request's JSON value, after the size, base64 and JSON checks."""
    limit = limits.max_body_bytes
    too_big = "the request body has {} bytes; the limit is {} (SLIMBERT_MAX_BODY_BYTES)"
    if request.payload is not NO_PAYLOAD:
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
            f"the HTTP event's body must be a string holding JSON, not {json_type(body)}; {USAGE}",
        )
    if not body:
        raise RequestError(400, f"the request body is empty; {USAGE}")
    if request.base64:
        # Refuse before decoding: base64 is 4/3 of the payload, so this bounds the work.
        if len(body) > (limit + 2) // 3 * 4 + 4:
            raise RequestError(400, too_big.format(len(body) * 3 // 4, limit))
        import base64  # only for such a body: not at every cold start
        import binascii

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
            400, f"the JSON body must be an object, not {json_type(payload)}; {USAGE}"
        )
    if "texts" in payload and "text" in payload:
        raise RequestError(400, 'give either "texts" (a list) or "text" (one string), not both')
    if "text" in payload:
        text = payload["text"]
        if not isinstance(text, str):
            raise RequestError(400, f'"text" must be a string, not {json_type(text)}')
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
        raise RequestError(400, f'"texts" must be a list of strings, not {json_type(texts)}')
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
            raise RequestError(400, f"texts[{i}] must be a string, not {json_type(text)}")
        if len(text) > limits.max_chars:
            raise RequestError(
                400,
                f"texts[{i}] has {len(text)} characters; the limit is {limits.max_chars} "
                "(SLIMBERT_MAX_CHARS)",
            )
        _check_unicode(text, f"texts[{i}]")
    return texts


class FlaskBody:
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
