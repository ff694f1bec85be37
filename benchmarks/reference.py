"""The reference client of the benchmark: the least a program must do to cold-lock the benchmark's images.

For each repository, the tag list, then the newest version's index, over plain HTTP/1.1 keep-alive
connections on asyncio streams, with at most CONCURRENCY requests in flight (imagelock's default per
registry). No retries, no authentication, no checks beyond the status: what is left of its time is
the network's, which is what imagelock's own time is compared with (docs/benchmarks.md).

    python benchmarks/reference.py HOST:PORT CONCURRENCY REPOSITORY...
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Sequence

ACCEPT = (
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"
)


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def get(self, host: str, path: str, accept: str = "*/*") -> bytes:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: {accept}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        body = await self.reader.readexactly(int(length.group(1)) if length else 0)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}")
        return body


def newest(tags: Sequence[str]) -> str:
    versions = [(tuple(int(part) for part in tag.split(".")), tag) for tag in tags if re.fullmatch(r"\d+(\.\d+)*", tag)]
    return max(versions)[1]


async def lock(address: str, concurrency: int, repositories: Sequence[str]) -> dict[str, str]:
    host, port = address.rsplit(":", 1)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for repository in repositories:
        queue.put_nowait(repository)
    digests: dict[str, str] = {}

    async def worker() -> None:
        connection: Connection | None = None
        while not queue.empty():
            repository = queue.get_nowait()
            if connection is None:
                connection = Connection(*await asyncio.open_connection(host, int(port)))
            listed = json.loads(await connection.get(address, f"/v2/{repository}/tags/list?n=1000"))
            tag = newest(listed["tags"])
            index = await connection.get(address, f"/v2/{repository}/manifests/{tag}", ACCEPT)
            digests[repository] = f"{tag} {len(index)}"
        if connection is not None:
            connection.writer.close()

    # Each worker has one request in flight at a time on its own connection: CONCURRENCY in all.
    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(repositories)))))
    return digests


def main(arguments: Sequence[str]) -> int:
    address, concurrency, *repositories = arguments
    locked = asyncio.run(lock(address, int(concurrency), repositories))
    return 0 if len(locked) == len(repositories) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
