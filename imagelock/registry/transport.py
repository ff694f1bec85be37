"""HTTP to registries: scheme and TLS per host, authentication, redirects, retries, body caps.

Rules that keep the user safe live here and nowhere else:

- HTTPS with certificate verification, always, except for loopback registries and hosts the
  user marked ``insecure``: those try HTTPS first and fall back to plain HTTP when the host does
  not speak TLS (as Docker does). A certificate that fails verification is never a reason to
  fall back.
- Credentials go to the registry host itself, and to a token realm only over HTTPS (plain HTTP
  only when the registry itself may use it). A redirect to another origin loses the
  ``Authorization`` header; a redirect from HTTPS to HTTP is refused.
- Bodies are capped while they stream; nothing unbounded is read into memory.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import ipaddress
import json
import random
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from imagelock.errors import RegistryError
from imagelock.registry.authn import Credential, Keychain
from imagelock.registry.challenge import Challenge, parse_challenges

MAX_ERROR_BODY = 1 << 20
MAX_TOKEN_BODY = 1 << 20
_MAX_REDIRECTS = 5
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_MAX_ATTEMPTS = 4
_MAX_RETRY_DELAY = 30.0
_TOKEN_RENEW_MARGIN = 10.0
_USER_AGENT = "imagelock"


@dataclass(frozen=True)
class HostSettings:
    insecure: bool = False
    ca_cert: Path | None = None


@dataclass(frozen=True)
class Response:
    status: int
    headers: httpx.Headers
    body: bytes
    url: httpx.URL


@dataclass
class _Token:
    value: str
    expires_at: float


@dataclass
class _HostState:
    """What the transport has learned about one registry host during this run."""

    base_url: str | None = None
    challenge: Challenge | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1, with or without a port."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Transport:
    """Sends requests to registries for one run, reusing connections and tokens."""

    def __init__(
        self,
        keychain: Keychain,
        settings: Mapping[str, HostSettings] | None = None,
        *,
        timeout: float = 30.0,
        max_connections_per_host: int = 16,
    ) -> None:
        self._keychain = keychain
        self._settings = dict(settings or {})
        self._timeout = httpx.Timeout(timeout)
        self._limits = httpx.Limits(max_connections=max_connections_per_host * 4, max_keepalive_connections=64)
        self._host_limit = max_connections_per_host
        self._clients: dict[tuple[bool, Path | None], httpx.AsyncClient] = {}
        self._hosts: dict[str, _HostState] = {}
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        self._tokens: dict[tuple[str, str, str, str], _Token] = {}
        self._token_locks: dict[tuple[str, str, str, str], asyncio.Lock] = {}

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def request(
        self,
        method: str,
        registry: str,
        api_host: str,
        path: str,
        *,
        scope: str,
        headers: Mapping[str, str] | None = None,
        max_bytes: int,
    ) -> Response:
        """Send ``method path`` to the registry, authenticating as its challenge asks.

        ``registry`` names the credentials to use (``docker.io``), ``api_host`` the server
        (``registry-1.docker.io``), ``scope`` the token scope (``repository:library/nginx:pull``).
        """
        state = self._hosts.setdefault(api_host, _HostState())
        base_url = await self._base_url(registry, api_host, state)
        url = httpx.URL(base_url + path)
        request_headers = dict(headers or {})
        authorization = await self._authorization(registry, api_host, state, scope, retry=False)
        client = self._client(self._settings_for(registry))
        response = await self._send(client, method, url, request_headers, authorization, api_host, max_bytes)
        if response.status != 401:
            return response
        challenges = parse_challenges(response.headers.get_list("www-authenticate"))
        usable = [c for c in challenges if c.scheme in ("bearer", "basic")]
        if not usable:
            raise RegistryError(f"{api_host}: unauthorized, and the registry offers no supported authentication")
        challenge = next((c for c in usable if c.scheme == "bearer"), usable[0])
        state.challenge = challenge
        authorization = await self._authorization(
            registry, api_host, state, challenge.params.get("scope") or scope, retry=True
        )
        if authorization is None:
            raise RegistryError(f"{api_host}: authentication required; add credentials with 'docker login {registry}'")
        response = await self._send(client, method, url, request_headers, authorization, api_host, max_bytes)
        if response.status == 401:
            if self._keychain.resolve(registry) is None:
                raise RegistryError(
                    f"{api_host}: anonymous access refused; add credentials with 'docker login {registry}'"
                )
            raise RegistryError(f"{api_host}: credentials for {registry} were rejected (401)")
        return response

    # -- scheme and TLS -------------------------------------------------------------------------

    def _settings_for(self, registry: str) -> HostSettings:
        return self._settings.get(registry, HostSettings())

    def _plain_http_allowed(self, registry: str, api_host: str) -> bool:
        return self._settings_for(registry).insecure or is_loopback(api_host)

    def _client(self, settings: HostSettings) -> httpx.AsyncClient:
        key = (settings.insecure, settings.ca_cert)
        if key not in self._clients:
            self._clients[key] = httpx.AsyncClient(
                verify=_ssl_context(settings),
                timeout=self._timeout,
                limits=self._limits,
                follow_redirects=False,
                headers={"User-Agent": _USER_AGENT},
            )
        return self._clients[key]

    async def _base_url(self, registry: str, api_host: str, state: _HostState) -> str:
        if state.base_url is not None:
            return state.base_url
        async with state.lock:
            if state.base_url is None:
                state.base_url = await self._probe_scheme(registry, api_host)
            return state.base_url

    async def _probe_scheme(self, registry: str, api_host: str) -> str:
        https = f"https://{api_host}"
        if not self._plain_http_allowed(registry, api_host):
            return https
        try:
            await self._client(self._settings_for(registry)).get(f"{https}/v2/")
        except httpx.ConnectError as error:
            if _is_certificate_error(error):
                raise RegistryError(
                    f"{api_host}: TLS certificate not trusted ({_describe(error)}); "
                    f'set ca-cert or insecure under [registries."{registry}"]'
                ) from None
            return f"http://{api_host}"
        except httpx.HTTPError as error:
            raise RegistryError(f"{api_host}: cannot connect: {_describe(error)}") from None
        return https

    # -- authentication ------------------------------------------------------------------------

    async def _authorization(
        self, registry: str, api_host: str, state: _HostState, scope: str, *, retry: bool
    ) -> str | None:
        challenge = state.challenge
        if challenge is None:
            return None
        credential = self._keychain.resolve(registry)
        if challenge.scheme == "basic":
            if credential is None or not credential.username:
                return None
            secret = base64.b64encode(f"{credential.username}:{credential.password}".encode()).decode()
            return f"Basic {secret}"
        if credential is not None and credential.registry_token:
            return f"Bearer {credential.registry_token}"
        token = await self._token(registry, api_host, challenge, scope, credential, force=retry)
        return f"Bearer {token}"

    async def _token(
        self,
        registry: str,
        api_host: str,
        challenge: Challenge,
        scope: str,
        credential: Credential | None,
        *,
        force: bool,
    ) -> str:
        realm = challenge.realm
        if not realm:
            raise RegistryError(f"{api_host}: bearer challenge without a realm")
        service = challenge.params.get("service", "")
        identity = credential.identity if credential else ""
        key = (realm, service, scope, identity)
        lock = self._token_locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached is not None and not force and cached.expires_at - _TOKEN_RENEW_MARGIN > time.monotonic():
                return cached.value
            token = await self._fetch_token(registry, api_host, realm, service, scope, credential)
            self._tokens[key] = token
            return token.value

    async def _fetch_token(
        self, registry: str, api_host: str, realm: str, service: str, scope: str, credential: Credential | None
    ) -> _Token:
        realm_url = httpx.URL(realm)
        if realm_url.scheme not in ("https", "http") or not realm_url.host:
            raise RegistryError(f"{api_host}: token realm {realm!r} is not an http(s) URL")
        if realm_url.scheme == "http" and not self._plain_http_allowed(registry, api_host):
            raise RegistryError(f"{api_host}: refusing token realm over plain HTTP ({realm})")
        query = {"service": service, "scope": scope} if service else {"scope": scope}
        url = realm_url.copy_merge_params(query)
        authorization = None
        if credential is not None and credential.username and not credential.identity_token:
            secret = base64.b64encode(f"{credential.username}:{credential.password}".encode()).decode()
            authorization = f"Basic {secret}"
        settings = self._settings_for(registry)
        if realm_url.netloc.decode() != api_host:
            # Another host: the registry's own CA may apply, its 'insecure' does not.
            settings = HostSettings(insecure=False, ca_cert=settings.ca_cert)
        started = time.monotonic()
        response = await self._send(
            self._client(settings), "GET", url, {}, authorization, realm_url.host, MAX_TOKEN_BODY
        )
        if response.status in (401, 403):
            raise RegistryError(f"{api_host}: token server refused the credentials for {registry} ({response.status})")
        if response.status != 200:
            raise RegistryError(f"{api_host}: token server {realm_url.host} answered {response.status}")
        try:
            document = json.loads(response.body)
            value = document.get("token") or document.get("access_token")
            expires_in = document.get("expires_in", 60)
        except (ValueError, AttributeError):
            raise RegistryError(f"{api_host}: token server sent invalid JSON") from None
        if not isinstance(value, str) or not value:
            raise RegistryError(f"{api_host}: token server sent no token")
        if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
            expires_in = 60
        return _Token(value, started + max(float(expires_in), 60.0))

    # -- sending --------------------------------------------------------------------------------

    async def _send(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: httpx.URL,
        headers: Mapping[str, str],
        authorization: str | None,
        api_host: str,
        max_bytes: int,
    ) -> Response:
        """Send with bounded retries and safe redirects; read at most ``max_bytes`` of body."""
        registry_origin = (url.scheme, url.host, url.port)
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            current = url
            for _ in range(_MAX_REDIRECTS + 1):
                request_headers = dict(headers)
                if authorization is not None and (current.scheme, current.host, current.port) == registry_origin:
                    request_headers["Authorization"] = authorization
                response = await self._send_once(client, method, current, request_headers, api_host, max_bytes)
                location = response.headers.get("location")
                if response.status not in (301, 302, 303, 307, 308) or not location:
                    break
                target = current.join(location)
                if current.scheme == "https" and target.scheme != "https":
                    raise RegistryError(f"{api_host}: refusing redirect from HTTPS to {target.scheme}: {target}")
                if target.scheme not in ("https", "http"):
                    raise RegistryError(f"{api_host}: refusing redirect to {target}")
                current = target
            else:
                raise RegistryError(f"{api_host}: more than {_MAX_REDIRECTS} redirects for {url.path}")
            if response.status in _RETRY_STATUSES and attempt < _MAX_ATTEMPTS:
                await asyncio.sleep(_retry_delay(response.headers.get("retry-after"), attempt))
                continue
            return response
        raise AssertionError("unreachable")

    async def _send_once(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        api_host: str,
        max_bytes: int,
    ) -> Response:
        slot = self._host_slots.setdefault(url.netloc.decode(), asyncio.Semaphore(self._host_limit))
        try:
            async with slot, client.stream(method, url, headers=headers) as response:
                limit = max_bytes if response.status_code < 400 else min(max_bytes, MAX_ERROR_BODY)
                declared = response.headers.get("content-length")
                if method != "HEAD" and declared and declared.isdigit() and int(declared) > limit:
                    raise RegistryError(f"{api_host}: response to {url.path} is larger than {limit} bytes")
                body = bytearray()
                if method != "HEAD":
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > limit:
                            raise RegistryError(f"{api_host}: response to {url.path} is larger than {limit} bytes")
                return Response(response.status_code, response.headers, bytes(body), url)
        except httpx.TimeoutException:
            raise RegistryError(f"{api_host}: timed out talking to {url.host}") from None
        except httpx.HTTPError as error:
            raise RegistryError(f"{api_host}: cannot connect to {url.host}: {_describe(error)}") from None


def _ssl_context(settings: HostSettings) -> ssl.SSLContext | bool:
    if settings.insecure:
        return False
    context = ssl.create_default_context()
    try:
        import certifi

        context.load_verify_locations(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi ships with httpx
        pass
    if settings.ca_cert is not None:
        context.load_verify_locations(cafile=str(settings.ca_cert))
    return context


def _is_certificate_error(error: BaseException) -> bool:
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _retry_delay(retry_after: str | None, attempt: int) -> float:
    if retry_after:
        if retry_after.strip().isdigit():
            return min(float(retry_after.strip()), _MAX_RETRY_DELAY)
        try:
            parsed = email.utils.parsedate_to_datetime(retry_after)
            return min(max(parsed.timestamp() - time.time(), 0.0), _MAX_RETRY_DELAY)
        except (TypeError, ValueError):
            pass
    backoff: float = min(0.25 * 2 ** (attempt - 1), _MAX_RETRY_DELAY)
    return backoff * random.uniform(0.5, 1.5)


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0]
