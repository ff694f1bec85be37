"""Signing images the way ``cosign sign --key`` does (legacy ``.sig`` tag scheme), with ``cryptography``.

Pushes a signature manifest at ``sha256-<hex>.sig`` in the image's repository: one layer per
signature, the simple-signing payload as the blob, the base64 signature in the layer annotation.
Every knob an attack needs is a parameter.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from tests.support.registry import OCI_CONFIG, OCI_MANIFEST, Seeder

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class SigningKey:
    private: PrivateKey

    @classmethod
    def ecdsa(cls, curve: ec.EllipticCurve | None = None) -> SigningKey:
        return cls(ec.generate_private_key(curve or ec.SECP256R1()))

    @classmethod
    def rsa(cls) -> SigningKey:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ed25519(cls) -> SigningKey:
        return cls(ed25519.Ed25519PrivateKey.generate())

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def write_public(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.public_pem())
        return path

    @property
    def fingerprint(self) -> str:
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return "sha256:" + hashlib.sha256(der).hexdigest()

    def sign(self, message: bytes) -> bytes:
        if isinstance(self.private, ec.EllipticCurvePrivateKey):  # cosign: the hash that fits the curve
            digest = hashes.SHA384() if self.private.curve.key_size == 384 else hashes.SHA256()
            return self.private.sign(message, ec.ECDSA(digest))
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return self.private.sign(message)


def payload(repository: str, digest: str, *, kind: str = "cosign container image signature") -> bytes:
    """cosign's simple-signing payload, compact JSON, as cosign writes it."""
    document = {
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": kind,
        },
        "optional": None,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def sign_image(
    seeder: Seeder,
    registry_host: str,
    repository: str,
    digest: str,
    key: SigningKey,
    *,
    signed_payload: bytes | None = None,
    uploaded_payload: bytes | None = None,
    signature: str | None = None,
    docker_reference: str | None = None,
    signed_digest: str | None = None,
    rekor: SigningKey | None = None,
) -> str:
    """Push a cosign signature for ``repository@digest``; return the signature manifest's digest.

    ``signed_payload`` is what the key signs, ``uploaded_payload`` what the blob holds (a swap
    attack makes them differ); ``signature`` overrides the annotation text; ``signed_digest`` the
    digest named inside the payload.
    """
    reference = docker_reference or f"{registry_host}/{repository}"
    signed = signed_payload if signed_payload is not None else payload(reference, signed_digest or digest)
    blob = uploaded_payload if uploaded_payload is not None else signed
    annotation = signature if signature is not None else base64.b64encode(key.sign(signed)).decode()
    annotations = {SIGNATURE_ANNOTATION: annotation}
    if rekor is not None:
        annotations[REKOR_BUNDLE] = rekor_bundle(rekor, signed, annotation, key)
    return push_cosign_tag(seeder, repository, digest, "sig", SIMPLE_SIGNING, blob, annotations)


def push_cosign_tag(
    seeder: Seeder,
    repository: str,
    digest: str,
    suffix: str,
    media_type: str,
    blob: bytes,
    annotations: dict[str, str],
) -> str:
    """Push cosign's ``sha256-<hex>.<suffix>`` manifest: one layer of ``blob``; return the manifest's digest."""
    blob_digest = seeder.push_blob(repository, blob)
    config = seeder.push_blob(repository, b"{}")
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 2},
        "layers": [{"mediaType": media_type, "digest": blob_digest, "size": len(blob), "annotations": annotations}],
    }
    algorithm, _, hexdigest = digest.partition(":")
    body = json.dumps(manifest).encode()
    return seeder.push_manifest(repository, f"{algorithm}-{hexdigest}.{suffix}", body, OCI_MANIFEST)


def dsse_envelope(
    key: SigningKey | None, body: bytes, payload_type: str = "application/vnd.in-toto+json"
) -> dict[str, object]:
    """A DSSE envelope of ``body`` signed by ``key`` over the DSSE pre-authentication encoding (unsigned: None)."""
    encoded_type = payload_type.encode()
    signed = b"DSSEv1 %d %s %d %s" % (len(encoded_type), encoded_type, len(body), body)
    signatures = [{"sig": base64.b64encode(key.sign(signed)).decode(), "keyid": ""}] if key is not None else []
    return {"payload": base64.b64encode(body).decode(), "payloadType": payload_type, "signatures": signatures}


REKOR_BUNDLE = "dev.sigstore.cosign/bundle"


def rekor_bundle(log: SigningKey, signed_payload: bytes, signature: str, signer: SigningKey, index: int = 7) -> str:
    """The Rekor SET annotation cosign attaches: a hashedrekord entry for the signature, signed by ``log``."""
    return rekor_set(log, hashedrekord(signed_payload, signature, signer), index)


def hashedrekord(signed_payload: bytes, signature: str, signer: SigningKey) -> bytes:
    """The body of the transparency-log entry for a signature: the payload's hash, the signature, the signer's key."""
    body = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(signed_payload).hexdigest()}},
            "signature": {
                "content": signature,
                "publicKey": {"content": base64.b64encode(signer.public_pem()).decode()},
            },
        },
    }
    return json.dumps(body).encode()


def rekor_set(log: SigningKey, entry_body: bytes, index: int = 7) -> str:
    """A Rekor SET annotation by ``log`` for an entry of ``entry_body``."""
    entry = {
        "body": base64.b64encode(entry_body).decode(),
        "integratedTime": 1700000000,
        "logID": log.fingerprint.removeprefix("sha256:"),
        "logIndex": index,
    }
    signed = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    return json.dumps({"SignedEntryTimestamp": base64.b64encode(log.sign(signed)).decode(), "Payload": entry})


BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SIGNATURE_PREDICATE = "https://sigstore.dev/cosign/sign/v1"


def statement(digest: str, predicate_type: str = SIGNATURE_PREDICATE) -> bytes:
    """The in-toto statement cosign signs: a signature by default, an attestation of another predicate type."""
    algorithm, _, hexdigest = digest.partition(":")
    document = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "", "digest": {algorithm: hexdigest}}],
        "predicateType": predicate_type,
        "predicate": {},
    }
    return json.dumps(document, separators=(",", ":")).encode()


def sign_image_bundle(
    seeder: Seeder,
    repository: str,
    digest: str,
    key: SigningKey,
    *,
    hint_key: SigningKey | None = None,
    subject_digest: str | None = None,
    predicate_type: str = SIGNATURE_PREDICATE,
) -> str:
    """Attach a cosign v3 key-based sigstore bundle to ``repository@digest`` as an OCI referrer.

    The registry has no referrers API, so the referrer is listed in an index at tag
    ``sha256-<hex>``, as cosign does. ``hint_key`` puts another key's hint in the bundle (the
    verifier must ignore it); ``subject_digest`` names another image in the signed statement;
    another ``predicate_type`` makes it an attestation (``cosign attest``), stored the same way.
    """
    bundle = key_bundle(key, statement(subject_digest or digest, predicate_type), hint_key=hint_key)
    return attach_bundle(seeder, repository, digest, bundle)


def key_bundle(key: SigningKey, statement_body: bytes, *, hint_key: SigningKey | None = None) -> bytes:
    """The sigstore bundle ``cosign sign --key`` (v3) writes: a DSSE envelope of ``statement_body`` and a key hint."""
    hint = base64.b64encode(bytes.fromhex((hint_key or key).fingerprint[7:])).decode()
    bundle = {
        "mediaType": BUNDLE_TYPE,
        "verificationMaterial": {"publicKey": {"hint": hint}, "tlogEntries": []},
        "dsseEnvelope": dsse_envelope(key, statement_body),
    }
    return json.dumps(bundle).encode()


def attach_bundle(seeder: Seeder, repository: str, digest: str, bundle_body: bytes) -> str:
    """Attach sigstore bundle bytes to ``repository@digest`` as an OCI referrer; return the referrer's digest."""
    layer = seeder.push_blob(repository, bundle_body)
    empty = seeder.push_blob(repository, b"{}")
    size = len(seeder.client.get(f"/v2/{repository}/manifests/{digest}", headers={"Accept": OCI_INDEX}).content)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_TYPE,
        "config": {"mediaType": OCI_EMPTY, "digest": empty, "size": 2},
        "layers": [{"mediaType": BUNDLE_TYPE, "digest": layer, "size": len(bundle_body)}],
        "subject": {"mediaType": OCI_INDEX, "digest": digest, "size": size},
    }
    manifest_body = json.dumps(manifest).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest_body).hexdigest()
    seeder.push_manifest(repository, manifest_digest, manifest_body, OCI_MANIFEST)
    referrer = {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest_body)}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{**referrer, "artifactType": BUNDLE_TYPE}]}
    algorithm, _, hexdigest = digest.partition(":")
    seeder.push_manifest(repository, f"{algorithm}-{hexdigest}", json.dumps(index).encode(), OCI_INDEX)
    return manifest_digest


def attest_image(
    seeder: Seeder,
    repository: str,
    digest: str,
    key: SigningKey | None,
    statement_body: bytes,
    predicate_type: str = "https://cyclonedx.org/bom",
) -> str:
    """Push a cosign attestation (``sha256-<hex>.att``): a DSSE envelope of ``statement_body`` signed by ``key``."""
    envelope = json.dumps(dsse_envelope(key, statement_body)).encode()
    annotations = {"predicateType": predicate_type}
    return push_cosign_tag(
        seeder, repository, digest, "att", "application/vnd.dsse.envelope.v1+json", envelope, annotations
    )
