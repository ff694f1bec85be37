"""A lock with git merge conflicts, made by real `git merge`s of branches that each ran the real `lock`."""

from __future__ import annotations

import os
import subprocess
import tomllib
import uuid
from pathlib import Path

import pytest

from tests.conftest import Project, Registry

GIT_ENVIRONMENT = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def git(directory: Path, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *arguments],
        cwd=directory,
        env={**os.environ, **GIT_ENVIRONMENT},
        capture_output=True,
        text=True,
        check=check,
    )


def tags(project: Project) -> dict[str, str]:
    images: dict[str, dict[str, str]] = tomllib.loads(project.lock.read_text())["images"]
    return {name: entry["tag"] for name, entry in images.items()}


def entry(registry: Registry, name: str, repository: str) -> str:
    return f'[images.{name}]\nimage = "{registry.host}/{repository}"\nversion = ">=1"\n\n'


def lock(project: Project, *arguments: str) -> None:
    result = project.run(*arguments)
    assert result.exit_code == 0, result.stderr


@pytest.fixture
def conflicted(project: Project, empty_registry: Registry, request: pytest.FixtureRequest) -> dict[str, str]:
    """A project whose images.lock has git conflict markers, after two branches each added an image (and
    each moved ``web`` to a different tag); the conflict style is the test's parameter, else git's default.

    Returns the repository of each image.
    """
    style = getattr(request, "param", "merge")
    registry = empty_registry
    prefix = f"merge/{uuid.uuid4().hex[:12]}"  # this test's own repositories in the session's registry
    repositories = {name: f"{prefix}-{name}" for name in ("api", "web", "worker", "zcache")}
    for repository in repositories.values():
        registry.seeder.push_image(repository, "1.0.0")
    directory = project.directory
    git(directory, "init", "-q", "-b", "main")
    git(directory, "config", "merge.conflictStyle", style)
    project.write(entry(registry, "api", repositories["api"]) + entry(registry, "web", repositories["web"]))
    lock(project, "lock")
    git(directory, "add", ".")
    git(directory, "commit", "-q", "-m", "api and web")

    git(directory, "checkout", "-q", "-b", "left")
    project.write(entry(registry, "worker", repositories["worker"]) + project.config.read_text())
    lock(project, "lock")
    registry.seeder.push_image(repositories["web"], "1.1.0")
    lock(project, "update", "web")
    git(directory, "commit", "-q", "-am", "worker; web 1.1.0")

    git(directory, "checkout", "-q", "main")
    git(directory, "checkout", "-q", "-b", "right")
    project.write(project.config.read_text() + entry(registry, "zcache", repositories["zcache"]))
    lock(project, "lock")
    registry.seeder.push_image(repositories["web"], "1.2.0")
    lock(project, "update", "web")
    git(directory, "commit", "-q", "-am", "zcache; web 1.2.0")

    merge = git(directory, "merge", "left", check=False)
    assert merge.returncode == 1, merge.stdout  # images.toml merges cleanly, images.lock conflicts
    assert "CONFLICT (content): Merge conflict in images.lock" in merge.stdout
    assert "<<<<<<<" in project.lock.read_text()
    assert ("|||||||" in project.lock.read_text()) == (style == "diff3")
    for repository in repositories.values():  # newer tags everywhere: what is kept must not move
        registry.seeder.push_image(repository, "1.3.0")
    return repositories


@pytest.mark.parametrize("conflicted", ["merge", "diff3"], indirect=True)
def test_lock_merges_a_conflicted_lock_and_resolves_only_what_the_sides_dispute(
    project: Project, conflicted: dict[str, str]
) -> None:
    result = project.run("lock")

    assert result.exit_code == 0, result.stderr
    assert "merged the git conflict in" in result.stderr
    assert "(entries the two sides lock differently: web)" in result.stderr
    assert result.stdout == "web  1.2.0 → 1.3.0\n"  # against our side (the branch merged into)
    assert "<<<<<<<" not in project.lock.read_text()
    # api: both sides agree; worker and zcache: one side each; web: 1.1.0 against 1.2.0, resolved again
    assert tags(project) == {"api": "1.0.0", "worker": "1.0.0", "zcache": "1.0.0", "web": "1.3.0"}
    assert project.run("check").exit_code == 0


def test_lock_dry_run_merges_in_memory_and_writes_nothing(project: Project, conflicted: dict[str, str]) -> None:
    before = project.lock.read_bytes()
    result = project.run("lock", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "merged the git conflict in" in result.stderr
    assert project.lock.read_bytes() == before


@pytest.mark.parametrize(
    "arguments",
    [("check",), ("ref", "web"), ("export", "--format", "json"), ("outdated",), ("why", "web"), ("remove", "web")],
)
def test_other_commands_refuse_a_conflicted_lock_and_say_to_run_lock(
    project: Project, conflicted: dict[str, str], arguments: tuple[str, ...]
) -> None:
    before = project.lock.read_bytes(), project.config.read_bytes()
    result = project.run(*arguments)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {project.lock}: has unresolved git merge conflicts; run 'imagelock lock' to merge them"
    ]
    assert "delete" not in result.stderr
    assert (project.lock.read_bytes(), project.config.read_bytes()) == before


def test_pin_and_render_refuse_a_conflicted_lock(project: Project, conflicted: dict[str, str]) -> None:
    deploy = project.directory / "deploy.yaml"
    deploy.write_text("image: nginx:1.25\n")
    template = project.directory / "deploy.yaml.j2"
    template.write_text("image: {{ images.web.reference }}\n")
    for arguments in (("pin", str(deploy)), ("render", str(template))):
        result = project.run(*arguments)
        assert result.exit_code == 2
        assert "run 'imagelock lock' to merge them" in result.stderr
    assert deploy.read_text() == "image: nginx:1.25\n"
