"""--json on every command that has it: each report's shape, and an error as {"error": {...}} on stdout too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup

from imagelock.cli import app
from tests.conftest import Project, Registry
from tests.test_cli import imagelock


def report(result: Any) -> Any:
    return json.loads(result.stdout)


@pytest.fixture
def locked(project: Project, registry: Registry) -> Project:
    project.write(f'[images.web]\nimage = "{registry.host}/library/nginx"\ntag = "1.25.4"\n')
    assert project.run("lock").exit_code == 0
    return project


def test_check_json(locked: Project, registry: Registry) -> None:
    lock = str(locked.lock)
    result = locked.run("check", "--json")
    assert (result.exit_code, report(result)) == (0, {"ok": True, "lockfile": lock, "found": True, "stale": []})

    locked.write(locked.config.read_text() + f'[images.db]\nimage = "{registry.host}/library/postgres"\ntag = "16.3"\n')
    result = locked.run("check", "--json")
    assert result.exit_code == 1
    stale = [{"name": "db", "reason": "not locked"}]
    assert report(result) == {"ok": False, "lockfile": lock, "found": True, "stale": stale}

    locked.lock.unlink()
    result = locked.run("check", "--json")
    assert result.exit_code == 1
    assert report(result) == {
        "ok": False,
        "lockfile": lock,
        "found": False,
        "stale": [*stale, {"name": "web", "reason": "not locked"}],
    }


def test_pin_check_json_and_pin_json(locked: Project, registry: Registry) -> None:
    dockerfile = locked.directory / "Dockerfile"
    dockerfile.write_text(f"FROM {registry.host}/library/nginx:1.25.4\nFROM $BASE\n")
    before = dockerfile.read_bytes()
    pinned = f"{registry.host}/library/nginx:1.25.4@{registry.image('library/nginx:1.25.4').digest}"
    change = {"path": str(dockerfile), "line": 1, "old": f"{registry.host}/library/nginx:1.25.4", "new": pinned}

    result = locked.run("pin", "--check", "--json", str(dockerfile))
    assert result.exit_code == 1
    document = report(result)
    assert {key: document[key] for key in ("ok", "check", "changes", "notices")} == {
        "ok": False, "check": True, "changes": [change], "notices": [],
    }  # fmt: skip
    assert [(s["path"], s["line"], s["text"]) for s in document["skipped"]] == [(str(dockerfile), 2, "$BASE")]
    assert dockerfile.read_bytes() == before

    result = locked.run("pin", "--json", str(dockerfile))
    assert (result.exit_code, report(result)["ok"], report(result)["changes"]) == (0, True, [change])
    assert locked.run("pin", "--check", "--json", str(dockerfile)).exit_code == 0


def test_render_check_json_and_render_json(locked: Project, registry: Registry) -> None:
    templates, out = locked.directory / "templates", locked.directory / "out"
    templates.mkdir()
    (templates / "web.yaml").write_text("image: {{ images.web }}\n")
    target = str(out / "web.yaml")

    result = locked.run("render", "--check", "--json", str(templates), "-o", str(out))
    assert result.exit_code == 1
    assert report(result) == {"ok": False, "check": True, "outputs": [{"path": target, "changed": True}]}
    assert not out.exists()

    result = locked.run("render", "--json", str(templates), "-o", str(out))
    assert (result.exit_code, report(result)["outputs"]) == (0, [{"path": target, "changed": True}])
    result = locked.run("render", "--check", "--json", str(templates), "-o", str(out))
    assert (result.exit_code, report(result)) == (
        0, {"ok": True, "check": True, "outputs": [{"path": target, "changed": False}]},
    )  # fmt: skip

    result = locked.run("render", "--json", str(templates))  # to stdout: no room for a report beside the text
    assert result.exit_code == 2
    assert report(result) == {"error": {"message": "--json reports the files written: give -o OUT", "exit": 2}}


def test_add_and_remove_json(locked: Project, registry: Registry) -> None:
    digest = registry.image("library/postgres:16.3").digest
    result = locked.run("add", "db", f"{registry.host}/library/postgres", "--tag", "16.3", "--json")
    assert result.exit_code == 0, result.stderr
    document = report(result)
    assert (document["lockfile"], document["written"], document["dry_run"]) == (str(locked.lock), True, False)
    added = {"image": f"{registry.host}/library/postgres", "tag": "16.3", "digest": digest}
    [db] = [change for change in document["changes"] if change["name"] == "db"]
    assert (db["change"], db["old"], {key: db["new"][key] for key in added}) == ("added", None, added)

    result = locked.run("remove", "db", "--json")
    assert result.exit_code == 0, result.stderr
    [db] = [change for change in report(result)["changes"] if change["name"] == "db"]
    assert (db["change"], db["new"], db["old"]["digest"]) == ("removed", None, digest)


def test_init_json(project: Project) -> None:
    deploy = project.directory / "deploy"
    deploy.mkdir()
    (deploy / "app.yaml").write_text("a:\n  image: nginx:1.25\nb:\n  image: ${IMAGE}\n")
    result = project.run("init", "--json", str(deploy))
    assert result.exit_code == 0, result.stderr
    document = report(result)
    assert (document["config"], document["images"]) == (
        str(project.config),
        {"nginx": {"image": "docker.io/library/nginx", "tag": "1.25"}},
    )
    assert [(s["path"], s["line"]) for s in document["skipped"]] == [(str(deploy / "app.yaml"), 4)]


# -- errors ----------------------------------------------------------------------------------------

ARGUMENTS = {
    "lock": [], "update": [], "check": [], "outdated": [], "why": ["web"], "verify": [], "audit": [],
    "add": ["db", "postgres", "--tag", "16"], "remove": ["web"], "init": ["."], "pin": ["."],
    "render": [".", "-o", "out"], "mirror": ["127.0.0.1:9/mirror"],
}  # fmt: skip


def commands_with_json() -> set[str]:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    return {name for name, command in group.commands.items() if any(p.name == "as_json" for p in command.params)}


def test_the_error_table_covers_every_command_with_json() -> None:
    assert commands_with_json() == set(ARGUMENTS)


@pytest.mark.parametrize("command", sorted(ARGUMENTS))
def test_under_json_an_error_is_also_json_on_stdout(project: Project, command: str) -> None:
    project.write("[images.web]\nimage = 5\n")  # broken; and no lock
    result = project.run(command, *ARGUMENTS[command], "--json")
    assert result.exit_code == 2
    error = report(result)["error"]
    assert error["exit"] == 2
    assert result.stderr == f"error: {error['message']}\n"
    expected = ("key 'image': expected a string", "images.lock: not found", "images.toml: already exists")
    assert any(fragment in error["message"] for fragment in expected), error


def test_under_json_a_usage_error_and_a_registry_failure_are_json_too(project: Project) -> None:
    result = project.run("lock", "--json", "--upgrad")
    assert (result.exit_code, report(result)["error"]["exit"]) == (2, 2)
    assert report(result)["error"]["message"].startswith("imagelock lock: No such option: --upgrad")

    project.write('[images.web]\nimage = "127.0.0.1:9/web"\ntag = "1"\n')  # nothing listens on port 9
    result = project.run("lock", "--json")
    assert result.exit_code == 3
    assert report(result) == {"error": {"message": result.stderr.removeprefix("error: ").rstrip("\n"), "exit": 3}}


def test_without_json_an_error_is_only_on_stderr(project: Project) -> None:
    project.write("[images.web]\nimage = 5\n")
    result = project.run("check")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith("error: ")


def test_json_errors_come_from_the_installed_command_too(tmp_path: Path) -> None:
    result = imagelock("verify", "--json", cwd=tmp_path)
    assert result.returncode == 2
    assert json.loads(result.stdout) == {
        "error": {"message": "images.lock: not found; run 'imagelock lock'", "exit": 2}
    }
