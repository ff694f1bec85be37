"""TUF metadata as Notary v1 (Docker Content Trust) writes it, verified role by role.

The order of the checks is described in ``imagelock.trust.content_trust``; this module is the pure
part: metadata bytes in, the signed target out (or SignatureError). It imports cryptography, so it
is loaded only when a content-trust policy is used.

Every field is type-checked before it is used, signed or not: malformed metadata is a
SignatureError naming the file and the field, never a crash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from imagelock.trust._base import SignatureError
from imagelock.trust._canonical import canonical_json

_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)?")
RELEASES = "targets/releases"
MAX_ROOT_ROTATIONS = 32  # as python-tuf: a root this many versions past the locked one is refused, not walked

_T = TypeVar("_T", dict[str, Any], list[Any], str, int)
_KINDS: dict[type, str] = {dict: "a table", list: "a list", str: "a string", int: "an integer"}


@dataclass(frozen=True)
class Pins:
    """What the lock recorded when it last verified the repository: the next run is held to it."""

    root_keys: frozenset[str]  # the root's key ids
    root_threshold: int  # how many of them the next root must carry signatures of
    versions: Mapping[str, int]  # role name ("root", "timestamp", "snapshot", …) → the lowest version accepted


@dataclass(frozen=True)
class TrustedTarget:
    """A target the repository's metadata vouches for, and what vouched for it."""

    sha256: bytes
    length: int
    role: str  # "targets/releases" or "targets"
    role_digest: str  # sha256 of that role's metadata file
    root_keys: tuple[str, ...]
    root_threshold: int
    versions: Mapping[str, int]  # the version of each role verified


def older_root_versions(root: bytes, pins: Pins | None) -> range:
    """The versions of the roots from the locked one up to ``root`` (excluded), which ``verify_repository``
    needs as ``older_roots`` to follow the root's rotations since the lock; empty when the root did not change."""
    locked = pins.versions.get("root") if pins is not None else None
    if locked is None:
        return range(0)
    current = _Role.parse("root", root, "Root").version
    if current - locked > MAX_ROOT_ROTATIONS:
        raise SignatureError(
            f"root.json is version {current}, more than {MAX_ROOT_ROTATIONS} rotations past the locked version {locked}"
        )
    return range(locked, current)


def verify_repository(
    files: Mapping[str, bytes],
    gun: str,
    target: str,
    *,
    now: datetime,
    pins: Pins | None = None,
    older_roots: Sequence[bytes] = (),
) -> TrustedTarget:
    """Verify a repository's metadata (role name -> file bytes) and return the signed ``target``.

    ``older_roots`` are the roots of ``older_root_versions``, oldest first. Raises SignatureError
    naming the first check that fails.
    """
    minimum = pins.versions if pins is not None else {}
    root = _Role.parse("root", files["root"], "Root")
    root_spec = _check_root(root, gun, now)
    root.check_not_older(minimum)
    if pins is not None:
        _check_rotation(root, older_roots, pins)
    root.check_expiry(now)
    root_keys = root.keys()

    def verified(name: str, kind: str, described_by: _Role | None, keys: Mapping[str, _Key], spec: _Spec) -> _Role:
        body = files[name] if described_by is None else _described(described_by, name, files[name])
        role = _Role.parse(name, body, kind)
        role.check_signed(keys, spec)
        role.check_expiry(now)
        if described_by is not None:
            _check_named_version(described_by, role)
        role.check_not_older(minimum)
        return role

    timestamp = verified("timestamp", "Timestamp", None, root_keys, root.role_spec("timestamp"))
    snapshot = verified("snapshot", "Snapshot", timestamp, root_keys, root.role_spec("snapshot"))
    targets = verified("targets", "Targets", snapshot, root_keys, root.role_spec("targets"))
    roles = [timestamp, snapshot, targets]

    candidates = []
    delegation = _releases_delegation(targets)
    if delegation is not None and RELEASES in files:
        spec, paths, keys = delegation
        releases = verified(RELEASES, "Targets", snapshot, keys, spec)
        roles.append(releases)
        if any(target.startswith(path) for path in paths):
            candidates.append(releases)
    candidates.append(targets)
    versions = {role.name: role.version for role in [root, *roles]}
    for role in candidates:
        entry = _get(role.signed, "targets", dict, f"{role.name}.json", optional=True).get(target)
        if entry is not None:
            sha256, length = _target_entry(role.name, target, entry)
            keyids = tuple(sorted(root_spec.keyids))
            return TrustedTarget(sha256, length, role.name, role.digest, keyids, root_spec.threshold, versions)
    raise SignatureError(f"tag {target} is not signed in the trust data for {gun}")


def delegates_releases(targets: bytes) -> bool:
    """Whether this targets.json delegates to ``targets/releases`` (unverified: only to know what to fetch)."""
    try:
        return _releases_delegation(_Role.parse("targets", targets, "Targets")) is not None
    except SignatureError:
        return False


def _get(table: Mapping[str, Any], key: str, kind: type[_T], where: str, *, optional: bool = False) -> _T:
    """``table[key]`` when it is a ``kind`` (an empty one when absent and ``optional``); else SignatureError."""
    if optional and key not in table:
        return kind()
    value = table.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SignatureError(f"{where}: {key!r} is not {_KINDS[kind]}")
    return value


@dataclass(frozen=True)
class _Key:
    keytype: str
    public: Any  # a cryptography public key
    certificate: x509.Certificate | None = None


@dataclass(frozen=True)
class _Spec:
    """Which keys may sign a role, and how many of them must."""

    keyids: frozenset[str]
    threshold: int

    @classmethod
    def parse(cls, spec: object, where: str) -> _Spec:
        if not isinstance(spec, dict):
            raise SignatureError(f"{where} is not a table")
        keyids, threshold = _get(spec, "keyids", list, where), _get(spec, "threshold", int, where)
        if not all(isinstance(keyid, str) for keyid in keyids) or threshold < 1:
            raise SignatureError(f"{where} has no key ids or threshold")
        return cls(frozenset(keyids), threshold)


@dataclass(frozen=True)
class _Role:
    name: str
    signed: dict[str, Any]
    signatures: tuple[tuple[str, str, str], ...]  # (keyid, method, sig) of each well-formed signature
    message: bytes  # the canonical JSON of ``signed``: the bytes signed
    digest: str

    @classmethod
    def parse(cls, name: str, body: bytes, kind: str) -> _Role:
        try:
            document = json.loads(body)
            signed, signatures = document["signed"], document["signatures"]
            message = canonical_json(signed)
        except (ValueError, KeyError, TypeError, RecursionError):
            raise SignatureError(f"{name}.json is not TUF metadata") from None
        if not isinstance(signed, dict) or not isinstance(signatures, list) or signed.get("_type") != kind:
            raise SignatureError(f"{name}.json is not {kind} metadata")
        well_formed = tuple(
            (signature["keyid"], signature["method"], signature["sig"])
            for signature in signatures
            if isinstance(signature, dict)
            and all(isinstance(signature.get(field), str) for field in ("keyid", "method", "sig"))
        )
        return cls(name, signed, well_formed, message, "sha256:" + hashlib.sha256(body).hexdigest())

    @property
    def version(self) -> int:
        return _get(self.signed, "version", int, f"{self.name}.json")

    def role_spec(self, role: str) -> _Spec:
        roles = _get(self.signed, "roles", dict, f"{self.name}.json")
        if role not in roles:
            raise SignatureError(f"{self.name}.json defines no {role} role")
        return _Spec.parse(roles[role], f"{self.name}.json: the {role} role")

    def keys(self) -> dict[str, _Key]:
        return _keys(_get(self.signed, "keys", dict, f"{self.name}.json", optional=True), f"{self.name}.json")

    def valid_signers(self, keys: Mapping[str, _Key], allowed: frozenset[str]) -> set[str]:
        """The ids of the allowed keys with a valid signature over this role's canonical ``signed``."""
        signers = set()
        for keyid, method, sig in self.signatures:
            if (
                keyid in allowed
                and keyid in keys
                and keyid not in signers
                and _signature_verifies(keys[keyid], method, sig, self.message)
            ):
                signers.add(keyid)
        return signers

    def check_signed(self, keys: Mapping[str, _Key], spec: _Spec) -> None:
        signers = self.valid_signers(keys, spec.keyids)
        if len(signers) < spec.threshold:
            raise SignatureError(
                f"{self.name}.json has {len(signers)} valid signature(s) of the {spec.threshold} its role requires"
            )

    def check_expiry(self, now: datetime) -> None:
        expires = _parse_time(self.signed.get("expires"), f"{self.name}.json expires")
        if expires <= now:
            raise SignatureError(f"{self.name}.json expired at {expires.isoformat()}")

    def check_not_older(self, minimum: Mapping[str, int]) -> None:
        locked = minimum.get(self.name, 0)
        if self.version < locked:
            raise SignatureError(
                f"{self.name}.json version {self.version} is older than the locked version {locked} (rollback)"
            )


def _check_root(root: _Role, gun: str, now: datetime) -> _Spec:
    """The root's own root role, once the root carries its threshold of signatures and its root keys are
    certificates for the GUN, valid now."""
    keys = root.keys()
    spec = root.role_spec("root")
    root.check_signed(keys, spec)
    for keyid in sorted(spec.keyids):
        certificate = keys[keyid].certificate if keyid in keys else None
        if certificate is None:
            raise SignatureError(f"root key {keyid} is not a certificate")
        try:
            names = [name.value for name in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
            valid = certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc
        except ValueError:
            raise SignatureError(f"root key {keyid}: the certificate cannot be read") from None
        if names != [gun]:
            raise SignatureError(f"the root certificate is for {names[0] if names else '?'!r}, not {gun!r}")
        if not valid:
            raise SignatureError(f"the root certificate is not valid now (expires {certificate.not_valid_after_utc})")
    return spec


def _check_rotation(root: _Role, older_roots: Sequence[bytes], pins: Pins) -> None:
    """``root`` is the locked root, or follows from it by rotations (TUF's root update): each newer root
    carries signatures of a threshold of the previous root's keys, at the previous threshold, besides
    its own. ``older_roots`` run from the locked root's version on; without them the root itself must
    carry the locked keys' signatures."""
    if older_roots:
        first = pins.versions["root"]
        previous, *steps = [_Role.parse(f"{first + n}.root", body, "Root") for n, body in enumerate(older_roots)]
        steps.append(root)
    else:
        previous, steps = root, [root]
    # the locked key ids are hashes of the keys, so any root listing the keys gives them
    keys, spec = previous.keys(), _Spec(pins.root_keys, pins.root_threshold)
    for step in steps:
        if len(step.valid_signers(keys, spec.keyids)) < spec.threshold:
            raise SignatureError(
                f"the root changed without the signatures of the old root keys ({spec.threshold} of"
                f" {', '.join(sorted(spec.keyids))}): a root swap, not a rotation"
            )
        keys, spec = step.keys(), step.role_spec("root")
        step.check_signed(keys, spec)


def _keys(table: Mapping[str, Any], where: str) -> dict[str, _Key]:
    keys = {}
    for keyid, key in table.items():
        described = f"{where}: key {keyid}"
        if not isinstance(key, dict):
            raise SignatureError(f"{described} is not a table")
        keytype, keyval = _get(key, "keytype", str, described), _get(key, "keyval", dict, described)
        public = _get(keyval, "public", str, described)
        key_object = {"keytype": keytype, "keyval": {"private": None, "public": public}}
        if hashlib.sha256(canonical_json(key_object)).hexdigest() != keyid:
            continue  # an id that is not the key's own hash is never trusted
        try:
            keys[keyid] = _load_key(keytype, public)
        except (ValueError, binascii.Error, TypeError, UnsupportedAlgorithm):
            raise SignatureError(f"{described} ({keytype}) cannot be read") from None
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
    meta = _get(by.signed, "meta", dict, f"{by.name}.json").get(role)
    if not isinstance(meta, dict) or not isinstance(meta.get("hashes"), dict) or not meta["hashes"]:
        raise SignatureError(f"{by.name}.json does not describe {role}.json")
    if meta.get("length") != len(body):
        raise SignatureError(f"{role}.json is {len(body)} bytes, {by.name}.json says {meta.get('length')!r}")
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


def _check_named_version(by: _Role, role: _Role) -> None:
    """``role`` has the version ``by``'s meta names for it, when it names one (Notary's meta does not)."""
    meta = by.signed["meta"][role.name]  # checked by _described
    if "version" in meta and (type(meta["version"]) is not int or meta["version"] != role.version):
        raise SignatureError(
            f"{role.name}.json is version {role.version}; {by.name}.json names version {meta['version']!r}"
        )


def _releases_delegation(targets: _Role) -> tuple[_Spec, list[str], dict[str, _Key]] | None:
    """The ``targets/releases`` delegation of targets.json, if any: who signs it, its paths and their keys."""
    delegations = _get(targets.signed, "delegations", dict, "targets.json", optional=True)
    for role in _get(delegations, "roles", list, "targets.json delegations", optional=True):
        if isinstance(role, dict) and role.get("name") == RELEASES:
            where = f"targets.json: the {RELEASES} delegation"
            paths = _get(role, "paths", list, where, optional=True)
            if not all(isinstance(path, str) for path in paths):
                raise SignatureError(f"{where}: 'paths' is not a list of strings")
            keys = _keys(_get(delegations, "keys", dict, "targets.json delegations", optional=True), "targets.json")
            return _Spec.parse(role, where), paths, keys
    return None


def _target_entry(role: str, target: str, entry: object) -> tuple[bytes, int]:
    problem = SignatureError(f"{role}.json: the entry for {target} has no sha256 and length")
    if not isinstance(entry, dict) or not isinstance(entry.get("hashes"), dict):
        raise problem
    digest, length = entry["hashes"].get("sha256"), entry.get("length")
    if not isinstance(digest, str) or not isinstance(length, int) or isinstance(length, bool):
        raise problem
    try:
        sha256 = base64.b64decode(digest, validate=True)
    except (ValueError, binascii.Error):
        raise problem from None
    if len(sha256) != 32:
        raise problem
    return sha256, length


def _parse_time(value: object, what: str) -> datetime:
    """An RFC 3339 time as Go writes it (nanoseconds, ``Z`` or an offset); without a zone, UTC."""
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise SignatureError(f"{what}: not a time: {value!r}")
    seconds, fraction, zone = match.groups()
    text = seconds + (f".{fraction[:6]}" if fraction else "")  # Python keeps microseconds
    try:
        parsed = datetime.fromisoformat(text + ("+00:00" if zone in (None, "Z", "z") else zone))
    except ValueError:
        raise SignatureError(f"{what}: not a time: {value!r}") from None
    return parsed.astimezone(UTC)
