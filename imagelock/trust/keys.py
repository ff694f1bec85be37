"""Public keys for signature verification: loading, fingerprints, and checking a signature.

cryptography is imported when a key is first loaded, not with this module: a run without trust
policies never pays for it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagelock.errors import InputError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    SupportedKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class PublicKey:
    fingerprint: str  # sha256 of the DER SubjectPublicKeyInfo: what the lock records
    key: SupportedKey
    source: str  # the file it came from, for messages

    def verifies(self, signature: bytes, message: bytes) -> bool:
        """True when ``signature`` is this key's signature over ``message`` (cosign's algorithms).

        ECDSA with the hash that fits the curve, as DER or raw r||s; RSA PKCS#1 v1.5 with SHA-256; Ed25519.
        """
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

        if isinstance(self.key, ec.EllipticCurvePublicKey):
            curve_hashes = {"secp384r1": hashes.SHA384, "secp521r1": hashes.SHA512}
            algorithm = ec.ECDSA(curve_hashes.get(self.key.curve.name, hashes.SHA256)())
            for candidate in _ecdsa_encodings(signature, self.key.curve.key_size):
                try:
                    self.key.verify(candidate, message, algorithm)
                    return True
                except (InvalidSignature, ValueError):
                    continue
            return False
        try:
            if isinstance(self.key, rsa.RSAPublicKey):
                self.key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            else:
                self.key.verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


def load_public_key(path: Path) -> PublicKey:
    """A PEM public key (SubjectPublicKeyInfo) from a file: ECDSA P-256/384/521, RSA or Ed25519."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"key file {str(path)!r}: cannot read: {error.strerror}") from None
    return parse_public_key(data, f"key file {str(path)!r}")


def parse_public_key(data: bytes, source: str) -> PublicKey:
    """A PEM public key; ``source`` says where it came from, in messages and in ``PublicKey.source``."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise InputError(f"{source}: not a PEM public key") from None
    except UnsupportedAlgorithm as error:
        raise InputError(f"{source}: unsupported public key ({error})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise InputError(f"{source}: unsupported key type {type(key).__name__}")
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return PublicKey("sha256:" + hashlib.sha256(der).hexdigest(), key, source)


def _ecdsa_encodings(signature: bytes, key_bits: int) -> list[bytes]:
    """cosign writes ASN.1 DER; a raw r||s signature of the curve's size is accepted too."""
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    size = (key_bits + 7) // 8
    encodings = [signature]
    if len(signature) == 2 * size:
        r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        encodings.append(encode_dss_signature(r, s))
    return encodings
