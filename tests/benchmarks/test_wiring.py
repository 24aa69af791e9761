"""The benchmark harness's wiring, on tiny sizes: W9's parts really check what they claim,
its verdict and ratios are computed from the right fields, and the Restate peer (if
installed) runs and reports. Speed is measured by ``benchmarks/run.py``, never here."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from benchmarks import run as bench_run
from benchmarks.harness import Outcome
from benchmarks.peers import restate_peer, run_restate
from benchmarks.workloads import PeerRun
from benchmarks.workloads import w9_entities as w9

RESTATE_HOME = Path(os.environ.get(
    "RESTATE_PEER_DIR",
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "durable-peers" / "restate"))


async def test_w9_signal_part_applies_every_signal_once(tmp_path: Path) -> None:
    result = await w9.part_signals(f"sqlite:///{tmp_path / 'a.db'}", 300, 7, {}, "a")
    assert result["wrong_final"] == 0
    assert result["n"] == 300 and result["ops_per_s"] > 0
    assert result["leases"]["messages_leased"] >= 300  # every operation was leased


async def test_w9_call_part_checks_every_result(tmp_path: Path) -> None:
    result = await w9.part_calls(f"sqlite:///{tmp_path / 'c.db'}", 12, 3, 4, {}, "c")
    assert result["bad_output"] == 0
    assert result["counters_exact"] == 4  # each counter's results are exactly 1..9


async def test_w9_idle_part_measures_a_separate_worker(tmp_path: Path) -> None:
    result = await w9.part_idle(f"sqlite:///{tmp_path / 'idle.db'}", [40, 120])
    assert [s["entities"] for s in result["stages"]] == [0, 40, 120]
    assert result["last_stage_entities"] == 80
    assert result["worker_peak_rss_mb"] > 10


def test_w9_verdict_and_ratios_come_from_the_parts() -> None:
    out = Outcome(wid="W9", title=w9.TITLE, goal=w9.GOAL)
    idle = {"stages": [{"entities": 0, "rss_mb": 30}, {"entities": 1000, "rss_mb": 31},
                       {"entities": 2000, "rss_mb": 31}],
            "from_entities": 1000, "to_entities": 2000, "rss_growth_mb": 0.0,
            "last_stage_growth_mb": 0.0, "last_stage_entities": 1000,
            "last_bytes_per_entity": 0, "worker_peak_rss_mb": 32}
    signals = {"n": 10_000, "keys": 100, "wall_s": 0.5, "send_s": 0.4, "ops_per_s": 20_000,
               "reads": 100, "wrong_final": 0, "ops_per_batch": 100,
               "worker": {"episodes": 100}, "leases": {"lease_calls": 2},
               "messages_leased_per_op": 1.0, "cpu_s": 0.5}
    calls = {"n": 1000, "calls": 5, "keys": 100, "wall_s": 1.0, "start_phase_s": 0.1,
             "orch_per_s": 1000, "calls_per_s": 5000, "bad_output": 0, "counters_exact": 100,
             "worker": {"episodes": 7000}, "cpu_s": 1.0}
    out.durable = {"parts": {"a": signals, "b": dict(signals, keys=1), "c": calls,
                             "idle": idle}}
    peer = {"n": 10_000, "wall_s": 5.0, "send_s": 4.0, "concurrency": 128}
    out.restate = {"a": dict(peer, workload="w9a", keys=100, ops_per_s=2000),
                   "b": dict(peer, workload="w9b", keys=1, ops_per_s=4000)}
    w9.judge(out, w9.PARAMS["full"])
    assert out.met is True
    assert out.restate_ratio == 5.0  # the smaller of 10x (a) and 5x (b)
    assert "(a) 10.0x Restate" in out.ratio_text and "(b) 5.0x Restate" in out.ratio_text
    out.restate["b"]["ops_per_s"] = 4001  # now (b) is just under 5x
    out.notes.clear()
    w9.judge(out, w9.PARAMS["full"])
    assert out.met is False


async def test_w10_prefix_sweep_loads_each_size_and_checks_every_page(tmp_path: Path) -> None:
    from benchmarks.workloads import w10_large_store as w10

    found = await w10._prefix_sweep("sqlite", f"sqlite:///{tmp_path / 'w10.db'}", [30, 200], 3)
    assert set(found) == {"30", "200"}
    assert all(set(v) == set(w10.PREFIXES) and min(v.values()) > 0 for v in found.values())
    assert not list(tmp_path.glob("w10.db.*"))  # each size's file is removed


def test_w10_judges_the_prefix_list_flat_only_within_its_bounds() -> None:
    from benchmarks.workloads import w10_large_store as w10

    small = {"none": 0.2, "ten": 0.3, "all": 0.5}
    assert w10.prefix_flat({"1000": small, "1000000": {"none": 1.1, "ten": 1.2, "all": 40}})
    assert not w10.prefix_flat({"1000": small, "1000000": {"none": 1.3, "ten": 0.3, "all": 1}})
    assert not w10.prefix_flat({"1000": small})  # one size shows nothing


def test_median_keeps_every_figure_of_every_repetition() -> None:
    records = [{"a": 3, "b": 30}, {"a": 1, "b": 10}, {"a": 2, "b": 50}]
    chosen = bench_run.pick_median(records, "a", True, ["b"])
    assert chosen["a"] == 2 and chosen["reps"] == [3, 1, 2]
    assert chosen["reps_by_key"]["b"] == {"reps": [30, 10, 50], "median": 30}


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
@pytest.mark.skipif(not any(RESTATE_HOME.glob(".installed-*")),
                    reason=f"Restate peer not installed in {RESTATE_HOME} "
                           "(run benchmarks/peers/restate/setup.sh)")
def test_restate_peer_runs_and_counts_every_send(tmp_path: Path) -> None:
    peer, why = restate_peer()
    assert peer is not None, why
    run = PeerRun("smoke", "bench.mjs", ["--workload", "w9a", "--n", "60", "--keys", "6"],
                  timeout=120)
    record = run_restate(peer, run, tmp_path, "smoke")
    assert "error" not in record, record.get("error")
    assert record["applied"] == 60 and record["ops_per_s"] > 0
    assert not any(tmp_path.iterdir())  # its data directory is gone
