"""A real registry for tests and the demo: Debian's ``docker-registry`` (distribution 2.8.2).

``RegistryServer`` starts it on a free loopback port with filesystem storage; ``Seeder`` pushes
images over its HTTP API (blobs, image manifests, multi-platform indexes with attestation
manifests), the way ``docker push`` would, without a Docker engine.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.serving import terminate, wait_listening

REGISTRY_BINARY = "docker-registry"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def registry_binary() -> str | None:
    return shutil.which(REGISTRY_BINARY) or (
        "/usr/bin/docker-registry" if Path("/usr/bin/docker-registry").exists() else None
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RegistryServer:
    """One ``docker-registry serve`` process on 127.0.0.1."""

    workdir: Path
    auth_yaml: str = ""
    tls: tuple[Path, Path] | None = None  # certificate, key
    access_log: bool = False  # one line per request in registry.log, with the client's address and protocol
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def start(self) -> RegistryServer:
        binary = registry_binary()
        if binary is None:
            raise RuntimeError("docker-registry is not installed (apt-get install docker-registry)")
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        tls = f"\n  tls:\n    certificate: {self.tls[0]}\n    key: {self.tls[1]}" if self.tls else ""
        config = self.workdir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            f"log:\n  level: error\n  accesslog:\n    disabled: {str(not self.access_log).lower()}\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}{tls}\n" + self.auth_yaml
        )
        log = (self.workdir / "registry.log").open("ab")
        self.process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        wait_listening(self.process, self.port, self.workdir / "registry.log", "docker-registry")

    def stop(self) -> None:
        terminate(self.process)
        self.process = None


@dataclass(frozen=True)
class PushedImage:
    repository: str
    tag: str
    digest: str  # of the index, or of the manifest for a single-platform image
    media_type: str
    platforms: dict[str, str]  # platform → manifest digest


class Seeder:
    """Pushes images to a registry over the distribution API."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
        verify: bool | ssl.SSLContext = True,
    ) -> None:
        self.client = httpx.Client(base_url=base_url, auth=auth, headers=headers, verify=verify, timeout=30)
        self._blobs: set[tuple[str, str]] = set()

    def close(self) -> None:
        self.client.close()

    def push_blob(self, repository: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if (repository, digest) in self._blobs:
            return digest
        started = self.client.post(f"/v2/{repository}/blobs/uploads/")
        started.raise_for_status()
        location = httpx.URL(started.headers["location"])
        upload = self.client.put(
            location.copy_merge_params({"digest": digest}),
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        upload.raise_for_status()
        self._blobs.add((repository, digest))
        return digest

    def push_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        response = self.client.put(
            f"/v2/{repository}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
        )
        response.raise_for_status()
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def push_single(
        self,
        repository: str,
        tag: str | None,
        platform: str,
        *,
        salt: str = "",
        oci: bool = True,
        created: str | None = None,
        annotations: dict[str, str] | None = None,
    ) -> tuple[str, int, bytes]:
        """Push one platform's image; return its manifest digest, size and body.

        ``created`` is the config's ``created`` time; ``annotations`` are the manifest's.
        """
        os_name, architecture, *variant = platform.split("/")
        layer = self.push_blob(repository, f"layer of {repository} {platform}".encode() * 8)
        config: dict[str, object] = {
            "architecture": architecture,
            "os": os_name,
            "rootfs": {"type": "layers", "diff_ids": [layer]},
            "config": {"Labels": {"org.example.tag": tag or "", "org.example.salt": salt}},
        }
        if variant:
            config["variant"] = variant[0]
        if created is not None:
            config["created"] = created
        config_body = json.dumps(config, sort_keys=True).encode()
        config_digest = self.push_blob(repository, config_body)
        media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
        manifest = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
                "digest": config_digest,
                "size": len(config_body),
            },
            "layers": [
                {
                    "mediaType": OCI_LAYER if oci else DOCKER_LAYER,
                    "digest": layer,
                    "size": 8 * len(f"layer of {repository} {platform}"),
                }
            ],
        }
        if annotations:
            manifest["annotations"] = annotations
        body = json.dumps(manifest, indent=3).encode()
        digest = self.push_manifest(repository, tag or ("sha256:" + hashlib.sha256(body).hexdigest()), body, media_type)
        return digest, len(body), body

    def push_image(
        self,
        repository: str,
        tag: str,
        platforms: Sequence[str] = ("linux/amd64", "linux/arm64"),
        *,
        salt: str = "",
        oci: bool = True,
        attestations: bool = True,
        index: bool = True,
        created: str | Mapping[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> PushedImage:
        """Push a tag: a multi-platform index (with BuildKit-style attestations), or a single manifest.

        ``created``: every config's ``created`` time, or each platform's; ``annotations``: the index's, or the
        single manifest's.
        """

        def created_of(platform: str) -> str | None:
            return created if created is None or isinstance(created, str) else created.get(platform)

        if not index:
            (platform,) = platforms
            digest, _, _ = self.push_single(
                repository, tag, platform, salt=salt, oci=oci, created=created_of(platform), annotations=annotations
            )
            media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
            return PushedImage(repository, tag, digest, media_type, {normalise(platform): digest})
        descriptors: list[dict[str, object]] = []
        children: dict[str, str] = {}
        for platform in platforms:
            digest, size, _ = self.push_single(
                repository, None, platform, salt=f"{tag}{salt}", oci=oci, created=created_of(platform)
            )
            os_name, architecture, *variant = platform.split("/")
            descriptor_platform: dict[str, str] = {"architecture": architecture, "os": os_name}
            if variant:
                descriptor_platform["variant"] = variant[0]
            descriptors.append(
                {
                    "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
                    "digest": digest,
                    "size": size,
                    "platform": descriptor_platform,
                }
            )
            children.setdefault(normalise(platform), digest)
        if attestations and oci:
            for child in list(descriptors):
                attestation = self._push_attestation(repository, str(child["digest"]), salt=tag + salt)
                descriptors.append(attestation)
        media_type = OCI_INDEX if oci else DOCKER_LIST
        document: dict[str, object] = {"schemaVersion": 2, "mediaType": media_type, "manifests": descriptors}
        if annotations:
            document["annotations"] = annotations
        body = json.dumps(document, indent=3).encode()
        digest = self.push_manifest(repository, tag, body, media_type)
        return PushedImage(repository, tag, digest, media_type, children)

    def _push_attestation(self, repository: str, subject: str, *, salt: str) -> dict[str, object]:
        statement = json.dumps(
            {"_type": "https://in-toto.io/Statement/v0.1", "subject": subject, "salt": salt}
        ).encode()
        layer = self.push_blob(repository, statement)
        config = self.push_blob(repository, b"{}")
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 2},
            "layers": [{"mediaType": "application/vnd.in-toto+json", "digest": layer, "size": len(statement)}],
        }
        body = json.dumps(manifest).encode()
        digest = self.push_manifest(repository, "sha256:" + hashlib.sha256(body).hexdigest(), body, OCI_MANIFEST)
        return {
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": len(body),
            "platform": {"architecture": "unknown", "os": "unknown"},
            "annotations": {
                "vnd.docker.reference.digest": subject,
                "vnd.docker.reference.type": "attestation-manifest",
            },
        }


def normalise(platform: str) -> str:
    """The platform as imagelock writes it (``linux/arm64/v8`` → ``linux/arm64``)."""
    return platform.removesuffix("/v8") if platform.startswith("linux/arm64") else platform


# Realistic tag sets, trimmed: what the upstream repositories publish, including the tags a
# resolver must ignore (latest, stable, mainline, variant suffixes with versions, codenames).
NGINX_TAGS = (
    "1.24.0", "1.25.0", "1.25.1", "1.25.2", "1.25.3", "1.25.4", "1.25", "1.26.0", "1.26.1", "1.26.2",
    "1.26", "1.27.0", "1.27.1", "1.27", "mainline", "stable", "latest",
    "1.25.4-alpine", "1.26.2-alpine", "1.26.2-alpine3.19", "1.27.1-alpine", "1.26.2-perl", "alpine",
)  # fmt: skip
PYTHON_TAGS = (
    "3.11.9", "3.12.0", "3.12.4", "3.12", "3.13.0rc1", "3.12.4-slim", "3.12.4-slim-bookworm", "3", "latest",
)  # fmt: skip
UBUNTU_TAGS = ("jammy-20240111", "jammy-20240125", "jammy", "noble-20240423", "22.04", "24.04", "latest")


def seed_catalog(seeder: Seeder) -> dict[str, PushedImage]:
    """The example catalogue used by the tests and the demo; returns 'repository:tag' → image."""
    pushed: dict[str, PushedImage] = {}

    def push(repository: str, tags: Iterable[str], **options: object) -> None:
        for tag in tags:
            pushed[f"{repository}:{tag}"] = seeder.push_image(repository, tag, **options)  # type: ignore[arg-type]

    push("library/nginx", NGINX_TAGS)
    push("library/python", PYTHON_TAGS, oci=False)
    push("library/ubuntu", UBUNTU_TAGS, platforms=("linux/amd64", "linux/arm64/v8", "linux/arm/v7"))
    push("library/redis", ("7.2", "7.2.4"))
    push("library/postgres", ("16.3", "16.4", "16"), oci=False)
    push("team/legacy", ("1.0.0",), platforms=("linux/amd64",), index=False, oci=False)  # one platform, no index
    return pushed
