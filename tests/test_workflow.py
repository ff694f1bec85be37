"""The pip-tools loop against the real registry: update, -U/-P, --dry-run, diffs, outdated, why, verify, add, remove."""

from __future__ import annotations

import json
import tomllib

import httpx
import pytest

from imagelock.cli import app
from tests.conftest import Project, Registry
from tests.support.registry import PushedImage


def locked(project: Project) -> dict[str, dict[str, object]]:
    images: dict[str, dict[str, object]] = tomllib.loads(project.lock.read_text())["images"]
    return images


def short(digest: str) -> str:
    return digest[:19] + "…"


@pytest.fixture
def repos(registry: Registry, request: pytest.FixtureRequest) -> tuple[str, str]:
    """Two repositories of this test's own, with tags 1.0.0 and 1.1.0."""
    base = f"flow/{request.node.name.lower().replace('_', '-')[:40].strip('-')}"
    names = (f"{base}-web", f"{base}-api")
    for name in names:
        for tag in ("1.0.0", "1.1.0"):
            registry.seeder.push_image(name, tag)
    return names


def two_images(registry: Registry, repos: tuple[str, str]) -> str:
    web, api = repos
    return (
        f'[images.web]\nimage = "{registry.host}/{web}"\nversion = ">=1"\n'
        f'[images.api]\nimage = "{registry.host}/{api}"\nversion = ">=1"\n'
    )


def push(registry: Registry, repository: str, tag: str, salt: str = "") -> PushedImage:
    return registry.seeder.push_image(repository, tag, salt=salt)


def test_pins_stay_until_asked_and_update_moves_only_what_is_named(
    project: Project, registry: Registry, repos: tuple[str, str]
) -> None:
    web, api = repos
    project.write(two_images(registry, repos))
    assert project.run("lock").exit_code == 0
    push(registry, web, "1.2.0")
    newest_api = push(registry, api, "1.2.0")

    assert project.run("lock").exit_code == 0
    assert {name: entry["tag"] for name, entry in locked(project).items()} == {"web": "1.1.0", "api": "1.1.0"}

    outdated = project.run("outdated")
    assert outdated.exit_code == 0
    header, *rows = [line.split() for line in outdated.stdout.splitlines()]
    assert header == ["NAME", "LOCKED", "LATEST", "AGE", "CHANGE"]
    assert rows == [["api", "1.1.0", "1.2.0", "-", "upgraded"], ["web", "1.1.0", "1.2.0", "-", "upgraded"]]
    assert project.run("outdated", "--exit-code").exit_code == 1

    before_web = locked(project)["web"]
    update = project.run("update", "api")
    assert update.exit_code == 0, update.stderr
    assert update.stdout == "api  1.1.0 → 1.2.0\n"
    assert locked(project)["api"]["digest"] == newest_api.digest
    assert locked(project)["web"] == before_web

    update_all = project.run("update")
    assert update_all.stdout == "web  1.1.0 → 1.2.0\n"
    assert project.run("outdated", "--exit-code").exit_code == 0


def test_a_move_to_an_older_version_is_marked_downgraded(
    project: Project, registry: Registry, repos: tuple[str, str]
) -> None:
    web, _ = repos
    project.write(f'[images.web]\nimage = "{registry.host}/{web}"\nversion = ">=1"\n')
    assert project.run("lock").exit_code == 0
    project.write(f'[images.web]\nimage = "{registry.host}/{web}"\nversion = "<1.1"\n')

    dry_run = project.run("update", "web", "--dry-run", "--json")
    assert [(c["name"], c["change"]) for c in json.loads(dry_run.stdout)["changes"]] == [("web", "downgraded")]
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "web  1.1.0 → 1.0.0 (downgraded)\n"


def test_lock_upgrade_spellings(project: Project, registry: Registry, repos: tuple[str, str]) -> None:
    web, api = repos
    project.write(two_images(registry, repos))
    assert project.run("lock").exit_code == 0
    push(registry, web, "1.2.0")
    push(registry, api, "1.2.0")

    assert project.run("lock", "-P", "web").stdout == "web  1.1.0 → 1.2.0\n"
    assert locked(project)["api"]["tag"] == "1.1.0"
    assert project.run("lock", "--upgrade").stdout == "api  1.1.0 → 1.2.0\n"


def test_unknown_image_name_is_exit_2_and_writes_nothing(
    project: Project, registry: Registry, repos: tuple[str, str]
) -> None:
    project.write(two_images(registry, repos))
    assert project.run("lock").exit_code == 0
    before = project.lock.read_bytes()
    result = project.run("update", "nope")
    assert result.exit_code == 2
    assert "no image named 'nope'" in result.stderr
    assert project.lock.read_bytes() == before


def test_a_rebuilt_tag_is_shown_as_a_rebuild(project: Project, registry: Registry, repos: tuple[str, str]) -> None:
    web, _ = repos
    first = push(registry, web, "stable", salt="first")
    project.write(f'[images.web]\nimage = "{registry.host}/{web}"\ntag = "stable"\n')
    assert project.run("lock").exit_code == 0
    second = push(registry, web, "stable", salt="second")

    outdated = project.run("outdated")
    assert outdated.stdout.split()[5:] == ["web", "stable", "stable", "-", "rebuilt"]
    result = project.run("update")
    assert result.stdout == f"web  stable rebuilt  {short(first.digest)} → {short(second.digest)}\n"
    assert locked(project)["web"]["digest"] == second.digest


def test_dry_run_prints_the_change_and_writes_nothing(
    project: Project, registry: Registry, repos: tuple[str, str]
) -> None:
    web, _ = repos
    project.write(two_images(registry, repos))
    assert project.run("lock").exit_code == 0
    before = project.lock.read_bytes()
    push(registry, web, "2.0.0")
    for command in (("update", "--dry-run"), ("lock", "-U", "--dry-run")):
        result = project.run(*command)
        assert result.exit_code == 0
        assert result.stdout == "web  1.1.0 → 2.0.0\n"
        assert "not written" in result.stderr
        assert project.lock.read_bytes() == before


def test_verbose_lists_unchanged_images(project: Project, registry: Registry, repos: tuple[str, str]) -> None:
    project.write(two_images(registry, repos))
    assert project.run("lock").exit_code == 0
    result = project.run("update", "--verbose")
    assert result.stdout == "api  1.1.0 unchanged\nweb  1.1.0 unchanged\n"


def test_a_failed_update_keeps_the_lock_byte_identical(
    project: Project, registry: Registry, repos: tuple[str, str]
) -> None:
    web, api = repos
    project.write(
        f'[images.web]\nimage = "{registry.host}/{web}"\nversion = "==1.1.0"\n'
        f'[images.api]\nimage = "{registry.host}/{api}"\nversion = ">=1"\n'
    )
    assert project.run("lock").exit_code == 0
    before = project.lock.read_bytes()
    push(registry, api, "1.3.0")
    gone = locked(project)["web"]["digest"]
    httpx.delete(f"{registry.server.url}/v2/{web}/manifests/{gone}").raise_for_status()
    result = project.run("update")
    assert result.exit_code in (1, 3)  # the tag is gone (no match) or dangling (not found)
    assert web in result.stderr
    assert project.lock.read_bytes() == before  # api's move is not written either


def test_diff_json_shape(project: Project, registry: Registry, repos: tuple[str, str]) -> None:
    web, _ = repos
    project.write(two_images(registry, repos))
    assert project.run("lock").exit_code == 0
    old = locked(project)["web"]
    newest = push(registry, web, "1.5.0")
    result = project.run("update", "web", "--json")
    document = json.loads(result.stdout)
    assert document["lockfile"] == str(project.lock)
    assert document["written"] is True
    assert document["dry_run"] is False
    assert [change["name"] for change in document["changes"]] == ["api", "web"]
    api_change, web_change = document["changes"]
    assert api_change["change"] == "unchanged"
    assert web_change["change"] == "upgraded"
    assert web_change["old"] == {
        "image": old["image"], "tag": "1.1.0", "digest": old["digest"], "platforms": old["platforms"]
    }  # fmt: skip
    assert web_change["new"] == {
        "image": f"{registry.host}/{web}", "tag": "1.5.0", "digest": newest.digest, "platforms": newest.platforms
    }  # fmt: skip


def test_outdated_json_shape(project: Project, registry: Registry, repos: tuple[str, str]) -> None:
    web, _ = repos
    project.write(two_images(registry, repos))
    assert project.run("lock").exit_code == 0
    newest = push(registry, web, "1.7.0")
    document = json.loads(project.run("outdated", "--json").stdout)
    assert list(document) == ["outdated"]
    (entry,) = document["outdated"]
    assert entry["name"] == "web"
    assert entry["change"] == "upgraded"
    assert entry["old"]["tag"] == "1.1.0"
    assert entry["new"]["tag"] == "1.7.0"
    assert entry["new"]["digest"] == newest.digest


def test_why_gives_each_tag_its_verdict(project: Project, registry: Registry) -> None:
    repository = "flow/why"
    for tag in ("2.0.0", "1.9.0", "1.8.0", "1.8.0-alpine", "3.0.0rc1", "latest", "0.9.0"):
        registry.seeder.push_image(repository, tag)
    registry.seeder.push_image(repository, "2.1.0", ("linux/amd64",))
    project.write(
        f'[images.app]\nimage = "{registry.host}/{repository}"\nversion = ">=1"\nexclude = ["1.9.0"]\n'
        'platforms = ["linux/amd64", "linux/arm64"]\n'
    )
    result = project.run("why", "app")
    assert result.exit_code == 0, result.stderr
    lines = [line.split(None, 1) for line in result.stdout.splitlines()[1:]]
    assert lines == [
        ["3.0.0rc1", "pre-release"],
        ["2.1.0", "missing platform linux/arm64"],
        ["2.0.0", "chosen"],
        ["1.9.0", "excluded"],
        ["1.8.0", "older"],
        ["0.9.0", "outside spec"],
        ["1.8.0-alpine", "not a version"],
        ["latest", "not a version"],
    ]
    assert result.stdout.splitlines()[0] == (
        f"app  {registry.host}/{repository}  not locked (no images.lock)  newest allowed: 2.0.0"
    )
    assert not project.lock.exists()  # read-only

    document = json.loads(project.run("why", "app", "--json").stdout)
    assert document["name"] == "app"
    assert document["image"] == f"{registry.host}/{repository}"
    assert document["chosen"] == "2.0.0"
    unexamined = {"made": None, "age": None}  # only the candidates tried have a time (docs/selection.md)
    assert document["tags"][0] == {"tag": "3.0.0rc1", "version": "3.0.0rc1", "verdict": "pre-release", **unexamined}
    assert document["tags"][-1] == {"tag": "latest", "version": None, "verdict": "not a version", **unexamined}


def test_why_says_what_is_locked_beside_what_a_fresh_resolve_would_choose(
    project: Project, registry: Registry, repos: tuple[str, str]
) -> None:
    web, api = repos
    project.write(two_images(registry, repos) + f'[images.cache]\nimage = "{registry.host}/{api}"\ntag = "1.0.0"\n')
    assert project.run("lock").exit_code == 0
    locked_web = locked(project)["web"]
    push(registry, web, "1.2.0")

    result = project.run("why", "web")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        f"web  {registry.host}/{web}  locked: 1.1.0 ({short(str(locked_web['digest']))})  newest allowed: 1.2.0\n"
        "  1.2.0  chosen\n"
        "  1.1.0  locked\n"
        "  1.0.0  older\n"
    )
    document = json.loads(project.run("why", "web", "--json").stdout)
    assert document["chosen"] == "1.2.0"
    assert document["locked"] == {
        "image": f"{registry.host}/{web}", "tag": "1.1.0", "digest": locked_web["digest"],
        "platforms": locked_web["platforms"],
    }  # fmt: skip
    assert [tag["verdict"] for tag in document["tags"]] == ["chosen", "locked", "older"]

    assert project.run("update", "web").exit_code == 0
    assert project.run("why", "web").stdout.splitlines()[1] == "  1.2.0  chosen, locked"

    rebuilt = push(registry, api, "1.0.0", salt="rebuilt")
    followed = project.run("why", "cache").stdout.splitlines()
    assert followed[0] == (
        f"cache  {registry.host}/{api}  locked: 1.0.0 ({short(str(locked(project)['cache']['digest']))})"
        f"  newest allowed: 1.0.0 (rebuilt: {short(rebuilt.digest)})"
    )
    assert followed[1] == "  1.0.0  chosen, locked"

    project.lock.unlink()
    unlocked = project.run("why", "web", "--json")
    assert json.loads(unlocked.stdout)["locked"] is None
    assert "  not locked (no images.lock)  newest allowed: 1.2.0" in project.run("why", "web").stdout


def test_why_variant_mismatch(project: Project, registry: Registry) -> None:
    project.write(f'[images.web]\nimage = "{registry.host}/library/nginx"\nversion = ">=1.26"\nvariant = "alpine"\n')
    verdicts = dict(line.split(None, 1) for line in project.run("why", "web").stdout.splitlines()[1:])
    assert verdicts["1.27.1-alpine"] == "chosen"
    assert verdicts["1.26.2-alpine"] == "older"
    assert verdicts["1.26.2"] == "variant mismatch"
    assert verdicts["1.25.4-alpine"] == "outside spec"
    assert verdicts["1.26.2-alpine3.19"] == "not a version"


def test_verify_passes_then_names_what_disappeared(
    project: Project, registry: Registry, repos: tuple[str, str]
) -> None:
    web, _ = repos
    project.write(two_images(registry, repos))
    assert project.run("lock").exit_code == 0
    ok = project.run("verify")
    assert ok.exit_code == 0
    assert ok.stdout == "api  ok\nweb  ok\n"

    entry = locked(project)["web"]
    arm64 = entry["platforms"]["linux/arm64"]  # type: ignore[index]
    httpx.delete(f"{registry.server.url}/v2/{web}/manifests/{arm64}").raise_for_status()
    failed = project.run("verify")
    assert failed.exit_code == 1
    assert f"web  platform linux/arm64 manifest {arm64} no longer exists" in failed.stdout
    document = json.loads(project.run("verify", "--json").stdout)
    assert document["ok"] is False
    assert document["images"][0] == {
        "name": "api", "reference": f"{locked(project)['api']['image']}:1.1.0@{locked(project)['api']['digest']}",
        "ok": True, "problems": [], "notes": [],
    }  # fmt: skip
    assert document["images"][1]["ok"] is False

    httpx.delete(f"{registry.server.url}/v2/{web}/manifests/{entry['digest']}").raise_for_status()
    gone = project.run("verify")
    assert f"{entry['digest']} no longer exists" in gone.stdout


def test_read_only_commands_write_nothing(project: Project, registry: Registry, repos: tuple[str, str]) -> None:
    project.write(two_images(registry, repos))
    assert project.run("lock").exit_code == 0
    before = {path.name: path.stat().st_mtime_ns for path in project.directory.iterdir()}
    for command in (("outdated",), ("why", "web"), ("verify",), ("check",), ("update", "--dry-run")):
        assert project.run(*command).exit_code == 0
    assert {path.name: path.stat().st_mtime_ns for path in project.directory.iterdir()} == before


def test_add_keeps_comments_and_locks_the_new_entry(project: Project, registry: Registry) -> None:
    original = (
        "# The images we run.\n"
        "[images.web]  # the front end\n"
        f'image = "{registry.host}/library/nginx"   # mirrored\n'
        'version = ">=1.25,<1.27"\n'
    )
    project.write(original)
    assert project.run("lock").exit_code == 0
    result = project.run("add", "cache", f"{registry.host}/library/redis", "--tag", "7.2")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"cache  added 7.2  {short(registry.image('library/redis:7.2').digest)}\n"
    text = project.config.read_text()
    assert text.startswith(original)
    assert text.endswith(f'\n[images.cache]\nimage = "{registry.host}/library/redis"\ntag = "7.2"\n')
    assert set(locked(project)) == {"web", "cache"}
    assert project.run("check").exit_code == 0

    edge = project.run("add", "edge", f"{registry.host}/library/nginx", "--version", ">=1.26", "--variant", "alpine")
    assert edge.exit_code == 0, edge.stderr
    assert locked(project)["edge"]["tag"] == "1.27.1-alpine"


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        (("web", "nginx", "--tag", "1"), 2),  # already defined
        (("new", "NGINX", "--tag", "1"), 2),  # bad reference
        (("new", "nginx"), 2),  # neither --version nor --tag
        (("new", "nginx", "--version", "=>1"), 2),  # bad specifier
        (("new", "{host}/library/redis", "--tag", "no-such-tag"), 3),  # does not resolve
    ],
)
def test_add_that_fails_writes_nothing(
    project: Project, registry: Registry, arguments: tuple[str, ...], code: int
) -> None:
    project.write(f'[images.web]\nimage = "{registry.host}/library/nginx"\nversion = ">=1.25,<1.27"\n')
    assert project.run("lock").exit_code == 0
    files = {path: path.read_bytes() for path in (project.config, project.lock)}
    result = project.run("add", *(argument.format(host=registry.host) for argument in arguments))
    assert result.exit_code == code
    assert {path: path.read_bytes() for path in files} == files


def test_add_accepts_the_shorthand_images_toml_accepts(project: Project, registry: Registry) -> None:
    project.write(f'[images.web]\nimage = "{registry.host}/library/nginx"\nversion = ">=1.25,<1.27"\n')
    assert project.run("lock").exit_code == 0
    result = project.run("add", "cache", f"{registry.host}/library/redis:7.2")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"cache  added 7.2  {short(registry.image('library/redis:7.2').digest)}\n"
    assert project.config.read_text().endswith(
        f'\n[images.cache]\nimage = "{registry.host}/library/redis"\ntag = "7.2"\n'
    )

    files = {path: path.read_bytes() for path in (project.config, project.lock)}
    twice = project.run("add", "db", f"{registry.host}/library/postgres:16.4", "--tag", "16.4")
    assert twice.exit_code == 2
    assert twice.stderr == (
        f"error: '{registry.host}/library/postgres:16.4' already names tag '16.4':"
        " give it without the tag, or drop --tag/--version\n"
    )
    assert {path: path.read_bytes() for path in files} == files


def test_add_creates_images_toml_when_there_is_none(project: Project, registry: Registry) -> None:
    result = project.run("add", "cache", f"{registry.host}/library/redis:7.2")
    assert result.exit_code == 0, result.stderr
    assert project.config.read_text() == f'[images.cache]\nimage = "{registry.host}/library/redis"\ntag = "7.2"\n'
    assert set(locked(project)) == {"cache"}
    assert project.run("check").exit_code == 0


@pytest.mark.parametrize(
    "original",
    [
        '[images.web]\nimage = "{host}/library/nginx"\nversion = ">=1.25,<1.27"\n',
        '[images.web]\nimage = "{host}/library/nginx"\nversion = ">=1.25,<1.27"',  # no newline at the end
        '# ours\n[images.web]  # front\nimage = "{host}/library/nginx"  # mirrored\ntag = "1.26.2"\n\n# the end\n',
        '[images.web]\nimage = "{host}/library/nginx"\ntag = "1.26.2"\n\n\n',
        '[defaults]\nplatforms = ["linux/amd64"]\n\n[images]\nweb = "{host}/library/nginx:1.26.2"\n',
        'images = {{ web = {{ image = "{host}/library/nginx", tag = "1.26.2" }} }}\n',
    ],
    ids=["plain", "no-final-newline", "comments", "trailing-blank-lines", "shorthand", "inline-table"],
)
def test_remove_after_add_leaves_both_files_byte_identical(project: Project, registry: Registry, original: str) -> None:
    project.write(original.format(host=registry.host))
    assert project.run("lock").exit_code == 0
    files = {path: path.read_bytes() for path in (project.config, project.lock)}
    added = project.run("add", "cache", f"{registry.host}/library/redis:7.2")
    assert added.exit_code == 0, added.stderr
    assert project.run("check").exit_code == 0
    removed = project.run("remove", "cache")
    assert removed.exit_code == 0, removed.stderr
    assert {path: path.read_bytes() for path in files} == files


def test_remove_drops_the_entry_from_both_files(project: Project, registry: Registry) -> None:
    project.write(
        "# keep me\n"
        f'[images.web]\nimage = "{registry.host}/library/nginx"\nversion = ">=1.25,<1.27"\n'
        f'[images.cache]\nimage = "{registry.host}/library/redis"\ntag = "7.2"\n'
    )
    assert project.run("lock").exit_code == 0
    result = project.run("remove", "cache")
    assert result.exit_code == 0
    assert result.stdout == "cache  removed (was 7.2)\n"
    assert project.config.read_text() == (
        f'# keep me\n[images.web]\nimage = "{registry.host}/library/nginx"\nversion = ">=1.25,<1.27"\n'
    )
    assert set(locked(project)) == {"web"}
    assert project.run("remove", "cache").exit_code == 2


def test_the_header_records_the_command_that_regenerates_the_lock(project: Project, registry: Registry) -> None:
    custom = project.directory / "prod.toml"
    custom.write_text(f'[images.web]\nimage = "{registry.host}/library/nginx"\nversion = "==1.26.2"\n')
    lockfile = project.directory / "prod.lock"
    result = project.runner.invoke(app, ["lock", "-c", str(custom), "--lockfile", str(lockfile)])
    assert result.exit_code == 0, result.stderr
    header = lockfile.read_text().splitlines()[:2]
    assert header == [
        "# This file is generated by imagelock from prod.toml. Do not edit by hand.",
        "# Regenerate with: imagelock lock -c prod.toml --lockfile prod.lock",
    ]
    project.write(custom.read_text())
    assert project.run("lock").exit_code == 0
    assert project.lock.read_text().splitlines()[:2] == [
        "# This file is generated by imagelock from images.toml. Do not edit by hand.",
        "# Regenerate with: imagelock lock",
    ]


def test_the_header_names_the_config_relative_to_the_lock(project: Project, registry: Registry) -> None:
    (project.directory / "deploy").mkdir()
    custom = project.directory / "deploy" / "prod.toml"
    custom.write_text(f'[images.web]\nimage = "{registry.host}/library/nginx"\nversion = "==1.26.2"\n')
    lockfile = project.directory / "images.lock"
    arguments = ["-c", str(custom), "--lockfile", str(lockfile)]
    assert project.runner.invoke(app, ["lock", *arguments]).exit_code == 0
    lines = lockfile.read_text().splitlines()
    assert lines[0] == "# This file is generated by imagelock from deploy/prod.toml. Do not edit by hand."

    lines[0] = "# This file is generated by imagelock from images.toml. Do not edit by hand."  # an older imagelock's
    lockfile.write_text("\n".join(lines) + "\n")
    check = project.runner.invoke(app, ["check", *arguments])
    assert check.exit_code == 0, check.stdout
