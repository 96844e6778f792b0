"""``slimbert run pipeline.yaml``: the stages in order, each skipped when its output is current.

A pipeline file lists steps; each step names a stage and gives that stage's options with the
same names as the CLI and the Python API. ``vars`` are substituted into strings (``${workdir}``)
and ``profiles`` hold overrides (``--quick`` applies ``profiles.quick``).

A step writes ``<out>.step.json`` beside its output when it finishes, holding a stamp: the
hash of its options and of the stamps (or sizes and times) of its inputs. A step whose stamp
matches is current and skipped; changing an option or re-running an upstream step makes it
stale.

Outputs are never deleted to make room: before a step runs, its ``out`` is claimed
(:func:`slimbert.io.claim_output`): a file, a folder slimbert did not write, or an output of
another kind is refused. An output of the step's own kind is replaced only when overwriting is
allowed: in a pipeline run (``slimbert run``: a stale step remakes its output) or with
``--overwrite`` on a single command. Resumable stages (``label``, ``augment``) keep their
finished shards whenever the plan matches; with another plan they refuse, or with overwriting
allowed build the new folder beside the old one and swap it in when complete.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import string
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from slimbert.config import Options, read_yaml_file
from slimbert.errors import ConfigError
from slimbert.io import claim_output, claim_report, read_json, write_json

log = logging.getLogger(__name__)
STAMP_SUFFIX = ".step.json"
_HINT_STEPS = "each step is a mapping with a 'stage:' and that stage's options (docs/pipeline.md)"
# Set by the single-stage commands (--overwrite); None: a pipeline run (stale steps remake).
_OVERWRITE: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "slimbert_overwrite", default=None
)


@contextlib.contextmanager
def overwrite_outputs(allowed: bool) -> Iterator[None]:
    """Within the block, :func:`run_pipeline` replaces an output of a step's own kind only when
    ``allowed`` (what a single command's ``--overwrite`` sets)."""
    token = _OVERWRITE.set(allowed)
    try:
        yield
    finally:
        _OVERWRITE.reset(token)


Reports = list[tuple[Path, str, list[Path]]]


def _out(options: Any) -> Path:
    return Path(options.out)


def _no_reports(options: Any) -> Reports:
    return []


def _beside_out(suffix: str, kind: str, *companions: str) -> Callable[[Any], Reports]:
    """``out`` with ``suffix`` is a report of ``kind`` (and ``companions`` are its siblings)."""

    def reports(options: Any) -> Reports:
        if options.out is None:  # eval without --out writes no report
            return []
        out = Path(options.out)
        return [(out.with_suffix(suffix), kind, [out.with_suffix(c) for c in companions])]

    return reports


def _export_report(options: Any) -> Reports:
    out = Path(options.out)
    return [(out.with_name(out.name + ".export.json"), "export report", [])]


@dataclass(frozen=True)
class Stage:
    """One stage of the method: what a pipeline step and a single command need to run it.

    Its name is its options class's ``stage`` (``TrainOptions.stage == "train"``)."""

    options: type[Options]
    run: Callable[..., Any]
    # The kind of output folder ``out`` is (a key of slimbert.io.OUTPUT_KINDS); None: the stage
    # writes files. Claimed before the step runs; the single command takes --overwrite.
    output_kind: str | None = None
    # What the step stamp is written beside (``<out>.step.json``).
    outputs: Callable[[Any], Path] = _out
    # Report files the stage writes (slimbert.io.REPORT_KINDS): (report, kind, files beside
    # it). Claimed before the step runs: a user's file of that name is never replaced.
    reports: Callable[[Any], Reports] = _no_reports
    # Resumable stages keep finished shards of the same plan and take ``overwrite=`` to build
    # a folder of another plan beside the old one (swapped in when complete).
    resumable: bool = False

    @property
    def name(self) -> str:
        return self.options.stage


def stages() -> dict[str, Stage]:
    """The method's stages by name, in the order of the method: the one list of them (the
    pipeline file's ``stage:`` values; the CLI's stage commands are made from it)."""
    # Imported here so that `slimbert --help` stays fast and torch-free.
    from slimbert.deploy.invoke import InvokeOptions, invoke_package
    from slimbert.deploy.package import PackageOptions, build_package
    from slimbert.export.bundle import ExportOptions, export_model
    from slimbert.index.build import IndexBuildOptions, build_index
    from slimbert.index.calibrate import CalibrateOptions, calibrate
    from slimbert.train.augment import (
        AugmentOptions,
        CrossEncoderOptions,
        augment,
        train_cross_encoder,
    )
    from slimbert.train.distill import DistillOptions, distill
    from slimbert.train.evaluate import EvalOptions, evaluate_models
    from slimbert.train.finetune import TrainOptions, train_classifier
    from slimbert.train.label import LabelOptions, label_corpus
    from slimbert.train.sbert import SbertTrainOptions, train_sbert

    listed = [
        Stage(TrainOptions, train_classifier, "classifier"),
        Stage(LabelOptions, label_corpus, "silver set", resumable=True),
        Stage(CrossEncoderOptions, train_cross_encoder, "cross-encoder"),
        Stage(AugmentOptions, augment, "augment folder", resumable=True),
        Stage(DistillOptions, distill, "classifier"),
        Stage(ExportOptions, export_model, "bundle", reports=_export_report),
        Stage(PackageOptions, build_package),
        Stage(
            InvokeOptions,
            invoke_package,
            reports=lambda o: [(Path(o.out), "invoke report", [])],
        ),
        Stage(IndexBuildOptions, build_index, "index"),
        Stage(
            CalibrateOptions,
            calibrate,
            outputs=lambda o: Path(o.out).with_suffix(".json"),
            reports=_beside_out(".json", "calibration", ".md"),
        ),
        Stage(SbertTrainOptions, train_sbert, "sentence-transformer"),
        Stage(
            EvalOptions,
            evaluate_models,
            outputs=lambda o: Path(o.out or "eval").with_suffix(".json"),
            reports=_beside_out(".json", "evaluation", ".md"),
        ),
    ]
    return {stage.name: stage for stage in listed}


@dataclass(frozen=True)
class Step:
    name: str
    stage: str
    options: Options


def builtin_pipelines() -> list[str]:
    files = resources.files("slimbert") / "pipelines"
    return sorted(p.name.removesuffix(".yaml") for p in files.iterdir() if p.name.endswith(".yaml"))


def read_pipeline(
    source: str | Path, *, profile: str | None = None, overrides: Mapping[str, str] | None = None
) -> list[Step]:
    """Parse and validate a pipeline file (or a built-in name such as ``sentiment``).

    Every mistake is a :class:`ConfigError` with a hint, naming the file and, for a step's
    options, the step (``step 'teacher' in sentiment.yaml: epochs must be at least 1``).
    """
    path = Path(source)
    if path.is_file():
        doc = read_yaml_file(path, "pipeline file")
    elif str(source) in builtin_pipelines():
        text = (resources.files("slimbert") / "pipelines" / f"{source}.yaml").read_text("utf-8")
        doc = yaml.safe_load(text)
    else:
        raise ConfigError(
            f"pipeline {str(source)!r} is neither a file nor a built-in pipeline",
            hint=f"built-in: {', '.join(builtin_pipelines())}",
        )
    doc = doc or {}
    if not isinstance(doc, dict) or not isinstance(doc.get("steps"), list):
        raise ConfigError(f"{source}: a pipeline needs a 'steps:' list", hint=_HINT_STEPS)
    variables = _variables(doc.get("vars"), f"{source}: vars")
    step_overrides: dict[str, Any] = {}
    if profile is not None:
        profiles = doc.get("profiles") or {}
        if not isinstance(profiles, dict) or profile not in profiles:
            known_profiles = list(profiles) if isinstance(profiles, dict) else []
            raise ConfigError(
                f"{source}: no profile {profile!r}",
                hint=f"known: {known_profiles}" if known_profiles else "add a 'profiles:' map",
            )
        chosen = profiles[profile] or {}
        if not isinstance(chosen, dict):
            raise ConfigError(
                f"{source}: profile {profile!r} must be a mapping",
                hint="give it 'vars:' and/or 'steps:' (a map of step name to options)",
            )
        variables.update(_variables(chosen.get("vars"), f"{source}: profile {profile!r} vars"))
        step_overrides = chosen.get("steps") or {}
        if not isinstance(step_overrides, dict):
            raise ConfigError(
                f"{source}: profile {profile!r} steps must map step names to options",
                hint="e.g. steps: {teacher: {epochs: 1}}",
            )
    variables.update(overrides or {})
    known = stages()
    steps: list[Step] = []
    for i, raw in enumerate(doc["steps"], start=1):
        if not isinstance(raw, dict) or "stage" not in raw:
            raise ConfigError(f"{source}: step {i} needs a 'stage:'", hint=_HINT_STEPS)
        raw = dict(raw)
        stage = raw.pop("stage")
        name = str(raw.pop("name", f"{stage}-{i}"))
        if stage not in known:
            raise ConfigError(
                f"{source}: step {name!r} has unknown stage {stage!r}",
                hint=f"stages: {', '.join(known)}",
            )
        override = step_overrides.get(name) or {}
        if not isinstance(override, dict):
            raise ConfigError(
                f"{source}: profile {profile!r} gives step {name!r} a "
                f"{type(override).__name__}, not options",
                hint=f"e.g. {name}: {{epochs: 1}}",
            )
        raw.update(override)
        where = f"step {name!r} in {source}"
        try:
            options = known[stage].options.from_dict(_substitute(raw, variables, where))
        except ConfigError as exc:
            if exc.message.startswith(where):
                raise
            raise ConfigError(f"{where}: {exc.message}", hint=exc.hint) from None
        steps.append(Step(name, stage, options))
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(
            f"{source}: step names must be unique, {', '.join(map(repr, twice))} is used twice",
            hint="give each step its own 'name:' (a step without one is named <stage>-<n>)",
        )
    return steps


def _variables(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where} must be a mapping, got {type(value).__name__}",
            hint="write one `name: value` line per variable, e.g. workdir: runs/sentiment",
        )
    return {str(k): str(v) for k, v in value.items()}


def _substitute(value: Any, variables: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):
        try:
            return string.Template(value).substitute(variables)
        except KeyError as exc:
            raise ConfigError(
                f"{where}: unknown variable ${{{exc.args[0]}}}",
                hint=f"define {exc.args[0]} under 'vars:', or pass --set {exc.args[0]}=VALUE",
            ) from None
        except ValueError as exc:  # a lone "$" or "${" that starts no variable
            raise ConfigError(
                f"{where}: {value!r} is not a valid ${{name}} substitution ({exc})",
                hint="write $$ for a literal dollar sign",
            ) from None
    if isinstance(value, list):
        return [_substitute(v, variables, where) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, variables, where) for k, v in value.items()}
    return value


def _stamp_path(out: Path) -> Path:
    # Beside the output, never inside it: a bundle or silver folder holds only its own files.
    return out.with_name(out.name + STAMP_SUFFIX)


def _input_fingerprint(value: Any) -> Any:
    """A cheap fingerprint of whatever a path-like option points at."""
    if isinstance(value, list):
        return [_input_fingerprint(v) for v in value]
    if not isinstance(value, str) or not value:
        return value
    path = Path(value)
    if not path.exists():
        return value
    stamp = _stamp_path(path)
    if stamp.is_file():
        return read_json(stamp)["stamp"]
    if path.is_file():
        st = path.stat()
        return [value, st.st_size, st.st_mtime_ns]
    return [value, sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir())]


def step_stamp(step: Step, out: Path) -> str:
    options = step.options.to_dict()
    inputs = {k: _input_fingerprint(v) for k, v in options.items() if k not in {"out"}}
    payload = json.dumps(
        {"stage": step.stage, "options": options, "inputs": inputs}, sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def is_current(step: Step) -> bool:
    out = stages()[step.stage].outputs(step.options)
    stamp = _stamp_path(out)
    if not stamp.is_file() or not out.exists():
        return False
    return bool(read_json(stamp).get("stamp") == step_stamp(step, out))


def _mentions(value: Any, path: Path) -> bool:
    if isinstance(value, list):
        return any(_mentions(v, path) for v in value)
    if not isinstance(value, str) or not value:
        return False
    return Path(value) == path or path in Path(value).parents


def plan(steps: list[Step]) -> list[bool]:
    """Which steps are current, a stale step making every step that reads its output stale."""
    known = stages()
    stale_outputs: list[Path] = []
    current = []
    for step in steps:
        options = step.options.to_dict()
        reads_stale = any(
            _mentions(v, out) for k, v in options.items() if k != "out" for out in stale_outputs
        )
        ok = not reads_stale and is_current(step)
        if not ok:
            stale_outputs.append(known[step.stage].outputs(step.options))
        current.append(ok)
    return current


def run_pipeline(
    steps: list[Step],
    *,
    force: bool = False,
    hooks: Mapping[str, Callable[[Step], dict[str, Any]]] | None = None,
    on_step: Callable[[Step, str], None] | None = None,
    overwrite: bool | None = None,
) -> list[dict[str, Any]]:
    """Run the steps in order. ``hooks[stage](step)`` supplies extra kwargs (progress UIs).

    ``overwrite``: whether a step may replace an existing output of its own kind; None takes
    :func:`overwrite_outputs`' setting, and outside one, True (a pipeline remakes its stale
    outputs). Foreign content at an ``out`` is refused either way, before anything runs.
    """
    known = stages()
    if overwrite is None:
        overwrite = _OVERWRITE.get()
    replace = True if overwrite is None else overwrite
    summary: list[dict[str, Any]] = []
    current = plan(steps) if not force else [False] * len(steps)
    for step, is_fresh in zip(steps, current, strict=True):
        stage = known[step.stage]
        out = stage.outputs(step.options)
        if is_fresh:
            log.info("step %s is current, skipped", step.name)
            if on_step:
                on_step(step, "skipped")
            summary.append({"step": step.name, "stage": step.stage, "status": "skipped"})
            continue
        if on_step:
            on_step(step, "running")
        started = time.perf_counter()
        if stage.output_kind is not None:
            # A resumable stage decides by its plan (resume, refuse, or build beside and swap).
            claim_output(out, stage.output_kind, replace=replace or stage.resumable)
        for report, report_kind, beside in stage.reports(step.options):
            claim_report(report, report_kind, companions=beside)
        # The output is not current while the step runs; the output itself is left alone.
        _stamp_path(out).unlink(missing_ok=True)
        extra = hooks[step.stage](step) if hooks and step.stage in hooks else {}
        if stage.resumable:
            extra["overwrite"] = replace
        result = stage.run(step.options, **extra)
        seconds = time.perf_counter() - started
        write_json(
            _stamp_path(out),
            {
                "step": step.name,
                "stage": step.stage,
                "stamp": step_stamp(step, out),
                "seconds": seconds,
            },
        )
        summary.append(
            {
                "step": step.name,
                "stage": step.stage,
                "status": "ran",
                "seconds": seconds,
                "result": result,
            }
        )
        if on_step:
            on_step(step, "done")
    return summary
