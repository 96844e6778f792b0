"""The Ray engine of `label` and `augment`: same folder as the local engine, faults survived.

Runs on a local Ray with 2 CPUs. One test is in the default suite (short); the rest are slow.
Every test that needs ray skips when it is not installed (`pip install 'slimbert[scale]'`).
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slimbert.data.shards import shard_name
from slimbert.errors import ConfigError, MissingDependencyError
from slimbert.lab.bench_label import killing_teacher
from slimbert.train.label import LabelOptions, label_corpus, read_silver

_WORKER = Path(__file__).with_name("_label_worker.py")
_spec = importlib.util.spec_from_file_location("_label_worker", _WORKER)
assert _spec is not None and _spec.loader is not None
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)
sys.modules.setdefault("_label_worker", worker)
FakeScorer = worker.FakeScorer


@pytest.fixture
def ray() -> Any:
    """ray, with this module and the fake teacher pickled by value (Ray's workers cannot
    import test modules)."""
    ray = pytest.importorskip("ray", reason="the Ray engine needs `pip install 'slimbert[scale]'`")
    import ray.cloudpickle as cloudpickle

    cloudpickle.register_pickle_by_value(worker)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    os.environ["RAY_AUTH_MODE"] = os.environ.get("RAY_AUTH_MODE", "disabled")
    yield ray
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def teacher(tmp_path: Path) -> Path:
    folder = tmp_path / "teacher"
    folder.mkdir()
    (folder / "config.json").write_text('{"labels": 3}', encoding="utf-8")
    return folder


def _options(teacher: Path, data: Path, out: Path, **kw: Any) -> LabelOptions:
    base: dict[str, Any] = {"id_column": "id", "shard_size": 100, "batch_size": 25}
    base.update(kw)
    return LabelOptions(teacher=teacher, data=str(data), out=out, **base)


def _checksums(out: Path) -> dict[str, str]:
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return {name: entry["sha256"] for name, entry in manifest["done"].items()}


def _same_silver(a: Path, b: Path) -> None:
    silver_a, logits_a = read_silver(a)
    silver_b, logits_b = read_silver(b)
    assert silver_a.texts == silver_b.texts and silver_a.ids == silver_b.ids
    assert silver_a.labels == silver_b.labels
    np.testing.assert_array_equal(logits_a, logits_b)
    assert _checksums(a) == _checksums(b)


# -- default suite ------------------------------------------------------------------------------
def test_ray_options_are_checked(tmp_path: Path, teacher: Path) -> None:
    with pytest.raises(ConfigError, match="options of the Ray engine"):
        _options(teacher, tmp_path / "c.csv", tmp_path / "out", address="auto")
    with pytest.raises(ConfigError, match="actors must be positive"):
        _options(teacher, tmp_path / "c.csv", tmp_path / "out", engine="ray", actors=0)
    with pytest.raises(ConfigError, match="needs a torch teacher"):
        _options(teacher, tmp_path / "c.csv", tmp_path / "o", backend="onnx", export_teacher="fp32")


def test_without_ray_the_engine_says_how_to_install_it(
    tmp_path: Path, teacher: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "corpus.csv"
    worker.write_corpus(data, 50)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    options = _options(teacher, data, tmp_path / "out", engine="ray")
    with pytest.raises(MissingDependencyError) as caught:
        label_corpus(options, scorer=FakeScorer(), teacher_factory=FakeScorer)
    assert caught.value.hint == "pip install 'slimbert[scale]'"


def test_ray_finishes_a_local_run_into_the_same_folder(
    ray: Any, tmp_path: Path, teacher: Path
) -> None:
    """A local run, one shard lost; Ray (2 actors) redoes just that shard: the set equals a
    complete local run byte for byte."""
    data = tmp_path / "corpus.csv"
    worker.write_corpus(data, 300)
    reference, mixed = tmp_path / "local", tmp_path / "mixed"
    label_corpus(_options(teacher, data, reference), scorer=FakeScorer())
    label_corpus(_options(teacher, data, mixed), scorer=FakeScorer())
    (mixed / shard_name(1)).unlink()

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    result = label_corpus(
        _options(teacher, data, mixed, engine="ray", actors=2),
        scorer=FakeScorer(),
        teacher_factory=FakeScorer,
    )
    assert (result.engine, result.resumed_shards, result.shards) == ("ray", 2, 3)
    _same_silver(reference, mixed)


# -- slow: a whole run, faults, augment ----------------------------------------------------------
@pytest.mark.slow
def test_a_killed_actor_loses_and_repeats_no_row(ray: Any, tmp_path: Path, teacher: Path) -> None:
    data = tmp_path / "corpus.csv"
    worker.write_corpus(data, 600)
    label_corpus(_options(teacher, data, tmp_path / "local"), scorer=FakeScorer())
    marker = tmp_path / "killed"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    result = label_corpus(
        _options(teacher, data, tmp_path / "ray", engine="ray"),
        scorer=FakeScorer(),
        # The bench's fault: the actor SIGKILLs itself on its third batch, once.
        teacher_factory=partial(killing_teacher, FakeScorer, str(marker), 3),
    )
    assert marker.exists(), "no actor was killed"
    assert result.rows == 600 and result.resumed_shards == 0
    _same_silver(tmp_path / "local", tmp_path / "ray")


_DRIVER = """
import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("_label_worker", {worker!r})
worker = importlib.util.module_from_spec(spec); spec.loader.exec_module(worker)
sys.modules["_label_worker"] = worker
import ray.cloudpickle
ray.cloudpickle.register_pickle_by_value(worker)
from slimbert.train.label import LabelOptions, label_corpus
options = LabelOptions(teacher=Path({teacher!r}), data={data!r}, out=Path({out!r}),
    id_column="id", shard_size=100, batch_size=25, engine="ray", actors=2)
label_corpus(options, scorer=worker.FakeScorer(), teacher_factory=lambda: worker.FakeScorer(0.3))
"""


@pytest.mark.slow
def test_a_killed_driver_is_resumed_from_its_finished_shards(
    ray: Any, tmp_path: Path, teacher: Path
) -> None:
    data = tmp_path / "corpus.csv"
    worker.write_corpus(data, 1000)
    out = tmp_path / "killed"
    code = _DRIVER.format(worker=str(_WORKER), teacher=str(teacher), data=str(data), out=str(out))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], start_new_session=True, env=env, stderr=subprocess.PIPE
    )
    done: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None and not done:
            if (out / "manifest.json").is_file():
                with contextlib.suppress(ValueError):
                    done = json.loads((out / "manifest.json").read_text())["done"]
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        # The local Ray that driver started: its session's process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert done, "no shard was finished before the deadline"
    resumed = label_corpus(_options(teacher, data, out), scorer=FakeScorer())
    assert 1 <= resumed.resumed_shards < resumed.shards
    label_corpus(_options(teacher, data, tmp_path / "local"), scorer=FakeScorer())
    _same_silver(tmp_path / "local", out)


def _overlap_scorer() -> Any:
    def score(pairs: list[tuple[str, str]]) -> np.ndarray:
        out = []
        for a, b in pairs:
            x, y = set(a.split()), set(b.split())
            out.append(len(x & y) / len(x | y))
        return np.asarray(out, dtype=np.float32)

    return score


@pytest.mark.slow
def test_augment_scores_on_ray_into_the_same_shards(ray: Any, tmp_path: Path) -> None:
    from slimbert.train.augment import AugmentOptions, augment, read_scores

    rng = random.Random(3)
    words = [f"w{i}" for i in range(40)]
    pool = tmp_path / "pool.csv"
    with open(pool, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text"])
        for _ in range(120):
            writer.writerow([" ".join(rng.sample(words, rng.randint(3, 9)))])
    ce = tmp_path / "ce"
    ce.mkdir()
    (ce / "config.json").write_text("{}", encoding="utf-8")
    base = {"cross_encoder": ce, "pool": str(pool), "exclude": (), "shard_size": 64}
    base |= {"batch_size": 16, "min_per_bin": 0}
    local = augment(AugmentOptions(out=tmp_path / "local", **base), scorer=_overlap_scorer())
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    on_ray = augment(
        AugmentOptions(out=tmp_path / "ray", engine="ray", actors=2, **base),
        scorer_factory=_overlap_scorer,
    )
    assert on_ray["candidates"] == local["candidates"] and on_ray["shards"] > 1
    np.testing.assert_array_equal(read_scores(tmp_path / "ray"), read_scores(tmp_path / "local"))
    assert _checksums(tmp_path / "ray") == _checksums(tmp_path / "local")
