"""The audit policy of an image, from ``[defaults.audit]`` and ``[images.NAME.audit]`` (cheap to import:
images.toml is read on every run)."""

from __future__ import annotations

from dataclasses import dataclass

FAIL_ON_LEVELS = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class AuditPolicy:
    """Which findings fail: those at or above ``fail_on`` whose id or aliases are not in ``ignore``.

    With ``gate``, lock and update skip candidate tags that fail, as they skip unsigned ones.
    """

    fail_on: str = "high"
    ignore: frozenset[str] = frozenset()
    gate: bool = False

    def canonical(self) -> dict[str, object]:
        """What decides which tag a gated entry pins; part of its spec hash."""
        return {"fail-on": self.fail_on, "ignore": sorted(self.ignore)}
