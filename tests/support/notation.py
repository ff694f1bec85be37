"""Notation signatures made in the test suite: a CA, an intermediate and a leaf, and JWS envelopes in
Notary Project's exact format, attached to images as OCI referrers the way ``notation sign`` does."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.registry import OCI_INDEX, OCI_MANIFEST, Seeder

SIGNATURE_TYPE = "application/vnd.cncf.notary.signature"
JWS = "application/jose+json"
PAYLOAD_TYPE = "application/vnd.cncf.notary.payload.v1+json"
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
NOW = datetime.datetime.now(datetime.UTC)


def name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass
class Issued:
    certificate: x509.Certificate
    key: PrivateKey

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)


def issue(
    subject: str,
    issuer: Issued | None = None,
    *,
    key: PrivateKey | None = None,
    ca: bool = False,
    code_signing: bool = True,
    digital_signature: bool = True,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Issued:
    """A certificate for ``subject``, signed by ``issuer`` (self-signed when None)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(issuer.certificate.subject if issuer else name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - datetime.timedelta(days=1))
        .not_valid_after(not_after or NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    usage = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    builder = builder.add_extension(
        x509.KeyUsage(digital_signature=digital_signature and not ca, key_cert_sign=ca, **usage), critical=True
    )
    if not ca and code_signing:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    if not ca and not code_signing:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    signer = issuer.key if issuer else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)


@dataclass
class Pki:
    """A root CA, an intermediate CA and a code-signing leaf, as an organisation's signing PKI has."""

    root: Issued = field(default_factory=lambda: issue("Acme Root", ca=True))
    intermediate: Issued = field(init=False)
    leaf: Issued = field(init=False)

    def __post_init__(self) -> None:
        self.intermediate = issue("Acme Signing CA", self.root, ca=True)
        self.leaf = issue("release", self.intermediate)

    def write_root(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.root.pem())
        return path


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def envelope(
    target: dict[str, Any],
    leaf: Issued,
    chain: list[Issued],
    *,
    alg: str = "ES256",
    header: dict[str, Any] | None = None,
    payload: dict[str, Any] | None = None,
) -> bytes:
    """A Notation JWS envelope over ``target`` (a descriptor), signed by ``leaf``; ``chain`` follows the leaf."""
    protected = {
        "alg": alg,
        "crit": ["io.cncf.notary.signingScheme"],
        "cty": PAYLOAD_TYPE,
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
        **(header or {}),
    }
    payload_json = json.dumps(payload if payload is not None else {"targetArtifact": target}).encode()
    return jws(json.dumps(protected).encode(), payload_json, leaf, chain, alg=alg)


def jws(protected: bytes, payload: bytes, leaf: Issued, chain: list[Issued], *, alg: str = "ES256") -> bytes:
    """A JWS envelope of exactly these protected header and payload bytes, signed by ``leaf`` with ``alg``."""
    protected_text, payload_text = _b64url(protected), _b64url(payload)
    signed = f"{protected_text}.{payload_text}".encode()
    digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]
    if isinstance(leaf.key, rsa.RSAPrivateKey):
        signature = leaf.key.sign(signed, padding.PSS(padding.MGF1(digest), digest.digest_size), digest)
    else:
        r, s = decode_dss_signature(leaf.key.sign(signed, ec.ECDSA(digest)))
        size = (leaf.key.curve.key_size + 7) // 8
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    document = {
        "payload": payload_text,
        "protected": protected_text,
        "header": {
            "x5c": [base64.b64encode(item.der()).decode() for item in [leaf, *chain]],
            "io.cncf.notary.signingAgent": "imagelock tests",
        },
        "signature": _b64url(signature),
    }
    return json.dumps(document).encode()


def target_of(seeder: Seeder, repository: str, digest: str) -> dict[str, Any]:
    """The image's descriptor, as ``notation sign`` puts it in the payload."""
    response = seeder.client.get(f"/v2/{repository}/manifests/{digest}", headers={"Accept": OCI_INDEX})
    media_type = response.headers["content-type"]
    return {"mediaType": media_type, "digest": digest, "size": len(response.content)}


def attach_signature(seeder: Seeder, repository: str, digest: str, envelope_body: bytes, media_type: str = JWS) -> str:
    """Attach an envelope to ``repository@digest`` as a Notation signature referrer; return its manifest digest.

    The registry has no referrers API, so the referrer is also listed in the ``sha256-<hex>`` tag index
    (appended to what is already there), as notation does for such registries.
    """
    layer = seeder.push_blob(repository, envelope_body)
    empty = seeder.push_blob(repository, b"{}")
    target = target_of(seeder, repository, digest)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGNATURE_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": media_type, "digest": layer, "size": len(envelope_body)}],
        "subject": target,
    }
    body = json.dumps(manifest).encode()
    manifest_digest = "sha256:" + hashlib.sha256(body).hexdigest()
    seeder.push_manifest(repository, manifest_digest, body, OCI_MANIFEST)
    algorithm, _, hexdigest = digest.partition(":")
    tag = f"{algorithm}-{hexdigest}"
    existing = seeder.client.get(f"/v2/{repository}/manifests/{tag}", headers={"Accept": OCI_INDEX})
    listed = existing.json()["manifests"] if existing.status_code == 200 else []
    entry = {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(body), "artifactType": SIGNATURE_TYPE}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*listed, entry]}
    seeder.push_manifest(repository, tag, json.dumps(index).encode(), OCI_INDEX)
    return manifest_digest
