"""docs/testing.md, run as written: its code blocks become a project that pytest runs.

Each block after ``<!-- file: NAME -->`` is written to NAME in a temporary folder; the
``<!-- run -->`` shell block (``durable instances export-history``) runs there against a SQLite
store holding the instances it names; then pytest runs that folder in a subprocess (its own
pytest.ini, conftest.py and the durable pytest plugin, as a user's project would).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import durable as df
from durable.testing import replay, run_app, run_until_done

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "testing.md"
BLOCK = re.compile(r"<!-- (file: (?P<name>\S+)|run) -->\n```\w*\n(?P<body>.*?)```", re.S)


def blocks() -> tuple[dict[str, str], list[str]]:
    files: dict[str, str] = {}
    commands: list[str] = []
    for match in BLOCK.finditer(DOC.read_text()):
        if match["name"]:
            files[match["name"]] = files.get(match["name"], "") + match["body"]
        else:
            commands.append(match["body"].strip())
    return files, commands


def load(path: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("docs_function_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_examples_of_docs_testing_md_run(tmp_path: Path) -> None:
    files, commands = blocks()
    assert {"function_app.py", "conftest.py", "pytest.ini"} <= set(files)
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    app = load(tmp_path / "function_app.py").app

    # The store the export command reads: the two instances it names, run to their end.
    async with run_app(app, storage=f"sqlite:///{tmp_path / 'app.db'}") as host:
        for name, instance_id, data in [("hello_sequence", "hello-1", ["Tokyo", "Seattle"]),
                                        ("approval", "approval-1", None)]:
            await host.client.start_new(name, instance_id, data)
            await run_until_done(host, instance_id)

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("DURABLE_STORAGE", None)
    [command] = commands
    subprocess.run(command, shell=True, cwd=tmp_path, env=env, check=True,
                   capture_output=True, text=True)
    assert sorted(p.name for p in (tmp_path / "histories").iterdir()) == [
        "approval-1.json", "hello-1.json"]

    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    tests = sum(body.count("\ndef test_") + body.count("\nasync def test_")
                for name, body in files.items() if name.startswith("test_"))
    assert result.returncode == 0 and f"{tests} passed" in result.stdout, (
        result.stdout[-4000:] + result.stderr[-2000:])

    # The sample report ("Had the code renamed say_hello to greet") is what replay prints.
    def hello_sequence(context: df.DurableOrchestrationContext):
        greetings = []
        for city in context.get_input():
            greetings.append((yield context.call_activity("greet", city)))
        return greetings

    exported = tmp_path / "histories" / "hello-1.json"
    report = str(replay({"hello_sequence": hello_sequence}, [exported]))
    report = report.replace(f"{tmp_path}{os.sep}", "")
    sample = DOC.read_text().split("the report would read:\n\n", 1)[1].split("\n\n", 1)[0]
    assert " ".join(sample.split()) == " ".join(report.split()), report

