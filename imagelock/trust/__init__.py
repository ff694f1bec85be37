"""Trust policies and the signature checks behind them.

One module per method behind one small interface: ``verify(policy, subject, client)``
returns the ``Evidence`` the lock records, or raises ``SignatureError`` saying why not. Every check
binds to the digest imagelock computed; a tag is never trusted, and a missing or unparsable
signature is a failure (fail closed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagelock.trust._base import Evidence, SignatureError, Subject
from imagelock.trust.content_trust import ContentTrustPolicy
from imagelock.trust.cosign import CosignPolicy
from imagelock.trust.keyless import KeylessPolicy
from imagelock.trust.keys import PublicKey, load_public_key
from imagelock.trust.notation import NotationPolicy

if TYPE_CHECKING:
    from imagelock.registry import ImageReader

__all__ = [
    "ContentTrustPolicy",
    "CosignPolicy",
    "Evidence",
    "KeylessPolicy",
    "NotationPolicy",
    "PublicKey",
    "SignatureError",
    "Subject",
    "TrustPolicy",
    "load_public_key",
    "verify",
]

TrustPolicy = CosignPolicy | KeylessPolicy | NotationPolicy | ContentTrustPolicy


async def verify(policy: TrustPolicy, subject: Subject, client: ImageReader) -> Evidence:
    """The evidence that ``subject`` satisfies ``policy``; SignatureError (fail closed) when it does not.

    A policy requiring provenance adds the evidence of its SLSA statement to the signature's.
    """
    from imagelock.trust import content_trust, cosign, keyless, notation, provenance

    if isinstance(policy, NotationPolicy):
        return await notation.verify(policy, subject, client)
    if isinstance(policy, ContentTrustPolicy):
        return await content_trust.verify(policy, subject, client)
    if isinstance(policy, KeylessPolicy):
        evidence = await keyless.verify(policy, subject.repository, subject.digest, client)
    else:
        evidence = await cosign.verify(policy, subject.repository, subject.digest, client)
    if policy.provenance is None:
        return evidence
    built = await provenance.verify(policy, policy.provenance, subject.repository, subject.digest, client)
    return Evidence({**evidence.fields, **built.fields})
