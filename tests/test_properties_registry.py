"""Property tests of what the registry client reads from untrusted headers: ``WWW-Authenticate``, ``Location``.

Whatever a registry (or anything it redirects to) sends, reading it ends in challenges or in one of
imagelock's own errors, never in another exception.
"""

from __future__ import annotations

import re

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from imagelock.errors import ImagelockError
from imagelock.registry.challenge import Challenge, parse_challenges
from imagelock.registry.urls import http_url

TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
tokens = st.from_regex(TOKEN, fullmatch=True)

REAL_HEADERS = [
    'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"',
    'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:org/app:pull"',
    'Basic realm="https://123456789012.dkr.ecr.eu-west-1.amazonaws.com/",service="ecr.amazonaws.com"',
    'Basic realm="Registry Realm", Bearer realm="https://t.example/token",service=s,error="invalid_token"',
]


@st.composite
def mutated_headers(draw: st.DrawFn) -> str:
    """A real registry's header with a few spans replaced by arbitrary text (inserts and deletes included)."""
    header = draw(st.sampled_from(REAL_HEADERS))
    for _ in range(draw(st.integers(1, 6))):
        start = draw(st.integers(0, len(header)))
        end = start + draw(st.integers(0, 4))
        header = header[:start] + draw(st.text(max_size=4)) + header[end:]
    return header


def read(headers: list[str]) -> list[Challenge]:
    """What the transport reads from a 401: the challenges, and the realm of each as a URL."""
    try:
        challenges = parse_challenges(headers)
    except ImagelockError:
        return []
    for challenge in challenges:
        assert TOKEN.fullmatch(challenge.scheme)
        assert challenge.scheme == challenge.scheme.lower()
        assert all(TOKEN.fullmatch(name) and name == name.lower() for name in challenge.params)
        realm = challenge.realm_url
        assert realm is None or (realm.scheme in ("https", "http") and realm.host)
    return challenges


@given(st.lists(st.text(), max_size=3))
def test_any_header_is_read_or_refused_with_imagelocks_own_error(headers: list[str]) -> None:
    read(headers)


@given(st.lists(mutated_headers(), min_size=1, max_size=2))
def test_a_mutated_registry_header_is_read_or_refused_with_imagelocks_own_error(headers: list[str]) -> None:
    read(headers)


def quoted(value: str) -> str:
    """An RFC 7230 quoted-string: a backslash before each ``"`` and ``\\``."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


@given(st.sampled_from(["https://", "http://", "https://xn--", ""]), st.text(), st.sampled_from(["", "/token"]))
def test_any_realm_is_an_http_url_with_a_host_or_none(scheme: str, middle: str, path: str) -> None:
    read([f"Bearer realm={quoted(scheme + middle + path)}"])


@given(st.sampled_from(["https://", "http://", "https://xn--", "/", ""]), st.text())
def test_any_location_is_an_http_url_with_a_host_or_none(start: str, rest: str) -> None:
    url = http_url(start + rest, httpx.URL("https://registry.example:5000/v2/"))
    assert url is None or (url.scheme in ("https", "http") and url.host)


def render(challenge: Challenge, separator: str) -> str:
    """``scheme name=value,…``: values that are tokens bare, the others quoted."""
    params = separator.join(
        f"{name}={value if TOKEN.fullmatch(value) else quoted(value)}" for name, value in challenge.params.items()
    )
    return f"{challenge.scheme} {params}" if params else challenge.scheme


challenges = st.builds(
    Challenge,
    tokens.map(str.lower),
    st.dictionaries(tokens.map(str.lower), st.one_of(tokens, st.text()), max_size=4),
)
separators = st.sampled_from([",", ", ", " ,", " , "])


@given(st.lists(challenges, min_size=1, max_size=4), separators, separators)
@example([Challenge("basic"), Challenge("bearer", {"realm": "https://t.example/token"})], ",", ", ")
def test_challenges_written_as_rfc_7235_says_are_read_back(
    written: list[Challenge], between_params: str, between_challenges: str
) -> None:
    """Several challenges in one header, with or without parameters; quoted values with commas, quotes and
    backslashes; optional whitespace around the commas."""
    header = between_challenges.join(render(challenge, between_params) for challenge in written)
    assert read([header]) == written
