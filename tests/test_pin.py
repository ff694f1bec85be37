"""``imagelock pin`` and ``init``: golden files per file kind, matching rules, --check, and the whole path."""

from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from imagelock.lockfile import Lock, LockedImage
from tests.conftest import Project, Registry

GOLDEN = Path(__file__).parent / "golden" / "pin"
CASES = sorted(path.name for path in GOLDEN.iterdir() if path.is_dir())


def digest(character: str) -> str:
    return "sha256:" + character * 64


def entry(name: str, image: str, tag: str, character: str) -> LockedImage:
    return LockedImage(name, image, tag, digest(character), "application/vnd.oci.image.index.v1+json", {}, digest("f"))


LOCKED = {
    "web": entry("web", "docker.io/library/nginx", "1.26.2", "1"),
    "cache": entry("cache", "docker.io/library/redis", "7.2", "2"),
    "db": entry("db", "docker.io/library/postgres", "16.4", "3"),
    "py": entry("py", "docker.io/library/python", "3.12.4", "4"),
    "base": entry("base", "docker.io/library/ubuntu", "jammy-20240125", "5"),
    "tools": entry("tools", "docker.io/library/busybox", "1.36", "6"),
    "chart": entry("chart", "docker.io/bitnami/redis", "7.2.5", "7"),
}


def write_lock(directory: Path, entries: dict[str, LockedImage] = LOCKED) -> None:
    (directory / "images.lock").write_text(Lock(inputs=digest("e"), images=entries).dumps())


def files_under(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file()
    }


@pytest.mark.parametrize("case", CASES)
def test_golden(project: Project, case: str) -> None:
    """Each file kind pinned in place: only the reference spans change, every other byte stays."""
    write_lock(project.directory)
    work = project.directory / "deploy"
    shutil.copytree(GOLDEN / case / "before", work)
    result = project.run("pin", str(work))
    assert result.exit_code == 0, result.stderr
    expected_directory = GOLDEN / case / "after"
    if os.environ.get("IMAGELOCK_UPDATE_GOLDEN"):
        shutil.rmtree(expected_directory, ignore_errors=True)
        shutil.copytree(work, expected_directory)
    assert files_under(work) == files_under(expected_directory)
    assert project.run("pin", "--check", str(work)).exit_code == 0  # pinning is idempotent


def test_kubernetes_pins_parse_back_to_the_locked_references(project: Project) -> None:
    write_lock(project.directory)
    work = project.directory / "k8s"
    shutil.copytree(GOLDEN / "kubernetes" / "before", work)
    assert project.run("pin", str(work)).exit_code == 0
    documents = list(YAML(typ="safe").load_all((work / "app.yaml").read_text()))
    pod_spec = documents[0]["spec"]["template"]["spec"]
    assert pod_spec["initContainers"][0]["image"] == f"python:3.12.4@{digest('4')}"
    assert [c["image"] for c in pod_spec["containers"]] == [
        f"nginx:1.26.2@{digest('1')}",
        f"docker.io/library/redis:7.2@{digest('2')}",
        "quay.io/other/thing:1.0",
    ]
    cron = documents[2]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert cron == {"name": "backup", "image": f"postgres:16.4@{digest('3')}", "args": ["--all"]}
    pod = documents[3]["spec"]
    assert pod["containers"][0]["image"] == f"nginx:1.26.2@{digest('1')}"  # an old pin moved to the lock's
    assert pod["ephemeralContainers"][0]["image"] == f"busybox:1.36@{digest('6')}"


def test_check_lists_file_and_line_and_changes_nothing(project: Project) -> None:
    write_lock(project.directory)
    work = project.directory / "deploy"
    shutil.copytree(GOLDEN / "compose" / "before", work)
    before = files_under(work)
    result = project.run("pin", "--check", str(work))
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0].startswith(f"{work / 'compose.yaml'}:3  nginx:1.26.2 → nginx:1.26.2@")
    assert f"{work / 'compose.yaml'}:6" in result.stdout
    assert f"{work / 'compose.yaml'}:10: left alone" in result.stderr
    assert files_under(work) == before


def test_unmatched_references_are_reported_and_left_alone(project: Project) -> None:
    write_lock(project.directory)
    manifest = project.directory / "pod.yaml"
    manifest.write_text("spec:\n  containers:\n    - image: nginx:1.25.0\n    - image: ghcr.io/acme/app:2\n")
    result = project.run("pin", str(manifest))
    assert result.exit_code == 0
    assert f"{manifest}:3: left alone: nginx:1.25.0: matches no image in the lock" in result.stderr
    assert f"{manifest}:4: left alone: ghcr.io/acme/app:2: matches no image in the lock" in result.stderr
    assert manifest.read_text() == "spec:\n  containers:\n    - image: nginx:1.25.0\n    - image: ghcr.io/acme/app:2\n"


def test_a_reference_matching_several_entries_is_an_error_naming_them(project: Project) -> None:
    entries = {
        **LOCKED,
        "edge": entry("edge", "docker.io/library/nginx", "latest", "8"),
        "mainline": entry("mainline", "docker.io/library/nginx", "latest", "9"),
    }
    write_lock(project.directory, entries)
    manifest = project.directory / "pod.yaml"
    original = "image: nginx\n"
    manifest.write_text(original)
    result = project.run("pin", str(manifest))
    assert result.exit_code == 2
    assert f"{manifest}:1: nginx matches several images (edge, mainline)" in result.stderr
    assert manifest.read_text() == original


def test_a_reference_without_a_tag_is_pinned_to_the_entry_following_latest(project: Project) -> None:
    write_lock(project.directory, {**LOCKED, "edge": entry("edge", "docker.io/library/nginx", "latest", "8")})
    manifest = project.directory / "pod.yaml"
    manifest.write_text("a:\n  image: nginx\nb:\n  image: nginx:1.26.2\nc:\n  image: redis\n")
    result = project.run("pin", str(manifest))
    assert result.exit_code == 0, result.stderr
    assert manifest.read_text() == (
        f"a:\n  image: nginx:latest@{digest('8')}\nb:\n  image: nginx:1.26.2@{digest('1')}\nc:\n  image: redis\n"
    )
    assert (
        f"{manifest}:6: left alone: redis: no tag means :latest, and no image in the lock follows latest of "
        "docker.io/library/redis (it has cache)" in result.stderr
    )


def test_a_file_that_is_not_yaml_is_a_warning_and_the_others_are_pinned(project: Project) -> None:
    write_lock(project.directory)
    good = project.directory / "a.yaml"
    good.write_text("image: nginx:1.26.2\n")
    bad = project.directory / "b.yaml"
    bad.write_text("x: 1\nimage: [unclosed\n")
    result = project.run("pin", str(good), str(bad))
    assert result.exit_code == 0, result.stderr
    assert f"{bad}:3: warning: not YAML (expected ',' or ']', but got '<stream end>'); file skipped" in result.stderr
    assert good.read_text() == f"image: nginx:1.26.2@{digest('1')}\n"
    assert bad.read_text() == "x: 1\nimage: [unclosed\n"
    bad.write_text("image: nginx:1.26.2\n  key: {{ .Values.broken }}\n")
    good.write_text("image: nginx:1.26.2\n")
    check = project.run("pin", "--check", str(good), str(bad))
    assert check.exit_code == 1  # drift in the file that did parse still fails the check
    assert f"{bad}:2: warning: not YAML" in check.stderr


def test_nothing_is_written_when_one_file_fails(project: Project) -> None:
    write_lock(project.directory, {**LOCKED, "edge": entry("edge", "docker.io/library/nginx", "1.26.2", "8")})
    good = project.directory / "a.yaml"
    good.write_text("image: redis:7.2\n")
    bad = project.directory / "b.yaml"
    bad.write_text("image: nginx:1.26.2\n")  # two entries lock nginx:1.26.2: which one is the user's to say
    result = project.run("pin", str(good), str(bad))
    assert result.exit_code == 2
    assert f"{bad}:1: nginx:1.26.2 matches several images (edge, web)" in result.stderr
    assert good.read_text() == "image: redis:7.2\n"


def test_pin_needs_a_lock(project: Project) -> None:
    (project.directory / "a.yaml").write_text("image: nginx:1.26.2\n")
    result = project.run("pin", str(project.directory / "a.yaml"))
    assert result.exit_code == 2
    assert "images.lock: not found" in result.stderr


def test_from_plain_manifests_to_pinned_ones(project: Project, registry: Registry) -> None:
    """init → lock → pin → check, against the real registry, and CI catching drift afterwards."""
    host = registry.host
    pushed = {name: registry.seeder.push_image(f"e2e/{name}", tag) for name, tag in E2E_IMAGES.items()}
    deploy = project.directory / "deploy"
    deploy.mkdir()
    (deploy / "app.yaml").write_text(
        f"spec:\n  containers:\n    - image: {host}/e2e/web:1.26.2\n    - image: {host}/e2e/cache:7.2\n"
    )
    (deploy / "Dockerfile").write_text(f"FROM {host}/e2e/build:3.12.4 AS build\nFROM build\n")

    init = project.run("init", str(deploy))
    assert init.exit_code == 0, init.stderr
    config = tomllib.loads(project.config.read_text())["images"]
    assert config == {name: {"image": f"{host}/e2e/{name}", "tag": tag} for name, tag in E2E_IMAGES.items()}
    assert project.run("init", str(deploy)).exit_code == 2  # never overwrites images.toml by accident

    assert project.run("lock").exit_code == 0
    assert project.run("pin", "--check", str(deploy)).exit_code == 1
    assert project.run("pin", str(deploy)).exit_code == 0
    assert project.run("pin", "--check", str(deploy)).exit_code == 0
    containers = YAML(typ="safe").load((deploy / "app.yaml").read_text())["spec"]["containers"]
    assert containers[0]["image"] == f"{host}/e2e/web:1.26.2@{pushed['web'].digest}"
    dockerfile = (deploy / "Dockerfile").read_text()
    assert dockerfile.startswith(f"FROM {host}/e2e/build:3.12.4@{pushed['build'].digest} AS build\n")

    moved = registry.seeder.push_image("e2e/cache", "7.2", salt="rebuilt")
    assert project.run("update", "cache").exit_code == 0
    drift = project.run("pin", "--check", str(deploy))
    assert drift.exit_code == 1
    assert f"{deploy / 'app.yaml'}:4" in drift.stdout
    assert project.run("pin", str(deploy)).exit_code == 0
    containers = YAML(typ="safe").load((deploy / "app.yaml").read_text())["spec"]["containers"]
    assert containers[1]["image"] == f"{host}/e2e/cache:7.2@{moved.digest}"


E2E_IMAGES = {"build": "3.12.4", "cache": "7.2", "web": "1.26.2"}


def test_init_names_entries_after_repositories_and_reports_what_it_skips(project: Project) -> None:
    deploy = project.directory / "deploy"
    deploy.mkdir()
    (deploy / "a.yaml").write_text(
        "a:\n  image: nginx:1.25\nb:\n  image: nginx:1.26\nc:\n  image: ghcr.io/acme/nginx:2\n"
        "d:\n  image: ${IMAGE}\ne:\n  image: redis\nf:\n  image: busybox@" + digest("a") + "\n"
    )
    result = project.run("init", str(deploy))
    assert result.exit_code == 0, result.stderr
    assert tomllib.loads(project.config.read_text())["images"] == {
        "nginx": {"image": "nginx", "tag": "1.25"},
        "nginx-1.26": {"image": "nginx", "tag": "1.26"},
        "nginx-2": {"image": "ghcr.io/acme/nginx", "tag": "2"},
        "redis": {"image": "redis", "tag": "latest"},
    }
    assert "${IMAGE}: uses a variable" in result.stderr
    assert "pinned by digest alone" in result.stderr
    assert project.config.read_text().startswith("# Generated by `imagelock init`")
