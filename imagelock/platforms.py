"""Platforms (``os/architecture[/variant]``), normalised the way containerd does."""

from __future__ import annotations

import re
from dataclasses import dataclass

from imagelock.errors import InputError, did_you_mean

_ARCH_ALIASES = {"aarch64": "arm64", "x86_64": "amd64", "x86-64": "amd64", "armhf": "arm", "armel": "arm"}
_DEFAULT_VARIANTS = {"arm": "v7"}
_DROPPED_VARIANTS = {("arm64", "v8")}
_PART = re.compile(r"[a-z0-9._-]+")
# Go's GOARCH values, which the OCI image index says an architecture should be (after the aliases above).
KNOWN_ARCHITECTURES = (
    "386", "amd64", "amd64p32", "arm", "arm64", "arm64be", "armbe", "loong64", "mips", "mips64", "mips64le",
    "mips64p32", "mips64p32le", "mipsle", "ppc", "ppc64", "ppc64le", "riscv", "riscv64", "s390", "s390x",
    "sparc", "sparc64", "wasm",
)  # fmt: skip


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


def parse_declared_platform(text: str) -> Platform:
    """Parse a platform a user asks for: as ``parse_platform``, and its architecture must be one Go knows.

    What a registry reports is read leniently (``Platform.of``); a typo in images.toml would only
    surface later as a platform no image offers.
    """
    platform = parse_platform(text)
    if platform.architecture not in KNOWN_ARCHITECTURES:
        raise InputError(
            f"unknown architecture {platform.architecture!r} in {text!r} (known: {', '.join(KNOWN_ARCHITECTURES)})"
            + did_you_mean(platform.architecture, KNOWN_ARCHITECTURES)
        )
    return platform
