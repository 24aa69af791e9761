"""Every example script runs on its own (a fresh SQLite file each) and prints what it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

# Per script: regular expressions its output must match, in order.
EXPECTED: dict[str, list[str]] = {
    "function_chaining.py": [
        r"^\w+: Completed -> \['Hello Tokyo!', 'Hello Seattle!', 'Hello London!'\]$",
    ],
    "fan_out_fan_in.py": [
        r"^Completed: 26 words in 4 documents$",
        r"^  faq\.txt: 4$",
        r"^  usage\.txt: 9$",
    ],
    "human_interaction.py": [
        r"^  \[email\] please approve 'laptop'$",
        r"^answered: Completed -> approved by Ana$",
        r"^ignored: Completed -> escalated 'yacht': no answer in 0\.5s$",
    ],
    "monitor.py": [
        r"^  \[alert\] job export-42 finished$",
        r"^Completed: job export-42 is done after 4 checks$",
    ],
    "eternal_orchestration.py": [
        r"^generation \d+ is running; its history holds \d events, not the whole past$",
        r"^Terminated: maintenance window over$",
    ],
    "sub_orchestration.py": [
        r"^Completed:$",
        r"^  sensor: registered \(parent fleet\)$",
        r"^  camera: registered \(parent fleet\)$",
        r"^  toaster: failed \(.*ConnectionError: the toaster does not answer\)$",
    ],
    "bank_transfer.py": [
        r"^40 transfers finished; every audit saw a total of \[300\]$",
        r"^final total: 300; no balance below zero: True$",
    ],
    "retry.py": [
        r"data: fetched https://example\.test/data on attempt 3 \(3 attempts, 2 back-off timers\)$",
        r"missing: gave up: FileNotFoundError: .* \(1 attempts, 0 back-off timers\)$",
    ],
}


def test_every_example_script_is_checked() -> None:
    scripts = {path.name for path in EXAMPLES.glob("*.py")}
    assert scripts == set(EXPECTED)


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs(script: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DURABLE_STORAGE"}
    env["TMPDIR"] = str(tmp_path)  # the examples put their SQLite file in a temp dir
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    position = 0
    for pattern in EXPECTED[script]:
        for index in range(position, len(lines)):
            if re.search(pattern, lines[index]):
                position = index + 1
                break
        else:
            raise AssertionError(f"{script}: no line after #{position} matches {pattern!r}:\n"
                                 + done.stdout)
    assert list(tmp_path.rglob("*.db")), "the example should have used a SQLite file"
