"""The set-based commit (durable/storage/batched.py) leaves SQLite exactly as the row-by-row
commit does, batch after batch: both run on copies of one database file, on random batches
that mix fence failures, order checks, finishing instances, messages to running, finished,
missing and same-batch instances, new and existing entities, and activity tasks."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from durable.history import EventRaised, TimerFired
from durable.status import OrchestrationRuntimeStatus as Status
from durable.storage import batched, sql
from durable.storage.base import Message, NewTask, OrchestrationCommit
from durable.storage.sqlite.backend import SQLiteBackend, _executor

ORCHESTRATIONS = [f"o{i}" for i in range(8)]
ENTITIES = [f"@counter@k{i}" for i in range(4)]
NOW = 1_000_000.0
OWNER = "w"


async def _empty_database(path: Path) -> None:
    backend = SQLiteBackend(path)
    await backend.open()
    await backend.close()


def _seed(conn: sqlite3.Connection, rng: random.Random) -> None:
    for instance_id in ORCHESTRATIONS:
        status = rng.choice(["Running", "Running", "Pending", "Completed", "Failed"])
        conn.execute(
            "INSERT INTO instances (instance_id, name, execution_id, status, created_at,"
            " updated_at, revision, lease_owner, lease_expires_at) VALUES (?, 'o', ?, ?, 1, 1,"
            " ?, ?, 99)",
            (instance_id, f"e-{instance_id}", status, rng.randint(1, 3),
             rng.choice([OWNER, OWNER, "other"])))
    for instance_id in ENTITIES[:2]:  # the others do not exist yet
        conn.execute(
            "INSERT INTO instances (instance_id, name, execution_id, status, created_at,"
            " updated_at, revision, lease_owner, input) VALUES (?, 'counter', 'x', 'Running',"
            " 1, 1, 1, ?, '{}')", (instance_id, OWNER))
    for _ in range(40):
        target = rng.choice(ORCHESTRATIONS + ENTITIES[:2])
        conn.execute("INSERT INTO inbox (instance_id, visible_at, event) VALUES (?, ?, '{}')",
                     (target, rng.choice([0.0, NOW + 60])))
    for instance_id in ORCHESTRATIONS:
        for task_id in range(3):
            conn.execute(
                "INSERT INTO tasks (instance_id, execution_id, task_id, name, visible_at,"
                " lease_owner) VALUES (?, ?, ?, 'act', 0, ?)",
                (instance_id, f"e-{instance_id}", task_id, rng.choice([OWNER, None])))
    conn.commit()


def _batch(conn: sqlite3.Connection, rng: random.Random, round_: int) -> list[OrchestrationCommit]:
    fences = {row[0]: row[1:] for row in conn.execute(
        "SELECT instance_id, revision, lease_owner, execution_id, status FROM instances")}
    inbox: dict[str, list[int]] = {}
    for message_id, instance_id in conn.execute("SELECT id, instance_id FROM inbox"):
        inbox.setdefault(instance_id, []).append(message_id)
    chosen = rng.sample([i for i in ORCHESTRATIONS + ENTITIES if i in fences],
                        rng.randint(1, 6))
    commits = []
    for instance_id in sorted(chosen):
        revision, owner, execution_id, _ = fences[instance_id]
        entity = instance_id.startswith("@")
        if rng.random() < 0.15:
            revision += 1  # a lost lease: the fence fails
        mine = inbox.get(instance_id, [])
        status = Status.Running if entity else rng.choice(
            [Status.Running, Status.Running, Status.Completed, Status.Failed])
        # A running episode without output or custom status is the common case, written by
        # the lighter renew_instances_rows.
        quiet = status is Status.Running and rng.random() < 0.5
        commit = OrchestrationCommit(
            instance_id=instance_id, execution_id=execution_id, revision=revision,
            lease_owner=owner if rng.random() < 0.9 else "other", history=[],
            status=status,
            consumed_messages=rng.sample(mine, rng.randint(0, len(mine))),
            delivered_tasks=rng.sample([0, 1, 2], rng.randint(0, 2)),
            output=None if entity or quiet else f'"out {round_}"',
            custom_status=None if quiet else rng.choice([None, f'"status {round_}"']),
            entity_state=f'{{"round":{round_}}}' if entity else None,
        )
        commit.release = commit.status.is_terminal
        if not entity and rng.random() < 0.7:
            commit.history = [EventRaised(timestamp=NOW, name=f"r{round_}", input="1")]
        if not entity and rng.random() < 0.4:
            commit.new_tasks = [NewTask(10 + round_, "act", '"in"', claimed=rng.random() < 0.5)]
        for _ in range(rng.randint(0, 4)):
            target = rng.choice(ORCHESTRATIONS + ENTITIES + ["missing", instance_id])
            if target == instance_id and not entity:
                event: Any = TimerFired(timestamp=NOW, timer_id=round_, fire_at=NOW + 5)
                commit.messages.append(Message(target, event, execution_id, NOW + 5))
            else:
                event = EventRaised(timestamp=NOW, name="op", input=f'"{round_}"')
                commit.messages.append(Message(target, event, None))
        if mine and rng.random() < 0.2:
            commit.handed_up_to = max(mine) + 1  # refused if an older due message is left
        commits.append(commit)
    return commits


def _state(conn: sqlite3.Connection) -> dict[str, list[Any]]:
    """Every table but AUTOINCREMENT's bookkeeping."""
    return {
        "instances": conn.execute("SELECT * FROM instances ORDER BY instance_id").fetchall(),
        "history": conn.execute("SELECT * FROM history ORDER BY 1, 2").fetchall(),
        "inbox": conn.execute("SELECT * FROM inbox ORDER BY id").fetchall(),
        "tasks": conn.execute("SELECT * FROM tasks ORDER BY id").fetchall(),
    }


def _apply(conn: sqlite3.Connection, txn: sql.Txn) -> Any:
    conn.execute("BEGIN IMMEDIATE")
    outcomes = sql.run_sync(_executor(conn), txn)
    conn.execute("COMMIT")
    return outcomes


@pytest.mark.parametrize("seed", range(12))
async def test_a_plain_batch_ends_where_the_row_by_row_commit_ends(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new entity's execution ID is random; both sides must create the same row.
    monkeypatch.setattr(sql, "new_execution_id", lambda: "entity-execution")
    rng = random.Random(seed)
    await _empty_database(tmp_path / "row.db")
    row_by_row = sqlite3.connect(tmp_path / "row.db", isolation_level=None)
    _seed(row_by_row, rng)
    row_by_row.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the copy takes the whole database
    shutil.copy(tmp_path / "row.db", tmp_path / "set.db")
    set_based = sqlite3.connect(tmp_path / "set.db", isolation_level=None)
    applied = 0
    for round_ in range(15):
        commits = _batch(row_by_row, rng, round_)
        assert batched.plain(commits)
        encoded = [sql.encode_commit(commit) for commit in commits]
        expected = _apply(row_by_row, sql.commit_orchestrations(
            commits, encoded, 30.0, NOW + round_, True, True))
        actual = _apply(set_based, batched.commit_orchestrations(
            commits, encoded, 30.0, NOW + round_, True))
        assert _state(set_based) == _state(row_by_row), (seed, round_)
        stored = {row[0] for row in row_by_row.execute("SELECT id FROM inbox")}
        for want, got in zip(expected, actual, strict=True):
            assert (got.ok, got.revision, got.error, got.behind) == (
                want.ok, want.revision, want.error, want.behind)
            if want.message_ids is None:
                assert got.message_ids is None
                continue
            # A message to an instance that a later commit of the batch finished was
            # inserted and deleted again row by row; the set-based commit reports no id.
            assert got.message_ids == [i if i in stored else None for i in want.message_ids]
        applied += sum(1 for outcome in actual if outcome.ok)
    assert applied > 20  # the batches were not all refused


async def test_a_message_to_an_instance_the_batch_finishes_is_not_stored(
    tmp_path: Path,
) -> None:
    await _empty_database(tmp_path / "set.db")
    conn = sqlite3.connect(tmp_path / "set.db", isolation_level=None)
    conn.execute("INSERT INTO instances (instance_id, name, execution_id, status, created_at,"
                 " updated_at, revision, lease_owner) VALUES ('o', 'o', 'e', 'Running', 1, 1,"
                 " 1, 'w'), ('@counter@k', 'counter', 'x', 'Running', 1, 1, 1, 'w')")
    answer = Message("o", EventRaised(timestamp=NOW, name="answer", input="1"))
    other = Message("@counter@k", EventRaised(timestamp=NOW, name="op", input="1"))
    commits = [  # the entity's commit comes first: '@' sorts before letters
        OrchestrationCommit(instance_id="@counter@k", execution_id="x", revision=1,
                            lease_owner="w", history=[], status=Status.Running,
                            entity_state="{}", messages=[answer, other]),
        OrchestrationCommit(instance_id="o", execution_id="e", revision=1, lease_owner="w",
                            history=[], status=Status.Completed, output="1", release=True),
    ]
    encoded = [sql.encode_commit(commit) for commit in commits]
    outcomes = _apply(conn, batched.commit_orchestrations(commits, encoded, 30.0, NOW, True))
    assert [outcome.ok for outcome in outcomes] == [True, True]
    first = outcomes[0].message_ids
    assert first is not None and first[0] is None and first[1] is not None
    assert conn.execute("SELECT id, instance_id FROM inbox").fetchall() == [
        (first[1], "@counter@k")]
    # The id handed to the dropped message is not handed out again.
    later = [OrchestrationCommit(instance_id="@counter@k", execution_id="x", revision=2,
                                 lease_owner="w", history=[], status=Status.Running,
                                 entity_state="{}", messages=[other])]
    again = _apply(conn, batched.commit_orchestrations(
        later, [sql.encode_commit(later[0])], 30.0, NOW, True))
    assert again[0].message_ids is not None and again[0].message_ids[0] > first[1]


def test_a_batch_with_two_commits_for_one_instance_is_not_plain() -> None:
    commit = OrchestrationCommit(instance_id="o", execution_id="e", revision=1,
                                 lease_owner=OWNER, history=[], status=Status.Running)
    assert batched.plain([commit])
    assert not batched.plain([commit, commit])
