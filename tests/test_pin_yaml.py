"""``init`` and ``pin`` on the YAML that real repositories hold: charts as directories, Helm image
maps in each chart's convention, anchors and merge keys, flow maps, locally built Compose services,
tagless references, files that do not parse. The byte-exact edits are held by the golden cases in
test_pin.py (tests/golden/pin/{anchors,flow,chart,ci}); these tests hold what init proposes and what
pin reports."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from imagelock.pinning import yamlfiles
from tests.conftest import Project
from tests.test_pin import GOLDEN, LOCKED, digest, entry, write_lock


def test_init_on_a_chart_proposes_its_app_version_for_an_empty_tag_and_notes_the_templates(project: Project) -> None:
    shutil.copytree(GOLDEN / "chart" / "before", project.directory / "charts")
    result = project.run("init", str(project.directory / "charts"))
    assert result.exit_code == 0, result.stderr
    images = tomllib.loads(project.config.read_text())["images"]
    assert {(spec["image"], spec["tag"]) for spec in images.values()} == {
        ("docker.io/bitnami/redis", "7.2.5"),  # values.yaml tag "" and the Chart.yaml annotation: one entry
        ("docker.io/library/busybox", "1.36"),
        ("python", "3.12.4"),
        ("docker.io/library/nginx", "1.26.2"),  # {registry, image}: image is a name component
        ("ubuntu", "jammy-20240125"),
    }
    templates = project.directory / "charts" / "demo" / "templates"
    assert f"{templates}: note: Helm templates not scanned" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_empty_tag_without_a_chart_beside_it_is_never_taken_for_latest(project: Project) -> None:
    values = project.directory / "values.yaml"
    values.write_text('image:\n  repository: bitnami/redis\n  tag: ""\n  digest: ""\n')
    result = project.run("init", str(values))
    assert result.exit_code == 0, result.stderr
    assert "images" not in tomllib.loads(project.config.read_text())
    reason = "tag is empty: the chart's appVersion, and no Chart.yaml beside this file says it"
    assert f"{values}:2: left alone: bitnami/redis: {reason}" in result.stderr

    write_lock(project.directory, {**LOCKED, "latest": entry("latest", "docker.io/bitnami/redis", "latest", "9")})
    pin = project.run("pin", str(values))
    assert pin.exit_code == 0
    assert f"{values}:2: left alone: bitnami/redis: {reason}" in pin.stderr
    assert values.read_text() == 'image:\n  repository: bitnami/redis\n  tag: ""\n  digest: ""\n'


def test_a_compose_service_built_locally_is_neither_proposed_nor_pinned(project: Project) -> None:
    shutil.copytree(GOLDEN / "anchors" / "before", project.directory / "deploy")
    compose = project.directory / "deploy" / "compose.yaml"
    result = project.run("init", str(compose))
    assert result.exit_code == 0, result.stderr
    images = tomllib.loads(project.config.read_text())["images"]
    assert sorted(spec["image"] for spec in images.values()) == ["nginx", "postgres", "redis"]
    built = f"{compose}:18: left alone: acme/app:dev: built locally (the service has build:), not pulled"
    assert built in result.stderr

    write_lock(project.directory)
    pin = project.run("pin", str(compose))
    assert pin.exit_code == 0, pin.stderr
    assert built in pin.stderr
    assert "image: acme/app:dev   # built here, not pulled\n" in compose.read_text()


def test_aliases_and_merge_keys_read_as_yaml_reads_them(project: Project) -> None:
    """Every service reached through an alias or a merge key runs the pinned image, edited once."""
    shutil.copytree(GOLDEN / "anchors" / "before", project.directory / "deploy")
    compose = project.directory / "deploy" / "compose.yaml"
    write_lock(project.directory)
    result = project.run("pin", str(compose))
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 3  # three values defined, whatever uses them
    services = YAML(typ="safe").load(compose.read_text())["services"]
    assert services["proxy"]["image"] == f"nginx:1.26.2@{digest('1')}"
    assert services["cache"]["image"] == services["cache-replica"]["image"] == f"redis:7.2@{digest('2')}"
    assert services["db"]["image"] == services["db-copy"]["image"] == f"postgres:16.4@{digest('3')}"


def test_init_writes_one_entry_per_distinct_reference(project: Project) -> None:
    manifest = project.directory / "pods.yaml"
    manifest.write_text(
        "a: {image: nginx}\nb: {image: 'nginx:latest'}\nc: {image: docker.io/library/nginx:latest}\n"
        f"d: {{image: nginx:1.26.2}}\ne: {{image: 'index.docker.io/library/nginx:1.26.2@{digest('1')}'}}\n"
    )
    result = project.run("init", str(manifest))
    assert result.exit_code == 0, result.stderr
    images = tomllib.loads(project.config.read_text())["images"]
    assert {(spec["image"], spec["tag"]) for spec in images.values()} == {("nginx", "latest"), ("nginx", "1.26.2")}
    tagless = next(name for name, spec in images.items() if spec["tag"] == "latest")
    tagged = next(name for name, spec in images.items() if spec["tag"] == "1.26.2")

    # what init proposed pins without ambiguity: each tagless reference to the entry following latest
    write_lock(
        project.directory,
        {
            tagged: entry(tagged, "docker.io/library/nginx", "1.26.2", "1"),
            tagless: entry(tagless, "docker.io/library/nginx", "latest", "8"),
        },
    )
    pin = project.run("pin", str(manifest))
    assert pin.exit_code == 0, pin.stderr
    pinned = YAML(typ="safe").load(manifest.read_text())
    assert [pinned[key]["image"] for key in "abcde"] == [
        f"nginx:latest@{digest('8')}",
        f"nginx:latest@{digest('8')}",
        f"docker.io/library/nginx:latest@{digest('8')}",
        f"nginx:1.26.2@{digest('1')}",
        f"index.docker.io/library/nginx:1.26.2@{digest('1')}",
    ]


def test_one_unreadable_file_in_a_directory_does_not_stop_init_or_pin(project: Project) -> None:
    deploy = project.directory / "deploy"
    deploy.mkdir()
    (deploy / "app.yaml").write_text("image: nginx:1.26.2\n")
    (deploy / "broken.yaml").write_text(
        "kind: Pod\nspec:\n  containers:\n{{- range .Values.containers }}\n  - image: {{ .image }}\n{{- end }}\n"
    )
    result = project.run("init", str(deploy))
    assert result.exit_code == 0, result.stderr
    assert f"{deploy / 'broken.yaml'}:5: warning: not YAML (could not find expected ':')" in result.stderr
    assert tomllib.loads(project.config.read_text())["images"] == {"nginx": {"image": "nginx", "tag": "1.26.2"}}
    write_lock(project.directory)
    pin = project.run("pin", str(deploy))
    assert pin.exit_code == 0, pin.stderr
    assert (deploy / "app.yaml").read_text() == f"image: nginx:1.26.2@{digest('1')}\n"


def test_a_pin_that_would_leave_a_file_unreadable_is_refused_and_nothing_is_written(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: no edit imagelock makes today breaks a file; if one ever did, pin refuses."""
    write_lock(project.directory)
    first = project.directory / "a.yaml"
    first.write_text("image: redis:7.2\n")
    second = project.directory / "b.yaml"
    second.write_text("spec:\n  image: nginx:1.26.2\n")
    monkeypatch.setattr(yamlfiles, "quoted", lambda value, quote: '"' + value)  # an unclosed quote
    result = project.run("pin", str(first), str(second))
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {first}:2: pinning would leave this file unreadable (found unexpected end of stream); "
        "nothing written\n"
    )
    assert first.read_text() == "image: redis:7.2\n"
    assert second.read_text() == "spec:\n  image: nginx:1.26.2\n"


def test_relocated_pins_name_the_mirror_in_each_convention(project: Project) -> None:
    shutil.copytree(GOLDEN / "chart" / "before", project.directory / "charts")
    write_lock(project.directory)
    values = project.directory / "charts" / "demo" / "values.yaml"
    result = project.run("pin", str(project.directory / "charts"), "--relocate", "docker.io=registry.internal/hub")
    assert result.exit_code == 0, result.stderr
    pinned = YAML(typ="safe").load(values.read_text())
    assert pinned["image"] == {
        "registry": "registry.internal",
        "repository": "hub/bitnami/redis",
        "tag": "",
        "digest": digest("7"),
        "pullPolicy": "IfNotPresent",
    }
    assert pinned["prometheus"]["image"] == {
        "repository": "registry.internal/hub/library/python",
        "tag": "3.12.4",
        "sha": "4" * 64,
    }
    controller = pinned["controller"]["image"]
    assert (controller["registry"], controller["image"], controller["digest"]) == (
        "registry.internal",
        "hub/library/nginx",
        digest("1"),
    )
    assert (
        project.run(
            "pin", "--check", str(project.directory / "charts"), "--relocate", "docker.io=registry.internal/hub"
        ).exit_code
        == 0
    )


def test_a_digest_in_a_key_the_chart_does_not_read_is_drift(project: Project) -> None:
    """``{repository, tag, sha}`` charts read ``sha``; a digest in the tag instead is not a pin."""
    write_lock(project.directory)
    values = project.directory / "values.yaml"
    values.write_text(f'image:\n  repository: python\n  tag: "3.12.4@{digest("4")}"\n  sha: ""\n')
    check = project.run("pin", "--check", str(values))
    assert check.exit_code == 1
    assert project.run("pin", str(values)).exit_code == 0
    assert values.read_text() == f'image:\n  repository: python\n  tag: "3.12.4"\n  sha: "{"4" * 64}"\n'
    assert project.run("pin", "--check", str(values)).exit_code == 0


@pytest.mark.parametrize(
    ("name", "text", "found"),
    [
        (
            "values.yaml",
            "thanosImage: {repository: quay.io/thanos/thanos, tag: v0.36.1}\n",
            "quay.io/thanos/thanos:v0.36.1",
        ),
        ("values.yaml", "image:\n  busybox:\n    repository: busybox\n    tag: '1.36'\n", "busybox:1.36"),
        (
            "values.yaml",
            "image:\n  repository: quay.io/jetstack/cert-manager-controller\n  pullPolicy: IfNotPresent\n",
            None,
        ),
        (
            ".gitlab-ci.yml",
            "services:\n  - postgres:16.4\n  - {name: 'redis:7.2', alias: cache}\n",
            "postgres:16.4 redis:7.2",
        ),
        ("compose.yaml", "services:\n  web:\n    image: ${REGISTRY}/web:1\n", None),
    ],
)
def test_what_the_scanner_finds(name: str, text: str, found: str | None) -> None:
    sites, _ = yamlfiles.scan_yaml(Path(name), text)
    assert " ".join(site.reference for site in sites) == (found or "")


def test_an_image_map_the_chart_completes_itself_is_reported_with_what_to_add() -> None:
    """cert-manager's values comment ``tag`` and ``digest`` out: the chart fills in its appVersion."""
    text = (
        "image:\n  # registry: quay.io\n  repository: quay.io/jetstack/cert-manager-controller\n  pullPolicy: Always\n"
    )
    sites, skipped = yamlfiles.scan_yaml(Path("values.yaml"), text)
    assert sites == []
    assert [(item.line, item.text, item.reason) for item in skipped] == [
        (
            3,
            "quay.io/jetstack/cert-manager-controller",
            'image map without tag, digest or sha: add the key your chart reads (digest: "")',
        )
    ]


def test_merge_keys_doubling_at_every_level_cost_each_map_once() -> None:
    """Hostile input: 60 levels of ``<<: [*prev, *prev]`` would be 2**60 merges read naively."""
    lines = ["l0: &l0 {image: 'nginx:1.26.2'}"]
    lines += [f"l{level}: &l{level} {{<<: [*l{level - 1}, *l{level - 1}]}}" for level in range(1, 60)]
    lines += ["svc:", "  <<: *l59", "  ports: [80]"]
    sites, _ = yamlfiles.scan_yaml(Path("compose.yaml"), "\n".join(lines) + "\n")
    assert [(site.line, site.reference) for site in sites] == [(1, "nginx:1.26.2")]


def test_a_kustomize_image_without_new_tag_keeps_the_tag_of_the_resources(project: Project) -> None:
    """kustomize matches ``name`` whatever tag the resources use: such an entry is no ``:latest``."""
    deploy = project.directory / "deploy"
    deploy.mkdir()
    (deploy / "kustomization.yaml").write_text("images:\n  - name: postgres\n")
    (deploy / "app.yaml").write_text("spec:\n  containers:\n    - image: postgres:16.4\n")
    init = project.run("init", str(deploy))
    assert init.exit_code == 0, init.stderr
    assert tomllib.loads(project.config.read_text())["images"] == {"postgres": {"image": "postgres", "tag": "16.4"}}
    kustomization = deploy / "kustomization.yaml"
    reason = "no newTag: the tag is the one the resources name, found there"
    assert f"{kustomization}:2: left alone: postgres: {reason}" in init.stderr

    write_lock(project.directory, {**LOCKED, "pg15": entry("pg15", "docker.io/library/postgres", "15.8", "a")})
    several = project.run("pin", str(kustomization))
    assert several.exit_code == 0, several.stderr
    assert "no newTag, and several images of docker.io/library/postgres are locked (db, pg15)" in several.stderr
    assert kustomization.read_text() == "images:\n  - name: postgres\n"

    write_lock(project.directory)
    assert project.run("pin", str(deploy)).exit_code == 0
    assert kustomization.read_text() == f"images:\n  - name: postgres\n    digest: {digest('3')}\n"


def test_a_file_starting_with_a_byte_order_mark_is_pinned_in_place(project: Project) -> None:
    """The parser does not count the mark in its columns; the edit of the first line must."""
    write_lock(project.directory)
    manifest = project.directory / "bom.yaml"
    manifest.write_bytes(b"\xef\xbb\xbfimage: nginx:1.26.2\nb:\n  image: redis:7.2\n")
    result = project.run("pin", str(manifest))
    assert result.exit_code == 0, result.stderr
    assert manifest.read_bytes() == (
        f"\ufeffimage: nginx:1.26.2@{digest('1')}\nb:\n  image: redis:7.2@{digest('2')}\n".encode()
    )
