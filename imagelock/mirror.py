"""Copying locked images into another registry (``imagelock mirror``), digests unchanged.

For each locked entry: the index (or single manifest) under the locked tag, every child manifest
by digest, their config and layer blobs, and the signatures and attestations found for the index
and platform digests (cosign's ``sha256-<hex>.sig`` / ``.att`` tags, and OCI referrers with the
``sha256-<hex>`` tag index when the target has no referrers API). Manifests are pushed byte for
byte, so every digest stays the same; each push is confirmed by a ``HEAD`` by digest.

What the target already has is skipped: a manifest present by digest (a registry accepts a
manifest only once everything it references is there, so its whole tree is present), a blob
present by ``HEAD``. A blob placed in one repository of the target during the run is mounted into
the others. A second run therefore copies nothing, and a run cut short resumes where it stopped.
The images are read from their own registries, or (``imagelock load``) from a bundle: any
``ImageReader``. Nothing here knows about the terminal; progress is reported through ``TransferProgress``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from imagelock.concurrency import each_settled, once
from imagelock.errors import EXIT_CHECK_FAILED, ImagelockError, InputError, NotFoundError, raise_all
from imagelock.events import Events
from imagelock.lockfile import LockedImage
from imagelock.reference import DOCKER_HUB, Repository, is_valid_registry_host, names_registry_host, parse_repository
from imagelock.registry.client import RegistryClient
from imagelock.registry.manifests import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    Descriptor,
    Manifest,
    parse_manifest,
    sha256_digest,
)
from imagelock.registry.push import CHUNK_SIZE, Pusher, RestartUploadError
from imagelock.registry.reader import ImageReader

SIGNATURE_SUFFIXES = (".sig", ".att")  # cosign's tags beside the image: sha256-<hex>.sig, sha256-<hex>.att
MAX_TRANSFERS = 8  # blobs uploading at once (each holds at most one chunk in memory)
UPLOAD_SESSIONS = 3  # a blob's upload is started over at most this many times
_MAX_NAME_LENGTH = 255
_FOREIGN_LAYERS = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)


class StaleLockError(ImagelockError):
    """The lock does not match images.toml: mirroring it would copy something nobody reviewed (exit 1)."""

    exit_code = EXIT_CHECK_FAILED


@dataclass(frozen=True)
class Target:
    """Where images are mirrored: a registry host and an optional path prefix."""

    registry: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"{self.registry}/{self.prefix}" if self.prefix else self.registry

    def repository_for(self, source: Repository) -> Repository:
        """``docker.io/library/nginx`` → ``<registry>/<prefix>/library/nginx``: the source host is dropped."""
        path = f"{self.prefix}/{source.path}" if self.prefix else source.path
        if len(self.registry) + 1 + len(path) > _MAX_NAME_LENGTH:
            raise InputError(f"mirror target {self.registry}/{path} is longer than {_MAX_NAME_LENGTH} characters")
        return Repository(self.registry, path)


def parse_target(text: str) -> Target:
    """``registry.internal:5000/mirror`` → Target; the host must look like one (a dot, a port, or localhost)."""
    value = text.strip().rstrip("/")
    if "://" in value:
        raise InputError(f"mirror target {text!r}: give a registry host and optional path, without a scheme")
    host, _, prefix = value.partition("/")
    if not host or not names_registry_host(host) or not is_valid_registry_host(host):
        raise InputError(
            f"mirror target {text!r}: must start with a registry host (a name with a dot or a port, or localhost),"
            " e.g. registry.internal:5000/mirror"
        )
    if prefix:
        try:
            parse_repository(f"{host}/{prefix}/x")
        except InputError:
            raise InputError(
                f"mirror target {text!r}: bad path {prefix!r} (lowercase letters, digits and . _ __ - separators)"
            ) from None
    registry = parse_repository(f"{host}/x/x").registry  # lowercased; index.docker.io → docker.io
    return Target(registry if registry != DOCKER_HUB else DOCKER_HUB, prefix)


def plan(entries: Sequence[LockedImage], target: Target) -> list[tuple[LockedImage, Repository]]:
    """Each entry with its destination repository; two source repositories may not share one."""
    destinations: dict[Repository, Repository] = {}
    planned = []
    for entry in entries:
        source = parse_repository(entry.image)
        destination = target.repository_for(source)
        other = destinations.setdefault(destination, source)
        if other != source:
            raise InputError(
                f"[images.{entry.name}]: {source} and {other} would both be mirrored to {destination};"
                " mirror them to different targets"
            )
        planned.append((entry, destination))
    return planned


class TransferProgress(Protocol):
    def planned(self, size: int) -> None:
        """A blob of ``size`` bytes is about to be uploaded (add it to the total)."""

    def transferred(self, size: int) -> None:
        """``size`` more bytes are at the target (negative when an upload starts over)."""


class NoProgress:
    def planned(self, size: int) -> None:
        pass

    def transferred(self, size: int) -> None:
        pass


@dataclass(frozen=True)
class MirroredImage:
    name: str
    source: str  # image:tag@digest as locked
    target: str  # the same at the target
    manifests_pushed: int
    blobs_uploaded: int
    blobs_mounted: int
    blobs_present: int
    bytes_uploaded: int
    signatures: int  # signature and attestation manifests found for it (copied now or already there)

    @property
    def copied(self) -> bool:
        return bool(self.manifests_pushed or self.blobs_uploaded or self.blobs_mounted)


@dataclass(frozen=True)
class MirrorResult:
    target: str
    images: tuple[MirroredImage, ...]


@dataclass
class _Tally:
    manifests_pushed: int = 0
    blobs_uploaded: int = 0
    blobs_mounted: int = 0
    blobs_present: int = 0
    bytes_uploaded: int = 0
    signatures: int = 0


async def mirror_all(
    planned: Sequence[tuple[LockedImage, Repository]],
    client: RegistryClient,
    *,
    events: Events,
    progress: TransferProgress | None = None,
    chunk_size: int | None = None,
    source: ImageReader | None = None,
) -> tuple[MirroredImage, ...]:
    """Copy every planned entry to its destination, all concurrently; read from ``source`` (a bundle) if
    given, else from the entries' own registries. Every failure is raised, each naming its entry."""
    pusher = Pusher(client, chunk_size=chunk_size or CHUNK_SIZE)
    copier = _Copier(source or client, client, pusher, events, progress or NoProgress())
    copied, failures = await each_settled(
        {entry.name: copier.image(entry, destination) for entry, destination in planned}
    )
    raise_all(failures)
    return tuple(copied[entry.name] for entry, _ in planned)


class _Copier:
    """One mirror run: what was copied where, shared by every image so that nothing is copied twice."""

    def __init__(
        self, source: ImageReader, client: RegistryClient, pusher: Pusher, events: Events, progress: TransferProgress
    ) -> None:
        self._source = source
        self._client = client
        self._pusher = pusher
        self._events = events
        self._progress = progress
        self._manifests: dict[tuple[Repository, str], asyncio.Future[None]] = {}
        self._blobs: dict[tuple[Repository, str], asyncio.Future[None]] = {}
        self._homes: dict[tuple[str, str], asyncio.Future[Repository | None]] = {}  # (registry, digest) → first repo
        self._transfers = asyncio.Semaphore(MAX_TRANSFERS)

    async def image(self, entry: LockedImage, target: Repository) -> MirroredImage:
        """Copy one entry; a failure names the image and where it was going."""
        tally = _Tally()
        try:
            await self._copy_image(entry, target, tally)
        except ImagelockError as error:
            raise type(error)(f"[images.{entry.name}] mirroring to {target}: {error}") from None
        return MirroredImage(
            entry.name,
            entry.reference,
            f"{target}:{entry.tag}@{entry.digest}",
            tally.manifests_pushed,
            tally.blobs_uploaded,
            tally.blobs_mounted,
            tally.blobs_present,
            tally.bytes_uploaded,
            tally.signatures,
        )

    async def _copy_image(self, entry: LockedImage, target: Repository, tally: _Tally) -> None:
        source = parse_repository(entry.image)
        manifest = await self._source.get_manifest(source, entry.digest)
        await self._manifest(source, target, manifest, entry.tag, tally)
        subjects = dict.fromkeys([entry.digest, *entry.platforms.values()])
        await asyncio.gather(*(self._signatures(source, target, subject, tally) for subject in subjects))

    # -- manifests -------------------------------------------------------------------------------

    async def _manifest(
        self, source: Repository, target: Repository, manifest: Manifest, tag: str | None, tally: _Tally
    ) -> None:
        reference = tag or manifest.digest
        await once(
            self._manifests,
            (target, reference),
            lambda: self._copy_manifest(source, target, manifest, reference, tally),
        )

    async def _copy_manifest(
        self, source: Repository, target: Repository, manifest: Manifest, reference: str, tally: _Tally
    ) -> None:
        if await self._pusher.manifest_digest(target, reference) == manifest.digest:
            return
        if manifest.is_index:
            children = await asyncio.gather(
                *(self._source.get_manifest(source, child.digest) for child in manifest.children)
            )
            await asyncio.gather(*(self._manifest(source, target, child, None, tally) for child in children))
        else:
            await asyncio.gather(*(self._blob(source, target, blob, tally) for blob in blobs_of(manifest)))
        await self._pusher.put_manifest(target, reference, manifest)
        tally.manifests_pushed += 1

    async def _signatures(self, source: Repository, target: Repository, subject: str, tally: _Tally) -> None:
        """cosign's ``.sig`` / ``.att`` tags, then OCI referrers (and their ``sha256-<hex>`` tag index)."""
        found = await find_signatures(self._source, source, subject, self._events)
        for tag, signature in found.tagged:
            await self._manifest(source, target, signature, tag, tally)
        manifests = found.referrer_manifests
        await asyncio.gather(*(self._manifest(source, target, manifest, None, tally) for manifest in manifests))
        tally.signatures += len(found.tagged) + len(manifests)
        if not manifests:
            return
        if found.referrers_index is not None:
            await self._manifest(source, target, found.referrers_index, referrers_tag(subject), tally)
        elif not await self._pusher.has_referrers_api(target, subject):
            await self._referrers_tag(target, referrers_tag(subject), found.referrers, tally)

    async def _referrers_tag(
        self, target: Repository, tag: str, referrers: Sequence[Descriptor], tally: _Tally
    ) -> None:
        """The source has the referrers API, the target not: list them in the target's ``sha256-<hex>`` index."""
        listed: list[dict[str, object]] = []
        if await self._pusher.manifest_digest(target, tag) is not None:
            existing = await self._client.get_manifest(target, tag)
            if existing.is_index:  # parsed and checked already: "manifests" is a list of descriptors
                listed = [dict(item) for item in json.loads(existing.body)["manifests"]]
        known = {item.get("digest") for item in listed}
        added = [_descriptor_json(referrer) for referrer in referrers if referrer.digest not in known]
        if not added:
            return
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed + added}).encode()
        index = parse_manifest(
            body, content_type=OCI_INDEX, claimed_digest=None, expected_digest=sha256_digest(body), what=str(target)
        )
        await self._pusher.put_manifest(target, tag, index)
        tally.manifests_pushed += 1

    # -- blobs -----------------------------------------------------------------------------------

    async def _blob(self, source: Repository, target: Repository, blob: Descriptor, tally: _Tally) -> None:
        await once(self._blobs, (target, blob.digest), lambda: self._copy_blob(source, target, blob, tally))

    async def _copy_blob(self, source: Repository, target: Repository, blob: Descriptor, tally: _Tally) -> None:
        """Skip a blob the target has; mount one placed in another repository of it; else upload it."""
        key = (target.registry, blob.digest)
        home = self._homes.get(key)
        first = home is None
        if home is None:
            home = asyncio.get_running_loop().create_future()
            self._homes[key] = home
        placed: Repository | None = None
        try:
            if await self._pusher.blob_exists(target, blob.digest):
                tally.blobs_present += 1
            else:
                mount_from = None if first else await asyncio.shield(home)
                same_registry = self._source is self._client and source.registry == target.registry
                if mount_from is None and same_registry and source != target:
                    mount_from = source
                await self._place(source, target, blob, mount_from, tally)
            placed = target
        finally:
            if first:
                home.set_result(placed)

    async def _place(
        self, source: Repository, target: Repository, blob: Descriptor, mount_from: Repository | None, tally: _Tally
    ) -> None:
        async with self._transfers:
            opened = None
            if mount_from is not None:
                opened = await self._pusher.mount(target, blob.digest, mount_from)
                if opened is None:
                    tally.blobs_mounted += 1
                    return

            async def read(offset: int, length: int) -> bytes:
                return await self._source.get_blob_range(source, blob.digest, offset, length)

            self._progress.planned(blob.size)
            for session in range(1, UPLOAD_SESSIONS + 1):
                location = opened or await self._pusher.start_upload(target)  # a refused mount opened one
                opened = None
                confirmed = 0

                def progress(size: int) -> None:
                    nonlocal confirmed
                    confirmed += size
                    self._progress.transferred(size)

                try:
                    await self._pusher.upload(target, location, blob.digest, blob.size, read, progress)
                except RestartUploadError:
                    self._progress.transferred(-confirmed)
                    if session == UPLOAD_SESSIONS:
                        raise
                    continue
                tally.blobs_uploaded += 1
                tally.bytes_uploaded += blob.size
                return


@dataclass(frozen=True)
class FoundSignatures:
    """What signs or attests one digest in its repository."""

    tagged: tuple[tuple[str, Manifest], ...]  # cosign's sha256-<hex>.sig / .att, by tag
    referrers: tuple[Descriptor, ...]  # OCI referrers that are manifests
    referrer_manifests: tuple[Manifest, ...]
    referrers_index: Manifest | None  # the sha256-<hex> tag index listing them, where the source has one


async def find_signatures(reader: ImageReader, source: Repository, subject: str, events: Events) -> FoundSignatures:
    """cosign's ``.sig`` / ``.att`` tags, OCI referrers, and the ``sha256-<hex>`` index of referrers."""
    tagged = []
    for suffix in SIGNATURE_SUFFIXES:
        tag = referrers_tag(subject) + suffix
        try:
            tagged.append((tag, await reader.get_manifest(source, tag)))
        except NotFoundError:
            continue
    referrers = []
    for referrer in await reader.referrers(source, subject):
        if referrer.media_type in INDEX_TYPES or referrer.media_type in MANIFEST_TYPES:
            referrers.append(referrer)
        else:
            events.warning(f"{source}@{subject}: referrer {referrer.digest} ({referrer.media_type}) not copied")
    manifests = await asyncio.gather(*(reader.get_manifest(source, r.digest) for r in referrers))
    index: Manifest | None = None
    if referrers:
        try:
            index = await reader.get_manifest(source, referrers_tag(subject))
        except NotFoundError:
            index = None
    return FoundSignatures(
        tuple(tagged), tuple(referrers), tuple(manifests), index if index is not None and index.is_index else None
    )


def referrers_tag(subject: str) -> str:
    """``sha256:<hex>`` → ``sha256-<hex>``: the tag of the referrers index (and the stem of cosign's tags)."""
    algorithm, _, hexdigest = subject.partition(":")
    return f"{algorithm}-{hexdigest}"


def blobs_of(manifest: Manifest) -> list[Descriptor]:
    """The blobs an image manifest needs copied: its config and layers, but not foreign layers."""
    blobs = [manifest.config] if manifest.config is not None else []
    return blobs + [layer for layer in manifest.layers if layer.media_type not in _FOREIGN_LAYERS]


def _descriptor_json(descriptor: Descriptor) -> dict[str, object]:
    document: dict[str, object] = {
        "mediaType": descriptor.media_type,
        "digest": descriptor.digest,
        "size": descriptor.size,
    }
    if descriptor.artifact_type:
        document["artifactType"] = descriptor.artifact_type
    if descriptor.annotations:
        document["annotations"] = dict(descriptor.annotations)
    return document
