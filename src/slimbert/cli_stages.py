"""The commands made from options dataclasses, and the lines each prints when it finishes.

The method's stages (``train``, ``label``, ..., ``eval``: :func:`slimbert.pipeline.stages`)
each become a command through :func:`method_command`, which runs the stage as a one-step
pipeline with progress bars and hands its result to a printer; the benchmarks, ``cost`` and
``report`` call their Python function directly. :func:`pipeline_summary` is the table that
``slimbert run`` ends with.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from slimbert.cli_commands import console, out, stage_command
from slimbert.cli_progress import TrainReporter, progress_bars, quiet_libraries, run_stage
from slimbert.config import Options
from slimbert.pipeline import stages


def method_command(
    stage: str,
    help_text: str,
    group: typer.Typer,
    *,
    name: str | None = None,
    json_output: bool = False,
    doing: str | None = None,
) -> Callable[[Callable[[Any, Any], None]], Callable[..., Any]]:
    """Register the method's ``stage`` as command ``name`` (default: the stage) of ``group``.

    The command runs the stage (:func:`slimbert.cli_progress.run_stage`; ``doing`` names a
    pulsing bar for stages that report no progress of their own), then calls the decorated
    ``show(options, result)``; with ``--json`` the result is printed instead. A stage that
    writes an output folder takes ``--overwrite``."""
    spec = stages()[stage]

    def decorator(show: Callable[[Any, Any], None]) -> Callable[..., Any]:
        def run(options: Options) -> Any:
            result = run_stage(stage, options, doing)
            show(options, result)
            return result

        return stage_command(
            spec.options,
            name or stage,
            help_text,
            group,
            json_output=json_output,
            overwrite=spec.output_kind is not None,
        )(run)

    return decorator


def deploy_command(options: Any, report: dict[str, Any]) -> str:
    """The command that deploys what ``slimbert package`` just wrote (docs/deploy.md)."""
    from slimbert.deploy.platforms import GCP_ENTRY_POINT

    if options.target == "gcp-function":
        return (
            "Next, deploy it (docs/deploy.md):\n"
            f"  gcloud functions deploy {options.name} --gen2 --runtime python312 "
            f"--source {report['package']} --entry-point {GCP_ENTRY_POINT} --trigger-http "
            f"--no-allow-unauthenticated --memory {options.memory_mb}Mi "
            f"--timeout {options.timeout_s}s --region REGION"
        )
    template = Path(report["package"]).with_name(f"{options.stem}.template.yaml")
    return f"Next, deploy it (docs/deploy.md):\n  sam deploy --guided --template-file {template}"


def print_fit(result: dict[str, Any]) -> None:
    """A training run's best epoch, where the model went, and how long it took."""
    out.print(
        f"best epoch {result['best_epoch']}: validation macro-F1 "
        f"{result['best_val_macro_f1']:.4f} → {result['out']} ({result['seconds']:.0f} s)"
    )


def print_results(table: str, report: dict[str, Any], **print_kwargs: Any) -> dict[str, Any]:
    """Print a stage's markdown ``table``, then where its results went; return ``report``."""
    out.print(table, **print_kwargs)
    out.print(f"results → {report['out']}")
    return report


def register_stages(
    app: typer.Typer, *, bench: typer.Typer, index: typer.Typer, sbert: typer.Typer
) -> None:
    """Register the commands made from options dataclasses on ``app`` and its groups, in the
    order ``slimbert --help`` lists them."""
    from slimbert.lab.bench_index import IndexBenchOptions
    from slimbert.lab.bench_label import LabelBenchOptions
    from slimbert.lab.bench_lambda import BenchLambdaOptions
    from slimbert.lab.bench_serving import ServingBenchOptions
    from slimbert.lab.benchmarks import SamplerBenchOptions
    from slimbert.lab.cost import CostOptions
    from slimbert.lab.report import ReportOptions

    @method_command("train", "Fine-tune a classifier (the teacher) on a gold set.", app)
    def _train(options: Any, result: Any) -> None:
        print_fit(result)

    @method_command("label", "Let the teacher label an unlabelled pool (silver).", app)
    def _label(options: Any, result: Any) -> None:
        out.print(
            f"labelled {result.rows:,} rows in {result.shards} shards "
            f"({result.resumed_shards} resumed) at {result.rows_per_second:,.0f} rows/s "
            f"→ {result.out}; labels {result.label_counts}"
        )
        if result.agreement and result.agreement.get("rows"):
            a = result.agreement
            out.print(
                f"exported teacher ({a['variant']}) agrees with torch on {a['same_label']:,} of "
                f"{a['rows']:,} rows ({100 * a['agreement']:.2f}%), max |Δlogit| "
                f"{a['max_abs_logit_diff']:.1e}"
            )

    @method_command("cross-encoder", "Train the AugSBERT cross-encoder on gold pairs.", app)
    def _cross_encoder(options: Any, r: Any) -> None:
        out.print(
            f"best validation Spearman {100 * r['best_val_spearman']:.2f} at step "
            f"{r['best_step']} of {r['steps']} ({r['seconds']:.0f} s) → {options.out}"
        )

    @method_command("augment", "AugSBERT silver pairs: BM25 mining, cross-encoder, balance.", app)
    def _augment(options: Any, r: Any) -> None:
        out.print(
            f"{r['silver']:,} silver pairs of {r['candidates']:,} candidates (median score "
            f"{r['score_median']:.2f}, {r['resumed_shards']} shard(s) resumed) → {r['silver_file']}"
        )

    @method_command("distill", "Distill a small student on the silver set.", app)
    def _distill(options: Any, result: Any) -> None:
        print_fit(result)

    @stage_command(
        SamplerBenchOptions,
        "sampler",
        "Epoch time and macro-F1 with/without the paper's sampler.",
        bench,
        json_output=True,
    )
    def _bench_sampler(options: Options) -> Any:
        from slimbert.lab.benchmarks import run_sampler_bench, sampler_markdown

        quiet_libraries()
        with progress_bars() as progress:
            report = run_sampler_bench(
                options,  # type: ignore[arg-type]
                reporter=TrainReporter(progress, "sampler"),
            )
        return print_results(sampler_markdown(report), report)

    @stage_command(
        LabelBenchOptions,
        "label",
        "Labelling rows/s per core: torch vs ONNX fp32/int8 teacher; Ray vs local; faults.",
        bench,
        json_output=True,
    )
    def _bench_label(options: Options) -> Any:
        from slimbert.lab.bench_label import label_markdown, run_label_bench

        quiet_libraries()
        report = run_label_bench(options)  # type: ignore[arg-type]
        return print_results(label_markdown(report), report, soft_wrap=True)

    @method_command(
        "package",
        "Build an AWS Lambda zip or a Google function folder.",
        app,
        json_output=True,
        doing="package: wheels, code and bundle",
    )
    def _package(options: Any, report: Any) -> None:
        from slimbert.deploy.archive import size_table

        out.print(size_table(report))
        out.print(deploy_command(options, report), soft_wrap=True, highlight=False, markup=False)

    @stage_command(
        CostOptions,
        "cost",
        "Cost per 1M predictions and per month, against a VM.",
        app,
        json_output=True,
    )
    def _cost(options: Options) -> Any:
        from slimbert.lab.cost import run_cost
        from slimbert.lab.cost_markdown import markdown_report

        report = run_cost(options)  # type: ignore[arg-type]
        out.print(markdown_report(report), soft_wrap=True)
        return report

    @stage_command(
        ReportOptions, "report", "Report and plots from the latest results; refill the README.", app
    )
    def _report(options: Options) -> None:
        from slimbert.lab.report import build_report

        result = build_report(options)  # type: ignore[arg-type]
        for line in result["missing"]:
            console.print(line, highlight=False)
        out.print(f"report → {result['report']}")

    @method_command("invoke", "Invoke a Lambda zip through the local emulator.", app)
    def _invoke(options: Any, result: Any) -> None:
        out.print_json(data=result)

    @stage_command(
        ServingBenchOptions,
        "serving",
        "Cold start, warm latency and handler overhead: bundle vs torch teacher.",
        bench,
        json_output=True,
    )
    def _bench_serving(options: Options) -> Any:
        from slimbert.lab.bench_serving import run_serving_bench, serving_markdown

        quiet_libraries()
        report = run_serving_bench(options)  # type: ignore[arg-type]
        return print_results(serving_markdown(report), report)

    @stage_command(
        BenchLambdaOptions,
        "lambda",
        "Latency, cold start, memory and concurrency of a packaged function under "
        "platform CPU/memory limits (local emulator + cgroups).",
        bench,
        json_output=True,
    )
    def _bench_lambda(options: Options) -> Any:
        from slimbert.lab.bench_lambda import lambda_markdown, run_lambda_bench

        quiet_libraries()
        report = run_lambda_bench(options)  # type: ignore[arg-type]
        return print_results(lambda_markdown(report), report, soft_wrap=True)

    @method_command(
        "export",
        "Export to ONNX, optimise, int8 behind a gate: a bundle.",
        app,
        json_output=True,
    )
    def _export(options: Any, manifest: Any) -> None:
        from slimbert.runtime.bundle import model_bytes  # the graph and its weights file

        gate = manifest.get("gate") or {}
        size = model_bytes(manifest) / 2**20
        out.print(
            f"bundle → {options.out} ({manifest['model_file']}, {size:.1f} MiB); "
            f"gate: {'passed' if gate.get('passed') else 'int8 not kept'}",
            highlight=False,
        )
        if gate.get("verdict"):  # rows, what one row is worth, the options, the sizes
            out.print(gate["verdict"], soft_wrap=True, highlight=False, markup=False)

    @method_command(
        "sbert-train",
        "Train a Sentence-BERT student: --stage distill, nli, sts, then target.",
        sbert,
        name="train",
    )
    def _sbert_train(options: Any, report: Any) -> None:
        out.print(
            f"{report['objective']}: validation Spearman {100 * report['val_spearman_start']:.2f}"
            f" → {100 * report['best_val_spearman']:.2f} (step {report['best_step']} of "
            f"{report['steps']}, {report['seconds']:.0f} s) → {options.out}"
        )

    @method_command(
        "index-build", "Embed a corpus with a bundle into an index.", index, name="build"
    )
    def _index_build(options: Any, manifest: Any) -> None:
        out.print(
            f"index → {options.out} ({manifest['count']:,} texts, {manifest['dim']}-d "
            f"{manifest['dtype']}, backend {manifest['backend']})"
        )

    @method_command(
        "index-calibrate",
        "Duplicate threshold: best F1 on validation pairs, reported on test pairs.",
        index,
        name="calibrate",
    )
    def _index_calibrate(options: Any, report: Any) -> None:
        from slimbert.index.calibrate import calibration_markdown

        print_results(calibration_markdown(report), report, highlight=False)

    @stage_command(
        IndexBenchOptions,
        "index",
        "Duplicate index backends: exact numpy vs usearch (vs faiss when installed).",
        bench,
        json_output=True,
    )
    def _bench_index(options: Options) -> Any:
        from slimbert.lab.bench_index import index_markdown, run_index_bench

        report = run_index_bench(options)  # type: ignore[arg-type]
        return print_results(index_markdown(report), report)

    @method_command(
        "eval",
        "Classifiers: macro-F1; embedders: Spearman; size and latency.",
        app,
        json_output=True,
        doing="eval: scoring, then timing, each model",
    )
    def _eval(options: Any, result: Any) -> None:
        from slimbert.train.evaluate import markdown_table

        out.print(markdown_table(result), soft_wrap=True, highlight=False)


def pipeline_summary(steps: list[Any]) -> str:
    """One table of what a user judges a run by, read from the steps' outputs on disk."""
    from slimbert.io import read_json

    rows: list[tuple[str, str]] = []
    for step in steps:
        o = step.options
        try:
            if step.stage == "eval":
                for m in read_json(Path(o.out or "eval").with_suffix(".json"))["models"]:
                    if "spearman" in m:  # sentence embedders
                        for spec, rho in m["spearman"].items():
                            rows.append((f"Spearman ×100 · {spec} · {m['name']}", f"{rho:.2f}"))
                        continue
                    who = f"{m['model']} ({m['kind']})"
                    for spec, scores in (m.get("sets") or {"test": m}).items():
                        rows.append((f"macro-F1 · {spec} · {who}", f"{scores['macro_f1']:.4f}"))
                    if m.get("behaviour"):
                        rate = 100 * m["behaviour"]["pass_rate"]
                        rows.append((f"behavioural pass rate · {who}", f"{rate:.1f}%"))
            elif step.stage == "export":
                from slimbert.runtime.bundle import model_bytes

                man = read_json(Path(o.out) / "manifest.json")
                size = model_bytes(man) / 1e6
                gate = man.get("gate") or {}
                rows.append(("bundle model", f"{man['model_file']} {size:.1f} MB"))
                for variant in ("fp32", "qint8"):
                    if gate.get(variant) and "macro_f1" in gate[variant]:
                        rows.append(
                            (
                                f"validation macro-F1 · ONNX {variant}",
                                f"{gate[variant]['macro_f1']:.4f}",
                            )
                        )
            elif step.stage == "package":
                for sizes in sorted(Path(o.out).glob("*.sizes.json")):
                    rep = read_json(sizes)
                    rows.append(
                        (
                            f"package {sizes.name.removesuffix('.sizes.json')}",
                            f"{rep['package_bytes'] / 2**20:.1f} MiB zipped, "
                            f"{rep['total']['unzipped_bytes'] / 2**20:.1f} MiB unzipped",
                        )
                    )
            elif step.stage == "invoke":
                inv = read_json(o.out)
                rows.append(
                    ("emulator cold start (first answer)", f"{inv['cold_start_ms']:.0f} ms")
                )
                rows.append(
                    (
                        "emulator warm latency p50 / p99 (client)",
                        f"{inv['client_ms']['p50']:.1f} / {inv['client_ms']['p99']:.1f} ms",
                    )
                )
                if inv.get("peak_rss_mb"):
                    rows.append(("function peak RSS", f"{inv['peak_rss_mb']:.0f} MB"))
        except (OSError, KeyError, ValueError):
            continue
    width = max((len(k) for k, _ in rows), default=0)
    lines = ["", "Summary", *(f"  {k.ljust(width)}  {v}" for k, v in rows)]
    return "\n".join(lines) + "\n"
