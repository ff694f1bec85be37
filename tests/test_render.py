"""``imagelock render``: templates rendered with the lock, strictly, in a sandbox, all-or-nothing, with --check."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from imagelock.lockfile import LockedImage
from tests.conftest import Project
from tests.test_pin import LOCKED, digest, write_lock

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: web
          image: {{ images.web }}
        - name: cache
          image: "{{ images.cache.image }}@{{ images.cache.digest }}"
      nodeSelector:
        tag: "{{ images.web.tag }}"
"""


@pytest.fixture
def templates(project: Project) -> Path:
    write_lock(project.directory, {**LOCKED, "web": _with_platforms(LOCKED["web"])})
    directory = project.directory / "templates"
    (directory / "k8s").mkdir(parents=True)
    (directory / "k8s" / "deployment.yaml").write_text(DEPLOYMENT)
    (directory / "compose.yaml").write_text(
        "services:\n  web:\n    image: {{ images['web'] }}\n    platform: linux/arm64\n"
        '    x-arm64: {{ images.web.ref("linux/arm64") }}\n    x-digest: {{ images.web.platforms["linux/arm64"] }}\n'
    )
    return directory


def _with_platforms(entry: LockedImage) -> LockedImage:
    return replace(entry, platforms={"linux/amd64": digest("a"), "linux/arm64": digest("b")})


def test_render_a_directory_keeps_relative_paths_and_deploy_tools_can_parse_it(
    project: Project, templates: Path
) -> None:
    out = project.directory / "rendered"
    result = project.run("render", str(templates), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "compose.yaml",
        "k8s/deployment.yaml",
    ]
    deployment = YAML(typ="safe").load((out / "k8s" / "deployment.yaml").read_text())
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == f"docker.io/library/nginx:1.26.2@{digest('1')}"
    assert containers[1]["image"] == f"docker.io/library/redis@{digest('2')}"
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"tag": "1.26.2"}
    compose = YAML(typ="safe").load((out / "compose.yaml").read_text())["services"]["web"]
    assert compose["image"] == f"docker.io/library/nginx:1.26.2@{digest('1')}"
    assert compose["x-arm64"] == f"docker.io/library/nginx:1.26.2@{digest('b')}"
    assert compose["x-digest"] == digest("b")


def test_a_single_template_goes_to_stdout(project: Project, templates: Path) -> None:
    result = project.run("render", str(templates / "k8s" / "deployment.yaml"))
    assert result.exit_code == 0, result.stderr
    assert f"image: docker.io/library/nginx:1.26.2@{digest('1')}\n" in result.stdout
    assert result.stdout.endswith('tag: "1.26.2"\n')


def test_a_single_template_to_a_file(project: Project, templates: Path) -> None:
    out = project.directory / "deployment.yaml"
    assert project.run("render", str(templates / "k8s" / "deployment.yaml"), "-o", str(out)).exit_code == 0
    assert f"image: docker.io/library/nginx:1.26.2@{digest('1')}" in out.read_text()


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("a: 1\nb: {{ images.nope }}\n", ":2: unknown image 'nope' (images.lock has: base, cache, chart, db, py"),
        ("a: 1\nb: 2\nc: {{ images.web.nope }}\n", ":3: image 'web' has no attribute 'nope' (it has image, tag"),
        ('x: {{ images.web.ref("linux/s390x") }}\n', ":1: image 'web' has no platform 'linux/s390x'"),
        ('x: {{ images.web.platforms["linux/s390x"] }}\n', ":1: 'dict object' has no attribute 'linux/s390x'"),
        ("a: 1\nb: {% if %}\n", ":2: template syntax error"),
        ("x: {{ undefined_variable }}\n", ":1: 'undefined_variable' is undefined"),
    ],
)  # fmt: skip
def test_strict_errors_name_template_and_line_and_write_nothing(
    project: Project, templates: Path, template: str, message: str
) -> None:
    broken = templates / "zz-broken.yaml"
    broken.write_text(template)
    out = project.directory / "rendered"
    result = project.run("render", str(templates), "-o", str(out))
    assert result.exit_code == 2
    assert f"error: {broken}{message}" in result.stderr
    assert not out.exists()  # the templates that did render were not written either


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ images.web.__class__.__init__.__globals__ }}",
        "{{ images._views }}",
        "{% include '/etc/passwd' %}",
        "{% import 'x.j2' as x %}",
        "{{ cycler.__init__.__globals__.os.environ }}",
    ],
)
def test_the_sandbox_refuses_files_environment_and_internals(project: Project, templates: Path, template: str) -> None:
    (templates / "evil.yaml").write_text(template)
    result = project.run("render", str(templates / "evil.yaml"))
    assert result.exit_code == 2
    assert str(templates / "evil.yaml") in result.stderr
    assert "root:" not in result.stdout
    assert "PATH" not in result.stdout


def test_check_reports_drift_and_exits_1(project: Project, templates: Path) -> None:
    out = project.directory / "rendered"
    assert project.run("render", str(templates), "-o", str(out)).exit_code == 0
    assert project.run("render", "--check", str(templates), "-o", str(out)).exit_code == 0

    (out / "compose.yaml").write_text("edited by hand\n")
    (out / "k8s" / "deployment.yaml").unlink()
    result = project.run("render", "--check", str(templates), "-o", str(out))
    assert result.exit_code == 1
    assert f"{out / 'compose.yaml'}: differs" in result.stdout
    assert f"{out / 'k8s' / 'deployment.yaml'}: differs" in result.stdout
    assert (out / "compose.yaml").read_text() == "edited by hand\n"  # --check writes nothing


def test_render_follows_the_lock(project: Project, templates: Path) -> None:
    out = project.directory / "rendered"
    assert project.run("render", str(templates), "-o", str(out)).exit_code == 0
    write_lock(project.directory, {**LOCKED, "web": _with_platforms(LOCKED["web"])} | {"cache": LOCKED["db"]})
    result = project.run("render", "--check", str(templates), "-o", str(out))
    assert result.exit_code == 1
    assert "k8s/deployment.yaml: differs" in result.stdout


def test_usage_errors(project: Project, templates: Path) -> None:
    assert project.run("render", str(templates)).exit_code == 2  # a directory needs -o
    assert project.run("render", "--check", str(templates / "compose.yaml")).exit_code == 2
    assert project.run("render", str(project.directory / "missing.yaml")).exit_code == 2
