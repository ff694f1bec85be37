"""Image references: the grammar, Docker's normalisation, tags and digests.

The grammar is the one of distribution's ``reference`` package; normalisation follows Docker:
no domain means ``docker.io``, ``index.docker.io`` is ``docker.io``, and a one-component Docker
Hub name gets ``library/``. Every tag and digest is validated before it goes into a URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imagelock.errors import InvalidReferenceError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]{{1,5}})?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})")
_MAX_NAME_LENGTH = 255


def is_valid_tag(tag: str) -> bool:
    return _TAG.fullmatch(tag) is not None


def is_valid_registry_host(host: str) -> bool:
    return _DOMAIN.fullmatch(host) is not None


def is_valid_digest(digest: str) -> bool:
    return _DIGEST.fullmatch(digest) is not None


def check_digest(digest: str, *, what: str = "digest") -> str:
    if not is_valid_digest(digest):
        raise InvalidReferenceError(f"invalid {what} {digest!r}: expected sha256:<64 hex> or sha512:<128 hex>")
    return digest


@dataclass(frozen=True, order=True)
class Repository:
    """A repository in a registry: ``docker.io`` + ``library/nginx``."""

    registry: str
    path: str

    @property
    def api_host(self) -> str:
        """The host[:port] that serves the registry API for this repository."""
        return DOCKER_HUB_API_HOST if self.registry == DOCKER_HUB else self.registry

    def __str__(self) -> str:
        return f"{self.registry}/{self.path}"


@dataclass(frozen=True)
class Reference:
    """A parsed, normalised reference: repository plus optional tag and digest."""

    repository: Repository
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = str(self.repository)
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> Reference:
    """Parse and normalise ``text``; raise InvalidReferenceError with the reason if it is not one."""
    if not text or text != text.strip():
        raise InvalidReferenceError(f"invalid image reference {text!r}: empty or surrounded by spaces")
    remainder, digest = text, None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not is_valid_digest(digest):
            raise InvalidReferenceError(f"invalid image reference {text!r}: bad digest {digest!r}")
    name, tag = remainder, None
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        name, tag = remainder[:colon], remainder[colon + 1 :]
        if not is_valid_tag(tag):
            raise InvalidReferenceError(f"invalid image reference {text!r}: bad tag {tag!r}")
    return Reference(_parse_name(name, original=text), tag, digest)


def parse_repository(text: str) -> Repository:
    """Parse a reference that must carry neither tag nor digest."""
    reference = parse_reference(text)
    if reference.tag is not None or reference.digest is not None:
        raise InvalidReferenceError(f"expected an image name without tag or digest, got {text!r}")
    return reference.repository


def names_registry_host(component: str) -> bool:
    """Docker's rule for the first component of a name: a dot, a port or ``localhost`` makes it a registry host."""
    return "." in component or ":" in component or component == "localhost"


def _parse_name(name: str, *, original: str) -> Repository:
    if len(name) > _MAX_NAME_LENGTH:
        raise InvalidReferenceError(f"invalid image reference {original!r}: name longer than {_MAX_NAME_LENGTH}")
    first, _, rest = name.partition("/")
    has_domain = bool(rest) and (names_registry_host(first) or first != first.lower())
    if has_domain:
        if not _DOMAIN.fullmatch(first):
            raise InvalidReferenceError(f"invalid image reference {original!r}: bad registry host {first!r}")
        registry, path = first.lower(), rest
    else:
        registry, path = DOCKER_HUB, name
    if registry in _DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
    components = path.split("/")
    for component in components:
        if not _PATH_COMPONENT.fullmatch(component):
            raise InvalidReferenceError(
                f"invalid image reference {original!r}: bad path component {component!r}"
                " (lowercase letters, digits and . _ __ - separators)"
            )
    if registry == DOCKER_HUB and len(components) == 1:
        path = f"library/{path}"
    return Repository(registry, path)
