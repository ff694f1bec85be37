"""A small HTTP proxy in front of the real registry, for what a real server cannot show.

Every request is forwarded to the upstream registry. Before forwarding, an ``intercept`` hook may
answer in the registry's place, reset the connection, or delay; after, a ``tamper`` hook may
rewrite the answer (body, headers, status). The proxy counts requests by path, records the headers
of each, the most requests it saw in flight at once, and the connections that carried them.
``latency`` adds a fixed one-way delay to every request and again to every answer, like a slow
network (the benchmarks use it); connection set-up is not delayed.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import ThreadingHTTPServer

from tests.support.serving import QuietHandler, serve, shut_down


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    content_length: int | None = None  # a Content-Length that lies; the connection closes after the body
    drip: float = 0.0  # seconds between bytes of the body: a server that answers at a crawl


Tamper = Callable[[str, str, Answer], Answer]  # (method, path, upstream answer) → answer to send
RESET = "reset"
# (method, path) → an answer to send instead of the registry's, RESET to drop the connection,
# seconds to wait before forwarding, or None to forward at once.
Intercept = Callable[[str, str], "Answer | str | float | None"]
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer", "upgrade"}


def relay(
    upstream: str, method: str, path: str, headers: Message, body: bytes | None, tls: ssl.SSLContext | None = None
) -> Answer:
    """Send a request on to ``upstream`` (host:port) and read its whole answer, hop-by-hop headers dropped."""
    connection = (
        http.client.HTTPSConnection(upstream, timeout=30, context=tls)
        if tls is not None
        else http.client.HTTPConnection(upstream, timeout=30)
    )
    forwarded: dict[str, str] = {}
    for key, value in headers.items():  # repeated headers (skopeo sends one Accept per type) join
        if key.lower() not in _HOP_BY_HOP | {"host"}:
            forwarded[key] = f"{forwarded[key]}, {value}" if key in forwarded else value
    forwarded["Host"] = upstream
    connection.request(method, path, body=body, headers=forwarded)
    response = connection.getresponse()
    answer = Answer(
        response.status, {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}, response.read()
    )
    connection.close()
    return answer


@dataclass
class Proxy:
    upstream: str  # host:port of the real registry (plain HTTP), or of a notary server (with upstream_tls)
    tamper: Tamper | None = None
    intercept: Intercept | None = None
    latency: float = 0.0  # seconds each way: before forwarding a request, and before sending its answer
    upstream_tls: ssl.SSLContext | None = None  # HTTPS to the upstream, trusting what this context trusts
    requests: Counter[str] = field(default_factory=Counter)
    request_headers: list[Message] = field(default_factory=list)  # the headers of each request
    server: ThreadingHTTPServer | None = None
    in_flight: int = 0
    most_in_flight: int = 0
    connections: int = 0  # connections that carried at least one request
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def authorizations(self) -> list[str | None]:
        """The Authorization header of each request."""
        return [headers.get("authorization") for headers in self.request_headers]

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Proxy:
        proxy = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms ACK wait between
            carried = 0  # requests on this connection

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                request_body = self.rfile.read(length) if length else None
                self.carried += 1
                with proxy._lock:
                    proxy.connections += self.carried == 1
                    proxy.requests[f"{self.command} {self.path.split('?')[0]}"] += 1
                    proxy.request_headers.append(self.headers)
                    proxy.in_flight += 1
                    proxy.most_in_flight = max(proxy.most_in_flight, proxy.in_flight)
                try:
                    if proxy.latency:
                        time.sleep(proxy.latency)
                    self._answer(request_body)
                finally:
                    with proxy._lock:
                        proxy.in_flight -= 1

            def _answer(self, request_body: bytes | None) -> None:
                action = proxy.intercept(self.command, self.path) if proxy.intercept is not None else None
                if action == RESET:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if isinstance(action, int | float):
                    time.sleep(action)
                if isinstance(action, Answer):
                    self._send(action)
                    return
                answer = relay(proxy.upstream, self.command, self.path, self.headers, request_body, proxy.upstream_tls)
                if proxy.tamper is not None:
                    answer = proxy.tamper(self.command, self.path, answer)
                self._send(answer)

            def _send(self, answer: Answer) -> None:
                if proxy.latency:
                    time.sleep(proxy.latency)
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                length = answer.content_length if answer.content_length is not None else len(answer.body)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if not answer.drip:
                    self.wfile.write(answer.body)
                else:
                    for index in range(len(answer.body)):
                        self.wfile.write(answer.body[index : index + 1])
                        self.wfile.flush()
                        time.sleep(answer.drip)
                if answer.content_length is not None:
                    self.close_connection = True

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        self.server = serve(Handler)
        return self

    def stop(self) -> None:
        shut_down(self.server)
        self.server = None
