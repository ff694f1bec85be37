"""The registry client the resolver uses: tags, manifests, blobs and platforms of a repository."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TypeVar

import httpx

from imagelock.concurrency import once
from imagelock.errors import NotFoundError, RegistryError
from imagelock.events import Events
from imagelock.freshness import time_in
from imagelock.reference import DOCKER_HUB, Repository, is_valid_digest, is_valid_tag
from imagelock.registry.authn import Keychain
from imagelock.registry.manifests import (
    ACCEPT,
    OCI_INDEX,
    Descriptor,
    Manifest,
    parse_manifest,
    verify_digest,
)
from imagelock.registry.reader import image_platforms
from imagelock.registry.transport import HostSettings, Response, RetryPolicy, Sink, Transport
from imagelock.untrusted import load_json

MAX_MANIFEST_BYTES = 4 << 20
MAX_TAG_PAGE_BYTES = 8 << 20
MAX_TAG_PAGES = 1000
TAG_PAGE_SIZE = 1000
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)


TUF_ROLES = frozenset({"root", "timestamp", "snapshot", "targets", "targets/releases"})

DOCKER_HUB_TAG_API = "hub.docker.com"
MAX_TAG_API_BYTES = 1 << 20  # one tag's record: a few kilobytes


class RegistryClient:
    """Reads from registries. Manifests fetched by digest are cached for the run (they are immutable)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._tag_lists: dict[Repository, asyncio.Future[list[str]]] = {}
        self._manifests: dict[tuple[Repository, str], asyncio.Future[Manifest]] = {}

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        keychain: Keychain,
        settings: Mapping[str, HostSettings] | None = None,
        *,
        events: Events | None = None,
        retry: RetryPolicy | None = None,
    ) -> AsyncIterator[RegistryClient]:
        transport = Transport(keychain, settings, events=events, retry=retry)
        try:
            yield cls(transport)
        finally:
            await transport.aclose()

    @property
    def transport(self) -> Transport:
        """The run's transport, shared with the write path (``registry/push.py``)."""
        return self._transport

    async def list_tags(self, repository: Repository) -> list[str]:
        """Every valid tag of the repository; listed once per run however many entries ask."""
        tags = await once(self._tag_lists, repository, lambda: self._list_tags(repository))
        return list(tags)

    async def _list_tags(self, repository: Repository) -> list[str]:
        """Follow the tag list's ``Link`` pages, on the same origin only."""
        path = f"/v2/{repository.path}/tags/list?n={TAG_PAGE_SIZE}"
        tags: dict[str, None] = {}
        for _ in range(MAX_TAG_PAGES):
            response = await self._get(repository, path, max_bytes=MAX_TAG_PAGE_BYTES)
            self._raise_for_status(response, repository, f"tags of {repository}")
            what = f"{repository.api_host}: tag list of {repository}"
            tags.update(dict.fromkeys(tags_on_page(response.body, what)))
            next_url = next_page_url(response, what)
            if next_url is None:
                return list(tags)
            if (next_url.scheme, next_url.host, next_url.port) != (
                response.url.scheme,
                response.url.host,
                response.url.port,
            ) or not next_url.path.startswith(f"/v2/{repository.path}/tags/list"):
                raise RegistryError(f"{what} links to another origin or path")
            path = next_url.raw_path.decode()
        raise RegistryError(f"{repository.api_host}: tag list of {repository} has more than {MAX_TAG_PAGES} pages")

    async def get_manifest(self, repository: Repository, reference: str) -> Manifest:
        """The manifest or index a tag or digest names, verified against its digest; fetched once per run."""
        if not is_valid_digest(reference) and not is_valid_tag(reference):
            raise RegistryError(f"refusing to request invalid tag {reference!r} of {repository}")
        return await once(self._manifests, (repository, reference), lambda: self._get_manifest(repository, reference))

    async def head_manifest(self, repository: Repository, reference: str) -> str | None:
        """The digest a tag (or digest) names now, from a HEAD, which Docker Hub does not count as a pull.

        None when the registry does not say; the caller then needs a GET. NotFoundError when
        there is no such manifest.
        """
        by_digest = is_valid_digest(reference)
        if not by_digest and not is_valid_tag(reference):
            raise RegistryError(f"refusing to request invalid tag {reference!r} of {repository}")
        response = await self._transport.request(
            "HEAD",
            repository,
            f"/v2/{repository.path}/manifests/{reference}",
            headers={"Accept": ACCEPT},
            max_bytes=0,
        )
        self._raise_for_status(response, repository, f"{repository}{'@' if by_digest else ':'}{reference}")
        digest = response.headers.get("docker-content-digest")
        return digest if digest and is_valid_digest(digest) else None

    async def _get_manifest(self, repository: Repository, reference: str) -> Manifest:
        by_digest = is_valid_digest(reference)
        what = f"{repository}{'@' if by_digest else ':'}{reference}"
        response = await self._get(
            repository, f"/v2/{repository.path}/manifests/{reference}", max_bytes=MAX_MANIFEST_BYTES, accept=ACCEPT
        )
        self._raise_for_status(response, repository, what)
        manifest = parse_manifest(
            response.body,
            content_type=response.headers.get("content-type"),
            claimed_digest=response.headers.get("docker-content-digest"),
            expected_digest=reference if by_digest else None,
            what=what,
        )
        if not by_digest:  # manifests are immutable: the same one by digest needs no second request
            self._manifests.setdefault((repository, manifest.digest), _done(manifest))
        return manifest

    async def get_blob(self, repository: Repository, digest: str, *, max_bytes: int) -> bytes:
        """A blob, verified against its digest."""
        if not is_valid_digest(digest):
            raise RegistryError(f"refusing to request invalid digest {digest!r} of {repository}")
        response = await self._get(repository, f"/v2/{repository.path}/blobs/{digest}", max_bytes=max_bytes)
        what = f"{repository}@{digest}"
        self._raise_for_status(response, repository, what)
        verify_digest(response.body, claimed=None, expected=digest, what=what)
        return response.body

    async def stream_blob(self, repository: Repository, digest: str, sink: Sink, *, max_bytes: int) -> int:
        """Hand a blob to ``sink`` chunk by chunk, never holding it whole; return its size.

        The digest is computed as the chunks pass and checked when the last has: RegistryError then
        means the caller must discard whatever it made of them.
        """
        if not is_valid_digest(digest):
            raise RegistryError(f"refusing to request invalid digest {digest!r} of {repository}")
        algorithm, _, expected = digest.partition(":")
        hasher = hashlib.new(algorithm)
        size = 0

        async def verified(chunk: bytes) -> None:
            nonlocal size
            hasher.update(chunk)
            size += len(chunk)
            await sink(chunk)

        what = f"{repository}@{digest}"
        response = await self._transport.request(
            "GET", repository, f"/v2/{repository.path}/blobs/{digest}", max_bytes=max_bytes, sink=verified
        )
        self._raise_for_status(response, repository, what)
        if hasher.hexdigest() != expected:
            raise RegistryError(
                f"{what}: content does not match the digest requested (got {algorithm}:{hasher.hexdigest()})"
            )
        return size

    async def get_blob_range(self, repository: Repository, digest: str, start: int, length: int) -> bytes:
        """``length`` bytes of a blob from ``start`` (a Range request), so that a layer is never held whole.

        The caller verifies the digest over all the pieces. A registry that ignores Range answers the
        whole blob, which is accepted only when that is exactly the piece asked for.
        """
        if not is_valid_digest(digest):
            raise RegistryError(f"refusing to request invalid digest {digest!r} of {repository}")
        what = f"{repository}@{digest}"
        response = await self._transport.request(
            "GET",
            repository,
            f"/v2/{repository.path}/blobs/{digest}",
            headers={"Range": f"bytes={start}-{start + length - 1}"},
            max_bytes=length,
        )
        self._raise_for_status(response, repository, what, ok=(200, 206))
        if response.status == 200 and start != 0:
            raise RegistryError(f"{repository.api_host}: {what}: the registry ignores Range requests")
        if len(response.body) != length:
            raise RegistryError(f"{repository.api_host}: {what}: expected {length} bytes from {start}")
        return response.body

    async def referrers(self, repository: Repository, digest: str) -> tuple[Descriptor, ...]:
        """Manifests whose ``subject`` is ``digest``: the referrers API, else the ``sha256-<hex>`` tag index."""
        if not is_valid_digest(digest):
            raise RegistryError(f"refusing to request invalid digest {digest!r} of {repository}")
        response = await self._get(
            repository, f"/v2/{repository.path}/referrers/{digest}", max_bytes=MAX_MANIFEST_BYTES, accept=OCI_INDEX
        )
        if response.status == 200:
            index = parse_manifest(
                response.body,
                content_type=response.headers.get("content-type") or OCI_INDEX,
                claimed_digest=None,
                expected_digest=None,
                what=f"referrers of {repository}@{digest}",
            )
            return index.children
        if response.status not in (400, 404, 405, 406):
            self._raise_for_status(response, repository, f"referrers of {repository}@{digest}")
        algorithm, _, hexdigest = digest.partition(":")
        try:
            index = await self.get_manifest(repository, f"{algorithm}-{hexdigest}")
        except NotFoundError:
            return ()
        return index.children if index.is_index else ()

    async def trust_metadata(
        self, trust_repository: Repository, role: str, *, version: int | None = None, max_bytes: int
    ) -> bytes:
        """A Docker Content Trust metadata file from a notary server: ``trust_repository`` names the
        server as its registry and the GUN as its path; ``version`` asks for that version of the role
        (``<version>.<role>.json``) rather than the current one. NotFoundError when the server has none."""
        if role not in TUF_ROLES:
            raise RegistryError(f"refusing to request unknown trust role {role!r}")
        name = role if version is None else f"{version}.{role}"
        path = f"/v2/{trust_repository.path}/_trust/tuf/{name}.json"
        response = await self._get(trust_repository, path, max_bytes=max_bytes)
        if response.status == 404:
            raise NotFoundError(f"{trust_repository.registry}: no {name} metadata for {trust_repository.path}")
        if response.status != 200:
            raise RegistryError(
                f"{trust_repository.registry}: trust data {name} for {trust_repository.path}: HTTP {response.status}"
            )
        return response.body

    async def tag_pushed(self, repository: Repository, tag: str) -> datetime | None:
        """When ``tag`` was last pushed, from the registry's Docker-Hub-shaped tag API (``tag_last_pushed`` of
        ``/v2/namespaces/NS/repositories/NAME/tags/TAG``): Docker Hub's own, or the ``tag-api`` of its settings.
        None when the registry has no such API or it does not know the tag."""
        api = self._transport.settings_for(repository.registry).tag_api
        if api is None and repository.registry == DOCKER_HUB:
            api = DOCKER_HUB_TAG_API
        namespace, _, name = repository.path.partition("/")
        if api is None or not name or not is_valid_tag(tag):
            return None
        path = f"/v2/namespaces/{namespace}/repositories/{name}/tags/{tag}"
        response = await self._get(Repository(api, repository.path), path, max_bytes=MAX_TAG_API_BYTES)
        if response.status != 200:
            return None
        try:
            document = load_json(response.body)
        except ValueError:
            return None
        return time_in(document, "tag_last_pushed")

    async def platforms(self, repository: Repository, manifest: Manifest) -> dict[str, str]:
        """Every real platform the image offers, with the digest of its platform manifest."""
        return await image_platforms(self, repository, manifest)

    async def _get(self, repository: Repository, path: str, *, max_bytes: int, accept: str | None = None) -> Response:
        headers = {"Accept": accept} if accept else {}
        return await self._transport.request("GET", repository, path, headers=headers, max_bytes=max_bytes)

    @staticmethod
    def _raise_for_status(
        response: Response, repository: Repository, what: str, *, ok: Collection[int] = (200,)
    ) -> None:
        """One clear line for a failed answer: registry, what was asked, status and registry error."""
        if response.status in ok:
            return
        errors = _registry_errors(response.body)
        codes = {code for code, _ in errors}
        host = repository.api_host
        if "NAME_UNKNOWN" in codes or (response.status == 404 and not errors and "/tags/" in str(response.url)):
            raise NotFoundError(f"{host}: repository {repository} not found (NAME_UNKNOWN)")
        if response.status == 404:
            raise NotFoundError(
                f"{host}: {what} not found (MANIFEST_UNKNOWN)"
                if "MANIFEST_UNKNOWN" in codes
                else f"{host}: {what} not found"
            )
        detail = "; ".join(f"{code}: {message}" if message else code for code, message in errors)
        attempts = f" after {response.attempts} attempts" if response.attempts > 1 else ""
        reason = {401: "unauthorized", 403: "access denied", 429: "rate limited"}.get(response.status, "failed")
        raise RegistryError(
            f"{host}: {what}: {reason} (HTTP {response.status}{attempts}){': ' + detail if detail else ''}"
        )


V = TypeVar("V")


def _done(value: V) -> asyncio.Future[V]:
    future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


def tags_on_page(body: bytes, what: str) -> list[str]:
    """The valid tags one page of a tag list names: ``{"tags": [...]}``, where null means none."""
    try:
        document = load_json(body)
    except ValueError:
        raise RegistryError(f"{what} is not valid JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("tags"), list | None):
        raise RegistryError(f"{what} is malformed")
    return [tag for tag in document.get("tags") or [] if isinstance(tag, str) and is_valid_tag(tag)]


def next_page_url(response: Response, what: str) -> httpx.URL | None:
    """Where a page's ``Link: <...>; rel="next"`` points, resolved against the page's URL; None on the last page."""
    for header in response.headers.get_list("link"):
        match = _LINK_NEXT.search(header)
        if match:
            try:
                return response.url.join(match.group(1))
            except httpx.InvalidURL:
                raise RegistryError(f"{what} links to an invalid URL {match.group(1)!r}") from None
    return None


def _registry_errors(body: bytes) -> list[tuple[str, str]]:
    """``{"errors": [{"code", "message"}]}`` as (code, message) pairs; [] for any other body."""
    try:
        errors = load_json(body).get("errors") or []
        return [
            (str(error["code"]), str(error.get("message") or "")[:200])
            for error in errors
            if isinstance(error, dict) and "code" in error
        ]
    except (ValueError, AttributeError, TypeError):
        return []
