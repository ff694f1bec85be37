"""The lock in other tools' formats (``imagelock export``): a kustomization ``images:`` list, Helm values, JSON.

Each function takes the lock's entries (already relocated, if asked) and returns the text, the
same bytes for the same lock: entries sorted by name, keys in a fixed order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from imagelock.errors import InputError
from imagelock.lockfile import LockedImage
from imagelock.reference import DOCKER_HUB

FORMATS = ("kustomize", "helm-values", "json")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def familiar_name(repository: str) -> str:
    """How people write a repository: ``docker.io/library/nginx`` → ``nginx``, ``docker.io/bitnami/redis`` →
    ``bitnami/redis``; any other registry is kept (``ghcr.io/acme/app``)."""
    host, _, path = repository.partition("/")
    if host != DOCKER_HUB:
        return repository
    return path.removeprefix("library/") if path.count("/") == 1 else path


def _key(name: str) -> str:
    """A YAML mapping key: plain when YAML reads it back as that string, else double-quoted."""
    if _PLAIN_KEY.fullmatch(name) and name.lower() not in _YAML_WORDS:
        return name
    return json.dumps(name)


def kustomize(entries: Mapping[str, LockedImage], originals: Mapping[str, LockedImage] | None = None) -> str:
    """A kustomization ``images:`` list: ``name`` is the repository as manifests usually spell it (the
    familiar name of the lock's repository, before any relocation); ``newName`` the repository to pull
    from; ``digest`` the locked digest. Two entries of one repository with different digests cannot
    both be expressed (kustomize matches by name alone): InputError."""
    lines = ["images:"]
    seen: dict[str, tuple[str, LockedImage]] = {}
    for name in sorted(entries):
        entry = entries[name]
        source = (originals or entries).get(name, entry)
        match_name = familiar_name(source.image)
        if match_name in seen:
            first, earlier = seen[match_name]
            if (earlier.image, earlier.digest) == (entry.image, entry.digest):
                continue
            raise InputError(
                f"kustomize matches images by name alone: {first} and {name} are both {match_name}"
                " with different digests; use --format helm-values or json, or render templates"
            )
        seen[match_name] = (name, entry)
        lines += [
            f"- name: {match_name}",
            f"  newName: {entry.image}",
            f"  digest: {entry.digest}  # {name}: {entry.tag}",
        ]
    if len(lines) == 1:
        return "images: []\n"
    return "\n".join(lines) + "\n"


def helm_values(entries: Mapping[str, LockedImage]) -> str:
    """A Helm values fragment: ``<name>: {repository, tag, digest}`` per image; the tag is always quoted
    (``7.2`` must stay a string)."""
    lines: list[str] = []
    for name in sorted(entries):
        entry = entries[name]
        lines += [
            f"{_key(name)}:",
            f"  repository: {entry.image}",
            f'  tag: "{entry.tag}"',
            f"  digest: {entry.digest}",
        ]
    return "\n".join(lines) + "\n" if lines else "{}\n"


def as_json(entries: Mapping[str, LockedImage]) -> str:
    """``{"images": {name: {"image", "tag", "digest", "reference", "platforms"}}}``, indented, keys sorted."""
    images = {
        name: {
            "image": entry.image,
            "tag": entry.tag,
            "digest": entry.digest,
            "reference": entry.reference,
            "platforms": dict(sorted(entry.platforms.items())),
        }
        for name, entry in sorted(entries.items())
    }
    return json.dumps({"images": images}, indent=2, sort_keys=True) + "\n"


def export(format_name: str, entries: Mapping[str, LockedImage], originals: Mapping[str, LockedImage]) -> str:
    if format_name == "kustomize":
        return kustomize(entries, originals)
    if format_name == "helm-values":
        return helm_values(entries)
    if format_name == "json":
        return as_json(entries)
    raise ValueError(format_name)
