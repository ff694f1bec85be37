"""Docker Content Trust (Notary v1): TUF metadata on a notary server, trust on first use of the root.

The repository's metadata lives at ``/v2/<GUN>/_trust/tuf/<role>.json`` on the notary server, where
the GUN is the fully qualified repository (``docker.io/library/nginx``). It is checked in this order,
and only then believed:

1. ``root``: signed by a threshold of its own root keys; the root certificate's CN is the GUN and it is
   valid now. On first use its root key ids, threshold and version are recorded in the lock; later
   roots must follow from that one by rotations: each root since (``<version>.root.json``) carries
   signatures of a threshold of the previous root's keys, at that root's threshold, besides its own.
2. ``timestamp``: signed by the root's timestamp keys.
3. ``snapshot``: the exact bytes the timestamp names (length and hashes), signed by the snapshot keys.
4. ``targets`` and, when delegated, ``targets/releases``: the exact bytes the snapshot names, signed
   by their keys. Like Docker, the tag is looked up in ``targets/releases`` first, then ``targets``;
   other delegations are ignored.
5. The tag's target: its sha256 and length must be the digest imagelock computed and the size of
   the manifest it fetched.

Every role must be unexpired, have the version its parent names for it (when it names one), and
never have a lower version than the lock recorded: old metadata under a fresh timestamp is a
rollback. Signatures are over the canonical JSON of ``signed``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from imagelock.errors import InputError, NotFoundError
from imagelock.reference import Repository
from imagelock.trust._base import Evidence, SignatureError, Subject

if TYPE_CHECKING:
    from imagelock.registry import ImageReader
    from imagelock.trust.tuf import Pins

DOCKER_HUB_NOTARY = "https://notary.docker.io"
MAX_METADATA_BYTES = 5 << 20
# the evidence key recording each role's version: a later run refuses an older one
VERSION_EVIDENCE = {
    "root": "root-version",
    "timestamp": "timestamp-version",
    "snapshot": "snapshot-version",
    "targets": "targets-version",
    "targets/releases": "releases-version",
}


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
            url = urlsplit(server)
            if url.scheme not in ("https", "http") or not url.hostname or url.path not in ("", "/") or url.query:
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
    return urlsplit(server).netloc.rpartition("@")[2]


async def verify(policy: ContentTrustPolicy, subject: Subject, client: ImageReader) -> Evidence:
    """Evidence that the tag is signed in the repository's trust data, naming the digest imagelock computed."""
    server = policy.server_for(subject.repository)
    if server is None:
        raise SignatureError(f"policy {policy.name!r} has no notary server for {subject.repository}")
    gun = str(subject.repository)
    trust_repository = Repository(notary_host(server), gun)

    async def fetch(role: str, version: int | None = None) -> bytes:
        try:
            return await client.trust_metadata(trust_repository, role, version=version, max_bytes=MAX_METADATA_BYTES)
        except NotFoundError:
            if role == "root" and version is None:
                raise SignatureError(f"no trust data for {gun} on {server}") from None
            name = role if version is None else f"{role} version {version}"
            raise SignatureError(f"trust data for {gun} on {server} has no {name}") from None

    from imagelock.trust.tuf import RELEASES, delegates_releases, older_root_versions, verify_repository

    files = {role: await fetch(role) for role in ("root", "timestamp", "snapshot", "targets")}
    if delegates_releases(files["targets"]):
        files[RELEASES] = await fetch(RELEASES)
    pins = _pins(subject) if subject.pinned and subject.pinned.get("method") == policy.method else None
    older_roots = [await fetch("root", version) for version in older_root_versions(files["root"], pins)]
    target = verify_repository(files, gun, subject.tag, now=datetime.now(UTC), pins=pins, older_roots=older_roots)
    manifest = await client.get_manifest(subject.repository, subject.digest)
    algorithm, _, hexdigest = subject.digest.partition(":")
    if algorithm != "sha256" or target.sha256 != bytes.fromhex(hexdigest):
        raise SignatureError(f"the signed target for tag {subject.tag} is not {subject.digest}")
    if target.length != len(manifest.body):
        raise SignatureError(
            f"the signed target for tag {subject.tag} is {target.length} bytes, the manifest {len(manifest.body)}"
        )
    versions = {VERSION_EVIDENCE[role]: str(version) for role, version in target.versions.items()}
    return Evidence(
        {
            "method": policy.method,
            "root-keys": ",".join(target.root_keys),
            "root-threshold": str(target.root_threshold),
            **versions,
            "role": target.role,
            "signature": target.role_digest,
        }
    )


def _pins(subject: Subject) -> Pins | None:
    """What the lock's evidence holds the repository to; None before its root was first trusted.

    A lock written before imagelock recorded the root threshold holds the next root to every locked
    root key: never less than the real threshold, and Notary's roots have one key anyway.
    """
    from imagelock.trust.tuf import Pins

    evidence = subject.pinned or {}
    root_keys = frozenset(filter(None, evidence.get("root-keys", "").split(",")))
    if not root_keys:
        return None

    def number(key: str, *, positive: bool = False) -> int | None:
        value = evidence.get(key)
        if value is None:
            return None
        if not re.fullmatch(r"[0-9]{1,18}", value) or (positive and int(value) == 0):
            raise InputError(
                f"the lock's content-trust evidence for {subject.repository}: {key} = {value!r}"
                f" is not a {'positive' if positive else 'whole'} number"
            )
        return int(value)

    versions = {role: found for role, key in VERSION_EVIDENCE.items() if (found := number(key)) is not None}
    threshold = number("root-threshold", positive=True)
    return Pins(root_keys, len(root_keys) if threshold is None else threshold, versions)
