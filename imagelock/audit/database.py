"""Where OSV records come from: a directory or OSV's ``all.zip`` exports (offline), or the OSV API.

Either way the database only narrows the records down to those naming an installed package;
whether a version is affected is always decided here, by ``imagelock.audit.osv``, never taken on
the server's word. A database that cannot be read is an error (exit 3), never an empty answer:
a missed record would read as "no vulnerabilities".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from imagelock.audit.inventory import Package
from imagelock.audit.osv import InvalidRecordError, Record
from imagelock.errors import DataUnavailableError
from imagelock.untrusted import load_json

if TYPE_CHECKING:
    import httpx

OSV_API = "https://api.osv.dev"
OSV_EXPORTS = "https://storage.googleapis.com/osv-vulnerabilities"
DEFAULT_ECOSYSTEMS = ("Alpine", "Debian", "PyPI", "npm")
MAX_RECORD_BYTES = 16 << 20
MAX_QUERY_ANSWER_BYTES = 64 << 20  # one querybatch answer: ids of the records naming up to 1,000 packages
_BATCH = 1000  # queries per querybatch request, the API's limit
_CONCURRENT_FETCHES = 16
_TIMEOUT = 30.0
_IDENTITY = {"Accept-Encoding": "identity"}


class Database(Protocol):
    async def records_for(self, packages: Sequence[Package]) -> list[Record]:
        """Every record that names one of ``packages`` (by ecosystem and OSV name); more is harmless."""
        ...


# -- offline -------------------------------------------------------------------------------------------


class OfflineDatabase:
    """OSV records under ``path``: ``*.json`` files and ``*.zip`` exports, in any directory layout.

    Read once, on the first question, and indexed by package: a lock gating many candidates reads it once.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._index: dict[tuple[str, str], list[Record]] | None = None

    async def records_for(self, packages: Sequence[Package]) -> list[Record]:
        if self._index is None:
            index: dict[tuple[str, str], list[Record]] = {}
            for record in self.records():
                for key in record.names:
                    index.setdefault(key, []).append(record)
            self._index = index
        found: dict[str, Record] = {}
        for key in {package.osv_key for package in packages}:
            for record in self._index.get(key, []):
                found.setdefault(record.id, record)
        return list(found.values())

    def records(self) -> Iterator[Record]:
        if not self.path.exists():
            raise DataUnavailableError(
                f"{self.path}: vulnerability database not found (fetch one with 'imagelock vulndb download')"
            )
        sources = [self.path] if self.path.is_file() else sorted(self.path.rglob("*"))
        found = False
        for source in sources:
            if source.suffix == ".json" and source.is_file():
                found = True
                yield _parse(source.read_bytes(), str(source))
            elif source.suffix == ".zip" and source.is_file():
                found = True
                yield from _zip_records(source)
        if not found:
            raise DataUnavailableError(f"{self.path}: no OSV records (*.json) or exports (*.zip) found")


def _zip_records(path: Path) -> Iterator[Record]:
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if member.is_dir() or not member.filename.endswith(".json"):
                    continue
                if member.file_size > MAX_RECORD_BYTES:
                    raise DataUnavailableError(f"{path}: {member.filename}: larger than {MAX_RECORD_BYTES} bytes")
                yield _parse(archive.read(member), f"{path}:{member.filename}")
    except (zipfile.BadZipFile, OSError) as error:
        raise DataUnavailableError(f"{path}: not a readable OSV export: {error}") from None


def _parse(data: bytes, where: str) -> Record:
    try:
        return Record.parse(load_json(data))
    except (ValueError, InvalidRecordError) as error:
        raise DataUnavailableError(f"{where}: not an OSV record: {error}") from None


# -- online ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnlineDatabase:
    """The OSV API: ``querybatch`` names the records per package, ``vulns/{id}`` gives each in full."""

    url: str = OSV_API

    async def records_for(self, packages: Sequence[Package]) -> list[Record]:
        import httpx

        queries = sorted({(package.ecosystem, package.osv_name, package.osv_version) for package in packages})
        try:
            async with httpx.AsyncClient(timeout=_TIMEOUT, follow_redirects=False, headers=_IDENTITY) as client:
                ids: set[str] = set()
                for start in range(0, len(queries), _BATCH):
                    ids |= await self._query(client, queries[start : start + _BATCH])
                slots = asyncio.Semaphore(_CONCURRENT_FETCHES)

                async def fetch(identifier: str) -> Record:
                    async with slots:
                        return await self._record(client, identifier)

                return list(await asyncio.gather(*(fetch(identifier) for identifier in sorted(ids))))
        except httpx.HTTPError as error:
            raise DataUnavailableError(f"{self.url}: OSV API unreachable: {error}") from None

    async def _query(self, client: httpx.AsyncClient, queries: Sequence[tuple[str, str, str]]) -> set[str]:
        pending = [
            {"package": {"ecosystem": ecosystem, "name": name}, "version": version}
            for ecosystem, name, version in queries
        ]
        ids: set[str] = set()
        while pending:
            request = client.build_request("POST", f"{self.url}/v1/querybatch", json={"queries": pending})
            document = await _json_answer(client, request, MAX_QUERY_ANSWER_BYTES)
            results = document.get("results") if isinstance(document, dict) else None
            if not isinstance(results, list) or len(results) != len(pending):
                raise DataUnavailableError(f"{self.url}/v1/querybatch: answer does not have one result per query")
            next_round = []
            for query, result in zip(pending, results, strict=True):
                vulns = result.get("vulns") if isinstance(result, dict) else None
                for vuln in vulns or []:
                    if isinstance(vuln, dict) and isinstance(vuln.get("id"), str):
                        ids.add(vuln["id"])
                token = result.get("next_page_token") if isinstance(result, dict) else None
                if isinstance(token, str) and token:
                    next_round.append({**query, "page_token": token})
            pending = next_round
        return ids

    async def _record(self, client: httpx.AsyncClient, identifier: str) -> Record:
        where = f"{self.url}/v1/vulns/{identifier}"
        document = await _json_answer(client, client.build_request("GET", where), MAX_RECORD_BYTES)
        try:
            return Record.parse(document)
        except InvalidRecordError as error:
            raise DataUnavailableError(f"{where}: {error}") from None


async def _json_answer(client: httpx.AsyncClient, request: httpx.Request, max_bytes: int) -> object:
    """The JSON of a 200 answer, read as it arrives and never past ``max_bytes``.

    The answer must come unencoded (we ask for identity): a few KiB of gzip may decode to GiBs, so
    counting decoded bytes would bound nothing.
    """
    where = str(request.url)
    response = await client.send(request, stream=True)
    try:
        if response.status_code != 200:
            raise DataUnavailableError(f"{where}: HTTP {response.status_code}")
        _refuse_encoded(response, where)
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > max_bytes:
                raise DataUnavailableError(f"{where}: answer is larger than {max_bytes} bytes")
    finally:
        await response.aclose()
    try:
        return load_json(body)
    except ValueError:
        raise DataUnavailableError(f"{where}: answer is not JSON") from None


def _refuse_encoded(response: httpx.Response, where: str) -> None:
    from imagelock.registry.transport import is_encoded

    encoding = response.headers.get("content-encoding", "")
    if is_encoded(encoding):
        raise DataUnavailableError(f"{where}: sent with Content-Encoding {encoding!r}, which imagelock does not decode")


# -- downloading the exports once, for offline use ---------------------------------------------------------


def default_database_dir(cache: Path) -> Path:
    return cache / "osv"


def download(
    ecosystems: Sequence[str],
    destination: Path,
    *,
    url: str = OSV_EXPORTS,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> list[Path]:
    """Fetch ``<url>/<ECOSYSTEM>/all.zip`` into ``destination/<ECOSYSTEM>/all.zip`` for each ecosystem.

    Each file replaces the previous one only once it is whole and opens as a zip archive; ``progress``
    hears ``(ecosystem, bytes so far, total or None)``.
    """
    import httpx

    written = []
    for ecosystem in ecosystems:
        if not ecosystem or "/" in ecosystem or ecosystem.startswith("."):
            raise DataUnavailableError(f"{ecosystem!r}: not an OSV ecosystem name")
        target = destination / ecosystem / "all.zip"
        target.parent.mkdir(parents=True, exist_ok=True)
        source = f"{url}/{ecosystem}/all.zip"
        descriptor, temporary = tempfile.mkstemp(prefix=".all.", suffix=".zip", dir=target.parent)
        try:
            with (
                os.fdopen(descriptor, "wb") as handle,
                httpx.stream("GET", source, timeout=_TIMEOUT, headers=_IDENTITY) as response,
            ):
                if response.status_code != 200:
                    raise DataUnavailableError(f"{source}: HTTP {response.status_code}")
                _refuse_encoded(response, source)
                declared = response.headers.get("content-length")
                total = int(declared) if declared and declared.isdigit() else None
                received = 0
                for chunk in response.iter_raw():
                    handle.write(chunk)
                    received += len(chunk)
                    if progress is not None:
                        progress(ecosystem, received, total)
            if not zipfile.is_zipfile(temporary):
                raise DataUnavailableError(f"{source}: not a zip archive")
            os.replace(temporary, target)
        except httpx.HTTPError as error:
            raise DataUnavailableError(f"{source}: download failed: {error}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        written.append(target)
    return written
