"""Relocating references to a mirror (``--relocate OLD=NEW``): same digests, another registry and path.

A rule ``OLD=NEW`` applies to a canonical repository (``docker.io/library/nginx``) when ``OLD`` is
a prefix of it at a path-component boundary: ``docker.io`` and ``docker.io/library`` match
``docker.io/library/nginx``; ``docker.io/lib`` does not. The matched prefix is replaced by ``NEW``
and the rest of the path is kept: ``docker.io=registry.internal/mirror`` turns
``docker.io/library/nginx`` into ``registry.internal/mirror/library/nginx``. When several rules
match, the longest ``OLD`` wins. Tags and digests never change: a mirror serves the same bytes.

Both sides are written ``HOST[/PATH]``: the first component is always a registry host (it has a
``.`` or a ``:``, or is ``localhost``), as in the lock, so ``docker.io`` is Docker Hub and never a
repository named ``docker.io``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from imagelock.errors import InvalidReferenceError
from imagelock.lockfile import LockedImage
from imagelock.reference import DOCKER_HUB, is_valid_registry_host, names_registry_host, parse_repository

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


@dataclass(frozen=True)
class Prefix:
    """A registry host and a (possibly empty) repository path prefix: ``docker.io`` + ``library``."""

    host: str
    path: str = ""

    def __str__(self) -> str:
        return f"{self.host}/{self.path}" if self.path else self.host

    @property
    def depth(self) -> int:
        return 1 + (self.path.count("/") + 1 if self.path else 0)

    def rest_of(self, repository: str) -> str | None:
        """The path of ``repository`` after this prefix ("" for an exact match), or None if it does not match."""
        host, _, path = repository.partition("/")
        if host != self.host:
            return None
        if not self.path:
            return path
        if path == self.path:
            return ""
        if path.startswith(self.path + "/"):
            return path[len(self.path) + 1 :]
        return None


@dataclass(frozen=True)
class Relocation:
    """One ``--relocate OLD=NEW`` rule."""

    old: Prefix
    new: Prefix

    def __str__(self) -> str:
        return f"{self.old}={self.new}"


def parse_prefix(text: str, *, rule: str, side: str) -> Prefix:
    """``HOST[/PATH]``, the host normalised (lowercase, Docker Hub's aliases are ``docker.io``)."""
    host, _, path = text.partition("/")

    def invalid(reason: str) -> InvalidReferenceError:
        return InvalidReferenceError(f"invalid --relocate {rule!r}: {side} {text!r}: {reason}")

    if not text:
        raise invalid("empty")
    if "@" in text or ":" in path:
        raise invalid("a repository prefix has no tag or digest")
    if not names_registry_host(host) or not is_valid_registry_host(host):
        raise invalid(f"{host!r} is not a registry host (start with one, e.g. docker.io/library/nginx)")
    host = host.lower()
    if host in _DOCKER_HUB_ALIASES:
        host = DOCKER_HUB
    if path:
        for component in path.split("/"):
            if not _PATH_COMPONENT.fullmatch(component):
                raise invalid(f"bad path component {component!r} (lowercase letters, digits and . _ __ - separators)")
    return Prefix(host, path)


def parse_relocation(text: str) -> Relocation:
    """``OLD=NEW``; InvalidReferenceError (exit 2) with one line naming the problem."""
    old, equals, new = text.partition("=")
    if not equals:
        raise InvalidReferenceError(
            f"invalid --relocate {text!r}: expected OLD=NEW, e.g. docker.io=registry.internal/mirror"
        )
    return Relocation(parse_prefix(old, rule=text, side="OLD"), parse_prefix(new, rule=text, side="NEW"))


def parse_relocations(texts: Iterable[str]) -> tuple[Relocation, ...]:
    """Every rule parsed; the same OLD given twice with different NEWs is an error."""
    rules: dict[Prefix, Relocation] = {}
    for text in texts:
        rule = parse_relocation(text)
        known = rules.get(rule.old)
        if known is not None and known.new != rule.new:
            raise InvalidReferenceError(f"invalid --relocate {text!r}: {rule.old} is already relocated to {known.new}")
        rules[rule.old] = rule
    return tuple(rules.values())


def relocate(repository: str, rules: Sequence[Relocation]) -> str:
    """The repository under the longest matching rule's NEW, canonical; unchanged when no rule matches."""
    best: tuple[Relocation, str] | None = None
    for rule in rules:
        rest = rule.old.rest_of(repository)
        if rest is not None and (best is None or rule.old.depth > best[0].old.depth):
            best = (rule, rest)
    if best is None:
        return repository
    rule, rest = best
    path = "/".join(part for part in (rule.new.path, rest) if part)
    if not path:
        raise InvalidReferenceError(f"--relocate {rule}: relocating {repository} leaves no repository path")
    return str(parse_repository(f"{rule.new.host}/{path}"))


def relocate_entry(entry: LockedImage, rules: Sequence[Relocation]) -> LockedImage:
    return replace(entry, image=relocate(entry.image, rules)) if rules else entry


def relocate_entries(entries: Mapping[str, LockedImage], rules: Sequence[Relocation]) -> dict[str, LockedImage]:
    return {name: relocate_entry(entry, rules) for name, entry in entries.items()}
