"""The cold-start budget (issue 16): phase lines, their parser, and the cheaper start-up paths.

Every phase must be present and in order, the lines must parse back from a captured log with
whatever prefix a log system adds, the budget must add up, and each saving must keep its
guarantee: the size-only check still refuses a truncated file, the full check (on request)
still refuses a changed one.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slimbert.runtime.phases import (
    FIRST_WORD,
    INIT_PHASES,
    INIT_WORD,
    PHASES,
    PhaseRecorder,
    read_phase_lines,
)

# -- the recorder and the parser (no model) ---------------------------------------------------


def _recorded(stream: io.StringIO) -> PhaseRecorder:
    rec = PhaseRecorder(0.040, "proc")
    for name in INIT_PHASES[1:6]:
        rec.mark(name)
    rec.idle()
    for name in INIT_PHASES[6:]:
        with rec.phase(name):
            time.sleep(0.001)
    return rec


def test_phase_lines_round_trip_with_every_phase_in_order() -> None:
    stream = io.StringIO()
    rec = _recorded(stream)
    started = time.perf_counter()
    init = rec.finish_init(stream=stream)
    assert rec.finish_first(started, 200, stream=stream) is not None
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == [INIT_WORD, FIRST_WORD]
    assert init is not None and list(init["phases_ms"]) == list(INIT_PHASES)
    # A log system's prefix (a timestamp, a request id) does not hide the lines.
    log = "START RequestId: x\n" + "\n".join(f"2026-12-06T09:00:00Z\t{line}" for line in lines)
    (run,) = read_phase_lines(log + "\nREPORT RequestId: x\n")
    assert list(run["phases_ms"]) == list(PHASES)
    assert run["answered"] and run["ok"] and run["status"] == 200
    assert run["phases_ms"]["interpreter"] == pytest.approx(40.0)
    assert all(run["phases_ms"][n] >= 1.0 for n in INIT_PHASES[6:])  # each slept 1 ms
    assert run["init_ms"] == pytest.approx(sum(run["phases_ms"][n] for n in INIT_PHASES), abs=0.01)
    assert run["total_ms"] == pytest.approx(sum(run["phases_ms"].values()))
    assert run["total_ms"] > run["init_ms"]


def test_lines_are_written_once_and_the_first_only_after_init() -> None:
    stream = io.StringIO()
    rec = PhaseRecorder(None, "none")
    assert rec.finish_first(time.perf_counter(), 200, stream=stream) is None  # no init yet
    assert rec.finish_init(stream=stream) is not None
    assert rec.finish_init(stream=stream) is None
    started = time.perf_counter()
    assert rec.finish_first(started, 500, stream=stream) is not None
    assert rec.finish_first(started, 200, stream=stream) is None
    (run,) = read_phase_lines(stream.getvalue())
    assert run["status"] == 500
    assert run["phases_ms"]["interpreter"] == 0.0  # no source: reported, as 0
    assert json.loads(stream.getvalue().splitlines()[0].split(" ", 1)[1])["interpreter_source"] == (
        "none"
    )


def test_parser_pairs_lines_by_process_and_skips_garbage() -> None:
    def line(word: str, pid: int, ms: float) -> str:
        name = "first_request" if word == FIRST_WORD else "session"
        record = {"phases_ms": {name: ms}, "total_ms": ms, "pid": pid}
        return f"{word} {json.dumps(record)}"

    text = "\n".join(
        [
            line(FIRST_WORD, 9, 1.0),  # an answer with no init before it: ignored
            line(INIT_WORD, 1, 10.0),
            line(INIT_WORD, 2, 20.0),
            f"{INIT_WORD} {{not json",
            "SLIMBERT_INITIAL nothing",
            line(FIRST_WORD, 2, 2.0),
            line(FIRST_WORD, 1, 1.0),
        ]
    )
    runs = read_phase_lines(text)
    assert [(r["pid"], r["init_ms"], r["total_ms"]) for r in runs] == [(1, 10, 11), (2, 20, 22)]
    assert read_phase_lines("") == []


def test_launcher_stamp_and_proc_start_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIMBERT_LAUNCHED_AT", str(time.time() - 2.0))
    rec = PhaseRecorder.from_process_start()
    assert rec.source == "launcher"
    assert 2000 <= rec.phases_ms["interpreter"] < 2500
    monkeypatch.setenv("SLIMBERT_LAUNCHED_AT", "yesterday")  # garbled: the kernel's figure
    rec = PhaseRecorder.from_process_start()
    if sys.platform.startswith("linux"):
        assert rec.source == "proc"
        assert rec.phases_ms["interpreter"] > 0


def test_a_process_that_only_drives_the_handler_can_stay_silent() -> None:
    stream = io.StringIO()
    rec = PhaseRecorder(None, "none")
    rec.silence()
    assert rec.finish_init(stream=stream) is None
    assert rec.finish_first(time.perf_counter(), 200, stream=stream) is None
    assert stream.getvalue() == ""


def _run(ms: dict[str, float]) -> dict[str, object]:
    return {"phases_ms": ms, "total_ms": sum(ms.values())}


def test_phase_table_medians_and_columns() -> None:
    from slimbert.lab.coldstart import phase_medians, phase_table

    runs = [
        _run({"interpreter": 10, "session": 30, "first_request": 2}),
        _run({"interpreter": 20, "session": 10, "first_request": 4}),
        _run({"interpreter": 30, "session": 20, "first_request": 3, "mine": 1}),
    ]
    medians = phase_medians(runs)
    assert list(medians) == ["interpreter", "session", "first_request", "mine", "total"]
    assert medians["interpreter"] == 20 and medians["session"] == 20 and medians["mine"] == 0
    # The total is the median of the runs' totals (42, 34, 54), not the sum of the medians.
    assert medians["total"] == 42
    table = phase_table(runs)
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0] == "| phase | median ms | share | cumulative ms |"
    assert rows[1] == "| interpreter | 20.0 | 48% | 20.0 |"
    assert rows[3] == "| first_request | 3.0 | 7% | 43.0 |"
    assert "**42.0**" in rows[-1]
    both = phase_table({"before": runs, "after": runs[:1]})
    assert "| phase | before | after |" in both and "| session | 20.0 | 30.0 |" in both
    assert phase_medians([]) == {}


def test_plot_phases_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from slimbert.lab.coldstart import plot_phases

    runs = [_run({"interpreter": 10.0, "import_numpy": 50.0, "session": 9.0})]
    path = plot_phases({"before": runs, "after": runs}, tmp_path / "p" / "cold.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- the function, cold, in a fresh process ---------------------------------------------------

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from runtime_fixtures import build_bundle  # noqa: E402


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("coldstart") / "bundle")


_COLD = """
import sys, time
import slimbert.runtime.handler as h
for _ in range(2):
    out = h.lambda_handler({"texts": ["good great", "bad awful"]}, None)
    assert [p["label"] for p in out["predictions"]] == ["positive", "negative"], out
h.reload()  # a later load is no cold start: no second line
print("answered", [m for m in ("base64", "dataclasses", "torch") if m in sys.modules])
"""


def _cold(bundle: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLIMBERT_", "AWS_"))}
    return subprocess.run(
        [sys.executable, "-c", _COLD],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **base,
            "SLIMBERT_BUNDLE": str(bundle),
            "SLIMBERT_THREADS": "1",
            "AWS_LAMBDA_FUNCTION_NAME": "fn-coldstart",  # load at import, as in Lambda
            **env,
        },
        check=False,
    )


def test_a_cold_start_reports_every_phase_once(bundle_dir: Path) -> None:
    done = _cold(bundle_dir, SLIMBERT_LAUNCHED_AT=str(time.time()))
    assert done.returncode == 0, done.stderr
    # Imports trimmed: what only some requests need is imported by them (base64 bodies), and
    # the runtime's classes are plain ones (no dataclasses).
    assert done.stdout.strip() == "answered []"
    assert done.stderr.count(INIT_WORD + " ") == 1 and done.stderr.count(FIRST_WORD + " ") == 1
    (run,) = read_phase_lines(done.stderr)
    assert list(run["phases_ms"]) == list(PHASES)
    assert run["interpreter_source"] == "launcher" and run["ok"] and run["answered"]
    assert run["status"] == 200
    for name in ("interpreter", "import_numpy", "import_onnxruntime", "session", "first_request"):
        assert run["phases_ms"][name] > 0, (name, run)
    # The function's own account cannot exceed what the process took in all.
    assert run["total_ms"] < 120_000


def test_a_failed_load_still_reports_its_init(tmp_path: Path) -> None:
    done = _cold(tmp_path / "absent")
    assert done.returncode != 0  # Lambda's init error
    (run,) = read_phase_lines(done.stderr)
    assert run["ok"] is False and not run["answered"]
    assert "ModelLoadError" in done.stderr


# -- integrity: the cheap check at start and the full one on request --------------------------


def _pinned(bundle: Path) -> str:
    from slimbert.runtime.bundle import manifest_digest

    return manifest_digest(bundle)


def _tampered(src: Path, dst: Path) -> Path:
    """A copy whose tokenizer has one byte changed: same size, other sha256."""
    shutil.copytree(src, dst)
    path = dst / "tokenizer.json"
    data = bytearray(path.read_bytes())
    at = data.index(b'"[UNK]"') + 2
    data[at] = ord("X")  # [XNK]: still valid JSON, same size
    path.write_bytes(bytes(data))
    return dst


def test_load_bundle_verify_modes(bundle_dir: Path, tmp_path: Path) -> None:
    from slimbert.runtime.bundle import BundleError, load_bundle

    changed = _tampered(bundle_dir, tmp_path / "changed")
    with pytest.raises(BundleError, match="does not match its sha256"):
        load_bundle(changed, threads=1)  # the default stays the full check
    with pytest.raises(BundleError, match="does not match its sha256"):
        load_bundle(changed, threads=1, verify="full")
    load_bundle(changed, threads=1, verify="sizes")  # sizes alone cannot see it (documented)
    truncated = tmp_path / "truncated"
    shutil.copytree(bundle_dir, truncated)
    model = truncated / "model_fp32.onnx"
    model.write_bytes(model.read_bytes()[:-10])
    with pytest.raises(BundleError, match=r"has \d+ bytes, the manifest says"):
        load_bundle(truncated, threads=1, verify="sizes")
    with pytest.raises(BundleError, match="verify must be one of"):
        load_bundle(bundle_dir, threads=1, verify="sometimes")


def test_packaged_function_checks_sizes_unless_asked_for_the_full_check(
    bundle_dir: Path, tmp_path: Path
) -> None:
    changed = _tampered(bundle_dir, tmp_path / "changed")
    pin = _pinned(changed)
    # Not packaged (no pinned manifest): the full check, as before.
    done = _cold(changed)
    assert done.returncode != 0 and "does not match its sha256" in done.stderr
    # Packaged (manifest pinned), full check asked for: refused.
    done = _cold(changed, SLIMBERT_MANIFEST_SHA256=pin, SLIMBERT_VERIFY="full")
    assert done.returncode != 0 and "does not match its sha256" in done.stderr
    # Packaged, default: the manifest's digest and every file's size.
    done = _cold(bundle_dir, SLIMBERT_MANIFEST_SHA256=_pinned(bundle_dir))
    assert done.returncode == 0, done.stderr
    # A pinned manifest that was edited is refused in every mode.
    done = _cold(changed, SLIMBERT_MANIFEST_SHA256="0" * 64)
    assert done.returncode != 0 and "does not match the sha256 recorded" in done.stderr
    done = _cold(bundle_dir, SLIMBERT_VERIFY="never")
    assert done.returncode != 0 and "SLIMBERT_VERIFY" in done.stderr


# -- the graph as the function loads it: weights apart, optimised once --------------------------


def _runtime_bundle(src: Path, dst: Path, **graph: object) -> Path:
    """``src`` re-saved the way `slimbert export` now writes it."""
    from runtime_fixtures import write_manifest
    from slimbert.export.convert import runtime_graph

    dst.mkdir()
    shutil.copy(src / "tokenizer.json", dst / "tokenizer.json")
    # The embedding table apart: the toy's tensors are all under the 1 KiB default.
    record = runtime_graph(src / "model_fp32.onnx", dst / "model_fp32.onnx", size_threshold=256)
    assert record is not None
    write_manifest(
        dst,
        model_data_file="model_fp32.onnx.data",
        graph_optimization={**record, **graph},
        files={},
    )
    manifest = json.loads((dst / "manifest.json").read_text())
    from runtime_fixtures import file_entry

    names = ["model_fp32.onnx", "model_fp32.onnx.data", "tokenizer.json"]
    manifest["files"] = {n: file_entry(dst / n) for n in names}
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def test_an_optimised_graph_with_its_weights_apart_loads_without_reoptimising(
    bundle_dir: Path, tmp_path: Path
) -> None:
    import numpy as np
    import onnxruntime as ort

    from slimbert.runtime.bundle import BundleError, load_bundle, model_bytes

    texts = ["good great", "bad awful", "table chair", "the flight was so so"]
    plain = load_bundle(bundle_dir, threads=1)
    saved = load_bundle(_runtime_bundle(bundle_dir, tmp_path / "saved"), threads=1)
    level = ort.GraphOptimizationLevel
    assert saved._session.get_session_options().graph_optimization_level == level.ORT_DISABLE_ALL
    assert plain._session.get_session_options().graph_optimization_level == level.ORT_ENABLE_ALL
    np.testing.assert_allclose(saved.logits(texts), plain.logits(texts), atol=1e-4)
    files = saved.manifest["files"]
    assert model_bytes(saved.manifest) == sum(files[n]["bytes"] for n in files if "model" in n)
    # Saved by another onnxruntime: optimised at load as before, same answers.
    other = load_bundle(
        _runtime_bundle(bundle_dir, tmp_path / "other", onnxruntime="0.0.1"), threads=1
    )
    assert other._session.get_session_options().graph_optimization_level == level.ORT_ENABLE_ALL
    np.testing.assert_allclose(other.logits(texts), plain.logits(texts), atol=1e-4)
    # The weights are a bundle file like any other: missing or changed, the load is refused.
    (tmp_path / "other" / "model_fp32.onnx.data").unlink()
    with pytest.raises(BundleError, match=r"model_fp32\.onnx\.data is missing"):
        load_bundle(tmp_path / "other", threads=1, verify="sizes")
    weights = tmp_path / "saved" / "model_fp32.onnx.data"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match its sha256"):
        load_bundle(tmp_path / "saved", threads=1)


def test_the_small_digest_is_sha256() -> None:
    import hashlib

    from slimbert.runtime.bundle import small_sha256

    for data in (b"", b"manifest", bytes(range(256)) * 9):
        assert small_sha256(data) == hashlib.sha256(data).hexdigest()
