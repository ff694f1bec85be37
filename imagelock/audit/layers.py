"""Reading an image's package databases out of its layers, streamed, never whole in memory or on disk.

Each layer blob is streamed from the registry (``RegistryClient.stream_blob``, digest checked as
it passes) into a pipe that a worker thread reads with ``tarfile`` in streaming mode: gzip, zstd
or plain tar, told apart by their first bytes. Only the members ``inventory.wanted`` names are
read; everything else is skipped as it streams by. Whiteouts (``.wh.<name>``, ``.wh..wh..opq``)
are recorded for ``inventory.merge``. What a layer holds is cached under its digest (layers are
immutable), so a second audit of the same image reads no layer.
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
from typing import IO, TYPE_CHECKING, Any

from imagelock.audit.inventory import FileRecord, LayerContent, parse_file, wanted
from imagelock.errors import RegistryError

if TYPE_CHECKING:
    from imagelock.reference import Repository
    from imagelock.registry import RegistryClient
    from imagelock.registry.manifests import Descriptor

CACHE_ENV = "IMAGELOCK_CACHE_DIR"
CACHE_FORMAT = "layers-v1"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_PIPE_LIMIT = 1 << 20  # bytes waiting for the reader thread before the download waits


class LayerError(RegistryError):
    """A layer that cannot be read as a tar archive (exit 3: the data cannot be had)."""


def cache_dir(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """``$IMAGELOCK_CACHE_DIR``, else ``$XDG_CACHE_HOME/imagelock``, else ``~/.cache/imagelock``."""
    environ = os.environ if environ is None else environ
    if environ.get(CACHE_ENV):
        return Path(environ[CACHE_ENV])
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imagelock"


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


def scan_tar(stream: IO[bytes]) -> LayerContent:
    """The wanted files and the whiteouts of one layer, read from ``stream`` front to back once."""
    head = stream.read(4)
    source: Any = _Prefixed(head, stream)
    if head.startswith(_GZIP_MAGIC):
        source = gzip.GzipFile(fileobj=source, mode="rb")
    elif head.startswith(_ZSTD_MAGIC):
        import zstandard

        source = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
    files: dict[str, FileRecord] = {}
    whiteouts: set[str] = set()
    opaque: set[str] = set()
    try:
        with tarfile.open(fileobj=source, mode="r|") as archive:
            for member in archive:
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
    except (tarfile.TarError, zlib.error, EOFError, OSError, ValueError) as error:
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


def _scan_pipe(pipe: Pipe) -> LayerContent:
    try:
        return scan_tar(pipe)  # type: ignore[arg-type]  # read() is all tarfile's stream mode uses
    finally:
        pipe.reader_done()


# -- the registry side (the event loop) --------------------------------------------------------------


async def read_layer(
    client: RegistryClient, repository: Repository, layer: Descriptor, executor: Executor | None = None
) -> LayerContent:
    """What one layer holds: streamed from the registry through a worker thread's tar reader."""
    loop = asyncio.get_running_loop()
    pipe = Pipe(loop)
    scanning = loop.run_in_executor(executor, _scan_pipe, pipe)
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
