"""cosign signatures, key-based, in both schemes cosign writes.

Legacy (what most published signatures use): a manifest at tag ``sha256-<hex>.sig``; each layer
is a simple-signing payload (``application/vnd.dev.cosign.simplesigning.v1+json``) with the
base64 signature in the annotation ``dev.cosignproject.cosign/signature``. Checked in this order,
and only then believed: the payload blob's digest and size, the signature over its exact bytes,
the JSON, ``critical.type``, ``docker-manifest-digest`` (the digest imagelock computed), and
``docker-reference`` (the same repository, unless the policy relaxes it).

cosign v3: a sigstore bundle (``application/vnd.dev.sigstore.bundle.v0.3+json``) attached as an
OCI referrer of the image. Its DSSE envelope is checked with the policy's keys (never the bundle's
key hint), then its in-toto statement must name the digest imagelock computed as its subject.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imagelock.errors import InvalidReferenceError, NotFoundError
from imagelock.reference import Repository, parse_reference
from imagelock.trust._base import Evidence, SignatureError
from imagelock.trust.keys import PublicKey
from imagelock.trust.rekor import BUNDLE_ANNOTATION, verify_signed_entry
from imagelock.trust.statements import check_signature_statement, open_envelope
from imagelock.untrusted import load_json

if TYPE_CHECKING:
    from imagelock.registry import ImageReader
    from imagelock.trust.provenance import ProvenanceRequirement

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"
MAX_PAYLOAD_BYTES = 64 << 10
MAX_SIGNATURE_LAYERS = 32
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
MAX_BUNDLE_BYTES = 1 << 20


@dataclass(frozen=True)
class CosignPolicy:
    """``method = "cosign"``: any one of ``keys`` must have signed the image, in either scheme."""

    name: str
    keys: tuple[PublicKey, ...]
    match_repository: bool = True
    rekor_keys: tuple[PublicKey, ...] = ()  # when given, a Rekor SET by one of them is required too
    provenance: ProvenanceRequirement | None = None  # when given, signed SLSA provenance is required too
    method: str = "cosign"

    def canonical(self) -> dict[str, Any]:
        """What decides the outcome; part of each entry's spec hash, so a changed policy is a change."""
        canonical: dict[str, Any] = {
            "method": self.method,
            "keys": sorted(key.fingerprint for key in self.keys),
            "match-repository": self.match_repository,
        }
        if self.rekor_keys:
            canonical["rekor-keys"] = sorted(key.fingerprint for key in self.rekor_keys)
        if self.provenance is not None:
            canonical["provenance"] = self.provenance.canonical()
        return canonical


@dataclass(frozen=True)
class Verified:
    key: PublicKey
    payload: dict[str, object]


def signature_tag(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}-{hexdigest}.sig"


async def verify(policy: CosignPolicy, repository: Repository, digest: str, client: ImageReader) -> Evidence:
    """Evidence from the first signature, in either scheme, that satisfies the policy."""
    problems: list[str] = []
    for scheme in (_verify_legacy, _verify_bundles):
        try:
            return await scheme(policy, repository, digest, client)
        except NoSignatureError:
            continue
        except SignatureError as error:
            problems.append(str(error))
    if not problems:
        raise SignatureError(f"no cosign signature for {repository}@{digest}")
    raise SignatureError(f"{repository}@{digest}: no valid cosign signature ({'; '.join(problems)})")


class NoSignatureError(Exception):
    """A scheme has no signature for the image at all (not a failure on its own)."""


async def _verify_legacy(policy: CosignPolicy, repository: Repository, digest: str, client: ImageReader) -> Evidence:
    try:
        manifest = await client.get_manifest(repository, signature_tag(digest))
    except NotFoundError:
        raise NoSignatureError from None
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
        signature = layer.annotations.get(SIGNATURE_ANNOTATION, "")
        try:
            verified = verify_simple_signing(
                payload,
                signature,
                policy.keys,
                digest,
                _same_repository(repository) if policy.match_repository else None,
            )
            log_index = _logged(policy, layer.annotations.get(BUNDLE_ANNOTATION), payload, signature, verified.key)
        except SignatureError as error:
            problems.append(str(error))
            continue
        evidence = {"method": "cosign", "key": verified.key.fingerprint, "signature": manifest.digest}
        return Evidence(evidence | ({"log-index": log_index} if log_index is not None else {}))
    raise SignatureError("; ".join(problems) if problems else "the .sig manifest has no simple-signing layer")


def _logged(policy: CosignPolicy, bundle: str | None, payload: bytes, signature: str, key: PublicKey) -> str | None:
    """The Rekor log index proving the signature, when the policy requires one; None when it does not."""
    if not policy.rekor_keys:
        return None
    if bundle is None:
        raise SignatureError("the signature has no Rekor SET (dev.sigstore.cosign/bundle), and the policy requires one")
    return verify_signed_entry(bundle, policy.rekor_keys, payload, signature, key)


async def _verify_bundles(policy: CosignPolicy, repository: Repository, digest: str, client: ImageReader) -> Evidence:
    problems: list[str] = []
    if policy.rekor_keys:  # fail closed rather than accept a bundle whose log entry is unchecked
        await find_bundles(repository, digest, client, problems)
        raise SignatureError("rekor-key: transparency-log proofs in v3 bundles are not checked yet; sign with a .sig")
    for manifest_digest, bundle in await find_bundles(repository, digest, client, problems):
        try:
            key = verify_bundle(bundle, policy.keys, digest)
        except SignatureError as error:
            problems.append(f"bundle {manifest_digest}: {error}")
            continue
        return Evidence({"method": "cosign", "key": key.fingerprint, "signature": manifest_digest})
    raise SignatureError("; ".join(problems))


async def find_bundles(
    repository: Repository, digest: str, client: ImageReader, problems: list[str]
) -> list[tuple[str, bytes]]:
    """The sigstore bundles attached to ``digest`` as referrers: (referrer manifest digest, bundle bytes).

    Raises NoSignatureError when there are none; unusable referrers are noted in ``problems``.
    """
    referrers = [ref for ref in await client.referrers(repository, digest) if ref.artifact_type == BUNDLE_TYPE]
    if not referrers:
        raise NoSignatureError
    bundles = []
    for referrer in referrers[:MAX_SIGNATURE_LAYERS]:
        manifest = await client.get_manifest(repository, referrer.digest)
        if manifest.is_index or len(manifest.layers) != 1 or manifest.layers[0].size > MAX_BUNDLE_BYTES:
            problems.append(f"referrer {referrer.digest} is not a single bundle of at most {MAX_BUNDLE_BYTES} bytes")
            continue
        bundles.append(
            (manifest.digest, await client.get_blob(repository, manifest.layers[0].digest, max_bytes=MAX_BUNDLE_BYTES))
        )
    return bundles


def verify_bundle(bundle: bytes, keys: Sequence[PublicKey], digest: str) -> PublicKey:
    """A key-based sigstore bundle: its DSSE signature by one of ``keys``, a signature statement about ``digest``."""
    try:
        envelope = load_json(bundle)["dsseEnvelope"]
    except (ValueError, KeyError, TypeError):
        raise SignatureError("not a sigstore bundle with a DSSE envelope") from None
    payload_type, body, key = open_envelope(envelope, keys)
    check_signature_statement(payload_type, body, digest)
    return key


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
        document = load_json(payload)
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
