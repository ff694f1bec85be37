"""Turn image specs into locked images, asking the registry only what it must."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from imagelock.concurrency import each_settled
from imagelock.config import ImageSpec
from imagelock.errors import ResolutionError, SignatureError, raise_all
from imagelock.events import Events, Silent
from imagelock.freshness import chosen_words, image_created
from imagelock.lockfile import LockedImage
from imagelock.registry import RegistryClient
from imagelock.versions import Candidate, TagMatcher, best_first, candidates, exact_release_hint, judge, order

MAX_CONCURRENT_IMAGES = 64

# Judges a candidate before it is pinned (the audit gate): the reason to skip it, or None to accept it.
Gate = Callable[[ImageSpec, str, str, Mapping[str, str], RegistryClient], Awaitable[str | None]]


@dataclass(frozen=True)
class _Pin:
    """What a tag names now: the digest and media type of its manifest, and its platforms."""

    digest: str
    media_type: str
    platforms: Mapping[str, str]
    verified: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Skip:
    """A newer candidate passed over, and the short reason why (the warnings carry the details)."""

    tag: str
    reason: str  # "missing linux/s390x", "no valid signature", "refused by the audit gate"


@dataclass(frozen=True)
class Resolution:
    """One spec resolved: the entry to lock, and the newer candidates skipped on the way to it."""

    locked: LockedImage
    skipped: tuple[Skip, ...] = ()
    held_back: str | None = None  # a followed tag's new digest not taken, and why: "held back: too new"
    made: datetime | None = None  # when the locked image was made, when a freshness rule or the caller asked

    @property
    def skipped_summary(self) -> str | None:
        """``2 newer skipped: missing linux/s390x``, or None when the newest candidate was taken."""
        if self.held_back is not None:
            return self.held_back
        if not self.skipped:
            return None
        reasons = dict.fromkeys(skip.reason for skip in self.skipped)
        return f"{len(self.skipped)} newer skipped: {'; '.join(reasons)}"


async def resolve_all(
    specs: Iterable[ImageSpec],
    client: RegistryClient,
    previous: Mapping[str, LockedImage] | None = None,
    events: Events | None = None,
    gate: Gate | None = None,
    now: datetime | None = None,
    timed: bool = False,
) -> dict[str, Resolution]:
    """Resolve every spec concurrently; when any fails, every failure is raised, each naming its entry.

    ``previous`` holds the entries of the existing lock: a tag that still names the locked
    digest is confirmed with a HEAD and needs no GET. ``timed``: find when each image was made
    even without a freshness rule (``outdated`` shows ages).
    """
    specs = list(specs)
    previous = previous or {}
    events = events or Silent()
    now = now or datetime.now(UTC)
    slots = asyncio.Semaphore(MAX_CONCURRENT_IMAGES)
    events.started(len(specs))

    async def resolve_one(spec: ImageSpec) -> Resolution:
        async with slots:
            resolution = await resolve_image(spec, client, previous.get(spec.name), events, gate, now, timed)
        events.resolved(spec.name)
        return resolution

    resolved, failures = await each_settled({spec.name: resolve_one(spec) for spec in specs})
    raise_all(failures)
    return resolved


async def resolve_image(
    spec: ImageSpec,
    client: RegistryClient,
    previous: LockedImage | None = None,
    events: Events | None = None,
    gate: Gate | None = None,
    now: datetime | None = None,
    timed: bool = False,
) -> Resolution:
    events = events or Silent()
    now = now or datetime.now(UTC)
    if spec.tag is not None:
        pin = await _pin(spec, spec.tag, client, previous)
        missing = _missing(spec, pin.platforms)
        if missing:
            raise ResolutionError(
                f"[images.{spec.name}]: {spec.repository}:{spec.tag} lacks required platform(s) {', '.join(missing)}"
                f" (it offers {', '.join(sorted(pin.platforms)) or 'none'})"
            )
        made = await _made_at(spec, spec.tag, pin, client) if timed or spec.freshness.active else None
        too_new = spec.freshness.verdict(made, now)
        if too_new is not None:
            if previous is not None and (previous.image, previous.tag) == (str(spec.repository), spec.tag):
                kept = replace(previous, spec=spec.spec_hash, constraint=spec.constraint)
                events.warning(f"[images.{spec.name}]: keeping the locked digest of tag {spec.tag}: {too_new}")
                return Resolution(kept, held_back="held back: too new")
            raise ResolutionError(f"[images.{spec.name}]: tag {spec.tag}: {too_new}")
        try:
            pin = await _verified(spec, spec.tag, pin, client, previous)
        except SignatureError as error:
            raise SignatureError(f"[images.{spec.name}]: tag {spec.tag}: {error}") from None
        refused = await gate(spec, spec.tag, pin.digest, pin.platforms, client) if gate is not None else None
        if refused is not None:
            raise ResolutionError(f"[images.{spec.name}]: tag {spec.tag}: {refused}")
        return Resolution(_locked(spec, spec.tag, pin), made=made)
    assert spec.matcher is not None
    tags = await client.list_tags(spec.repository)
    skipped: list[Skip] = []
    lacking: list[tuple[str, list[str]]] = []
    unsigned: list[tuple[str, str]] = []
    refusals: list[tuple[str, str]] = []
    held: list[tuple[str, str]] = []
    for candidate in best_first(tags, spec.matcher):
        pin = await _pin(spec, candidate.tag, client, previous)
        missing = _missing(spec, pin.platforms)
        if missing:
            lacking.append((candidate.tag, missing))
            skipped.append(Skip(candidate.tag, f"missing {', '.join(missing)}"))
            continue
        made = await _made_at(spec, candidate.tag, pin, client) if timed or spec.freshness.active else None
        too_new = spec.freshness.verdict(made, now)
        if too_new is not None:
            held.append((candidate.tag, too_new))
            skipped.append(Skip(candidate.tag, _held_back_reason(spec, too_new)))
            continue
        try:
            pin = await _verified(spec, candidate.tag, pin, client, previous)
        except SignatureError as error:
            unsigned.append((candidate.tag, str(error)))
            skipped.append(Skip(candidate.tag, f"no valid {error.verdict.partition(':')[0]}"))
            events.warning(f"[images.{spec.name}]: skipping tag {candidate.tag}: {error}")
            continue
        refused = await gate(spec, candidate.tag, pin.digest, pin.platforms, client) if gate is not None else None
        if refused is not None:
            refusals.append((candidate.tag, refused))
            skipped.append(Skip(candidate.tag, "refused by the audit gate"))
            events.warning(f"[images.{spec.name}]: skipping tag {candidate.tag}: {refused}")
            continue
        hint = exact_release_hint(spec.matcher, tags)
        if hint is not None:
            events.warning(f"[images.{spec.name}]: {hint}")
        return Resolution(_locked(spec, candidate.tag, pin), tuple(skipped), made=made)
    if refusals:
        tag, reason = refusals[0]
        raise ResolutionError(
            f"[images.{spec.name}]: no tag of {spec.repository} matching the spec passes the audit gate"
            f" ({len(refusals)} skipped; newest {tag}: {reason})"
        )
    if unsigned:
        tag, reason = unsigned[0]
        policy = spec.policy.name if spec.policy else ""
        raise SignatureError(
            f"[images.{spec.name}]: no tag of {spec.repository} matching the spec has a valid signature under"
            f" policy {policy!r} ({len(unsigned)} skipped; newest {tag}: {reason})"
        )
    if held:
        tag, reason = held[0]
        raise ResolutionError(
            f"[images.{spec.name}]: no tag of {spec.repository} matching the spec is old enough"
            f" ({len(held)} held back; newest {tag}: {reason})"
        )
    raise ResolutionError(f"[images.{spec.name}]: {_no_match_reason(spec, spec.matcher, tags, lacking)}")


async def _made_at(spec: ImageSpec, tag: str, pin: _Pin, client: RegistryClient) -> datetime | None:
    """The image's own time (annotation, config), else the registry's tag API's (docs/selection.md)."""
    manifest = await client.get_manifest(spec.repository, pin.digest)
    platforms = [str(platform) for platform in spec.platforms]
    made = await image_created(client, spec.repository, manifest, platforms)
    return made if made is not None else await client.tag_pushed(spec.repository, tag)


def _held_back_reason(spec: ImageSpec, verdict: str) -> str:
    """The short reason in the lock's line: one per rule, so that the summary stays one line."""
    if verdict.startswith("too new"):
        return f"held back as too new (min-age {spec.freshness.min_age})"
    if verdict.startswith("made after"):
        return "held back by exclude-newer"
    return "time unknown"


async def _verified(spec: ImageSpec, tag: str, pin: _Pin, client: RegistryClient, previous: LockedImage | None) -> _Pin:
    """The pin with its signature evidence, when the spec's policy asks for one.

    Evidence already in the lock for this tag and digest under this very spec is kept: it was verified then.
    """
    if spec.policy is None:
        return pin
    pinned = previous.verified if previous is not None and previous.image == str(spec.repository) else None
    unchanged = previous is not None and (previous.tag, previous.digest, previous.spec) == (
        tag,
        pin.digest,
        spec.spec_hash,
    )
    if pinned and unchanged:
        return replace(pin, verified=pinned)
    from imagelock import trust  # only a lock with policies loads the trust methods

    evidence = await trust.verify(spec.policy, trust.Subject(spec.repository, tag, pin.digest, pinned), client)
    return replace(pin, verified=dict(evidence.fields))


async def _pin(spec: ImageSpec, tag: str, client: RegistryClient, previous: LockedImage | None) -> _Pin:
    unchanged = previous is not None and previous.image == str(spec.repository) and previous.tag == tag
    if previous is not None and unchanged and await client.head_manifest(spec.repository, tag) == previous.digest:
        return _Pin(previous.digest, previous.media_type, previous.platforms)
    manifest = await client.get_manifest(spec.repository, tag)
    return _Pin(manifest.digest, manifest.media_type, await client.platforms(spec.repository, manifest))


@dataclass(frozen=True)
class TagVerdict:
    tag: str
    # chosen, older, same version, less specific, missing platform …, excluded, variant mismatch, pattern mismatch,
    # captured text is not a version, pre-release, outside spec, not a version
    verdict: str
    version: str | None = None
    made: datetime | None = None  # when the image was made, for the tags examined (the newest up to the chosen one)


@dataclass(frozen=True)
class Explanation:
    """Why an entry resolves to the tag it does: every tag of the repository with its verdict.

    ``chosen`` is what a fresh resolve would pick; ``locked`` is what the lock pins (it may be older).
    """

    name: str
    image: str
    chosen: str | None
    tags: tuple[TagVerdict, ...]
    hint: str | None = None  # a likely mistake in the spec (``==3.12`` meant as ``==3.12.*``)
    chosen_digest: str | None = None
    locked: LockedImage | None = None

    @property
    def rebuilt(self) -> str | None:
        """The digest the locked tag names now, when it is still the newest allowed but names another digest."""
        locked = self.locked
        if locked is None or (locked.image, locked.tag) != (self.image, self.chosen):
            return None
        return self.chosen_digest if self.chosen_digest != locked.digest else None


# Verdicts of an allowed tag that lost to the chosen one; for the locked tag, "locked" says all of it.
_LOST = frozenset({"older", "same version", "same version, less specific"})


async def explain(
    spec: ImageSpec,
    client: RegistryClient,
    previous: LockedImage | None = None,
    gate: Gate | None = None,
    now: datetime | None = None,
) -> Explanation:
    """Every tag considered for ``spec``, newest first, with its verdict; fetches only what selection would.

    ``previous`` is the entry in the existing lock: its tag is marked ``locked`` in the list, and its
    evidence pins trust-on-first-use roots.
    """
    now = now or datetime.now(UTC)
    if spec.tag is not None:
        pin = await _pin(spec, spec.tag, client, None)
        missing = _missing(spec, pin.platforms)
        made_at = await _made_at(spec, spec.tag, pin, client)
        reason = (
            f"missing platform {', '.join(missing)}"
            if missing
            else spec.freshness.verdict(made_at, now)
            or await _signature_verdict(spec, spec.tag, pin, client, previous, gate)
        )
        verdict = _marked(TagVerdict(spec.tag, reason, made=made_at), spec, previous)
        if reason != "chosen":
            return Explanation(spec.name, str(spec.repository), None, (verdict,), locked=previous)
        return Explanation(spec.name, str(spec.repository), spec.tag, (verdict,), None, pin.digest, previous)
    matcher = spec.matcher
    assert matcher is not None
    tags = await client.list_tags(spec.repository)
    judged = judge(tags, matcher)
    verdicts = {tag: verdict.reason for tag, (verdict, _) in judged.items()}
    chosen: Candidate | None = None
    chosen_digest: str | None = None
    made: dict[str, datetime | None] = {}
    for candidate in candidates(tags, matcher):
        if chosen is not None:
            verdicts[candidate.tag] = _lost_to(candidate, chosen)
            continue
        pin = await _pin(spec, candidate.tag, client, None)
        missing = _missing(spec, pin.platforms)
        if missing:
            verdicts[candidate.tag] = f"missing platform {', '.join(missing)}"
            continue
        made[candidate.tag] = await _made_at(spec, candidate.tag, pin, client)
        too_new = spec.freshness.verdict(made[candidate.tag], now)
        if too_new is not None:
            verdicts[candidate.tag] = too_new
            continue
        verdicts[candidate.tag] = await _signature_verdict(spec, candidate.tag, pin, client, previous, gate)
        if verdicts[candidate.tag] == "chosen":
            chosen, chosen_digest = candidate, pin.digest
            verdicts[candidate.tag] = chosen_words(spec.freshness, made[candidate.tag])

    readable = replace(matcher, variant=None, pattern=None)  # how a tag outside the variant or pattern reads
    versioned = order(reading for tag in tags if (reading := matcher.read(tag) or readable.read(tag)) is not None)
    listed = {candidate.tag for candidate in versioned}
    ordered = [TagVerdict(c.tag, verdicts[c.tag], c.shown, made.get(c.tag)) for c in versioned]
    ordered += [TagVerdict(tag, verdicts[tag]) for tag in sorted(tags) if tag not in listed]
    marked = tuple(_marked(verdict, spec, previous) for verdict in ordered)
    hint = exact_release_hint(matcher, tags)
    chosen_tag = chosen.tag if chosen else None
    return Explanation(spec.name, str(spec.repository), chosen_tag, marked, hint, chosen_digest, previous)


def _marked(verdict: TagVerdict, spec: ImageSpec, previous: LockedImage | None) -> TagVerdict:
    """The verdict of the tag the lock pins says so: ``locked``, or ``chosen, locked`` and the like."""
    if previous is None or previous.image != str(spec.repository) or previous.tag != verdict.tag:
        return verdict
    return replace(verdict, verdict="locked" if verdict.verdict in _LOST else f"{verdict.verdict}, locked")


async def _signature_verdict(
    spec: ImageSpec, tag: str, pin: _Pin, client: RegistryClient, previous: LockedImage | None, gate: Gate | None
) -> str:
    try:
        await _verified(spec, tag, pin, client, previous)
    except SignatureError as error:
        return error.verdict
    refused = await gate(spec, tag, pin.digest, pin.platforms, client) if gate is not None else None
    return refused if refused is not None else "chosen"


def _lost_to(candidate: Candidate, chosen: Candidate) -> str:
    """The verdict of an allowed tag tried after the chosen one."""
    if candidate.rank != chosen.rank:  # candidates come best first: a different rank is a lower one
        return "older"
    return "same version, less specific" if candidate.components < chosen.components else "same version"


def _missing(spec: ImageSpec, platforms: Mapping[str, str]) -> list[str]:
    return [str(platform) for platform in spec.platforms if str(platform) not in platforms]


def _locked(spec: ImageSpec, tag: str, pin: _Pin) -> LockedImage:
    return LockedImage(
        name=spec.name,
        image=str(spec.repository),
        tag=tag,
        digest=pin.digest,
        media_type=pin.media_type,
        platforms=dict(pin.platforms),
        spec=spec.spec_hash,
        verified=pin.verified,
        constraint=spec.constraint,
    )


def _no_match_reason(
    spec: ImageSpec, matcher: TagMatcher, tags: list[str], lacking: list[tuple[str, list[str]]]
) -> str:
    wanted = str(matcher.specifier) or "any version"
    if matcher.variant:
        wanted += f" with variant {matcher.variant!r}"
    if lacking:
        required = ", ".join(str(platform) for platform in spec.platforms)
        missing = sorted({platform for _, platforms in lacking for platform in platforms})
        newest, newest_missing = lacking[0]
        return (
            f"no tag of {spec.repository} matching {wanted} provides {required}: missing {', '.join(missing)}"
            f" ({len(lacking)} candidate(s) skipped; newest {newest} lacks {', '.join(newest_missing)})"
        )
    counts = Counter(verdict.reason for verdict, _ in judge(tags, matcher).values())
    summary = ", ".join(f"{count} {reason}" for reason, count in sorted(counts.items())) or "no tags"
    hint = exact_release_hint(matcher, tags)
    return f"no tag of {spec.repository} matches {wanted} ({len(tags)} tags: {summary}){f'; {hint}' if hint else ''}"
