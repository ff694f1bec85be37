"""A small server speaking the OSV API's JSON shape (``/v1/querybatch``, ``/v1/vulns/{id}``) over given records.

Like the real API it names, per query, the records whose affected packages have that ecosystem and
name, a page at a time; the version is not used to narrow (imagelock decides that itself).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.serving import QuietHandler, serve, shut_down


@dataclass
class OsvServer:
    records: list[dict[str, Any]]
    page_size: int = 1  # small, so that paging is exercised
    failing: bool = False
    gzip_bomb: bytes | None = None  # sent as querybatch's answer, as 'Content-Encoding: gzip, gzip'
    padding: int = 0  # bytes of whitespace after each querybatch answer's JSON: an answer too big to hold
    requests: Counter[str] = field(default_factory=Counter)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> OsvServer:
        osv = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                osv.requests[self.path] += 1
                length = int(self.headers.get("Content-Length", "0"))
                queries = json.loads(self.rfile.read(length))["queries"]
                if osv.failing or self.path != "/v1/querybatch":
                    self.send_json(500, {"message": "internal error"})
                    return
                if osv.gzip_bomb is not None:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Encoding", "gzip, gzip")
                    self.send_header("Content-Length", str(len(osv.gzip_bomb)))
                    self.end_headers()
                    self.wfile.write(osv.gzip_bomb)
                    return
                body = json.dumps({"results": [osv.answer(query) for query in queries]}).encode() + b" " * osv.padding
                self.send_body(200, body, "application/json")

            def do_GET(self) -> None:
                osv.requests[self.path] += 1
                identifier = self.path.removeprefix("/v1/vulns/")
                found = [record for record in osv.records if record["id"] == identifier]
                if osv.failing or not found:
                    self.send_json(404, {"message": "not found"})
                    return
                self.send_json(200, found[0])

        self.server = serve(Handler)
        return self

    def answer(self, query: dict[str, Any]) -> dict[str, Any]:
        package = query["package"]
        named = [record for record in self.records if (package["ecosystem"], package["name"]) in _names(record)]
        start = int(query.get("page_token") or 0)
        page = named[start : start + self.page_size]
        result: dict[str, Any] = {"vulns": [{"id": r["id"], "modified": r["modified"]} for r in page]}
        if start + self.page_size < len(named):
            result["next_page_token"] = str(start + self.page_size)
        return result

    def stop(self) -> None:
        shut_down(self.server)


def _names(record: dict[str, Any]) -> Iterable[tuple[str, str]]:
    for affected in record.get("affected", []):
        yield affected["package"]["ecosystem"], affected["package"]["name"]


@dataclass
class StaticServer:
    """Files under ``root`` over plain HTTP, as OSV's export bucket serves its ``all.zip`` files."""

    root: Path
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> StaticServer:
        root = self.root

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                path = (root / self.path.lstrip("/")).resolve()
                if not path.is_relative_to(root.resolve()) or not path.is_file():
                    self.send_body(404, b"", "text/plain")
                    return
                self.send_body(200, path.read_bytes(), "application/zip")

        self.server = serve(Handler)
        return self

    def stop(self) -> None:
        shut_down(self.server)
