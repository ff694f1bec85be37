"""Turn one image spec into one locked image, asking the registry only what it must."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Mapping

from imagelock.config import ImageSpec
from imagelock.errors import ResolutionError
from imagelock.lockfile import LockedImage
from imagelock.registry import Manifest, RegistryClient
from imagelock.versions import TagMatcher, candidates, classify

MAX_CONCURRENT_IMAGES = 32


async def resolve_all(specs: Iterable[ImageSpec], client: RegistryClient) -> dict[str, LockedImage]:
    """Resolve every spec concurrently; the first failure cancels the rest and is raised."""
    slots = asyncio.Semaphore(MAX_CONCURRENT_IMAGES)

    async def resolve_one(spec: ImageSpec) -> LockedImage:
        async with slots:
            return await resolve_image(spec, client)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = {spec.name: group.create_task(resolve_one(spec)) for spec in specs}
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None
    return {name: task.result() for name, task in tasks.items()}


async def resolve_image(spec: ImageSpec, client: RegistryClient) -> LockedImage:
    if spec.tag is not None:
        manifest = await client.get_manifest(spec.repository, spec.tag)
        platforms = await client.platforms(spec.repository, manifest)
        missing = _missing(spec, platforms)
        if missing:
            raise ResolutionError(
                f"[images.{spec.name}]: {spec.repository}:{spec.tag} lacks required platform(s) {', '.join(missing)}"
                f" (it offers {', '.join(sorted(platforms)) or 'none'})"
            )
        return _locked(spec, spec.tag, manifest, platforms)
    assert spec.matcher is not None
    tags = await client.list_tags(spec.repository)
    skipped: list[str] = []
    for candidate in candidates(tags, spec.matcher):
        manifest = await client.get_manifest(spec.repository, candidate.tag)
        platforms = await client.platforms(spec.repository, manifest)
        if _missing(spec, platforms):
            skipped.append(candidate.tag)
            continue
        return _locked(spec, candidate.tag, manifest, platforms)
    raise ResolutionError(f"[images.{spec.name}]: {_no_match_reason(spec, spec.matcher, tags, skipped)}")


def _missing(spec: ImageSpec, platforms: Mapping[str, str]) -> list[str]:
    return [str(platform) for platform in spec.platforms if str(platform) not in platforms]


def _locked(spec: ImageSpec, tag: str, manifest: Manifest, platforms: dict[str, str]) -> LockedImage:
    return LockedImage(
        name=spec.name,
        image=str(spec.repository),
        tag=tag,
        digest=manifest.digest,
        media_type=manifest.media_type,
        platforms=platforms,
        spec=spec.spec_hash,
    )


def _no_match_reason(spec: ImageSpec, matcher: TagMatcher, tags: list[str], skipped: list[str]) -> str:
    wanted = str(matcher.specifier) or "any version"
    if matcher.variant:
        wanted += f" with variant {matcher.variant!r}"
    if skipped:
        required = ", ".join(str(platform) for platform in spec.platforms)
        return (
            f"no tag of {spec.repository} matching {wanted} provides {required}"
            f" ({len(skipped)} candidate(s) skipped, newest {skipped[0]})"
        )
    counts = Counter(classify(tag, matcher)[0].reason for tag in tags)
    summary = ", ".join(f"{count} {reason}" for reason, count in sorted(counts.items())) or "no tags"
    return f"no tag of {spec.repository} matches {wanted} ({len(tags)} tags: {summary})"
