"""Platforms (``os/architecture[/variant]``), normalised the way containerd does."""

from __future__ import annotations

import re
from dataclasses import dataclass

from imagelock.errors import InputError

_ARCH_ALIASES = {"aarch64": "arm64", "x86_64": "amd64", "x86-64": "amd64", "armhf": "arm", "armel": "arm"}
_DEFAULT_VARIANTS = {"arm": "v7"}
_DROPPED_VARIANTS = {("arm64", "v8")}
_PART = re.compile(r"[a-z0-9._-]+")


@dataclass(frozen=True, order=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)

    @classmethod
    def of(cls, os: str, architecture: str, variant: str = "") -> Platform:
        """Build a platform from descriptor fields, normalising the architecture and variant."""
        os, architecture, variant = os.lower(), architecture.lower(), variant.lower()
        architecture = _ARCH_ALIASES.get(architecture, architecture)
        if (architecture, variant) in _DROPPED_VARIANTS:
            variant = ""
        if not variant:
            variant = _DEFAULT_VARIANTS.get(architecture, "")
        return cls(os, architecture, variant)


def is_platform_part(text: str) -> bool:
    """Whether ``text`` may be one part of ``os/architecture[/variant]`` (in any case)."""
    return _PART.fullmatch(text.lower()) is not None


def parse_platform(text: str) -> Platform:
    """Parse ``linux/arm64`` or ``linux/arm/v7``; raise InputError if it is not a platform."""
    parts = text.split("/")
    if not 2 <= len(parts) <= 3 or not all(is_platform_part(part) for part in parts):
        raise InputError(f"invalid platform {text!r}: expected os/architecture[/variant], e.g. linux/arm64")
    return Platform.of(*parts)
