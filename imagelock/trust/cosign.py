"""cosign signatures, key-based, in the legacy scheme most published signatures use.

The signature manifest sits in the image's repository at tag ``sha256-<hex>.sig``; each layer
is a simple-signing payload (media type ``application/vnd.dev.cosign.simplesigning.v1+json``)
with the base64 signature in the annotation ``dev.cosignproject.cosign/signature``. Checked in
this order, and only then believed: the payload blob's digest and size, the signature over its
exact bytes, the JSON, ``critical.type``, ``docker-manifest-digest`` (the digest imagelock
computed), and ``docker-reference`` (the same repository, unless the policy relaxes it).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from imagelock.errors import InvalidReferenceError, NotFoundError
from imagelock.reference import Repository, parse_reference
from imagelock.registry import RegistryClient
from imagelock.trust import CosignPolicy, Evidence, SignatureError
from imagelock.trust.keys import PublicKey

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"
MAX_PAYLOAD_BYTES = 64 << 10
MAX_SIGNATURE_LAYERS = 32


@dataclass(frozen=True)
class Verified:
    key: PublicKey
    payload: dict[str, object]


def signature_tag(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}-{hexdigest}.sig"


async def verify(policy: CosignPolicy, repository: Repository, digest: str, client: RegistryClient) -> Evidence:
    try:
        manifest = await client.get_manifest(repository, signature_tag(digest))
    except NotFoundError:
        raise SignatureError(f"no cosign signature for {repository}@{digest}") from None
    if manifest.is_index or not manifest.layers:
        raise SignatureError(f"{repository}:{signature_tag(digest)} is not a cosign signature manifest")
    problems: list[str] = []
    for layer in manifest.layers[:MAX_SIGNATURE_LAYERS]:
        if layer.media_type != SIMPLE_SIGNING:
            continue
        if layer.size > MAX_PAYLOAD_BYTES:
            problems.append(f"payload {layer.digest} is larger than {MAX_PAYLOAD_BYTES} bytes")
            continue
        payload = await client.get_blob(repository, layer.digest, max_bytes=MAX_PAYLOAD_BYTES)
        if len(payload) != layer.size:
            problems.append(f"payload {layer.digest} is {len(payload)} bytes, its descriptor says {layer.size}")
            continue
        try:
            verified = verify_simple_signing(
                payload,
                layer.annotations.get(SIGNATURE_ANNOTATION, ""),
                policy.keys,
                digest,
                _same_repository(repository) if policy.match_repository else None,
            )
        except SignatureError as error:
            problems.append(str(error))
            continue
        return Evidence({"method": "cosign", "key": verified.key.fingerprint, "signature": manifest.digest})
    reason = "; ".join(problems) if problems else "no simple-signing layer"
    raise SignatureError(f"{repository}@{digest}: no valid cosign signature ({reason})")


def verify_simple_signing(
    payload: bytes,
    signature_base64: str,
    keys: Sequence[PublicKey],
    digest: str,
    reference_matches: Callable[[str], bool] | None,
) -> Verified:
    """Check one simple-signing payload and its signature; the caller has checked the payload's digest."""
    try:
        signature = base64.b64decode("".join(signature_base64.split()), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("signature annotation is not base64") from None
    if not signature:
        raise SignatureError("signature annotation is missing")
    key = next((key for key in keys if key.verifies(signature, payload)), None)
    if key is None:
        raise SignatureError("signature does not verify with the policy's key(s)")
    try:
        document = json.loads(payload)
        critical = document["critical"]
        kind = critical["type"]
        signed_digest = critical["image"]["docker-manifest-digest"]
        reference = critical["identity"]["docker-reference"]
    except (ValueError, KeyError, TypeError):
        raise SignatureError("signed payload is not a cosign simple-signing document") from None
    if kind != PAYLOAD_TYPE:
        raise SignatureError(f"signed payload has type {kind!r}, not {PAYLOAD_TYPE!r}")
    if signed_digest != digest:
        raise SignatureError(f"signature is for {signed_digest}, not {digest}")
    if reference_matches is not None and not (isinstance(reference, str) and reference_matches(reference)):
        raise SignatureError(f"signature names another repository ({reference!r})")
    return Verified(key, document)


def _same_repository(repository: Repository) -> Callable[[str], bool]:
    def matches(reference: str) -> bool:
        try:
            return parse_reference(reference).repository == repository
        except InvalidReferenceError:
            return False

    return matches
