"""Version orderings, each proved against every line of ../shared/vulndata/versions/ (both directions)."""

from __future__ import annotations

import pytest

from imagelock.audit.versions import Comparator, comparator, compare_apk, compare_dpkg, compare_pep440, compare_semver
from tests.support.vulndata import needs_vulndata, version_lines

EXPECTED = {"<": -1, "=": 0, ">": 1}


@needs_vulndata
@pytest.mark.parametrize(
    ("name", "compare", "count"),
    [
        ("debian", compare_dpkg, 30),
        ("alpine", compare_apk, 778),
        ("pypi", compare_pep440, 37),
        ("semver", compare_semver, 86),
    ],
)
def test_every_vector_line_holds_both_ways(name: str, compare: Comparator, count: int) -> None:
    lines = version_lines(name)
    assert len(lines) == count  # the README's count: no line is skipped by mistake
    wrong = [
        f"{a} {op} {b}: got {compare(a, b)} / reversed {compare(b, a)}"
        for a, op, b in lines
        if compare(a, b) != EXPECTED[op] or compare(b, a) != -EXPECTED[op]
    ]
    assert wrong == []


@pytest.mark.parametrize(
    ("compare", "smaller", "larger"),
    [
        (compare_dpkg, "1.1.0l-1~deb9u6", "1.1.0l-1"),
        (compare_dpkg, "3.4-1", "3.4-1+b6"),
        (compare_dpkg, "2.36-9+deb12u1", "2.36-9+deb12u3"),
        (compare_dpkg, "2.38.1-5", "1:2.2"),
        (compare_dpkg, "2021a-0+deb9u3", "2021a-0+deb9u4"),
        (compare_apk, "1.2.4-r0", "1.2.4-r3"),
        (compare_apk, "1.2.4-r3", "1.2.4_git20230717-r5"),  # _git sorts after the release it follows
        (compare_apk, "0.9.13", "1.2.3-r0"),
        (compare_apk, "1.2.3_rc1", "1.2.3"),
        (compare_apk, "1.2.5-r9", "1.2.5-r10"),
        (compare_pep440, "2.0.0", "2.2.5"),
        (compare_pep440, "2.2.5", "2.3.0"),
        (compare_pep440, "2.3.0rc1", "2.3.0"),
        (compare_pep440, "0.1-bulbasaur", "0.0.1"),  # not PEP 440: before every valid version
        (compare_semver, "0", "0.0.7"),
        (compare_semver, "0.0.7", "0.0.8"),
        (compare_semver, "1.0.0-rc.1", "1.0.0"),
        (compare_semver, "1.0.0-alpha.1", "1.0.0-alpha.beta"),
    ],
)
def test_known_orderings(compare: Comparator, smaller: str, larger: str) -> None:
    assert compare(smaller, larger) < 0
    assert compare(larger, smaller) > 0
    assert compare(larger, larger) == 0


def test_orderings_of_ecosystems_and_range_types() -> None:
    assert comparator("Debian:12") is compare_dpkg
    assert comparator("Alpine:v3.18") is compare_apk
    assert comparator("PyPI") is compare_pep440
    assert comparator("npm") is compare_semver
    assert comparator("PyPI", "SEMVER") is compare_semver
    assert comparator("PyPI", "GIT") is None
    assert comparator("Hackage") is None


def test_comparators_never_raise_on_garbage() -> None:
    for compare in (compare_dpkg, compare_apk, compare_pep440, compare_semver):
        for a, b in [("", "1"), ("!!", "1.0"), ("1.0", "~~"), ("ü", "ä"), ("1:", ":1")]:
            assert compare(a, b) == -compare(b, a)
