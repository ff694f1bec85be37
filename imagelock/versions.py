"""Which tags are versions, which of them a spec allows, and in what order they are tried.

A tag is a candidate when, after an optional leading ``v``, it is a PEP 440 version (with a
variant: ``<version>-<variant>``; with a tag pattern: its ``version`` group) that satisfies the
specifier. Candidates are ordered newest first; among equal versions (``2.1`` and ``2.1.0``)
the tag with more release components comes first, then the lexically smallest tag. The order
depends only on the set of tags, never on the order the registry listed them in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version


@dataclass(frozen=True)
class TagMatcher:
    """The part of an image spec that decides which tags are candidates."""

    specifier: SpecifierSet
    variant: str | None = None
    pattern: re.Pattern[str] | None = None
    prereleases: bool | None = None
    exclude: frozenset[str] = frozenset()

    def version_of(self, tag: str) -> Version | None:
        """The version a tag names under this matcher's variant or pattern, or None."""
        if self.pattern is not None:
            match = self.pattern.fullmatch(tag)
            return parse_version(match.group("version")) if match else None
        if self.variant is not None:
            suffix = f"-{self.variant}"
            return parse_version(tag[: -len(suffix)]) if tag.endswith(suffix) else None
        return parse_version(tag)

    @property
    def allows_prereleases(self) -> bool:
        """As PEP 440: only when asked for, or when the specifier itself names a pre-release."""
        return self.prereleases if self.prereleases is not None else bool(self.specifier.prereleases)

    def allows(self, version: Version) -> bool:
        if version.is_prerelease and not self.allows_prereleases:
            return False
        return self.specifier.contains(version, prereleases=True)


@dataclass(frozen=True)
class Candidate:
    tag: str
    version: Version


@dataclass(frozen=True)
class Verdict:
    """Why a tag is or is not a candidate; used to explain a failed selection."""

    tag: str
    reason: str  # "candidate", "excluded", "not a version", "variant mismatch", "pattern mismatch",
    # "captured text is not a version", "pre-release", "outside spec"


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


def classify(tag: str, matcher: TagMatcher) -> tuple[Verdict, Candidate | None]:
    if tag in matcher.exclude:
        return Verdict(tag, "excluded"), None
    version = matcher.version_of(tag)
    if version is None:
        return Verdict(tag, _not_a_candidate(tag, matcher)), None
    if not matcher.allows(version):
        prerelease_refused = version.is_prerelease and matcher.specifier.contains(version, prereleases=True)
        return Verdict(tag, "pre-release" if prerelease_refused else "outside spec"), None
    return Verdict(tag, "candidate"), Candidate(tag, version)


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
    found = [candidate for tag in tags if (candidate := classify(tag, matcher)[1]) is not None]
    return order(found)


def order(found: Iterable[Candidate]) -> list[Candidate]:
    """Newest version first; then more release components; then the lexically smallest tag."""
    by_tag = sorted(found, key=lambda candidate: candidate.tag)
    return sorted(by_tag, key=lambda c: (c.version, len(c.version.release)), reverse=True)
