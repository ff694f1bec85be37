"""The command line itself: help, usage errors, suggestions, colour, Ctrl-C."""

from __future__ import annotations

import json
import os
import pty
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from imagelock.cli import app, app_for
from tests.conftest import Project, Registry
from tests.test_cli import imagelock


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


@pytest.mark.parametrize("group", [[], ["vulndb"]], ids=["imagelock", "vulndb"])
def test_a_group_alone_prints_its_help_and_exits_2(group: list[str]) -> None:
    result = CliRunner().invoke(app, group)
    assert result.exit_code == 2
    assert result.stdout.startswith(f"Usage: {' '.join(('imagelock', *group))} [OPTIONS] COMMAND [ARGS]...")
    assert result.stderr == ""


@pytest.mark.parametrize(
    "arguments",
    [
        *([*path, "--help"] for path in COMMANDS if path),
        ["lock", "--no-such-option"],
        ["vulndb"],
        ["lokc"],
        ["--version"],
    ],
    ids=lambda arguments: " ".join(arguments),
)
def test_the_program_a_run_builds_for_its_command_behaves_as_the_whole_one(arguments: list[str]) -> None:
    """A run builds only the command it names (``app_for``): its help, its usage errors and the rest are the same."""
    whole = CliRunner().invoke(app, arguments)
    only = CliRunner().invoke(app_for(arguments), arguments)
    assert (only.exit_code, only.stdout, only.stderr) == (whole.exit_code, whole.stdout, whole.stderr)
    if arguments[0] in ("lock", "vulndb"):
        assert typer.main.get_command(app_for(arguments)).commands.keys() == {arguments[0]}  # type: ignore[attr-defined]


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


# -- usage errors and suggestions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "line"),
    [
        (["lokc"], "error: imagelock: No such command 'lokc'. Did you mean 'lock'?"),
        (["vulndb", "dowload"], "error: imagelock vulndb: No such command 'dowload'. Did you mean 'download'?"),
        (["lock", "--upgrad"], "error: imagelock lock: No such option: --upgrad (Possible options: --upgrade, "
                               "--upgrade-image, --upgrade-package)"),
        (["why"], "error: imagelock why: Missing argument 'name'."),
        (["export"], "error: imagelock export: Missing option '--format' / '-f'. Choose from: kustomize, "
                     "helm-values, json"),
        (["export", "-f", "yaml"], "error: imagelock export: Invalid value for '--format' / '-f': 'yaml' is not one of "
                                   "'kustomize', 'helm-values', 'json'."),
    ],
)  # fmt: skip
def test_a_usage_error_is_one_line_exit_2(arguments: list[str], line: str) -> None:
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2
    assert result.stderr == line + "\n"
    assert result.stdout == ""


def test_a_usage_error_from_the_installed_command_is_one_line(tmp_path: Path) -> None:
    result = imagelock("update", "--dryrun", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "error: imagelock update: No such option: --dryrun (Possible options: --dry-run)\n"


@pytest.fixture
def two_locked(project: Project, registry: Registry) -> Project:
    project.write(
        f'[images.web]\nimage = "{registry.host}/library/nginx"\ntag = "1.25.4"\n'
        f'[images.db]\nimage = "{registry.host}/library/postgres"\ntag = "16.3"\n'
    )
    assert project.run("lock").exit_code == 0
    return project


@pytest.mark.parametrize(
    "arguments",
    [
        ["update", "wbe"], ["lock", "-P", "wbe"], ["why", "wbe"], ["remove", "wbe"], ["ref", "wbe"],
        ["audit", "wbe"], ["mirror", "127.0.0.1:9/mirror", "wbe"],
    ],
    ids=" ".join,
)  # fmt: skip
def test_a_mistyped_image_name_gets_a_suggestion(two_locked: Project, arguments: list[str]) -> None:
    config, lock = two_locked.config.read_bytes(), two_locked.lock.read_bytes()
    result = two_locked.run(*arguments)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "no image named 'wbe'" in result.stderr or "no locked image named 'wbe'" in result.stderr
    assert result.stderr.endswith("; did you mean 'web'?\n")
    assert (two_locked.config.read_bytes(), two_locked.lock.read_bytes()) == (config, lock)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("image: {{ images.wbe }}\n", "unknown image 'wbe' (images.lock has: db, web); did you mean 'web'?"),
        ("image: {{ images.web.digets }}\n", "image 'web' has no attribute 'digets' (it has image, tag, digest, "
                                             "platforms, ref); did you mean 'digest'?"),
    ],
)  # fmt: skip
def test_a_mistyped_name_in_a_template_gets_a_suggestion(two_locked: Project, template: str, message: str) -> None:
    path = two_locked.directory / "deploy.yaml.j2"
    path.write_text(template)
    result = two_locked.run("render", str(path))
    assert result.exit_code == 2
    assert result.stderr == f"error: {path}:1: {message}\n"
    assert result.stdout == ""


# -- colour ----------------------------------------------------------------------------------------


def on_a_terminal(arguments: list[str], cwd: Path, **environment: str) -> tuple[int, bytes]:
    """Run the command with stdin, stdout and stderr on a real pseudo-terminal; everything it wrote there."""
    controller, terminal = pty.openpty()
    run = subprocess.Popen(
        [sys.executable, "-m", "imagelock", *arguments],
        cwd=cwd, env={**os.environ, **environment}, stdin=terminal, stdout=terminal, stderr=terminal,
    )  # fmt: skip
    os.close(terminal)
    output = bytearray()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the run has ended and closed its terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    return run.wait(timeout=60), bytes(output)


def test_no_color_means_no_escape_sequence_at_all_on_a_terminal(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "images.toml").write_text(
        f'[images.web]\nimage = "{registry.host}/library/nginx"\nversion = "<1.26"\n'
        f'[images.db]\nimage = "{registry.host}/library/postgres"\ntag = "16.3"\n'
    )
    runs = [["lock", "--verbose"], ["why", "web"], ["outdated"], ["lock", "-h"], ["lokc"], ["update", "wbe"]]
    for arguments in runs:
        status, output = on_a_terminal(arguments, tmp_path, NO_COLOR="1")
        assert status in (0, 2), output
        assert b"\x1b" not in output, (arguments, output)
    (tmp_path / "images.lock").unlink()
    status, output = on_a_terminal(["lock"], tmp_path)  # without NO_COLOR, the same terminal shows styles
    assert status == 0
    assert b"\x1b[1m" in output


# -- Ctrl-C ----------------------------------------------------------------------------------------

INTERRUPT_ON_IMPORT = """
import os, signal, sys

class InterruptOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["INTERRUPT_ON_IMPORT"]:
            sys.meta_path.remove(self)
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C sends, at this very moment
        return None

sys.meta_path.insert(0, InterruptOnImport())
"""


@pytest.mark.parametrize(
    ("module", "arguments"),
    [
        ("typer", ["--version"]),  # importing the command line itself
        ("imagelock.audit.database", ["audit"]),  # a command's own import, before any work
        ("imagelock.resolver", ["lock"]),  # in the middle of a run
    ],
)
def test_ctrl_c_at_start_up_is_interrupted_exit_130(tmp_path: Path, module: str, arguments: list[str]) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(INTERRUPT_ON_IMPORT)
    (tmp_path / "images.toml").write_text('[images.web]\nimage = "127.0.0.1:9/web"\ntag = "1"\n')
    python_path = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "PYTHONPATH": python_path, "INTERRUPT_ON_IMPORT": module}
    result = subprocess.run(
        [sys.executable, "-m", "imagelock", *arguments],
        cwd=tmp_path, env=environment, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert (result.returncode, result.stderr, result.stdout) == (130, "interrupted\n", "")
    assert not (tmp_path / "images.lock").exists()


def test_ctrl_c_while_a_registry_does_not_answer_is_interrupted_exit_130(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, reads, never answers
        silent.settimeout(30)
        port = silent.getsockname()[1]
        (tmp_path / "images.toml").write_text(f'[images.web]\nimage = "127.0.0.1:{port}/web"\ntag = "1"\n')
        run = subprocess.Popen(
            [sys.executable, "-m", "imagelock", "lock", "--json"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        connection, _ = silent.accept()
        with connection:
            assert connection.recv(4096)  # the run has said hello (TLS first) and now waits for an answer
            run.send_signal(signal.SIGINT)
            stdout, stderr = run.communicate(timeout=30)
    assert (run.returncode, stderr) == (130, "interrupted\n")
    assert json.loads(stdout) == {"error": {"message": "interrupted", "exit": 130}}
    assert not (tmp_path / "images.lock").exists()
