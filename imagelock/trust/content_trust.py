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

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from imagelock.errors import InputError, NotFoundError
from imagelock.reference import Repository
from imagelock.trust._base import Evidence, SignatureError, Subject

if TYPE_CHECKING:
    from imagelock.registry import RegistryClient

DOCKER_HUB_NOTARY = "https://notary.docker.io"
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

    from imagelock.trust.tuf import RELEASES, delegates_releases, verify_repository

    files = {role: await fetch(role) for role in ("root", "timestamp", "snapshot", "targets")}
    if delegates_releases(files["targets"]):
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
