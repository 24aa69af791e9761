"""The architecture, checked: imports point down the layers, the core reads time only through
its clock, and the code is lint-clean and type-checks (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "durable"

# Lower number, lower layer; a module may import its own layer or any lower one. The most
# specific prefix decides. ``durable`` itself (the public façade) may import anything.
LAYERS: list[tuple[str, int]] = [
    ("durable.errors", 0), ("durable.history", 0), ("durable.status", 0),
    ("durable.serialization", 0), ("durable.ids", 0), ("durable.clock", 0),
    ("durable.versioning", 0), ("durable.http_model", 0),
    ("durable.schedules.ncrontab", 0),  # a pure schedule parser: DFApp checks schedules with it
    ("durable.orchestration", 1),
    ("durable.storage", 2),
    ("durable.app", 3), ("durable.history_view", 3), ("durable.telemetry", 3),
    ("durable.management_urls", 3),
    ("durable.worker", 4), ("durable.client", 4), ("durable.entity_client", 4),
    ("durable.waiting", 4),
    ("durable.host", 5), ("durable.testing", 5), ("durable.schedules", 5),
    ("durable.loader", 6), ("durable.http", 6), ("durable.cli", 6), ("durable.dashboard", 6),
    ("durable.azure", 6),
    # Telemetry's interface is low; its implementations (OTel, Prometheus, console) are
    # adapters the CLI wires in.
    ("durable.telemetry.console", 6), ("durable.telemetry.metrics", 6),
    ("durable.telemetry.tracing", 6), ("durable.telemetry.setup", 6),
    ("durable.telemetry.tracebacks", 3),
]


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for prefix, layer in LAYERS:
        matches = module == prefix or module.startswith(prefix + ".")
        if matches and (best is None or len(prefix) > best[0]):
            best = (len(prefix), layer)
    return best[1] if best else None


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every durable import, lazy ones too; TYPE_CHECKING blocks aside."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "durable":
                found.extend((node.lineno, f"durable.{a.name}") for a in node.names)
            elif node.module.startswith("durable."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names
                         if a.name.startswith("durable."))
    return found


def test_every_module_has_a_layer() -> None:
    missing = [module_name(p) for p in PACKAGE.rglob("*.py")
               if module_name(p) != "durable" and layer_of(module_name(p)) is None]
    assert not missing, f"give these modules a layer in LAYERS: {missing}"


def test_imports_point_down_the_layers() -> None:
    upward = []
    for path in PACKAGE.rglob("*.py"):
        source = module_name(path)
        own = layer_of(source)
        if own is None:
            continue
        for line, target in imports_of(path):
            other = layer_of(target)
            if other is not None and other > own:
                upward.append(f"{path.relative_to(REPO)}:{line} ({own}) imports {target} "
                              f"({other})")
    assert not upward, "imports pointing up the layers:\n" + "\n".join(upward)


def test_importing_durable_loads_no_adapter() -> None:
    probe = ("import sys, durable; print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('httpx', 'starlette', 'uvicorn', 'rich', 'click', 'psycopg') or "
             "m.startswith('durable.http.')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, cwd=REPO).stdout.strip()
    assert loaded == "[]", loaded


_CORE = ("orchestration", "worker", "storage", "client.py", "entity_client.py", "host.py")


def test_the_core_reads_time_only_through_its_clock() -> None:
    offenders = []
    for area in _CORE:
        for path in sorted((PACKAGE / area).rglob("*.py") if (PACKAGE / area).is_dir()
                           else [PACKAGE / area]):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"\btime\.time\(\)|datetime\.now\(|datetime\.utcnow\(", line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "use the injected Clock (durable/clock.py):\n" + "\n".join(offenders)


@pytest.mark.parametrize("tool", ["ruff", "mypy"])
def test_lint_and_types(tool: str) -> None:
    command = ([sys.executable, "-m", "ruff", "check", "durable", "tests", "benchmarks",
                "examples"] if tool == "ruff" else [sys.executable, "-m", "mypy", "durable"])
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
