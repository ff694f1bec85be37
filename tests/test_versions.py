"""Tag → version parsing, candidate filtering and the selection order."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet

from imagelock.versions import TagMatcher, candidates, classify, parse_version

NGINX = [
    "1.25.4",
    "1.26.2",
    "1.26",
    "1.27.0",
    "mainline",
    "latest",
    "1.26.2-alpine",
    "1.26.2-alpine3.19",
    "1.26.2-perl",
]


def pick(tags: list[str], **matcher: object) -> list[str]:
    specifier = SpecifierSet(str(matcher.pop("version", "")))
    return [candidate.tag for candidate in candidates(tags, TagMatcher(specifier, **matcher))]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tag", "version"),
    [("1.26.2", "1.26.2"), ("v2.1.0", "2.1.0"), ("3.13.0rc1", "3.13.0rc1"), ("1.25", "1.25"), ("20240125", "20240125")],
)
def test_versions_from_tags(tag: str, version: str) -> None:
    parsed = parse_version(tag)
    assert parsed is not None
    assert str(parsed) == version


@pytest.mark.parametrize(
    "tag", ["latest", "stable", "mainline", "sha-abc1234", "jammy", "vv1.0", "V", "v", "1.26.2-alpine", ".1"]
)
def test_tags_that_are_not_versions(tag: str) -> None:
    assert parse_version(tag) is None


def test_newest_version_first_ignoring_non_versions() -> None:
    assert pick(NGINX, version=">=1.25") == ["1.27.0", "1.26.2", "1.26", "1.25.4"]


def test_specifier_filters() -> None:
    assert pick(NGINX, version=">=1.25,<1.27") == ["1.26.2", "1.26", "1.25.4"]
    assert pick(NGINX, version="==1.25.*") == ["1.25.4"]


def test_variant_is_an_exact_suffix() -> None:
    assert pick(NGINX, version=">=1", variant="alpine") == ["1.26.2-alpine"]
    assert pick(NGINX, version=">=1", variant="alpine3.19") == ["1.26.2-alpine3.19"]


def test_tag_pattern_uses_its_version_group() -> None:
    tags = ["jammy-20240111", "jammy-20240125", "noble-20240423", "jammy", "jammy-2024012"]
    pattern = re.compile(r"^jammy-(?P<version>\d{8})$")
    assert pick(tags, pattern=pattern) == ["jammy-20240125", "jammy-20240111"]
    assert pick(tags, pattern=pattern, version="<20240120") == ["jammy-20240111"]


def test_exclude_removes_tags() -> None:
    assert pick(NGINX, version=">=1.25", exclude=frozenset({"1.27.0", "1.26"})) == ["1.26.2", "1.25.4"]


@pytest.mark.parametrize(
    ("version", "prereleases", "expected"),
    [
        (">=3.11", None, ["3.12.4"]),
        ("", None, ["3.12.4"]),
        (">=3.11", True, ["3.13.0rc1", "3.12.4"]),
        (">=3.13.0rc1", None, ["3.13.0rc1"]),
        (">=3.13.0rc1", False, []),
    ],
)
def test_prereleases_as_pep_440(version: str, prereleases: bool | None, expected: list[str]) -> None:
    assert pick(["3.12.4", "3.13.0rc1", "3.11.0a1"], version=version, prereleases=prereleases)[:2] == expected


def test_equal_versions_prefer_more_components_then_lexically_smallest() -> None:
    assert pick(["2.1", "v2.1.0", "2.1.0", "v2.1", "2.0.9"], version=">=2") == [
        "2.1.0",
        "v2.1.0",
        "2.1",
        "v2.1",
        "2.0.9",
    ]


@pytest.mark.parametrize(
    ("tag", "reason"),
    [
        ("1.26.2", "candidate"),
        ("1.24.0", "outside spec"),
        ("1.27.0rc1", "pre-release"),
        ("latest", "not a version"),
        ("1.26.1", "excluded"),
        ("1.26.2-perl", "not a version"),
    ],
)
def test_verdicts(tag: str, reason: str) -> None:
    matcher = TagMatcher(SpecifierSet(">=1.25"), exclude=frozenset({"1.26.1"}))
    assert classify(tag, matcher)[0].reason == reason


def test_variant_mismatch_verdict() -> None:
    matcher = TagMatcher(SpecifierSet(">=1"), variant="alpine")
    assert classify("1.26.2", matcher)[0].reason == "variant mismatch"
    assert classify("1.26.2-alpine3.19", matcher)[0].reason == "not a version"


TAGS = st.lists(
    st.one_of(
        st.from_regex(r"v?[0-9]{1,3}(\.[0-9]{1,3}){0,3}((a|b|rc)[0-9])?", fullmatch=True),
        st.sampled_from(["latest", "stable", "1.0-alpine", "sha-abc"]),
    ),
    max_size=30,
    unique=True,
)


@given(TAGS, st.randoms())
def test_order_does_not_depend_on_listing_order(tags: list[str], shuffler: random.Random) -> None:
    shuffled = list(tags)
    shuffler.shuffle(shuffled)
    assert pick(tags, version=">=0") == pick(shuffled, version=">=0")


@given(TAGS)
def test_order_is_newest_first_and_total(tags: list[str]) -> None:
    chosen = candidates(tags, TagMatcher(SpecifierSet(""), prereleases=True))
    versions = [candidate.version for candidate in chosen]
    assert versions == sorted(versions, reverse=True)
    assert len({candidate.tag for candidate in chosen}) == len(chosen)


@given(TAGS, st.randoms())
def test_the_whole_order_is_deterministic_even_between_equal_versions(tags: list[str], shuffler: random.Random) -> None:
    matcher = TagMatcher(SpecifierSet(""), prereleases=True)
    shuffled = list(tags) + [f"v{tag}" for tag in tags if tag[:1].isdigit()]  # "1.2" and "v1.2": same version
    ordered = [candidate.tag for candidate in candidates(shuffled, matcher)]
    shuffler.shuffle(shuffled)
    assert [candidate.tag for candidate in candidates(shuffled, matcher)] == ordered


@given(st.text(max_size=40))
def test_parse_version_never_raises(text: str) -> None:
    parse_version(text)
