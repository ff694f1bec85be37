"""Air-gapped bundles: locked images in an OCI image layout, a directory or a ``.tar`` of one.

``write_bundle`` copies each locked image whole (index, platform and attestation manifests, blobs,
cosign signatures and attestations, OCI referrers) from its registry into the layout, with the lock
beside ``index.json``. ``index.json`` names each image by its entry name
(``org.opencontainers.image.ref.name``, what ``skopeo … oci:DIR:NAME`` looks up) and its full
reference (``io.containerd.image.name``); signatures and referrers are listed by their repository
and tag (``repo:sha256-<hex>.sig``) or digest, so that the far side knows where each belongs.

``BundleReader`` reads a layout (ours or another tool's) through the same surface as the registry
client (``ImageReader``), so the mirror (``load``), trust checks (``verify --bundle``) and the audit
read a bundle as they read a registry. Every blob is checked against its digest as it is read;
``check_integrity`` reads every blob the layout references before anything is pushed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tarfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Protocol

from imagelock.errors import (
    EXIT_REGISTRY,
    ImagelockError,
    InputError,
    InvalidReferenceError,
    NotFoundError,
    RegistryError,
)
from imagelock.events import Events
from imagelock.lockfile import Lock, LockedImage, parse_lock, write_atomic
from imagelock.mirror import MAX_TRANSFERS, NoProgress, TransferProgress, blobs_of, find_signatures, referrers_tag
from imagelock.reference import Repository, is_valid_digest, parse_reference, parse_repository
from imagelock.registry.client import MAX_MANIFEST_BYTES, RegistryClient
from imagelock.registry.manifests import INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX, Descriptor, Manifest, parse_manifest
from imagelock.registry.reader import image_platforms
from imagelock.registry.transport import Sink
from imagelock.trust import SignatureError, TrustPolicy
from imagelock.untrusted import load_json
from imagelock.verification import Verification, verify_entry

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
LOCK_FILE = "images.lock"
REF_NAME = "org.opencontainers.image.ref.name"
IMAGE_NAME = "io.containerd.image.name"
LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'
MAX_INDEX_BYTES = 16 << 20
READ_SIZE = 1 << 20
_TAR_BLOCK = 512


class BundleError(ImagelockError):
    """A bundle that is unreadable, truncated, tampered with, or does not hold what its lock says (exit 3)."""

    exit_code = EXIT_REGISTRY


# -- reading ---------------------------------------------------------------------------------------


class _Store(Protocol):
    """The files of a layout: a directory, or the members of a tar."""

    def size(self, name: str) -> int | None: ...

    def read(self, name: str, offset: int, length: int) -> bytes: ...

    def close(self) -> None: ...


class _DirectoryStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    def size(self, name: str) -> int | None:
        path = self._root / name
        try:
            return path.stat().st_size if path.is_file() else None
        except OSError as error:
            raise _unreadable(path, error) from None

    def read(self, name: str, offset: int, length: int) -> bytes:
        try:
            with (self._root / name).open("rb") as handle:
                handle.seek(offset)
                return handle.read(length)
        except OSError as error:
            raise _unreadable(self._root / name, error) from None

    def close(self) -> None:
        pass


class _TarStore:
    """A tar's regular members, read in place (never extracted)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            self._handle: BinaryIO = path.open("rb")
        except OSError as error:
            raise _unreadable(path, error) from None
        self._members: dict[str, tuple[int, int]] = {}
        try:
            with tarfile.open(fileobj=self._handle, mode="r:") as archive:
                for member in archive:
                    if member.isfile():
                        self._members[_normal_name(member.name)] = (member.offset_data, member.size)
        except (tarfile.TarError, EOFError) as error:
            if not self._members:
                self._handle.close()
                raise BundleError(f"{path}: not a readable tar ({error})") from None
            # a truncated tar: the members before the cut are still there, and what is missing is named later

    def size(self, name: str) -> int | None:
        member = self._members.get(name)
        return member[1] if member else None

    def read(self, name: str, offset: int, length: int) -> bytes:
        start, size = self._members[name]
        try:
            self._handle.seek(start + offset)
            return self._handle.read(max(0, min(length, size - offset)))
        except OSError as error:
            raise _unreadable(self._path, error) from None

    def close(self) -> None:
        self._handle.close()


def _unreadable(path: Path, error: OSError) -> BundleError:
    return BundleError(f"{path}: cannot read: {error.strerror or error}")


def _normal_name(name: str) -> str:
    return name.removeprefix("./").lstrip("/")


def _blob_name(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


class BundleReader:
    """A bundle read like a registry; blobs are shared by every repository in it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_dir():
            self._store: _Store = _DirectoryStore(path)
        elif path.is_file():
            self._store = _TarStore(path)
        else:
            raise InputError(f"{path}: no such bundle (a directory or a .tar)")
        try:
            if self._store.size(LAYOUT_FILE) is None or self._store.size(INDEX_FILE) is None:
                raise BundleError(f"{path}: not an OCI image layout (no {LAYOUT_FILE} or {INDEX_FILE})")
            self.index = self._read_index()
            self.lock = self._read_lock()
        except BaseException:
            self._store.close()
            raise
        self.images: dict[str, Descriptor] = {}  # entry name → its descriptor
        self._tags: dict[tuple[Repository, str], str] = {}
        self._referrers: dict[Repository, list[Descriptor]] = {}
        self._media_types: dict[str, str] = {}
        for descriptor in self.index.children:
            self._media_types[descriptor.digest] = descriptor.media_type
            name = descriptor.annotations.get(REF_NAME)
            if name:
                self.images[name] = descriptor
            self._name(descriptor)
        for entry in self.lock.images.values() if self.lock else ():
            if entry.name in self.images:
                self._tags.setdefault((parse_repository(entry.image), entry.tag), self.images[entry.name].digest)

    def _name(self, descriptor: Descriptor) -> None:
        """``repo:tag`` → a tag of that repository; ``repo@digest`` → a referrer there."""
        full = descriptor.annotations.get(IMAGE_NAME)
        if not full:
            return
        try:
            reference = parse_reference(full)
        except InvalidReferenceError:
            return
        if reference.tag is not None:
            self._tags[(reference.repository, reference.tag)] = descriptor.digest
        elif reference.digest == descriptor.digest:
            self._referrers.setdefault(reference.repository, []).append(descriptor)

    def _read_index(self) -> Manifest:
        body = self._read_file(INDEX_FILE, MAX_INDEX_BYTES)
        return parse_manifest(
            body, content_type=OCI_INDEX, claimed_digest=None, expected_digest=None, what=f"{self.path}: {INDEX_FILE}"
        )

    def _read_lock(self) -> Lock | None:
        if self._store.size(LOCK_FILE) is None:
            return None
        text = self._read_file(LOCK_FILE, MAX_INDEX_BYTES).decode("utf-8", errors="replace")
        try:
            return parse_lock(text, self.path / LOCK_FILE)
        except InputError as error:
            raise BundleError(f"{self.path}: the lock inside is unreadable: {error}") from None

    def _read_file(self, name: str, max_bytes: int) -> bytes:
        size = self._store.size(name) or 0
        if size > max_bytes:
            raise BundleError(f"{self.path}: {name} is larger than {max_bytes >> 20} MiB")
        return self._store.read(name, 0, size)

    def close(self) -> None:
        self._store.close()

    # -- blobs -----------------------------------------------------------------------------------

    def _blob_size(self, digest: str) -> int:
        if not is_valid_digest(digest) or not digest.startswith("sha256:"):
            raise BundleError(f"{self.path}: invalid digest {digest!r}")
        size = self._store.size(_blob_name(digest))
        if size is None:
            raise BundleError(f"{self.path}: blob {digest} is missing")
        return size

    async def _chunks(self, digest: str, sink: Callable[[bytes], Awaitable[None]], expected_size: int | None) -> int:
        """Hand the blob on chunk by chunk, then check its size and digest (BundleError naming it)."""
        size = self._blob_size(digest)
        if expected_size is not None and size != expected_size:
            raise BundleError(f"{self.path}: blob {digest} is {size} bytes, not {expected_size} (truncated?)")
        hasher = hashlib.sha256()
        offset = 0
        while offset < size:
            chunk = self._store.read(_blob_name(digest), offset, min(READ_SIZE, size - offset))
            if not chunk:
                raise BundleError(f"{self.path}: blob {digest} is truncated at {offset} of {size} bytes")
            hasher.update(chunk)
            offset += len(chunk)
            await sink(chunk)
        if f"sha256:{hasher.hexdigest()}" != digest:
            raise BundleError(f"{self.path}: blob {digest} does not match its digest (tampered or corrupt)")
        return size

    async def check_blob(self, digest: str, size: int | None = None) -> None:
        async def discard(chunk: bytes) -> None:
            pass

        await self._chunks(digest, discard, size)

    async def get_blob(self, repository: Repository, digest: str, *, max_bytes: int) -> bytes:
        if self._blob_size(digest) > max_bytes:
            raise BundleError(f"{self.path}: blob {digest} is larger than {max_bytes} bytes")
        chunks: list[bytes] = []

        async def keep(chunk: bytes) -> None:
            chunks.append(chunk)

        await self._chunks(digest, keep, None)
        return b"".join(chunks)

    async def stream_blob(self, repository: Repository, digest: str, sink: Sink, *, max_bytes: int) -> int:
        if self._blob_size(digest) > max_bytes:
            raise BundleError(f"{self.path}: blob {digest} is larger than {max_bytes} bytes")
        return await self._chunks(digest, sink, None)

    async def get_blob_range(self, repository: Repository, digest: str, start: int, length: int) -> bytes:
        self._blob_size(digest)
        piece = self._store.read(_blob_name(digest), start, length)
        if len(piece) != length:
            raise BundleError(f"{self.path}: blob {digest} is truncated at {start + len(piece)} bytes")
        return piece

    # -- manifests -------------------------------------------------------------------------------

    def _digest(self, repository: Repository, reference: str) -> str:
        digest = reference if is_valid_digest(reference) else self._tags.get((repository, reference))
        if digest is None or self._store.size(_blob_name(digest)) is None:
            raise NotFoundError(f"{self.path}: no {repository}{'@' if digest else ':'}{reference} in the bundle")
        return digest

    async def get_manifest(self, repository: Repository, reference: str) -> Manifest:
        digest = self._digest(repository, reference)
        body = await self.get_blob(repository, digest, max_bytes=MAX_MANIFEST_BYTES)
        manifest = parse_manifest(
            body,
            content_type=self._media_types.get(digest),
            claimed_digest=None,
            expected_digest=digest,
            what=f"{self.path}: {repository}@{digest}",
        )
        for child in manifest.children:
            self._media_types.setdefault(child.digest, child.media_type)
        return manifest

    async def head_manifest(self, repository: Repository, reference: str) -> str | None:
        return self._digest(repository, reference)

    async def referrers(self, repository: Repository, digest: str) -> tuple[Descriptor, ...]:
        found = []
        for descriptor in self._referrers.get(repository, []):
            document = load_json(await self.get_blob(repository, descriptor.digest, max_bytes=MAX_MANIFEST_BYTES))
            subject = document.get("subject") if isinstance(document, dict) else None
            if isinstance(subject, dict) and subject.get("digest") == digest:
                found.append(descriptor)
        return tuple(found)

    async def trust_metadata(
        self, trust_repository: Repository, role: str, *, version: int | None = None, max_bytes: int
    ) -> bytes:
        raise SignatureError("Docker Content Trust is checked against its notary server; a bundle cannot carry it")

    async def platforms(self, repository: Repository, manifest: Manifest) -> dict[str, str]:
        return await image_platforms(self, repository, manifest)

    # -- checks ----------------------------------------------------------------------------------

    def locked_image(self, entry: LockedImage) -> Descriptor:
        """The bundle's descriptor of a locked entry; BundleError when it is absent or another digest."""
        descriptor = self.images.get(entry.name)
        if descriptor is None:
            raise BundleError(f"{self.path}: [images.{entry.name}] is not in the bundle")
        if descriptor.digest != entry.digest:
            raise BundleError(
                f"{self.path}: [images.{entry.name}] is {descriptor.digest} in the bundle, {entry.digest} in the lock"
            )
        return descriptor

    async def check_integrity(self) -> int:
        """Read every manifest and blob ``index.json`` reaches, checking sizes and digests; how many."""
        seen: set[str] = set()
        repository = Repository("bundle", "bundle")  # blobs are not per repository here

        async def visit(descriptor: Descriptor) -> None:
            if descriptor.digest in seen:
                return
            seen.add(descriptor.digest)
            await self.check_blob(descriptor.digest, descriptor.size)
            if descriptor.media_type not in INDEX_TYPES and descriptor.media_type not in MANIFEST_TYPES:
                return
            manifest = await self.get_manifest(repository, descriptor.digest)
            for child in manifest.children:
                await visit(child)
            for blob in blobs_of(manifest):
                await visit(blob)

        for descriptor in self.index.children:
            await visit(descriptor)
        return len(seen)


def open_bundle(path: Path) -> BundleReader:
    return BundleReader(path)


async def verify_bundle(
    reader: BundleReader, entries: Sequence[LockedImage], policies: Mapping[str, TrustPolicy | None]
) -> list[Verification]:
    """Offline: the bundle is intact (else BundleError) and holds exactly the locked entries, every platform
    and digest, with signatures that satisfy each entry's trust policy."""
    await reader.check_integrity()
    results = []
    for entry in entries:
        descriptor = reader.images.get(entry.name)
        if descriptor is None or descriptor.digest != entry.digest:
            problem = "not in the bundle" if descriptor is None else f"the bundle has {descriptor.digest}"
            results.append(Verification(entry.name, entry.reference, (problem,)))
        else:
            results.append(await verify_entry(entry, reader, policies.get(entry.name)))
    locked = {entry.name for entry in entries}
    for name, descriptor in sorted(reader.images.items()):
        if name not in locked:
            reference = descriptor.annotations.get(IMAGE_NAME, name)
            results.append(Verification(name, reference, ("in the bundle, not in the lock",)))
    return results


# -- writing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BundledImage:
    name: str
    reference: str  # image:tag@digest as locked
    signatures: int  # signature, attestation and referrer manifests carried with it


@dataclass(frozen=True)
class BundleResult:
    path: str
    images: tuple[BundledImage, ...]
    blobs_written: int
    blobs_present: int  # already in the bundle (a re-run adds only what is missing)
    bytes_written: int


@dataclass
class _Contents:
    """What the bundle will hold: index.json's entries, every manifest, every blob and where to get it."""

    roots: list[dict[str, object]]
    manifests: dict[str, Manifest]
    blobs: dict[str, tuple[Descriptor, Repository]]


async def write_bundle(
    entries: Sequence[LockedImage],
    lock: Lock,
    out: Path,
    client: RegistryClient,
    *,
    events: Events,
    progress: TransferProgress | None = None,
) -> BundleResult:
    """Write ``entries`` (with ``lock`` restricted to them inside) as an OCI layout at ``out``."""
    writer: _Writer = _TarWriter(out) if out.suffix == ".tar" else _DirectoryWriter(out)  # refuses a bad OUT first
    contents = _Contents([], {}, {})
    images = [await _collect(entry, client, events, contents) for entry in entries]
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": contents.roots}, indent=2).encode()
    inside = replace(lock, images={entry.name: entry for entry in entries}).dumps().encode()
    try:
        tally = await writer.write(contents, index, inside, client, progress or NoProgress())
    except OSError as error:
        raise InputError(f"{out}: cannot write: {error.strerror or error}") from None
    return BundleResult(str(out), tuple(images), *tally)


async def _collect(entry: LockedImage, client: RegistryClient, events: Events, contents: _Contents) -> BundledImage:
    source = parse_repository(entry.image)
    try:
        manifest = await client.get_manifest(source, entry.digest)
        await _walk(client, source, manifest, contents)
        contents.roots.append(_root(manifest, {REF_NAME: entry.name, IMAGE_NAME: f"{entry.image}:{entry.tag}"}, None))
        signatures = 0
        for subject in dict.fromkeys([entry.digest, *entry.platforms.values()]):
            found = await find_signatures(client, source, subject, events)
            for tag, signature in found.tagged:
                await _walk(client, source, signature, contents)
                contents.roots.append(_root(signature, {IMAGE_NAME: f"{source}:{tag}"}, None))
            for descriptor, referrer in zip(found.referrers, found.referrer_manifests, strict=True):
                await _walk(client, source, referrer, contents)
                contents.roots.append(_root(referrer, {IMAGE_NAME: f"{source}@{referrer.digest}"}, descriptor))
            if found.referrers_index is not None:
                await _walk(client, source, found.referrers_index, contents)
                name = f"{source}:{referrers_tag(subject)}"
                contents.roots.append(_root(found.referrers_index, {IMAGE_NAME: name}, None))
            signatures += len(found.tagged) + len(found.referrer_manifests)
    except ImagelockError as error:
        raise type(error)(f"[images.{entry.name}] bundling: {error}") from None
    return BundledImage(entry.name, entry.reference, signatures)


async def _walk(client: RegistryClient, source: Repository, manifest: Manifest, contents: _Contents) -> None:
    if manifest.digest in contents.manifests:
        return
    contents.manifests[manifest.digest] = manifest
    if manifest.is_index:
        children = await asyncio.gather(*(client.get_manifest(source, child.digest) for child in manifest.children))
        for child in children:
            await _walk(client, source, child, contents)
    for blob in blobs_of(manifest):
        contents.blobs.setdefault(blob.digest, (blob, source))


def _root(manifest: Manifest, annotations: Mapping[str, str], listed: Descriptor | None) -> dict[str, object]:
    """An entry of index.json; a referrer keeps its artifactType and annotations."""
    document: dict[str, object] = {
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": len(manifest.body),
    }
    if listed is not None and listed.artifact_type:
        document["artifactType"] = listed.artifact_type
    document["annotations"] = {**(listed.annotations if listed else {}), **annotations}
    return document


class _Writer(Protocol):
    async def write(
        self, contents: _Contents, index: bytes, lock: bytes, client: RegistryClient, progress: TransferProgress
    ) -> tuple[int, int, int]:
        """Write everything; (blobs written, blobs already there, bytes written)."""


class _DirectoryWriter:
    """Blobs land under a temporary name and are renamed once their digest checked; index.json last."""

    def __init__(self, root: Path) -> None:
        self._root = root
        if root.exists() and not root.is_dir():
            raise InputError(f"{root}: exists and is not a directory (a bundle is a directory or a .tar file)")
        if root.is_dir() and any(root.iterdir()) and not (root / LAYOUT_FILE).is_file():
            raise InputError(f"{root}: a directory that is not an OCI layout; give an empty or new directory")

    async def write(
        self, contents: _Contents, index: bytes, lock: bytes, client: RegistryClient, progress: TransferProgress
    ) -> tuple[int, int, int]:
        blobs = self._root / "blobs" / "sha256"
        try:
            blobs.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(f"{self._root}: cannot create: {error.strerror}") from None
        written = present = size = 0
        for manifest in contents.manifests.values():
            if self._has(manifest.digest, len(manifest.body)):
                present += 1
            else:
                self._put(manifest.digest, [manifest.body])
                written, size = written + 1, size + len(manifest.body)
        missing = []
        for descriptor, source in contents.blobs.values():
            if self._has(descriptor.digest, descriptor.size):
                present += 1
            else:
                missing.append((descriptor, source))
                progress.planned(descriptor.size)
        transfers = asyncio.Semaphore(MAX_TRANSFERS)

        async def fetch(descriptor: Descriptor, source: Repository) -> None:
            async with transfers:
                await self._fetch(descriptor, source, client, progress)

        await asyncio.gather(*(fetch(descriptor, source) for descriptor, source in missing))
        written += len(missing)
        size += sum(descriptor.size for descriptor, _ in missing)
        (self._root / LAYOUT_FILE).write_bytes(LAYOUT_VERSION)
        write_atomic(self._root / LOCK_FILE, lock.decode())
        write_atomic(self._root / INDEX_FILE, index.decode())
        return written, present, size

    def _path(self, digest: str) -> Path:
        return self._root / _blob_name(digest)

    def _has(self, digest: str, size: int) -> bool:
        path = self._path(digest)
        return path.is_file() and path.stat().st_size == size

    def _put(self, digest: str, chunks: Sequence[bytes]) -> None:
        partial = self._path(digest).with_suffix(".partial")
        partial.write_bytes(b"".join(chunks))
        partial.replace(self._path(digest))

    async def _fetch(
        self, descriptor: Descriptor, source: Repository, client: RegistryClient, progress: TransferProgress
    ) -> None:
        partial = self._path(descriptor.digest).with_suffix(".partial")
        with partial.open("wb") as handle:

            async def sink(chunk: bytes) -> None:
                handle.write(chunk)
                progress.transferred(len(chunk))

            try:
                size = await client.stream_blob(source, descriptor.digest, sink, max_bytes=descriptor.size)
            except BaseException:
                handle.close()
                partial.unlink(missing_ok=True)
                raise
        if size != descriptor.size:
            partial.unlink(missing_ok=True)
            raise RegistryError(f"{source}@{descriptor.digest}: {size} bytes, the manifest says {descriptor.size}")
        partial.replace(self._path(descriptor.digest))


class _TarWriter:
    """Streams the layout into ``OUT.tar.partial``, renamed to ``OUT.tar`` when complete.

    oci-layout, index.json and the lock come first, so that a tar cut short still says what it should
    hold and the check names the first blob missing. Blobs an earlier bundle at ``OUT.tar`` holds are
    copied from it (digest checked) rather than fetched again.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        if path.exists() and not path.is_file():
            raise InputError(f"{path}: exists and is not a file")

    async def write(
        self, contents: _Contents, index: bytes, lock: bytes, client: RegistryClient, progress: TransferProgress
    ) -> tuple[int, int, int]:
        previous = self._previous()
        partial = self._path.with_name(self._path.name + ".partial")
        written = present = size = 0
        try:
            with partial.open("wb") as handle:
                for name, body in ((LAYOUT_FILE, LAYOUT_VERSION), (INDEX_FILE, index), (LOCK_FILE, lock)):
                    _add(handle, name, body)
                for manifest in contents.manifests.values():
                    _add(handle, _blob_name(manifest.digest), manifest.body)
                    if await _holds(previous, manifest.digest, len(manifest.body)):
                        present += 1
                    else:
                        written, size = written + 1, size + len(manifest.body)
                reusable = set()
                for descriptor, _ in contents.blobs.values():
                    if await _holds(previous, descriptor.digest, descriptor.size):
                        reusable.add(descriptor.digest)
                    else:
                        progress.planned(descriptor.size)
                for descriptor, source in contents.blobs.values():
                    sink = _start_member(handle, _blob_name(descriptor.digest), descriptor.size)
                    if previous is not None and descriptor.digest in reusable:
                        await previous.stream_blob(source, descriptor.digest, sink, max_bytes=descriptor.size)
                        _pad(handle, descriptor.size)
                        present += 1
                        continue

                    async def counted(chunk: bytes, sink: Sink = sink) -> None:
                        await sink(chunk)
                        progress.transferred(len(chunk))

                    got = await client.stream_blob(source, descriptor.digest, counted, max_bytes=descriptor.size)
                    if got != descriptor.size:
                        raise RegistryError(
                            f"{source}@{descriptor.digest}: {got} bytes, the manifest says {descriptor.size}"
                        )
                    _pad(handle, descriptor.size)
                    written, size = written + 1, size + descriptor.size
                handle.write(b"\0" * (2 * _TAR_BLOCK))
            partial.replace(self._path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            if previous is not None:
                previous.close()
        return written, present, size

    def _previous(self) -> BundleReader | None:
        if not self._path.is_file():
            return None
        try:
            return BundleReader(self._path)
        except ImagelockError:
            return None  # not a bundle we can read: written anew


async def _holds(previous: BundleReader | None, digest: str, size: int) -> bool:
    """Whether the earlier bundle holds this blob intact (it is then copied, not fetched again)."""
    if previous is None:
        return False
    try:
        await previous.check_blob(digest, size)
    except BundleError:
        return False
    return True


def _add(handle: BinaryIO, name: str, body: bytes) -> None:
    handle.write(_header(name, len(body)))
    handle.write(body)
    _pad(handle, len(body))


def _start_member(handle: BinaryIO, name: str, size: int) -> Sink:
    """Write a member's header; the returned sink takes its bytes (the caller pads after the last)."""
    handle.write(_header(name, size))

    async def sink(chunk: bytes) -> None:
        handle.write(chunk)

    return sink


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _pad(handle: BinaryIO, size: int) -> None:
    handle.write(b"\0" * (-size % _TAR_BLOCK))
