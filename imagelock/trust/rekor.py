"""Rekor signed entry timestamps (SETs): proof that a signature was entered in the transparency log.

cosign attaches one to a legacy signature as the ``dev.sigstore.cosign/bundle`` annotation:
``{"SignedEntryTimestamp": <b64>, "Payload": {"body", "integratedTime", "logIndex", "logID"}}``.
The SET is the log's ECDSA signature over the canonical JSON of ``Payload``; ``body`` is the
``hashedrekord`` entry, which must bind the very payload, signature and key imagelock verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence

from imagelock.errors import InputError
from imagelock.trust._base import SignatureError
from imagelock.trust._canonical import canonical_json
from imagelock.trust.keys import PublicKey, parse_public_key
from imagelock.untrusted import load_json

BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"


def verify_signed_entry(
    bundle: str, rekor_keys: Sequence[PublicKey], payload: bytes, signature: str, signer: PublicKey
) -> str:
    """The log index of the entry ``bundle`` proves for (``payload``, ``signature``, ``signer``).

    Raises SignatureError when the SET is not by one of ``rekor_keys`` or the entry binds anything else.
    """
    try:
        document = load_json(bundle)
        entry = document["Payload"]
        set_signature = base64.b64decode(document["SignedEntryTimestamp"], validate=True)
        body = load_json(base64.b64decode(entry["body"], validate=True))
        log_index, log_id, integrated_time = entry["logIndex"], entry["logID"], entry["integratedTime"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise SignatureError("the Rekor bundle annotation is malformed") from None
    # A log id is hex: ASCII also keeps out the lone surrogates JSON can hold, which canonical JSON cannot encode.
    if not (
        isinstance(log_index, int) and isinstance(integrated_time, int) and isinstance(log_id, str) and log_id.isascii()
    ):
        raise SignatureError("the Rekor bundle annotation is malformed")
    signed = canonical_json(
        {"body": entry["body"], "integratedTime": integrated_time, "logID": log_id, "logIndex": log_index}
    )
    log_key = next((key for key in rekor_keys if key.fingerprint == f"sha256:{log_id}"), None)
    if log_key is None or not log_key.verifies(set_signature, signed):
        raise SignatureError("the Rekor SET is not signed by a trusted transparency log key")
    _check_hashedrekord(body, payload, signature, signer)
    return str(log_index)


def _check_hashedrekord(body: object, payload: bytes, signature: str, signer: PublicKey) -> None:
    try:
        assert isinstance(body, dict)
        kind, spec = body["kind"], body["spec"]
        hashed = spec["data"]["hash"]
        entry_signature = spec["signature"]["content"]
        entry_key = base64.b64decode(spec["signature"]["publicKey"]["content"], validate=True)
    except (AssertionError, KeyError, TypeError, ValueError, binascii.Error):
        raise SignatureError("the Rekor entry is not a hashedrekord entry") from None
    if kind != "hashedrekord":
        raise SignatureError(f"the Rekor entry is a {kind!r} entry, not hashedrekord")
    if hashed != {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}:
        raise SignatureError("the Rekor entry is for another payload")
    if entry_signature != signature:
        raise SignatureError("the Rekor entry is for another signature")
    try:
        logged_key = parse_public_key(entry_key, "the Rekor entry")
    except InputError:
        raise SignatureError("the Rekor entry's public key cannot be read") from None
    if logged_key.fingerprint != signer.fingerprint:
        raise SignatureError("the Rekor entry is for another public key")
