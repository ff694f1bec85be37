"""Writing to registries: blob checks, cross-repository mounts, chunked resumable uploads, manifests.

Every request goes through the run's ``Transport``, so the rules for reads hold for writes too:
credentials only to the registry's own origin (an upload ``Location`` on another origin gets
none), plain HTTP only where the registry may use it, tokens scoped ``pull,push`` for the target
repository (plus ``pull`` on the mount source when mounting).

Uploads are chunked: ``PATCH`` with ``Content-Range``, then ``PUT ?digest=``. A chunk whose
connection broke is not sent again blindly (a registry may have appended part of it): the upload's
status (``GET`` on its location, ``Range: 0-<last byte>``) says where to go on; an upload that cannot
be resumed raises ``RestartUploadError`` and the caller starts a new one. The bytes are hashed as they
pass, and the upload is completed only when they match the digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import Awaitable, Callable

import httpx

from imagelock.errors import NotFoundError, RegistryError
from imagelock.reference import Repository, is_valid_digest, is_valid_tag
from imagelock.registry.client import RegistryClient
from imagelock.registry.manifests import ACCEPT, Manifest
from imagelock.registry.transport import MAX_ERROR_BODY, ConnectionLostError, Response

CHUNK_SIZE = 8 << 20
CHUNK_ATTEMPTS = 4
_RANGE = re.compile(r"^(?:bytes=)?0-(\d+)$")

Read = Callable[[int, int], Awaitable[bytes]]  # (offset, length) → exactly that many bytes of the source blob
Progress = Callable[[int], None]  # bytes confirmed by the target (negative when an upload starts over)


class RestartUploadError(RegistryError):
    """The upload session is lost or inconsistent; a new one must start from the first byte."""


class Pusher:
    """Pushes blobs and manifests to registries, over the same transport as the run's reads."""

    def __init__(self, client: RegistryClient, *, chunk_size: int = CHUNK_SIZE) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self._client = client
        self._transport = client.transport
        self.chunk_size = chunk_size

    # -- existence -------------------------------------------------------------------------------

    async def blob_exists(self, repository: Repository, digest: str) -> bool:
        """``HEAD /v2/<name>/blobs/<digest>``: True when the repository has the blob."""
        _check_digest(digest, repository)
        response = await self._send("HEAD", repository, f"/v2/{repository.path}/blobs/{digest}", max_bytes=0)
        if response.status == 404:
            return False
        _raise_for_status(response, repository, f"blob {repository}@{digest}", ok=(200,))
        claimed = response.headers.get("docker-content-digest")
        return claimed is None or claimed == digest

    async def manifest_digest(self, repository: Repository, reference: str) -> str | None:
        """The digest a tag or digest names in the repository now (``HEAD``), or None when there is none."""
        if not is_valid_digest(reference) and not is_valid_tag(reference):
            raise RegistryError(f"refusing to request invalid reference {reference!r} of {repository}")
        response = await self._send(
            "HEAD", repository, f"/v2/{repository.path}/manifests/{reference}", headers={"Accept": ACCEPT}, max_bytes=0
        )
        if response.status == 404:
            return None
        _raise_for_status(response, repository, f"{repository}:{reference}", ok=(200,))
        digest = response.headers.get("docker-content-digest")
        return digest if digest and is_valid_digest(digest) else None

    # -- blobs -----------------------------------------------------------------------------------

    async def mount(self, repository: Repository, digest: str, source: Repository) -> httpx.URL | None:
        """Mount a blob from another repository of the same registry: None when mounted (201),
        else the location of the upload the registry opened instead (202)."""
        _check_digest(digest, repository)
        path = f"/v2/{repository.path}/blobs/uploads/?mount={digest}&from={source.path}"
        response = await self._send("POST", repository, path, mount_from=source)
        if response.status == 201:
            return None
        _raise_for_status(response, repository, f"mounting {digest} from {source}", ok=(202,))
        return self._location(repository, response, None)

    async def start_upload(self, repository: Repository) -> httpx.URL:
        response = await self._send("POST", repository, f"/v2/{repository.path}/blobs/uploads/")
        _raise_for_status(response, repository, f"starting an upload to {repository}", ok=(202,))
        return self._location(repository, response, None)

    async def upload(
        self, repository: Repository, location: httpx.URL, digest: str, size: int, read: Read, progress: Progress
    ) -> None:
        """Upload ``size`` bytes read from the source, chunk by chunk, and complete it as ``digest``.

        Raises RestartUploadError when the session cannot go on; RegistryError when the source's bytes
        do not match the digest (the upload is then cancelled, never completed).
        """
        what = f"{repository}@{digest}"
        hasher = hashlib.new(digest.split(":", 1)[0])
        if size <= self.chunk_size:  # one request: PUT ?digest= with the body
            body = await read(0, size) if size else b""
            hasher.update(body)
            await self._check_content(repository, location, hasher.hexdigest(), digest, what)
            await self._complete(repository, location, digest, body, what)
            progress(len(body))
            return
        offset = 0
        while offset < size:
            chunk = await read(offset, min(self.chunk_size, size - offset))
            hasher.update(chunk)
            location = await self._send_chunk(repository, location, offset, chunk, what, progress)
            offset += len(chunk)
        await self._check_content(repository, location, hasher.hexdigest(), digest, what)
        await self._complete(repository, location, digest, b"", what)

    async def _send_chunk(
        self, repository: Repository, location: httpx.URL, offset: int, chunk: bytes, what: str, progress: Progress
    ) -> httpx.URL:
        """PATCH one chunk; after a failure, resume from what the registry says it has."""
        sent = 0
        failure = ""
        for attempt in range(1, CHUNK_ATTEMPTS + 1):
            start = offset + sent
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{offset + len(chunk) - 1}",
            }
            try:
                response = await self._send_url("PATCH", repository, location, headers=headers, content=chunk[sent:])
            except ConnectionLostError as error:
                failure = str(error)
            else:
                if response.status == 202:
                    progress(len(chunk) - sent)
                    return self._location(repository, response, location)
                failure = f"HTTP {response.status}"
            received, location = await self._received(repository, location, what)
            if not start <= received <= offset + len(chunk):
                raise RestartUploadError(f"{what}: the registry lost the upload ({failure}; it has {received} bytes)")
            progress(received - start)
            sent = received - offset
            if sent == len(chunk):
                return location
            if attempt < CHUNK_ATTEMPTS:
                await asyncio.sleep(0.1 * 2**attempt)
        raise RegistryError(f"{repository.api_host}: {what}: uploading bytes from {offset + sent} failed: {failure}")

    async def _received(self, repository: Repository, location: httpx.URL, what: str) -> tuple[int, httpx.URL]:
        """How many bytes the upload holds (``GET`` on its location → ``Range: 0-<last>``), and its location."""
        try:
            response = await self._send_url("GET", repository, location)
        except ConnectionLostError as error:
            raise RestartUploadError(f"{what}: upload status unavailable ({error})") from None
        match = _RANGE.match(response.headers.get("range", "").strip())
        if response.status not in (202, 204) or match is None:
            raise RestartUploadError(f"{what}: upload status unavailable (HTTP {response.status})")
        last = int(match.group(1))
        if last == 0:  # "0-0" means zero bytes or one: ambiguous, so start over
            raise RestartUploadError(f"{what}: upload status ambiguous")
        return last + 1, self._location(repository, response, location)

    async def _check_content(
        self, repository: Repository, location: httpx.URL, hexdigest: str, digest: str, what: str
    ) -> None:
        actual = f"{digest.split(':', 1)[0]}:{hexdigest}"
        if actual != digest:
            await self.cancel(repository, location)
            raise RegistryError(f"{what}: the source's content does not match its digest (got {actual})")

    async def _complete(self, repository: Repository, location: httpx.URL, digest: str, body: bytes, what: str) -> None:
        """``PUT <location>?digest=``; a lost answer is fine if the blob turns out to be there."""
        url = location.copy_merge_params({"digest": digest})
        headers = {"Content-Type": "application/octet-stream"}
        try:
            response = await self._send_url("PUT", repository, url, headers=headers, content=body)
        except ConnectionLostError as error:
            if await self.blob_exists(repository, digest):
                return
            raise RestartUploadError(f"{what}: completing the upload failed ({error})") from None
        if response.status in (404, 416) and await self.blob_exists(repository, digest):
            return
        if response.status == 404:
            raise RestartUploadError(f"{what}: the registry lost the upload")
        _raise_for_status(response, repository, f"uploading {what}", ok=(201, 204))
        claimed = response.headers.get("docker-content-digest")
        if claimed is not None and claimed != digest:
            raise RegistryError(f"{repository.api_host}: {what}: the registry stored it as {claimed}")

    async def cancel(self, repository: Repository, location: httpx.URL) -> None:
        """Abandon an upload (best effort: registries expire abandoned uploads anyway)."""
        with contextlib.suppress(RegistryError):
            await self._send_url("DELETE", repository, location)

    # -- manifests -------------------------------------------------------------------------------

    async def put_manifest(self, repository: Repository, reference: str, manifest: Manifest) -> None:
        """Push the manifest's exact bytes under a tag or its digest, then confirm the digest with a HEAD."""
        if reference != manifest.digest and not is_valid_tag(reference):
            raise RegistryError(f"refusing to push to invalid tag {reference!r} of {repository}")
        what = f"{repository}{'@' if reference == manifest.digest else ':'}{reference}"
        response = await self._send(
            "PUT",
            repository,
            f"/v2/{repository.path}/manifests/{reference}",
            headers={"Content-Type": manifest.media_type},
            content=manifest.body,
        )
        _raise_for_status(response, repository, f"pushing {what}", ok=(200, 201, 202, 204))
        claimed = response.headers.get("docker-content-digest")
        if claimed is not None and claimed != manifest.digest:
            raise RegistryError(f"{repository.api_host}: {what}: the registry stored {claimed}, not {manifest.digest}")
        stored = await self.manifest_digest(repository, manifest.digest)
        if stored != manifest.digest:
            raise RegistryError(f"{repository.api_host}: {what}: pushed, but {manifest.digest} is not there")

    async def has_referrers_api(self, repository: Repository, digest: str) -> bool:
        """Whether the registry answers the OCI referrers API (else referrers live in a ``sha256-<hex>`` tag)."""
        _check_digest(digest, repository)
        path = f"/v2/{repository.path}/referrers/{digest}"
        response = await self._send("GET", repository, path, headers={"Accept": ACCEPT}, max_bytes=4 << 20)
        return response.status == 200

    # -- helpers ---------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        repository: Repository,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        max_bytes: int = MAX_ERROR_BODY,
        mount_from: Repository | None = None,
    ) -> Response:
        return await self._transport.request(
            method, repository, path, headers=headers, content=content, max_bytes=max_bytes, push=True,
            mount_from=mount_from,
        )  # fmt: skip

    async def _send_url(
        self,
        method: str,
        repository: Repository,
        url: httpx.URL,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> Response:
        """To an upload location; never resent on a broken connection (the caller asks the status)."""
        return await self._transport.request_url(
            method, repository, url, headers=headers, content=content, max_bytes=MAX_ERROR_BODY, push=True,
            retry_connection=False,
        )  # fmt: skip

    def _location(self, repository: Repository, response: Response, current: httpx.URL | None) -> httpx.URL:
        location = response.headers.get("location")
        if not location:
            if current is not None:
                return current
            raise RegistryError(f"{repository.api_host}: upload to {repository} answered without a Location")
        return self._transport.registry_url(repository, location)


def _check_digest(digest: str, repository: Repository) -> None:
    if not is_valid_digest(digest):
        raise RegistryError(f"refusing to request invalid digest {digest!r} of {repository}")


def _raise_for_status(response: Response, repository: Repository, what: str, *, ok: tuple[int, ...]) -> None:
    if response.status == 404 and response.status not in ok:
        raise NotFoundError(f"{repository.api_host}: {what}: not found")
    RegistryClient._raise_for_status(response, repository, what, ok=ok)
