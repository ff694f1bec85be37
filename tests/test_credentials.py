"""Credentials wherever ``docker login`` and ``podman login`` put them, against the real registries."""

from __future__ import annotations

import base64
import json
import os
import sys
import tomllib
from pathlib import Path

import pytest

from imagelock.reference import Repository
from imagelock.registry.authn import AuthFile, split_auth_key
from tests.conftest import PASSWORD, USER, Project, Registry, TokenRegistry, login
from tests.support.proxy import Answer, Proxy
from tests.support.tokens import SERVICE


def write_json(path: Path, document: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def app_config(registry: Registry) -> str:
    return f'[images.app]\nimage = "{registry.host}/team/app"\nversion = ">=1"\n'


def assert_locked(project: Project) -> None:
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert tomllib.loads(project.lock.read_text())["images"]


def credential_helper(directory: Path, monkeypatch: pytest.MonkeyPatch, known: dict[str, tuple[str, str]]) -> Path:
    """Install ``docker-credential-imagelocktest`` on PATH; it logs every server URL it is asked for."""
    log = directory / "helper.log"
    script = directory / "bin" / "docker-credential-imagelocktest"
    script.parent.mkdir(parents=True)
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"known = {known!r}\n"
        "assert sys.argv[1:] == ['get'], sys.argv\n"
        "server = sys.stdin.read().strip()\n"
        f"open({str(log)!r}, 'a').write(server + '\\n')\n"
        "if server not in known:\n"
        "    print('credentials not found in native keychain')\n"
        "    sys.exit(1)\n"
        "user, secret = known[server]\n"
        "print(json.dumps({'ServerURL': server, 'Username': user, 'Secret': secret}))\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return log


def test_credential_helper_for_the_host(
    project: Project, basic_registry: Registry, docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = credential_helper(tmp_path, monkeypatch, {basic_registry.host: (USER, PASSWORD)})
    write_json(docker_config / "config.json", {"credHelpers": {basic_registry.host: "imagelocktest"}})
    project.write(app_config(basic_registry))
    assert_locked(project)
    assert log.read_text().splitlines() == [basic_registry.host]  # the server URL on stdin, asked once


def test_per_host_helper_beats_creds_store(
    project: Project, basic_registry: Registry, docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credential_helper(tmp_path, monkeypatch, {basic_registry.host: (USER, PASSWORD)})
    write_json(
        docker_config / "config.json",
        {"credsStore": "not-installed", "credHelpers": {basic_registry.host: "imagelocktest"}},
    )
    project.write(app_config(basic_registry))
    assert_locked(project)


def test_creds_store_that_does_not_know_the_host_means_anonymous(
    project: Project, basic_registry: Registry, docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'credentials not found' is no error: imagelock goes on anonymously (and this registry wants a login)."""
    log = credential_helper(tmp_path, monkeypatch, {})
    write_json(docker_config / "config.json", {"credsStore": "imagelocktest"})
    project.write(app_config(basic_registry))
    result = project.run("lock")
    assert result.exit_code == 3
    assert f"docker login {basic_registry.host}" in result.stderr
    assert log.read_text() == f"{basic_registry.host}\n"


def test_no_credentials_are_looked_up_for_a_registry_that_does_not_ask(
    project: Project, registry: Registry, docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = credential_helper(tmp_path, monkeypatch, {})
    write_json(docker_config / "config.json", {"credsStore": "imagelocktest"})
    project.write(f'[images.web]\nimage = "{registry.host}/library/nginx"\nversion = "==1.26.2"\n')
    assert_locked(project)
    assert not log.exists()


def test_creds_store_for_docker_hub_is_asked_with_its_legacy_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = credential_helper(tmp_path, monkeypatch, {"https://index.docker.io/v1/": ("hubuser", "hubpass")})
    auth_file = AuthFile.load(write_json(tmp_path / "config.json", {"credsStore": "imagelocktest"}))
    credential = auth_file.resolve(Repository("docker.io", "library/nginx"))
    assert credential is not None
    assert (credential.username, credential.password) == ("hubuser", "hubpass")
    assert log.read_text() == "https://index.docker.io/v1/\n"


def test_helper_answering_token_username_gives_an_identity_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credential_helper(tmp_path, monkeypatch, {"ghcr.io": ("<token>", "refresh-123")})
    auth_file = AuthFile.load(write_json(tmp_path / "config.json", {"credHelpers": {"ghcr.io": "imagelocktest"}}))
    credential = auth_file.resolve(Repository("ghcr.io", "org/app"))
    assert credential is not None
    assert credential.identity_token == "refresh-123"
    assert not credential.username


def test_registry_auth_file_with_namespaced_keys(
    project: Project, basic_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Podman keys may name a namespace: the longest that contains the repository wins, never a prefix."""
    host = basic_registry.host
    auth = {
        host: {"auth": _basic("nobody", "wrong")},
        f"{host}/team": {"auth": _basic(USER, PASSWORD)},
        f"{host}/team/ap": {"auth": _basic("prefix", "wrong")},  # not a namespace of team/app
    }
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(write_json(tmp_path / "auth.json", {"auths": auth})))
    project.write(app_config(basic_registry))
    assert_locked(project)


def test_podman_runtime_auth_file(
    project: Project, basic_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "run"
    write_json(runtime / "containers" / "auth.json", {"auths": {basic_registry.host: {"auth": _basic(USER, PASSWORD)}}})
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    project.write(app_config(basic_registry))
    assert_locked(project)


def test_docker_config_is_read_before_podmans_file(
    project: Project, basic_registry: Registry, docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "run"
    write_json(runtime / "containers" / "auth.json", {"auths": {basic_registry.host: {"auth": _basic(USER, "bad")}}})
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    login(docker_config, basic_registry.host)
    project.write(app_config(basic_registry))
    assert_locked(project)


def test_identity_token_uses_the_oauth2_refresh_grant(
    project: Project, token_registry: TokenRegistry, docker_config: Path
) -> None:
    token_registry.issuer.refresh_tokens["refresh-abc"] = USER
    write_json(docker_config / "config.json", {"auths": {token_registry.host: {"identitytoken": "refresh-abc"}}})
    project.write(f'[images.api]\nimage = "{token_registry.host}/team/api"\nversion = ">=2"\n')
    token_registry.issuer.requests.clear()
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert token_registry.issuer.requests == {"POST refresh_token": 1}


def test_registry_token_is_sent_as_is(project: Project, token_registry: TokenRegistry, docker_config: Path) -> None:
    token = token_registry.issuer.token(USER, ["repository:team/api:pull"])
    write_json(docker_config / "config.json", {"auths": {token_registry.host: {"registrytoken": token}}})
    project.write(f'[images.api]\nimage = "{token_registry.host}/team/api"\nversion = ">=2"\n')
    token_registry.issuer.requests.clear()
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert not token_registry.issuer.requests  # no token was fetched


def test_a_401_with_a_cached_token_re_authenticates_once(
    project: Project, token_registry: TokenRegistry, docker_config: Path
) -> None:
    """A token the registry no longer accepts (revoked, clock skew) is renewed once, with the challenge's scope."""
    revoked = {"done": False}

    def revoke_once(method: str, path: str) -> Answer | None:
        if "/manifests/" in path and not revoked["done"]:
            revoked["done"] = True
            challenge = (
                f'Bearer realm="{token_registry.issuer.realm}",service="{SERVICE}",'
                'scope="repository:team/api:pull",error="invalid_token"'
            )
            return Answer(401, {"WWW-Authenticate": challenge}, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
        return None

    proxy = Proxy(token_registry.host, intercept=revoke_once).start()
    try:
        login(docker_config, proxy.host)
        project.write(f'[images.api]\nimage = "{proxy.host}/team/api"\nversion = ">=2"\n')
        token_registry.issuer.requests.clear()
        result = project.run("lock")
    finally:
        proxy.stop()
    assert result.exit_code == 0, result.stderr
    assert token_registry.issuer.requests == {"Basic": 2}  # the first token, and one renewal


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("https://index.docker.io/v1/", ("docker.io", "")),
        ("index.docker.io", ("docker.io", "")),
        ("registry-1.docker.io", ("docker.io", "")),
        ("docker.io/library/nginx", ("docker.io", "library/nginx")),
        ("docker.io/nginx", ("docker.io", "library/nginx")),
        ("http://localhost:5000", ("localhost:5000", "")),
        ("https://Registry.Example.com/v2/", ("registry.example.com", "")),  # legacy URL: the path means nothing
        ("quay.io/team", ("quay.io", "team")),
        ("quay.io/team/app/", ("quay.io", "team/app")),
    ],
)
def test_auth_file_keys(key: str, expected: tuple[str, str]) -> None:
    assert split_auth_key(key) == expected


@pytest.mark.parametrize(
    "repository",
    [
        Repository("registry.example.com.evil.net", "team/app"),
        Repository("registry.example.co", "team/app"),
        Repository("registry.example.com:5000", "team/app"),
        Repository("evil.registry.example.com", "team/app"),
    ],
)
def test_hosts_match_exactly_never_by_prefix(tmp_path: Path, repository: Repository) -> None:
    auth_file = AuthFile.load(
        write_json(tmp_path / "config.json", {"auths": {"registry.example.com": {"auth": _basic("u", "p")}}})
    )
    assert auth_file.resolve(repository) is None
    assert auth_file.resolve(Repository("registry.example.com", "team/app")) is not None


def test_bad_auth_entry_is_a_clear_input_error(project: Project, registry: Registry, docker_config: Path) -> None:
    write_json(docker_config / "config.json", {"auths": {registry.host: {"auth": "not base64!"}}})
    project.write(f'[images.web]\nimage = "{registry.host}/library/nginx"\nversion = "==1.26.2"\n')
    result = project.run("lock")
    assert result.exit_code == 2
    assert "config.json" in result.stderr
    assert registry.host in result.stderr


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()
