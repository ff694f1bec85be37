"""Trust policies and the signature checks behind them.

One module per method behind one small interface: ``verify(policy, repository, digest, client)``
returns the ``Evidence`` the lock records, or raises ``SignatureError`` saying why not. Every check
binds to the digest imagelock computed; a tag is never trusted, and a missing or unparsable
signature is a failure (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imagelock.errors import EXIT_CHECK_FAILED, ImagelockError
from imagelock.reference import Repository
from imagelock.registry import RegistryClient
from imagelock.trust.keyless import KeylessPolicy
from imagelock.trust.keys import PublicKey, load_public_key

__all__ = [
    "CosignPolicy",
    "Evidence",
    "KeylessPolicy",
    "PublicKey",
    "SignatureError",
    "TrustPolicy",
    "load_public_key",
    "verify",
]


class SignatureError(ImagelockError):
    """An image's signature is missing or does not satisfy its trust policy (exit 1)."""

    exit_code = EXIT_CHECK_FAILED


@dataclass(frozen=True)
class CosignPolicy:
    """``method = "cosign"``: any one of ``keys`` must have signed the image (legacy ``.sig`` scheme)."""

    name: str
    keys: tuple[PublicKey, ...]
    match_repository: bool = True
    method: str = "cosign"

    def canonical(self) -> dict[str, Any]:
        """What decides the outcome; part of each entry's spec hash, so a changed policy is a change."""
        return {
            "method": self.method,
            "keys": sorted(key.fingerprint for key in self.keys),
            "match-repository": self.match_repository,
        }


TrustPolicy = CosignPolicy | KeylessPolicy


@dataclass(frozen=True)
class Evidence:
    """What was verified, as the lock records it under ``verified``."""

    fields: Mapping[str, str]


async def verify(policy: TrustPolicy, repository: Repository, digest: str, client: RegistryClient) -> Evidence:
    from imagelock.trust import cosign, keyless

    if isinstance(policy, KeylessPolicy):
        return await keyless.verify(policy, repository, digest, client)
    return await cosign.verify(policy, repository, digest, client)
