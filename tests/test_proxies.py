"""Proxies from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY), through a real forward proxy."""

from __future__ import annotations

import base64
import os
import ssl
import tomllib
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from tests.conftest import PASSWORD, USER, Project, Registry, login
from tests.support.forward_proxy import ForwardProxy
from tests.support.proxy import Proxy
from tests.support.registry import RegistryServer, Seeder
from tests.support.tls import server_certificate


@pytest.fixture(autouse=True)
def no_proxy_but_the_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever proxies the machine running the tests has set, each test sets its own."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    running = ForwardProxy().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def secure_registry(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Iterator[Registry]:
    """A registry on HTTPS behind Basic auth, with a certificate only its ca-cert vouches for (``registry``
    first: it skips when Debian's docker-registry is missing)."""
    workdir = tmp_path_factory.mktemp("secure-registry")
    certificate, key = server_certificate(workdir)
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")
    auth = f"auth:\n  htpasswd:\n    realm: imagelock-test\n    path: {htpasswd}\n"
    server = RegistryServer(workdir, auth_yaml=auth, tls=(certificate, key)).start()
    seeder = Seeder(server.url, auth=(USER, PASSWORD), verify=ssl.create_default_context(cafile=str(certificate)))
    pushed = {"team/secure:1.0.0": seeder.push_image("team/secure", "1.0.0")}
    yield Registry(server, seeder, pushed)
    seeder.close()
    server.stop()


def locked_digest(project: Project) -> str:
    digest: str = tomllib.loads(project.lock.read_text())["images"]["app"]["digest"]
    return digest


def nginx(project: Project, host: str, version: str = "1.26.2") -> None:
    project.write(f'[images.app]\nimage = "{host}/library/nginx"\nversion = "=={version}"\n')


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_plain_http_registry_is_reached_through_the_proxy_the_environment_names(
    project: Project, registry: Registry, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, proxy.url)
    nginx(project, registry.host)
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert locked_digest(project) == registry.image("library/nginx:1.26.2").digest
    origin = f"http://{registry.host}"
    assert any(line.startswith(f"GET {origin}/v2/library/nginx/tags/list") for line in proxy.requests)
    assert f"GET {origin}/v2/library/nginx/manifests/1.26.2" in proxy.requests


def test_no_proxy_naming_the_registry_host_goes_around_the_proxy(
    project: Project, registry: Registry, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", f"example.com, {registry.host.split(':')[0]}")
    nginx(project, registry.host)
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert locked_digest(project) == registry.image("library/nginx:1.26.2").digest
    assert proxy.requests == []


def test_no_proxy_star_turns_every_proxy_off_even_one_imagelock_cannot_use(
    project: Project, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    monkeypatch.setenv("NO_PROXY", "*")
    nginx(project, registry.host)
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert locked_digest(project) == registry.image("library/nginx:1.26.2").digest


def test_an_https_registry_is_tunnelled_through_the_proxy_and_its_certificate_still_verified(
    project: Project,
    secure_registry: Registry,
    proxy: ForwardProxy,
    docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://proxyuser:proxypass@{proxy.host}")
    login(docker_config, secure_registry.host)
    (project.directory / "ca.pem").write_bytes((secure_registry.server.workdir / "server.crt").read_bytes())
    project.write(
        f'[registries."{secure_registry.host}"]\nca-cert = "ca.pem"\n'
        f'[images.app]\nimage = "{secure_registry.host}/team/secure"\ntag = "1.0.0"\n'
    )
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert locked_digest(project) == secure_registry.image("team/secure:1.0.0").digest
    assert set(proxy.requests) == {f"CONNECT {secure_registry.host}"}
    # The proxy got its own credentials; the registry asked for its own and got them inside the tunnel.
    proxy_credentials = "Basic " + base64.b64encode(b"proxyuser:proxypass").decode()
    assert {headers.get("proxy-authorization") for headers in proxy.request_headers} == {proxy_credentials}
    assert not any("authorization" in headers for headers in proxy.request_headers)


def test_with_an_https_proxy_a_loopback_registry_is_probed_for_tls_through_it_never_directly(
    project: Project, registry: Registry, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    nginx(project, registry.host)
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert locked_digest(project) == registry.image("library/nginx:1.26.2").digest
    assert proxy.requests == [f"CONNECT {registry.host}"]  # no TLS there: plain HTTP, which HTTPS_PROXY does not carry


def test_an_untrusted_certificate_through_the_proxy_fails_closed(
    project: Project, secure_registry: Registry, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)  # a fall-back to plain HTTP would show as a GET to the proxy
    project.write(f'[images.app]\nimage = "{secure_registry.host}/team/secure"\ntag = "1.0.0"\n')
    result = project.run("lock")
    assert result.exit_code == 3
    assert len(result.stderr.strip().splitlines()) == 1
    assert "TLS certificate not trusted" in result.stderr
    assert set(proxy.requests) == {f"CONNECT {secure_registry.host}"}
    assert not project.lock.exists()


@pytest.mark.parametrize(
    ("variable", "url", "scheme"),
    [("ALL_PROXY", "socks5://127.0.0.1:1080", "socks5://"), ("HTTPS_PROXY", "ftp://127.0.0.1:21", "ftp://")],
)
def test_a_proxy_imagelock_cannot_use_is_one_line_exit_2_and_the_lock_is_unchanged(
    project: Project, registry: Registry, monkeypatch: pytest.MonkeyPatch, variable: str, url: str, scheme: str
) -> None:
    front = Proxy(registry.host).start()  # counts what reaches the registry
    try:
        nginx(project, front.host)
        assert project.run("lock").exit_code == 0
        before, sent = project.lock.read_bytes(), front.requests.total()
        nginx(project, front.host, "1.26.1")
        monkeypatch.setenv(variable, url)
        result = project.run("lock")
    finally:
        front.stop()
    assert front.requests.total() == sent
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {variable} names a proxy imagelock cannot use ({scheme}); use an http:// or https:// one"
    ]
    assert project.lock.read_bytes() == before
