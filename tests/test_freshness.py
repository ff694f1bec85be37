"""Freshness rules (issue 21): min-age, exclude-newer, and when an image was made, against the real registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import Project, Registry
from tests.support.docker_hub import docker_hub_tags
from tests.support.registry import PushedImage
from tests.test_lock import locked

CREATED = "org.opencontainers.image.created"


def ago(**elapsed: float) -> str:
    return (datetime.now(UTC) - timedelta(**elapsed)).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")


def spec(registry: Registry, repository: str, extra: str = "", name: str = "app") -> str:
    return f'[images.{name}]\nimage = "{registry.host}/{repository}"\nversion = ">=1.0"\n{extra}'


def lines_by_name(text: str) -> dict[str, str]:
    return {line.split()[0]: line for line in text.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def aged(empty_registry: Registry) -> str:
    """1.0.0 made 30 days ago, 1.1.0 10 days ago, 1.2.0 two days ago (config ``created``), 1.3.0 with no time."""
    repository = "fresh/aged"
    seeder = empty_registry.seeder
    seeder.push_image(repository, "1.0.0", ("linux/amd64",), created=ago(days=30))
    seeder.push_image(repository, "1.1.0", ("linux/amd64",), created=ago(days=10))
    seeder.push_image(repository, "1.2.0", ("linux/amd64",), created=ago(days=2, hours=1))
    seeder.push_image(repository, "1.3.0", ("linux/amd64",))
    return repository


def test_min_age_skips_candidates_younger_than_it_and_the_lock_line_says_so(
    project: Project, empty_registry: Registry, aged: str
) -> None:
    project.write(spec(empty_registry, aged, 'min-age = "7d"\n'))
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert locked(project)["app"]["tag"] == "1.1.0"
    line = lines_by_name(result.stdout)["app"]
    assert line.endswith("(2 newer skipped: time unknown; held back as too new (min-age 7d))")


def test_min_age_in_defaults_applies_to_every_entry(project: Project, empty_registry: Registry, aged: str) -> None:
    project.write('[defaults]\nmin-age = "2w"\n' + spec(empty_registry, aged))
    assert project.run("lock").exit_code == 0
    assert locked(project)["app"]["tag"] == "1.0.0"


def test_why_says_which_rule_passed_each_candidate_over(project: Project, empty_registry: Registry, aged: str) -> None:
    project.write(spec(empty_registry, aged, 'min-age = "7d"\n'))
    result = project.run("why", "app")
    assert result.exit_code == 0, result.stderr
    verdicts = {line.split()[0]: line.split(None, 1)[1] for line in result.stdout.splitlines()[1:]}
    assert verdicts["1.3.0"] == 'time unknown (min-age-unknown = "skip")'
    assert verdicts["1.2.0"] == "too new: 2d old, min-age 7d"
    assert verdicts["1.1.0"] == "chosen"


def test_an_unknown_time_is_allowed_only_when_asked(project: Project, empty_registry: Registry, aged: str) -> None:
    project.write(spec(empty_registry, aged, 'min-age = "1d"\nmin-age-unknown = "allow"\n'))
    assert project.run("lock").exit_code == 0
    assert locked(project)["app"]["tag"] == "1.3.0"
    why = project.run("why", "app")
    verdict = 'chosen (time unknown, min-age-unknown = "allow"), locked'  # the lock pins it too
    assert why.stdout.splitlines()[1].split(None, 1) == ["1.3.0", verdict]


def test_the_created_annotation_comes_before_the_config_time(project: Project, empty_registry: Registry) -> None:
    repository = "fresh/annotated"
    seeder = empty_registry.seeder
    seeder.push_image(repository, "1.0.0", ("linux/amd64",), created=ago(days=30))
    # an old config (a reproducible build's epoch) in an image annotated as made an hour ago
    seeder.push_image(repository, "1.1.0", ("linux/amd64",), created=ago(days=400), annotations={CREATED: ago(hours=1)})
    project.write(spec(empty_registry, repository, 'min-age = "7d"\n'))
    assert project.run("lock").exit_code == 0
    assert locked(project)["app"]["tag"] == "1.0.0"


def test_an_index_is_as_new_as_the_newest_config_of_the_required_platforms(
    project: Project, empty_registry: Registry
) -> None:
    repository = "fresh/index"
    seeder = empty_registry.seeder
    seeder.push_image(repository, "1.0.0", created=ago(days=30))
    seeder.push_image(repository, "1.1.0", created={"linux/amd64": ago(days=20), "linux/arm64": ago(days=1)})
    project.write(
        spec(empty_registry, repository, 'min-age = "7d"\nplatforms = ["linux/amd64"]\n', name="amd")
        + spec(empty_registry, repository, 'min-age = "7d"\nplatforms = ["linux/amd64", "linux/arm64"]\n', name="both")
    )
    assert project.run("lock").exit_code == 0
    assert locked(project)["amd"]["tag"] == "1.1.0"
    assert locked(project)["both"]["tag"] == "1.0.0"


def test_no_candidate_old_enough_is_one_clear_error(project: Project, empty_registry: Registry, aged: str) -> None:
    project.write(spec(empty_registry, aged, 'min-age = "52w"\n'))
    result = project.run("lock")
    assert result.exit_code == 1  # a resolution failure, like no tag matching the spec
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: [images.app]: no tag of {empty_registry.host}/{aged} matching the spec is old enough"
        ' (4 held back; newest 1.3.0: time unknown (min-age-unknown = "skip"))'
    )
    assert not project.lock.exists()


def test_a_followed_tag_that_moved_to_a_too_new_digest_keeps_its_pin(
    project: Project, empty_registry: Registry
) -> None:
    repository = "fresh/followed"
    seeder = empty_registry.seeder
    old = seeder.push_image(repository, "stable", ("linux/amd64",), created=ago(days=30))
    project.write(f'[images.app]\nimage = "{empty_registry.host}/{repository}"\ntag = "stable"\nmin-age = "7d"\n')
    assert project.run("lock").exit_code == 0
    before = project.lock.read_bytes()
    seeder.push_image(repository, "stable", ("linux/amd64",), created=ago(hours=3))
    result = project.run("update")
    assert result.exit_code == 0, result.stderr
    assert lines_by_name(result.stdout)["app"].endswith("stable unchanged (held back: too new)")
    assert project.lock.read_bytes() == before
    assert locked(project)["app"]["digest"] == old.digest


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('min-age = "7"', "key 'min-age': invalid duration '7' (a number and a unit: m, h, d or w, as in \"7d\")"),
        ('min-age = "1y"', "key 'min-age': invalid duration '1y'"),
        ('exclude-newer = "2026-11-01"', "key 'exclude-newer': invalid time '2026-11-01' (RFC 3339"),
        ('min-age-unknown = "yes"', "key 'min-age-unknown': expected \"skip\" or \"allow\", got 'yes'"),
    ],
)
def test_a_bad_freshness_key_is_an_input_error(project: Project, line: str, message: str) -> None:
    project.write(f'[images.app]\nimage = "example.com/app"\nversion = ">=1"\n{line}\n')
    result = project.run("lock")
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_why_json_gives_each_examined_candidate_its_time_and_age(
    project: Project, empty_registry: Registry, aged: str
) -> None:
    project.write(spec(empty_registry, aged, 'min-age = "7d"\n'))
    result = project.run("why", "app", "--json")
    assert result.exit_code == 0, result.stderr
    tags = {entry["tag"]: entry for entry in json.loads(result.stdout)["tags"]}
    assert (tags["1.3.0"]["made"], tags["1.3.0"]["age"]) == (None, None)
    assert tags["1.2.0"]["age"] == "2d"
    assert tags["1.1.0"]["age"] == "1w"
    assert tags["1.1.0"]["made"].endswith("Z")
    assert tags["1.0.0"]["made"] is None  # not examined: it could not win


def moment(**elapsed: float) -> str:
    return (datetime.now(UTC) - timedelta(**elapsed)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_exclude_newer_resolves_as_if_it_were_that_time(project: Project, empty_registry: Registry, aged: str) -> None:
    cutoff = moment(days=20)
    project.write(spec(empty_registry, aged, f'exclude-newer = "{cutoff}"\n'))
    assert project.run("lock").exit_code == 0
    assert locked(project)["app"]["tag"] == "1.0.0"
    verdicts = {line.split()[0]: line.split(None, 1)[1] for line in project.run("why", "app").stdout.splitlines()[1:]}
    assert verdicts["1.1.0"].startswith("made after exclude-newer (")
    assert verdicts["1.1.0"].endswith(f" > {cutoff})")


def test_the_exclude_newer_option_is_part_of_the_locks_inputs(
    project: Project, empty_registry: Registry, aged: str
) -> None:
    cutoff = moment(days=5)
    project.write(spec(empty_registry, aged))
    result = project.run("lock", "--exclude-newer", cutoff)
    assert result.exit_code == 0, result.stderr
    assert locked(project)["app"]["tag"] == "1.1.0"
    text = project.lock.read_text()
    assert f"imagelock lock --exclude-newer {cutoff}" in text
    assert f"exclude-newer {cutoff}" in str(locked(project)["app"]["constraint"])
    before = project.lock.read_bytes()
    again = project.run("lock", "--exclude-newer", cutoff)
    assert again.exit_code == 0
    assert again.stdout == ""
    assert project.lock.read_bytes() == before  # time passed, nothing else changed: not rewritten
    outdated = project.run("outdated", "--exclude-newer", cutoff)
    assert (outdated.exit_code, outdated.stdout.strip()) == (0, "every image is up to date")
    assert project.run("outdated").stdout.split()[5:9] == ["app", "1.1.0", "1.3.0", "-"]


def test_an_unchanged_entry_keeps_its_pin_however_much_time_passes(project: Project, empty_registry: Registry) -> None:
    repository = "fresh/aging"
    empty_registry.seeder.push_image(repository, "1.0.0", ("linux/amd64",), created=ago(days=30))
    project.write(spec(empty_registry, repository, 'min-age = "7d"\n'))
    assert project.run("lock").exit_code == 0
    before = project.lock.read_bytes()
    # a newer release, already old enough: only an update may take it, a lock run keeps the pin
    empty_registry.seeder.push_image(repository, "1.1.0", ("linux/amd64",), created=ago(days=8))
    assert project.run("lock").exit_code == 0
    assert project.lock.read_bytes() == before


@pytest.mark.parametrize("command", ["lock", "update", "outdated", "why"])
def test_a_bad_exclude_newer_option_is_an_input_error(project: Project, empty_registry: Registry, command: str) -> None:
    project.write(spec(empty_registry, "fresh/none"))
    arguments = [command, "app"] if command == "why" else [command]
    result = project.run(*arguments, "--exclude-newer", "yesterday")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: --exclude-newer: invalid time 'yesterday' (RFC 3339, as in \"2026-11-01T00:00:00Z\")"
    )
    assert not project.lock.exists()


def short(digest: str) -> str:
    return f"sha256:{digest.removeprefix('sha256:')[:12]}…"


def moved_project(project: Project, registry: Registry, repository: str, extra: str = "") -> PushedImage:
    """A project locking ``repository``'s 1.26.3 (a version), which is then re-pushed."""
    old = registry.seeder.push_image(repository, "1.26.3", ("linux/amd64",), salt="first")
    project.write(f'[images.web]\nimage = "{registry.host}/{repository}"\nversion = ">=1.26"\n{extra}')
    assert project.run("lock").exit_code == 0
    return old


def test_a_version_tag_that_moved_is_told_from_a_rebuild(project: Project, empty_registry: Registry) -> None:
    old = moved_project(project, empty_registry, "moves/warn")
    new = empty_registry.seeder.push_image("moves/warn", "1.26.3", ("linux/amd64",), salt="second")
    outdated = project.run("outdated", "--json")
    assert [(c["change"], c["old"]["digest"], c["new"]["digest"]) for c in json.loads(outdated.stdout)["outdated"]] == [
        ("tag moved", old.digest, new.digest)
    ]
    verify = project.run("verify")
    assert verify.exit_code == 0, verify.stdout
    assert f"tag moved: tag 1.26.3 {old.digest} → {new.digest}" in verify.stdout.replace("\n", "")
    result = project.run("update")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"web  1.26.3 tag moved  {short(old.digest)} → {short(new.digest)}\n"
    assert f"warning: [images.web]: tag 1.26.3 moved: {old.digest} → {new.digest}" in result.stderr
    assert locked(project)["web"]["digest"] == new.digest


def test_on_tag_move_fail_keeps_the_old_pin_and_exits_1(project: Project, empty_registry: Registry) -> None:
    old = moved_project(project, empty_registry, "moves/fail", 'on-tag-move = "fail"\n')
    before = project.lock.read_bytes()
    new = empty_registry.seeder.push_image("moves/fail", "1.26.3", ("linux/amd64",), salt="second")
    result = project.run("update")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f'error: [images.web]: tag 1.26.3 moved: {old.digest} → {new.digest} (on-tag-move = "fail");'
        f" 1 moved tag(s), {project.lock} not changed"
    )
    assert project.lock.read_bytes() == before
    verify = project.run("verify", "--json")
    assert verify.exit_code == 1
    (image,) = json.loads(verify.stdout)["images"]
    assert image["problems"] == [f"tag moved: tag 1.26.3 {old.digest} → {new.digest}"]


def test_a_new_index_listing_the_same_platform_digests_is_re_indexed(
    project: Project, empty_registry: Registry
) -> None:
    repository = "moves/reindexed"
    seeder = empty_registry.seeder
    first = seeder.push_image(repository, "2.0.0", attestations=False)
    project.write(
        f'[images.web]\nimage = "{empty_registry.host}/{repository}"\nversion = ">=2"\non-tag-move = "fail"\n'
    )
    assert project.run("lock").exit_code == 0
    second = seeder.push_image(repository, "2.0.0")  # the same platform manifests, now with attestations
    assert second.digest != first.digest
    assert second.platforms == first.platforms
    verify = project.run("verify", "--json")
    assert verify.exit_code == 0
    assert json.loads(verify.stdout)["images"][0]["notes"] == [
        f"re-indexed: tag 2.0.0 {first.digest} → {second.digest}"
    ]
    result = project.run("update")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"web  2.0.0 re-indexed  {short(first.digest)} → {short(second.digest)}\n"


def test_on_tag_move_is_checked(project: Project) -> None:
    project.write('[defaults]\non-tag-move = "ignore"\n')
    result = project.run("lock")
    assert result.exit_code == 2
    assert "key 'on-tag-move': expected \"warn\" or \"fail\", got 'ignore'" in result.stderr


def test_outdated_shows_the_age_of_the_newest_allowed_tag(project: Project, empty_registry: Registry) -> None:
    repository = "fresh/outdated"
    seeder = empty_registry.seeder
    seeder.push_image(repository, "1.0.0", ("linux/amd64",), created=ago(days=30))
    project.write(spec(empty_registry, repository, 'min-age = "7d"\n'))
    assert project.run("lock").exit_code == 0
    seeder.push_image(repository, "1.1.0", ("linux/amd64",), created=ago(days=9))
    seeder.push_image(repository, "1.2.0", ("linux/amd64",), created=ago(days=1))
    header, row = [line.split() for line in project.run("outdated").stdout.splitlines()]
    assert header == ["NAME", "LOCKED", "LATEST", "AGE", "CHANGE"]
    assert row == ["app", "1.0.0", "1.1.0", "1w", "upgraded"]
    (change,) = json.loads(project.run("outdated", "--json").stdout)["outdated"]
    assert (change["new"]["tag"], change["age"]) == ("1.1.0", "1w")
    assert datetime.fromisoformat(change["made"]) < datetime.now(UTC) - timedelta(days=8)


def test_a_registry_tag_api_dates_images_that_carry_no_time(project: Project, empty_registry: Registry) -> None:
    repository = "fresh/undated"
    for tag in ("1.0.0", "1.1.0", "1.2.0"):
        empty_registry.seeder.push_image(repository, tag, ("linux/amd64",))  # no annotation, no config time
    with docker_hub_tags() as hub:
        hub.pushed = {f"{repository}:1.0.0": ago(days=40), f"{repository}:1.1.0": ago(days=3)}
        project.write(
            f'[registries."{empty_registry.host}"]\ntag-api = "{hub.host}"\n'
            + spec(empty_registry, repository, 'min-age = "7d"\n')
        )
        result = project.run("lock")
        assert result.exit_code == 0, result.stderr
        assert locked(project)["app"]["tag"] == "1.0.0"
        verdicts = {
            line.split()[0]: line.split(None, 1)[1] for line in project.run("why", "app").stdout.splitlines()[1:]
        }
        assert verdicts["1.2.0"] == 'time unknown (min-age-unknown = "skip")'  # the API does not know it: 404
        assert verdicts["1.1.0"] == "too new: 3d old, min-age 7d"
        assert "/v2/namespaces/fresh/repositories/undated/tags/1.1.0" in hub.asked


def test_the_tag_api_is_asked_only_when_the_image_has_no_time(project: Project, empty_registry: Registry) -> None:
    repository = "fresh/dated"
    empty_registry.seeder.push_image(repository, "1.0.0", ("linux/amd64",), created=ago(days=30))
    with docker_hub_tags() as hub:
        project.write(
            f'[registries."{empty_registry.host}"]\ntag-api = "{hub.host}"\n'
            + spec(empty_registry, repository, 'min-age = "7d"\n')
        )
        assert project.run("lock").exit_code == 0
        assert hub.asked == []


def test_a_bad_tag_api_host_is_an_input_error(project: Project) -> None:
    project.write('[registries."example.com"]\ntag-api = "https://hub.docker.com/v2"\n')
    result = project.run("lock")
    assert result.exit_code == 2
    assert "key 'tag-api': invalid host (expected host[:port], as in \"hub.docker.com\")" in result.stderr
