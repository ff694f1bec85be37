"""Manifests and indexes: media types, parsing, platforms, and digest verification.

Every digest imagelock records is computed here from the bytes it received, and checked
against what the registry claimed (``Docker-Content-Digest``) and what was asked for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from imagelock.errors import RegistryError
from imagelock.platforms import Platform, is_platform_part
from imagelock.reference import is_valid_digest
from imagelock.untrusted import load_json

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST))
IMAGE_CONFIG_TYPES = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)
_SCHEMA1_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)
ATTESTATION_ANNOTATION = "vnd.docker.reference.type"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None

    @property
    def is_attestation(self) -> bool:
        unknown = self.platform is not None and self.platform == Platform("unknown", "unknown")
        return unknown or self.annotations.get(ATTESTATION_ANNOTATION) == "attestation-manifest"


@dataclass(frozen=True)
class Manifest:
    """A verified manifest or index: its digest is sha256 of ``body``, computed here."""

    media_type: str
    digest: str
    body: bytes
    children: tuple[Descriptor, ...] = ()  # for an index
    config: Descriptor | None = None  # for an image manifest
    layers: tuple[Descriptor, ...] = ()  # for an image manifest

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def platforms(self) -> dict[str, str]:
        """Each real platform of an index and the digest of its manifest (first one wins)."""
        found: dict[str, str] = {}
        for child in self.children:
            if child.platform is not None and not child.is_attestation:
                found.setdefault(str(child.platform), child.digest)
        return found


def sha256_digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def verify_digest(body: bytes, *, claimed: str | None, expected: str | None, what: str) -> str:
    """sha256 of ``body``; RegistryError if it contradicts the registry's claim or the digest asked for."""
    for digest, source in ((claimed, "the registry's Docker-Content-Digest"), (expected, "the digest requested")):
        if digest is None:
            continue
        if not is_valid_digest(digest):
            raise RegistryError(f"{what}: {source} {digest!r} is not a valid digest")
        algorithm = digest.split(":", 1)[0]
        actual = f"{algorithm}:" + hashlib.new(algorithm, body).hexdigest()
        if actual != digest:
            raise RegistryError(f"{what}: content does not match {source} (got {actual}, expected {digest})")
    return sha256_digest(body)


def parse_manifest(
    body: bytes, *, content_type: str | None, claimed_digest: str | None, expected_digest: str | None, what: str
) -> Manifest:
    """Verify and parse a manifest or index body; refuse schema1, unknown types and lies about the type."""
    digest = verify_digest(body, claimed=claimed_digest, expected=expected_digest, what=what)
    try:
        document = load_json(body)
    except ValueError:
        raise RegistryError(f"{what}: manifest is not valid JSON") from None
    if not isinstance(document, dict):
        raise RegistryError(f"{what}: manifest is not a JSON object")
    header_type = (content_type or "").split(";", 1)[0].strip().lower()
    body_type = document.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise RegistryError(f"{what}: manifest mediaType is not a string")
    if header_type in _SCHEMA1_TYPES or body_type in _SCHEMA1_TYPES or document.get("schemaVersion") == 1:
        raise RegistryError(f"{what}: Docker schema 1 manifests are not supported (deprecated and unverifiable)")
    if body_type and header_type and body_type != header_type:
        raise RegistryError(
            f"{what}: Content-Type {header_type!r} disagrees with the manifest's mediaType {body_type!r}"
        )
    media_type = body_type or header_type
    if media_type not in INDEX_TYPES and media_type not in MANIFEST_TYPES:
        raise RegistryError(f"{what}: unsupported manifest media type {media_type!r}")
    if document.get("schemaVersion") != 2:
        raise RegistryError(f"{what}: manifest schemaVersion must be 2")
    if media_type in INDEX_TYPES:
        children = document.get("manifests")
        if not isinstance(children, list):
            raise RegistryError(f"{what}: index has no 'manifests' list")
        return Manifest(media_type, digest, body, children=tuple(_descriptor(child, what) for child in children))
    config = _descriptor(document.get("config"), what)
    layers = document.get("layers") or []
    if not isinstance(layers, list):
        raise RegistryError(f"{what}: manifest 'layers' is not a list")
    return Manifest(media_type, digest, body, config=config, layers=tuple(_descriptor(layer, what) for layer in layers))


def _descriptor(value: Any, what: str) -> Descriptor:
    if not isinstance(value, dict):
        raise RegistryError(f"{what}: malformed descriptor")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str) or not is_valid_digest(digest):
        raise RegistryError(f"{what}: descriptor with a missing media type or invalid digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError(f"{what}: descriptor {digest} has an invalid size")
    annotations = value.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(text, str) for text in annotations.values()):
        raise RegistryError(f"{what}: descriptor {digest} has malformed annotations")
    platform = None
    if "platform" in value:
        platform = platform_of(value["platform"], what)
    artifact_type = value.get("artifactType")
    return Descriptor(
        media_type,
        digest,
        size,
        platform,
        annotations,
        artifact_type if isinstance(artifact_type, str) else None,
    )


def platform_of(value: Any, what: str) -> Platform:
    """The platform in an index descriptor or an image config (``os``, ``architecture``, ``variant``)."""
    if not isinstance(value, dict):
        raise RegistryError(f"{what}: malformed platform")
    os_name, architecture, variant = value.get("os"), value.get("architecture"), value.get("variant") or ""
    if not isinstance(os_name, str) or not isinstance(architecture, str) or not isinstance(variant, str):
        raise RegistryError(f"{what}: platform without os and architecture")
    if not os_name or not architecture:
        raise RegistryError(f"{what}: platform without os and architecture")
    if not all(is_platform_part(part) for part in (os_name, architecture, variant) if part):
        raise RegistryError(
            f"{what}: invalid platform (os {os_name!r}, architecture {architecture!r}, variant {variant!r})"
        )
    return Platform.of(os_name, architecture, variant)


def config_platform(body: bytes, what: str) -> Platform:
    """The platform recorded in a single-platform image's config blob."""
    try:
        document = load_json(body)
    except ValueError:
        raise RegistryError(f"{what}: image config is not valid JSON") from None
    return platform_of(document, what)
