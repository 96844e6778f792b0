"""Resumable Parquet shards: the folder layout shared by `label` and `augment`.

Both stages score a large list of rows with a model for minutes to hours, so both write the
same kind of folder:

* ``part-NNNNN.parquet`` shards, each written atomically (temp file + rename) and only then
  recorded in ``manifest.json`` with its row count, size and sha256, so a kill at any moment
  loses at most the shard in progress;
* the manifest holds the *plan* (data digest, model fingerprint, shard size, ...): a rerun with
  the same plan verifies the finished shards and scores only the rest, a damaged shard is
  scored again, and a folder holding another plan, or something else entirely, is refused
  rather than overwritten; with ``overwrite`` a folder of another plan is replaced, but only
  once the new one is complete: it is built in a hidden sibling (``.<name>.next``, itself
  resumable) and swapped in, so a finished folder is never deleted to make room;
* an advisory lock keeps two runs from writing one folder.

What goes into a shard is each stage's business; this module owns the folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimbert.errors import SlimbertError
from slimbert.io import read_json, replace_dir, sha256_file, write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
# The name dates from when only `label` wrote such folders; kept so older folders still lock.
LOCK = ".label.lock"
# Files up to this size (configs, tokenizers, bundle manifests) are hashed by
# folder_fingerprint; larger ones (weights) are only stat'ed, so a 400 MB model stays instant.
_HASHED_FILE_LIMIT = 1 << 20


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def is_temporary(path: Path) -> bool:
    # atomic_path names its temporaries ".<final name>.<random>.tmp".
    return path.name.startswith(".") and path.name.endswith(".tmp")


def digest_strings(items: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for item in items:
        data = item.encode("utf-8", "surrogatepass")
        # Length-prefixed, so ["ab", "c"] and ["a", "bc"] differ.
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def folder_fingerprint(model: Path) -> str:
    """A cheap identity of a model folder or file: small files hashed, weights stat'ed."""
    if not model.exists():
        return "missing"
    if model.is_file():
        files = [(model.name, model)]
    else:
        files = sorted(
            (p.relative_to(model).as_posix(), p)
            for p in model.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(model).parts)
        )
    digest = hashlib.sha256()
    for rel, path in files:
        stat = path.stat()
        if stat.st_size <= _HASHED_FILE_LIMIT:
            what = sha256_file(path)
        else:
            what = f"{stat.st_size}:{stat.st_mtime_ns}"
        digest.update(f"{rel}\0{what}\n".encode())
    return digest.hexdigest()


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


@dataclass(frozen=True)
class ShardFolder:
    """One stage's output folder of resumable shards.

    ``kind`` names the folder in messages ("silver set"), ``work`` what a run does
    ("labelling"), ``command`` the command that (re)makes it; ``total_key`` is the plan key
    holding the number of rows; ``plan_words`` groups plan keys into the words a message uses.
    """

    out: Path
    format: str
    kind: str
    work: str
    command: str
    total_key: str
    plan_words: Mapping[str, str] = field(default_factory=dict)

    # -- before a run ---------------------------------------------------------------------------
    def refuse_foreign(self) -> None:
        """Refuse a path that is a file, or a folder holding something other than this kind."""
        out = self.out
        if not out.exists():
            return
        if not out.is_dir():
            raise SlimbertError(f"{out} exists and is not a folder", hint="pass a new --out")
        if (out / MANIFEST).exists():
            self.read_manifest()  # raises for a manifest of another format
            return
        foreign = [p.name for p in out.iterdir() if p.name != LOCK and not is_temporary(p)]
        if foreign:
            raise SlimbertError(
                f"{out} exists and is not {_a(self.kind)} (no {MANIFEST}; holds {foreign[0]!r})",
                hint="pass a new --out, or empty the folder",
            )

    def read_manifest(self) -> dict[str, Any] | None:
        path = self.out / MANIFEST
        if not path.is_file():
            return None
        try:
            manifest = read_json(path)
        except (OSError, ValueError) as exc:
            raise SlimbertError(
                f"cannot read {path}: {exc}",
                hint=f"delete the folder and run `{self.command}` again",
            ) from exc
        if not isinstance(manifest, dict) or manifest.get("format") != self.format:
            raise SlimbertError(
                f"{path} is not a {self.format} manifest",
                hint="pass a new --out, or delete the folder",
            )
        return manifest

    def plan_differences(
        self, old: dict[str, Any], new: dict[str, Any], *, only_new_keys: bool = False
    ) -> list[str]:
        """The words naming what differs between two plans (empty: the same plan)."""
        keys = new.keys() if only_new_keys else new.keys() | old.keys()
        return sorted({self.plan_words.get(k, k) for k in keys if new.get(k) != old.get(k)})

    def refuse_other_plan(
        self, old: dict[str, Any], new: dict[str, Any], *, only_new_keys: bool = False
    ) -> None:
        """Refuse when the plans differ; ``only_new_keys`` compares only the keys known so far
        (an early check before the expensive part of the plan is computed)."""
        words = self.plan_differences(old, new, only_new_keys=only_new_keys)
        if words:
            raise SlimbertError(
                f"{self.out} holds a different {self.work} (it differs in: {', '.join(words)})",
                hint=f"pass a new --out, or --overwrite to replace it (the old {self.kind} "
                "stays until the new one is complete)",
            )

    def for_plan(self, plan: dict[str, Any], *, overwrite: bool) -> ShardFolder:
        """The folder a run of ``plan`` writes: this one when it is new or holds the same plan
        (resumed), else (only with ``overwrite``) the hidden sibling that :meth:`publish`
        swaps in once complete. Never deletes a folder of this kind's finished work; an
        abandoned sibling of yet another plan is cleared."""
        self.refuse_foreign()
        existing = self.read_manifest()
        if existing is None or not self.plan_differences(existing["plan"], plan):
            return self
        if not overwrite:
            self.refuse_other_plan(existing["plan"], plan)
        staging = dataclasses.replace(self, out=self.out.with_name(f".{self.out.name}.next"))
        staging.refuse_foreign()
        left = staging.read_manifest()
        if left is not None and staging.plan_differences(left["plan"], plan):
            log.info("clearing %s, an unfinished replacement of another plan", staging.out)
            shutil.rmtree(staging.out)
        log.info("%s holds another plan; building the new one in %s", self.out, staging.out)
        return staging

    def publish(self, target: ShardFolder) -> None:
        """Swap this finished folder in at ``target.out`` (no-op when they are the same); the
        old folder is deleted only once the new one is in place."""
        if self.out == target.out:
            return
        replace_dir(self.out, target.out)

    # -- during a run ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, plan: dict[str, Any], *, overwrite: bool) -> Iterator[ShardFolder]:
        """Lock this folder and yield the folder a run of ``plan`` writes (:meth:`for_plan`),
        locked too; the caller starts, records, finishes and publishes it."""
        with self.exclusive():
            work = self.for_plan(plan, overwrite=overwrite)
            if work.out == self.out:
                yield work
                return
            with work.exclusive():
                yield work

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold an advisory lock on the folder so two runs never write (or clean) it at once;
        stray temporaries of an interrupted run are removed once the lock is held."""
        self.out.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no flock; one run per folder is on you
            self._remove_stray_temporaries()
            yield
            return
        with open(self.out / LOCK, "a") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise SlimbertError(
                    f"another {self.work} run is writing to {self.out}",
                    hint="wait for it to finish, or pass a new --out",
                ) from exc
            # The kernel drops the lock when the file is closed, SIGKILL included.
            self._remove_stray_temporaries()
            yield

    def start(self, plan: dict[str, Any], n_shards: int, **fields: Any) -> dict[str, Any]:
        """Create the manifest, or reopen a matching one keeping only its intact shards.

        ``fields`` are stored beside the plan (informational, e.g. the latest options); keys a
        finished run added (counts, totals) are dropped until it finishes again.
        """
        manifest = self.read_manifest()
        done: dict[str, Any] = {}
        if manifest is not None:
            self.refuse_other_plan(manifest["plan"], plan)
            done = {
                name: entry
                for name, entry in manifest["done"].items()
                if self._intact(name, entry, plan, n_shards)
            }
        manifest = {
            "format": self.format,
            "plan": plan,
            "shards": n_shards,
            "done": done,
            "complete": False,
            **fields,
        }
        write_json(self.out / MANIFEST, manifest)
        return manifest

    def record(self, manifest: dict[str, Any], index: int, rows: int, **extra: Any) -> None:
        """Name a shard already complete on disk in the manifest (a kill in between only costs
        scoring that shard again)."""
        name = shard_name(index)
        path = self.out / name
        manifest["done"][name] = {
            "index": index,
            "rows": rows,
            "bytes": path.stat().st_size,
            "sha256": sha256_file(path),
            **extra,
        }
        write_json(self.out / MANIFEST, manifest)

    def finish(self, manifest: dict[str, Any], **fields: Any) -> None:
        manifest.update(fields)
        manifest["complete"] = True
        write_json(self.out / MANIFEST, manifest)

    # -- after a run ----------------------------------------------------------------------------
    def finished(self) -> tuple[dict[str, Any], list[Path]]:
        """The manifest of a finished folder and its shard paths in order, every checksum
        verified; a clear error (with the command that mends it) otherwise."""
        manifest = self.read_manifest()
        if manifest is None:
            raise SlimbertError(
                f"{self.out} is not {_a(self.kind)} (no {MANIFEST})",
                hint=f"create it with `{self.command}`",
            )
        done: dict[str, Any] = manifest["done"]
        if not manifest.get("complete") or len(done) != manifest["shards"]:
            raise SlimbertError(
                f"{self.out} is an unfinished {self.kind} "
                f"({len(done)} of {manifest['shards']} shards)",
                hint=f"rerun `{self.command}` with the same options to finish it",
            )
        paths = []
        for name in sorted(done):
            path = self.out / name
            if not path.is_file() or sha256_file(path) != done[name]["sha256"]:
                raise SlimbertError(
                    f"shard {path} is missing or damaged (checksum mismatch)",
                    hint=f"rerun `{self.command}` with the same options: it redoes that shard",
                )
            paths.append(path)
        return manifest, paths

    def is_complete(self) -> bool:
        """Whether the folder holds a finished run (cheap: file sizes, not checksums)."""
        try:
            manifest = self.read_manifest()
        except SlimbertError:
            return False
        if manifest is None or not manifest.get("complete"):
            return False
        done: dict[str, Any] = manifest["done"]
        if len(done) != manifest["shards"]:
            return False
        return all(
            (self.out / name).is_file() and (self.out / name).stat().st_size == entry["bytes"]
            for name, entry in done.items()
        )

    # -- helpers --------------------------------------------------------------------------------
    def _remove_stray_temporaries(self) -> None:
        for path in self.out.iterdir():
            if is_temporary(path) and path.is_file():
                log.info("removing %s left by an interrupted run", path.name)
                path.unlink(missing_ok=True)

    def _intact(self, name: str, entry: dict[str, Any], plan: dict[str, Any], n: int) -> bool:
        index = int(entry.get("index", -1))
        expected = min(plan["shard_size"], plan[self.total_key] - index * plan["shard_size"])
        path = self.out / name
        problem = None
        if name != shard_name(index) or not 0 <= index < n or entry.get("rows") != expected:
            problem = "does not fit the plan"
        elif not path.is_file():
            problem = "is missing"
        elif path.stat().st_size != entry.get("bytes") or sha256_file(path) != entry.get("sha256"):
            problem = "is damaged (checksum mismatch)"
        if problem is None:
            return True
        # Friendlier than refusing: the shard is simply scored again.
        log.warning("shard %s %s; redoing it", path, problem)
        return False


__all__ = [
    "LOCK",
    "MANIFEST",
    "ShardFolder",
    "digest_strings",
    "folder_fingerprint",
    "is_temporary",
    "shard_name",
]
