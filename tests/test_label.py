"""Labelling the silver set: complete runs, resuming after SIGKILL, refusing foreign plans."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slimbert.data.shards import shard_name
from slimbert.errors import ConfigError, SlimbertError
from slimbert.train.label import (
    LabelOptions,
    label_corpus,
    read_silver,
    silver_is_complete,
)

# The helper is loaded by path so this works whatever pytest's import mode or package layout.
_WORKER = Path(__file__).with_name("_label_worker.py")
_spec = importlib.util.spec_from_file_location("_label_worker", _WORKER)
assert _spec is not None and _spec.loader is not None
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)
FakeScorer = worker.FakeScorer


@pytest.fixture
def teacher(tmp_path: Path) -> Path:
    folder = tmp_path / "teacher"
    folder.mkdir()
    (folder / "config.json").write_text('{"labels": 3}', encoding="utf-8")
    return folder


def _options(teacher: Path, data: Path, out: Path, **kw: Any) -> LabelOptions:
    base: dict[str, Any] = {"id_column": "id", "shard_size": 64, "batch_size": 16}
    base.update(kw)
    return LabelOptions(teacher=teacher, data=str(data), out=out, **base)


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def _shard_stats(out: Path, names: list[str]) -> dict[str, tuple[int, int]]:
    return {n: ((out / n).stat().st_ino, (out / n).stat().st_mtime_ns) for n in names}


def test_complete_run(tmp_path: Path, teacher: Path) -> None:
    data = tmp_path / "pool.csv"
    texts = worker.write_corpus(data, 500)
    out = tmp_path / "silver"
    calls: list[tuple[int, int]] = []
    scorer = FakeScorer()

    result = label_corpus(
        _options(teacher, data, out), scorer=scorer, progress=lambda d, t: calls.append((d, t))
    )

    assert (result.rows, result.shards, result.resumed_shards) == (500, 8, 0)
    assert result.rows_per_second > 0
    assert sum(result.label_counts.values()) == 500
    assert max(scorer.batches) <= 16
    assert calls[0] == (0, 500) and calls[-1] == (500, 500)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert silver_is_complete(out)

    manifest = _manifest(out)
    assert manifest["complete"] is True and manifest["shards"] == 8
    assert sorted(manifest["done"]) == [shard_name(i) for i in range(8)]
    previous_max = 0
    seen: list[int] = []
    for i in range(8):
        table = pq.read_table(out / shard_name(i))
        assert table.column_names == ["row", "id", "text", "label", "label_id", "probs", "logits"]
        schema = table.schema
        assert (
            schema.field("row").type == pa.int64() and schema.field("label_id").type == pa.int32()
        )
        for column in ("probs", "logits"):
            assert schema.field(column).type.equals(pa.list_(pa.float32()), check_metadata=False)
        rows = table.column("row").to_pylist()
        seen += rows
        lengths = [len(t.split()) for t in table.column("text").to_pylist()]
        keys = list(zip(lengths, rows, strict=True))
        assert keys == sorted(keys), "rows are ordered by (length, row) within a shard"
        assert lengths[0] >= previous_max
        previous_max = lengths[-1]
        logits = np.array(table.column("logits").to_pylist(), dtype=np.float32)
        probs = np.array(table.column("probs").to_pylist(), dtype=np.float32)
        label_ids = np.array(table.column("label_id").to_pylist())
        assert np.array_equal(label_ids, logits.argmax(axis=1))
        assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        assert table.column("label").to_pylist() == [worker.LABEL_NAMES[i] for i in label_ids]
    assert sorted(seen) == list(range(500))

    silver, logits = read_silver(out)
    assert silver.texts == texts
    assert silver.ids == [f"r{i}" for i in range(500)]
    assert silver.label_names == worker.LABEL_NAMES
    assert silver.source == f"silver:{out}"
    assert logits.dtype == np.float32 and logits.shape == (500, 3)
    assert np.array_equal(logits, np.stack([worker.fake_logits(t) for t in texts]))
    assert silver.labels == logits.argmax(axis=1).tolist()

    # A finished set is verified and kept, not relabelled.
    before = _shard_stats(out, sorted(manifest["done"]))
    again = label_corpus(_options(teacher, data, out, batch_size=32), scorer=FakeScorer())
    assert again.resumed_shards == 8 and again.rows_per_second == 0.0
    assert again.label_counts == result.label_counts
    assert _shard_stats(out, sorted(manifest["done"])) == before


def test_limit_and_last_short_shard(tmp_path: Path, teacher: Path) -> None:
    data = tmp_path / "pool.csv"
    texts = worker.write_corpus(data, 300, with_label=False)
    out = tmp_path / "silver"
    result = label_corpus(_options(teacher, data, out, limit=100), scorer=FakeScorer())
    assert (result.rows, result.shards) == (100, 2)
    assert _manifest(out)["done"][shard_name(1)]["rows"] == 36
    silver, _ = read_silver(out)
    assert silver.texts == texts[:100]


def test_resume_after_sigkill(tmp_path: Path, teacher: Path) -> None:
    data = tmp_path / "pool.csv"
    texts = worker.write_corpus(data, 2000)
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(_WORKER), str(data), str(out), str(teacher), "100", "25", "0.02"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            manifest_file = out / "manifest.json"
            if manifest_file.exists() and _manifest(out)["done"]:
                break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the worker wrote no shard within 30 s"
            time.sleep(0.01)
        time.sleep(0.05)  # land the kill in the middle of a later shard
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()

    at_kill = _manifest(out)
    assert not at_kill["complete"], "the worker finished before the kill; slow it down"
    done_at_kill = sorted(at_kill["done"])
    # Every file under a final name is a whole, readable shard of the planned size.
    for path in out.glob("part-*.parquet"):
        assert pq.read_metadata(path).num_rows == 100
    before = _shard_stats(out, done_at_kill)
    stray = out / ".part-00019.parquet.x1y2z3.tmp"
    stray.write_bytes(b"half a shard")

    calls: list[tuple[int, int]] = []
    options = _options(teacher, data, out, shard_size=100, batch_size=25)
    result = label_corpus(options, scorer=FakeScorer(), progress=lambda d, t: calls.append((d, t)))

    assert result.resumed_shards == len(done_at_kill) >= 1
    assert calls[0] == (100 * len(done_at_kill), 2000)
    assert _shard_stats(out, done_at_kill) == before, "finished shards were recomputed"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    silver, logits = read_silver(out)
    assert silver.texts == texts
    reference = tmp_path / "uninterrupted"
    label_corpus(
        _options(teacher, data, reference, shard_size=100, batch_size=25), scorer=FakeScorer()
    )
    silver_ref, logits_ref = read_silver(reference)
    assert silver.texts == silver_ref.texts and silver.ids == silver_ref.ids
    assert silver.labels == silver_ref.labels
    assert np.array_equal(logits, logits_ref)
    sha = {n: e["sha256"] for n, e in _manifest(out)["done"].items()}
    assert sha == {n: e["sha256"] for n, e in _manifest(reference)["done"].items()}


def test_different_plan_is_refused(tmp_path: Path, teacher: Path) -> None:
    data = tmp_path / "pool.csv"
    worker.write_corpus(data, 100)
    out = tmp_path / "silver"
    label_corpus(_options(teacher, data, out), scorer=FakeScorer())

    other_teacher = tmp_path / "teacher2"
    other_teacher.mkdir()
    (other_teacher / "config.json").write_text('{"labels": 3, "v": 2}', encoding="utf-8")
    with pytest.raises(SlimbertError, match=r"different labelling.*teacher") as err:
        label_corpus(_options(other_teacher, data, out), scorer=FakeScorer())
    assert "--out" in str(err.value)

    (teacher / "config.json").write_text('{"labels": 3, "retrained": true}', encoding="utf-8")
    with pytest.raises(SlimbertError, match="teacher files"):
        label_corpus(_options(teacher, data, out), scorer=FakeScorer())
    (teacher / "config.json").write_text('{"labels": 3}', encoding="utf-8")

    with pytest.raises(SlimbertError, match="shard_size"):
        label_corpus(_options(teacher, data, out, shard_size=32), scorer=FakeScorer())
    with pytest.raises(SlimbertError, match="texts"):
        label_corpus(_options(teacher, data, out, limit=50), scorer=FakeScorer())
    other_data = tmp_path / "pool2.csv"
    worker.write_corpus(other_data, 100, seed=1)
    with pytest.raises(SlimbertError, match="different labelling"):
        label_corpus(_options(teacher, other_data, out), scorer=FakeScorer())

    # Without a scorer the refusal comes before loading the teacher (which would fail here:
    # the fake teacher folder holds no model).
    with pytest.raises(SlimbertError, match="different labelling"):
        label_corpus(_options(teacher, other_data, out))

    renamed = FakeScorer()
    renamed.label_names = ("bad", "so-so", "good")
    with pytest.raises(SlimbertError, match="label names"):
        label_corpus(_options(teacher, data, out), scorer=renamed)

    # The refused runs changed nothing: the original set is still complete and readable.
    assert silver_is_complete(out)
    assert len(read_silver(out)[0].texts) == 100


def test_folder_of_something_else_is_refused(tmp_path: Path, teacher: Path) -> None:
    data = tmp_path / "pool.csv"
    worker.write_corpus(data, 10)
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(SlimbertError, match="not a silver set"):
        label_corpus(_options(teacher, data, out), scorer=FakeScorer())
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_truncated_shard_is_relabelled(tmp_path: Path, teacher: Path) -> None:
    data = tmp_path / "pool.csv"
    worker.write_corpus(data, 200)
    out = tmp_path / "silver"
    label_corpus(_options(teacher, data, out), scorer=FakeScorer())
    expected = read_silver(out)
    damaged = out / shard_name(1)
    damaged.write_bytes(damaged.read_bytes()[:100])

    assert not silver_is_complete(out)
    with pytest.raises(SlimbertError, match="damaged"):
        read_silver(out)

    scorer = FakeScorer()
    result = label_corpus(_options(teacher, data, out), scorer=scorer)
    assert result.resumed_shards == result.shards - 1
    assert sum(scorer.batches) == 64  # only the damaged shard was labelled again
    silver, logits = read_silver(out)
    assert silver.texts == expected[0].texts and np.array_equal(logits, expected[1])


def test_read_silver_checks_rows(tmp_path: Path, teacher: Path) -> None:
    data = tmp_path / "pool.csv"
    worker.write_corpus(data, 128)
    out = tmp_path / "silver"
    label_corpus(_options(teacher, data, out), scorer=FakeScorer())
    # Make shard 1 a copy of shard 0 (with a valid checksum): rows 0-63 twice, 64 missing.
    manifest = _manifest(out)
    (out / shard_name(1)).write_bytes((out / shard_name(0)).read_bytes())
    manifest["done"][shard_name(1)] = {**manifest["done"][shard_name(0)], "index": 1}
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(SlimbertError, match="64 duplicated and 64 missing"):
        read_silver(out)


def test_unfinished_or_missing_set(tmp_path: Path) -> None:
    with pytest.raises(SlimbertError, match="not a silver set"):
        read_silver(tmp_path)
    assert not silver_is_complete(tmp_path / "nowhere")


def test_empty_input(tmp_path: Path, teacher: Path) -> None:
    data = tmp_path / "empty.csv"
    data.write_text("id,text\n", encoding="utf-8")
    with pytest.raises(SlimbertError, match=r"(?i)no data rows|no texts|empty"):
        label_corpus(_options(teacher, data, tmp_path / "silver"), scorer=FakeScorer())
    assert not (tmp_path / "silver").exists()


def test_bad_teacher_output(tmp_path: Path, teacher: Path) -> None:
    class NaNScorer:
        label_names = worker.LABEL_NAMES

        def token_lengths(self, texts: Sequence[str]) -> list[int]:
            return [1] * len(texts)

        def logits(self, texts: Sequence[str]) -> np.ndarray:
            return np.full((len(texts), 3), np.nan, dtype=np.float32)

    data = tmp_path / "pool.csv"
    worker.write_corpus(data, 20)
    out = tmp_path / "silver"
    with pytest.raises(SlimbertError, match="non-finite"):
        label_corpus(_options(teacher, data, out), scorer=NaNScorer())
    assert not list(out.glob("part-*"))


def test_options() -> None:
    opts = LabelOptions.from_dict(
        {"teacher": "t", "data": "pool.csv", "out": "o", "batch_size": "8", "shard_size": 16}
    )
    assert opts.out == Path("o") and opts.batch_size == 8
    assert LabelOptions.from_dict(opts.to_dict()) == opts
    with pytest.raises(ConfigError, match="smaller than"):
        opts.replace(shard_size=4)
    with pytest.raises(ConfigError, match="limit"):
        opts.replace(limit=0)
    with pytest.raises(ConfigError, match="backend"):
        opts.replace(backend="tflite")
    with pytest.raises(ConfigError, match="teacher folder"):
        opts.replace(out=Path("t"))


def test_one_run_per_folder(tmp_path: Path, teacher: Path) -> None:
    fcntl = pytest.importorskip("fcntl")
    data = tmp_path / "pool.csv"
    worker.write_corpus(data, 10)
    out = tmp_path / "silver"
    out.mkdir()
    with open(out / ".label.lock", "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        with pytest.raises(SlimbertError, match="another labelling run"):
            label_corpus(_options(teacher, data, out), scorer=FakeScorer())
    assert label_corpus(_options(teacher, data, out), scorer=FakeScorer()).rows == 10


# -- the command path: a one-step pipeline run with force, as `slimbert label` runs it --------
def _shards(out: Path) -> dict[str, tuple[int, int, str]]:
    """Every finished shard: inode, mtime and sha256 (a relabelled shard changes all three)."""
    return {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(out.glob("part-*.parquet"))
    }


def _as_the_command_runs(options: LabelOptions, *, overwrite: bool = False) -> Any:
    """`slimbert label [--overwrite]`: a forced one-step pipeline (the fake teacher as a hook)."""
    from slimbert.pipeline import Step, overwrite_outputs, run_pipeline

    with overwrite_outputs(overwrite):
        summary = run_pipeline(
            [Step("label", "label", options)],
            force=True,
            hooks={"label": lambda step: {"scorer": FakeScorer()}},
        )
    return summary[0]["result"]


def test_command_rerun_resumes_every_shard_and_refuses_another_plan(
    tmp_path: Path, teacher: Path
) -> None:
    data = tmp_path / "pool.csv"
    worker.write_corpus(data, 600)
    out = tmp_path / "silver"
    first = _as_the_command_runs(_options(teacher, data, out, shard_size=20, batch_size=20))
    assert (first.shards, first.resumed_shards) == (30, 0)
    shards = _shards(out)
    assert len(shards) == 30 and Path(f"{out}.step.json").is_file()

    again = _as_the_command_runs(_options(teacher, data, out, shard_size=20, batch_size=20))
    assert (again.shards, again.resumed_shards) == (30, 30), "every shard is resumed"
    assert _shards(out) == shards, "no shard was relabelled or rewritten"

    with pytest.raises(
        SlimbertError, match=r"different labelling \(it differs in: shard_size"
    ) as e:
        _as_the_command_runs(_options(teacher, data, out, shard_size=40, batch_size=20))
    assert e.value.hint is not None and "--overwrite" in e.value.hint and "--out" in e.value.hint
    assert _shards(out) == shards

    replaced = _as_the_command_runs(
        _options(teacher, data, out, shard_size=40, batch_size=20), overwrite=True
    )
    assert (replaced.shards, replaced.resumed_shards) == (15, 0)
    assert _manifest(out)["plan"]["shard_size"] == 40 and len(_shards(out)) == 15
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "pool.csv",
        "silver",
        "silver.step.json",
        "teacher",
    ], "the replacement was built beside and swapped in, nothing left over"
    assert len(read_silver(out)[0]) == 600


def test_overwrite_keeps_the_old_set_until_the_new_one_is_complete(
    tmp_path: Path, teacher: Path
) -> None:
    data = tmp_path / "pool.csv"
    worker.write_corpus(data, 300)
    out = tmp_path / "silver"
    label_corpus(_options(teacher, data, out, shard_size=50, batch_size=25), scorer=FakeScorer())
    old = _shards(out)

    class Dies(FakeScorer):  # type: ignore[misc, valid-type]
        def logits(self, texts: Sequence[str]) -> np.ndarray:
            if len(self.batches) == 5:
                raise KeyboardInterrupt
            return super().logits(texts)

    new_plan = _options(teacher, data, out, shard_size=100, batch_size=25)
    with pytest.raises(KeyboardInterrupt):
        label_corpus(new_plan, scorer=Dies(), overwrite=True)
    assert _shards(out) == old and _manifest(out)["complete"], "the old set is untouched"
    staging = tmp_path / ".silver.next"
    assert [n for n in _manifest(staging)["done"]] == ["part-00000.parquet"]

    # The same --overwrite run again resumes the replacement, then swaps it in.
    result = label_corpus(new_plan, scorer=FakeScorer(), overwrite=True)
    assert (result.shards, result.resumed_shards) == (3, 1)
    assert not staging.exists() and _manifest(out)["plan"]["shard_size"] == 100
    assert len(read_silver(out)[0]) == 300


def test_sigkill_then_the_command_resumes_and_a_rerun_keeps_every_shard(
    tmp_path: Path, teacher: Path
) -> None:
    data = tmp_path / "pool.csv"
    worker.write_corpus(data, 2000)
    out = tmp_path / "killed"
    args = [str(data), str(out), str(teacher), "100", "25", "0.02"]
    proc = subprocess.Popen(
        [sys.executable, str(_WORKER), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while not ((out / "manifest.json").exists() and len(_manifest(out)["done"]) >= 2):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the worker wrote no shard within 30 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()
    at_kill = _manifest(out)
    assert not at_kill["complete"], "the worker finished before the kill; slow it down"
    kept = {n: s for n, s in _shards(out).items() if n in at_kill["done"]}

    options = _options(teacher, data, out, shard_size=100, batch_size=25)
    resumed = _as_the_command_runs(options)
    assert resumed.resumed_shards == len(at_kill["done"]) >= 2
    assert {n: s for n, s in _shards(out).items() if n in kept} == kept
    finished = _shards(out)
    assert len(finished) == 20

    rerun = _as_the_command_runs(options)  # a stamp exists now: the old code relabelled all
    assert (rerun.shards, rerun.resumed_shards) == (20, 20)
    assert _shards(out) == finished
    assert len(read_silver(out)[0]) == 2000


def test_export_teacher_labels_with_the_fp32_bundle_and_reports_agreement(
    tmp_path: Path, tiny_model: Path, tiny_data: dict[str, Path]
) -> None:
    """--export-teacher fp32: the bundle (beside the silver folder, reused on a rerun) labels,
    and its agreement with the torch teacher on a sample is in the result and the manifest."""
    from slimbert.models.load import TorchClassifier

    clf = tmp_path / "clf"
    TorchClassifier.build(tiny_model, ("negative", "neutral", "positive"), max_length=32).save(clf)
    out = tmp_path / "silver"
    options = LabelOptions(
        teacher=clf,
        data=str(tiny_data["validation"]),
        out=out,
        export_teacher="fp32",
        agreement_rows=40,
        shard_size=64,
        batch_size=16,
    )
    result = label_corpus(options)
    bundle = tmp_path / "silver.teacher-fp32"
    assert (bundle / "manifest.json").is_file()
    plan = _manifest(out)["plan"]
    assert (plan["backend"], plan["teacher"]) == ("onnx", str(bundle.resolve()))
    agreement = result.agreement
    assert agreement is not None and agreement["variant"].startswith("fp32")
    assert agreement["rows"] == 40 and agreement["agreement"] >= 0.999
    assert agreement["max_abs_logit_diff"] < 1e-3
    assert _manifest(out)["agreement"] == agreement

    stamp = (bundle / "manifest.json").stat().st_mtime_ns
    again = label_corpus(options)
    assert again.resumed_shards == again.shards
    assert again.agreement == agreement
    assert (bundle / "manifest.json").stat().st_mtime_ns == stamp, "the bundle was re-exported"
