"""Every ``[env NAME]`` an option's help promises is the variable that option reads.

Deployments set options through the environment (docs/scale-out.md, "Running in
production"); click derives a variable from the *parameter* name (``--host`` stored as
``listen_host`` reads ``DURABLE_RUN_LISTEN_HOST``), so a help text could name one the option
never reads. Each is set here to a value of the option's type and the command line parsed
(nothing runs): the option must say its value came from the environment.
"""

from __future__ import annotations

import os
import re

import click
import pytest
from click.core import ParameterSource

from durable.cli import main

_PROMISE = re.compile(r"\[env ([A-Z0-9_]+)")


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
        elif command is not None:
            found.append((*path, name))
    return found


def _sample(option: click.Option) -> str:
    if option.is_flag:
        return "1"
    kind = option.type
    if isinstance(kind, click.Choice):
        return str(kind.choices[-1])
    if isinstance(kind, click.IntRange):
        return str(kind.min if kind.min is not None else 1)
    if isinstance(kind, click.types.IntParamType):
        return "3"
    if isinstance(kind, click.types.FloatParamType):
        return "2.5"
    return "sample"


def _promises() -> list[tuple[tuple[str, ...], str, str]]:
    found = []
    for path in _commands(main):
        command = _resolve(path)
        for option in command.params:
            match = _PROMISE.search(getattr(option, "help", None) or "")
            if isinstance(option, click.Option) and match and option.name:
                found.append((path, option.name, match.group(1)))
    return found


def _resolve(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None
        command = found
    return command


@pytest.mark.parametrize(("path", "name", "variable"), _promises(),
                         ids=lambda v: "-".join(v) if isinstance(v, tuple) else str(v))
def test_the_variable_the_help_names_sets_the_option(
    path: tuple[str, ...], name: str, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for other in [n for n in os.environ if n.startswith("DURABLE_")]:
        monkeypatch.delenv(other)
    command = _resolve(path)
    [option] = [p for p in command.params if p.name == name]
    assert isinstance(option, click.Option)
    monkeypatch.setenv(variable, _sample(option))
    ctx = click.Context(main, info_name="durable", **main.context_settings)
    for step in path[:-1]:
        group = _resolve(path[: path.index(step) + 1])
        ctx = click.Context(group, info_name=step, parent=ctx)
    arguments = ["x" for p in command.params if isinstance(p, click.Argument) and p.required]
    parsed = command.make_context(path[-1], arguments, parent=ctx)
    assert parsed.get_parameter_source(name) is ParameterSource.ENVIRONMENT, variable


def test_the_deployment_variables_are_among_the_promises() -> None:
    promised = {variable for _, _, variable in _promises()}
    assert {"DURABLE_STORAGE", "DURABLE_RUN_HOST", "DURABLE_RUN_WORKER", "DURABLE_OTEL",
            "DURABLE_WORKER_ACTIVITIES", "DURABLE_WORKER_METRICS_PORT"} <= promised
