"""TUF metadata as Notary v1 (Docker Content Trust) writes it, verified role by role.

The order of the checks is described in ``imagelock.trust.content_trust``; this module is the pure
part: metadata bytes in, the signed target out (or SignatureError). It imports cryptography, so it
is loaded only when a content-trust policy is used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from imagelock.trust._base import SignatureError
from imagelock.trust._canonical import canonical_json

RELEASES = "targets/releases"


@dataclass(frozen=True)
class TrustedTarget:
    """A target the repository's metadata vouches for, and what vouched for it."""

    sha256: bytes
    length: int
    role: str  # "targets/releases" or "targets"
    role_digest: str  # sha256 of that role's metadata file
    root_keys: tuple[str, ...]
    timestamp_version: int


def verify_repository(
    files: Mapping[str, bytes],
    gun: str,
    target: str,
    *,
    now: datetime,
    pinned_root_keys: frozenset[str] = frozenset(),
    min_timestamp_version: int = 0,
) -> TrustedTarget:
    """Verify a repository's metadata (role name -> file bytes) and return the signed ``target``.

    Raises SignatureError naming the first check that fails.
    """
    root = _Role.parse("root", files["root"], "Root")
    root_keys = _root_keys(root, gun, now, pinned_root_keys)
    root.check_expiry(now)

    timestamp = _Role.parse("timestamp", files["timestamp"], "Timestamp")
    timestamp.check_signed(root.keys(), root.role_spec("timestamp"))
    timestamp.check_expiry(now)
    if timestamp.version < min_timestamp_version:
        raise SignatureError(
            f"timestamp version {timestamp.version} is older than the locked version {min_timestamp_version} (rollback)"
        )

    snapshot = _Role.parse("snapshot", _described(timestamp, "snapshot", files["snapshot"]), "Snapshot")
    snapshot.check_signed(root.keys(), root.role_spec("snapshot"))
    snapshot.check_expiry(now)

    targets = _Role.parse("targets", _described(snapshot, "targets", files["targets"]), "Targets")
    targets.check_signed(root.keys(), root.role_spec("targets"))
    targets.check_expiry(now)

    candidates = []
    delegation = _delegation(targets, RELEASES)
    if delegation is not None and RELEASES in files:
        releases = _Role.parse(RELEASES, _described(snapshot, RELEASES, files[RELEASES]), "Targets")
        keys = _keys(targets.signed.get("delegations", {}).get("keys", {}), "targets delegations")
        releases.check_signed(keys, delegation)
        releases.check_expiry(now)
        if _path_allowed(delegation, target):
            candidates.append(releases)
    candidates.append(targets)
    for role in candidates:
        entry = role.signed.get("targets", {}).get(target)
        if entry is not None:
            sha256, length = _target_entry(role.name, target, entry)
            return TrustedTarget(sha256, length, role.name, role.digest, root_keys, timestamp.version)
    raise SignatureError(f"tag {target} is not signed in the trust data for {gun}")


@dataclass(frozen=True)
class _Key:
    keytype: str
    public: Any  # a cryptography public key
    certificate: x509.Certificate | None = None


@dataclass(frozen=True)
class _Role:
    name: str
    signed: dict[str, Any]
    signatures: list[Any]
    digest: str

    @classmethod
    def parse(cls, name: str, body: bytes, kind: str) -> _Role:
        try:
            document = json.loads(body)
            signed, signatures = document["signed"], document["signatures"]
        except (ValueError, KeyError, TypeError):
            raise SignatureError(f"{name}.json is not TUF metadata") from None
        if not isinstance(signed, dict) or not isinstance(signatures, list) or signed.get("_type") != kind:
            raise SignatureError(f"{name}.json is not {kind} metadata")
        return cls(name, signed, signatures, "sha256:" + hashlib.sha256(body).hexdigest())

    @property
    def version(self) -> int:
        version = self.signed.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise SignatureError(f"{self.name}.json has no version")
        return version

    def role_spec(self, role: str) -> dict[str, Any]:
        spec = self.signed.get("roles", {}).get(role)
        if not isinstance(spec, dict):
            raise SignatureError(f"root.json defines no {role} role")
        return spec

    def keys(self) -> dict[str, _Key]:
        return _keys(self.signed.get("keys", {}), "root.json")

    def valid_signers(self, keys: Mapping[str, _Key], allowed: frozenset[str] | set[str]) -> set[str]:
        """The ids of the allowed keys with a valid signature over this role's canonical ``signed``."""
        message = canonical_json(self.signed)
        signers = set()
        for signature in self.signatures:
            if not isinstance(signature, dict):
                continue
            keyid = signature.get("keyid")
            if not isinstance(keyid, str) or keyid not in allowed or keyid not in keys or keyid in signers:
                continue
            if _signature_verifies(keys[keyid], str(signature.get("method")), str(signature.get("sig")), message):
                signers.add(keyid)
        return signers

    def check_signed(self, keys: Mapping[str, _Key], spec: Mapping[str, Any]) -> set[str]:
        keyids = spec.get("keyids")
        threshold = spec.get("threshold")
        if not isinstance(keyids, list) or not isinstance(threshold, int) or threshold < 1:
            raise SignatureError(f"the {self.name} role has no key ids or threshold")
        signers = self.valid_signers(keys, set(keyids))
        if len(signers) < threshold:
            raise SignatureError(
                f"{self.name}.json has {len(signers)} valid signature(s) of the {threshold} its role requires"
            )
        return signers

    def check_expiry(self, now: datetime) -> None:
        expires = _parse_time(self.signed.get("expires"), f"{self.name}.json expires")
        if expires <= now:
            raise SignatureError(f"{self.name}.json expired at {expires.isoformat()}")


def _root_keys(root: _Role, gun: str, now: datetime, pinned: frozenset[str]) -> tuple[str, ...]:
    keys = root.keys()
    spec = root.role_spec("root")
    root.check_signed(keys, spec)
    root_ids = sorted(spec["keyids"])
    for keyid in root_ids:
        certificate = keys[keyid].certificate if keyid in keys else None
        if certificate is None:
            raise SignatureError(f"root key {keyid} is not a certificate")
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if [name.value for name in names] != [gun]:
            raise SignatureError(f"the root certificate is for {names[0].value if names else '?'!r}, not {gun!r}")
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise SignatureError(f"the root certificate is not valid now (expires {certificate.not_valid_after_utc})")
    if pinned and not pinned & set(root_ids) and not root.valid_signers(keys, pinned):
        raise SignatureError(
            f"the root keys changed ({', '.join(root_ids)}) and the new root is not signed by the root key(s)"
            f" in the lock ({', '.join(sorted(pinned))}): a root swap, not a rotation"
        )
    return tuple(root_ids)


def _keys(table: object, where: str) -> dict[str, _Key]:
    if not isinstance(table, dict):
        raise SignatureError(f"{where}: keys is not a table")
    keys = {}
    for keyid, key in table.items():
        try:
            keytype, public = key["keytype"], key["keyval"]["public"]
        except (KeyError, TypeError):
            raise SignatureError(f"{where}: key {keyid} is malformed") from None
        key_object = {"keytype": keytype, "keyval": {"private": None, "public": public}}
        if hashlib.sha256(canonical_json(key_object)).hexdigest() != keyid:
            continue  # an id that is not the key's own hash is never trusted
        try:
            keys[keyid] = _load_key(str(keytype), str(public))
        except (ValueError, binascii.Error, TypeError):
            raise SignatureError(f"{where}: key {keyid} ({keytype}) cannot be read") from None
    return keys


def _load_key(keytype: str, public: str) -> _Key:
    raw = base64.b64decode(public, validate=True)
    if keytype in ("ecdsa-x509", "rsa-x509"):
        certificate = x509.load_pem_x509_certificate(raw)
        return _Key(keytype, certificate.public_key(), certificate)
    if keytype == "ecdsa":
        return _Key(keytype, serialization.load_der_public_key(raw))
    if keytype == "ed25519":
        return _Key(keytype, ed25519.Ed25519PublicKey.from_public_bytes(raw))
    raise ValueError(f"unsupported key type {keytype}")


def _signature_verifies(key: _Key, method: str, sig: str, message: bytes) -> bool:
    try:
        signature = base64.b64decode(sig, validate=True)
        public = key.public
        if method == "ecdsa" and isinstance(public, ec.EllipticCurvePublicKey):
            size = (public.curve.key_size + 7) // 8
            if len(signature) != 2 * size:
                return False
            r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            public.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
            return True
        if method == "eddsa" and isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, message)
            return True
        if method == "rsapss" and isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, message, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
            return True
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return False


def _described(by: _Role, role: str, body: bytes) -> bytes:
    """``body``, once it is exactly the file ``by``'s meta describes (length and every hash given)."""
    meta = by.signed.get("meta", {}).get(role)
    if not isinstance(meta, dict) or not isinstance(meta.get("hashes"), dict) or not meta["hashes"]:
        raise SignatureError(f"{by.name}.json does not describe {role}.json")
    if meta.get("length") != len(body):
        raise SignatureError(f"{role}.json is {len(body)} bytes, {by.name}.json says {meta.get('length')}")
    checked = 0
    for algorithm, expected in meta["hashes"].items():
        if algorithm not in ("sha256", "sha512"):
            continue
        if base64.b64encode(hashlib.new(algorithm, body).digest()).decode() != expected:
            raise SignatureError(f"{role}.json does not have the {algorithm} hash {by.name}.json gives")
        checked += 1
    if not checked:
        raise SignatureError(f"{by.name}.json gives no sha256 or sha512 hash for {role}.json")
    return body


def delegated_roles(targets_body: bytes) -> set[str]:
    try:
        roles = json.loads(targets_body)["signed"]["delegations"]["roles"]
        return {role["name"] for role in roles if isinstance(role, dict)}
    except (ValueError, KeyError, TypeError):
        return set()


def _delegation(targets: _Role, name: str) -> dict[str, Any] | None:
    roles = targets.signed.get("delegations", {}).get("roles", [])
    if not isinstance(roles, list):
        return None
    return next((role for role in roles if isinstance(role, dict) and role.get("name") == name), None)


def _path_allowed(delegation: Mapping[str, Any], target: str) -> bool:
    paths = delegation.get("paths", [])
    return isinstance(paths, list) and any(isinstance(path, str) and target.startswith(path) for path in paths)


def _target_entry(role: str, target: str, entry: object) -> tuple[bytes, int]:
    try:
        sha256 = base64.b64decode(entry["hashes"]["sha256"], validate=True)  # type: ignore[index]
        length = entry["length"]  # type: ignore[index]
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise SignatureError(f"{role}.json: the entry for {target} has no sha256 and length") from None
    if len(sha256) != 32 or not isinstance(length, int):
        raise SignatureError(f"{role}.json: the entry for {target} has no sha256 and length")
    return sha256, length


def _parse_time(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise SignatureError(f"{what}: not a time")
    text = value.rstrip("Z")
    if "." in text:  # Go writes nanoseconds; Python keeps microseconds
        whole, fraction = text.split(".", 1)
        text = f"{whole}.{fraction[:6]}"
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError(f"{what}: not a time: {value!r}") from None
