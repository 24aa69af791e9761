"""Entities and critical sections: concurrent transfers between account entities.

Run:  python examples/bank_transfer.py

Each transfer locks both accounts (``context.lock``), reads the balance, and moves the money
only if it is there. Locks are taken in one global order, so transfers in opposite directions
cannot deadlock, and while a transfer holds the locks no other orchestration's operation
reaches those accounts: the audits, which lock all three, always see the same total.
"""

import asyncio
import random
import tempfile
from pathlib import Path

import durable as df

app = df.DFApp()
ACCOUNTS = ["alice", "bob", "carol"]


@app.entity_trigger(context_name="context")
def Account(context: df.DurableEntityContext):
    balance = context.get_state(lambda: 100)
    if context.operation_name == "deposit":
        balance += context.get_input()
    elif context.operation_name == "withdraw":
        amount = context.get_input()
        if amount > balance:
            raise ValueError(f"cannot withdraw {amount} from {balance}")
        balance -= amount
    context.set_state(balance)
    context.set_result(balance)


@app.orchestration_trigger(context_name="context")
def transfer(context: df.DurableOrchestrationContext):
    source, target, amount = context.get_input()
    src, dst = df.EntityId("Account", source), df.EntityId("Account", target)
    with (yield context.lock([src, dst])):
        if (yield context.call_entity(src, "balance")) < amount:
            return "declined"
        yield context.call_entity(src, "withdraw", amount)
        yield context.call_entity(dst, "deposit", amount)
    return "done"


@app.orchestration_trigger(context_name="context")
def audit(context: df.DurableOrchestrationContext):
    accounts = [df.EntityId("Account", name) for name in ACCOUNTS]
    with (yield context.lock(accounts)):
        balances = yield context.task_all([context.call_entity(a, "balance") for a in accounts])
    return sum(balances)


async def main() -> None:
    storage = Path(tempfile.mkdtemp()) / "bank.db"
    rng = random.Random(42)
    async with df.Host(app, storage=f"sqlite:///{storage}") as host:
        started = []
        for index in range(40):
            source, target = rng.sample(ACCOUNTS, 2)
            started.append(await host.client.start_new(
                "transfer", client_input=[source, target, rng.randint(10, 90)]))
            if index % 10 == 0:
                started.append(await host.client.start_new("audit"))
        outcomes = [(await host.client.wait_for_completion(i, timeout=60)).output
                    for i in started]
        audits = sorted({o for o in outcomes if isinstance(o, int)})
        transfers = [o for o in outcomes if isinstance(o, str)]
        balances = [(await host.client.read_entity_state(df.EntityId("Account", name)))
                    .entity_state for name in ACCOUNTS]
        print(f"{len(transfers)} transfers finished; every audit saw a total of {audits}")
        print(f"final total: {sum(balances)}; no balance below zero: {min(balances) >= 0}")


if __name__ == "__main__":
    asyncio.run(main())
