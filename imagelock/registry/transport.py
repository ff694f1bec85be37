"""HTTP to registries: scheme and TLS per host, authentication, redirects, retries, body caps.

The rules that keep the user safe live here and nowhere else:

- HTTPS with certificate verification, always, except for loopback registries and hosts the
  user marked ``insecure``: those try HTTPS first and fall back to plain HTTP when the host does
  not speak TLS (as Docker does). A certificate that fails verification is never a reason to
  fall back.
- Credentials go to the registry's own origin, and to a token realm only over HTTPS (plain HTTP
  only when the registry itself may use it). A redirect to another origin loses the
  ``Authorization`` header; a redirect from HTTPS to HTTP is refused; redirects are capped.
  Only the registry's own origin may challenge for its credentials: a 401 from a redirect target
  is a failure, never a reason to send them anywhere.
- Bodies are capped while they stream; nothing unbounded is read into memory. Every request asks
  for ``Accept-Encoding: identity`` and an encoded answer is refused unread, so that the cap counts
  the bytes that arrive, not what a few of them would decompress to.
- 429, 502, 503, 504, timeouts and broken connections are retried with bounded, jittered
  backoff that honours ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import ipaddress
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode
from urllib.request import getproxies

import httpx

from imagelock.errors import InputError, RegistryError
from imagelock.events import Events, Silent
from imagelock.reference import Repository
from imagelock.registry.authn import Credential, Keychain
from imagelock.registry.challenge import Challenge, parse_challenges
from imagelock.registry.connections import Answer, Connections, speaks_tls
from imagelock.registry.urls import http_url
from imagelock.untrusted import load_json

MAX_ERROR_BODY = 1 << 20
MAX_TOKEN_BODY = 1 << 20
DEFAULT_CONCURRENCY = 32
DEFAULT_TIMEOUT = 30.0
_MAX_REDIRECTS = 5
_REQUESTS_PER_POOL = 8
# The timeout bounds each wait for bytes; a whole answer gets this many timeouts, so that a server
# dripping a byte at a time cannot hold a run forever.
_WHOLE_ANSWER_TIMEOUTS = 2
# A streamed body (a layer) may take longer, but must keep arriving at this average rate or better.
_STREAM_MIN_RATE = 32 << 10
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_TOKEN_RENEW_MARGIN = 10.0
_RATE_LIMIT_WARNING = 10
_USER_AGENT = "imagelock"
_CLIENT_HEADERS = frozenset({"user-agent", "accept-encoding", "host", "content-length"})  # set by the transport
_OAUTH_CLIENT_ID = "imagelock"


@dataclass(frozen=True)
class HostSettings:
    """How to reach one registry host (``[registries."host"]`` in images.toml)."""

    insecure: bool = False
    ca_cert: Path | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = DEFAULT_TIMEOUT
    tag_api: str | None = None  # host of a Docker-Hub-shaped tag API for this registry's tags
    http2: bool = False  # HTTPS through httpx with HTTP/2, not over the transport's own HTTP/1.1 connections


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before attempt ``attempt + 1``: Retry-After if given, else jittered backoff."""
        if retry_after:
            seconds = _parse_retry_after(retry_after)
            if seconds is not None:
                return min(seconds, self.max_delay)
        backoff = min(self.base_delay * 2 ** (attempt - 1), self.max_delay)
        return float(backoff * random.uniform(0.5, 1.5))


@dataclass(frozen=True)
class Response:
    status: int
    headers: httpx.Headers
    body: bytes
    url: httpx.URL
    attempts: int = 1


Sink = Callable[[bytes], Awaitable[None]]


class _StreamSink:
    """Where a 200 answer's body goes instead of memory; once it has had bytes, a failure is not retried."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.received = 0

    async def __call__(self, chunk: bytes) -> None:
        self.received += len(chunk)
        await self.sink(chunk)


@dataclass
class _Token:
    value: str
    expires_at: float


@dataclass
class _HostState:
    """What the transport has learned about one registry host during this run."""

    settings: HostSettings
    slots: asyncio.Semaphore
    scheme: str | None = None
    challenge: Challenge | None = None
    scheme_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    rate_limit_warned: bool = False


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1, with or without a port."""
    if host.startswith("["):
        name = host[1:].split("]", 1)[0]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _proxied_schemes() -> frozenset[str]:
    """The schemes a proxy from the environment carries, by httpx's rule (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY).
    A proxy httpx cannot use without extras (SOCKS) is refused before anything is sent, not at each request."""
    proxies = getproxies()
    if "*" in (host.strip() for host in proxies.get("no", "").split(",")):
        return frozenset()  # NO_PROXY=*: no proxy for any host
    for name in ("http", "https", "all"):
        url = proxies.get(name, "")
        scheme = url.split("://", 1)[0].lower() if "://" in url else "http"  # httpx reads "host:port" as http
        if scheme not in ("http", "https"):
            raise InputError(
                f"{name.upper()}_PROXY names a proxy imagelock cannot use ({scheme}://); use an http:// or https:// one"
            )
    return frozenset(scheme for scheme in ("http", "https") if proxies.get(scheme) or proxies.get("all"))


class Transport:
    """Sends requests to registries for one run, reusing connections, credentials and tokens."""

    def __init__(
        self,
        keychain: Keychain,
        settings: Mapping[str, HostSettings] | None = None,
        *,
        events: Events | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._keychain = keychain
        self._settings = dict(settings or {})
        self._events = events or Silent()
        self._retry = retry or RetryPolicy()
        self._clients: dict[tuple[bool, Path | None, float, int], httpx.AsyncClient] = {}
        self._connections = Connections()  # every request no proxy carries: see connections.py
        self._proxied = _proxied_schemes()
        # Two contexts per TLS setting: httpcore sets its ALPN protocols (h2) on the context it is given.
        self._tls: dict[tuple[bool, Path | None, bool], ssl.SSLContext] = {}
        self._sent = 0
        self._hosts: dict[str, _HostState] = {}
        self._credentials: dict[Repository, asyncio.Future[Credential | None]] = {}
        self._tokens: dict[tuple[str, str, str, str], _Token] = {}
        self._token_locks: dict[tuple[str, str, str, str], asyncio.Lock] = {}

    def settings_for(self, registry: str) -> HostSettings:
        """How to reach ``registry`` (its ``[registries."host"]`` settings, else the defaults)."""
        return self._settings.get(registry, HostSettings())

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        self._connections.close()

    async def request(
        self,
        method: str,
        repository: Repository,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        max_bytes: int,
        content: bytes | None = None,
        push: bool = False,
        mount_from: Repository | None = None,
        retry_connection: bool = True,
        sink: Sink | None = None,
    ) -> Response:
        """Send ``method path`` to the repository's registry, authenticating as its challenge asks.

        ``push`` asks for a token that may also push to the repository; ``mount_from`` adds pull
        access to another repository of the same registry (a cross-repository blob mount).
        ``retry_connection`` false is for requests that must not be sent twice (an upload chunk):
        a broken connection raises ``ConnectionLostError`` at once. With ``sink``, the body of a 200
        answer is handed to it chunk by chunk and not kept (``Response.body`` is empty); every other
        answer is read as usual.
        """
        state = self._host(repository)
        scope = f"repository:{repository.path}:{'pull,push' if push else 'pull'}"
        if mount_from is not None and mount_from.registry == repository.registry and mount_from != repository:
            scope += f" repository:{mount_from.path}:pull"
        authorization = await self._authorization(repository, state, scope, renew=False)
        stream = _StreamSink(sink) if sink is not None else None
        send = (method, repository, state, path, headers, max_bytes, content, retry_connection, stream)
        response = await self._send_to_registry(*send, authorization)
        if response.status != 401:
            return response
        self._refuse_challenge_from_elsewhere(repository, path, response)
        challenges = parse_challenges(response.headers.get_list("www-authenticate"))
        usable = [challenge for challenge in challenges if challenge.scheme in ("bearer", "basic")]
        if not usable:
            raise RegistryError(f"{repository.api_host}: unauthorized, and the registry offers no supported scheme")
        state.challenge = next((c for c in usable if c.scheme == "bearer"), usable[0])
        challenge_scope = _merge_scopes(scope, state.challenge.params.get("scope"))
        authorization = await self._authorization(repository, state, challenge_scope, renew=True)
        credential = await self._credential(repository)
        if authorization is None:
            raise RegistryError(
                f"{repository.api_host}: authentication required for {repository}; "
                f"add credentials with 'docker login {repository.registry}'"
            )
        response = await self._send_to_registry(*send, authorization)
        if response.status == 401:
            self._refuse_challenge_from_elsewhere(repository, path, response)
            if credential is None:
                raise RegistryError(
                    f"{repository.api_host}: anonymous access to {repository} refused; "
                    f"add credentials with 'docker login {repository.registry}'"
                )
            raise RegistryError(f"{repository.api_host}: credentials for {repository.registry} were rejected (401)")
        return response

    def _refuse_challenge_from_elsewhere(self, repository: Repository, path: str, response: Response) -> None:
        """A 401 that a redirect target sent (blob storage on another origin) is not the registry's
        challenge: following it would send the registry's credentials to whatever realm it names."""
        if _origin(response.url) != _origin(self.registry_url(repository, "/")):
            raise RegistryError(
                f"{repository.api_host}: {path.split('?')[0]} was redirected to {response.url.netloc.decode()}, "
                "which answered 401 unauthorized; credentials go only to the registry itself"
            )

    def registry_url(self, repository: Repository, location: str) -> httpx.URL:
        """A ``Location`` the registry sent (an upload URL), resolved against the registry's own origin."""
        state = self._host(repository)
        url = http_url(location, httpx.URL(f"{state.scheme or 'https'}://{repository.api_host}/"))
        if url is None:
            raise RegistryError(
                f"{repository.api_host}: the registry sent a location that is no http(s) URL: {location!r}"
            )
        return url

    async def request_url(
        self,
        method: str,
        repository: Repository,
        url: httpx.URL,
        *,
        headers: Mapping[str, str] | None = None,
        max_bytes: int,
        content: bytes | None = None,
        push: bool = False,
        retry_connection: bool = True,
    ) -> Response:
        """Send to a URL the registry gave (an upload location): on the registry's origin with its
        credentials; on another origin with none, and never over plain HTTP unless the registry may use it."""
        base = self.registry_url(repository, "/")
        if _origin(url) == _origin(base):
            path = url.raw_path.decode()
            return await self.request(
                method, repository, path, headers=headers, max_bytes=max_bytes, content=content, push=push,
                retry_connection=retry_connection,
            )  # fmt: skip
        state = self._host(repository)
        if url.scheme not in ("https", "http") or (url.scheme == "http" and base.scheme != "http"):
            raise RegistryError(f"{repository.api_host}: refusing to send to {url.scheme}://{url.netloc.decode()}")
        other = self._state_for(f"location {url.netloc.decode()}", state.settings)
        try:
            return await self._send(
                other, method, url, headers, None, max_bytes, content=content, retry_connection=retry_connection
            )
        except _ConnectionFailedError as failure:
            raise ConnectionLostError(f"{url.netloc.decode()}: {_describe(failure.cause)}") from None

    # -- hosts, schemes and TLS -----------------------------------------------------------------

    def _host(self, repository: Repository) -> _HostState:
        return self._state_for(repository.api_host, self._settings.get(repository.registry, HostSettings()))

    def _state_for(self, key: str, settings: HostSettings) -> _HostState:
        state = self._hosts.get(key)
        if state is None:
            state = _HostState(settings, asyncio.Semaphore(settings.concurrency))
            self._hosts[key] = state
        return state

    def _client(self, settings: HostSettings) -> httpx.AsyncClient:
        """A client for these TLS and timeout settings, one of a few that share the load; made (with its
        TLS context, which loads every trusted CA) only when a request first needs it.

        httpcore's pool does work for every request in flight times every connection on each event,
        so one pool carrying 32 requests at once spends more CPU than the network takes; a few pools
        of at most ``_REQUESTS_PER_POOL`` each keep that small and still reuse their connections.
        That is for proxied requests and HTTPS with ``http2``; the others go through ``self._connections``.
        """
        self._sent += 1
        shard = self._sent % max(1, -(-settings.concurrency // _REQUESTS_PER_POOL))
        key = (settings.insecure, settings.ca_cert, settings.timeout, shard)
        if key not in self._clients:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=_REQUESTS_PER_POOL)
            self._clients[key] = httpx.AsyncClient(
                verify=self._tls_context(settings, for_httpx=True),
                timeout=httpx.Timeout(settings.timeout),
                limits=limits,
                follow_redirects=False,
                http2=True,
                headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"},
            )  # trust_env: httpx mounts the proxies HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY name
        return self._clients[key]

    def _tls_context(self, settings: HostSettings, *, for_httpx: bool) -> ssl.SSLContext:
        """The TLS context for these settings, made (loading every trusted CA) when first needed."""
        key = (settings.insecure, settings.ca_cert, for_httpx)
        if key not in self._tls:
            self._tls[key] = _ssl_context(settings)
        return self._tls[key]

    async def _scheme_for(self, host: str, state: _HostState) -> str:
        """A host that may use plain HTTP (loopback, insecure) gets it only when it does not speak TLS."""
        if "https" in self._proxied:  # the proxy decides how to reach it: ask through the proxy
            return ""
        url = httpx.URL(f"https://{host}/")
        return "https" if await speaks_tls(url.host, url.port or 443, state.settings.timeout) else "http"

    async def _send_to_registry(
        self,
        method: str,
        repository: Repository,
        state: _HostState,
        path: str,
        headers: Mapping[str, str] | None,
        max_bytes: int,
        content: bytes | None,
        retry_connection: bool,
        stream: _StreamSink | None,
        authorization: str | None,
    ) -> Response:
        """Send to the registry; the first request to a host that may use plain HTTP decides the scheme."""
        host = repository.api_host
        if state.scheme is None:
            async with state.scheme_lock:
                if state.scheme is None and not (state.settings.insecure or is_loopback(host)):
                    state.scheme = "https"
                if state.scheme is None:
                    state.scheme = await self._scheme_for(host, state) or None
                if state.scheme is None:
                    https = httpx.URL(f"https://{host}{path}")
                    try:
                        response = await self._send(
                            state, method, https, headers, authorization, max_bytes, content=content,
                            retry_connection=False, stream=stream,
                        )  # fmt: skip
                    except _ConnectionFailedError:
                        state.scheme = "http"  # the host does not speak TLS: allowed for loopback and insecure
                    else:
                        state.scheme = "https"
                        self._note_rate_limit(repository, state, response)
                        return response
        url = httpx.URL(f"{state.scheme}://{host}{path}")
        try:
            response = await self._send(
                state, method, url, headers, authorization, max_bytes, content=content,
                retry_connection=retry_connection, stream=stream,
            )  # fmt: skip
        except _ConnectionFailedError as failure:
            raise ConnectionLostError(f"{host}: {_describe(failure.cause)}") from None
        self._note_rate_limit(repository, state, response)
        return response

    def _note_rate_limit(self, repository: Repository, state: _HostState, response: Response) -> None:
        remaining = _rate_limit_value(response.headers.get("ratelimit-remaining"))
        if remaining is None or state.rate_limit_warned:
            return
        limit = _rate_limit_value(response.headers.get("ratelimit-limit"))
        if remaining < max(_RATE_LIMIT_WARNING, (limit or 0) // 10):
            state.rate_limit_warned = True
            of_limit = f" of {limit}" if limit is not None else ""
            self._events.warning(
                f"{repository.api_host}: only {remaining}{of_limit} pulls left in the rate-limit window; "
                f"log in ('docker login {repository.registry}') for a higher limit"
            )

    # -- authentication ------------------------------------------------------------------------

    async def _credential(self, repository: Repository) -> Credential | None:
        """The repository's credential, looked up once per run (helpers may be slow programs)."""
        if repository not in self._credentials:
            self._credentials[repository] = asyncio.ensure_future(asyncio.to_thread(self._keychain.resolve, repository))
        return await asyncio.shield(self._credentials[repository])

    async def _authorization(self, repository: Repository, state: _HostState, scope: str, *, renew: bool) -> str | None:
        challenge = state.challenge
        if challenge is None:
            return None
        credential = await self._credential(repository)
        if challenge.scheme == "basic":
            if credential is None or not credential.username:
                return None
            return _basic(credential)
        if credential is not None and credential.registry_token:
            return f"Bearer {credential.registry_token}"
        token = await self._token(repository, state, challenge, scope, credential, renew=renew)
        return f"Bearer {token}"

    async def _token(
        self,
        repository: Repository,
        state: _HostState,
        challenge: Challenge,
        scope: str,
        credential: Credential | None,
        *,
        renew: bool,
    ) -> str:
        realm_url = challenge.realm_url
        if realm_url is None:
            raise RegistryError(
                f"{repository.api_host}: bearer challenge without an http(s) token realm (realm={challenge.realm!r})"
            )
        service = challenge.params.get("service", "")
        key = (str(realm_url), service, scope, credential.identity if credential else "")
        async with self._token_locks.setdefault(key, asyncio.Lock()):
            cached = self._tokens.get(key)
            fresh = cached is not None and cached.expires_at - _TOKEN_RENEW_MARGIN > time.monotonic()
            if cached is not None and fresh and not renew:
                return cached.value
            token = await self._fetch_token(repository, state, realm_url, service, scope, credential)
            self._tokens[key] = token
            return token.value

    async def _fetch_token(
        self,
        repository: Repository,
        state: _HostState,
        realm_url: httpx.URL,
        service: str,
        scope: str,
        credential: Credential | None,
    ) -> _Token:
        host = repository.api_host
        if realm_url.scheme == "http" and not (state.settings.insecure or is_loopback(host)):
            raise RegistryError(f"{host}: refusing to send a token request over plain HTTP ({realm_url})")
        token_state = state
        if realm_url.netloc.decode() != host:
            # Another host: the registry's CA may apply; its 'insecure' does not.
            settings = HostSettings(ca_cert=state.settings.ca_cert, timeout=state.settings.timeout)
            token_state = self._state_for(f"realm {realm_url.netloc.decode()}", settings)
        scopes = scope.split()
        params: dict[str, str | list[str]] = {"service": service, "scope": scopes} if service else {"scope": scopes}
        started = time.monotonic()
        if credential is not None and credential.identity_token:
            form = {**params, "scope": scope, "grant_type": "refresh_token", "refresh_token": credential.identity_token}
            response = await self._send(
                token_state,
                "POST",
                realm_url,
                {"Content-Type": "application/x-www-form-urlencoded"},
                None,
                MAX_TOKEN_BODY,
                content=urlencode({**form, "client_id": _OAUTH_CLIENT_ID}).encode(),
            )
        else:
            authorization = _basic(credential) if credential is not None and credential.username else None
            url = realm_url.copy_merge_params(params)
            response = await self._send(token_state, "GET", url, None, authorization, MAX_TOKEN_BODY)
        if response.status in (401, 403):
            raise RegistryError(
                f"{host}: token server refused the credentials for {repository.registry} ({response.status})"
            )
        if response.status != 200:
            raise RegistryError(f"{host}: token server {realm_url.host} answered HTTP {response.status}")
        try:
            document = load_json(response.body)
            value = document.get("token") or document.get("access_token")
            expires_in = document.get("expires_in", 60)
        except (ValueError, AttributeError):
            raise RegistryError(f"{host}: token server sent invalid JSON") from None
        if not isinstance(value, str) or not value:
            raise RegistryError(f"{host}: token server sent no token")
        if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
            expires_in = 60
        return _Token(value, started + max(float(expires_in), 60.0))

    # -- sending --------------------------------------------------------------------------------

    async def _send(
        self,
        state: _HostState,
        method: str,
        url: httpx.URL,
        headers: Mapping[str, str] | None,
        authorization: str | None,
        max_bytes: int,
        *,
        content: bytes | None = None,
        retry_connection: bool = True,
        stream: _StreamSink | None = None,
    ) -> Response:
        """Send with bounded retries and safe redirects; read at most ``max_bytes`` of body.

        ``Authorization`` is only ever sent to ``url``'s own origin. With ``retry_connection``
        false, a connection failure is raised as ``_ConnectionFailedError`` at once.
        """
        origin = _origin(url)
        attempts = self._retry.attempts
        for attempt in range(1, attempts + 1):
            try:
                response = await self._follow(
                    state, method, url, origin, headers, authorization, max_bytes, content, stream
                )
            except _ConnectionFailedError as failure:
                if stream is not None and stream.received:  # bytes already handed on cannot be taken back
                    raise RegistryError(f"{url.netloc.decode()}: {_describe(failure.cause)} while streaming") from None
                if not retry_connection:
                    raise
                if attempt == attempts:
                    reason = _describe(failure.cause)
                    raise RegistryError(f"{url.netloc.decode()}: {reason} (after {attempts} attempts)") from None
                await asyncio.sleep(self._retry.delay(attempt, None))
                continue
            if response.status in _RETRY_STATUSES and attempt < attempts:
                await asyncio.sleep(self._retry.delay(attempt, response.headers.get("retry-after")))
                continue
            return Response(response.status, response.headers, response.body, response.url, attempt)
        raise AssertionError("unreachable")

    async def _follow(
        self,
        state: _HostState,
        method: str,
        url: httpx.URL,
        origin: tuple[str, str, int | None],
        headers: Mapping[str, str] | None,
        authorization: str | None,
        max_bytes: int,
        content: bytes | None,
        stream: _StreamSink | None = None,
    ) -> Response:
        current = url
        for _ in range(_MAX_REDIRECTS + 1):
            request_headers = dict(headers or {})
            if authorization is not None and _origin(current) == origin:
                request_headers["Authorization"] = authorization
            response = await self._send_once(state, method, current, request_headers, max_bytes, content, stream)
            location = response.headers.get("location")
            if response.status not in _REDIRECT_STATUSES or not location:
                return response
            try:
                target = current.join(location)
                target.host  # noqa: B018  # idna reads the host here: one it refuses is refused before anything is sent
            except httpx.InvalidURL as error:
                raise RegistryError(f"{url.host}: Invalid URL in location header ({error})") from None
            except UnicodeError as error:
                raise RegistryError(f"{url.host}: response to {url.path} names an invalid host ({error})") from None
            if target.scheme not in ("https", "http") or (current.scheme == "https" and target.scheme != "https"):
                raise RegistryError(f"{url.host}: refusing redirect from {current.scheme} to {target}")
            current = target
        raise RegistryError(f"{url.host}: more than {_MAX_REDIRECTS} redirects for {url.path}")

    async def _send_once(
        self,
        state: _HostState,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        max_bytes: int,
        content: bytes | None,
        stream: _StreamSink | None = None,
    ) -> Response:
        whole_answer = state.settings.timeout * _WHOLE_ANSWER_TIMEOUTS
        if stream is not None:
            whole_answer += max_bytes / _STREAM_MIN_RATE
        try:
            async with (
                state.slots,
                asyncio.timeout(whole_answer),
                self._answer(state, method, url, headers, content) as response,
            ):
                encoding = response.headers.get("content-encoding", "")
                if method != "HEAD" and is_encoded(encoding):
                    raise RegistryError(
                        f"{url.host}: response to {url.path} is sent with Content-Encoding {encoding!r}, "
                        "which imagelock does not decode (it asks for identity)"
                    )
                limit = max_bytes if response.status_code < 400 else min(max_bytes, MAX_ERROR_BODY)
                declared = response.headers.get("content-length")
                too_large = RegistryError(f"{url.host}: response to {url.path} is larger than {limit} bytes")
                if method != "HEAD" and declared and declared.isdigit() and int(declared) > limit:
                    raise too_large
                body = bytearray()
                received = 0
                streaming = stream is not None and response.status_code == 200
                if method != "HEAD":
                    async for chunk in response.aiter_raw():  # never decoded: see the encoding check above
                        received += len(chunk)
                        if received > limit:
                            raise too_large
                        if streaming:
                            assert stream is not None
                            await stream(chunk)
                        else:
                            body += chunk
                else:  # an answer to HEAD has no body (whatever it declares): reading its end frees the connection
                    async for _ in response.aiter_raw():
                        pass
                return Response(response.status_code, response.headers, bytes(body), url)
        except (httpx.TransportError, ssl.SSLError, TimeoutError) as error:
            if isinstance(error, httpx.UnsupportedProtocol):
                raise RegistryError(f"{url.host}: unsupported URL {url}") from None
            if _is_certificate_error(error):
                raise RegistryError(
                    f"{url.netloc.decode()}: TLS certificate not trusted ({_describe(error)}); "
                    "set ca-cert, or insecure, for this registry under [registries] in images.toml"
                ) from None
            raise _ConnectionFailedError(error) from error
        except UnicodeError as error:  # httpx reads a Location's host as the answer arrives; idna refuses some
            raise RegistryError(f"{url.host}: response to {url.path} names an invalid host ({error})") from None

    @asynccontextmanager
    async def _answer(
        self, state: _HostState, method: str, url: httpx.URL, headers: dict[str, str], content: bytes | None
    ) -> AsyncIterator[Answer | httpx.Response]:
        """The answer to one request, its body still to be read: over the run's own connections
        (see connections.py) unless a proxy carries it or the host asked for HTTP/2, else through httpx."""
        https = url.scheme == "https"
        if url.scheme not in self._proxied and not (https and state.settings.http2):
            fields = [("User-Agent", _USER_AGENT), ("Accept-Encoding", "identity")]
            fields += [(name, value) for name, value in headers.items() if name.lower() not in _CLIENT_HEADERS]
            if not any(name.lower() == "accept" for name in headers):
                fields.append(("Accept", "*/*"))
            tls = self._tls_context(state.settings, for_httpx=False) if https else None
            answer = await self._connections.send(method, url, fields, content, state.settings.timeout, tls)
            try:
                yield answer
            finally:
                await answer.aclose()
        else:
            async with self._client(state.settings).stream(method, url, headers=headers, content=content) as response:
                yield response


class ConnectionLostError(RegistryError):
    """A request that must not be repeated blindly lost its connection (exit 3 if nothing recovers)."""


def _merge_scopes(ours: str, challenge: str | None) -> str:
    """Our scopes, plus any other the registry's challenge names (space-separated, order kept)."""
    scopes = ours.split()
    scopes += [extra for extra in (challenge or "").split() if extra not in scopes]
    return " ".join(scopes)


class _ConnectionFailedError(Exception):
    """A transport-level failure (refused, reset, timed out, TLS): retried, then reported."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def is_encoded(content_encoding: str) -> bool:
    """True unless the ``Content-Encoding`` is absent or says ``identity`` only."""
    return any(coding.strip().lower() not in ("", "identity") for coding in content_encoding.split(","))


def _basic(credential: Credential) -> str:
    secret = base64.b64encode(f"{credential.username}:{credential.password}".encode()).decode()
    return f"Basic {secret}"


def _ssl_context(settings: HostSettings) -> ssl.SSLContext:
    """System CAs (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` honoured) plus certifi's, plus the host's ca-cert;
    for an ``insecure`` host, nothing verified. Offers HTTP/1.1 only (httpcore sets its own ALPN)."""
    if settings.insecure:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context()
        try:
            import certifi

            context.load_verify_locations(cafile=certifi.where())
        except ImportError:  # pragma: no cover - certifi comes with httpx
            pass
        if settings.ca_cert is not None:
            context.load_verify_locations(cafile=str(settings.ca_cert))
    context.set_alpn_protocols(["http/1.1"])
    return context


def _is_certificate_error(error: BaseException) -> bool:
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _parse_retry_after(value: str) -> float | None:
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - time.time(), 0.0)


def _rate_limit_value(header: str | None) -> int | None:
    """``76;w=21600`` → 76 (Docker Hub's ratelimit-limit and ratelimit-remaining)."""
    if not header:
        return None
    head = header.split(";", 1)[0].strip()
    return int(head) if head.isdigit() else None


def _describe(error: BaseException) -> str:
    if isinstance(error, httpx.TimeoutException | TimeoutError):
        return "timed out"
    text = str(error) or type(error).__name__
    return text.splitlines()[0]
