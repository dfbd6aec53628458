"""The benchmark suite's smoke run: every scenario for a second or two, so the suite keeps
working. These check that each scenario ran and gave sane figures, never a speed target
(that is ``python -m benchmarks``, on a quiet machine; see docs/PERFORMANCE.md).

The scenarios measure over fixed windows, so they sleep for the window: that is the
measurement, not a wait for something to happen.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks import scenarios
from benchmarks.report import BEGIN, END, markdown, replace_results
from benchmarks.scenarios import SMOKE, Result


def finite(*values: float) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


@pytest.mark.timeout(30)
def test_throughput_delivers_every_accepted_reading_and_runs_its_baselines() -> None:
    result = scenarios.throughput(SMOKE)
    hub, naive, ceiling = (result.details[k] for k in ("hub", "naive", "ceiling"))
    assert hub["rate"] > 100
    assert hub["lost"] == 0 and hub["gaps"] == 0 and hub["bad_packs"] == 0
    assert hub["unique"] + hub["spooled_after_stop"] == hub["issued"]
    assert 0 < hub["cpu_us_per_reading"] < 100_000
    assert naive["rate"] > 10
    assert ceiling["received"] == ceiling["readings"] and ceiling["rate"] > 0
    for floor in (result.details["sensor_side"], result.details["bare_threads"]):
        assert floor["rate"] > 100 and finite(floor["cpu_us_per_reading"])
    assert len(result.rows) == 6


@pytest.mark.timeout(30)
def test_edge_latency_matches_edges_to_receipts() -> None:
    result = scenarios.edge_latency(SMOKE)
    d = result.details
    assert d["edges"] == SMOKE.edges
    assert d["matched"] >= 0.9 * SMOKE.edges
    assert 0 < d["p50_ms"] <= d["p99_ms"] <= d["max_ms"] < 5000
    assert d["bare"]["count"] == SMOKE.edges
    assert 0 < d["bare"]["p50_ms"] <= d["bare"]["max_ms"]


@pytest.mark.timeout(30)
def test_idle_cost_measures_the_hub_and_an_empty_python() -> None:
    result = scenarios.idle(SMOKE)
    pihub, empty = result.details["pihub"], result.details["empty_python"]
    assert pihub["readings"] > 0
    assert 0 <= pihub["cpu_percent"] < 100
    assert 5 < empty["peak_rss_mib"] < pihub["peak_rss_mib"] < 1000
    assert result.details["mqtt_io"] is None  # not in a smoke run


@pytest.mark.timeout(30)
def test_scale_counts_start_up_loss_and_memory() -> None:
    result = scenarios.scale(SMOKE)
    pihub = result.details["pihub"]
    assert pihub["sensors"] == SMOKE.scale_sensors
    assert pihub["rate"] > 0.5 * SMOKE.scale_sensors
    assert pihub["lost"] == 0
    assert 0 < pihub["ready_s"] < 30
    assert pihub["peak_rss_mib"] > 5


@pytest.mark.timeout(30)
def test_schedule_records_the_poll_grid() -> None:
    result = scenarios.schedule(SMOKE)
    d = result.details
    assert d["polls"] >= 10
    assert finite(d["p99_ms"], d["max_ms"], d["drift_ms"])
    assert 0 <= d["p99_ms"] <= d["max_ms"] < 100


@pytest.mark.timeout(30)
def test_backlog_is_delivered_complete_and_in_order() -> None:
    result = scenarios.backlog(SMOKE, throughput_rate=None)
    d = result.details
    assert d["complete"], d
    assert d["received"] >= SMOKE.backlog
    assert d["rate"] > 0


@pytest.mark.timeout(30)
def test_start_and_stop_times_a_real_pihub_run() -> None:
    result = scenarios.start_stop(SMOKE)
    d = result.details
    assert len(d["ready_s"]) == len(d["stop_s"]) == SMOKE.startstop_runs
    assert all(0 < t < 20 for t in d["ready_s"] + d["stop_s"] + d["baseline_s"])


@pytest.mark.timeout(30)
def test_growth_fills_its_cells() -> None:
    result = scenarios.growth(SMOKE)
    cells = result.details["cells"]
    assert [(c["sensors"], c["rate"]) for c in cells] == [(1, 100), (10, 100)]
    assert all(c["delivered"] > 0 and c["peak_rss_mib"] > 5 for c in cells)


def test_the_report_replaces_its_own_block_only(tmp_path: Path) -> None:
    result = Result("demo")
    result.row("readings/s", "12", "3", "≥ 10", True)
    info = {"date": "today", "wall_s": 1.0, "cpu": "cpu", "cores": 2, "ram_gib": 1.0,
            "kernel": "6", "python": "3.11", "paho": "2.2", "mosquitto": "2.0",
            "loadavg_at_start": (0.1, 0.1, 0.1), "loadavg_at_end": (0.2, 0.2, 0.2)}
    table = markdown(info, SMOKE, [result])
    assert "| demo | readings/s | 12 | 3 | ≥ 10 | yes |" in table
    doc = tmp_path / "PERFORMANCE.md"
    doc.write_text("# Performance\n\nbefore\n\n" + BEGIN + "\nold\n" + END + "\n\nafter\n")
    replace_results(doc, table)
    replace_results(doc, table)
    text = doc.read_text()
    assert "old" not in text and text.count(BEGIN) == 1
    assert text.startswith("# Performance\n\nbefore") and text.endswith("after\n")
