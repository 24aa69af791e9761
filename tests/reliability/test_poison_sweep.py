"""The poison sweep: every bad value at every entry point, next to healthy work.

For each value of ``poison_app.BAD_VALUES`` (what storage cannot hold faithfully) and
``ODD_VALUES`` (what only looks dangerous), injected at each entry point (the client's start
input, event data, terminate reason and event name; an activity's input and result; an
orchestrator's output, custom status, sub-orchestration input and continue_as_new input; an
entity's state (``set_state``) and an entity operation's input),
while 50 healthy chains run on a real Host on each backend:

- a bad value is refused where it enters (a typed :class:`durable.DurableError`), or fails
  only its own instance with a message naming the problem, or (an envelope its class cannot
  rebuild) is carried as the JSON it is;
- an odd value round-trips unchanged and its instance completes;
- every healthy chain completes, nothing hot-loops (strikes stay bounded), nothing is left
  running.

The outcome table is printed (``pytest -s``), and the figures go in docs/reliability.md.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import durable as df
from durable.serialization import unencodable
from tests.e2e.conftest import FAST, wait_for_status
from tests.reliability import poison_app
from tests.reliability.poison_app import BAD_VALUES, ODD_VALUES, POISON_ENTRY_POINTS, make

Status = df.OrchestrationRuntimeStatus
HEALTHY = 50
CLUES = ("cannot be stored", "not JSON-serializable", "from_json", "not valid")


def expected_when_odd(where: str, name: str) -> Any:
    if where == "continue_as_new input":
        return "continued"
    if where == "custom status":
        return "status set"
    return make(name)


async def run_sweep(storage_url: str) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    table: list[str] = []
    async with df.Host(poison_app.app, storage=storage_url, **FAST) as host:
        client = host.client
        healthy = [await client.start_new("chain", f"healthy-{n:02d}", 4)
                   for n in range(HEALTHY)]
        planned: dict[str, tuple[str, str]] = {}
        for where in POISON_ENTRY_POINTS:
            for number, name in enumerate([*BAD_VALUES, *ODD_VALUES]):
                instance_id = f"poison-{where.replace(' ', '-')}-{number}"
                await client.start_new("poison_at", instance_id, [where, name])
                planned[instance_id] = (where, name)
        # The client's own entry points: refused at once, or accepted and carried intact.
        waiting = await client.start_new("wait_for_go", "client-events")
        for number, name in enumerate([*BAD_VALUES, *ODD_VALUES]):
            value = make(name)
            # An envelope its class cannot rebuild is valid JSON: accepted, it fails (or is
            # shown as JSON) only where it is decoded.
            unstorable = name in BAD_VALUES and name != "failing from_json"
            doomed = await client.start_new("wait_for_go", f"client-terminate-{number}")
            for entry, call, refusable in (
                ("start input", lambda v, n=number: client.start_new(
                    "echo_input", f"client-start-{n}", v), unstorable),
                ("event data", lambda v: client.raise_event(waiting, "noise", v), unstorable),
                # A name is a string: only what a string cannot hold is refused.
                ("event name", lambda v: client.raise_event(waiting, str(v), 1),
                 unencodable(str(value)) is not None),
                ("terminate reason", lambda v, d=doomed: client.terminate(d, v), unstorable),
            ):
                try:
                    await call(value)
                except df.DurableError as exc:
                    verdict = f"refused ({type(exc).__name__})"
                    assert refusable, (entry, name, exc)
                else:
                    verdict = "accepted"
                    assert not refusable, (entry, name)
                outcomes[verdict.split()[0]] += 1
                table.append(f"{entry:26} {name:42} {verdict}")
            if not unstorable:
                done = await wait_for_status(client, doomed, Status.Terminated)
                assert done.output == value, name
            else:
                await client.terminate(doomed, "a plain reason")
                await wait_for_status(client, doomed, Status.Terminated)
        for number, name in enumerate(ODD_VALUES, start=len(BAD_VALUES)):
            done = await client.wait_for_completion(f"client-start-{number}", timeout=30)
            assert done.runtime_status is Status.Completed and done.output == make(name), name
        fragile = list(BAD_VALUES).index("failing from_json")
        done = await client.wait_for_completion(f"client-start-{fragile}", timeout=30)
        assert done.runtime_status is Status.Failed and "from_json" in done.output
        # Healthy work is unaffected.
        for instance_id in healthy:
            done = await client.wait_for_completion(instance_id, timeout=60)
            assert done.runtime_status is Status.Completed, (instance_id, done.output)
            assert done.output == [0, 1, 2, 3]
        for instance_id, (where, name) in planned.items():
            done = await client.wait_for_completion(instance_id, timeout=60)
            status = done.runtime_status
            if name in ODD_VALUES:
                assert status is Status.Completed, (where, name, done.output)
                assert done.output == expected_when_odd(where, name), (where, name)
                if where == "custom status":
                    assert done.custom_status == make(name)
                verdict = "completed, value intact"
            elif status is Status.Failed:
                assert any(clue in str(done.output) for clue in CLUES), (where, name,
                                                                         done.output)
                verdict = "failed: " + next(c for c in CLUES if c in str(done.output))
            else:
                # Only an envelope its class cannot rebuild may complete: carried as JSON.
                assert name == "failing from_json" and status is Status.Completed, (
                    where, name, status, done.output)
                verdict = "completed, carried as JSON"
            outcomes[verdict.split(",")[0].split(":")[0]] += 1
            table.append(f"{where:26} {name:42} {verdict}")
        await client.terminate(waiting, "sweep over")
        await wait_for_status(client, waiting, Status.Terminated)
        assert host.worker is not None
        # No hot loop: at most one strike per poisoned instance (deterministic failures park
        # at once), never a retry storm.
        assert host.worker.stats["strikes"] <= len(planned), host.worker.stats
        running = await client.get_status_by(runtime_status=[Status.Running, Status.Pending])
        assert not running, [s.instance_id for s in running]
    print(f"\npoison sweep on {storage_url.split(':')[0]}: {dict(outcomes)}")
    print("\n".join(table))
    return outcomes


async def test_every_bad_value_at_every_entry_point(storage_url: str) -> None:
    outcomes = await run_sweep(storage_url)
    entry_points = len(POISON_ENTRY_POINTS) + 4
    assert sum(outcomes.values()) == entry_points * (len(BAD_VALUES) + len(ODD_VALUES))
