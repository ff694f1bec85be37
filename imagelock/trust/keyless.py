"""cosign keyless signatures: sigstore bundles with a Fulcio certificate, verified offline.

The bundle (``application/vnd.dev.sigstore.bundle.v0.3+json``) is found as an OCI referrer of the
image, like a key-based v3 bundle. The ``sigstore`` library checks it against the trusted root:
certificate chain to Fulcio, SCT, transparency-log inclusion, signed time, and the signer's
identity and OIDC issuer. Then the signed in-toto statement must be a signature, not an attestation,
and name the digest imagelock computed. sigstore is imported only when a keyless policy is used (it
is slow to import).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagelock.errors import InputError
from imagelock.trust._base import Evidence, SignatureError
from imagelock.trust.statements import check_signature_statement

if TYPE_CHECKING:
    from sigstore.verify import Verifier
    from sigstore.verify.policy import VerificationPolicy

    from imagelock.reference import Repository
    from imagelock.registry import ImageReader
    from imagelock.trust.provenance import ProvenanceRequirement


@dataclass(frozen=True)
class KeylessPolicy:
    """``method = "cosign-keyless"``: signed by ``identity`` (or one matching ``identity_regexp``) via ``issuer``."""

    name: str
    issuer: str
    identity: str | None = None
    identity_regexp: re.Pattern[str] | None = None
    trusted_root: Path | None = None  # None: the Sigstore public-good root shipped with the sigstore library
    provenance: ProvenanceRequirement | None = None  # when given, signed SLSA provenance is required too
    method: str = "cosign-keyless"
    _root_hash: str = field(default="public-good", compare=False)

    @classmethod
    def create(
        cls, name: str, issuer: str, identity: str | None, identity_regexp: str | None, trusted_root: Path | None
    ) -> KeylessPolicy:
        pattern = None
        if identity_regexp is not None:
            try:
                pattern = re.compile(identity_regexp)
            except re.error as error:
                raise InputError(f"key 'identity-regexp': invalid regex: {error}") from None
        root_hash = "public-good"
        if trusted_root is not None:
            try:
                root_hash = "sha256:" + hashlib.sha256(trusted_root.read_bytes()).hexdigest()
            except OSError as error:
                raise InputError(f"key 'trusted-root': cannot read {str(trusted_root)!r}: {error.strerror}") from None
        return cls(name, issuer, identity, pattern, trusted_root, _root_hash=root_hash)

    def canonical(self) -> dict[str, Any]:
        canonical = {
            "method": self.method,
            "issuer": self.issuer,
            "identity": self.identity,
            "identity-regexp": self.identity_regexp.pattern if self.identity_regexp else None,
            "trusted-root": self._root_hash,
        }
        return canonical | ({"provenance": self.provenance.canonical()} if self.provenance is not None else {})

    @cached_property
    def verifier(self) -> Verifier:
        from sigstore.models import ClientTrustConfig, TrustedRoot
        from sigstore.verify import Verifier

        if self.trusted_root is not None:
            try:
                return Verifier(trusted_root=TrustedRoot.from_file(str(self.trusted_root)))
            except Exception as error:  # the library raises several kinds for a bad file
                raise InputError(f"trusted root {str(self.trusted_root)!r}: cannot load: {error}") from None
        quiet = logging.getLogger("sigstore")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            return Verifier(trusted_root=ClientTrustConfig.production(offline=True).trusted_root)
        finally:
            quiet.setLevel(level)

    def identity_policy(self) -> VerificationPolicy:
        from sigstore.verify import policy

        if self.identity is not None:
            return policy.Identity(identity=self.identity, issuer=self.issuer)
        from imagelock.trust._identity import IdentityMatching

        assert self.identity_regexp is not None
        return IdentityMatching(self.identity_regexp, self.issuer)


@dataclass(frozen=True)
class KeylessResult:
    identity: str
    issuer: str
    log_index: str
    payload_type: str
    payload: bytes  # what the signer signed, still to be judged: a signature of the image, or an attestation


def verify_keyless_bundle(bundle_json: bytes, policy: KeylessPolicy) -> KeylessResult:
    """Verify a keyless bundle offline: who signed it, and what they signed. Raises SignatureError."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle

    try:
        bundle = Bundle.from_json(bundle_json)
    except (SigstoreError, ValueError) as error:  # InvalidBundle, or VerificationError for a malformed timestamp
        raise SignatureError(f"not a valid sigstore bundle: {_first_line(error)}") from None
    try:
        payload_type, payload = policy.verifier.verify_dsse(bundle, policy.identity_policy())
    except (SigstoreError, ValueError) as error:
        raise SignatureError(f"keyless signature rejected: {_first_line(error)}") from None
    from imagelock.trust._identity import certificate_identities

    identities = certificate_identities(bundle.signing_certificate)
    identity = identities[0] if identities else ""
    return KeylessResult(identity, policy.issuer, _log_index(bundle_json), payload_type, payload)


async def verify(policy: KeylessPolicy, repository: Repository, digest: str, client: ImageReader) -> Evidence:
    """Evidence from the first keyless bundle attached to ``digest`` that satisfies the policy."""
    import asyncio  # here, not at the top: commands that need no network never load asyncio

    from imagelock.trust.cosign import NoSignatureError, find_bundles

    problems: list[str] = []
    try:
        bundles = await find_bundles(repository, digest, client, problems)
    except NoSignatureError:
        raise SignatureError(f"no sigstore bundle for {repository}@{digest}") from None
    for manifest_digest, bundle in bundles:
        try:
            result = await asyncio.to_thread(verify_keyless_bundle, bundle, policy)
            check_signature_statement(result.payload_type, result.payload, digest)
        except SignatureError as error:
            problems.append(f"bundle {manifest_digest}: {error}")
            continue
        evidence = {"method": policy.method, "identity": result.identity, "issuer": result.issuer}
        return Evidence({**evidence, "log-index": result.log_index, "signature": manifest_digest})
    raise SignatureError(f"{repository}@{digest}: no valid keyless signature ({'; '.join(problems)})")


def _log_index(bundle_json: bytes) -> str:
    """The transparency-log index of the (already verified) entry, as the bundle states it."""
    try:
        return str(json.loads(bundle_json)["verificationMaterial"]["tlogEntries"][0]["logIndex"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def _first_line(error: BaseException) -> str:
    return (str(error) or type(error).__name__).splitlines()[0]
