"""Plain HTTP under httpx, on asyncio streams with h11: the registry transport's connections.

httpcore's pool costs about 2 ms of CPU per request when dozens are in flight (it matches every
waiting request against every connection on each event); a registry lock is thousands of small
requests, so that was most of its CPU. This transport keeps a plain list of idle keep-alive
connections per origin and speaks HTTP/1.1 through h11 (the protocol engine httpcore itself uses).

Only plain-HTTP origins (loopback and ``insecure`` registries) come here. HTTPS goes on to httpx's
own transport, unchanged: certificate verification, and HTTP/2 where the registry offers it.
Proxies from the environment are httpx's too: ``AsyncClient`` mounts its proxy transports before
this one, so a request a proxy applies to never reaches it.

Failures are httpx's exceptions (``ConnectError``, ``ReadTimeout``, ``RemoteProtocolError`` …), with
the cause kept (a certificate error stays findable), so the rules above it see no difference.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import h11
import httpx

_READ_SIZE = 64 << 10
_IDLE_PER_ORIGIN = 32
Origin = tuple[str, str, int]


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


class _Body(httpx.AsyncByteStream):
    """An answer's body as it arrives; the connection goes back to the pool once it has all been read."""

    def __init__(self, pool: Connections, origin: Origin, connection: _Connection, read_timeout: float | None):
        self._pool, self._origin, self._connection, self._read_timeout = pool, origin, connection, read_timeout
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
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
    """The run's idle plain-HTTP keep-alive connections, a few per origin, shared by every client of the run."""

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
        _, host, port = origin
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(host, port, limit=_READ_SIZE)
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


class H11Transport(httpx.AsyncBaseTransport):
    """Plain HTTP over ``connections``; anything else (HTTPS) goes to ``others``."""

    def __init__(self, connections: Connections, others: httpx.AsyncBaseTransport) -> None:
        self._connections = connections
        self._others = others

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            return await self._others.handle_async_request(request)
        origin = (url.scheme, url.host, url.port or 80)
        timeouts = request.extensions.get("timeout", {})
        connection = await self._connections.checkout(origin, timeouts.get("connect"))
        try:
            return await self._exchange(request, origin, connection, timeouts)
        except BaseException:
            connection.close()
            raise

    async def _exchange(
        self, request: httpx.Request, origin: Origin, connection: _Connection, timeouts: dict[str, float | None]
    ) -> httpx.Response:
        target = request.url.raw_path
        body = await request.aread()
        with _mapped(httpx.WriteError, httpx.LocalProtocolError):
            data = connection.protocol.send(
                h11.Request(method=request.method, target=target, headers=list(request.headers.raw))
            )
            if body:
                data += connection.protocol.send(h11.Data(data=body))
            data += connection.protocol.send(h11.EndOfMessage())
            connection.writer.write(data)
            try:
                async with asyncio.timeout(timeouts.get("write")):
                    await connection.writer.drain()
            except TimeoutError as error:
                raise httpx.WriteTimeout("timed out sending the request") from error
        read_timeout = timeouts.get("read")
        while True:
            event = await connection.next_event(read_timeout)
            if isinstance(event, h11.Response):
                break
            if not isinstance(event, h11.InformationalResponse):
                raise httpx.RemoteProtocolError(f"unexpected {type(event).__name__} before the answer")
        return httpx.Response(
            event.status_code,
            headers=event.headers.raw_items(),
            stream=_Body(self._connections, origin, connection, read_timeout),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": bytes(event.reason)},
        )

    async def aclose(self) -> None:
        await self._others.aclose()  # the connections are the run's: closed with it
