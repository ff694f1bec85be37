"""A Notary v1 repository whose every key the test holds, and a loopback server for its trust data.

notary-server keeps each repository's timestamp key to itself, so a test cannot have it sign what a
compromised server could: a fresh timestamp over an old snapshot, a snapshot naming old targets.
``TufRepository`` signs the way the notary client and server do together (ECDSA P-256, raw r‖s over
the canonical JSON of ``signed``; root keys are ``ecdsa-x509`` certificates for the GUN), so such
metadata can be made; ``TrustServer`` serves it at a notary server's paths.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from imagelock.trust._canonical import canonical_json
from tests.support.serving import QuietHandler, serve, shut_down
from tests.support.tls import self_signed

RELEASES = "targets/releases"
EXPIRES = "2099-01-01T00:00:00Z"

Targets = Mapping[str, tuple[str, int]]  # tag → (manifest digest, manifest length)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def certificate(key: ec.EllipticCurvePrivateKey, common_name: str) -> x509.Certificate:
    """A self-signed certificate for ``key``, valid from yesterday for thirty days, as notary makes for a root key."""
    return self_signed(key, common_name, days=30).sign(key, hashes.SHA256())


@dataclass(frozen=True)
class Key:
    """A signing key and its TUF key object (``keytype``, ``keyval``); its id is the object's hash."""

    private: ec.EllipticCurvePrivateKey
    public: dict[str, Any]

    @classmethod
    def generate(cls, certificate_for: str | None = None) -> Key:
        """An ``ecdsa`` key, or an ``ecdsa-x509`` one whose certificate names ``certificate_for`` (a root key)."""
        private = ec.generate_private_key(ec.SECP256R1())
        if certificate_for is None:
            keytype = "ecdsa"
            encoded = private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        else:
            keytype = "ecdsa-x509"
            encoded = certificate(private, certificate_for).public_bytes(serialization.Encoding.PEM)
        return cls(private, {"keytype": keytype, "keyval": {"private": None, "public": b64(encoded)}})

    @property
    def keyid(self) -> str:
        return hashlib.sha256(canonical_json(self.public)).hexdigest()

    def sign(self, signed: object) -> dict[str, str]:
        r, s = decode_dss_signature(self.private.sign(canonical_json(signed), ec.ECDSA(hashes.SHA256())))
        return {"keyid": self.keyid, "method": "ecdsa", "sig": b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))}


def document(signed: object, *signers: Key) -> bytes:
    """A metadata file: ``signed`` with each signer's signature over it."""
    return json.dumps({"signed": signed, "signatures": [key.sign(signed) for key in signers]}).encode()


def described(body: bytes) -> dict[str, Any]:
    """How a snapshot or timestamp describes a file: its length and hashes."""
    digests = {"sha256": b64(hashlib.sha256(body).digest()), "sha512": b64(hashlib.sha512(body).digest())}
    return {"length": len(body), "hashes": digests}


def target_entries(targets: Targets) -> dict[str, Any]:
    return {
        tag: {"hashes": {"sha256": b64(bytes.fromhex(digest.removeprefix("sha256:")))}, "length": length}
        for tag, (digest, length) in targets.items()
    }


@dataclass
class TufRepository:
    """One GUN's keys: root, targets, snapshot, timestamp and the ``targets/releases`` delegation."""

    gun: str
    root_keys: list[Key] = field(default_factory=list)
    keys: dict[str, Key] = field(default_factory=dict)  # role → its key

    def __post_init__(self) -> None:
        self.root_keys = self.root_keys or [Key.generate(self.gun)]
        for role in ("targets", "snapshot", "timestamp", RELEASES):
            self.keys.setdefault(role, Key.generate())

    def root(
        self,
        version: int = 1,
        *,
        root_keys: Sequence[Key] | None = None,
        threshold: int = 1,
        signers: Sequence[Key] | None = None,
    ) -> bytes:
        """A root listing ``root_keys`` (the repository's own by default) at ``threshold``, signed by ``signers``
        (by default every root key)."""
        root_keys = list(root_keys or self.root_keys)
        listed = [*root_keys, *(self.keys[role] for role in ("targets", "snapshot", "timestamp"))]
        roles = {
            role: {"keyids": [self.keys[role].keyid], "threshold": 1} for role in ("targets", "snapshot", "timestamp")
        }
        signed = {
            "_type": "Root",
            "consistent_snapshot": False,
            "expires": EXPIRES,
            "keys": {key.keyid: key.public for key in listed},
            "roles": {"root": {"keyids": [key.keyid for key in root_keys], "threshold": threshold}, **roles},
            "version": version,
        }
        return document(signed, *(root_keys if signers is None else signers))

    def targets(self, version: int, targets: Targets, *, delegate: bool = False) -> bytes:
        signed: dict[str, Any] = {"_type": "Targets", "expires": EXPIRES, "targets": target_entries(targets)}
        signed["version"] = version
        if delegate:
            releases = self.keys[RELEASES]
            signed["delegations"] = {
                "keys": {releases.keyid: releases.public},
                "roles": [{"name": RELEASES, "keyids": [releases.keyid], "threshold": 1, "paths": [""]}],
            }
        return self.sign("targets", signed)

    def releases(self, version: int, targets: Targets) -> bytes:
        signed = {"_type": "Targets", "expires": EXPIRES, "targets": target_entries(targets), "version": version}
        return self.sign(RELEASES, signed)

    def snapshot(self, version: int, roles: Mapping[str, bytes]) -> bytes:
        meta = {role: described(body) for role, body in roles.items()}
        return self.sign("snapshot", {"_type": "Snapshot", "expires": EXPIRES, "meta": meta, "version": version})

    def timestamp(self, version: int, snapshot: bytes) -> bytes:
        meta = {"snapshot": described(snapshot)}
        return self.sign("timestamp", {"_type": "Timestamp", "expires": EXPIRES, "meta": meta, "version": version})

    def sign(self, role: str, signed: object) -> bytes:
        return document(signed, *(self.root_keys if role == "root" else [self.keys[role]]))

    def chain(self, version: int, roles: Mapping[str, bytes]) -> dict[str, bytes]:
        """``roles`` (root, targets, maybe targets/releases) with a snapshot and timestamp at ``version`` over them."""
        snapshot = self.snapshot(version, roles)
        return {**roles, "snapshot": snapshot, "timestamp": self.timestamp(version, snapshot)}

    def publish(self, version: int, targets: Targets, *, releases: Targets | None = None) -> dict[str, bytes]:
        """The whole trust data, every role but the root at ``version``: ``targets`` signed in ``targets``,
        and ``releases`` (when given) in the ``targets/releases`` delegation."""
        roles = {"root": self.root(), "targets": self.targets(version, targets, delegate=releases is not None)}
        if releases is not None:
            roles[RELEASES] = self.releases(version, releases)
        return self.chain(version, roles)


@dataclass
class TrustServer:
    """Serves ``/v2/<GUN>/_trust/tuf/<name>.json`` from ``files`` (``root``, ``2.root``, ``targets/releases`` …)
    over plain HTTP on loopback, like a notary server; 404 for anything else."""

    files: dict[str, bytes] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> TrustServer:
        trust = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                _, found, name = self.path.partition("/_trust/tuf/")
                body = trust.files.get(name.removesuffix(".json")) if found and name.endswith(".json") else None
                if body is None:
                    self.send_json(404, {"errors": [{"code": "METADATA_NOT_FOUND"}]})
                else:
                    self.send_body(200, body, "application/json")

        self.server = serve(Handler)
        return self

    def stop(self) -> None:
        shut_down(self.server)
        self.server = None
