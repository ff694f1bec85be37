"""Manifest parsing and verification, and WWW-Authenticate challenges."""

from __future__ import annotations

import hashlib
import json

import pytest

from imagelock.errors import RegistryError
from imagelock.registry.challenge import Challenge, parse_challenges
from imagelock.registry.manifests import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Manifest, parse_manifest

CHILD = "sha256:" + "1" * 64
ATTESTATION = "sha256:" + "2" * 64
CONFIG = "sha256:" + "3" * 64


def index_body(*manifests: dict[str, object]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(manifests)}).encode()


def descriptor(digest: str, os: str, architecture: str, **extra: object) -> dict[str, object]:
    return {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": 100,
        "platform": {"os": os, "architecture": architecture},
        **extra,
    }


def parse(
    body: bytes, content_type: str | None = OCI_INDEX, claimed: str | None = None, expected: str | None = None
) -> Manifest:
    return parse_manifest(body, content_type=content_type, claimed_digest=claimed, expected_digest=expected, what="x")


def sha256(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def test_digest_is_sha256_of_the_exact_bytes() -> None:
    body = index_body(descriptor(CHILD, "linux", "amd64"))
    pretty = json.dumps(json.loads(body), indent=2).encode()
    assert parse(body).digest == sha256(body)
    assert parse(pretty).digest == sha256(pretty) != sha256(body)


def test_index_platforms_skip_attestations_and_unknown() -> None:
    body = index_body(
        descriptor(CHILD, "linux", "arm64", platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
        descriptor(ATTESTATION, "unknown", "unknown"),
        descriptor(
            "sha256:" + "4" * 64, "linux", "amd64", annotations={"vnd.docker.reference.type": "attestation-manifest"}
        ),
        descriptor("sha256:" + "5" * 64, "linux", "amd64"),
        descriptor("sha256:" + "6" * 64, "linux", "amd64"),  # a second amd64 entry: the first wins
    )
    assert parse(body).platforms() == {"linux/arm64": CHILD, "linux/amd64": "sha256:" + "5" * 64}


def test_claimed_digest_must_match() -> None:
    body = index_body()
    assert parse(body, claimed=sha256(body)).digest == sha256(body)
    with pytest.raises(RegistryError, match="Docker-Content-Digest"):
        parse(body, claimed=sha256(b"other"))


def test_sha512_claims_are_checked_with_sha512() -> None:
    body = index_body()
    good = "sha512:" + hashlib.sha512(body).hexdigest()
    assert parse(body, claimed=good).digest == sha256(body)
    with pytest.raises(RegistryError):
        parse(body, claimed="sha512:" + hashlib.sha512(b"x").hexdigest())


def test_requested_digest_must_match() -> None:
    body = index_body()
    with pytest.raises(RegistryError, match="digest requested"):
        parse(body, expected=sha256(b"other"))


def test_malformed_claim_is_refused() -> None:
    with pytest.raises(RegistryError, match="not a valid digest"):
        parse(index_body(), claimed="sha256:short")


def test_content_type_must_agree_with_media_type() -> None:
    with pytest.raises(RegistryError, match="disagrees"):
        parse(index_body(), content_type=OCI_MANIFEST)


def test_missing_media_type_in_body_uses_content_type() -> None:
    body = json.dumps({"schemaVersion": 2, "config": {"mediaType": "x", "digest": CONFIG, "size": 2}, "layers": []})
    manifest = parse(body.encode(), content_type=DOCKER_MANIFEST + "; charset=utf-8")
    assert manifest.media_type == DOCKER_MANIFEST
    assert manifest.config is not None
    assert manifest.config.digest == CONFIG


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b'{"schemaVersion": 1, "name": "x"}', "application/vnd.docker.distribution.manifest.v1+prettyjws", "schema 1"),
        (b'{"schemaVersion": 2, "mediaType": "application/x-unknown"}', None, "unsupported manifest media type"),
        (b'{"schemaVersion": 2}', "text/plain", "unsupported manifest media type"),
        (b"not json", OCI_INDEX, "not valid JSON"),
        (b"[]", OCI_INDEX, "not a JSON object"),
        (json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX}).encode(), OCI_INDEX, "no 'manifests' list"),
        (index_body({"mediaType": OCI_MANIFEST, "digest": "sha256:bad", "size": 1}), OCI_INDEX, "invalid digest"),
        (index_body({"mediaType": OCI_MANIFEST, "digest": CHILD, "size": -1}), OCI_INDEX, "invalid size"),
        (index_body(descriptor(CHILD, "", "amd64")), OCI_INDEX, "without os and architecture"),
        (index_body(descriptor(CHILD, "linux/x", "amd64")), OCI_INDEX, "invalid platform"),
        (index_body(descriptor(CHILD, "linux", "amd64", annotations={"a": 1})), OCI_INDEX, "malformed annotations"),
        (b"[" * 100_000, OCI_INDEX, "not valid JSON"),
    ],
)
def test_unusable_manifests_are_refused(body: bytes, content_type: str | None, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        parse(body, content_type=content_type)


HUB_REALM = "https://auth.docker.io/token"
HUB_SCOPE = "repository:a/b:pull,push"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            [f'Bearer realm="{HUB_REALM}",service="registry.docker.io",scope="{HUB_SCOPE}"'],
            [Challenge("bearer", {"realm": HUB_REALM, "service": "registry.docker.io", "scope": HUB_SCOPE})],
        ),
        (
            ['Basic realm="Registry Realm", Bearer realm="https://t.example/token",service=s'],
            [
                Challenge("basic", {"realm": "Registry Realm"}),
                Challenge("bearer", {"realm": "https://t.example/token", "service": "s"}),
            ],
        ),
        (['BASIC realm="a \\"quoted\\" realm"'], [Challenge("basic", {"realm": 'a "quoted" realm'})]),
        (["Basic", 'Bearer realm="x"'], [Challenge("basic", {}), Challenge("bearer", {"realm": "x"})]),
        ([""], []),
    ],
)
def test_challenges(headers: list[str], expected: list[Challenge]) -> None:
    assert parse_challenges(headers) == expected
