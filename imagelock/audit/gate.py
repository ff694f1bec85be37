"""The audit gate: lock and update skip a candidate tag whose audit fails its policy, as they skip unsigned ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from imagelock.audit.scan import Target, audit
from imagelock.errors import DataUnavailableError

if TYPE_CHECKING:
    from imagelock.audit.database import Database
    from imagelock.audit.layers import LayerCache
    from imagelock.config import ImageSpec
    from imagelock.registry import RegistryClient
    from imagelock.resolver import Gate


def audit_gate(database: Database, cache: LayerCache) -> Gate:
    """A resolver gate auditing each candidate of an entry with ``gate = true`` before it is pinned."""

    async def gate(
        spec: ImageSpec, tag: str, digest: str, platforms: Mapping[str, str], client: RegistryClient
    ) -> str | None:
        if spec.audit is None or not spec.audit.gate:
            return None
        target = Target(
            spec.name, spec.repository, tag, digest, audited_platforms(spec, platforms), spec.audit, spec.policy
        )
        report = await audit([target], client, database, cache)
        if report.errors:  # a candidate whose content cannot be had is not judged passing
            raise DataUnavailableError(report.errors[0])
        failing = report.images[0].failing
        if not failing:
            return None
        ids = ", ".join(dict.fromkeys(finding.id for finding in failing))
        return f"audit: {len(failing)} finding(s) at or above {spec.audit.fail_on} ({ids})"

    return gate


def audited_platforms(spec: ImageSpec | None, platforms: Mapping[str, str]) -> dict[str, str]:
    """The platforms images.toml asks for, when it names some; otherwise every platform the image offers."""
    wanted = {str(platform) for platform in spec.platforms} if spec is not None else set()
    return {platform: digest for platform, digest in platforms.items() if not wanted or platform in wanted}
