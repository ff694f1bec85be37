"""``WWW-Authenticate`` challenges (RFC 7235): several per header, quoted values with commas."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

from imagelock.registry.urls import http_url

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*')
_SCHEME = re.compile(rf"\s*({_TOKEN})(?:\s+|(?=,)|$)")  # a comma ends a challenge without parameters


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def realm_url(self) -> httpx.URL | None:
        """The realm as an http(s) URL with a host, or None when it is missing or anything else."""
        return http_url(self.realm or "")


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """All challenges in the given ``WWW-Authenticate`` header values, in order."""
    challenges: list[Challenge] = []
    for header in headers:
        position = 0
        while position < len(header):
            scheme_match = _SCHEME.match(header, position)
            if scheme_match is None:
                break
            params: dict[str, str] = {}
            position = scheme_match.end()
            while True:
                param_match = _PARAM.match(header, position)
                if param_match is None:
                    break
                name, quoted, bare = param_match.groups()
                params[name.lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
                position = param_match.end()
                if position < len(header) and header[position] == ",":
                    position += 1
                else:
                    break
            challenges.append(Challenge(scheme_match.group(1).lower(), params))
            while position < len(header) and header[position] in ", ":
                position += 1
    return challenges
