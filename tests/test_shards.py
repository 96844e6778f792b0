"""The resumable-shards folder shared by `label` and `augment` (slimbert.data.shards)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimbert.data.shards import ShardFolder, digest_strings, shard_name
from slimbert.errors import SlimbertError


def _folder(out: Path) -> ShardFolder:
    return ShardFolder(
        out,
        "test-shards/1",
        kind="item set",
        work="counting",
        command="make items",
        total_key="rows",
        plan_words={"data_sha256": "data"},
    )


def _write(folder: ShardFolder, manifest: dict, index: int, rows: int) -> None:
    (folder.out / shard_name(index)).write_text("x" * rows, encoding="utf-8")
    folder.record(manifest, index, rows, note=f"shard {index}")


def test_a_run_is_recorded_and_read_back(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "items")
    plan = {"rows": 5, "shard_size": 2, "data_sha256": digest_strings(["a", "b"])}
    with folder.exclusive():
        manifest = folder.start(plan, 3, options={"batch": 1})
        for index, rows in enumerate((2, 2, 1)):
            _write(folder, manifest, index, rows)
        assert not folder.is_complete()
        folder.finish(manifest, total=5)
    assert folder.is_complete()
    manifest, paths = folder.finished()
    assert [p.name for p in paths] == [shard_name(i) for i in range(3)]
    assert manifest["total"] == 5 and manifest["options"] == {"batch": 1}
    assert manifest["done"][shard_name(2)]["note"] == "shard 2"

    # A rerun keeps the intact shards and drops what a finished run added.
    with folder.exclusive():
        again = folder.start(plan, 3)
    assert sorted(again["done"]) == [shard_name(i) for i in range(3)]
    assert "total" not in again and again["complete"] is False


def test_damaged_or_misfit_shards_are_dropped(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "items")
    plan = {"rows": 4, "shard_size": 2, "data_sha256": "d"}
    with folder.exclusive():
        manifest = folder.start(plan, 2)
        _write(folder, manifest, 0, 2)
        _write(folder, manifest, 1, 2)
        folder.finish(manifest)
    (folder.out / shard_name(1)).write_text("yy", encoding="utf-8")  # same size, other bytes
    with pytest.raises(SlimbertError, match=r"damaged.*\(hint: rerun `make items`"):
        folder.finished()
    with folder.exclusive():
        assert sorted(folder.start(plan, 2)["done"]) == [shard_name(0)]
    with pytest.raises(SlimbertError, match=r"unfinished item set \(1 of 2 shards\)"):
        folder.finished()


def test_other_plans_and_folders_are_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "items")
    with folder.exclusive():
        folder.start({"rows": 2, "shard_size": 2, "data_sha256": "d"}, 1)
    with pytest.raises(SlimbertError, match=r"different counting \(it differs in: data, rows\)"):
        folder.start({"rows": 3, "shard_size": 2, "data_sha256": "e"}, 2)

    other = ShardFolder(folder.out, "other/1", kind="set", work="w", command="c", total_key="rows")
    with pytest.raises(SlimbertError, match="is not a other/1 manifest"):
        other.refuse_foreign()

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(SlimbertError, match=r"is not an item set .*holds 'notes.txt'"):
        _folder(foreign).refuse_foreign()
    with pytest.raises(SlimbertError, match="is not an item set"):
        _folder(tmp_path / "nothing").finished()


def test_one_run_per_folder_and_temporaries_cleaned(tmp_path: Path) -> None:
    pytest.importorskip("fcntl")
    folder = _folder(tmp_path / "items")
    folder.out.mkdir()
    stray = folder.out / f".{shard_name(0)}.abc.tmp"
    stray.write_text("half", encoding="utf-8")
    folder.refuse_foreign()  # a lone temporary is not someone else's folder
    with folder.exclusive():
        assert not stray.exists()
        second = folder.exclusive()
        with pytest.raises(SlimbertError, match="another counting run is writing"):
            second.__enter__()
