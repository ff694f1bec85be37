"""Notation (Notary Project v2) signatures: JWS envelopes attached to the image as OCI referrers."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from imagelock.errors import InputError
from imagelock.registry import RegistryClient
from imagelock.trust._base import Evidence, SignatureError, Subject


@dataclass(frozen=True)
class NotationPolicy:
    """``method = "notation"``: signed by a certificate that chains to ``trust_store`` and has a trusted identity."""

    name: str
    trust_store: tuple[x509.Certificate, ...]
    identities: tuple[str, ...]  # "x509.subject: C=US, O=Acme, CN=release", or "*" for any
    method: str = "notation"

    @classmethod
    def create(cls, name: str, trust_store: Sequence[Path], identities: Sequence[str]) -> NotationPolicy:
        certificates: list[x509.Certificate] = []
        for path in trust_store:
            try:
                certificates += x509.load_pem_x509_certificates(path.read_bytes())
            except OSError as error:
                raise InputError(f"key 'trust-store': cannot read {str(path)!r}: {error.strerror}") from None
            except ValueError:
                raise InputError(f"key 'trust-store': {str(path)!r} holds no PEM certificate") from None
        return cls(name, tuple(certificates), tuple(identities))

    def canonical(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "trust-store": sorted(
                "sha256:" + hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()
                for certificate in self.trust_store
            ),
            "identities": sorted(self.identities),
        }


async def verify(policy: NotationPolicy, subject: Subject, client: RegistryClient) -> Evidence:
    raise SignatureError(f"{subject}: notation signatures are not verified yet")
