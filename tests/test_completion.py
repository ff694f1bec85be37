"""Shell completion: typer's, with the image names of images.toml for every NAME argument."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from imagelock.cli import _complete_names, app
from tests.test_pin import LOCKED, write_lock

CONFIG = """\
[images.web]
image = "nginx"
tag = "1.26.2"

[images.worker]
image = "redis"
tag = "7.2"

[images.db]
image = "postgres"
tag = "16.4"
"""


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    (tmp_path / "images.toml").write_text(CONFIG)
    return tmp_path


def context(command: str, **params: object) -> typer.Context:
    group = get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    ctx = typer.Context(group.commands[command], info_name=command)
    ctx.params = dict(params)
    return ctx


def test_the_callback_offers_the_names_of_images_toml(directory: Path) -> None:
    config = directory / "images.toml"
    assert _complete_names(context("ref", config=config), "") == ["db", "web", "worker"]
    assert _complete_names(context("ref", config=config), "w") == ["web", "worker"]
    assert _complete_names(context("why", config=config), "wo") == ["worker"]
    assert _complete_names(context("ref", config=config), "x") == []
    assert _complete_names(context("update", config=config, names=["web"]), "") == ["db", "worker"]


def test_the_callback_falls_back_to_the_lock_and_never_fails(tmp_path: Path) -> None:
    config = tmp_path / "images.toml"
    assert _complete_names(context("ref", config=config), "") == []  # nothing there
    write_lock(tmp_path, {"web": LOCKED["web"], "cache": LOCKED["cache"]})
    assert _complete_names(context("ref", config=config), "") == ["cache", "web"]
    config.write_text("[images.web\n")  # broken images.toml: the lock still answers
    assert _complete_names(context("ref", config=config), "") == ["cache", "web"]
    (tmp_path / "images.lock").write_text("not a lock")
    assert _complete_names(context("ref", config=config), "") == []
    other = tmp_path / "other.lock"
    write_lock(tmp_path, {"py": LOCKED["py"]})
    (tmp_path / "images.lock").rename(other)
    assert _complete_names(context("ref", config=config, lockfile=other), "") == ["py"]


def complete(directory: Path, words: str) -> list[str]:
    """What bash completion gets from `imagelock`, through typer's environment variables."""
    index = len(words.split()) - (0 if words.endswith(" ") else 1)
    environment = {"_IMAGELOCK_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(index)}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        result = CliRunner().invoke(app, [], env=environment, prog_name="imagelock")
    assert result.exit_code == 0, result.output
    return result.stdout.split()


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("imagelock ref ", ["db", "web", "worker"]),
        ("imagelock ref w", ["web", "worker"]),
        ("imagelock why d", ["db"]),
        ("imagelock remove wor", ["worker"]),
        ("imagelock update web ", ["db", "worker"]),
        ("imagelock lock -P ", ["db", "web", "worker"]),
        ("imagelock audit w", ["web", "worker"]),
        ("imagelock mirror registry.example.com d", ["db"]),
        ("imagelock exp", ["export"]),
        ("imagelock export --format ", ["kustomize", "helm-values", "json"]),
    ],
)
def test_completion_through_the_environment(directory: Path, words: str, expected: list[str]) -> None:
    assert complete(directory, words) == expected


def test_completion_follows_dash_c(directory: Path) -> None:
    other = directory / "sub"
    other.mkdir()
    (other / "prod.toml").write_text('[images.api]\nimage = "nginx"\ntag = "1"\n')
    assert complete(directory, "imagelock ref -c sub/prod.toml ") == ["api"]


def test_the_installed_command_completes_and_shows_its_script(directory: Path) -> None:
    environment = {"_IMAGELOCK_COMPLETE": "complete_bash", "COMP_WORDS": "imagelock ref w", "COMP_CWORD": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "imagelock"],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["web", "worker"]
    script = CliRunner().invoke(app, ["--show-completion", "bash"], prog_name="imagelock")
    assert script.exit_code == 0
    assert "_IMAGELOCK_COMPLETE=complete_bash" in script.stdout
