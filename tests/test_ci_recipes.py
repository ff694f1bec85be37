"""docs/ci.md and .pre-commit-hooks.yaml: every recipe loads, has the structure its CI expects, and every
``imagelock …`` command line in it is one the CLI accepts."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from ruamel.yaml import YAML
from typer.main import get_command

from imagelock.cli import app
from imagelock.config import load_config
from imagelock.lockfile import Lock, LockedImage

ROOT = Path(__file__).parent.parent
CI_DOC = ROOT / "docs" / "ci.md"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
GITLAB_GLOBALS = {"default", "stages", "variables", "include", "workflow", "image", "services", "cache"}
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&"}


def yaml_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def load(text: str) -> Any:
    return YAML(typ="safe").load(text)


def imagelock_commands(script: str) -> Iterator[list[str]]:
    """The argument lists of every ``imagelock`` command in a shell script, up to the first shell operator."""
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for word in [*lexer, ";"]:
            if word not in SHELL_OPERATORS:
                command.append(word)
                continue
            if command and command[0] == "imagelock":  # a command, not an argument (pipx install imagelock)
                yield command[1:]
            command = []


def accepted(arguments: list[str]) -> None:
    """Parse the arguments as the CLI would, without running the command; fail the test if it would not."""
    group = get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    assert arguments, "imagelock without a command"
    name, rest = arguments[0], arguments[1:]
    if name not in group.commands:
        pytest.fail(f"imagelock {name}: no such command")
    command = group.commands[name]
    try:
        command.make_context(name, list(rest))
    except Exception as error:
        pytest.fail(f"imagelock {shlex.join(arguments)}: {error}")


def github_scripts(workflow: dict[str, Any]) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]


def gitlab_scripts(pipeline: dict[str, Any]) -> list[str]:
    scripts = [line for job in gitlab_jobs(pipeline).values() for line in job["script"]]
    default = pipeline.get("default", {})
    return scripts + list(default.get("before_script", [])) + list(pipeline.get("before_script", []))


def gitlab_jobs(pipeline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: job for name, job in pipeline.items() if name not in GITLAB_GLOBALS and not name.startswith(".")}


def classify() -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {"github": [], "gitlab": [], "pre-commit": []}
    for block in yaml_blocks(CI_DOC.read_text()):
        document = load(block)
        assert isinstance(document, dict), block
        kind = "github" if "jobs" in document else "pre-commit" if "repos" in document else "gitlab"
        kinds[kind].append(document)
    return kinds


def test_every_yaml_block_loads_and_has_its_structure() -> None:
    kinds = classify()
    assert len(kinds["github"]) == 3
    assert len(kinds["gitlab"]) == 1
    assert len(kinds["pre-commit"]) == 2
    for workflow in kinds["github"]:
        assert set(workflow) >= {"name", "on", "jobs"}  # YAML 1.2: `on` is a string, as GitHub reads it
        assert workflow["on"]
        for job in workflow["jobs"].values():
            assert isinstance(job["runs-on"], str)
            assert isinstance(job["steps"], list)
            assert job["steps"]
            for step in job["steps"]:
                assert ("uses" in step) != ("run" in step), step
    for pipeline in kinds["gitlab"]:
        jobs = gitlab_jobs(pipeline)
        assert len(jobs) == 4
        for job in jobs.values():
            assert isinstance(job["script"], list)
            assert all(isinstance(line, str) for line in job["script"])
            assert job["stage"] in {".pre", "build", "test", "deploy", ".post"}  # GitLab's default stages


def test_every_imagelock_command_line_is_accepted() -> None:
    kinds = classify()
    found: dict[str, set[str]] = {}
    for kind, scripts in (
        ("github", [s for w in kinds["github"] for s in github_scripts(w)]),
        ("gitlab", [s for p in kinds["gitlab"] for s in gitlab_scripts(p)]),
    ):
        for script in scripts:
            for arguments in imagelock_commands(script):
                accepted(arguments)
                found.setdefault(kind, set()).add(arguments[0])
    for kind in ("github", "gitlab"):
        assert found[kind] >= {"check", "pin", "outdated", "audit", "update"}, kind


def test_the_command_line_checker_catches_mistakes() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"(?i)no such option"):
        accepted(["check", "--no-such-option"])
    with pytest.raises(pytest.fail.Exception, match="no such command"):
        accepted(["chekc"])
    with pytest.raises(pytest.fail.Exception, match="Missing"):
        accepted(["pin", "--check"])
    assert list(imagelock_commands('imagelock update > "$RUNNER_TEMP/x.txt"\nls\nimagelock pin a/ && echo')) == [
        ["update"],
        ["pin", "a/"],
    ]


def hooks() -> list[dict[str, Any]]:
    document = load(HOOKS.read_text())
    assert isinstance(document, list)
    return document


def test_pre_commit_hooks_have_the_required_keys() -> None:
    listed = hooks()
    assert [hook["id"] for hook in listed] == ["imagelock-check", "imagelock-pin-check"]
    known_keys = {
        "id", "name", "entry", "language", "files", "exclude", "types", "types_or", "exclude_types",
        "always_run", "fail_fast", "verbose", "pass_filenames", "require_serial", "description",
        "language_version", "minimum_pre_commit_version", "args", "stages",
    }  # fmt: skip
    for hook in listed:
        assert {"id", "name", "entry", "language"} <= set(hook)
        assert set(hook) <= known_keys, set(hook) - known_keys
        assert hook["language"] == "python"  # pre-commit installs this repository's package
        words = shlex.split(hook["entry"])
        assert words[0] == "imagelock"
        accepted([*words[1:], *hook.get("args", []), *(["deploy/"] if hook.get("pass_filenames", True) else [])])
    check, pin_check = listed
    assert check["pass_filenames"] is False
    files = re.compile(check["files"])
    assert all(files.search(path) for path in ("images.toml", "images.lock", "deploy/prod/images.lock"))
    assert not any(files.search(path) for path in ("images.toml.example", "myimages.toml", "values.yaml"))
    assert set(pin_check["types_or"]) == {"yaml", "dockerfile"}


def test_pre_commit_configs_in_the_docs_use_the_hooks() -> None:
    ids = {hook["id"]: hook for hook in hooks()}
    for config in classify()["pre-commit"]:
        for repository in config["repos"]:
            for hook in repository["hooks"]:
                assert hook["id"] in ids
                published = ids[hook["id"]]
                entry = shlex.split(published["entry"])[1:]
                takes_files = hook.get("pass_filenames", published.get("pass_filenames", True))
                accepted([*entry, *hook.get("args", []), *(["deploy/app.yaml"] if takes_files else [])])


def run_hook(hook_id: str, directory: Path, *filenames: str) -> subprocess.CompletedProcess[str]:
    """Run a hook as pre-commit does: its entry, then its args, then the file names (if it takes them)."""
    [hook] = [hook for hook in hooks() if hook["id"] == hook_id]
    words = shlex.split(hook["entry"])
    arguments = [*words[1:], *hook.get("args", []), *(filenames if hook.get("pass_filenames", True) else ())]
    command = [sys.executable, "-m", "imagelock", *arguments]
    return subprocess.run(command, cwd=directory, capture_output=True, text=True, check=False)


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A project with images.toml and a lock that matches it (written offline)."""
    (tmp_path / "images.toml").write_text('[images.web]\nimage = "nginx"\ntag = "1.26.2"\n')
    config = load_config(tmp_path / "images.toml")
    spec = config.images["web"]
    entry = LockedImage(
        "web", str(spec.repository), "1.26.2", "sha256:" + "1" * 64, "application/vnd.oci.image.index.v1+json",
        {}, spec.spec_hash,
    )  # fmt: skip
    (tmp_path / "images.lock").write_text(Lock(inputs=config.inputs_hash, images={"web": entry}).dumps())
    return tmp_path


def test_the_check_hook(repository: Path) -> None:
    assert run_hook("imagelock-check", repository, "images.toml").returncode == 0
    (repository / "images.toml").write_text('[images.web]\nimage = "nginx"\ntag = "1.27.0"\n')
    stale = run_hook("imagelock-check", repository, "images.toml")
    assert stale.returncode == 1
    assert "web: spec changed" in stale.stdout


def test_the_pin_check_hook(repository: Path) -> None:
    deploy = repository / "deploy"
    deploy.mkdir()
    (deploy / "app.yaml").write_text(f"image: nginx:1.26.2@sha256:{'1' * 64}\n")
    (deploy / "Dockerfile").write_text("FROM nginx:1.26.2\n")
    assert run_hook("imagelock-pin-check", repository, "deploy/app.yaml").returncode == 0
    result = run_hook("imagelock-pin-check", repository, "deploy/app.yaml", "deploy/Dockerfile")
    assert result.returncode == 1
    assert result.stdout.startswith("deploy/Dockerfile:1  nginx:1.26.2 → nginx:1.26.2@sha256:")
    assert (deploy / "Dockerfile").read_text() == "FROM nginx:1.26.2\n"  # a check writes nothing


def test_the_recipes_are_linked_from_the_readme_and_the_index() -> None:
    assert "(docs/ci.md)" in (ROOT / "README.md").read_text()
    assert "(ci.md)" in (ROOT / "docs" / "index.md").read_text()
