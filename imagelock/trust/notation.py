"""Notation (Notary Project) signatures: JWS envelopes attached to the image as OCI referrers.

A signature is a manifest with artifact type ``application/vnd.cncf.notary.signature`` whose
``subject`` is the image and whose one layer is the envelope. A JWS envelope
(``application/jose+json``) is checked in this order, and only then believed:

1. the protected header: ``cty`` is the Notary payload type, the signing scheme is ``notary.x509``,
   every ``crit`` name is one Notary defines and is present, ``alg`` is PS256/384/512 or
   ES256/384/512 and fits the leaf key, and ``io.cncf.notary.expiry`` (if any) has not passed;
2. the signature over ``protected "." payload``, exactly as in the envelope, with the leaf key;
3. the certificate chain (``x5c``, leaf first) up to a certificate of the policy's trust store:
   every link's signature, CA constraints on issuers, every certificate valid now, the leaf
   allowed to sign code (digitalSignature key usage; codeSigning when it lists extended usages);
4. the leaf's subject is one of the policy's trusted identities (or the policy trusts any: ``*``);
5. the payload's ``targetArtifact`` is the image: the digest imagelock computed, its size and media type.

COSE envelopes and RFC 3161 timestamps are not read: a COSE-only image fails closed, and
certificate validity is judged at verification time, never at a signer-claimed time.
cryptography is imported when a notation policy is used, not with this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagelock.errors import InputError
from imagelock.trust._base import Evidence, SignatureError, Subject
from imagelock.untrusted import load_json

if TYPE_CHECKING:
    from cryptography import x509

    from imagelock.registry import RegistryClient

SIGNATURE_TYPE = "application/vnd.cncf.notary.signature"
JWS = "application/jose+json"
COSE = "application/cose"
PAYLOAD_TYPE = "application/vnd.cncf.notary.payload.v1+json"
MAX_ENVELOPE_BYTES = 256 << 10
MAX_SIGNATURES = 16
_KNOWN_CRITICAL = frozenset(
    {"io.cncf.notary.signingScheme", "io.cncf.notary.expiry", "io.cncf.notary.authenticSigningTime"}
)
_ALGORITHMS = {"PS256": 256, "PS384": 384, "PS512": 512, "ES256": 256, "ES384": 384, "ES512": 512}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}


@dataclass(frozen=True)
class NotationPolicy:
    """``method = "notation"``: signed by a certificate that chains to ``trust_store`` and has a trusted identity."""

    name: str
    trust_store: tuple[x509.Certificate, ...]
    identities: tuple[str, ...]  # "x509.subject: C=US, O=Acme, CN=release", or "*" for any
    method: str = "notation"

    @classmethod
    def create(cls, name: str, trust_store: Sequence[Path], identities: Sequence[str]) -> NotationPolicy:
        for identity in identities:
            if identity != "*":
                _parse_distinguished_name(identity.removeprefix("x509.subject:"))
        certificates: list[x509.Certificate] = []
        for path in trust_store:
            try:
                certificates += _load_certificates(path.read_bytes())
            except OSError as error:
                raise InputError(f"key 'trust-store': cannot read {str(path)!r}: {error.strerror}") from None
            except ValueError:
                raise InputError(f"key 'trust-store': {str(path)!r} holds no PEM or DER certificate") from None
        return cls(name, tuple(certificates), tuple(identities))

    def canonical(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "trust-store": sorted(_fingerprint(certificate) for certificate in self.trust_store),
            "identities": sorted(self.identities),
        }


@dataclass(frozen=True)
class Target:
    """The descriptor a signature must name: the image imagelock resolved."""

    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class NotationResult:
    subject: str  # the leaf certificate's subject, RFC 4514
    certificate: str  # sha256 of the leaf certificate's DER
    signing_time: str


async def verify(policy: NotationPolicy, subject: Subject, client: RegistryClient) -> Evidence:
    """Evidence from the first Notation signature attached to the image that satisfies the policy."""
    referrers = [
        referrer
        for referrer in await client.referrers(subject.repository, subject.digest)
        if referrer.artifact_type == SIGNATURE_TYPE
    ]
    if not referrers:
        raise SignatureError(f"no notation signature for {subject.repository}@{subject.digest}")
    image = await client.get_manifest(subject.repository, subject.digest)
    target = Target(image.media_type, image.digest, len(image.body))
    problems: list[str] = []
    now = datetime.now(UTC)
    for referrer in referrers[:MAX_SIGNATURES]:
        manifest = await client.get_manifest(subject.repository, referrer.digest)
        if manifest.is_index or len(manifest.layers) != 1:
            problems.append(f"signature {referrer.digest} is not a single envelope")
            continue
        layer = manifest.layers[0]
        if layer.size > MAX_ENVELOPE_BYTES:
            problems.append(f"signature {referrer.digest}: envelope larger than {MAX_ENVELOPE_BYTES} bytes")
            continue
        envelope = await client.get_blob(subject.repository, layer.digest, max_bytes=MAX_ENVELOPE_BYTES)
        try:
            result = verify_envelope(envelope, layer.media_type, policy, target, now)
        except SignatureError as error:
            problems.append(f"signature {referrer.digest}: {error}")
            continue
        return Evidence(
            {
                "method": policy.method,
                "subject": result.subject,
                "certificate": result.certificate,
                "signature": manifest.digest,
            }
        )
    raise SignatureError(f"{subject.repository}@{subject.digest}: no valid notation signature ({'; '.join(problems)})")


def verify_envelope(
    envelope: bytes, media_type: str, policy: NotationPolicy, target: Target, now: datetime
) -> NotationResult:
    """Verify one signature envelope against the policy and the target; raise SignatureError saying why not."""
    if media_type == COSE:
        raise SignatureError("COSE envelopes are not supported (sign with the default JWS format)")
    if media_type != JWS:
        raise SignatureError(f"unknown envelope type {media_type!r}")
    protected_text, payload_text, signature, chain = _parse_jws(envelope)
    header = _json_object(_b64url(protected_text, "protected header"), "protected header")
    algorithm = _check_header(header, now)
    leaf = chain[0]
    _check_signature(leaf, algorithm, signature, f"{protected_text}.{payload_text}".encode("ascii"))
    _check_chain(chain, policy.trust_store, now)
    _check_identity(leaf, policy.identities)
    _check_target(_json_object(_b64url(payload_text, "payload"), "payload"), target)
    return NotationResult(leaf.subject.rfc4514_string(), _fingerprint(leaf), str(header["io.cncf.notary.signingTime"]))


def _parse_jws(envelope: bytes) -> tuple[str, str, bytes, list[x509.Certificate]]:
    from cryptography.exceptions import UnsupportedAlgorithm

    document = _json_object(envelope, "envelope")
    protected, payload, signature = document.get("protected"), document.get("payload"), document.get("signature")
    header = document.get("header")
    if not all(isinstance(value, str) for value in (protected, payload, signature)) or not isinstance(header, dict):
        raise SignatureError("envelope is not a JWS JSON serialization")
    assert isinstance(protected, str)
    assert isinstance(payload, str)
    assert isinstance(signature, str)
    encoded_chain = header.get("x5c")
    if not isinstance(encoded_chain, list) or not encoded_chain:
        raise SignatureError("envelope has no certificate chain (x5c)")
    try:
        chain = [_read_certificate(item) for item in encoded_chain]
    except (ValueError, binascii.Error, UnsupportedAlgorithm):
        raise SignatureError("envelope's certificate chain (x5c) cannot be read") from None
    return protected, payload, _b64url(signature, "signature"), chain


def _read_certificate(encoded: object) -> x509.Certificate:
    """One ``x5c`` entry (standard base64 of DER), read whole.

    cryptography parses a certificate's names, extensions and key on first use; they are used here, so
    that a malformed one is an unreadable chain now rather than an exception in a later check.
    """
    from cryptography import x509

    if not isinstance(encoded, str):
        raise ValueError("an x5c entry is not a string")
    certificate = x509.load_der_x509_certificate(base64.b64decode(encoded, validate=True))
    certificate.subject.rfc4514_string()
    certificate.issuer.rfc4514_string()
    certificate.public_key()
    try:
        list(certificate.extensions)
    except (x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as error:  # not ValueErrors
        raise ValueError(f"certificate extensions cannot be read: {error}") from None
    return certificate


def _check_header(header: dict[str, Any], now: datetime) -> str:
    if header.get("cty") != PAYLOAD_TYPE:
        raise SignatureError(f"payload content type is {header.get('cty')!r}, not {PAYLOAD_TYPE!r}")
    critical = header.get("crit")
    if not isinstance(critical, list) or "io.cncf.notary.signingScheme" not in critical:
        raise SignatureError("protected header's crit does not list io.cncf.notary.signingScheme")
    for name in critical:
        if not isinstance(name, str) or name not in _KNOWN_CRITICAL:
            raise SignatureError(f"protected header marks an unknown field critical: {name!r}")
        if name not in header:
            raise SignatureError(f"protected header marks {name!r} critical but does not have it")
    scheme = header.get("io.cncf.notary.signingScheme")
    if scheme != "notary.x509":
        raise SignatureError(f"signing scheme {scheme!r} is not supported (notary.x509 is)")
    if not isinstance(header.get("io.cncf.notary.signingTime"), str):
        raise SignatureError("protected header has no signing time")
    if "io.cncf.notary.expiry" in header and _parse_time(header["io.cncf.notary.expiry"], "expiry") <= now:
        raise SignatureError(f"the signature expired at {header['io.cncf.notary.expiry']}")
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in _ALGORITHMS:
        raise SignatureError(f"signature algorithm {algorithm!r} is not one Notation allows")
    return algorithm


def _check_signature(leaf: x509.Certificate, algorithm: str, signature: bytes, signed: bytes) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    digest = {256: hashes.SHA256(), 384: hashes.SHA384(), 512: hashes.SHA512()}[_ALGORITHMS[algorithm]]
    key = leaf.public_key()
    try:
        if algorithm.startswith("PS"):
            if not isinstance(key, rsa.RSAPublicKey):
                raise SignatureError(f"algorithm {algorithm} needs an RSA key; the certificate's key is not")
            if key.key_size < 2048:
                raise SignatureError(f"the certificate's RSA key has {key.key_size} bits; at least 2048 are needed")
            key.verify(signature, signed, padding.PSS(padding.MGF1(digest), digest.digest_size), digest)
            return
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != _CURVES[algorithm]:
            raise SignatureError(
                f"algorithm {algorithm} needs a {_CURVES[algorithm]} key; the certificate's key is not"
            )
        size = (key.curve.key_size + 7) // 8
        if len(signature) != 2 * size:
            raise SignatureError("signature does not verify with the certificate's key")
        r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(digest))
    except InvalidSignature:
        raise SignatureError("signature does not verify with the certificate's key") from None


def _check_chain(chain: list[x509.Certificate], trust_store: Sequence[x509.Certificate], now: datetime) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    trusted = {_fingerprint(certificate): certificate for certificate in trust_store}
    for certificate in chain:
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise SignatureError(
                f"certificate {certificate.subject.rfc4514_string()!r} is not valid now"
                f" ({certificate.not_valid_before_utc:%Y-%m-%d}..{certificate.not_valid_after_utc:%Y-%m-%d})"
            )
    leaf = chain[0]
    usage = _extension(leaf, x509.KeyUsage)
    if usage is None or not usage.digital_signature:
        raise SignatureError("the signing certificate may not sign (no digitalSignature key usage)")
    extended = _extension(leaf, x509.ExtendedKeyUsage)
    if extended is not None and ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        raise SignatureError("the signing certificate may not sign code (no codeSigning extended key usage)")
    for child, issuer in itertools.pairwise(chain):
        _check_issued(child, issuer)
    top = chain[-1]
    if _fingerprint(top) in trusted:
        return
    for anchor in trust_store:
        if anchor.subject == top.issuer:
            try:
                _check_issued(top, anchor)
            except SignatureError:
                continue
            if anchor.not_valid_before_utc <= now <= anchor.not_valid_after_utc:
                return
    raise SignatureError(f"certificate chain of {leaf.subject.rfc4514_string()!r} does not end in the trust store")


def _check_issued(child: x509.Certificate, issuer: x509.Certificate) -> None:
    from cryptography import x509

    constraints = _extension(issuer, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        raise SignatureError(f"{issuer.subject.rfc4514_string()!r} is not a CA but issued a certificate in the chain")
    usage = _extension(issuer, x509.KeyUsage)
    if usage is not None and not usage.key_cert_sign:
        raise SignatureError(f"{issuer.subject.rfc4514_string()!r} may not sign certificates")
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError):
        raise SignatureError(
            f"{child.subject.rfc4514_string()!r} is not issued by {issuer.subject.rfc4514_string()!r}"
        ) from None
    except Exception:  # cryptography raises InvalidSignature for a forged link
        raise SignatureError(f"the signature on {child.subject.rfc4514_string()!r} does not verify") from None


def _check_identity(leaf: x509.Certificate, identities: Sequence[str]) -> None:
    if "*" in identities:
        return
    actual = {(attribute.oid.dotted_string, attribute.value) for attribute in leaf.subject}
    for identity in identities:
        if _parse_distinguished_name(identity.removeprefix("x509.subject:")) <= actual:
            return
    raise SignatureError(f"signer {leaf.subject.rfc4514_string()!r} is not a trusted identity")


def _check_target(payload: dict[str, Any], target: Target) -> None:
    artifact = payload.get("targetArtifact")
    if not isinstance(artifact, dict):
        raise SignatureError("payload has no targetArtifact")
    if artifact.get("digest") != target.digest:
        raise SignatureError(f"signed target is {artifact.get('digest')}, not {target.digest}")
    if artifact.get("size") != target.size or artifact.get("mediaType") != target.media_type:
        raise SignatureError(
            f"signed target is {artifact.get('mediaType')} of {artifact.get('size')} bytes,"
            f" the image {target.media_type} of {target.size}"
        )


_NAME_ATTRIBUTES = {
    "C": "2.5.4.6",
    "ST": "2.5.4.8",
    "L": "2.5.4.7",
    "O": "2.5.4.10",
    "OU": "2.5.4.11",
    "CN": "2.5.4.3",
    "EMAILADDRESS": "1.2.840.113549.1.9.1",
    "SERIALNUMBER": "2.5.4.5",
}


def _parse_distinguished_name(text: str) -> set[tuple[str, str]]:
    """``C=US, ST=WA, O=Acme`` → {(oid, value)}; InputError when it is not a distinguished name."""
    attributes = set()
    for part in (part.strip() for part in text.split(",")):
        name, equals, value = part.partition("=")
        oid = _NAME_ATTRIBUTES.get(name.strip().upper())
        if not equals or oid is None or not value.strip():
            raise InputError(f"key 'identities': {text.strip()!r} is not a distinguished name like 'C=US, O=Acme'")
        attributes.add((oid, value.strip()))
    return attributes


def _extension(certificate: x509.Certificate, kind: type[Any]) -> Any:
    from cryptography import x509

    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _load_certificates(data: bytes) -> list[x509.Certificate]:
    from cryptography import x509

    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def _fingerprint(certificate: x509.Certificate) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return "sha256:" + hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def _b64url(text: str, what: str) -> bytes:
    if not _BASE64URL.fullmatch(text):
        raise SignatureError(f"envelope's {what} is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        raise SignatureError(f"envelope's {what} is not base64url") from None


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = load_json(data)
    except (ValueError, UnicodeDecodeError):
        raise SignatureError(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise SignatureError(f"{what} is not a JSON object")
    return value


def _parse_time(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise SignatureError(f"{what} is not a time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SignatureError(f"{what} is not a time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
