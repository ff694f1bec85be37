"""DSSE envelopes and the in-toto statements inside them: signed by a policy key, naming the digest
imagelock computed."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence

from imagelock.trust._base import SignatureError
from imagelock.trust.keys import PublicKey

IN_TOTO = "application/vnd.in-toto+json"


def check_statement(payload_type: str, body: bytes, digest: str) -> None:
    """Raise SignatureError unless ``body`` is an in-toto statement whose subject is ``digest``."""
    if payload_type != IN_TOTO:
        raise SignatureError(f"DSSE payload type is {payload_type!r}, not {IN_TOTO!r}")
    try:
        subjects = [subject["digest"] for subject in json.loads(body)["subject"]]
    except (ValueError, KeyError, TypeError):
        raise SignatureError("signed statement is not an in-toto statement") from None
    algorithm, _, hexdigest = digest.partition(":")
    if not any(isinstance(subject, dict) and subject.get(algorithm) == hexdigest for subject in subjects):
        raise SignatureError(f"signed statement's subject is not {digest}")


def read_envelope(envelope: object) -> tuple[str, bytes, list[bytes]]:
    """``(payloadType, payload, signatures)`` of a DSSE envelope, unverified."""
    try:
        assert isinstance(envelope, dict)
        payload_type = envelope["payloadType"]
        body = base64.b64decode(envelope["payload"], validate=True)
        signatures = [base64.b64decode(item["sig"], validate=True) for item in envelope["signatures"]]
    except (AssertionError, ValueError, KeyError, TypeError, binascii.Error):
        raise SignatureError("not a DSSE envelope") from None
    if not isinstance(payload_type, str):
        raise SignatureError("DSSE payloadType is not a string")
    return payload_type, body, signatures


def open_envelope(envelope: object, keys: Sequence[PublicKey]) -> tuple[str, bytes, PublicKey]:
    """``(payloadType, payload, key)`` of a DSSE envelope one of ``keys`` signed (over the DSSE PAE)."""
    payload_type, body, signatures = read_envelope(envelope)
    message = b"DSSEv1 %d %s %d %s" % (len(payload_type.encode()), payload_type.encode(), len(body), body)
    key = next((key for key in keys for signature in signatures if key.verifies(signature, message)), None)
    if key is None:
        raise SignatureError("DSSE signature does not verify with the policy's key(s)")
    return payload_type, body, key
