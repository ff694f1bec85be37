"""Check that what the lock pins is still there: every digest, every locked platform."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from imagelock import trust
from imagelock.concurrency import each_settled
from imagelock.config import ImageSpec
from imagelock.errors import EXIT_CHECK_FAILED, ImagelockError, NotFoundError, raise_all
from imagelock.freshness import tag_move_kind
from imagelock.lockfile import LockedImage
from imagelock.reference import parse_repository
from imagelock.registry import ImageReader
from imagelock.trust import SignatureError, Subject, TrustPolicy


class VerificationError(ImagelockError):
    """A locked digest or platform is gone, or its signature no longer satisfies its policy (exit 1)."""

    exit_code = EXIT_CHECK_FAILED


@dataclass(frozen=True)
class Verification:
    name: str
    reference: str
    problems: tuple[str, ...]
    notes: tuple[str, ...] = ()  # what is worth knowing but not a failure: "tag stable rebuilt: sha256:… → sha256:…"

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify_all(
    entries: Iterable[LockedImage],
    client: ImageReader,
    policies: Mapping[str, TrustPolicy | None],
    specs: Mapping[str, ImageSpec] | None = None,
) -> list[Verification]:
    """Verify each entry; ``policies`` gives each entry's current trust policy by name, ``specs`` its spec
    (whose tag is then checked for moves).

    When the registry fails for any entry, every failure is raised, each naming its entry, the entries
    whose verification found problems among them.
    """
    specs = specs or {}
    work = {
        entry.name: verify_entry(entry, client, policies.get(entry.name), specs.get(entry.name)) for entry in entries
    }
    verified, failures = await each_settled(work)
    if failures:
        failures += [
            VerificationError(f"[images.{v.name}]: {'; '.join(v.problems)}") for v in verified.values() if not v.ok
        ]
        raise_all(sorted(failures, key=str))
    return [verified[name] for name in work]


async def verify_entry(
    entry: LockedImage, client: ImageReader, policy: TrustPolicy | None = None, spec: ImageSpec | None = None
) -> Verification:
    """The locked digest still exists (re-verified byte for byte), still offers every locked platform,
    and, under a trust policy, still carries a signature that satisfies it. With the entry's spec, a tag
    that now names another digest is told (rebuilt, re-indexed, tag moved); a moved tag fails under
    ``on-tag-move = "fail"``."""
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
            problems.append(error.verdict)
    notes: list[str] = []
    if spec is not None and str(spec.repository) == entry.image:
        moved = await _tag_move(entry, client, spec.tag is not None)
        if moved is not None and moved.startswith("tag moved") and spec.on_tag_move == "fail":
            problems.append(moved)
        elif moved is not None:
            notes.append(moved)
    return Verification(entry.name, entry.reference, tuple(problems), tuple(notes))


async def _tag_move(entry: LockedImage, client: ImageReader, followed: bool) -> str | None:
    """``tag moved: sha256:old → sha256:new`` (or ``rebuilt``, ``re-indexed``) when the locked tag names another
    digest now; None when it names the locked one or is gone (the locked digest is what counts)."""
    repository = parse_repository(entry.image)
    try:
        if await client.head_manifest(repository, entry.tag) == entry.digest:
            return None
        current = await client.get_manifest(repository, entry.tag)
    except NotFoundError:
        return None
    if current.digest == entry.digest:
        return None
    kind = tag_move_kind(followed, entry.platforms, await client.platforms(repository, current))
    return f"{kind}: tag {entry.tag} {entry.digest} → {current.digest}"
