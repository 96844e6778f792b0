"""Load an exported bundle (docs/bundle.md) and score texts with onnxruntime, tokenizers, numpy.

Everything that can be done once happens in :func:`load_bundle`: the manifest is checked, every
file's size and sha256 verified, the tokenizer configured and the session created. A call then
tokenizes its texts, sorts them by length into chunks of ``batch_size`` (so a chunk pads to
lengths close to its own), runs each chunk padded to its longest member and returns the rows in
input order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import stat
import time
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
from tokenizers import Encoding, Tokenizer

from slimbert.errors import ModelError
from slimbert.runtime.session import create_session, resolve_threads

if TYPE_CHECKING:
    from slimbert.runtime.phases import PhaseRecorder

log = logging.getLogger(__name__)

FORMAT = "slimbert-bundle/1"
MANIFEST_FILE = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"
# The model file names `slimbert export` writes (docs/bundle.md); a bundle names its own in
# the manifest's model_file, so the runtime never relies on these.
FP32_FILE = "model_fp32.onnx"
QINT8_FILE = "model_qint8.onnx"
TASKS = ("classification", "embedding")
FEEDABLE_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
DEFAULT_OUTPUT = {"classification": "logits", "embedding": "embeddings"}
DEFAULT_BATCH_SIZE = 32
REEXPORT_HINT = "re-export the bundle with `slimbert export` (or copy the whole folder again)"
_VERSION_HINT = "export the bundle with the same slimbert version that serves it"


class BundleError(ModelError):
    """A bundle that cannot be loaded or used: bad manifest, missing or changed file, wrong task."""


def _fail(message: str, hint: str | None = REEXPORT_HINT) -> BundleError:
    return BundleError(message, hint=hint)


def read_manifest(root: Path, *, sha256: str | None = None) -> dict[str, Any]:
    """The checked ``manifest.json`` of the bundle folder ``root``.

    ``sha256``, when given, is the digest the manifest file must have (``slimbert package``
    records it as ``SLIMBERT_MANIFEST_SHA256``): the manifest lists every other file's digest
    but not its own, so an edited label order would otherwise load and serve wrong answers.
    """
    manifest = read_folder_manifest(
        root,
        FORMAT,
        "bundle",
        _fail,
        made_by="export",
        version_hint=_VERSION_HINT,
        sha256=sha256,
    )
    _check_fields(manifest, root / MANIFEST_FILE)
    return manifest


def is_bundle(path: Path) -> bool:
    """Whether ``path`` is meant as a bundle: its ``manifest.json`` names a bundle format, or
    none (:func:`read_manifest` says what is wrong). A reassembled model (all-mpnet-base-v2,
    ``slimbert-weights/1``) or a silver set holds a manifest of its own kind."""
    manifest = Path(path) / MANIFEST_FILE
    if not manifest.is_file():
        return False
    try:
        fmt = json.loads(manifest.read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError, AttributeError):
        return True
    return not isinstance(fmt, str) or fmt.split("/")[0] == FORMAT.split("/")[0]


def small_sha256(data: bytes) -> str:
    """The sha256 (hex) of a small buffer (a manifest) without loading OpenSSL.

    hashlib's first import loads libcrypto, about 2 ms of a cold start, which a packaged
    function (size checks, a pinned manifest) would spend on one 2 KB digest. CPython's own
    implementation (``_sha2``) gives the same digest; hashlib's where a build lacks it.
    """
    import importlib

    for module in ("_sha2", "_sha256"):  # CPython 3.12+, 3.11
        try:
            sha256 = importlib.import_module(module).sha256
            break
        except (ImportError, AttributeError):
            continue
    else:
        import hashlib

        sha256 = hashlib.sha256
    return str(sha256(data).hexdigest())


def file_sha256(fh: Any) -> str:
    """The sha256 (hex) of an open binary file: OpenSSL's, which is the fast one for 16 MB."""
    import hashlib

    return hashlib.file_digest(fh, "sha256").hexdigest()


def manifest_digest(root: Path) -> str:
    """The sha256 (hex) of the bundle's ``manifest.json`` bytes, as the runtime checks it."""
    with open(Path(root) / MANIFEST_FILE, "rb") as fh:
        return file_sha256(fh)


def model_files(manifest: dict[str, Any]) -> list[str]:
    """The model's files: the graph (``model_file``) and, when its weights are stored beside
    it (``model_data_file``, ONNX external data), that file too."""
    data = manifest.get("model_data_file")
    return [manifest["model_file"], *([data] if data else [])]


def model_bytes(manifest: dict[str, Any]) -> int:
    """The model's size in bytes as the manifest records it: graph and weights together."""
    files = manifest.get("files") or {}
    return sum(int((files.get(name) or {}).get("bytes") or 0) for name in model_files(manifest))


def read_folder_manifest(
    root: Path,
    fmt: str,
    kind: str,
    fail: Callable[..., Exception],
    *,
    made_by: str,
    version_hint: str | None = None,
    sha256: str | None = None,
) -> dict[str, Any]:
    """The ``manifest.json`` object of a ``kind`` folder (a bundle, an index) of format ``fmt``
    with a well-formed ``files`` map; the caller checks its own fields.

    ``fail(message, hint=...)`` makes the error of the folder's kind; ``sha256`` is the digest
    the file's bytes must have, checked before anything in it is believed.
    """
    if not root.is_dir():
        hint = f"pass the folder `{made_by}` wrote"
        raise fail(f"{kind} folder {root} does not exist", hint=hint)
    path = root / MANIFEST_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise fail(f"{path} is missing: {root} is not a slimbert {kind}") from None
    except OSError as exc:
        raise fail(f"{path} cannot be read ({exc})") from None
    if sha256 is not None:
        digest = small_sha256(raw)
        if digest != sha256.strip().lower():
            raise fail(
                f"{path} does not match the sha256 recorded when it was packaged "
                f"({digest[:12]}... instead of {sha256.strip()[:12]}...): it was changed",
                hint="package the bundle again (`slimbert package`) and deploy the new template",
            )
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (RecursionError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise fail(f"{path} is not valid JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(manifest, dict):
        raise fail(f"{path} must hold a JSON object, not {type(manifest).__name__}")
    found = manifest.get("format")
    if found != fmt:
        message = f"{path} has format {found!r}; this runtime reads {fmt!r}"
        raise fail(message, hint=version_hint) if version_hint else fail(message)
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise fail(f"{path}: files must map each file name to its sha256 and bytes")
    for name, entry in files.items():
        rel = PurePosixPath(name)
        # A manifest is data from outside: never let it point the runtime outside the folder.
        if (
            not name
            or rel.is_absolute()
            or ".." in rel.parts
            or "\\" in name
            or "\0" in name
            or name == MANIFEST_FILE
        ):
            raise fail(f"{path}: file name {name!r} is not a path inside the {kind}")
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("sha256"), str)
            or isinstance(entry.get("bytes"), bool)
            or not isinstance(entry.get("bytes"), int)
        ):
            raise fail(f"{path}: files[{name!r}] must be {{'sha256': str, 'bytes': int}}")
    return manifest


def _check_fields(manifest: dict[str, Any], path: Path) -> None:
    task = manifest.get("task")
    if task not in TASKS:
        raise _fail(f"{path}: task must be one of {list(TASKS)}, got {task!r}")
    model_file = manifest.get("model_file")
    if not isinstance(model_file, str) or not model_file:
        raise _fail(f"{path}: model_file must name the .onnx file, got {model_file!r}")
    data_file = manifest.get("model_data_file")
    if data_file is not None and (not isinstance(data_file, str) or not data_file):
        raise _fail(f"{path}: model_data_file must name the weights file, got {data_file!r}")
    max_length = manifest.get("max_length")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise _fail(f"{path}: max_length must be a positive integer, got {max_length!r}")
    if task == "classification":
        labels = manifest.get("labels")
        if (
            not isinstance(labels, list)
            or not labels
            or not all(isinstance(x, str) and x for x in labels)
            or len(set(labels)) != len(labels)
        ):
            raise _fail(f"{path}: labels must be distinct non-empty names, got {labels!r}")


def verify_files(root: Path, manifest: dict[str, Any], *, digests: bool = True) -> None:
    """Check every file the manifest lists: present, of the recorded size and (``digests``)
    sha256."""
    files: dict[str, dict[str, Any]] = manifest["files"]
    for needed in (*model_files(manifest), TOKENIZER_FILE):
        if needed not in files:
            raise _fail(f"{root / MANIFEST_FILE} does not list {needed} in files")
    verify_listed(root, files, "bundle", digests=digests)


def verify_listed(
    root: Path,
    files: dict[str, dict[str, Any]],
    kind: str,
    fail: Callable[[str], Exception] = _fail,
    *,
    digests: bool = True,
) -> None:
    """Each file of a manifest's ``files`` (a bundle's, an index's): present, size, sha256
    (unless ``digests`` is false: then present, inside the folder and of its size).

    ``fail`` makes the error (with its hint) of the folder's kind.
    """
    inside = root.resolve()
    for name, entry in files.items():
        path = root / name
        try:
            st = path.stat()
            size = st.st_size
            # A symlink may name a file anywhere; only what lies in the folder belongs to it.
            if not path.resolve().is_relative_to(inside) or not stat.S_ISREG(st.st_mode):
                raise fail(f"{kind} file {name} is not a file inside {root}")
        except FileNotFoundError:
            raise fail(f"{kind} file {name} is missing from {root}") from None
        # The size check is free and catches truncated copies before hashing the whole file.
        if size != entry.get("bytes"):
            raise fail(
                f"{kind} file {name} has {size} bytes, the manifest says {entry.get('bytes')}: "
                f"it was changed or truncated ({kind} {root})"
            )
        if not digests:
            continue
        with open(path, "rb") as fh:
            digest = file_sha256(fh)
        if digest != entry["sha256"].lower():
            raise fail(
                f"{kind} file {name} does not match its sha256 in the manifest "
                f"({digest[:12]}... instead of {entry['sha256'][:12]}...): it was changed "
                f"({kind} {root})"
            )


def load_tokenizer(path: Path, max_length: int) -> tuple[Tokenizer, int]:
    """The tokenizer with padding off and truncation at ``max_length``, and its pad token id.

    Both are set here whatever the file says: a tokenizer.json copied from a model folder often
    pads every input to a fixed length, which would multiply the latency of short texts.
    """
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
        raise _fail(f"cannot read the tokenizer {path}: {exc}") from None
    padding = tokenizer.padding
    pad_id = padding.get("pad_id") if padding else None
    if pad_id is None:
        candidates = (tokenizer.token_to_id(t) for t in ("[PAD]", "<pad>", "<PAD>"))
        pad_id = next((i for i in candidates if i is not None), 0)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length, stride=0, strategy="longest_first", direction="right")
    return tokenizer, int(pad_id)


class Bundle:
    """An exported model ready to score texts; implements ``slimbert.train.scoring.Scorer``.

    Safe to share between threads: after loading nothing is mutated.
    """

    def __init__(
        self,
        root: Path,
        manifest: dict[str, Any],
        tokenizer: Tokenizer,
        session: Any,
        *,
        pad_id: int = 0,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise BundleError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.path = root
        self.manifest = manifest
        self.task: str = manifest["task"]
        self.max_length: int = manifest["max_length"]
        self.batch_size = batch_size
        self.label_names: tuple[str, ...] = (
            tuple(manifest["labels"]) if self.task == "classification" else ()
        )
        variant = manifest.get("variant") or Path(manifest["model_file"]).stem
        self.model_id = f"{manifest.get('source_model') or root.name}:{variant}"
        self._tokenizer = tokenizer
        self._session = session
        self._pad_id = pad_id
        self.inputs: tuple[str, ...] = self._check_inputs()
        self._output, self.dim = self._check_output()

    def _check_inputs(self) -> tuple[str, ...]:
        declared = tuple(i.name for i in self._session.get_inputs())
        unknown = [name for name in declared if name not in FEEDABLE_INPUTS]
        if unknown or "input_ids" not in declared:
            raise _fail(
                f"{self.manifest['model_file']} declares inputs {list(declared)}; the runtime "
                f"feeds input_ids (required), attention_mask and token_type_ids only"
            )
        listed = self.manifest.get("inputs")
        if listed is not None and list(listed) != list(declared):
            # The graph is what runs, so it decides; the manifest is only documentation here.
            log.warning("manifest lists inputs %s but the graph declares %s", listed, declared)
        return declared

    def _check_output(self) -> tuple[str, int | None]:
        outputs = {o.name: o for o in self._session.get_outputs()}
        listed = self.manifest.get("outputs") or [DEFAULT_OUTPUT[self.task]]
        name = listed[0]
        if name not in outputs:
            raise _fail(
                f"{self.manifest['model_file']} has no output {name!r} (it has {list(outputs)})"
            )
        shape = outputs[name].shape
        width = shape[-1] if shape and isinstance(shape[-1], int) else None
        if self.task == "classification":
            if width is not None and width != len(self.label_names):
                raise _fail(
                    f"{self.manifest['model_file']} outputs {width} logits but the manifest "
                    f"names {len(self.label_names)} labels"
                )
            return name, None
        dim = self.manifest.get("dim")
        return name, dim if isinstance(dim, int) and dim > 0 else width

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, task={self.task!r}, model_id={self.model_id!r})"

    # -- public scoring API -------------------------------------------------------------------

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Number of tokens each text becomes (special tokens included, after truncation)."""
        return [len(e.ids) for e in self._encode(texts)]

    def logits(
        self, texts: Sequence[str], *, timings: dict[str, float] | None = None
    ) -> np.ndarray:
        """Float32 logits of shape ``(len(texts), len(label_names))``, rows in input order."""
        self._require("classification", "logits")
        return self._run(texts, timings)

    def predict(
        self, texts: Sequence[str], *, timings: dict[str, float] | None = None
    ) -> list[dict[str, Any]]:
        """One ``{"label", "probabilities": {label: p}}`` per text, in input order.

        ``timings``, when given, receives ``tokenize`` and ``inference`` milliseconds.
        """
        self._require("classification", "predict")
        probabilities = softmax(self._run(texts, timings))
        labels = self.label_names
        return [
            {
                "label": labels[int(row.argmax())],
                "probabilities": dict(zip(labels, row.tolist(), strict=True)),
            }
            for row in probabilities
        ]

    def embed(self, texts: Sequence[str], *, timings: dict[str, float] | None = None) -> np.ndarray:
        """Float32 vectors of shape ``(len(texts), dim)``, pooled (and normalised) by the graph."""
        self._require("embedding", "embed")
        return self._run(texts, timings)

    # -- internals ----------------------------------------------------------------------------

    def _require(self, task: str, method: str) -> None:
        if self.task != task:
            other = "embed()" if self.task == "embedding" else "predict() or logits()"
            raise BundleError(
                f"{method}() needs a bundle of task {task!r}, but {self.path} has task "
                f"{self.task!r}",
                hint=f"use {other} with this bundle",
            )

    def _encode(self, texts: Sequence[str]) -> list[Encoding]:
        # A bare string is a Sequence[str] too; scoring its characters one by one is never meant.
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not a single string")
        if len(texts) == 1:
            # One text (the function's usual request): encode_batch would hand it to the
            # tokenizer's thread pool and back, which costs more than encoding it.
            return [self._tokenizer.encode(texts[0])]
        return self._tokenizer.encode_batch(list(texts)) if texts else []

    def _feeds(self, encodings: list[Encoding]) -> dict[str, np.ndarray]:
        lengths = [len(e.ids) for e in encodings]
        width = max(1, max(lengths))
        shape = (len(encodings), width)
        if min(lengths) == width:  # one text, or texts of one length: no padding to write
            feeds: dict[str, np.ndarray] = {}
            for name in self.inputs:
                if name == "input_ids":
                    feeds[name] = np.array([e.ids for e in encodings], dtype=np.int64)
                elif name == "attention_mask":
                    feeds[name] = np.ones(shape, dtype=np.int64)
                else:
                    feeds[name] = np.array([e.type_ids for e in encodings], dtype=np.int64)
            return feeds
        ids = np.full(shape, self._pad_id, dtype=np.int64)
        mask = np.zeros(shape, dtype=np.int64)
        types = np.zeros(shape, dtype=np.int64)
        for row, (enc, n) in enumerate(zip(encodings, lengths, strict=True)):
            ids[row, :n] = enc.ids
            mask[row, :n] = 1
            types[row, :n] = enc.type_ids
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {name: arrays[name] for name in self.inputs}

    def _run(self, texts: Sequence[str], timings: dict[str, float] | None) -> np.ndarray:
        started = time.perf_counter()
        encodings = self._encode(texts)
        n = len(encodings)
        width = len(self.label_names) if self.task == "classification" else self.dim
        single = 0 < n <= self.batch_size  # one chunk: its rows are the output, in input order
        # An embedding graph with a dynamic output width tells its dim only when it first runs.
        out = np.zeros((n, width), dtype=np.float32) if width is not None and not single else None
        # Sorting by length makes each chunk's padding small; the rows go back by index.
        order = list(range(n)) if single else sorted(range(n), key=lambda i: len(encodings[i].ids))
        tokenize_s = time.perf_counter() - started
        inference_s = 0.0
        for start in range(0, n, self.batch_size):
            index = order[start : start + self.batch_size]
            t0 = time.perf_counter()
            feeds = self._feeds(encodings if single else [encodings[i] for i in index])
            t1 = time.perf_counter()
            (result,) = self._session.run([self._output], feeds)
            inference_s += time.perf_counter() - t1
            tokenize_s += t1 - t0
            columns = out.shape[1] if out is not None else width or result.shape[-1]
            if result.shape != (len(index), columns):
                raise BundleError(
                    f"{self.manifest['model_file']} returned shape {result.shape} for a batch of "
                    f"{len(index)} texts; expected ({len(index)}, {columns})",
                    hint=REEXPORT_HINT,
                )
            if single:
                out = np.asarray(result, dtype=np.float32)
                break
            if out is None:
                out = np.zeros((n, columns), dtype=np.float32)
            out[index] = result
        if timings is not None:
            timings["tokenize"] = timings.get("tokenize", 0.0) + tokenize_s * 1000
            timings["inference"] = timings.get("inference", 0.0) + inference_s * 1000
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def softmax(logits: np.ndarray, dtype: type[np.floating[Any]] = np.float32) -> np.ndarray:
    """Row-wise softmax, stable for large logits (the row maximum is subtracted first).

    Computed in float64 (one copy, then in place) and returned as ``dtype``.
    """
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z if dtype is np.float64 else z.astype(dtype)


def load_bundle(
    path: str | Path,
    *,
    threads: int | None = None,
    verify: bool | str = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    manifest_sha256: str | None = None,
    phases: PhaseRecorder | None = None,
) -> Bundle:
    """Load the bundle folder ``path``: manifest, integrity check, tokenizer and ONNX session.

    ``threads`` defaults to ``SLIMBERT_THREADS`` or the CPUs this process may use;
    ``verify`` is how the files are checked against the manifest: ``True`` (or ``"full"``)
    their sizes and sha256, ``"sizes"`` their sizes only (what a packaged function does when
    its manifest is pinned, docs/serving.md), ``False`` nothing (the files must still exist);
    ``manifest_sha256`` is the digest ``manifest.json`` itself must have (checked in every
    mode: it is one small file). ``phases``, when given, records each step's time
    (:mod:`slimbert.runtime.phases`).
    """
    mode = _verify_mode(verify)
    started = time.perf_counter()
    root = Path(path).expanduser()
    with _timed(phases, "manifest"):
        manifest = read_manifest(root, sha256=manifest_sha256)
    with _timed(phases, "verify"):
        if mode != "off":
            verify_files(root, manifest, digests=mode == "full")
        model_path = root / manifest["model_file"]
        for needed in (*(root / name for name in model_files(manifest)), root / TOKENIZER_FILE):
            if not needed.is_file():
                raise _fail(f"bundle file {needed.name} is missing from {root}")
    with _timed(phases, "tokenizer"):
        tokenizer, pad_id = load_tokenizer(root / TOKENIZER_FILE, manifest["max_length"])
    with _timed(phases, "session"):
        n_threads = resolve_threads(threads)
        try:
            session = create_session(model_path, n_threads, optimized=_graph_optimized(manifest))
        except Exception as exc:  # onnxruntime raises its own exception types, not importable
            raise _fail(f"onnxruntime cannot load {model_path}: {exc}") from None
        bundle = Bundle(root, manifest, tokenizer, session, pad_id=pad_id, batch_size=batch_size)
    log.info(
        "loaded bundle %s (%s, %s) with %d threads in %.0f ms",
        root,
        bundle.model_id,
        bundle.task,
        n_threads,
        (time.perf_counter() - started) * 1000,
    )
    return bundle


VERIFY_MODES = ("full", "sizes", "off")
# Graph optimisation levels the exporter may have applied and saved (the manifest's
# ``graph_optimization``); a graph saved at one of them runs without optimising it again.
OFFLINE_LEVELS = ("extended",)


def _graph_optimized(manifest: dict[str, Any]) -> bool:
    """Whether the model file is already optimised for this onnxruntime (docs/bundle.md).

    Only when the exporting onnxruntime's version is this one: a saved graph holds the
    fusions (contrib operators) of its version, and another version re-optimises it at load,
    as for a bundle exported before the field existed.
    """
    graph = manifest.get("graph_optimization")
    if not isinstance(graph, dict) or graph.get("level") not in OFFLINE_LEVELS:
        return False
    import onnxruntime

    if graph.get("onnxruntime") != onnxruntime.__version__:
        log.info(
            "the graph was optimised by onnxruntime %s, this is %s: optimising it again",
            graph.get("onnxruntime"),
            onnxruntime.__version__,
        )
        return False
    return True


def _verify_mode(verify: bool | str) -> str:
    if verify is True:
        return "full"
    if verify is False:
        return "off"
    mode = str(verify).strip().lower()
    if mode not in VERIFY_MODES:
        raise BundleError(
            f"verify must be one of {list(VERIFY_MODES)} (or True/False), got {verify!r}",
            hint=None,
        )
    return mode


def _timed(phases: PhaseRecorder | None, name: str) -> contextlib.AbstractContextManager[None]:
    return phases.phase(name) if phases is not None else contextlib.nullcontext()
