"""Docker Content Trust (Notary v1): TUF metadata on a notary server, trust on first use of the root."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagelock.errors import InputError
from imagelock.reference import Repository
from imagelock.registry import RegistryClient
from imagelock.trust._base import Evidence, SignatureError, Subject

DOCKER_HUB_NOTARY = "https://notary.docker.io"


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
        if server is not None and not server.startswith(("https://", "http://")):
            raise InputError(f"key 'server': expected an https:// URL, got {server!r}")
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


async def verify(policy: ContentTrustPolicy, subject: Subject, client: RegistryClient) -> Evidence:
    raise SignatureError(f"{subject}: content trust is not verified yet")
