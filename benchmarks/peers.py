"""Run the peers' scripts: DBOS Transact (``../shared/peers/dbos/``, by path, in DBOS's venv)
and Restate (``benchmarks/peers/restate/``, with the server, SDK and Node.js that its
``setup.sh`` installs from the npm registry outside the repository)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import PEER_DIR, PG_BASE, REPO, drop_pg_database, run_child
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


# -- Restate (benchmarks/peers/restate/: our scripts; its packages live outside the repo) ------

RESTATE_SCRIPTS = REPO / "benchmarks" / "peers" / "restate"
HEADLINES["bench.mjs"] = ("per_s", True)


@dataclass
class RestatePeer:
    """Where setup.sh installed Restate, and how to run the driver there."""

    folder: Path
    node: str
    isolate: list[str]  # a prefix giving the run its own loopback-only network, or []


def restate_peer() -> tuple[RestatePeer | None, str]:
    """Install (first use) and locate the Restate peer; (None, why) if it cannot run here."""
    setup = RESTATE_SCRIPTS / "setup.sh"
    try:
        out = subprocess.run(["bash", str(setup)], capture_output=True, text=True,
                             timeout=900, check=True)
    except subprocess.CalledProcessError as exc:
        return None, f"setup.sh failed: {exc.stderr.strip()[-400:]}"
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"setup.sh failed: {exc}"
    folder = Path(out.stdout.strip().splitlines()[-1])
    arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "x64"
    node = folder / "node_modules" / f"node-linux-{arch}" / "bin" / "node"
    if not node.exists():
        return None, f"no Node.js runtime at {node}"
    return RestatePeer(folder, str(node), _isolation_prefix()), ""


def _isolation_prefix() -> list[str]:
    """``unshare --net`` with loopback up, where we may (root): restate-server checks for a
    new release on start-up, and in a namespace of its own it can reach nothing but
    127.0.0.1 (its own ports then cannot collide with anyone else's either)."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if not unshare or not ip:
        return []
    prefix = [unshare, "--net", "sh", "-c", f'{ip} link set lo up && exec "$0" "$@"']
    try:
        ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0
    except (subprocess.SubprocessError, OSError):
        ok = False
    return prefix if ok else []


def restate_argv(peer: RestatePeer, run: PeerRun, data_dir: Path, tag: str
                 ) -> tuple[list[str], dict[str, str]]:
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [*peer.isolate, peer.node, str(RESTATE_SCRIPTS / run.script), *run.args,
            "--peer-dir", str(peer.folder), "--data-dir", str(data_dir), "--tag", tag]
    env = dict(os.environ)
    env.update(run.env)
    return argv, env


def run_restate(peer: RestatePeer, run: PeerRun, data_dir: Path, tag: str) -> dict[str, Any]:
    """One run of the Restate driver; its JSON line plus our own wall time and peak RSS
    (``wait4`` covers the driver and, once reaped, restate-server and the service process:
    the largest of the three)."""
    argv, env = restate_argv(peer, run, data_dir, tag)
    res = run_child(argv, env=env, timeout=run.timeout)
    record: dict[str, Any] = dict(res.record or {})
    record.update({
        "label": run.label,
        "command": " ".join(["$RESTATE_NODE", f"benchmarks/peers/restate/{run.script}",
                             *run.args]),
        "process_wall_s": round(res.wall_s, 3),
        "process_peak_rss_mb": res.peak_rss_mb,
        "process_cpu_s": res.cpu_s,
    })
    if res.returncode != 0 or res.record is None or "error" in record:
        record["error"] = str(record.get("error") or
                              f"exit {res.returncode}: {res.stderr_tail[-600:]}")
    return record


def restate_facts(peer: RestatePeer) -> dict[str, Any]:
    def version(package: str) -> str | None:
        try:
            path = peer.folder / "node_modules" / package / "package.json"
            return str(json.loads(path.read_text())["version"])
        except (OSError, ValueError, KeyError):
            return None

    return {
        "restate_server": version("@restatedev/restate-server"),
        "restate_sdk": version("@restatedev/restate-sdk"),
        "restate_node": subprocess.run([peer.node, "--version"], capture_output=True,
                                       text=True, timeout=20).stdout.strip(),
        "restate_isolated_network": bool(peer.isolate),
    }
