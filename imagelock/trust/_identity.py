"""A sigstore verification policy matching the certificate identity with a regular expression.

Imported only when a keyless policy uses ``identity-regexp`` (importing sigstore is slow).
"""

from __future__ import annotations

import re

from cryptography import x509
from sigstore.errors import VerificationError
from sigstore.verify import policy


def certificate_identities(certificate: x509.Certificate) -> list[str]:
    """The e-mail and URI subject alternative names: what Fulcio puts the signer's identity in."""
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [*names.get_values_for_type(x509.RFC822Name), *names.get_values_for_type(x509.UniformResourceIdentifier)]


class IdentityMatching(policy.VerificationPolicy):
    def __init__(self, pattern: re.Pattern[str], issuer: str) -> None:
        self._pattern = pattern
        self._issuer = policy.OIDCIssuer(issuer)

    def verify(self, cert: x509.Certificate) -> None:
        self._issuer.verify(cert)
        identities = certificate_identities(cert)
        if not any(self._pattern.fullmatch(identity) for identity in identities):
            raise VerificationError(f"no certificate identity matches {self._pattern.pattern!r}: {identities}")
