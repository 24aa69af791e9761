"""Record the replay corpus: run every example script, export every orchestration's history.

    python -m tests.testing.record_corpus

Each example script keeps its SQLite file in a temporary folder (``TMPDIR``); after it ran,
every orchestration instance in that file is written to ``tests/testing/corpus/`` as
``<example>--<orchestrator>--<n>.json`` in durable's history-file format. The test
``test_replay.py`` replays them against today's code: re-record only when a change to
an example is meant to break its old instances.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from durable.storage.base import InstanceQuery
from durable.storage.sqlite.backend import SQLiteBackend
from durable.testing import export_history

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).with_name("corpus")


async def export(db: Path, example: str, seen: Counter[str]) -> list[Path]:
    backend = SQLiteBackend(db)
    await backend.open()
    written = []
    try:
        token = None
        while True:
            page = await backend.query_instances(InstanceQuery(page_size=500,
                                                               continuation_token=token))
            for record in page.instances:
                events = await backend.get_history(record.instance_id)
                if not events:
                    continue
                key = f"{example}--{record.name}"
                seen[key] += 1
                if seen[key] > 3:  # a few of each shape is enough
                    continue
                document = export_history(record.instance_id, record.name, record.execution_id,
                                          record.status.value, events)
                document["instance"]["exportedAt"] = 0  # stable files
                path = CORPUS / f"{key}--{seen[key]}.json"
                path.write_text(json.dumps(document, indent=1) + "\n")
                written.append(path)
            token = page.continuation_token
            if token is None:
                return written
    finally:
        await backend.close()


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    for old in CORPUS.glob("*.json"):
        old.unlink()
    seen: Counter[str] = Counter()
    for script in sorted((REPO / "examples").glob("*.py")):
        with tempfile.TemporaryDirectory() as folder:
            env = {**os.environ, "TMPDIR": folder}
            env.pop("DURABLE_STORAGE", None)
            subprocess.run([sys.executable, str(script)], env=env, check=True, cwd=REPO,
                           stdout=subprocess.DEVNULL)
            for db in Path(folder).rglob("*.db"):
                for path in asyncio.run(export(db, script.stem, seen)):
                    print(path.relative_to(REPO))


if __name__ == "__main__":
    main()
