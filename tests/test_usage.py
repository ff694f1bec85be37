"""The command line itself: help, usage errors, suggestions, colour, Ctrl-C."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from imagelock.cli import app
from tests.conftest import Project, Registry


def command_paths(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command of the program, its groups and their subcommands included."""
    yield path
    if isinstance(command, TyperGroup):
        for name, subcommand in command.commands.items():
            yield from command_paths(subcommand, (*path, name))


COMMANDS = list(command_paths(typer.main.get_command(app)))


@pytest.mark.parametrize("help_option", ["--help", "-h"])
@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "imagelock")
def test_every_command_has_help(path: tuple[str, ...], help_option: str) -> None:
    result = CliRunner().invoke(app, [*path, help_option])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: {' '.join(('imagelock', *path))} ")
    assert result.stderr == ""


def test_the_walk_sees_every_command() -> None:
    assert {"pin", "ref", "render", "export", "lock", "vulndb", "vulndb download"} <= {" ".join(p) for p in COMMANDS}


def test_upgrade_package_is_pip_compiles_spelling_of_upgrade_image(project: Project, registry: Registry) -> None:
    base = "usage/upgrade-package"
    for name in ("web", "api"):
        for tag in ("1.0.0", "1.1.0"):
            registry.seeder.push_image(f"{base}-{name}", tag)
    project.write(
        "".join(
            f'[images.{name}]\nimage = "{registry.host}/{base}-{name}"\nversion = ">=1"\n' for name in ("web", "api")
        )
    )
    assert project.run("lock").exit_code == 0
    for name in ("web", "api"):
        registry.seeder.push_image(f"{base}-{name}", "1.2.0")

    result = project.run("lock", "--upgrade-package", "web")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "web  1.1.0 → 1.2.0\n"
    assert project.run("lock", "--upgrade-image", "api").stdout == "api  1.1.0 → 1.2.0\n"
