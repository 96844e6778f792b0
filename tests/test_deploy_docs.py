"""docs/serving.md and docs/deploy.md run: their Python blocks against the tiny test bundles,
every request/answer pair through the handler, the deploy commands against what `slimbert
package` prints, and the SigV4-signed function URL request through the local Lambda emulator."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from runtime_fixtures import build_bundle
from slimbert.cli import deploy_command
from slimbert.deploy.local import LocalLambda, function_url_event
from slimbert.deploy.package import PackageOptions
from test_lambda_local import local_lambda, python312  # noqa: F401 - shared fixtures
from test_package import lambda_package, tiny_bundle, wheel_cache  # noqa: F401

DOCS = Path(__file__).resolve().parents[1] / "docs"
CLASSIFIER_PATH = "runs/sentiment/bundle"
EMBEDDER_PATH = "runs/similarity/bundle"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
# Fields whose values depend on the model and the moment; their type is still checked.
VARYING = {"model", "request_id"}


def blocks(doc: str) -> list[tuple[str, str]]:
    """Every fenced block of ``docs/<doc>`` as (info string, text)."""
    text = (DOCS / doc).read_text(encoding="utf-8")
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(text)]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("docs")
    return {
        CLASSIFIER_PATH: build_bundle(root / "classifier"),
        EMBEDDER_PATH: build_bundle(root / "embedder", task="embedding"),
    }


def _run_python(code: str, bundles: dict[str, Path], **names: Any) -> dict[str, Any]:
    for doc_path, real in bundles.items():
        code = code.replace(f'"{doc_path}"', repr(str(real)))
    namespace: dict[str, Any] = {"__name__": "docs_example", **names}
    exec(compile(code, "docs-example", "exec"), namespace)
    return namespace


# -- serving.md: the in-process API ----------------------------------------------------------


def test_serving_python_examples_run(
    bundles: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = [code for info, code in blocks("serving.md") if info == "python"]
    assert len(python) == 3
    monkeypatch.chdir(tmp_path)  # the file example reads texts.csv and writes beside it
    (tmp_path / "texts.csv").write_text("text\nI love this flight\nbad awful\n", encoding="utf-8")
    first = _run_python(python[0], bundles)
    assert [p["label"] for p in first["predictions"]] == ["positive", "negative"]
    assert first["logits"].shape == (1, 3) and set(first["timings"]) == {"tokenize", "inference"}
    second = _run_python(python[1], bundles)
    assert second["vectors"].shape == (2, second["embedder"].dim)
    assert -1.0 - 1e-6 <= second["cosine"] <= 1.0 + 1e-6
    third = _run_python(python[2], bundles)
    assert third["answer"]["predictions"][0]["label"] == "positive"
    assert third["summary"]["rows"] == 2 and (tmp_path / "predictions.csv").is_file()


# -- serving.md: the function's requests and answers -----------------------------------------


def _pairs() -> list[tuple[str, str, int, Any, bool]]:
    """(method, body, status, documented answer, embedder?) for each request/response pair."""
    found, pending = [], None
    for info, text in blocks("serving.md"):
        words = info.split()
        if "request" in words:
            assert pending is None, f"two requests in a row: {text!r}"
            pending = (words, text)
        elif "response" in words:
            assert pending is not None, f"an answer without a request: {text!r}"
            request_words, body = pending
            if request_words[0] == "text":  # "GET", "DELETE", "POST <raw body>"
                method, _, raw = body.strip().partition(" ")
                body = raw
            else:
                method = "POST"
            status = int(words[words.index("response") + 1])
            found.append((method, body, status, json.loads(text), "embedding" in words))
            pending = None
    assert pending is None, "a request without its answer"
    return found


def _check(documented: Any, actual: Any, where: str = "answer") -> None:
    """``actual`` has ``documented``'s shape: keys, strings and booleans equal; numbers numbers
    (any value); a list of numbers (a vector) any length; other lists the same length."""
    if isinstance(documented, dict):
        assert isinstance(actual, dict) and set(actual) == set(documented), where
        for key, value in documented.items():
            if key in VARYING:
                assert isinstance(actual[key], str), f"{where}.{key}"
            else:
                _check(value, actual[key], f"{where}.{key}")
    elif isinstance(documented, list):
        assert isinstance(actual, list), where
        if documented and all(isinstance(v, int | float) for v in documented):
            assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in actual)
        else:
            assert len(actual) == len(documented), where
            for i, (d, a) in enumerate(zip(documented, actual, strict=True)):
                _check(d, a, f"{where}[{i}]")
    elif isinstance(documented, bool) or documented is None or isinstance(documented, str):
        assert actual == documented, f"{where}: {actual!r} != {documented!r}"
    else:
        assert isinstance(actual, int | float) and not isinstance(actual, bool), where


@pytest.fixture
def handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    for name in ("SLIMBERT_MAX_TEXTS", "SLIMBERT_MAX_CHARS", "SLIMBERT_MAX_BODY_BYTES"):
        monkeypatch.delenv(name, raising=False)  # the documented defaults
    monkeypatch.setenv("SLIMBERT_THREADS", "1")
    import slimbert.runtime.handler as module

    yield module
    monkeypatch.undo()
    module.reload()


def test_every_documented_request_gets_the_documented_answer(
    bundles: dict[str, Path], handler: ModuleType
) -> None:
    pairs = _pairs()
    assert len(pairs) >= 8 and {p[2] for p in pairs} >= {200, 400, 405}
    for method, body, status, documented, embedding in pairs:
        assert handler.reload(bundles[EMBEDDER_PATH if embedding else CLASSIFIER_PATH])
        request = handler.Request(
            platform="aws-http", request_id="r1", method=method, body=body or None
        )
        got_status, answer, headers = handler.respond(request)
        assert got_status == status, (method, body, answer)
        _check(documented, answer, f"{method} {body}")
        if status == 405:
            assert headers["allow"] == "GET, POST"


# -- deploy.md: the deploy commands ----------------------------------------------------------


def test_deploy_commands_are_what_package_prints() -> None:
    text = (DOCS / "deploy.md").read_text(encoding="utf-8")
    out = Path("runs/sentiment/package")
    aws = PackageOptions(bundle=Path(CLASSIFIER_PATH), out=out)
    printed = deploy_command(aws, {"package": str(out / f"{aws.stem}.zip")})
    assert printed in text
    assert printed.endswith(f"sam deploy --guided --template-file {out}/{aws.stem}.template.yaml")
    gcp = PackageOptions(bundle=Path(CLASSIFIER_PATH), out=out, target="gcp-function")
    printed = deploy_command(gcp, {"package": str(out / gcp.stem)})
    assert printed in text
    for part in ("--gen2", "--runtime python312", "--entry-point predict", "--memory 1024Mi"):
        assert part in printed


@pytest.mark.slow  # builds the Lambda zip: about 40 s on 2 busy cores
def test_the_sam_template_is_where_the_command_says(
    lambda_package: tuple[Path, dict[str, Any]],  # noqa: F811
) -> None:
    zip_path, report = lambda_package
    command = deploy_command(PackageOptions(out=zip_path.parent), report)
    template = Path(command.rsplit(" ", 1)[1])
    assert template.is_file() and "AuthType: AWS_IAM" in template.read_text(encoding="utf-8")


# -- deploy.md: the SigV4-signed function URL request ----------------------------------------

REGION = "us-east-1"
FUNCTION_URL = f"https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.{REGION}.on.aws/"
ACCESS_KEY, SECRET_KEY = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]+)/(?P<day>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def verify_sigv4(request: urllib.request.Request, secret: str) -> dict[str, str]:
    """Check the request's SigV4 signature as AWS would (path ``/``, no query); return the
    parts of its Authorization header. Written from the SigV4 specification, not botocore."""
    headers = {k.lower(): v for k, v in request.header_items()}
    match = AUTHORIZATION.fullmatch(headers["authorization"])
    assert match, headers["authorization"]
    parts = match.groupdict()
    signed = parts["signed"].split(";")
    assert {"host", "x-amz-date"} <= set(signed)
    headers.setdefault("host", urllib.parse.urlsplit(request.full_url).netloc)
    body = request.data if isinstance(request.data, bytes) else b""
    canonical = "\n".join(
        [
            request.get_method(),
            urllib.parse.urlsplit(request.full_url).path or "/",
            "",
            *(f"{name}:{' '.join(headers[name].split())}" for name in signed),
            "",
            parts["signed"],
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{parts['day']}/{parts['region']}/{parts['service']}/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            headers["x-amz-date"],
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = ("AWS4" + secret).encode()
    for step in (parts["day"], parts["region"], parts["service"], "aws4_request"):
        key = _hmac(key, step)
    assert hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest() == parts["signature"]
    return parts


def _run_deploy_block(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, answer: Any
) -> tuple[dict[str, Any], list[urllib.request.Request]]:
    """Run deploy.md's Python block with test credentials; its request to the function URL is
    checked (SigV4 for ``lambda`` in the region, the body it signed) and handed to ``answer``,
    which returns the HTTP answer's body."""
    pytest.importorskip("botocore", reason="botocore is in the dev extra")
    (code,) = [c for info, c in blocks("deploy.md") if info == "python"]
    for name, value in {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    sent: list[urllib.request.Request] = []
    real_urlopen = urllib.request.urlopen

    def urlopen(request: urllib.request.Request, timeout: float | None = None) -> Any:
        if request.full_url.startswith("http://127.0.0.1:"):  # LocalLambda's own invoke
            return real_urlopen(request, timeout=timeout)
        parts = verify_sigv4(request, SECRET_KEY)
        assert (parts["key"], parts["region"], parts["service"]) == (ACCESS_KEY, REGION, "lambda")
        assert request.full_url == FUNCTION_URL and request.get_method() == "POST"
        sent.append(request)
        return io.BytesIO(answer(request))

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return _run_python(code, {}, FUNCTION_URL=FUNCTION_URL), sent


def test_the_documented_signer_signs_for_lambda(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    canned = {"predictions": [{"label": "positive", "probabilities": {"positive": 1.0}}]}
    namespace, sent = _run_deploy_block(
        monkeypatch, tmp_path, lambda r: json.dumps(canned).encode()
    )
    (request,) = sent
    assert isinstance(request.data, bytes)
    assert json.loads(request.data) == {"texts": ["I love this flight"]}
    assert namespace["answer"] == canned
    # The check is real: another secret, or a body changed after signing, fails it.
    with pytest.raises(AssertionError):
        verify_sigv4(request, SECRET_KEY[:-1] + "X")
    request.data = b'{"texts": ["I hate this flight"]}'
    with pytest.raises(AssertionError):
        verify_sigv4(request, SECRET_KEY)


@pytest.mark.slow  # builds the Lambda zip (about 40 s on 2 busy cores) and starts the emulator
def test_signed_function_url_request_is_answered_by_the_emulator(
    local_lambda: LocalLambda,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """deploy.md's block, its signed request turned into the function URL event AWS would
    build and answered by the packaged function in the local Lambda emulator (which does not
    check signatures: verify_sigv4 does, here)."""
    answers: list[dict[str, Any]] = []

    def through_the_emulator(request: urllib.request.Request) -> bytes:
        assert isinstance(request.data, bytes)
        event = function_url_event(request.data.decode())
        event["headers"] = {k.lower(): v for k, v in request.header_items()}
        event["requestContext"]["domainName"] = urllib.parse.urlsplit(FUNCTION_URL).netloc
        answer, _ = local_lambda.invoke(event)
        answers.append(answer)
        assert answer["statusCode"] == 200, answer
        return str(answer["body"]).encode()

    namespace, sent = _run_deploy_block(monkeypatch, tmp_path, through_the_emulator)
    assert len(sent) == len(answers) == 1
    assert namespace["answer"]["predictions"][0]["label"] == "positive"  # "I love this flight"
