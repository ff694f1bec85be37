"""A forward proxy, the kind ``HTTP_PROXY`` and ``HTTPS_PROXY`` name: what a client sends through it.

A plain-HTTP request comes in absolute form (``GET http://host:port/path``) and is relayed to that
host; ``CONNECT host:port`` opens a tunnel to it, through which the client speaks TLS with the host
itself. The proxy records each request line and its headers, never looking inside a tunnel.
``ConnectionCounter`` relays bytes to one server and counts the connections opened to it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import ThreadingHTTPServer
from urllib.parse import urlsplit

from tests.support.proxy import relay
from tests.support.serving import QuietHandler, serve, shut_down


@dataclass
class ForwardProxy:
    requests: list[str] = field(default_factory=list)  # "GET http://host:port/path", "CONNECT host:port"
    request_headers: list[Message] = field(default_factory=list)  # the headers the proxy itself received
    server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> ForwardProxy:
        proxy = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _record(self) -> None:
                with proxy._lock:
                    proxy.requests.append(f"{self.command} {self.path}")
                    proxy.request_headers.append(self.headers)

            def _forward(self) -> None:
                self._record()
                length = int(self.headers.get("content-length") or 0)
                target = urlsplit(self.path)
                path = f"{target.path}?{target.query}" if target.query else target.path
                answer = relay(target.netloc, self.command, path, self.headers, self.rfile.read(length) or None)
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.body)

            def do_CONNECT(self) -> None:
                self._record()
                host, port = self.path.rsplit(":", 1)
                _splice(self.connection, host, int(port), connected=self._established)
                self.close_connection = True

            def _established(self) -> None:
                self.send_response(200, "Connection established")
                self.end_headers()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        self.server = serve(Handler)
        return self

    def stop(self) -> None:
        shut_down(self.server)
        self.server = None


@dataclass
class ConnectionCounter:
    """A TCP relay to ``upstream`` (host:port) that counts the connections clients open through it,
    never looking inside them: TLS runs end to end with the server behind it."""

    upstream: str
    connections: int = 0
    server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> ConnectionCounter:
        counter = self
        host, port = self.upstream.rsplit(":", 1)

        class Handler(QuietHandler):
            def handle(self) -> None:  # bytes, not HTTP
                with counter._lock:
                    counter.connections += 1
                _splice(self.connection, host, int(port))

        self.server = serve(Handler)
        return self

    def stop(self) -> None:
        shut_down(self.server)
        self.server = None


def _splice(client: socket.socket, host: str, port: int, connected: Callable[[], None] | None = None) -> None:
    """Connect to ``host:port`` (then call ``connected``) and copy bytes both ways until both sides end."""
    with socket.create_connection((host, port), timeout=30) as upstream:
        if connected is not None:
            connected()
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    """Copy bytes one way until ``source`` ends, then end that direction on ``target``."""
    with contextlib.suppress(OSError):
        while data := source.recv(64 << 10):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)
