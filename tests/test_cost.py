"""Cost model: the paper's arithmetic, billing rounding, CPU tiers, INIT, free tiers, break-even,
the cheapest memory size, price files and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slimbert.errors import ConfigError, DataError
from slimbert.lab.cost import (
    SECONDS_PER_MONTH,
    CostOptions,
    billed_ms,
    break_even_rps,
    cheapest_memory,
    cost_per_million,
    monthly_cost,
    read_results,
    run_cost,
)
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
