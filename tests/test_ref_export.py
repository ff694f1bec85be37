"""``imagelock ref``, ``imagelock export`` and ``--relocate`` on ref, export, render and pin (all offline)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from ruamel.yaml import YAML

from imagelock.lockfile import LockedImage
from tests.conftest import Project, Registry
from tests.test_pin import LOCKED, digest, entry, write_lock

MIRROR = "docker.io=registry.internal/mirror"
WEB = replace(LOCKED["web"], platforms={"linux/amd64": digest("a"), "linux/arm64": digest("b")})
ENTRIES: dict[str, LockedImage] = {
    "web": WEB,
    "chart": LOCKED["chart"],
    "app": entry("app", "ghcr.io/acme/app", "2.0.0", "9"),
    "db": LOCKED["db"],
}


@pytest.fixture
def locked(project: Project) -> Project:
    write_lock(project.directory, ENTRIES)
    return project


# -- ref ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["web"], f"docker.io/library/nginx:1.26.2@{digest('1')}"),
        (["web", "--digest-only"], f"docker.io/library/nginx@{digest('1')}"),
        (["web", "--platform", "linux/arm64"], f"docker.io/library/nginx:1.26.2@{digest('b')}"),
        (["web", "--platform", "linux/aarch64/v8", "--digest-only"], f"docker.io/library/nginx@{digest('b')}"),
        (["app"], f"ghcr.io/acme/app:2.0.0@{digest('9')}"),
        (["web", "--relocate", MIRROR], f"registry.internal/mirror/library/nginx:1.26.2@{digest('1')}"),
        (["app", "--relocate", MIRROR], f"ghcr.io/acme/app:2.0.0@{digest('9')}"),
        (
            ["web", "--relocate", MIRROR, "--relocate", "docker.io/library/nginx=reg.io/web", "--digest-only"],
            f"reg.io/web@{digest('1')}",
        ),
        (
            ["web", "--platform", "linux/amd64", "--relocate", "docker.io=reg.io/docker.io"],
            f"reg.io/docker.io/library/nginx:1.26.2@{digest('a')}",
        ),
    ],
)
def test_ref_prints_one_line(locked: Project, arguments: list[str], expected: str) -> None:
    result = locked.run("ref", *arguments)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == expected + "\n"
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["wbe"], "images.lock: no image named 'wbe' (images.lock has: app, chart, db, web)"),
        (["web", "--platform", "linux/s390x"], "platform linux/s390x is not locked (locked: linux/amd64, linux/arm64)"),
        (["db", "--platform", "linux/amd64"], "[images.db]: platform linux/amd64 is not locked (locked: none)"),
        (["web", "--platform", "linux"], "invalid platform 'linux': expected os/architecture[/variant]"),
        (["web", "--relocate", "docker.io"], "invalid --relocate 'docker.io': expected OLD=NEW"),
        (["web", "--relocate", "docker.io=mirror/x"], "'mirror' is not a registry host"),
    ],
)  # fmt: skip
def test_ref_errors_are_one_line_exit_2(locked: Project, arguments: list[str], message: str) -> None:
    result = locked.run("ref", *arguments)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert message in result.stderr


def test_ref_needs_a_lock_like_render_and_pin(project: Project) -> None:
    result = project.run("ref", "web")
    assert result.exit_code == 2
    assert "images.lock: not found; run 'imagelock lock'" in result.stderr


def test_ref_reads_only_the_lock(locked: Project) -> None:
    """Like render and pin: no images.toml needed, and a stale lock is used as it is (check is for CI)."""
    assert not locked.config.exists()
    assert locked.run("ref", "web").exit_code == 0
    locked.write('[images.web]\nimage = "nginx"\ntag = "1.27.0"\n')  # stale now
    assert locked.run("ref", "web").stdout == f"docker.io/library/nginx:1.26.2@{digest('1')}\n"


def test_ref_after_a_real_lock(project: Project, registry: Registry) -> None:
    project.write(
        f'[defaults]\nplatforms = ["linux/amd64", "linux/arm64"]\n\n'
        f'[images.web]\nimage = "{registry.host}/library/nginx"\nversion = "<1.26"\n'
    )
    assert project.run("lock").exit_code == 0
    pushed = registry.image("library/nginx:1.25.4")
    assert project.run("ref", "web").stdout == f"{registry.host}/library/nginx:1.25.4@{pushed.digest}\n"
    arm = project.run("ref", "web", "--platform", "linux/arm64", "--digest-only")
    assert arm.stdout == f"{registry.host}/library/nginx@{pushed.platforms['linux/arm64']}\n"
    relocated = project.run("ref", "web", "--relocate", f"{registry.host}=mirror.example:5000/hub")
    assert relocated.stdout == f"mirror.example:5000/hub/library/nginx:1.25.4@{pushed.digest}\n"


# -- export ---------------------------------------------------------------------------------------

KUSTOMIZE = f"""\
images:
- name: ghcr.io/acme/app
  newName: ghcr.io/acme/app
  digest: {digest("9")}  # app: 2.0.0
- name: bitnami/redis
  newName: docker.io/bitnami/redis
  digest: {digest("7")}  # chart: 7.2.5
- name: postgres
  newName: docker.io/library/postgres
  digest: {digest("3")}  # db: 16.4
- name: nginx
  newName: docker.io/library/nginx
  digest: {digest("1")}  # web: 1.26.2
"""

HELM = f"""\
app:
  repository: ghcr.io/acme/app
  tag: "2.0.0"
  digest: {digest("9")}
chart:
  repository: docker.io/bitnami/redis
  tag: "7.2.5"
  digest: {digest("7")}
db:
  repository: docker.io/library/postgres
  tag: "16.4"
  digest: {digest("3")}
web:
  repository: docker.io/library/nginx
  tag: "1.26.2"
  digest: {digest("1")}
"""


def test_export_kustomize(locked: Project) -> None:
    result = locked.run("export", "--format", "kustomize")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == KUSTOMIZE
    images = YAML(typ="safe").load(result.stdout)["images"]
    assert all(set(item) == {"name", "newName", "digest"} for item in images)


def test_export_kustomize_relocated_keeps_the_names_manifests_use(locked: Project) -> None:
    result = locked.run("export", "--format", "kustomize", "--relocate", MIRROR)
    assert result.exit_code == 0, result.stderr
    expected = KUSTOMIZE.replace("newName: docker.io/", "newName: registry.internal/mirror/")
    assert result.stdout == expected
    assert "- name: nginx\n  newName: registry.internal/mirror/library/nginx\n" in result.stdout


def test_export_kustomize_refuses_one_repository_at_two_digests(project: Project) -> None:
    write_lock(project.directory, {**ENTRIES, "edge": entry("edge", "docker.io/library/nginx", "1.27.1", "8")})
    result = project.run("export", "--format", "kustomize")
    assert result.exit_code == 2
    assert "edge and web are both nginx with different digests" in result.stderr
    assert result.stdout == ""


def test_export_helm_values(locked: Project) -> None:
    result = locked.run("export", "--format", "helm-values")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == HELM
    values = YAML(typ="safe").load(result.stdout)
    assert values["db"] == {"repository": "docker.io/library/postgres", "tag": "16.4", "digest": digest("3")}
    relocated = locked.run("export", "--format", "helm-values", "--relocate", MIRROR)
    assert relocated.stdout == HELM.replace("repository: docker.io/", "repository: registry.internal/mirror/")


def test_export_helm_values_quotes_names_yaml_would_misread(project: Project) -> None:
    write_lock(project.directory, {"on": entry("on", "docker.io/library/nginx", "1", "1"), "1x": LOCKED["db"]})
    result = project.run("export", "--format", "helm-values")
    assert result.exit_code == 0, result.stderr
    assert list(YAML(typ="safe").load(result.stdout)) == ["1x", "on"]
    assert result.stdout.startswith('"1x":\n')


def test_export_json(locked: Project) -> None:
    result = locked.run("export", "--format", "json", "--relocate", "ghcr.io/acme=reg.io/acme-mirror")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert sorted(document["images"]) == ["app", "chart", "db", "web"]
    assert document["images"]["app"] == {
        "image": "reg.io/acme-mirror/app",
        "tag": "2.0.0",
        "digest": digest("9"),
        "reference": f"reg.io/acme-mirror/app:2.0.0@{digest('9')}",
        "platforms": {},
    }
    assert document["images"]["web"]["platforms"] == {"linux/amd64": digest("a"), "linux/arm64": digest("b")}
    assert result.stdout == json.dumps(document, indent=2, sort_keys=True) + "\n"


def test_export_errors(project: Project) -> None:
    assert project.run("export", "--format", "kustomize").exit_code == 2  # no lock
    write_lock(project.directory, ENTRIES)
    assert project.run("export", "--format", "xml").exit_code == 2
    assert project.run("export").exit_code == 2  # --format is required
    bad = project.run("export", "--format", "json", "--relocate", "x=y")
    assert bad.exit_code == 2
    assert "invalid --relocate 'x=y'" in bad.stderr


def test_export_of_an_empty_lock(project: Project) -> None:
    write_lock(project.directory, {})
    assert project.run("export", "--format", "kustomize").stdout == "images: []\n"
    assert project.run("export", "--format", "helm-values").stdout == "{}\n"
    assert json.loads(project.run("export", "--format", "json").stdout) == {"images": {}}


# -- render --relocate ----------------------------------------------------------------------------


def test_render_relocated(locked: Project) -> None:
    template = locked.directory / "pod.yaml"
    template.write_text(
        "a: {{ images.web }}\nb: {{ images.web.ref('linux/arm64') }}\nc: {{ images.web.image }}\nd: {{ images.app }}\n"
    )
    result = locked.run("render", str(template), "--relocate", MIRROR)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        f"a: registry.internal/mirror/library/nginx:1.26.2@{digest('1')}\n"
        f"b: registry.internal/mirror/library/nginx:1.26.2@{digest('b')}\n"
        "c: registry.internal/mirror/library/nginx\n"
        f"d: ghcr.io/acme/app:2.0.0@{digest('9')}\n"
    )
    bad = locked.run("render", str(template), "--relocate", "docker.io")
    assert bad.exit_code == 2
    expected = "error: invalid --relocate 'docker.io': expected OLD=NEW, e.g. docker.io=registry.internal/mirror\n"
    assert bad.stderr == expected


# -- pin --relocate -------------------------------------------------------------------------------

MANIFEST = """\
spec:
  containers:
    - image: nginx:1.26.2   # the web server
    - image: "ghcr.io/acme/app:2.0.0"
    - image: quay.io/other/thing:1.0
"""

DOCKERFILE = """\
FROM --platform=$BUILDPLATFORM docker.io/library/postgres:16.4 AS build
FROM nginx:1.26.2@sha256:0000000000000000000000000000000000000000000000000000000000000000
COPY --from=build /a /b
"""

HELM_VALUES = """\
redis:
  image:
    registry: docker.io
    repository: bitnami/redis
    tag: 7.2.5
web:
  image:
    repository: nginx
    tag: "1.26.2"
    digest: sha256:0000000000000000000000000000000000000000000000000000000000000000
"""

KUSTOMIZATION = """\
resources:
  - app.yaml
images:
  - name: nginx
    newTag: 1.26.2
  - name: postgres
  - name: ghcr.io/acme/app
    newName: ghcr.io/acme/app
"""


def row(output: str, start: str) -> str:
    [line] = [line for line in output.splitlines() if line.startswith(start)]
    return line


def test_pin_relocated_every_file_kind(locked: Project) -> None:
    deploy = locked.directory / "deploy"
    deploy.mkdir()
    (deploy / "app.yaml").write_text(MANIFEST)
    (deploy / "Dockerfile").write_text(DOCKERFILE)
    (deploy / "values.yaml").write_text(HELM_VALUES)
    (deploy / "kustomization.yaml").write_text(KUSTOMIZATION)
    rules = ["--relocate", MIRROR, "--relocate", "ghcr.io/acme=reg.io/acme"]

    result = locked.run("pin", str(deploy), *rules)
    assert result.exit_code == 0, result.stderr
    mirror = "registry.internal/mirror"
    assert (deploy / "app.yaml").read_text() == (
        "spec:\n  containers:\n"
        f"    - image: {mirror}/library/nginx:1.26.2@{digest('1')}   # the web server\n"
        f'    - image: "reg.io/acme/app:2.0.0@{digest("9")}"\n'
        "    - image: quay.io/other/thing:1.0\n"
    )
    assert (deploy / "Dockerfile").read_text() == (
        f"FROM --platform=$BUILDPLATFORM {mirror}/library/postgres:16.4@{digest('3')} AS build\n"
        f"FROM {mirror}/library/nginx:1.26.2@{digest('1')}\n"
        "COPY --from=build /a /b\n"
    )
    assert (deploy / "values.yaml").read_text() == (
        "redis:\n  image:\n    registry: registry.internal\n    repository: mirror/bitnami/redis\n"
        f"    tag: 7.2.5@{digest('7')}\n"
        f'web:\n  image:\n    repository: {mirror}/library/nginx\n    tag: "1.26.2"\n    digest: {digest("1")}\n'
    )
    assert (deploy / "kustomization.yaml").read_text() == (
        "resources:\n  - app.yaml\nimages:\n"
        f"  - name: nginx\n    newName: {mirror}/library/nginx\n    newTag: 1.26.2\n    digest: {digest('1')}\n"
        f"  - name: postgres\n    newName: {mirror}/library/postgres\n    digest: {digest('3')}\n"
        f"  - name: ghcr.io/acme/app\n    newName: reg.io/acme/app\n    digest: {digest('9')}\n"
    )
    assert f"nginx:1.26.2 → {mirror}/library/nginx:1.26.2@" in row(result.stdout, f"{deploy / 'app.yaml'}:3 ")

    again = locked.run("pin", "--check", str(deploy), *rules)
    assert again.exit_code == 0, again.stdout  # relocated pins are recognised: idempotent
    assert "quay.io/other/thing:1.0: matches no image" in again.stderr

    write_lock(locked.directory, {**ENTRIES, "web": replace(WEB, tag="1.26.3", digest=digest("c"))})
    moved = locked.run("pin", "--check", str(deploy), *rules)
    assert moved.exit_code == 1  # a relocated pin moves with the lock
    assert f"  {mirror}/library/nginx:1.26.2@{digest('1')} → " in row(moved.stdout, f"{deploy / 'app.yaml'}:3 ")


def test_pin_without_relocate_leaves_relocated_references_alone(locked: Project) -> None:
    manifest = locked.directory / "app.yaml"
    manifest.write_text("image: nginx:1.26.2\n")
    assert locked.run("pin", str(manifest), "--relocate", MIRROR).exit_code == 0
    pinned = manifest.read_text()
    result = locked.run("pin", "--check", str(manifest))
    assert result.exit_code == 0
    assert "registry.internal/mirror/library/nginx:1.26.2@" in result.stderr
    assert "matches no image in the lock" in result.stderr
    assert manifest.read_text() == pinned


def test_pin_bad_relocate_writes_nothing(locked: Project) -> None:
    manifest = locked.directory / "app.yaml"
    manifest.write_text("image: nginx:1.26.2\n")
    result = locked.run("pin", str(manifest), "--relocate", "docker.io/library/nginx=reg.io")
    assert result.exit_code == 2
    assert "leaves no repository path" in result.stderr
    assert manifest.read_text() == "image: nginx:1.26.2\n"
