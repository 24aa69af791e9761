"""Timer triggers that fire exactly once per occurrence across all workers of a task hub.

How: each timer function has one eternal orchestration, instance ``timer:<function name>``,
running the built-in orchestrator :data:`TIMER_ORCHESTRATOR`. An execution waits on a durable
timer until the next occurrence, runs the function through the built-in activity
:data:`TIMER_ACTIVITY`, and continues as new with the following occurrence. So the guarantees
are the orchestration engine's own:

- **One claim per occurrence.** Only the worker leasing the instance sees its timer fire, and
  the episode that schedules the run commits once (fenced by the lease), however many workers
  share the hub. Every worker "starts" the instance at start-up, but creation is atomic in
  storage: one creates it, the others find it running.
- **A crash between claiming and running** an occurrence loses nothing: the run is an activity
  task committed with the claim, so if the worker dies before or while running the function,
  another worker runs it when the lease expires. Like any activity, the function therefore runs
  *at least* once per occurrence (twice only if a worker dies after the function ran but before
  its completion was committed).
- **Missed occurrences** (no worker was up): when a worker comes back, the late timer fires at
  once. With ``use_monitor`` (Azure's default for schedules of a minute or more) the function
  runs once, with ``past_due`` set, however many occurrences were missed, as Azure's schedule
  monitor does; without it, an occurrence more than one period late is skipped. Then the next
  occurrence after now is scheduled.
- ``run_on_startup`` runs the function once each time a worker process starts (Azure runs it on
  every host start, scale-outs included), through the same instance.

A timer function can also be run by hand, outside its schedule (``POST
/admin/functions/<name>``, :mod:`durable.http.admin`): :func:`manual_request` builds what it
receives, :func:`call_timer_function` calls it.

Changing a schedule in code takes effect at the next start: a worker that finds the instance
running with another schedule tells it to reschedule. The instances are ordinary: they show in
the management API (custom status: next occurrence), and can be terminated (a worker's next
start brings the timer back).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from durable.app import FunctionInfo, FunctionKind
from durable.errors import InstanceAlreadyExistsError, TaskFailedError
from durable.schedules.ncrontab import CronSchedule, Schedule, parse_schedule

if TYPE_CHECKING:
    from durable.app import DFApp, Registry
    from durable.client import DurableOrchestrationClient
    from durable.orchestration.context import DurableOrchestrationContext

log = logging.getLogger("durable.timers")

TIMER_ORCHESTRATOR = "durable::TimerSchedule"
TIMER_ACTIVITY = "durable::TimerInvoke"
CONTROL_EVENT = "durable::TimerControl"
INSTANCE_PREFIX = "timer:"
# An occurrence handled later than this after its due time is reported as past due.
PAST_DUE_GRACE = timedelta(seconds=5)
_ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


class TimerRequest:
    """What a timer function receives (as ``azure.functions.TimerRequest``)."""

    __slots__ = ("_past_due", "_schedule", "_schedule_status")

    def __init__(
        self,
        *,
        past_due: bool = False,
        schedule_status: dict[str, Any] | None = None,
        schedule: dict[str, Any] | None = None,
    ) -> None:
        self._past_due = past_due
        self._schedule_status = dict(schedule_status or {})
        self._schedule = dict(schedule or {})

    @property
    def past_due(self) -> bool:
        """True when this run is later than its occurrence (after downtime, or a late worker)."""
        return self._past_due

    @property
    def schedule_status(self) -> dict[str, Any]:
        """``{"Last", "Next", "LastUpdated"}`` (ISO strings): the occurrence this run is for,
        the one after it, and when the run was scheduled."""
        return self._schedule_status

    @property
    def schedule(self) -> dict[str, Any]:
        return self._schedule

    def __repr__(self) -> str:
        return f"TimerRequest(past_due={self._past_due})"


@dataclass(frozen=True, slots=True)
class TimerSpec:
    """One timer function's schedule, as the decorator (or function.json) gave it."""

    function: str
    schedule: str
    run_on_startup: bool = False
    use_monitor: bool | None = None

    @property
    def instance_id(self) -> str:
        return INSTANCE_PREFIX + self.function

    def monitored(self) -> bool:
        """Azure's default: monitored unless the schedule fires more than once a minute."""
        if self.use_monitor is not None:
            return self.use_monitor
        return period_of(parse_schedule(self.schedule)) >= timedelta(minutes=1)

    def orchestration_input(self) -> dict[str, Any]:
        return {"function": self.function, "schedule": self.schedule,
                "useMonitor": self.monitored()}


def period_of(schedule: Schedule) -> timedelta:
    """The shortest gap between two occurrences, near a fixed reference time."""
    interval = getattr(schedule, "interval", None)
    if isinstance(interval, timedelta):
        return interval
    assert isinstance(schedule, CronSchedule)
    moment = datetime(2001, 1, 1, tzinfo=UTC)
    shortest: timedelta | None = None
    previous = schedule.next_after(moment)
    for _ in range(8):
        following = schedule.next_after(previous)
        gap = following - previous
        shortest = gap if shortest is None else min(shortest, gap)
        previous = following
    assert shortest is not None
    return shortest


def spec_of(info: FunctionInfo) -> TimerSpec:
    extra = info.extra
    return TimerSpec(
        function=info.name,
        schedule=str(extra["schedule"]),
        run_on_startup=bool(extra.get("run_on_startup")),
        use_monitor=extra.get("use_monitor"),
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_ISO)


def _parse_iso(text: str) -> datetime:
    return datetime.strptime(text, _ISO).replace(tzinfo=UTC)


# -- the built-in orchestrator (pure: replayed like any other) -------------------------------


def timer_orchestrator(context: DurableOrchestrationContext) -> Any:
    """Wait for the next occurrence (or a control event), run the function, continue as new."""
    spec: dict[str, Any] = context.get_input()
    schedule = parse_schedule(spec["schedule"])
    now = context.current_utc_datetime
    due = _parse_iso(spec["next"]) if spec.get("next") else schedule.next_after(now)
    last = spec.get("last")
    context.set_custom_status({"schedule": spec["schedule"], "next": _iso(due), "last": last})
    timer = context.create_timer(due)
    control = context.wait_for_external_event(CONTROL_EVENT)
    winner = yield context.task_any([timer, control])
    if winner is control:
        timer.cancel()
        command = control.result if isinstance(control.result, dict) else {}
        if command.get("action") == "reschedule" and isinstance(command.get("spec"), dict):
            fresh = {**command["spec"], "last": last}
            context.continue_as_new(fresh, preserve_unprocessed_events=True)
            return None
        # "run": run_on_startup. The pending occurrence stays where it was.
        yield from _invoke(context, spec, past_due=False, due=now, following=due)
        context.continue_as_new({**spec, "next": _iso(due)}, preserve_unprocessed_events=True)
        return None
    fired = context.current_utc_datetime
    following = schedule.next_after(due)
    missed = fired >= following
    if spec.get("useMonitor", True) or not missed:
        yield from _invoke(context, spec, past_due=fired - due > PAST_DUE_GRACE, due=due,
                           following=following)
    after = context.current_utc_datetime
    upcoming = schedule.next_after(max(after, due))
    context.continue_as_new({**spec, "next": _iso(upcoming), "last": _iso(due)},
                            preserve_unprocessed_events=True)
    return None


def _invoke(
    context: DurableOrchestrationContext,
    spec: dict[str, Any],
    *,
    past_due: bool,
    due: datetime,
    following: datetime,
) -> Any:
    """Run the function for the occurrence ``due`` (``Last`` in its schedule status)."""
    payload = {
        "function": spec["function"],
        "pastDue": past_due,
        "scheduleStatus": {"Last": _iso(due), "Next": _iso(following),
                           "LastUpdated": _iso(context.current_utc_datetime)},
    }
    try:
        yield context.call_activity(TIMER_ACTIVITY, payload)
    except TaskFailedError as exc:
        if not context.is_replaying:
            log.error("timer function '%s' failed: %s", spec["function"], exc)


# -- the service a Host runs ---------------------------------------------------------------


class TimerService:
    """The timer functions of one app: the built-ins they need, and their instances.

    :meth:`install` adds the built-in orchestrator to the registry and returns the built-in
    activity; :meth:`start` (run by each worker process at start-up) makes sure every timer's
    instance exists with the current schedule.
    """

    def __init__(self, app: DFApp) -> None:
        self.functions: dict[str, FunctionInfo] = {
            info.name: info for info in app.timer_functions
        }
        self.specs = [spec_of(info) for info in self.functions.values()]
        self.client: DurableOrchestrationClient | None = None

    def __bool__(self) -> bool:
        return bool(self.functions)

    def install(self, registry: Registry) -> dict[str, FunctionInfo]:
        """Register the built-in orchestrator; return the built-in activity (or nothing)."""
        if not self.functions:
            return {}
        registry.orchestrators[TIMER_ORCHESTRATOR] = FunctionInfo(
            fn=timer_orchestrator, kind=FunctionKind.ORCHESTRATOR,
            explicit_name=TIMER_ORCHESTRATOR, trigger_arg="context",
        )
        activity = FunctionInfo(
            fn=self._run, kind=FunctionKind.ACTIVITY, explicit_name=TIMER_ACTIVITY,
            trigger_arg="payload", is_async=True,
        )
        return {TIMER_ACTIVITY: activity}

    async def start(self, client: DurableOrchestrationClient) -> None:
        """Create each timer's instance if needed (atomic, so N workers make one), send it a
        new schedule if the code changed it, and ask for the start-up runs."""
        self.client = client
        for spec in self.specs:
            wanted = spec.orchestration_input()
            try:
                await client.start_new(TIMER_ORCHESTRATOR, spec.instance_id, wanted)
                log.info("timer '%s' scheduled (%s)", spec.function, spec.schedule)
            except InstanceAlreadyExistsError:
                status = await client.get_status(spec.instance_id)
                current = status.input_ if isinstance(status.input_, dict) else {}
                if {key: current.get(key) for key in wanted} != wanted:
                    log.info("timer '%s': schedule changed to %s", spec.function, spec.schedule)
                    await client.raise_event(spec.instance_id, CONTROL_EVENT,
                                             {"action": "reschedule", "spec": wanted})
            if spec.run_on_startup:
                await client.raise_event(spec.instance_id, CONTROL_EVENT, {"action": "run"})

    async def _run(self, payload: dict[str, Any]) -> None:
        """The built-in activity: call the timer function with its TimerRequest (and client)."""
        info = self.functions.get(payload.get("function", ""))
        if info is None:
            raise LookupError(f"No timer function named '{payload.get('function')}' here.")
        request = TimerRequest(
            past_due=bool(payload.get("pastDue")),
            schedule_status=payload.get("scheduleStatus"),
            schedule={"AdjustForDST": True},
        )
        await call_timer_function(info, request, self.client)


async def call_timer_function(
    info: FunctionInfo, request: TimerRequest, client: DurableOrchestrationClient | None
) -> None:
    """Call timer function ``info`` with ``request`` (and ``client``, if it asks for one):
    ``async def`` on the loop, a plain function in a thread."""
    kwargs: dict[str, Any] = {info.trigger_arg or "timer": request}
    if info.client_arg:
        kwargs[info.client_arg] = client
    if info.is_async:
        result = await info.fn(**kwargs)
    else:
        result = await asyncio.to_thread(info.fn, **kwargs)
    if asyncio.iscoroutine(result):
        await result


async def manual_request(info: FunctionInfo, client: DurableOrchestrationClient) -> TimerRequest:
    """What a timer function run by hand (the admin API) receives, as on Azure: not past due,
    and the schedule monitor's status when the timer is monitored (``Last``: the occurrence
    its schedule last ran for, ``Next``: the one it waits for), else an empty status."""
    spec = spec_of(info)
    status: dict[str, Any] = {}
    if spec.monitored():
        now = datetime.fromtimestamp(client.clock.now(), UTC)
        found = await client.get_status(spec.instance_id)
        custom = found.custom_status if isinstance(found.custom_status, dict) else {}
        following = custom.get("next") or _iso(parse_schedule(spec.schedule).next_after(now))
        status = {"Last": custom.get("last"), "Next": following, "LastUpdated": _iso(now)}
    return TimerRequest(past_due=False, schedule_status=status,
                        schedule={"AdjustForDST": True})
