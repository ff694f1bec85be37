"""``imagelock check`` and a ``lock`` with nothing to do, answered from memory before the CLI loads.

Each run is the installed command in a process of its own (``python -m imagelock``), with
``-X importtime``: whether ``imagelock.cli`` was imported tells a remembered answer from a full run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagelock._fastpath import CHANGE_MARGIN_NS, question
from tests.conftest import Project, Registry
from tests.support.cosign import SigningKey, sign_image

NGINX = 'image = "{host}/library/nginx"\nversion = ">=1.25,<1.27"\n'


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str
    full: bool  # the command line module was imported: a full run, not a remembered answer


def imagelock(directory: Path, *arguments: str) -> Run:
    finished = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "imagelock", *arguments],
        cwd=directory,
        env={**os.environ, "IMAGELOCK_CACHE_DIR": str(directory.parent / "cache")},
        capture_output=True,
        text=True,
        check=False,
    )
    lines = finished.stderr.splitlines(keepends=True)
    imports = [line for line in lines if line.startswith("import time:")]
    stderr = "".join(line for line in lines if not line.startswith("import time:"))
    return Run(
        finished.returncode, finished.stdout, stderr, any(line.rstrip().endswith(" imagelock.cli") for line in imports)
    )


def settle() -> None:
    """Wait until the files just written are older than the margin a run requires before it remembers."""
    time.sleep(CHANGE_MARGIN_NS / 1e9 + 0.1)


def locked(project: Project, registry: Registry, text: str) -> None:
    project.write(text.format(host=registry.host))
    assert project.run("lock").exit_code == 0
    settle()


def test_an_unchanged_check_and_lock_are_answered_before_the_cli_loads(project: Project, registry: Registry) -> None:
    locked(project, registry, "[images.web]\n" + NGINX)
    before = project.lock.read_bytes()

    for command, stream, message in (
        ("check", "stdout", "images.lock is up to date\n"),
        ("lock", "stderr", "images.lock is up to date (1 image(s))\n"),
    ):
        full = imagelock(project.directory, command)
        remembered = imagelock(project.directory, command)

        assert (full.exit_code, full.full, getattr(full, stream)) == (0, True, message)
        assert (remembered.exit_code, remembered.full) == (0, False)
        assert (remembered.stdout, remembered.stderr) == (full.stdout, full.stderr)
    assert project.lock.read_bytes() == before


def test_every_semantic_change_of_images_toml_or_the_lock_is_caught(project: Project, registry: Registry) -> None:
    locked(project, registry, "[images.web]\n" + NGINX)
    original = project.config.read_text()
    assert imagelock(project.directory, "check").full
    assert not imagelock(project.directory, "check").full

    for edited in (
        original.replace(">=1.25,<1.27", ">=1.25,<1.26"),  # the version range
        original + f'[images.cache]\nimage = "{registry.host}/library/redis"\ntag = "7.2"\n',  # a new image
        original.replace("[images.web]", "[images.www]"),  # a renamed one
        original + 'platforms = ["linux/arm64"]\n',
    ):
        project.write(edited)
        stale = imagelock(project.directory, "check")
        assert (stale.exit_code, stale.full) == (1, True), edited
        assert stale.stderr == "images.lock is stale; run 'imagelock lock'\n"
    project.write(original)

    lock = project.lock.read_text()
    project.lock.write_text(re.sub(r'spec = "sha256:[0-9a-f]{64}"', f'spec = "sha256:{"0" * 64}"', lock))
    stale = imagelock(project.directory, "check")
    assert (stale.exit_code, stale.stdout.partition(":")[0]) == (1, "web")
    project.lock.unlink()
    assert imagelock(project.directory, "check").exit_code == 1
    project.lock.write_text(lock)
    assert imagelock(project.directory, "check").exit_code == 0


def test_a_key_images_toml_names_is_part_of_what_is_remembered(project: Project, registry: Registry) -> None:
    key, other = SigningKey.ecdsa(), SigningKey.ecdsa()
    image = registry.seeder.push_image("fast/signed", "1.0.0")
    sign_image(registry.seeder, registry.host, "fast/signed", image.digest, key)
    key.write_public(project.directory / "keys" / "release.pub")
    config = '[images.app]\nimage = "{host}/fast/signed"\nversion = ">=1"\n'
    config += 'verify = {{ method = "cosign", key = "keys/release.pub" }}\n'
    locked(project, registry, config)
    assert imagelock(project.directory, "check").full
    assert not imagelock(project.directory, "check").full

    other.write_public(project.directory / "keys" / "release.pub")  # images.toml's bytes are the same

    stale = imagelock(project.directory, "check")
    assert (stale.exit_code, stale.stdout.partition(":")[0], stale.full) == (1, "app", True)


def test_a_comment_or_whitespace_edit_keeps_the_lock_up_to_date(project: Project, registry: Registry) -> None:
    locked(project, registry, "[images.web]\n" + NGINX)
    assert imagelock(project.directory, "check").full

    project.write("# the web front end\n\n[images.web]\n" + NGINX.format(host=registry.host).replace(" = ", "  =  "))
    settle()

    edited = imagelock(project.directory, "check")
    assert (edited.exit_code, edited.stdout, edited.full) == (0, "images.lock is up to date\n", True)
    assert imagelock(project.directory, "check") == Run(0, edited.stdout, "", False)


def test_files_changed_just_before_a_run_are_not_remembered(project: Project, registry: Registry) -> None:
    project.write(f'[images.web]\nimage = "{registry.host}/library/nginx"\nversion = ">=1.25,<1.27"\n')
    assert project.run("lock").exit_code == 0  # no settling: the run below may have read them mid-change

    assert imagelock(project.directory, "check").exit_code == 0
    assert imagelock(project.directory, "check").full


def test_other_command_lines_take_the_full_run(project: Project, registry: Registry) -> None:
    locked(project, registry, "[images.web]\n" + NGINX)
    assert imagelock(project.directory, "check").full
    assert not imagelock(project.directory, "check").full

    for arguments in (("check", "--lockfile", "images.lock"), ("lock", "--dry-run"), ("lock", "--verbose")):
        run = imagelock(project.directory, *arguments)
        assert (run.exit_code, run.full) == (0, True), arguments


@pytest.mark.parametrize(
    ("arguments", "asked"),
    [
        (["check"], ("check", "", "")),
        (["lock", "-c", "x/images.toml"], ("lock", "x/images.toml", "")),
        (["check", "--config=a.toml", "--lockfile", "a.lock"], ("check", "a.toml", "a.lock")),
        (["lock", "--lockfile=a.lock"], ("lock", "", "a.lock")),
        (["update"], None),
        (["--debug", "check"], None),
        (["check", "-c"], None),
        (["check", "-c", "a", "-c", "b"], None),
        (["check", "-c", "--lockfile"], None),
        (["check", "-c=a"], None),
        (["check", "-ca"], None),
        (["lock", "--dry-run"], None),
        (["lock", "-U"], None),
        (["check", "--help"], None),
        ([], None),
    ],
)
def test_only_check_and_lock_with_their_file_options_are_answered_from_memory(
    arguments: list[str], asked: tuple[str, str, str] | None
) -> None:
    assert question(arguments) == asked
