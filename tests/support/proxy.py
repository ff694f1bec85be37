"""A small HTTP proxy in front of the real registry, for what a real server cannot show.

Every request is forwarded to the upstream registry; a ``tamper`` hook may rewrite the answer
(body, headers, status) before the client sees it. The proxy counts requests by path.
"""

from __future__ import annotations

import http.client
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.serving import serve, shut_down


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


Tamper = Callable[[str, str, Answer], Answer]  # (method, path, upstream answer) → answer to send
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer", "upgrade"}


@dataclass
class Proxy:
    upstream: str  # host:port of the real registry (plain HTTP)
    tamper: Tamper | None = None
    requests: Counter[str] = field(default_factory=Counter)
    authorizations: list[str | None] = field(default_factory=list)  # the Authorization header of each request
    server: ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Proxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                request_body = self.rfile.read(length) if length else None
                proxy.requests[f"{self.command} {self.path.split('?')[0]}"] += 1
                proxy.authorizations.append(self.headers.get("authorization"))
                connection = http.client.HTTPConnection(proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP | {"host"}}
                headers["Host"] = proxy.upstream
                connection.request(self.command, self.path, body=request_body, headers=headers)
                upstream = connection.getresponse()
                answer = Answer(
                    upstream.status,
                    {k: v for k, v in upstream.getheaders() if k.lower() not in _HOP_BY_HOP},
                    upstream.read(),
                )
                connection.close()
                if proxy.tamper is not None:
                    answer = proxy.tamper(self.command, self.path, answer)
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.body)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward  # noqa: N815

        self.server = serve(Handler)
        return self

    def stop(self) -> None:
        shut_down(self.server)
        self.server = None
