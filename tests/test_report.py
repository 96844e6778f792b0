"""``slimbert report``: the latest results win, every section cites its file, plots are PNGs,
missing inputs name the command to run, and the README is refilled between its markers only."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slimbert.errors import ConfigError, DataError
from slimbert.lab.readme import README_END, README_START, update_readme
from slimbert.lab.report import ReportOptions, build_report
from slimbert.lab.results import BENCH_MEMORY_MB, find_results, lambda_gaps, read_lambda

pytest.importorskip("matplotlib")

OLD, NEW = "20250101T000000Z", "20250201T000000Z"
PARTIAL = "20250301T000000Z"  # newer than NEW, but it re-measured one memory size only
REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = [
    "latency.png",
    "cold_start.png",
    "cost_per_million.png",
    "cost_per_prediction.png",
    "monthly_cost.png",
    "package_size.png",
    "quality.png",
]
MACHINE = {"processor": "x86_64", "cpus_usable": 2, "python": "3.11.9", "versions": {}}


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _created(stamp: str) -> str:
    return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T00:00:00+00:00"


def _batched(mb: int, base_ms: float) -> dict[str, Any]:
    """``batched`` of one memory size: a request of k texts takes a fixed part and k shares."""
    out = {}
    for k in (1, 8, 32, 64):
        ms = (base_ms + 2.0 * k) * 1024 / mb
        d = {"p50": ms, "p90": 1.1 * ms, "p95": 1.15 * ms, "p99": 1.2 * ms, "mean": ms, "n": 20}
        client = {q: v + 3.0 for q, v in d.items() if q != "n"} | {"n": 20}
        out[str(k)] = {"texts_per_request": k, "requests": 20, "errors": 0, "client_ms": client,
                       "duration_ms": d, "billed_ms_mean": ms + 0.5}  # fmt: skip
    return out


def _size(
    mb: int, base_ms: float, seed: int, oom: bool = False, batched: bool = False
) -> dict[str, Any]:
    """One memory size as ``bench_lambda.measure_size`` writes it."""
    cpu = {"cpu_quota_vcpus": round(mb / 1769, 4), "threads": 1}
    if oom:
        return {"oom": True, "oom_kills": 1, "error": "killed", "peak_memory_mb": mb, **cpu}
    d = base_ms * 1024 / mb + np.random.default_rng(seed).gamma(2.0, 1.0, 40)
    qs = {f"p{q}_ms": float(np.percentile(d, q)) for q in (50, 90, 95, 99)}
    colds = [400 + 300 * 1024 / mb + 10 * i for i in range(3)]
    return {
        "oom": False,
        **cpu,
        "requests": 40,
        "durations_ms": d.round(3).tolist(),
        **qs,
        "peak_memory_mb": 140.0,
        "cold_start_ms": {"p50": colds[1], "p90": colds[2], "n": 3, "values": colds},
        "init_ms": {"p50": colds[1] - qs["p50_ms"], "mean": colds[1] - qs["p50_ms"]},
        **({"batched": _batched(mb, base_ms)} if batched else {}),
    }


def _lambda(
    stamp: str, student_ms: float, sizes: tuple[int, ...] = BENCH_MEMORY_MB, batched: bool = True
) -> dict[str, Any]:
    student = {str(mb): _size(mb, student_ms, mb, batched=batched) for mb in sizes}
    teacher = {str(mb): _size(mb, 150.0, mb + 1, oom=mb == 512) for mb in sizes}
    return {
        "benchmark": "lambda",
        "created": _created(stamp),
        "platform": "aws-lambda",
        "arch": "x86_64",
        "measured": "student-lambda",
        "memory": student,
        "oom_sizes": [],
        "functions": {
            "student-lambda": {"kind": "lambda", "memory": student},
            "teacher": {"kind": "teacher", "memory": teacher},
        },
        "machine": MACHINE,
        "options": {"memory_mb": list(sizes)},
        "notes": ["below the paper's protocol: a smoke run, not a result to quote"],
    }


def _sampler(stamp: str, speedup: float) -> dict[str, Any]:
    row = {
        "epoch_seconds": 10.0,
        "ms_per_example": 2.0,
        "padding_waste": 0.3,
        "val_macro_f1_last": 0.7,
        "epoch_time_ratio_vs_plain": 1.0,
        "per_example_speedup_vs_plain": 1.0,
    }
    fast = {**row, "per_example_speedup_vs_plain": speedup, "epoch_time_ratio_vs_plain": speedup}
    return {
        "benchmark": "sampler",
        "created": _created(stamp),
        "machine": MACHINE,
        "variants": {"plain": row, "balance+bucket": fast},
    }


def _serving(stamp: str) -> dict[str, Any]:
    def cold(p50: float) -> dict[str, Any]:
        return {
            "wall_ms": {
                "p50": p50,
                "p90": p50 * 1.2,
                "p95": p50 * 1.3,
                "p99": p50 * 1.4,
                "mean": p50,
                "n": 5,
            }
        }

    return {
        "benchmark": "serving",
        "created": _created(stamp),
        "machine": MACHINE,
        "cold_start": {"bundle": cold(450.0), "torch_teacher": cold(3900.0)},
        "warm_ms": {"bundle": {"p50": 1.5, "p99": 3.0}, "torch_teacher": {"p50": 20.0, "p99": 40}},
        "handler_overhead_fraction": 0.05,
        "ratios": {"cold_start_teacher_over_bundle": 8.7, "warm_p50_teacher_over_bundle": 13.3},
    }


def _sizes() -> dict[str, Any]:
    mib = 1 << 20
    rows = [
        ("library", "numpy", 44),
        ("library", "onnxruntime", 35),
        ("library", "tokenizers", 11),
        ("model", "bundle", 16),
        ("code", "slimbert", 0.04),
    ]
    components: list[dict[str, Any]] = [
        {
            "component": c,
            "name": n,
            "files": 3,
            "unzipped_bytes": int(m * mib),
            "zipped_bytes": int(m * mib * 0.4),
        }
        for c, n, m in rows
    ]
    total = sum(c["unzipped_bytes"] for c in components)
    zipped = sum(c["zipped_bytes"] for c in components)
    return {
        "package": "runs/package/slimbert-aws-lambda-x86_64.zip",
        "target": "aws-lambda",
        "arch": "x86_64",
        "components": components,
        "total": {"files": 15, "unzipped_bytes": total, "zipped_bytes": zipped},
        "package_bytes": zipped + 1000,
    }


def _eval() -> dict[str, Any]:
    def sets(test: float, films: float) -> dict[str, Any]:
        return {"tweets3:test": {"macro_f1": test}, "sst3:test": {"macro_f1": films}}

    return {
        "data": "tweets3:test",
        "rows": 300,
        "sets": {"tweets3:test": 300, "sst3:test": 2210},
        "models": [
            {
                "model": "vader",
                "kind": "lexicon",
                "size_mb": 0.0,
                "macro_f1": 0.4517,
                "accuracy": 0.45,
                "latency_ms": {},
                "sets": sets(0.4517, 0.4761),
                "behaviour": {"pass_rate": 0.822},
            },
            {
                "model": "runs/teacher",
                "kind": "torch",
                "size_mb": 90.9,
                "macro_f1": 0.7123,
                "accuracy": 0.75,
                "latency_ms": {"p50": 19.0},
                "sets": sets(0.7123, 0.6146),
                "behaviour": {"pass_rate": 0.808},
            },
            {
                "model": "runs/bundle",
                "kind": "onnx-qint8",
                "size_mb": 15.7,
                "macro_f1": 0.6987,
                "accuracy": 0.74,
                "latency_ms": {"p50": 1.4},
                "sets": sets(0.6987, 0.5999),
                "behaviour": {"pass_rate": 0.79},
            },
        ],
    }


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two benchmark runs (the second must win) and a run folder with eval, sizes, invoke."""
    root = tmp_path_factory.mktemp("report")
    results = root / "bench" / "results"
    paths = {"root": root, "results": results, "runs": root / "runs"}
    for stamp, speedup, ms in ((OLD, 1.11, 80.0), (NEW, 2.22, 30.0)):
        paths[f"sampler-{stamp}"] = _write(
            results / stamp / "sampler.json", _sampler(stamp, speedup)
        )
        paths[f"lambda-{stamp}"] = _write(results / stamp / "lambda.json", _lambda(stamp, ms))
    partial = _lambda(PARTIAL, 5.0, sizes=(1024,))
    paths[f"lambda-{PARTIAL}"] = _write(results / PARTIAL / "lambda.json", partial)
    paths["serving"] = _write(results / OLD / "serving.json", _serving(OLD))
    paths["sizes"] = _write(root / "runs/package/slimbert-aws-lambda-x86_64.sizes.json", _sizes())
    paths["eval"] = _write(root / "runs/eval.json", _eval())
    invoke = {"package": "x.zip", "cold_start_ms": 640.0, "function_ms": {"p50": 2.2, "p99": 2.9}}
    paths["invoke"] = _write(root / "runs/invoke.json", invoke)
    return paths


@pytest.fixture(scope="module")
def full(tree: dict[str, Path]) -> dict[str, Any]:
    return build_report(ReportOptions(results=tree["results"], inputs=(tree["runs"],)))


def test_latest_file_of_each_benchmark_wins(tree: dict[str, Path]) -> None:
    found = find_results([tree["results"], tree["runs"]])
    assert [s.path for s in found["sampler"]] == [tree[f"sampler-{NEW}"]]
    assert [s.path for s in found["lambda"]] == [tree[f"lambda-{NEW}"]]
    assert [s.path for s in found["serving"]] == [tree["serving"]]  # only the old run has one
    assert [s.path for s in found["sizes"]] == [tree["sizes"]]
    assert found["eval"][0].path == tree["eval"] and found["invoke"][0].path == tree["invoke"]


def test_report_has_every_section_plot_and_source(tree: dict[str, Path], full: dict[str, Any]):
    out = tree["results"] / NEW / "report"  # the latest results folder
    assert Path(full["out"]) == out and full["missing"] == []
    assert sorted(Path(p).name for p in full["plots"]) == sorted(PLOTS)
    for name in PLOTS:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000, name
    md = (out / "report.md").read_text(encoding="utf-8")
    for title in (
        "Key figures",
        "1. Latency against memory size (Figure 3)",
        "2. Cold starts",
        "3. Cost per 1M predictions",
        "4. Monthly cost against traffic",
        "5. Package size",
        "6. Sampler benchmark",
        "7. Serving benchmark",
        "8. Quality",
    ):
        assert f"## {title}" in md, title
    for key in ("sampler-" + NEW, "lambda-" + NEW, "serving", "sizes", "eval", "invoke"):
        assert f"`{tree[key]}` (" in md, key
    assert str(tree[f"sampler-{OLD}"]) not in md and str(tree[f"lambda-{OLD}"]) not in md
    assert "2025-02-01 00:00 UTC, x86_64, 2 CPUs" in md  # date and machine of the source
    for name in PLOTS:
        assert f"]({name})" in md
    assert "run `" not in md
    assert "| teacher | 512 |" in md and "OOM" in md  # the teacher's OOM size is a result
    assert "a smoke run, not a result to quote" in md  # the benchmark's own notes carry over


def test_key_figures_hold_the_latest_numbers(full: dict[str, Any]) -> None:
    key = full["key_figures"]
    assert "0.6987 vs 0.7123" in key  # student (bundle) vs teacher macro-F1
    # Each further domain and the behavioural suite, with VADER as the floor.
    assert "macro-F1 on `sst3:test`, student vs teacher vs VADER" in key
    assert "0.5999 vs 0.6146 vs 0.4761" in key
    assert "79.0% vs 80.8% vs 82.2%" in key
    assert "2.22×" in key and "1.11×" not in key  # sampler speed-up of the newer run
    assert "cheapest memory with p99 ≤ 100 ms" in key and "aws-lambda-x86_64" in key
    assert "(2025-02-01)" in key and "(student) vs" in key


def test_cost_follows_the_price_table(tree: dict[str, Path], tmp_path: Path) -> None:
    result = build_report(
        ReportOptions(
            results=tree["results"] / NEW,  # one <timestamp> folder
            out=tmp_path / "r",
            platforms=("aws-lambda-x86_64",),
            requests_per_month=(1e6,),
        )
    )
    md = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert "| aws-lambda-x86_64 | aws-lambda-x86_64 | 512 |" in md
    assert "gcp-functions" not in md.split("## 3.")[1].split("## 5.")[0]
    assert "1,000,000 requests" in md and "VM paper-2021" in md
    # Without the run folder, sizes and eval are missing; serving lives only in the older run.
    assert result["missing"] == [
        "no serving results: run `slimbert bench serving`",
        "no package size results: run `slimbert package` and pass its output folder in `inputs`",
        "no eval results: run `slimbert eval` and pass its output folder in `inputs`",
    ]


def test_missing_inputs_name_the_command_to_run(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _write(results / NEW / "sampler.json", _sampler(NEW, 1.5))
    result = build_report(ReportOptions(results=results))
    md = Path(result["report"]).read_text(encoding="utf-8")
    assert Path(result["out"]) == results / NEW / "report"
    for line in (
        "No lambda results: run `slimbert bench lambda`.",
        "No serving results: run `slimbert bench serving`.",
        "No package size results: run `slimbert package`",
        "No eval results: run `slimbert eval`",
    ):
        assert line in md
    assert result["plots"] == [] and "## 6. Sampler benchmark" in md and "1.50" in md


def test_no_results_at_all_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no benchmark results"):
        build_report(ReportOptions(results=tmp_path))


def test_unknown_platform_is_refused(tree: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="aws-lamda"):
        build_report(ReportOptions(results=tree["results"], out=tmp_path, platforms=("aws-lamda",)))


def test_options_from_cli_strings() -> None:
    o = ReportOptions.from_dict({"requests_per_month": "1e5,1e6", "platforms": "aws-lambda-arm64"})
    assert o.requests_per_month == (1e5, 1e6) and o.platforms == ("aws-lambda-arm64",)
    with pytest.raises(ConfigError):
        ReportOptions(requests_per_month=(0.0,))


def test_hand_made_lambda_file_is_read_tolerantly(tmp_path: Path) -> None:
    """Only ``memory`` and a ``teacher`` block; quantiles without raw durations; a broken size."""
    doc = {
        "platform": "aws-lambda",
        "arch": "x86_64",
        "memory": {"1024": {"p50_ms": 20.0, "p99_ms": 40.0}, "2048": {"peak_memory_mb": 99}},
        "teacher": {"1024": {"p50_ms": 90.0, "p99_ms": 150.0, "cold_start_ms": 3000}},
    }
    path = _write(tmp_path / "lambda.json", doc)
    run = read_lambda(find_results([path])["lambda"][0])
    assert run.platform == "aws-lambda-x86_64"
    assert sorted(run.measured["student"]) == [1024] and sorted(run.measured["teacher"]) == [1024]
    assert any("2048" in note for note in run.notes)


README = f"# Project\n\nIntro.\n\n## Results\n\n{README_START}\nold table\n{README_END}\n\nTail.\n"


def test_update_readme_replaces_only_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README, encoding="utf-8")
    assert update_readme(readme, "| a | b |\n|---|---|\n| 1 | 2 |\n") is True
    text = readme.read_text(encoding="utf-8")
    assert text == README.replace("old table", "| a | b |\n|---|---|\n| 1 | 2 |")
    assert update_readme(readme, "| a | b |\n|---|---|\n| 1 | 2 |") is False  # idempotent
    assert readme.read_text(encoding="utf-8") == text


def test_build_report_fills_the_readme_idempotently(tree: dict[str, Path], tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text(README, encoding="utf-8")
    options = ReportOptions(
        results=tree["results"], inputs=(tree["runs"],), out=tmp_path / "r", readme=readme
    )
    first = build_report(options)
    text = readme.read_text(encoding="utf-8")
    assert first["readme_changed"] is True
    assert text.startswith("# Project\n\nIntro.") and text.endswith(f"{README_END}\n\nTail.\n")
    assert "old table" not in text and "| figure | value | source |" in text
    assert f"`{tree['eval']}` (" in text  # each figure cites its file and date
    second = build_report(options)
    assert second["readme_changed"] is False and readme.read_text(encoding="utf-8") == text


def test_readme_without_markers_is_an_error(tree: dict[str, Path], tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n\nNo markers here.\n", encoding="utf-8")
    with pytest.raises(DataError, match="results:start"):
        update_readme(readme, "| a |")
    with pytest.raises(DataError, match="results:start"):  # before writing anything
        build_report(ReportOptions(results=tree["results"], out=tmp_path / "r", readme=readme))
    assert not (tmp_path / "r").exists()
    assert readme.read_text(encoding="utf-8") == "# Project\n\nNo markers here.\n"
    with pytest.raises(DataError, match="cannot read it"):
        update_readme(tmp_path / "missing.md", "| a |")


# -- which benchmark run, and reports that cannot mislead -------------------------------------


def test_a_newer_partial_run_is_passed_over_with_a_note(
    tree: dict[str, Path], full: dict[str, Any]
) -> None:
    notes: list[str] = []
    found = find_results([tree["results"]], notes=notes)
    assert [s.path for s in found["lambda"]] == [tree[f"lambda-{NEW}"]]
    assert len(notes) == 1 and str(tree[f"lambda-{PARTIAL}"]) in notes[0]
    assert "no result at 512, 1769, 3008 MB (measured: 1024)" in notes[0]
    # The report says so too, and its latency table still has every size.
    assert any("passed over as incomplete" in n for n in full["notes"])
    md = Path(full["report"]).read_text(encoding="utf-8")
    assert all(f"| student | {mb} |" in md for mb in BENCH_MEMORY_MB)


def test_a_named_run_is_used_even_when_partial(tree: dict[str, Path], tmp_path: Path) -> None:
    result = build_report(ReportOptions(results=tree["results"] / PARTIAL, out=tmp_path / "r"))
    assert result["sources"]["lambda"] == [str(tree[f"lambda-{PARTIAL}"])]
    assert any("used as named but is incomplete" in n for n in result["notes"])


def test_asking_for_other_sizes_changes_what_is_complete(tree: dict[str, Path]) -> None:
    found = find_results([tree["results"]], memory_mb=(1024,))
    assert [s.path for s in found["lambda"]] == [tree[f"lambda-{PARTIAL}"]]
    assert ReportOptions.from_dict({"memory_mb": "512,1024"}).memory_mb == (512, 1024)


def test_a_failed_size_makes_a_run_incomplete_but_an_oom_does_not() -> None:
    doc = _lambda(NEW, 30.0)
    assert lambda_gaps(doc) == []  # the teacher's OOM at 512 MB is a result
    doc["functions"]["student-lambda"]["memory"]["1769"] = {"oom": False, "error": "timeout"}
    assert lambda_gaps(doc) == [
        "student-lambda has no result at 1769 MB (measured: 512, 1024, 3008)"
    ]
    asked_more = _lambda(NEW, 30.0)
    asked_more["options"]["memory_mb"] = [*BENCH_MEMORY_MB, 4096]
    assert "4096" in lambda_gaps(asked_more)[0]


def test_plots_say_whose_timings_and_which_prices(full: dict[str, Any]) -> None:
    from slimbert.lab.cost import PlatformCost
    from slimbert.lab.plots import timings_label
    from slimbert.lab.results import quality_points
    from slimbert.prices import load_prices

    own = PlatformCost("aws-lambda-x86_64", "aws-lambda-x86_64", {}, {}, {}, 512, None)
    other = dataclasses.replace(own, platform="gcp-functions-gen2")
    assert timings_label(own) == "aws-lambda-x86_64 (its own timings)"
    assert timings_label(other) == "gcp-functions-gen2 (reuses aws-lambda-x86_64 timings)"
    assert load_prices().vm().as_of  # the VM line's label carries its date
    label, points, left_out = quality_points(_eval())
    assert label == "macro-F1" and [p[0] for p in points] == [
        "teacher (torch)",
        "bundle (onnx-qint8)",
    ]
    assert points[1][1:] == (1.4, 0.6987, 15.7)
    assert left_out == ["vader (lexicon): no latency measured"]
    md = Path(full["report"]).read_text(encoding="utf-8")
    assert "Not in the plot: vader (lexicon): no latency measured." in md
    embedders = {
        "models": [
            {
                "name": "mini",
                "kind": "sbert",
                "size_mb": 90.0,
                "latency_ms": {"p50": 3.0},
                "spearman": {"a": 80.0, "b": 70.0},
            }
        ]
    }
    assert quality_points(embedders)[:2] == (
        "Spearman ×100 (mean over the pair sets)",
        [("mini (sbert)", 3.0, 75.0, 90.0)],
    )


def _results_rows(readme_text: str) -> list[str]:
    """The README's results-table rows whose source is a committed bench/results file."""
    block = readme_text.split(README_START)[1].split(README_END)[0]
    return [line for line in block.splitlines() if "| `bench/results/" in line]


def test_the_committed_readme_table_is_regenerated_from_the_committed_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`slimbert report --readme` on the committed bench/results folder (no folder named)
    reproduces the committed table: the newest one-size re-measurement is passed over. Rows
    whose source is a run folder (runs/, ignored by git) change whenever it is rebuilt, so only
    the rows citing committed files are compared."""
    if not (REPO / "bench" / "results").is_dir() or README_START not in (
        readme := (REPO / "README.md").read_text(encoding="utf-8")
    ):
        pytest.skip("no committed bench/results or README results table here")
    monkeypatch.chdir(REPO)  # the table cites paths relative to the repository
    copy = tmp_path / "README.md"
    copy.write_text(readme, encoding="utf-8")
    runs = Path("runs/sentiment")
    inputs = (runs,) if (runs / "eval.json").is_file() else ()
    options = ReportOptions(
        results=Path("bench/results"), inputs=inputs, out=tmp_path / "r", readme=copy
    )
    build_report(options)
    regenerated = copy.read_text(encoding="utf-8")
    assert _results_rows(regenerated) == _results_rows(readme)
    assert "$0.24 at 512 MB" in "".join(_results_rows(regenerated))


# -- batched requests and arm64 (issue 16) ------------------------------------------------------


def test_report_prices_each_batch_size_with_arm64_beside(tree: dict[str, Path], tmp_path: Path):
    result = build_report(
        ReportOptions(
            results=tree["results"] / NEW, out=tmp_path / "r", platforms=("aws-lambda-x86_64",)
        )
    )
    md = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    section = md.split("### Per prediction, by texts per request")[1].split("## 4.")[0]
    assert "](cost_per_prediction.png)" in section
    # arm64 comes beside x86_64 although only x86_64 was asked for, and says whose timings.
    assert "| aws-lambda-x86_64 $ per 1M predictions | aws-lambda-arm64 $ per 1M predictions |" in (
        section
    )
    assert "arm64 speed is not measured here" in section
    assert "| aws-lambda-arm64 | aws-lambda-x86_64 | 512 |" in md  # the request table too
    # 512 MB at 64 texts: (30 + 128) * 2 * 1.2 = 379 ms p99, over the target.
    assert "| 512 | 64 | 379 ✗ |" in section
    rows = [line for line in section.splitlines() if line.startswith("| 1024 | ")]
    assert [line.split(" | ")[1] for line in rows] == ["1", "8", "32", "64"]
    shares = [int(line.split(" | ")[4].rstrip("%")) for line in rows]
    assert shares == sorted(shares, reverse=True) and shares[0] > shares[-1]
    key = result["key_figures"]
    assert "$ per 1M predictions at 32 texts per request" in key
    assert "aws-lambda-arm64 $0.0" in key and "arm64 speed not measured" in key


def test_older_lambda_results_without_batches_say_what_to_run(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _write(results / NEW / "lambda.json", _lambda(NEW, 30.0, batched=False))
    result = build_report(ReportOptions(results=results, out=tmp_path / "r"))
    md = Path(result["report"]).read_text(encoding="utf-8")
    line = "no batched requests in the lambda results: run `slimbert bench lambda --batch-sizes"
    assert any(m.startswith(line) for m in result["missing"])
    assert "### Per prediction, by texts per request" in md and "cost_per_prediction" not in md
    assert "## 3. Cost per 1M predictions" in md and "$ per 1M predictions at 32" not in md


def test_a_run_that_extends_the_demo_keeps_its_own_eval_and_teacher(tmp_path: Path) -> None:
    """runs/sentiment/mpnet/eval.json (newer) does not replace runs/sentiment/eval.json, and
    its bundle is compared with the teacher of its folder, not the demo's teacher beside it."""
    runs = tmp_path / "runs"
    demo = _write(runs / "eval.json", _eval())
    other = _eval()
    teacher, bundle = other["models"][1], other["models"][2]
    big = {**teacher, "model": "runs/mpnet/teacher", "macro_f1": 0.8011}
    other["models"] = [
        other["models"][0],
        teacher,  # runs/teacher: the demo's, listed first
        big,
        {**bundle, "model": "runs/mpnet/bundle", "macro_f1": 0.7622},
    ]
    mpnet = _write(runs / "mpnet" / "eval.json", other)
    found = find_results([runs])
    assert [s.path for s in found["eval"]] == [demo, mpnet]
    result = build_report(
        ReportOptions(results=tmp_path / "none", inputs=(runs,), out=tmp_path / "r")
    )
    key = result["key_figures"]
    assert "| runs: macro-F1 on `tweets3:test`, student vs teacher | 0.6987 vs 0.7123 |" in key
    assert "| mpnet: macro-F1 on `tweets3:test`, student vs teacher | 0.7622 vs 0.8011 |" in key
    report = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert "runs/mpnet/bundle" in report and f"`{mpnet}`" in report
