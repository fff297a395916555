"""Every command and option a user can type is documented in the README."""

from __future__ import annotations

import click

from cli.main import cli
from tests.conftest import ROOT


def _commands(group: click.Group, prefix: str = "thresher") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append((f"{prefix} {name}", command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, f"{prefix} {name}"))
    return found


def test_every_command_and_option_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = []
    for name, command in _commands(cli):
        if f"`{name}" not in readme:
            missing.append(name)
        for param in command.params:
            if isinstance(param, click.Option):
                longest = max(param.opts, key=len)
                if f"`{longest}" not in readme and f", {longest}" not in readme:
                    missing.append(f"{name} {longest}")
    assert missing == []
