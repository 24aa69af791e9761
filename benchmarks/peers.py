"""Run the DBOS Transact peer scripts (``../shared/peers/dbos/``) by path, in DBOS's venv."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from benchmarks.harness import PEER_DIR, PG_BASE, drop_pg_database, run_child
from benchmarks.workloads import PeerRun

# Which field of each script's JSON line decides the median of repetitions.
HEADLINES: dict[str, tuple[str, bool]] = {
    "hello_sequence.py": ("wf_per_s", True),
    "fan_out.py": ("wall_s", False),
    "seq_latency.py": ("p50_ms", False),
    "singleton.py": ("", False),
}


def peer_argv(python: str, peer: PeerRun, data_dir: Path, tag: str) -> tuple[list[str], dict]:
    env = dict(os.environ)
    env.update({
        "PEER_DATA_DIR": str(data_dir),
        "PEER_PG_URL": PG_BASE,
        "PEER_LOG_LEVEL": "WARNING",
    })
    env.pop("PEER_SQLITE_WAL", None)
    env.update(peer.env)
    argv = [python, str(PEER_DIR / peer.script), *peer.args, "--tag", tag]
    return argv, env


def run_peer(python: str, peer: PeerRun, data_dir: Path, tag: str) -> dict[str, Any]:
    """One run of one peer script; its JSON line plus our own wall time and peak RSS."""
    argv, env = peer_argv(python, peer, data_dir, tag)
    res = run_child(argv, env=env, timeout=peer.timeout)
    if "postgres" in peer.args:
        drop_pg_database(f"dbos_{tag}")  # the peer scripts leave their database behind
    record: dict[str, Any] = dict(res.record or {})
    record.update({
        "label": peer.label,
        "command": " ".join([f"{k}={v}" for k, v in peer.env.items()]
                            + ["$DBOS_PY", f"../shared/peers/dbos/{peer.script}", *peer.args]),
        "process_wall_s": round(res.wall_s, 3),
        "process_peak_rss_mb": res.peak_rss_mb,
        "process_cpu_s": res.cpu_s,
    })
    if res.returncode != 0 or res.record is None:
        record["error"] = f"exit {res.returncode}: {res.stderr_tail[-600:]}"
    return record
