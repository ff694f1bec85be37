"""Check that what the lock pins is still there: every digest, every locked platform."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from imagelock import trust
from imagelock.concurrency import each_settled
from imagelock.errors import EXIT_CHECK_FAILED, ImagelockError, NotFoundError, raise_all
from imagelock.lockfile import LockedImage
from imagelock.reference import parse_repository
from imagelock.registry import ImageReader
from imagelock.trust import SignatureError, Subject, TrustPolicy, verdict_of


class VerificationError(ImagelockError):
    """A locked digest or platform is gone, or its signature no longer satisfies its policy (exit 1)."""

    exit_code = EXIT_CHECK_FAILED


@dataclass(frozen=True)
class Verification:
    name: str
    reference: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify_all(
    entries: Iterable[LockedImage], client: ImageReader, policies: Mapping[str, TrustPolicy | None]
) -> list[Verification]:
    """Verify each entry; ``policies`` gives each entry's current trust policy by name.

    When the registry fails for any entry, every failure is raised, each naming its entry, the entries
    whose verification found problems among them.
    """
    work = {entry.name: verify_entry(entry, client, policies.get(entry.name)) for entry in entries}
    verified, failures = await each_settled(work)
    if failures:
        failures += [
            VerificationError(f"[images.{v.name}]: {'; '.join(v.problems)}") for v in verified.values() if not v.ok
        ]
        raise_all(sorted(failures, key=str))
    return [verified[name] for name in work]


async def verify_entry(entry: LockedImage, client: ImageReader, policy: TrustPolicy | None = None) -> Verification:
    """The locked digest still exists (re-verified byte for byte), still offers every locked platform,
    and, under a trust policy, still carries a signature that satisfies it."""
    repository = parse_repository(entry.image)
    problems: list[str] = []
    try:
        manifest = await client.get_manifest(repository, entry.digest)
    except NotFoundError:
        return Verification(entry.name, entry.reference, (f"{entry.digest} no longer exists in {entry.image}",))
    offered = await client.platforms(repository, manifest)
    for platform, digest in sorted(entry.platforms.items()):
        if platform not in offered:
            problems.append(f"platform {platform} is no longer offered")
        elif offered[platform] != digest:
            problems.append(f"platform {platform} is {offered[platform]}, not the locked {digest}")
        elif manifest.is_index:
            try:
                await client.head_manifest(repository, digest)
            except NotFoundError:
                problems.append(f"platform {platform} manifest {digest} no longer exists")
    if policy is not None:
        try:
            await trust.verify(policy, Subject(repository, entry.tag, entry.digest, entry.verified), client)
        except SignatureError as error:
            problems.append(verdict_of(error))
    return Verification(entry.name, entry.reference, tuple(problems))
