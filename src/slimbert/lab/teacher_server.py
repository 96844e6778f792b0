"""The torch + transformers teacher as a plain local HTTP function: the baseline of ``slimbert
bench lambda``.

The teacher cannot be a Lambda zip (torch alone is over the size limit), so the benchmark runs
it as its own program, ``python -m slimbert.lab.teacher_server FOLDER PORT THREADS``, started by
:class:`slimbert.lab.lambda_instances.LocalTeacher` in the same cgroup limits and harness as the
packaged student. It answers the packaged handler's JSON (``predictions`` and ``timing_ms``
with ``tokenize``, ``inference`` and ``total``), so both are measured alike. A separate module,
so the child process imports torch and nothing of the harness.
"""

from __future__ import annotations

import http.server
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TEACHER_MAX_BODY = 256 * 1024


Predict = Callable[[list[str]], tuple[list[dict[str, Any]], dict[str, float]]]


def _teacher_predictor(folder: Path, threads: int) -> tuple[Predict, str]:
    """The standard way: torch + transformers, batch as given, softmax over the labels."""
    import torch

    torch.set_num_threads(threads)
    encode: Callable[[list[str]], dict[str, Any]]
    forward: Callable[[dict[str, Any]], Any]
    if (folder / "slimbert.json").is_file():  # a slimbert teacher: its own head and max_length
        from slimbert.models.load import TorchClassifier

        clf = TorchClassifier.load(folder)
        labels = [str(name) for name in clf.label_names]

        def encode(texts: list[str]) -> dict[str, Any]:
            return clf.collate(clf.encode(texts), range(len(texts)))

        forward = clf.forward
    else:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        labels = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
        max_length = min(int(tokenizer.model_max_length or 512), 512)

        def encode(texts: list[str]) -> dict[str, Any]:
            return dict(
                tokenizer(
                    texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
                )
            )

        def forward(batch: dict[str, Any]) -> Any:
            return model(**batch).logits

    def predict(texts: list[str]) -> tuple[list[dict[str, Any]], dict[str, float]]:
        t0 = time.perf_counter()
        batch = encode(texts)
        t1 = time.perf_counter()
        with torch.inference_mode():
            probs = forward(batch).float().softmax(-1).numpy()
        t2 = time.perf_counter()
        predictions = [
            {
                "label": labels[int(row.argmax())],
                "probabilities": {n: round(float(v), 6) for n, v in zip(labels, row, strict=True)},
            }
            for row in probs
        ]
        return predictions, {"tokenize": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3}

    return predict, folder.name


class _TeacherServer(http.server.HTTPServer):
    predict: Predict | None = None
    model_id = ""


class _TeacherHandler(http.server.BaseHTTPRequestHandler):
    def _send(self, status: int, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        started = time.perf_counter()
        server = self.server
        assert isinstance(server, _TeacherServer) and server.predict is not None
        length = int(self.headers.get("Content-Length") or 0)
        if length > TEACHER_MAX_BODY:
            self._send(
                413, {"error": f"the body has {length} bytes; the limit is {TEACHER_MAX_BODY}"}
            )
            return
        try:
            payload = json.loads(self.rfile.read(length))
            texts = [payload["text"]] if "text" in payload else list(payload["texts"])
            if not texts or not all(isinstance(t, str) for t in texts):
                raise TypeError("texts must be strings")
        except (ValueError, KeyError, TypeError) as exc:
            self._send(400, {"error": f'send {{"text": "..."}} or {{"texts": [...]}} ({exc})'})
            return
        predictions, timing = server.predict(texts)
        timing = {k: round(v, 3) for k, v in timing.items()}
        timing["total"] = round((time.perf_counter() - started) * 1e3, 3)
        self._send(200, {"model": server.model_id, "predictions": predictions, "timing_ms": timing})


def serve_teacher(folder: Path, port: int, threads: int) -> None:
    """Serve the teacher on 127.0.0.1:``port`` until stopped.

    The port listens before the model loads, as the Lambda emulator listens before its runtime
    starts: the first request then waits through INIT, and cold starts compare like for like.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = _TeacherServer(("127.0.0.1", port), _TeacherHandler)
    log.info("listening on 127.0.0.1:%d; loading %s", port, folder)
    started = time.perf_counter()
    server.predict, server.model_id = _teacher_predictor(folder, threads)
    log.info(
        "loaded teacher %s with %d threads in %.0f ms",
        folder,
        threads,
        (time.perf_counter() - started) * 1e3,
    )
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        raise SystemExit("usage: python -m slimbert.lab.teacher_server FOLDER PORT THREADS")
    serve_teacher(Path(args[0]), int(args[1]), int(args[2]))


if __name__ == "__main__":
    main()
