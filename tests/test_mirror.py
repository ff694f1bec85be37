"""``imagelock mirror`` between two real registries: copy, lock against the copy, idempotence, resumption, mounts."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from typer.testing import CliRunner

from imagelock.project import Project as Operations
from tests.conftest import USER, Project, Registry, TokenRegistry, login
from tests.support.cosign import SigningKey, sign_image, sign_image_bundle
from tests.support.proxy import RESET, Answer, Proxy
from tests.support.registry import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, PushedImage, RegistryServer, Seeder

BIG_LAYER = os.urandom(300 * 1024)  # shared by team/big and team/big-copy; several chunks at a 64 KiB chunk size


@dataclass
class Source(Registry):
    key: SigningKey
    key_path: Path


def push_with_layer(seeder: Seeder, repository: str, tag: str, layer: bytes) -> PushedImage:
    """A single-platform OCI image whose one layer is ``layer``."""
    layer_digest = seeder.push_blob(repository, layer)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"repo": repository}}}).encode()
    config_digest = seeder.push_blob(repository, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
    }
    digest = seeder.push_manifest(repository, tag, json.dumps(manifest).encode(), OCI_MANIFEST)
    return PushedImage(repository, tag, digest, OCI_MANIFEST, {"linux/amd64": digest})


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    """A registry of this module's own: indexes with attestations, a Docker list, cosign .sig and v3 bundles."""
    workdir = tmp_path_factory.mktemp("mirror-source")
    server = RegistryServer(workdir).start()
    seeder = Seeder(server.url)
    key = SigningKey.ecdsa()
    pushed = {
        "library/nginx:1.26.2": seeder.push_image("library/nginx", "1.26.2"),
        "library/python:3.12.4": seeder.push_image("library/python", "3.12.4", oci=False),
        "team/legacy:1.0.0": seeder.push_image(
            "team/legacy", "1.0.0", platforms=("linux/amd64",), index=False, oci=False
        ),
        "team/app:2.0.0": seeder.push_image("team/app", "2.0.0"),
        "team/big:1.0": push_with_layer(seeder, "team/big", "1.0", BIG_LAYER),
        "team/big-copy:1.0": push_with_layer(seeder, "team/big-copy", "1.0", BIG_LAYER),
    }
    nginx = pushed["library/nginx:1.26.2"]
    sign_image(seeder, server.host, "library/nginx", nginx.digest, key)
    sign_image(seeder, server.host, "library/nginx", nginx.platforms["linux/arm64"], key)
    sign_image_bundle(seeder, "team/app", pushed["team/app:2.0.0"].digest, key)
    try:
        yield Source(server, seeder, pushed, key, key.write_public(workdir / "release.pub"))
    finally:
        seeder.close()
        server.stop()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[RegistryServer]:
    """An empty registry for each test: the mirror."""
    server = RegistryServer(tmp_path / "mirror").start()
    yield server
    server.stop()


class Recorder:
    """The proxy's hooks: rewrite the registry's upload Locations to the proxy, record writes, cut on demand."""

    def __init__(self, proxy: Proxy, upstream: str) -> None:
        self.proxy, self.upstream = proxy, upstream
        self.lock = threading.Lock()
        self.writes: list[tuple[str, str]] = []  # (method, path with query) of every POST, PATCH, PUT
        self.statuses: list[tuple[str, str, int]] = []
        self.cut_after: int | None = None  # writes forwarded before every request is reset
        self.reset_patches: set[int] = set()  # reset the n-th PATCH (1-based), once

    def intercept(self, method: str, path: str) -> Answer | str | float | None:
        with self.lock:
            if self.cut_after is not None and sum(1 for m, _ in self.writes if m != "POST") >= self.cut_after:
                return RESET
            if method in ("POST", "PATCH", "PUT"):
                self.writes.append((method, path))
                patches = sum(1 for m, _ in self.writes if m == "PATCH")
                if method == "PATCH" and patches in self.reset_patches:
                    self.reset_patches.discard(patches)
                    return RESET
        return None

    def tamper(self, method: str, path: str, answer: Answer) -> Answer:
        for name, value in list(answer.headers.items()):
            if name.lower() == "location":
                answer.headers[name] = value.replace(self.upstream, self.proxy.host)
        with self.lock:
            self.statuses.append((method, path, answer.status))
        return answer

    def blob_puts(self) -> list[str]:
        """``repository@digest`` of each completed blob upload."""
        return [
            path.split("/blobs/", 1)[0].removeprefix("/v2/") + "@" + parse_qs(urlsplit(path).query)["digest"][0]
            for method, path in self.writes
            if method == "PUT" and "/blobs/uploads/" in path and "digest=" in path
        ]

    def mounted(self) -> list[str]:
        return [
            parse_qs(urlsplit(path).query)["mount"][0]
            for method, path, status in self.statuses
            if method == "POST" and "mount=" in path and status == 201
        ]


@pytest.fixture
def proxied(target: RegistryServer) -> Iterator[Recorder]:
    proxy = Proxy(target.host)
    recorder = Recorder(proxy, target.host)
    proxy.intercept, proxy.tamper = recorder.intercept, recorder.tamper
    proxy.start()
    yield recorder
    proxy.stop()


IMAGES = {
    "web": ("library/nginx", "1.26.2"),
    "py": ("library/python", "3.12.4"),
    "legacy": ("team/legacy", "1.0.0"),
    "app": ("team/app", "2.0.0"),
    "big": ("team/big", "1.0"),
    "copy": ("team/big-copy", "1.0"),
}


def images_toml(host: str, key: Path, *, match_repository: bool = True, only: tuple[str, ...] = ()) -> str:
    lines = [
        f'[policies.release]\nmethod = "cosign"\nkey = "{key}"\nmatch-repository = {str(match_repository).lower()}'
    ]
    for name, (path, tag) in IMAGES.items():
        if only and name not in only:
            continue
        verify = '\nverify = "release"' if name in ("web", "app") else ""
        lines.append(f'[images.{name}]\nimage = "{host}/{path}"\ntag = "{tag}"{verify}')
    return "\n".join(lines) + "\n"


def locked(project: Project) -> dict[str, dict[str, object]]:
    images: dict[str, dict[str, object]] = tomllib.loads(project.lock.read_text())["images"]
    return images


def locked_project(tmp_path: Path, source: Source, name: str = "project", **options: object) -> Project:
    directory = tmp_path / name
    directory.mkdir()
    project = Project(directory, CliRunner())
    project.write(images_toml(source.host, source.key_path, **options))  # type: ignore[arg-type]
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    return project


def lock_against(tmp_path: Path, source: Source, mirror_host: str, only: tuple[str, ...] = ()) -> dict[str, dict]:  # type: ignore[type-arg]
    """Lock the same images at the mirror (signatures name the source repository: match-repository = false)."""
    directory = tmp_path / "at-mirror"
    directory.mkdir(exist_ok=True)
    project = Project(directory, CliRunner())
    project.write(images_toml(mirror_host, source.key_path, match_repository=False, only=only))
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    return locked(project)


def same_pins(a: dict[str, object], b: dict[str, object]) -> bool:
    keys = ("tag", "digest", "media-type", "platforms")
    return all(a[key] == b[key] for key in keys)


def test_mirror_then_lock_against_the_mirror_gives_identical_digests(
    tmp_path: Path, source: Source, target: RegistryServer
) -> None:
    project = locked_project(tmp_path, source)
    before = locked(project)

    result = project.run("mirror", f"{target.host}/mirror", "--json")

    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["target"] == f"{target.host}/mirror"
    by_name = {image["name"]: image for image in report["images"]}
    assert by_name["web"]["target"] == f"{target.host}/mirror/library/nginx:1.26.2@{before['web']['digest']}"
    assert by_name["web"]["signatures"] == 2  # the index's .sig and linux/arm64's .sig
    assert by_name["app"]["signatures"] == 1  # the v3 bundle referrer
    after = lock_against(tmp_path, source, f"{target.host}/mirror")
    assert set(after) == set(before)
    for name in before:
        assert same_pins(before[name], after[name]), name
    assert after["web"]["verified"]["method"] == "cosign"
    assert after["app"]["verified"]["method"] == "cosign"


def test_a_second_run_copies_nothing(tmp_path: Path, source: Source, proxied: Recorder) -> None:
    project = locked_project(tmp_path, source)
    first = project.run("mirror", proxied.proxy.host)
    assert first.exit_code == 0, first.stderr
    assert proxied.blob_puts()
    proxied.writes.clear()

    second = project.run("mirror", proxied.proxy.host)

    assert second.exit_code == 0, second.stderr
    assert proxied.writes == []  # no upload, no mount, no manifest
    assert second.stdout.count("up to date") == len(IMAGES)
    assert "0 copied, 0 B uploaded" in second.stderr


def test_an_interrupted_mirror_completes_on_the_next_run(tmp_path: Path, source: Source, proxied: Recorder) -> None:
    project = locked_project(tmp_path, source)
    proxied.cut_after = 6  # the registry vanishes after six uploads or pushes

    cut = project.run("mirror", proxied.proxy.host)

    assert cut.exit_code == 3, cut.stderr
    assert proxied.proxy.host in cut.stderr
    done_before = set(proxied.blob_puts()[:6])
    assert done_before
    proxied.cut_after = None
    proxied.writes.clear()

    resumed = project.run("mirror", proxied.proxy.host)

    assert resumed.exit_code == 0, resumed.stderr
    again = proxied.blob_puts()
    assert len(again) == len(set(again))  # nothing uploaded twice
    assert not done_before & set(again)  # nor anything the first run finished, into the same repository
    after = lock_against(tmp_path, source, proxied.proxy.host)
    for name, entry in locked(project).items():
        assert same_pins(entry, after[name]), name


def test_a_chunk_cut_midway_resumes_from_what_the_registry_holds(
    tmp_path: Path, source: Source, proxied: Recorder
) -> None:
    project = locked_project(tmp_path, source)
    proxied.reset_patches = {2}  # the connection breaks while sending the second chunk

    result = Operations.at(project.config).mirror(proxied.proxy.host, ["big"], chunk_size=64 * 1024)

    (image,) = result.images
    assert image.blobs_uploaded == 2  # the layer and the config
    patches = [path for method, path in proxied.writes if method == "PATCH"]
    assert len(patches) == -(-len(BIG_LAYER) // (64 * 1024)) + 1  # every chunk once, the cut one twice
    assert proxied.blob_puts().count("team/big@sha256:" + hashlib.sha256(BIG_LAYER).hexdigest()) == 1
    assert not proxied.reset_patches
    after = lock_against(tmp_path, source, proxied.proxy.host, only=("big",))
    assert same_pins(locked(project)["big"], after["big"])


def test_blobs_shared_between_repositories_are_mounted(tmp_path: Path, source: Source, proxied: Recorder) -> None:
    project = locked_project(tmp_path, source)
    layer = "sha256:" + hashlib.sha256(BIG_LAYER).hexdigest()

    result = project.run("mirror", proxied.proxy.host, "big", "copy")

    assert result.exit_code == 0, result.stderr
    assert [put for put in proxied.blob_puts() if put.endswith(layer)] != []
    assert len([put for put in proxied.blob_puts() if put.endswith(layer)]) == 1  # uploaded into one repository
    assert layer in proxied.mounted()  # mounted into the other
    mount = next(path for method, path in proxied.writes if method == "POST" and layer in path)
    assert parse_qs(urlsplit(mount).query)["from"][0] in ("team/big", "team/big-copy")


def test_mirror_into_a_registry_with_token_auth(
    tmp_path: Path, source: Source, token_registry: TokenRegistry, docker_config: Path
) -> None:
    project = locked_project(tmp_path, source)
    login(docker_config, token_registry.host)

    result = project.run("mirror", f"{token_registry.host}/mirrored", "legacy", "web", "big", "copy", "--json")

    assert result.exit_code == 0, result.stderr
    mounted = sum(image["blobs_mounted"] for image in json.loads(result.stdout)["images"])
    assert mounted >= 1  # the token for the mount also names the source repository
    assert token_registry.issuer.requests["Basic"] >= 1
    digest = locked(project)["web"]["digest"]
    seeder = token_registry.seeder
    token = token_registry.issuer.token(USER, ["repository:mirrored/library/nginx:pull"])
    answer = seeder.client.head(
        f"/v2/mirrored/library/nginx/manifests/{digest}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.oci.image.index.v1+json"},
    )
    assert answer.status_code == 200


def test_mirror_without_credentials_for_a_token_registry_is_exit_3(
    tmp_path: Path, source: Source, token_registry: TokenRegistry
) -> None:
    project = locked_project(tmp_path, source)
    result = project.run("mirror", f"{token_registry.host}/mirrored", "legacy")
    assert result.exit_code == 3
    assert token_registry.host in result.stderr
    assert "Traceback" not in result.stderr


def test_a_mirror_that_fails_for_several_images_names_each(
    tmp_path: Path, source: Source, token_registry: TokenRegistry
) -> None:
    project = locked_project(tmp_path, source)
    result = project.run("mirror", f"{token_registry.host}/mirrored", "legacy", "web")
    assert result.exit_code == 3
    legacy, web = result.stderr.splitlines()
    assert legacy.startswith(f"error: [images.legacy] mirroring to {token_registry.host}/mirrored/team/legacy: ")
    assert web.startswith(f"error: [images.web] mirroring to {token_registry.host}/mirrored/library/nginx: ")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("mirror", "mirror/path"), "registry host"),
        (("mirror", "https://registry.example.com"), "without a scheme"),
        (("mirror", "registry.example.com/Upper"), "bad path"),
        (("mirror", "registry.example.com", "nosuch"), "no image named 'nosuch'"),
    ],
)
def test_bad_input_is_exit_2_before_any_request(
    tmp_path: Path, source: Source, arguments: tuple[str, ...], message: str
) -> None:
    project = locked_project(tmp_path, source)
    result = project.run(*arguments)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr


def test_a_missing_or_stale_lock_is_refused(tmp_path: Path, source: Source, target: RegistryServer) -> None:
    project = locked_project(tmp_path, source)
    project.write(
        images_toml(source.host, source.key_path, only=("web",)) + '[images.new]\nimage = "x.io/a"\ntag = "1"\n'
    )
    stale = project.run("mirror", target.host)
    assert stale.exit_code == 1
    assert "stale" in stale.stderr
    assert "new: not locked" in stale.stderr
    project.lock.unlink()
    missing = project.run("mirror", target.host)
    assert missing.exit_code == 2
    assert "not found; run 'imagelock lock'" in missing.stderr


def test_a_source_blob_that_does_not_match_its_digest_is_never_completed_at_the_target(
    tmp_path: Path, source: Source, target: RegistryServer
) -> None:
    front = Proxy(source.host).start()
    try:
        project = Project(tmp_path, CliRunner())
        project.write(f'[images.big]\nimage = "{front.host}/team/big"\ntag = "1.0"\n')
        assert project.run("lock").exit_code == 0

        def flip(method: str, path: str, answer: Answer) -> Answer:
            if "/blobs/" in path and len(answer.body) > 1000:
                answer.body = bytes([answer.body[0] ^ 1]) + answer.body[1:]
            return answer

        front.tamper = flip
        result = project.run("mirror", target.host)
    finally:
        front.stop()

    assert result.exit_code == 3
    assert "does not match its digest" in result.stderr
    assert "[images.big]" in result.stderr
    layer = "sha256:" + hashlib.sha256(BIG_LAYER).hexdigest()
    assert httpx.head(f"{target.url}/v2/team/big/blobs/{layer}").status_code == 404


def test_deploying_from_the_mirror_by_digest_with_ref_relocate(
    tmp_path: Path, source: Source, target: RegistryServer
) -> None:
    project = locked_project(tmp_path, source)
    assert project.run("mirror", f"{target.host}/mirror").exit_code == 0
    for platform in (None, "linux/arm64"):
        options = ["--platform", platform] if platform else []
        result = project.run("ref", "web", *options, "--relocate", f"{source.server.host}={target.host}/mirror")
        assert result.exit_code == 0, result.stderr
        reference = result.stdout.strip()
        repository_and_tag, digest = reference.split("@")
        assert repository_and_tag == f"{target.host}/mirror/library/nginx:1.26.2"
        pinned = locked(project)["web"]
        platforms = pinned["platforms"]
        assert isinstance(platforms, dict)
        assert digest == (platforms[platform] if platform else pinned["digest"])
        # what a deploy would pull: the mirror serves that very digest
        answer = httpx.head(
            f"{target.url}/v2/mirror/library/nginx/manifests/{digest}",
            headers={"Accept": "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"},
        )
        assert answer.status_code == 200
        assert answer.headers["docker-content-digest"] == digest


@pytest.mark.parametrize("location", ["http://xn--/upload", "http://[::1/upload", "ftp://127.0.0.1/upload"])
def test_an_upload_location_that_is_no_http_url_is_one_line_exit_3(
    tmp_path: Path, source: Source, target: RegistryServer, location: str
) -> None:
    def send_uploads_nowhere(method: str, path: str, answer: Answer) -> Answer:
        for name in list(answer.headers):
            if name.lower() == "location" and method == "POST" and "/blobs/uploads/" in path:
                answer.headers[name] = location
        return answer

    proxy = Proxy(target.host, tamper=send_uploads_nowhere).start()
    try:
        result = locked_project(tmp_path, source).run("mirror", f"{proxy.host}/mirror", "legacy")
    finally:
        proxy.stop()
    assert result.exit_code == 3
    [line] = result.stderr.strip().splitlines()
    assert f"the registry sent a location that is no http(s) URL: {location!r}" in line


def test_an_upload_location_on_another_origin_gets_no_credentials(
    tmp_path: Path, source: Source, token_registry: TokenRegistry, docker_config: Path
) -> None:
    elsewhere = Proxy(token_registry.host).start()  # another origin in front of the same registry

    def send_uploads_elsewhere(method: str, path: str, answer: Answer) -> Answer:
        for name, value in list(answer.headers.items()):
            if name.lower() == "location" and "/blobs/uploads/" in value:
                answer.headers[name] = value.replace(token_registry.host, elsewhere.host)
        return answer

    registry = Proxy(token_registry.host, tamper=send_uploads_elsewhere).start()
    try:
        project = locked_project(tmp_path, source)
        login(docker_config, registry.host)
        result = project.run("mirror", f"{registry.host}/elsewhere", "legacy")
        assert any(value is not None for value in registry.authorizations)  # the registry got its token
        assert elsewhere.authorizations  # the upload went to the other origin
        assert all(value is None for value in elsewhere.authorizations)  # without any credential
        assert result.exit_code == 3  # which the registry refuses: the copy fails, nothing leaks
        assert "Traceback" not in result.stderr
    finally:
        registry.stop()
        elsewhere.stop()
