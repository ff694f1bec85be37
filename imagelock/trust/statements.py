"""The in-toto statement inside a DSSE envelope: it must name the digest imagelock computed."""

from __future__ import annotations

import json

from imagelock.trust._base import SignatureError

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
