"""examples/deploy/ (docs/scale-out.md, "Running in production") checked against durable.

The manifests and units cannot be deployed here, so what can go wrong in them is checked with
the real pieces they name: each YAML file parses and its objects refer to each other (labels,
ports, the Secret's keys, the scaled Deployment); every ``durable`` command line parses with
durable's own CLI; every ``DURABLE_*`` variable is one durable reads, shown by reading it
(the CLI's option takes its value, a key ring loads the key); the scaler's query names metrics
durable exports; and systemd itself verifies the unit files when ``systemd-analyze`` exists.

PyYAML is not a dependency of its own: it comes with schemathesis (the ``test`` extra).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.core import ParameterSource

from durable.cli import main as cli_main

yaml = pytest.importorskip("yaml", reason="PyYAML (installed with schemathesis, extra 'test')")

DEPLOY = Path(__file__).resolve().parents[1] / "examples" / "deploy"
KUBE = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"


def _documents() -> dict[str, list[dict[str, Any]]]:
    return {path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
            for path in sorted(KUBE.glob("*.yaml"))}


def _objects(kind: str) -> list[dict[str, Any]]:
    return [doc for docs in _documents().values() for doc in docs if doc["kind"] == kind]


def _containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for deployment in _objects("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            yield deployment, container


# -- the durable command lines and variables ----------------------------------------------------


def _parse_command(argv: list[str], environ: dict[str, str],
                   monkeypatch: pytest.MonkeyPatch) -> click.Context:
    """``durable ARGV`` parsed by durable's CLI (nothing runs) with exactly ``environ``'s
    DURABLE_* variables set; the subcommand's context."""
    import os

    for name in [n for n in os.environ if n.startswith("DURABLE_")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    group = click.Context(cli_main, info_name="durable", **cli_main.context_settings)
    command = cli_main.get_command(group, argv[0])
    assert command is not None, f"durable has no command {argv[0]!r}"
    return command.make_context(argv[0], list(argv[1:]), parent=group)


KEYS = {f"DURABLE_{name}_KEY" for name in ("FUNCTION", "SYSTEM", "MASTER")}


def _read_by(ctx: click.Context, environ: dict[str, str]) -> set[str]:
    """The DURABLE_* variables of ``environ`` that set an option of ``ctx``'s command (each
    checked to have given the option its value)."""
    read = set()
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name is None:
            continue
        if ctx.get_parameter_source(param.name) is not ParameterSource.ENVIRONMENT:
            continue
        [name] = [n for n in environ if _names(ctx, param, n)]
        assert ctx.params[param.name] == param.type_cast_value(ctx, environ[name]), name
        read.add(name)
    return read


def _names(ctx: click.Context, option: click.Option, name: str) -> bool:
    """Whether ``name`` is a variable ``option`` reads."""
    if option.envvar:
        return name in ([option.envvar] if isinstance(option.envvar, str) else option.envvar)
    return name == f"{ctx.auto_envvar_prefix}_{(option.name or '').upper()}"


def _check_every_variable_is_read(environ: dict[str, str], read: set[str]) -> None:
    """Every DURABLE_* variable set is read: by an option (``read``), or by the key ring
    (test_the_key_variables_are_the_ones_durable_reads)."""
    unread = {n for n in environ if n.startswith("DURABLE_")} - read - KEYS
    assert not unread, f"no durable command reads {sorted(unread)}"


def _kube_environment(container: dict[str, Any]) -> dict[str, str]:
    secret = _objects("Secret")[0]["stringData"]
    environ = {}
    for item in container.get("env", []):
        if "value" in item:
            environ[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == _objects("Secret")[0]["metadata"]["name"], item
            assert ref["key"] in secret, f"the Secret has no key {ref['key']!r}"
            environ[item["name"]] = secret[ref["key"]]
    return environ


def test_every_kubernetes_command_line_and_variable_is_one_durable_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = set()
    for _, container in _containers():
        assert container["command"] == ["durable"]
        environ = _kube_environment(container)
        ctx = _parse_command(container["args"], environ, monkeypatch)
        seen.add(ctx.info_name)
        _check_every_variable_is_read(environ, _read_by(ctx, environ))
        assert ctx.params["storage"] == environ["DURABLE_STORAGE"]
        if ctx.info_name == "run":
            assert ctx.params["run_worker"] is False and ctx.params["listen_host"] == "0.0.0.0"
    assert seen == {"worker", "run"}


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file's sections and their (possibly repeated) settings."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None and "=" in line, (path.name, line)
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _env_file(path: Path) -> dict[str, str]:
    environ = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), line
            environ[name] = value
    return environ


def test_every_systemd_command_line_and_variable_is_one_durable_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    units = sorted(SYSTEMD.glob("*.service"))
    assert {u.name for u in units} == {"durable-worker@.service", "durable-frontend.service"}
    shared: dict[str, str] = {}
    read: set[str] = set()
    for path in units:
        service = _unit(path)["Service"]
        [env_path] = service["EnvironmentFile"]
        environ = _env_file(SYSTEMD / Path(env_path).name)
        shared.update(environ)
        [exec_start] = service["ExecStart"]
        argv = shlex.split(exec_start.replace("%i", "9464"))
        assert argv[0].endswith("/bin/durable"), argv[0]
        ctx = _parse_command(argv[1:], environ, monkeypatch)
        read |= _read_by(ctx, environ)
        assert ctx.params["storage"] == environ["DURABLE_STORAGE"]
        assert int(service["TimeoutStopSec"][0]) > 30  # the graceful stop's own limits
        if ctx.info_name == "worker":
            assert ctx.params["metrics_port"] == 9464
            assert ctx.params["max_activities"] == int(environ["DURABLE_WORKER_ACTIVITIES"])
        else:
            assert ctx.params["run_worker"] is False
    _check_every_variable_is_read(shared, read)  # one file serves both units


async def test_the_key_variables_are_the_ones_durable_reads() -> None:
    from durable.http.keys import load_keys
    from durable.storage import open_backend

    environments = [_env_file(SYSTEMD / "orders.env")]
    environments += [_kube_environment(c) for _, c in _containers()]
    backend = open_backend("memory://")
    await backend.open()
    try:
        for environ in environments:
            keys = await load_keys(backend, required=True, environ=environ)
            for name in ("system", "master"):
                variable = f"DURABLE_{name.upper()}_KEY"
                if variable in environ:
                    assert getattr(keys, name) == environ[variable]
                    assert keys.sources[name] == "environment"
    finally:
        await backend.close()


# -- the manifests fit together -----------------------------------------------------------------


def test_every_manifest_parses_and_names_what_it_is() -> None:
    documents = _documents()
    assert set(documents) == {"kustomization.yaml", "secret.yaml", "worker.yaml",
                              "frontend.yaml", "worker-scaler.yaml"}
    for name, docs in documents.items():
        assert docs, name
        for doc in docs:
            assert doc["apiVersion"] and doc["kind"], name
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"], name
    [kustomization] = documents["kustomization.yaml"]
    # Everything but the scaler, which needs KEDA's resource definitions.
    assert sorted(kustomization["resources"]) == ["frontend.yaml", "secret.yaml", "worker.yaml"]


def test_selectors_ports_and_probes_refer_to_what_exists() -> None:
    pods = {}
    for deployment in _objects("Deployment"):
        spec = deployment["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        [container] = spec["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe"):
            if probe in container:
                assert container[probe]["httpGet"]["port"] in ports, (probe, ports)
        assert spec["template"]["spec"]["terminationGracePeriodSeconds"] > 30
        pods[deployment["metadata"]["name"]] = (labels, ports)
    for service in _objects("Service"):
        matched = [ports for labels, ports in pods.values()
                   if service["spec"]["selector"].items() <= labels.items()]
        assert len(matched) == 1, service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in matched[0]
    for budget in _objects("PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"]
        assert any(selector.items() <= labels.items() for labels, _ in pods.values())
    [scaled] = _objects("ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] in pods


def test_the_scaler_queries_metrics_durable_exports() -> None:
    pytest.importorskip("prometheus_client")
    from durable.telemetry.metrics import MetricsObserver

    exported = {metric.name for metric in MetricsObserver().registry.collect()}
    [scaled] = _objects("ScaledObject")
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    named = set(re.findall(r"\bdurable_\w+", trigger["metadata"]["query"]))
    assert named == {"durable_orchestration_backlog", "durable_activity_backlog"}
    assert named <= exported, named - exported
    assert "sum(" not in trigger["metadata"]["query"]  # each process reports the whole hub
    float(trigger["metadata"]["threshold"])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
def test_systemd_verifies_the_units(tmp_path: Path) -> None:
    """With the unit's durable replaced by this checkout's, so that systemd can check the
    executable too."""
    durable = Path(sys.executable).parent / "durable"
    assert durable.exists()
    names = []
    for path in SYSTEMD.glob("*.service"):
        name = path.name.replace("@.service", "@9464.service")
        text = re.sub(r"/\S*/bin/durable", str(durable), path.read_text())
        (tmp_path / name).write_text(text)
        names.append(str(tmp_path / name))
    done = subprocess.run(["systemd-analyze", "verify", *names], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
