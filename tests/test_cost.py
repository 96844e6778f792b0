"""Cost model: the paper's arithmetic, billing rounding, CPU tiers, INIT, free tiers, break-even,
the cheapest memory size, price files and the report."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from slimbert.errors import ConfigError, DataError
from slimbert.lab.billing import (
    SECONDS_PER_MONTH,
    billed_ms,
    break_even_rps,
    cheapest_memory,
    cost_per_million,
    monthly_cost,
)
from slimbert.lab.cost import CostOptions, run_cost
from slimbert.lab.results import read_results
from slimbert.prices import load_prices

LAMBDA = "aws-lambda-x86_64"
GEN1 = "gcp-functions-gen1"


@pytest.fixture(scope="module")
def prices():
    return load_prices()


@pytest.fixture
def results_file(tmp_path: Path) -> Path:
    """The schema the benchmark writes; 512 MB carries quantiles only."""
    rng = np.random.default_rng(0)
    doc = {
        "platform": "aws-lambda",
        "arch": "x86_64",
        "memory": {
            "512": {"p50_ms": 150.0, "p99_ms": 210.0, "init_ms": {"p50": 900.0}},
            "1024": {
                "durations_ms": (80 + rng.gamma(2.0, 2.0, 400)).round(2).tolist(),
                "p50_ms": 83.0,
                "p99_ms": 95.0,
                "cold_start_ms": {"p50": 700.0},
                "init_ms": {"p50": 600.0, "mean": 620.0},
            },
            "2048": {
                "durations_ms": (45 + rng.gamma(2.0, 1.0, 400)).round(2).tolist(),
                "p99_ms": 52.0,
                "cold_start_ms": {"p50": 500.0},
            },
        },
    }
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_paper_arithmetic_one_million_100ms_at_1gb_on_lambda(prices) -> None:
    # Benešová et al.: about $2 per 1M predictions; 1e6 * 0.1 s * 1 GB * $0.0000166667 + $0.20.
    cost = cost_per_million(LAMBDA, 1024, 100.0, prices=prices)
    assert cost["compute_usd"] == pytest.approx(1.66667, rel=1e-9)
    assert cost["requests_usd"] == pytest.approx(0.20)
    assert cost["total_usd"] == pytest.approx(1.867, abs=5e-4)
    assert cost["init_usd"] == 0.0 and cost["free_tier_usd"] == 0.0
    assert cost["mean_billed_ms"] == 100.0


def test_google_rounds_up_to_100ms_lambda_bills_the_millisecond(prices) -> None:
    assert billed_ms(np.array([101.0]), 100).tolist() == [200.0]
    assert billed_ms(np.array([101.0]), 1).tolist() == [101.0]
    assert billed_ms([100.0, 0.4], 100, minimum_ms=100).tolist() == [100.0, 100.0]
    # Float noise just above a multiple does not buy another 100 ms.
    assert billed_ms(np.array([(0.1 + 0.2) * 1000]), 100).tolist() == [300.0]
    assert cost_per_million(GEN1, 1024, 101.0, prices=prices)["mean_billed_ms"] == 200.0
    assert cost_per_million(LAMBDA, 1024, 101.0, prices=prices)["mean_billed_ms"] == 101.0
    with pytest.raises(ConfigError):
        billed_ms([-1.0], 1)


def test_gen1_bills_memory_and_the_cpu_tier_of_the_size(prices) -> None:
    p = prices.platform(GEN1)
    assert p.cpu is not None and p.cpu.units_for(1024) == 1.4
    cost = cost_per_million(GEN1, 1024, 100.0, prices=prices)
    assert cost["cpu_unit"] == "GHz"
    assert cost["compute_usd"] == pytest.approx(1e6 * 0.1 * 1.0 * p.gb_second)  # $0.25
    assert cost["cpu_usd"] == pytest.approx(1e6 * 0.1 * 1.4 * p.cpu.per_second)  # $1.40
    assert cost["total_usd"] == pytest.approx(0.25 + 1.40 + 0.40)
    # Only listed sizes exist: 1000 MB is billed as the 1024 MB tier.
    assert cost_per_million(GEN1, 1000, 100.0, prices=prices)["billed_memory_mb"] == 1024


def test_cold_starts_bill_init_time_where_the_platform_does(prices) -> None:
    gb_second = prices.platform(LAMBDA).gb_second
    cost = cost_per_million(LAMBDA, 1024, 100.0, cold_start_rate=0.01, init_ms=300, prices=prices)
    assert cost["init_usd"] == pytest.approx(1e4 * 0.3 * 1.0 * gb_second)
    assert cost["total_usd"] == pytest.approx(1.86667 + 1e4 * 0.3 * gb_second)
    # Google 1st gen does not list start-up as billed.
    gen1 = cost_per_million(GEN1, 1024, 100.0, cold_start_rate=0.01, init_ms=300, prices=prices)
    assert gen1["init_usd"] == 0.0
    with pytest.raises(ConfigError, match="init_ms"):
        cost_per_million(LAMBDA, 1024, 100.0, cold_start_rate=0.01, prices=prices)


def test_free_tier_reduces_the_month_and_never_below_zero(prices) -> None:
    p = prices.platform(LAMBDA)
    big = 50e6
    full = monthly_cost(LAMBDA, 1024, 100.0, big, prices=prices)
    free = monthly_cost(LAMBDA, 1024, 100.0, big, free_tier=True, prices=prices)
    credit = 400_000 * p.gb_second + 1e6 / 1e6 * 0.20
    assert free["total_usd"] == pytest.approx(full["total_usd"] - credit)
    small = monthly_cost(LAMBDA, 1024, 100.0, 1e5, free_tier=True, prices=prices)
    assert small["total_usd"] == 0.0
    # Off by default.
    assert cost_per_million(LAMBDA, 1024, 100.0, prices=prices)["free_tier_usd"] == 0.0


@pytest.mark.parametrize("platform", [LAMBDA, GEN1, "gcp-functions-gen2"])
@pytest.mark.parametrize("free_tier", [False, True])
def test_break_even_matches_the_monthly_cost(prices, platform: str, free_tier: bool) -> None:
    vm = prices.vm().monthly_usd
    assert vm == 8.0  # the paper's VM is the reference
    kwargs = {"cold_start_rate": 0.01, "init_ms": 400.0, "free_tier": free_tier, "prices": prices}
    rps = break_even_rps(platform, 1024, [90.0, 110.0], **kwargs)
    month = monthly_cost(platform, 1024, [90.0, 110.0], rps * SECONDS_PER_MONTH, **kwargs)
    assert month["total_usd"] == pytest.approx(vm, rel=1e-9)
    if not free_tier:  # linear: rate = VM price / cost of one request
        one = monthly_cost(platform, 1024, [90.0, 110.0], 1.0, **kwargs)["total_usd"]
        assert rps == pytest.approx(vm / one / SECONDS_PER_MONTH)
    assert break_even_rps(platform, 1024, 100.0, vm="aws-ec2-t4g.micro", prices=prices) < (
        break_even_rps(platform, 1024, 100.0, vm=8.0, prices=prices)
    )


def test_cheapest_memory_picks_the_lowest_cost_that_meets_p99(prices) -> None:
    by_memory = {
        512: {"p99_ms": 150.0, "durations_ms": [120.0, 140.0]},  # too slow
        1024: {"p99_ms": 95.0, "durations_ms": [90.0, 92.0]},  # 0.091 GB-s
        2048: {"p99_ms": 45.0, "durations_ms": [40.0, 41.0]},  # 0.081 GB-s: cheaper
    }
    best = cheapest_memory(by_memory, LAMBDA, 100.0, prices=prices)
    assert best["memory_mb"] == 2048 and best["reason"] is None
    expected = cost_per_million(LAMBDA, 2048, [40.0, 41.0], prices=prices)["total_usd"]
    assert best["cost_per_million_usd"] == pytest.approx(expected)
    assert [c["meets"] for c in best["candidates"]] == [False, True, True]
    # On Google 1st gen both round up to 100 ms, so the smaller size wins there.
    assert cheapest_memory(by_memory, GEN1, 100.0, prices=prices)["memory_mb"] == 1024

    none = cheapest_memory(by_memory, LAMBDA, 10.0, prices=prices)
    assert none["memory_mb"] is None and none["cost_per_million_usd"] is None
    assert "no memory size meets p99 <= 10 ms" in none["reason"]
    assert "2048 MB at 45.0 ms" in none["reason"]


def test_user_price_file_overrides_an_entry_and_adds_one(tmp_path: Path) -> None:
    user = tmp_path / "my.yaml"
    user.write_text(
        "platforms:\n"
        "  aws-lambda-x86_64:\n"
        "    gb_second: 0.00002\n"
        "vms:\n"
        "  my-box:\n"
        "    name: A box under the desk\n"
        "    source: https://example.com/box\n"
        "    as_of: 2026-01\n"
        "    monthly_usd: 3.5\n"
        "reference_vm: my-box\n",
        encoding="utf-8",
    )
    table = load_prices(user)
    p = table.platform(LAMBDA)
    assert p.gb_second == 0.00002
    assert p.requests_per_million == 0.20  # untouched fields stay
    assert p.overridden_by == str(user)  # the packaged source no longer vouches for it
    assert table.vm().monthly_usd == 3.5
    cost = cost_per_million(LAMBDA, 1024, 100.0, prices=table)
    assert cost["total_usd"] == pytest.approx(1e5 * 0.00002 + 0.20)

    # A size table is replaced whole, not merged with the packaged one.
    user.write_text("platforms:\n  gcp-functions-gen1:\n    memory_mb: {min: 128, max: 8192}\n")
    assert load_prices(user).platform(GEN1).billed_memory_mb(1000) == 1000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("platforms:\n  aws-lambda-x86_64:\n    gb_second: cheap\n",
         r"my\.yaml: platforms\.aws-lambda-x86_64\.gb_second must be a number"),
        ("platforms:\n  aws-lambda-x86_64:\n    gb_secnd: 0.1\n",
         r"platforms\.aws-lambda-x86_64\.gb_secnd is not a known field.*gb_second"),
        ("platforms:\n  new-cloud:\n    name: New\n",
         r"platforms\.new-cloud\.source is missing"),
        ("vms:\n  paper-2021:\n    as_of: last year\n",
         r"vms\.paper-2021\.as_of must be a date"),
        ("platform:\n  x: {}\n", r"unknown key 'platform'.*platforms"),
        ("platforms: [unclosed\n", r"not valid YAML"),
    ],
)  # fmt: skip
def test_malformed_price_file_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    user = tmp_path / "my.yaml"
    user.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_prices(user)


def test_packaged_prices_carry_source_and_date(prices) -> None:
    assert {"aws-lambda-x86_64", "aws-lambda-arm64", "gcp-functions-gen1", "gcp-functions-gen2",
            "azure-functions-flex"} <= set(prices.platforms)  # fmt: skip
    for entry in [*prices.platforms.values(), *prices.vms.values()]:
        assert entry.source.startswith("https://") and entry.as_of[:2] == "20"
    assert prices.platform("azure-functions-flex").billed_memory_mb(1024) == 2048
    with pytest.raises(ConfigError, match="outside"):
        prices.platform(LAMBDA).billed_memory_mb(20_000)


def test_results_reader_tolerates_quantiles_only(results_file: Path) -> None:
    results = read_results(results_file)
    assert results.platform == LAMBDA and sorted(results.memory) == [512, 1024, 2048]
    approx = results.memory[512]
    assert approx.p99_ms == 210.0 and approx.durations_ms.min() == 150.0
    assert approx.durations_ms.max() == pytest.approx(210.0, abs=1.0)
    assert any("approximated from quantiles p50, p99" in n for n in approx.notes)
    assert results.memory[1024].init_ms == 620.0  # the mean, when given
    assert results.memory[2048].init_ms == pytest.approx(500.0 - np.median(
        results.memory[2048].durations_ms))  # fmt: skip
    bad = results_file.with_name("bad.json")
    bad.write_text('{"memory": {"1024": {"p50": "fast"}}}', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.json"):
        read_results(bad)
    with pytest.raises(DataError, match="no such results file"):
        read_results(bad.with_name("missing.json"))


def test_run_cost_writes_json_and_markdown(results_file: Path, tmp_path: Path) -> None:
    options = CostOptions.from_dict(
        {"results": str(results_file), "cold_start_rate": "0.01", "out": str(tmp_path / "cost")}
    )
    result = run_cost(options)
    assert list(result["platforms"]) == [LAMBDA]  # the platform the results were measured on
    rows = result["platforms"][LAMBDA]["rows"]
    assert [r["memory_mb"] for r in rows] == [512, 1024, 2048]
    assert [r["meets_p99"] for r in rows] == [False, True, True]
    assert result["platforms"][LAMBDA]["cheapest"]["memory_mb"] in (1024, 2048)
    saved = json.loads((tmp_path / "cost.json").read_text(encoding="utf-8"))
    assert saved["platforms"][LAMBDA]["rows"][1]["break_even_rps"] > 0
    md = (tmp_path / "cost.md").read_text(encoding="utf-8")
    assert "| memory MB | billed MB | mean billed ms | p99 ms | $ per 1M |" in md
    assert "approximated from quantiles" in md and "break-even" in md.lower()

    everywhere = run_cost(
        options.replace(
            platform="all",
            out=None,
            memory_mb=(1024, 10240),
            duration_ms=100.0,
            cold_start_rate=0.0,
        )
    )
    assert len(everywhere["platforms"]) == len(load_prices().platforms)
    flex = everywhere["platforms"]["azure-functions-flex"]["rows"]
    assert "skipped" in flex[1] and "outside" in flex[1]["skipped"]
    assert any("measured on aws-lambda-x86_64" in n for n in everywhere["notes"])


def test_options_need_durations_and_sane_rates() -> None:
    with pytest.raises(ConfigError, match="needs measured durations"):
        CostOptions()
    with pytest.raises(ConfigError, match="cold_start_rate"):
        CostOptions(duration_ms=100.0, cold_start_rate=2.0)
    opts = CostOptions.from_dict({"duration_ms": "100", "memory_mb": "512,1024"})
    assert opts.memory_mb == (512, 1024)
    fixed = run_cost(opts.replace(platform=LAMBDA))
    assert fixed["platforms"][LAMBDA]["rows"][1]["total_usd"] == pytest.approx(1.86667)


# -- batched requests and arm64 beside x86_64 (issue 16) --------------------------------------

ARM = "aws-lambda-arm64"
# Mean billed ms per request of k texts: a fixed part and a part per text, halved at 1024 MB.
BILLED_512 = {1: 12.4, 8: 30.3, 32: 80.6, 64: 150.2}


def _batch(k: int, billed: float) -> dict:
    d = {"p50": billed * 0.9, "p90": billed, "p95": billed * 1.05, "p99": billed * 1.1,
         "mean": billed - 0.5, "max": billed * 1.3, "n": 40}  # fmt: skip
    return {
        "texts_per_request": k, "requests": 40, "errors": 0,
        "client_ms": {q: v + 4.0 for q, v in d.items() if q != "n"} | {"n": 40},
        "duration_ms": d, "billed_ms_mean": billed, "duration_source": "emulator-report",
    }  # fmt: skip


@pytest.fixture
def batched_file(tmp_path: Path) -> Path:
    """Lambda results with a ``batched`` block at each size (the agreed schema)."""
    memory = {}
    for mb, scale in ((512, 1.0), (1024, 0.5)):
        single = [6.0 * scale, 6.5 * scale, 8.0 * scale]
        memory[str(mb)] = {
            "durations_ms": single,
            "p99_ms": max(single),
            "init_ms": {"mean": 300.0},
            "batched": {str(k): _batch(k, b * scale) for k, b in BILLED_512.items()},
        }
    doc = {"platform": "aws-lambda", "arch": "x86_64", "memory": memory}
    path = tmp_path / "lambda.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _formula(prices, platform: str, mb: int, k: int, billed: float) -> float:
    """issue 16: 1e6 / k x (request fee + price per GB-s x GB x billed s)."""
    p = prices.platform(platform)
    return 1e6 / k * (p.requests_per_million / 1e6 + p.gb_second * mb / 1024 * billed / 1000)


def test_k32_cost_per_prediction_equals_the_formula(prices, batched_file: Path) -> None:
    result = run_cost(CostOptions(results=batched_file, batch=32))
    rows = result["platforms"][LAMBDA]["batches"]["rows"]
    assert [(r["memory_mb"], r["texts_per_request"]) for r in rows] == [(512, 32), (1024, 32)]
    for row, billed in zip(rows, (80.6, 40.3), strict=True):
        assert row["mean_billed_ms"] == billed and row["billed_from"] == "measured billed duration"
        assert row["total_usd"] == pytest.approx(_formula(prices, LAMBDA, row["memory_mb"], 32,
                                                          billed), rel=1e-12)  # fmt: skip
        assert row["requests_usd"] == pytest.approx(0.20 / 32)
        assert row["beside_total_usd"] == pytest.approx(
            _formula(prices, ARM, row["memory_mb"], 32, billed), rel=1e-12
        )
    # 1,024 MB bills twice the GB for half the time, and meets the same p99: a tie goes to 512.
    assert result["platforms"][LAMBDA]["batches"]["cheapest"][32]["memory_mb"] == 512


def test_fee_share_and_cost_per_prediction_fall_with_batch_size(batched_file: Path) -> None:
    rows = run_cost(CostOptions(results=batched_file))["platforms"][LAMBDA]["batches"]["rows"]
    for mb in (512, 1024):
        by_k = sorted((r["texts_per_request"], r) for r in rows if r["memory_mb"] == mb)
        assert [k for k, _ in by_k] == [1, 8, 32, 64]
        shares = [r["fee_share"] for _, r in by_k]
        costs = [r["total_usd"] for _, r in by_k]
        assert all(a > b for a, b in itertools.pairwise(shares)), shares
        assert all(a > b for a, b in itertools.pairwise(costs)), costs
        assert 0 < shares[-1] < shares[0] < 1


def test_cheapest_per_batch_size_must_meet_the_p99_target(batched_file: Path) -> None:
    result = run_cost(CostOptions(results=batched_file, p99_target_ms=100.0))
    batches = result["platforms"][LAMBDA]["batches"]
    at_64 = {r["memory_mb"]: r for r in batches["rows"] if r["texts_per_request"] == 64}
    assert at_64[512]["p99_ms"] == pytest.approx(165.22) and not at_64[512]["meets_p99"]
    assert at_64[512]["total_usd"] < at_64[1024]["total_usd"] * 1.01  # cheap, but too slow
    assert batches["cheapest"][64]["memory_mb"] == 1024
    strict = run_cost(CostOptions(results=batched_file, p99_target_ms=10.0, batch=64))
    reason = strict["platforms"][LAMBDA]["batches"]["cheapest"][64]["reason"]
    assert "no memory size meets p99 <= 10 ms at 64 texts" in reason


def test_cost_markdown_shows_batches_and_arm64_beside(batched_file: Path, tmp_path: Path):
    run_cost(CostOptions(results=batched_file, out=tmp_path / "cost"))
    md = (tmp_path / "cost.md").read_text(encoding="utf-8")
    assert "### Per prediction, by texts per request" in md
    assert "| memory MB | texts / request | p99 ms | client p99 ms |" in md
    # Both tables have the arm64 column, and say its speed was not measured.
    assert md.count(f"{ARM} $ per 1M") == 2 and md.count("(its speed not measured)") == 2
    assert "arm64 speed is not measured here" in md
    assert "- 32 texts per request: 512 MB at $0.0" in md
    saved = json.loads((tmp_path / "cost.json").read_text(encoding="utf-8"))
    assert saved["platforms"][LAMBDA]["beside"]["platform"] == ARM


def test_arm64_is_priced_beside_x86_64_in_the_request_table(prices, results_file: Path):
    x86, arm = prices.platform(LAMBDA), prices.platform(ARM)
    # The packaged table: 20% less per GB-s, the same request fee, both sourced and dated.
    assert arm.gb_second / x86.gb_second == pytest.approx(0.8, abs=1e-5)
    assert arm.requests_per_million == x86.requests_per_million
    assert arm.as_of == x86.as_of and arm.source.startswith("https://aws.amazon.com/lambda/")
    entry = run_cost(CostOptions(results=results_file))["platforms"][LAMBDA]
    for row in entry["rows"]:
        twin = cost_per_million(ARM, row["memory_mb"], read_results(results_file).memory[
            row["memory_mb"]].durations_ms, prices=prices)  # fmt: skip
        assert row["beside_total_usd"] == pytest.approx(twin["total_usd"])
        assert row["beside_total_usd"] < row["total_usd"]
    best = entry["cheapest"]
    assert best["beside_cost_per_million_usd"] < best["cost_per_million_usd"]


def test_older_results_without_batches_still_price(results_file: Path) -> None:
    plain = run_cost(CostOptions(results=results_file))
    assert plain["platforms"][LAMBDA]["batches"] is None
    assert any("no batched requests (older results)" in n for n in plain["notes"])
    one = run_cost(CostOptions(results=results_file, batch=1))["platforms"][LAMBDA]
    rows = one["batches"]["rows"]
    assert {r["source"] for r in rows} == {"single-text requests"}
    by_mb = {r["memory_mb"]: r for r in one["rows"]}
    for r in rows:  # k = 1 from the single-text run is the cost per request
        assert r["total_usd"] == pytest.approx(by_mb[r["memory_mb"]]["total_usd"])
    with pytest.raises(ConfigError, match="no requests of 8 texts measured") as err:
        run_cost(CostOptions(results=results_file, batch=8))
    assert "--batch-sizes" in str(err.value.hint)


def test_a_fixed_duration_prices_one_batch_size(prices) -> None:
    fixed = run_cost(CostOptions(duration_ms=49.2, batch=32, platform="all", memory_mb=(1024,)))
    row = fixed["platforms"][LAMBDA]["batches"]["rows"][0]
    assert row["total_usd"] == pytest.approx(_formula(prices, LAMBDA, 1024, 32, 50.0))
    assert row["billed_from"] == "durations rounded up" and row["source"] == "fixed duration"
    gen1 = fixed["platforms"][GEN1]["batches"]["rows"][0]
    assert gen1["mean_billed_ms"] == 100.0  # Google rounds each request up to 100 ms
    assert any("32 texts per request take the fixed 49.2 ms" in n for n in fixed["notes"])
    assert run_cost(CostOptions(duration_ms=49.2))["platforms"][LAMBDA]["batches"] is None
    with pytest.raises(ConfigError, match="batch must be at least 1"):
        CostOptions(duration_ms=49.2, batch=0)


def test_batched_blocks_are_read_tolerantly_but_not_blindly(batched_file: Path) -> None:
    doc = json.loads(batched_file.read_text(encoding="utf-8"))
    block = doc["memory"]["1024"]["batched"]
    block["64"] = {"texts_per_request": 64, "requests": 0, "errors": 0,
                   "skipped": "the instance died at 32 texts per request"}  # fmt: skip
    batched_file.write_text(json.dumps(doc), encoding="utf-8")
    m = read_results(batched_file).memory[1024]
    assert sorted(m.batched) == [1, 8, 32]
    assert any("1024 MB, 64 texts per request: not measured (the instance died" in n
               for n in m.notes)  # fmt: skip
    assert m.batched[32].billed_ms_mean == 40.3 and m.batched[32].client_p99_ms == pytest.approx(
        48.33
    )
    rows = run_cost(CostOptions(results=batched_file, batch=64))["platforms"][LAMBDA]["batches"]
    assert [r.get("skipped") for r in rows["rows"]] == [None, "not measured"]
    block["8"]["billed_ms_mean"] = "fast"
    batched_file.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(DataError, match=r"memory\.1024\.batched\.8\.billed_ms_mean"):
        read_results(batched_file)
