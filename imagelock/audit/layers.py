"""Reading an image's package databases out of its layers, streamed, never whole in memory or on disk.

Each layer blob is streamed from the registry (``RegistryClient.stream_blob``, digest checked as
it passes) into a pipe that a worker thread reads with ``tarfile`` in streaming mode: gzip, zstd
or plain tar, told apart by their first bytes. Only the members ``inventory.wanted`` names are
read; everything else is skipped as it streams by. Whiteouts (``.wh.<name>``, ``.wh..wh..opq``)
are recorded for ``inventory.merge``. What a layer holds is cached under its digest (layers are
immutable), so a second audit of the same image reads no layer.

A layer is untrusted data, and a few KiB of gzip can unpack to GiBs. tarfile reads a GNU long
name or link, or a pax header, whole into memory, and a sparse file's map too, so these are
bounded before tarfile reads them (``_LayerArchive``), and so is what a layer unpacks to
(``MAX_UNPACKED_BYTES``). A layer over a bound is a ``LayerError``. tarfile's list of every member
read is dropped as the stream goes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gzip
import json
import os
import posixpath
import tarfile
import tempfile
import threading
import zlib
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from imagelock._fastpath import cache_directory
from imagelock.audit.inventory import FileRecord, LayerContent, parse_file, wanted
from imagelock.errors import RegistryError

if TYPE_CHECKING:
    from imagelock.reference import Repository
    from imagelock.registry import ImageReader
    from imagelock.registry.manifests import Descriptor

CACHE_FORMAT = "layers-v1"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_PIPE_LIMIT = 1 << 20  # bytes waiting for the reader thread before the download waits
MAX_UNPACKED_BYTES = 16 << 30  # what one layer may unpack to; real layers rarely pass a few GiB
MAX_HEADER_BYTES = 1 << 20  # one GNU long name or link, or pax header: Go's archive/tar bound (docker, containerd)
MAX_HEADERS_PER_MEMBER = 8  # of those in front of one member; tar writers use at most four (pax g and x, GNU K and L)
_SPECIAL_HEADERS = {
    tarfile.GNUTYPE_LONGNAME: "GNU long name",
    tarfile.GNUTYPE_LONGLINK: "GNU long link",
    tarfile.XHDTYPE: "pax",
    tarfile.SOLARIS_XHDTYPE: "pax",
    tarfile.XGLTYPE: "pax global",
}


class LayerError(RegistryError):
    """A layer that cannot be read as a tar archive (exit 3: the data cannot be had)."""


def cache_dir(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """``$IMAGELOCK_CACHE_DIR``, else ``$XDG_CACHE_HOME/imagelock``, else ``~/.cache/imagelock``."""
    return Path(cache_directory(os.environ if environ is None else environ))


@dataclass(frozen=True)
class LayerCache:
    """What each layer holds, by digest, as JSON files under ``root``; None disables the cache."""

    root: Path | None

    def _path(self, digest: str) -> Path | None:
        if self.root is None:
            return None
        algorithm, _, hexdigest = digest.partition(":")
        return self.root / CACHE_FORMAT / algorithm / f"{hexdigest}.json"

    def get(self, digest: str) -> LayerContent | None:
        path = self._path(digest)
        if path is None:
            return None
        try:
            return LayerContent.from_json(json.loads(path.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # absent or unreadable: the layer is read again

    def put(self, digest: str, content: LayerContent) -> None:
        path = self._path(digest)
        if path is None:
            return
        with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(prefix=".layer.", dir=path.parent)
            try:
                with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                    json.dump(content.to_json(), handle, separators=(",", ":"))
                os.replace(temporary, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise


# -- the tar side (a worker thread) ------------------------------------------------------------------


def _normalise(name: str) -> str | None:
    path = posixpath.normpath("/" + name).lstrip("/")
    return path or None


def scan_tar(stream: IO[bytes], max_unpacked_bytes: int = MAX_UNPACKED_BYTES) -> LayerContent:
    """The wanted files and the whiteouts of one layer, read from ``stream`` front to back once."""
    head = stream.read(4)
    source: Any = _Prefixed(head, stream)
    errors: tuple[type[Exception], ...] = (tarfile.TarError, zlib.error, EOFError, OSError, ValueError)
    if head.startswith(_GZIP_MAGIC):
        source = gzip.GzipFile(fileobj=source, mode="rb")
    elif head.startswith(_ZSTD_MAGIC):
        import zstandard

        source = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
        errors += (zstandard.ZstdError,)
    source = _Unpacked(source, max_unpacked_bytes)
    files: dict[str, FileRecord] = {}
    whiteouts: set[str] = set()
    opaque: set[str] = set()
    try:
        with _LayerArchive.open(fileobj=source, mode="r|") as archive:
            for member in iter(archive.next, None):
                path = _normalise(member.name)
                if path is None:
                    continue
                directory, base = posixpath.split(path)
                if base == ".wh..wh..opq":
                    opaque.add(directory)
                    continue
                if base.startswith(".wh."):
                    whiteouts.add(posixpath.join(directory, base[4:]))
                    continue
                limit = wanted(path)
                if not limit:
                    continue
                record = _record(archive, member, path, limit, files)
                if record is not None:
                    files[path] = record
    except errors as error:
        raise LayerError(f"not a readable layer archive ({type(error).__name__}: {error})") from None
    return LayerContent(files, frozenset(whiteouts), frozenset(opaque))


def _record(
    archive: tarfile.TarFile, member: tarfile.TarInfo, path: str, limit: int, files: dict[str, FileRecord]
) -> FileRecord | None:
    if member.issym():
        return FileRecord("link", fields={"target": member.linkname})
    if member.islnk():  # a hard link to a file earlier in this layer
        target = _normalise(member.linkname)
        return files.get(target) if target is not None else None
    if not member.isfile():
        return None
    if member.size > limit:
        return FileRecord("skipped", fields={"reason": f"larger than {limit} bytes"})
    handle = archive.extractfile(member)
    if handle is None:
        return None
    # A file that says nothing usable still hides the one below it.
    return parse_file(path, handle.read()) or FileRecord("empty")


def _size(count: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if count >= 1 << shift and count % (1 << shift) == 0:
            return f"{count >> shift} {unit}"
    return f"{count} bytes"


class _Member(tarfile.TarInfo):
    """A member as ``_LayerArchive`` reads it: each header is checked before tarfile reads what it announces."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        assert isinstance(archive, _LayerArchive)
        archive.check_header(self)
        member: tarfile.TarInfo = super()._proc_member(archive)  # type: ignore[misc]  # tarfile's hook, not in typeshed
        return member

    def _refuse_sparse(self, *_: object) -> NoReturn:
        # tarfile holds a sparse file's map whole, and its length has no bound; no image builder writes one.
        raise LayerError("a sparse file (GNU tar --sparse), which imagelock does not read")

    # tarfile's readers of GNU tar's sparse formats: the old one and pax versions 0.0, 0.1 and 1.0.
    _proc_sparse = _proc_gnusparse_00 = _proc_gnusparse_01 = _proc_gnusparse_10 = _refuse_sparse


class _LayerArchive(tarfile.TarFile):
    """``tarfile`` reading a layer, with a bound on what it reads in front of each member and holds on to."""

    tarinfo = _Member
    members: list[tarfile.TarInfo]  # tarfile's own attribute, missing from typeshed
    special_headers = 0  # GNU long names and links and pax headers read in front of the member being read
    global_header_bytes = 0

    def check_header(self, header: tarfile.TarInfo) -> None:
        """Refuse a GNU long name or link, or a pax header, too large or one too many, before tarfile reads it."""
        what = _SPECIAL_HEADERS.get(header.type)
        if what is None:  # the member the headers before it were about
            self.special_headers = 0
            return
        self.special_headers += 1
        if header.size > MAX_HEADER_BYTES:
            raise LayerError(f"a {what} header of {header.size} bytes, over the {_size(MAX_HEADER_BYTES)} bound")
        if self.special_headers > MAX_HEADERS_PER_MEMBER:
            raise LayerError(f"more than {MAX_HEADERS_PER_MEMBER} GNU or pax headers in front of one member")
        if header.type == tarfile.XGLTYPE:  # global headers add up: tarfile keeps them all for the whole archive
            self.global_header_bytes += header.size
            if self.global_header_bytes > MAX_HEADER_BYTES:
                raise LayerError(f"pax global headers of more than {_size(MAX_HEADER_BYTES)} together")

    def next(self) -> tarfile.TarInfo | None:
        member = super().next()
        self.members.clear()  # tarfile keeps every member it read; reading a stream, nothing looks back
        return member


class _Unpacked:
    """A layer's decompressed bytes, refused past ``limit``, and past their end."""

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._count = 0
        self._ended = False

    def read(self, size: int) -> bytes:
        data: bytes = self._stream.read(size)
        if size and not data:
            # tarfile skips a member by reading on, even past the end: a member that says it is 2**80 bytes
            # long would never be skipped.
            if self._ended:
                raise LayerError("ends inside a member")
            self._ended = True
        self._count += len(data)
        if self._count > self._limit:
            raise LayerError(f"unpacks to more than {_size(self._limit)}")
        return data


class _Prefixed:
    """A readable stream with a few already-read bytes put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._rest.read(size)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


class _AbortedError(Exception):
    """The download failed: the reader thread stops."""


class Pipe:
    """Bytes from the event loop to one reader thread, a bounded amount at a time.

    ``feed`` (on the loop) waits while ``limit`` bytes are unread; ``read`` (in the thread) blocks
    until bytes or the end arrive. Once the reader is done, what is still fed is dropped, so that
    the download runs to its end and its digest can be checked.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = _PIPE_LIMIT) -> None:
        self._loop = loop
        self._limit = limit
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._ended = False
        self._failed = False
        self._reader_done = False
        self._condition = threading.Condition()
        self._space = asyncio.Event()

    async def feed(self, chunk: bytes) -> None:
        while True:
            with self._condition:
                if self._reader_done:
                    return
                if self._size < self._limit:
                    self._chunks.append(chunk)
                    self._size += len(chunk)
                    self._condition.notify_all()
                    return
                self._space.clear()
            await self._space.wait()

    def end(self, *, failed: bool = False) -> None:
        with self._condition:
            self._ended = True
            self._failed = failed
            self._condition.notify_all()

    def read(self, size: int = -1) -> bytes:
        with self._condition:
            while not self._chunks and not self._ended:
                self._condition.wait()
            if self._failed:
                raise _AbortedError
            if not self._chunks:
                return b""
            parts: list[bytes] = []
            wanted_bytes = size if size >= 0 else self._size
            while self._chunks and wanted_bytes > 0:
                chunk = self._chunks.popleft()
                if len(chunk) > wanted_bytes:
                    self._chunks.appendleft(chunk[wanted_bytes:])
                    chunk = chunk[:wanted_bytes]
                parts.append(chunk)
                wanted_bytes -= len(chunk)
                self._size -= len(chunk)
            self._loop.call_soon_threadsafe(self._space.set)
            return b"".join(parts)

    def reader_done(self) -> None:
        with self._condition:
            self._reader_done = True
            self._chunks.clear()
            self._size = 0
        self._loop.call_soon_threadsafe(self._space.set)

    def readable(self) -> bool:
        return True


def _scan_pipe(pipe: Pipe, max_unpacked_bytes: int) -> LayerContent:
    try:
        return scan_tar(pipe, max_unpacked_bytes)  # type: ignore[arg-type]  # read() is all tarfile's stream mode uses
    finally:
        pipe.reader_done()


# -- the registry side (the event loop) --------------------------------------------------------------


async def read_layer(
    client: ImageReader,
    repository: Repository,
    layer: Descriptor,
    executor: Executor | None = None,
    max_unpacked_bytes: int = MAX_UNPACKED_BYTES,
) -> LayerContent:
    """What one layer holds: streamed from the registry through a worker thread's tar reader."""
    loop = asyncio.get_running_loop()
    pipe = Pipe(loop)
    scanning = loop.run_in_executor(executor, _scan_pipe, pipe, max_unpacked_bytes)
    try:
        await client.stream_blob(repository, layer.digest, pipe.feed, max_bytes=layer.size)
    except BaseException:
        pipe.end(failed=True)
        with contextlib.suppress(Exception):
            await scanning
        raise
    pipe.end()
    try:
        return await scanning
    except LayerError as error:
        raise LayerError(f"{repository}@{layer.digest}: {error}") from None


def is_layer(layer: Descriptor) -> bool:
    """A filesystem layer (tar, gzip or zstd; Docker or OCI), not a foreign or artifact blob."""
    media_type = layer.media_type
    foreign = "nondistributable" in media_type or "foreign" in media_type
    return ("tar" in media_type or "rootfs.diff" in media_type) and not foreign
