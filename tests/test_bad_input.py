"""A corpus of broken images.toml and images.lock files: each is one clear line, exit 2, and nothing changed.

Every image below lives on 127.0.0.1:9, where nothing listens: a case that reached the network
would fail with exit 3, not 2, so these tests also prove that bad input is refused before any request.
"""

from __future__ import annotations

import pytest

from tests.conftest import Project

OK_IMAGE = '[images.app]\nimage = "127.0.0.1:9/team/app"\ntag = "1.0"\n'
DIGEST = "sha256:" + "a" * 64
VALID_LOCK_HEAD = f'version = 1\ninputs = "{DIGEST}"\n'


def entry_with(old: str, new: str) -> str:
    """A lock whose one entry has ``old`` replaced by ``new``."""
    return VALID_LOCK_HEAD + LOCK_ENTRY.replace(old, new)


LOCK_ENTRY = (
    '[images.app]\nimage = "127.0.0.1:9/team/app"\ntag = "1.0"\n'
    f'digest = "{DIGEST}"\nmedia-type = "application/vnd.oci.image.index.v1+json"\nspec = "{DIGEST}"\n\n'
    f'[images.app.platforms]\n"linux/amd64" = "{DIGEST}"\n'
)
PREVIOUS_LOCK = b"# the previous lock: whatever it holds, a failed run must leave it byte for byte\n"

# (case id, images.toml text, what the one error line must say)
CONFIGS: list[tuple[str, str | bytes, str]] = [
    ("toml-syntax", "[images.app\nimage = 1\n", "invalid TOML"),
    ("toml-unterminated-string", '[images.app]\nimage = "nginx\n', "invalid TOML"),
    ("toml-duplicate-table", OK_IMAGE + OK_IMAGE, "invalid TOML"),
    ("toml-duplicate-key", '[images.app]\nimage = "a"\nimage = "b"\n', "invalid TOML"),
    ("binary-garbage", b"\x00\x01\x02\xff\xfe\x89PNG\r\n", "not UTF-8"),
    ("latin-1-text", '[images.app]\nimage = "caf\xe9"\n'.encode("latin-1"), "not UTF-8"),
    ("unknown-top-level-key", 'imagez = "nginx"\n', "unknown key 'imagez'"),
    ("future-version", "version = 2\n" + OK_IMAGE, "version"),
    ("version-not-integer", 'version = "1"\n' + OK_IMAGE, "version"),
    ("images-not-a-table", 'images = ["nginx"]\n', "[images]"),
    ("image-entry-wrong-type", "[images]\napp = 3\n", "[images.app]: expected a table"),
    ("unknown-image-key", OK_IMAGE + 'colour = "blue"\n', "unknown key 'colour'"),
    ("image-missing", '[images.app]\ntag = "1"\n', "image"),
    ("image-wrong-type", "[images.app]\nimage = 7\ntag = '1'\n", "key 'image'"),
    ("image-uppercase", '[images.app]\nimage = "Nginx"\ntag = "1"\n', "key 'image'"),
    ("image-empty", '[images.app]\nimage = ""\ntag = "1"\n', "key 'image'"),
    ("image-bad-host", '[images.app]\nimage = "-bad-.host/app"\ntag = "1"\n', "key 'image'"),
    ("image-too-long", f'[images.app]\nimage = "{"a/" * 200}b"\ntag = "1"\n', "key 'image'"),
    ("image-with-tag", '[images.app]\nimage = "nginx:1.25"\nversion = ">=1"\n', "has a tag or digest"),
    ("image-with-digest", f'[images.app]\nimage = "nginx@{DIGEST}"\ntag = "1"\n', "has a tag or digest"),
    ("no-selector", '[images.app]\nimage = "nginx"\n', "needs one of 'version', 'tag' or 'tag-pattern'"),
    ("tag-and-version", '[images.app]\nimage = "nginx"\ntag = "1"\nversion = ">=1"\n', "cannot be combined"),
    ("tag-invalid", '[images.app]\nimage = "nginx"\ntag = "-1"\n', "key 'tag'"),
    ("tag-wrong-type", '[images.app]\nimage = "nginx"\ntag = 1.25\n', "key 'tag'"),
    ("specifier-invalid", '[images.app]\nimage = "nginx"\nversion = "=>1.25"\n', "invalid PEP 440 specifier"),
    ("specifier-wrong-type", '[images.app]\nimage = "nginx"\nversion = 1\n', "key 'version'"),
    ("variant-invalid", '[images.app]\nimage = "nginx"\nversion = ">=1"\nvariant = "al pine"\n', "key 'variant'"),
    ("regex-invalid", '[images.app]\nimage = "nginx"\ntag-pattern = "(unclosed"\n', "invalid regex"),
    ("regex-without-group", '[images.app]\nimage = "nginx"\ntag-pattern = "^v\\\\d+$"\n', "named group 'version'"),
    ("exclude-wrong-type", '[images.app]\nimage = "nginx"\nversion = ">=1"\nexclude = "1.2"\n', "key 'exclude'"),
    ("prereleases-wrong-type", '[images.app]\nimage = "nginx"\nversion = ">=1"\nprereleases = "no"\n', "prereleases"),
    ("platform-invalid", OK_IMAGE + 'platforms = ["linux"]\n', "platform"),
    (
        "platform-unknown-architecture",
        OK_IMAGE + 'platforms = ["linux/amd46"]\n',
        "[images.app]: key 'platforms': unknown architecture 'amd46' in 'linux/amd46' (known: 386, amd64, ",
    ),
    (
        "default-platform-unknown-architecture",
        '[defaults]\nplatforms = ["linux/arm64", "linux/aarch46"]\n' + OK_IMAGE,
        "[defaults]: key 'platforms': unknown architecture 'aarch46'",
    ),
    ("platforms-wrong-type", OK_IMAGE + 'platforms = "linux/amd64"\n', "platforms"),
    ("duplicate-names-by-case", OK_IMAGE + OK_IMAGE.replace("images.app", "images.APP"), "duplicate name"),
    ("name-invalid", '[images."-app"]\nimage = "nginx"\ntag = "1"\n', "invalid name"),
    ("defaults-unknown-key", '[defaults]\nplatform = ["linux/amd64"]\n' + OK_IMAGE, "unknown key 'platform'"),
    ("registry-unknown-key", '[registries."r.example"]\nsecure = true\n' + OK_IMAGE, "unknown key 'secure'"),
    ("registry-bad-host", '[registries."not a host"]\ninsecure = true\n' + OK_IMAGE, "not a host"),
    ("registry-timeout-negative", '[registries."r.example"]\ntimeout = -1\n' + OK_IMAGE, "timeout"),
    ("policy-unknown-method", '[policies.p]\nmethod = "gpg"\n' + OK_IMAGE, "key 'method'"),
    ("policy-missing-key-file", '[policies.p]\nmethod = "cosign"\nkey = "nope.pub"\n' + OK_IMAGE, "cannot read"),
    ("verify-unknown-policy", OK_IMAGE + 'verify = "nope"\n', "unknown policy 'nope'"),
    ("empty-inline-verify", OK_IMAGE + "verify = {}\n", "method"),
]

# (case id, images.lock text, what the one error line must say); images.toml beside it is valid
LOCKS: list[tuple[str, str | bytes, str]] = [
    ("lock-toml-syntax", VALID_LOCK_HEAD + "[images.app\n", "not a valid lock file"),
    ("lock-binary-garbage", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a valid lock file"),
    ("lock-empty", "", "key 'version'"),
    ("lock-future-version", f'version = 2\ninputs = "{DIGEST}"\n', "newer than this imagelock understands"),
    ("lock-version-string", f'version = "1"\ninputs = "{DIGEST}"\n', "key 'version'"),
    ("lock-unknown-top-level", VALID_LOCK_HEAD + 'generated = "today"\n', "unknown key 'generated'"),
    ("lock-inputs-not-a-digest", 'version = 1\ninputs = "yesterday"\n', "key 'inputs'"),
    (
        "lock-entry-unknown-key",
        entry_with('tag = "1.0"', 'tag = "1.0"\nnote = "x"'),
        "unknown key 'note'",
    ),
    (
        "lock-digest-malformed",
        entry_with(f'digest = "{DIGEST}"', 'digest = "sha256:abc"'),
        "digest",
    ),
    (
        "lock-digest-upper-case",
        entry_with(f'digest = "{DIGEST}"', f'digest = "{DIGEST.upper()}"'),
        "digest",
    ),
    (
        "lock-platform-digest-malformed",
        entry_with(f'"linux/amd64" = "{DIGEST}"', '"linux/amd64" = "latest"'),
        "linux/amd64",
    ),
    ("lock-platform-key-malformed", entry_with('"linux/amd64"', '"amd64"'), "amd64"),
    ("lock-image-not-a-reference", entry_with("127.0.0.1:9/team/app", "Team App"), "image"),
    ("lock-tag-invalid", entry_with('tag = "1.0"', 'tag = "-x"'), "tag"),
    ("lock-missing-digest", entry_with(f'digest = "{DIGEST}"\n', ""), "digest"),
    (
        "lock-verified-not-strings",
        entry_with('tag = "1.0"', 'tag = "1.0"\nverified = {method = 1}'),
        "key 'verified'",
    ),
]


def _write(project: Project, name: str, content: str | bytes) -> None:
    path = project.directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def _assert_one_clear_line(stderr: str, fragment: str, file_name: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert file_name in lines[0], stderr
    assert fragment in lines[0], stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(("content", "fragment"), [case[1:] for case in CONFIGS], ids=[case[0] for case in CONFIGS])
def test_a_broken_images_toml_is_one_line_exit_2_and_changes_nothing(
    project: Project, content: str | bytes, fragment: str
) -> None:
    (project.directory / "keys").mkdir()
    _write(project, "images.toml", content)
    project.lock.write_bytes(PREVIOUS_LOCK)
    for command in ("lock", "check", "outdated"):
        result = project.run(command)
        assert result.exit_code == 2, (command, result.stderr)
        _assert_one_clear_line(result.stderr, fragment, "images.toml")
    assert project.lock.read_bytes() == PREVIOUS_LOCK
    assert (project.directory / "images.toml").read_bytes() == (
        content if isinstance(content, bytes) else content.encode()
    )


@pytest.mark.parametrize(("content", "fragment"), [case[1:] for case in LOCKS], ids=[case[0] for case in LOCKS])
def test_a_broken_images_lock_is_one_line_exit_2_and_is_not_overwritten(
    project: Project, content: str | bytes, fragment: str
) -> None:
    project.write(OK_IMAGE)
    _write(project, "images.lock", content)
    before = project.lock.read_bytes()
    for command in ("lock", "check", "verify"):
        result = project.run(command)
        assert result.exit_code == 2, (command, result.stderr)
        _assert_one_clear_line(result.stderr, fragment, "images.lock")
    assert project.lock.read_bytes() == before


def test_a_huge_images_toml_is_refused_quickly_without_reading_it_all(project: Project) -> None:
    with (project.directory / "images.toml").open("wb") as handle:
        handle.write(OK_IMAGE.encode())
        handle.write(b"# " + b"x" * (64 << 20) + b"\n")
    result = project.run("lock")
    assert result.exit_code == 2
    _assert_one_clear_line(result.stderr, "larger than 16 MiB", "images.toml")


def test_a_huge_lock_is_refused(project: Project) -> None:
    project.write(OK_IMAGE)
    project.lock.write_bytes(b"# " + b"x" * (17 << 20))
    result = project.run("check")
    assert result.exit_code == 2
    _assert_one_clear_line(result.stderr, "larger than 16 MiB", "images.lock")


def test_the_corpus_is_at_least_forty_files() -> None:
    assert len(CONFIGS) + len(LOCKS) >= 40
