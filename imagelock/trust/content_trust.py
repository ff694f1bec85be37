"""Docker Content Trust (Notary v1): TUF metadata on a notary server, trust on first use of the root.

The repository's metadata lives at ``/v2/<GUN>/_trust/tuf/<role>.json`` on the notary server, where
the GUN is the fully qualified repository (``docker.io/library/nginx``). It is checked in this order,
and only then believed:

1. ``root``: signed by a threshold of its own root keys; the root certificate's CN is the GUN and it is
   valid now. On first use its root key ids are recorded in the lock; later, a root whose root keys
   differ must also carry a valid signature by a pinned key (a rotation does; a swap does not).
2. ``timestamp``: signed by the root's timestamp keys; never a lower version than the lock recorded.
3. ``snapshot``: the exact bytes the timestamp names (length and hashes), signed by the snapshot keys.
4. ``targets`` and, when delegated, ``targets/releases``: the exact bytes the snapshot names, signed
   by their keys. Like Docker, the tag is looked up in ``targets/releases`` first, then ``targets``;
   other delegations are ignored.
5. The tag's target: its sha256 and length must be the digest imagelock computed and the size of
   the manifest it fetched.

Every role must be unexpired. Signatures are over the canonical JSON of ``signed``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from imagelock.errors import InputError, NotFoundError
from imagelock.reference import Repository
from imagelock.registry import RegistryClient
from imagelock.trust._base import Evidence, SignatureError, Subject
from imagelock.trust._canonical import canonical_json

DOCKER_HUB_NOTARY = "https://notary.docker.io"
RELEASES = "targets/releases"
MAX_METADATA_BYTES = 5 << 20


@dataclass(frozen=True)
class ContentTrustPolicy:
    """``method = "content-trust"``: the tag is a signed target of the repository's TUF metadata."""

    name: str
    server: str | None = None  # None: Docker Hub's notary, for docker.io images only
    ca_cert: Path | None = None
    method: str = "content-trust"
    _ca_hash: str | None = field(default=None, compare=False)

    @classmethod
    def create(cls, name: str, server: str | None, ca_cert: Path | None) -> ContentTrustPolicy:
        if server is not None:
            url = httpx.URL(server)
            if url.scheme not in ("https", "http") or not url.host or url.path not in ("", "/") or url.query:
                raise InputError(f"key 'server': expected a server URL like https://notary.example.com, got {server!r}")
        ca_hash = None
        if ca_cert is not None:
            try:
                ca_hash = "sha256:" + hashlib.sha256(ca_cert.read_bytes()).hexdigest()
            except OSError as error:
                raise InputError(f"key 'ca-cert': cannot read {str(ca_cert)!r}: {error.strerror}") from None
        return cls(name, server.rstrip("/") if server else None, ca_cert, _ca_hash=ca_hash)

    def server_for(self, repository: Repository) -> str | None:
        if self.server is not None:
            return self.server
        return DOCKER_HUB_NOTARY if repository.registry == "docker.io" else None

    def canonical(self) -> dict[str, Any]:
        return {"method": self.method, "server": self.server, "ca-cert": self._ca_hash}


def notary_host(server: str) -> str:
    """The host[:port] of a notary server URL: the key its transport settings and credentials go by."""
    return httpx.URL(server).netloc.decode()


@dataclass(frozen=True)
class TrustedTarget:
    """A target the repository's metadata vouches for, and what vouched for it."""

    sha256: bytes
    length: int
    role: str  # "targets/releases" or "targets"
    role_digest: str  # sha256 of that role's metadata file
    root_keys: tuple[str, ...]
    timestamp_version: int


async def verify(policy: ContentTrustPolicy, subject: Subject, client: RegistryClient) -> Evidence:
    """Evidence that the tag is signed in the repository's trust data, naming the digest imagelock computed."""
    server = policy.server_for(subject.repository)
    if server is None:
        raise SignatureError(f"policy {policy.name!r} has no notary server for {subject.repository}")
    gun = str(subject.repository)
    trust_repository = Repository(notary_host(server), gun)

    async def fetch(role: str) -> bytes:
        try:
            return await client.trust_metadata(trust_repository, role, max_bytes=MAX_METADATA_BYTES)
        except NotFoundError:
            if role == "root":
                raise SignatureError(f"no trust data for {gun} on {server}") from None
            raise SignatureError(f"trust data for {gun} on {server} has no {role}") from None

    files = {role: await fetch(role) for role in ("root", "timestamp", "snapshot", "targets")}
    if RELEASES in _delegated_roles(files["targets"]):
        files[RELEASES] = await fetch(RELEASES)
    pinned = subject.pinned if subject.pinned and subject.pinned.get("method") == policy.method else {}
    target = verify_repository(
        files,
        gun,
        subject.tag,
        now=datetime.now(UTC),
        pinned_root_keys=frozenset(filter(None, pinned.get("root-keys", "").split(","))),
        min_timestamp_version=int(pinned.get("timestamp-version", "0") or 0),
    )
    manifest = await client.get_manifest(subject.repository, subject.digest)
    algorithm, _, hexdigest = subject.digest.partition(":")
    if algorithm != "sha256" or target.sha256 != bytes.fromhex(hexdigest):
        raise SignatureError(f"the signed target for tag {subject.tag} is not {subject.digest}")
    if target.length != len(manifest.body):
        raise SignatureError(
            f"the signed target for tag {subject.tag} is {target.length} bytes, the manifest {len(manifest.body)}"
        )
    return Evidence(
        {
            "method": policy.method,
            "root-keys": ",".join(target.root_keys),
            "role": target.role,
            "signature": target.role_digest,
            "timestamp-version": str(target.timestamp_version),
        }
    )


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


def _delegated_roles(targets_body: bytes) -> set[str]:
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
