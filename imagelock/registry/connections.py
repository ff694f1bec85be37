"""HTTP/1.1 and HTTPS on asyncio streams with h11: the registry transport's own connections.

Every request whose scheme no proxy in the environment carries comes here, plain HTTP (loopback and
``insecure`` registries) and HTTPS alike; proxied requests, and HTTPS to a host that opted into
HTTP/2 (``http2 = true``), go through httpx. A registry lock is thousands of small requests, and
httpx's client spends about as much CPU on each as the rest of the run does (building models,
cookies, its pool); this keeps a plain list of idle keep-alive connections per origin and speaks
HTTP/1.1 through h11, the protocol engine httpcore itself uses. HTTPS uses the TLS context the
transport gives (its certificate verification, host name checked), offering only ``http/1.1`` by
ALPN. ``transport.Transport`` applies the same rules to answers from either path.

Failures are httpx's exceptions (``ConnectError``, ``ReadTimeout``, ``RemoteProtocolError`` …), with
the cause kept, so the rules above see no difference between the two paths.

``speaks_tls`` answers the other question a plain-HTTP-capable host raises: whether it speaks TLS.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager

import h11
import httpx

_READ_SIZE = 64 << 10
_IDLE_PER_ORIGIN = 32
Origin = tuple[str, str, int, ssl.SSLContext | None]  # scheme, host, port and, for HTTPS, the TLS context


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.protocol = h11.Connection(h11.CLIENT)

    @property
    def reusable(self) -> bool:
        """Idle, and the server has neither sent anything nor hung up since its last answer."""
        return self.protocol.our_state is h11.IDLE and not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()

    async def next_event(self, read_timeout: float | None) -> h11.Event | type[h11.PAUSED]:
        while True:
            with _mapped(httpx.ReadError, httpx.RemoteProtocolError):
                event = self.protocol.next_event()
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]  # not NEED_DATA, which mypy cannot narrow
            with _mapped(httpx.ReadError, httpx.RemoteProtocolError):
                try:
                    async with asyncio.timeout(read_timeout):
                        data = await self.reader.read(_READ_SIZE)
                except TimeoutError as error:
                    raise httpx.ReadTimeout("timed out reading the answer") from error
                self.protocol.receive_data(data)


@contextmanager
def _mapped(io_error: type[httpx.TransportError], protocol_error: type[httpx.TransportError]) -> Iterator[None]:
    """OSError and h11's protocol errors as the httpx exceptions callers handle, their cause kept."""
    try:
        yield
    except h11.RemoteProtocolError as error:
        raise protocol_error(str(error) or "the server broke the HTTP protocol") from error
    except h11.LocalProtocolError as error:
        raise httpx.LocalProtocolError(str(error)) from error
    except (OSError, EOFError) as error:
        raise io_error(str(error) or type(error).__name__) from error


class Answer:
    """An answer's status and headers; its body is read with ``aiter_raw`` (the connection goes back to
    the pool once all of it has been read) and must be closed with ``aclose``."""

    def __init__(
        self,
        pool: Connections,
        origin: Origin,
        connection: _Connection,
        response: h11.Response,
        read_timeout: float | None,
    ):
        self.status_code = response.status_code
        self.headers = httpx.Headers(response.headers.raw_items())
        self._pool, self._origin, self._connection, self._read_timeout = pool, origin, connection, read_timeout
        self._done = False

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        while not self._done:
            event = await self._connection.next_event(self._read_timeout)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._done = True
                self._pool.release(self._origin, self._connection)
            else:
                raise httpx.RemoteProtocolError(f"unexpected {type(event).__name__} in an answer's body")

    async def aclose(self) -> None:
        if not self._done:  # not read to the end: the connection is in the middle of an answer
            self._done = True
            self._connection.close()


class Connections:
    """The run's idle keep-alive connections, a few per origin (and TLS context)."""

    def __init__(self) -> None:
        self._idle: dict[Origin, list[_Connection]] = {}

    async def checkout(self, origin: Origin, connect_timeout: float | None) -> _Connection:
        """An idle connection the server has not closed, else a new one."""
        idle = self._idle.get(origin, [])
        while idle:
            connection = idle.pop()
            if connection.reusable:
                return connection
            connection.close()
        _, host, port, tls = origin
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    limit=_READ_SIZE,
                    ssl=tls,
                    server_hostname=host if tls else None,
                    ssl_handshake_timeout=connect_timeout if tls else None,
                )
        except TimeoutError as error:
            raise httpx.ConnectTimeout(f"timed out connecting to {host}:{port}") from error
        except OSError as error:
            raise httpx.ConnectError(str(error) or type(error).__name__) from error
        return _Connection(reader, writer)

    def release(self, origin: Origin, connection: _Connection) -> None:
        """An answer read to its end: keep its connection for the next request, if the server lets us."""
        protocol = connection.protocol
        if protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
            protocol.start_next_cycle()
            idle = self._idle.setdefault(origin, [])
            if len(idle) < _IDLE_PER_ORIGIN:
                idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

    async def send(
        self,
        method: str,
        url: httpx.URL,
        headers: Sequence[tuple[str, str]],
        content: bytes | None,
        timeout: float | None,
        tls: ssl.SSLContext | None,
    ) -> Answer:
        """Send one request (over TLS with ``tls``, an ``https`` URL's); its answer's status and headers,
        the body still to be read from it."""
        origin = (url.scheme, url.host, url.port or (443 if tls else 80), tls)
        connection = await self.checkout(origin, timeout)
        try:
            return await self._exchange(method, url, headers, content, origin, connection, timeout)
        except BaseException:
            connection.close()
            raise

    async def _exchange(
        self,
        method: str,
        url: httpx.URL,
        headers: Sequence[tuple[str, str]],
        content: bytes | None,
        origin: Origin,
        connection: _Connection,
        timeout: float | None,
    ) -> Answer:
        fields = [("Host", url.netloc.decode("ascii")), *headers]
        if content is not None or method in ("POST", "PUT", "PATCH"):
            fields.append(("Content-Length", str(len(content or b""))))
        with _mapped(httpx.WriteError, httpx.LocalProtocolError):
            protocol = connection.protocol
            data = protocol.send(h11.Request(method=method, target=url.raw_path, headers=fields))
            if content:
                data += protocol.send(h11.Data(data=content))
            data += protocol.send(h11.EndOfMessage())
            connection.writer.write(data)
            if connection.writer.transport.get_write_buffer_size():  # the socket took less than all of it
                try:
                    async with asyncio.timeout(timeout):
                        await connection.writer.drain()
                except TimeoutError as error:
                    raise httpx.WriteTimeout("timed out sending the request") from error
        while True:
            event = await connection.next_event(timeout)
            if isinstance(event, h11.Response):
                return Answer(self, origin, connection, event, timeout)
            if not isinstance(event, h11.InformationalResponse):
                raise httpx.RemoteProtocolError(f"unexpected {type(event).__name__} before the answer")


async def speaks_tls(host: str, port: int, timeout: float | None) -> bool:
    """Whether ``host:port`` completes a TLS handshake. Nothing is verified and nothing is sent over it:
    this only decides the scheme of a host that may use plain HTTP, and a host that does speak TLS is
    then verified as usual. Costs a handshake, not the loading of every trusted CA."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port, ssl=probe, server_hostname=host)
    except (OSError, TimeoutError):  # ssl.SSLError is an OSError
        return False
    finally:
        if writer is not None:
            writer.close()
    return True
