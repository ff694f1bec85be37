"""Fixtures: real registries (anonymous, Basic, token auth) on loopback, and project directories."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
from typer.testing import CliRunner

from imagelock.cli import app
from tests.support.registry import PushedImage, RegistryServer, Seeder, registry_binary, seed_catalog
from tests.support.tokens import TokenIssuer

USER, PASSWORD = "alice", "wonderland"


@dataclass
class Registry:
    server: RegistryServer
    seeder: Seeder
    pushed: dict[str, PushedImage]

    @property
    def host(self) -> str:
        return self.server.host

    def image(self, repository_and_tag: str) -> PushedImage:
        return self.pushed[repository_and_tag]


def _require_registry() -> None:
    if registry_binary() is None:
        message = "Debian's docker-registry is not installed (the README's test command installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An anonymous registry seeded with the example catalogue (nginx, python, ubuntu, redis, postgres, team/legacy)."""
    _require_registry()
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    seeder = Seeder(server.url)
    try:
        yield Registry(server, seeder, seed_catalog(seeder))
    finally:
        seeder.close()
        server.stop()


@pytest.fixture(scope="session")
def empty_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An anonymous registry with nothing in it, for tests that push only what they need (it starts fast)."""
    _require_registry()
    server = RegistryServer(tmp_path_factory.mktemp("empty-registry")).start()
    seeder = Seeder(server.url)
    try:
        yield Registry(server, seeder, {})
    finally:
        seeder.close()
        server.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry behind htpasswd Basic auth."""
    _require_registry()
    workdir = tmp_path_factory.mktemp("basic-registry")
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")
    auth = f"auth:\n  htpasswd:\n    realm: imagelock-test\n    path: {htpasswd}\n"
    server = RegistryServer(workdir, auth_yaml=auth).start()
    seeder = Seeder(server.url, auth=(USER, PASSWORD))
    try:
        yield Registry(server, seeder, {"team/app:1.0.0": seeder.push_image("team/app", "1.0.0")})
    finally:
        seeder.close()
        server.stop()


@dataclass
class TokenRegistry(Registry):
    issuer: TokenIssuer


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    """A registry with token auth and the test suite's token issuer; only alice may pull."""
    _require_registry()
    workdir = tmp_path_factory.mktemp("token-registry")
    issuer = TokenIssuer(workdir, users={USER: PASSWORD}).start()
    server = RegistryServer(workdir, auth_yaml=issuer.registry_auth_yaml()).start()
    repositories = ["team/api", "team/worker"]
    token = issuer.token(USER, [f"repository:{name}:pull,push" for name in repositories])
    seeder = Seeder(server.url, headers={"Authorization": f"Bearer {token}"})
    try:
        pushed = {f"{name}:2.0.0": seeder.push_image(name, "2.0.0") for name in repositories}
        yield TokenRegistry(server, seeder, pushed, issuer)
    finally:
        seeder.close()
        server.stop()
        issuer.stop()


@pytest.fixture(autouse=True)
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty Docker config, never the developer's credentials."""
    directory = tmp_path / "docker-config"
    directory.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    return directory


def login(docker_config: Path, host: str, user: str = USER, password: str = PASSWORD) -> None:
    """What ``docker login`` writes: base64 user:password under the host."""
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    (docker_config / "config.json").write_text(json.dumps({"auths": {host: {"auth": encoded}}}))


@dataclass
class Project:
    """A directory with images.toml, and a way to run imagelock in it."""

    directory: Path
    runner: CliRunner

    @property
    def config(self) -> Path:
        return self.directory / "images.toml"

    @property
    def lock(self) -> Path:
        return self.directory / "images.lock"

    def write(self, text: str) -> None:
        self.config.write_text(text)

    def run(self, *arguments: str) -> CliResult:
        result = self.runner.invoke(app, [*arguments[:1], "-c", str(self.config), *arguments[1:]])
        return CliResult(result.exit_code, result.stdout, result.stderr)


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def project(tmp_path: Path) -> Project:
    directory = tmp_path / "project"
    directory.mkdir()
    return Project(directory, CliRunner())
