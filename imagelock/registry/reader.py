"""What reading images needs, whether from a registry (``RegistryClient``) or from a bundle on disk
(``imagelock.bundle.BundleReader``): trust, verification, the audit and the mirror read through this."""

from __future__ import annotations

from typing import Protocol

from imagelock.errors import RegistryError
from imagelock.reference import Repository
from imagelock.registry.manifests import IMAGE_CONFIG_TYPES, Descriptor, Manifest, config_platform
from imagelock.registry.transport import Sink

MAX_CONFIG_BYTES = 8 << 20


class ImageReader(Protocol):
    async def get_manifest(self, repository: Repository, reference: str) -> Manifest:
        """The manifest a tag or digest names, verified against its digest; NotFoundError when absent."""

    async def head_manifest(self, repository: Repository, reference: str) -> str | None:
        """The digest a tag or digest names (None when unknown); NotFoundError when absent."""

    async def get_blob(self, repository: Repository, digest: str, *, max_bytes: int) -> bytes:
        """A blob, verified against its digest."""

    async def stream_blob(self, repository: Repository, digest: str, sink: Sink, *, max_bytes: int) -> int:
        """A blob handed to ``sink`` chunk by chunk, its digest checked after the last; its size."""

    async def get_blob_range(self, repository: Repository, digest: str, start: int, length: int) -> bytes:
        """Exactly ``length`` bytes of a blob from ``start``; the caller verifies the digest."""

    async def referrers(self, repository: Repository, digest: str) -> tuple[Descriptor, ...]:
        """Manifests whose ``subject`` is ``digest``."""

    async def trust_metadata(
        self, trust_repository: Repository, role: str, *, version: int | None = None, max_bytes: int
    ) -> bytes:
        """A Docker Content Trust metadata file from a notary server."""

    async def platforms(self, repository: Repository, manifest: Manifest) -> dict[str, str]:
        """Every real platform the image offers, with the digest of its platform manifest."""


async def image_platforms(reader: ImageReader, repository: Repository, manifest: Manifest) -> dict[str, str]:
    """An index's platforms; a single manifest's one platform, from its config blob."""
    if manifest.is_index:
        return manifest.platforms()
    config = manifest.config
    if config is None or config.media_type not in IMAGE_CONFIG_TYPES:
        media_type = config.media_type if config else None
        raise RegistryError(f"{repository}@{manifest.digest}: not a container image (config type {media_type!r})")
    body = await reader.get_blob(repository, config.digest, max_bytes=MAX_CONFIG_BYTES)
    platform = config_platform(body, f"{repository}@{config.digest}")
    return {str(platform): manifest.digest}
