"""Hints and messages of selection (issue 18, items 5-7): what a user reads when a spec does not say what they meant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Project, Registry
from tests.test_lock import locked

TAGS = Path(__file__).parent / "fixtures" / "tags"


def real_tags(name: str) -> list[str]:
    """The tags of a fixture file: first word of each line, comments (the source) skipped."""
    lines = (TAGS / name).read_text().splitlines()
    return [line.split()[0] for line in lines if line.strip() and not line.startswith("#")]


def stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def python_repository(registry: Registry) -> str:
    """The official python image's 3.12 slim-bookworm tags, from 3.12.0 to 3.12.14 (tests/fixtures/tags)."""
    repository = "hints/python"
    for tag in real_tags("python-3.12-slim-bookworm.txt"):
        registry.seeder.push_image(repository, tag, ("linux/amd64",), index=False)
    return repository


def python_spec(registry: Registry, repository: str, version: str) -> str:
    return f'[images.py]\nimage = "{registry.host}/{repository}"\nversion = "{version}"\nvariant = "slim-bookworm"\n'


def test_exact_x_y_keeps_its_pep440_meaning_and_warns_once(
    project: Project, registry: Registry, python_repository: str
) -> None:
    project.write(python_spec(registry, python_repository, "==3.12"))
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert locked(project)["py"]["tag"] == "3.12.0-slim-bookworm"
    warnings = [line for line in stderr_lines(result.stderr) if line.startswith("warning:")]
    assert warnings == [
        'warning: [images.py]: version "==3.12" means exactly 3.12.0 (PEP 440), but newer tags exist'
        ' (newest 3.12.14-slim-bookworm): did you mean "==3.12.*"?'
    ]


def test_exact_x_y_matching_nothing_says_what_was_likely_meant(
    project: Project, registry: Registry, python_repository: str
) -> None:
    project.write(
        python_spec(registry, python_repository, "==3.12")
        + 'exclude = ["3.12.0-slim-bookworm", "3.12-slim-bookworm"]\n'
    )
    result = project.run("lock")
    assert result.exit_code == 1
    (line,) = stderr_lines(result.stderr)
    assert line.startswith(f"error: [images.py]: no tag of {registry.host}/{python_repository} matches ==3.12")
    assert line.endswith(
        '; version "==3.12" means exactly 3.12.0 (PEP 440), but newer tags exist (newest 3.12.14-slim-bookworm):'
        ' did you mean "==3.12.*"?'
    )
    assert not project.lock.exists()


def test_why_shows_the_exact_x_y_hint(project: Project, registry: Registry, python_repository: str) -> None:
    project.write(python_spec(registry, python_repository, "==3.12"))
    result = project.run("why", "py")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[1].strip().startswith('hint: version "==3.12" means exactly 3.12.0')
    assert result.stdout.splitlines()[1].endswith('did you mean "==3.12.*"?')
    document = json.loads(project.run("why", "py", "--json").stdout)
    assert document["hint"].endswith('did you mean "==3.12.*"?')


@pytest.mark.parametrize("version", ["==3.12.*", "==3.12.14", ">=3.12,<3.13"])
def test_specs_that_say_what_they_mean_get_no_hint(
    project: Project, registry: Registry, python_repository: str, version: str
) -> None:
    project.write(python_spec(registry, python_repository, version))
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert locked(project)["py"]["tag"] == "3.12.14-slim-bookworm"
    assert "did you mean" not in result.stderr
    assert "hint:" not in project.run("why", "py").stdout


@pytest.mark.parametrize(
    ("version", "hint"),
    [
        ("1.26", 'did you mean "==1.26.*"? (a bare version needs an operator)'),
        ("^1.2", """did you mean ">=1.2,<2"? (PEP 440 has no '^')"""),
        ("^0.3", """did you mean ">=0.3,<0.4"? (PEP 440 has no '^')"""),
        ("~1.2", """did you mean "~=1.2.0"? (PEP 440 writes '~' as '~=')"""),
        (">=1.25 <1.26", 'did you mean ">=1.25,<1.26"? (clauses are separated by commas)'),
        ("1.26.*", """did you mean "==1.26.*"? (a wildcard needs '==')"""),
    ],
)
def test_an_invalid_specifier_names_what_was_likely_meant(project: Project, version: str, hint: str) -> None:
    project.write(f'[images.web]\nimage = "registry.invalid/nginx"\nversion = "{version}"\n')
    result = project.run("lock")
    assert result.exit_code == 2
    assert stderr_lines(result.stderr) == [
        f"error: {project.config}: [images.web]: key 'version': invalid PEP 440 specifier {version!r} ({hint})"
    ]
    assert not project.lock.exists()


def test_an_invalid_specifier_without_a_likely_meaning_gets_no_guess(project: Project) -> None:
    project.write('[images.web]\nimage = "registry.invalid/nginx"\nversion = "latest"\n')
    result = project.run("lock")
    assert result.exit_code == 2
    assert stderr_lines(result.stderr) == [
        f"error: {project.config}: [images.web]: key 'version': invalid PEP 440 specifier 'latest'"
    ]


def test_a_leading_dash_in_variant_is_an_input_error_with_a_hint(project: Project) -> None:
    project.write('[images.web]\nimage = "registry.invalid/nginx"\nversion = ">=1.26"\nvariant = "-alpine"\n')
    result = project.run("lock")
    assert result.exit_code == 2
    assert stderr_lines(result.stderr) == [
        f"error: {project.config}: [images.web]: key 'variant': invalid variant '-alpine'"
        ' (the dash is implied: variant = "alpine" matches 1.2.3-alpine)'
    ]
    assert not project.lock.exists()


def test_why_tells_a_pattern_mismatch_from_captured_text_that_is_not_a_version(
    project: Project, registry: Registry
) -> None:
    # nginx's real tags (docker-library/official-images, library/nginx): stable-alpine beside 1.26.2-alpine.
    for tag in ("1.27.1-alpine", "1.26.2-alpine", "1.26.2-alpine3.19", "1.26.2-perl", "stable-alpine"):
        registry.seeder.push_image("hints/nginx", tag, ("linux/amd64",), index=False)
    project.write(f'[images.web]\nimage = "{registry.host}/hints/nginx"\ntag-pattern = "(?P<version>[^-]+)-alpine"\n')
    verdicts = dict(line.split(None, 1) for line in project.run("why", "web").stdout.splitlines()[1:])
    assert verdicts["1.27.1-alpine"] == "chosen"
    assert verdicts["stable-alpine"] == "captured text is not a version"
    assert verdicts["1.26.2-perl"] == "pattern mismatch"
    assert verdicts["1.26.2-alpine3.19"] == "pattern mismatch"

    project.write(
        f'[images.web]\nimage = "{registry.host}/hints/nginx"\ntag-pattern = "(?P<version>[^-]+)-alpine"\n'
        'version = ">=2"\n'
    )
    result = project.run("lock")
    assert result.exit_code == 1
    assert "1 captured text is not a version" in result.stderr
    assert "pattern mismatch" in result.stderr


def test_why_says_same_version_less_specific_for_equal_versions(project: Project, registry: Registry) -> None:
    for tag in ("2.1", "2.1.0", "v2.1.0", "2.0.9"):
        registry.seeder.push_image("hints/equal", tag)
    project.write(f'[images.app]\nimage = "{registry.host}/hints/equal"\nversion = ">=2"\n')
    verdicts = dict(line.split(None, 1) for line in project.run("why", "app").stdout.splitlines()[1:])
    assert verdicts == {
        "2.1.0": "chosen",
        "v2.1.0": "same version",  # as specific, but lexically later
        "2.1": "same version, less specific",
        "2.0.9": "older",
    }


def test_the_lock_line_says_how_many_newer_candidates_were_skipped_and_why(
    project: Project, registry: Registry
) -> None:
    repository = "hints/s390x"
    registry.seeder.push_image(repository, "7.4.9", ("linux/amd64", "linux/s390x"))
    for tag in ("7.4.10", "7.4.11"):
        registry.seeder.push_image(repository, tag, ("linux/amd64",))
    project.write(
        f'[images.app]\nimage = "{registry.host}/{repository}"\nversion = ">=7.4"\n'
        'platforms = ["linux/amd64", "linux/s390x"]\n'
        f'[images.plain]\nimage = "{registry.host}/{repository}"\nversion = ">=7.4"\nplatforms = ["linux/amd64"]\n'
    )
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert lines["app"].startswith("app    added 7.4.9  sha256:")
    assert lines["app"].endswith("(2 newer skipped: missing linux/s390x)")
    assert lines["plain"].startswith("plain  added 7.4.11  sha256:")
    assert "skipped" not in lines["plain"]
    document = json.loads(project.run("lock", "--upgrade", "--dry-run", "--json").stdout)
    skipped = {change["name"]: change["skipped"] for change in document["changes"]}
    assert skipped == {"app": "2 newer skipped: missing linux/s390x", "plain": None}


def test_no_candidate_providing_the_platforms_names_the_missing_ones(project: Project, registry: Registry) -> None:
    repository = "hints/nos390x"
    for tag in ("7.4.10", "7.4.11"):
        registry.seeder.push_image(repository, tag, ("linux/amd64",))
    project.write(
        f'[images.app]\nimage = "{registry.host}/{repository}"\nversion = ">=7.4"\n'
        'platforms = ["linux/amd64", "linux/s390x", "linux/ppc64le"]\n'
    )
    result = project.run("lock")
    assert result.exit_code == 1
    assert stderr_lines(result.stderr) == [
        f"error: [images.app]: no tag of {registry.host}/{repository} matching >=7.4 provides"
        " linux/amd64, linux/ppc64le, linux/s390x: missing linux/ppc64le, linux/s390x"
        " (2 candidate(s) skipped; newest 7.4.11 lacks linux/ppc64le, linux/s390x)"
    ]
    assert not project.lock.exists()
