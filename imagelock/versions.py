"""Which tags are versions, which of them a spec allows, and in what order they are tried.

A tag is a candidate when, after an optional leading ``v``, it is a PEP 440 version (with a
variant: ``<version>-<variant>``; with a tag pattern: its ``version`` group) that satisfies the
specifier. Candidates are ordered newest first, as PEP 440 orders versions except that a
``preview`` or ``pre`` release comes after the betas and before the first ``rc``. Among equal
versions the higher build number comes first, then the tag with more release components (``2.1.0``
before ``2.1``), then the lexically smallest tag. The order depends only on the set of tags, never
on the order the registry listed them in.

When a repository mixes ordinary versions with date-like ones (``3.24.1`` beside the edge snapshot
``20260805``), only one scheme competes: the one the specifier names, and ordinary versions when it
names none. An image may instead order the captured text alphabetically or as an integer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import Literal, NamedTuple

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

Order = Literal["version", "alphabetical", "numerical"]
ORDERS: tuple[Order, ...] = ("version", "alphabetical", "numerical")

DATE_LIKE_FROM = 100_000  # a first release segment of 6 digits or more is a date or a timestamp
_BUILD_SUFFIX = re.compile(r"(?P<version>v?\d+(?:\.\d+)*)_(?P<build>\d+)")  # Temurin: 21.0.12_8
# PEP 440 reads "pre" and "preview" as "rc"; projects that use them (Ruby, .NET) release previews before rcs.
_PHASES = {"a": 1, "b": 2, "preview": 3, "rc": 4}
_DEV_ONLY, _FINAL = 0, 5


class Candidate(NamedTuple):  # not a dataclass: made for every tag of every list, and this is 6 times cheaper
    tag: str
    text: str  # the version's text in the tag (after a variant or pattern is taken off)
    rank: tuple[object, ...]  # a higher rank is newer: the version (or captured text), then the build
    version: Version | None = None  # None when the image orders alphabetically or numerically
    build: str | None = None
    components: int = 0  # release components: at equal rank, ``2.1.0`` is more specific than ``2.1``

    @property
    def shown(self) -> str:
        """The version as `why` shows it: the normalised version, or the captured text."""
        if self.version is None:
            return self.text
        return str(self.version) if self.build is None else f"{self.version} build {self.build}"


@dataclass(frozen=True)
class TagMatcher:
    """The part of an image spec that decides which tags are candidates."""

    specifier: SpecifierSet
    variant: str | None = None
    pattern: re.Pattern[str] | None = None
    prereleases: bool | None = None
    exclude: frozenset[str] = frozenset()
    order: Order = "version"

    def read(self, tag: str) -> Candidate | None:
        """What the tag says under this matcher's variant, pattern and order; None when it says no version."""
        build: str | None = None
        if self.pattern is not None:
            match = self.pattern.fullmatch(tag)
            if match is None:
                return None
            text, build = match.group("version"), match.groupdict().get("build")
        elif self.variant is not None:
            suffix = f"-{self.variant}"
            if not tag.endswith(suffix):
                return None
            text = tag[: -len(suffix)]
        else:
            text = tag
        if text is None or (build is not None and not _is_number(build)):
            return None
        if build is None and self.order == "version" and "_" in text and (split := _BUILD_SUFFIX.fullmatch(text)):
            text, build = split.group("version"), split.group("build")
        build_rank = int(build) if build is not None else -1
        if self.order == "alphabetical":
            return Candidate(tag, text, (text, build_rank)) if text else None
        if self.order == "numerical":
            return Candidate(tag, text, (int(text), build_rank)) if _is_number(text) else None
        version = parse_version(text)
        if version is None:
            return None
        release = version.release
        return Candidate(tag, text, (_version_rank(version, release, text), build_rank), version, build, len(release))

    def version_of(self, tag: str) -> Version | None:
        """The version a tag names under this matcher's variant or pattern, or None."""
        candidate = self.read(tag)
        return candidate.version if candidate is not None else None

    @property
    def allows_prereleases(self) -> bool:
        """As PEP 440: only when asked for, or when the specifier itself names a pre-release."""
        return self.prereleases if self.prereleases is not None else bool(self.specifier.prereleases)

    def _allows(self, version: Version, prereleases: bool) -> bool:
        if version.is_prerelease and not prereleases:
            return False
        return self.specifier.contains(version, prereleases=True)

    def wants_date_like(self, tags: Iterable[str]) -> bool:
        """Whether date-like versions compete: if the specifier names one; naming none, if no tag is ordinary."""
        return self._wants_date_like(self.read(tag) for tag in tags if tag not in self.exclude)

    def _wants_date_like(self, readings: Iterable[Candidate | None]) -> bool:
        named = [version for spec in self.specifier if (version := parse_version(spec.version.removesuffix(".*")))]
        if named:
            return any(is_date_like(version) for version in named)
        return not any(c.version is not None and not is_date_like(c.version) for c in readings if c is not None)


@dataclass(frozen=True)
class Verdict:
    """Why a tag is or is not a candidate; used to explain a failed selection."""

    tag: str
    reason: str  # "candidate", "excluded", "not a version", "variant mismatch", "pattern mismatch",
    # "captured text is not a version", "date-like", "not date-like", "pre-release", "outside spec"


def parse_version(text: str) -> Version | None:
    """A PEP 440 version after an optional leading ``v``; None for anything else."""
    if text.startswith("v"):
        text = text[1:]
    if not text[:1].isdigit():
        return None
    try:
        return Version(text)
    except InvalidVersion:
        return None


def is_date_like(version: Version) -> bool:
    return version.release[0] >= DATE_LIKE_FROM


def classify(tag: str, matcher: TagMatcher, date_like: bool = False) -> tuple[Verdict, Candidate | None]:
    """The verdict on one tag; ``date_like`` says which scheme competes (see ``TagMatcher.wants_date_like``)."""
    if tag in matcher.exclude:
        return Verdict(tag, "excluded"), None
    return _judge_reading(tag, matcher.read(tag), matcher, date_like)


def _judge_reading(
    tag: str, candidate: Candidate | None, matcher: TagMatcher, date_like: bool
) -> tuple[Verdict, Candidate | None]:
    if candidate is None:
        return Verdict(tag, _not_a_candidate(tag, matcher)), None
    if _admits(candidate, matcher, date_like, matcher.allows_prereleases):
        return Verdict(tag, "candidate"), candidate
    version = candidate.version
    assert version is not None  # a tag the pattern alone decides is always admitted
    if is_date_like(version) != date_like:
        return Verdict(tag, "date-like" if is_date_like(version) else "not date-like"), None
    prerelease_refused = version.is_prerelease and matcher.specifier.contains(version, prereleases=True)
    return Verdict(tag, "pre-release" if prerelease_refused else "outside spec"), None


def _admits(candidate: Candidate, matcher: TagMatcher, date_like: bool, prereleases: bool) -> bool:
    """Whether a reading is a candidate: alphabetical or numerical orders, the pattern alone decides; versions
    must be of the scheme that competes (``date_like``) and allowed by the specifier."""
    version = candidate.version
    return version is None or (is_date_like(version) == date_like and matcher._allows(version, prereleases))


def judge(tags: Iterable[str], matcher: TagMatcher) -> dict[str, tuple[Verdict, Candidate | None]]:
    """The verdict on every tag, each judged against the scheme the whole list and the specifier call for."""
    readings = {tag: None if tag in matcher.exclude else matcher.read(tag) for tag in tags}  # each tag read once
    date_like = matcher._wants_date_like(readings.values())
    return {
        tag: (Verdict(tag, "excluded"), None)
        if tag in matcher.exclude
        else _judge_reading(tag, reading, matcher, date_like)
        for tag, reading in readings.items()
    }


def _not_a_candidate(tag: str, matcher: TagMatcher) -> str:
    if matcher.pattern is not None:
        return "captured text is not a version" if matcher.pattern.fullmatch(tag) else "pattern mismatch"
    return "not a version" if matcher.variant is None or parse_version(tag) is None else "variant mismatch"


def exact_release_hint(matcher: TagMatcher, tags: Iterable[str]) -> str | None:
    """A hint when a ``==X.Y`` spec meets newer X.Y.Z tags: PEP 440 means exactly X.Y.0.

    The meaning is kept; the user most likely meant ``==X.Y.*``, so the hint names that and the newest such tag.
    """
    exact = [clause for clause in matcher.specifier if clause.operator == "==" and not clause.version.endswith(".*")]
    if len(exact) != 1:
        return None
    wildcard = SpecifierSet(f"=={exact[0].version}.*")
    exactly = Version(exact[0].version)
    newer = [
        (version, tag)
        for tag in tags
        if tag not in matcher.exclude
        and (version := matcher.version_of(tag)) is not None
        and version > exactly
        and wildcard.contains(version, prereleases=matcher.allows_prereleases)
    ]
    if not newer:
        return None
    release = ".".join(str(number) for number in (*exactly.release, 0, 0)[: max(3, len(exactly.release))])
    return (
        f'version "{exact[0]}" means exactly {release} (PEP 440), but newer tags exist (newest {max(newer)[1]}):'
        f' did you mean "{wildcard}"?'
    )


def candidates(tags: Iterable[str], matcher: TagMatcher) -> list[Candidate]:
    """The tags the matcher allows, best first."""
    return list(best_first(tags, matcher))


def best_first(tags: Iterable[str], matcher: TagMatcher) -> Iterator[Candidate]:
    """``candidates``, each checked against the specifier only when the one before it was not taken: those
    ``judge`` calls candidates, without the verdicts on the rest (a lock reads thousands of tags)."""
    readings = [reading for tag in tags if tag not in matcher.exclude and (reading := matcher.read(tag)) is not None]
    date_like = matcher._wants_date_like(readings)
    prereleases = matcher.allows_prereleases
    for candidate in order(readings):
        if _admits(candidate, matcher, date_like, prereleases):
            yield candidate


def order(found: Iterable[Candidate]) -> list[Candidate]:
    """Highest rank first (newest, then highest build, then most release components); then the smallest tag."""
    by_tag = sorted(found, key=attrgetter("tag"))
    return sorted(by_tag, key=attrgetter("rank", "components"), reverse=True)


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _version_rank(version: Version, release: tuple[int, ...], text: str) -> tuple[object, ...]:
    """PEP 440's order, except that ``preview``/``pre`` sorts between ``b`` and ``rc``.

    The base version is compared as PEP 440 compares it (epoch, then the release without trailing
    zeros) on plain integers: ranks are compared many times per tag list, and Versions compare slowly.
    The version itself comes last, to order post-, dev- and local releases of one base and phase.
    """
    end = len(release)
    while end > 1 and release[end - 1] == 0:
        end -= 1
    base = (version.epoch, release[:end])
    if version.pre is not None:
        phase: str = version.pre[0]
        if phase == "rc" and "pre" in text.split("+")[0].lower():
            phase = "preview"
        return (base, _PHASES[phase], version.pre[1], version)
    stage = _DEV_ONLY if version.dev is not None and version.post is None else _FINAL
    return (base, stage, 0, version)
