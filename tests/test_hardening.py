"""The lock survives what happens to real runs: two at once, SIGKILL at any moment, and no secret leaks out."""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagelock.cli import app
from tests.conftest import PASSWORD, USER, Project, Registry, TokenRegistry, login
from tests.support.proxy import Proxy


@pytest.fixture
def slow_proxy(registry: Registry) -> Iterator[Proxy]:
    """The registry, 30 ms away per request: long enough to catch a run in the middle."""
    running = Proxy(registry.host, intercept=lambda method, path: 0.03).start()
    yield running
    running.stop()


def config_for(proxy: Proxy, names: list[str]) -> str:
    return "".join(f'[images.{name}]\nimage = "{proxy.host}/library/{name}"\nversion = ">=1"\n\n' for name in names)


def imagelock(project: Project, *arguments: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "imagelock", *arguments, "-c", str(project.config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )


def test_a_second_run_waits_for_the_first_and_sees_its_lock(project: Project, registry: Registry) -> None:
    slow_proxy = Proxy(registry.host, intercept=lambda method, path: 1.0).start()  # a first run of ~2 s
    project.write(config_for(slow_proxy, ["nginx", "redis", "postgres", "python"]))
    first = imagelock(project, "lock")
    deadline = time.monotonic() + 20
    while sum(slow_proxy.requests.values()) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)  # the first run is now resolving, holding the project
    second = imagelock(project, "lock")
    _, first_errors = first.communicate(timeout=60)
    requests_by_first = sum(slow_proxy.requests.values())
    second_output, second_errors = second.communicate(timeout=60)
    assert first.returncode == 0, first_errors
    assert second.returncode == 0, second_errors
    assert "another imagelock run is writing here; waiting for it to finish" in second_errors
    assert "up to date" in second_output + second_errors  # it read the first run's complete lock ...
    assert sum(slow_proxy.requests.values()) == requests_by_first  # ... and asked the registry nothing
    assert set(tomllib.loads(project.lock.read_text())["images"]) == {"nginx", "redis", "postgres", "python"}
    slow_proxy.stop()


def test_sigkill_at_any_moment_leaves_the_old_lock_or_the_new_one(project: Project, slow_proxy: Proxy) -> None:
    project.write(config_for(slow_proxy, ["nginx"]))
    assert project.run("lock").exit_code == 0
    old = project.lock.read_bytes()
    project.write(config_for(slow_proxy, ["nginx", "redis", "postgres"]))
    complete = imagelock(project, "lock")
    started = time.monotonic()
    complete.communicate(timeout=60)
    duration = time.monotonic() - started
    new = project.lock.read_bytes()
    assert new != old
    randomness = random.Random(9)
    for _ in range(12):
        project.lock.write_bytes(old)
        run = imagelock(project, "lock")
        time.sleep(randomness.uniform(0, duration * 1.2))
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=30)
        left = project.lock.read_bytes()
        assert left in (old, new)
    assert project.run("check").exit_code == (0 if project.lock.read_bytes() == new else 1)


WRITER = """
import sys
from pathlib import Path
from imagelock.lockfile import write_atomic
path, first, second = Path(sys.argv[1]), "a" * 8_000_000, "b" * 8_000_000
print("ready", flush=True)
while True:
    write_atomic(path, first)
    write_atomic(path, second)
"""


def test_sigkill_while_writing_never_leaves_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "images.lock"
    target.write_text("a" * 8_000_000)
    randomness = random.Random(4)
    for _ in range(10):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
        )
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n"
        time.sleep(randomness.uniform(0.0, 0.3))
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
        content = target.read_bytes()
        assert content in (b"a" * 8_000_000, b"b" * 8_000_000)


# -- secrets never leak ----------------------------------------------------------------------------


def test_no_credential_or_token_appears_in_output_logs_errors_or_the_lock(
    project: Project, token_registry: TokenRegistry, docker_config: Path
) -> None:
    proxy = Proxy(token_registry.host).start()
    try:
        login(docker_config, proxy.host)
        project.write(f'[images.api]\nimage = "{proxy.host}/team/api"\nversion = ">=1"\n')
        runner = CliRunner()
        good = runner.invoke(app, ["--debug", "lock", "-c", str(project.config)])
        assert good.exit_code == 0, good.stderr
        login(docker_config, proxy.host, password="wrong-" + PASSWORD)
        project.write(f'[images.api]\nimage = "{proxy.host}/team/api"\nversion = ">=2"\n')
        refused = runner.invoke(app, ["--debug", "lock", "-c", str(project.config)])
        assert refused.exit_code == 3
        missing = runner.invoke(app, ["--debug", "why", "nope", "-c", str(project.config)])
        seen = [auth for auth in proxy.authorizations if auth]
    finally:
        proxy.stop()
    assert seen, "the registry was asked with credentials"
    secrets = {PASSWORD, "wrong-" + PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    secrets |= {auth.split(" ", 1)[1] for auth in seen}
    everything = "".join(
        [
            good.stdout,
            good.stderr,
            refused.stdout,
            refused.stderr,
            missing.stdout,
            missing.stderr,
            project.lock.read_text(),
        ]
    )
    for secret in secrets:
        assert secret not in everything
