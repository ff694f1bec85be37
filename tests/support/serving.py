"""Serving a test HTTP handler on a free loopback port, in a background thread."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops a burst of new connections, which retry after a second

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up (a timeout under test) is not news


class QuietHandler(BaseHTTPRequestHandler):
    """A test server's request handler: no access log on stderr, and JSON answers in one call."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send_body(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, document: object) -> None:
        self.send_body(status, json.dumps(document).encode(), "application/json")


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = _QuietServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def shut_down(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


def wait_listening(process: subprocess.Popen[bytes], port: int, log: Path, name: str, seconds: float = 15) -> None:
    """Wait until a started server accepts connections on ``port``; its log's tail if it exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not start within {seconds:g} s")


def terminate(process: subprocess.Popen[bytes] | None) -> None:
    """Stop a server process: politely, then for good after ten seconds."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
