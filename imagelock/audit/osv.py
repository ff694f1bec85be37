"""OSV records: reading them, deciding whether a package version is affected, and rating severity.

The evaluation follows the OSV schema's ``IsVulnerable``: a version listed in ``versions[]`` is
affected; otherwise each ``SEMVER`` or ``ECOSYSTEM`` range's events are walked in order
(``introduced`` opens, ``fixed`` closes, a version above ``last_affected`` is outside, ``limit``
caps the range). ``GIT`` ranges name commits, not versions, and are skipped. Withdrawn records are
never reported. Each ecosystem's own ordering comes from ``imagelock.audit.versions``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imagelock.audit.inventory import Package, normalize_name
from imagelock.audit.versions import Comparator, comparator

SEVERITIES = ("unknown", "low", "medium", "high", "critical")
_WORDS = {
    "low": "low",
    "negligible": "low",
    "moderate": "medium",
    "medium": "medium",
    "high": "high",
    "important": "high",
    "critical": "critical",
}


class InvalidRecordError(ValueError):
    """A document that is not an OSV record."""


@dataclass(frozen=True)
class Record:
    """One OSV record, as much of it as matching and reporting need."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: str  # one of SEVERITIES
    score: str  # the CVSS vector (or word) the severity came from; "" when none
    withdrawn: bool
    affected: tuple[Mapping[str, Any], ...]

    @classmethod
    def parse(cls, document: object) -> Record:
        if not isinstance(document, dict) or not isinstance(document.get("id"), str):
            raise InvalidRecordError("not an OSV record (no 'id')")
        affected = document.get("affected") or []
        if not isinstance(affected, list):
            raise InvalidRecordError(f"{document['id']}: 'affected' is not a list")
        aliases = [*_strings(document.get("aliases")), *_strings(document.get("upstream"))]
        severity, score = rate(document)
        return cls(
            id=document["id"],
            aliases=tuple(dict.fromkeys(alias for alias in aliases if alias != document["id"])),
            summary=str(document.get("summary") or "")[:300],
            severity=severity,
            score=score,
            withdrawn=bool(document.get("withdrawn")),
            affected=tuple(entry for entry in affected if isinstance(entry, dict)),
        )

    @property
    def names(self) -> frozenset[tuple[str, str]]:
        """``(ecosystem base, package name)`` of every affected entry: the keys to index a database by."""
        found = set()
        for entry in self.affected:
            package = entry.get("package")
            if isinstance(package, dict):
                ecosystem, name = package.get("ecosystem"), package.get("name")
                if isinstance(ecosystem, str) and isinstance(name, str):
                    found.add((ecosystem.split(":", 1)[0], name))
        return frozenset(found)

    def ids(self) -> frozenset[str]:
        return frozenset({self.id, *self.aliases})


@dataclass(frozen=True)
class Match:
    """A package a record affects, and the version that fixes it there ("" when none is known)."""

    record: Record
    package: Package
    fixed: str


def _strings(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def rate(document: Mapping[str, Any]) -> tuple[str, str]:
    """The record's severity level and what it came from: the highest CVSS base score it carries,
    else a severity word (GHSA's ``database_specific.severity``, Ubuntu's priority)."""
    vectors = [item for item in document.get("severity") or [] if isinstance(item, dict)]
    for entry in document.get("affected") or []:
        if isinstance(entry, dict):
            vectors += [item for item in entry.get("severity") or [] if isinstance(item, dict)]
    best: tuple[float, str] | None = None
    words: list[str] = []
    for item in vectors:
        kind, score = item.get("type"), item.get("score")
        if not isinstance(score, str):
            continue
        value = _cvss_score(kind, score)
        if value is not None and (best is None or value > best[0]):
            best = (value, score)
        elif value is None and score.lower() in _WORDS:
            words.append(score)
    if best is not None:
        return _level(best[0]), best[1]
    specific = document.get("database_specific")
    if isinstance(specific, dict) and isinstance(specific.get("severity"), str):
        words.append(specific["severity"])
    for word in words:
        if word.lower() in _WORDS:
            return _WORDS[word.lower()], word
    return "unknown", ""


def _cvss_score(kind: object, vector: str) -> float | None:
    from cvss import CVSS2, CVSS3, CVSS4
    from cvss.exceptions import CVSSError

    try:
        if kind == "CVSS_V4":
            return float(CVSS4(vector).base_score)
        if kind == "CVSS_V3":
            return float(CVSS3(vector).base_score)
        if kind == "CVSS_V2":
            return float(CVSS2(vector).base_score)
    except (CVSSError, ValueError, KeyError, IndexError):
        return None
    return None


def _level(score: float) -> str:
    """CVSS's qualitative rating of a base score (a score of 0 is rated low, being a known finding)."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low"


def at_or_above(severity: str, threshold: str) -> bool:
    """Whether a finding of ``severity`` meets a ``fail-on`` threshold.

    A finding nobody rated (``unknown``) counts only at ``low``, which means "any finding".
    """
    if severity == "unknown":
        return threshold == "low"
    return SEVERITIES.index(severity) >= SEVERITIES.index(threshold)


# -- matching ----------------------------------------------------------------------------------------


def matches(record: Record, package: Package) -> Match | None:
    """Whether ``record`` affects ``package``; the match carries the fixing version when one is known."""
    if record.withdrawn:
        return None
    for entry in record.affected:
        target = entry.get("package")
        if not isinstance(target, dict) or target.get("ecosystem") != package.ecosystem:
            continue
        if normalize_name(package.ecosystem, str(target.get("name", ""))) != package.osv_name:
            continue
        fixed = affected_in(entry, package.ecosystem, package.osv_version)
        if fixed is not None:
            return Match(record, package, fixed)
    return None


def affected_in(entry: Mapping[str, Any], ecosystem: str, version: str) -> str | None:
    """For one ``affected[]`` entry: None when ``version`` is not affected, else the fixed version ("" if none)."""
    fixes: list[str] = []
    affected = version in _strings(entry.get("versions"))
    for range_ in entry.get("ranges") or []:
        if not isinstance(range_, dict):
            continue
        compare = comparator(ecosystem, str(range_.get("type", "")))
        events = [event for event in range_.get("events") or [] if isinstance(event, dict)]
        if compare is None or not events:
            continue
        inside, fixed = _walk(events, version, compare)
        if inside:
            affected = True
            if fixed:
                fixes.append(fixed)
    if not affected:
        return None
    return fixes[0] if fixes else _first_fix(entry)


def _walk(events: Sequence[Mapping[str, Any]], version: str, compare: Comparator) -> tuple[bool, str]:
    """Walk one range's events in order: is ``version`` inside it, and which ``fixed`` closes the interval."""
    limits = [str(event["limit"]) for event in events if "limit" in event and event["limit"] != "*"]
    if limits and not any(compare(version, limit) < 0 for limit in limits):
        return False, ""
    inside = False
    for event in sorted(events, key=lambda event: _event_key(event, compare)):
        if "introduced" in event:
            introduced = str(event["introduced"])
            if introduced == "0" or compare(version, introduced) >= 0:
                inside = True
        elif "fixed" in event:
            if compare(version, str(event["fixed"])) >= 0:
                inside = False
            elif inside:
                return True, str(event["fixed"])
        elif "last_affected" in event and compare(version, str(event["last_affected"])) > 0:
            inside = False
    return inside, ""


class _EventKey:
    """Sort events by version (``introduced: 0`` first); at equal versions, the order they were listed in."""

    def __init__(self, version: str | None, compare: Comparator) -> None:
        self.version = version
        self.compare = compare

    def __lt__(self, other: _EventKey) -> bool:
        if self.version is None or other.version is None:
            return self.version is None and other.version is not None
        return self.compare(self.version, other.version) < 0


def _event_key(event: Mapping[str, Any], compare: Comparator) -> _EventKey:
    for key in ("introduced", "fixed", "last_affected"):
        if key in event:
            value = str(event[key])
            return _EventKey(None if key == "introduced" and value == "0" else value, compare)
    return _EventKey(None, compare)


def _first_fix(entry: Mapping[str, Any]) -> str:
    for range_ in entry.get("ranges") or []:
        if isinstance(range_, dict) and range_.get("type") != "GIT":
            for event in range_.get("events") or []:
                if isinstance(event, dict) and "fixed" in event:
                    return str(event["fixed"])
    return ""


def match_all(records: Iterable[Record], packages: Iterable[Package]) -> list[Match]:
    """Every (record, package) pair where the record affects the package, once each."""
    by_name: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        for key in record.names:
            by_name.setdefault(key, []).append(record)
    found: dict[tuple[str, str, str, str], Match] = {}
    for package in packages:
        for record in by_name.get(package.osv_key, []):
            match = matches(record, package)
            if match is not None:
                found.setdefault((record.id, package.name, package.version, package.location), match)
    return list(found.values())
