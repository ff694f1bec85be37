"""The registry client against the real registry: auth, digests, tampering, paging, transport security."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import random
import re
import ssl
import tomllib
import tracemalloc
from collections.abc import Callable, Container, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from imagelock.errors import RegistryError
from imagelock.reference import Repository
from imagelock.registry import RegistryClient, default_keychain
from imagelock.registry.transport import is_loopback
from tests.conftest import PASSWORD, USER, CliResult, Project, Registry, TokenRegistry, login
from tests.support.forward_proxy import ConnectionCounter
from tests.support.layers import Layer, push_layered
from tests.support.proxy import Answer, Proxy, Tamper
from tests.support.registry import PushedImage, RegistryServer, Seeder
from tests.support.storage import ChallengingStorage
from tests.support.tls import server_certificate
from tests.support.tokens import TokenIssuer
from tests.support.vulndata import needs_vulndata, vulndata


@pytest.fixture
def proxy(registry: Registry) -> Iterator[Proxy]:
    running = Proxy(registry.host).start()
    yield running
    running.stop()


def nginx_config(host: str, spec: str = 'version = "==1.26.2"') -> str:
    return f'[images.web]\nimage = "{host}/library/nginx"\n{spec}\n'


# -- authentication -------------------------------------------------------------------------------


def test_basic_auth_uses_docker_login_credentials(
    project: Project, basic_registry: Registry, docker_config: Path
) -> None:
    project.write(f'[images.app]\nimage = "{basic_registry.host}/team/app"\nversion = ">=1"\n')
    login(docker_config, basic_registry.host)
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    entry = tomllib.loads(project.lock.read_text())["images"]["app"]
    assert entry["digest"] == basic_registry.image("team/app:1.0.0").digest


def test_basic_auth_without_credentials_asks_for_docker_login(project: Project, basic_registry: Registry) -> None:
    project.write(f'[images.app]\nimage = "{basic_registry.host}/team/app"\nversion = ">=1"\n')
    result = project.run("lock")
    assert result.exit_code == 3
    assert "docker login" in result.stderr
    assert basic_registry.host in result.stderr


def test_basic_auth_with_a_wrong_password_is_rejected(
    project: Project, basic_registry: Registry, docker_config: Path
) -> None:
    project.write(f'[images.app]\nimage = "{basic_registry.host}/team/app"\nversion = ">=1"\n')
    login(docker_config, basic_registry.host, password="wrong")
    result = project.run("lock")
    assert result.exit_code == 3
    assert "rejected" in result.stderr


def test_credentials_match_hosts_exactly(project: Project, basic_registry: Registry, docker_config: Path) -> None:
    project.write(f'[images.app]\nimage = "{basic_registry.host}/team/app"\nversion = ">=1"\n')
    login(docker_config, basic_registry.host.rsplit(":", 1)[0])  # same IP, no port: another registry
    assert project.run("lock").exit_code == 3


def test_bearer_token_auth_with_credentials(
    project: Project, token_registry: TokenRegistry, docker_config: Path
) -> None:
    project.write(
        f'[images.api]\nimage = "{token_registry.host}/team/api"\nversion = ">=2"\n'
        f'[images.worker]\nimage = "{token_registry.host}/team/worker"\ntag = "2.0.0"\n'
    )
    login(docker_config, token_registry.host)
    token_registry.issuer.requests.clear()

    result = project.run("lock")

    assert result.exit_code == 0, result.stderr
    images = tomllib.loads(project.lock.read_text())["images"]
    assert images["api"]["digest"] == token_registry.image("team/api:2.0.0").digest
    assert images["worker"]["digest"] == token_registry.image("team/worker:2.0.0").digest
    # One token per repository scope, sent with Basic credentials; reused for every request.
    assert token_registry.issuer.requests == {"Basic": 2}


def test_bearer_token_auth_anonymous_is_denied(project: Project, token_registry: TokenRegistry) -> None:
    project.write(f'[images.api]\nimage = "{token_registry.host}/team/api"\nversion = ">=2"\n')
    result = project.run("lock")
    assert result.exit_code == 3
    assert token_registry.host in result.stderr
    assert "docker login" in result.stderr


@pytest.mark.parametrize("realm", ["http://[::1/token", "https://xn--/token", "file:///etc/passwd", ""])
def test_a_bearer_challenge_without_a_usable_realm_is_one_line_exit_3(
    project: Project, proxy: Proxy, realm: str
) -> None:
    def challenge(method: str, path: str) -> Answer:
        return Answer(401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="registry"'}, b"")

    proxy.intercept = challenge
    project.write(nginx_config(proxy.host))
    result = project.run("lock")
    assert result.exit_code == 3
    [line] = result.stderr.strip().splitlines()
    assert (
        line == f"error: [images.web]: {proxy.host}: bearer challenge without an http(s) token realm (realm={realm!r})"
    )


# -- digests and tampering ------------------------------------------------------------------------


def tampering(project: Project, proxy: Proxy, tamper: Tamper) -> tuple[int, str, bytes, bytes]:
    """Lock through the proxy honestly, then again with the tamper on; return what the second run did."""
    project.write(nginx_config(proxy.host))
    assert project.run("lock").exit_code == 0
    before = project.lock.read_bytes()
    proxy.tamper = tamper
    project.write(nginx_config(proxy.host, 'version = "==1.26.1"'))
    result = project.run("lock")
    return result.exit_code, result.stderr, before, project.lock.read_bytes()


def on_manifests(change: Tamper) -> Tamper:
    def tamper(method: str, path: str, answer: Answer) -> Answer:
        return change(method, path, answer) if "/manifests/" in path else answer

    return tamper


def test_a_body_that_does_not_match_docker_content_digest_is_never_pinned(project: Project, proxy: Proxy) -> None:
    def swap_body(method: str, path: str, answer: Answer) -> Answer:
        document = json.loads(answer.body)
        document["manifests"] = document["manifests"][:1]
        return Answer(answer.status, answer.headers, json.dumps(document).encode())

    code, stderr, before, after = tampering(project, proxy, on_manifests(swap_body))
    assert code == 3
    assert "Docker-Content-Digest" in stderr
    assert after == before


def test_a_lying_docker_content_digest_is_refused(project: Project, proxy: Proxy) -> None:
    def lie(method: str, path: str, answer: Answer) -> Answer:
        headers = dict(answer.headers)
        headers["Docker-Content-Digest"] = "sha256:" + hashlib.sha256(b"something else").hexdigest()
        return Answer(answer.status, headers, answer.body)

    code, _, before, after = tampering(project, proxy, on_manifests(lie))
    assert code == 3
    assert after == before


def test_the_digest_is_computed_not_taken_from_the_header(project: Project, proxy: Proxy, registry: Registry) -> None:
    def drop_header(method: str, path: str, answer: Answer) -> Answer:
        headers = {k: v for k, v in answer.headers.items() if k.lower() != "docker-content-digest"}
        return Answer(answer.status, headers, answer.body)

    proxy.tamper = on_manifests(drop_header)
    project.write(nginx_config(proxy.host))
    assert project.run("lock").exit_code == 0
    entry = tomllib.loads(project.lock.read_text())["images"]["web"]
    assert entry["digest"] == registry.image("library/nginx:1.26.2").digest


def test_content_type_that_contradicts_the_manifest_is_refused(project: Project, proxy: Proxy) -> None:
    def relabel(method: str, path: str, answer: Answer) -> Answer:
        headers = dict(answer.headers)
        headers["Content-Type"] = "application/vnd.oci.image.manifest.v1+json"
        return Answer(answer.status, headers, answer.body)

    code, stderr, before, after = tampering(project, proxy, on_manifests(relabel))
    assert code == 3
    assert "Content-Type" in stderr
    assert after == before


def test_a_platform_manifest_body_swapped_in_the_config_blob_is_refused(project: Project, proxy: Proxy) -> None:
    def swap_blob(method: str, path: str, answer: Answer) -> Answer:
        if "/blobs/" in path:
            return Answer(answer.status, answer.headers, answer.body.replace(b"amd64", b"arm64"))
        return answer

    proxy.tamper = swap_blob
    project.write(f'[images]\ndb = "{proxy.host}/team/legacy:1.0.0"\n')
    result = project.run("lock")
    assert result.exit_code == 3
    assert "does not match" in result.stderr
    assert not project.lock.exists()


def test_oversized_manifest_is_refused(project: Project, proxy: Proxy) -> None:
    def inflate(method: str, path: str, answer: Answer) -> Answer:
        return Answer(answer.status, answer.headers, answer.body + b" " * (5 << 20))

    code, stderr, before, after = tampering(project, proxy, on_manifests(inflate))
    assert code == 3
    assert "larger than" in stderr
    assert after == before


@pytest.mark.parametrize(
    ("hostility", "message"),
    [
        ("a Content-Length longer than the body", "after 4 attempts"),
        ("a Content-Length shorter than the body", "Docker-Content-Digest"),
        ("a body that is not JSON", "not valid JSON"),
        ("a manifest of an unknown media type", "unsupported manifest media type"),
    ],
)
def test_broken_answers_are_exit_3_and_keep_the_old_lock(
    project: Project, proxy: Proxy, hostility: str, message: str
) -> None:
    def break_it(method: str, path: str, answer: Answer) -> Answer:
        if hostility == "a Content-Length longer than the body":
            return Answer(answer.status, answer.headers, answer.body[:100], content_length=len(answer.body))
        if hostility == "a Content-Length shorter than the body":
            return Answer(answer.status, answer.headers, answer.body, content_length=len(answer.body) - 10)
        headers = {k: v for k, v in answer.headers.items() if k.lower() != "docker-content-digest"}
        if hostility == "a body that is not JSON":
            return Answer(answer.status, headers, b"<html>gateway says hello</html>")
        document = json.loads(answer.body)
        document["mediaType"] = headers["Content-Type"] = "application/vnd.example.unknown+json"
        return Answer(answer.status, headers, json.dumps(document).encode())

    code, stderr, before, after = tampering(project, proxy, on_manifests(break_it))
    assert code == 3
    assert message in stderr
    assert "Traceback" not in stderr
    assert after == before


def test_a_server_dripping_its_answer_is_cut_off_and_exit_3(project: Project, proxy: Proxy) -> None:
    def drip(method: str, path: str, answer: Answer) -> Answer:
        return Answer(answer.status, answer.headers, answer.body, drip=0.05)

    project.write(f'[registries."{proxy.host}"]\ntimeout = 0.5\n\n' + nginx_config(proxy.host))
    assert project.run("lock").exit_code == 0
    before = project.lock.read_bytes()
    proxy.tamper = on_manifests(drip)
    project.write(f'[registries."{proxy.host}"]\ntimeout = 0.5\n\n' + nginx_config(proxy.host, 'version = "==1.26.1"'))
    result = project.run("lock")
    assert result.exit_code == 3
    assert "timed out" in result.stderr
    assert project.lock.read_bytes() == before


def test_an_index_whose_platform_manifest_is_gone_fails_verify(project: Project, proxy: Proxy) -> None:
    project.write(nginx_config(proxy.host))
    assert project.run("lock").exit_code == 0
    child = tomllib.loads(project.lock.read_text())["images"]["web"]["platforms"]["linux/amd64"]

    def gone(method: str, path: str, answer: Answer) -> Answer:
        if path.endswith(f"/manifests/{child}"):
            error = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
            return Answer(404, {"Content-Type": "application/json"}, json.dumps(error).encode())
        return answer

    proxy.tamper = gone
    result = project.run("verify")
    assert result.exit_code == 1
    assert f"platform linux/amd64 manifest {child} no longer exists" in result.stdout


# -- tag listing ----------------------------------------------------------------------------------


def paging(page_size: int, next_host: str | None = None) -> Tamper:
    """Make the registry page its tag list like Docker Hub does (distribution 2.8.2 does not)."""

    def tamper(method: str, path: str, answer: Answer) -> Answer:
        if "/tags/list" not in path or answer.status != 200:
            return answer
        document = json.loads(answer.body)
        tags = sorted(document["tags"])
        last = path.split("last=")[1].split("&")[0] if "last=" in path else None
        start = tags.index(last) + 1 if last else 0
        page = tags[start : start + page_size]
        headers = dict(answer.headers)
        if start + page_size < len(tags):
            origin = f"http://{next_host}" if next_host else ""
            headers["Link"] = f'<{origin}{path.split("?")[0]}?n={page_size}&last={page[-1]}>; rel="next"'
        return Answer(200, headers, json.dumps({"name": document["name"], "tags": page}).encode())

    return tamper


def test_tag_list_pages_are_followed(project: Project, proxy: Proxy) -> None:
    proxy.tamper = paging(4)
    project.write(nginx_config(proxy.host, 'version = ">=1.20"'))  # 1.27.1 sorts near the start, 1.24.0 first
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert tomllib.loads(project.lock.read_text())["images"]["web"]["tag"] == "1.27.1"
    assert proxy.requests["GET /v2/library/nginx/tags/list"] == 6  # 23 tags, 4 per page


def test_tag_list_links_to_another_origin_are_refused(project: Project, proxy: Proxy) -> None:
    proxy.tamper = paging(4, next_host="127.0.0.2:1")
    project.write(nginx_config(proxy.host, 'version = ">=1.20"'))
    result = project.run("lock")
    assert result.exit_code == 3
    assert "another origin" in result.stderr


# -- encodings ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """64 MiB of zeros gzipped twice: 273 bytes on the wire."""
    return gzip.compress(gzip.compress(bytes(64 << 20)))


def sent_gzipped_twice(bomb: bytes, *, layers_only: bool = False) -> Tamper:
    """Answer with the bomb as ``Content-Encoding: gzip, gzip`` (only in place of gzip layers if asked)."""

    def tamper(method: str, path: str, answer: Answer) -> Answer:
        if layers_only and not answer.body.startswith(b"\x1f\x8b"):
            return answer
        return Answer(answer.status, {**answer.headers, "Content-Encoding": "gzip, gzip"}, bomb)

    return tamper


def peak_memory(run: Callable[[], CliResult]) -> tuple[CliResult, int]:
    """What ``run`` returned, and the most memory Python held meanwhile (every thread: the proxy's too)."""
    tracemalloc.start()
    try:
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_every_registry_and_token_request_asks_for_an_unencoded_answer(
    project: Project, token_registry: TokenRegistry, docker_config: Path
) -> None:
    realm = token_registry.issuer.realm
    token_front = Proxy(urlsplit(realm).netloc).start()

    def realm_through_token_front(method: str, path: str, answer: Answer) -> Answer:
        moved = f"http://{token_front.host}/token"
        return Answer(answer.status, {k: v.replace(realm, moved) for k, v in answer.headers.items()}, answer.body)

    front = Proxy(token_registry.host, tamper=realm_through_token_front).start()
    try:
        login(docker_config, front.host)
        project.write(f'[images.api]\nimage = "{front.host}/team/api"\nversion = ">=2"\n')
        result = project.run("lock")
    finally:
        front.stop()
        token_front.stop()
    assert result.exit_code == 0, result.stderr
    assert token_front.requests["GET /token"] == 1
    asked = front.request_headers + token_front.request_headers
    assert {headers.get("accept-encoding") for headers in asked} == {"identity"}


def test_an_encoded_manifest_is_refused_unread_and_keeps_the_lock(project: Project, proxy: Proxy, bomb: bytes) -> None:
    project.write(nginx_config(proxy.host))
    assert project.run("lock").exit_code == 0
    before = project.lock.read_bytes()
    proxy.tamper = on_manifests(sent_gzipped_twice(bomb))
    project.write(nginx_config(proxy.host, 'version = "==1.26.1"'))
    result, peak = peak_memory(lambda: project.run("lock"))
    assert result.exit_code == 3
    assert peak < 8 << 20, f"peak {peak >> 20} MiB for a {len(bomb)}-byte answer"
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: [images.web]: 127.0.0.1: response to /v2/library/nginx/manifests/1.26.1 ")
    assert "is sent with Content-Encoding 'gzip, gzip'" in line
    assert project.lock.read_bytes() == before


@pytest.mark.parametrize(
    "command",
    [pytest.param("audit", marks=needs_vulndata), "mirror"],
    ids=["audit streaming a layer", "mirror reading a layer in ranges"],
)
def test_an_encoded_layer_is_refused_unread(
    project: Project,
    registry: Registry,
    proxy: Proxy,
    bomb: bytes,
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMAGELOCK_CACHE_DIR", str(tmp_path / "cache"))
    noise = random.Random(16).randbytes(4096)  # a layer bigger than the bomb: its Content-Length passes the cap
    push_layered(registry.seeder, "encoded/app", "1", [Layer(files={"etc/os-release": b"ID=alpine\n", "noise": noise})])
    project.write(f'[images]\napp = "{proxy.host}/encoded/app:1"\n')
    assert project.run("lock").exit_code == 0
    proxy.tamper = sent_gzipped_twice(bomb, layers_only=True)
    arguments = ("--db", str(vulndata("osv"))) if command == "audit" else (f"{registry.host}/encoded-mirror",)
    result, peak = peak_memory(lambda: project.run(command, *arguments))
    assert result.exit_code == 3
    assert peak < 8 << 20, f"peak {peak >> 20} MiB for a {len(bomb)}-byte answer"
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]  # audit adds its summary
    assert "127.0.0.1: response to /v2/encoded/app/blobs/sha256:" in line
    assert "is sent with Content-Encoding 'gzip, gzip'" in line


def test_a_tag_list_link_to_an_invalid_url_is_one_line_exit_3(project: Project, proxy: Proxy) -> None:
    def broken_link(method: str, path: str, answer: Answer) -> Answer:
        if "/tags/list" not in path:
            return answer
        return Answer(
            answer.status, {**answer.headers, "Link": '<http://[::1/v2/x/tags/list>; rel="next"'}, answer.body
        )

    proxy.tamper = broken_link
    project.write(nginx_config(proxy.host, 'version = ">=1.20"'))
    result = project.run("lock")
    assert result.exit_code == 3
    (line,) = result.stderr.strip().splitlines()
    assert "tag list of" in line
    assert "links to an invalid URL" in line
    assert not project.lock.exists()


# -- transport security ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.8.9.1", True),
        ("[::1]:5000", True),
        ("registry.example.com:5000", False),
        ("10.0.0.1:5000", False),
        ("localhost.example.com", False),
        ("127.0.0.1.nip.io", False),
    ],
)
def test_only_loopback_hosts_may_use_plain_http(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Iterator[Registry]:
    workdir = tmp_path_factory.mktemp("tls-registry")
    certificate, key = server_certificate(workdir)
    server = RegistryServer(workdir, tls=(certificate, key), access_log=True).start()
    seeder = Seeder(server.url, verify=ssl.create_default_context(cafile=str(certificate)))
    pushed = {"team/secure:1.0.0": seeder.push_image("team/secure", "1.0.0")}
    yield Registry(server, seeder, pushed)
    seeder.close()
    server.stop()


def trusting(
    project: Project, certificate: Path, host: str, settings: str = "", repositories: Sequence[str] = ("team/secure",)
) -> str:
    """images.toml text locking ``repositories`` (the first as "app") from ``host``, whose certificate
    is its ``ca-cert``."""
    (project.directory / "certs").mkdir(exist_ok=True)
    (project.directory / "certs" / "ca.pem").write_bytes(certificate.read_bytes())
    images = "".join(
        f'[images.{"app" if index == 0 else f"app{index}"}]\nimage = "{host}/{repository}"\nversion = ">=1"\n'
        for index, repository in enumerate(repositories)
    )
    return f'[registries."{host}"]\nca-cert = "certs/ca.pem"\n{settings}{images}'


def requests_seen(server: RegistryServer, log_offset: int) -> list[str]:
    """The request lines imagelock sent ("GET /v2/... HTTP/1.1") since the registry's access log had
    ``log_offset`` bytes."""
    with (server.workdir / "registry.log").open("rb") as log:
        log.seek(log_offset)
        text = log.read().decode(errors="replace")
    return re.findall(r'"([A-Z]+ \S+ HTTP/[\d.]+)" \d+ \d+ "[^"]*" "imagelock"', text)


def log_size(server: RegistryServer) -> int:
    return (server.workdir / "registry.log").stat().st_size


def test_tls_registry_with_its_ca_cert_is_verified(project: Project, tls_registry: Registry) -> None:
    project.write(trusting(project, tls_registry.server.workdir / "server.crt", tls_registry.host))
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert (
        tomllib.loads(project.lock.read_text())["images"]["app"]["digest"]
        == tls_registry.image("team/secure:1.0.0").digest
    )


@pytest.mark.parametrize(("http2", "protocol"), [(False, "HTTP/1.1"), (True, "HTTP/2.0")])
def test_https_is_http_1_1_unless_the_registry_opts_into_http2_and_pins_the_same_digest(
    project: Project, tls_registry: Registry, http2: bool, protocol: str
) -> None:
    settings = "http2 = true\n" if http2 else ""
    project.write(trusting(project, tls_registry.server.workdir / "server.crt", tls_registry.host, settings))
    offset = log_size(tls_registry.server)
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert (
        tomllib.loads(project.lock.read_text())["images"]["app"]["digest"]
        == tls_registry.image("team/secure:1.0.0").digest
    )
    sent = requests_seen(tls_registry.server, offset)
    assert sent
    assert {line.rsplit(" ", 1)[1] for line in sent} == {protocol}


def test_https_connections_are_reused_across_the_requests_of_a_run(project: Project, tls_registry: Registry) -> None:
    repositories = [f"team/reused{index}" for index in range(4)]
    for repository in repositories:
        tls_registry.seeder.push_single(repository, "1.0.0", "linux/amd64")
    counter = ConnectionCounter(tls_registry.host).start()
    try:
        certificate = tls_registry.server.workdir / "server.crt"
        project.write(trusting(project, certificate, counter.host, "concurrency = 1\n", repositories))
        offset = log_size(tls_registry.server)
        result = project.run("lock")
    finally:
        counter.stop()
    assert result.exit_code == 0, result.stderr
    assert len(requests_seen(tls_registry.server, offset)) >= 8
    assert counter.connections <= 2  # the probe asking whether the loopback host speaks TLS, and one for all requests


def test_a_certificate_for_another_host_name_is_refused(project: Project, tmp_path: Path) -> None:
    certificate, key = server_certificate(tmp_path, names=("registry.example",))
    server = RegistryServer(tmp_path / "registry", tls=(certificate, key)).start()
    try:
        project.write(trusting(project, certificate, server.host))
        result = project.run("lock")
    finally:
        server.stop()
    assert result.exit_code == 3
    assert len(result.stderr.splitlines()) == 1
    assert "TLS certificate not trusted" in result.stderr
    assert "not valid for '127.0.0.1'" in result.stderr
    assert not project.lock.exists()


def test_untrusted_certificate_fails_closed_without_falling_back_to_http(
    project: Project, tls_registry: Registry
) -> None:
    project.write(f'[images.app]\nimage = "{tls_registry.host}/team/secure"\nversion = ">=1"\n')
    result = project.run("lock")
    assert result.exit_code == 3
    assert "certificate" in result.stderr
    assert "ca-cert" in result.stderr


def test_insecure_registry_skips_verification(project: Project, tls_registry: Registry) -> None:
    project.write(
        f'[registries."{tls_registry.host}"]\ninsecure = true\n'
        f'[images.app]\nimage = "{tls_registry.host}/team/secure"\nversion = ">=1"\n'
    )
    assert project.run("lock").exit_code == 0


def test_credentials_are_not_sent_to_another_origin_on_redirect(
    project: Project, basic_registry: Registry, docker_config: Path
) -> None:
    """A redirect to another port is another origin: it must not receive the Authorization header."""
    elsewhere = Proxy(basic_registry.host).start()

    def redirect(method: str, path: str, answer: Answer) -> Answer:
        if "/manifests/" in path and answer.status == 200:
            return Answer(307, {"Location": f"http://{elsewhere.host}{path}"}, b"")
        return answer

    front = Proxy(basic_registry.host, tamper=redirect).start()
    try:
        login(docker_config, front.host, USER, PASSWORD)
        project.write(f'[images.app]\nimage = "{front.host}/team/app"\ntag = "1.0.0"\n')
        result = project.run("lock")
    finally:
        front.stop()
        elsewhere.stop()
    assert any(authorization for authorization in front.authorizations)  # the registry itself got them
    assert elsewhere.requests["GET /v2/team/app/manifests/1.0.0"] == 1  # the redirect was followed...
    assert elsewhere.authorizations == [None]  # ...without credentials
    assert result.exit_code == 3  # and the other origin, without them, refuses: nothing is pinned
    assert not project.lock.exists()


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("http://xn--/v2/", "names an invalid host (Malformed A-label"),
        ("http://[::1/v2/", "Invalid URL in location header"),
        ("ftp://127.0.0.1/v2/", "refusing redirect from http to ftp://127.0.0.1/v2/"),
    ],
    ids=["a host idna refuses", "a port that is no number", "not http"],
)
def test_a_redirect_to_anything_but_an_http_url_is_one_line_exit_3(
    project: Project, proxy: Proxy, location: str, message: str
) -> None:
    proxy.tamper = on_manifests(lambda method, path, answer: Answer(307, {"Location": location}, b""))
    project.write(nginx_config(proxy.host))
    result = project.run("lock")
    assert result.exit_code == 3
    [line] = result.stderr.strip().splitlines()
    assert message in line


def push_single_platform(token_registry: TokenRegistry, repository: str) -> PushedImage:
    """A one-platform image without an index: resolving it reads its config blob."""
    token = token_registry.issuer.token(USER, [f"repository:{repository}:pull,push"])
    seeder = Seeder(token_registry.server.url, headers={"Authorization": f"Bearer {token}"})
    try:
        return seeder.push_image(repository, "1.0.0", platforms=("linux/amd64",), index=False)
    finally:
        seeder.close()


def redirecting_blobs(storage: ChallengingStorage, digests: Container[str] | None = None) -> Tamper:
    """Send blob GETs (those of ``digests``, or all) to the storage, with a 307 as Docker Hub does."""

    def redirect(method: str, path: str, answer: Answer) -> Answer:
        digest = path.rpartition("/")[2]
        if method == "GET" and "/blobs/" in path and (digests is None or digest in digests):
            return Answer(307, {"Location": f"http://{storage.host}{path}"}, b"")
        return answer

    return redirect


def test_a_401_from_a_redirect_target_is_exit_3_and_gets_no_credentials(
    project: Project, token_registry: TokenRegistry, docker_config: Path
) -> None:
    """Blob storage on another origin asks for a Bearer token from a realm of its own: neither gets anything."""
    push_single_platform(token_registry, "team/single")
    storage = ChallengingStorage().start()
    elsewhere = storage.host
    front = Proxy(token_registry.host, tamper=redirecting_blobs(storage)).start()
    try:
        login(docker_config, front.host)
        project.write(f'[images.app]\nimage = "{front.host}/team/single"\ntag = "1.0.0"\n')
        token_registry.issuer.requests.clear()
        result = project.run("lock")
    finally:
        front.stop()
        storage.stop()
    assert result.exit_code == 3
    [line] = result.stderr.strip().splitlines()
    assert f"was redirected to {elsewhere}, which answered 401" in line
    [received] = storage.received  # the redirected GET, and no token request to the realm it named
    assert received.path.startswith("/v2/team/single/blobs/sha256:")
    assert received.authorization is None
    assert token_registry.issuer.requests == {"Basic": 1}  # the registry's own realm, for the manifest
    assert not project.lock.exists()


def test_a_401_from_a_redirect_target_leaves_the_registry_challenge_for_later_requests(
    token_registry: TokenRegistry, docker_config: Path
) -> None:
    """After the refused redirect, the same run goes on authenticating with the registry's own realm."""
    push_single_platform(token_registry, "team/single")
    storage = ChallengingStorage().start()
    front = Proxy(token_registry.host).start()
    repository = Repository(front.host, "team/single")
    login(docker_config, front.host)

    async def one_run() -> tuple[str, bytes]:
        async with RegistryClient.open(default_keychain()) as client:
            manifest = await client.get_manifest(repository, "1.0.0")
            assert manifest.config is not None
            front.tamper = redirecting_blobs(storage, {manifest.config.digest})
            with pytest.raises(RegistryError) as refused:
                await client.get_blob(repository, manifest.config.digest, max_bytes=1 << 20)
            return str(refused.value), await client.get_blob(repository, manifest.layers[0].digest, max_bytes=1 << 20)

    try:
        token_registry.issuer.requests.clear()
        refusal, layer = asyncio.run(one_run())
    finally:
        front.stop()
        storage.stop()
    assert "answered 401" in refusal
    assert layer.startswith(b"layer of team/single")  # read with the registry's token, after the refusal
    assert [received.authorization for received in storage.received] == [None]
    assert token_registry.issuer.requests == {"Basic": 1}


def test_tags_are_listed_once_per_repository_and_run(project: Project, proxy: Proxy) -> None:
    project.write(
        nginx_config(proxy.host, 'version = ">=1.25"')
        + f'[images.edge]\nimage = "{proxy.host}/library/nginx"\nversion = ">=1"\nvariant = "alpine"\n'
    )
    assert project.run("lock").exit_code == 0
    assert proxy.requests["GET /v2/library/nginx/tags/list"] == 1


def test_ssl_cert_file_is_honoured(project: Project, tls_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_registry.server.workdir / "server.crt"))
    project.write(f'[images.app]\nimage = "{tls_registry.host}/team/secure"\nversion = ">=1"\n')
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr


def test_tag_list_pages_are_capped(project: Project, proxy: Proxy, monkeypatch: pytest.MonkeyPatch) -> None:
    def endless(method: str, path: str, answer: Answer) -> Answer:
        if "/tags/list" not in path:
            return answer
        headers = {**answer.headers, "Link": '</v2/library/nginx/tags/list?n=1&last=again>; rel="next"'}
        return Answer(answer.status, headers, answer.body)

    monkeypatch.setattr("imagelock.registry.client.MAX_TAG_PAGES", 5)
    proxy.tamper = endless
    project.write(nginx_config(proxy.host, 'version = ">=1.20"'))
    result = project.run("lock")
    assert result.exit_code == 3
    assert "more than 5 pages" in result.stderr
    assert proxy.requests["GET /v2/library/nginx/tags/list"] == 5


def test_a_remote_registry_never_sends_credentials_to_a_plain_http_realm(
    project: Project, tmp_path: Path, docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An HTTPS registry whose token realm is plain HTTP: credentials would cross the network in clear."""
    issuer = TokenIssuer(tmp_path, users={USER: PASSWORD}).start()
    certificate, key = server_certificate(tmp_path)
    server = RegistryServer(tmp_path / "registry", auth_yaml=issuer.registry_auth_yaml(), tls=(certificate, key))
    server.start()
    try:
        monkeypatch.setattr("imagelock.registry.transport.is_loopback", lambda host: False)  # treat it as remote
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
        login(docker_config, server.host)
        project.write(f'[images.app]\nimage = "{server.host}/team/app"\ntag = "1.0.0"\n')
        result = project.run("lock")
    finally:
        server.stop()
        issuer.stop()
    assert result.exit_code == 3
    assert "refusing to send a token request over plain HTTP" in result.stderr
    assert not issuer.requests
