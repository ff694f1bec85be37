"""Blob storage on another origin, where a registry redirects blob GETs, that wants credentials.

It answers every request 401 with a Bearer challenge whose realm is itself, and records each
request: whatever a client sends it, to the storage or to the realm, shows up in ``received``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

from tests.support.serving import QuietHandler, serve, shut_down


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    authorization: str | None


@dataclass
class ChallengingStorage:
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> ChallengingStorage:
        storage = self

        class Handler(QuietHandler):
            def _challenge(self) -> None:
                storage.received.append(Received(self.command, self.path, self.headers.get("authorization")))
                self.send_response(401)
                self.send_header("WWW-Authenticate", f'Bearer realm="http://{storage.host}/token",service="storage"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = do_POST = _challenge

        self.server = serve(Handler)
        return self

    def stop(self) -> None:
        shut_down(self.server)
        self.server = None
