"""The ``durable`` command: ``run``, ``worker``, ``instances ...``, ``dashboard``, ``keys``,
``db migrate``.

Every option can also come from the environment (``DURABLE_STORAGE`` for ``--storage``, and
``DURABLE_<OPTION>`` for the others, as each option's help says).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from durable.cli.entities import entities
from durable.cli.instances import instances
from durable.errors import DurableError
from durable.host import Host, start_with_retry
from durable.loader import functions_project_path, load_app, storage_for
from durable.storage import default_url, open_backend
from durable.telemetry.console import Verbosity, configure_logging
from durable.telemetry.setup import Telemetry, close_tracer_provider
from durable.telemetry.setup import build as build_telemetry
from durable.worker.worker import WorkerOptions

log = logging.getLogger("durable.cli")


def _verbosity(verbose: bool, quiet: bool) -> Verbosity:
    if verbose and quiet:
        raise click.UsageError("Give -v or -q, not both.")
    return Verbosity.VERBOSE if verbose else Verbosity.QUIET if quiet else Verbosity.NORMAL


def _telemetry(verbosity: Verbosity, otel: bool, metrics: bool) -> Telemetry:
    configure_logging(verbosity)
    try:
        return build_telemetry(verbosity, otel=otel, metrics=metrics)
    except DurableError as exc:
        raise click.ClickException(str(exc)) from exc


def console_options(func):  # type: ignore[no-untyped-def]
    func = click.option("--otel", is_flag=True, envvar="DURABLE_OTEL",
                        help="OpenTelemetry spans (extra 'otel'; OTLP endpoint from "
                             "OTEL_EXPORTER_OTLP_ENDPOINT). [env DURABLE_OTEL]")(func)
    func = click.option("-q", "--quiet", is_flag=True,
                        help="Log failures only.")(func)
    return click.option("-v", "--verbose", is_flag=True,
                        help="Log every activity, timer and event, and debug lines.")(func)


async def wait_for_shutdown_signal() -> None:
    """Return on SIGINT or SIGTERM (the caller then shuts down gracefully)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _defaulted(parameter: str) -> bool:
    """True if the current command's ``parameter`` was given neither on the command line nor
    in the environment (``DURABLE_*``), so a project's own settings may fill it in."""
    source = click.get_current_context().get_parameter_source(parameter)
    return source in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def _functions_project(app_spec: str) -> Any:
    """The Azure Functions project ``app_spec`` names, read but not imported; None for a
    native app, or for a project that cannot be read (loading it reports why)."""
    path = functions_project_path(app_spec)
    if path is None:
        return None
    from durable.azure.project import read_project

    try:
        return read_project(path)
    except DurableError:
        return None


def _load(app_spec: str) -> tuple[Any, Path]:
    """Load the app; a user's error (their traceback included) becomes a clean CLI error."""
    try:
        return load_app(app_spec)
    except DurableError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"auto_envvar_prefix": "DURABLE"})
@click.version_option(package_name="durable-py")
def main() -> None:
    """Durable Functions for Python, without Azure."""


def storage_option(func):  # type: ignore[no-untyped-def]
    return click.option(
        "--storage",
        envvar="DURABLE_STORAGE",
        default=None,
        help="Storage URL: sqlite:///file.db or postgresql://... "
        "[env DURABLE_STORAGE; default: durable.db beside the app]",
    )(func)


@main.command()
@click.argument("app_spec", metavar="APP")
@storage_option
@click.option("--activities", "max_activities", type=int, default=16, show_default=True,
              envvar="DURABLE_WORKER_ACTIVITIES",
              help="Sync activities run at once (threads). [env DURABLE_WORKER_ACTIVITIES]")
@click.option("--lease-seconds", type=float, default=30.0, show_default=True,
              help="Lease length; a dead worker's work moves on after this. "
                   "[env DURABLE_WORKER_LEASE_SECONDS]")
@click.option("--poll-interval", type=float, default=1.0, show_default=True,
              help="Seconds between storage polls for work from other processes. "
                   "[env DURABLE_WORKER_POLL_INTERVAL]")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve Prometheus metrics (extra 'metrics') and the /healthz and /readyz "
                   "probes on this port; 0 picks a free one. [env DURABLE_WORKER_METRICS_PORT]")
@click.option("--metrics-host", default="127.0.0.1", show_default=True,
              help="Address of --metrics-port (0.0.0.0 for probes from other machines); "
                   "beyond loopback /metrics wants the system key, the probes stay "
                   "anonymous. [env DURABLE_WORKER_METRICS_HOST]")
@console_options
def worker(
    app_spec: str,
    storage: str | None,
    max_activities: int,
    lease_seconds: float,
    poll_interval: float,
    metrics_port: int | None,
    metrics_host: str,
    verbose: bool,
    quiet: bool,
    otel: bool,
) -> None:
    """Run a worker for APP (module:attribute, path/app.py or a Functions project folder),
    without an HTTP server."""
    telemetry = _telemetry(_verbosity(verbose, quiet), otel, metrics_port is not None)
    app, folder = _load(app_spec)
    url = storage_for(app, folder, storage)
    options = WorkerOptions(
        max_concurrent_activities=max_activities,
        lease_seconds=lease_seconds,
        poll_interval=poll_interval,
    )

    async def serve() -> None:
        host = Host(app, url, worker_options=options, observer=telemetry.observer)
        port = None
        if metrics_port is not None:
            port = await _operator_port(host, metrics_host, metrics_port)
        try:
            shutdown = asyncio.ensure_future(wait_for_shutdown_signal())
            # Storage may be unreachable at start-up: retry (logging why) until it answers,
            # unless told to stop first.
            starting = asyncio.ensure_future(start_with_retry(host))
            await asyncio.wait({shutdown, starting}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                return
            starting.result()
            assert host.worker is not None
            if port is not None and telemetry.metrics is not None:
                await _serve_metrics(port, host, telemetry.metrics, metrics_host)
            log.info("worker %s serving %s on %s", host.worker.id, app_spec,
                     getattr(host.backend, "url", url))
            await shutdown
            log.info("shutting down: finishing in-flight work and releasing leases")
        finally:
            await host.stop()
            if port is not None:
                await port.stop()  # after the host: probes answer while it finishes its work
            telemetry.close()
            if otel:
                close_tracer_provider()

    asyncio.run(serve())


async def _operator_port(host: Host, listen_host: str, port: int) -> Any:
    """The worker's own port, probes first (/metrics joins once storage is open)."""
    from durable.http.keys import is_loopback
    from durable.http.probes import OperatorPort, Probes
    from durable.http.server import bind, public_origin

    try:
        sock = bind(listen_host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {listen_host}:{port}: {exc}") from exc
    served = OperatorPort(Probes(host, detail=is_loopback(listen_host)), sock)
    await served.start()
    origin = public_origin(listen_host, sock.getsockname()[1])
    log.info("metrics and probes on %s (/metrics, /healthz, /readyz)", origin)
    return served


async def _serve_metrics(port: Any, host: Host, metrics: Any, listen_host: str) -> None:
    from durable.http.keys import is_loopback, load_keys
    from durable.http.probes import paths_app
    from durable.telemetry.metrics import MetricsEndpoint

    keys = await load_keys(host.backend, required=not is_loopback(listen_host))
    port.probes.app = paths_app({"/metrics": MetricsEndpoint(metrics, host.backend, keys)})


@main.command()
@click.argument("app_spec", metavar="APP")
@storage_option
@click.option("--host", "listen_host", default="127.0.0.1", show_default=True,
              envvar="DURABLE_RUN_HOST",
              help="Address to listen on. Beyond loopback (e.g. 0.0.0.0) the management API "
                   "and non-anonymous routes require a key. [env DURABLE_RUN_HOST]")
@click.option("--port", type=click.IntRange(0, 65535), default=7071, show_default=True,
              help="Port; 0 picks a free one. [env DURABLE_RUN_PORT]")
@click.option("--route-prefix", default=None,
              help="Path prefix of the app's HTTP routes [default: api, or host.json's "
                   "routePrefix]. [env DURABLE_RUN_ROUTE_PREFIX]")
@click.option("--max-request-body", type=click.IntRange(min=1), default=10 * 1024 * 1024,
              show_default=True,
              help="Largest request body in bytes (413 beyond). [env DURABLE_RUN_MAX_REQUEST_BODY]")
@click.option("--overridable-states", type=click.Choice(["NonRunningStates", "AnyState"]),
              default="NonRunningStates", show_default=True,
              help="Which existing instances a start with the same ID may replace "
                   "(docs/singletons.md). [env DURABLE_RUN_OVERRIDABLE_STATES]")
@click.option("--worker/--no-worker", "run_worker", default=True, show_default=True,
              envvar="DURABLE_RUN_WORKER",
              help="Run the app's worker in this process; --no-worker makes a front end that "
                   "leaves the work to `durable worker` processes. [env DURABLE_RUN_WORKER]")
@click.option("--dashboard/--no-dashboard", default=True, show_default=True,
              help="Serve the web dashboard at /dashboard. [env DURABLE_RUN_DASHBOARD]")
@click.option("--metrics", is_flag=True,
              help="Serve Prometheus metrics at /metrics (extra 'metrics'). "
                   "[env DURABLE_RUN_METRICS]")
@click.option("--cors", default=None,
              help="Origins that browsers may call from, comma-separated, or '*' [default: "
                   "local.settings.json's Host.CORS]. [env DURABLE_RUN_CORS]")
@click.option("--cors-credentials", is_flag=True,
              help="Allow cross-origin requests with credentials (cookies, Authorization) "
                   "[default: Host.CORSCredentials]. [env DURABLE_RUN_CORS_CREDENTIALS]")
@console_options
def run(
    app_spec: str,
    storage: str | None,
    listen_host: str,
    port: int,
    route_prefix: str | None,
    max_request_body: int,
    overridable_states: str,
    run_worker: bool,
    dashboard: bool,
    metrics: bool,
    cors: str | None,
    cors_credentials: bool,
    verbose: bool,
    quiet: bool,
    otel: bool,
) -> None:
    """Serve APP's HTTP routes, the management API and the dashboard, and run its worker,
    in one process.

    APP is module:attribute, path/app.py, or an Azure Functions project folder (host.json).
    A project's local.settings.json "Host" section gives the defaults of --port
    (LocalHttpPort), --host (LocalHttpAddress), --cors (CORS) and --cors-credentials
    (CORSCredentials), as it does for Core Tools' `func start`.
    """
    from durable.http.app import DEFAULT_ROUTE_PREFIX
    from durable.http.cors import CorsPolicy
    from durable.http.server import ServeOptions, serve
    from durable.status import OverridableStates

    telemetry = _telemetry(_verbosity(verbose, quiet), otel, metrics)
    # A Functions project's settings are read before its code is imported: local.settings.json's
    # Host section gives defaults for what the command line leaves unset, and WEBSITE_HOSTNAME
    # says where it will listen (both as Core Tools' func start).
    project = _functions_project(app_spec)
    if project is not None:
        local = project.host
        if _defaulted("port") and local.local_http_port is not None:
            port = local.local_http_port
        if _defaulted("listen_host") and local.local_http_address is not None:
            listen_host = local.local_http_address
        if _defaulted("cors"):
            cors = local.cors
        if _defaulted("cors_credentials"):
            cors_credentials = local.cors_credentials
        from durable.azure.project import offer_website_hostname

        offer_website_hostname(project, listen_host, port)
    app, folder = _load(app_spec)
    url = storage_for(app, folder, storage)
    if route_prefix is None:  # a Functions project's host.json may set it
        route_prefix = getattr(app, "route_prefix", DEFAULT_ROUTE_PREFIX)
    try:
        cors_policy = CorsPolicy.parse(cors or "", cors_credentials)
    except DurableError as exc:
        raise click.ClickException(str(exc)) from None
    options = ServeOptions(
        listen_host, port, route_prefix, max_request_body, access_log=verbose,
        overridable_states=OverridableStates(overridable_states), run_worker=run_worker,
        dashboard=dashboard, telemetry=telemetry, cors=cors_policy,
    )
    try:
        asyncio.run(serve(app, url, options, app_spec=app_spec,
                          shutdown=wait_for_shutdown_signal, echo=click.echo))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {listen_host}:{port}: {exc}") from exc
    finally:
        telemetry.close()
        if otel:
            close_tracer_provider()


@main.command("dashboard")
@storage_option
@click.option("--host", "listen_host", default="127.0.0.1", show_default=True,
              help="Address to listen on; beyond loopback a key is required.")
@click.option("--port", type=click.IntRange(0, 65535), default=7072, show_default=True,
              help="Port; 0 picks a free one.")
def dashboard_command(storage: str | None, listen_host: str, port: int) -> None:
    """Serve the web dashboard of a task hub on its own (no app, no worker)."""
    from durable.cli.dashboard import serve_dashboard

    configure_logging(Verbosity.NORMAL)
    url = storage or default_url(Path.cwd())
    try:
        asyncio.run(serve_dashboard(url, listen_host, port, wait_for_shutdown_signal,
                                    click.echo))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {listen_host}:{port}: {exc}") from exc
    except DurableError as exc:
        raise click.ClickException(str(exc)) from exc


main.add_command(instances)
main.add_command(entities)


@main.command()
@click.argument("app_spec", metavar="APP", required=False)
@storage_option
def keys(app_spec: str | None, storage: str | None) -> None:
    """Print the HTTP access keys of a task hub (generated and stored there if absent).

    The storage is --storage, else $DURABLE_STORAGE, else the SQLite file beside APP (or in the
    current directory). Keys set in the environment (DURABLE_FUNCTION_KEY, DURABLE_SYSTEM_KEY,
    DURABLE_MASTER_KEY) take precedence, as in `durable run`.
    """
    from durable.http.keys import KEY_NAMES, load_keys

    folder = _load(app_spec)[1] if app_spec else Path.cwd()
    url = storage or default_url(folder)

    async def read() -> list[str]:
        backend = open_backend(url)
        await backend.open()
        try:
            ring = await load_keys(backend, required=True)
        finally:
            await backend.close()
        sources = ring.sources or {}
        return [f"{name}: {getattr(ring, name)}  ({sources.get(name)})" for name in KEY_NAMES]

    for line in asyncio.run(read()):
        click.echo(line)


@main.group()
def db() -> None:
    """Storage maintenance."""


@db.command()
@storage_option
def migrate(storage: str | None) -> None:
    """Create or upgrade the schema (workers also do this when they start)."""
    url = storage or default_url(Path.cwd())

    async def run() -> str:
        backend = open_backend(url)
        try:
            await backend.open()
        except DurableError as exc:
            raise click.ClickException(str(exc)) from exc
        await backend.close()
        return str(getattr(backend, "url", url))

    click.echo(f"schema is up to date: {asyncio.run(run())}")
