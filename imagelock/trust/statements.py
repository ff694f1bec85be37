"""DSSE envelopes and the in-toto statements inside them: signed by a policy key, naming the digest
imagelock computed.

cosign stores signatures and attestations alike, under one artifact type and signed the same way;
only the statement's predicate type tells them apart. A signature is ``SIGNATURE_PREDICATE``; any
other predicate (an SBOM, a vulnerability scan, provenance) is an attestation, which says something
about the image but is no signature of it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from imagelock.trust._base import SignatureError
from imagelock.trust.keys import PublicKey
from imagelock.untrusted import load_json

IN_TOTO = "application/vnd.in-toto+json"
SIGNATURE_PREDICATE = "https://sigstore.dev/cosign/sign/v1"


def check_signature_statement(payload_type: str, body: bytes, digest: str) -> None:
    """Raise SignatureError unless ``body`` is cosign's signature statement, and its subject is ``digest``."""
    statement = _statement(payload_type, body)
    predicate_type = statement.get("predicateType")
    if predicate_type != SIGNATURE_PREDICATE:
        raise SignatureError(f"an attestation of predicate type {predicate_type!r}, not a signature")
    _check_subject(statement, digest)


def check_statement(payload_type: str, body: bytes, digest: str) -> None:
    """Raise SignatureError unless ``body`` is an in-toto statement (of any predicate) whose subject is ``digest``."""
    _check_subject(_statement(payload_type, body), digest)


def _statement(payload_type: str, body: bytes) -> dict[str, object]:
    if payload_type != IN_TOTO:
        raise SignatureError(f"DSSE payload type is {payload_type!r}, not {IN_TOTO!r}")
    try:
        statement = load_json(body)
    except ValueError:
        statement = None
    if not isinstance(statement, dict):
        raise SignatureError("signed statement is not an in-toto statement")
    return statement


def _check_subject(statement: dict[str, object], digest: str) -> None:
    subjects = statement.get("subject")
    if not isinstance(subjects, list):
        raise SignatureError("signed statement is not an in-toto statement")
    algorithm, _, hexdigest = digest.partition(":")
    named = [subject["digest"] for subject in subjects if isinstance(subject, dict) and "digest" in subject]
    if not any(isinstance(digests, dict) and digests.get(algorithm) == hexdigest for digests in named):
        raise SignatureError(f"signed statement's subject is not {digest}")


def open_attestation(blob: bytes, keys: Sequence[PublicKey], subject: str) -> bytes:
    """The in-toto statement of a DSSE envelope (cosign's ``.att`` layer) one of ``keys`` signed about ``subject``."""
    try:
        envelope = load_json(blob)
    except ValueError:
        raise SignatureError("not a DSSE envelope") from None
    payload_type, body, _ = open_envelope(envelope, keys)
    check_statement(payload_type, body, subject)
    return body


def read_envelope(envelope: object) -> tuple[str, bytes, list[bytes]]:
    """``(payloadType, payload, signatures)`` of a DSSE envelope, unverified."""
    if not isinstance(envelope, dict):
        raise SignatureError("not a DSSE envelope")
    try:
        payload_type = envelope["payloadType"]
        body = base64.b64decode(envelope["payload"], validate=True)
        signatures = [base64.b64decode(item["sig"], validate=True) for item in envelope["signatures"]]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise SignatureError("not a DSSE envelope") from None
    if not isinstance(payload_type, str) or not _is_utf8(payload_type):
        raise SignatureError("DSSE payloadType is not a UTF-8 string")
    return payload_type, body, signatures


def _is_utf8(text: str) -> bool:
    """False for a string holding lone surrogates (which JSON can escape): no signer can have signed it as UTF-8."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def open_envelope(envelope: object, keys: Sequence[PublicKey]) -> tuple[str, bytes, PublicKey]:
    """``(payloadType, payload, key)`` of a DSSE envelope one of ``keys`` signed (over the DSSE PAE)."""
    payload_type, body, signatures = read_envelope(envelope)
    message = b"DSSEv1 %d %s %d %s" % (len(payload_type.encode()), payload_type.encode(), len(body), body)
    key = next((key for key in keys for signature in signatures if key.verifies(signature, message)), None)
    if key is None:
        raise SignatureError("DSSE signature does not verify with the policy's key(s)")
    return payload_type, body, key
