"""Version ordering of each ecosystem OSV records use: dpkg, apk, PEP 440 and SemVer.

Every comparator returns a negative number, zero or a positive number, like ``cmp``, and never
raises: a version string the ecosystem's grammar does not allow is still ordered, the way the
ecosystem's own tool orders it (dpkg and apk compare any string; PEP 440 falls back to the
pre-PEP 440 "legacy" ordering, below every valid version). The test vectors in
../shared/vulndata/versions/ pin each of them down, line by line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Comparator = Callable[[str, str], int]


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


def _cmp(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


# -- dpkg (Debian) ---------------------------------------------------------------------------------


def _dpkg_order(character: str) -> int:
    """dpkg's weight of one non-digit character: ``~`` before everything, letters before other symbols."""
    if character == "~":
        return -1
    if "a" <= character <= "z" or "A" <= character <= "Z":
        return ord(character)
    return ord(character) + 256


def _is_digit(character: str) -> bool:
    return "0" <= character <= "9"


def _dpkg_part(a: str, b: str) -> int:
    """dpkg's ``verrevcmp``: alternate runs of non-digits (by weight) and digits (by value)."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not _is_digit(a[i])) or (j < len(b) and not _is_digit(b[j])):
            left = _dpkg_order(a[i]) if i < len(a) and not _is_digit(a[i]) else 0
            right = _dpkg_order(b[j]) if j < len(b) and not _is_digit(b[j]) else 0
            if left != right:
                return _sign(left - right)
            i += 1
            j += 1
        start_i = i
        while i < len(a) and _is_digit(a[i]):
            i += 1
        start_j = j
        while j < len(b) and _is_digit(b[j]):
            j += 1
        difference = _cmp(int(a[start_i:i] or "0"), int(b[start_j:j] or "0"))
        if difference:
            return difference
    return 0


def _dpkg_split(version: str) -> tuple[int, str, str]:
    """(epoch, upstream version, Debian revision); a missing epoch is 0, a missing revision empty."""
    version = version.strip()
    epoch = 0
    head, colon, rest = version.partition(":")
    if colon and head.isdigit():
        epoch, version = int(head), rest
    upstream, hyphen, revision = version.rpartition("-")
    if not hyphen:
        return epoch, version, ""
    return epoch, upstream, revision


def compare_dpkg(a: str, b: str) -> int:
    """Debian's ordering (``dpkg --compare-versions``): epoch, then upstream version, then revision."""
    epoch_a, upstream_a, revision_a = _dpkg_split(a)
    epoch_b, upstream_b, revision_b = _dpkg_split(b)
    return _cmp(epoch_a, epoch_b) or _dpkg_part(upstream_a, upstream_b) or _dpkg_part(revision_a, revision_b)


# -- apk (Alpine) ----------------------------------------------------------------------------------
#
# apk's grammar (apk-package(5)): number{.number}...{letter}{_suffix{number}}...{~hash}{-r#}.
# Suffixes sort alpha < beta < pre < rc < (none) < cvs < svn < git < hg < p, so a ``_git`` snapshot
# comes after the release it follows (1.2 < 1.2_git1) and ``_rc`` before it. Whatever the grammar
# does not cover is kept as a remainder and ordered after the parts that did parse.

_APK_SUFFIXES = {"alpha": -4, "beta": -3, "pre": -2, "rc": -1, "cvs": 1, "svn": 2, "git": 3, "hg": 4, "p": 5}
_APK_NUMBERS = re.compile(r"\d+(?:\.\d*)*")
_APK_LETTER = re.compile(r"([a-z])(\d*)")
_APK_SUFFIX = re.compile(r"_(alpha|beta|pre|rc|cvs|svn|git|hg|p)(\d*)")
_APK_HASH = re.compile(r"~[0-9a-f]+")
_APK_REVISION = re.compile(r"-r(\d*)")


class _ApkVersion:
    __slots__ = ("letter", "numbers", "original", "remainder", "revision", "suffixes")

    def __init__(self, text: str) -> None:
        self.original = text
        rest = text
        match = _APK_NUMBERS.match(rest)
        self.numbers: list[str] = match.group().split(".") if match else []
        rest = rest[match.end() :] if match else rest
        self.letter: tuple[str, int] = ("", 0)  # a letter may carry a number of its own: 6.6.2p1
        if match := _APK_LETTER.match(rest):
            self.letter = (match.group(1), int(match.group(2) or "0"))
            rest = rest[match.end() :]
        self.suffixes: list[tuple[int, int]] = []
        while match := _APK_SUFFIX.match(rest):
            self.suffixes.append((_APK_SUFFIXES[match.group(1)], int(match.group(2) or "0")))
            rest = rest[match.end() :]
        if match := _APK_HASH.match(rest):  # a commit hash cannot be ordered: ignored
            rest = rest[match.end() :]
        self.revision = 0
        if match := _APK_REVISION.match(rest):
            self.revision = int(match.group(1) or "0")
            rest = rest[match.end() :]
        self.remainder = rest


def _apk_number(a: str, b: str, first: bool) -> int:
    """Numbers compare by value; after the first, one with a leading zero (or an empty one, from ``..``)
    compares as a string, as apk does."""
    if not first and (not a or not b or a.startswith("0") or b.startswith("0")):
        return _cmp(a, b)
    return _cmp(int(a), int(b))


def compare_apk(a: str, b: str) -> int:
    """Alpine's ordering (``apk version -t``)."""
    left, right = _ApkVersion(a), _ApkVersion(b)
    if not left.numbers and not right.numbers:
        return _cmp(a, b)
    for index in range(max(len(left.numbers), len(right.numbers))):
        x = left.numbers[index] if index < len(left.numbers) else "0"
        y = right.numbers[index] if index < len(right.numbers) else "0"
        if difference := _apk_number(x, y, index == 0):
            return difference
    if difference := _cmp(left.letter, right.letter):
        return difference
    for index in range(max(len(left.suffixes), len(right.suffixes))):
        x_suffix = left.suffixes[index] if index < len(left.suffixes) else (0, 0)
        y_suffix = right.suffixes[index] if index < len(right.suffixes) else (0, 0)
        if difference := _cmp(x_suffix, y_suffix):
            return difference
    if difference := _cmp(left.revision, right.revision):
        return difference
    return _cmp(not left.remainder, not right.remainder)


# -- PEP 440 (PyPI) --------------------------------------------------------------------------------

_LEGACY_PART = re.compile(r"\d+|[a-z]+|\.|-")
_LEGACY_REPLACE = {"pre": "c", "preview": "c", "-": "final-", "rc": "c", "dev": "@"}


def _legacy_key(version: str) -> tuple[str, ...]:
    """setuptools' ordering of versions from before PEP 440 (what ``packaging`` < 22 called LegacyVersion)."""
    parts: list[str] = []
    for raw in [*_LEGACY_PART.findall(version.lower()), "final"]:
        if raw == ".":
            continue
        part = _LEGACY_REPLACE.get(raw, raw)
        part = part.zfill(8) if part[:1].isdigit() else "*" + part
        if part.startswith("*"):
            if part < "*final":
                while parts and parts[-1] == "*final-":
                    parts.pop()
            while parts and parts[-1] == "00000000":
                parts.pop()
        parts.append(part)
    return tuple(parts)


def compare_pep440(a: str, b: str) -> int:
    """PyPI's ordering: PEP 440 (by ``packaging``); strings it rejects sort before every valid version,
    in setuptools' legacy order among themselves."""
    from packaging.version import InvalidVersion, Version

    def key(text: str) -> tuple[int, Any]:
        try:
            return (1, Version(text))
        except InvalidVersion:
            return (0, "".join(_legacy_key(text)))

    return _cmp(key(a), key(b))


# -- SemVer (npm, and SEMVER ranges) ---------------------------------------------------------------

_SEMVER = re.compile(r"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(.*)", re.DOTALL)


def _semver_key(version: str) -> tuple[tuple[int, int, int], tuple[tuple[int, int, str], ...] | None]:
    match = _SEMVER.fullmatch(version.strip())
    if match is None:  # not a version at all: before every version
        return (-1, -1, -1), ()
    major, minor, patch, rest = match.groups()
    rest = rest.split("+", 1)[0]  # build metadata does not take part in precedence
    core = (int(major), int(minor or 0), int(patch or 0))
    prerelease: tuple[tuple[int, int, str], ...] | None = None
    if rest.startswith("-"):
        prerelease = tuple(
            (0, int(identifier), "") if identifier.isdigit() else (1, 0, identifier)
            for identifier in rest[1:].split(".")
        )
    return core, prerelease


def compare_semver(a: str, b: str) -> int:
    """SemVer 2.0 precedence, leniently: a leading ``v`` and missing minor or patch are accepted,
    build metadata is ignored, and anything after the patch number that is not a pre-release
    (``1.1.3.4.5``) is treated like build metadata."""
    core_a, pre_a = _semver_key(a)
    core_b, pre_b = _semver_key(b)
    if difference := _cmp(core_a, core_b):
        return difference
    if pre_a is None or pre_b is None:  # a release sorts after its pre-releases
        return _cmp(pre_a is None, pre_b is None)
    return _cmp(pre_a, pre_b)


# -- which ordering an OSV range uses ----------------------------------------------------------------

_ECOSYSTEM_ORDERINGS: dict[str, Comparator] = {
    "Debian": compare_dpkg,
    "Ubuntu": compare_dpkg,
    "Alpine": compare_apk,
    "PyPI": compare_pep440,
    "npm": compare_semver,
    "Go": compare_semver,
}


def comparator(ecosystem: str, range_type: str = "ECOSYSTEM") -> Comparator | None:
    """The ordering for a range of ``range_type`` in ``ecosystem`` (``Debian:12`` counts as ``Debian``);
    None when the range cannot be evaluated from a version alone (``GIT``) or the ecosystem is unknown."""
    if range_type == "SEMVER":
        return compare_semver
    if range_type != "ECOSYSTEM":
        return None
    return _ECOSYSTEM_ORDERINGS.get(ecosystem.split(":", 1)[0])
